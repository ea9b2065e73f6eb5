# Hostile names on a terminal: a file name, rule or reason holding \r, \n,
# escape sequences or a right-to-left override must not rewrite the deny
# line, the supervised question or the CLI's output. Each shows as visible
# escapes on one line, and the page and JSON stay truthful.

ESC=$'\e' CR=$'\r' RLO=$'\xe2\x80\xae'

# What the attack used: return to column 0, erase the line, go up one, and
# write something harmless-looking; a newline forging a second agentguard
# line; an override reversing what follows.
crafted_name() {
	printf '%s' "id_rsa${CR}${ESC}[2K${ESC}[1Abuild.tmp"$'\n'"agentguard: allowed ${RLO}pmt.dliub"
}
# The same, as ag_escape_display shows it.
crafted_shown='id_rsa\r\x1b[2K\x1b[1Abuild.tmp\nagentguard: allowed \u202epmt.dliub'

# No raw ESC, CR, C1 CSI or override anywhere in $1.
assert_no_raw_controls() {
	[[ "$1" != *"$ESC"* ]] || fail "raw ESC in: $1"
	[[ "$1" != *"$CR"* ]] || fail "raw CR in: $1"
	[[ "$1" != *"$RLO"* ]] || fail "raw U+202E in: $1"
	[[ "$1" != *$'\xc2\x9b'* ]] || fail "raw U+009B in: $1"
}

# A quiet delete: rm would add its own message about the name.
UNLINK=(perl -e 'unlink($ARGV[0]) or exit 3')

test_deny_line_report_and_html_show_a_crafted_name_escaped() {
	local name
	name="$HOME/.ssh/$(crafted_name)"
	mkdir -p "$HOME/.ssh"
	printf 'key\n' > "$name"
	err=$(guard "${UNLINK[@]}" "$name" 2>&1) && fail "the delete should be refused"
	assert_exists "$name"
	# One line, escaped, the whole name.
	assert_eq "$(grep -c '' <<<"$err")" 1 "lines in: $err"
	assert_contains "$err" "agentguard: denied delete $HOME/.ssh/$crafted_shown (rule "
	assert_no_raw_controls "$err"

	ingest
	assert_eq "$(db "select decision from events where op='delete'")" deny
	# The JSON is data: the name exactly as it was.
	assert_eq "$("$AG" report --json | jq -r 'select(.op=="delete") | .path')" "$name"

	out=$("$AG" report)
	assert_contains "$out" "$HOME/.ssh/$crafted_shown"
	assert_no_raw_controls "$out"
	# On one line of the timeline, after its decision.
	assert_contains "$out" "deny       delete   $HOME/.ssh/$crafted_shown"

	"$AG" report --html "$T/r.html" 2>/dev/null
	html=$(cat "$T/r.html")
	assert_no_raw_controls "$html"
	assert_contains "$html" 'build.tmp\nagentguard: allowed \u202epmt.dliub'
}

# The same deny through a rules file the agent could have written: its
# reason is escaped too, and so is a broken file's error, which quotes it.
test_rule_text_from_the_rules_file_is_escaped() {
	cat > "$T/rules.yaml" <<'YAML'
version: 1
rules:
  - id: keep-it
    on: [delete]
    path: "$WORKSPACE/keep/**"
    action: deny
    reason: "kept\r\e[2Kagentguard: allowed\u202e"
YAML
	mkdir -p "$WS/keep"; echo x > "$WS/keep/f"
	err=$(AGENTGUARD_RULES=$T/rules.yaml guard "${UNLINK[@]}" "$WS/keep/f" 2>&1) &&
		fail "the delete should be refused"
	assert_eq "$(grep -c '' <<<"$err")" 1 "lines in: $err"
	assert_contains "$err" \
		"denied delete $WS/keep/f (rule keep-it: kept\\r\\x1b[2Kagentguard: allowed\\u202e)"
	assert_no_raw_controls "$err"
	assert_exists "$WS/keep/f"

	sed -i 's/id: keep-it/id: "keep\\e[8m"/' "$T/rules.yaml"
	err=$(AGENTGUARD_RULES=$T/rules.yaml guard "${UNLINK[@]}" "$WS/keep/f" 2>&1) &&
		fail "the delete should be refused"
	assert_contains "$err" "agentguard cannot start ($T/rules.yaml:3:9: rule id 'keep\\x1b[8m'"
	assert_no_raw_controls "$err"
	assert_exists "$WS/keep/f"
	out=$("$AG" check "$T/rules.yaml" 2>&1) && fail "check should fail"
	assert_contains "$out" "rule id 'keep\\x1b[8m'"
	assert_no_raw_controls "$out"
}

# `agentguard run`'s summary and restore's per-item lines name the file too.
test_run_summary_and_restore_lines_are_escaped() {
	local name
	name="$WS/$(crafted_name)"
	printf 'data\n' > "$name"
	mkdir -p "$HOME/.ssh"
	printf 'key\n' > "$HOME/.ssh/$(crafted_name)"
	# One snapshot (the workspace file) and one denial (the key).
	err=$(agrun sh -c 'rm -f -- "$1" "$2" 2>/dev/null; exit 0' sh "$name" \
		"$HOME/.ssh/$(crafted_name)" 2>&1)
	assert_missing "$name"
	assert_exists "$HOME/.ssh/$(crafted_name)"
	assert_contains "$err" "$HOME/.ssh/$crafted_shown"
	assert_no_raw_controls "$err"
	# Every summary line is its own agentguard: line; none was forged.
	assert_eq "$(grep -c '^agentguard: allowed' <<<"$err")" 0 "in: $err"

	out=$("$AG" restore --session "$(latest_session)")
	assert_eq "$(cat "$name")" data
	assert_contains "$out" "restored $WS/$crafted_shown"
	assert_no_raw_controls "$out"
	assert_eq "$(grep -c 'build.tmp' <<<"$out")" 1 "in: $out"
}

# Supervised mode asks on the terminal: under a pseudo-terminal, the
# question must be one escaped line, and "n" must keep the file.
test_supervised_question_is_escaped_and_no_keeps_the_file() {
	cat > "$T/rules.yaml" <<'YAML'
version: 1
rules:
  - id: ask-first
    on: [delete]
    path: "$WORKSPACE/ask/**"
    action: ask
    reason: "a human decides"
YAML
	mkdir -p "$WS/ask"
	local name="$WS/ask/$(crafted_name)"
	printf 'precious\n' > "$name"
	AGENTGUARD_RULES=$T/rules.yaml AGENTGUARD_MODE=supervised \
	python3 - "$T/tty.out" "$T/stderr.out" "$name" "$AG_LIB" "$WS" <<'PY'
import os, pty, select, sys
out, errf, name, lib, ws = sys.argv[1:6]
pid, fd = pty.fork()
if pid == 0:
    # stderr to a file: the terminal then holds only the question.
    e = os.open(errf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(e, 2)
    env = dict(os.environ, LD_PRELOAD=lib, AGENTGUARD_WORKSPACE=ws)
    os.execvpe("perl", ["perl", "-e", "unlink($ARGV[0]) or exit 3", name], env)
seen = b""
answered = False
while True:
    # A bound so a broken guard fails the test instead of hanging it.
    r, _, _ = select.select([fd], [], [], 60)
    if not r:
        break
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    seen += chunk
    if not answered and b"[y/N] " in seen:
        os.write(fd, b"n\n")
        answered = True
_, status = os.waitpid(pid, 0)
open(out, "wb").write(seen)
sys.exit(0 if answered else 1)
PY
	local q
	q=$(cat "$T/tty.out")
	q=${q%%"[y/N] "*}
	assert_contains "$q" "agentguard: allow delete $WS/ask/$crafted_shown? (rule ask-first: a human decides)"
	[[ "$q" != *$'\n'* ]] || fail "the question spans lines: $q"
	assert_no_raw_controls "$q"
	assert_exists "$name"
	assert_eq "$(cat "$name")" precious
	ingest
	assert_eq "$(db "select decision || '|' || rule from events where op='delete'")" "deny|ask-first"
}

# SQL text is the agent's too: the deny line keeps it on one line (line
# breaks read as spaces there) with the rest escaped.
test_sql_deny_line_is_escaped() {
	agrun true 2>/dev/null
	audit=$AGENTGUARD_STATE_DIR/audit.db
	err=$(guard sqlite3 "$audit" "DELETE FROM events; -- x${ESC}[2K${CR}${RLO}"$'\n'"DROP" 2>&1) &&
		fail "the statement should be refused"
	line=$(grep '^agentguard: denied sql' <<<"$err")
	assert_contains "$line" 'DELETE FROM events; -- x\x1b[2K \u202e DROP (rule agentguard-self'
	assert_no_raw_controls "$err"
	assert_eq "$(grep -c '^DROP' <<<"$err")" 0 "in: $err"
}
