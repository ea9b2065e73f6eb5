# Rows lost or wrong: the snapshot budget, files that are not files,
# spools deleted or never made, cut argvs, refusals of a broken guard.

# A small tmpfs at $1 (size $2), unmounted when the test ends.
small_mount() {
	mkdir -p "$1"
	mount -t tmpfs -o "size=$2" tmpfs "$1" || return 1
	trap "umount -l '$1' 2>/dev/null; chmod -R u+w '$T' 2>/dev/null; rm -rf '$T'" EXIT
}

# Snapshot every delete and truncation in the workspace, budget $1.
budget_rules() {
	cat > "$T/rules.yaml" <<YAML
version: 1
snapshots: {max_bytes: $1}
rules:
  - id: keep-workspace
    on: [delete, rename, truncate]
    path: "\$WORKSPACE/**"
    action: snapshot
YAML
}

test_sparse_file_over_the_budget_is_refused_before_anything_is_copied() {
	# The store is on a 64 MiB filesystem of its own: a delete cannot be
	# a move, so the snapshot would be a copy. Had the 10 GiB been copied
	# before the budget was looked at, the copy would have hit ENOSPC.
	small_mount "$AGENTGUARD_STATE_DIR" 64m
	budget_rules 1MiB
	truncate -s 10G "$WS/big"
	err=$(AGENTGUARD_RULES=$T/rules.yaml guard rm "$WS/big" 2>&1) && fail "rm should be refused"
	assert_contains "$err" "snapshots.max_bytes"
	assert_eq "$(stat -c %s "$WS/big")" 10737418240
	ingest
	assert_eq "$(db "select decision, enforced from events where op='delete' and path='$WS/big'")" "deny|1"
	assert_contains "$(db "select reason from events where op='delete' and path='$WS/big'")" "snapshots.max_bytes"
	assert_eq "$(find "$AGENTGUARD_STATE_DIR/snapshots" -type f 2>/dev/null | wc -l)" 0
	assert_eq "$(db "select count(*) from snapshots")" 0
}

test_sparse_file_is_snapshotted_sparse_and_restored_identical() {
	small_mount "$AGENTGUARD_STATE_DIR" 64m
	budget_rules 1GiB
	# 256 MiB apparent, two small data extents: the copy must keep the hole
	# (a full copy would not fit the 64 MiB store).
	printf 'head' > "$WS/sparse"
	truncate -s 256M "$WS/sparse"
	printf 'tail' >> "$WS/sparse"
	want=$(sha256sum < "$WS/sparse")
	AGENTGUARD_RULES=$T/rules.yaml guard rm "$WS/sparse"
	assert_missing "$WS/sparse"
	ingest
	store=$(db "select store from snapshots where path='$WS/sparse'")
	[ -n "$store" ] || fail "no snapshot row"
	blocks=$(stat -c %b "$AGENTGUARD_STATE_DIR/$store")
	[ "$blocks" -lt 2048 ] || fail "store entry takes $blocks blocks: the hole was filled"
	assert_eq "$(db "select size from snapshots where path='$WS/sparse'")" 268435460
	"$AG" restore "$(db "select id from snapshots where path='$WS/sparse'")"
	assert_eq "$(sha256sum < "$WS/sparse")" "$want"
	[ "$(stat -c %b "$WS/sparse")" -lt 2048 ] || fail "restored copy is not sparse"
}

test_fifo_and_device_come_back_a_socket_is_reported_not_restorable() {
	mkfifo -m 640 "$WS/fifo"
	touch -d '2021-03-04 05:06:07.5' "$WS/fifo"
	mknod -m 604 "$WS/null2" c 1 3
	python3 -c 'import socket; socket.socket(socket.AF_UNIX).bind("'"$WS/sock"'")'
	[ -S "$WS/sock" ] || fail "no socket to test with"
	want=$(stat -c '%F %a %Y %t %T' "$WS/fifo" "$WS/null2")
	guard rm "$WS/fifo" "$WS/sock" "$WS/null2"
	assert_missing "$WS/fifo"; assert_missing "$WS/sock"; assert_missing "$WS/null2"
	ingest
	assert_eq "$(db "select group_concat(kind, ',') from (select kind from snapshots order by path)")" "fifo,device,socket"
	out=$("$AG" restore --session "$(latest_session)") || fail "restore --session should succeed: $out"
	assert_eq "$(stat -c '%F %a %Y %t %T' "$WS/fifo" "$WS/null2")" "$want"
	assert_missing "$WS/sock"
	assert_contains "$out" "not restorable $WS/sock: a socket cannot be restored"
	# Asked for by its id, it is a failure.
	sock=$(db "select id from snapshots where kind='socket'")
	out=$("$AG" restore "$sock") && fail "restoring the socket by id should fail"
	assert_contains "$out" "a socket cannot be restored"
	assert_contains "$("$AG" report)" "a socket: recorded, but it cannot be restored"
}

test_rows_written_after_the_state_dir_was_removed_reach_the_log() {
	for i in $(seq 1 10); do : > "$WS/a$i"; done
	for i in $(seq 1 100); do : > "$WS/b$i"; done
	# One process throughout: it deletes, waits while the state dir is
	# removed under it, then deletes more.
	# (/usr/bin/python3, not a shim that execs it: the session's first
	# process is the one that holds the session row.)
	guard /usr/bin/python3 -c '
import os, sys, time
ws, t = sys.argv[1], sys.argv[2]
for i in range(1, 11): os.remove(f"{ws}/a{i}")
os.mkdir(f"{t}/phase1")
while not os.path.isdir(f"{t}/go"): time.sleep(0.01)
for i in range(1, 101): os.remove(f"{ws}/b{i}")
' "$WS" "$T" &
	pid=$!
	for i in $(seq 500); do [ -d "$T/phase1" ] && break; sleep 0.02; done
	rm -rf "$AGENTGUARD_STATE_DIR"
	mkdir "$T/go"
	wait $pid
	ingest
	# The file is looked for every 16 records: at most 15 went into the
	# deleted one.
	n=$(db "select count(*) from events where op='delete' and path like '$WS/b%'")
	[ "$n" -ge 85 ] || fail "only $n of 100 later deletes reached the log"
	assert_contains "$(db "select what from gaps")" "spool file holding them was deleted"
	# The session row came back with the new spool.
	assert_eq "$(db "select count(*) from sessions where argv like '%python3%'")" 1
	# ... and what the later deletes kept can still be restored.
	"$AG" restore --session "$(latest_session)" >/dev/null
	assert_exists "$WS/b100"
}

test_session_started_on_a_full_disk_is_recorded_once_space_is_back() {
	small_mount "$AGENTGUARD_STATE_DIR" 2m   # room for a fresh log and its WAL; the filler takes the rest
	head -c 4M /dev/zero > "$AGENTGUARD_STATE_DIR/filler" 2>/dev/null || true
	for i in $(seq 1 200); do : > "$WS/f$i"; done
	# Deletes are refused while nothing can be recorded; the test frees
	# space once the first refusal is seen, and the process goes on until
	# one delete goes through.
	guard /usr/bin/python3 -c '
import os, sys, time
ws, t = sys.argv[1], sys.argv[2]
refused = 0
for i in range(1, 201):
    try:
        os.remove(f"{ws}/f{i}")
        break
    except PermissionError:
        refused += 1
        if refused == 1: os.mkdir(f"{t}/refused")
        time.sleep(0.05)
open(f"{t}/count", "x").write(str(refused))
' "$WS" "$T" 2>"$T/err" &
	pid=$!
	for i in $(seq 500); do [ -d "$T/refused" ] && break; sleep 0.02; done
	rm -f "$AGENTGUARD_STATE_DIR/filler"
	wait $pid
	assert_contains "$(cat "$T/err")" "the audit log cannot be written"
	refused=$(cat "$T/count")
	[ "$refused" -ge 1 ] || fail "nothing was refused on the full disk"
	ingest
	assert_eq "$(db "select count(*) from sessions where argv like '%python3%' and mode is not null")" 1
	assert_eq "$(db "select what from gaps")" "$refused decisions could not be recorded"
	assert_eq "$(db "select count(*) from events where op='delete' and decision='snapshot'")" 1
}

test_a_cut_argv_says_so() {
	guard python3 -c 'import os; os.execv("/bin/true", ["true"] + ["x" * 1000] * 100)'
	ingest
	argv=$(db "select argv from events where op='exec' and path like '%/true'")
	# "true" and 32 words of 1001 bytes fit in 32 KiB; 68 words do not.
	tail=${argv: -60}   # (the whole argv would drown a failure message)
	assert_contains "$tail" 'xxxx",{"truncated_bytes":68068,"truncated_words":68}]'
	assert_eq "$(db "select json_array_length(argv) from events where op='exec' and path like '%/true'")" 34
	out=$("$AG" report --decision allow)
	assert_contains "$out" "[argv truncated: 68068 more bytes, 68 more words not recorded]"
}

test_refusals_of_a_guard_whose_rules_cannot_load_are_recorded() {
	budget_rules 1GiB
	printf 'x\n' > "$WS/f"
	# A real session, started by one process; its environment is what
	# every later process of the session joins with.
	AGENTGUARD_RULES=$T/rules.yaml guard sh -c 'exec env' | grep '^AGENTGUARD_' > "$T/env"
	frozen=$(ls "$AGENTGUARD_STATE_DIR"/rules/*.yaml)
	chmod u+w "$frozen"
	printf 'version: [\n' > "$frozen"
	err=$(env $(cat "$T/env") LD_PRELOAD=$AG_LIB rm "$WS/f" 2>&1) && fail "rm should be refused"
	assert_exists "$WS/f"
	assert_contains "$err" "agentguard cannot start"
	ingest
	row=$(db "select rule, decision, enforced from events where op='delete' and path='$WS/f'")
	assert_eq "$row" "agentguard-unavailable|deny|1"
	assert_contains "$(db "select reason from events where path='$WS/f'")" "$frozen"
	# Rules that are not the session's own copy: refused at joining, and
	# recorded as well.
	err=$(env $(cat "$T/env") AGENTGUARD_RULES=$T/rules.yaml LD_PRELOAD=$AG_LIB rm "$WS/f" 2>&1) &&
		fail "rm should be refused"
	assert_exists "$WS/f"
	ingest
	assert_eq "$(db "select count(*) from events where rule='agentguard-unavailable' and path='$WS/f' and reason like '%not the session''s own copy%'")" 1
}
