#!/usr/bin/env bash
# The main job on the bundled example kernels: build them (native and, with the afterburner,
# afterburnt), run each on KVM with afterburn-run, then compare native against afterburnt on
# every backend (`afterburn-run compare`, docs/compare.md) and print the Markdown reports.
# Needs only cargo and gcc/binutils; installs nothing, and says what is missing.
# Exit status: 0 all kernels ran and compared equal; 1 a comparison differed; 2 something is
# missing (tools, /dev/kvm); 3 no afterburnt kernels could be built; else a kernel's own code.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
for tool in cargo gcc ld as; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "demo: missing ${missing[*]} (Debian: apt-get install gcc binutils; cargo from rustup)" >&2
  exit 2
fi
bin=target/release
packages=(-p afterburn-loader -p afterburn-examples)
if [ -f afterburner/src/main.rs ]; then packages+=(-p afterburner); fi
cargo build --release -q "${packages[@]}"
have_burnt=0
if [ -x "$bin/afterburner" ]; then
  rm -rf target/guests/burnt   # no afterburnt kernel left over from an older build
  if ! "$bin/afterburn-guests" --afterburner "$bin/afterburner"; then
    echo "demo: building the afterburnt kernels failed (see above)" >&2
    exit 3
  fi
  have_burnt=1
else
  "$bin/afterburn-guests"
fi
if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
  echo "demo: /dev/kvm is not usable here; kernels are built under target/guests/ but cannot run" >&2
  exit 2
fi
kernels=$("$bin/afterburn-guests" --list)
status=0
for k in $kernels; do
  for variant in native burnt; do
    kernel=target/guests/$variant/$k
    [ -f "$kernel" ] || continue
    echo "=== $variant/$k on --backend bare"
    "$bin/afterburn-run" --backend bare --timeout 60 --stats-json "target/guests/$variant-$k.json" "$kernel" || status=$?
  done
done
if [ $have_burnt = 0 ]; then
  echo "demo: the afterburnt kernels could not be built: there is no afterburner binary" \
       "($bin/afterburner; the afterburner crate has no afterburner/src/main.rs yet)." \
       "Only the native kernels ran; nothing to compare." >&2
  exit 3
fi
echo
echo "=== afterburn-run compare: native vs afterburnt on every backend"
compare_status=0
for k in $kernels; do
  echo
  "$bin/afterburn-run" compare -q --runs 3 --timeout 60 \
    --native "target/guests/native/$k" --burnt "target/guests/burnt/$k" \
    --json "target/guests/compare-$k.json" || compare_status=$?
done
if [ $compare_status != 0 ]; then exit $compare_status; fi
exit $status
