# The network guard: connect() to IPv4, IPv6 and unix sockets, with host
# names learned from the program's own lookups.

connect_py() {   # connect_py FAMILY TARGET...: prints the errno name, or "ok"
	guard python3 -c '
import socket, sys, errno
fam, rest = sys.argv[1], sys.argv[2:]
try:
    if fam == "unix":
        s = socket.socket(socket.AF_UNIX); s.connect(rest[0])
    elif fam == "name":
        socket.create_connection((rest[0], int(rest[1])), timeout=2)
    else:
        s = socket.socket(socket.AF_INET6 if ":" in rest[0] else socket.AF_INET)
        s.settimeout(2); s.connect((rest[0], int(rest[1])))
    print("ok")
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno))
' "$@"
}

test_cloud_metadata_address_denied_by_default() {
	out=$(connect_py ip 169.254.169.254 80 2>"$T/err")
	assert_eq "$out" EACCES
	assert_contains "$(cat "$T/err")" "agentguard: denied connect 169.254.169.254:80 (rule "
	out=$(connect_py ip ::ffff:169.254.169.254 80 2>/dev/null)
	assert_eq "$out" EACCES
	ingest
	assert_eq "$(db "select port || '|' || decision || '|' || errno from events where op='connect' and address='169.254.169.254'")" \
		"80|deny|13"
	assert_eq "$(db "select decision from events where op='connect' and address='::ffff:169.254.169.254'")" deny
}

test_host_names_come_from_the_programs_lookups() {
	cat > "$T/rules.yaml" <<'YAML'
version: 1
rules:
  - id: no-discard-by-name
    on: connect
    host: localhost
    port: [9]
    action: deny
    reason: "not that service"
  - id: no-blocked-socket
    on: connect
    unix: ["*.blocked"]
    action: deny
    reason: "that socket is off limits"
YAML
	export AGENTGUARD_RULES=$T/rules.yaml
	# Looked up by name: denied before anything is sent.
	assert_eq "$(connect_py name localhost 9 2>/dev/null)" EACCES
	# The same address by number, in a process that never looked it up:
	# the rule (by name) does not apply; nothing listens, so the kernel refuses.
	assert_eq "$(connect_py ip 127.0.0.1 9 2>/dev/null)" ECONNREFUSED
	assert_eq "$(connect_py unix "$T/agent.blocked" 2>/dev/null)" EACCES
	assert_eq "$(connect_py unix "$T/other.sock" 2>/dev/null)" ENOENT
	ingest
	assert_eq "$(db "select host || '|' || decision from events where op='connect' and port=9 and host is not null")" \
		"localhost|deny"
	assert_eq "$(db "select count(*) from events where op='connect' and address like '%agent.blocked' and decision='deny'")" 1
	assert_eq "$(db "select count(*) from events where op='connect' and address like '%other.sock' and decision='allow' and errno=2")" 1
}

# TCP Fast Open connects by sending: sendto/sendmsg with MSG_FASTOPEN and an
# address open the connection and carry data in the SYN. They are connects
# to that address, judged before anything leaves.
test_fast_open_sendto_and_sendmsg_are_connects() {
	out=$(guard python3 -c '
import socket, errno
for how in ("sendto", "sendmsg"):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if how == "sendto":
            s.sendto(b"GET / HTTP/1.0\r\n\r\n", socket.MSG_FASTOPEN, ("169.254.169.254", 80))
        else:
            s.sendmsg([b"GET / HTTP/1.0\r\n\r\n"], [], socket.MSG_FASTOPEN, ("169.254.169.254", 80))
        print(how, "sent")
    except OSError as e:
        print(how, errno.errorcode.get(e.errno, e.errno))
' 2>"$T/err")
	assert_eq "$out" "sendto EACCES
sendmsg EACCES"
	assert_contains "$(cat "$T/err")" "agentguard: denied connect 169.254.169.254:80 (rule no-cloud-metadata"
	# An allowed one goes through to the kernel (nothing listens here).
	out=$(guard python3 -c '
import socket, errno
s = socket.socket()
try:
    s.sendto(b"x", socket.MSG_FASTOPEN, ("127.0.0.1", 9)); print("sent")
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno))
' 2>/dev/null)
	assert_eq "$out" ECONNREFUSED
	ingest
	assert_eq "$(db "select count(*) || '|' || min(decision) || '|' || min(errno) from events where op='connect' and address='169.254.169.254' and port=80")" "2|deny|13"
	assert_eq "$(db "select decision from events where op='connect' and address='127.0.0.1' and port=9")" allow
}
