# The trail: a keyed chain an editor without the key cannot make agree again,
# and session heads kept where the session cannot reach them, against which
# verify checks a log.

# rehash [KEYFILE]: rewrite every row's reason and chain the log again from
# outside, as lib/audit.c does, keyed with KEYFILE's key or not keyed.
rehash() {
	python3 - "$AGENTGUARD_STATE_DIR/audit.db" "${1:-}" <<-'EOF'
	import hashlib, hmac, sqlite3, sys
	cols = ["uid", "time_ns", "session", "pid", "ppid", "proc_start", "exe", "argv",
	        "cwd", "op", "path", "target", "address", "host", "port", "sql",
	        "sql_class", "database", "rule", "decision", "enforced", "reason",
	        "errno", "snapshot", "latency_ns", "unguarded", "layer"]
	db = sqlite3.connect(sys.argv[1])
	key = bytes.fromhex(open(sys.argv[2]).read().strip()) if sys.argv[2] else None
	db.execute("UPDATE events SET reason = 'nothing happened here'")
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
	        h = (hmac.new(key, m, hashlib.sha256) if key else hashlib.sha256(m)).hexdigest()
	        db.execute("UPDATE events SET prev_hash = ?, hash = ? WHERE id = ?", (prev, h, row[0]))
	        prev = h
	    db.execute("UPDATE sessions SET head = ? WHERE id = ?", (prev, sid))
	db.commit()
	EOF
}

a_session() {
	seed gone
	krun sh -c "rm '$WS/gone'; rm -f '$HOME/.ssh/id_rsa'; true" >/dev/null 2>&1
}

test_an_edit_rehashed_without_the_key_fails_verify() {
	mkdir -p "$HOME/.ssh"; printf 'KEY\n' > "$HOME/.ssh/id_rsa"
	a_session
	"$AG" verify >/dev/null || fail "a fresh log does not verify"
	local copy=$T/audit.copy
	cp "$AGENTGUARD_STATE_DIR/audit.db" "$copy"
	# Whoever holds the key can chain the log again (the editor's script is
	# right: with the heads kept here gone too, verify has nothing else)...
	rehash "$AGENTGUARD_STATE_DIR/key"
	mv "$AGENTGUARD_STATE_DIR/heads" "$T/heads.kept"
	"$AG" verify >/dev/null || fail "rehashed with the key: $("$AG" verify 2>&1)"
	mv "$T/heads.kept" "$AGENTGUARD_STATE_DIR/heads"
	# ...whoever does not, cannot.
	cp "$copy" "$AGENTGUARD_STATE_DIR/audit.db"
	rm -f "$AGENTGUARD_STATE_DIR/audit.db-wal" "$AGENTGUARD_STATE_DIR/audit.db-shm"
	rehash
	out=$("$AG" verify 2>&1) && fail "verify passed a log rehashed without the key: $out"
	assert_contains "$out" "was changed"
}

test_a_replaced_key_is_named() {
	a_session
	rm -f "$AGENTGUARD_STATE_DIR/key"
	head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$AGENTGUARD_STATE_DIR/key"
	out=$("$AG" verify 2>&1) && fail "verify passed with another key: $out"
	assert_contains "$out" "the key was replaced"
	out=$(krun true 2>&1) && fail "a session ran on a log keyed with another key: $out"
	assert_contains "$out" "is not the one this log was keyed with"
}

test_a_missing_key_fails_verify() {
	a_session
	rm -f "$AGENTGUARD_STATE_DIR/key"
	out=$("$AG" verify 2>&1) && fail "verify passed without its key: $out"
	assert_contains "$out" "its key is missing"
}

test_the_session_cannot_touch_the_key() {
	local g k; g=$(kbuild kgate); k=$(kbuild kstatic)
	a_session
	local key=$AGENTGUARD_STATE_DIR/key sum; sum=$(sha256sum < "$key")
	out=$(krun sh -c "'$g' rm '$key' write '$key' trunc '$key' mv '$key' '$WS/k'; '$k' rm '$key' trunc '$key'" 2>&1)
	assert_eq "$(grep -c ': EACCES$' <<<"$out")" 6 "$out"
	assert_eq "$(sha256sum < "$key")" "$sum"
}

test_an_old_unkeyed_log_is_keyed_once_and_verifies() {
	a_session
	# As an older agentguard left it: chained without a key, no heads.
	rehash
	sqlite3 "$AGENTGUARD_STATE_DIR/audit.db" "DELETE FROM meta WHERE key = 'chain_key'"
	rm "$AGENTGUARD_STATE_DIR/heads"
	krun true >/dev/null 2>&1
	"$AG" verify >/dev/null || fail "the keyed log does not verify: $("$AG" verify 2>&1)"
	assert_eq "$(db "select count(*) from meta where key = 'chain_key'")" 1
	# Now keyed: the unkeyed rehash no longer passes.
	rehash
	"$AG" verify >/dev/null 2>&1 && fail "an unkeyed rehash passed a keyed log"
	true
}

test_heads_kept_and_exported_anchor_the_log() {
	a_session
	krun true >/dev/null 2>&1
	assert_eq "$(wc -l < "$AGENTGUARD_STATE_DIR/heads")" 2
	local id; id=$(db "select id from sessions order by start_ns limit 1")
	assert_contains "$(head -1 "$AGENTGUARD_STATE_DIR/heads")" "\"session\":\"$id\""
	cp "$AGENTGUARD_STATE_DIR/heads" "$T/exported"
	out=$("$AG" verify --heads "$T/exported" 2>&1) || fail "verify against exported heads: $out"
	assert_contains "$out" "2 anchors in $T/exported match"
	# An editor with the key chains the log again: the heads kept here
	# catch it...
	rehash "$AGENTGUARD_STATE_DIR/key"
	out=$("$AG" verify 2>&1) && fail "verify passed a log that no longer matches its heads: $out"
	assert_contains "$out" "does not match the head kept for it"
	# ...and when they are rewritten too, the exported ones still do.
	rm "$AGENTGUARD_STATE_DIR/heads"
	"$AG" verify >/dev/null || fail "no heads here: $("$AG" verify 2>&1)"
	out=$("$AG" verify --heads "$T/exported" 2>&1) && fail "exported heads did not catch it: $out"
	assert_contains "$out" "session $id does not match the head kept for it ($T/exported:1)"
}

test_the_session_cannot_touch_the_heads() {
	local g; g=$(kbuild kgate)
	a_session
	local heads=$AGENTGUARD_STATE_DIR/heads sum; sum=$(sha256sum < "$heads")
	out=$(krun "$g" rm "$heads" write "$heads" trunc "$heads" 2>&1)
	assert_eq "$(grep -c ': EACCES$' <<<"$out")" 3 "$out"
	assert_eq "$(head -1 "$heads" | sha256sum)" "$sum"
}

# The supervisor owns the log: a deny row leaves the process before the
# call returns, so what the process then does to its own spool (here: zero
# every record in its mapping) cannot take it back.
test_a_process_cannot_erase_its_deny_rows_from_its_spool() {
	local fakebin; fakebin=$(fake_terraform)
	cat > "$T/erase.py" <<-'EOF2'
	import ctypes, os, sys
	try:
	    os.execv(sys.argv[1], [sys.argv[1], "destroy", "-auto-approve"])
	except PermissionError:
	    print("denied")
	libc = ctypes.CDLL(None)
	erased = 0
	for line in open("/proc/self/maps"):
	    if line.rstrip().endswith(".spool") and "rw-s" in line:
	        lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
	        libc.memset(ctypes.c_void_p(lo + 256), 0, hi - lo - 256)
	        erased += 1
	print("erased", erased)
	EOF2
	out=$(krun python3 "$T/erase.py" "$fakebin/terraform" 2>&1)
	assert_contains "$out" "denied"
	assert_contains "$out" "erased 1"
	assert_missing "$T/marker"
	assert_eq "$(db "select decision || ' ' || rule from events where op = 'exec' and path = '$fakebin/terraform'")" "deny no-infra-destroy"
	"$AG" verify >/dev/null || fail "verify: $("$AG" verify 2>&1)"
	# Without the kernel layer the same erasure takes the row with it: the
	# library alone cannot keep what its process overwrites.
	out=$("$AG" run --no-kernel --workspace "$WS" -- python3 "$T/erase.py" "$fakebin/terraform" 2>&1)
	assert_contains "$out" "erased 1"
	assert_eq "$(db "select count(*) from events where op = 'exec' and path = '$fakebin/terraform'")" 1
}

# The rest within a bounded time: a process that records once and then stays
# quiet still has its record copied within 100 ms, so erasing it later
# takes nothing away.
test_a_quiet_process_cannot_erase_its_rows_later() {
	seed gone also
	cat > "$T/later.py" <<-'EOF2'
	import ctypes, os, sys, time
	os.remove(sys.argv[1])
	os.remove(sys.argv[2])
	time.sleep(0.5)
	libc = ctypes.CDLL(None)
	for line in open("/proc/self/maps"):
	    if line.rstrip().endswith(".spool") and "rw-s" in line:
	        lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
	        libc.memset(ctypes.c_void_p(lo + 256), 0, hi - lo - 256)
	        print("erased")
	EOF2
	out=$(krun python3 "$T/later.py" "$WS/gone" "$WS/also" 2>&1)
	assert_contains "$out" "erased"
	assert_eq "$(rows delete "$WS/gone")" "snapshot library"
	assert_eq "$(rows delete "$WS/also")" "snapshot library"
}
