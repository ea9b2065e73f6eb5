# The session's compiled rules (lib/pimage.c): `run` compiles them once into
# STATE/rules/SID.img and every process of the session maps that instead of
# parsing YAML; whatever is wrong with the image, a process compiles the
# rules itself and decides the same.

# Deletes a file, tries the SSH key, then says what it has mapped.
probe() {
	cat > "$T/probe.py" <<'PY'
import os, sys
os.unlink(sys.argv[1])
try:
    os.unlink(sys.argv[2]); print("key: deleted")
except PermissionError:
    print("key: refused")
maps = open("/proc/self/maps").read()
print("image:", any(l.endswith(".img") for l in maps.splitlines()))
print("yaml:", "libyaml" in maps)
PY
}

setup_files() {
	mkdir -p "$HOME/.ssh"; printf 'key\n' > "$HOME/.ssh/id_test"
	printf 'x\n' > "$WS/a.txt"
	probe
}

test_a_deciding_process_maps_the_image_and_never_loads_libyaml() {
	setup_files
	out=$(agrun /usr/bin/python3 "$T/probe.py" "$WS/a.txt" "$HOME/.ssh/id_test" 2>&1)
	assert_contains "$out" "key: refused"
	assert_contains "$out" "image: True"
	assert_contains "$out" "yaml: False"
	assert_exists "$HOME/.ssh/id_test"
	sid=$(latest_session)
	# Gone with the session (its processes had it mapped: 0400, out of
	# their reach, see the next test).
	assert_missing "$AGENTGUARD_STATE_DIR/rules/$sid.img"
	ingest
	assert_eq "$(db "select decision from events where session='$sid' and path='$WS/a.txt'")" "snapshot"
	assert_eq "$(db "select decision from events where session='$sid' and path='$HOME/.ssh/id_test'")" "deny"
}

test_a_process_with_another_tmpdir_compiles_its_own_and_decides_the_same() {
	setup_files
	mkdir -p "$T/tmp2"
	out=$(agrun env TMPDIR="$T/tmp2" /usr/bin/python3 "$T/probe.py" "$WS/a.txt" \
		"$HOME/.ssh/id_test" 2>&1)
	assert_contains "$out" "key: refused"
	assert_contains "$out" "image: False"
	assert_contains "$out" "yaml: True"
	assert_exists "$HOME/.ssh/id_test"
}

test_the_session_cannot_change_its_image() {
	setup_files
	out=$(agrun sh -c 'for f in "$AGENTGUARD_STATE_DIR"/rules/*.img; do
		chmod u+w "$f" || echo "chmod refused"
		printf x >> "$f" || echo "write refused"
		rm -f "$f" || echo "delete refused"; done' 2>&1)
	assert_contains "$out" "chmod refused"
	assert_contains "$out" "write refused"
	assert_contains "$out" "delete refused"
	out=$(agrun sh -c 'stat -c %a "$AGENTGUARD_STATE_DIR"/rules/*.img')
	assert_contains "$out" "400"
}

test_a_damaged_image_is_ignored_and_the_rules_still_hold() {
	setup_files
	# Damaged from outside the session (a broken disk, say) after it
	# started and before its first decision.
	agrun sh -c "while [ ! -e '$T/go' ]; do sleep 0.02; done
		exec /usr/bin/python3 '$T/probe.py' '$WS/a.txt' '$HOME/.ssh/id_test'" \
		> "$T/out" 2>&1 &
	pid=$!
	for _ in $(seq 250); do
		img=$(ls "$AGENTGUARD_STATE_DIR"/rules/*.img 2>/dev/null) && break
		sleep 0.02
	done
	[ -n "$img" ] || fail "no image was written"
	chmod u+w "$img"
	printf 'garbage' | dd of="$img" bs=1 seek=0 conv=notrunc 2>/dev/null
	touch "$T/go"
	wait $pid
	out=$(cat "$T/out")
	assert_contains "$out" "key: refused"
	assert_contains "$out" "image: False"
	assert_exists "$HOME/.ssh/id_test"
	assert_missing "$WS/a.txt"
}

test_a_rules_file_session_maps_its_own_image() {
	setup_files
	cat > "$T/r.yaml" <<'EOF2'
version: 1
rules:
  - {id: keep-key, on: delete, path: "~/.ssh/**", action: deny}
  - {id: ws, on: delete, path: "$WORKSPACE/**", action: snapshot}
EOF2
	out=$(LD_PRELOAD=${AG_ASAN_RT:-} "$AG" run --rules "$T/r.yaml" --workspace "$WS" -- \
		/usr/bin/python3 "$T/probe.py" "$WS/a.txt" "$HOME/.ssh/id_test" 2>&1)
	assert_contains "$out" "key: refused"
	assert_contains "$out" "image: True"
	ingest
	sid=$(latest_session)
	assert_eq "$(db "select rule from events where session='$sid' and path='$HOME/.ssh/id_test'")" "keep-key"
}

# The image carries the guard's own files as the session's start resolved
# them: a process given the same names takes those (no walk), one given
# other names (joining from outside the session's tree, where nothing
# restores its variables) walks them itself; either way the real names
# are protected. The state dir itself is named through a symlink.
test_the_guards_own_files_are_known_by_their_real_names_with_the_image_or_without() {
	real=$T/realstate
	mkdir -p "$real"
	ln -s "$real" "$T/sd1"
	ln -s "$real" "$T/sd2"
	export AGENTGUARD_STATE_DIR=$T/sd1
	lib=$(readlink -f "$AG_LIB")
	cat > "$T/own.py" <<'PY'
import os, sys
real, lib, ws = sys.argv[1:4]
for what, f in (("log", lambda: os.unlink(f"{real}/audit.db")),
                ("lib", lambda: os.link(lib, f"{ws}/libcopy"))):
    try:
        f(); print(what, "done")
    except PermissionError:
        print(what, "refused")
    except OSError as e:
        print(what, "failed", e.errno)
maps = open("/proc/self/maps").read()
print("image:", any(l.endswith(".img") for l in maps.splitlines()))
PY
	LD_PRELOAD=${AG_ASAN_RT:-} "$AG" run --no-kernel --workspace "$WS" -- true   # the log exists
	assert_exists "$real/audit.db"
	LD_PRELOAD=${AG_ASAN_RT:-} "$AG" run --no-kernel --workspace "$WS" -- sh -c '
		env | grep "^AGENTGUARD_" > "$1/env"; : > "$1/ready"
		while [ ! -e "$1/done" ]; do sleep 0.02; done' sh "$T" >/dev/null 2>&1 &
	pid=$!
	for i in $(seq 500); do [ -e "$T/ready" ] && break; sleep 0.02; done
	# run gave its processes the state dir's real name.
	assert_contains "$(cat "$T/env")" "AGENTGUARD_STATE_DIR=$real"
	join() { env $(cat "$T/env") "$@" LD_PRELOAD="$AG_PRELOAD" /usr/bin/python3 "$T/own.py" \
		"$real" "$lib" "$WS" 2>&1; }
	first=$(join)
	second=$(join AGENTGUARD_STATE_DIR="$T/sd2")
	: > "$T/done"; wait $pid
	assert_contains "$first" "log refused"
	assert_contains "$first" "lib refused"
	assert_contains "$first" "image: True"
	assert_contains "$second" "log refused"
	assert_contains "$second" "lib refused"
	assert_exists "$real/audit.db"
	assert_missing "$WS/libcopy"
}
