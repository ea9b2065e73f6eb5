# Modes and limits: the circuit breaker, monitor mode (enforce: false), and
# what `ask` becomes with and without a human.

rules_with() {
	cat > "$T/rules.yaml" <<YAML
version: 1
$1
rules:
  - id: no-secrets
    on: [delete, truncate]
    path: "~/secrets/**"
    action: deny
    reason: "secrets stay"
  - id: keys-are-hard
    on: [delete]
    path: "~/keys/**"
    action: deny
    hard: true
    reason: "keys stay, even in monitor mode"
  - id: ask-first
    on: [delete]
    path: "\$WORKSPACE/ask/**"
    action: ask
    reason: "a human decides"
  - id: keep-workspace
    on: [delete, rename, truncate]
    path: "\$WORKSPACE/**"
    action: snapshot
YAML
}

test_circuit_breaker_halts_the_session() {
	rules_with "limits: {denials: 3}"
	mkdir -p "$HOME/secrets"; for i in 1 2 3 4; do echo s > "$HOME/secrets/$i"; done
	printf 'x\n' > "$WS/later.txt"
	out=$("$AG" run --rules "$T/rules.yaml" --workspace "$WS" -- sh -c "
		for i in 1 2 3 4; do rm -f '$HOME/secrets/'\$i 2>/dev/null; done
		rm '$WS/later.txt'" 2>&1) && fail "the halted session should end with a failure"
	# After 3 denials even a snapshot-able delete is refused.
	assert_exists "$WS/later.txt"
	assert_contains "$out" "session halted"
	ingest
	assert_eq "$(db "select count(*) from events where reason like 'session halted%'")" 2
}

test_monitor_mode_logs_would_deny_but_hard_rules_still_block() {
	rules_with "enforce: false"
	mkdir -p "$HOME/secrets" "$HOME/keys"; echo s > "$HOME/secrets/a"; echo k > "$HOME/keys/a"
	err=$(AGENTGUARD_RULES=$T/rules.yaml guard sh -c "rm '$HOME/secrets/a'; rm '$HOME/keys/a'" 2>&1) || true
	assert_missing "$HOME/secrets/a"
	assert_exists "$HOME/keys/a"
	assert_contains "$err" "agentguard: would deny delete $HOME/secrets/a (rule no-secrets: secrets stay)"
	assert_contains "$err" "agentguard: denied delete $HOME/keys/a (rule keys-are-hard"
	ingest
	assert_eq "$(db "select decision || '|' || enforced from events where path='$HOME/secrets/a'")" "deny|0"
	assert_eq "$(db "select decision || '|' || enforced from events where path='$HOME/keys/a'")" "deny|1"
	# agentguard run --monitor does the same for any rules file.
	rules_with ""
	echo s > "$HOME/secrets/b"
	"$AG" run --monitor --rules "$T/rules.yaml" --workspace "$WS" -- rm "$HOME/secrets/b" 2>/dev/null
	assert_missing "$HOME/secrets/b"
}

test_ask_without_a_human_is_denied_and_recorded() {
	rules_with ""
	mkdir -p "$WS/ask"; echo a > "$WS/ask/one"; echo b > "$WS/ask/two"
	# Autonomous: never waits.
	err=$(AGENTGUARD_RULES=$T/rules.yaml guard rm "$WS/ask/one" 2>&1) && fail "rm should be refused"
	assert_contains "$err" "needs human approval"
	assert_exists "$WS/ask/one"
	# Supervised, but no terminal to ask on: denied too (setsid: no controlling tty).
	err=$(AGENTGUARD_RULES=$T/rules.yaml AGENTGUARD_MODE=supervised setsid -w \
		env LD_PRELOAD="$AG_PRELOAD" AGENTGUARD_WORKSPACE="$WS" rm "$WS/ask/two" 2>&1 </dev/null) &&
		fail "rm should be refused without a terminal"
	assert_contains "$err" "a human did not approve it"
	assert_exists "$WS/ask/two"
	ingest
	assert_eq "$(db "select count(*) from events where rule='ask-first' and decision='deny'")" 2
}
