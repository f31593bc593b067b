#!/usr/bin/env bash
# The one test command: installs what is missing, then runs every check and
# stops at the first failure. The suites that talk to a real QEMU and a real
# qemu-ga (the `tests` package) run once per QEMU version: the system's
# (Debian 12: 7.2) and the backports build (10.0) that install-deps.sh
# unpacks beside it. The engine's and the adapters' own tests run once.
#
#   FUZZ_SECONDS=N scripts/test.sh   fuzz each target N s (default 10; 0 skips)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
export PATH="$PATH:/usr/sbin"

step() {
    echo
    echo "==> $*"
    local started=$SECONDS
    "$@"
    echo "(${SECONDS}s in all; this step $((SECONDS - started))s)"
}

# Where Cargo puts what it builds: $CARGO_TARGET_DIR, a config's
# build.target-dir, or ./target.
target=$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
[ -n "$target" ] || { echo "error: cargo metadata reported no target directory" >&2; exit 1; }

# name|qemu-system-x86_64|qemu-ga, one line per QEMU under test.
qemus=("system|$(command -v qemu-system-x86_64)|$(command -v qemu-ga)")
backports=$(bash scripts/install-qemu-backports.sh --env)
qemus+=("backports|$(sed -n 's/^QEMU=//p' <<<"$backports")|$(sed -n 's/^QEMU_GA=//p' <<<"$backports")")

version_of() {
    "$1" --version | grep -o '[0-9][0-9]*\.[0-9][0-9]*\.[0-9][0-9]*' | head -1
}

step cargo fmt --all -- --check
step cargo clippy --workspace --all-targets -- -D warnings
# The engine, the adapters' unit and doc tests, the no_std crates: once.
step cargo test --workspace --exclude tests

passed=()
failed=()
# The slow tests that involve no QEMU run in the first pass only: the
# README examples built in a user's crate, and the 30 s default-timeout
# wait against a scripted peer.
once=()
for entry in "${qemus[@]}"; do
    IFS='|' read -r name qemu ga <<<"$entry"
    label="QEMU $(version_of "$qemu") (qemu-ga $(version_of "$ga"))"
    echo
    echo "==> the real-QEMU suites against $label: QEMU=$qemu QEMU_GA=$ga (at ${SECONDS}s)"
    if QEMU=$qemu QEMU_GA=$ga cargo test -p tests --no-fail-fast -- "${once[@]}"; then
        passed+=("$label")
    else
        failed+=("$label")
    fi
    once=(--skip readme_examples_compile_in_a_user_crate
        --skip every_adapter_ends_a_call_with_the_default_timeout)
done
if [ ${#failed[@]} -gt 0 ]; then
    echo
    echo "error: the real-QEMU suites failed against ${failed[*]}${passed:+; passed against ${passed[*]}}" >&2
    exit 1
fi

# Packaging: every publishable crate (those without `publish = false`) is
# packaged and its package built on its own, as a user would get it;
# `--dry-run` uploads nothing.
# The dry run verifies each crate against the others through a local
# registry. Cargo takes a registry crate of a given version to be the same
# forever: the copy it unpacked under $CARGO_HOME and the build it made in
# the target directory, left by an earlier run from this folder, would be
# taken for today's sources. Remove both (the other steps build these
# crates from their paths, with other fingerprints).
rm -rf "${CARGO_HOME:-$HOME/.cargo}"/registry/src/-*/qmp-* \
    "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/-*/qmp-* \
    "$target"/debug/.fingerprint/qmp-* "$target"/debug/.fingerprint/qapi-*
step cargo publish --dry-run --workspace --allow-dirty
# A library user gets no shell dependencies.
tree=$(cargo tree -p qmp-std -e normal)
if grep -E '\b(clap|rustyline) v' <<<"$tree"; then
    echo "error: qmp-std depends on the shell's clap or rustyline" >&2
    exit 1
fi
# The stated minimum Rust versions: each crate is built with the toolchain
# its `rust-version` names (installed with rustup when missing).
rust_version() {
    sed -n 's/^rust-version = "\(.*\)"$/\1/p' "$1"
}
check_msrv() {
    local version=$1
    shift
    # The toolchain everything above ran with already is that version.
    if [ "$(rustc --version | cut -d' ' -f2)" = "$version" ] ||
        [ "$(rustc --version | cut -d' ' -f2)" = "$version.0" ]; then
        echo "(rust-version $version: the toolchain of the steps above; $*)"
        return
    fi
    if ! cargo "+$version" --version >/dev/null 2>&1; then
        step rustup toolchain install "$version" --profile minimal
    fi
    step cargo "+$version" check --all-features "$@"
}
# The tokio example, run as a user would, against a QEMU it starts itself.
step cargo run -q -p qmp-tokio --example tokio_tasks
# The tokio adapter runs on tokio's reactor alone: no async-io beside it.
tree=$(cargo tree -p qmp-tokio -e normal)
if grep -E '\b(async-io|polling) v' <<<"$tree"; then
    echo "error: qmp-tokio pulls in a second reactor (async-io)" >&2
    exit 1
fi
check_msrv "$(rust_version Cargo.toml)" -p qmp-core -p qmp-os -p qmp-std -p qmp-async -p qmp-smol -p qmp-tokio -p qmp-qapi
check_msrv "$(rust_version qmp-shell/Cargo.toml)" -p qmp-shell
# no_std proof: the library defines its own panic handler (a std leak
# anywhere in qmp-core's dependency tree is a duplicate lang item), and the
# binary runs a whole session on a fixed 64 KiB heap without std. Built on
# its own, so that no other member's std features are unified into it.
step cargo build -p nostd-check --features proof
step cargo build -p nostd-check --features run --profile nostd
step "$target/nostd/nostd-check"
# The firmware agent: a no_std binary built for size; its code must stay
# under 256 KiB.
step cargo build -p firmware-agent --features run --profile firmware
text=$(size -A "$target/firmware/firmware-agent" | awk '$1 == ".text" {print $2}')
echo "firmware-agent .text: $text bytes (budget 262144)"
if [ -z "$text" ] || [ "$text" -ge 262144 ]; then
    echo "error: firmware-agent .text is over its 256 KiB budget" >&2
    exit 1
fi
# Fuzzing, briefly (10 s per target) wherever a nightly toolchain is
# installed (cargo-fuzz needs it); cargo-fuzz itself is installed when
# missing. scripts/fuzz.sh SECONDS runs the targets for longer.
fuzz_seconds=${FUZZ_SECONDS:-10}
if [ "$fuzz_seconds" = 0 ]; then
    echo "(fuzz targets skipped: FUZZ_SECONDS=0)"
elif cargo +nightly --version >/dev/null 2>&1; then
    if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
        step cargo install --locked cargo-fuzz
    fi
    step scripts/fuzz.sh "$fuzz_seconds"
else
    echo "(fuzz targets skipped: no nightly toolchain; rustup toolchain install nightly)"
fi

echo
echo "all checks passed in ${SECONDS}s; the real-QEMU suites passed against $(printf '%s, ' "${passed[@]}" | sed 's/, $//')"
