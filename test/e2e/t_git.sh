# git under the guard, with a real repository and a real remote (a bare
# repository): commands that move or delete names are recorded first and
# undone by `agentguard restore` (refs and commits), a force push is put
# back on the remote by the printed (or --push) command, pushes forced by
# configuration are refused, and git's own routine work is left alone.

# $WS/repo with five commits on main, pushed to $T/remote.git (origin);
# a branch `feature` with one commit of its own that is pushed nowhere.
git_world() {
	export GIT_AUTHOR_NAME=a GIT_AUTHOR_EMAIL=a@example.com GIT_COMMITTER_NAME=a \
		GIT_COMMITTER_EMAIL=a@example.com
	git init -q --bare -b main "$T/remote.git"
	git init -q -b main "$WS/repo"
	cd "$WS/repo"
	for i in 1 2 3 4 5; do
		echo "$i" > "f$i"; git add "f$i"; git commit -qm "c$i"
	done
	git remote add origin "$T/remote.git"
	git push -q -u origin main
	git checkout -q -b feature
	echo feature > feat; git add feat; git commit -qm feature
	git checkout -q main
}

# The id of the git record the last guarded git command took.
snap_of_last_exec() {
	ingest
	db "select snapshot from events where op = 'exec' and snapshot is not null
	    order by id desc limit 1"
}

# Pushed nowhere and unreachable but for the pins: gc with everything
# expired, so only refs/agentguard can keep the commits.
expire_all() {
	git reflog expire --expire=now --all
	git gc -q --prune=now
}

fsck_clean() {
	local out
	out=$(git fsck --no-dangling 2>&1) || fail "git fsck: $out"
}

test_branch_D_is_recorded_and_restore_brings_branch_and_commit_back() {
	git_world
	local f
	f=$(git rev-parse feature)
	out=$(agrun git branch -D feature 2>&1) || fail "branch -D refused: $out"
	! git rev-parse -q --verify feature >/dev/null || fail "feature still there"
	id=$(snap_of_last_exec)
	[ -n "$id" ] || fail "no git record for branch -D"
	assert_eq "$(db "select kind from snapshots where id = '$id'")" git
	assert_eq "$(db "select rule || ' ' || decision from events where snapshot = '$id'")" "git-history snapshot"
	out=$("$AG" diff "$id") && fail "diff says nothing moved: $out"
	assert_contains "$out" "refs/heads/feature: "
	assert_contains "$("$AG" show "$id")" "refs/heads/feature"
	expire_all
	git cat-file -e "$f" || fail "the pin did not keep the commit through gc --prune=now"
	out=$("$AG" restore "$id" 2>&1) || fail "restore failed: $out"
	assert_contains "$out" "refs/heads/feature"
	assert_eq "$(git rev-parse feature)" "$f"
	assert_eq "$(git show -s --format=%s feature)" feature
	out=$("$AG" diff "$id") || fail "diff after the restore: $out"
	fsck_clean
}

test_stash_drop_and_clear_are_undone() {
	git_world
	echo one >> f1; git stash -q
	echo two >> f2; git stash -q
	local s0 s1
	s0=$(git rev-parse 'stash@{0}'); s1=$(git rev-parse 'stash@{1}')
	agrun git stash drop -q >/dev/null 2>&1 || fail "stash drop refused"
	assert_eq "$(git stash list | wc -l)" 1
	id1=$(snap_of_last_exec)
	agrun git stash clear >/dev/null 2>&1 || fail "stash clear refused"
	assert_eq "$(git stash list | wc -l)" 0
	expire_all
	out=$("$AG" restore "$id1" 2>&1) || fail "restore failed: $out"
	assert_eq "$(git stash list | wc -l)" 2
	assert_eq "$(git rev-parse 'stash@{0}')" "$s0"
	assert_eq "$(git rev-parse 'stash@{1}')" "$s1"
	git stash show -p 'stash@{1}' | grep -q '^+one' || fail "stash@{1} lost its change"
	fsck_clean
}

test_reset_hard_HEAD3_and_rebase_are_undone_by_a_session_restore() {
	git_world
	local main feat
	main=$(git rev-parse main); feat=$(git rev-parse feature)
	out=$(agrun sh -c 'git reset -q --hard HEAD~3 && echo n > n && git add n && git commit -qm n &&
	                   git checkout -q feature && git rebase -q main && git checkout -q main' 2>&1) ||
		fail "the agent failed: $out"
	[ "$(git rev-parse main)" != "$main" ] || fail "reset did nothing"
	[ "$(git rev-parse feature)" != "$feat" ] || fail "rebase did nothing"
	local end_main end_feat
	end_main=$(git rev-parse main); end_feat=$(git rev-parse feature)
	expire_all
	sid=$(latest_session)
	out=$("$AG" restore --session "$sid" 2>&1) || fail "session restore failed: $out"
	assert_eq "$(git rev-parse main)" "$main"
	assert_eq "$(git rev-parse feature)" "$feat"
	assert_eq "$(git symbolic-ref HEAD)" refs/heads/main
	# The files reset took away came back with the session's snapshots.
	for i in 1 2 3 4 5; do assert_eq "$(cat f$i)" "$i"; done
	git diff --quiet HEAD -- f1 f2 f3 f4 f5 || fail "the worktree is not main's"
	fsck_clean
	# The restore is undoable: its undo puts back what the session left.
	undo=$(grep -o 'undo this restore: agentguard restore --session [^ ]*' <<<"$out" | awk '{print $NF}')
	[ -n "$undo" ] || fail "no undo command printed: $out"
	out=$("$AG" restore --session "$undo" 2>&1) || fail "the restore's undo failed: $out"
	assert_eq "$(git rev-parse main)" "$end_main"
	assert_eq "$(git rev-parse feature)" "$end_feat"
}

test_reset_hard_by_id_then_restore_twice_is_unchanged() {
	git_world
	local main
	main=$(git rev-parse main)
	agrun git reset -q --hard HEAD~3 >/dev/null 2>&1 || fail "reset refused"
	id=$(snap_of_last_exec)
	out=$("$AG" restore "$id" 2>&1) || fail "restore failed: $out"
	assert_eq "$(git rev-parse main)" "$main"
	out=$("$AG" restore "$id" 2>&1) || fail "second restore failed: $out"
	assert_contains "$out" "unchanged"
}

test_tag_d_and_reflog_expire_gc_are_undone() {
	git_world
	git tag -a v1 -m release main~2
	local tag
	tag=$(git rev-parse v1)
	agrun git tag -d v1 >/dev/null 2>&1 || fail "tag -d refused"
	id=$(snap_of_last_exec)
	agrun sh -c 'git reflog expire --expire=now --all && git gc -q --prune=now' >/dev/null 2>&1 ||
		fail "gc refused"
	git cat-file -e "$tag" || fail "the annotated tag object was pruned"
	out=$("$AG" restore "$id" 2>&1) || fail "restore failed: $out"
	assert_eq "$(git rev-parse v1)" "$tag"
	fsck_clean
}

# A rules file that snapshots (records) force pushes instead of refusing them.
push_rules() {
	cat > "$T/push.yaml" <<-'EOF'
	version: 1
	rules:
	  - id: record-pushes
	    on: exec
	    program: [git]
	    command: [push]
	    value_flags: [-C, -c]
	    action: snapshot
	EOF
}

test_force_push_is_put_back_on_the_remote_by_the_printed_command_and_by_push() {
	git_world
	push_rules
	local main
	main=$(git rev-parse main)
	git reset -q --hard HEAD~2
	echo rewrite > f9; git add f9; git commit -qm rewritten
	out=$(LD_PRELOAD=${AG_ASAN_RT:-} "$AG" run --rules "$T/push.yaml" --workspace "$WS" -- \
		git push -q --force origin main 2>&1) || fail "force push failed: $out"
	assert_eq "$(git --git-dir="$T/remote.git" rev-parse main)" "$(git rev-parse main)"
	id=$(snap_of_last_exec)
	# The printed command, run by hand.
	out=$("$AG" restore "$id" 2>&1) || fail "restore failed: $out"
	cmd=$(grep -o 'the remote: git .*   (' <<<"$out" | sed -e 's/^the remote: //' -e 's/   ($//')
	[ -n "$cmd" ] || fail "no push command printed: $out"
	assert_contains "$cmd" "--force-with-lease=refs/heads/main:"
	eval "$cmd -q" || fail "the printed command failed: $cmd"
	assert_eq "$(git --git-dir="$T/remote.git" rev-parse main)" "$main"
	# A session restore prints it too.
	git push -q --force origin main
	sid=$(latest_session)
	out=$("$AG" restore --session "$sid" 2>&1) || fail "session restore failed: $out"
	assert_contains "$out" "the remote: git "
	assert_contains "$out" "--force-with-lease=refs/heads/main:"
	# Again, then --push runs it.
	out=$("$AG" restore --push "$id" 2>&1) || fail "restore --push failed: $out"
	assert_eq "$(git --git-dir="$T/remote.git" rev-parse main)" "$main"
	git --git-dir="$T/remote.git" fsck --no-dangling >/dev/null 2>&1 || fail "remote fsck"
}

test_hidden_force_pushes_are_denied_and_logged() {
	git_world
	git config alias.fp 'push -f'
	local n=0 cmd
	while IFS= read -r cmd; do
		n=$((n + 1))
		out=$(agrun bash -c "$cmd" 2>&1) && fail "not refused: $cmd ($out)"
		assert_contains "$out" "no-force-push"
	done <<-'EOF'
	git -c 'remote.origin.push=+refs/heads/*:refs/heads/*' push origin
	GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=remote.origin.mirror GIT_CONFIG_VALUE_0=true git push origin
	GIT_CONFIG_PARAMETERS="'remote.origin.push'='+refs/heads/main:refs/heads/main'" git push origin
	git send-pack --force ../../remote.git main
	git fp origin main
	git -c alias.p='push --force' p origin
	EOF
	git config remote.origin.push '+refs/heads/*:refs/heads/*'
	out=$(agrun git push origin 2>&1) && fail "a + refspec in .git/config was not refused"
	git config --unset remote.origin.push
	git config remote.origin.mirror true
	out=$(agrun git push origin 2>&1) && fail "remote.origin.mirror was not refused"
	git config --unset remote.origin.mirror
	n=$((n + 2))
	ingest
	assert_eq "$(db "select count(*) from events where rule = 'no-force-push' and decision = 'deny'")" "$n"
	# A plain push still goes.
	echo more > f6; git add f6; git commit -qm more
	out=$(agrun git push -q origin main 2>&1) || fail "a plain push was refused: $out"
	assert_eq "$(git --git-dir="$T/remote.git" rev-parse main)" "$(git rev-parse main)"
}

test_commit_and_gc_in_a_guarded_run_are_quiet() {
	git_world
	for i in $(seq 1 30); do echo "$i" > "g$i"; git add "g$i"; git commit -qm "g$i"; done
	out=$(agrun sh -c 'echo x > new && git add new && git commit -qm new && git gc -q' 2>&1) ||
		fail "commit/gc failed: $out"
	assert_not_contains "$out" "agentguard: denied"
	ingest
	sid=$(latest_session)
	# Loose objects packed away, locks and the index are git's own: no
	# snapshot of them; only refs and reflogs git rewrote are kept.
	n=$(db "select count(*) from events where session = '$sid' and decision = 'snapshot' and op != 'exec'")
	[ "$n" -le 20 ] || fail "$n snapshots for a commit and a gc: $(db "select op, path from events where session = '$sid' and decision = 'snapshot'")"
	assert_eq "$(db "select count(*) from events where session = '$sid' and decision = 'snapshot' and path like '%/objects/%'")" 0
	assert_eq "$(db "select count(*) from events where session = '$sid' and decision = 'deny'")" 0
	fsck_clean
}

test_linked_worktree_inside_the_workspace_add_and_remove_work() {
	git_world
	out=$(agrun sh -c 'git worktree add -q ../wt feature && echo x > ../wt/scratch && git worktree remove --force ../wt && git worktree add -q ../wt2 -b other && git worktree remove ../wt2' 2>&1) ||
		fail "worktree add/remove failed: $out"
	assert_missing "$WS/wt"
	assert_missing "$WS/wt2"
	assert_not_contains "$out" "agentguard: denied"
}

# The workspace is the repository itself and ../wt lies outside it; a rule
# refuses changes outside the workspace even under /tmp (where the tests
# live): the linked worktree is part of the workspace all the same.
test_linked_worktree_beside_the_workspace_is_part_of_it() {
	git_world
	cat > "$T/only-ws.yaml" <<-'EOF'
	version: 1
	rules:
	  - id: only-the-workspace
	    on: [delete, rename, truncate, write]
	    path: ["/**"]
	    unless: {path: ["$WORKSPACE/**", "$HOME/**"]}
	    action: deny
	  - id: workspace-snapshot
	    on: [delete, rename, truncate, write]
	    path: ["$WORKSPACE/**"]
	    unless: {program: [git, "git-*"], path: ["$WORKSPACE/**/.git/**/*.lock",
	             "$WORKSPACE/**/.git/**/index", "$WORKSPACE/**/.git/objects/**"]}
	    action: snapshot
	EOF
	mkdir -p "$WS/elsewhere"; echo keep > "$WS/elsewhere/f"
	run_ws() { LD_PRELOAD=${AG_ASAN_RT:-} "$AG" run --rules "$T/only-ws.yaml" --workspace "$WS/repo" -- "$@"; }
	# The rule bites outside the workspace ...
	out=$(run_ws rm "$WS/elsewhere/f" 2>&1) && fail "the rule did not refuse: $out"
	assert_contains "$out" "only-the-workspace"
	assert_exists "$WS/elsewhere/f"
	# ... but not in a linked worktree of the workspace's repository.
	out=$(run_ws sh -c 'git worktree add -q ../wt feature && echo x >> ../wt/feat && rm ../wt/f1 && git worktree remove --force ../wt' 2>&1) ||
		fail "worktree add/remove failed: $out"
	assert_missing "$WS/wt"
	assert_not_contains "$out" "agentguard: denied"
	ingest
	sid=$(latest_session)
	assert_eq "$(db "select decision from events where session = '$sid' and op = 'delete' and path = '$WS/wt/f1'")" snapshot
	# A fake worktree (a .git file without the repository's back link) is not one.
	mkdir -p "$WS/fake"; echo keep > "$WS/fake/f"
	echo "gitdir: $WS/repo/.git/worktrees/nothere" > "$WS/fake/.git"
	out=$(run_ws rm "$WS/fake/f" 2>&1) && fail "a fake worktree was taken for one: $out"
	assert_contains "$out" "only-the-workspace"
	assert_exists "$WS/fake/f"
}

test_a_changed_record_is_refused() {
	git_world
	agrun git branch -D feature >/dev/null 2>&1 || fail "branch -D refused"
	id=$(snap_of_last_exec)
	store=$AGENTGUARD_STATE_DIR/$(db "select store from snapshots where id = '$id'")
	chmod u+w "$store" "$(dirname "$store")" 2>/dev/null || true
	sed -i 's#refs/heads/feature#refs/heads/other#' "$store"
	out=$("$AG" restore "$id" 2>&1) && fail "a changed record was restored: $out"
	assert_contains "$out" "changed"
	! git rev-parse -q --verify other >/dev/null || fail "the forged ref was made"
	! git rev-parse -q --verify feature >/dev/null || fail "feature came back from a changed record"
}
