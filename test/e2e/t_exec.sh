# The process guard: every way of starting a program, argv rules, and a
# guard the agent cannot shed. Fake terraform/kubectl/git on PATH write a
# marker file when they run; a denied command must never write it.

fake_tools() {
	FAKEBIN=$T/bin; MARK=$T/marker
	mkdir -p "$FAKEBIN"
	for tool in terraform kubectl git; do
		printf '#!/bin/sh\necho "%s $*" >> "%s"\n' "$tool" "$MARK" > "$FAKEBIN/$tool"
		chmod +x "$FAKEBIN/$tool"
	done
	# Only the fakes: a real terraform elsewhere on PATH must not be reached.
	export PATH=$FAKEBIN:/usr/bin
	printf 'we never run terraform destroy here\n' > "$WS/notes.txt"
}

# The agent's shell: what it starts is judged (the test's own shell is not
# guarded, so a program it starts directly would begin outside the guard).
agent_sh() { guard /bin/sh -c '"$@"' agent "$@"; }

# denied CMD...: refused, no marker, exactly one agentguard line with rule and reason.
denied() {
	rm -f "$MARK"
	local err
	err=$(agent_sh "$@" 2>&1 >/dev/null) || true
	[ ! -e "$MARK" ] || fail "'$*' ran: $(cat "$MARK")"
	[ "$(grep -c '^agentguard: denied exec' <<<"$err")" == 1 ] ||
		fail "'$*': expected one denial line, got: $err"
	assert_contains "$err" "(rule "
	grep -q '(rule [a-z0-9-]*: .\{10,\})' <<<"$err" || fail "'$*': no reason in: $err"
}

# allowed CMD...: runs, marker written when it is a fake tool, nothing denied.
allowed() {
	rm -f "$MARK"
	local err
	err=$(agent_sh "$@" 2>&1 >/dev/null) || fail "'$*' failed: $err"
	assert_not_contains "$err" "agentguard: denied"
}

spawner() {
	[ -x "$T/spawner" ] || gcc -O1 -pthread -o "$T/spawner" "$AG_ROOT/test/e2e/spawner.c"
	guard "$T/spawner" "$@"
}

test_infrastructure_destroy_denied_however_wrapped() {
	fake_tools
	denied terraform destroy -auto-approve
	denied bash -c 'terraform destroy'
	denied sh -c "FOO=1 terraform destroy"
	denied env terraform destroy
	denied nice terraform destroy
	denied python3 -c "import subprocess; subprocess.run(['terraform','destroy'])"
	denied perl -e 'system("terraform destroy")'
	denied sh -c 'echo destroy | xargs terraform'
	denied find "$WS" -maxdepth 0 -exec terraform destroy ';'
	denied "$FAKEBIN/terraform" destroy
	denied terraform -chdir=prod destroy
	denied kubectl delete namespace prod
	denied git push -f origin main
}

test_harmless_commands_run() {
	fake_tools
	allowed terraform plan
	[ -e "$MARK" ] || fail "terraform plan did not run"
	allowed grep "terraform destroy" "$WS/notes.txt"
	allowed echo rm -rf /
	allowed sh -c 'kubectl get pods'
	[ -e "$MARK" ] || fail "kubectl get did not run"
}

test_env_i_and_unsetenv_do_not_shed_the_guard() {
	mkdir -p "$HOME/.ssh"; printf 'k\n' > "$HOME/.ssh/id_test"
	err=$(guard env -i /bin/sh -c "rm $HOME/.ssh/id_test" 2>&1) && fail "rm should fail"
	assert_contains "$err" "agentguard: denied delete $HOME/.ssh/id_test"
	assert_exists "$HOME/.ssh/id_test"
	err=$(spawner system rm "$HOME/.ssh/id_test" 2>&1) && fail "system rm should fail"
	assert_contains "$err" "agentguard: denied delete $HOME/.ssh/id_test"
	err=$(spawner popen rm "$HOME/.ssh/id_test" 2>&1) && fail "popen rm should fail"
	assert_contains "$err" "agentguard: denied delete $HOME/.ssh/id_test"
	err=$(spawner execle /bin/rm -f "$HOME/.ssh/id_test" 2>&1) && fail "execle rm should fail"
	assert_contains "$err" "agentguard: denied delete $HOME/.ssh/id_test"
	assert_exists "$HOME/.ssh/id_test"
	# The session's rules cannot be swapped by the environment either.
	printf 'version: 1\nrules: []\n' > "$T/open.yaml"
	err=$(guard sh -c "AGENTGUARD_RULES=$T/open.yaml AGENTGUARD_SESSION= rm $HOME/.ssh/id_test" 2>&1) && fail "rm should fail"
	assert_exists "$HOME/.ssh/id_test"
}

test_every_way_of_starting_a_program_is_an_audit_row() {
	fake_tools
	mkdir -p "$HOME/.ssh"; printf 'k\n' > "$HOME/.ssh/id_test"
	spawner fork "$FAKEBIN/terraform" plan one
	spawner vfork "$FAKEBIN/terraform" plan two "$HOME/.ssh/id_test" || fail "vfork parent lost its guard (exit $?)"
	assert_exists "$HOME/.ssh/id_test"
	spawner spawn "$FAKEBIN/terraform" plan three
	spawner spawnp terraform plan four
	spawner threads "$FAKEBIN/terraform" plan five
	assert_eq "$(grep -c plan "$MARK")" 8
	ingest
	assert_eq "$(db "select count(*) from events where op='exec' and path='$FAKEBIN/terraform'")" 8
	assert_eq "$(db "select argv from events where op='exec' and argv like '%three%'")" '["'"$FAKEBIN"'/terraform","plan","three"]'
	# each exec is recorded by the process that made it, vfork children included
	n=$(db "select count(distinct pid) from events where op='exec' and path='$FAKEBIN/terraform'")
	[ "$n" -ge 5 ] || fail "expected execs from distinct processes, got $n"
	spawner spawn "$FAKEBIN/terraform" destroy && fail "posix_spawn of terraform destroy should fail"
	spawner threads "$FAKEBIN/kubectl" delete ns x
	[ ! -e "$MARK" ] || ! grep -q delete "$MARK" || fail "kubectl delete ran"
}

test_static_binary_is_unguarded_and_can_be_denied() {
	printf '#include <stdio.h>\nint main(void){puts("static ran");return 0;}\n' > "$T/s.c"
	gcc -static -o "$T/static_hello" "$T/s.c" 2>/dev/null || { echo "no static libc: skipping is not allowed"; return 1; }
	out=$(agent_sh "$T/static_hello")
	assert_eq "$out" "static ran"
	ingest
	assert_eq "$(db "select unguarded from events where op='exec' and path='$T/static_hello'")" static
	cat > "$T/rules.yaml" <<'YAML'
version: 1
rules:
  - id: no-unguarded
    on: exec
    unguarded: true
    action: deny
    reason: "this program would run without the guard"
YAML
	err=$(AGENTGUARD_RULES=$T/rules.yaml agent_sh "$T/static_hello" 2>&1) && fail "should be denied"
	assert_contains "$err" "rule no-unguarded: this program would run without the guard"
	assert_not_contains "$err" "static ran"
}

test_explain_exec() {
	fake_tools
	out=$("$AG" explain exec -- terraform destroy -auto-approve) || true
	assert_contains "$out" deny
	assert_contains "$out" no-infra-destroy
	out=$("$AG" explain exec -- terraform plan)
	assert_contains "$out" allow
}
