#!/usr/bin/env bats
# Who asks its DC for a relayed route again (docs/protocol.md §4.6, §4.8):
# the end whose DC made the route, side 0 at the relay (the RS takes a
# session's tickets only from the DC that opened it: other_dc), which is
# not always the handshake initiator. erin starts global and asks for a
# tunnel to carol, who is behind a NAT: direct, carol initiates (§4.5).
# erin moves behind a NAT: her DC makes the route again, relayed, erin
# side 0 and still the handshake responder (an end keeps its role).
#
#   srv: AS, DC1, DC2, RS 198.18.0.4, CS, dnsmasq
#     |
#   ==+================== switch: 198.18.0.0/15 ======================
#     |                  |                  |                  |
#   g1: erin@dc1       nat5 (masq)        nat6 (random)      nat2 (masq)
#   198.18.10.10       198.18.6.1         198.18.7.1         198.18.3.1
#     |                  | eth1             | eth2             |
#     +-- erin's LANs ---+------------------+                b1: carol@dc2
#       198.18.10.10 -> 100.64.6.10 -> 100.64.7.10           100.64.3.10
#
# Every router is a home router (lib.bash home_router).

load ../bats/helpers
load lib

setup_file() {
	require_root
	topo_up "$BATS_FILE_TMPDIR/t"
	NTM_PUNCH=1 servers_up
	home_router nat2 198.18.3.1 100.64.3.1
	home_router nat5 198.18.6.1 100.64.6.1
	home_router nat6 198.18.7.1 100.64.7.1 fully-random
	host_global g1 198.18.10.10
	lan_link g1 nat5 eth1
	lan_link g1 nat6 eth2
	host_behind b1 nat2 100.64.3.10 100.64.3.1
	client_up g1 erin erin dc1
	client_up b1 carol carol dc2
	wait_for 20 dc_nat_is dc1 erin none
	wait_for 20 dc_nat_is dc2 carol endpoint-independent
}

teardown_file() { topo_down "$BATS_FILE_TMPDIR/t"; }

setup() {
	TOPO_DIR=$BATS_FILE_TMPDIR/t
	P=$(cat "$TOPO_DIR/prefix")
	ERIN=$(fqdn_of erin) CAROL=$(fqdn_of carol)
}

erin() { tunnel_field g1 erin "$CAROL" "$1"; }
carol() { tunnel_field b1 carol "$ERIN" "$1"; }
field_is() { [ "$("$1" "$2")" = "$3" ]; }
# path_reason_like NS PROF PEER GLOB
path_reason_like() {
	# shellcheck disable=SC2053
	[[ "$(tunnel_field "$1" "$2" "$3" path_reason)" == $4 ]]
}

# rs_other_dc: relay binds the RS refused for coming from another DC than
# the one that opened the session.
rs_other_dc() {
	"$NTM_BIN/ntm-rs" -f "$TOPO_DIR/rs.conf" status --json | jq -r .counters.drops.other_dc
}

@test "the relay's side 0 is the handshake responder: after a move of either end, only side 0 asks its DC for the route (the relay refuses no ticket)" {
	local tid od le lc
	# erin, global, asks: direct, carol (behind NAT) initiates
	run ntmc g1 erin tunnel ping -c 1 --timeout 20 "$CAROL"
	assert_success
	field_is erin route direct
	field_is erin role responder
	field_is carol role initiator
	tid=$(erin tunnel_id)
	# erin moves behind an endpoint-independent NAT: her DC remakes the
	# route, relayed and punching; she is side 0 and stays the handshake
	# responder. Her ask waits at nat5 until her DC has her NAT's kind
	# (her first registration from there still says none, and a route
	# decided then would not punch): its SYN is dropped meanwhile, and a
	# retransmitted one goes through.
	n nat5 nft -f - <<-NFT
	table inet holdask {
		chain hold {
			type filter hook forward priority -10;
			ip saddr 100.64.6.10 ip daddr 198.18.0.2 tcp dport ${PORT[dc1]} drop
		}
	}
	NFT
	lan_move g1 eth1 100.64.6.10 100.64.6.1
	wait_for 20 dc_nat_is dc1 erin endpoint-independent
	n nat5 nft delete table inet holdask
	wait_for 30 field_is erin route relay
	wait_for 30 field_is carol route relay
	field_is erin relay_side 0
	field_is erin role responder
	field_is carol relay_side 1
	field_is carol role initiator
	wait_for 30 field_is erin path punched
	wait_for 30 field_is carol path punched
	assert_equal "$(erin tunnel_id)" "$tid"
	# carol pings erin every 50 ms across the next move
	ping_stream_start b1 carol "$ERIN"
	od=$(rs_other_dc)
	le=$(wc -l < "$TOPO_DIR/agent-erin.log")
	lc=$(wc -l < "$TOPO_DIR/agent-carol.log")
	# erin moves behind a NAT that varies by destination: the route is
	# her DC's to make again (it opened the relay session), not carol's
	lan_move g1 eth2 100.64.7.10 100.64.7.1
	wait_for 30 bash -c "tail -n +$((le + 1)) '$TOPO_DIR/agent-erin.log' |
	    grep -qF 'tunnel $CAROL: route relay -> relay'"
	wait_for 30 path_reason_like g1 erin "$CAROL" "punched to 198.18.3.1:* in * ms (*)"
	wait_for 30 path_reason_like b1 carol "$ERIN" "punched to 198.18.7.1:* in * ms (*)"
	wait_for 30 replies_after_at_least "$(date +%s%N)" 20
	ping_stream_stop
	# the relay refused no ticket for coming from another DC than the
	# session's (carol's DC asked, before, and both ends bound with its
	# tickets)
	assert_equal "$(rs_other_dc)" "$od"
	run grep -F "tunnel $CAROL: this end moved behind a NAT that varies by destination: asking the DC for the route again" \
	    <(tail -n +$((le + 1)) "$TOPO_DIR/agent-erin.log")
	assert_success
	run grep -F "asking the DC for the route again" \
	    <(tail -n +$((lc + 1)) "$TOPO_DIR/agent-carol.log")
	assert_failure
	assert_equal "$(erin tunnel_id)" "$tid"
	assert_equal "$(erin relay_side)" 0
	run ntmc b1 carol tunnel ping -c 3 --timeout 20 "$ERIN"
	assert_success
}

@test "no leftovers after the run" {
	topo_down "$TOPO_DIR"
	no_leftovers
}
