#!/usr/bin/env bats
# Hostile input on the real-time path: garbage, truncated, oversized,
# replayed and forged datagrams to the DC, the RS and the agent; expired
# and forged relay tickets; direction requests for unknown or offline peers.
# Everything is dropped and counted, nothing crashes, and real traffic goes on.
#
#   srv (AS, DC1, DC2, RS, dnsmasq) == switch == g1 198.18.1.10 (alice@dc1)
#       \== nat1 == a1 (bob@dc2)     \== nat2 == b1 (carol@dc1)    x1 198.18.1.66 (attacker)

load ../bats/helpers
load lib

setup_file() {
	require_root
	topo_up "$BATS_FILE_TMPDIR/t"
	servers_up
	host_global g1 198.18.1.10
	host_global x1 198.18.1.66
	nat_router nat1 198.18.2.1 100.64.2.1
	nat_router nat2 198.18.3.1 100.64.3.1
	host_behind a1 nat1 100.64.2.10 100.64.2.1
	host_behind b1 nat2 100.64.3.10 100.64.3.1
	client_up g1 alice alice dc1
	client_up a1 bob bob dc2
	client_up b1 carol carol dc1
}
teardown_file() { topo_down "$BATS_FILE_TMPDIR/t"; }
setup() { TOPO_DIR=$BATS_FILE_TMPDIR/t; P=$(cat "$TOPO_DIR/prefix"); }

# spray NS HOST PORT: garbage, truncated and oversized datagrams of every type.
spray() {
	local ns=$1 host=$2 port=$3
	ip netns exec "$P$ns" bash -c "
		for t in 0 1 2 3 4 5 6 7 8 9 255; do
			for len in 0 1 3 4 5 31 32 33 52 60 79 80 81 127 128 129 700 1500; do
				{ printf \"\\\\x\$(printf %02x \$t)\\\\x01\\\\x00\\\\x00\"; head -c \$len /dev/urandom; } \
				    > /dev/udp/$host/$port 2>/dev/null
			done
		done
		head -c 60000 /dev/urandom > /dev/udp/$host/$port 2>/dev/null
		for i in \$(seq 1 200); do head -c \$((RANDOM % 200)) /dev/urandom > /dev/udp/$host/$port 2>/dev/null; done
	" || true
}

# replay NS IFACE FILTER DEST_HOST DEST_PORT: capture one matching datagram
# and send its payload again, 5 times, from NS.
replay_captured() {
	local ns=$1 ifc=$2 filter=$3 host=$4 port=$5
	local hex
	hex=$(ip netns exec "$P$ns" timeout 8 tcpdump -i "$ifc" -c 1 -x -nn "$filter" 2>/dev/null |
	    awk '/0x[0-9a-f]+:/ { for (i = 2; i <= NF; i++) printf "%s", $i }')
	[ -n "$hex" ] || return 1
	# IPv4 header (20, no options here) + UDP header (8) = 56 hex digits
	local payload=${hex:56}
	for i in 1 2 3 4 5; do
		echo "$payload" | xxd -r -p > "/tmp/ntm-replay-$$"
		ip netns exec "$P$ns" bash -c "cat /tmp/ntm-replay-$$ > /dev/udp/$host/$port"
	done
	rm -f "/tmp/ntm-replay-$$"
}

@test "the DC drops garbage, truncated, oversized and replayed datagrams and keeps serving" {
	spray x1 198.18.0.2 4501
	# A real REG_REQ captured on the wire and sent again is a replay.
	replay_captured g1 eth0 "udp and dst port 4501" 198.18.0.2 4501
	# the status file is rewritten every 2 s
	wait_for 10 bash -c "ip netns exec ${P}srv $NTM_BIN/ntm-dc -f $TOPO_DIR/dc1.conf status --json | jq -e '.udp.dropped.replay >= 5'"
	run n srv "$NTM_BIN/ntm-dc" -f "$TOPO_DIR/dc1.conf" status --json
	assert_success
	[ "$(jq '[.udp.dropped[]] | add' <<<"$output")" -gt 100 ]
	# the five copies of a real registration were each refused as replays
	[ "$(jq '.udp.dropped.replay' <<<"$output")" -ge 5 ]
	# still registering real clients
	run ntmc g1 alice register --json
	assert_success
}

@test "the RS drops garbage and forged binds; a forged ticket binds nothing" {
	spray x1 198.18.0.4 3478
	# the status file is rewritten every second
	wait_for 10 bash -c "ip netns exec ${P}srv $NTM_BIN/ntm-rs -f $TOPO_DIR/rs.conf status --json | jq -e '[.counters.drops[]] | add > 100'"
	run n srv "$NTM_BIN/ntm-rs" -f "$TOPO_DIR/rs.conf" status --json
	assert_success
	[ "$(jq '[.counters.drops[]] | add' <<<"$output")" -gt 100 ]
	assert_equal "$(jq '.sessions | length' <<<"$output")" 0
	# a relayed tunnel still works after that
	run ntmc a1 bob tunnel ping -c 2 --timeout 20 "$(fqdn_of carol)"
	assert_success
	assert_equal "$(tunnel_field a1 bob "$(fqdn_of carol)" route)" relay
}

@test "the agent drops garbage and forged tunnel packets, and the tunnel goes on" {
	local bob
	bob=$(fqdn_of bob)
	run ntmc g1 alice tunnel ping -c 1 --timeout 20 "$bob"
	assert_success
	local port
	port=$(ntmc g1 alice status --json | jq -r '.agent.port')
	spray x1 198.18.1.10 "$port"
	# a captured tunnel packet sent again is a replay
	ntmc a1 bob tunnel ping -c 30 -i 0.2 "$(fqdn_of alice)" >/dev/null &
	replay_captured g1 eth0 "udp and dst port $port and udp[8] == 6" 198.18.1.10 "$port"
	wait
	run ntmc g1 alice status --json
	assert_success
	[ "$(jq '[.agent.dropped[]] | add' <<<"$output")" -gt 100 ]
	[ "$(jq '.agent.dropped.replay' <<<"$output")" -ge 1 ]
	run ntmc g1 alice tunnel ping -c 2 "$bob"
	assert_success
	# the attacker's address never became the endpoint
	[[ "$(tunnel_field g1 alice "$bob" endpoint)" != 198.18.1.66:* ]]
}

@test "direction requests: unknown FQDN and offline peer give a clear error in bounded time" {
	run ntmc g1 alice tunnel ping -c 1 --timeout 10 nobody.dc2.ntm.test
	assert_failure 10
	assert_output --partial unknown_peer
	run ntmc g1 alice tunnel ping -c 1 --timeout 10 nobody.nowhere.test
	assert_failure 10
	assert_output --partial 'unknown_domain: no DC found for the domain nowhere.test'
	# carol's agent stops; once the DC has missed her registrations she is offline
	ntmc b1 carol down
	local carol
	carol=$(fqdn_of carol)
	wait_for 20 bash -c "ip netns exec ${P}srv $NTM_BIN/ntm-dc -f $TOPO_DIR/dc1.conf client list --json | jq -e '.[] | select(.fqdn == \"$carol\") | .location.online == false'"
	run ntmc g1 alice tunnel ping -c 1 --timeout 10 "$(fqdn_of carol)"
	assert_failure 10
	assert_output --partial peer_offline
}

@test "every daemon is still running" {
	local pid name
	while read -r pid name; do
		[[ "$name" == agent-carol ]] && continue
		kill -0 "$pid" || { echo "$name ($pid) died" >&3; false; }
	done < "$TOPO_DIR/pids"
}
