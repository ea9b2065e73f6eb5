# The spool directory is written by guarded processes, so it may hold
# anything: every command stays responsive, reports what it found, and
# keeps it (moved aside) instead of following or deleting it.

# One guarded decision, then the state dir holds audit.db and a session.
one_session() {
	printf 'x' > "$WS/f"
	guard rm "$WS/f"
	ingest
}

spool_dir() { echo "$AGENTGUARD_STATE_DIR/spool"; }

# Issue 8: a FIFO named *.spool hung run, report, verify and restore.
test_hostile_spool_entries_every_command_responds() {
	one_session
	local s; s=$(latest_session)
	local sp; sp=$(spool_dir)
	local victim=$T/victim
	printf 'keep' > "$victim"
	mkfifo "$sp/fifo.spool"
	ln -s /dev/zero "$sp/zero.spool"
	ln -s "$victim" "$sp/victim.spool"
	ln -s ../audit.db "$sp/db.spool"
	mkdir "$sp/dir.spool"
	truncate -s 2G "$sp/sparse.spool"
	local rc=0 err
	err=$(timeout 120 "$AG" report 2>&1 >/dev/null) || rc=$?
	[ "$rc" != 124 ] || fail "report hung"
	for n in fifo zero victim db dir sparse; do
		assert_contains "$err" "$n.spool"
		assert_exists "$sp/damaged/$n.spool"
		assert_missing "$sp/$n.spool"
	done
	assert_contains "$err" "warning"
	[ -L "$sp/damaged/victim.spool" ] || fail "the symlink was not moved as a symlink"
	assert_eq "$(cat "$victim")" "keep"
	assert_eq "$(db "select count(*) from gaps where what like '%.spool %'")" 6
	# The same for the others, each with a fresh entry.
	mkfifo "$sp/f2.spool"
	rc=0; err=$(timeout 120 "$AG" verify 2>&1) || rc=$?
	[ "$rc" != 124 ] || fail "verify hung"
	assert_eq "$rc" 0 "verify: $err"
	assert_contains "$err" "audit log intact"
	assert_contains "$err" "f2.spool"
	mkfifo "$sp/f3.spool"
	rc=0; err=$(timeout 120 "$AG" restore --session "$s" --dry-run 2>&1) || rc=$?
	[ "$rc" != 124 ] || fail "restore hung"
	assert_contains "$err" "f3.spool"
	mkfifo "$sp/f4.spool"
	rc=0; err=$(timeout 120 "$AG" run --workspace "$WS" -- true 2>&1) || rc=$?
	[ "$rc" != 124 ] || fail "run hung"
	assert_eq "$rc" 0 "run: $err"
	assert_contains "$err" "f4.spool"
	for n in f2 f3 f4; do assert_exists "$sp/damaged/$n.spool"; done
	# audit.db itself was never touched through the link.
	assert_eq "$(db "pragma integrity_check")" ok
}

# Issue 8: a damaged spool was dropped and deleted without a word.
test_damaged_spool_keeps_rows_and_evidence() {
	printf 'a' > "$WS/a"; printf 'b' > "$WS/b"
	guard sh -c "rm '$WS/a'; rm '$WS/b'"
	local sp; sp=$(spool_dir)
	local f n=0
	for f in "$sp"/*.spool; do
		# Garbage after the records: the writer's zeros were overwritten.
		local used; used=$(od -An -t u8 -j 16 -N 8 "$f" | tr -d ' ')
		printf 'GARBAGE!GARBAGE!' | dd of="$f" bs=1 seek="$used" conv=notrunc status=none
		n=$((n + 1))
	done
	[ "$n" -gt 0 ]
	local out; out=$("$AG" report --all 2>&1)
	assert_contains "$out" "is damaged"
	assert_contains "$out" "kept as spool/damaged/"
	assert_eq "$(db "select count(*) from events where op='delete' and path in ('$WS/a','$WS/b')")" 2
	[ "$(ls "$sp/damaged" | wc -l)" -ge 1 ] || fail "no evidence kept"
	"$AG" verify >/dev/null
}

# Issue 8: while run ingests, SIGINT/SIGTERM were blocked: a busy audit.db
# (or anything else slow in the state dir) could not be interrupted.
test_run_gets_out_on_a_second_signal_while_ingesting() {
	one_session
	local db=$AGENTGUARD_STATE_DIR/audit.db
	printf 'x' > "$WS/g"
	"$AG" run --workspace "$WS" -- sh -c "rm '$WS/g'; touch '$T/started'; while [ ! -e '$T/go' ]; do sleep 0.1; done" \
		2>"$T/run.err" &
	local run=$!
	local i=0
	while [ ! -e "$T/started" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
	[ -e "$T/started" ] || fail "the agent never started"
	# Another writer holds audit.db's write lock from now on.
	python3 -c '
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("BEGIN IMMEDIATE")
open(sys.argv[2], "w").close()
time.sleep(600)' "$db" "$T/locked" &
	local holder=$!
	i=0
	while [ ! -e "$T/locked" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
	[ -e "$T/locked" ] || fail "could not lock audit.db"
	touch "$T/go"
	kill -TERM $run; kill -INT $run
	local rc=0
	wait $run || rc=$?
	kill $holder; wait $holder 2>/dev/null || true
	local err; err=$(cat "$T/run.err")
	assert_contains "$err" "interrupted"
	# Nothing was lost: the events wait in the spools for the next command.
	ingest
	assert_eq "$(db "select count(*) from events where op='delete' and path='$WS/g'")" 1
}
