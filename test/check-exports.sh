#!/usr/bin/env bash
# The library shares every process it is loaded into: exactly the symbols
# lib/interpose.def names (and agentguard_*) may leave it, every one of them
# must, and no object of the core may still call an interposed name (it
# would re-enter our own hooks: lib/real.c).
#   check-exports.sh [BUILD_DIR]
set -u
build=${1:-build}
lib=$build/libagentguard.so
want=$build/gen/exports.txt
syms=$build/gen/libc.syms
bad=0

have=$(nm -D --defined-only "$lib" | awk '{print $3}' | sed 's/@.*//' | sort -u)
leaked=$(comm -23 <(echo "$have" | grep -v '^agentguard_') <(sort -u "$want"))
missing=$(comm -13 <(echo "$have") <(sort -u "$want"))
if [ -n "$leaked" ]; then
	echo "check-exports: $lib exports symbols lib/interpose.def does not name:" >&2
	echo "$leaked" | sed 's/^/  /' >&2
	bad=1
fi
if [ -n "$missing" ]; then
	echo "check-exports: lib/interpose.def names symbols $lib does not define:" >&2
	echo "$missing" | sed 's/^/  /' >&2
	bad=1
fi
names=$(awk '{print $1}' "$syms" | paste -sd'|')
calls=$(find "$build/obj-so" -name '*.o' -exec nm -u -A {} + | awk -v re="^($names)\$" '$NF ~ re')
if [ -n "$calls" ]; then
	echo "check-exports: core objects call interposed names (not renamed to the real ones):" >&2
	echo "$calls" | sed 's/^/  /' >&2
	bad=1
fi
[ "$bad" -eq 0 ] || exit 1
echo "check-exports: $(echo "$have" | wc -l) exported symbols, exactly those of lib/interpose.def;" \
	"core objects call libc's real functions only"
