# The mode operation: chmod, fchmod, fchmodat, chown, fchown, lchown and
# fchownat, under the built-in rules. A key's mode or owner must not change;
# a workspace file's change is kept so restore can put it back. A file with
# a second name (a hard link made before the session) is judged under its
# protected name too.

key_setup() {
	mkdir -p "$HOME/.ssh"
	printf 'PRIVATE KEY\n' > "$HOME/.ssh/id_ed25519"
	chmod 600 "$HOME/.ssh/id_ed25519"
}

# Every entry point, from python: prints one errno name (or ok) per call.
mode_py() {
	guard python3 -c '
import os, sys, errno
p = sys.argv[1]
d = os.open(os.path.dirname(p), os.O_RDONLY)
name = os.path.basename(p)
calls = [
    ("chmod", lambda: os.chmod(p, 0o644)),
    ("fchmod", lambda: os.fchmod(os.open(p, os.O_RDONLY), 0o644)),
    ("fchmodat", lambda: os.chmod(name, 0o644, dir_fd=d)),
    ("chown", lambda: os.chown(p, 1, 1)),
    ("fchown", lambda: os.fchown(os.open(p, os.O_RDONLY), 1, 1)),
    ("lchown", lambda: os.lchown(p, 1, 1)),
    ("fchownat", lambda: os.chown(name, 1, 1, dir_fd=d, follow_symlinks=False)),
]
for n, f in calls:
    try:
        f(); print(n, "ok")
    except OSError as e:
        print(n, errno.errorcode.get(e.errno, e.errno))
' "$1"
}

test_a_keys_mode_and_owner_do_not_change() {
	key_setup
	out=$(mode_py "$HOME/.ssh/id_ed25519" 2>"$T/err")
	assert_eq "$out" "chmod EACCES
fchmod EACCES
fchmodat EACCES
chown EACCES
fchown EACCES
lchown EACCES
fchownat EACCES"
	assert_eq "$(stat -c '%a %u:%g' "$HOME/.ssh/id_ed25519")" "600 $(id -u):$(id -g)"
	assert_contains "$(cat "$T/err")" "agentguard: denied mode $HOME/.ssh/id_ed25519 -> 0644 (was 0600) (rule protect-credentials"
	# coreutils too (fchmodat underneath)
	guard chmod 777 "$HOME/.ssh/id_ed25519" 2>/dev/null && fail "chmod 777 of the key succeeded"
	guard chown 1:1 "$HOME/.ssh/id_ed25519" 2>/dev/null && fail "chown of the key succeeded"
	assert_eq "$(stat -c '%a %u:%g' "$HOME/.ssh/id_ed25519")" "600 $(id -u):$(id -g)"
	ingest
	assert_eq "$(db "select count(*) || '|' || min(decision) || '|' || max(decision) from events where op='mode' and path='$HOME/.ssh/id_ed25519'")" "9|deny|deny"
	assert_eq "$(db "select target from events where op='mode' and target like '1:1%' limit 1")" "1:1 (was $(id -u):$(id -g))"
	# changing nothing is no operation
	guard chmod 600 "$HOME/.ssh/id_ed25519" || fail "chmod to the same mode was refused"
}

test_workspace_mode_change_kept_and_restored() {
	printf '#!/bin/sh\necho hi\n' > "$WS/deploy.sh"
	chmod 640 "$WS/deploy.sh"
	out=$(mode_py "$WS/deploy.sh" 2>&1)
	assert_eq "$(grep -c ' ok$' <<<"$out")" 7 "($out)"
	assert_eq "$(stat -c '%a %u:%g' "$WS/deploy.sh")" "644 1:1"
	ingest
	# the first change of each kind was kept; the ones that changed nothing were none
	assert_eq "$(db "select group_concat(decision) from (select decision from events where op='mode' and path='$WS/deploy.sh' order by id)")" "snapshot,snapshot"
	s=$(db "select id from sessions order by start_ns desc limit 1")
	"$AG" restore --overwrite --session "$s" > "$T/restore.out" || fail "restore: $(cat "$T/restore.out")"
	assert_eq "$(stat -c '%a %u:%g' "$WS/deploy.sh")" "640 $(id -u):$(id -g)"
	assert_eq "$(cat "$WS/deploy.sh")" "$(printf '#!/bin/sh\necho hi')"
}

test_guards_own_files_mode_refused() {
	seed x; guard rm "$WS/x"; ingest
	out=$(guard chmod 666 "$AGENTGUARD_STATE_DIR/audit.db" 2>&1) && fail "chmod of audit.db succeeded: $out"
	assert_contains "$out" "rule agentguard-self"
}

test_second_name_of_a_key_is_the_key() {
	key_setup
	# Made before the session: the guard never saw it.
	ln "$HOME/.ssh/id_ed25519" "$WS/innocent.txt"
	out=$(guard sh -c ": > '$WS/innocent.txt'" 2>&1) && fail "truncating the key through its alias succeeded"
	assert_contains "$out" "this file is also $HOME/.ssh/id_ed25519 (a hard link)"
	guard chmod 644 "$WS/innocent.txt" 2>/dev/null && fail "chmod through the alias succeeded"
	guard dd if=/dev/zero of="$WS/innocent.txt" bs=1 count=4 conv=notrunc 2>/dev/null &&
		fail "overwriting the key in place through its alias succeeded"
	assert_eq "$(cat "$HOME/.ssh/id_ed25519")" "PRIVATE KEY"
	assert_eq "$(stat -c %a "$HOME/.ssh/id_ed25519")" 600
	# A new name for a key, or a key planted under a protected name: refused.
	guard ln "$HOME/.ssh/id_ed25519" "$WS/copy" 2>/dev/null && fail "linking the key succeeded"
	assert_missing "$WS/copy"
	printf 'ssh-ed25519 AAAA attacker\n' > "$WS/mine"
	guard ln "$WS/mine" "$HOME/.ssh/authorized_keys2" 2>/dev/null && fail "planting a key succeeded"
	assert_missing "$HOME/.ssh/authorized_keys2"
	ingest
	assert_eq "$(db "select count(*) from events where op='link' and decision='deny'")" 2
	assert_eq "$(db "select count(*) from events where path='$WS/innocent.txt' and decision='deny' and rule='protect-credentials'")" 3
	# An ordinary file with two names is judged as itself.
	printf 'data\n' > "$WS/a"; ln "$WS/a" "$WS/b"
	guard sh -c ": > '$WS/b'" || fail "truncating an ordinary linked file was refused"
}

# A workspace file with a second name elsewhere, truncated through one name:
# restore writes the content back into the same inode, so both names have it.
test_restore_writes_back_into_the_linked_inode() {
	mkdir -p "$T/other"
	printf 'shared content\n' > "$WS/data.txt"
	ln "$WS/data.txt" "$T/other/data.txt"
	guard sh -c ": > '$WS/data.txt'"
	assert_eq "$(cat "$T/other/data.txt")" ""
	ingest
	id=$(db "select snapshot from events where op='truncate' and path='$WS/data.txt'")
	[ -n "$id" ] || fail "no snapshot of the truncation"
	"$AG" restore --overwrite "$id" > "$T/out" || fail "restore: $(cat "$T/out")"
	assert_eq "$(cat "$WS/data.txt")" "shared content"
	assert_eq "$(cat "$T/other/data.txt")" "shared content"
	assert_eq "$(stat -c %i "$WS/data.txt")" "$(stat -c %i "$T/other/data.txt")"
}
