# Trees deeper than PATH_MAX. The kernel limits each path argument to
# PATH_MAX, not a tree's depth: a call relative to a deep directory
# descriptor or a deep cwd works bare, and must work (and be judged, and be
# recorded, and be restorable) the same under the guard.

longpath() {
	[ -x "$T/longpath" ] || gcc -O1 -o "$T/longpath" "$AG_ROOT/test/e2e/longpath.c"
	"$T/longpath" "$@"
}

# The areas the rules treat differently, each a chain deeper than 5000 bytes.
deep_rules() {
	cat > "$T/rules.yaml" <<'YAML'
version: 1
limits: {denials: 0}
rules:
  - id: deep-deny
    on: [delete, rename, truncate, link]
    path: "$WORKSPACE/deny/**"
    action: deny
    reason: "kept"
  - id: deep-deny-exec
    on: exec
    program: "$WORKSPACE/deny/**"
    action: deny
    reason: "not that program"
  - id: deep-snapshot
    on: [delete, rename, truncate]
    path: "$WORKSPACE/snap/**"
    action: snapshot
    reason: "kept a copy"
YAML
	export AGENTGUARD_RULES=$T/rules.yaml
}

# A chain under $1 with files a..e and a script: prints the deepest
# directory's name.
deep_tree() {
	longpath "$1" build 5000
	for f in a b c d e; do longpath "$1" put $f "content of $f"; done
	longpath "$1" put-x prog "$(printf '#!/bin/sh\necho ran')"
}

# The operations, in one process each (the prefix runs them: guard or env).
deep_ops() {
	local root=$1; shift
	for op in "link a z" "unlink a" "rename b c" "truncate d" "open-trunc e" "unlink-cwd c" \
		  "exec prog" "fexecve prog" "toolong"; do
		# shellcheck disable=SC2086
		"$@" "$T/longpath" "$root" $op 2>/dev/null || true
	done
}

contents() { for f in a b c d e z; do printf '%s=%s ' $f "$(longpath "$1" cat $f)"; done; }

test_operations_deeper_than_PATH_MAX_behave_as_bare() {
	deep_rules
	longpath "$T/x" build 1 >/dev/null   # compiled before anything is timed or guarded
	bare_dir=$(deep_tree "$T/bare")
	[ "${#bare_dir}" -gt 5000 ] || fail "the chain is only ${#bare_dir} bytes deep"
	bare=$(deep_ops "$T/bare" env)
	# Bare, every one works but the too-long argument.
	assert_eq "$(grep -c ' 0 0$' <<<"$bare")" 6 "in: $bare"
	assert_contains "$bare" "toolong -1 ENAMETOOLONG"
	assert_eq "$(grep -c '^ran$' <<<"$bare")" 2 "in: $bare"
	for area in allow snap; do
		dir=$(deep_tree "$WS/$area")
		out=$(deep_ops "$WS/$area" guard)
		assert_eq "$out" "$bare" "($area)"
		assert_eq "$(contents "$WS/$area")" "$(contents "$T/bare")" "($area)"
	done
	dir=$(deep_tree "$WS/deny")
	before=$(contents "$WS/deny")
	out=$(deep_ops "$WS/deny" guard)
	# The deny rule on ** still denies, and the argument that is too long
	# still fails as the kernel says.
	assert_eq "$(grep -c ' -1 EACCES$' <<<"$out")" 8 "in: $out"
	assert_contains "$out" "toolong -1 ENAMETOOLONG"
	assert_not_contains "$out" "ran"
	assert_eq "$(contents "$WS/deny")" "$before"
	ingest
	# Each operation has its row, under its full name.
	for area in allow snap deny; do
		d=$WS/$area/${bare_dir#"$T/bare/"}
		case $area in
			allow) want=allow; other=allow ;;
			snap) want=snapshot; other=allow ;;
			deny) want=deny; other=deny ;;
		esac
		rows=$(db "select op || ' ' || decision || ' ' || substr(path, length('$d') + 2)
			   from events where path like '$d/%' order by time_ns")
		assert_eq "$rows" "link $other a
delete $want a
rename $want b
truncate $want d
truncate $want e
delete $want c
exec $other prog
exec $other prog" "($area)"
		assert_eq "$(db "select count(*) from events where op='rename' and target='$d/c'")" 1
	done
	# The snapshots were taken there, by the descriptor held.
	assert_eq "$(db "select count(*) from snapshots where path like '$WS/snap/%' and length(path) > 5000")" 6
	assert_eq "$(db "select count(*) from events where rule like 'agentguard-%'")" 0
}

test_snapshots_deeper_than_PATH_MAX_are_restored() {
	deep_rules
	longpath "$T/x" build 1 >/dev/null
	deep_tree "$WS/snap" >/dev/null
	want=$(longpath "$WS/snap" sig)
	# One session for all of them, so that one restore brings the tree back.
	agrun sh -c '
		l=$1; r=$2
		$l $r unlink a && $l $r rename b c && $l $r truncate d && $l $r open-trunc e &&
		$l $r unlink-cwd c' sh "$T/longpath" "$WS/snap"
	assert_eq "$(contents "$WS/snap")" "a=- b=- c=- d= e= z=- "
	"$AG" restore --session "$(latest_session)" --overwrite
	assert_eq "$(contents "$WS/snap")" "a=content of a b=content of b c=content of c d=content of d e=content of e z=- "
	assert_eq "$(longpath "$WS/snap" sig)" "$want"
}

test_a_descriptor_deeper_than_PATH_MAX_is_named_or_refused() {
	deep_rules
	dir=$(deep_tree "$WS/allow")
	# ftruncate: the file's directory is still open, so it is found there.
	assert_eq "$(guard "$T/longpath" "$WS/allow" ftruncate d)" "ftruncate 0 0"
	# With no directory of it open and the cwd elsewhere it has no name the
	# guard can find (the kernel prints none past PATH_MAX): refused, saying
	# why, and recorded; bare, it works.
	err=$(guard "$T/longpath" "$WS/allow" ftruncate-orphan e 2>&1) && fail "refused: $err"
	assert_contains "$err" "ftruncate-orphan -1 EACCES"
	assert_contains "$err" "denied truncate ? (rule agentguard-unnamed: the file behind descriptor"
	assert_eq "$(longpath "$WS/allow" cat e)" "content of e"
	assert_eq "$("$T/longpath" "$WS/allow" ftruncate-orphan e)" "ftruncate-orphan 0 0"
	ingest
	assert_eq "$(db "select decision from events where op='truncate' and path='$dir/d'")" allow
	assert_eq "$(db "select decision || ' ' || errno from events where rule='agentguard-unnamed'")" "deny 13"
}
