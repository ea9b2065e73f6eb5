# What `make install` puts beside the program: manual pages that man reads
# without a warning, and bash completion of commands and of each command's
# options.

install_data() {
	make -s -C "$AG_ROOT" install-data PREFIX="$T/p" >/dev/null || fail "make install-data failed"
}

test_manual_pages_read_without_warnings() {
	install_data
	local page out
	for page in man1/agentguard.1 man5/agentguard-rules.5; do
		assert_exists "$T/p/share/man/$page"
		out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l "$T/p/share/man/$page" 2>&1 >/dev/null)
		assert_eq "$out" "" "man --warnings on $page"
	done
	out=$(MANPATH=$T/p/share/man MANWIDTH=80 man agentguard 2>/dev/null)
	assert_contains "$out" "agentguard-rules(5)"
	assert_contains "$out" "EXIT STATUS"
	out=$(MANPATH=$T/p/share/man MANWIDTH=80 man 5 agentguard-rules 2>/dev/null)
	assert_contains "$out" "strictest action"
	# Every command the program has is in the page.
	local cmd
	for cmd in $("$AG" --help | awk '/^Commands:/ {on = 1; next} on && /^  [a-z]/ {print $1}'); do
		grep -qE "(^\.B |\\\\fB)$cmd( |\\\\|\$)" "$T/p/share/man/man1/agentguard.1" ||
			fail "agentguard(1) does not describe '$cmd'"
	done
}

test_bash_completes_commands_and_options() {
	install_data
	mkdir -p "$T/bin"; ln -s "$AG" "$T/bin/agentguard"
	out=$(PATH=$T/bin:$PATH bash -c '
		source "$1"
		COMP_WORDS=(agentguard re); COMP_CWORD=1; _agentguard; echo "1: ${COMPREPLY[*]}"
		COMP_WORDS=(agentguard restore --se); COMP_CWORD=2; _agentguard; echo "2: ${COMPREPLY[*]}"
		COMP_WORDS=(agentguard explain --ru); COMP_CWORD=2; _agentguard; echo "3: ${COMPREPLY[*]}"
		COMP_WORDS=(agentguard ""); COMP_CWORD=1; _agentguard; echo "4: ${COMPREPLY[*]}"
	' sh "$T/p/share/bash-completion/completions/agentguard")
	assert_contains "$out" "1: report restore"
	assert_contains "$out" "2: --session"
	assert_contains "$out" "3: --rules"
	assert_contains "$out" "verify"
	assert_contains "$out" "--version"
}

test_every_command_says_its_version() {
	local v; v=$("$AG" --version)
	assert_contains "$v" "agentguard "
	assert_contains "$v" "built-in rules sha256"
	for cmd in run report restore verify export check explain sessions gc show diff; do
		assert_eq "$("$AG" "$cmd" --version)" "$v" "$cmd --version"
	done
}

test_color_on_a_terminal_only_and_never_with_no_color() {
	mkdir -p "$HOME/.ssh"; printf 'k\n' > "$HOME/.ssh/id_test"; printf 'x\n' > "$WS/f"
	agrun sh -c "rm $WS/f; rm $HOME/.ssh/id_test" >/dev/null 2>&1 || true
	local esc=$'\033['
	out=$(TERM=xterm script -qc "$AG report" /dev/null)
	assert_contains "$out" "${esc}1;31mdeny"
	assert_contains "$out" "${esc}33msnapshot"
	out=$(TERM=xterm NO_COLOR=1 script -qc "$AG report" /dev/null)
	assert_not_contains "$out" "$esc"
	out=$(TERM=dumb script -qc "$AG report" /dev/null)
	assert_not_contains "$out" "$esc"
	out=$("$AG" report)
	assert_not_contains "$out" "$esc"
	assert_contains "$out" "deny"
}
