#!/usr/bin/env bats
# ntm tunnel ping as ping(8) users expect it: Ctrl-C ends it with the
# summary (exit 0 when a reply came), and a peer given by its IPv6 vIP is
# pinged over IPv6. alice at dc1 pings bob at dc2, both with agents.

load helpers

setup_file() {
	platform_up
	platform_resolver_start "$(P)"
	alice_bob_up
}

teardown_file() {
	agents_down
	platform_down
}

A() { echo "$BATS_FILE_TMPDIR/alice"; }
B() { echo "$BATS_FILE_TMPDIR/bob"; }
bob() { jq -r ".$1" "$(B)/session.json"; }


# ping_then_int OUT ERR ARGS...: start a long ping (at most 50 requests),
# send SIGINT once two replies are in (bounded wait), print its exit code.
ping_then_int() {
	local out=$1 err=$2 pid i rc n
	shift 2
	# A background job of a script starts with SIGINT ignored; a terminal's
	# ping does not, so give it the default back first.
	python3 -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execvp(sys.argv[1], sys.argv[1:])' \
	    ntm -c "$(A)" tunnel ping -c 50 -i 0.2 --timeout 20 "$@" >"$out" 2>"$err" &
	pid=$!
	for ((i = 0; i < 200; i++)); do
		n=$(grep -c 'bytes from' "$out" 2>/dev/null) || n=0
		[ "$n" -ge 2 ] && break
		# --json prints at the end only: wait for the tunnel and two intervals
		grep -q -- --json <<<"$*" && [ "$i" -ge 15 ] && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -INT "$pid"
	wait "$pid" && rc=0 || rc=$?
	echo "$rc"
}

@test "tunnel ping: Ctrl-C prints the summary and exits 0 after a reply" {
	local d=$BATS_TEST_TMPDIR rc
	# the tunnel first, so the interrupted ping has replies to count
	run_t ntm -c "$(A)" tunnel ping -c 1 --timeout 20 "$(bob fqdn)"
	assert_success
	rc=$(ping_then_int "$d/out" "$d/err" "$(bob fqdn)")
	run cat "$d/out"
	assert_equal "$rc" 0
	assert_output --partial "--- $(bob fqdn) tunnel ping ---"
	assert_output --regexp '[0-9]+ sent, [0-9]+ received, [0-9]+% loss, rtt min/avg/max = '
	# it stopped early: fewer than the 50 asked for
	local sent
	sent=$(sed -n 's/^\([0-9]*\) sent.*/\1/p' "$d/out")
	[ "$sent" -ge 2 ] && [ "$sent" -lt 50 ]
}

@test "tunnel ping --json: Ctrl-C still prints the JSON result, interrupted" {
	local d=$BATS_TEST_TMPDIR rc
	rc=$(ping_then_int "$d/out" "$d/err" --json "$(bob fqdn)")
	assert_equal "$rc" 0
	run jq -r '[.interrupted, (.received >= 1), (.sent < 50), (.sent >= .received)] | @tsv' \
	    "$d/out"
	assert_success
	assert_output "$(printf 'true\ttrue\ttrue\ttrue')"
}

@test "tunnel ping: a peer's IPv6 vIP, or -6, pings over IPv6" {
	run_t ntm -c "$(A)" tunnel ping -c 1 --timeout 20 "$(bob fqdn)"
	assert_success
	# by the IPv6 vIP, without -6
	run_t ntm -c "$(A)" tunnel ping -c 1 --timeout 20 "$(bob vip6)"
	assert_success
	assert_output --partial "($(bob vip6))"
	assert_output --partial "bytes from $(bob vip6):"
	run_t ntm -c "$(A)" tunnel ping -c 1 --timeout 20 --json "$(bob vip6)"
	assert_success
	assert_equal "$(jf "$output" vip)" "$(bob vip6)"
	# by name with -6
	run_t ntm -c "$(A)" tunnel ping -6 -c 1 --timeout 20 --json "$(bob fqdn)"
	assert_success
	assert_equal "$(jf "$output" vip)" "$(bob vip6)"
	# by name or IPv4 vIP, without -6: IPv4
	run_t ntm -c "$(A)" tunnel ping -c 1 --timeout 20 --json "$(bob vip4)"
	assert_success
	assert_equal "$(jf "$output" vip)" "$(bob vip4)"
}

@test "a profile named relatively (-c alice): the detached agent, working from /, still reads its files; its paths are shown whole" {
	cd "$BATS_FILE_TMPDIR"
	run_t ntm -c alice down
	assert_success
	run_t ntm -c alice up --dc-udp "$(udp_of dc1)" --timeout 15
	sed -n 's/^agent: running (pid \([0-9]*\),.*/\1/p' <<<"$output" > alice.agentpid
	assert_success
	assert_output --partial "control $BATS_FILE_TMPDIR/alice/agent.sock, log $BATS_FILE_TMPDIR/alice/agent.log)"
	# a new tunnel: bob's device certificate is checked with the AS key
	# in the profile, read now, long after `ntm up` returned
	run_t ntm -c alice tunnel ping -c 1 --timeout 20 "$(bob fqdn)"
	assert_success
}

@test "the agent keeps none of the descriptors it was started with beyond 0-2 (a script's pipe ends when the script's own processes end)" {
	local pid
	run_t ntm -c "$(A)" down
	assert_success
	run_t ntm -c "$(A)" up --dc-udp "$(udp_of dc1)" --timeout 15 9>"$BATS_TEST_TMPDIR/held"
	pid=$(sed -n 's/^agent: running (pid \([0-9]*\),.*/\1/p' <<<"$output")
	echo "$pid" > "$BATS_FILE_TMPDIR/alice.agentpid"
	assert_success
	[ -n "$pid" ]
	run ls -l "/proc/$pid/fd"
	assert_success
	refute_output --partial "$BATS_TEST_TMPDIR/held"
	run_t ntm -c "$(A)" tunnel ping -c 1 --timeout 20 "$(bob fqdn)"
	assert_success
}
