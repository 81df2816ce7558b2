#!/usr/bin/env bash
# Starts a one-node k8rs cluster on the embedded defaults (as root: data in /var/lib/k8rs, API on port 6443),
# building it first. Extra arguments go to `k8rs server` (see `--help`).
set -euo pipefail
cd "$(dirname "$0")/.."
# Building needs protoc (the etcd client's gRPC code is generated at build time); the node runs containers with
# runc, wires pods with nftables, and can use the reference CNI plugins.
./scripts/install-packages.sh protobuf-compiler runc iproute2 nftables containernetworking-plugins make
exec cargo run --release --locked -p k8rs -- server "$@"
