# Time filters: a duration ago, today/yesterday, and absolute times (UTC
# unless a zone is given), the same in report --since/--until and restore
# --before.

test_report_since_and_until_take_durations_names_and_absolute_times() {
	printf 'a\n' > "$WS/a"; printf 'b\n' > "$WS/b"
	agrun sh -c "rm $WS/a; sleep 1.2; rm $WS/b" >/dev/null 2>&1
	ingest
	# The second delete's time, as RFC 3339 UTC, to the second.
	local t; t=$(db "select strftime('%Y-%m-%dT%H:%M:%S', time_ns / 1000000000, 'unixepoch') from events where path='$WS/b'")
	local d; d=${t%%T*}
	n() { "$AG" report --json "$@" | python3 -c 'import sys, json; print(sum(1 for l in sys.stdin if l.strip() and json.loads(l).get("op") == "delete"))'; }
	assert_eq "$(n --since today)" "2"
	assert_eq "$(n --since yesterday)" "2"
	assert_eq "$(n --until today)" "0"
	assert_eq "$(n --since "$d")" "2"
	assert_eq "$(n --since "${t}Z")" "1" "since the second delete's second"
	assert_eq "$(n --until "${t}Z")" "1" "until it"
	# The same instant an hour east of UTC.
	local east; east=$(date -u -d "$t UTC + 1 hour" +%Y-%m-%dT%H:%M:%S)
	assert_eq "$(n --since "${east}+01:00")" "1"
	assert_eq "$(n --since 1h)" "2"
	local rc=0 err
	err=$("$AG" report --since 2026-13-01 2>&1) || rc=$?
	assert_eq "$rc" "2"
	assert_contains "$err" "--since wants a time"
	rc=0; "$AG" report --until bogus >/dev/null 2>&1 || rc=$?
	assert_eq "$rc" "2"
}
