# bash completion for ntm(1)                               -*- shell-script -*-
# Keep in step with `ntm help --commands`: each command and subcommand
# offers exactly the options listed on its line (scripts/docs-check.sh runs
# this completion for every line and compares).

_ntm_files()
{
	if declare -F _filedir >/dev/null; then
		_filedir "$@"
	elif [[ ${1:-} == -d ]]; then
		COMPREPLY=($(compgen -d -- "$cur"))
	else
		COMPREPLY=($(compgen -f -- "$cur"))
	fi
}

# The peers the agent has tunnels with and those we share end-to-end keys
# with (`ntm tunnel list --json`, `ntm keys list --json`), in the profile of
# a -c DIR given before the command.
_ntm_peers()
{
	local -a prof=()
	local peers
	[[ -n $ntm_dir ]] && prof=(-c "${ntm_dir/#\~/$HOME}")
	peers=$({ command ntm "${prof[@]}" tunnel list --json
		command ntm "${prof[@]}" keys list --json; } 2>/dev/null |
	    grep -o '"peer":"[^"]*"' | sed 's/^"peer":"//; s/"$//' | grep -vx -- - | sort -u)
	COMPREPLY=($(compgen -W "$peers" -- "$cur"))
}

_ntm()
{
	local cur prev words cword
	if declare -F _init_completion >/dev/null; then
		_init_completion || return
	else	# without the bash-completion package
		words=("${COMP_WORDS[@]}")
		cword=$COMP_CWORD
		cur=${COMP_WORDS[COMP_CWORD]}
		prev=${COMP_WORDS[COMP_CWORD - 1]}
	fi

	local commands="login logout status up down register netcheck tunnel keys send fetch shell help"
	local i cmd="" ntm_dir=""
	for ((i = 1; i < cword; i++)); do
		case ${words[i]} in
		-c) ((i++)); ntm_dir=${words[i]} ;;
		-*) ;;
		*) cmd=${words[i]}; break ;;
		esac
	done

	if [[ -z $cmd ]]; then
		case $prev in
		-c) _ntm_files -d; return ;;
		esac
		if [[ $cur == -* ]]; then
			COMPREPLY=($(compgen -W "-c -v -h --help -V --version" -- "$cur"))
		else
			COMPREPLY=($(compgen -W "$commands" -- "$cur"))
		fi
		return
	fi

	# The subcommand, then the operands after it (option values aside).
	local subs="" sub="" j npos=0 valued=""
	case $cmd in
	tunnel)
		subs="ping open listen list close forward"
		valued="-c --count -i --interval --udp --exec --local-port --wait --timeout -L --local -R --remote --remove"
		;;
	keys)
		subs="exchange list show rotate forget"
		valued="--timeout"
		;;
	send) valued="--app --service --item --notify --ttl --status --timeout" ;;
	esac
	for ((j = i + 1; j < cword; j++)); do
		case ${words[j]} in
		-*) [[ " $valued " == *" ${words[j]} "* ]] && ((j++)) ;;
		*)
			if [[ -n $subs && -z $sub ]]; then
				[[ " $subs " == *" ${words[j]} "* ]] && sub=${words[j]}
			else
				((npos++))
			fi
			;;
		esac
	done

	# Option values.
	case $prev in
	--password-file|--ca|--log) _ntm_files; return ;;
	-o|--output) [[ $cmd == fetch ]] && { _ntm_files -d; return; } ;;
	--from) _ntm_peers; return ;;
	--exec) COMPREPLY=($(compgen -c -- "$cur")); return ;;
	--socks5) COMPREPLY=($(compgen -W off -- "$cur")); return ;;
	--allow) COMPREPLY=($(compgen -W "icmp all" -- "$cur")); return ;;
	-u|--user|--device|--push|--timeout|--port|--keepalive|--direct-retry|--dc-udp|--resolver) return ;;
	--count|--interval|--udp|--local-port|--wait|--local|--remote|--remove) return ;;
	--app|--service|--item|--notify|--ttl|--status|--discard) return ;;
	-c|-i|-L|-R) [[ $cmd == tunnel ]] && return ;;
	esac

	# Operands.
	if [[ $cur != -* ]]; then
		case "$cmd${sub:+ $sub}" in
		tunnel|keys)
			COMPREPLY=($(compgen -W "$subs" -- "$cur")) ;;
		"tunnel ping"|"tunnel open"|"tunnel close"|"keys exchange"|"keys show"|\
		"keys rotate"|"keys forget")
			((npos == 0)) && _ntm_peers ;;
		send)
			if ((npos == 0)); then _ntm_peers; else _ntm_files; fi ;;
		help)
			((npos == 0)) && COMPREPLY=($(compgen -W "$commands" -- "$cur")) ;;
		esac
		return
	fi

	local opts="-h --help"
	case "$cmd${sub:+ $sub}" in
	login) opts="-u --user --password-file --ca --device --push --renew --timeout --json -h --help" ;;
	logout) opts="--timeout --json -h --help" ;;
	status) opts="--offline --metrics --timeout --json -h --help" ;;
	up) opts="-d --foreground --json --log --port --keepalive --direct-retry --dc-udp --resolver --timeout --socks5 --tun --allow --accept -h --help" ;;
	down) opts="--json --timeout -h --help" ;;
	register) opts="--json --dc-udp --resolver --timeout -h --help" ;;
	netcheck) opts="--json --dc-udp --resolver --timeout -h --help" ;;
	tunnel) opts="-c --count -i --interval -6 --ipv6 --udp --local-port --wait --timeout --exec -L --local -R --remote --remove --json -h --help" ;;
	"tunnel ping") opts="-c --count -i --interval -6 --ipv6 --timeout --json -h --help" ;;
	"tunnel open") opts="-6 --ipv6 --udp --local-port --wait --timeout --exec --json -h --help" ;;
	"tunnel listen") opts="--udp -c --count --exec --json -h --help" ;;
	"tunnel list") opts="--json -h --help" ;;
	"tunnel close") opts="--json -h --help" ;;
	"tunnel forward") opts="-L --local -R --remote --remove -6 --ipv6 --json -h --help" ;;
	keys) opts="--timeout --json -h --help" ;;
	"keys exchange") opts="--timeout --json -h --help" ;;
	"keys list") opts="--json -h --help" ;;
	"keys show") opts="--json -h --help" ;;
	"keys rotate") opts="--timeout --json -h --help" ;;
	"keys forget") opts="--json -h --help" ;;
	send) opts="--app --service --item --notify --ttl --status --timeout --progress --no-progress --json -h --help" ;;
	fetch) opts="--from --wait -o --output --discard --timeout --progress --no-progress --json -h --help" ;;
	shell) opts="-h --help" ;;
	help) opts="--commands --json -h --help" ;;
	esac
	COMPREPLY=($(compgen -W "$opts" -- "$cur"))
} &&
	complete -F _ntm ntm

# ex: filetype=sh
