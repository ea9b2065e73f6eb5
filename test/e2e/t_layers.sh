# Rule layers under real sessions: a project's .agentguard.yaml that extends
# the built-in set, a managed file ($AGENTGUARD_SYSCONFDIR, the test's own
# /etc/agentguard) that locks a rule, the lookup order, and a session that
# keeps the rules it started with when the files change under it.

# Fakes that note they ran (in $T/marker): terraform and a deploy script.
layer_tools() {
	mkdir -p "$T/bin" "$HOME/.ssh"
	for tool in terraform deploy.sh; do
		printf '#!/bin/sh\necho "%s $*" >> %s\n' "$tool" "$T/marker" > "$T/bin/$tool"
		chmod +x "$T/bin/$tool"
	done
	export PATH=$T/bin:/usr/bin:/bin
	printf 'key\n' > "$HOME/.ssh/id_rsa"
}

project_rules() {
	cat > "$WS/.agentguard.yaml" <<'EOF'
version: 1
extends: builtin:default
rules:
  - id: no-deploy
    on: exec
    program: deploy.sh
    action: deny
    reason: "deploys go through CI, not the agent"
    tests:
      match: ["deploy.sh --prod"]
      not_match: ["make deploy"]
EOF
}

managed_lock() {
	mkdir -p "$AGENTGUARD_SYSCONFDIR"
	cat > "$AGENTGUARD_SYSCONFDIR/managed.yaml" <<'EOF'
version: 1
override:
  - id: no-infra-destroy
    locked: true
EOF
}

test_project_layer_keeps_builtin_protections_and_adds_its_rule() {
	layer_tools
	project_rules
	# The agent: each of the three is refused, and after them a harmless
	# command runs.
	agrun sh -c 'rm -f ~/.ssh/id_rsa; terraform destroy -auto-approve; deploy.sh --prod; echo done > done.txt' \
		>/dev/null 2>"$T/err" || true
	assert_exists "$HOME/.ssh/id_rsa"
	assert_missing "$T/marker"
	assert_exists "$WS/done.txt"
	ingest
	local sid
	sid=$(latest_session)
	assert_eq "$(db "select count(*) from events where session = '$sid' and decision = 'deny' and rule = 'protect-credentials'")" 1
	assert_eq "$(db "select count(*) from events where session = '$sid' and decision = 'deny' and rule = 'no-infra-destroy'")" 1
	assert_eq "$(db "select count(*) from events where session = '$sid' and decision = 'deny' and rule = 'no-deploy'")" 1
	# The session says which file chose its rules.
	assert_contains "$(db "select rules from sessions where id = '$sid'")" "$WS/.agentguard.yaml"
	# Its frozen rules hold both layers.
	local frozen
	frozen=$(ls "$AGENTGUARD_STATE_DIR"/rules/*.yaml)
	assert_eq "$(head -n 1 "$frozen")" "agentguard-layers 1"
	assert_contains "$(cat "$frozen")" "builtin:default.yaml"
}

test_a_copied_example_keeps_the_builtin_set() {
	layer_tools
	local ex
	for ex in "$AG_ROOT"/examples/rules/*.yaml; do
		rm -f "$T/marker"
		LD_PRELOAD=${AG_ASAN_RT:-} "$AG" run --rules "$ex" --workspace "$WS" -- \
			sh -c 'rm -f ~/.ssh/id_rsa; terraform destroy' >/dev/null 2>&1 || true
		assert_exists "$HOME/.ssh/id_rsa"
		# monitor-only records what it would deny, and lets it run.
		case $ex in
		*monitor-only*) assert_exists "$T/marker" ;;
		*) assert_missing "$T/marker" ;;
		esac
		"$AG" check "$ex" | grep -q '^  layer 1: builtin:default.yaml' || fail "$ex does not extend builtin:default"
	done
}

test_a_managed_lock_refuses_the_project_override_at_check_and_run() {
	layer_tools
	managed_lock
	cat > "$WS/.agentguard.yaml" <<'EOF'
version: 1
extends: builtin:default
override:
  - id: no-infra-destroy
    action: allow
EOF
	local out rc=0
	out=$("$AG" check "$WS/.agentguard.yaml" 2>&1) || rc=$?
	assert_eq "$rc" 1
	assert_contains "$out" "$WS/.agentguard.yaml:4:9: rule 'no-infra-destroy' is locked by $AGENTGUARD_SYSCONFDIR/managed.yaml:4:5"
	# run refuses to start the agent at all.
	rc=0
	out=$(agrun sh -c 'echo ran > ran.txt; terraform destroy' 2>&1) || rc=$?
	[ "$rc" -ne 0 ] || fail "run started under rules that override a locked rule"
	assert_contains "$out" "$WS/.agentguard.yaml:4:9"
	assert_contains "$out" "refusing to start"
	assert_missing "$WS/ran.txt"
	assert_missing "$T/marker"

	# Without the override the managed layer is applied over the project's.
	project_rules
	out=$("$AG" check "$WS/.agentguard.yaml")
	assert_contains "$out" "layer 3: $AGENTGUARD_SYSCONFDIR/managed.yaml (managed)"
}

test_lookup_order_project_user_system_builtin() {
	layer_tools
	local sys=$AGENTGUARD_SYSCONFDIR usr=$HOME/.config/agentguard
	mkdir -p "$sys" "$usr"
	# Each level denies its own fake program; the first found wins.
	local lvl
	for lvl in sys usr; do
		printf '#!/bin/sh\necho "%s" >> %s\n' "$lvl" "$T/marker" > "$T/bin/$lvl-tool"
		chmod +x "$T/bin/$lvl-tool"
	done
	printf 'version: 1\nextends: builtin:default\nrules:\n  - {id: sys, on: exec, program: sys-tool, action: deny}\n' > "$sys/rules.yaml"
	agrun sh -c 'sys-tool; usr-tool' >/dev/null 2>&1 || true
	assert_eq "$(cat "$T/marker")" "usr"
	rm -f "$T/marker"
	printf 'version: 1\nextends: builtin:default\nrules:\n  - {id: usr, on: exec, program: usr-tool, action: deny}\n' > "$usr/rules.yaml"
	agrun sh -c 'sys-tool; usr-tool' >/dev/null 2>&1 || true
	assert_eq "$(cat "$T/marker")" "sys"
	rm -f "$T/marker"
	# The project's file comes first, and the user's is not under it.
	project_rules
	agrun sh -c 'sys-tool; usr-tool; deploy.sh' >/dev/null 2>&1 || true
	assert_eq "$(sort "$T/marker" | tr '\n' ' ')" "sys usr "
	# --rules beats them all.
	rm -f "$T/marker"
	LD_PRELOAD=${AG_ASAN_RT:-} "$AG" run --rules builtin --workspace "$WS" -- \
		sh -c 'sys-tool; usr-tool; deploy.sh' >/dev/null 2>&1 || true
	assert_eq "$(sort "$T/marker" | tr '\n' ' ')" "deploy.sh  sys usr "
}

test_a_session_keeps_its_layers_when_the_files_change() {
	layer_tools
	project_rules
	cp "$WS/.agentguard.yaml" "$T/team.yaml"
	# The agent waits, then starts deploy.sh in a new process: after the
	# file that denied it was emptied of its rule.
	agrun sh -c 'while [ ! -e '"$T"'/go ]; do sleep 0.05; done; sh -c "deploy.sh --prod"' \
		>/dev/null 2>&1 &
	local pid=$!
	sleep 0.5
	printf 'version: 1\nextends: builtin:default\n' > "$WS/.agentguard.yaml"
	touch "$T/go"
	wait $pid || true
	assert_missing "$T/marker"
}

test_the_agent_cannot_rewrite_the_rules_that_choose_its_next_session() {
	layer_tools
	project_rules
	local before
	before=$(sha256sum < "$WS/.agentguard.yaml")
	mkdir -p "$HOME/.config/agentguard"
	printf 'version: 1\nextends: builtin:default\n' > "$HOME/.config/agentguard/rules.yaml"
	agrun sh -c 'echo "version: 1" > .agentguard.yaml; rm -f .agentguard.yaml;
		echo "version: 1" > x.yaml; mv x.yaml .agentguard.yaml;
		echo "version: 1" > ~/.config/agentguard/rules.yaml' >/dev/null 2>&1 || true
	assert_eq "$(sha256sum < "$WS/.agentguard.yaml")" "$before"
	assert_contains "$(cat "$HOME/.config/agentguard/rules.yaml")" "extends: builtin:default"
	ingest
	[ "$(db "select count(*) from events where rule = 'protect-agentguard-rules' and decision = 'deny'")" -ge 3 ] ||
		fail "the refusals are not in the log"
}

test_check_and_explain_show_where_each_rule_came_from() {
	layer_tools
	project_rules
	local out rc=0
	out=$("$AG" check --list "$WS/.agentguard.yaml")
	assert_contains "$out" "no-deploy  $WS/.agentguard.yaml:4:5"
	assert_contains "$out" "protect-credentials  builtin:default.yaml:"
	assert_contains "$out" "layer 2: $WS/.agentguard.yaml: 1 rule"
	# explain finds the project's file from the workspace, as run does.
	out=$("$AG" explain --workspace "$WS" exec -- deploy.sh --prod) || rc=$?
	assert_eq "$rc" 4
	assert_contains "$out" "no-deploy  ($WS/.agentguard.yaml:4:5)  [decides]"
	out=$("$AG" explain --json --workspace "$WS" exec -- deploy.sh --prod) || true
	assert_eq "$(jq -r '.matched[0].origin' <<<"$out")" "$WS/.agentguard.yaml:4:5"
}
