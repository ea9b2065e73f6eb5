# Counts that do not depend on load (issue: performance in counts): the
# instructions of a hooked call no rule matches and of a process's first
# decision, from callgrind, and the system calls of a hooked call, from
# strace. Each bound is what the build does now plus 20%: a change that
# makes the hot path dearer fails here. (The goals are lower, see the
# README's speed section: 800 instructions and no system call per call.)

counts_setup() {
	[ -z "${AG_ASAN_RT:-}" ] || { echo "skipped: counts of a sanitized build mean nothing"; return 1; }
	command -v valgrind >/dev/null || { echo "valgrind is missing (tools/install-deps.sh installs it)"; exit 1; }
	gcc -O2 -o "$T/callloop" "$AG_ROOT/bench/callloop.c"
	mkdir -p "$T/tmp/scratch"
}

# Instructions callloop N executes (valgrind's total), $1 = N, rest: env.
ir() {
	local n=$1; shift
	(cd "$T/tmp/scratch" && env "$@" valgrind --tool=callgrind --callgrind-out-file=/dev/null \
		"$T/callloop" "$n" 2>&1) | sed -n 's/.*I *refs: *//p' | tr -d ,
}

test_a_hooked_call_no_rule_matches_stays_within_its_instruction_count() {
	counts_setup || return 0
	# The workspace is elsewhere: no rule matches a name in scratch.
	local g="LD_PRELOAD=$AG_PRELOAD" w="AGENTGUARD_WORKSPACE=$WS"
	guarded=$(( ($(ir 3000 "$g" "$w") - $(ir 1000 "$g" "$w")) / 2000 ))
	bare=$(( ($(ir 3000 X=1) - $(ir 1000 X=1)) / 2000 ))
	per=$((guarded - bare))
	echo "unmatched hooked call: $per instructions (bare unlink: $bare)"
	[ "$per" -gt 0 ] || fail "the call was not hooked ($per)"
	# Goal 800, and the bound the goal plus 20%; 948 on 2026-12-04 (the
	# directory's verdict kept from the call before, two fields and a coded
	# header a row, the path's small steps in line: see the README's speed
	# section).
	[ "$per" -le 960 ] || fail "an unmatched hooked call costs $per instructions (goal 800, bound 960)"
}

test_a_hooked_call_no_rule_matches_makes_one_system_call_of_its_own() {
	counts_setup || return 0
	command -v strace >/dev/null || fail "strace is missing"
	one() { (cd "$T/tmp/scratch" && env $1 AGENTGUARD_WORKSPACE="$WS" strace -f -o "$T/st" \
		"$T/callloop" "$2" >/dev/null 2>&1); wc -l < "$T/st"; }
	g=$(( $(one "LD_PRELOAD=$AG_PRELOAD" 2000) - $(one "LD_PRELOAD=$AG_PRELOAD" 1000) ))
	b=$(( $(one X=1 2000) - $(one X=1 1000) ))
	echo "system calls per 1000 unmatched hooked calls: $g (bare: $b)"
	[ "$b" -ge 1000 ] || fail "bare callloop made $b calls"
	# One getcwd each, the spool's look for its file every 16 records
	# (63), and its growth (a page of records at a time).
	[ $((g - b)) -le 1090 ] || fail "1000 hooked calls made $((g - b)) system calls of the guard's own (bound 1090)"
}

test_a_process_making_its_first_decision_stays_within_its_instruction_count() {
	counts_setup || return 0
	# Under `run` (the rules compiled once into the session's image); the
	# kernel layer is off: valgrind's own calls would go to the supervisor.
	d0=$( (cd "$T/tmp/scratch" && "$AG" run --no-kernel --workspace "$WS" -- valgrind --tool=callgrind \
		--callgrind-out-file=/dev/null "$T/callloop" 0 2>&1) | sed -n 's/.*I *refs: *//p' | tr -d ,)
	d1=$( (cd "$T/tmp/scratch" && "$AG" run --no-kernel --workspace "$WS" -- valgrind --tool=callgrind \
		--callgrind-out-file=/dev/null "$T/callloop" 1 2>&1) | sed -n 's/.*I *refs: *//p' | tr -d ,)
	per=$((d1 - d0))
	echo "a deciding process: $per instructions above one that decides nothing"
	[ "$per" -gt 0 ] || fail "no decision was made ($d0, $d1)"
	[ "$per" -le 240000 ] || fail "a process's first decision costs $per instructions (goal 200000, bound 240000)"
}

test_a_process_making_its_first_decision_stays_within_its_system_call_count() {
	counts_setup || return 0
	command -v strace >/dev/null || fail "strace is missing"
	calls() { (cd "$T/tmp/scratch" && "$AG" run --no-kernel --workspace "$WS" -- strace -f \
		-o "$T/st$1" "$T/callloop" "$1" >/dev/null 2>&1); wc -l < "$T/st$1"; }
	per=$(( $(calls 1) - $(calls 0) ))
	echo "a deciding process: $per system calls above one that decides nothing (its unlink included)"
	[ "$per" -gt 1 ] || fail "no decision was made ($per)"
	# Goal 15; 26 on 2026-12-03. What remains: the spool's creation (8,
	# its process's start time from /proc/PID/stat among them), the rules
	# image (5), the stack check (5), the process record (getppid, getcwd).
	[ "$per" -le 31 ] || fail "a process's first decision makes $per system calls (goal 15, bound 31)"
}

# Instructions per decision of build/test/decideloop: $1 rules, $2 kind.
per_decision() {
	local dl a b
	dl=$AG_BUILD/test/decideloop
	# Run in a command substitution, which set -e does not reach: each
	# failure returns, so the caller's assignment fails the test.
	[ -x "$dl" ] || { fail "$dl is missing (make test builds it)"; return 1; }
	a=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$dl" "$1" 1000 "$2" 2>&1 |
		sed -n 's/.*I *refs: *//p' | tr -d ,)
	b=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$dl" "$1" 3000 "$2" 2>&1 |
		sed -n 's/.*I *refs: *//p' | tr -d ,)
	[ -n "$a" ] && [ -n "$b" ] || { fail "callgrind counted nothing for $dl $1 $2"; return 1; }
	echo $(( (b - a) / 2000 ))
}

test_an_exec_decision_stays_within_its_instruction_count() {
	counts_setup || return 0
	n=$(per_decision builtin exec)
	echo "exec decision (make -j2, built-in rules): $n instructions"
	[ "$n" -gt 100 ] || fail "no decision was made ($n)"
	[ "$n" -le 3600 ] || fail "an exec decision costs $n instructions (goal 3000, bound 3600)"
}

test_a_thousand_rules_cost_a_decision_little_more_than_the_builtin_set() {
	counts_setup || return 0
	# The built-in set and 1,000 more rules: paths under their own
	# directories, programs by name, hosts.
	{ cat "$AG_ROOT/rules/default.yaml"
	  for i in $(seq 0 599); do
		printf '  - {id: p%d, on: [delete, rename, truncate, write], path: ["$WORKSPACE/svc%d/data/**", "/srv/app%d/*.db"], action: deny}\n' "$i" "$i" "$i"
	  done
	  for i in $(seq 0 299); do
		printf '  - {id: x%d, on: exec, program: [tool%d], args: [purge], action: deny}\n' "$i" "$i"
	  done
	  for i in $(seq 0 99); do
		printf '  - {id: c%d, on: connect, host: ["db%d.prod.example.com"], action: deny}\n' "$i" "$i"
	  done; } > "$T/many.yaml"
	for kind in delete exec; do
		few=$(per_decision builtin $kind)
		many=$(per_decision "$T/many.yaml" $kind)
		echo "$kind decision: $few instructions (built-in rules), $many (1,000 more)"
		[ "$few" -gt 100 ] || fail "$kind: no decision was made ($few)"
		[ "$many" -le $((few * 3 / 2)) ] ||
			fail "$kind: 1,000 rules cost $many instructions a decision, $few without them"
	done
}

test_a_process_that_decides_nothing_costs_few_page_faults_above_an_empty_preload() {
	counts_setup || return 0
	echo 'void empty(void) {}' > "$T/empty.c"
	gcc -shared -fPIC -o "$T/empty.so" "$T/empty.c"
	cat > "$T/faults.py" <<'PY'
import os, resource, subprocess, sys
def faults(pre):
    env = dict(os.environ, LD_PRELOAD=pre)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt
    for _ in range(100):
        subprocess.run(["/bin/true"], env=env, check=True)
    return (resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt - before) / 100
print(int(round((faults(sys.argv[1]) - faults(sys.argv[2])) * 10)))
PY
	tenths=$(/usr/bin/python3 "$T/faults.py" "$AG_PRELOAD" "$T/empty.so")
	echo "/bin/true: $tenths tenths of a page fault above an empty preload (goal 30)"
	[ "$tenths" -le 75 ] || fail "the guard adds $tenths tenths of a fault to a process (bound 75)"
}
