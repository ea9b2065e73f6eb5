# Tallies (lib/audit.h): what sessions, the run's summary and report count,
# kept as the events go in. They must always equal a recount of the events,
# verify must notice when they do not, a log from before them must get them,
# and listing sessions must not cost more as the log grows.

# The recount, as the tallies define it (audit.h), one line per kind.
recount() {
	db "select session, coalesce(op, ''), coalesce(decision, ''), coalesce(enforced, 1) <> 0,
	           coalesce(layer, 'library'), snapshot is not null, coalesce(errno, 0) > 0,
	           coalesce((decision in ('allow', 'log') and snapshot is null and coalesce(errno, 0) = 0 and
	            ((op = 'sql' and sql_class in ('update', 'delete', 'update_all', 'delete_all',
	              'truncate', 'drop_table', 'drop_database', 'alter_drop', 'ddl') and
	              substr(coalesce(database, ''), 1, 1) <> '/' and coalesce(database, '') <> ':memory:')
	             or (decision = 'log' and op in ('delete', 'rename', 'truncate', 'write')))), 0),
	           count(*)
	    from events group by 1, 2, 3, 4, 5, 6, 7, 8 order by 1, 2, 3, 4, 5, 6, 7, 8"
}
kept() {
	db "select session, op, decision, enforced, layer, snap, failed, lost, n from tallies
	    order by 1, 2, 3, 4, 5, 6, 7, 8"
}

# A session with one of each: snapshotted deletes, a denial, calls that
# failed by themselves, a delete a `log` rule let through, execs.
mixed_session() {
	mkdir -p "$WS/src" "$HOME/.ssh" "$T/tmp/logged"
	echo key > "$HOME/.ssh/id_ed25519"
	for i in 1 2 3; do echo "$i" > "$WS/src/f$i"; echo "$i" > "$T/tmp/logged/g$i"; done
	cat > "$WS/.agentguard.yaml" <<-EOF
	version: 1
	extends: builtin:default
	rules:
	  - id: log-scratch
	    on: delete
	    path: "$T/tmp/logged/**"
	    action: log
	    reason: scratch is only logged
	EOF
	TMPDIR=$T/tmp agrun sh -c "rm -f src/f1 src/f2 src/f3; rm -f $T/tmp/logged/g1 $T/tmp/logged/g2;
		rm ~/.ssh/id_ed25519; rm -f $T/tmp/no-such-1 $T/tmp/no-such-2; true" \
		>"$T/out" 2>"$T/err" || true
}

test_tallies_equal_a_recount_of_a_mixed_session() {
	mixed_session
	[ "$(kept)" = "$(recount)" ] || fail "tallies differ from the events:
$(kept)
recount:
$(recount)"
	# Each kind is there: kept (snapshot), denied, failed by itself, lost.
	sid=$(latest_session)
	assert_eq "$(db "select sum(n) from tallies where session = '$sid' and snap and not failed")" 3
	assert_eq "$(db "select sum(n) from tallies where session = '$sid' and decision = 'deny'")" 1
	assert_eq "$(db "select sum(n) from tallies where session = '$sid' and lost")" 2
	[ "$(db "select sum(n) from tallies where session = '$sid' and failed and decision <> 'deny'")" -ge 2 ] ||
		fail "the failed deletes of missing files are not counted"
	assert_eq "$(db "select events from sessions where id = '$sid'")" \
		"$(db "select count(*) from events where session = '$sid'")"
	"$AG" verify >/dev/null || fail "verify fails on an untouched log"
	# What the run said at its end and what report says come from them.
	assert_contains "$(cat "$T/err")" "3 snapshotted, 0 asked, 1 denied"
	out=$("$AG" report --session "$sid")
	assert_contains "$out" "restorable 3 destroyed or overwritten, kept"
	assert_contains "$out" "LOST       2 allowed, with nothing kept to undo them"
	assert_contains "$out" "blocked    1 denied"
	n=$(db "select count(*) from events where session = '$sid'")
	assert_contains "$("$AG" sessions)" "$n"
}

test_verify_says_when_the_tallies_or_the_count_were_edited() {
	mixed_session
	sid=$(latest_session)
	db "update tallies set n = n - 1 where session = '$sid' and decision = 'deny'"
	out=$("$AG" verify 2>&1) && fail "verify passed edited tallies: $out"
	assert_contains "$out" "session $sid: its tallies (what report and sessions count) do not match its events"
	assert_contains "$("$AG" report --session "$sid" 2>&1)" "tallies"
	db "update tallies set n = n + 1 where session = '$sid' and decision = 'deny'"
	"$AG" verify >/dev/null || fail "verify fails once the tallies are put back"
	db "update sessions set events = 1 where id = '$sid'"
	out=$("$AG" verify 2>&1) && fail "verify passed an edited event count: $out"
	assert_contains "$out" "its event count does not match its events"
}

test_a_log_from_before_tallies_gets_them_when_first_written() {
	mixed_session
	before=$(kept)
	sid=$(latest_session)
	n=$(db "select events from sessions where id = '$sid'")
	# As an older agentguard left it: no tallies, no count kept.
	db "drop table tallies; delete from meta where key = 'tallies'; update sessions set events = 0"
	"$AG" sessions >/dev/null
	assert_eq "$(kept)" "$before"
	assert_eq "$(db "select events from sessions where id = '$sid'")" "$n"
	"$AG" verify >/dev/null || fail "verify fails after the tallies were counted"
}

test_listing_sessions_costs_the_same_at_twenty_times_the_events() {
	[ -z "${AG_ASAN_RT:-}" ] || { echo "skipped: counts of a sanitized build mean nothing"; return 0; }
	command -v valgrind >/dev/null || fail "valgrind is missing"
	gcc -O2 -o "$T/callloop" "$AG_ROOT/bench/callloop.c"
	mkdir -p "$T/tmp/scratch"
	cost() {
		(cd "$T/tmp/scratch" && guard "$T/callloop" "$1")
		"$AG" sessions >/dev/null    # ingest first: only the listing is measured
		valgrind --tool=callgrind --callgrind-out-file=/dev/null "$AG" sessions 2>&1 >/dev/null |
			sed -n 's/.*I *refs: *//p' | tr -d ,
	}
	small=$(cost 1000)
	db "delete from sessions"   # one session listed again, now with many events
	big=$(cost 20000)
	echo "agentguard sessions: $small instructions at ~1,000 events, $big at ~21,000"
	# Counting 20,000 rows would cost a few million; the bound is what
	# a row or two more of tallies cost.
	[ "$((big - small))" -le 100000 ] || fail "listing grew from $small to $big instructions"
}
