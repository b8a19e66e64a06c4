#!/usr/bin/env bash
# standin-rewrite.sh OBJECT...
# A stand-in for "afterburner burn --in-place", used to prove the relink mechanics of
# relink-burnt.sh: it changes every object's bytes but keeps the object correct, by adding a
# non-allocated section .afterburn_test holding the text "afterburn stand-in\n" (objcopy
# rewrites the whole file: section table, offsets, symbol table). Writes to a temporary file
# and renames it over the object (never through a hard link).
# STANDIN_SECTION names the section (default .afterburn_test); STANDIN_FLAGS its objcopy
# flags (default "contents,readonly": not allocated; "alloc,load,contents,readonly" puts it
# in the loaded image).
set -euo pipefail
payload="$(mktemp)"
trap 'rm -f "$payload"' EXIT
printf 'afterburn stand-in\n' >"$payload"
sec="${STANDIN_SECTION:-.afterburn_test}"
flags="${STANDIN_FLAGS:-contents,readonly}"
for o in "$@"; do
    tmp="$(dirname "$o")/.$(basename "$o").standin.$$"
    objcopy --add-section "$sec=$payload" --set-section-flags "$sec=$flags" "$o" "$tmp" \
        || { rm -f "$tmp"; echo "standin-rewrite: objcopy failed on $o" >&2; exit 1; }
    mv "$tmp" "$o"
done
