#!/usr/bin/env bash
# Regenerates docs/benchmarks.md and docs/img/compare.svg from scratch (docs/compare.md):
# builds the release binaries and the example kernels (afterburnt too, once the afterburner
# has its binary), then runs `afterburn-run bench`, which compares every example kernel on
# every backend and times the afterburner against objtool on Linux's vmlinux.o when that
# build exists (scripts/linux/build.sh dwarf). Needs cargo, gcc, binutils and /dev/kvm;
# installs nothing, and says what is missing.
#
# Usage: bash scripts/bench.sh [RUNS]      (RUNS per kernel, backend and variant; default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
missing=()
for tool in cargo gcc ld as; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench: missing ${missing[*]} (Debian: apt-get install gcc binutils; cargo from rustup)" >&2
  exit 2
fi
if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
  echo "bench: /dev/kvm is not usable here: nothing can be measured" >&2
  exit 2
fi
bin=target/release
guests=target/guests
packages=(-p afterburn-loader -p afterburn-examples)
have_afterburner=0
if [ -f afterburner/src/main.rs ]; then
  packages+=(-p afterburner)
  have_afterburner=1
fi
cargo build --release -q "${packages[@]}"
rm -rf "$guests/burnt"   # from scratch: no afterburnt kernel from an older build
if [ $have_afterburner = 1 ]; then
  "$bin/afterburn-guests" --out "$guests" --afterburner "$bin/afterburner"
else
  echo "bench: the afterburner has no binary yet (no afterburner/src/main.rs): no afterburnt" \
       "kernels; the page will say so" >&2
  "$bin/afterburn-guests" --out "$guests"
fi
kernels=$("$bin/afterburn-guests" --list | paste -sd, -)
args=(bench --guests "$guests" --kernels "$kernels" --runs "$runs"
      --out docs/benchmarks.md --svg docs/img/compare.svg)
if [ $have_afterburner = 1 ]; then
  args+=(--afterburner "$bin/afterburner")
fi
mkdir -p docs/img
"$bin/afterburn-run" "${args[@]}" \
  --command "bash scripts/bench.sh $runs
# which runs:
$bin/afterburn-run ${args[*]}"
echo "bench: wrote docs/benchmarks.md and docs/img/compare.svg"
