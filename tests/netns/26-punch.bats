#!/usr/bin/env bats
# Hole punching between two NATs (docs/protocol.md §4.5 rule 3, §4.8):
# a tunnel between two endpoint-independent NATs starts on the relay and
# moves to a punched direct path, same session; a NAT whose mapping varies
# by destination keeps it relayed, and says why.
#
#   srv: AS, DC1, DC2, RS 198.18.0.4:3478, CS, dnsmasq
#     |
#   ==+====================== switch: 198.18.0.0/15 ======================
#     |                  |                  |                  |
#   nat1 (masq)        nat2 (masq)        nat3 (fully-random) nat4 (fully-random)
#   198.18.2.1         198.18.3.1         198.18.4.1          198.18.5.1
#     |                  |                  |                   |
#   a1 100.64.2.10     b1 100.64.3.10     c1 100.64.4.10      d1 100.64.5.10
#   bob@dc1            carol@dc2          dave@dc1            erin@dc1
#
# Every router is a home router: masquerade out of wan, and nothing from
# wan to the router itself (its input chain drops it). nat1 and nat2 map
# endpoint-independently (Linux keeps the source port); nat3 and nat4
# take a new port for each destination (masquerade fully-random). Without
# that input drop, the first probe to reach a bare masquerade router
# leaves a conntrack entry for itself there, so the router's own client
# gets another port towards the peer when it probes in turn: measured
# 0/10 punched, which is why a router here has the drop, as home routers do.

load ../bats/helpers
load lib

setup_file() {
	require_root
	topo_up "$BATS_FILE_TMPDIR/t"
	NTM_PUNCH=1 servers_up
	home_router nat1 198.18.2.1 100.64.2.1
	home_router nat2 198.18.3.1 100.64.3.1
	home_router nat3 198.18.4.1 100.64.4.1 fully-random
	home_router nat4 198.18.5.1 100.64.5.1 fully-random
	host_behind a1 nat1 100.64.2.10 100.64.2.1
	host_behind b1 nat2 100.64.3.10 100.64.3.1
	host_behind c1 nat3 100.64.4.10 100.64.4.1
	host_behind d1 nat4 100.64.5.10 100.64.5.1
	client_up a1 bob bob dc1
	client_up b1 carol carol dc2
	client_up c1 dave dave dc1
	client_up d1 erin erin dc1
	# the DCs know each device's NAT kind (its agent found it) before any route
	wait_for 20 nat_is dc1 bob endpoint-independent
	wait_for 20 nat_is dc2 carol endpoint-independent
	wait_for 20 nat_is dc1 dave varies-by-destination
	wait_for 20 nat_is dc1 erin varies-by-destination
}

teardown_file() {
	topo_down "$BATS_FILE_TMPDIR/t"
}

setup() { TOPO_DIR=$BATS_FILE_TMPDIR/t; P=$(cat "$TOPO_DIR/prefix"); }

# nat_is DC USER KIND: the DC keeps KIND as the NAT kind of USER's device.
nat_is() {
	[ "$("$NTM_BIN/ntm-dc" -f "$TOPO_DIR/$1.conf" client list --json |
	    jq -r --arg f "$(fqdn_of "$2")" '.[] | select(.fqdn == $f) | .location.nat')" = "$3" ]
}

# rs_bound TID: both sides of the RS's session for tunnel TID are bound
# (its status file is rewritten every second).
rs_bound() {
	n srv "$NTM_BIN/ntm-rs" -f "$TOPO_DIR/rs.conf" status --json |
	    jq -e --arg t "$1" '[.sessions[] | select(.tunnel_id == $t) | .sides[].bound] ==
	    [true, true]' >/dev/null
}

# path_is NS PROF PEER PATH: the tunnel's path is PATH.
path_is() { [ "$(tunnel_field "$1" "$2" "$3" path)" = "$4" ]; }

# rs_capture_start NAME / rs_capture_count NAME: the tunnel datagrams
# (HS_INIT, HS_RESP, DATA: types 4-6) the RS's link carried in between.
rs_capture_start() {
	ip netns exec "${P}srv" timeout 60 tcpdump -i eth0 -U -nn -w "$TOPO_DIR/$1.pcap" \
	    "udp port 3478 and udp[8] >= 4 and udp[8] <= 6" 2>/dev/null &
	CAP=$!
	wait_for 10 test -s "$TOPO_DIR/$1.pcap"
}
rs_capture_count() {
	kill -INT "$CAP"; wait "$CAP" 2>/dev/null || true
	tcpdump -r "$TOPO_DIR/$1.pcap" -nn 2>/dev/null | wc -l
}

# punched_without_rs_acks: the RS acknowledges no bind for a while (its
# bind answers, type 8, dropped) while a fresh bob-carol tunnel with a
# ping stream goes punched at both ends; then the RS answers again.
punched_without_rs_acks() {
	n srv nft -f - <<-NFT
	table inet noack {
		chain out {
			type filter hook output priority 0;
			udp sport ${UDP[rs]} @th,64,8 8 drop
		}
	}
	NFT
	fresh_tunnel
	ping_stream_start a1 bob "$carol"
	wait_for 15 path_is a1 bob "$carol" punched
	wait_for 15 path_is b1 carol "$bob" punched
	n srv nft delete table inet noack
}

@test "two endpoint-independent NATs: a relayed route (both ends bound at the RS) whose path is punched direct; the RS carries none of its traffic then" {
	local bob carol
	bob=$(fqdn_of bob) carol=$(fqdn_of carol)
	run ntmc a1 bob tunnel ping -c 1 --timeout 20 "$carol"
	assert_success
	# the route the DC gave is the relay, with each other's candidates
	assert_equal "$(tunnel_field a1 bob "$carol" route)" relay
	assert_equal "$(tunnel_field a1 bob "$carol" reason)" \
	    "both behind endpoint-independent NATs: relay, punching"
	wait_for 20 path_is a1 bob "$carol" punched
	wait_for 20 path_is b1 carol "$bob" punched
	# the relay stays bound by both ends: the fallback is ready
	wait_for 10 rs_bound "$(tunnel_field a1 bob "$carol" tunnel_id)"
	[[ "$(tunnel_field a1 bob "$carol" endpoint)" == 198.18.3.1:* ]]
	[[ "$(tunnel_field b1 carol "$bob" endpoint)" == 198.18.2.1:* ]]
	[[ "$(tunnel_field a1 bob "$carol" path_reason)" == "punched to 198.18.3.1:"* ]]
	[ "$(tunnel_field a1 bob "$carol" punch_ms)" -ge 0 ]
	# one session all along: a single handshake, through the relay
	assert_equal "$(tunnel_field a1 bob "$carol" handshakes)" 1
	# from now on the RS's link carries none of its datagrams, both ways
	rs_capture_start after
	run ntmc a1 bob tunnel ping -c 20 -i 0.05 --timeout 20 "$carol"
	assert_success
	run ntmc b1 carol tunnel ping -c 5 -i 0.05 --timeout 20 "$bob"
	assert_success
	assert_equal "$(rs_capture_count after)" 0
	# ntm tunnel list says it too
	run ntmc a1 bob tunnel list
	assert_success
	assert_line --regexp "^  path: punched \\(punched to 198\\.18\\.3\\.1:[0-9]+ in [0-9]+ ms \\((our probe answered|the peer's packets came direct)\\)\\)$"
	grep -q "tunnel $carol: path relayed -> punched" "$TOPO_DIR/agent-bob.log"
}

@test "two endpoint-independent NATs, 10 new tunnels: the share punched" {
	local bob carol i ok=0 tids=""
	bob=$(fqdn_of bob) carol=$(fqdn_of carol)
	: > "$TOPO_DIR/punch_ms"
	for i in $(seq 1 10); do
		ntmc a1 bob tunnel close "$carol" >/dev/null 2>&1 || true
		ntmc b1 carol tunnel close "$bob" >/dev/null 2>&1 || true
		run ntmc a1 bob tunnel ping -c 1 --timeout 20 "$carol"
		assert_success
		tids="$tids $(tunnel_field a1 bob "$carol" tunnel_id)"
		# each tunnel gives up punching after 5 s: bounded
		if wait_for 10 path_is a1 bob "$carol" punched &&
		    wait_for 5 path_is b1 carol "$bob" punched; then
			ok=$((ok + 1))
			echo "$(tunnel_field a1 bob "$carol" punch_ms)" >> "$TOPO_DIR/punch_ms"
		else
			echo "# trial $i: $(tunnel_field a1 bob "$carol" path_reason)" >&3
		fi
		run ntmc a1 bob tunnel ping -c 1 --timeout 10 "$carol"
		assert_success
	done
	echo "# endpoint-independent x endpoint-independent: punched $ok/10," \
	    "time to punched (ms, bob's side) median $(sort -n "$TOPO_DIR/punch_ms" |
	    awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'), max $(sort -n \
	    "$TOPO_DIR/punch_ms" | tail -n 1)" >&3
	# ten tunnels, each new
	assert_equal "$(tr ' ' '\n' <<<"$tids" | grep -c .)" 10
	assert_equal "$(tr ' ' '\n' <<<"$tids" | grep . | sort -u | wc -l)" 10
	[ "$ok" -ge 9 ]
}

# block / unblock: nat1 forwards nothing between bob and carol's NAT (the
# DC and the RS are still reached): no direct path.
block() { nat_block nat1 198.18.3.1; }
unblock() { nat_unblock nat1; }

fresh_tunnel() {
	ntmc a1 bob tunnel close "$(fqdn_of carol)" >/dev/null 2>&1 || true
	ntmc b1 carol tunnel close "$(fqdn_of bob)" >/dev/null 2>&1 || true
}

path_reason_is() { [ "$(tunnel_field "$1" "$2" "$3" path_reason)" = "$4" ]; }

@test "no direct path between the NATs: punching gives up in bounded time, the tunnel stays relayed with the reason, traffic flows" {
	local bob carol
	bob=$(fqdn_of bob) carol=$(fqdn_of carol)
	block
	fresh_tunnel
	run ntmc a1 bob tunnel ping -c 1 --timeout 20 "$carol"
	assert_success
	wait_for 15 path_reason_is a1 bob "$carol" \
	    "no answer from the peer's 2 candidates in 5 s: relayed"
	wait_for 15 path_reason_is b1 carol "$bob" \
	    "no answer from the peer's 2 candidates in 5 s: relayed"
	assert_equal "$(tunnel_field a1 bob "$carol" path)" relayed
	[[ "$(tunnel_field a1 bob "$carol" endpoint)" == 198.18.0.4:* ]]
	# bounded: 10 rounds to each of the 2 candidates (its reflexive address
	# and its local one), plus at most one triggered probe a round
	[ "$(tunnel_field a1 bob "$carol" punch_probes)" -le 40 ]
	run ntmc a1 bob tunnel ping -c 3 --timeout 20 "$carol"
	assert_success
	run ntmc b1 carol tunnel ping -c 3 --timeout 20 "$bob"
	assert_success
}

@test "a ping stream over the relay moves to the punched path when it opens: same session, no echo lost" {
	local bob carol t gaps
	bob=$(fqdn_of bob) carol=$(fqdn_of carol)
	block 2>/dev/null || true	# already there after the test above
	fresh_tunnel
	ping_stream_start a1 bob "$carol"
	assert_equal "$(tunnel_field a1 bob "$carol" path)" relayed
	unblock
	wait_for 15 path_is a1 bob "$carol" punched
	wait_for 15 path_is b1 carol "$bob" punched
	t=$(date +%s%N)
	wait_for 20 bash -c "[ \$(awk -v t=$t '\$1 > t && /time=/' '$TOPO_DIR/stream' | wc -l) -ge 20 ]"
	ping_stream_stop
	assert_equal "$(tunnel_field a1 bob "$carol" handshakes)" 1
	# every echo from the first reply to the last was answered
	gaps=$(sed -n 's/.* seq=\([0-9]*\) .*/\1/p' "$TOPO_DIR/stream" | awk '
	    NR == 1 { prev = $1; next } { if ($1 != prev + 1) lost += $1 - prev - 1; prev = $1 }
	    END { print lost + 0 }')
	echo "# echoes lost across relayed -> punched: $gaps of $(grep -c time= "$TOPO_DIR/stream")" >&3
	assert_equal "$gaps" 0
}

@test "a 100 MB TCP stream over the relay moves to the punched path when it opens: every byte arrives" {
	local bob carol want lis snd mon
	bob=$(fqdn_of bob) carol=$(fqdn_of carol)
	head -c $((100 * 1024 * 1024)) /dev/urandom > "$TOPO_DIR/big.in"
	want=$(sha256sum < "$TOPO_DIR/big.in" | cut -d' ' -f1)
	block 2>/dev/null || true
	fresh_tunnel
	: > "$TOPO_DIR/big.out"
	ntmc b1 carol tunnel listen 7401 > "$TOPO_DIR/big.out" 2> "$TOPO_DIR/big.err" \
	    < /dev/null 3>&- &
	lis=$!
	sleep 1
	( rc=0
	  slow_cat "$TOPO_DIR/big.in" 20000000 | ntmc a1 bob tunnel open "$carol" 7401 \
	      --timeout 20 2> "$TOPO_DIR/big.snd.err" || rc=$?
	  echo "$rc" > "$TOPO_DIR/big.rc" ) 3>&- &
	snd=$!
	# The longest time the received size stood still (reported, not asserted).
	python3 -c '
import os, sys, time
p, end = sys.argv[1], time.monotonic() + 55
last, at, worst = -1, time.monotonic(), 0.0
while time.monotonic() < end and not os.path.exists(sys.argv[2]):
    s = os.path.getsize(p)
    now = time.monotonic()
    if s != last:
        if last > 0:
            worst = max(worst, now - at)
        last, at = s, now
    time.sleep(0.005)
print("%.0f" % (worst * 1000))' "$TOPO_DIR/big.out" "$TOPO_DIR/big.rc" > "$TOPO_DIR/big.stall" 3>&- &
	mon=$!
	wait_for 20 bash -c "[ \$(stat -c %s '$TOPO_DIR/big.out') -gt 5000000 ]"
	assert_equal "$(tunnel_field a1 bob "$carol" path)" relayed
	unblock
	wait_for 15 path_is a1 bob "$carol" punched
	wait_for 15 path_is b1 carol "$bob" punched
	wait_for 60 test -s "$TOPO_DIR/big.rc"
	wait "$snd" || true
	wait_for 20 bash -c "! kill -0 $lis 2>/dev/null"
	wait "$mon" || true
	echo "# 100 MB relayed -> punched: longest stall of the receiver $(cat "$TOPO_DIR/big.stall") ms" >&3
	cat "$TOPO_DIR/big.snd.err" "$TOPO_DIR/big.err" >&2
	assert_equal "$(cat "$TOPO_DIR/big.rc")" 0
	assert_equal "$(stat -c %s "$TOPO_DIR/big.out")" $((100 * 1024 * 1024))
	assert_equal "$(sha256sum < "$TOPO_DIR/big.out" | cut -d' ' -f1)" "$want"
	rm -f "$TOPO_DIR/big.in" "$TOPO_DIR/big.out"
}

# logged_since PROF LINES TEXT: the agent of PROF logged TEXT after its
# log's first LINES lines.
logged_since() { tail -n "+$(($2 + 1))" "$TOPO_DIR/agent-$1.log" | grep -qF -- "$3"; }
log_lines() { wc -l < "$TOPO_DIR/agent-$1.log"; }

# Both moves below happen with no direct path left between the NATs
# (block): the moved end punches again (27-repunch.bats) but cannot, so the
# stream must go on through the relay, which never saw the session.
@test "a punched end moves: both go back to the relay, and the ping stream goes on" {
	local bob carol t lb lc
	bob=$(fqdn_of bob) carol=$(fqdn_of carol)
	# carol's address in a second RS session (a relayed tunnel with dave):
	# the RS then routes her datagrams by the session indices it has seen
	run ntmc c1 dave tunnel ping -c 1 --timeout 20 "$carol"
	assert_success
	# the RS acknowledges no bind for a while: the relayed initiator's
	# handshake waits for the peer's bind, so it goes on the punched path
	# and the RS never sees it
	punched_without_rs_acks
	wait_for 10 bash -c "ip netns exec ${P}a1 $NTM_BIN/ntm -c $TOPO_DIR/bob tunnel list --json |
	    jq -e --arg p $carol '.tunnels[] | select(.peer == \$p and .relay_peer_bound)'"
	lb=$(log_lines bob) lc=$(log_lines carol)
	block
	# bob's host takes another address on its LAN: a new NAT mapping, which
	# carol's NAT has never seen
	t=$(date +%s%N)
	n a1 ip addr add 100.64.2.20/24 dev eth1
	n a1 ip addr del 100.64.2.10/24 dev eth1
	n a1 ip route replace default via 100.64.2.1 src 100.64.2.20
	wait_for 20 logged_since bob "$lb" \
	    "tunnel $carol: path punched -> relayed (this end moved: back on the relay)"
	wait_for 20 logged_since carol "$lc" \
	    "tunnel $bob: path punched -> relayed (the peer went back to the relay: back on the relay)"
	# the stream resumes over the relay, same session
	wait_for 20 bash -c "[ \$(awk -v t=$t '\$1 > t && /time=/' '$TOPO_DIR/stream' | wc -l) -ge 20 ]"
	ping_stream_stop
	assert_equal "$(tunnel_field a1 bob "$carol" path)" relayed
	[[ "$(tunnel_field b1 carol "$bob" endpoint)" == 198.18.0.4:* ]]
	run ntmc b1 carol tunnel ping -c 3 --timeout 20 "$bob"
	assert_success
	# punching again from the new address gets no answer: bounded, relayed
	wait_for 15 path_reason_is a1 bob "$carol" \
	    "this end moved: no answer from the peer's 2 candidates in 5 s: relayed"
	wait_for 15 path_reason_is b1 carol "$bob" \
	    "the peer moved: no answer from the peer's 2 candidates in 5 s: relayed"
	unblock
}

@test "the punched responder moves: both go back to the relay, and the ping stream goes on" {
	local bob carol dave t lb lc
	bob=$(fqdn_of bob) carol=$(fqdn_of carol) dave=$(fqdn_of dave)
	# bob's address in a second RS session, and a handshake the RS never sees
	run ntmc a1 bob tunnel ping -c 1 --timeout 20 "$dave"
	assert_success
	punched_without_rs_acks
	wait_for 10 bash -c "ip netns exec ${P}b1 $NTM_BIN/ntm -c $TOPO_DIR/carol tunnel list --json |
	    jq -e --arg p $bob '.tunnels[] | select(.peer == \$p and .relay_peer_bound)'"
	assert_equal "$(tunnel_field b1 carol "$bob" role)" responder
	lb=$(log_lines bob) lc=$(log_lines carol)
	block
	t=$(date +%s%N)
	n b1 ip addr add 100.64.3.20/24 dev eth1
	n b1 ip addr del 100.64.3.10/24 dev eth1
	n b1 ip route replace default via 100.64.3.1 src 100.64.3.20
	wait_for 20 logged_since carol "$lc" \
	    "tunnel $bob: path punched -> relayed (this end moved: back on the relay)"
	wait_for 20 logged_since bob "$lb" \
	    "tunnel $carol: path punched -> relayed (the peer went back to the relay: back on the relay)"
	wait_for 20 bash -c "[ \$(awk -v t=$t '\$1 > t && /time=/' '$TOPO_DIR/stream' | wc -l) -ge 20 ]"
	ping_stream_stop
	assert_equal "$(tunnel_field a1 bob "$carol" path)" relayed
	unblock
	ntmc a1 bob tunnel close "$dave" >/dev/null
}

@test "idle longer than the NATs keep a UDP mapping: the tunnel's keepalives hold the punched path open" {
	local bob carol
	bob=$(fqdn_of bob) carol=$(fqdn_of carol)
	# both NATs forget a UDP flow after 15 s without a packet (the
	# agents here register every 2 s, the DCs' keepalive_s, and keep
	# their tunnels alive as often; by default a tunnel's keepalive goes
	# after 10 s without sending, which holds such a NAT too)
	for r in nat1 nat2; do
		n "$r" sysctl -qw net.netfilter.nf_conntrack_udp_timeout=15 \
		    net.netfilter.nf_conntrack_udp_timeout_stream=15
	done
	fresh_tunnel
	run ntmc a1 bob tunnel ping -c 1 --timeout 20 "$carol"
	assert_success
	wait_for 15 path_is a1 bob "$carol" punched
	wait_for 15 path_is b1 carol "$bob" punched
	# the subject of the test: more than twice the NATs' timeout without
	# any traffic of the user's
	sleep 35
	assert_equal "$(tunnel_field a1 bob "$carol" path)" punched
	assert_equal "$(tunnel_field b1 carol "$bob" path)" punched
	rs_capture_start idle
	run ntmc a1 bob tunnel ping -c 3 -i 0.2 --timeout 5 "$carol"
	assert_success
	assert_equal "$(rs_capture_count idle)" 0
	for r in nat1 nat2; do
		n "$r" sysctl -qw net.netfilter.nf_conntrack_udp_timeout=30 \
		    net.netfilter.nf_conntrack_udp_timeout_stream=120
	done
}

# agent_counter NS PROF KEY: one of the agent's counters (ntm status --json).
agent_counter() { ntmc "$1" "$2" status --json | jq -r ".agent.$3"; }

@test "a candidate this host has no route to: the probe's send error is not taken for a network change" {
	local bob carol nc se
	bob=$(fqdn_of bob) carol=$(fqdn_of carol)
	# bob's host routes the internet only: carol's local address (a
	# candidate) is unreachable from here, so sending to it fails at once
	n a1 ip route replace 198.18.0.0/15 via 100.64.2.1
	n a1 ip route del default
	nc=$(agent_counter a1 bob net_changes)
	se=$(agent_counter a1 bob send_errors)
	fresh_tunnel
	run ntmc a1 bob tunnel ping -c 1 --timeout 20 "$carol"
	assert_success
	wait_for 15 path_is a1 bob "$carol" punched
	[ "$(agent_counter a1 bob send_errors)" -gt "$se" ]
	assert_equal "$(agent_counter a1 bob net_changes)" "$nc"
	assert_equal "$(tunnel_field a1 bob "$carol" path)" punched
	n a1 ip route add default via 100.64.2.1
	n a1 ip route del 198.18.0.0/15 via 100.64.2.1
}

@test "one NAT varies by destination: the relay at once, then punched to a predicted port of it, no echo lost" {
	local bob dave t gaps
	bob=$(fqdn_of bob) dave=$(fqdn_of dave)
	# the relay carries the first packets while the ends probe: a ping
	# stream from the tunnel's first packet on
	ping_stream_start c1 dave "$bob"
	assert_equal "$(tunnel_field c1 dave "$bob" route)" relay
	[ "$(tunnel_field a1 bob "$dave" punch_candidates)" -gt 0 ]
	# dave's NAT (fully-random) gives each of its 256 extra sockets its
	# own port towards bob; bob probes ports of 198.18.4.1 until one hits
	wait_for 15 path_is a1 bob "$dave" punched
	wait_for 15 path_is c1 dave "$bob" punched
	t=$(date +%s%N)
	wait_for 20 bash -c "[ \$(awk -v t=$t '\$1 > t && /time=/' '$TOPO_DIR/stream' | wc -l) -ge 20 ]"
	ping_stream_stop
	# same session, and every echo from the first reply to the last answered
	assert_equal "$(tunnel_field c1 dave "$bob" handshakes)" 1
	gaps=$(sed -n 's/.* seq=\([0-9]*\) .*/\1/p' "$TOPO_DIR/stream" | awk '
	    NR == 1 { prev = $1; next } { if ($1 != prev + 1) lost += $1 - prev - 1; prev = $1 }
	    END { print lost + 0 }')
	echo "# echoes lost across relayed -> a predicted port: $gaps of $(grep -c time= "$TOPO_DIR/stream")" >&3
	assert_equal "$gaps" 0
	[[ "$(tunnel_field a1 bob "$dave" path_reason)" == "punched to 198.18.4.1:"* ]]
	[[ "$(tunnel_field c1 dave "$bob" path_reason)" == "punched to 198.18.2.1:"* ]]
	[ "$(tunnel_field a1 bob "$dave" punch_predicted)" -gt 0 ]
	[ "$(tunnel_field c1 dave "$bob" punch_predicted)" -ge 256 ]
	assert_equal "$(tunnel_field c1 dave "$bob" punch_sockets)" 1
	run ntmc a1 bob tunnel list
	assert_line --regexp "^  path: punched \(punched to 198\.18\.4\.1:[0-9]+ in [0-9]+ ms "
	run ntmc a1 bob tunnel ping -c 3 --timeout 20 "$dave"
	assert_success
	run ntmc c1 dave tunnel ping -c 3 --timeout 20 "$bob"
	assert_success
}

@test "both NATs vary by destination: stays relayed with the reason, traffic flows" {
	local dave erin
	dave=$(fqdn_of dave) erin=$(fqdn_of erin)
	run ntmc c1 dave tunnel ping -c 3 --timeout 20 "$erin"
	assert_success
	assert_equal "$(tunnel_field c1 dave "$erin" path)" relayed
	assert_equal "$(tunnel_field c1 dave "$erin" path_reason)" \
	    "both NATs vary by destination: relay"
	assert_equal "$(tunnel_field d1 erin "$dave" path)" relayed
	[[ "$(tunnel_field d1 erin "$dave" endpoint)" == 198.18.0.4:* ]]
	run ntmc d1 erin tunnel ping -c 3 --timeout 20 "$dave"
	assert_success
}

@test "no leftovers after the run" {
	topo_down "$TOPO_DIR"
	no_leftovers
}
