#!/usr/bin/env bash
# Every interposed symbol is exercised by some test: each name of
# build/gen/exports.txt (made from lib/interpose.def) must appear, as a
# whole word, in at least one file under test/ other than this one. A hook
# added without a test fails here.
#   check-entry-tests.sh [BUILD_DIR]
set -u
cd "$(dirname "$0")/.."
build=${1:-build}
want=$build/gen/exports.txt
[ -s "$want" ] || { echo "check-entry-tests: $want missing or empty (run make)" >&2; exit 1; }

# Word match: sqlite3_prepare must not count as named because
# sqlite3_prepare_v2 is. The tests' words, once, then each name looked up.
words=$(grep -rIhoE --exclude=check-entry-tests.sh '[A-Za-z_][A-Za-z0-9_]*' test/ | sort -u)
missing=$(grep -v '^[[:space:]]*$' "$want" | sort -u | comm -23 - <(echo "$words"))
if [ -n "$missing" ]; then
	echo "check-entry-tests: interposed symbols no file under test/ names:" >&2
	echo "$missing" | sed 's/^/  /' >&2
	exit 1
fi
echo "check-entry-tests: all $(grep -c . "$want") interposed symbols are named by a test"
