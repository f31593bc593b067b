#!/usr/bin/env bash
# Fetches QEMU's QAPI schemas (qapi/ and qga/) for the two QEMU versions the
# generated typed surface (qmp-qapi) covers, from Debian's source packages:
#
#   7.2   Debian 12 (bookworm)          qemu 1:7.2+dfsg-*
#   10.0  bookworm-backports            qemu 1:10.0.*
#
# Only the upstream tarball (.orig.tar.xz) is needed: `apt-get source
# --download-only` fetches it, and where a suite lacks the .dsc the tarball is
# fetched straight from the pool. Only qapi/ and qga/ are extracted, into a
# cache outside the repository:
#
#   ${QAPI_SCHEMA_DIR:-$HOME/.cache/qmp-rs/qapi}/7.2
#   ${QAPI_SCHEMA_DIR:-$HOME/.cache/qmp-rs/qapi}/10.0
#
# Idempotent: a version whose directory is complete is left alone. Pin a
# version with QEMU_72_VERSION / QEMU_100_VERSION (a full Debian version);
# by default the newest one the suite offers with the right prefix is used.
# The chosen version and the tarball's sha256 are written next to the schemas
# (SOURCE), so a run can be compared with another.
set -euo pipefail

DEST="${QAPI_SCHEMA_DIR:-$HOME/.cache/qmp-rs/qapi}"
SRC_LIST=/etc/apt/sources.list.d/qmp-rs-deb-src.sources

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

die() { echo "error: $*" >&2; exit 1; }

complete() { [ -f "$1/qapi/qapi-schema.json" ] && [ -f "$1/qga/qapi-schema.json" ] && [ -f "$1/SOURCE" ]; }

# The Debian mirror the machine already uses, so no new host is contacted.
mirror() {
    local uri=""
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        uri=$(awk '/^URIs:/ {print $2}' /etc/apt/sources.list.d/debian.sources \
            | grep -v -- '-security' | head -n1 || true)
    fi
    if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
        uri=$(awk '$1 == "deb" && $3 !~ /security/ {print $2}' /etc/apt/sources.list | head -n1 || true)
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}

keyring() {
    local k=/usr/share/keyrings/debian-archive-keyring.gpg
    [ -f "$k" ] && echo "Signed-By: $k"
    return 0
}

has_deb_src() {
    # $1: suite. True when some configured source already offers its sources.
    local files=()
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] && files+=("$f")
    done
    [ ${#files[@]} -gt 0 ] || return 1
    grep -hE '^deb-src .* '"$1"'( |$)' "${files[@]}" >/dev/null 2>&1 && return 0
    # deb822: a stanza with Types: deb-src and the suite listed.
    awk -v suite="$1" '
        BEGIN { RS=""; found=0 }
        /Types:[^\n]*deb-src/ && match($0, /Suites:[^\n]*/) {
            n = split(substr($0, RSTART + 7, RLENGTH - 7), s, " ")
            for (i = 1; i <= n; i++) if (s[i] == suite) found = 1
        }
        END { exit !found }' "${files[@]}" 2>/dev/null
}

ensure_sources() {
    local missing=() suite
    for suite in bookworm bookworm-backports; do
        has_deb_src "$suite" || missing+=("$suite")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "==> adding deb-src entries for ${missing[*]} ($SRC_LIST)"
        {
            echo "# Source packages, for scripts/fetch-schemas.sh of qmp-rs."
            echo "Types: deb-src"
            echo "URIs: $(mirror)"
            echo "Suites: ${missing[*]}"
            echo "Components: main"
            keyring
        } | $SUDO tee "$SRC_LIST" >/dev/null
        NEED_UPDATE=1
    fi
    if [ "${NEED_UPDATE:-0}" = 1 ] || ! apt-cache showsrc qemu 2>/dev/null | grep -q '^Version: 1:10\.0'; then
        echo "==> apt-get update"
        $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
        NEED_UPDATE=0
    fi
}

# Newest source version of qemu whose version starts with $1.
pick_version() {
    apt-cache showsrc qemu 2>/dev/null | awk '/^Version:/ {print $2}' \
        | grep -E "^$(printf '%s' "$1" | sed 's/[.+]/\\&/g')" \
        | sort -V | tail -n1
}

# Upstream part of a Debian version: 1:7.2+dfsg-7+deb12u18 -> 7.2+dfsg.
upstream() { local v="${1#*:}"; echo "${v%-*}"; }

fetch_tarball() {
    # $1: full version, $2: work dir. Prints the tarball path.
    local version="$1" work="$2" up tarball
    up=$(upstream "$version")
    tarball="$work/qemu_${up}.orig.tar.xz"
    if [ ! -f "$tarball" ]; then
        (cd "$work" && apt-get source --download-only -qq "qemu=$version" >&2) || true
    fi
    if [ ! -f "$tarball" ]; then
        # No .dsc in the suite: the upstream tarball is still in the pool.
        echo "==> apt-get source failed for $version; fetching the tarball from the pool" >&2
        command -v curl >/dev/null || die "curl is needed to fetch $tarball"
        curl -fsSL -o "$tarball.part" "$(mirror)/pool/main/q/qemu/qemu_${up}.orig.tar.xz"
        mv "$tarball.part" "$tarball"
    fi
    echo "$tarball"
}

extract() {
    # $1: tarball, $2: destination directory.
    local tarball="$1" out="$2" tmp top
    tmp="$out.tmp"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    # The tarball's top directory (qemu-7.2/ or similar); only its qapi/ and
    # qga/ are wanted, not the qapi/ directories elsewhere in the tree.
    top=$(tar -tJf "$tarball" 2>/dev/null | head -n1 | cut -d/ -f1 || true)
    [ -n "$top" ] || die "cannot list $tarball"
    tar -xJf "$tarball" -C "$tmp" --strip-components=1 "$top/qapi" "$top/qga"
    [ -f "$tmp/qapi/qapi-schema.json" ] || die "$tarball has no qapi/qapi-schema.json"
    [ -f "$tmp/qga/qapi-schema.json" ] || die "$tarball has no qga/qapi-schema.json"
    rm -rf "$out"
    mv "$tmp" "$out"
}

fetch_one() {
    # $1: short name (7.2), $2: version prefix, $3: pinned version (may be empty).
    local short="$1" prefix="$2" version="$3" out="$DEST/$1" work tarball
    if complete "$out"; then
        echo "==> $short: present ($(head -n1 "$out/SOURCE"))"
        return
    fi
    ensure_sources
    [ -n "$version" ] || version=$(pick_version "$prefix")
    [ -n "$version" ] || die "no qemu source version $prefix* in the configured suites"
    work="$DEST/.download"
    mkdir -p "$work"
    echo "==> $short: qemu $version"
    tarball=$(fetch_tarball "$version" "$work")
    extract "$tarball" "$out"
    {
        echo "qemu $version"
        echo "sha256 $(sha256sum "$tarball" | cut -d' ' -f1)  $(basename "$tarball")"
    } >"$out/SOURCE"
    echo "==> $short: schemas in $out"
}

mkdir -p "$DEST"
fetch_one 7.2 "1:7.2+dfsg-" "${QEMU_72_VERSION:-}"
fetch_one 10.0 "1:10.0." "${QEMU_100_VERSION:-}"
# The tarballs are only needed to extract; keep the cache small.
rm -rf "$DEST/.download"
echo "QAPI_SCHEMA_DIR=$DEST"
