# shellcheck shell=bash
# Common helpers for scripts/linux/*.sh. Source it; do not run it.
#
# Cache root: ${AFTERBURN_CACHE:-$HOME/.cache/afterburn}. Everything these scripts fetch or
# build lives there, outside the repository, so that later runs (and CI on the same machine)
# reuse it. Each finished step writes a stamp file; a step whose stamp exists is skipped.

set -euo pipefail

# shellcheck disable=SC2034  # used by the scripts that source this file
AB_CACHE="${AFTERBURN_CACHE:-$HOME/.cache/afterburn}"
# shellcheck disable=SC2034
AB_LINUX="$AB_CACHE/linux-6.12"
AB_DEBS="$AB_CACHE/debs"
# shellcheck disable=SC2034
AB_SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

ab_log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
ab_die() { printf '[%s] ERROR: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }

# ab_need_pkgs "check:package" ...
# check is either a command name or "file:/path" / "dpkg:" (package installed).
# Installs what is missing with apt-get when running as root, else fails naming the packages.
ab_need_pkgs() {
    local missing=() spec check pkg
    for spec in "$@"; do
        check="${spec%%=*}"
        pkg="${spec#*=}"
        case "$check" in
            dpkg)
                [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" = "install ok installed" ] \
                    || missing+=("$pkg") ;;
            /*)
                [ -e "$check" ] || missing+=("$pkg") ;;
            *)
                command -v "$check" >/dev/null 2>&1 || missing+=("$pkg") ;;
        esac
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    if [ "$(id -u)" -eq 0 ]; then
        ab_log "installing missing packages: ${missing[*]}"
        if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2; then
            ab_log "apt-get install failed; running apt-get update and retrying"
            apt-get update >&2 || ab_die "apt-get update failed"
            DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2 \
                || ab_die "apt-get install -y ${missing[*]} failed"
        fi
    else
        ab_die "missing tools; install them with: sudo apt-get install -y ${missing[*]}"
    fi
}

# Packages needed to build a 6.12 x86-64 kernel out of tree.
ab_need_build_pkgs() {
    ab_need_pkgs gcc=gcc make=make ld=binutils flex=flex bison=bison bc=bc cpio=cpio \
        xz=xz-utils perl=perl python3=python3 \
        /usr/include/libelf.h=libelf-dev /usr/include/openssl/ssl.h=libssl-dev \
        /usr/include/zlib.h=zlib1g-dev /usr/include/stdio.h=libc6-dev pkg-config=pkgconf
}

# Make sure apt knows about a package; refresh the lists once if it does not.
ab_apt_known() {
    local pkg="$1"
    if ! apt-cache show "$pkg" >/dev/null 2>&1; then
        [ "$(id -u)" -eq 0 ] || ab_die "apt does not know $pkg; run: sudo apt-get update"
        ab_log "apt does not know $pkg; running apt-get update"
        apt-get update >&2 || ab_die "apt-get update failed"
        apt-cache show "$pkg" >/dev/null 2>&1 || ab_die "no Debian package named $pkg is available"
    fi
}

# Newest version of a package that apt can download.
ab_newest_version() {
    apt-cache madison "$1" | awk -F'|' '{gsub(/ /,"",$2); print $2}' | sort -V | tail -n1
}

# apt-get download PKG=VERSION into $AB_DEBS; prints the .deb path.
ab_download_deb() {
    local pkg="$1" ver="$2" deb
    mkdir -p "$AB_DEBS"
    deb="$(ls "$AB_DEBS/${pkg}_"*.deb 2>/dev/null | while read -r f; do
        [ "$(dpkg-deb -f "$f" Version)" = "$ver" ] && echo "$f"; done | head -n1)"
    if [ -z "$deb" ]; then
        ab_log "downloading $pkg=$ver into $AB_DEBS"
        (cd "$AB_DEBS" && apt-get download -o APT::Sandbox::User="$(id -un)" "$pkg=$ver" >&2) || ab_die "apt-get download $pkg=$ver failed"
        deb="$(ls "$AB_DEBS/${pkg}_"*.deb | while read -r f; do
            [ "$(dpkg-deb -f "$f" Version)" = "$ver" ] && echo "$f"; done | head -n1)"
        [ -n "$deb" ] || ab_die "apt-get download $pkg=$ver left no .deb in $AB_DEBS"
    fi
    printf '%s\n' "$deb"
}

# Fixed kbuild identity so that two builds (and a relink) print the same banner
# ("Linux version ... (afterburn@afterburn) ... #1 SMP ... Thu Jan  1 00:00:00 UTC 1970") and
# init/version-timestamp.o does not change between links. Every make call in these scripts
# passes these; a caller may override them.
export KBUILD_BUILD_USER="${KBUILD_BUILD_USER:-afterburn}"
export KBUILD_BUILD_HOST="${KBUILD_BUILD_HOST:-afterburn}"
export KBUILD_BUILD_VERSION="${KBUILD_BUILD_VERSION:-1}"
export KBUILD_BUILD_TIMESTAMP="${KBUILD_BUILD_TIMESTAMP:-Thu Jan  1 00:00:00 UTC 1970}"
