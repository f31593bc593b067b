#!/usr/bin/env bash
# The run command: installs QEMU when missing, then starts qmp-shell on a
# QEMU of its own (`qmp-shell --launch`), built in release mode. Arguments
# are passed through to qmp-shell:
#
#   scripts/try.sh                                  the interactive shell
#   scripts/try.sh -c query-status                  one command, one JSON line
#   scripts/try.sh -c stop -c cont --events --timeout 1
#   scripts/try.sh -- -S -m 256                     extra QEMU arguments
set -euo pipefail
cd "$(dirname "$0")/.."

# Progress goes to stderr so that stdout carries only qmp-shell's output.
bash scripts/install-deps.sh >&2
export PATH="$PATH:/usr/sbin"

# The first build takes a while: let cargo show its progress (on stderr,
# as always), then run the binary without cargo's own lines.
cargo build --release -p qmp-shell
exec cargo run --quiet --release -p qmp-shell -- --launch "$@"
