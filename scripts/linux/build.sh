#!/usr/bin/env bash
# Build Linux 6.12 for x86-64 out of tree in one of two configurations:
#   tiny   tinyconfig + 64BIT PRINTK TTY SERIAL_8250 SERIAL_8250_CONSOLE EARLY_PRINTK
#   dwarf  tiny + DEBUG_KERNEL DEBUG_INFO DEBUG_INFO_DWARF5 UNWINDER_ORC JUMP_LABEL DEBUG_ENTRY
# into $AB_CACHE/linux-6.12/build-<config> (make O=...). Produces arch/x86/boot/bzImage and
# vmlinux there. Writes build-<config>/.afterburn-build-info (versions, duration) and the stamp
# $AB_CACHE/linux-6.12/.build-<config>.stamp; with the stamp present it does nothing.
# Fetches the source first (fetch-source.sh) when needed.
# JOBS (default: nproc) sets make -j.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cfg="${1:-}"
case "$cfg" in
    tiny|dwarf) ;;
    *) ab_die "usage: $0 tiny|dwarf" ;;
esac

src="$AB_LINUX/src"
out="$AB_LINUX/build-$cfg"
stamp="$AB_LINUX/.build-$cfg.stamp"
if [ -f "$stamp" ]; then
    ab_log "already built: $out/arch/x86/boot/bzImage and $out/vmlinux"
    exit 0
fi

"$AB_SCRIPTS/fetch-source.sh"
ab_need_build_pkgs
jobs="${JOBS:-$(nproc)}"

# Options switched on (scripts/config -e) and off (-d), then checked after olddefconfig.
on=(64BIT PRINTK TTY SERIAL_8250 SERIAL_8250_CONSOLE EARLY_PRINTK)
off=()
if [ "$cfg" = dwarf ]; then
    # DEBUG_INFO_DWARF5 sits in a choice that depends on DEBUG_KERNEL and selects DEBUG_INFO.
    # UNWINDER_ORC replaces tinyconfig's UNWINDER_GUESS (a choice). JUMP_LABEL selects OBJTOOL.
    # DEBUG_ENTRY turns on NOINSTR_VALIDATION, which makes kbuild run objtool on vmlinux.o
    # (scripts/Makefile.vmlinux_o), the whole-kernel objtool step benchmarks compare against.
    on+=(DEBUG_KERNEL DEBUG_INFO DEBUG_INFO_DWARF5 UNWINDER_ORC JUMP_LABEL DEBUG_ENTRY
         NOINSTR_VALIDATION OBJTOOL)
    off+=(DEBUG_INFO_NONE DEBUG_INFO_DWARF_TOOLCHAIN_DEFAULT DEBUG_INFO_DWARF4 UNWINDER_GUESS
          UNWINDER_FRAME_POINTER)
fi

rm -rf "$out"
mkdir -p "$out"
mk() { make -C "$src" O="$out" ARCH=x86_64 "$@"; }

start=$(date +%s)
ab_log "configuring $cfg in $out"
mk tinyconfig >"$out/.afterburn-config.log" 2>&1 || ab_die "make tinyconfig failed; see $out/.afterburn-config.log"
args=()
for o in "${on[@]}"; do
    case "$o" in DEBUG_INFO|NOINSTR_VALIDATION|OBJTOOL) continue ;; esac  # selected, no prompt
    args+=(-e "$o")
done
for o in "${off[@]}"; do args+=(-d "$o"); done
"$src/scripts/config" --file "$out/.config" "${args[@]}"
mk olddefconfig >>"$out/.afterburn-config.log" 2>&1 || ab_die "make olddefconfig failed; see $out/.afterburn-config.log"

bad=0
for o in "${on[@]}"; do
    grep -qx "CONFIG_$o=y" "$out/.config" || { ab_log "CONFIG_$o is not =y in $out/.config after olddefconfig"; bad=1; }
done
for o in "${off[@]}"; do
    if grep -qx "CONFIG_$o=y" "$out/.config"; then ab_log "CONFIG_$o is still =y in $out/.config"; bad=1; fi
done
[ "$bad" -eq 0 ] || ab_die "configuration $cfg did not come out as asked (see above)"
ab_log "config ok: ${on[*]} =y${off:+; ${off[*]} off}"

ab_log "building $cfg with make -j$jobs (log: $out/.afterburn-build.log)"
if ! mk -j"$jobs" all >"$out/.afterburn-build.log" 2>&1; then
    tail -n 30 "$out/.afterburn-build.log" >&2
    ab_die "kernel build ($cfg) failed; full log: $out/.afterburn-build.log"
fi
end=$(date +%s)
for f in arch/x86/boot/bzImage vmlinux vmlinux.o vmlinux.a; do
    [ -s "$out/$f" ] || ab_die "build finished but $out/$f is missing"
done

{
    echo "config=$cfg"
    echo "debian_source_version=$(cat "$AB_LINUX/source-version")"
    echo "kernel_version=$(cat "$AB_LINUX/kernel-version")"
    echo "gcc=$(gcc --version | head -n1)"
    echo "ld=$(ld --version | head -n1)"
    echo "jobs=$jobs"
    echo "build_seconds=$((end - start))"
    echo "built_at=$(date -u +%FT%TZ)"
} >"$out/.afterburn-build-info"
date -u +%FT%TZ >"$stamp"
ab_log "done in $((end - start)) s: $out/arch/x86/boot/bzImage, $out/vmlinux"
