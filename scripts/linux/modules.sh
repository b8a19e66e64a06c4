#!/usr/bin/env bash
# Fetch Debian's newest linux-image-6.12.*-amd64-unsigned package and unpack its modules,
# decompressed (.ko.xz -> .ko), into
#   $AB_CACHE/modules/<kernel release>/     e.g. modules/6.12.117+deb12-amd64/kernel/fs/ext4/ext4.ko
# plus package-version (exact Debian version), config (the kernel's .config) and module-count.
# Stamp: $AB_CACHE/modules/<kernel release>/.stamp; a run with the stamp present does nothing.
# Prints the module directory on stdout as its last line.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ab_need_pkgs apt-get=apt apt-cache=apt dpkg-deb=dpkg xz=xz-utils find=findutils xargs=findutils

re='^linux-image-6\.12\.[0-9]+\+deb[0-9]+-amd64-unsigned$'
list() { apt-cache search --names-only '^linux-image-6\.12\.' | awk '{print $1}' | grep -E "$re" || true; }
pkgs="$(list)"
if [ -z "$pkgs" ]; then
    ab_apt_known linux-image-amd64
    pkgs="$(list)"
fi
[ -n "$pkgs" ] || ab_die "apt knows no package matching $re"
pkg="${AFTERBURN_MODULES_PACKAGE:-$(printf '%s\n' "$pkgs" | sort -V | tail -n1)}"
krel="${pkg#linux-image-}"; krel="${krel%-unsigned}"       # 6.12.117+deb12-amd64
dest="$AB_CACHE/modules/$krel"
if [ -f "$dest/.stamp" ]; then
    ab_log "already unpacked: $dest ($(cat "$dest/module-count") modules, $pkg $(cat "$dest/package-version"))"
    printf '%s\n' "$dest"
    exit 0
fi

ver="$(ab_newest_version "$pkg")"
[ -n "$ver" ] || ab_die "no downloadable version of $pkg"
ab_log "$pkg version $ver"
deb="$(ab_download_deb "$pkg" "$ver")"

mkdir -p "$AB_CACHE/modules"
tmp="$(mktemp -d "$AB_CACHE/modules/.unpack.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
ab_log "extracting $deb"
dpkg-deb -x "$deb" "$tmp/deb" || ab_die "dpkg-deb -x $deb failed"
mdir="$tmp/deb/lib/modules/$krel"
[ -d "$mdir/kernel" ] || ab_die "$deb has no lib/modules/$krel/kernel"
mkdir -p "$tmp/out"
mv "$mdir/kernel" "$tmp/out/kernel"
cp "$tmp/deb/boot/config-$krel" "$tmp/out/config" || ab_die "$deb has no boot/config-$krel"

nxz="$(find "$tmp/out/kernel" -name '*.ko.xz' | wc -l)"
ab_log "decompressing $nxz .ko.xz files"
find "$tmp/out/kernel" -name '*.ko.xz' -print0 | xargs -0 -r -n 64 -P "$(nproc)" xz -d \
    || ab_die "xz -d failed on some module in $tmp/out/kernel"
left="$(find "$tmp/out/kernel" -name '*.ko.xz' | wc -l)"
[ "$left" -eq 0 ] || ab_die "$left .ko.xz files were not decompressed"
count="$(find "$tmp/out/kernel" -name '*.ko' | wc -l)"
[ "$count" -gt 0 ] || ab_die "no .ko files after unpacking $deb"
# Every module must be a relocatable x86-64 ELF.
python3 - "$tmp/out/kernel" <<'PY' || ab_die "some .ko is not an ELF64 x86-64 relocatable (see above)"
import os, sys
bad = 0
for root, _, files in os.walk(sys.argv[1]):
    for f in files:
        if not f.endswith(".ko"):
            continue
        p = os.path.join(root, f)
        with open(p, "rb") as fh:
            h = fh.read(20)
        # e_ident: ELF magic, ELFCLASS64, ELFDATA2LSB; e_type ET_REL (1); e_machine EM_X86_64 (62)
        if not (len(h) == 20 and h[:4] == b"\x7fELF" and h[4] == 2 and h[5] == 1
                and int.from_bytes(h[16:18], "little") == 1 and int.from_bytes(h[18:20], "little") == 62):
            print(f"not an x86-64 ET_REL ELF: {p}", file=sys.stderr)
            bad += 1
sys.exit(1 if bad else 0)
PY
printf '%s\n' "$ver" >"$tmp/out/package-version"
printf '%s\n' "$pkg" >"$tmp/out/package"
printf '%s\n' "$count" >"$tmp/out/module-count"
rm -rf "$dest"
mv "$tmp/out" "$dest"
date -u +%FT%TZ >"$dest/.stamp"
ab_log "done: $count modules in $dest ($pkg $ver)"
printf '%s\n' "$dest"
