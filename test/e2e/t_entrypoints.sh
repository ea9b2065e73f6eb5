# Every interposed entry point, one by one (test/e2e/entrypoints.c makes
# exactly the named call): what it did on disk, the errno it gave, and its
# audit row. Each group tries every name and reports every one that went
# wrong, not only the first. test/check-entry-tests.sh holds every name of
# build/gen/exports.txt to appearing in some test.

ep() {
	[ -x "$T/entrypoints" ] ||
		gcc -O1 -U_FORTIFY_SOURCE -o "$T/entrypoints" "$AG_ROOT/test/e2e/entrypoints.c" \
			-lsqlite3 || fail "cannot build entrypoints.c"
	guard "$T/entrypoints" "$@" 2>>"$T/ep.err"
}

BAD=()
bad() { BAD+=("$*"); }
report_bad() { [ ${#BAD[@]} -eq 0 ] || fail "entry points misbehaved:$(printf '\n  %s' "${BAD[@]}")"; }

# expect SYM WANT ARGS...: the program's verdict line is WANT.
expect() {
	local sym=$1 want=$2 out
	shift 2
	out=$(ep "$sym" "$@") || true
	[ "$out" == "$want" ] || bad "$sym $*: said '$out', want '$want'"
}

# row SYM OP PATH WANT: the one row for OP on PATH reads WANT
# (decision|rule|errno).
row() {
	local got
	got=$(db "select group_concat(decision || '|' || ifnull(rule, '') || '|' || ifnull(errno, ''), ' ')
		from events where op='$2' and path='$3'")
	[ "$got" == "$4" ] || bad "$1: $2 row for $3 is '$got', want '$4'"
}

snapped() {
	[ "$(db "select count(*) from snapshots where path='$2'")" == 1 ] ||
		bad "$1: no snapshot of $2"
}

SNAP="snapshot|workspace-snapshot|0"
CRED="deny|protect-credentials|13"

test_delete_family() {
	mkdir -p "$HOME/.ssh"
	local s
	for s in unlink unlinkat remove rmdir; do
		if [ $s == rmdir ]; then
			mkdir "$WS/d.$s" "$HOME/.ssh/d.$s"
		else
			echo keep > "$WS/d.$s"; echo key > "$HOME/.ssh/d.$s"
		fi
		expect $s ok "$WS/d.$s"
		expect $s "err EACCES" "$HOME/.ssh/d.$s"
		[ ! -e "$WS/d.$s" ] || bad "$s: $WS/d.$s still there"
		[ -e "$HOME/.ssh/d.$s" ] || bad "$s: $HOME/.ssh/d.$s deleted"
	done
	# unlinkat on a directory (AT_REMOVEDIR) as well as on a file.
	mkdir "$WS/dir.unlinkat" "$HOME/.ssh/dir.unlinkat"
	expect unlinkat ok "$WS/dir.unlinkat"
	expect unlinkat "err EACCES" "$HOME/.ssh/dir.unlinkat"
	[ -d "$HOME/.ssh/dir.unlinkat" ] || bad "unlinkat: $HOME/.ssh/dir.unlinkat removed"
	ingest
	for s in unlink unlinkat remove rmdir; do
		row $s delete "$WS/d.$s" "$SNAP"; snapped $s "$WS/d.$s"
		row $s delete "$HOME/.ssh/d.$s" "$CRED"
	done
	row unlinkat delete "$WS/dir.unlinkat" "$SNAP"
	row unlinkat delete "$HOME/.ssh/dir.unlinkat" "$CRED"
	report_bad
}

test_rename_family() {
	mkdir -p "$HOME/.ssh"
	local s got
	for s in rename renameat renameat2; do
		echo "ws $s" > "$WS/r.$s"; echo "key $s" > "$HOME/.ssh/r.$s"
		expect $s ok "$WS/r.$s" "$WS/r.$s.new"
		[ ! -e "$WS/r.$s" ] && [ "$(cat "$WS/r.$s.new" 2>/dev/null)" == "ws $s" ] ||
			bad "$s: $WS/r.$s not moved to r.$s.new"
		expect $s "err EACCES" "$HOME/.ssh/r.$s" "$WS/stolen.$s"
		[ "$(cat "$HOME/.ssh/r.$s")" == "key $s" ] && [ ! -e "$WS/stolen.$s" ] ||
			bad "$s: $HOME/.ssh/r.$s moved"
	done
	ingest
	for s in rename renameat renameat2; do
		row $s rename "$WS/r.$s" "$SNAP"
		got=$(db "select target from events where op='rename' and path='$WS/r.$s'")
		[ "$got" == "$WS/r.$s.new" ] || bad "$s: row target '$got'"
		row $s rename "$HOME/.ssh/r.$s" "$CRED"
	done
	report_bad
}

OPENS="open open64 openat openat64 creat creat64 __open_2 __open64_2 __openat_2 __openat64_2
	fopen fopen64 freopen freopen64"

# Each opening variant with O_TRUNC (or "w") on a non-empty file.
test_open_family_truncating() {
	mkdir -p "$HOME/.ssh"
	local s
	for s in $OPENS; do
		printf 'content\n' > "$WS/o.$s"; printf 'key\n' > "$HOME/.ssh/o.$s"
		expect $s ok "$WS/o.$s"
		[ "$(stat -c %s "$WS/o.$s")" == 0 ] || bad "$s: $WS/o.$s not truncated"
		expect $s "err EACCES" "$HOME/.ssh/o.$s"
		[ "$(cat "$HOME/.ssh/o.$s")" == key ] || bad "$s: $HOME/.ssh/o.$s overwritten"
	done
	ingest
	for s in $OPENS; do
		row $s truncate "$WS/o.$s" "$SNAP"; snapped $s "$WS/o.$s"
		row $s truncate "$HOME/.ssh/o.$s" "$CRED"
	done
	report_bad
}

# The same opens without O_TRUNC (fopen "r+"): a `write`, kept before the
# open returns, refused on credentials; creat always truncates.
test_open_family_writing_in_place() {
	mkdir -p "$HOME/.ssh"
	local s opens=${OPENS//creat64/}
	opens=${opens//creat/}
	for s in $opens; do
		printf 'content\n' > "$WS/w.$s"; printf 'key\n' > "$HOME/.ssh/w.$s"
		EP_WRITE=1 expect $s ok "$WS/w.$s"
		EP_WRITE=1 expect $s "err EACCES" "$HOME/.ssh/w.$s"
	done
	ingest
	for s in $opens; do
		row $s write "$WS/w.$s" "$SNAP"; snapped $s "$WS/w.$s"
		row $s write "$HOME/.ssh/w.$s" "$CRED"
		[ "$(cat "$HOME/.ssh/w.$s")" == key ] || bad "$s: $HOME/.ssh/w.$s changed"
	done
	report_bad
}

test_fallocate_family_punching() {
	mkdir -p "$HOME/.ssh"
	local s
	for s in fallocate fallocate64; do
		head -c 8192 /dev/urandom > "$WS/f.$s"; cp "$WS/f.$s" "$T/f.$s.orig"
		head -c 8192 /dev/urandom > "$HOME/.ssh/f.$s"; cp "$HOME/.ssh/f.$s" "$T/k.$s.orig"
		expect $s ok "$WS/f.$s"
		cmp -s "$WS/f.$s" "$T/f.$s.orig" && bad "$s: $WS/f.$s not punched"
		expect $s "err EACCES" "$HOME/.ssh/f.$s"
		cmp -s "$HOME/.ssh/f.$s" "$T/k.$s.orig" || bad "$s: $HOME/.ssh/f.$s punched"
	done
	ingest
	for s in fallocate fallocate64; do
		row $s write "$WS/f.$s" "$SNAP"; snapped $s "$WS/f.$s"
		row $s write "$HOME/.ssh/f.$s" "$CRED"
		"$AG" restore --overwrite "$(db "select snapshot from events where op='write' and path='$WS/f.$s'")" >/dev/null
		cmp -s "$WS/f.$s" "$T/f.$s.orig" || bad "$s: $WS/f.$s not restored byte-identical"
	done
	report_bad
}

test_truncate_family_shrinking() {
	mkdir -p "$HOME/.ssh"
	local s
	for s in truncate truncate64 ftruncate ftruncate64; do
		printf 'content\n' > "$WS/t.$s"; printf 'key\n' > "$HOME/.ssh/t.$s"
		expect $s ok "$WS/t.$s"
		[ "$(cat "$WS/t.$s")" == c ] || bad "$s: $WS/t.$s not cut to one byte"
		expect $s "err EACCES" "$HOME/.ssh/t.$s"
		[ "$(cat "$HOME/.ssh/t.$s")" == key ] || bad "$s: $HOME/.ssh/t.$s cut"
	done
	ingest
	for s in truncate truncate64 ftruncate ftruncate64; do
		row $s truncate "$WS/t.$s" "$SNAP"; snapped $s "$WS/t.$s"
		row $s truncate "$HOME/.ssh/t.$s" "$CRED"
	done
	report_bad
}

EXECS="execve execv execvp execvpe execl execlp execle fexecve execveat posix_spawn posix_spawnp
	system popen"

test_exec_family() {
	local s prog tf want got
	mkdir -p "$T/bin"
	printf '#!/bin/sh\necho "terraform $*" >> "%s"\n' "$T/marker" > "$T/bin/terraform"
	chmod +x "$T/bin/terraform"
	export PATH=$T/bin:/usr/bin:/bin
	for s in $EXECS; do
		# The PATH searching ones get a bare name (but not the shell's
		# builtin true: the shell would start nothing).
		case $s in execvp|execvpe|execlp|posix_spawnp) prog=true tf=terraform ;;
		system|popen) prog=/bin/true tf=terraform ;;
		*) prog=/bin/true tf=$T/bin/terraform ;; esac
		case $s in exec*|fexecve) want="" ;; *) want=ok ;; esac
		expect $s "$want" $prog "allowed-$s"
		# system and popen start /bin/sh -c, which is allowed; the
		# shell's own exec of terraform is refused, and it says 126.
		case $s in system|popen) want="exit 126" ;; *) want="err EACCES" ;; esac
		rm -f "$T/marker"
		expect $s "$want" $tf destroy "denied-$s"
		[ ! -e "$T/marker" ] || bad "$s: terraform destroy ran: $(cat "$T/marker")"
		expect $s "$([ $s == system ] || [ $s == popen ] || [ $s = posix_spawn ] ||
			[ $s == posix_spawnp ] && echo ok)" $tf plan "plan-$s"
		[ "$(cat "$T/marker" 2>/dev/null)" == "terraform plan plan-$s" ] ||
			bad "$s: terraform plan did not run"
	done
	ingest
	for s in $EXECS; do
		got=$(db "select group_concat(decision || '|' || ifnull(errno, ''), ' ') from events
			where op='exec' and argv like '%\"allowed-$s\"]' and path like '%/true'")
		[[ "$got" == allow* ]] && [[ "$got" != *" "* ]] ||
			bad "$s: exec row for true is '$got', want one allow"
		got=$(db "select group_concat(decision || '|' || rule || '|' || errno, ' ') from events
			where op='exec' and argv like '[\"%terraform\",\"destroy\",\"denied-$s\"]'")
		[ "$got" == "deny|no-infra-destroy|13" ] ||
			bad "$s: exec row for terraform destroy is '$got', want deny|no-infra-destroy|13"
	done
	report_bad
}

test_connect_and_name_lookups() {
	local s n got
	expect connect ok local
	expect connect "err EACCES" metadata
	ingest
	got=$(db "select decision || '|' || rule || '|' || errno from events
		where op='connect' and address='169.254.169.254' and port=80")
	[ "$got" == "deny|no-cloud-metadata|13" ] || bad "connect: metadata row '$got'"
	got=$(db "select count(*) from events where op='connect' and address='127.0.0.1' and decision='allow'")
	[ "$got" == 1 ] || bad "connect: $got allowed rows for 127.0.0.1, want 1"
	for s in getaddrinfo gethostbyname; do
		n=$(db "select count(*) from events where op='connect' and host='localhost'")
		expect $s ok localhost
		ingest
		got=$(db "select count(*) from events where op='connect' and host='localhost'
			and address='127.0.0.1' and decision='allow' and errno=0")
		[ "$got" == $((n + 1)) ] || bad "$s: no connect row naming localhost"
	done
	report_bad
}

# send and sendto watch for MySQL packets: anything else goes through as is.
test_send_plain_bytes_unchanged() {
	expect send ok
	expect sendto ok
	# Nothing judged, so possibly no audit log at all.
	[ ! -e "$AGENTGUARD_STATE_DIR/audit.db" ] && [ -z "$(ls "$AGENTGUARD_STATE_DIR"/spool* 2>/dev/null)" ] ||
		{ ingest; assert_eq "$(db "select count(*) from events where op='sql'")" 0; }
	report_bad
}

LINKS="link linkat symlink symlinkat mkfifo mkfifoat mknod mknodat"

test_link_family_into_state_dir_refused_workspace_bare() {
	local s src got
	mkdir -p "$AGENTGUARD_STATE_DIR"
	echo original > "$WS/src"
	for s in $LINKS; do
		case $s in link*|symlink*) src=("$WS/src") ;; *) src=() ;; esac
		expect $s "err EACCES" "${src[@]}" "$AGENTGUARD_STATE_DIR/n.$s"
		[ ! -e "$AGENTGUARD_STATE_DIR/n.$s" ] && [ ! -L "$AGENTGUARD_STATE_DIR/n.$s" ] ||
			bad "$s: $AGENTGUARD_STATE_DIR/n.$s made"
		expect $s ok "${src[@]}" "$WS/n.$s"
		case $s in
		link*) [ "$(stat -c %i "$WS/n.$s")" == "$(stat -c %i "$WS/src")" ] ;;
		symlink*) [ "$(readlink "$WS/n.$s")" == "$WS/src" ] ;;
		*) [ -p "$WS/n.$s" ] ;;
		esac || bad "$s: $WS/n.$s is not what was asked for"
	done
	ingest
	for s in $LINKS; do
		got=$(db "select group_concat(decision || '|' || rule || '|' || errno, ' ') from events
			where op='link' and target='$AGENTGUARD_STATE_DIR/n.$s'")
		[ "$got" == "deny|agentguard-self|13" ] || bad "$s: state dir row '$got'"
		# The built-in rules name `link` (protect-credentials): a workspace
		# link is judged, allowed and recorded like every decision.
		got=$(db "select group_concat(decision || '|' || errno, ' ') from events where target='$WS/n.$s'")
		[ "$got" == "allow|0" ] || bad "$s: workspace link row '$got', want one allow"
	done
	report_bad
}

sqlite_db() {
	sqlite3 "$1" "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT);
		INSERT INTO users VALUES (1, 'ada'), (2, 'bob');
		CREATE TABLE orders(id INTEGER PRIMARY KEY, total REAL);
		INSERT INTO orders VALUES (10, 9.5);"
}

SQLITES="sqlite3_exec sqlite3_prepare sqlite3_prepare_v2 sqlite3_prepare_v3 sqlite3_prepare16
	sqlite3_prepare16_v2 sqlite3_prepare16_v3 sqlite3_set_authorizer sqlite3_close sqlite3_close_v2"

# A DROP TABLE through each entry point, under the default rules: done,
# after a snapshot of the database.
test_sqlite_entry_points() {
	local s got tables want
	for s in $SQLITES; do
		sqlite_db "$WS/$s.db"
		expect $s ok "$WS/$s.db"
		tables=$(sqlite3 "$WS/$s.db" "select group_concat(name) from sqlite_master where type='table'")
		case $s in
		sqlite3_close*) [ -z "$tables" ] ;;
		*) [ "$tables" == orders ] ;;
		esac || bad "$s: tables left: '$tables'"
		[ $s != sqlite3_set_authorizer ] ||
			[ "$(sqlite3 "$WS/$s.db" "select count(*) from orders")" == 1 ] ||
			bad "$s: the application's authorizer let DELETE FROM orders through"
	done
	ingest
	for s in $SQLITES; do
		got=$(db "select group_concat(sql_class || '|' || decision || '|' || rule, ' ') from events
			where op='sql' and database='$WS/$s.db' and sql='DROP TABLE users'")
		[ "$got" == "drop_table|snapshot|sqlite-destructive-snapshot" ] || bad "$s: DROP TABLE row '$got'"
		got=$(db "select count(*) from events where op='write' and path='$WS/$s.db' and snapshot is not null")
		# Opened read-write: kept once as it was, whatever SQL follows.
		[ "$got" == 1 ] || bad "$s: $got write snapshots of $WS/$s.db, want 1"
		got=$(db "select count(*) from events where op='sql' and database='$WS/$s.db' and snapshot is not null")
		# The second statement is judged too: the close variants' DROP
		# TABLE orders, set_authorizer's DELETE FROM orders (snapshotted,
		# then refused by the application's authorizer).
		case $s in sqlite3_close*|sqlite3_set_authorizer) want=2 ;; *) want=1 ;; esac
		[ "$got" == $want ] || bad "$s: $got snapshots of $WS/$s.db, want $want"
	done
	report_bad
}
