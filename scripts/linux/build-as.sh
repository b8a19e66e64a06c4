#!/usr/bin/env bash
# build-as.sh [tiny|dwarf]  (default tiny)
#
# Builds Linux 6.12 afterburnt through the assembler wrapper: an out-of-tree build in
# $AB_LINUX/build-<cfg>-as with the .config of build-<cfg> (made by build.sh), compiled with
# CC="gcc -B $AB_LINUX/as-shim/" so that every C and .S file (inline assembly included) is
# assembled by `afterburner as` (docs/kernel-builds.md).
#
# Code that is not part of the kernel image is assembled by plain `as` (AFTERBURNER_AS_SKIP,
# the same objects relink-burnt.sh leaves alone on the object route): the real-mode setup code
# and decompressor (arch/x86/boot/), the real-mode trampoline (arch/x86/realmode/rm/) and the
# user-space vDSO objects (arch/x86/entry/vdso/: the objects linked into vdso64.so, vdso32/).
#
# Environment: AFTERBURNER (default: `afterburner` on PATH) the afterburner binary;
# JOBS (default nproc) make -j.
# Writes $out/.afterburn-build.log (full make output), $out/.afterburn-as-warnings (every
# `afterburner as: WARNING` line: inputs assembled unpadded; expected empty) and
# $out/.afterburn-build-info (what the build was keyed by, and its duration).
# Cached: $AB_LINUX/.build-<cfg>-as.stamp holds the key (sha256 of the afterburner binary,
# kernel source version, sha256 of build-<cfg>/.config and of this script); a build with the
# same key is not redone. Prints the paths of the bzImage and vmlinux as the last two lines.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cfg="${1:-tiny}"
case "$cfg" in tiny|dwarf) ;; *) ab_die "usage: $0 [tiny|dwarf]" ;; esac
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
key="afterburner=$(sha256sum "$ab" | cut -d' ' -f1)
source=$(cat "$AB_LINUX/source-version" 2>/dev/null || echo unknown)
config=$(sha256sum "$base/.config" | cut -d' ' -f1)
script=$(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ] && [ -s "$out/arch/x86/boot/bzImage" ]; then
    ab_log "already built with this afterburner, source, config and script: $out"
    printf '%s\n%s\n' "$out/arch/x86/boot/bzImage" "$out/vmlinux"
    exit 0
fi
ab_need_build_pkgs
# The shim runs a private copy of the binary, so that rebuilding the afterburner during the
# build cannot mix two versions into one kernel.
shim="$AB_LINUX/as-shim"
mkdir -p "$shim"
cp "$ab" "$shim/afterburner.tmp" && mv "$shim/afterburner.tmp" "$shim/afterburner" \
    || ab_die "cannot copy $ab to $shim"
"$shim/afterburner" install-as "$shim" >/dev/null || ab_die "afterburner install-as $shim failed"
export AFTERBURNER_AS_SKIP="arch/x86/boot/* arch/x86/realmode/rm/*
 arch/x86/entry/vdso/vdso-note.o arch/x86/entry/vdso/vclock_gettime.o
 arch/x86/entry/vdso/vgetcpu.o arch/x86/entry/vdso/vgetrandom.o
 arch/x86/entry/vdso/vgetrandom-chacha.o arch/x86/entry/vdso/vsgx.o
 arch/x86/entry/vdso/vdso32/*"
unset AFTERBURNER_AS_STRICT AFTERBURNER_AS_KEEP
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
{ grep -h 'afterburner as: WARNING' "$out/.afterburn-config.log" "$out/.afterburn-build.log" || true; } \
    | sort -u >"$out/.afterburn-as-warnings"
for f in arch/x86/boot/bzImage vmlinux vmlinux.o vmlinux.a; do
    [ -s "$out/$f" ] || ab_die "build finished but $out/$f is missing"
done
printf '%s\nduration_seconds=%s\njobs=%s\nwarnings=%s\n' "$key" "$((t1 - t0))" "$jobs" \
    "$(wc -l <"$out/.afterburn-as-warnings")" >"$out/.afterburn-build-info"
ab_log "built in $((t1 - t0)) s; $(wc -l <"$out/.afterburn-as-warnings") input(s) assembled UNPADDED (listed in $out/.afterburn-as-warnings)"
echo "$key" >"$stamp"
printf '%s\n%s\n' "$out/arch/x86/boot/bzImage" "$out/vmlinux"
