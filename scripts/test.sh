#!/usr/bin/env bash
# Runs every test of k8rs. Installs what the tests need on a fresh Debian 12 machine first (as root), so this one
# command is all a newcomer or CI needs. The tests start and stop their own services (etcd, a registry, whole
# local clusters in network namespaces) and remove them afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-packages.sh etcd-server protobuf-compiler python3 python3-venv \
  runc crun iproute2 nftables iptables containernetworking-plugins docker-registry skopeo busybox-static curl make
# The official Python client (PyPI), pinned, for crates/k8rs/tests/python_client.rs: in a project-local virtualenv,
# as Debian's python3 refuses pip installs outside one. The test finds it through K8RS_PYTHON.
python3 -m venv target/pyenv
target/pyenv/bin/pip install -q --disable-pip-version-check kubernetes==37.0.2
export K8RS_PYTHON="$PWD/target/pyenv/bin/python3"

# The kubectl tests need the real kubectl and its versioned binaries (kubectl.1.27 … kubectl.1.33), which the
# machine image ships (Google Cloud SDK packaging); no Debian package provides them.
if ! command -v kubectl >/dev/null || [ ! -x "$(dirname "$(readlink -f "$(command -v kubectl)")")/kubectl.1.31" ]; then
  echo "kubectl with its versioned binaries (kubectl.1.27 … kubectl.1.33) is required for the tests" >&2
  exit 1
fi

cargo build --workspace --all-targets --locked
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked 2>&1 | tee "$log"
# One closing line for the whole run (cargo prints one per test binary, the last often a doc-test binary with none).
awk '/^test result:/ { p += $4; f += $6; s += $8 } END { printf "summary: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
