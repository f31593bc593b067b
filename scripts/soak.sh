#!/usr/bin/env bash
# Soak: MINUTES (default 10) of mixed traffic against a real QEMU from 20
# smol tasks on one qmp-smol connection that is dropped and re-made every
# 20 s (tests/tests/soak.rs). Prints the tallies and the resident memory,
# and fails on any hung call, wrong reply, lost event or memory growth.
#
#   scripts/soak.sh [MINUTES]
set -euo pipefail
cd "$(dirname "$0")/.."

minutes="${1:-10}"
bash scripts/install-deps.sh
export PATH="$PATH:/usr/sbin"

cargo build -p tests --test soak
SOAK_MINUTES="$minutes" cargo test -p tests --test soak -- --ignored --nocapture
