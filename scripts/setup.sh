#!/usr/bin/env bash
# Installs what ddgi needs on Debian/Ubuntu: libtorch (C++), OpenBLAS built
# for OpenMP (the reference BLAS is ~10× slower), and a C++ compiler for cgo.
# With --peer it also installs python3-torch, the PyTorch peer used by the
# benchmarks and scripts/golden.py. Idempotent; uses sudo when not root.
set -euo pipefail
pkgs=(libtorch-dev libgloo-dev libopenblas0-openmp g++)
[ "${1:-}" = "--peer" ] && pkgs+=(python3-torch)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null; then
    echo "setup: missing ${missing[*]} and no apt-get; install libtorch yourself and set LIBTORCH (see README)" >&2
    exit 1
  fi
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "setup: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! command -v go >/dev/null; then
  [ -x /usr/local/go/bin/go ] && export PATH="/usr/local/go/bin:$PATH"
fi
if ! command -v go >/dev/null; then
  echo "setup: Go is not installed; install Go ≥ 1.22 (https://go.dev/doc/install), it fetches the toolchain go.mod asks for" >&2
  exit 1
fi
echo "setup: ok ($(go version | cut -d' ' -f3), libtorch $(dpkg-query -W -f='${Version}' libtorch-dev 2>/dev/null || echo custom))" >&2
