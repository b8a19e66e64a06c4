#!/usr/bin/env bash
# as-differential.sh [tiny]
#
# Compares the two afterburner front ends on Linux 6.12: every object of the vmlinux link of
# build-<cfg> (native, made by build.sh) burnt with `afterburner burn`, against the same object
# of build-<cfg>-as (assembled by `afterburner as`, made by build-as.sh), with
# `afterburner site-diff` (sites by section, function and instruction bytes, not address).
#
# Environment: AFTERBURNER (default: `afterburner` on PATH).
# Writes $AB_LINUX/as-differential-<cfg>/report (every disagreement, per object) and prints
#   objects=N compared=N burn_failed=N sites_agree=N sites_disagree=N objects_disagree=N
#   unpadded_objects=N unpadded_sites=N wrapper_warnings=N
# An object the wrapper assembled UNPADDED (named by "(output OBJ)" in its WARNING line in
# build-<cfg>-as/.afterburn-as-warnings; for warnings without it, an object of build-<cfg>-as
# without any .afterburn section) is counted under unpadded_*: its sites are missing on the
# assembler route by the wrapper's own loud admission, not by disagreement.
# Exit 0 when no other site disagrees, 1 otherwise.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cfg="${1:-tiny}"
a="$AB_LINUX/build-$cfg"
b="$AB_LINUX/build-$cfg-as"
ab="${AFTERBURNER:-$(command -v afterburner || true)}"
[ -n "$ab" ] && [ -x "$ab" ] || ab_die "afterburner not found (set AFTERBURNER or put it on PATH)"
for d in "$a" "$b"; do
    [ -s "$d/vmlinux" ] && [ -f "$d/.vmlinux.o.cmd" ] || ab_die "$d is not a finished build"
done
out="$AB_LINUX/as-differential-$cfg"
rm -rf "$out"
mkdir -p "$out/burnt"
cd "$a"
libs="$(sed -n 's/.*--start-group \(.*\) --end-group.*/\1/p' .vmlinux.o.cmd)"
{ ar t vmlinux.a; for l in $libs; do ar t "$l"; done; } | sort -u >"$out/objects"
warnings="$b/.afterburn-as-warnings"
known="$out/unpadded-outputs"
sed -n 's/.*(output \(.*\))$/\1/p' "$warnings" 2>/dev/null | sed "s|^$b/||" | sort -u >"$known" || true
legacy=$(grep -vc '(output ' "$warnings" 2>/dev/null || true)
unp_obj=0; unp_sites=0
n=0; compared=0; burn_failed=0; agree=0; disagree=0; obj_dis=0
report="$out/report"
: >"$report"
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
    if [ "$dg" -gt 0 ] && ! grep -q '^only in B\|^differ' <<<"$res" \
       && { grep -qxF "$o" "$known" || { [ "${legacy:-0}" -gt 0 ] && ! readelf -S "$b/$o" | grep -q ' \.afterburn '; }; }; then
        unp_obj=$((unp_obj + 1)); unp_sites=$((unp_sites + dg)); disagree=$((disagree - dg))
        printf '%s\n' "$res" | sed "s|^|$o (UNPADDED by the wrapper): |" >>"$report"
    elif [ "$dg" -gt 0 ]; then
        obj_dis=$((obj_dis + 1))
        printf '%s\n' "$res" | sed "s|^|$o: |" >>"$report"
    fi
done <"$out/objects"
nwarn=$(wc -l <"$warnings" 2>/dev/null || echo 0)
echo "objects=$n compared=$compared burn_failed=$burn_failed sites_agree=$agree sites_disagree=$disagree objects_disagree=$obj_dis unpadded_objects=$unp_obj unpadded_sites=$unp_sites wrapper_warnings=$nwarn" | tee "$out/summary"
ab_log "report: $report"
[ "$disagree" -eq 0 ]
