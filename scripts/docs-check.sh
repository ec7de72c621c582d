#!/usr/bin/env bash
# docs-check.sh - help, man pages and completions must not drift. The ntm
# command table (`ntm help --commands`) is the one source: every command,
# subcommand and option it lists must appear in man/ntm.1 and in the bash, zsh and fish
# completions. For the daemons, every --option and subcommand word in
# --help must appear in the man page.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
bin=${NTM_BIN:-$top/build}
fail=0
# man pages escape '-' as '\-'; compare without backslashes.
plain() { sed 's/\\//g' "$1"; }

missing() { echo "docs-check: $1 is missing from $2" >&2; fail=1; }

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
done <<<"$lines"

for d in ntm-as ntm-dc ntm-rs ntm-cs; do
	page=$(ls "$top/man/$d".[0-9] 2>/dev/null | head -n 1)
	[ -n "$page" ] || { missing "the man page" "man/$d.8"; continue; }
	text=$(plain "$page")
	for o in $("$bin/$d" --help 2>&1 | grep -oE -- '--[a-z][a-z0-9-]+' | sort -u); do
		grep -q -- "$o" <<<"$text" || missing "option '$d $o'" "$page"
	done
done
[ -f "$top/man/ntm.conf.5" ] || missing "the config man page" man/ntm.conf.5
[ "$fail" -eq 0 ] && echo "docs-check: help, man pages and completions agree"
exit $fail
