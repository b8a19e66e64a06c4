#!/usr/bin/env bash
# boot-qemu.sh KERNEL LOG
# Boots a bzImage under QEMU with TCG (no KVM needed), serial console to LOG:
#   qemu-system-x86_64 -accel tcg -m 256 -nodefaults -display none -no-reboot \
#     -serial file:LOG -kernel KERNEL -append "console=ttyS0 panic=-1" </dev/null
# panic=-1 makes the kernel reboot at once on panic and -no-reboot turns that into a QEMU exit.
# Needs no tty and no stdin. Environment:
#   BOOT_TIMEOUT  seconds before QEMU is killed (default 300)
#   BOOT_EXPECT   text the log must contain (default "Kernel panic - not syncing: No working init found")
#   BOOT_APPEND   kernel command line (default "console=ttyS0 panic=-1")
#   QEMU_EXTRA    extra QEMU arguments (word-split)
# Exit 0 when QEMU ended by itself and the log contains BOOT_EXPECT; 1 otherwise (the
# log tail is printed). Prints "boot-seconds N.NN" (wall time of the QEMU run) on stderr.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[ $# -eq 2 ] || ab_die "usage: $0 KERNEL LOG"
kernel="$1" log="$2"
[ -f "$kernel" ] || ab_die "no kernel image at $kernel"
ab_need_pkgs qemu-system-x86_64=qemu-system-x86 timeout=coreutils

timeout_s="${BOOT_TIMEOUT:-300}"
expect="${BOOT_EXPECT:-Kernel panic - not syncing: No working init found}"
append="${BOOT_APPEND:-console=ttyS0 panic=-1}"
# shellcheck disable=SC2206
extra=(${QEMU_EXTRA:-})

mkdir -p "$(dirname "$log")"
rm -f "$log"
start=$(date +%s.%N)
set +e
timeout --kill-after=10 "$timeout_s" qemu-system-x86_64 -accel tcg -m 256 -nodefaults \
    -display none -no-reboot -serial "file:$log" -kernel "$kernel" -append "$append" \
    "${extra[@]}" </dev/null
rc=$?
set -e
end=$(date +%s.%N)
secs=$(python3 -c "print(f'{$end - $start:.2f}')")
ab_log "boot-seconds $secs (qemu exit $rc)"

if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    tail -n 20 "$log" >&2 || true
    ab_die "QEMU did not end within ${timeout_s} s (BOOT_TIMEOUT); log: $log"
fi
[ "$rc" -eq 0 ] || { tail -n 20 "$log" >&2 || true; ab_die "qemu-system-x86_64 exited with $rc; log: $log"; }
if ! grep -qF -- "$expect" "$log"; then
    tail -n 20 "$log" >&2 || true
    ab_die "boot log $log does not contain: $expect"
fi
ab_log "reached: $expect"
