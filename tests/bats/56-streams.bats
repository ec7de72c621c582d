#!/usr/bin/env bats
# Byte streams with --exec on loopback: the client moves both directions
# without blocking, so a command that echoes everything (cat) or never reads
# its input neither deadlocks nor loses its output. alice at dc1 opens to bob
# at dc2, whose `tunnel listen --exec` runs the command.

load helpers

setup_file() {
	platform_up
	platform_resolver_start "$(P)"
	alice_bob_up
	head -c $((8 * 1024 * 1024)) /dev/urandom > "$BATS_FILE_TMPDIR/big"
}

teardown_file() {
	local f
	for f in "$BATS_FILE_TMPDIR"/*.pid; do
		[ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null
	done
	platform_down
}

A() { echo "$BATS_FILE_TMPDIR/alice"; }
B() { echo "$BATS_FILE_TMPDIR/bob"; }
fqdn_of() { jq -r .fqdn "$1/session.json"; }
udp_of() { echo "127.0.0.1:$(cat "$(P)/$1.udpport")"; }
sha() { sha256sum < "$1" | cut -d' ' -f1; }

# agent_up PROFILE DC: start the profile's agent, record its pid.
agent_up() {
	local out pid
	out=$(timeout 30 ntm -c "$1" up --dc-udp "$(udp_of "$2")" --timeout 15) || {
		echo "agent_up $1: $out" >&3; return 1; }
	pid=$(sed -n 's/^agent: running (pid \([0-9]*\),.*/\1/p' <<<"$out")
	[ -n "$pid" ] && echo "$pid" > "$BATS_FILE_TMPDIR/$(basename "$1").pid"
}

# exec_stream PORT CMD IN: bob listens on PORT running CMD, alice sends the
# file IN; each side bounded by timeout. Sets $got (alice's output file),
# $orc and $lrc (the exit codes of open and listen).
exec_stream() {
	local port=$1 cmd=$2 in=$3 d=$BATS_TEST_TMPDIR i lpid
	timeout 60 ntm -c "$(B)" tunnel listen "$port" --exec "$cmd" </dev/null \
	    >"$d/l.out" 2>"$d/l.err" &
	lpid=$!
	for ((i = 0; i < 50; i++)); do
		ntm -c "$(B)" tunnel list --json | jq -e ".streams[]? | select(.port == $port)" \
		    >/dev/null 2>&1 && break
		sleep 0.1
	done
	orc=0
	timeout 60 ntm -c "$(A)" tunnel open "$(fqdn_of "$(B)")" "$port" --timeout 20 \
	    <"$in" >"$d/o.out" 2>"$d/o.err" || orc=$?
	lrc=0
	wait "$lpid" || lrc=$?
	got=$d/o.out
	echo "open: exit $orc $(cat "$d/o.err"); listen: exit $lrc $(cat "$d/l.err")" >&2
}

@test "--exec cat echoes 8 MiB both ways intact" {
	exec_stream 7201 cat "$BATS_FILE_TMPDIR/big"
	assert_equal "$orc" 0
	assert_equal "$lrc" 0
	assert_equal "$(sha "$got")" "$(sha "$BATS_FILE_TMPDIR/big")"
}

@test "--exec of a command that never reads still delivers its output and ends" {
	exec_stream 7202 'sleep 1; echo hi' "$BATS_FILE_TMPDIR/big"
	assert_equal "$orc" 0
	assert_equal "$lrc" 0
	assert_equal "$(cat "$got")" hi
}

@test "--exec of a command that exits at once: its status, and the stream ends" {
	exec_stream 7203 'echo bye; exit 3' "$BATS_FILE_TMPDIR/big"
	assert_equal "$orc" 0
	assert_equal "$lrc" 3
	assert_equal "$(cat "$got")" bye
}

@test "a listener on stdout: the last bytes and the end arrive together, exit 0 (10 times)" {
	# The agent closes right after the peer's last frames: they are still
	# written out, and the stream counts as finished, not broken.
	local i j d=$BATS_TEST_TMPDIR lpid lrc orc
	for ((i = 0; i < 10; i++)); do
		timeout 60 ntm -c "$(B)" tunnel listen 7204 </dev/null >"$d/l.out" 2>"$d/l.err" &
		lpid=$!
		for ((j = 0; j < 50; j++)); do
			ntm -c "$(B)" tunnel list --json |
			    jq -e '.streams[]? | select(.port == 7204)' >/dev/null 2>&1 && break
			sleep 0.1
		done
		orc=0
		printf 'hello-%d\n' "$i" | timeout 60 ntm -c "$(A)" tunnel open \
		    "$(fqdn_of "$(B)")" 7204 --timeout 20 >/dev/null 2>"$d/o.err" || orc=$?
		lrc=0
		wait "$lpid" || lrc=$?
		assert_equal "round $i: open $orc listen $lrc $(cat "$d/l.err")" "round $i: open 0 listen 0 "
		assert_equal "$(cat "$d/l.out")" "hello-$i"
	done
}
