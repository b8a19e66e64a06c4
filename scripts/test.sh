#!/usr/bin/env bash
# The test command: set up a fresh machine, build everything, run every test (release profile:
# the real-Linux corpus tests decode and rewrite tens of MB and are slow in debug).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --workspace --all-targets
cache=${AFTERBURN_CACHE:-$HOME/.cache/afterburn}
if [ ! -f "$cache/linux-6.12/build-tiny/vmlinux.o" ] || [ ! -d "$cache/modules" ]; then
  echo "SKIPPED: the real-Linux tests (burn/verify/boot over Linux 6.12 and Debian modules) find no"
  echo "         cached corpus under $cache; build it with scripts/linux/fetch-source.sh,"
  echo "         scripts/linux/build.sh tiny, scripts/linux/build.sh dwarf, scripts/linux/modules.sh"
fi
if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
  echo "SKIPPED: tests that run guests on KVM: /dev/kvm not available"
fi
cargo test --release --workspace
# One short compare over the example kernels on every backend, native against afterburnt:
# fails on a mismatch (docs/compare.md).
if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
  bin=target/release
  rm -rf target/guests/burnt
  "$bin/afterburn-guests" --afterburner "$bin/afterburner"
  for k in $("$bin/afterburn-guests" --list); do
    "$bin/afterburn-run" compare -q --runs 1 --native "target/guests/native/$k" --burnt "target/guests/burnt/$k"
  done
else
  echo "SKIPPED: compare over the example kernels: /dev/kvm not available"
fi
