#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine: the toolchain for the example kernels
# (gcc, binutils), QEMU (the independent machine), and Linux build dependencies (for the
# real-kernel corpus). Idempotent; says what it does.
set -euo pipefail
need=()
command -v gcc >/dev/null || need+=(gcc)
command -v as >/dev/null && command -v objdump >/dev/null && command -v addr2line >/dev/null || need+=(binutils)
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v python3 >/dev/null || need+=(python3)
for p in flex bison bc cpio xz-utils libelf-dev libssl-dev make; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need+=("$p")
done
if [ ${#need[@]} -eq 0 ]; then
  echo "setup: all packages present"
  exit 0
fi
echo "setup: installing ${need[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "setup: not root; run: sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${need[@]}"
