#!/usr/bin/env bash
# The test command: set up a fresh machine, build everything, run every test (release profile:
# the real-Linux corpus tests decode and rewrite tens of MB and are slow in debug).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --workspace --all-targets
# The real-Linux corpus the Linux tests run on (docs/linux-corpus.md): Linux 6.12 tiny and DWARF
# builds from Debian's linux-source-6.12 and Debian's 6.12 modules, cached in
# ${AFTERBURN_CACHE:-$HOME/.cache/afterburn}. Each step keeps a stamp: about 6 minutes on 2 cores
# the first time, seconds afterwards. AFTERBURN_NO_CORPUS=1 leaves it out (those tests then print
# SKIPPED and pass).
if [ "${AFTERBURN_NO_CORPUS:-0}" != 1 ]; then
  corpus_start=$SECONDS
  bash scripts/linux/fetch-source.sh
  bash scripts/linux/build.sh tiny
  bash scripts/linux/build.sh dwarf
  bash scripts/linux/modules.sh >/dev/null
  echo "test.sh: Linux corpus ready ($((SECONDS - corpus_start)) s)"
else
  echo "SKIPPED: the real-Linux tests (burn/verify/oracles/boot over Linux 6.12 and Debian modules):"
  echo "         AFTERBURN_NO_CORPUS=1"
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
