#!/usr/bin/env bash
# Fetch Debian's linux-source-6.12 (newest version apt offers) and unpack it into
#   $AB_CACHE/linux-6.12/src
# Writes $AB_CACHE/linux-6.12/source-version (the exact Debian version) and the stamp
# $AB_CACHE/linux-6.12/.src.stamp. A second run with the stamp present does nothing.
# Set AFTERBURN_LINUX_SOURCE_VERSION to pin a version instead of taking the newest.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

stamp="$AB_LINUX/.src.stamp"
if [ -f "$stamp" ]; then
    ab_log "source already unpacked: $AB_LINUX/src (linux-source-6.12 $(cat "$AB_LINUX/source-version"))"
    exit 0
fi

ab_need_pkgs apt-get=apt dpkg-deb=dpkg tar=tar xz=xz-utils
ab_need_build_pkgs

pkg=linux-source-6.12
ab_apt_known "$pkg"
ver="${AFTERBURN_LINUX_SOURCE_VERSION:-$(ab_newest_version "$pkg")}"
[ -n "$ver" ] || ab_die "could not find a version of $pkg"
ab_log "$pkg version $ver"
deb="$(ab_download_deb "$pkg" "$ver")"

mkdir -p "$AB_LINUX"
tmp="$(mktemp -d "$AB_LINUX/.fetch.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
ab_log "extracting $deb"
dpkg-deb -x "$deb" "$tmp/deb" || ab_die "dpkg-deb -x $deb failed"
tarball="$(ls "$tmp"/deb/usr/src/linux-source-6.12.tar.* 2>/dev/null | head -n1)"
[ -n "$tarball" ] || ab_die "$deb holds no usr/src/linux-source-6.12.tar.*"
ab_log "unpacking $(basename "$tarball")"
mkdir -p "$tmp/src"
tar -xf "$tarball" -C "$tmp/src" --strip-components=1 || ab_die "tar -xf $tarball failed"
[ -f "$tmp/src/Makefile" ] && [ -d "$tmp/src/arch/x86" ] || ab_die "unpacked tree in $tmp/src is not a kernel tree"
kver="$(make -s -C "$tmp/src" kernelversion)"
case "$kver" in 6.12.*) ;; *) ab_die "unpacked kernel reports version '$kver', expected 6.12.*" ;; esac

rm -rf "$AB_LINUX/src"
mv "$tmp/src" "$AB_LINUX/src"
printf '%s\n' "$ver" > "$AB_LINUX/source-version"
printf '%s\n' "$kver" > "$AB_LINUX/kernel-version"
date -u +%FT%TZ > "$stamp"
ab_log "done: $AB_LINUX/src (Debian $pkg $ver, kernel $kver)"
