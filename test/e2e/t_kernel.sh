# The kernel layer: what the library cannot reach — a static C program, a
# static Go program, busybox, raw syscall() from Python, io_uring, a setgid
# copy of rm, a process tree — is judged under `agentguard run` by the
# seccomp supervisor, with the same rules, snapshots and audit log.


test_static_c_program_is_snapshotted_and_restorable() {
	local k; k=$(kbuild kstatic)
	file "$k" | grep -q 'statically linked' || fail "$k is not static"
	seed gone moved over trunc ftrunc o2 raw kept
	local before; before=$(tree_sig "$WS")
	out=$(krun "$k" rm gone mv moved over trunc trunc ftrunc ftrunc openat2-trunc o2 \
		raw-unlink raw 2>&1)
	assert_contains "$out" "rm gone: ok"
	assert_contains "$out" "openat2-trunc o2: ok"
	assert_missing "$WS/gone"; assert_missing "$WS/raw"
	assert_eq "$(cat "$WS/trunc")" "rewritten"
	assert_eq "$(rows delete "$WS/gone")" "snapshot kernel"
	assert_eq "$(rows delete "$WS/raw")" "snapshot kernel"
	assert_eq "$(rows rename "$WS/moved")" "snapshot kernel"
	assert_eq "$(rows truncate "$WS/trunc")" "snapshot kernel"
	assert_eq "$(rows truncate "$WS/ftrunc")" "snapshot kernel"
	assert_eq "$(rows truncate "$WS/o2")" "snapshot kernel"
	# The rows name the static program, not agentguard.
	assert_eq "$(db "select distinct exe from events where layer = 'kernel'")" "$k"
	assert_eq "$(db "select distinct argv from events where layer = 'kernel'")" \
		"[\"$k\",\"rm\",\"gone\",\"mv\",\"moved\",\"over\",\"trunc\",\"trunc\",\"ftrunc\",\"ftrunc\",\"openat2-trunc\",\"o2\",\"raw-unlink\",\"raw\"]"
	"$AG" restore --overwrite --session "$(latest_session)" >/dev/null
	assert_eq "$(tree_sig "$WS")" "$before" "after restore"
	"$AG" verify >/dev/null
}

test_static_c_program_cannot_touch_credentials_or_the_guard() {
	local k; k=$(kbuild kstatic)
	mkdir -p "$HOME/.ssh"; printf 'key\n' > "$HOME/.ssh/id_ed25519"
	krun true
	local db_=$AGENTGUARD_STATE_DIR/audit.db
	out=$(krun "$k" rm "$HOME/.ssh/id_ed25519" trunc "$HOME/.ssh/id_ed25519" \
		raw-unlink "$db_" mv "$db_" "$WS/stolen.db" link "$db_" "$WS/db-link" \
		symlink "$WS" "$AGENTGUARD_STATE_DIR/spool/x.spool" rmdir "$AGENTGUARD_STATE_DIR" 2>&1)
	assert_eq "$(grep -c ': EACCES' <<<"$out")" 7 "$out"
	assert_eq "$(cat "$HOME/.ssh/id_ed25519")" "key"
	assert_exists "$db_"; assert_missing "$WS/stolen.db"; assert_missing "$WS/db-link"
	assert_eq "$(db "select count(*) from events where decision = 'deny' and layer = 'kernel'")" 7
	assert_contains "$out" "agentguard: denied delete $HOME/.ssh/id_ed25519 (rule protect-credentials"
	"$AG" verify >/dev/null
}

test_busybox_is_judged() {
	command -v busybox >/dev/null || fail "busybox-static is not installed"
	file -L "$(command -v busybox)" | grep -q 'statically linked' || fail "busybox is not static"
	seed a b c
	mkdir -p "$HOME/.ssh"; printf 'key\n' > "$HOME/.ssh/id_test"
	seed d e
	krun busybox sh -c "rm a; mv b d; echo new > c; echo XX | dd of=e conv=notrunc 2>/dev/null;
		rm $HOME/.ssh/id_test" 2>/dev/null || true
	assert_missing "$WS/a"; assert_eq "$(cat "$WS/c")" "new"
	assert_eq "$(cat "$HOME/.ssh/id_test")" "key"
	assert_eq "$(rows delete "$WS/a")" "snapshot kernel"
	assert_eq "$(rows rename "$WS/b")" "snapshot kernel"
	assert_eq "$(rows truncate "$WS/c")" "snapshot kernel"
	assert_eq "$(rows write "$WS/e")" "snapshot kernel"
	assert_eq "$(rows delete "$HOME/.ssh/id_test")" "deny kernel"
	"$AG" restore --overwrite --session "$(latest_session)" >/dev/null
	assert_eq "$(cat "$WS/a")" "original a"
	assert_eq "$(cat "$WS/b")" "original b"
	assert_eq "$(cat "$WS/c")" "original c"
	assert_eq "$(cat "$WS/d")" "original d"
	assert_eq "$(cat "$WS/e")" "original e"
}

test_static_go_program_is_judged() {
	command -v go >/dev/null || fail "golang-go is not installed"
	local g; g=$(kbuild kgo)
	file "$g" | grep -q 'statically linked' || fail "$g is not static"
	seed gone moved over written cut inplace
	mkdir -p "$HOME/.aws"; printf 'config\n' > "$HOME/.aws/credentials"
	local fakebin; fakebin=$(fake_terraform)
	out=$(krun "$g" rm gone mv moved over write written truncate cut overwrite inplace \
		overwrite "$HOME/.aws/credentials" rm "$HOME/.aws/credentials" \
		dial 169.254.169.254:80 exec "$fakebin/terraform" destroy -auto-approve 2>&1)
	assert_contains "$out" "rm gone: ok"
	assert_contains "$out" "dial 169.254.169.254:80: dial tcp 169.254.169.254:80: connect: permission denied"
	assert_contains "$out" "exec $fakebin/terraform: fork/exec $fakebin/terraform: permission denied"
	assert_missing "$T/marker"
	assert_eq "$(cat "$HOME/.aws/credentials")" "config"
	assert_eq "$(cat "$WS/written")" "written by go"
	assert_eq "$(rows delete "$WS/gone")" "snapshot kernel"
	assert_eq "$(rows rename "$WS/moved")" "snapshot kernel"
	assert_eq "$(rows truncate "$WS/written")" "snapshot kernel"
	assert_eq "$(rows truncate "$WS/cut")" "snapshot kernel"
	assert_eq "$(rows write "$WS/inplace")" "snapshot kernel"
	assert_eq "$(rows write "$HOME/.aws/credentials")" "deny kernel"
	assert_eq "$(db "select rule from events where op = 'exec' and layer = 'kernel'")" "no-infra-destroy"
	assert_eq "$(db "select rule from events where op = 'connect' and layer = 'kernel'")" "no-cloud-metadata"
	"$AG" restore --overwrite --session "$(latest_session)" >/dev/null
	for f in gone moved over written cut inplace; do assert_eq "$(cat "$WS/$f")" "original $f"; done
}

test_python_ctypes_raw_syscall_is_judged() {
	seed raw
	mkdir -p "$HOME/.aws"; printf 'secret\n' > "$HOME/.aws/credentials"
	cat > "$T/raw.py" <<-'EOF'
	import ctypes, os, sys
	libc = ctypes.CDLL(None, use_errno=True)
	for p in sys.argv[1:]:
	    rc = libc.syscall(263, -100, p.encode(), 0)   # unlinkat(AT_FDCWD, p, 0)
	    print(p, rc, os.strerror(ctypes.get_errno()) if rc else "ok")
	EOF
	out=$(krun python3 "$T/raw.py" "$WS/raw" "$HOME/.aws/credentials" 2>&1)
	assert_contains "$out" "$WS/raw 0 ok"
	assert_contains "$out" "$HOME/.aws/credentials -1 Permission denied"
	assert_eq "$(cat "$HOME/.aws/credentials")" "secret"
	assert_eq "$(rows delete "$WS/raw")" "snapshot kernel"
	assert_eq "$(rows delete "$HOME/.aws/credentials")" "deny kernel"
	# Bare LD_PRELOAD has no kernel layer: the same raw call is unseen there.
	seed raw
	guard python3 "$T/raw.py" "$WS/raw" >/dev/null
	assert_missing "$WS/raw"
}

# An open the supervisor makes for a process is made in the process's
# view: never through the supervisor's own /proc (its memory, its
# descriptors, its "self"), and openat2's limits still hold.
test_opens_made_for_a_process_are_its_own() {
	cat > "$T/o2.py" <<-'EOF'
	import ctypes, os, struct, sys
	libc = ctypes.CDLL(None, use_errno=True)
	for p, fl, res in zip(sys.argv[1::3], sys.argv[2::3], sys.argv[3::3]):
	    how = ctypes.create_string_buffer(struct.pack('QQQ', int(fl), 0, int(res)))
	    fd = libc.syscall(437, -100, p.encode(), how, 24)          # openat2
	    if fd < 0:
	        print(p, "refused:", os.strerror(ctypes.get_errno()))
	    else:
	        print(p, "opened:", os.readlink("/proc/self/fd/%d" % fd), os.getpid(),
	              os.pread(fd, 40, 0).split(b"\n")[0].decode(errors="replace")
	              if p.endswith("status") else "")
	EOF
	local db=$AGENTGUARD_STATE_DIR/audit.db
	krun true >/dev/null 2>&1
	seed f
	# O_RDONLY 0, O_RDWR 2; RESOLVE_BENEATH 8.
	out=$(cd "$WS" && krun python3 "$T/o2.py" /proc/self/status 0 0 /proc/self/mem 2 0 \
		"$db" 2 0 "$db" 2 8 f 2 8 ../ws/f 2 8 2>&1)
	assert_contains "$out" "/proc/self/status opened: /proc/"
	assert_contains "$out" "Name:	python3"
	local pid; pid=$(sed -n 's|^/proc/self/mem opened: /proc/\([0-9]*\)/mem \([0-9]*\).*|\1 \2|p' <<<"$out")
	[ -n "$pid" ] && [ "${pid% *}" == "${pid#* }" ] || fail "not its own memory: $out"
	assert_contains "$out" "$db refused: Permission denied"
	assert_contains "$out" "$db refused: Invalid cross-device link"
	assert_contains "$out" "f opened: $WS/f"
	assert_contains "$out" "../ws/f refused: Invalid cross-device link"
	ingest
	assert_eq "$(db "select count(*) from events where path = '$db' and decision = 'deny' and layer = 'kernel'")" 1
	"$AG" verify >/dev/null || fail "verify: $("$AG" verify 2>&1)"
}

# libc's own functions, reached past the library (ctypes looks them up in
# libc's handle): their system calls come from inside libc, like the ones
# libc makes beneath posix_spawn, and are judged all the same.
test_libc_reached_past_the_library_is_judged() {
	local fakebin; fakebin=$(fake_terraform)
	seed gone
	cat > "$T/past.py" <<-'EOF'
	import ctypes, os, socket, struct, sys
	# libc's own functions, found in its symbol table by hand: a name
	# looked up with dlsym would be the library's hook.
	def past(name, restype=ctypes.c_int):
	    path = base = None
	    for line in open("/proc/self/maps"):
	        f = line.split()
	        if len(f) > 5 and os.path.basename(f[5]).startswith("libc.so") and f[4] != "0":
	            path = f[5]
	            if f[2] == "00000000":
	                base = int(f[0].split("-")[0], 16)
	    data = open(path, "rb").read()
	    shoff, = struct.unpack_from("<Q", data, 0x28)
	    shentsize, shnum = struct.unpack_from("<HH", data, 0x3a)
	    secs = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
	    dynsym = next(s for s in secs if s[1] == 11)          # SHT_DYNSYM
	    strtab = secs[dynsym[6]]
	    for off in range(dynsym[4], dynsym[4] + dynsym[5], 24):
	        st_name, info, other, shndx, value, size = struct.unpack_from("<IBBHQQ", data, off)
	        end = data.index(b"\0", strtab[4] + st_name)
	        if data[strtab[4] + st_name:end] == name.encode() and value:
	            return ctypes.CFUNCTYPE(restype, use_errno=True)(base + value)
	libc = ctypes.CDLL("libc.so.6", use_errno=True)
	unlink = past("unlink")
	unlink.argtypes = [ctypes.c_char_p]
	rc = unlink(sys.argv[2].encode())
	print("unlink", rc)
	s = socket.socket()
	sin = struct.pack("=HH4s8x", socket.AF_INET, socket.htons(80), socket.inet_aton("169.254.169.254"))
	connect = past("connect")
	connect.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
	rc = connect(s.fileno(), sin, len(sin))
	print("connect", rc, os.strerror(ctypes.get_errno()))
	argv = (ctypes.c_char_p * 4)(sys.argv[1].encode(), b"destroy", b"-auto-approve", None)
	execve = past("execve")
	execve.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p]
	rc = execve(sys.argv[1].encode(), argv, None)
	print("execve", rc, os.strerror(ctypes.get_errno()))
	EOF
	out=$(krun python3 "$T/past.py" "$fakebin/terraform" "$WS/gone" 2>&1)
	assert_contains "$out" "unlink 0"
	assert_contains "$out" "connect -1 Permission denied"
	assert_contains "$out" "execve -1 Permission denied"
	assert_missing "$T/marker"
	assert_eq "$(rows delete "$WS/gone")" "snapshot kernel"
	assert_eq "$(db "select decision || ' ' || layer from events where op = 'exec' and path = '$fakebin/terraform'")" "deny kernel"
	assert_eq "$(db "select decision || ' ' || layer from events where op = 'connect' and address = '169.254.169.254'")" "deny kernel"
}

test_io_uring_refused_unless_a_rule_allows_it() {
	local u; u=$(kbuild kuring)
	out=$(krun "$u" 2>&1) && fail "io_uring ran: $out"
	assert_contains "$out" "io_uring_queue_init: Operation not permitted"
	assert_contains "$out" "agentguard: denied io_uring (default for io_uring"
	assert_eq "$(db "select decision || ' ' || layer from events where op = 'io_uring'")" "deny kernel"
	cat > "$T/uring.yaml" <<-'EOF'
	version: 1
	rules:
	  - id: rings-ok
	    on: io_uring
	    action: allow
	EOF
	out=$(LD_PRELOAD=${AG_ASAN_RT:-} "$AG" run --require-kernel --rules "$T/uring.yaml" \
		--workspace "$WS" -- "$u" 2>&1) || fail "io_uring still refused: $out"
	assert_contains "$out" "io_uring_queue_init: ok"
}

test_setgid_copy_of_rm_is_guarded() {
	cp /bin/rm "$T/rm-sgid"
	chgrp nogroup "$T/rm-sgid" && chmod g+s "$T/rm-sgid"
	mkdir -p "$HOME/.ssh"; printf 'key\n' > "$HOME/.ssh/id_rsa"
	seed victim
	out=$(krun "$T/rm-sgid" "$HOME/.ssh/id_rsa" "$WS/victim" 2>&1) || true
	assert_contains "$out" "agentguard: denied delete $HOME/.ssh/id_rsa"
	assert_eq "$(cat "$HOME/.ssh/id_rsa")" "key"
	assert_missing "$WS/victim"
	assert_eq "$(db "select decision from events where op = 'delete' and path = '$WS/victim'")" "snapshot"
	# No-new-privs: it ran as its caller, preloaded, so it is not unguarded.
	assert_eq "$(db "select coalesce(unguarded, '-') from events where op = 'exec' and path = '$T/rm-sgid'")" "-"
	# Without the kernel layer the loader drops the library for it.
	"$AG" run --no-kernel --workspace "$WS" -- "$T/rm-sgid" "$HOME/.ssh/id_rsa" 2>/dev/null || true
	assert_missing "$HOME/.ssh/id_rsa"
}

test_a_process_with_other_credentials_is_refused() {
	[ "$(id -u)" = 0 ] || { echo "needs root to drop privileges: skipped"; return 0; }
	local k; k=$(kbuild kstatic)
	mkdir -p "$WS/open"; chmod 1777 "$WS/open"
	printf 'x\n' > "$WS/open/f"; chmod 666 "$WS/open/f"; chmod 755 "$WS"
	out=$(krun "$k" become 65534 rm "$WS/open/f" 2>&1) || true
	assert_contains "$out" "become 65534: ok"
	assert_contains "$out" "rm $WS/open/f: EACCES"
	assert_exists "$WS/open/f"
	assert_contains "$(db "select reason from events where layer = 'kernel' and decision = 'deny'")" \
		"other credentials"
}

test_exec_from_a_static_parent_is_judged() {
	local k; k=$(kbuild kstatic)
	local fakebin; fakebin=$(fake_terraform)
	out=$(krun "$k" exec "$fakebin/terraform" destroy -auto-approve 2>&1) || true
	assert_contains "$out" "exec $fakebin/terraform: EACCES"
	assert_contains "$out" "agentguard: denied exec $fakebin/terraform (rule no-infra-destroy"
	assert_missing "$T/marker"
	krun "$k" exec "$fakebin/terraform" plan >/dev/null 2>&1
	assert_eq "$(cat "$T/marker")" "terraform plan"
}

test_metadata_address_refused_from_a_static_program() {
	local k; k=$(kbuild kstatic)
	out=$(krun "$k" connect 169.254.169.254:80 sendto 169.254.169.254:53 connect 127.0.0.1:9 2>&1)
	assert_contains "$out" "connect 169.254.169.254:80: EACCES"
	assert_contains "$out" "sendto 169.254.169.254:53: EACCES"
	assert_not_contains "$out" "connect 127.0.0.1:9: EACCES"
	assert_eq "$(db "select count(*) from events where op = 'connect' and decision = 'deny' and layer = 'kernel'")" 2
}

test_process_tree_forks_threads_vforks_and_execs() {
	local k; k=$(kbuild kstatic)
	for i in 0 1 2 3 4 5 6 7 8; do seed "f.$i"; done
	out=$(timeout -k 5 60 "$AG" run --require-kernel --workspace "$WS" -- "$k" tree "$WS/f" 2>&1) ||
		fail "the tree did not finish: $out"
	assert_contains "$out" "tree $WS/f: ok"
	for i in 0 1 2 3 4 5 6 7 8; do
		assert_missing "$WS/f.$i"
		assert_eq "$(rows delete "$WS/f.$i")" "snapshot kernel"
	done
	# Each row names the process that made the call.
	assert_eq "$(db "select count(distinct pid) from events where op = 'delete'")" 6
	# Many at once: no hand-off deadlock in the supervisor.
	for r in 1 2 3 4; do mkdir -p "$WS/r$r"; for i in 0 1 2 3 4 5 6 7 8; do : > "$WS/r$r/f.$i"; done; done
	timeout -k 5 60 "$AG" run --require-kernel --workspace "$WS" -- sh -c "
		for r in 1 2 3 4; do '$k' tree '$WS'/r\$r/f >/dev/null & done; wait" ||
		fail "parallel trees did not finish"
	assert_eq "$(find "$WS" -name 'f.*' | wc -l)" 0
}

test_library_calls_are_not_reported_twice() {
	seed a b c d e w p
	head -c 8192 /dev/urandom > "$WS/h"
	# id and ls -l look up users: libc connects to nscd on its own.
	krun sh -c 'id >/dev/null; ls -l >/dev/null; rm a; mv b c; : > d; printf x 1<> w; fallocate -p -o 0 -l 4096 h; python3 -c "import os, subprocess; os.remove(\"e\"); open(\"p\", \"r+\").write(\"y\"); os.system(\"true\"); subprocess.run([\"true\"])"'
	assert_eq "$(db "select count(*) from events where layer = 'kernel'")" 0 \
		"$(db "select op, path from events where layer = 'kernel'")"
	assert_eq "$(rows delete "$WS/a")" "snapshot library"
	assert_eq "$(rows delete "$WS/e")" "snapshot library"
	assert_eq "$(rows write "$WS/w")" "snapshot library"
	assert_eq "$(rows write "$WS/p")" "snapshot library"
	assert_eq "$(rows write "$WS/h")" "snapshot library"
}

test_32bit_system_calls_are_refused() {
	local k; k=$(kbuild kstatic)
	seed q
	# Some kernels run without the 32-bit ABI: then there is nothing to refuse.
	local rc=0
	"$k" i386-unlink "$T/none" >/dev/null 2>&1 || rc=$?
	if [ "$rc" -ge 128 ]; then
		echo "this kernel has no 32-bit system calls (int 0x80 faults): nothing to test"
		return 0
	fi
	out=$(krun "$k" i386-unlink "$WS/q" 2>&1)
	assert_contains "$out" "i386-unlink $WS/q: EACCES"
	assert_exists "$WS/q"
}

test_kernel_layer_off_is_said_recorded_and_can_be_required() {
	local k; k=$(kbuild kstatic)
	seed q
	out=$("$k" noseccomp-exec "$AG" run --workspace "$WS" -- "$k" rm q 2>&1)
	assert_eq "$(grep -c 'kernel layer is off' <<<"$out")" 1 "$out"
	assert_contains "$(db "select kernel from sessions")" "off: the seccomp filter cannot be installed"
	seed q
	out=$("$k" noseccomp-exec "$AG" run --require-kernel --workspace "$WS" -- "$k" rm q 2>&1) &&
		fail "--require-kernel ran without the kernel layer"
	assert_contains "$out" "--require-kernel: the kernel layer cannot be set up"
	assert_exists "$WS/q"
	krun true
	assert_eq "$(db "select kernel from sessions order by start_ns desc limit 1")" "on"
	"$AG" run --no-kernel --workspace "$WS" -- true
	assert_eq "$(db "select kernel from sessions order by start_ns desc limit 1")" "off: --no-kernel"
}

test_what_outlives_the_session_cannot_act_unjudged() {
	local k; k=$(kbuild kstatic)
	seed late
	# Written where the floor lets it (a directory that was there before).
	mkdir "$T/out"
	krun sh -c "(sleep 0.3; '$k' rm '$WS/late' > '$T/out/late') & exit 0"
	for _ in $(seq 50); do [ -s "$T/out/late" ] && break; sleep 0.1; done
	assert_eq "$(cat "$T/out/late")" "rm $WS/late: ENOSYS"
	assert_exists "$WS/late"
}

test_the_breaker_counts_what_the_kernel_layer_denies() {
	local k; k=$(kbuild kstatic)
	breaker_session_setup
	out=$("$AG" run --require-kernel --rules "$T/breaker.yaml" --workspace "$WS" -- "$k" \
		rm "$HOME/.ssh/id_rsa" rm "$HOME/.ssh/id_rsa" rm "$WS/after" 2>&1) || true
	assert_contains "$out" "rm $WS/after: EACCES"
	assert_exists "$WS/after"
	assert_contains "$(db "select reason from events where path = '$WS/after'")" "session halted"
	assert_eq "$(db "select layer from events where path = '$WS/after'")" "kernel"
}

test_the_snapshot_budget_counts_what_the_kernel_layer_keeps() {
	local k; k=$(kbuild kstatic)
	head -c 3000 /dev/urandom > "$WS/big1"; head -c 3000 /dev/urandom > "$WS/big2"
	cat > "$T/budget.yaml" <<-'EOF2'
	version: 1
	snapshots: {max_bytes: 4KiB}
	rules:
	  - id: keep
	    on: [delete]
	    path: ["$WORKSPACE/**"]
	    action: snapshot
	EOF2
	out=$("$AG" run --require-kernel --rules "$T/budget.yaml" --workspace "$WS" -- "$k" \
		rm "$WS/big1" rm "$WS/big2" 2>&1) || true
	assert_contains "$out" "rm $WS/big1: ok"
	assert_contains "$out" "rm $WS/big2: EACCES"
	assert_exists "$WS/big2"
	assert_contains "$(db "select reason from events where path = '$WS/big2'")" "snapshots.max_bytes"
}

test_many_calls_judged_by_the_supervisor_lose_no_rows() {
	# The supervisor's own records go to STATE/kspool; a spool it believed
	# gone (it once looked for it under spool/) was replaced every 16
	# records and counted as lost.
	command -v busybox >/dev/null || fail "busybox-static is not installed"
	mkdir -p "$WS/many"
	for i in $(seq 120); do printf '%s\n' "$i" > "$WS/many/f$i"; done
	krun busybox sh -c 'for f in many/f*; do rm "$f"; done' >/dev/null 2>&1
	assert_eq "$(ls "$WS/many" | wc -l)" "0"
	ingest
	assert_eq "$(db "select count(*) from events where op='delete' and layer='kernel' and path like '$WS/many/f%'")" "120"
	assert_eq "$(db "select count(*) from gaps")" "0"
	assert_eq "$(ls "$AGENTGUARD_STATE_DIR/kspool" | wc -l)" "0"
}

test_modes_and_owners_changed_by_a_static_program_are_judged() {
	command -v busybox >/dev/null || fail "busybox-static is not installed"
	mkdir -p "$HOME/.ssh"; printf 'key\n' > "$HOME/.ssh/id_test"; chmod 600 "$HOME/.ssh/id_test"
	seed tool data
	chmod 644 "$WS/tool" "$WS/data"
	out=$(krun busybox sh -c "chmod 777 $HOME/.ssh/id_test; echo chmod key \$?;
		chown 65534 $HOME/.ssh/id_test; echo chown key \$?;
		chmod 755 tool; echo chmod tool \$?; chown 65534:65534 data; echo chown data \$?" 2>&1)
	assert_contains "$out" "chmod key 1"
	assert_contains "$out" "chown key 1"
	assert_contains "$out" "chmod tool 0"
	assert_contains "$out" "chown data 0"
	assert_eq "$(stat -c %u "$WS/data")" "65534"
	assert_eq "$(stat -c %a "$HOME/.ssh/id_test")" "600"
	assert_eq "$(stat -c %u "$HOME/.ssh/id_test")" "$(id -u)"
	assert_eq "$(stat -c %a "$WS/tool")" "755"
	assert_eq "$(rows mode "$HOME/.ssh/id_test" | sort -u)" "deny kernel"
	assert_eq "$(rows mode "$WS/tool")" "snapshot kernel"
	assert_eq "$(rows mode "$WS/data")" "snapshot kernel"
	local sid; sid=$(latest_session)
	# fchmod on a descriptor, past libc: the supervisor names its file.
	out=$(krun python3 -c '
import ctypes, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
r = ctypes.CDLL(None, use_errno=True).syscall(91, fd, 0o777)
print("fchmod", r)' "$HOME/.ssh/id_test" 2>&1)
	assert_contains "$out" "fchmod -1"
	assert_eq "$(stat -c %a "$HOME/.ssh/id_test")" "600"
	# The old mode is kept: restore puts it back.
	"$AG" restore --session "$sid" >/dev/null
	assert_eq "$(stat -c %a "$WS/tool")" "644"
	assert_eq "$(stat -c %u "$WS/data")" "$(id -u)"
}
