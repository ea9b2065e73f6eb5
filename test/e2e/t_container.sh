# Container-wide mode (/etc/ld.so.preload) without docker: a private mount
# and pid namespace whose /etc is a copy of the host's bind-mounted over
# /etc inside the namespace only (the host's /etc is never written). Its
# init is `sleep`, started before the guard is installed, as a container's
# init would be; every "docker exec" is a separate nsenter into it with a
# clean environment, so nothing but the container ties its commands together.

CTR_INIT=

# /etc/ld.so.preload loads the library into programs that do not load
# ASan's runtime first, so a sanitized build cannot be installed that way
# (agentguard-container checks, and refuses): those tests are for the
# real build.
ctr_preloadable() {
	[ -z "${AG_ASAN_RT:-}" ] && return 0
	echo "skipped: a sanitized library cannot go into /etc/ld.so.preload"
	return 77
}

# Start the "container": its init's pid in CTR_INIT, or 77 when namespaces
# cannot be made here.
ctr_start() {
	if [ "$(id -u)" != 0 ] || ! unshare --mount --pid --fork --mount-proc true 2>/dev/null; then
		echo "unshare --mount --pid --fork is not permitted here (needs root and namespaces): skipped"
		return 77
	fi
	cp -a /etc "$T/etc"
	mkdir -p "$T/state"
	chmod 755 "$T"
	unshare --mount --pid --fork --mount-proc \
		sh -c 'mount --bind "$1/etc" /etc && exec sleep 600' sh "$T" </dev/null >/dev/null 2>&1 &
	local up=$! i
	for i in $(seq 100); do
		CTR_INIT=$(cat /proc/$up/task/$up/children 2>/dev/null | tr -d ' ')
		[ -n "$CTR_INIT" ] && [ "$(readlink /proc/$CTR_INIT/exe)" = "$(readlink -f "$(command -v sleep)")" ] && break
		sleep 0.05
	done
	[ -n "$CTR_INIT" ] || fail "the namespace's init did not start"
	# Ends the "container" however the test ends.
	trap 'kill -9 '"$CTR_INIT"' 2>/dev/null || true; chmod -R u+w "$T" 2>/dev/null; rm -rf "$T"' EXIT
	# Its /etc is the copy, and the host's is not.
	touch "$T/etc/.agtest-mark"
	[ -e /proc/$CTR_INIT/root/etc/.agtest-mark ] || fail "the namespace does not see the copy of /etc"
	[ ! -e /etc/.agtest-mark ] || fail "the host sees the namespace's /etc"
	rm "$T/etc/.agtest-mark"
}

# A `docker exec`: a new process in the container's namespaces, with a
# clean environment (extra VAR=value words first, as env takes them).
ctr_exec() {
	local vars=()
	while [[ $1 == [A-Z]*=* ]]; do vars+=("$1"); shift; done
	env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME="$HOME" \
		AGENTGUARD_STATE_DIR="$T/state" AGENTGUARD_WORKSPACE="$WS" "${vars[@]}" \
		nsenter -t "$CTR_INIT" -m -p --wd="$WS" -- "$@"
}

# Names, types, modes, owners, sizes, link targets and contents of a /etc
# (and the times of ld.so.preload).
etc_sig() {
	(cd "$1" && find . -printf '%p %y %m %U %G %s %l\n' | LC_ALL=C sort &&
	 find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum &&
	 if [ -e ld.so.preload ]; then stat -c '%n %.9Y' ld.so.preload; fi)
}

ctr_sessions() { ctr_exec "$AG" sessions --json 2>/dev/null; }

test_container_one_session_report_and_clean_removal() {
	ctr_preloadable || return $?
	ctr_start || return $?
	local libc
	libc=$(ldd /bin/true | awk '$1 ~ /^libc\.so/ {print $3}')
	# An ld.so.preload of the container's own, formatted its own way (two
	# entries, ':' and blanks between, no newline at the end).
	printf '  %s :%s' "$libc" "$libc" >"$T/etc/ld.so.preload"
	chmod 640 "$T/etc/ld.so.preload"
	local before
	before=$(etc_sig "$T/etc")
	[ ! -e /etc/ld.so.preload ] || fail "the host has an /etc/ld.so.preload: not testing on it"

	ctr_exec "$AG_ROOT/tools/agentguard-container" install-preload --lib "$AG_LIB"
	grep -qxF "$AG_LIB" "$T/etc/ld.so.preload" || fail "install-preload did not add the library"
	[ ! -e /etc/ld.so.preload ] || fail "install-preload wrote the host's /etc"
	grep -qF ":$libc" "$T/etc/ld.so.preload" || fail "install-preload lost the file's own entries"

	mkdir -p "$HOME/.ssh"
	echo key >"$HOME/.ssh/id_test"
	echo one >"$WS/f1"
	echo two >"$WS/f2"
	echo three >"$WS/f3"
	# Three "docker exec"s, all at once: one session among them.
	ctr_exec rm "$WS/f1" & local p1=$!
	ctr_exec sh -c 'rm "$1"' sh "$WS/f2" & local p2=$!
	ctr_exec rm -f "$HOME/.ssh/id_test" 2>"$T/denied.err" & local p3=$!
	wait $p1 $p2
	local rc3=0; wait $p3 || rc3=$?
	[ "$rc3" != 0 ] || fail "deleting a credential was not refused: $(cat "$T/denied.err")"
	assert_contains "$(cat "$T/denied.err")" "agentguard: denied delete $HOME/.ssh/id_test"
	assert_missing "$WS/f1"
	assert_missing "$WS/f2"
	assert_exists "$HOME/.ssh/id_test"
	ls "$T/state/containers" >/dev/null || fail "no container session file"
	assert_eq "$(ls "$T/state/containers" | wc -l)" 1 "(container session files)"

	# Inside: read-only, from the spools (there is no audit.db yet).
	local out
	out=$(ctr_sessions)
	assert_eq "$(jq -s 'length' <<<"$out")" 1 "(sessions seen inside: $out)"
	local sid
	sid=$(jq -r '.id' <<<"$out")
	assert_eq "$(jq -r '.end' <<<"$out")" null "(a running container's session has no end)"
	out=$(ctr_exec "$AG" report 2>"$T/report.err")
	assert_contains "$out" "$sid"
	assert_contains "$out" "$HOME/.ssh/id_test"
	assert_contains "$out" "$WS/f1"
	assert_contains "$out" "$WS/f2"
	assert_contains "$(cat "$T/report.err")" "read-only"
	out=$(ctr_exec "$AG" report --json)
	assert_eq "$(jq -r 'select(.op=="delete" and .decision=="deny") | .path' <<<"$out")" "$HOME/.ssh/id_test"
	assert_eq "$(jq -r 'select(.op=="delete" and .decision=="snapshot") | .path' <<<"$out" | sort | tr '\n' ' ')" \
		"$WS/f1 $WS/f2 "
	assert_eq "$(jq -r '.session' <<<"$out" | sort -u)" "$sid" "(every event in the one session)"
	ctr_exec "$AG" verify >/dev/null 2>&1 || fail "verify does not work inside"
	local snap
	snap=$(jq -r 'select(.path=="'"$WS/f1"'") | .snapshot' <<<"$out")
	assert_contains "$(ctr_exec "$AG" show "$snap" 2>/dev/null)" "$WS/f1"
	ctr_exec "$AG" export >"$T/export.jsonl" 2>/dev/null || fail "export does not work inside"
	grep -qF "$HOME/.ssh/id_test" "$T/export.jsonl" || fail "export inside left out the denial"
	# Nothing the inside commands did wrote the guard's files.
	assert_missing "$T/state/audit.db"
	# A restore writes: refused, and says where to run it.
	! ctr_exec "$AG" restore "$snap" 2>"$T/restore.err" || fail "restore ran inside"
	assert_contains "$(cat "$T/restore.err")" "outside the session"

	# A session key gives a `docker exec` one of its own.
	ctr_exec AGENTGUARD_SESSION_KEY=task-2 rm "$WS/f3"
	assert_eq "$(ctr_sessions | jq -s 'length')" 2 "(a session key starts its own session)"
	assert_eq "$(ls "$T/state/containers" | wc -l)" 2

	# From inside, remove-preload refuses and leaves /etc as it is.
	local installed
	installed=$(etc_sig "$T/etc")
	! ctr_exec "$AG_ROOT/tools/agentguard-container" remove-preload 2>"$T/remove.err" ||
		fail "remove-preload ran inside the guarded container"
	assert_contains "$(cat "$T/remove.err")" "--root /proc/"
	assert_eq "$(etc_sig "$T/etc")" "$installed" "(remove-preload inside changed /etc)"

	# From the host, naming the container's root: /etc exactly as before.
	"$AG_ROOT/tools/agentguard-container" remove-preload --root "/proc/$CTR_INIT/root"
	assert_eq "$(etc_sig "$T/etc")" "$before" "(/etc after install-preload and remove-preload)"

	# The host sees the container running, then its init exit: the end.
	out=$("$AG" sessions --json 2>/dev/null)
	assert_eq "$(jq -r 'select(.id=="'"$sid"'") | .end' <<<"$out")" null "(ended too early)"
	kill -9 "$CTR_INIT"
	local i
	for i in $(seq 100); do [ -e /proc/$CTR_INIT ] || break; sleep 0.05; done
	out=$("$AG" sessions --json 2>"$T/sessions.err")
	[ "$(jq -r 'select(.id=="'"$sid"'") | .end' <<<"$out")" != null ] ||
		fail "the container's session did not end with its init: $out"
	assert_contains "$(cat "$T/sessions.err")" "container session $sid has ended"
	assert_eq "$(ls "$T/state/containers" | wc -l)" 0 "(ended sessions' files are gone)"
	# Its events went into the log with it.
	assert_eq "$(db "select count(*) from events where session='$sid' and op='delete' and decision in ('deny','snapshot')")" 3
}

test_container_fresh_etc_without_preload_restored() {
	ctr_preloadable || return $?
	ctr_start || return $?
	rm -f "$T/etc/ld.so.preload"
	local before
	before=$(etc_sig "$T/etc")
	ctr_exec "$AG_ROOT/tools/agentguard-container" install-preload --lib "$AG_LIB"
	assert_eq "$(cat "$T/etc/ld.so.preload")" "$AG_LIB"
	assert_eq "$(stat -c '%a %u' "$T/etc/ld.so.preload")" "644 0"
	# Running it again changes nothing.
	local once
	once=$(etc_sig "$T/etc")
	ctr_exec "$AG_ROOT/tools/agentguard-container" install-preload --lib "$AG_LIB" | grep -q 'already'
	assert_eq "$(etc_sig "$T/etc")" "$once"
	"$AG_ROOT/tools/agentguard-container" remove-preload --root "/proc/$CTR_INIT/root"
	assert_eq "$(etc_sig "$T/etc")" "$before" "(/etc after install-preload and remove-preload)"
	assert_missing "$T/etc/ld.so.preload"
	assert_missing "/proc/$CTR_INIT/root/var/lib/agentguard/preload/state"
}

# An agent's own sandbox (Codex's workspace-write mode, say) may keep the
# state dir read-only for the agent's processes: here a read-only bind
# mount in a mount namespace of their own. What they are refused is said
# loudly, with what to do, and the run's summary counts it.
test_unwritable_state_dir_is_loud_and_counted() {
	if [ "$(id -u)" != 0 ] || ! unshare --mount true 2>/dev/null; then
		echo "unshare --mount is not permitted here (needs root): skipped"
		return 77
	fi
	echo one >"$WS/f1"
	echo two >"$WS/f2"
	local out
	out=$(LD_PRELOAD=${AG_ASAN_RT:-} "$AG" run --no-kernel --workspace "$WS" -- \
		unshare --mount sh -c 'mount --bind -o ro "$1" "$1" && rm "$2"; rm "$3"; exit 0' \
		sh "$AGENTGUARD_STATE_DIR" "$WS/f1" "$WS/f2" 2>&1)
	assert_exists "$WS/f1"
	assert_exists "$WS/f2"
	assert_contains "$out" "WARNING: the state dir $AGENTGUARD_STATE_DIR cannot be written"
	assert_contains "$out" "writable_roots"
	# Once per process: one rm each.
	assert_eq "$(grep -c 'WARNING: the state dir' <<<"$out")" 2
	assert_contains "$out" "2 denied (2 of them not in the log)"
	assert_contains "$out" "DENIED WITHOUT A RECORD"
	assert_not_contains "$out" " 0 denied"
}
