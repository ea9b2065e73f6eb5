# Under an allow-all policy, real programs behave byte for byte as without
# the guard: same stdout, stderr and exit status.

allow_all() {
	printf 'version: 1\nrules: []\n' > "$T/allow.yaml"
}

# same SETUP_FN CMD...: run CMD in a fresh copy made by SETUP_FN, bare and
# guarded, in the same directory, and compare everything it printed.
same() {
	local setup=$1; shift
	local out1 out2 rc1 rc2
	rm -rf "$WS/run"; mkdir -p "$WS/run"; (cd "$WS/run" && $setup && fixed_times)
	out1=$(cd "$WS/run" && "$@" 2>&1) && rc1=0 || rc1=$?
	rm -rf "$WS/run"; mkdir -p "$WS/run"; (cd "$WS/run" && $setup && fixed_times)
	out2=$(cd "$WS/run" && AGENTGUARD_RULES=$T/allow.yaml LD_PRELOAD=$AG_PRELOAD "$@" 2>&1) && rc2=0 || rc2=$?
	[ "$rc1" == "$rc2" ] || fail "exit status differs for '$*': $rc1 bare, $rc2 guarded"
	[ "$out1" == "$out2" ] || { diff <(echo "$out1") <(echo "$out2") | head -20; fail "output differs for '$*'"; }
}

# The two copies are made at different moments: give them the same times,
# the copy's own directory included (ls -la shows it as ..), and make sure
# nothing in it keeps the time it was made at.
fixed_times() {
	find . -exec touch -h -d '2021-02-03 04:05:06' {} +
	local newer; newer=$(find . -newermt '2021-02-03 04:05:06')
	[ -z "$newer" ] || fail "times not fixed in the copy: $newer"
}

setup_tree() { make_tree tree; }
setup_repo() {
	git init -q repo && cd repo && printf 'a\n' > a && git add a &&
	GIT_AUTHOR_DATE='2020-01-01T00:00:00Z' GIT_COMMITTER_DATE='2020-01-01T00:00:00Z' \
	git -c user.email=t@t -c user.name=t commit -qm first
}
setup_none() { :; }

test_coreutils_and_shell() {
	allow_all
	same setup_tree ls -la --time-style=+%s tree tree/sub
	same setup_tree sh -c 'echo out; echo err >&2; exit 7'
	same setup_tree rm -rv tree
	same setup_tree rm /nonexistent
	# cp -v lists in inode order, which depends on the filesystem's history
	same setup_tree sh -c 'cp -a tree copy && find copy -printf "%p %y %m %s %l\n" | sort'
	same setup_tree mv -v tree/a.txt tree/sub/blob.bin
	same setup_tree sh -c 'echo new > tree/a.txt; cat tree/a.txt; : > tree/sub/blob.bin; wc -c tree/sub/blob.bin'
	same setup_tree truncate -s 3 tree/sub/blob.bin
	same setup_tree find tree -name '*.txt' -delete -print
}

test_tar_and_make() {
	allow_all
	same setup_tree sh -c 'tar -cf t.tar tree && rm -r tree && tar -xvf t.tar && tar -tvf t.tar'
	printf 'all: out.txt\nout.txt:\n\techo built > out.txt\nclean:\n\trm -f out.txt\n' > "$T/Makefile"
	same setup_none sh -c "cp '$T/Makefile' . && make && make clean && make -n"
}

test_git() {
	allow_all
	same setup_repo git status
	same setup_repo git log --format='%H %s'
	same setup_repo sh -c 'printf b > b && git add b && GIT_AUTHOR_DATE=2020-01-02T00:00:00Z GIT_COMMITTER_DATE=2020-01-02T00:00:00Z git -c user.email=t@t -c user.name=t commit -m second && git rm -q a && git status --short'
}

test_python_perl_sqlite_errno() {
	allow_all
	same setup_tree python3 -c '
import os, errno, shutil
def t(f, *a):
    try: f(*a); print(f.__name__, "ok")
    except OSError as e: print(f.__name__, errno.errorcode[e.errno])
t(os.remove, "/nonexistent/x"); t(os.rmdir, "tree"); t(os.rename, "nope", "x")
t(os.remove, "tree/a.txt"); t(os.unlink, "tree/sub"); t(shutil.rmtree, "tree")
t(os.truncate, "gone", 0); t(open, "/proc/version", "w")
'
	same setup_tree perl -e 'unlink("nope") or print "$!\n"; rmdir("tree") or print "$!\n"; rename("tree/a.txt","tree/b") and print "ok\n"'
	same setup_none sqlite3 t.db 'create table t(a); insert into t values(1),(2); delete from t where a=1; select * from t;'
}
