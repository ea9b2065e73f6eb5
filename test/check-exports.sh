#!/usr/bin/env bash
# The library shares every process it is loaded into: nothing but the
# interposed symbols and agentguard_* may leave it.
set -u
lib=${1:-build/libagentguard.so}
allowed='^(unlink|unlinkat|remove|rmdir|rename|renameat|renameat2|open|open64|openat|openat64|creat|creat64|__open_2|__open64_2|__openat_2|__openat64_2|fopen|fopen64|freopen|freopen64|truncate|truncate64|ftruncate|ftruncate64|execve|execv|execvp|execvpe|execl|execlp|execle|fexecve|execveat|posix_spawn|posix_spawnp|system|popen|connect|getaddrinfo|gethostbyname|gethostbyname2|gethostbyname_r|gethostbyname2_r|sqlite3_exec|sqlite3_prepare|sqlite3_prepare_v2|sqlite3_prepare_v3|sqlite3_prepare16|sqlite3_prepare16_v2|sqlite3_prepare16_v3|sqlite3_set_authorizer|sqlite3_close|sqlite3_close_v2|PQexec|PQexecParams|PQprepare|PQsendQuery|PQsendQueryParams|PQsendPrepare|mysql_query|mysql_real_query|mysql_send_query|mysql_real_connect|mysql_select_db|mysql_close|send|sendto|agentguard_.*)$'
leaked=$(nm -D --defined-only "$lib" | awk '{print $3}' | sed 's/@.*//' | grep -Ev "$allowed" || true)
if [ -n "$leaked" ]; then
	echo "check-exports: $lib exports symbols it must not:" >&2
	echo "$leaked" | sed 's/^/  /' >&2
	exit 1
fi
echo "check-exports: $(nm -D --defined-only "$lib" | wc -l) exported symbols, all interposed or agentguard_*"
