#!/usr/bin/env bash
# Installs what the test suite and the run command need when it is missing:
# QEMU (qemu-system-x86_64) and the guest agent (qemu-ga), from Debian's
# packages, and a second, newer QEMU and qemu-ga beside them for the test
# matrix (scripts/install-qemu-backports.sh). Fails loudly when something
# cannot be had.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }

missing=()
have qemu-system-x86_64 || missing+=(qemu-system-x86)
have qemu-ga || missing+=(qemu-guest-agent)
have size || missing+=(binutils)
# setpriv ties each process a test starts to the test (--pdeathsig).
have setpriv || missing+=(util-linux)

if [ ${#missing[@]} -gt 0 ]; then
    echo "==> installing ${missing[*]}"
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "error: ${missing[*]} missing and apt-get is not available; install them by hand" >&2
        exit 1
    fi
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

for tool in qemu-system-x86_64 qemu-ga setpriv; do
    if ! have "$tool"; then
        echo "error: $tool is still missing after installing packages" >&2
        exit 1
    fi
done
if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo is not on PATH; install a Rust toolchain (see rust-version in Cargo.toml)" >&2
    exit 1
fi

bash "$(dirname "$0")/install-qemu-backports.sh"
