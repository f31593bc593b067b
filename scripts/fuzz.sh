#!/usr/bin/env bash
# Fuzzes the engine: runs each cargo-fuzz target of qmp-core/fuzz for
# SECONDS (default 60), one after another, starting from the committed
# seeds (qmp-core/fuzz/seeds/<target>, built from the recorded QEMU and
# qemu-ga transcripts) plus whatever earlier runs found
# (qmp-core/fuzz/corpus/<target>, not committed).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# Builds with debug assertions, so arithmetic overflow is a crash too.
# A crash leaves its input in qmp-core/fuzz/artifacts/<target>/ and fails.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(framer engine agent)
fi

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz.sh: the nightly toolchain is missing (rustup toolchain install nightly)" >&2
    exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: cargo-fuzz is missing (cargo install cargo-fuzz)" >&2
    exit 2
fi

fuzz=qmp-core/fuzz
if [ ! -d "$fuzz/seeds" ]; then
    cargo run -q --manifest-path "$fuzz/Cargo.toml" --example seeds
fi
cargo +nightly fuzz build -O -a --fuzz-dir "$fuzz" >/dev/null

summary=()
for t in "${targets[@]}"; do
    mkdir -p "$fuzz/corpus/$t"
    log="$fuzz/corpus/$t.log"
    echo "==> fuzzing $t for ${seconds}s"
    status=0
    cargo +nightly fuzz run -O -a --fuzz-dir "$fuzz" "$t" \
        "$fuzz/corpus/$t" "$fuzz/seeds/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 >"$log" 2>&1 || status=$?
    execs=$(grep -ao 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
    if [ "$status" -ne 0 ]; then
        grep -aE 'panicked|ERROR|SUMMARY|Test unit written' "$log" >&2 || tail -20 "$log" >&2
        echo "fuzz.sh: $t failed (log: $log)" >&2
        exit 1
    fi
    summary+=("$t: ${execs:-?} executions in ${seconds}s, corpus $(ls "$fuzz/corpus/$t" | wc -l) inputs")
done
echo
printf '%s\n' "${summary[@]}"
