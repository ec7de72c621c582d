# bash completion for ntm(1)                               -*- shell-script -*-
# Keep in step with `ntm help --commands` (scripts/docs-check.sh checks).

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

	local commands="login logout status up down register tunnel keys send fetch shell help"
	local i cmd=""
	for ((i = 1; i < cword; i++)); do
		case ${words[i]} in
		-c) ((i++)) ;;
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

	local opts=""
	case $cmd in
	login)
		case $prev in
		--password-file|--ca) _ntm_files; return ;;
		-u|--user|--device|--push|--timeout) return ;;
		esac
		opts="-u --user --password-file --ca --device --push --timeout --json -h --help"
		;;
	logout)
		case $prev in
		--timeout) return ;;
		esac
		opts="--timeout --json -h --help"
		;;
	status)
		case $prev in
		--timeout) return ;;
		esac
		opts="--offline --timeout --json -h --help"
		;;
	up)
		case $prev in
		--port|--keepalive|--dc-udp|--resolver|--timeout|--socks5) return ;;
		esac
		opts="-d --foreground --port --keepalive --dc-udp --resolver --timeout --socks5 --tun -h --help"
		;;
	down)
		case $prev in
		--timeout) return ;;
		esac
		opts="--timeout -h --help"
		;;
	register)
		case $prev in
		--dc-udp|--resolver|--timeout) return ;;
		esac
		opts="--json --dc-udp --resolver --timeout -h --help"
		;;
	tunnel)
		case $prev in
		-c|--count|-i|--interval|--udp|--local-port|--wait|--timeout|-L|--local|-R|--remote|--remove) return ;;
		--exec) COMPREPLY=($(compgen -c -- "$cur")); return ;;
		esac
		local sub="" j
		for ((j = i + 1; j < cword; j++)); do
			case ${words[j]} in
			ping|open|listen|list|close|forward) sub=${words[j]}; break ;;
			esac
		done
		if [[ -z $sub && $cur != -* ]]; then
			COMPREPLY=($(compgen -W "ping open listen list close forward" -- "$cur"))
			return
		fi
		opts="-c --count -i --interval -6 --ipv6 --udp --local-port --wait --timeout --exec -L --local -R --remote --remove --json -h --help"
		;;
	keys)
		case $prev in
		--timeout) return ;;
		esac
		local sub="" j
		for ((j = i + 1; j < cword; j++)); do
			case ${words[j]} in
			exchange|list|show|rotate|forget) sub=${words[j]}; break ;;
			esac
		done
		if [[ -z $sub && $cur != -* ]]; then
			COMPREPLY=($(compgen -W "exchange list show rotate forget" -- "$cur"))
			return
		fi
		opts="--timeout --json -h --help"
		;;
	send)
		case $prev in
		--app|--service|--item|--notify|--ttl|--status|--timeout) return ;;
		esac
		if [[ $cur != -* ]]; then
			_ntm_files
			return
		fi
		opts="--app --service --item --notify --ttl --status --timeout --progress --no-progress --json -h --help"
		;;
	fetch)
		case $prev in
		-o|--output) _ntm_files -d; return ;;
		--from|--timeout|--discard) return ;;
		esac
		opts="--from --wait -o --output --discard --timeout --progress --no-progress --json -h --help"
		;;
	shell)
		opts="-h --help"
		;;
	help)
		opts="--commands -h --help"
		if [[ $cur != -* ]]; then
			COMPREPLY=($(compgen -W "$commands" -- "$cur"))
			return
		fi
		;;
	esac
	COMPREPLY=($(compgen -W "$opts" -- "$cur"))
} &&
	complete -F _ntm ntm

# ex: filetype=sh
