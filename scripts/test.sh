#!/usr/bin/env bash
# The test command: set up a fresh machine, build everything, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --workspace --all-targets
cargo test --workspace
# One short compare over the example kernels on every backend (native against afterburnt once
# the afterburner has its binary): fails on a mismatch (docs/compare.md).
if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
  bin=target/debug
  if [ -x "$bin/afterburner" ]; then
    rm -rf target/guests/burnt
    "$bin/afterburn-guests" --afterburner "$bin/afterburner"
  else
    "$bin/afterburn-guests"
  fi
  for k in $("$bin/afterburn-guests" --list); do
    burnt=target/guests/burnt/$k
    if [ ! -x "$bin/afterburner" ]; then
      echo "test.sh: no afterburner binary: comparing native $k with itself"
      burnt=target/guests/native/$k
    fi
    "$bin/afterburn-run" compare -q --runs 1 --native "target/guests/native/$k" --burnt "$burnt"
  done
else
  echo "SKIPPED: compare over the example kernels: /dev/kvm not available"
fi
