# bash completion for agentguard: its commands, and each command's options as
# its own --help lists them (so they never go stale).
_agentguard()
{
	local cur=${COMP_WORDS[COMP_CWORD]} cmd=${COMP_WORDS[1]:-}
	if [ "$COMP_CWORD" -eq 1 ]; then
		local cmds
		cmds=$(agentguard --help 2>/dev/null | awk '/^Commands:/ {on = 1; next} on && /^  [a-z]/ {print $1} on && /^$/ {exit}')
		COMPREPLY=($(compgen -W "$cmds --help --version" -- "$cur"))
		return
	fi
	case $cur in
	-*)
		local opts
		opts=$(agentguard "$cmd" --help 2>/dev/null | grep -o -- '--[a-z][a-z-]*' | sort -u)
		COMPREPLY=($(compgen -W "$opts --help --version --state-dir" -- "$cur"))
		;;
	*)
		COMPREPLY=($(compgen -f -- "$cur"))
		;;
	esac
}
complete -F _agentguard agentguard
