#!/usr/bin/env bash
# Every test: the exported-symbol check, the entry frame check, the check
# that a test names every interposed symbol, the Criterion units, then the
# end-to-end runs of real programs. Ends with one total line.
set -u
cd "$(dirname "$0")/.."
pass=0 fail=0

if bash test/check-exports.sh build; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
if bash test/check-frames.sh build; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
if bash test/check-entry-tests.sh build; then pass=$((pass + 1)); else fail=$((fail + 1)); fi

out=$(mktemp)
AGENTGUARD_SYSCONFDIR=/nonexistent/agentguard build/test/unit --jobs 2 2>&1 | tee "$out"
syn=$(grep -a 'Synthesis:' "$out" | tail -n 1)
if [ -z "$syn" ]; then
	echo "unit tests: no summary (crashed?)"; fail=$((fail + 1))
else
	p=$(sed -E 's/.*Passing: ([0-9]+).*/\1/' <<<"$syn")
	f=$(sed -E 's/.*Failing: ([0-9]+).*/\1/' <<<"$syn")
	c=$(sed -E 's/.*Crashing: ([0-9]+).*/\1/' <<<"$syn")
	pass=$((pass + p)); fail=$((fail + f + c))
fi
rm -f "$out"

out=$(mktemp)
bash test/e2e/run.sh 2>&1 | tee "$out"
line=$(grep -aE '^e2e: [0-9]+ passed, [0-9]+ failed' "$out" | tail -n 1)
if [ -z "$line" ]; then
	echo "e2e: no summary"; fail=$((fail + 1))
else
	pass=$((pass + $(sed -E 's/e2e: ([0-9]+) passed.*/\1/' <<<"$line")))
	fail=$((fail + $(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")))
fi
rm -f "$out"

echo "tests: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
