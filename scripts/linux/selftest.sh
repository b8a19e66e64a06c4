#!/usr/bin/env bash
# selftest.sh [tiny|dwarf]  (default tiny)
# End-to-end check of the corpus scripts on one configuration: fetch + build (cached), boot the
# native bzImage twice under QEMU TCG and compare the normalized logs, relink a copy whose
# vmlinux objects were rewritten by standin-rewrite.sh, check every rewritten object and
# vmlinux carry the stand-in section, that the loaded image is unchanged apart from the
# build ID, and that the relinked kernel boots to the same normalized log.
# Prints one "ok"/"FAIL" line per check and a closing "N passed, N failed".
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cfg="${1:-tiny}"
case "$cfg" in tiny|dwarf) ;; *) ab_die "usage: $0 [tiny|dwarf]" ;; esac
build="$AB_LINUX/build-$cfg"
relink="$AB_LINUX/relink-$cfg-standin"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
pass=0 fail=0
check() {  # check NAME COMMAND...
    local name="$1"; shift
    if "$@" >"$work/out" 2>&1; then echo "ok   $name"; pass=$((pass + 1))
    else echo "FAIL $name"; sed 's/^/     /' "$work/out" | tail -n 20; fail=$((fail + 1)); fi
}
norm="$AB_SCRIPTS/normalize-boot-log"

"$AB_SCRIPTS/build.sh" "$cfg"
check "native $cfg boot 1 reaches the init panic" "$AB_SCRIPTS/boot-qemu.sh" "$build/arch/x86/boot/bzImage" "$work/n1.log"
check "native $cfg boot 2 reaches the init panic" "$AB_SCRIPTS/boot-qemu.sh" "$build/arch/x86/boot/bzImage" "$work/n2.log"
check "two native boots normalize to the same log" diff <("$norm" "$work/n1.log") <("$norm" "$work/n2.log")

AFTERBURN_REWRITE="$AB_SCRIPTS/standin-rewrite.sh" "$AB_SCRIPTS/relink-burnt.sh" "$build" "$relink" >/dev/null
every_object_has_section() {
    local o n=0 absent=0
    while IFS= read -r o; do
        n=$((n + 1))
        readelf -S -W "$relink/$o" | grep ' \.afterburn_test ' >/dev/null || { echo "no .afterburn_test in $o"; absent=1; }
    done <"$relink/.afterburn-objects"
    [ "$n" -gt 0 ] && [ "$absent" -eq 0 ]
}
check "every rewritten object has .afterburn_test" every_object_has_section
check "relinked vmlinux has .afterburn_test" bash -c "readelf -S -W '$relink/vmlinux' | grep ' \\.afterburn_test ' >/dev/null"
same_image() {  # the loaded bytes may differ only in the 20-byte GNU build ID
    objcopy -O binary "$build/vmlinux" "$work/n.bin" && objcopy -O binary "$relink/vmlinux" "$work/r.bin" || return 1
    local d; d=$(cmp -l "$work/n.bin" "$work/r.bin" | wc -l)
    echo "$d bytes differ"; [ "$d" -le 20 ]
}
check "relinked vmlinux image equals native apart from the build ID" same_image
check "relinked $cfg boot reaches the init panic" "$AB_SCRIPTS/boot-qemu.sh" "$relink/arch/x86/boot/bzImage" "$work/r.log"
check "relinked boot normalizes to the native log" diff <("$norm" "$work/n1.log") <("$norm" "$work/r.log")

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
