#!/usr/bin/env bash
# Real coding agents under `agentguard run`, driven by a stand-in for their
# model API (standin.py, on 127.0.0.1) that answers with fixed tool calls:
# edit a file, overwrite a file, delete a file with the agent's shell tool
# and, where the agent has one, with its own delete (Codex's apply_patch).
# Then, per agent: which of those operations the audit log has rows for
# (decision 'snapshot'), and whether `agentguard restore --session` brings
# every file back.
#
# Usage: test/agents/run.sh [AGENT...]    (opencode codex claude gemini)
#
# The agents come from npm, installed (if missing) into $AG_AGENTS_DIR
# (default build/agents), never globally; an agent that cannot be installed
# is reported and skipped.
#
# Coverage. The preloaded library cannot see what a static binary or raw
# system calls do (issue 9), so which operations are seen depends on the
# kernel layer:
#   AGENTGUARD_TEST_KERNEL=1   run with --require-kernel; every operation
#                              must be seen and restored
#   AGENTGUARD_TEST_KERNEL=0   run with --no-kernel (where it exists); report
#   (unset)                    the kernel layer as `agentguard run` decides;
#                              every operation must be seen if `agentguard run
#                              --help` offers --require-kernel, else report
# AG_AGENTS_ASSERT=1 or 0 overrides that choice. Whatever the mode, a run
# fails when the agent fails, when it did not do what it was told (the
# harness is broken then), or when something that was snapshotted is not
# restored. AG_AGENTS_KEEP=1 keeps each run's directory; AG_AGENTS_STRACE=1
# also records the agent's system calls there (strace -f -k).
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
AG=${AG_CLI:-$root/build/agentguard}
dir=${AG_AGENTS_DIR:-$root/build/agents}
case $dir in /*) ;; *) dir=$root/$dir ;; esac
timeout_s=${AG_AGENTS_TIMEOUT:-300}

# The versions this harness was written against: each agent's tool names and
# schemas are read from its requests, but its config and flags are not.
declare -A PKG=(
	[opencode]=opencode-ai@${AG_OPENCODE_VERSION:-1.18.33}
	[codex]=@openai/codex@${AG_CODEX_VERSION:-0.171.0}
	[claude]=@anthropic-ai/claude-code@${AG_CLAUDE_VERSION:-2.1.197}
	[gemini]=@google/gemini-cli@${AG_GEMINI_VERSION:-0.61.0}
)
agents=("$@")
[ ${#agents[@]} -gt 0 ] || agents=(opencode codex claude gemini)

[ -x "$AG" ] || { echo "agents: $AG is missing (run make first)"; exit 1; }
for tool in python3 sqlite3 npm node; do
	command -v "$tool" >/dev/null || { echo "agents: $tool is needed"; exit 1; }
done

help=$("$AG" run --help 2>&1)
kflag=()
assert=0
case ${AGENTGUARD_TEST_KERNEL:-} in
1) kflag=(--require-kernel); assert=1; kmode="required (--require-kernel)" ;;
0) if grep -q -- '--no-kernel' <<<"$help"; then kflag=(--no-kernel); fi
   kmode="off${kflag:+ (--no-kernel)}" ;;
*) if grep -q -- '--require-kernel' <<<"$help"; then
	   assert=1; kmode="on when available (agentguard has a kernel layer)"
   else
	   kmode="none (this agentguard has no kernel layer: library only)"
   fi ;;
esac
[ -z "${AG_AGENTS_ASSERT:-}" ] || assert=$AG_AGENTS_ASSERT
echo "agents: kernel layer: $kmode; $([ "$assert" = 1 ] && echo 'asserting full coverage' || echo 'reporting coverage')"

# ---- installing ------------------------------------------------------------

bin_of() { echo "$dir/node_modules/.bin/$1"; }

install_agent() {
	local a=$1 log=$dir/npm-$1.log
	[ -x "$(bin_of "$a")" ] && return 0
	[ "${AG_AGENTS_INSTALL:-1}" = 1 ] || { echo "agents: $a: not installed in $dir"; return 1; }
	mkdir -p "$dir"
	echo "agents: installing ${PKG[$a]} into $dir"
	if ! npm install --no-audit --no-fund --prefix "$dir" "${PKG[$a]}" >"$log" 2>&1; then
		echo "agents: $a: npm install ${PKG[$a]} failed:"
		tail -n 15 "$log" | sed 's/^/    | /'
		return 1
	fi
	[ -x "$(bin_of "$a")" ] || { echo "agents: $a: installed, but $(bin_of "$a") is missing"; return 1; }
}

# ---- one agent -------------------------------------------------------------

# The files each run starts with; what each operation leaves on disk. The
# edit makes its file longer and the overwrite makes its file shorter: an
# agent that rewrites in place (open without O_TRUNC, ftruncate to the new
# length, write: opencode) destroys content with a shrinking ftruncate only
# in the second case, so both are needed to tell what a guard sees.
EDIT_OLD='alpha line'
EDIT_NEW='ALPHA LINE, edited by the agent'
WRITE_NEW='overwritten by the agent'

make_workspace() {
	mkdir -p "$WS/src"
	printf 'first line\n%s\nlast line\n' "$EDIT_OLD" > "$WS/src/edit.txt"
	printf 'the original content\nof a file to be overwritten\n' > "$WS/src/write.txt"
	printf 'deleted with the shell tool\n' > "$WS/src/rm.txt"
	printf 'deleted with the agent own delete\n' > "$WS/src/patchdel.txt"
	touch -d '2021-03-04 05:06:07' "$WS"/src/*.txt
	mkdir -p "$T/orig" && cp -p "$WS"/src/*.txt "$T/orig/"
	# A repository of its own, as a project is: otherwise the agents find
	# the one this script is in (opencode walks all of its worktrees).
	git -C "$WS" init -q && git -C "$WS" add -A &&
		git -C "$WS" -c user.name=agentguard -c user.email=test@localhost \
			commit -q -m 'the files before the agent'
}

# The operations, each with the file it names (run.sh reports by label).
LABELS=(edit write rm patch-delete)
declare -A FILE_OF=([edit]=edit.txt [write]=write.txt [rm]=rm.txt [patch-delete]=patchdel.txt)

# One plan for every agent: each step the agent has no tool for is skipped
# by the stand-in (Codex has no Read/Edit/Write, the others no apply_patch).
write_plan() {
	local s=$WS/src
	python3 - "$T/plan.json" "$WS" "$s" "$EDIT_OLD" "$EDIT_NEW" "$WRITE_NEW" <<'EOF'
import json, sys
out, ws, s, old, new, content = sys.argv[1:]
steps = [
    {"op": "read", "path": f"{s}/edit.txt"},
    {"op": "edit", "label": "edit", "path": f"{s}/edit.txt", "old": old, "new": new},
    {"op": "patch_update", "label": "edit", "file": "src/edit.txt", "old": old, "new": new},
    {"op": "read", "path": f"{s}/write.txt"},
    {"op": "write", "label": "write", "path": f"{s}/write.txt", "content": content + "\n"},
    {"op": "patch_add", "label": "write", "file": "src/write.txt", "content": content},
    {"op": "shell", "label": "rm", "command": "rm src/rm.txt"},
    {"op": "patch_delete", "label": "patch-delete", "file": "src/patchdel.txt"},
]
json.dump({"cwd": ws, "steps": steps}, open(out, "w"), indent=1)
EOF
}

# Per agent: its config (in its fresh HOME), environment and command line.
# Each points the agent at the stand-in with a dummy key and approves every
# tool call by itself.
setup_agent() {
	local a=$1 url=http://127.0.0.1:$PORT
	AENV=()
	case $a in
	codex)
		mkdir -p "$HOME/.codex"
		# The model's metadata decides Codex's tools: apply_patch is offered
		# only to a model that says so (apply_patch_tool_type).
		python3 -c "import json,sys; sys.path.insert(0,'$here'); import standin
json.dump({'models': [standin.CODEX_MODEL]}, open('$HOME/.codex/catalog.json', 'w'))"
		cat > "$HOME/.codex/config.toml" <<-EOF
		model = "stand-in"
		model_provider = "standin"
		model_catalog_json = "$HOME/.codex/catalog.json"
		check_for_update_on_startup = false
		[model_providers.standin]
		name = "standin"
		base_url = "$url/v1"
		env_key = "STANDIN_API_KEY"
		wire_api = "responses"
		EOF
		AENV=(CODEX_HOME="$HOME/.codex" STANDIN_API_KEY=sk-standin)
		ACMD=("$(bin_of codex)" exec --skip-git-repo-check
		      --dangerously-bypass-approvals-and-sandbox -C "$WS" "$PROMPT") ;;
	opencode)
		mkdir -p "$HOME/.config/opencode"
		cat > "$HOME/.config/opencode/opencode.json" <<-EOF
		{"\$schema": "https://opencode.ai/config.json",
		 "provider": {"standin": {"npm": "@ai-sdk/openai-compatible", "name": "Stand-in",
		   "options": {"baseURL": "$url/v1", "apiKey": "sk-standin"},
		   "models": {"stand-in": {"name": "Stand-in", "tool_call": true}}}},
		 "model": "standin/stand-in", "small_model": "standin/stand-in",
		 "autoupdate": false, "share": "disabled",
		 "permission": {"edit": "allow", "bash": "allow", "external_directory": "allow"}}
		EOF
		AENV=(OPENCODE_DISABLE_MODELS_FETCH=1 OPENCODE_DISABLE_AUTOUPDATE=1 OPENCODE_DISABLE_DEFAULT_PLUGINS=1
		      OPENCODE_DISABLE_LSP_DOWNLOAD=1)
		ACMD=("$(bin_of opencode)" run --pure "$PROMPT") ;;
	claude)
		# IS_SANDBOX: it refuses --dangerously-skip-permissions as root otherwise.
		AENV=(ANTHROPIC_BASE_URL="$url" ANTHROPIC_API_KEY=sk-ant-standin IS_SANDBOX=1
		      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_AUTOUPDATER=1)
		ACMD=("$(bin_of claude)" -p --dangerously-skip-permissions "$PROMPT") ;;
	gemini)
		mkdir -p "$HOME/.gemini"
		cat > "$HOME/.gemini/settings.json" <<-EOF
		{"security": {"auth": {"selectedType": "gemini-api-key"}, "folderTrust": {"enabled": false}},
		 "privacy": {"usageStatisticsEnabled": false}, "telemetry": {"enabled": false},
		 "general": {"disableAutoUpdate": true, "disableUpdateNag": true}}
		EOF
		AENV=(GEMINI_API_KEY=standin GOOGLE_GEMINI_BASE_URL="$url")
		ACMD=("$(bin_of gemini)" -p "$PROMPT" --yolo) ;;
	esac
}

db() { sqlite3 -batch "$T/state/audit.db" "$@"; }

file_done() {	# did the agent do this operation, on disk?
	local f=$WS/src/${FILE_OF[$1]}
	case $1 in
	edit) grep -qxF "$EDIT_NEW" "$f" 2>/dev/null && ! grep -qxF "$EDIT_OLD" "$f" ;;
	write) [ "$(cat "$f" 2>/dev/null)" = "$WRITE_NEW" ] ;;
	*) [ ! -e "$f" ] ;;
	esac
}

pass=0 fail=0 skipped=0
SUMMARY=()

run_agent() {
	local a=$1 bad=0
	local -A DID=()
	T=$(mktemp -d "$dir/run-$a.XXXXXX")
	export HOME=$T/home
	WS=$T/ws
	mkdir -p "$HOME" "$T/state"
	make_workspace
	write_plan
	PROMPT="Change the files in src/ as planned, then say you are done."

	python3 "$here/standin.py" --plan "$T/plan.json" --port-file "$T/port" --log "$T/model" \
		--lifetime $((timeout_s + 60)) 2>"$T/standin.log" &
	local spid=$!
	for _ in $(seq 100); do [ -s "$T/port" ] && break; sleep 0.05; done
	PORT=$(cat "$T/port" 2>/dev/null) || { echo "agents: $a: the stand-in did not start"; cat "$T/standin.log"; kill "$spid"; return 1; }
	setup_agent "$a"
	# AG_AGENTS_STRACE=1: how the agent makes each call (which system call,
	# from libc or not), in the run dir; implies AG_AGENTS_KEEP.
	STRACE=()
	if [ "${AG_AGENTS_STRACE:-0}" = 1 ]; then
		STRACE=(strace -f -k -qq -o "$T/strace.txt" -e 'trace=%file,%net,ftruncate,fallocate,execve')
		AG_AGENTS_KEEP=1
	fi
	local version
	version=$(cd "$WS" && env -i PATH="$PATH" HOME="$HOME" "${ACMD[0]}" --version 2>/dev/null | head -n 1)

	local start=$SECONDS rc=0
	# A clean environment: only what the agent needs, nothing of this shell's.
	(cd "$WS" && env -i PATH="$dir/node_modules/.bin:/usr/local/bin:/usr/bin:/bin" HOME="$HOME" \
		TERM=dumb LANG=C.UTF-8 USER="$(id -un)" GIT_CEILING_DIRECTORIES="$T" "${AENV[@]}" \
		timeout -k 10 "$timeout_s" "$AG" run --state-dir "$T/state" --workspace "$WS" \
		"${kflag[@]}" -- ${STRACE:+"${STRACE[@]}"} "${ACMD[@]}") </dev/null >"$T/agent.out" 2>&1 || rc=$?
	local secs=$((SECONDS - start))
	kill "$spid" 2>/dev/null; wait "$spid" 2>/dev/null

	echo "== $a $version: exit $rc in ${secs}s"
	if [ $rc -ne 0 ]; then
		echo "   FAILED: the agent (or agentguard run) exited $rc:"
		tail -n 25 "$T/agent.out" | sed 's/^/    | /'
		bad=1
	fi

	local sess layer_col=0
	sess=$(db "select id from sessions order by start_ns desc limit 1" 2>/dev/null)
	[ -n "$sess" ] || { echo "   FAILED: no session in audit.db"; bad=1; }
	db "pragma table_info(events)" 2>/dev/null | grep -q '|layer|' && layer_col=1
	local layer_expr="'library'"
	[ $layer_col = 1 ] && layer_expr="coalesce(nullif(layer,''),'library')"

	# Which operations the agent has a tool for (OFFER), and which of them
	# the stand-in asked for (TOOL), through which tool.
	declare -A TOOL=() OFFER=()
	local l t
	while IFS=$'\t' read -r l t; do
		[ -n "$l" ] && TOOL[$l]=$t
	done < <(python3 -c "import json,sys
for line in open(sys.argv[1]):
    c = json.loads(line)
    if c.get('label'): print(c['label'] + '\t' + c['tool'])" "$T/model/calls.jsonl" 2>/dev/null)
	while IFS=$'\t' read -r l t; do
		[ -n "$l" ] && OFFER[$l]=$t
	done < <(python3 -c "import json,sys
for l, t in json.load(open(sys.argv[1])).items():
    if t: print(l + '\t' + t)" "$T/model/offers.json" 2>/dev/null)
	if [ ${#OFFER[@]} -eq 0 ]; then
		echo "   FAILED: the agent never offered the stand-in a tool for any operation"
		bad=1
	fi

	# What the agent did, on disk, before the restore undoes it.
	for l in "${LABELS[@]}"; do
		if file_done "$l"; then DID["$l"]=1; else DID["$l"]=0; fi
	done

	# Restore the whole session over what the agent left.
	local restore_out restore_rc=0
	restore_out=$("$AG" restore --state-dir "$T/state" --session "$sess" --overwrite 2>&1) ||
		restore_rc=$?

	local seen=() unseen=() notdone=()
	for l in "${LABELS[@]}"; do
		[ -n "${TOOL[$l]:-}" ] || continue
		local f=$WS/src/${FILE_OF[$l]} did=1
		local rows snaps detail restored
		rows=$(db "select count(*) from events where session='$sess' and (path='$f' or target='$f')")
		snaps=$(db "select count(*) from events where session='$sess' and (path='$f' or target='$f') and decision='snapshot'")
		detail=$(db "select group_concat(x, ', ') from (select op || '/' || decision || '/' || $layer_expr || ' x' || count(*) as x from events where session='$sess' and (path='$f' or target='$f') group by op, decision, $layer_expr)")
		if cmp -s "$T/orig/${FILE_OF[$l]}" "$f"; then restored=yes; else restored=no; fi
		[ "${DID[$l]:-0}" = 1 ] || did=0
		printf '   %-13s via %-12s rows %-2s snapshot %-2s restored %-3s %s\n' \
			"$l" "${TOOL[$l]}" "$rows" "$snaps" "$restored" "${detail:+($detail)}"
		if [ $did = 0 ]; then
			notdone+=("$l")
		elif [ "$snaps" -gt 0 ] && [ $restored = yes ]; then
			seen+=("$l")
		else
			unseen+=("$l")
			# A snapshot that does not bring the file back is a bug in any mode.
			if [ "$snaps" -gt 0 ]; then
				echo "   FAILED: $l was snapshotted but restore did not bring ${FILE_OF[$l]} back" \
					"(restore exited $restore_rc):"
				tail -n 10 <<<"$restore_out" | sed 's/^/    | /'
				bad=1
			fi
		fi
	done
	if [ ${#notdone[@]} -gt 0 ]; then
		echo "   FAILED: the agent did not carry out: ${notdone[*]} (see $T/model and $T/agent.out)"
		bad=1
	fi
	for l in "${LABELS[@]}"; do
		if [ -n "${TOOL[$l]:-}" ] || [ ${#OFFER[@]} -eq 0 ]; then continue; fi
		if [ -n "${OFFER[$l]:-}" ]; then
			echo "   FAILED: $l (via ${OFFER[$l]}) was never asked for: the agent stopped early"
			bad=1
		else
			echo "   $(printf '%-13s' "$l") not offered (the agent has no tool for it)"
		fi
	done

	# The rest of what the log saw: programs started, connections made.
	local execs unguarded connects ours all
	execs=$(db "select count(*) from events where session='$sess' and op='exec'")
	unguarded=$(db "select group_concat(distinct replace(path, rtrim(path, replace(path, '/', '')), '')) from events where session='$sess' and op='exec' and unguarded is not null and unguarded != ''")
	connects=$(db "select count(*) from events where session='$sess' and op='connect'")
	ours=$(db "select count(*) from events where session='$sess' and op='connect' and port=$PORT")
	all=$(db "select group_concat(op || ' x' || n || ' [' || lay || ']', ', ') from (select op, $layer_expr as lay, count(*) n from events where session='$sess' group by op, lay)")
	echo "   programs: exec rows $execs${unguarded:+ (unguarded: $unguarded)}; connect rows $connects ($ours to the stand-in)"
	echo "   all rows: ${all:-none}"
	if [ $bad = 1 ]; then
		:
	elif [ ${#unseen[@]} -gt 0 ]; then
		echo "   NOT SEEN: ${unseen[*]}"
		if [ "$assert" = 1 ]; then
			echo "   FAILED: full coverage expected (kernel layer), these operations were not guarded"
			bad=1
		fi
	else
		echo "   all operations seen and restored"
	fi
	SUMMARY+=("$(printf '%-9s %-28s seen: %-26s not seen: %-26s%s' "$a" "$version" \
		"${seen[*]:--}" "${unseen[*]:--}" "$([ $bad = 1 ] && echo FAILED)")")

	if [ $bad = 0 ] && [ "${AG_AGENTS_KEEP:-0}" != 1 ]; then
		rm -rf "$T"
	else
		echo "   kept: $T (model/ has every request the agent sent)"
	fi
	return $bad
}

for a in "${agents[@]}"; do
	[ -n "${PKG[$a]:-}" ] || { echo "agents: unknown agent '$a' (known: ${!PKG[*]})"; fail=$((fail + 1)); continue; }
	if ! install_agent "$a"; then
		echo "== $a: SKIPPED (not installed)"
		skipped=$((skipped + 1))
		continue
	fi
	if run_agent "$a"; then pass=$((pass + 1)); else fail=$((fail + 1)); fi
done

echo
echo "agents: coverage (kernel layer: $kmode)"
for s in "${SUMMARY[@]}"; do echo "  $s"; done
echo "agents: $pass passed, $fail failed, $skipped skipped"
if [ $((pass + fail)) -eq 0 ]; then
	echo "agents: no agent ran"
	exit 1
fi
[ $fail -eq 0 ]
