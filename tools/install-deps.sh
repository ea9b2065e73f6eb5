#!/bin/sh
# Install what building and testing agentguard needs on Debian, skipping what
# is already there. Used by the README's first command and by CI.
# The database servers are for the end-to-end tests, which start their own
# instances on a unix socket; the system services are never used.
# python3-psycopg2: a libpq client of another kind (test/e2e/t_pgimage.sh).
# libclang-rt-14-dev: libFuzzer and clang's sanitizer runtimes (make fuzz);
# libasan8/libubsan1: gcc's shared sanitizer runtimes (make asan).
# busybox-static, golang-go, liburing-dev: static programs, a Go program and
# io_uring for the kernel layer's tests. vim: a real editor's saves (swap
# files, in-place writes) for test/e2e/t_undo.sh. rsyslog: the syslog
# receiver test/e2e/t_export.sh starts on its own socket (the system service
# is never used); chromium: the HTML report's layout test (headless).
# valgrind, strace: the counts test/e2e/t_counts.sh checks (instructions, calls).
# better-sqlite3 (npm, into /opt/agentguard-test): a SQLite with hidden
# symbols for test/e2e/t_sqlite.sh; it downloads a prebuilt module or builds
# one (g++, make, python3). pg and mysql2 (npm, there too): clients that speak
# the PostgreSQL and MySQL protocols themselves, without libpq or
# libmysqlclient (test/e2e/t_wire.sh, bench/run.py). One npm install for all
# three: a later install without the others would prune them.
set -eu
pkgs="make gcc libc6-dev clang binutils pkg-config libyaml-dev libsqlite3-dev libjansson-dev
nettle-dev libcriterion-dev sqlite3 python3 perl git findutils coreutils tar
postgresql postgresql-client mariadb-server mariadb-client util-linux bsdutils python3-psycopg2
libclang-rt-14-dev libasan8 libubsan1 busybox-static golang-go liburing-dev file vim
rsyslog chromium man-db groff-base valgrind strace rsync"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
bsq=/opt/agentguard-test
if [ -n "$missing" ]; then
	if [ "$(id -u)" -ne 0 ]; then
		command -v sudo >/dev/null || { echo "install-deps: run as root to install:$missing" >&2; exit 1; }
		sudo=sudo
	else
		sudo=
	fi
	echo "install-deps: installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	$sudo apt-get update -qq
	# shellcheck disable=SC2086
	$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
if command -v npm >/dev/null && { [ ! -d "$bsq/node_modules/better-sqlite3/build" ] ||
	[ ! -d "$bsq/node_modules/pg" ] || [ ! -d "$bsq/node_modules/mysql2" ]; }; then
	echo "install-deps: installing better-sqlite3, pg and mysql2 into $bsq"
	${sudo:-} mkdir -p "$bsq"
	(cd "$bsq" && ${sudo:-} npm install --no-save --no-audit --no-fund better-sqlite3 pg mysql2 >/dev/null) ||
		echo "install-deps: the npm packages could not be installed (t_sqlite's and t_wire's node tests will fail)" >&2
fi
