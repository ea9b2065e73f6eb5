# Helpers for the end-to-end tests (sourced by run.sh).
# AG_BUILD: another build directory (make asan uses build-asan). AG_ASAN_RT:
# the sanitizer runtime, which has to be preloaded ahead of an ASan-built
# library into programs that were not built with it.
AG_BUILD=${AG_BUILD:-$AG_ROOT/build}
case $AG_BUILD in /*) ;; *) AG_BUILD=$AG_ROOT/$AG_BUILD ;; esac
AG_LIB=$AG_BUILD/libagentguard.so
AG=${AG_CLI:-$AG_BUILD/agentguard}
AG_PRELOAD=${AG_ASAN_RT:+$AG_ASAN_RT:}$AG_LIB

# Under make asan, for programs that link libp11-kit (psql, curl): with the
# ASan runtime preloaded ahead of libc, glibc 2.36's setlocale lock comes out
# of p11-kit's constructor corrupted and the program hangs in exit (it does
# so with the bare runtime, without agentguard). With libc ahead of the
# runtime (and the library ahead of both, so that its interposers still
# win) it runs; ASan then keeps its stack, global and UBSan checks there but
# not its heap checks, which the units and the CLI still have.
asan_libc_first() {
	[ -n "${AG_ASAN_RT:-}" ] || return 0
	local libc
	libc=$(ldd /bin/sh | awk '$1 ~ /^libc\.so/ {print $3}')
	AG_ASAN_RT=$libc:$AG_ASAN_RT
	AG_PRELOAD=$AG_LIB:$AG_ASAN_RT
}

# A fresh world per test: never the real HOME or state.
ag_setup() {
	T=$(mktemp -d /tmp/agtest.XXXXXX)
	trap 'chmod -R u+w "$T" 2>/dev/null; rm -rf "$T"' EXIT
	export HOME=$T/home WS=$T/ws
	export AGENTGUARD_STATE_DIR=$T/state
	# The machine's own /etc/agentguard (rules.yaml, managed.yaml) is not
	# the test's: a test that wants one writes $T/etc.
	export AGENTGUARD_SYSCONFDIR=$T/sysconf
	mkdir -p "$HOME" "$WS"
	unset AGENTGUARD_SESSION AGENTGUARD_RULES AGENTGUARD_MODE AGENTGUARD_WORKSPACE \
		AGENTGUARD_MONITOR AGENTGUARD_HOME XDG_STATE_HOME XDG_CONFIG_HOME LD_PRELOAD
	cd "$WS"
}

# The LD_PRELOAD form, workspace $WS.
guard() { LD_PRELOAD=$AG_PRELOAD AGENTGUARD_WORKSPACE=$WS "$@"; }
# The wrapper form.
agrun() { LD_PRELOAD=${AG_ASAN_RT:-} "$AG" run --workspace "$WS" -- "$@"; }

db() { sqlite3 -batch "$AGENTGUARD_STATE_DIR/audit.db" "$@"; }
# Move finished spools into audit.db.
ingest() { "$AG" report --all --json >/dev/null; }
latest_session() { db "select id from sessions order by start_ns desc, rowid desc limit 1"; }

fail() { echo "FAILED: $*" >&2; return 1; }
assert_eq() { [ "$1" == "$2" ] || fail "expected '$2', got '$1' ${3:-}"; }
assert_contains() { grep -qF -- "$2" <<<"$1" || fail "expected to find '$2' in: $1"; }
assert_not_contains() { ! grep -qF -- "$2" <<<"$1" || fail "did not expect '$2' in: $1"; }
assert_exists() { [ -e "$1" ] || [ -L "$1" ] || fail "$1 should exist"; }
assert_missing() { [ ! -e "$1" ] && [ ! -L "$1" ] || fail "$1 should not exist"; }

# Everything about a tree that restore must bring back: names, types,
# modes, mtimes (ns), sizes, link targets and contents.
tree_sig() {
	(cd "$1" && find . -mindepth 1 -printf '%p %y %m %T@ %s %l\n' | sort &&
	 find . -type f -print0 | sort -z | xargs -0 -r sha256sum)
}

# A small tree with odd names, modes, a symlink and an empty directory.
make_tree() {
	mkdir -p "$1/sub/deeper" "$1/empty dir"
	printf 'hello\n' > "$1/a.txt"
	head -c 70000 /dev/urandom > "$1/sub/blob.bin"
	printf 'x' > "$1/sub/deeper/with space.txt"
	printf 'secret' > "$1/sub/private"; chmod 600 "$1/sub/private"
	printf '#!/bin/sh\n' > "$1/run.sh"; chmod 755 "$1/run.sh"
	ln -s a.txt "$1/link"
	touch -d '2020-01-02 03:04:05.123456789' "$1/a.txt" "$1/sub/blob.bin"
	chmod 700 "$1/sub/deeper"
}

# ---- the kernel layer's test programs (sources in test/e2e/kernel/) ----

KBIN=$AG_BUILD/e2e-kernel

# Build a test program once per build tree (sources in test/e2e/kernel/).
kbuild() {
	local name=$1 src out
	mkdir -p "$KBIN"
	out=$KBIN/$name
	case $name in
	kstatic) src=$AG_ROOT/test/e2e/kernel/kstatic.c ;;
	kgo) src=$AG_ROOT/test/e2e/kernel/kgo.go ;;
	kuring) src=$AG_ROOT/test/e2e/kernel/kuring.c ;;
	kgate) src=$AG_ROOT/test/e2e/kernel/kgate.c ;;
	esac
	if [ ! -x "$out" ] || [ "$src" -nt "$out" ]; then
		case $name in
		kstatic) gcc -static -O2 -pthread -o "$out.tmp.$$" "$src" ;;
		kuring) gcc -O2 -o "$out.tmp.$$" "$src" -luring ;;
		kgate) gcc -O2 -o "$out.tmp.$$" "$src" ;;
		kgo) (cd "$(dirname "$src")" && HOME=$T GOCACHE=$KBIN/gocache CGO_ENABLED=0 \
			GO111MODULE=off go build -o "$out.tmp.$$" kgo.go) ;;
		esac
		mv "$out.tmp.$$" "$out"
	fi
	echo "$out"
}

krun() { LD_PRELOAD=${AG_ASAN_RT:-} "$AG" run --require-kernel --workspace "$WS" -- "$@"; }

# rows OP PATH: "decision layer" of the events on PATH.
rows() { db "select decision || ' ' || coalesce(layer, 'library') from events where op = '$1' and path = '$2'"; }

seed() { for f in "$@"; do printf 'original %s\n' "$f" > "$WS/$f"; done; }

# A terraform that only notes how it was run (in $T/marker); prints its directory.
fake_terraform() {
	mkdir -p "$T/bin"
	printf '#!/bin/sh\necho "terraform $*" >> %s\n' "$T/marker" > "$T/bin/terraform"
	chmod +x "$T/bin/terraform"
	echo "$T/bin"
}

# A key to protect, a workspace file ($WS/after) and $T/breaker.yaml:
# the session halts after two denials (deleting ~/.ssh/id_rsa twice).
breaker_session_setup() {
	mkdir -p "$HOME/.ssh"; printf 'key\n' > "$HOME/.ssh/id_rsa"
	seed after
	cat > "$T/breaker.yaml" <<-'EOF2'
	version: 1
	limits: {denials: 2}
	rules:
	  - id: keys
	    on: [delete]
	    path: ["~/.ssh/**"]
	    action: deny
	  - id: keep
	    on: [delete]
	    path: ["$WORKSPACE/**"]
	    action: snapshot
	EOF2
}
