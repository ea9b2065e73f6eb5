# The filesystem guard under the built-in rules, with real programs.

test_rm_file_snapshot_and_restore_by_id() {
	printf 'precious\n' > "$WS/notes.txt"
	before=$(sha256sum < "$WS/notes.txt")
	guard rm "$WS/notes.txt"
	assert_missing "$WS/notes.txt"
	ingest
	row=$(db "select decision, path, errno from events where op='delete'")
	assert_eq "$row" "snapshot|$WS/notes.txt|0"
	id=$(db "select snapshot from events where op='delete'")
	"$AG" restore "$id"
	assert_eq "$(sha256sum < "$WS/notes.txt")" "$before"
}

test_rm_rf_tree_restored_byte_identical_with_modes_and_mtimes() {
	make_tree "$WS/proj"
	want=$(tree_sig "$WS/proj")
	agrun rm -rf "$WS/proj"
	assert_missing "$WS/proj"
	s=$(latest_session)
	n=$(db "select count(*) from snapshots where session='$s'")
	[ "$n" -ge 9 ] || fail "expected every file and directory in the store, got $n"
	"$AG" restore --session "$s"
	assert_eq "$(tree_sig "$WS/proj")" "$want"
}

test_mv_over_existing_file_keeps_the_old_target() {
	printf 'old\n' > "$WS/target"
	printf 'new\n' > "$WS/source"
	guard mv "$WS/source" "$WS/target"
	assert_eq "$(cat "$WS/target")" "new"
	ingest
	# mv may first try renameat2(RENAME_NOREPLACE), which destroys nothing.
	row=$(db "select decision, path, target from events where op='rename' and snapshot is not null")
	assert_eq "$row" "snapshot|$WS/source|$WS/target"
	id=$(db "select snapshot from events where op='rename' and snapshot is not null")
	"$AG" restore --overwrite "$id"
	assert_eq "$(cat "$WS/target")" "old"
}

test_find_delete() {
	make_tree "$WS/t"
	guard find "$WS/t" -name '*.txt' -delete
	assert_missing "$WS/t/a.txt"
	ingest
	assert_eq "$(db "select count(*) from events where op='delete' and decision='snapshot'")" 2
}

test_python_remove_rmtree_replace_and_open_w() {
	make_tree "$WS/py"
	printf 'keep me\n' > "$WS/f1"
	printf 'old\n' > "$WS/dst"; printf 'new\n' > "$WS/src"
	printf 'was here\n' > "$WS/w.txt"
	guard python3 - "$WS" <<'PY'
import os, shutil, sys
ws = sys.argv[1]
os.remove(ws + "/f1")
shutil.rmtree(ws + "/py")
os.replace(ws + "/src", ws + "/dst")
open(ws + "/w.txt", "w").write("overwritten\n")
PY
	assert_missing "$WS/f1"; assert_missing "$WS/py"
	assert_eq "$(cat "$WS/w.txt")" "overwritten"
	ingest
	assert_eq "$(db "select count(*) from events where op='truncate' and path='$WS/w.txt' and decision='snapshot'")" 1
	assert_eq "$(db "select count(*) from events where op='rename' and target='$WS/dst' and decision='snapshot'")" 1
	s=$(latest_session)
	"$AG" restore --session "$s" --overwrite
	assert_eq "$(cat "$WS/f1")" "keep me"
	assert_eq "$(cat "$WS/w.txt")" "was here"
	assert_eq "$(cat "$WS/dst")" "old"
	assert_exists "$WS/py/sub/blob.bin"
}

test_perl_unlink() {
	printf 'x\n' > "$WS/p.txt"
	guard perl -e 'unlink $ARGV[0] or die "unlink: $!"' "$WS/p.txt"
	assert_missing "$WS/p.txt"
	ingest
	assert_eq "$(db "select decision from events where op='delete'")" snapshot
}

test_shell_redirection_truncates_with_snapshot() {
	printf 'important\n' > "$WS/data.txt"
	guard sh -c "echo replaced > '$WS/data.txt'"
	assert_eq "$(cat "$WS/data.txt")" replaced
	ingest
	id=$(db "select snapshot from events where op='truncate' and path='$WS/data.txt'")
	[ -n "$id" ] || fail "no truncate snapshot"
	"$AG" restore --overwrite "$id"
	assert_eq "$(cat "$WS/data.txt")" important
}

test_git_clean_fdx() {
	git init -q "$WS/repo"
	cd "$WS/repo"
	git -c user.email=t@t -c user.name=t commit -q --allow-empty -m init
	printf 'junk\n' > untracked.txt; mkdir -p build; printf 'o\n' > build/out.txt
	guard git clean -fdxq
	assert_missing untracked.txt; assert_missing build
	ingest
	n=$(db "select count(*) from events where op='delete' and decision='snapshot' and path like '$WS/repo/%'")
	[ "$n" -ge 3 ] || fail "expected >= 3 snapshotted deletes, got $n"
	"$AG" restore --session "$(latest_session)"
	assert_eq "$(cat untracked.txt)" junk
	assert_eq "$(cat build/out.txt)" o
}

test_ssh_delete_and_truncate_denied() {
	mkdir -p "$HOME/.ssh"
	printf 'host key\n' > "$HOME/.ssh/id_test"
	err=$(guard rm "$HOME/.ssh/id_test" 2>&1) && fail "rm should fail"
	assert_contains "$err" "Permission denied"
	assert_contains "$err" "agentguard: denied delete $HOME/.ssh/id_test (rule "
	err=$(guard sh -c ": > '$HOME/.ssh/id_test'" 2>&1) && fail "truncate should fail"
	assert_contains "$err" "Permission denied"
	assert_contains "$err" "agentguard: denied truncate $HOME/.ssh/id_test (rule "
	assert_eq "$(cat "$HOME/.ssh/id_test")" "host key"
	ingest
	assert_eq "$(db "select count(*) from events where decision='deny' and errno=13")" 2
}

test_errno_is_the_real_one() {
	mkdir -p "$WS/full"; touch "$WS/full/x"
	out=$(guard python3 -c '
import os, errno
ws = "'"$WS"'"
for f in (lambda: os.remove(ws + "/nonexistent/x"), lambda: os.rmdir(ws + "/full"), lambda: os.rename(ws + "/nope", ws + "/nope2")):
    try: f()
    except OSError as e: print(errno.errorcode[e.errno])
')
	assert_eq "$out" "$(printf 'ENOENT\nENOTEMPTY\nENOENT')"
}

test_report_json_lists_every_decision() {
	printf 'x\n' > /tmp/agtest-scratch-$$; printf 'y\n' > "$WS/y"
	agrun sh -c "rm /tmp/agtest-scratch-$$; rm '$WS/y'; rm '$HOME/nothing' 2>/dev/null; true"
	out=$("$AG" report --json)
	assert_eq "$(grep -c '"op":"delete"' <<<"$out")" 3
	# the agent's own command (run judges it too) and its three rm
	assert_eq "$(grep -c '"op":"exec"' <<<"$out")" 4
	assert_contains "$out" '"decision":"allow"'
	assert_contains "$out" '"decision":"snapshot"'
	assert_contains "$out" '"op":"delete"'
}

test_broken_rules_check_and_run_refuse() {
	printf 'version: 1\nrules:\n  - id: x\n    on: delete\n    action: obliterate\n' > "$T/bad.yaml"
	out=$("$AG" check "$T/bad.yaml" 2>&1) && fail "check should fail"
	assert_contains "$out" "$T/bad.yaml:5:"
	out=$("$AG" run --rules "$T/bad.yaml" -- touch "$T/ran" 2>&1) && fail "run should refuse"
	assert_missing "$T/ran"
	assert_contains "$out" "$T/bad.yaml:5:"
}

test_broken_rules_preloaded_fail_closed() {
	printf 'version: [\n' > "$T/bad.yaml"
	printf 'x\n' > "$WS/f"
	err=$(AGENTGUARD_RULES=$T/bad.yaml guard rm "$WS/f" 2>&1) && fail "rm should fail"
	assert_contains "$err" "Permission denied"
	assert_contains "$err" "bad.yaml:"
	assert_exists "$WS/f"
}

test_sigkill_right_after_snapshotted_delete_keeps_its_row() {
	printf 'x\n' > "$WS/victim"
	guard python3 -c 'import os, signal; os.remove("'"$WS/victim"'"); os.kill(os.getpid(), signal.SIGKILL)' || true
	ingest
	assert_eq "$(db "select decision, errno from events where path='$WS/victim'")" "snapshot|0"
}

test_parallel_processes_lose_no_rows() {
	for p in 1 2 3 4 5 6 7 8; do mkdir -p "$WS/d$p"; (cd "$WS/d$p" && seq 1 500 | xargs touch); done
	for p in 1 2 3 4 5 6 7 8; do guard find "$WS/d$p" -type f -delete & done
	wait
	ingest
	assert_eq "$(db "select count(*) from events where op='delete'")" 4000
	assert_eq "$(db "select count(distinct session) from events")" 8
	"$AG" verify
}

test_verify_names_a_changed_row() {
	printf 'x\n' > "$WS/a"; printf 'x\n' > "$WS/b"; printf 'x\n' > "$WS/c"
	agrun rm "$WS/a" "$WS/b" "$WS/c"
	"$AG" verify
	id=$(db "select min(id)+1 from events")
	db "update events set decision='allow' where id=$id"
	out=$("$AG" verify 2>&1) && fail "verify should fail"
	assert_contains "$out" "event $id was changed"
}

test_verify_names_a_deleted_row() {
	printf 'x\n' > "$WS/a"; printf 'x\n' > "$WS/b"; printf 'x\n' > "$WS/c"
	agrun rm "$WS/a" "$WS/b" "$WS/c"
	id=$(db "select min(id)+1 from events")
	db "delete from events where id=$id"
	out=$("$AG" verify 2>&1) && fail "verify should fail"
	assert_contains "$out" "event $((id + 1)) does not follow event $((id - 1))"
}

test_guard_protects_its_own_state() {
	agrun true
	err=$(guard rm -f "$AGENTGUARD_STATE_DIR/audit.db" 2>&1) && fail "rm should fail"
	assert_contains "$err" "Permission denied"
	err=$(guard sh -c "echo x >> '$AGENTGUARD_STATE_DIR/audit.db'" 2>&1) && fail "write should fail"
	assert_exists "$AGENTGUARD_STATE_DIR/audit.db"
	"$AG" verify
}

test_snapshot_budget_full_means_denied_and_nothing_lost() {
	cat > "$T/small.yaml" <<'YAML'
version: 1
snapshots: {max_bytes: 1KiB}
rules:
  - id: keep-workspace
    on: [delete, rename, truncate]
    path: "$WORKSPACE/**"
    action: snapshot
YAML
	head -c 600 /dev/urandom > "$WS/first"; head -c 600 /dev/urandom > "$WS/second"
	# One session, two processes: the budget is the session's.
	err=$(AGENTGUARD_RULES=$T/small.yaml guard sh -c "rm '$WS/first' && rm '$WS/second'" 2>&1) &&
		fail "second rm should fail"
	assert_missing "$WS/first"
	assert_contains "$err" "snapshots.max_bytes"
	assert_exists "$WS/second"
}

test_session_restore_undoes_a_rename_over_a_file() {
	printf 'notes\n' > "$WS/notes.md"; printf 'changelog\n' > "$WS/CHANGELOG.md"
	want=$(tree_sig "$WS")
	agrun sh -c "printf x > '$WS/other'; mv '$WS/notes.md' '$WS/CHANGELOG.md'; rm '$WS/other'"
	assert_missing "$WS/notes.md"
	"$AG" restore --session "$(latest_session)" --overwrite
	assert_eq "$(cat "$WS/notes.md")" notes
	assert_eq "$(cat "$WS/CHANGELOG.md")" changelog
}

test_a_child_that_outlives_its_parent_keeps_its_rows() {
	printf 'x\n' > "$WS/late"
	# The subshell is a fork of sh: it records into sh's spool, and goes on
	# after sh has exited.
	guard sh -c "( sleep 1; exec rm '$WS/late' ) & exit 0"
	ingest   # while the subshell still sleeps
	# Wait for rm to have run and exited (its spool is ingested only then).
	for i in $(seq 100); do
		ingest
		[ "$(db "select count(*) from events where op='delete' and path='$WS/late'")" = 1 ] && break
		sleep 0.1
	done
	assert_missing "$WS/late"
	assert_eq "$(db "select count(*) from events where op='exec' and argv like '%\"rm\",\"$WS/late\"%'")" 1
	assert_eq "$(db "select decision from events where op='delete' and path='$WS/late'")" snapshot
}

test_threads_deciding_at_once_lose_no_rows() {
	mkdir -p "$WS/th"; (cd "$WS/th" && seq 1 1600 | xargs touch)
	guard python3 -c '
import os, sys, threading
d = sys.argv[1]
names = sorted(os.listdir(d))
def work(part):
    for n in part: os.remove(os.path.join(d, n))
ts = [threading.Thread(target=work, args=(names[i::8],)) for i in range(8)]
[t.start() for t in ts]; [t.join() for t in ts]
' "$WS/th"
	assert_eq "$(ls "$WS/th" | wc -l)" 0
	ingest
	assert_eq "$(db "select count(*) from events where op='delete' and decision='snapshot' and errno=0")" 1600
	assert_eq "$(db "select count(distinct snapshot) from events where op='delete'")" 1600
	"$AG" restore --session "$(latest_session)" >/dev/null
	assert_eq "$(ls "$WS/th" | wc -l)" 1600
	"$AG" verify
}

# A thread keeps a directory's verdict for the next call of the same kind
# in it, where the rules judge all its files alike. It must never carry
# over to another directory or kind, nor to the guard's own files among
# ordinary ones (the state dir sits in s, whose other files are alike).
test_a_kept_directory_verdict_stays_with_its_directory_kind_and_files() {
	cat > "$T/rules.yaml" <<'YAML'
version: 1
rules:
  - {id: no-delete-in-d, on: [delete], path: "$WORKSPACE/d/**", action: deny}
  - {id: d-truncates, on: [truncate], path: "$WORKSPACE/d/**", action: log}
  - {id: s-logged, on: [delete, truncate], path: "$WORKSPACE/s/**", action: log}
YAML
	mkdir -p "$WS/d" "$WS/e" "$WS/s"
	for f in a b c t1 t2; do printf 'x\n' > "$WS/d/$f"; done
	printf 'x\n' > "$WS/e/a"
	printf 'x\n' > "$WS/s/x"
	printf 'x\n' > "$WS/s/y"
	export AGENTGUARD_STATE_DIR=$WS/s/state
	AGENTGUARD_RULES=$T/rules.yaml guard python3 - "$WS" <<'PY'
import os, sys
ws = sys.argv[1]
def tryit(f, *a):
    try:
        f(*a)
    except OSError:
        pass
os.truncate(ws + "/d/t1", 0)
tryit(os.remove, ws + "/d/a")
tryit(os.remove, ws + "/d/b")
os.remove(ws + "/e/a")
tryit(os.remove, ws + "/d/c")
os.truncate(ws + "/d/t2", 0)
os.remove(ws + "/s/x")
tryit(os.unlink, ws + "/s/state")
os.truncate(ws + "/s/y", 0)
tryit(os.truncate, ws + "/s/state", 0)
PY
	for f in a b c; do assert_exists "$WS/d/$f"; done
	assert_missing "$WS/e/a"
	assert_missing "$WS/s/x"
	assert_exists "$WS/s/state"
	ingest
	got=$(db "select op || ' ' || replace(path, '$WS/', '') || ' ' || decision || ' ' ||
		  coalesce(rule, '-') from events where op in ('delete', 'truncate') order by id")
	want="truncate d/t1 log d-truncates
delete d/a deny no-delete-in-d
delete d/b deny no-delete-in-d
delete e/a allow -
delete d/c deny no-delete-in-d
truncate d/t2 log d-truncates
delete s/x log s-logged
delete s/state deny agentguard-self
truncate s/y log s-logged
truncate s/state deny agentguard-self"
	assert_eq "$got" "$want"
}
