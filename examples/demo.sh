#!/usr/bin/env bash
# make demo: a scripted agent damages a scratch workspace under the built-in
# rules; then the report, a restore, and a check that nothing was lost.
# Everything happens under a temporary directory (its own HOME too).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
AG=$root/build/agentguard
demo=$(mktemp -d /tmp/agentguard-demo.XXXXXX)
export HOME=$demo/home AGENTGUARD_STATE_DIR=$demo/state
unset AGENTGUARD_RULES AGENTGUARD_SESSION AGENTGUARD_MODE AGENTGUARD_WORKSPACE
ws=$demo/workspace
mkdir -p "$ws/src/lib" "$ws/build" "$ws/data" "$HOME/.ssh"
printf 'int main(void) { return 0; }\n' > "$ws/src/main.c"
printf 'int helper(void);\n' > "$ws/src/lib/helper.h"
printf 'main.o\n' > "$ws/build/objects.txt"
printf 'name = "demo"\nport = 8080\n' > "$ws/config.toml"
printf 'id,name\n1,Ada\n2,Grace\n3,Linus\n' > "$ws/data/customers.csv"
printf '# Changelog\n- 1.0 first release\n' > "$ws/CHANGELOG.md"
printf 'scratch notes\n' > "$ws/notes.md"
printf 'PRIVATE KEY\n' > "$HOME/.ssh/id_ed25519"; chmod 600 "$HOME/.ssh/id_ed25519"
# A stand-in terraform: it would only write a marker, and the guard stops it first.
mkdir -p "$demo/bin"
printf '#!/bin/sh\necho ran > "%s/terraform-ran"\n' "$demo" > "$demo/bin/terraform"
chmod +x "$demo/bin/terraform"
export PATH=$demo/bin:$PATH
sig() { (cd "$ws" && find . -printf '%p %y %m %T@ %s\n' | sort && find . -type f -exec sha256sum {} + | sort); }
before=$(sig)

echo "== 1. An agent runs under agentguard: built-in rules, autonomous mode"
echo "   $AG run --workspace $ws -- examples/scripted-agent.sh"
"$AG" run --workspace "$ws" -- bash "$root/examples/scripted-agent.sh" "$ws" || true
session=$("$AG" sessions --json 2>/dev/null | head -n 1 | sed -E 's/.*"id":"([^"]+)".*/\1/')

echo
echo "== 2. What happened (agentguard report)"
"$AG" report --session "$session"

echo
echo "== 3. Putting the workspace back (agentguard restore --session $session --overwrite)"
"$AG" restore --session "$session" --overwrite

echo
echo "== 4. Checks"
if [ "$(sig)" == "$before" ]; then
	echo "workspace: identical to before the agent ran (contents, modes, mtimes)"
else
	echo "workspace: DIFFERS from before the agent ran"; diff <(echo "$before") <(sig) || true; exit 1
fi
[ "$(cat "$HOME/.ssh/id_ed25519")" == "PRIVATE KEY" ] && echo "deploy key: never touched"
[ ! -e "$demo/terraform-ran" ] && echo "terraform destroy: never ran"
"$AG" verify
"$AG" report --session "$session" --html "$demo/report.html"
echo
echo "== 5. See it again"
echo "   the report:  AGENTGUARD_STATE_DIR=$AGENTGUARD_STATE_DIR $AG report --session $session"
echo "   as a page:   $demo/report.html (agentguard report --session $session --html FILE)"
echo "   open it:     xdg-open $demo/report.html   (or chromium --headless --screenshot ...)"
echo
echo "Demo files are in $demo (remove with: rm -rf $demo)"
