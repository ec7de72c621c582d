#!/usr/bin/env bats
# The shell completions (completions/): each tunnel and keys subcommand
# offers exactly the options `ntm help --commands` lists for it, and where a
# PEER is expected the peers come from the agent (`tunnel list --json`) and
# the stored keys (`keys list --json`) of the profile named by -c on the
# line. bash and fish are driven for real; alice at dc1 has an agent with a
# tunnel to bob (dc2) and a shared key with carol (dc1).

load helpers

setup_file() {
	platform_up_cs
	platform_resolver_start "$(P)"
	alice_bob_up
	add_user carol 'carol-pw-1'
	login "$BATS_FILE_TMPDIR/carol" carol carol-pw-1 "$(dc1_url)" >/dev/null
	timeout 30 ntm -c "$(A)" tunnel ping -c 1 --timeout 20 bob.dc2.ntm.test >/dev/null
	timeout 30 ntm -c "$(A)" keys exchange carol.dc1.ntm.test >/dev/null
}

teardown_file() {
	local f
	for f in "$BATS_FILE_TMPDIR"/*.pid; do
		[ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null
	done
	platform_down
}

setup() {
	# The default profile (no -c) is an empty one: no agent, no keys.
	export HOME=$BATS_TEST_TMPDIR/home XDG_RUNTIME_DIR=$BATS_TEST_TMPDIR/run
	unset XDG_CONFIG_HOME XDG_STATE_HOME
	mkdir -p "$HOME" "$XDG_RUNTIME_DIR"
}

A() { echo "$BATS_FILE_TMPDIR/alice"; }
B() { echo "$BATS_FILE_TMPDIR/bob"; }
udp_of() { echo "127.0.0.1:$(cat "$(P)/$1.udpport")"; }

agent_up() {
	local out pid
	out=$(timeout 30 ntm -c "$1" up --dc-udp "$(udp_of "$2")" --timeout 15) || {
		echo "agent_up $1: $out" >&3; return 1; }
	pid=$(sed -n 's/^agent: running (pid \([0-9]*\),.*/\1/p' <<<"$out")
	[ -n "$pid" ] && echo "$pid" > "$BATS_FILE_TMPDIR/$(basename "$1").pid"
}

# bash_c WORD...: what bash's completion offers for the last word (may be
# ''), sorted, one line.
bash_c() {
	timeout 30 bash -c 'source "$0"; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _ntm
	    printf "%s\n" "${COMPREPLY[@]}"' "$TOP/completions/ntm.bash" "$@" |
	    grep -v '^$' | sort -u | tr '\n' ' '
}
# fish_c LINE: what fish offers at the end of LINE, as bash_c.
fish_c() {
	timeout 30 fish -c "source '$TOP/completions/ntm.fish'; complete -C '$1'" |
	    cut -f1 | grep -v '^$' | sort -u | tr '\n' ' '
}
# The long options of a line of `ntm help --commands`, as bash_c.
table() {
	ntm help --commands | awk -F'\t' -v c="$1" '$1 == c { print $2 }' | tr ' ' '\n' |
	    grep -v '^$' | sort -u | tr '\n' ' '
}
# long OPTS: only the long options of a sorted line.
long() { tr ' ' '\n' <<<"$1" | grep -- '^--' | tr '\n' ' '; }

@test "bash: each tunnel and keys subcommand offers exactly its own options" {
	local sub
	for sub in "tunnel ping" "tunnel open" "tunnel listen" "tunnel list" "tunnel close" \
	    "tunnel forward" "keys exchange" "keys list" "keys show" "keys rotate" "keys forget"; do
		# shellcheck disable=SC2086
		assert_equal "$sub: $(long "$(bash_c ntm $sub --)")" "$sub: $(table "$sub")"
	done
	# options given before the subcommand do not hide it
	assert_equal "$(long "$(bash_c ntm tunnel -c 3 list --)")" "--help --json "
	assert_equal "$(bash_c ntm tunnel ping -)" "--count --help --interval --ipv6 --json --timeout -6 -c -h -i "
}

@test "bash: a PEER completes from the agent's tunnels and the stored keys of -c DIR" {
	local peers="bob.dc2.ntm.test carol.dc1.ntm.test "
	assert_equal "$(bash_c ntm -c "$(A)" tunnel ping '')" "$peers"
	assert_equal "$(bash_c ntm -c "$(A)" tunnel open '')" "$peers"
	assert_equal "$(bash_c ntm -c "$(A)" tunnel close b)" "bob.dc2.ntm.test "
	assert_equal "$(bash_c ntm -c "$(A)" keys show '')" "$peers"
	assert_equal "$(bash_c ntm -c "$(A)" keys forget c)" "carol.dc1.ntm.test "
	assert_equal "$(bash_c ntm -c "$(A)" send '')" "$peers"
	assert_equal "$(bash_c ntm -c "$(A)" fetch --from '')" "$peers"
	# a port is no peer; after the peer comes the port, not another peer
	assert_equal "$(bash_c ntm -c "$(A)" tunnel listen '')" ""
	assert_equal "$(bash_c ntm -c "$(A)" tunnel open bob.dc2.ntm.test '')" ""
	# without -c: the default profile, which knows nobody
	assert_equal "$(bash_c ntm tunnel ping '')" ""
}

@test "fish: each subcommand offers exactly its own options; peers from -c DIR" {
	local sub peers="bob.dc2.ntm.test carol.dc1.ntm.test "
	for sub in "tunnel ping" "tunnel open" "tunnel listen" "tunnel list" "tunnel close" \
	    "tunnel forward" "keys exchange" "keys list" "keys show" "keys rotate" "keys forget"; do
		assert_equal "$sub: $(fish_c "ntm $sub --")" "$sub: $(table "$sub")"
	done
	assert_equal "$(fish_c "ntm tunnel -c 3 list --")" "--help --json "
	assert_equal "$(fish_c "ntm -c $(A) tunnel ping ")" "$peers"
	assert_equal "$(fish_c "ntm -c $(A) keys exchange ")" "$peers"
	assert_equal "$(fish_c "ntm -c $(A) fetch --from ")" "$peers"
	assert_equal "$(fish_c "ntm -c $(A) tunnel listen ")" ""
	assert_equal "$(fish_c "ntm tunnel ping ")" ""
}
