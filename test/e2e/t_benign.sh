# Normal work must not be refused. Each test is a piece of an ordinary
# agent's day, run with real programs under the built-in rules: it must
# finish with zero refusals, and keep snapshots only where something a
# user would want back was changed.

source "$AG_ROOT/test/e2e/dbservers.sh"

# refusals SID: deny and ask rows of the session.
refusals() {
	db "select op || ' ' || coalesce(path, '') || ' ' || coalesce(rule, '') from events
	    where session='$1' and decision in ('deny','ask')" >&2
	db "select count(*) from events where session='$1' and decision in ('deny','ask')"
}

test_tools_rewrite_their_own_configuration_and_secrets_stay_refused() {
	ssh-keygen -q -t ed25519 -N '' -f "$T/hostkey" >/dev/null
	local pub; pub=$(cut -d' ' -f1,2 "$T/hostkey.pub")
	mkdir -p "$HOME/.ssh" "$HOME/.aws"
	printf 'example.com %s\ngithub.com %s\n' "$pub" "$pub" > "$HOME/.ssh/known_hosts"
	printf 'Host gh\n  HostName github.com\n' > "$HOME/.ssh/config"
	printf 'private\n' > "$HOME/.ssh/id_ed25519"
	printf '[default]\nregion = us-east-1\n' > "$HOME/.aws/config"
	printf '[default]\naws_access_key_id = AKIAEXAMPLE\n' > "$HOME/.aws/credentials"
	printf 'registry=https://registry.npmjs.org/\n' > "$HOME/.npmrc"
	local before_aws; before_aws=$(cat "$HOME/.aws/config")

	# What each tool's own command does to its configuration (ssh-keygen
	# reads the passwd entry's home, so its file is named).
	cat > "$T/day.sh" <<EOF2
set -e
ssh-keygen -R example.com -f "$HOME/.ssh/known_hosts"
npm config set fund false
git config --global user.name agent
git config --global user.name agent2
EOF2
	local tool
	for tool in aws gcloud kubectl; do
		if ! command -v $tool >/dev/null || ! $tool --version >/dev/null 2>&1; then
			echo "not installed here, not checked: $tool"
			continue
		fi
		case $tool in
		aws) echo 'aws configure set region eu-west-1' >> "$T/day.sh" ;;
		gcloud) printf '%s\n' 'gcloud config set project p1 2>/dev/null' \
			'gcloud config set project p2 2>/dev/null' >> "$T/day.sh" ;;
		kubectl) printf '%s\n' 'kubectl config set-context dev --namespace=x >/dev/null' \
			'kubectl config use-context dev >/dev/null' >> "$T/day.sh" ;;
		esac
	done
	agrun bash "$T/day.sh" || fail "the day's commands failed"
	local sid; sid=$(latest_session)
	ingest
	assert_eq "$(refusals "$sid")" "0"
	assert_not_contains "$(cat "$HOME/.ssh/known_hosts")" "example.com"
	assert_contains "$(cat "$HOME/.npmrc")" "fund=false"
	assert_eq "$(git config --global user.name)" "agent2"
	# Each rewrite was kept first: known_hosts, .npmrc, .gitconfig at least.
	for f in "$HOME/.ssh/known_hosts" "$HOME/.npmrc" "$HOME/.gitconfig"; do
		[ "$(db "select count(*) from events where session='$sid' and snapshot is not null and (path='$f' or target='$f')")" -ge 1 ] ||
			fail "no snapshot of $f"
	done
	if grep -q '^aws ' "$T/day.sh"; then
		assert_contains "$(cat "$HOME/.aws/config")" "eu-west-1"
		"$AG" restore --session "$sid" --path "$HOME/.aws/config" >/dev/null ||
			fail "restore of ~/.aws/config failed"
		assert_eq "$(cat "$HOME/.aws/config")" "$before_aws"
	fi

	# The secrets beside them are still refused, whoever asks.
	out=$(agrun sh -c "rm -f $HOME/.ssh/id_ed25519; : > $HOME/.aws/credentials;
		printf x >> $HOME/.ssh/config" 2>&1) || true
	assert_eq "$(cat "$HOME/.ssh/id_ed25519")" "private"
	assert_contains "$(cat "$HOME/.aws/credentials")" "AKIAEXAMPLE"
	assert_contains "$(cat "$HOME/.ssh/config")" "HostName github.com"
	sid=$(latest_session)
	ingest
	assert_eq "$(db "select count(*) from events where session='$sid' and decision='deny'")" "2"
}

# snapshotted SID: the distinct paths the session kept.
snapshotted() {
	db "select path from events where session='$1' and snapshot is not null
	    union select target from events where session='$1' and snapshot is not null and target is not null"
}

test_a_day_in_a_c_and_python_project_refuses_nothing_and_keeps_only_sources() {
	mkdir -p "$WS/src" "$WS/tests"
	cd "$WS" || return 1
	git init -q . && git config user.email a@b && git config user.name a
	printf 'int add(int a, int b) { return a + b; }\n' > src/add.c
	printf 'int add(int, int);\nint main(void) { return add(1, 1) == 2 ? 0 : 1; }\n' > src/main.c
	printf 'all: app\napp: src/add.o src/main.o\n\t$(CC) -o $@ $^\nclean:\n\trm -f app src/*.o\n' > Makefile
	printf 'def add(a, b):\n    return a + b\n' > calc.py
	printf 'import unittest, calc\nclass T(unittest.TestCase):\n    def test_add(self):\n        self.assertEqual(calc.add(1, 2), 3)\n' > tests/test_calc.py
	printf 'app\n*.o\n__pycache__/\nnode_modules/\n' > .gitignore
	git add -A && git commit -qm init
	cat > "$T/day.sh" <<'EOF2'
set -e
make -s && ./app && make -s clean && make -s
PYTHONPATH=. python3 -m unittest discover -s tests -q 2>/dev/null
python3 -m compileall -q . >/dev/null
# An editor save (vim writes over the file) and a tool's atomic save.
vim -u NONE -i NONE -n -es -c '%s/a + b/b + a/' -c 'wq' calc.py
python3 - <<'PY'
import os, tempfile
fd, tmp = tempfile.mkstemp(dir="src", prefix=".add.c.")
os.write(fd, b"int add(int a, int b) { return b + a; }\n"); os.close(fd)
os.replace(tmp, "src/add.c")
PY
make -s
# git: branches, a stash, a rebase, tags.
git checkout -q -b feature
echo '# notes' > NOTES.md && git add NOTES.md && git commit -qm notes
git checkout -q master 2>/dev/null || git checkout -q main
echo 'x = 1' >> calc.py && git stash -q && git stash pop -q && git checkout -q -- calc.py
git commit -qam "edits" || true
git checkout -q feature && git rebase -q master 2>/dev/null || git rebase -q main
git tag v0.1 && git checkout -q -
# A SQLite migration: schema change and data fix-up with a WHERE.
sqlite3 app.db "create table users(id integer primary key, name text); insert into users(name) values ('a'),('b');"
sqlite3 app.db "alter table users add column email text; create index users_name on users(name); update users set email = name || '@example.com' where email is null; delete from users where name = 'b';"
# Tool configuration.
git config --global init.defaultBranch main
EOF2
	agrun bash -x "$T/day.sh" 2>"$T/day.log" || { grep -v "^agentguard" "$T/day.log" | tail -5 >&2; fail "the day's work failed"; }
	local sid; sid=$(latest_session)
	ingest
	assert_eq "$(refusals "$sid")" "0"
	assert_eq "$(sqlite3 "$WS/app.db" "select count(*) from users where email is not null")" "1"
	# Kept: the sources the editor and the tool saved over, the database
	# the migration changed, and the refs and reflogs git rewrote (a lock
	# renamed over each: the rename's source is the lock); not the build's
	# objects, __pycache__, or git's scratch (its index, lock files,
	# temporary indexes, objects).
	local kept; kept=$(snapshotted "$sid")
	assert_contains "$kept" "$WS/calc.py"
	assert_contains "$kept" "$WS/src/add.c"
	assert_contains "$kept" "$WS/app.db"
	! grep -q '\.o$' <<<"$kept" || fail "an object file was kept: $kept"
	assert_not_contains "$kept" "__pycache__"
	assert_contains "$kept" "$WS/.git/refs/heads/feature"
	assert_eq "$(db "select count(*) from events where session='$sid' and snapshot is not null
	                 and (op != 'rename' and path like '%.lock' or path like '%/.git/index%'
	                      or path like '%/.git/objects/%')")" 0
	assert_not_contains "$kept" "$WS/.git/index"
	echo "kept: $(echo "$kept" | wc -l) paths"
}

test_a_postgresql_migration_refuses_nothing() {
	asan_libc_first   # psql links p11-kit (lib.sh); vim and ssh-keygen want ASan first
	pg_start || return 1
	cat > "$T/migrate.sql" <<'EOF2'
CREATE TABLE accounts(id serial PRIMARY KEY, name text NOT NULL);
INSERT INTO accounts(name) VALUES ('a'), ('b'), ('c');
BEGIN;
ALTER TABLE accounts ADD COLUMN email text;
UPDATE accounts SET email = name || '@example.com' WHERE email IS NULL;
CREATE INDEX accounts_email ON accounts(email);
DELETE FROM accounts WHERE name = 'c';
COMMIT;
CREATE TEMP TABLE scratch AS SELECT * FROM accounts;
DROP TABLE scratch;
EOF2
	agrun psql -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCK" -d test -f "$T/migrate.sql" ||
		fail "the migration failed"
	local sid; sid=$(latest_session)
	ingest
	assert_eq "$(refusals "$sid")" "0"
	assert_eq "$(sql_kept "$sid")" "0"
	assert_eq "$(pg_sql -c "select count(*) from accounts where email is not null")" "2"
}

# sql_kept SID: statements the session judged worth a pre-image.
sql_kept() {
	db "select sql from events where session='$1' and op='sql' and decision <> 'allow'" >&2
	db "select count(*) from events where session='$1' and op='sql' and decision <> 'allow'"
}

# The same migration on MariaDB through Debian's mariadb client (read on
# the wire: its temporary tables are the server's to tell), with a
# scratch table emptied and dropped as migrations do.
test_a_mariadb_migration_refuses_nothing() {
	my_start || return 1
	cat > "$T/migrate.sql" <<'EOF2'
CREATE TABLE accounts(id int AUTO_INCREMENT PRIMARY KEY, name varchar(20) NOT NULL);
INSERT INTO accounts(name) VALUES ('a'), ('b'), ('c');
ALTER TABLE accounts ADD COLUMN email varchar(64);
UPDATE accounts SET email = CONCAT(name, '@example.com') WHERE email IS NULL;
CREATE INDEX accounts_email ON accounts(email);
DELETE FROM accounts WHERE name = 'c';
CREATE TEMPORARY TABLE scratch AS SELECT * FROM accounts;
UPDATE scratch SET name = UPPER(name);
INSERT INTO accounts(name, email) SELECT CONCAT(name, '2'), email FROM scratch;
DELETE FROM scratch;
DROP TABLE scratch;
EOF2
	agrun mariadb --no-defaults --socket="$MY_SOCK" -u root test < "$T/migrate.sql" ||
		fail "the migration failed"
	local sid; sid=$(latest_session)
	ingest
	assert_eq "$(refusals "$sid")" "0"
	assert_eq "$(sql_kept "$sid")" "0"
	assert_eq "$(my_sql -e "select group_concat(name order by id) from accounts")" "a,b,A2,B2"
}

test_package_installs_refuse_nothing() {
	cd "$WS" || return 1
	printf '{"name": "app", "version": "1.0.0"}\n' > package.json
	# A wheel of our own: pip installs it without a build or an index.
	python3 - "$T/agpkg-0.1-py3-none-any.whl" <<'PY'
import sys, zipfile
files = {"agpkg/__init__.py": "X = 1\n",
         "agpkg-0.1.dist-info/METADATA": "Metadata-Version: 2.1\nName: agpkg\nVersion: 0.1\n",
         "agpkg-0.1.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: t\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
files["agpkg-0.1.dist-info/RECORD"] = "".join(f"{n},,\n" for n in files) + "agpkg-0.1.dist-info/RECORD,,\n"
with zipfile.ZipFile(sys.argv[1], "w") as z:
    for n, t in files.items():
        z.writestr(n, t)
PY
	cat > "$T/day.sh" <<EOF2
set -e
npm install --no-audit --no-fund --loglevel=error is-number@7 >/dev/null
npm install --no-audit --no-fund --loglevel=error is-number@7.0.0 >/dev/null
node -e 'require("is-number")'
python3 -m venv .venv
.venv/bin/pip install -q --no-index "$T/agpkg-0.1-py3-none-any.whl"
.venv/bin/pip install -q --no-index --force-reinstall "$T/agpkg-0.1-py3-none-any.whl"
.venv/bin/python -c 'import agpkg'
EOF2
	agrun bash -x "$T/day.sh" 2>"$T/day.log" ||
		{ grep -v '^agentguard' "$T/day.log" | tail -5 >&2; fail "the installs failed"; }
	local sid; sid=$(latest_session)
	ingest
	assert_eq "$(refusals "$sid")" "0"
	local kept; kept=$(snapshotted "$sid")
	assert_not_contains "$kept" "node_modules"
	assert_not_contains "$kept" ".venv"
}
