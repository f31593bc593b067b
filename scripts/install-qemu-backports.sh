#!/usr/bin/env bash
# Provides a second QEMU beside the system's: Debian 12's backports build
# (QEMU 10.0) of qemu-system-x86_64 and qemu-ga, unpacked into a cache
# directory. The system QEMU is not touched.
#
#   scripts/install-qemu-backports.sh          installs when missing, checks
#   scripts/install-qemu-backports.sh --env    also prints QEMU=... and QEMU_GA=...
#
# The cache directory is $QMP_RS_QEMU_CACHE, else
# ${XDG_CACHE_HOME:-$HOME/.cache}/qmp-rs/qemu-backports. In it:
#   bin/qemu-system-x86_64   a wrapper that points QEMU at its own data
#                            (-L) and modules (QEMU_MODULE_DIR)
#   bin/qemu-ga              the agent
#   root/                    the unpacked packages
# A second run finds the binaries working and returns at once. Fails loudly
# when it cannot provide them.
set -euo pipefail

SUITE=bookworm-backports
# The packages unpacked. The binaries' shared libraries come from the
# distribution itself (installed below when missing); seabios is the newer
# BIOS the emulator's package asks for.
PACKAGES=(qemu-system-x86 qemu-system-common qemu-system-data qemu-guest-agent seabios)

cache=${QMP_RS_QEMU_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/qmp-rs/qemu-backports}
root=$cache/root
bin=$cache/bin

die() {
    echo "error: $*" >&2
    exit 1
}

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# Both binaries answer --version and the emulator serves a minimal machine.
check() {
    local q=$bin/qemu-system-x86_64 ga=$bin/qemu-ga out
    [ -x "$q" ] && [ -x "$ga" ] || return 1
    out=$("$q" --version 2>&1) || return 1
    [[ $out == "QEMU emulator version "* ]] || return 1
    out=$("$ga" --version 2>&1) || return 1
    [[ $out == *"Guest Agent"* ]] || return 1
    out=$(printf '%s\n' '{"execute": "qmp_capabilities"}' '{"execute": "quit"}' |
        timeout 30 "$q" -machine none -nodefaults -display none -qmp stdio 2>&1) || return 1
    [[ $out == *'"QMP"'* && $out == *'host-qmp-quit'* ]]
}

report() {
    if [ "${1:-}" = --env ]; then
        echo "QEMU=$bin/qemu-system-x86_64"
        echo "QEMU_GA=$bin/qemu-ga"
    fi
}

if check; then
    report "${1:-}"
    exit 0
fi

command -v apt-get >/dev/null 2>&1 || die "apt-get is not available: cannot fetch QEMU from $SUITE"
command -v dpkg-deb >/dev/null 2>&1 || die "dpkg-deb is not available: cannot unpack QEMU from $SUITE"
. /etc/os-release
[ "${VERSION_CODENAME:-}" = bookworm ] ||
    die "the second QEMU comes from Debian 12's $SUITE; this is ${PRETTY_NAME:-an unknown system}"

# The backports suite, from the mirror the system's own sources already use.
enable_backports() {
    if apt-cache policy 2>/dev/null | grep -q " $SUITE/main "; then
        return
    fi
    # Named in the sources already (perhaps for source packages only): the
    # package lists may just not be fetched yet.
    if grep -rqs --include='*.list' --include='*.sources' "$SUITE" /etc/apt/sources.list /etc/apt/sources.list.d; then
        $SUDO apt-get update -qq
        if apt-cache policy 2>/dev/null | grep -q " $SUITE/main "; then
            return
        fi
    fi
    local uri=""
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        uri=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
    fi
    if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
        uri=$(awk '$1 == "deb" && $3 == "bookworm" {print $2; exit}' /etc/apt/sources.list)
    fi
    [ -n "$uri" ] || die "found no Debian mirror in the apt sources to take $SUITE from"
    local file=/etc/apt/sources.list.d/qmp-rs-$SUITE.sources
    echo "==> enabling $SUITE ($uri) in $file"
    printf '%s\n' "Types: deb" "URIs: $uri" "Suites: $SUITE" "Components: main" \
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" |
        $SUDO tee "$file" >/dev/null
    $SUDO apt-get update -qq
    apt-cache policy 2>/dev/null | grep -q " $SUITE/main " || die "$SUITE is still unknown to apt after enabling it"
}

# Libraries the binaries link against, from the distribution, when missing.
install_libraries() {
    local deps=() missing=() d
    for deb in "$1"/*.deb; do
        for d in $(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed -e 's/(.*)//' -e 's/|.*//' -e 's/ //g'); do
            case $d in lib*) deps+=("$d") ;; esac
        done
    done
    for d in $(printf '%s\n' "${deps[@]}" | sort -u); do
        dpkg-query -W -f '${Status}' "$d" 2>/dev/null | grep -q "ok installed" || missing+=("$d")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "==> installing libraries the second QEMU needs: ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
}

# The emulator looks for ROMs, keymaps and modules where its package would
# have put them; the wrapper points it at the unpacked copies instead.
write_wrappers() {
    mkdir -p "$bin"
    cat >"$bin/qemu-system-x86_64.new" <<EOF
#!/bin/sh
# QEMU from Debian's $SUITE, unpacked in $root.
export QEMU_MODULE_DIR="$root/usr/lib/x86_64-linux-gnu/qemu"
exec "$root/usr/bin/qemu-system-x86_64" -L "$root/usr/share/qemu" -L "$root/usr/share/seabios" "\$@"
EOF
    chmod +x "$bin/qemu-system-x86_64.new"
    mv -f "$bin/qemu-system-x86_64.new" "$bin/qemu-system-x86_64"
    ln -sfn "$root/usr/sbin/qemu-ga" "$bin/qemu-ga"
}

enable_backports
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# apt fetches as its own unprivileged user where it can.
if [ "$(id -u)" -eq 0 ] && id _apt >/dev/null 2>&1; then
    chown _apt "$work"
fi
echo "==> downloading ${PACKAGES[*]} from $SUITE"
(cd "$work" && apt-get download -qq "${PACKAGES[@]/%//$SUITE}") ||
    die "apt-get download from $SUITE failed"
install_libraries "$work"
rm -rf "$root.new"
mkdir -p "$root.new"
for deb in "$work"/*.deb; do
    dpkg-deb -x "$deb" "$root.new"
done
rm -rf "$root"
mv "$root.new" "$root"
write_wrappers

if ! check; then
    missing=$(ldd "$root/usr/bin/qemu-system-x86_64" "$root/usr/sbin/qemu-ga" 2>&1 | grep "not found" || true)
    die "the QEMU unpacked in $cache does not run${missing:+ (missing: $missing)}: $("$bin/qemu-system-x86_64" --version 2>&1 | head -3)"
fi
echo "==> $("$bin/qemu-system-x86_64" --version | head -1), $("$bin/qemu-ga" --version | head -1) in $cache"
report "${1:-}"
