#!/usr/bin/env bash
# The main job on the bundled example kernels: build them (native and, with the afterburner,
# afterburnt), then run each on KVM with afterburn-run. Needs only cargo and gcc/binutils;
# installs nothing, and says what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
for tool in cargo gcc ld as; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "demo: missing ${missing[*]} (Debian: apt-get install gcc binutils; cargo from rustup)" >&2
  exit 2
fi
cargo build --release -q -p afterburner -p afterburn-loader -p afterburn-examples
bin=target/release
"$bin/afterburn-guests" --afterburner "$bin/afterburner"
if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
  echo "demo: /dev/kvm is not usable here; kernels are built under target/guests/ but cannot run" >&2
  exit 2
fi
status=0
for k in hello interrupts paging microbench; do
  for variant in native burnt; do
    kernel=target/guests/$variant/$k
    [ -f "$kernel" ] || continue
    echo "=== $variant/$k on --backend bare"
    "$bin/afterburn-run" --backend bare --timeout 60 --stats-json "target/guests/$variant-$k.json" "$kernel" || status=$?
  done
done
exit $status
