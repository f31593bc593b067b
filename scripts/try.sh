#!/usr/bin/env bash
# The run command: installs QEMU when missing, then starts a QEMU and
# drives it over QMP, printing the greeting, a query and an event.
# Arguments are passed through.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
export PATH="$PATH:/usr/sbin"

exec cargo run --quiet --release -p qmp-core --example drive_qemu -- "$@"
