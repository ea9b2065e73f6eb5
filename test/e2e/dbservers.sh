# Real database servers for the end-to-end tests (sourced by t_db.sh after
# lib.sh). Each server belongs to one test: its data, socket and log live
# under $T, it listens on a unix socket only (never TCP, so parallel runs and
# a system instance cannot collide), and it is stopped when the test's shell
# exits, however the test ends. The servers themselves run unguarded: the
# tests judge the clients.
#
#   pg_start    PostgreSQL in $T/pg; sets PG_SOCK (socket dir), database "test"
#               (PG_SERVER_OPTS: more server options, e.g. TLS on TCP, which
#               the test then also chooses a PGPORT for)
#   pg_sql ...  psql as the superuser, unguarded (setup and checks)
#   my_start    MariaDB in $T/my; sets MY_SOCK (socket file), database "test"
#   my_sql ...  the mariadb client as root, unguarded
#
# A server that does not start fails the test with its log: a test that
# silently skipped its database would pass without testing anything.

# The newest installed PostgreSQL (15 on Debian 12); its server programs are
# not on PATH.
PG_BIN=${PG_BIN:-$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)}
# The client connects as whoever runs the tests; the cluster's superuser gets
# that name so no -U is needed.
PG_USER=$(id -un)
DB_STOPS=()

# Database servers refuse to run as root. When we are root, run them as the
# account their package created, which must be able to reach $T. From /:
# the test's own directories are closed to that account.
db_as() {
	local user=$1; shift
	if [ "$(id -u)" -eq 0 ]; then
		(cd / && HOME=/ exec setpriv --reuid="$user" --regid="$user" --init-groups -- "$@")
	else
		(cd / && exec "$@")
	fi
}

# A directory under $T that the server's account owns.
db_dir() {
	local user=$1 dir=$2
	mkdir -p "$dir"
	if [ "$(id -u)" -eq 0 ]; then
		chmod o+x "$T"          # traverse, not list
		chown "$user:" "$dir"
		chmod 700 "$dir"
	fi
}

# db_on_exit STOPFN: run STOPFN when the test's shell exits, before
# ag_setup's trap removes $T (a server whose directory vanished would run
# on, orphaned). trap -p quotes the old trap for re-reading.
db_on_exit() {
	if [ ${#DB_STOPS[@]} -eq 0 ]; then
		local parts=()
		eval "parts=($(trap -p EXIT))"
		# shellcheck disable=SC2064
		trap "db_stop_all; ${parts[2]:-}" EXIT
	fi
	DB_STOPS+=("$1")
}

db_stop_all() {
	local s
	for s in "${DB_STOPS[@]}"; do "$s" || true; done
	DB_STOPS=()
}

# db_start_failed WHAT LOG...: show every log, then fail.
db_start_failed() {
	local what=$1 log
	shift
	for log; do
		echo "---- $log ----" >&2
		cat "$log" >&2 2>/dev/null || echo "(missing)" >&2
	done
	echo "----" >&2
	fail "$what"
}

pg_start() {
	[ -x "$PG_BIN/initdb" ] || fail "no PostgreSQL server programs in /usr/lib/postgresql/*/bin (tools/install-deps.sh)" || return 1
	local dir=$T/pg
	db_dir postgres "$dir"
	PG_SOCK=$dir
	PG_LOG=$dir/server.log
	# Disposable data: no fsync, no locale surprises.
	db_as postgres "$PG_BIN/initdb" -D "$dir/data" -U "$PG_USER" --auth=trust \
		--no-sync --encoding=UTF8 --locale=C >"$dir/initdb.log" 2>&1 ||
		db_start_failed "PostgreSQL: initdb failed" "$dir/initdb.log" || return 1
	db_on_exit pg_stop
	db_as postgres "$PG_BIN/pg_ctl" -D "$dir/data" -l "$PG_LOG" -w -t 30 \
		-o "-k $dir -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off ${PG_SERVER_OPTS:-}" \
		start >"$dir/pg_ctl.log" 2>&1 ||
		db_start_failed "PostgreSQL did not start" "$dir/pg_ctl.log" "$PG_LOG" || return 1
	pg_sql -d postgres -c "CREATE DATABASE test" >/dev/null ||
		db_start_failed "PostgreSQL: cannot create the test database" "$PG_LOG" || return 1
}

pg_stop() {
	[ -f "$T/pg/data/postmaster.pid" ] || return 0
	db_as postgres "$PG_BIN/pg_ctl" -D "$T/pg/data" -m immediate -w -t 20 stop >/dev/null 2>&1 ||
		echo "warning: PostgreSQL in $T/pg did not stop" >&2
}

# Later -d wins, so callers may name another database. Notices ("table
# does not exist, skipping") would land in what the tests compare.
pg_sql() { PGOPTIONS="-c client_min_messages=warning" psql -X -q -At -v ON_ERROR_STOP=1 -h "$PG_SOCK" -d test "$@"; }

my_start() {
	command -v mariadbd >/dev/null || fail "no mariadbd (tools/install-deps.sh)" || return 1
	local dir=$T/my
	db_dir mysql "$dir"
	MY_SOCK=$dir/mysqld.sock
	MY_LOG=$dir/server.log
	# --no-defaults everywhere: /etc/mysql/my.cnf points at the system
	# instance's socket, pid file and data.
	db_as mysql mariadb-install-db --no-defaults --datadir="$dir/data" \
		--auth-root-authentication-method=normal --skip-test-db \
		--skip-name-resolve >"$dir/install.log" 2>&1 ||
		db_start_failed "MariaDB: mariadb-install-db failed" "$dir/install.log" || return 1
	db_on_exit my_stop
	db_as mysql mariadbd --no-defaults --datadir="$dir/data" --socket="$MY_SOCK" \
		--skip-networking --pid-file="$dir/mysqld.pid" --log-error="$MY_LOG" \
		--innodb-buffer-pool-size=16M --innodb-flush-log-at-trx-commit=0 \
		--skip-name-resolve </dev/null >"$dir/mariadbd.out" 2>&1 &
	# Until the server writes its pid file, the background job stands for
	# it: the job ends when the server does.
	MY_PID=$!
	local i
	for ((i = 0; i < 300; i++)); do
		mariadb-admin --no-defaults --socket="$MY_SOCK" -u root ping >/dev/null 2>&1 && break
		kill -0 "$MY_PID" 2>/dev/null || break
		sleep 0.1
	done
	[ ! -s "$dir/mysqld.pid" ] || MY_PID=$(cat "$dir/mysqld.pid")
	mariadb-admin --no-defaults --socket="$MY_SOCK" -u root ping >/dev/null 2>&1 ||
		db_start_failed "MariaDB did not start" "$dir/mariadbd.out" "$MY_LOG" || return 1
	mariadb --no-defaults --socket="$MY_SOCK" -u root -e "CREATE DATABASE test" ||
		db_start_failed "MariaDB: cannot create the test database" "$MY_LOG" || return 1
}

my_stop() {
	[ -n "${MY_PID:-}" ] || return 0
	kill -TERM "$MY_PID" 2>/dev/null || return 0
	local i
	for ((i = 0; i < 200; i++)); do
		kill -0 "$MY_PID" 2>/dev/null || return 0
		sleep 0.05
	done
	echo "warning: MariaDB in $T/my did not stop on TERM; killing it" >&2
	kill -KILL "$MY_PID" 2>/dev/null || true
}

my_sql() { mariadb --no-defaults --socket="$MY_SOCK" -u root -N -B -D test "$@"; }
