#!/usr/bin/env bats
# The agent outlives anything its clients do: a listener interrupted before
# any connection (Ctrl-C, SIGTERM), clients killed with -9 mid-transfer
# (streams, UDP, forwards, SOCKS5); after each, the same agent process still
# carries a tunnel. And what a user expects of it across its own life: a
# port listened on again at once, a log file, forwards and SOCKS5 brought
# back at `ntm up`, --json on up and down.
#
#   srv: AS, DC1, DC2, RS, CS, dnsmasq
#     |
#   ==+=========== switch: 198.18.0.0/15 ===========
#     |                      |
#   g1 (global)            g2 (global)
#   198.18.1.10            198.18.1.11
#   alice@dc1              bob@dc2

load ../bats/helpers
load lib

setup_file() {
	require_root
	topo_up "$BATS_FILE_TMPDIR/t"
	servers_up
	host_global g1 198.18.1.10
	host_global g2 198.18.1.11
	client_up g1 alice alice dc1
	client_up g2 bob bob dc2
}

teardown_file() { topo_down "$BATS_FILE_TMPDIR/t"; }

setup() {
	TOPO_DIR=$BATS_FILE_TMPDIR/t
	P=$(cat "$TOPO_DIR/prefix")
	ALICE=$(fqdn_of alice) BOB=$(fqdn_of bob)
	# an agent a previous test lost is started again, so each test stands alone
	agent_registered g1 "$TOPO_DIR/alice" || client_up g1 alice alice dc1
	agent_registered g2 "$TOPO_DIR/bob" || client_up g2 bob bob dc2
}

agent_pid() { ntmc "$1" "$2" status --json | jq -r .agent.pid; }

# listening NS PROFILE PORT: a `tunnel listen PORT` of PROFILE waits.
listening() {
	ntmc "$1" "$2" tunnel list --json |
	    jq -e --argjson p "$3" '.streams[] | select(.state == "listening" and .port == $p)'
}

# client NS PROFILE ARGS...: an ntm client in the background whose SIGINT and
# SIGTERM act as on a terminal (a non-interactive shell's background jobs
# ignore SIGINT); $! is the client's own pid (ip netns exec and env exec).
client() {
	local ns=$1 prof=$TOPO_DIR/$2
	shift 2
	ip netns exec "$P$ns" env --default-signal=INT,TERM "$NTM_BIN/ntm" -c "$prof" "$@" &
}

# ctl_conns NS PROFILE: control connections the agent holds now.
ctl_conns() {
	n "$1" ss -xHn state connected | awk -v s="$TOPO_DIR/$2/agent.sock" '$5 == s' | wc -l
}
ctl_more() { [ "$(ctl_conns "$1" "$2")" -gt "$3" ]; }
ctl_atmost() { [ "$(ctl_conns "$1" "$2")" -le "$3" ]; }

# serves NS PROFILE PID PEER_NS PEER_PROFILE: the agent of PROFILE is still
# process PID, answers a ping over its tunnel, and carries a stream from
# the peer to a listener of its own.
serves() {
	local ns=$1 prof=$2 pid=$3 pns=$4 pprof=$5 me port=7300 lis
	kill -0 "$pid"
	assert_equal "$(agent_pid "$ns" "$prof")" "$pid"
	me=$(fqdn_of "$prof")
	run ntmc "$pns" "$pprof" tunnel ping -c 1 --timeout 10 "$me"
	assert_success
	ntmc "$ns" "$prof" tunnel listen "$port" --exec 'echo still-serving' > /dev/null 2>&1 &
	lis=$!
	wait_for 10 listening "$ns" "$prof" "$port"
	run ntmc "$pns" "$pprof" tunnel open "$me" "$port" < /dev/null
	assert_success
	assert_output still-serving
	wait "$lis"
}

# interrupt_listener SIGNAL [--udp]: a listener that never saw a connection
# is interrupted; the agent goes on.
interrupt_listener() {
	local sig=$1 udp=${2:-} pid cli before rc
	pid=$(agent_pid g1 alice)
	before=$(ctl_conns g1 alice)
	if [ -n "$udp" ]; then
		client g1 alice tunnel listen --udp 7200 < /dev/null > /dev/null
	else
		client g1 alice tunnel listen 7200 < /dev/null > /dev/null
	fi
	cli=$!
	if [ -n "$udp" ]; then
		wait_for 10 ctl_more g1 alice "$before"
	else
		wait_for 10 listening g1 alice 7200
	fi
	kill "-$sig" "$cli"
	rc=0
	wait "$cli" || rc=$?
	assert_equal "$rc" $((128 + $(kill -l "$sig")))
	# the agent noticed the client leaving (no listener is left) ...
	wait_for 10 bash -c "! ip netns exec '${P}g1' '$NTM_BIN/ntm' -c '$TOPO_DIR/alice' \
	    tunnel list --json | jq -e '.streams[] | select(.port == 7200)'"
	wait_for 10 ctl_atmost g1 alice "$before"
	# ... and lives on
	serves g1 alice "$pid" g2 bob
}

@test "a TCP listener interrupted by SIGINT before any connection: the agent serves on" {
	interrupt_listener INT
}

@test "a TCP listener interrupted by SIGTERM before any connection: the agent serves on" {
	interrupt_listener TERM
}

@test "a UDP listener interrupted by SIGINT before any datagram: the agent serves on" {
	interrupt_listener INT --udp
}

@test "a UDP listener interrupted by SIGTERM before any datagram: the agent serves on" {
	interrupt_listener TERM --udp
}

@test "the agent stops cleanly (exit 0) while a TCP listener waits" {
	local apid cli rc=0
	ntmc g1 alice down
	bg g1 agent-alice-fg "$NTM_BIN/ntm" -c "$TOPO_DIR/alice" -v up -d > "$TOPO_DIR/fg.pid"
	apid=$(cat "$TOPO_DIR/fg.pid")
	wait_for 15 agent_registered g1 "$TOPO_DIR/alice"
	client g1 alice tunnel listen 7201 < /dev/null > /dev/null 2>&1
	cli=$!
	wait_for 10 listening g1 alice 7201
	run ntmc g1 alice down
	assert_success
	wait "$apid" || rc=$?
	assert_equal "$rc" 0
	wait "$cli" || true
}

# stream_bytes NS PROFILE PORT: over 1 MB came back on the stream on PORT.
stream_bytes() {
	ntmc "$1" "$2" tunnel list --json |
	    jq -e --argjson p "$3" '[.streams[] | select(.port == $p) | .bytes_in] | add > 1000000'
}

@test "kill -9 of a tunnel open mid-stream (both ways busy): both agents serve on" {
	local apid bpid lis cli
	apid=$(agent_pid g1 alice) bpid=$(agent_pid g2 bob)
	ntmc g2 bob tunnel listen 7210 \
	    --exec 'cat /dev/zero & cat > /dev/null' > /dev/null 2>&1 &
	lis=$!
	wait_for 10 listening g2 bob 7210
	ip netns exec "${P}g1" "$NTM_BIN/ntm" -c "$TOPO_DIR/alice" tunnel open "$BOB" 7210 \
	    < /dev/zero > /dev/null 2>&1 &
	cli=$!
	wait_for 30 stream_bytes g1 alice 7210
	kill -9 "$cli"
	wait "$cli" || true
	# bob's listener hears the reset
	wait_for 20 bash -c "! kill -0 $lis 2>/dev/null"
	serves g1 alice "$apid" g2 bob
	serves g2 bob "$bpid" g1 alice
}

@test "kill -9 of a UDP listener and of its peer while datagrams flow: both agents serve on" {
	local apid bpid lis cli
	apid=$(agent_pid g1 alice) bpid=$(agent_pid g2 bob)
	# bob's listener answers every datagram (stdin: replies to the last sender)
	yes reply-from-bob | ip netns exec "${P}g2" "$NTM_BIN/ntm" -c "$TOPO_DIR/bob" \
	    tunnel listen --udp 7211 > "$TOPO_DIR/udp.7211" 2>&1 &
	lis=$!
	sleep 1
	yes datagram-from-alice | ip netns exec "${P}g1" "$NTM_BIN/ntm" -c "$TOPO_DIR/alice" \
	    tunnel open --udp 7211 "$BOB" > /dev/null 2>&1 &
	cli=$!
	wait_for 30 bash -c "[ \$(grep -c datagram-from-alice '$TOPO_DIR/udp.7211') -gt 1000 ]"
	kill -9 "$lis"
	wait "$lis" || true
	sleep 1		# alice's datagrams now reach no listener
	kill -9 "$cli"
	wait "$cli" || true
	serves g1 alice "$apid" g2 bob
	serves g2 bob "$bpid" g1 alice
}

@test "a listening port is reused at once after a connection it served" {
	local lis k
	for k in 1 2 3; do
		ntmc g1 alice tunnel listen 7000 --exec "echo served-$k" > /dev/null 2> "$TOPO_DIR/reuse.err" &
		lis=$!
		wait_for 10 listening g1 alice 7000 || { cat "$TOPO_DIR/reuse.err"; false; }
		# bob ends its side only after alice's end: alice closes first
		# and her side of the connection waits in TIME-WAIT
		run ntmc g2 bob tunnel open "$ALICE" 7000 --exec "cat > '$TOPO_DIR/got.$k'"
		assert_success
		assert_equal "$(cat "$TOPO_DIR/got.$k")" "served-$k"
		wait "$lis"
	done
}

@test "a port really in use: the message says what holds it" {
	local lis id
	client g1 alice tunnel listen 7001 > /dev/null 2>&1 < /dev/null
	lis=$!
	wait_for 10 listening g1 alice 7001
	run ntmc g1 alice tunnel listen 7001
	assert_failure
	assert_output --partial "port_in_use"
	assert_output --partial "another 'ntm tunnel listen 7001'"
	run ntmc g1 alice tunnel forward -R 7001:127.0.0.1:9
	assert_failure
	assert_output --partial "another 'ntm tunnel listen 7001'"
	kill "$lis"
	wait "$lis" || true
	wait_for 10 bash -c "! ip netns exec '${P}g1' '$NTM_BIN/ntm' -c '$TOPO_DIR/alice' \
	    tunnel list --json | jq -e '.streams[] | select(.port == 7001)'"
	run ntmc g1 alice tunnel forward -R 7001:127.0.0.1:9
	assert_success
	id=$(ntmc g1 alice tunnel forward --json | jq -r '.forwards[] | select(.spec == "7001:127.0.0.1:9") | .id')
	run ntmc g1 alice tunnel listen 7001
	assert_failure
	assert_output --partial "forward $id (-R 7001:127.0.0.1:9)"
	assert_output --partial "--remove $id"
	ntmc g1 alice tunnel forward --remove "$id"
}

@test "the agent logs to STATE_DIR/agent.log by default (mode 0600)" {
	local pid
	pid=$(agent_pid g1 alice)
	assert_equal "$(ntmc g1 alice status --json | jq -r .agent.log)" "$TOPO_DIR/alice/agent.log"
	assert_equal "$(stat -c %a "$TOPO_DIR/alice/agent.log")" 600
	grep -q "ntm\[$pid\]: info: agent: pid $pid, UDP port" "$TOPO_DIR/alice/agent.log"
}

@test "a detached agent with --log FILE: its lines there, the file rotated past 1 MiB" {
	local pid
	ntmc g1 alice down
	# a full log from before: the first line of the new agent rotates it
	head -c $((1024 * 1024 - 10)) /dev/zero | tr '\0' x > "$TOPO_DIR/alice/mine.log"
	cd "$TOPO_DIR/alice"
	run ntmc g1 alice up --log mine.log --timeout 15
	cd - > /dev/null
	assert_success
	assert_output --partial "log $TOPO_DIR/alice/mine.log)"
	pid=$(agent_pid g1 alice)
	assert_equal "$(ntmc g1 alice status --json | jq -r .agent.log)" "$TOPO_DIR/alice/mine.log"
	assert_equal "$(stat -c %s "$TOPO_DIR/alice/mine.log.1")" $((1024 * 1024 - 10))
	grep -q "ntm\[$pid\]: info: agent: pid $pid" "$TOPO_DIR/alice/mine.log"
	[ "$(stat -c %s "$TOPO_DIR/alice/mine.log")" -lt 100000 ]
	# the detached agent logs to the file to its end
	run ntmc g1 alice down
	assert_success
	grep -q "info: SIGTERM: shutting down\|info: stop requested" "$TOPO_DIR/alice/mine.log"
}

@test "--log: a file that cannot be written is refused before the agent starts (exit 2)" {
	ntmc g1 alice down
	run ntmc g1 alice up --log /nonexistent/dir/agent.log
	assert_failure 2
	assert_output --partial "/nonexistent/dir/agent.log"
}

fwd_specs() { ntmc "$1" "$2" tunnel forward --json | jq -r '[.forwards[] | "-" + .dir + " " + .spec] | sort | join(",")'; }

@test "forwards and the SOCKS5 address come back at 'ntm up' after the agent restarts" {
	local id
	mkdir -p "$TOPO_DIR/www"
	echo "PAGE-$$" > "$TOPO_DIR/www/index.html"
	bg g1 http python3 -m http.server --bind 127.0.0.1 --directory "$TOPO_DIR/www" 8088 > /dev/null
	wait_for 10 n g1 bash -c 'exec 3<>/dev/tcp/127.0.0.1/8088'
	ntmc g2 bob down
	run ntmc g2 bob up --socks5 127.0.0.1:1080
	assert_success
	ntmc g1 alice tunnel forward -R 8300:127.0.0.1:8088
	ntmc g2 bob tunnel forward -L 9300:"$ALICE":8300
	ntmc g2 bob tunnel forward -L 9301:"$ALICE":8300
	id=$(ntmc g2 bob tunnel forward --json | jq -r '.forwards[] | select(.spec | startswith("127.0.0.1:9301:")) | .id')
	ntmc g2 bob tunnel forward --remove "$id"
	assert_equal "$(stat -c %a "$TOPO_DIR/bob/agent.json")" 600
	assert_equal "$(jq -r .socks5 "$TOPO_DIR/bob/agent.json")" 127.0.0.1:1080
	assert_equal "$(jq '.forwards | length' "$TOPO_DIR/bob/agent.json")" 1
	run n g2 curl -sS -m 20 http://127.0.0.1:9300/index.html
	assert_output "PAGE-$$"

	ntmc g1 alice down
	ntmc g2 bob down
	run ntmc g1 alice up
	assert_success
	run ntmc g2 bob up
	assert_success
	assert_line "socks5: 127.0.0.1:1080"
	assert_line "forward 1: -L 127.0.0.1:9300:$ALICE:8300"
	assert_equal "$(fwd_specs g1 alice)" "-R 8300:127.0.0.1:8088"
	assert_equal "$(fwd_specs g2 bob)" "-L 127.0.0.1:9300:$ALICE:8300"
	assert_equal "$(ntmc g2 bob status --json | jq -r .agent.socks5.listen)" 127.0.0.1:1080
	run n g2 curl -sS -m 20 http://127.0.0.1:9300/index.html
	assert_success
	assert_output "PAGE-$$"
	run n g2 curl -sS -m 20 --socks5-hostname 127.0.0.1:1080 "http://$ALICE:8300/index.html"
	assert_success
	assert_output "PAGE-$$"

	# removed and switched off: not brought back
	id=$(ntmc g2 bob tunnel forward --json | jq -r '.forwards[0].id')
	ntmc g2 bob tunnel forward --remove "$id"
	ntmc g2 bob down
	run ntmc g2 bob up --socks5 off
	assert_success
	assert_equal "$(fwd_specs g2 bob)" ""
	assert_equal "$(ntmc g2 bob status --json | jq -r .agent.socks5)" null
	assert_equal "$(jq -c . "$TOPO_DIR/bob/agent.json")" '{"version":1,"socks5":null,"forwards":[]}'
	ntmc g2 bob down
	ntmc g1 alice down
	rm -f "$TOPO_DIR/alice/agent.json"
}

@test "up --json and down --json print one JSON object each" {
	local pid
	ntmc g2 bob down
	run ntmc g2 bob up --json
	assert_success
	assert_equal "${#lines[@]}" 1
	pid=$(agent_pid g2 bob)
	assert_equal "$(jq -r .pid <<<"$output")" "$pid"
	assert_equal "$(jq -r .fqdn <<<"$output")" "$BOB"
	assert_equal "$(jq -r .registered <<<"$output")" true
	assert_equal "$(jq -r .log <<<"$output")" "$TOPO_DIR/bob/agent.log"
	assert_equal "$(jq -r .control <<<"$output")" "$TOPO_DIR/bob/agent.sock"
	assert_equal "$(jq -c '[.socks5, .forwards]' <<<"$output")" '[null,[]]'
	jq -e '(.vip4 | startswith("100.96.2.")) and (.port > 0)' <<<"$output"
	run ntmc g2 bob down --json
	assert_success
	assert_output "{\"stopped\":true,\"pid\":$pid}"
	run ntmc g2 bob down --json
	assert_success
	assert_output '{"stopped":false,"pid":null}'
	run ntmc g2 bob up -d --json
	assert_failure 2
	assert_output --partial "--json with -d"
}

@test "kill -9 of programs mid-download through a -L forward and SOCKS5: both agents serve on" {
	local apid bpid id1 id2 c
	mkdir -p "$TOPO_DIR/www"
	head -c $((64 * 1024 * 1024)) /dev/zero > "$TOPO_DIR/www/big"
	bg g1 http2 python3 -m http.server --bind 127.0.0.1 --directory "$TOPO_DIR/www" 8089 > /dev/null
	wait_for 10 n g1 bash -c 'exec 3<>/dev/tcp/127.0.0.1/8089'
	ntmc g2 bob down
	ntmc g2 bob up --socks5 127.0.0.1:1081
	apid=$(agent_pid g1 alice) bpid=$(agent_pid g2 bob)
	ntmc g1 alice tunnel forward -R 8301:127.0.0.1:8089
	ntmc g2 bob tunnel forward -L 9302:"$ALICE":8301
	# slow readers, killed mid-transfer: the agents' writes toward them fail
	for c in "http://127.0.0.1:9302/big" "--socks5-hostname 127.0.0.1:1081 http://$ALICE:8301/big"; do
		# shellcheck disable=SC2086
		ip netns exec "${P}g2" curl -sS -m 60 --limit-rate 2M -o /dev/null $c &
		local cpid=$!
		wait_for 20 bash -c "ip netns exec '${P}g2' '$NTM_BIN/ntm' -c '$TOPO_DIR/bob' \
		    tunnel list --json | jq -e '[.streams[] | select(.state == \"open\") | .bytes_in] | add > 1000000'"
		kill -9 "$cpid"
		wait "$cpid" || true
		wait_for 20 bash -c "! ip netns exec '${P}g2' '$NTM_BIN/ntm' -c '$TOPO_DIR/bob' \
		    tunnel list --json | jq -e '.streams[] | select(.state == \"open\")'"
	done
	serves g1 alice "$apid" g2 bob
	serves g2 bob "$bpid" g1 alice
	id1=$(ntmc g1 alice tunnel forward --json | jq -r '.forwards[] | select(.spec == "8301:127.0.0.1:8089") | .id')
	id2=$(ntmc g2 bob tunnel forward --json | jq -r '.forwards[] | select(.spec | startswith("127.0.0.1:9302:")) | .id')
	ntmc g1 alice tunnel forward --remove "$id1"
	ntmc g2 bob tunnel forward --remove "$id2"
	ntmc g2 bob down
	ntmc g2 bob up --socks5 off > /dev/null
	ntmc g2 bob down
}

@test "a listener's client that sends a frame before any connection gets an error; the agent serves on" {
	local pid
	pid=$(agent_pid g1 alice)
	run timeout 20 python3 - "$TOPO_DIR/alice/agent.sock" <<-'PY'
	import socket, sys
	s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
	s.connect(sys.argv[1])
	s.sendall(b'{"cmd":"listen","proto":"tcp","port":7400}\n')
	f = s.makefile("rb")
	print(f.readline().decode().strip())
	s.sendall(b"D\x00\x01x")
	print(f.readline().decode().strip())
	PY
	assert_success
	assert_line --index 0 --partial '"event":"listening"'
	assert_line --index 1 --partial '"code":"bad_request"'
	serves g1 alice "$pid" g2 bob
	# the port is free again
	run ntmc g1 alice tunnel forward -R 7400:127.0.0.1:9
	assert_success
	ntmc g1 alice tunnel forward --remove "$(ntmc g1 alice tunnel forward --json | jq -r '.forwards[] | select(.spec == "7400:127.0.0.1:9") | .id')"
}

@test "control requests: each verb takes only its own fields; an unknown verb is named" {
	local pid
	pid=$(agent_pid g1 alice)
	run timeout 20 python3 - "$TOPO_DIR/alice/agent.sock" <<-'PY'
	import socket, sys
	for req in (b'{"cmd":"status","port":1}', b'{"cmd":"listen","port":7401,"peer":"bob.dc2.ntm.test"}',
	            b'{"cmd":"close","count":2}', b'{"cmd":"frob"}', b'{"cmd":"status"}'):
	    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
	    s.connect(sys.argv[1])
	    s.sendall(req + b"\n")
	    print(s.makefile("rb").readline().decode().strip())
	    s.close()
	PY
	assert_success
	assert_line --index 0 --partial "port: does not apply to 'status'"
	assert_line --index 1 --partial "peer: does not apply to 'listen'"
	assert_line --index 2 --partial "count: does not apply to 'close'"
	assert_line --index 3 --partial "unknown cmd 'frob'"
	assert_line --index 4 --partial '"ok":true'
	serves g1 alice "$pid" g2 bob
}
