#!/usr/bin/env bash
# make asan: the Criterion units and the end-to-end suite against the
# ASan+UBSan build in $AG_BUILD. Every sanitizer report fails the run, also
# one from a guarded program that exits 0 anyway: reports go to files under
# a log directory, which must be empty at the end.
set -u
cd "$(dirname "$0")/.."
b=${AG_BUILD:-build-asan}
rt=${ASAN_RT:?ASAN_RT: the path of libasan.so}
rt=$(readlink -f "$rt")
logs=$(mktemp -d /tmp/agentguard-asan.XXXXXX)
start=$(date +%s)
fail=0

export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$logs/ubsan"

# The units: leaks count here. Criterion's own runner allocations are not
# ours, so only leaks whose stack reaches agentguard code are reported.
ASAN_OPTIONS="detect_leaks=1:log_path=$logs/asan-unit" \
LSAN_OPTIONS="suppressions=$PWD/test/asan.supp:print_suppressions=0" \
	"$b/test/unit" --jobs 2 2>&1 | tail -n 3
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "asan: unit tests failed"; fail=1; }

# The end-to-end suite. Guarded programs (bash, coreutils, python, ...) are
# not ours: no leak checks for them; verify_asan_link_order=0 because the
# runtime is preloaded rather than linked first. The CLI keeps leak
# checking except for `run`, whose environment the agent inherits.
cli=$(mktemp /tmp/agentguard-asan-cli.XXXXXX)
cat > "$cli" <<EOS
#!/bin/sh
leaks=1
[ "\${1:-}" = run ] && leaks=0
ASAN_OPTIONS="\$ASAN_OPTIONS:detect_leaks=\$leaks" exec "$PWD/$b/agentguard" "\$@"
EOS
chmod 755 "$cli"
AG_BUILD=$b AG_ASAN_RT=$rt AG_CLI=$cli \
ASAN_OPTIONS="verify_asan_link_order=0:detect_leaks=0:log_path=$logs/asan" \
LSAN_OPTIONS="suppressions=$PWD/test/asan.supp:print_suppressions=0" \
	bash test/e2e/run.sh "${1:-}" 2>&1 | grep -v '^ok '
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "asan: end-to-end tests failed"; fail=1; }
rm -f "$cli"

if compgen -G "$logs/*" >/dev/null; then
	echo "asan: sanitizer reports:"
	for f in "$logs"/*; do echo "== $f"; head -n 60 "$f"; done
	fail=1
fi
rm -rf "$logs"
echo "asan: $([ $fail -eq 0 ] && echo passed || echo FAILED) in $(( $(date +%s) - start )) s"
exit $fail
