#!/usr/bin/env bash
# The exported entries pass most calls straight to libc: their own frame is
# all a passthrough costs the caller's stack (threads run on 16 KiB stacks,
# signal handlers on SIGSTKSZ alternate ones). Frame sizes come from the
# compiler (-fstack-usage, the hooks' .su files); the execl family collects
# its variadic arguments on the stack first and is listed on its own.
#   check-frames.sh [BUILD_DIR]
set -u
build=${1:-build}
limit=512
su=$(cat "$build"/obj/lib/hooks/*.su 2>/dev/null)
[ -n "$su" ] || { echo "check-frames: no .su files under $build/obj/lib/hooks" >&2; exit 1; }
worst=0 worst_name= bad=0 varargs=
while read -r name; do
	# Assembly that jumps on (lib/hooks/dlsym.c): its frame is its handler's.
	case $name in dlsym) name=ag_dlsym_handle ;; dlvsym) name=ag_dlvsym_handle ;; esac
	line=$(awk -F'\t' -v n="$name" '{split($1, a, ":"); if (a[4] == n) print}' <<<"$su")
	[ -n "$line" ] || { echo "check-frames: no frame size for $name" >&2; bad=1; continue; }
	size=$(cut -f2 <<<"$line"); kind=$(cut -f3 <<<"$line")
	case $name in execl|execlp|execle) varargs="$varargs $name=$size($kind)"; continue ;; esac
	if [ "$size" -gt "$worst" ]; then worst=$size; worst_name=$name; fi
	if [ "$size" -gt "$limit" ] || [ "$kind" = dynamic ]; then
		echo "check-frames: $name's frame is $size bytes ($kind), over $limit" >&2
		bad=1
	fi
done < "$build/gen/exports.txt"
[ "$bad" -eq 0 ] || exit 1
echo "check-frames: largest passthrough frame $worst bytes ($worst_name); argv-collecting:$varargs"
