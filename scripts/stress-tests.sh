#!/usr/bin/env bash
# Runs the real-QEMU suites (the `tests` package) N times against each QEMU
# under test, with two busy loops competing for the CPUs, and reports every
# failed run. Then checks that no qemu-system-* or qemu-ga process that the
# runs started is left behind.
#
#   scripts/stress-tests.sh [N]     N rounds (default 10)
#
# Processes are told apart by a tag in their environment, which every
# process the suites start inherits: QEMUs that something else on the
# machine runs at the same time are not counted.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${1:-10}
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [N]" >&2; exit 2; }

bash scripts/install-deps.sh
export PATH="$PATH:/usr/sbin"
backports=$(bash scripts/install-qemu-backports.sh --env)
qemus=("$(command -v qemu-system-x86_64)|$(command -v qemu-ga)")
qemus+=("$(sed -n 's/^QEMU=//p' <<<"$backports")|$(sed -n 's/^QEMU_GA=//p' <<<"$backports")")

tag="stress-$$-$RANDOM"
export QMP_RS_STRESS_TAG=$tag
logs=$(mktemp -d "${TMPDIR:-/tmp}/qmp-rs-stress.XXXXXX")

# qemu-system-* and qemu-ga processes, as "pid name", optionally only those
# carrying this run's tag.
qemu_processes() {
    local pid comm
    for dir in /proc/[0-9]*; do
        pid=${dir#/proc/}
        comm=$(cat "$dir/comm" 2>/dev/null) || continue
        case $comm in qemu-system-* | qemu-ga) ;; *) continue ;; esac
        if [ "${1:-}" = tagged ]; then
            tr '\0' '\n' <"$dir/environ" 2>/dev/null | grep -qx "QMP_RS_STRESS_TAG=$tag" || continue
        fi
        echo "$pid $comm"
    done
}

before=$(qemu_processes)
echo "==> $(printf '%s' "$before" | grep -c . || true) qemu-system/qemu-ga processes were running before (not counted)"

echo "==> building the suites"
cargo test -p tests --no-run --quiet

# Two busy loops, each bounded in time, ended when this script ends.
busy=()
for _ in 1 2; do
    timeout 4h bash -c 'while :; do :; done' &
    busy+=($!)
done
stop_busy() {
    for pid in "${busy[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    busy=()
}
trap stop_busy EXIT

runs=0
failures=0
started=$SECONDS
for round in $(seq 1 "$rounds"); do
    for entry in "${qemus[@]}"; do
        IFS='|' read -r qemu ga <<<"$entry"
        version=$("$qemu" --version | grep -o '[0-9][0-9]*\.[0-9][0-9]*\.[0-9][0-9]*' | head -1)
        log="$logs/round-$round-qemu-$version.log"
        runs=$((runs + 1))
        t0=$SECONDS
        # Without the slow tests that involve no QEMU (a user crate's
        # build, the 30 s default-timeout wait): they test nothing here.
        if QEMU=$qemu QEMU_GA=$ga cargo test -p tests -- \
            --skip readme_examples_compile_in_a_user_crate \
            --skip every_adapter_ends_a_call_with_the_default_timeout >"$log" 2>&1; then
            echo "round $round, QEMU $version: ok ($((SECONDS - t0)) s)"
            rm -f "$log"
        else
            failures=$((failures + 1))
            echo "round $round, QEMU $version: FAILED ($((SECONDS - t0)) s), log: $log"
            grep -E '^test .* FAILED$|^---- .* stdout ----$|panicked at' "$log" | sed 's/^/    /' | head -20
        fi
    done
done
stop_busy
echo "==> $runs runs in $((SECONDS - started)) s with two busy loops beside them"

# Whatever the runs started is gone by now; a moment's grace for a process
# that is being reaped as the last test ends.
left=""
for _ in $(seq 1 50); do
    left=$(qemu_processes tagged)
    [ -n "$left" ] || break
    sleep 0.1
done
if [ -n "$left" ]; then
    echo "error: processes the suites started are still running:" >&2
    echo "$left" | sed 's/^/    /' >&2
    echo "$left" | awk '{print $1}' | xargs -r kill -9 2>/dev/null || true
else
    echo "==> no qemu-system or qemu-ga process started by the runs is left"
fi
rmdir "$logs" 2>/dev/null || echo "==> logs of the failed runs are in $logs"

echo "stress: $((runs - failures)) passed, $failures failed"
[ "$failures" -eq 0 ] && [ -z "$left" ]
