#!/usr/bin/env bash
# relink-burnt.sh BUILD_DIR OUT_DIR
#
# Copies a finished out-of-tree kernel build (BUILD_DIR, made by build.sh) to OUT_DIR, rewrites
# in place every object file that the kernel links into vmlinux, then lets the kernel's own
# build relink vmlinux.a, vmlinux.o, vmlinux and bzImage from the rewritten objects without
# recompiling any of them. BUILD_DIR is left untouched.
#
# The objects rewritten are exactly the members of the thin archives the vmlinux link reads:
#   vmlinux.a (linked --whole-archive) and the KBUILD_VMLINUX_LIBS archives (lib/lib.a,
#   arch/x86/lib/lib.a), as named in BUILD_DIR/.vmlinux.o.cmd.
# Not rewritten: arch/x86/boot/** (setup code and decompressor: separate images, rebuilt from
# the new vmlinux), arch/x86/realmode/rm/*.o (16-bit trampoline, linked into realmode.bin and
# carried as data by rmpiggy.o), arch/x86/entry/vdso/v*.o (user-space vDSO, carried as data by
# vdso-image-64.o), init/version-timestamp.o (banner data, linked by link-vmlinux.sh),
# vmlinux.o (only for modpost and objtool; the final vmlinux is linked from vmlinux.a),
# host tools (scripts/, tools/).
#
# Environment:
#   AFTERBURN_REWRITE  command run on the objects, object paths appended
#                      (default: "afterburner burn --in-place"); split on blanks
#   AFTERBURN_REWRITE_BATCH  objects per invocation (default 1); JOBS parallel invocations
#                      (default nproc)
#   JOBS               also make -j (default nproc)
# Idempotent: OUT_DIR/.afterburn-relink.stamp records the rewrite command and BUILD_DIR's
# vmlinux (mtime, size); a second run with the same command and the same BUILD_DIR does
# nothing; a different command, a rebuilt BUILD_DIR or a half-done OUT_DIR starts over.
# Fails if make recompiled (and so overwrote) any rewritten object.
# Prints the paths of the new bzImage and vmlinux as the last two lines on stdout.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ $# -eq 2 ] || ab_die "usage: $0 BUILD_DIR OUT_DIR"
build="$(cd "$1" 2>/dev/null && pwd)" || ab_die "BUILD_DIR $1 does not exist"
out_arg="$2"
rewrite="${AFTERBURN_REWRITE:-afterburner burn --in-place}"
batch="${AFTERBURN_REWRITE_BATCH:-1}"
jobs="${JOBS:-$(nproc)}"

for f in .config vmlinux.a vmlinux.o .vmlinux.o.cmd vmlinux arch/x86/boot/bzImage source; do
    [ -e "$build/$f" ] || ab_die "$build is not a finished kernel build: $f is missing"
done
src="$(readlink -f "$build/source")"
[ -f "$src/Makefile" ] || ab_die "$build/source does not point at a kernel source tree"

mkdir -p "$(dirname "$out_arg")"
out="$(cd "$(dirname "$out_arg")" && pwd)/$(basename "$out_arg")"
[ "$out" != "$build" ] || ab_die "OUT_DIR must differ from BUILD_DIR"
stamp="$out/.afterburn-relink.stamp"
marker="$out/.afterburn-relink-dir"

# Identity of the input build: a rebuilt BUILD_DIR has a new vmlinux.
native_id="$(stat -c '%Y %s' "$build/vmlinux")"
if [ -f "$stamp" ] && [ "$(sed -n 1p "$stamp")" = "rewrite=$rewrite" ] \
   && [ "$(sed -n 2p "$stamp")" = "from=$build" ] \
   && [ "$(sed -n 3p "$stamp")" = "native_vmlinux=$native_id" ]; then
    ab_log "already relinked in $out with: $rewrite"
    printf '%s\n%s\n' "$out/arch/x86/boot/bzImage" "$out/vmlinux"
    exit 0
fi
if [ -e "$out" ]; then
    [ -f "$marker" ] || ab_die "$out exists and was not made by $0; remove it or choose another OUT_DIR"
    ab_log "removing stale $out"
    rm -rf "$out"
fi

read -r -a cmd <<<"$rewrite"
[ "${#cmd[@]}" -gt 0 ] || ab_die "AFTERBURN_REWRITE is empty"
command -v "${cmd[0]}" >/dev/null 2>&1 \
    || ab_die "rewrite command '${cmd[0]}' not found (AFTERBURN_REWRITE='$rewrite'); put it on PATH or set AFTERBURN_REWRITE"
ab_need_build_pkgs

t0=$(date +%s)
ab_log "copying $build to $out"
# A full copy, not hard links: tools that rewrite "in place" may write through a hard link
# (binutils objcopy does when a file has more than one link) and would corrupt BUILD_DIR.
cp -a "$build" "$out.tmp.$$" || ab_die "cp -a $build $out.tmp.$$ failed"
touch "$out.tmp.$$/.afterburn-relink-dir"
mv "$out.tmp.$$" "$out"
# tools/objtool's dependency files name the build directory by absolute path; point them at
# the copy so that make finds objtool up to date there.
grep -rlIZ --include='.*.cmd' --include='*.d' -F "$build/" "$out" 2>/dev/null \
    | xargs -0 -r sed -i "s|$build/|$out/|g"

# The objects of the vmlinux link.
cd "$out"
libs="$(sed -n 's/.*--start-group \(.*\) --end-group.*/\1/p' .vmlinux.o.cmd)"
[ -n "$libs" ] || ab_die "$build/.vmlinux.o.cmd has no --start-group ... --end-group (KBUILD_VMLINUX_LIBS)"
objs="$out/.afterburn-objects"
{
    ar t vmlinux.a || ab_die "ar t vmlinux.a failed"
    for l in $libs; do ar t "$l" || ab_die "ar t $l failed"; done
} | sort -u >"$objs"
n=$(wc -l <"$objs")
[ "$n" -gt 0 ] || ab_die "no objects found in vmlinux.a and $libs"
while IFS= read -r o; do
    case "$o" in *.o) ;; *) ab_die "unexpected archive member $o (not a .o)" ;; esac
    [ -f "$o" ] || ab_die "archive member $o is missing from $out"
done <"$objs"
ab_log "$n objects in the vmlinux link (vmlinux.a $libs)"

# Rewrite them.
t1=$(date +%s)
ab_log "rewriting $n objects with: $rewrite"
export AB_REWRITE="$rewrite"
# shellcheck disable=SC2016
tr '\n' '\0' <"$objs" | xargs -0 -r -n "$batch" -P "$jobs" bash -c \
    'read -r -a c <<<"$AB_REWRITE"; "${c[@]}" "$@" || { echo "[relink-burnt.sh] rewrite failed (exit $?) on: $*" >&2; exit 1; }' _ \
    || ab_die "rewrite command failed (AFTERBURN_REWRITE='$rewrite'); objects named above; half-done copy left in $out"
# Make every rewritten object newer than the archives that hold it, so kbuild re-creates
# the archives (and lib.a's symbol index) even if the rewrite kept mtimes.
tr '\n' '\0' <"$objs" | xargs -0 touch
t2=$(date +%s)
tr '\n' '\0' <"$objs" | xargs -0 sha256sum >"$out/.afterburn-objects.sha256"
touch "$out/.afterburn-relink-start"
sleep 1

# Relink with the kernel's own build: kbuild sees each .o newer than its .c/.S and with an
# unchanged command line (.*.o.cmd), so it only re-archives and relinks.
ab_log "relinking: make -C $src O=$out ARCH=x86_64 -j$jobs all (log: $out/.afterburn-relink.log)"
if ! make -C "$src" O="$out" ARCH=x86_64 -j"$jobs" all >"$out/.afterburn-relink.log" 2>&1; then
    tail -n 30 "$out/.afterburn-relink.log" >&2
    ab_die "relink failed; full log: $out/.afterburn-relink.log"
fi
t3=$(date +%s)

# No rewritten object may have been rebuilt.
if ! sha256sum --quiet -c "$out/.afterburn-objects.sha256" >"$out/.afterburn-recompiled" 2>&1; then
    cat "$out/.afterburn-recompiled" >&2
    ab_die "make rebuilt rewritten objects (listed above); the relink did not use them"
fi
# Everything compiled or assembled during the relink (expected: arch/x86/boot/** only).
grep -E '^  (CC|AS)  ' "$out/.afterburn-relink.log" | awk '{print $2}' | sort >"$out/.afterburn-compiled" || true
unexpected="$(grep -vE '^arch/x86/boot/' "$out/.afterburn-compiled" || true)"
[ -z "$unexpected" ] || ab_die "the relink compiled outside arch/x86/boot/: $(echo $unexpected)"
for f in vmlinux arch/x86/boot/bzImage vmlinux.o; do
    [ "$f" -nt "$out/.afterburn-relink-start" ] || ab_die "$out/$f was not relinked"
done

{
    echo "rewrite=$rewrite"
    echo "from=$build"
    echo "native_vmlinux=$native_id"
    echo "objects=$n"
    echo "copy_seconds=$((t1 - t0))"
    echo "rewrite_seconds=$((t2 - t1))"
    echo "relink_seconds=$((t3 - t2))"
    echo "compiled_during_relink=$(wc -l <"$out/.afterburn-compiled") (arch/x86/boot only)"
} >"$stamp.tmp"
mv "$stamp.tmp" "$stamp"
ab_log "relinked $n rewritten objects: copy $((t1 - t0)) s, rewrite $((t2 - t1)) s, relink $((t3 - t2)) s"
printf '%s\n%s\n' "$out/arch/x86/boot/bzImage" "$out/vmlinux"
