#!/usr/bin/env bash
# Run each named harness (build/fuzz/fuzz_NAME) for FUZZ_SECONDS on a copy of
# its committed seeds (test/fuzz/corpus/NAME). A crash leaves its input in
# build/fuzz/artifacts/ and fails the run.
set -u
cd "$(dirname "$0")/../.."
secs=${FUZZ_SECONDS:-60}
fail=0
mkdir -p build/fuzz/artifacts
for name in "$@"; do
	case $name in
	policy) max=8192 ;;
	spool) max=16384 ;;
	*) max=4096 ;;
	esac
	work=build/fuzz/corpus/$name
	mkdir -p "$work"
	log=build/fuzz/$name.log
	if build/fuzz/fuzz_"$name" -max_total_time="$secs" -max_len="$max" -timeout=10 \
		-rss_limit_mb=1024 -print_final_stats=1 \
		-artifact_prefix=build/fuzz/artifacts/"$name"- \
		"$work" test/fuzz/corpus/"$name" >"$log" 2>&1; then
		echo "fuzz $name: ok, $(grep -a 'stat::number_of_executed_units' "$log" | awk '{print $2}') runs in ${secs}s"
	else
		fail=1
		echo "fuzz $name: FAILED (log: $log)"
		grep -a -A30 'ERROR\|runtime error\|deadly signal\|Timeout\|out-of-memory' "$log" | head -50
	fi
done
exit $fail
