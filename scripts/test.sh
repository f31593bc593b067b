#!/usr/bin/env bash
# The one test command: installs what is missing, then runs every check and
# stops at the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
export PATH="$PATH:/usr/sbin"

step() {
    echo
    echo "==> $*"
    "$@"
}

step cargo fmt --all -- --check
step cargo clippy --workspace --all-targets --locked -- -D warnings
step cargo test --workspace --locked
# no_std proof: the library defines its own panic handler (a std leak
# anywhere in qmp-core's dependency tree is a duplicate lang item), and the
# binary runs a whole session on a fixed 64 KiB heap without std.
step cargo build -p nostd-check --locked
step cargo build -p nostd-check --features run --profile nostd --locked
step ./target/nostd/nostd-check

echo
echo "all checks passed"
