#!/usr/bin/env bash
# End-to-end tests: each test_* function in test/e2e/t_*.sh runs in its own
# subshell with a fresh HOME, workspace and state dir under a temp dir.
# Usage: run.sh [FILTER]   (runs tests whose name contains FILTER)
# AG_E2E_SHOW=1 prints what passing tests said too (t_counts' figures).
# A test that cannot run here (no permission for a namespace, say) returns
# 77 after a last line saying why: it is counted as skipped, not passed.
set -u
here=$(cd "$(dirname "$0")" && pwd)
export AG_ROOT=$(cd "$here/../.." && pwd)
filter=${1:-}
pass=0 fail=0 skip=0 failed=()

for file in "$here"/t_*.sh; do
	for t in $(bash -c "source '$here/lib.sh'; source '$file'; declare -F" | awk '{print $3}' | grep '^test_'); do
		[[ -z "$filter" || "$(basename "$file" .sh)/$t" == *"$filter"* ]] || continue
		log=$(mktemp)
		start=$(date +%s%N)
		( source "$here/lib.sh"; source "$file"; ag_setup; set -e; "$t"; ) >"$log" 2>&1
		rc=$?
		ms=$(( ($(date +%s%N) - start) / 1000000 ))
		if [ $rc -eq 0 ]; then
			pass=$((pass + 1)); echo "ok   $(basename "$file" .sh)/$t (${ms} ms)"
			[ -z "${AG_E2E_SHOW:-}" ] || sed 's/^/     | /' "$log"
		elif [ $rc -eq 77 ]; then
			# It could not run here (its last line says why): not a pass.
			skip=$((skip + 1)); echo "SKIP $(basename "$file" .sh)/$t: $(tail -n 1 "$log")"
		else
			fail=$((fail + 1)); failed+=("$t"); echo "FAIL $(basename "$file" .sh)/$t (${ms} ms)"
			sed 's/^/     | /' "$log" | tail -n 40
		fi
		rm -f "$log"
	done
done
[ ${#failed[@]} -eq 0 ] || echo "failed: ${failed[*]}"
if [ "$skip" -gt 0 ]; then echo "e2e: $pass passed, $fail failed, $skip skipped"; else echo "e2e: $pass passed, $fail failed"; fi
[ "$fail" -eq 0 ]
