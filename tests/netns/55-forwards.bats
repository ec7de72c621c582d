#!/usr/bin/env bats
# Port forwards and SOCKS5 for unmodified programs (curl, iperf3, a Python
# echo server), through a real NAT; and the agent's memory with 1000 idle
# TCP connections.
#
#   srv: AS, DC1, DC2, RS, CS, dnsmasq
#     |
#   ==+=========== switch: 198.18.0.0/15 ===========
#     |                      |
#   g1 (global)            nat1 (masq)
#   198.18.1.10              |
#   alice@dc1              a1 100.64.2.10
#   HTTP, iperf3 -s,       bob@dc2, SOCKS5 on 127.0.0.1:1080
#   echo server on
#   127.0.0.1, exposed
#   with -R

load ../bats/helpers
load lib

TOOLS=$BATS_TEST_DIRNAME/../tools

setup_file() {
	require_root
	topo_up "$BATS_FILE_TMPDIR/t"
	servers_up
	host_global g1 198.18.1.10
	nat_router nat1 198.18.2.1 100.64.2.1
	host_behind a1 nat1 100.64.2.10 100.64.2.1
	client_up g1 alice alice dc1
	client_up a1 bob bob dc2 --socks5 127.0.0.1:1080
	mkdir -p "$BATS_FILE_TMPDIR/t/www"
	echo "PAGE-FROM-ALICE-ntm" > "$BATS_FILE_TMPDIR/t/www/index.html"
	bg g1 http python3 -m http.server --bind 127.0.0.1 --directory "$BATS_FILE_TMPDIR/t/www" 8088
	bg g1 echo python3 "$TOOLS/echo-server.py" 7000
	bg g1 iperf3 iperf3 -s -B 127.0.0.1 -p 5201
	wait_for 10 n g1 bash -c 'exec 3<>/dev/tcp/127.0.0.1/8088'
}

teardown_file() { topo_down "$BATS_FILE_TMPDIR/t"; }

setup() {
	TOPO_DIR=$BATS_FILE_TMPDIR/t
	P=$(cat "$TOPO_DIR/prefix")
	ALICE=$(fqdn_of alice)
}

fwd_id() { ntmc "$1" "$2" tunnel forward --json | jq -r --arg s "$3" '.forwards[] | select(.spec == $s) | .id'; }

@test "-R exposes a local HTTP server on alice's vIP; curl --socks5-hostname fetches it" {
	run ntmc g1 alice tunnel forward -R 80:127.0.0.1:8088
	assert_success
	assert_output --partial "-R 80:127.0.0.1:8088"
	run n a1 curl -sS -m 20 --socks5-hostname 127.0.0.1:1080 "http://$ALICE/index.html"
	assert_success
	assert_output "PAGE-FROM-ALICE-ntm"
	[ "$(ntmc a1 bob status --json | jq .agent.socks5.connects)" -ge 1 ]
	run ntmc a1 bob status --offline
	assert_line "socks5: 127.0.0.1:1080"
}

@test "-L forwards many concurrent connections; the list counts them; --remove stops it" {
	run ntmc a1 bob tunnel forward -L 127.0.0.1:9080:"$ALICE":80
	assert_success
	local i pids=()
	for i in $(seq 20); do
		n a1 curl -sS -m 20 -o "$TOPO_DIR/page.$i" http://127.0.0.1:9080/index.html &
		pids+=($!)
	done
	for i in "${pids[@]}"; do wait "$i"; done
	for i in $(seq 20); do
		assert_equal "$(cat "$TOPO_DIR/page.$i")" "PAGE-FROM-ALICE-ntm"
	done
	local id
	id=$(fwd_id a1 bob "127.0.0.1:9080:$ALICE:80")
	[ "$(ntmc a1 bob tunnel forward --json | jq ".forwards[] | select(.id == $id) | .accepted")" -eq 20 ]
	run ntmc a1 bob tunnel forward --remove "$id"
	assert_success
	run n a1 curl -sS -m 5 http://127.0.0.1:9080/
	assert_failure 7	# connection refused: nobody listens any more
	run ntmc a1 bob tunnel forward --remove "$id"
	assert_failure
	assert_output --partial "no_forward"
}

@test "iperf3 runs through a -L forward (to alice's iperf3 exposed with -R)" {
	ntmc g1 alice tunnel forward -R 5201:127.0.0.1:5201
	ntmc a1 bob tunnel forward -L 5202:"$ALICE":5201
	run n a1 timeout 60 iperf3 -c 127.0.0.1 -p 5202 -t 2 -J
	assert_success
	local bps
	bps=$(jq '.end.sum_received.bits_per_second' <<<"$output")
	echo "iperf3 through the forwards: $bps bit/s" >&3
	[ "${bps%.*}" -gt 0 ]
}

@test "SOCKS5 UDP ASSOCIATE: a datagram to the peer's name and its answer" {
	(for i in $(seq 25); do sleep 1; echo "answer-$$"; done) |
	    ntmc g1 alice tunnel listen --udp 5353 > "$TOPO_DIR/udp.out" 2>&1 &
	local lis=$!
	sleep 1
	run n a1 python3 "$TOOLS/socks5-udp.py" 127.0.0.1 1080 "$ALICE" 5353 "question-$$"
	assert_success
	assert_output --regexp "^answer-$$ from 100\\.[0-9.]+:5353$"
	grep -q "question-$$" "$TOPO_DIR/udp.out"
	kill "$lis" 2>/dev/null || true
}

@test "SOCKS5 refusals: a closed port, an unknown peer, an address that is no vIP" {
	run n a1 curl -sS -m 20 --socks5-hostname 127.0.0.1:1080 "http://$ALICE:81/"
	assert_failure 97
	run timeout 30 ip netns exec "${P}a1" curl -sS -m 25 --socks5-hostname 127.0.0.1:1080 \
	    http://nobody.dc1.ntm.test/
	assert_failure 97
	run n a1 curl -sS -m 20 --socks5 127.0.0.1:1080 http://192.0.2.1/
	assert_failure 97
	[ "$(ntmc a1 bob status --json | jq .agent.socks5.refused)" -ge 1 ]
}

# The name stops at its length, not at a NUL: "ALICE\0junk" is no peer's
# name, so it is refused (reply 4), never dialled as ALICE (fuzz_socks).
@test "SOCKS5: a domain name with a NUL inside is refused, not cut short at it" {
	run n a1 timeout 30 python3 -c '
import socket, sys
name = sys.argv[1].encode() + b"\0junk"
t = socket.create_connection(("127.0.0.1", 1080), timeout=25)
t.sendall(b"\x05\x01\x00")
assert t.recv(2) == b"\x05\x00"
t.sendall(b"\x05\x01\x00\x03" + bytes([len(name)]) + name + b"\x1f\x98")
r = t.recv(10)
print("reply", r[1] if len(r) > 1 else "none")' "$ALICE"
	assert_success
	assert_output "reply 4"
}

@test "bad forward specs and --socks5 addresses: one line, exit 2" {
	run ntmc a1 bob tunnel forward -L 9090:"$ALICE"
	assert_failure 2
	assert_output --partial "expected [BIND:]LPORT:PEER:RPORT"
	run ntmc a1 bob tunnel forward -L 0:"$ALICE":80
	assert_failure 2
	run ntmc a1 bob tunnel forward -R 80:example.org:80
	assert_failure 2
	assert_output --partial "HOST 'example.org'"
	run ntmc a1 bob tunnel forward -L 9091:"$ALICE":80 -R 80:127.0.0.1:1
	assert_failure 2
	# a port already forwarded
	ntmc g1 alice tunnel forward -R 8443:127.0.0.1:8088
	run ntmc g1 alice tunnel forward -R 8443:127.0.0.1:8088
	assert_failure
	assert_output --partial "port_in_use"
	# the SOCKS5 proxy has no authentication: loopback only
	run ntmc g1 alice up --socks5 198.18.1.10:1080
	assert_failure 2
	assert_output --partial "only a loopback address"
}

@test "1000 idle TCP connections through a forward: the agents' memory stays bounded" {
	ntmc g1 alice tunnel forward -R 7000:127.0.0.1:7000
	ntmc a1 bob tunnel forward -L 7001:"$ALICE":7000
	local ba aa rss0b rss0a rss1b rss1a
	ba=$(ntmc a1 bob status --json | jq .agent.pid)
	aa=$(ntmc g1 alice status --json | jq .agent.pid)
	rss0b=$(awk '/VmRSS/ {print $2}' "/proc/$ba/status")
	rss0a=$(awk '/VmRSS/ {print $2}' "/proc/$aa/status")
	mkfifo "$TOPO_DIR/hold"
	n a1 timeout 120 python3 "$TOOLS/conns.py" 7001 1000 < "$TOPO_DIR/hold" > "$TOPO_DIR/conns.out" &
	local holder=$!
	exec 4> "$TOPO_DIR/hold"
	wait_for 90 grep -q "open 1000" "$TOPO_DIR/conns.out"
	[ "$(ntmc a1 bob tunnel list --json | jq '[.streams[] | select(.state == "open")] | length')" -eq 1000 ]
	rss1b=$(awk '/VmRSS/ {print $2}' "/proc/$ba/status")
	rss1a=$(awk '/VmRSS/ {print $2}' "/proc/$aa/status")
	echo "RSS with 1000 idle connections: bob (-L) ${rss0b} -> ${rss1b} KiB," \
	    "alice (-R) ${rss0a} -> ${rss1a} KiB" >&3
	exec 4>&-
	wait "$holder" || true
	# bounded: under 64 KiB per connection on each side
	[ $((rss1b - rss0b)) -lt 64000 ]
	[ $((rss1a - rss0a)) -lt 64000 ]
}
