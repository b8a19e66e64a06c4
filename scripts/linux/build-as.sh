#!/usr/bin/env bash
# build-as.sh [tiny]
#
# Builds Linux 6.12 afterburnt through the assembler wrapper: an out-of-tree build in
# $AB_LINUX/build-<cfg>-as with the .config of build-<cfg> (made by build.sh), compiled with
# CC="gcc -B $AB_LINUX/as-shim/" so that every C and .S file (inline assembly included) is
# assembled by `afterburner as` (docs/kernel-builds.md).
#
# Environment: AFTERBURNER (default: `afterburner` on PATH) the afterburner binary;
# JOBS (default nproc) make -j.
# Writes $out/.afterburn-build.log (full make output) and $out/.afterburn-as-warnings (every
# `afterburner as: WARNING` line: inputs assembled unpadded) and prints their count.
# Idempotent: $AB_LINUX/.build-<cfg>-as.stamp holds the afterburner's checksum.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cfg="${1:-tiny}"
base="$AB_LINUX/build-$cfg"
out="$AB_LINUX/build-$cfg-as"
stamp="$AB_LINUX/.build-$cfg-as.stamp"
src="$AB_LINUX/src"
jobs="${JOBS:-$(nproc)}"
ab="${AFTERBURNER:-$(command -v afterburner || true)}"
[ -n "$ab" ] && [ -x "$ab" ] || ab_die "afterburner not found (set AFTERBURNER or put it on PATH)"
ab="$(readlink -f "$ab")"
[ -f "$base/.config" ] || ab_die "$base/.config missing: run scripts/linux/build.sh $cfg first"
[ -f "$src/Makefile" ] || ab_die "$src is not a kernel source tree: run scripts/linux/fetch-source.sh"
id="$(sha256sum "$ab" | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$id" ] && [ -s "$out/arch/x86/boot/bzImage" ]; then
    ab_log "already built with this afterburner: $out"
    printf '%s\n%s\n' "$out/arch/x86/boot/bzImage" "$out/vmlinux"
    exit 0
fi
ab_need_build_pkgs
shim="$AB_LINUX/as-shim"
"$ab" install-as "$shim" >/dev/null || ab_die "afterburner install-as $shim failed"
rm -rf "$out" "$stamp"
mkdir -p "$out"
cp "$base/.config" "$out/.config"
mk() { make -C "$src" O="$out" ARCH=x86_64 CC="gcc -B $shim/" "$@"; }
mk olddefconfig >"$out/.afterburn-config.log" 2>&1 || ab_die "make olddefconfig failed; see $out/.afterburn-config.log"
cmp -s <(grep '^CONFIG_' "$base/.config" | grep -v CC_VERSION_TEXT) \
       <(grep '^CONFIG_' "$out/.config" | grep -v CC_VERSION_TEXT) \
    || ab_die "$out/.config differs from $base/.config after olddefconfig"
t0=$(date +%s)
ab_log "building $cfg through afterburner as, make -j$jobs (log: $out/.afterburn-build.log)"
if ! mk -j"$jobs" all >"$out/.afterburn-build.log" 2>&1; then
    tail -n 30 "$out/.afterburn-build.log" >&2
    ab_die "kernel build ($cfg, afterburner as) failed; full log: $out/.afterburn-build.log"
fi
t1=$(date +%s)
grep 'afterburner as: WARNING' "$out/.afterburn-build.log" | sort -u >"$out/.afterburn-as-warnings" || true
for f in arch/x86/boot/bzImage vmlinux vmlinux.o vmlinux.a; do
    [ -s "$out/$f" ] || ab_die "build finished but $out/$f is missing"
done
ab_log "built in $((t1 - t0)) s; $(wc -l <"$out/.afterburn-as-warnings") input(s) assembled UNPADDED (listed in $out/.afterburn-as-warnings)"
echo "$id" >"$stamp"
printf '%s\n%s\n' "$out/arch/x86/boot/bzImage" "$out/vmlinux"
