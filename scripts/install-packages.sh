#!/usr/bin/env bash
# Installs the named Debian packages that are missing (as root, on Debian 12). Used by the other scripts.
set -euo pipefail
missing=()
for package in "$@"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "Installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Debian's etcd-server starts a system etcd on install where an init system runs; the tests use their own.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
