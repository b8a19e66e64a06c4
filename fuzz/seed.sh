#!/bin/sh
# Seeds the fuzz corpora with real relocatable objects: the verifier's hand-written and
# gcc-built inputs (assembled here) and, when present, small Debian kernel modules and objects
# of the project's Linux build (scripts/linux). Usage: fuzz/seed.sh (from the repository root).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
for t in burn read; do mkdir -p "$root/fuzz/corpus/$t"; done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
inputs="$root/afterburner/tests/inputs/verify"
for s in "$inputs"/*.s; do
    as --64 -o "$tmp/$(basename "$s" .s).o" "$s"
done
gcc -O2 -mcmodel=kernel -fno-pie -ffreestanding -fno-stack-protector -c -o "$tmp/kernelish.o" "$inputs/kernelish.c"
gcc -O2 -g -ffreestanding -fno-stack-protector -c -o "$tmp/kernelish-g.o" "$inputs/kernelish.c"
cache=${AFTERBURN_CACHE:-$HOME/.cache/afterburn}
# Small modules and Linux objects (under 24 KiB keeps libFuzzer fast).
for dir in "$cache/modules" "$cache/linux-6.12/build-tiny"; do
    [ -d "$dir" ] || continue
    find "$dir" \( -name '*.ko' -o -name '*.o' \) -size -24k 2>/dev/null | sort | awk 'NR % 25 == 1' | head -40 |
        while read -r f; do cp "$f" "$tmp/$(echo "$f" | md5sum | cut -c1-12).o"; done
done
for t in burn read; do cp "$tmp"/*.o "$root/fuzz/corpus/$t/"; done
echo "seeded $(ls "$root/fuzz/corpus/burn" | wc -l) objects"
