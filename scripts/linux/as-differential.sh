#!/usr/bin/env bash
# as-differential.sh [tiny|dwarf]  (default tiny)
#
# Compares the two afterburner front ends on Linux 6.12 (docs/kernel-builds.md):
#
# 1. Sites: every object of the vmlinux link of build-<cfg> (native, made by build.sh) burnt
#    with `afterburner burn`, against the same object of build-<cfg>-as (assembled by
#    `afterburner as`, made by build-as.sh), with `afterburner site-diff` (sites keyed by
#    section, function and instruction bytes, not address; record fields compared too).
# 2. Kernels: the object-route kernel (relink-burnt.sh with `afterburner burn --in-place` into
#    relink-<cfg>-burnt, redone when the afterburner binary changes) and the wrapper-built one
#    boot under QEMU TCG (boot-qemu.sh) to the same normalized log as the native kernel
#    (normalize-boot-log --ignore-sizes: padding changes the image's size and nothing else).
#
# Environment: AFTERBURNER (default: `afterburner` on PATH).
# Writes $AB_LINUX/as-differential-<cfg>/: report (every disagreement, per object; every
# wrapper WARNING), boot-{native,burn,as}.log and their normalized diffs, summary. Prints
#   objects=N compared=N burn_failed=N sites_agree=N sites_disagree=N objects_disagree=N
#   unpadded_objects=N wrapper_warnings=N boot_native=ok|FAIL boot_burn=ok|FAIL
#   boot_as=ok|FAIL log_burn=same|DIFFERENT log_as=same|DIFFERENT
# Both front ends write a `.afterburn` chunk for every object they process (without records when
# it has no sites): an object with a chunk from `burn` but none from the wrapper is counted under
# unpadded_objects (and in objects_disagree, like the reverse). Exit 0 only when no site
# disagrees, no object disagrees, no object failed to burn, the wrapper warned about nothing,
# and all three kernels boot to the same normalized log.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cfg="${1:-tiny}"
case "$cfg" in tiny|dwarf) ;; *) ab_die "usage: $0 [tiny|dwarf]" ;; esac
a="$AB_LINUX/build-$cfg"
b="$AB_LINUX/build-$cfg-as"
r="$AB_LINUX/relink-$cfg-burnt"
ab="${AFTERBURNER:-$(command -v afterburner || true)}"
[ -n "$ab" ] && [ -x "$ab" ] || ab_die "afterburner not found (set AFTERBURNER or put it on PATH)"
ab="$(readlink -f "$ab")"
for d in "$a" "$b"; do
    [ -s "$d/vmlinux" ] && [ -f "$d/.vmlinux.o.cmd" ] || ab_die "$d is not a finished build"
done
out="$AB_LINUX/as-differential-$cfg"
rm -rf "$out"
mkdir -p "$out/burnt"
t0=$(date +%s)

# ---- 1. sites -------------------------------------------------------------------------------
cd "$a"
libs="$(sed -n 's/.*--start-group \(.*\) --end-group.*/\1/p' .vmlinux.o.cmd)"
{ ar t vmlinux.a; for l in $libs; do ar t "$l"; done; } | sort -u >"$out/objects"
warnings="$b/.afterburn-as-warnings"
nwarn=$(grep -c . "$warnings" 2>/dev/null || true)
unp_obj=0
n=0; compared=0; burn_failed=0; agree=0; disagree=0; obj_dis=0
report="$out/report"
: >"$report"
if [ "${nwarn:-0}" -gt 0 ]; then
    sed 's/^/wrapper: /' "$warnings" >>"$report"
fi
while IFS= read -r o; do
    n=$((n + 1))
    t="$out/burnt/$(echo "$o" | tr / _)"
    if ! "$ab" burn "$a/$o" -o "$t" >"$out/burn.log" 2>&1; then
        burn_failed=$((burn_failed + 1))
        { echo "$o: afterburner burn failed:"; cat "$out/burn.log"; } >>"$report"
        continue
    fi
    [ -f "$b/$o" ] || ab_die "$b/$o is missing"
    compared=$((compared + 1))
    res="$("$ab" site-diff "$t" "$b/$o" 2>&1)" && rc=0 || rc=$?
    [ "$rc" -le 1 ] || { echo "$o: site-diff error: $res" >>"$report"; ab_die "site-diff failed on $o: $res"; }
    last="$(printf '%s\n' "$res" | tail -n 1)"
    ag="$(echo "$last" | sed -n 's/^\([0-9]*\) sites agree, \([0-9]*\) disagree$/\1/p')"
    dg="$(echo "$last" | sed -n 's/^\([0-9]*\) sites agree, \([0-9]*\) disagree$/\2/p')"
    [ -n "$ag" ] && [ -n "$dg" ] || ab_die "unexpected site-diff output on $o: $last"
    agree=$((agree + ag)); disagree=$((disagree + dg))
    # Both front ends write a chunk (possibly without records) for every object they process,
    # and none for an object that opts out: the chunks must be there on both sides or neither.
    chunk_b=$(readelf -S -W "$t" | grep -c ' \.afterburn ' || true)
    chunk_w=$(readelf -S -W "$b/$o" | grep -c ' \.afterburn ' || true)
    tag=""
    if [ "$chunk_b" -gt 0 ] && [ "$chunk_w" -eq 0 ]; then
        unp_obj=$((unp_obj + 1)); tag=" (UNPADDED by the wrapper: no .afterburn)"
    elif [ "$chunk_b" -eq 0 ] && [ "$chunk_w" -gt 0 ]; then
        tag=" (.afterburn from the wrapper only)"
    fi
    if [ "$dg" -gt 0 ] || [ -n "$tag" ]; then
        obj_dis=$((obj_dis + 1))
        printf '%s\n' "$res" | sed "s|^|$o$tag: |" >>"$report"
    fi
done <"$out/objects"
t1=$(date +%s)

# ---- 2. kernels ----------------------------------------------------------------------------
key="afterburner=$(sha256sum "$ab" | cut -d' ' -f1)"
if [ -d "$r" ] && [ "$(cat "$r/.afterburn-differential-key" 2>/dev/null)" != "$key" ]; then
    ab_log "removing $r (made with another afterburner)"
    rm -rf "$r"
fi
AFTERBURN_REWRITE="$ab burn --in-place" "$AB_SCRIPTS/relink-burnt.sh" "$a" "$r" >"$out/relink.out" \
    || ab_die "relink-burnt.sh failed (object route); see above"
echo "$key" >"$r/.afterburn-differential-key"
t2=$(date +%s)
norm="$AB_SCRIPTS/normalize-boot-log"
boot() {  # boot NAME BZIMAGE -> ok|FAIL
    if "$AB_SCRIPTS/boot-qemu.sh" "$2" "$out/boot-$1.log" >"$out/boot-$1.out" 2>&1; then
        echo ok
    else
        { echo "boot $1 ($2) failed:"; tail -n 20 "$out/boot-$1.out"; } >>"$report"
        echo FAIL
    fi
}
boot_native=$(boot native "$a/arch/x86/boot/bzImage")
boot_burn=$(boot burn "$r/arch/x86/boot/bzImage")
boot_as=$(boot as "$b/arch/x86/boot/bzImage")
same() {  # same NAME -> same|DIFFERENT (normalized log of NAME against the native one)
    if [ -s "$out/boot-native.log" ] && [ -s "$out/boot-$1.log" ] \
       && diff <("$norm" --ignore-sizes "$out/boot-native.log") \
               <("$norm" --ignore-sizes "$out/boot-$1.log") >"$out/log-$1.diff"; then
        echo same
    else
        { echo "normalized boot log of $1 differs from native:"; head -n 20 "$out/log-$1.diff"; } >>"$report"
        echo DIFFERENT
    fi
}
log_burn=$(same burn)
log_as=$(same as)
t3=$(date +%s)

summary="objects=$n compared=$compared burn_failed=$burn_failed sites_agree=$agree sites_disagree=$disagree objects_disagree=$obj_dis unpadded_objects=$unp_obj wrapper_warnings=${nwarn:-0} boot_native=$boot_native boot_burn=$boot_burn boot_as=$boot_as log_burn=$log_burn log_as=$log_as"
echo "$summary" | tee "$out/summary"
ab_log "sites $((t1 - t0)) s, object-route relink $((t2 - t1)) s, boots $((t3 - t2)) s; report: $report"
[ "$disagree" -eq 0 ] && [ "$obj_dis" -eq 0 ] && [ "$burn_failed" -eq 0 ] && [ "${nwarn:-0}" -eq 0 ] \
    && [ "$boot_native$boot_burn$boot_as" = okokok ] && [ "$log_burn$log_as" = samesame ]
