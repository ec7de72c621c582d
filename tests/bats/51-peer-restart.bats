#!/usr/bin/env bats
# A command already running on a tunnel outlives a restart of the peer's
# agent: the restarted agent knows nothing of the old tunnel and drops what
# comes on it, so ours, having sent and heard nothing back, asks the DC for
# a new tunnel while the command runs, and its traffic resumes by itself.
# alice at dc1 pings bob at dc2, sends him datagrams that he echoes, or
# fetches a page through a -L forward to his -R forward; bob's agent is
# killed (-9) and started again in the middle.

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

teardown() {
	local p
	for p in ${PING_PID:-} ${OPEN_PID:-} ${ECHO_PIDS:-} ${HTTP_PID:-}; do
		kill "$p" 2>/dev/null
	done
	return 0
}

A() { echo "$BATS_FILE_TMPDIR/alice"; }
B() { echo "$BATS_FILE_TMPDIR/bob"; }
bob() { jq -r ".$1" "$(B)/session.json"; }

# replies FILE: the ping replies printed so far (0 before the file is made).
replies() {
	local c
	c=$(grep -c 'bytes from' "$1" 2>/dev/null)
	echo "${c:-0}"
}

# more_than FILE N: more than N replies so far.
more_than() { [ "$(replies "$1")" -gt "$2" ]; }

gone() { ! kill -0 "$1" 2>/dev/null; }

# remade: new tunnels alice's agent asked for lost ones so far.
remade() { ntm -c "$(A)" status --json | jq -r .agent.tunnels_remade; }

# restart_bob: bob's agent dies without a word (kill -9), and comes back.
restart_bob() {
	local bpid
	bpid=$(cat "$BATS_FILE_TMPDIR/bob.agentpid")
	kill -KILL "$bpid"
	wait_until 10 gone "$bpid"
	agent_up "$(B)" dc2
}

# lines FILE: lines in FILE so far (0 before it is made).
lines() {
	local c
	c=$(wc -l <"$1" 2>/dev/null)
	echo "${c:-0}"
}
more_lines() { [ "$(lines "$1")" -gt "$2" ]; }

# echo_bob PORT DIR: bob sends every datagram to PORT of his vIPs back to
# its sender (tunnel listen --udp, its output fed to its input).
echo_bob() {
	rm -f "$2/fifo"
	mkfifo "$2/fifo"
	ntm -c "$(B)" tunnel listen --udp "$1" <"$2/fifo" 2>>"$2/listen.err" |
	    tee -a "$2/bob.got" >"$2/fifo" &
	ECHO_PIDS="${ECHO_PIDS:-} $!"
}

tunnel_id() {
	ntm -c "$(A)" tunnel list --json |
	    jq -r --arg p "$(bob fqdn)" '.tunnels[] | select(.peer == $p) | .tunnel_id'
}

@test "a running tunnel ping gets replies again after the peer's agent restarts" {
	local out=$BATS_TEST_TMPDIR/ping.out n tid0 tid1 rc log remade
	# 240 requests, one every 0.5 s: the ping outlives every wait below
	# (SIGINT as on a terminal: a script's background jobs ignore it)
	env --default-signal=INT ntm -c "$(A)" tunnel ping -c 240 -i 0.5 --timeout 20 \
	    "$(bob fqdn)" >"$out" 2>"$BATS_TEST_TMPDIR/ping.err" &
	PING_PID=$!
	wait_until 30 more_than "$out" 1
	tid0=$(tunnel_id)
	[ -n "$tid0" ]

	# bob's agent dies without a word, and comes back
	remade=$(remade)
	restart_bob
	# (a reply in flight at the kill may have come in since)
	n=$(replies "$out")

	# the same ping hears bob again: at most 90 s (15 s unanswered, or 30 s
	# for the responder, then a tunnel request and a handshake)
	run wait_until 90 more_than "$out" "$n"
	assert_success
	kill -0 "$PING_PID"		# still the same command

	# a new tunnel (not the old one brought back), asked for by the agent
	tid1=$(tunnel_id)
	[ -n "$tid1" ] && [ "$tid1" != "$tid0" ]
	# asked for once: the new tunnel answered
	run_t ntm -c "$(A)" status --json
	assert_success
	assert_equal "$(jq -r .agent.tunnels_remade <<<"$output")" $((remade + 1))
	log=$(jq -r .agent.log <<<"$output")
	run grep -E "tunnel $(bob fqdn): nothing from the peer for [0-9]+ s since we sent; asking the DC for a new tunnel \(1 of 6\)" \
	    "$log"
	assert_success

	kill -INT "$PING_PID"
	wait "$PING_PID" && rc=0 || rc=$?
	PING_PID=
	assert_equal "$rc" 0
}

@test "a running tunnel open --udp gets its datagrams echoed again after the peer's agent restarts" {
	local d=$BATS_TEST_TMPDIR n i
	echo_bob 7201 "$d"
	# alice sends a numbered line every 0.5 s (at most 240) and prints what
	# comes back
	for ((i = 1; i <= 240; i++)); do
		echo "dgram-$i"
		sleep 0.5
	done | ntm -c "$(A)" tunnel open --udp 7201 --wait 1 "$(bob fqdn)" \
	    >"$d/alice.got" 2>"$d/open.err" &
	OPEN_PID=$!
	run wait_until 30 more_lines "$d/alice.got" 1
	assert_success

	restart_bob
	n=$(lines "$d/alice.got")
	echo_bob 7201 "$d"		# the old listener went with the old agent

	run wait_until 90 more_lines "$d/alice.got" "$n"
	assert_success
	kill -0 "$OPEN_PID"		# still the same command
	# what came back after the restart is what alice sent after it
	run tail -n 1 "$d/alice.got"
	assert_output --regexp '^dgram-[0-9]+$'
	[ "${output#dgram-}" -gt "$n" ]
}

# fetch URL OUT: one page, within 2 s.
fetch() { curl -sS -m 2 -o "$2" "$1" 2>/dev/null; }

# fetch_within N URL OUT: fetch, tried once a second at most N times.
fetch_within() {
	local i
	for ((i = 0; i < $1; i++)); do
		fetch "$2" "$3" && return 0
		sleep 1
	done
	return 1
}

@test "a -L forward to a peer's -R forward serves again after the peer's agent restarts" {
	local d=$BATS_TEST_TMPDIR hport lport remade
	hport=$(free_port) lport=$(free_port)
	mkdir "$d/www"
	echo "PAGE-FROM-BOB" >"$d/www/index.html"
	python3 -m http.server --bind 127.0.0.1 --directory "$d/www" "$hport" \
	    >/dev/null 2>&1 &
	HTTP_PID=$!
	run fetch_within 20 "http://127.0.0.1:$hport/index.html" "$d/direct"
	assert_success
	# bob's -R is kept in his agent.json and brought back at his next up
	run_t ntm -c "$(B)" tunnel forward -R "8181:127.0.0.1:$hport"
	assert_success
	run_t ntm -c "$(A)" tunnel forward -L "127.0.0.1:$lport:$(bob fqdn):8181"
	assert_success
	run fetch_within 30 "http://127.0.0.1:$lport/index.html" "$d/before"
	assert_success
	assert_equal "$(cat "$d/before")" PAGE-FROM-BOB

	remade=$(remade)
	restart_bob
	# the same forward: connections go on failing until the tunnel is
	# remade (at most 40 tries, 2 minutes), then the page comes again
	run fetch_within 40 "http://127.0.0.1:$lport/index.html" "$d/after"
	assert_success
	assert_equal "$(cat "$d/after")" PAGE-FROM-BOB
	[ "$(remade)" -gt "$remade" ]
}

@test "the same when the peer initiated the tunnel: this end, the responder, asks later" {
	local out=$BATS_TEST_TMPDIR/ping.out n role
	# a fresh tunnel that bob asks for: he initiates it
	ntm -c "$(A)" tunnel close "$(bob fqdn)" >/dev/null 2>&1 || true
	ntm -c "$(B)" tunnel close "$(jq -r .fqdn "$(A)/session.json")" >/dev/null 2>&1 || true
	run_t ntm -c "$(B)" tunnel ping -c 1 --timeout 20 "$(jq -r .fqdn "$(A)/session.json")"
	assert_success
	role=$(ntm -c "$(A)" tunnel list --json |
	    jq -r --arg p "$(bob fqdn)" '.tunnels[] | select(.peer == $p) | .role')
	assert_equal "$role" responder

	env --default-signal=INT ntm -c "$(A)" tunnel ping -c 240 -i 0.5 --timeout 20 \
	    "$(bob fqdn)" >"$out" 2>"$BATS_TEST_TMPDIR/ping.err" &
	PING_PID=$!
	wait_until 30 more_than "$out" 1
	restart_bob
	n=$(replies "$out")
	# 30 s unanswered for the responder, then a new tunnel: at most 90 s
	run wait_until 90 more_than "$out" "$n"
	assert_success
	kill -0 "$PING_PID"
	run grep -E "tunnel $(bob fqdn): nothing from the peer for 30 s since we sent; asking the DC for a new tunnel" \
	    "$(ntm -c "$(A)" status --json | jq -r .agent.log)"
	assert_success
}

# has_tunnel PROFILE PEER: PROFILE's agent holds a tunnel to PEER.
has_tunnel() {
	ntm -c "$1" tunnel list --json | jq -e --arg p "$2" '.tunnels[] | select(.peer == $p)' >/dev/null
}

@test "a tunnel closed at one end is closed at the other (CLOSE): the other end's next ping makes a new tunnel at once" {
	local alice
	alice=$(jq -r .fqdn "$(A)/session.json")
	run_t ntm -c "$(A)" tunnel ping -c 1 --timeout 20 "$(bob fqdn)"
	assert_success
	has_tunnel "$(A)" "$(bob fqdn)"
	has_tunnel "$(B)" "$alice"
	run ntm -c "$(B)" tunnel close "$alice"
	assert_success
	# alice's end goes too, told by bob's (before, it stayed, and her
	# next commands went into it until 30 s without an answer)
	run wait_until 5 bash -c "! ntm -c '$(A)' tunnel list --json | jq -e --arg p '$(bob fqdn)' '.tunnels[] | select(.peer == \$p)' >/dev/null"
	assert_success
	grep -q "tunnel $(bob fqdn): closed by the peer" "$(A)/agent.log"
	run_t ntm -c "$(A)" tunnel ping -c 1 --timeout 5 "$(bob fqdn)"
	assert_success
}
