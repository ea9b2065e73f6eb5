# The `write` operation: files overwritten in place by real programs — no
# O_TRUNC, so no truncation ever happens — are kept before the first byte
# changes, once per file per session, and refused on credentials.

# orig NAME: a file of 100 KiB of random bytes in the workspace, and its copy.
orig() {
	head -c 102400 /dev/urandom > "$WS/$1"
	cp "$WS/$1" "$T/$1.orig"
}

# kept NAME: exactly one `write` row for it, snapshotted, and its snapshot
# is the file as it was (byte for byte) — taken before the damage.
kept() {
	local n id
	n=$(db "select count(*) from events where op='write' and path='$WS/$1'")
	assert_eq "$n" 1 "write rows for $1: $(db "select decision, rule from events where path='$WS/$1'")"
	id=$(db "select snapshot from events where op='write' and path='$WS/$1' and decision='snapshot'")
	[ -n "$id" ] || fail "no write snapshot of $1"
	cmp -s "$WS/$1" "$T/$1.orig" && fail "$1 was not changed at all"
	"$AG" restore --overwrite "$id" >/dev/null
	cmp "$WS/$1" "$T/$1.orig" || fail "$1 not restored byte-identical"
}

test_dd_notrunc_shell_readwrite_python_perl() {
	orig dd.bin; orig sh.txt; orig py.txt; orig pl.txt
	# bs=4096 with count in bytes: dd asks aligned_alloc for a page-multiple buffer,
	# which AddressSanitizer (make asan preloads it into dd) insists on.
	guard dd if=/dev/zero of="$WS/dd.bin" bs=4096 count=512 iflag=count_bytes conv=notrunc status=none
	guard bash -c "printf XXXX 1<> '$WS/sh.txt'"
	guard python3 -c "f = open('$WS/py.txt', 'r+b'); f.seek(100); f.write(b'PYTHON'); f.close()"
	guard perl -e "open(my \$f, '+<', '$WS/pl.txt') or die; seek(\$f, 7, 0); print \$f 'PERL'; close \$f"
	for f in dd.bin sh.txt py.txt pl.txt; do
		assert_eq "$(stat -c %s "$WS/$f")" 102400 "$f keeps its size (nothing truncated)"
	done
	ingest
	assert_eq "$(db "select count(*) from events where op='truncate'")" 0
	for f in dd.bin sh.txt py.txt pl.txt; do kept "$f" || return 1; done
}

# rsync --inplace writes into the existing file (no temporary copy, no
# rename): the same size, other bytes, so no truncation either.
test_rsync_inplace() {
	orig rs.bin
	head -c 102400 /dev/urandom > "$T/new.bin"
	# -I: copied whatever the two files' sizes and times say
	guard rsync --inplace -I "$T/new.bin" "$WS/rs.bin"
	cmp -s "$T/new.bin" "$WS/rs.bin" || fail "rsync did not write the new content" || return 1
	ingest
	kept rs.bin
}

test_fallocate_punch_hole_and_collapse_range() {
	orig punch.bin; orig collapse.bin
	guard fallocate --punch-hole --offset 0 --length 8192 "$WS/punch.bin"
	# COLLAPSE_RANGE needs an extent filesystem (ext4, xfs); tmpfs says EOPNOTSUPP.
	local collapsed=1
	guard fallocate --collapse-range --offset 0 --length 4096 "$WS/collapse.bin" 2>"$T/err" ||
		collapsed=0
	ingest
	kept punch.bin
	if [ $collapsed = 1 ]; then
		assert_eq "$(stat -c %s "$WS/collapse.bin")" 98304
		kept collapse.bin
	else
		echo "collapse-range unsupported here: $(cat "$T/err")"
	fi
}

test_second_open_in_the_session_makes_no_second_snapshot() {
	orig a.txt
	# One session, several processes: the first open keeps it, later ones
	# (in other processes too) pass without a row.
	agrun bash -c "printf 1 1<> '$WS/a.txt'; printf 2 1<> '$WS/a.txt';
		python3 -c \"open('$WS/a.txt', 'r+').write('3')\"; dd if=/dev/zero of='$WS/a.txt' bs=4096 count=1 iflag=count_bytes conv=notrunc status=none"
	assert_eq "$(db "select count(*) from events where op='write'")" 1
	assert_eq "$(db "select count(*) from snapshots")" 1
	kept a.txt
	# A new session keeps it again.
	cp "$WS/a.txt" "$T/a.txt.orig"
	agrun bash -c "printf 9 1<> '$WS/a.txt'"
	assert_eq "$(db "select count(*) from events where op='write'")" 2
}

test_not_a_write_append_new_empty_readonly() {
	printf 'log line\n' > "$WS/app.log"; : > "$WS/empty"; printf 'x\n' > "$WS/ro"
	guard bash -c "echo more >> '$WS/app.log'; printf new 1<> '$WS/empty'; cat '$WS/ro' >/dev/null;
		printf fresh 1<> '$WS/created'; python3 -c \"open('$WS/app.log', 'a').write('py\\n')\""
	ingest
	assert_eq "$(db "select count(*) from events where op='write'")" 0 \
		"$(db "select path from events where op='write'")"
	assert_eq "$(cat "$WS/created")" fresh
}

test_credentials_denied_and_untouched() {
	mkdir -p "$HOME/.ssh"; printf 'KEY\n' > "$HOME/.ssh/id_ed25519"
	err=$(guard bash -c "printf EVIL 1<> '$HOME/.ssh/id_ed25519'" 2>&1) && fail "should be refused"
	assert_contains "$err" "agentguard: denied write $HOME/.ssh/id_ed25519 (rule protect-credentials"
	err=$(guard dd if=/dev/zero of="$HOME/.ssh/id_ed25519" bs=4096 count=2 iflag=count_bytes \
		conv=notrunc 2>&1) &&
		fail "dd should be refused"
	assert_contains "$err" "Permission denied"
	assert_eq "$(cat "$HOME/.ssh/id_ed25519")" KEY
	ingest
	assert_eq "$(db "select count(*) from events where op='write' and decision='deny'")" 2
}

test_build_outputs_caches_and_temp_cost_nothing() {
	mkdir -p "$WS/node_modules/x" "$HOME/.cache/tool" "$WS/obj"
	for f in "$WS/node_modules/x/i.js" "$HOME/.cache/tool/blob" "$WS/obj/m.o" "$WS/db.sqlite-shm"; do
		printf 'content\n' > "$f"
	done
	guard bash -c "for f in '$WS/node_modules/x/i.js' '$HOME/.cache/tool/blob' '$WS/obj/m.o' \
		'$WS/db.sqlite-shm'; do printf X 1<> \"\$f\"; done"
	ingest
	# Recorded (every decision is), allowed, nothing copied.
	assert_eq "$(db "select count(*) from events where op='write' and decision != 'allow'")" 0 \
		"$(db "select path, decision from events where op='write'")"
	assert_eq "$(db "select count(*) from snapshots")" 0
}

test_static_program_overwriting_in_place_is_kept_by_the_kernel_layer() {
	local k; k=$(kbuild kstatic)
	orig st.txt; orig hole.bin
	out=$(krun "$k" overwrite "$WS/st.txt" overwrite "$WS/st.txt" punch "$WS/hole.bin" 2>&1)
	assert_contains "$out" "overwrite $WS/st.txt: ok"
	assert_contains "$out" "punch $WS/hole.bin: ok"
	assert_eq "$(head -c 4 "$WS/st.txt")" OVER
	assert_eq "$(db "select decision || ' ' || layer from events where op='write' and path='$WS/st.txt'")" \
		"snapshot kernel"
	kept st.txt
	kept hole.bin
	mkdir -p "$HOME/.ssh"; printf 'KEY\n' > "$HOME/.ssh/id_rsa"
	out=$(krun "$k" overwrite "$HOME/.ssh/id_rsa" 2>&1)
	assert_contains "$out" "overwrite $HOME/.ssh/id_rsa: EACCES"
	assert_eq "$(cat "$HOME/.ssh/id_rsa")" KEY
}
