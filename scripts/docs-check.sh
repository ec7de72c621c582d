#!/usr/bin/env bash
# docs-check.sh - help, man pages and completions must not drift. The ntm
# command table (`ntm help --commands`) is the one source: every command,
# subcommand and option it lists must appear in man/ntm.1 and in the bash, zsh and fish
# completions, and each line's options exactly (no more, no fewer) where the
# completions offer options for that command or subcommand: bash's by running
# its completion of `ntm CMD [SUB] --`, zsh's from its case "CMD [SUB]",
# fish's from its lines for "__ntm_using CMD [SUB]". For the daemons, their
# command tables (--commands) and the headings of their man pages' COMMANDS
# must agree, every --option of --help must be in the man page, and their
# HTTP routes (--routes) and docs/protocol.md's headings must agree.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
bin=${NTM_BIN:-$top/build}
fail=0
# man pages escape '-' as '\-'; compare without backslashes.
plain() { sed 's/\\//g' "$1"; }

missing() { echo "docs-check: $1 is missing from $2" >&2; fail=1; }

differ() {
	echo "docs-check: $2 offers for '$1': ${3:-(nothing)}; ntm help --commands lists: $4" >&2
	fail=1
}
# The long options each completion offers for `ntm CMD [SUB]`, sorted, on one line.
bash_opts() {
	bash -c 'source "$0"; COMP_WORDS=(ntm "$@" --); COMP_CWORD=$(($# + 1)); _ntm
	    printf "%s\n" "${COMPREPLY[@]}"' "$top/completions/ntm.bash" "$@" |
	    grep -- '^--' | sort -u | tr '\n' ' '
}
zsh_opts() {
	awk -v label="\"$1\")" '
	    { l = $0; sub(/^[ \t]+/, "", l) }
	    !on && l == label { on = 1 }
	    on { print }
	    on && /;;[ \t]*$/ { exit }' "$top/completions/_ntm" |
	    sed 's/\$timeout/--timeout/g; s/\$json/--json/g; s/\$help/--help/g' |
	    grep -oE -- '--[a-z][a-z0-9-]*' | sort -u | tr '\n' ' '
}
fish_opts() {
	grep -F -- "\"__ntm_using $1\"" "$top/completions/ntm.fish" |
	    grep -oE -- ' -l [a-z][a-z0-9-]*' | sed 's/^ -l /--/' | sort -u | tr '\n' ' '
}

lines=$("$bin/ntm" help --commands) || { echo "docs-check: ntm help --commands failed" >&2; exit 1; }
[ -n "$lines" ] || { echo "docs-check: empty command table" >&2; exit 1; }
man_ntm=$(plain "$top/man/ntm.1")
while IFS=$'\t' read -r cmd opts; do
	# "tunnel ping": the subcommand's word must be there
	word=${cmd##* }
	for f in "$top/completions/ntm.bash" "$top/completions/_ntm" "$top/completions/ntm.fish"; do
		grep -qw -- "$word" "$f" || missing "command '$cmd'" "$f"
	done
	grep -qw -- "$word" <<<"$man_ntm" || missing "command '$cmd'" man/ntm.1
	for o in $opts; do
		grep -q -- "$o" <<<"$man_ntm" || missing "option '$cmd $o'" man/ntm.1
		grep -q -- "${o#--}" "$top/completions/ntm.bash" || missing "option '$cmd $o'" completions/ntm.bash
		grep -q -- "${o#--}" "$top/completions/_ntm" || missing "option '$cmd $o'" completions/_ntm
		grep -q -- "${o#--}" "$top/completions/ntm.fish" || missing "option '$cmd $o'" completions/ntm.fish
	done
	want=$(tr ' ' '\n' <<<"$opts" | grep -- '^--' | sort -u | tr '\n' ' ')
	got=$(bash_opts $cmd)
	[ "$got" = "$want" ] || differ "$cmd" completions/ntm.bash "$got" "$want"
	got=$(zsh_opts "$cmd")
	[ "$got" = "$want" ] || differ "$cmd" completions/_ntm "$got" "$want"
	got=$(fish_opts "$cmd")
	[ "$got" = "$want" ] || differ "$cmd" completions/ntm.fish "$got" "$want"
done <<<"$lines"

# The headings (.TP tags) of a daemon's COMMANDS section, markup removed.
man_commands() {
	awk '/^\.SH/ { on = ($0 ~ /^\.SH COMMANDS/) } on && tp { print; tp = 0 } on && /^\.TP/ { tp = 1 }' "$1" |
	    sed -E 's/\\f[BIRP]//g; s/^\.(B|BR|BI|IR|I|RB) +//; s/\\//g; s/"//g'
}
# The first line of stdin that starts with $1 (a space appended to the line).
starting() { awk -v c="$1" 'index($0 " ", c) == 1 { print; exit }'; }
# Whether the command table on stdin lists subcommands of command $1.
has_subs() { awk -v c="$1 " 'index($0, c) == 1 { f = 1 } END { exit !f }'; }
# The long options a heading names, sorted, on one line.
heading_opts() { grep -oE -- '--[a-z][a-z0-9-]*' <<<"$1" | sort -u | tr '\n' ' '; }

# Each daemon's command table (`--commands`) against its man page: every
# command and subcommand has a heading in COMMANDS naming exactly its options
# (--help aside: every command takes it); every heading is a command of the
# table; and every --option of --help is in the page.
for d in ntm-as ntm-dc ntm-rs ntm-cs; do
	page=$(ls "$top/man/$d".[0-9] 2>/dev/null | head -n 1)
	[ -n "$page" ] || { missing "the man page" "man/$d.8"; continue; }
	text=$(plain "$page")
	for o in $("$bin/$d" --help 2>&1 | grep -oE -- '--[a-z][a-z0-9-]+' | sort -u); do
		grep -q -- "$o" <<<"$text" || missing "option '$d $o'" "$page"
	done
	table=$("$bin/$d" --commands) || { echo "docs-check: $d --commands failed" >&2; fail=1; continue; }
	[ -n "$table" ] || { echo "docs-check: $d --commands printed nothing" >&2; fail=1; continue; }
	headings=$(man_commands "$page")
	while IFS=$'\t' read -r cmd opts; do
		if has_subs "$cmd" <<<"$table"; then
			# a command with subcommands: each has its own heading
			[ -n "$(starting "$cmd " <<<"$headings")" ] ||
			    missing "command '$d $cmd'" "$page (COMMANDS)"
			continue
		fi
		h=$(starting "$cmd " <<<"$headings")
		[ -n "$h" ] || { missing "command '$d $cmd'" "$page (COMMANDS)"; continue; }
		want=$(tr ' ' '\n' <<<"$opts" | grep -vx -- --help | sort -u | tr '\n' ' ')
		got=$(heading_opts "$h")
		[ "$got" = "$want" ] || {
			echo "docs-check: $page names for '$d $cmd': ${got:-(nothing)}; $d --commands lists: ${want:-(nothing)}" >&2
			fail=1
		}
	done <<<"$table"
	names=$(cut -f1 <<<"$table")
	while read -r w1 w2 _; do
		[ -n "$w1" ] || continue
		{ ! has_subs "$w1" <<<"$names" && grep -qxF -- "$w1" <<<"$names"; } ||
		    grep -qxF -- "$w1 $w2" <<<"$names" ||
		    { echo "docs-check: $page documents '$w1 $w2', which $d --commands does not list" >&2; fail=1; }
	done <<<"$headings"
done
[ -f "$top/man/ntm.conf.5" ] || missing "the config man page" man/ntm.conf.5

# Every HTTP route a daemon serves (its --routes) has a heading in
# docs/protocol.md naming "METHOD /path" (a query or optional part after the
# path, and "`DELETE` the same" for a second method), and every endpoint a
# heading names is served by some daemon.
documented=$(grep -E '^#+ ' "$top/docs/protocol.md" | awk '
	{
		n = split($0, part, "`")
		path = ""
		for (i = 2; i <= n; i += 2) {
			if (split(part[i], w, " ") == 2 && w[1] ~ /^(GET|POST|PUT|DELETE|PATCH|HEAD)$/ && w[2] ~ /^\//) {
				path = w[2]
				sub(/[?[].*/, "", path)
				print w[1], path
			} else if (path != "" && part[i] ~ /^(GET|POST|PUT|DELETE|PATCH|HEAD)$/)
				print part[i], path
		}
	}' | sort -u)
served=$(for d in ntm-as ntm-dc ntm-rs ntm-cs; do
	"$bin/$d" --routes || echo "docs-check: $d --routes failed" >&2
done | awk -F '\t' '{ print $1, $2 }' | sort -u)
if [ -z "$served" ]; then
	echo "docs-check: no daemon printed a route" >&2
	fail=1
fi
while read -r route; do
	[ -n "$route" ] || continue
	grep -qxF -- "$route" <<<"$documented" ||
	    missing "route '$route' (served by $(for d in ntm-as ntm-dc ntm-rs ntm-cs; do
		"$bin/$d" --routes | awk -F '\t' -v r="$route" '$1 " " $2 == r { print d; exit }' d="$d"
	    done | tr '\n' ' ' | sed 's/ $//')) as a heading" docs/protocol.md
done <<<"$served"
while read -r route; do
	[ -n "$route" ] || continue
	grep -qxF -- "$route" <<<"$served" ||
	    { echo "docs-check: docs/protocol.md documents '$route', which no daemon serves (--routes)" >&2; fail=1; }
done <<<"$documented"
[ "$fail" -eq 0 ] && echo "docs-check: help, man pages and completions agree"
exit $fail
