# The Landlock floor (kernel layer II): what no process of a session can
# change, whatever code it runs — a program that makes its calls through the
# gate (past the library and the seccomp filter), a static one — and that
# what the floor keeps out of a process's own reach is still made, judged,
# by the supervisor.

# The state dir's files a session must not be able to change.
guard_files() {
	STORE_FILE=$(find "$AGENTGUARD_STATE_DIR/snapshots" -type f | head -1)
	RULES_FILE=$(find "$AGENTGUARD_STATE_DIR/rules" -name '*.yaml' | head -1)
	[ -n "$STORE_FILE" ] && [ -n "$RULES_FILE" ] || fail "no snapshot or frozen rules to attack"
}

# One session first, so there are a log, a snapshot and frozen rules (the
# built-in rules from a file, so that a copy of them is frozen).
first_session() {
	export AGENTGUARD_RULES=$AG_ROOT/rules/default.yaml
	seed kept
	krun rm "$WS/kept" >/dev/null 2>&1
	guard_files
	mkdir -p "$HOME/.ssh"; printf 'KEY\n' > "$HOME/.ssh/id_rsa"
}

test_session_records_the_floor() {
	krun true >/dev/null 2>&1
	assert_contains "$(db "select floor from sessions")" "on: Landlock ABI"
	assert_contains "$(db "select floor from sessions")" "kept from: writing"
	"$AG" run --no-kernel --workspace "$WS" -- true >/dev/null 2>&1
	assert_eq "$(db "select floor from sessions order by start_ns desc limit 1")" "off: --no-kernel"
}

test_a_program_using_the_gate_cannot_touch_the_guard_or_credentials() {
	local g; g=$(kbuild kgate)
	first_session
	local db=$AGENTGUARD_STATE_DIR/audit.db store_sum rules_sum
	store_sum=$(sha256sum < "$STORE_FILE")
	rules_sum=$(sha256sum < "$RULES_FILE")
	seed free
	out=$(krun "$g" rm "$WS/free" rm "$db" write "$db" trunc "$db" link "$db" "$WS/db.link" \
		mv "$db" "$WS/db.moved" mv "$AGENTGUARD_STATE_DIR" "$T/state.moved" \
		mv "$T" "/tmp/moved.$$" rm "$STORE_FILE" write "$STORE_FILE" trunc "$STORE_FILE" \
		mv "$STORE_FILE" "$WS/snap" write "$RULES_FILE" rm "$RULES_FILE" \
		rm "$HOME/.ssh/id_rsa" trunc "$HOME/.ssh/id_rsa" write "$HOME/.ssh/id_rsa" \
		mv "$HOME/.ssh" "$WS/ssh" rmdir "$HOME/.ssh" 2>&1)
	# The gate really is a way past the library and the filter: an
	# ordinary file goes without a row or a snapshot...
	assert_contains "$out" "rm $WS/free: ok"
	assert_missing "$WS/free"
	# ...and the floor is what stops everything else.
	local refused; refused=$(grep -c ': EACCES$\|: EXDEV$' <<<"$out")
	assert_eq "$refused" 18 "$out"
	assert_exists "$db"; assert_exists "$STORE_FILE"; assert_exists "$RULES_FILE"
	assert_missing "$WS/db.link"; assert_missing "$WS/db.moved"; assert_missing "/tmp/moved.$$"
	assert_eq "$(cat "$HOME/.ssh/id_rsa")" KEY
	assert_eq "$(sha256sum < "$STORE_FILE")" "$store_sum"
	assert_eq "$(sha256sum < "$RULES_FILE")" "$rules_sum"
	"$AG" verify >/dev/null || fail "verify after the attacks: $("$AG" verify 2>&1)"
}

test_a_static_program_cannot_touch_the_guard() {
	local k; k=$(kbuild kstatic)
	first_session
	local db=$AGENTGUARD_STATE_DIR/audit.db
	out=$(krun "$k" rm "$db" trunc "$db" mv "$STORE_FILE" "$WS/snap" rm "$STORE_FILE" \
		link "$db" "$WS/db.link" trunc "$RULES_FILE" mv "$AGENTGUARD_STATE_DIR" "$T/moved" \
		mv "$T" "/tmp/moved.$$" trunc "$AGENTGUARD_STATE_DIR/heads" 2>&1)
	assert_eq "$(grep -c ': EACCES$' <<<"$out")" 9 "$out"
	assert_exists "$db"; assert_exists "$STORE_FILE"; assert_missing "$WS/db.link"
	assert_missing "/tmp/moved.$$"
	# The supervisor refused these: they are in the log.
	assert_eq "$(db "select count(*) from events where decision = 'deny' and layer = 'kernel' and rule = 'agentguard-self'")" 9
}

test_the_supervisor_cannot_be_signalled() {
	local g; g=$(kbuild kgate)
	# By the gate, by a static program, by a dynamic one (the shell's
	# builtin, python): refused, and each attempt has its row.
	out=$(krun sh -c "'$g' kill \$PPID; busybox kill -TERM \$PPID; kill -INT \$PPID;
		python3 -c 'import os, sys; os.kill(int(sys.argv[1]), 9)' \$PPID 2>/dev/null ||
		echo python refused; echo still here" 2>&1)
	assert_contains "$out" ": EPERM"
	assert_contains "$out" "python refused"
	assert_contains "$out" "still here"
	assert_contains "$out" "ended: sh exited with status 0"
	ingest
	local sup; sup=$(db "select substr(path, 7) from events where op = 'signal' limit 1")
	assert_eq "$(db "select count(*) from events where op = 'signal' and decision = 'deny' and layer = 'kernel' and path = '/proc/$sup'")" 4
	# Other processes of the session are signalled as usual.
	out=$(krun sh -c 'sleep 30 & busybox kill $!; wait $!; echo "status $?"' 2>&1)
	assert_contains "$out" "status 143"
}

# The chain's key in a quiet directory (as root's default is): no process
# of the session can read it, whatever code it runs; beneath a busy one
# (the state dir in $HOME or /tmp) it stays readable, and the session's
# row says which.
test_the_key_is_unreadable_in_a_quiet_directory() {
	local quiet=/var/lib/agentguard-test.$$ k; k=$(kbuild kstatic)
	export AGENTGUARD_KEY_FILE=$quiet/key
	krun true >/dev/null 2>&1 || { rm -rf "$quiet"; fail "no session"; }
	local secret; secret=$(cat "$quiet/key")
	out=$(krun sh -c "cat '$quiet/key' || echo cat refused; busybox cat '$quiet/key' || echo static refused
		python3 -c 'import os; os.open(\"$quiet/key\", os.O_RDONLY)' 2>/dev/null || echo python refused
		ln '$quiet/key' '$quiet/again' 2>/dev/null; cat '$quiet/again' 2>/dev/null || echo link refused
		cat /etc/hostname >/dev/null && echo others read" 2>&1)
	local floor; floor=$(db "select floor from sessions order by start_ns desc limit 1")
	"$AG" verify >/dev/null 2>&1; local verified=$?
	rm -rf "$quiet"
	assert_not_contains "$out" "$secret"
	for w in cat static python link; do assert_contains "$out" "$w refused"; done
	assert_contains "$out" "others read"
	assert_contains "$floor" "the chain key unreadable"
	assert_eq "$verified" 0
}

# Landlock denies every move across directories in a layer that does not
# grant REFER, handled or not: the key's layer grants it beside what it
# grants, so snapshots (a move into the store) and the session's own
# renames work as without it.
test_under_the_key_layer_files_still_move_across_directories() {
	local quiet=/var/lib/agentguard-test.$$ k; k=$(kbuild kstatic)
	export AGENTGUARD_KEY_FILE=$quiet/key
	seed gone
	mkdir -p "$WS/m1" "$WS/m2"; printf 'moved\n' > "$WS/m1/a"
	out=$(krun sh -c "rm '$WS/gone' && echo removed
		python3 -c 'import os; os.rename(\"$WS/m1/a\", \"$WS/m2/a\")' && echo renamed" 2>&1)
	local floor; floor=$(db "select floor from sessions order by start_ns desc limit 1")
	rm -rf "$quiet"
	assert_contains "$floor" "the chain key unreadable"
	assert_contains "$out" "removed"
	assert_contains "$out" "renamed"
	assert_eq "$(cat "$WS/m2/a")" "moved"
	assert_eq "$(rows delete "$WS/gone")" "snapshot library"
}

test_a_key_beneath_a_busy_directory_is_said_to_be_readable() {
	krun true >/dev/null 2>&1
	assert_contains "$(db "select floor from sessions")" "the chain key is readable: it lies beneath"
}

# Beyond the floor: $HOME is restricted (it holds ~/.ssh), so what is made
# in it during the session is out of the process's own reach. The library
# hands those calls to the supervisor, which judges and makes them.
test_work_beyond_the_floor_is_made_by_the_supervisor() {
	mkdir -p "$HOME/.ssh"; printf 'KEY\n' > "$HOME/.ssh/id_rsa"
	printf 'old\n' > "$HOME/.tool.json"
	printf 'a=1\n' > "$HOME/.toolrc"
	out=$(krun bash -c '
		set -e
		cd "$HOME"
		echo new > .fresh; echo more >> .fresh
		# An atomic replace of an existing file, as agents keep their state.
		echo "{\"v\": 2}" > .tool.json.tmp; mv .tool.json.tmp .tool.json
		mkdir -p made/deeper; echo deep > made/deeper/f; rm made/deeper/f
		sed -i s/a=1/a=2/ .toolrc
		python3 -c "import tempfile; f = tempfile.NamedTemporaryFile(dir=\".\", delete=False); f.write(b\"t\"); f.close(); print(\"temp ok\")"
		# libc'"'"'s mkstemp (a compiler'"'"'s temporaries) in HOME.
		python3 -c "import ctypes, os; b = ctypes.create_string_buffer(os.getcwd().encode() + b\"/t.XXXXXX\"); fd = ctypes.CDLL(None).mkstemp(b); print(\"mkstemp\", fd >= 0 and os.write(fd, b\"m\") == 1)"
		rm .fresh
		echo done' 2>&1) || fail "beyond the floor: $out"
	assert_contains "$out" "temp ok"
	assert_contains "$out" "mkstemp True"
	assert_contains "$out" "done"
	assert_missing "$HOME/.fresh"
	assert_eq "$(cat "$HOME/.tool.json")" '{"v": 2}'
	assert_eq "$(cat "$HOME/.toolrc")" "a=2"
	assert_missing "$HOME/made/deeper/f"
	# Judged by the rules all the same: home configuration is snapshotted.
	assert_eq "$(rows rename "$HOME/.tool.json.tmp")" "snapshot kernel"
	assert_eq "$(rows delete "$HOME/.fresh")" "snapshot kernel"
	assert_eq "$(rows rename "$HOME/$(db "select substr(path, length('$HOME') + 2) from events where op = 'rename' and target = '$HOME/.toolrc'")")" "snapshot kernel"
	assert_eq "$(cat "$HOME/.ssh/id_rsa")" KEY
}

test_credentials_beyond_the_floor_stay_refused() {
	mkdir -p "$HOME/.ssh"; printf 'KEY\n' > "$HOME/.ssh/id_rsa"
	out=$(krun bash -c 'rm -f ~/.ssh/id_rsa; echo x > ~/.ssh/id_rsa; mv ~/.ssh ~/ssh.moved; true' 2>&1)
	assert_eq "$(cat "$HOME/.ssh/id_rsa")" KEY
	assert_missing "$HOME/ssh.moved"
	assert_contains "$out" "denied delete $HOME/.ssh/id_rsa"
}

# The counters the circuit breaker reads are the supervisor's: a process of
# the session can neither write them nor map them writable.
test_a_halted_session_stays_halted_whatever_its_processes_write() {
	local g k; g=$(kbuild kgate); k=$(kbuild kstatic)
	breaker_session_setup
	cat > "$T/unhalt.py" <<-'EOF2'
	import mmap, os, sys
	p = sys.argv[1]
	try:
	    fd = os.open(p, os.O_RDWR)
	    print("open rw: ok")
	except OSError as e:
	    print("open rw:", e.strerror)
	    fd = os.open(p, os.O_RDONLY)
	try:
	    mmap.mmap(fd, 4096, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)[0:16] = bytes(16)
	    print("map rw: ok")
	except (OSError, TypeError) as e:
	    print("map rw:", e)
	EOF2
	out=$("$AG" run --require-kernel --rules "$T/breaker.yaml" --workspace "$WS" -- sh -c '
		rm -f ~/.ssh/id_rsa; rm -f ~/.ssh/id_rsa
		c=$AGENTGUARD_STATE_DIR/rules/$AGENTGUARD_SESSION.counters
		"$1" write "$c" trunc "$c" rm "$c"
		"$4" trunc "$c" rm "$c"
		python3 "$2" "$c"
		rm "$3"; echo "rm: $?"' sh "$g" "$T/unhalt.py" "$WS/after" "$k" 2>&1)
	assert_eq "$(grep -c ': EACCES$' <<<"$out")" 5 "$out"
	assert_contains "$out" "open rw: Permission denied"
	assert_not_contains "$out" "map rw: ok"
	assert_contains "$out" "rm: 1"
	assert_exists "$WS/after"
	assert_contains "$(db "select reason from events where path = '$WS/after'")" "session halted"
}

# mkstemp and its kin, made by the library under the floor: in the
# workspace (through the gate) and in HOME (where the floor hands the open
# to the supervisor), each a new file with the template's suffix kept.
test_mkstemp_and_its_kin_under_the_floor() {
	mkdir -p "$HOME/.ssh"; printf 'KEY\n' > "$HOME/.ssh/id_rsa"
	cat > "$T/temps.py" <<-'EOF2'
	import ctypes, os, sys
	libc = ctypes.CDLL(None, use_errno=True)
	calls = [("mkstemp", ()), ("mkstemp64", ()), ("mkostemp", (os.O_CLOEXEC,)),
	         ("mkostemp64", (os.O_CLOEXEC,)), ("mkstemps", (4,)), ("mkstemps64", (4,)),
	         ("mkostemps", (4, os.O_CLOEXEC)), ("mkostemps64", (4, os.O_CLOEXEC))]
	for d in sys.argv[1:]:
	    for name, extra in calls:
	        suffix = ".tmp" if extra and extra[0] == 4 else ""
	        b = ctypes.create_string_buffer((d + "/" + name + ".XXXXXX" + suffix).encode())
	        fd = getattr(libc, name)(b, *extra)
	        made = b.value.decode()
	        ok = fd >= 0 and "XXXXXX" not in made and made.endswith(suffix) and os.write(fd, b"x") == 1
	        print(name, d, "ok" if ok else os.strerror(ctypes.get_errno()))
	    b = ctypes.create_string_buffer(b"bad")
	    print("einval", libc.mkstemp(b) == -1 and ctypes.get_errno() == 22)
	EOF2
	out=$(krun python3 "$T/temps.py" "$WS" "$HOME" 2>&1)
	assert_eq "$(grep -c ' ok$' <<<"$out")" 16 "$out"
	assert_contains "$out" "einval True"
	assert_eq "$(ls "$WS" | grep -c '^mk')" 8
	assert_eq "$(ls "$HOME" | grep -c '^mk')" 8
}
