# The report's accuracy and the fleet export: rows in time order, RFC 3339
# times, who and where, failed calls, what cannot be undone, a tampered log
# named; `agentguard export` into real receivers (rsyslog, an HTTP server
# that fails), a collector killed and restarted, and exported anchors that
# catch a rewritten log.

# Two processes deleting at once: their spools reach the log one after the
# other, so log order is not time order.
messy_session() {
	mkdir -p "$WS/a" "$WS/b" "$HOME/.ssh"
	printf 'KEY\n' > "$HOME/.ssh/id_rsa"
	for i in $(seq 1 20); do echo "$i" > "$WS/a/$i.c"; echo "$i" > "$WS/b/$i.c"; done
	agrun sh -c 'for i in $(seq 1 20); do rm a/$i.c; sleep 0.005; done &
		     for i in $(seq 1 20); do rm b/$i.c; sleep 0.005; done &
		     wait; rmdir "'"$WS"'" 2>/dev/null; rm -f "$HOME/.ssh/id_rsa"; true' >/dev/null 2>&1
}

# Event ids as they appear in a JSON Lines stream (events only).
ids_of() { jq -r 'select(.type == "event") | .id' "$@"; }

test_report_json_is_in_time_order_with_utc_times_and_identity() {
	messy_session
	local out; out=$("$AG" report --json)
	# Log order differs from time order here, or the test proves nothing.
	[ "$(jq -r .id <<<"$out")" != "$(jq -r .id <<<"$out" | sort -n)" ] ||
		fail "this session's log happens to be in time order; the test needs it not to be"
	assert_eq "$(jq -r .time_ns <<<"$out" | sort -c -n 2>&1 && echo sorted)" sorted
	# RFC 3339, UTC, nanoseconds, and the same instant as time_ns.
	# (python: jq reads time_ns as a double)
	python3 -c '
import json, re, sys, datetime
for l in sys.stdin:
    e = json.loads(l)
    t, ns = e["time"], e["time_ns"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", t), t
    d = datetime.datetime.fromtimestamp(ns // 10**9, datetime.timezone.utc)
    assert t == d.strftime("%Y-%m-%dT%H:%M:%S") + ".%09dZ" % (ns % 10**9), (t, ns)
' <<<"$out" || fail "time is not time_ns as RFC 3339 UTC"
	assert_eq "$(jq -r .hostname <<<"$out" | sort -u)" "$(hostname)"
	assert_eq "$(jq -r .user_id <<<"$out" | sort -u)" "$(id -u)"
	assert_eq "$(jq -r .user <<<"$out" | sort -u)" "$(id -un)"
	# A denial's outcome and errno.
	assert_eq "$(jq -r 'select(.decision == "deny") | "\(.outcome) \(.error)"' <<<"$out" | sort -u)" \
		"denied EACCES"
	# The text report's times carry their zone.
	assert_contains "$(TZ=UTC "$AG" report)" " UTC (agent pid"
	assert_contains "$(TZ=Asia/Kolkata "$AG" report)" " +05:30 (agent pid"
	assert_contains "$(TZ=Asia/Kolkata "$AG" sessions)" "START (+05:30)"
	# Sessions carry where they ran too.
	assert_eq "$("$AG" sessions --json | jq -r '"\(.hostname) \(.user_id) \(.start | test("Z$"))"')" \
		"$(hostname) $(id -u) true"
}

test_report_marks_failed_calls_and_lists_what_cannot_be_undone() {
	mkdir -p "$WS/full/sub" "$WS/logged"
	echo x > "$WS/full/sub/f"; echo y > "$WS/logged/gone"
	cat > "$T/rules.yaml" <<-EOF
	version: 1
	rules:
	  - id: keep-ws
	    on: [delete]
	    path: "$WS/full/**"
	    action: snapshot
	  - id: only-logged
	    on: [delete]
	    path: "$WS/logged/**"
	    action: log
	EOF
	LD_PRELOAD=${AG_ASAN_RT:-} "$AG" run --rules "$T/rules.yaml" --workspace "$WS" -- \
		sh -c "rmdir '$WS/full/sub'; rm '$WS/logged/gone'; true" >/dev/null 2>&1
	local out; out=$("$AG" report)
	# rmdir of a directory with a file in it fails by itself: ENOTEMPTY.
	assert_contains "$out" "failed: ENOTEMPTY"
	assert_eq "$("$AG" report --json | jq -r 'select(.op == "delete" and (.path | endswith("/sub"))) | "\(.outcome) \(.error)"')" \
		"failed ENOTEMPTY"
	# A logged delete left nothing to restore it from: said, and counted.
	assert_contains "$out" "NOT RESTORABLE"
	assert_contains "$out" "LOST       1 allowed, with nothing kept to undo them"
	assert_missing "$WS/logged/gone"
}

test_report_warns_when_the_log_does_not_verify() {
	messy_session
	assert_contains "$("$AG" report)" "log        intact"
	db "UPDATE events SET reason = 'nothing to see' WHERE id = 3"
	local out; out=$("$AG" report 2>&1)
	assert_contains "$out" "WARNING    the audit log does not verify: session"
	assert_contains "$out" "event 3 was changed"
	out=$("$AG" report --json 2>&1 >/dev/null)
	assert_contains "$out" "the audit log does not verify"
}

test_export_writes_each_event_once_with_session_marks_and_cursors() {
	messy_session
	local sid; sid=$(latest_session)
	"$AG" export > "$T/all.jsonl"
	assert_eq "$(head -1 "$T/all.jsonl" | jq -r '"\(.type) \(.session) \(.events)"')" "session_start $sid 0"
	assert_eq "$(tail -1 "$T/all.jsonl" | jq -r '"\(.type) \(.session) \(.exit_status)"')" "session_end $sid 0"
	assert_eq "$(tail -1 "$T/all.jsonl" | jq -r .head)" "$(db "select head from sessions where id = '$sid'")"
	assert_eq "$(tail -1 "$T/all.jsonl" | jq -r .events)" "$(db "select count(*) from events")"
	assert_eq "$(ids_of "$T/all.jsonl" | tr '\n' ' ')" "$(db "select id from events order by id" | tr '\n' ' ')"
	# Every record's cursor resumes right after it.
	local n; n=$(wc -l < "$T/all.jsonl")
	for k in 1 7 $((n - 1)); do
		local cur; cur=$(sed -n "${k}p" "$T/all.jsonl" | jq -r .cursor)
		"$AG" export --after "$cur" > "$T/rest.jsonl"
		cmp <(tail -n +$((k + 1)) "$T/all.jsonl") "$T/rest.jsonl" ||
			fail "--after $cur does not give the records after line $k"
	done
	# An event id alone: after that event.
	assert_eq "$("$AG" export --after 5 | head -1 | jq -r .id)" 6
	# Formats: CEF and RFC 5424 on stdout, one line a record.
	assert_eq "$("$AG" export --format cef | wc -l)" "$n"
	assert_eq "$("$AG" export --format cef | grep -c '^CEF:0|agentguard|agentguard|')" "$n"
	assert_contains "$("$AG" export --format cef --only deny)" "act=deny"
	# Bad input is refused clearly.
	out=$("$AG" export --to 'gopher://x' 2>&1) && fail "a bad sink was taken"
	assert_contains "$out" "--to is"
	out=$("$AG" export --only nothing 2>&1) && fail "a bad --only was taken"
	assert_contains "$out" "--only takes"
}

# rsyslog, started here with its own configuration on a unix socket, gets
# the session as RFC 5424; what it wrote is parsed back.
test_rsyslog_receives_the_rfc5424_stream() {
	command -v rsyslogd >/dev/null || fail "rsyslogd is not installed (tools/install-deps.sh)"
	messy_session
	local r=$T/rsyslog; mkdir -p "$r/work"
	cat > "$r/rsyslog.conf" <<-EOF
	global(workDirectory="$r/work")
	module(load="imuxsock" SysSock.Use="off")
	input(type="imuxsock" Socket="$r/log.sock" UseSpecialParser="off" ParseHostname="on"
	      RateLimit.Interval="0")
	template(name="fields" type="string"
	         string="%timereported:::date-rfc3339%\t%hostname%\t%app-name%\t%procid%\t%msgid%\t%pri%\t%structured-data%\t%msg%\n")
	*.* action(type="omfile" file="$r/out.log" template="fields")
	EOF
	rsyslogd -n -f "$r/rsyslog.conf" -i "$r/pid" &
	local rs=$!
	for _ in $(seq 100); do [ -S "$r/log.sock" ] && break; sleep 0.05; done
	[ -S "$r/log.sock" ] || { kill $rs; fail "rsyslogd did not make its socket"; return 1; }
	"$AG" export --format syslog --to "unix:$r/log.sock"
	local want; want=$("$AG" export | wc -l)
	for _ in $(seq 100); do [ "$(wc -l < "$r/out.log" 2>/dev/null || echo 0)" -ge "$want" ] && break; sleep 0.05; done
	kill $rs; wait $rs 2>/dev/null || true
	assert_eq "$(wc -l < "$r/out.log")" "$want"
	python3 - "$r/out.log" "$(hostname)" <<-'EOF' || fail "rsyslog's copy does not parse as the stream"
	import re, sys, collections
	rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
	ids, kinds = [], collections.Counter()
	for ts, host, app, procid, msgid, pri, sd, msg in rows:
	    assert app == "agentguard", app
	    assert host == sys.argv[2], host
	    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d\d:\d\d|.*Z", ts), ts
	    m = re.fullmatch(r'\[agentguard@32473((?: [a-z_]+="(?:[^"\\\]]|\\.)*")+)\]', sd)
	    assert m, sd
	    params = dict(re.findall(r' ([a-z_]+)="((?:[^"\\\]]|\\.)*)"', m.group(1)))
	    kinds[msgid] += 1
	    if msgid.startswith("session_"):
	        assert "head" in params and "events" in params, params
	        continue
	    assert params["decision"] in msgid.replace("would-deny", "deny"), (params, msgid)
	    assert procid == params["pid"], (procid, params)
	    # deny is warning (4) under authpriv (10)
	    if msgid == "deny":
	        assert int(pri) == 10 * 8 + 4, pri
	        assert "denied" in params["outcome"], params
	    ids.append(int(params["id"]))
	assert ids == sorted(ids) and len(ids) == len(set(ids)), ids
	assert kinds["session_start"] == 1 and kinds["session_end"] == 1, kinds
	assert kinds["deny"] >= 1 and kinds["snapshot"] >= 40, kinds
	EOF
}

# A receiver on 127.0.0.1 that fails its first two requests: the batch is
# sent again until it is taken, and every record arrives once, in order.
test_webhook_that_fails_twice_gets_every_event_once_in_order() {
	messy_session
	cat > "$T/hook.py" <<-'EOF'
	import http.server, sys
	out, seen = open(sys.argv[1], "ab"), {"n": 0}
	class H(http.server.BaseHTTPRequestHandler):
	    def do_POST(self):
	        body = self.rfile.read(int(self.headers["Content-Length"]))
	        seen["n"] += 1
	        if seen["n"] <= 2:
	            self.send_response(503); self.end_headers(); return
	        out.write(body); out.flush()
	        with open(sys.argv[1] + ".keys", "a") as k:
	            k.write(self.headers["Idempotency-Key"] + "\n")
	        self.send_response(204); self.end_headers()
	    def log_message(self, *a): pass
	s = http.server.HTTPServer(("127.0.0.1", 0), H)
	open(sys.argv[1] + ".port", "w").write(str(s.server_port))
	s.serve_forever()
	EOF
	python3 "$T/hook.py" "$T/got" &
	local hook=$!
	for _ in $(seq 100); do [ -s "$T/got.port" ] && break; sleep 0.05; done
	local port; port=$(cat "$T/got.port")
	"$AG" export --batch 7 --to "http://127.0.0.1:$port/ingest" 2>"$T/err" ||
		{ kill $hook; fail "export to the webhook failed: $(cat "$T/err")"; return 1; }
	kill $hook; wait $hook 2>/dev/null || true
	"$AG" export > "$T/want"
	cmp "$T/got" "$T/want" || fail "the webhook did not get each record once, in order"
	assert_eq "$(sort "$T/got.keys" | uniq -d)" ""
	[ "$(wc -l < "$T/got.keys")" -ge 2 ] || fail "one batch only: the retries were not tested"
	# Nothing listening: export fails and says so, and the cursor stays.
	out=$("$AG" export --retries 2 --cursor-file "$T/cur" --to "http://127.0.0.1:$port/x" 2>&1) &&
		fail "export to a closed port succeeded"
	assert_contains "$out" "the sink did not take records"
	assert_missing "$T/cur"
}

# A collector following a live session is killed (SIGKILL) and started
# again from its cursor file: the file it writes has every record once.
test_collector_killed_and_restarted_resumes_without_gap_or_duplicate() {
	mkdir -p "$WS/d"
	for i in $(seq 1 300); do echo "$i" > "$WS/d/$i"; done
	# Many short processes, so spools finish (and are ingested) all along.
	agrun sh -c 'for i in $(seq 1 300); do rm d/$i; [ $((i % 10)) -eq 0 ] && sleep 0.1; done; true' \
		>/dev/null 2>&1 &
	local agent=$!
	"$AG" export --follow --interval 1 --batch 5 --cursor-file "$T/cursor" --to "$T/got.jsonl" &
	local c=$!
	sleep 1.5
	kill -9 $c; wait $c 2>/dev/null || true
	[ -s "$T/got.jsonl" ] || fail "nothing was exported before the kill"
	local before; before=$(wc -l < "$T/got.jsonl")
	"$AG" export --follow --interval 1 --batch 5 --cursor-file "$T/cursor" --to "$T/got.jsonl" &
	c=$!
	wait $agent
	local sid; sid=$(latest_session)
	for _ in $(seq 100); do
		tail -1 "$T/got.jsonl" | grep -q '"type":"session_end"' && break
		sleep 0.1
	done
	kill $c; wait $c 2>/dev/null || true
	assert_eq "$(ids_of "$T/got.jsonl" | tr '\n' ' ')" "$(db "select id from events order by id" | tr '\n' ' ')"
	assert_eq "$(jq -r 'select(.type != "event") | .type' "$T/got.jsonl" | tr '\n' ' ')" \
		"session_start session_end "
	[ "$before" -lt "$(wc -l < "$T/got.jsonl")" ] || fail "the restart exported nothing"
	# What a one-shot export writes is the same stream.
	"$AG" export > "$T/want.jsonl"
	cmp <(jq -c 'del(.cursor)' "$T/got.jsonl") <(jq -c 'del(.cursor)' "$T/want.jsonl") ||
		fail "the followed stream differs from the log"
}

# Rewriting audit.db after export, even chained again with the key, does not
# match the exported anchors.
test_tampering_after_export_is_caught_by_verify_anchors() {
	messy_session
	"$AG" export > "$T/anchors.jsonl"
	out=$("$AG" verify --anchors "$T/anchors.jsonl") || fail "fresh log vs its anchors: $out"
	assert_contains "$out" "anchors in $T/anchors.jsonl match"
	# The editor holds the key, rewrites the reasons, chains everything
	# again, and removes the heads kept on the machine.
	python3 - "$AGENTGUARD_STATE_DIR/audit.db" "$AGENTGUARD_STATE_DIR/key" <<-'EOF'
	import hashlib, hmac, sqlite3, sys
	cols = ["uid", "time_ns", "session", "pid", "ppid", "proc_start", "exe", "argv",
	        "cwd", "op", "path", "target", "address", "host", "port", "sql",
	        "sql_class", "database", "rule", "decision", "enforced", "reason",
	        "errno", "snapshot", "latency_ns", "unguarded", "layer"]
	db = sqlite3.connect(sys.argv[1])
	key = bytes.fromhex(open(sys.argv[2]).read().strip())
	db.execute("UPDATE events SET decision = 'allow', reason = NULL WHERE decision = 'deny'")
	for sid, genesis in db.execute("SELECT id, genesis FROM sessions").fetchall():
	    prev = genesis
	    for row in db.execute("SELECT id, %s FROM events WHERE session = ? ORDER BY id"
	                          % ", ".join(cols), (sid,)).fetchall():
	        m = prev.encode() + b"\n"
	        for name, v in zip(cols, row[1:]):
	            m += name.encode()
	            if v is None:
	                m += b"" if name == "layer" else b"!\n"
	                continue
	            b = str(v).encode()
	            m += b":%d:" % len(b) + b + b"\n"
	        h = hmac.new(key, m, hashlib.sha256).hexdigest()
	        db.execute("UPDATE events SET prev_hash = ?, hash = ? WHERE id = ?", (prev, h, row[0]))
	        prev = h
	    db.execute("UPDATE sessions SET head = ? WHERE id = ?", (prev, sid))
	# ... and counts the tallies again (verify compares them with the rows).
	db.execute("DELETE FROM tallies")
	db.execute("""INSERT INTO tallies SELECT session, coalesce(op, ''), coalesce(decision, ''),
	    coalesce(enforced, 1) <> 0, coalesce(layer, 'library'), snapshot IS NOT NULL,
	    coalesce(errno, 0) > 0, coalesce((decision IN ('allow', 'log') AND snapshot IS NULL AND
	    coalesce(errno, 0) = 0 AND ((op = 'sql' AND sql_class IN ('update', 'delete',
	    'update_all', 'delete_all', 'truncate', 'drop_table', 'drop_database', 'alter_drop',
	    'ddl') AND substr(coalesce(database, ''), 1, 1) <> '/' AND
	    coalesce(database, '') <> ':memory:') OR (decision = 'log' AND op IN ('delete',
	    'rename', 'truncate', 'write')))), 0), count(*) FROM events GROUP BY 1, 2, 3, 4, 5, 6, 7, 8""")
	db.commit()
	EOF
	rm -f "$AGENTGUARD_STATE_DIR/heads"
	out=$("$AG" verify 2>&1) || fail "the rewrite should pass a plain verify (it had the key): $out"
	out=$("$AG" verify --anchors "$T/anchors.jsonl") && fail "verify --anchors passed a rewritten log: $out"
	assert_contains "$out" "TAMPERED"
	assert_contains "$out" "was changed and chained again"
	# Deleting the session's last event is caught too.
	db "DELETE FROM events WHERE id = (SELECT max(id) FROM events)"
	out=$("$AG" verify --anchors "$T/anchors.jsonl") && fail "verify --anchors passed a cut log"
	true
}

# run --alert: a denial reaches the sink while the agent still runs, and the
# halt of a session that hit its denial limit follows; nothing else is sent.
test_run_alert_sends_denials_and_the_halt_at_once() {
	mkdir -p "$HOME/.ssh" "$WS/d"
	for i in 1 2 3 4; do echo k > "$HOME/.ssh/k$i"; done
	echo x > "$WS/d/ok"
	cat > "$T/rules.yaml" <<-EOF
	version: 1
	limits: {denials: 2}
	rules:
	  - id: no-keys
	    on: [delete]
	    path: "$HOME/.ssh/**"
	    action: deny
	EOF
	LD_PRELOAD=${AG_ASAN_RT:-} "$AG" run --alert "$T/alerts.jsonl" --rules "$T/rules.yaml" \
		--workspace "$WS" -- sh -c "rm -f '$HOME/.ssh/k1'; rm '$WS/d/ok'; sleep 4;
		for i in 2 3 4; do rm -f '$HOME/.ssh/k'\$i; done; true" >/dev/null 2>&1 &
	local run=$!
	local seen=""
	for _ in $(seq 30); do
		grep -q '"decision":"deny"' "$T/alerts.jsonl" 2>/dev/null && { seen=1; break; }
		sleep 0.1
	done
	kill -0 $run 2>/dev/null || fail "the agent was already done: the test proves nothing"
	[ -n "$seen" ] || fail "no denial in the alert sink within 3 s"
	wait $run
	local sid; sid=$(latest_session)
	assert_eq "$(jq -r 'select(.type == "event") | .path' "$T/alerts.jsonl" | head -1)" "$HOME/.ssh/k1"
	assert_eq "$(jq -r 'select(.type == "session_halt") | .session' "$T/alerts.jsonl")" "$sid"
	assert_eq "$(jq -r 'select(.type == "event") | .decision' "$T/alerts.jsonl" | sort -u)" "deny"
	assert_eq "$(jq -r 'select(.type == "event") | .id' "$T/alerts.jsonl" | sort | uniq -d)" ""
	assert_eq "$(jq -r 'select(.type == "event") | .id' "$T/alerts.jsonl" | wc -l)" \
		"$(db "select count(*) from events where decision = 'deny'")"
	# A sink that cannot be is refused before anything runs.
	out=$("$AG" run --alert 'ftp://x' -- true 2>&1) && fail "run took a bad --alert"
	assert_contains "$out" "--alert wants a sink"
}

# gc counts what removing snapshots frees on disk: a deleted file's blocks,
# not those of a rename's source, whose inode lives on under its new name.
test_gc_dry_run_counts_disk_use_not_content() {
	head -c 1048576 /dev/urandom > "$WS/a"
	head -c 1048576 /dev/urandom > "$WS/b"
	agrun sh -c "rm '$WS/a'; mv '$WS/b' '$WS/c'" >/dev/null 2>&1
	assert_eq "$(db "select count(*) from snapshots")" 2
	local out; out=$("$AG" gc --older-than 0s --dry-run)
	assert_contains "$out" "would free 1.0 MiB on disk (1048576 bytes), 2.0 MiB of content"
}

# OTLP/HTTP JSON: a receiver on 127.0.0.1 at /v1/logs takes the requests
# and finds every record, each at its time, with the fields as attributes.
test_otlp_logs_reach_an_http_receiver() {
	messy_session
	cat > "$T/otlp.py" <<-'EOF'
	import http.server, json, sys
	out = open(sys.argv[1], "a")
	class H(http.server.BaseHTTPRequestHandler):
	    def do_POST(self):
	        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
	        ok = self.path == "/v1/logs" and self.headers["Content-Type"] == "application/json"
	        for rl in body["resourceLogs"]:
	            attrs = {a["key"]: a["value"] for a in rl["resource"]["attributes"]}
	            ok = ok and attrs["service.name"] == {"stringValue": "agentguard"}
	            for sl in rl["scopeLogs"]:
	                for r in sl["logRecords"]:
	                    a = {x["key"]: list(x["value"].values())[0] for x in r["attributes"]}
	                    out.write(json.dumps({"t": r["timeUnixNano"], "sev": r["severityNumber"],
	                                          "a": a, "body": r["body"]["stringValue"]}) + "\n")
	        out.flush()
	        self.send_response(200 if ok else 400); self.end_headers()
	    def log_message(self, *a): pass
	s = http.server.HTTPServer(("127.0.0.1", 0), H)
	open(sys.argv[1] + ".port", "w").write(str(s.server_port))
	s.serve_forever()
	EOF
	python3 "$T/otlp.py" "$T/otlp" &
	local rx=$!
	for _ in $(seq 100); do [ -s "$T/otlp.port" ] && break; sleep 0.05; done
	"$AG" export --format otlp --batch 20 --retries 2 --to "http://127.0.0.1:$(cat "$T/otlp.port")/v1/logs" ||
		{ kill $rx; fail "the receiver refused the OTLP requests"; return 1; }
	kill $rx; wait $rx 2>/dev/null || true
	"$AG" export > "$T/want"
	assert_eq "$(wc -l < "$T/otlp")" "$(wc -l < "$T/want")"
	python3 - "$T/otlp" "$T/want" <<-'EOF' || fail "the OTLP records are not the stream"
	import json, sys
	got = [json.loads(l) for l in open(sys.argv[1])]
	want = [json.loads(l) for l in open(sys.argv[2])]
	for g, w in zip(got, want):
	    assert g["t"] == str(w["time_ns"]), (g, w)
	    assert g["a"]["agentguard.cursor"] == w["cursor"], (g, w)
	    if w["type"] == "event":
	        assert g["a"]["process.pid"] == str(w["pid"]), g
	        assert g["a"]["host.name"] == w["hostname"], g
	        if w.get("path"):
	            assert g["a"]["file.path"] == w["path"], g
	        if w["decision"] == "deny":
	            assert g["sev"] == 13 and g["a"]["error.type"] == w["error"], g
	EOF
}
