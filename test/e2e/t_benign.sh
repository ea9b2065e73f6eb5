# Normal work must not be refused. Each test is a piece of an ordinary
# agent's day, run with real programs under the built-in rules: it must
# finish with zero refusals, and keep snapshots only where something a
# user would want back was changed.

# refusals SID: deny and ask rows of the session.
refusals() { db "select count(*) from events where session='$1' and decision in ('deny','ask')"; }

test_tools_rewrite_their_own_configuration_and_secrets_stay_refused() {
	ssh-keygen -q -t ed25519 -N '' -f "$T/hostkey" >/dev/null
	local pub; pub=$(cut -d' ' -f1,2 "$T/hostkey.pub")
	mkdir -p "$HOME/.ssh" "$HOME/.aws"
	printf 'example.com %s\ngithub.com %s\n' "$pub" "$pub" > "$HOME/.ssh/known_hosts"
	printf 'Host gh\n  HostName github.com\n' > "$HOME/.ssh/config"
	printf 'private\n' > "$HOME/.ssh/id_ed25519"
	printf '[default]\nregion = us-east-1\n' > "$HOME/.aws/config"
	printf '[default]\naws_access_key_id = AKIAEXAMPLE\n' > "$HOME/.aws/credentials"
	printf 'registry=https://registry.npmjs.org/\n' > "$HOME/.npmrc"
	local before_aws; before_aws=$(cat "$HOME/.aws/config")

	# What each tool's own command does to its configuration (ssh-keygen
	# reads the passwd entry's home, so its file is named).
	cat > "$T/day.sh" <<EOF2
set -e
ssh-keygen -R example.com -f "$HOME/.ssh/known_hosts"
npm config set fund false
git config --global user.name agent
git config --global user.name agent2
EOF2
	local tool
	for tool in aws gcloud kubectl; do
		if ! command -v $tool >/dev/null || ! $tool --version >/dev/null 2>&1; then
			echo "not installed here, not checked: $tool"
			continue
		fi
		case $tool in
		aws) echo 'aws configure set region eu-west-1' >> "$T/day.sh" ;;
		gcloud) printf '%s\n' 'gcloud config set project p1 2>/dev/null' \
			'gcloud config set project p2 2>/dev/null' >> "$T/day.sh" ;;
		kubectl) printf '%s\n' 'kubectl config set-context dev --namespace=x >/dev/null' \
			'kubectl config use-context dev >/dev/null' >> "$T/day.sh" ;;
		esac
	done
	agrun bash "$T/day.sh" || fail "the day's commands failed"
	local sid; sid=$(latest_session)
	ingest
	assert_eq "$(refusals "$sid")" "0"
	assert_not_contains "$(cat "$HOME/.ssh/known_hosts")" "example.com"
	assert_contains "$(cat "$HOME/.npmrc")" "fund=false"
	assert_eq "$(git config --global user.name)" "agent2"
	# Each rewrite was kept first: known_hosts, .npmrc, .gitconfig at least.
	for f in "$HOME/.ssh/known_hosts" "$HOME/.npmrc" "$HOME/.gitconfig"; do
		[ "$(db "select count(*) from events where session='$sid' and snapshot is not null and (path='$f' or target='$f')")" -ge 1 ] ||
			fail "no snapshot of $f"
	done
	if grep -q '^aws ' "$T/day.sh"; then
		assert_contains "$(cat "$HOME/.aws/config")" "eu-west-1"
		"$AG" restore --session "$sid" --path "$HOME/.aws/config" >/dev/null ||
			fail "restore of ~/.aws/config failed"
		assert_eq "$(cat "$HOME/.aws/config")" "$before_aws"
	fi

	# The secrets beside them are still refused, whoever asks.
	out=$(agrun sh -c "rm -f $HOME/.ssh/id_ed25519; : > $HOME/.aws/credentials;
		printf x >> $HOME/.ssh/config" 2>&1) || true
	assert_eq "$(cat "$HOME/.ssh/id_ed25519")" "private"
	assert_contains "$(cat "$HOME/.aws/credentials")" "AKIAEXAMPLE"
	assert_contains "$(cat "$HOME/.ssh/config")" "HostName github.com"
	sid=$(latest_session)
	ingest
	assert_eq "$(db "select count(*) from events where session='$sid' and decision='deny'")" "2"
}
