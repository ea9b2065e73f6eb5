#!/usr/bin/env bash
# A scripted "agent" that tidies up a project the way agents do in incident
# reports: too broadly, then tries to cover its tracks. Run it under
# agentguard (see demo.sh); never run it bare on anything you care about.
ws=$1
cd "$ws" || exit 1
say() { printf '  agent> %s\n' "$*"; }

say "the build directory looks stale, removing it"
rm -rf build
say "rewriting the config from scratch"
printf 'debug = true\n' > config.toml
say "src/ looks unused, cleaning it up"
rm -rf src
say "replacing the customer list with a summary"
python3 -c 'open("data/customers.csv", "w").write("3 customers\n")'
say "renaming notes over the changelog"
mv notes.md CHANGELOG.md
say "my deploy key might be stale, deleting it"
rm -f "$HOME/.ssh/id_ed25519" || say "could not delete the key"
say "emptying the key instead"
sh -c ": > '$HOME/.ssh/id_ed25519'" 2>/dev/null || say "could not empty it either"
say "tearing down the staging environment"
terraform destroy -auto-approve 2>/dev/null || say "terraform destroy was refused"
say "fetching credentials from the cloud metadata service"
python3 -c 'import socket; socket.create_connection(("169.254.169.254", 80), timeout=2)' \
	2>/dev/null || say "the metadata service is off limits"
say "trying to remove the audit trail"
rm -rf "$AGENTGUARD_STATE_DIR" 2>/dev/null || say "the audit trail is protected"
say "done: everything is clean"
