#!/usr/bin/env bats
# Punching again after a move (docs/protocol.md §4.8): a punched tunnel
# between two endpoint-independent NATs falls back to the relay when one
# end moves, and the moved end, once it knows its new NAT, tells the peer
# its fresh candidates inside the tunnel (CANDIDATES, sealed on the
# session) and both punch again. Behind a NAT whose mapping varies by
# destination the moved end asks its DC for the route again, and both
# punch by birthday probing (27-hard-retry.bats has the relayed cases).
#
#   srv: AS, DC1, DC2, RS 198.18.0.4:3478, dnsmasq
#     |
#   ==+=================== switch: 198.18.0.0/15 =====================
#     |                |                 |                  |
#   nat1 (masq)      nat5 (masq)       nat6 (fully-random) nat2 (masq)
#   198.18.2.1       198.18.6.1        198.18.7.1          198.18.3.1
#     | eth1           | eth2            | eth3               |
#     +------- a1: bob@dc1 (one LAN at a time) ---+          b1 carol@dc2
#       100.64.2.10 -> 100.64.6.10 -> 100.64.7.10 -> 100.64.2.30     |
#       -> 100.64.6.20                       100.64.3.10 -> 100.64.8.10 behind
#                                            nat7 (fully-random) 198.18.8.1
#
# Every router is a home router (lib.bash home_router: nothing from wan to
# the router itself). bob's host is linked to three LANs and has an
# address on one at a time: a move to another network behind another NAT.

load ../bats/helpers
load lib

setup_file() {
	require_root
	topo_up "$BATS_FILE_TMPDIR/t"
	NTM_PUNCH=1 servers_up
	home_router nat1 198.18.2.1 100.64.2.1
	home_router nat2 198.18.3.1 100.64.3.1
	home_router nat5 198.18.6.1 100.64.6.1
	home_router nat6 198.18.7.1 100.64.7.1 fully-random
	home_router nat7 198.18.8.1 100.64.8.1 fully-random
	host_behind a1 nat1 100.64.2.10 100.64.2.1
	lan_link a1 nat5 eth2
	lan_link a1 nat6 eth3
	host_behind b1 nat2 100.64.3.10 100.64.3.1
	lan_link b1 nat7 eth2
	client_up a1 bob bob dc1
	client_up b1 carol carol dc2
	wait_for 20 nat_is dc1 bob endpoint-independent
	wait_for 20 nat_is dc2 carol endpoint-independent
}

teardown_file() {
	topo_down "$BATS_FILE_TMPDIR/t"
}

setup() {
	TOPO_DIR=$BATS_FILE_TMPDIR/t
	P=$(cat "$TOPO_DIR/prefix")
	BOB=$(fqdn_of bob) CAROL=$(fqdn_of carol)
}

# nat_is DC USER KIND: the DC keeps KIND as the NAT kind of USER's device.
nat_is() {
	[ "$("$NTM_BIN/ntm-dc" -f "$TOPO_DIR/$1.conf" client list --json |
	    jq -r --arg f "$(fqdn_of "$2")" '.[] | select(.fqdn == $f) | .location.nat')" = "$3" ]
}

path_is() { [ "$(tunnel_field "$1" "$2" "$3" path)" = "$4" ]; }
path_reason_is() { [ "$(tunnel_field "$1" "$2" "$3" path_reason)" = "$4" ]; }
# path_reason_like NS PROF PEER GLOB
path_reason_like() {
	# shellcheck disable=SC2053
	[[ "$(tunnel_field "$1" "$2" "$3" path_reason)" == $4 ]]
}

@test "a punched end moves behind another endpoint-independent NAT: both punch again, same tunnel, few echoes lost" {
	local tid t lost
	run ntmc a1 bob tunnel ping -c 1 --timeout 20 "$CAROL"
	assert_success
	wait_for 20 path_is a1 bob "$CAROL" punched
	wait_for 20 path_is b1 carol "$BOB" punched
	tid=$(tunnel_field a1 bob "$CAROL" tunnel_id)
	# carol pings bob every 50 ms across the move
	ping_stream_start b1 carol "$BOB"
	t=$(date +%s%N)
	lan_move a1 eth2 100.64.6.10 100.64.6.1
	# the moved end punches again from its new NAT, and the peer to it
	wait_for 30 path_is a1 bob "$CAROL" punched
	wait_for 30 path_is b1 carol "$BOB" punched
	path_reason_like a1 bob "$CAROL" "this end moved: punched to 198.18.3.1:* in * ms (*)"
	path_reason_like b1 carol "$BOB" "the peer moved: punched to 198.18.6.1:* in * ms (*)"
	[[ "$(tunnel_field b1 carol "$BOB" endpoint)" == 198.18.6.1:* ]]
	[[ "$(tunnel_field a1 bob "$CAROL" endpoint)" == 198.18.3.1:* ]]
	[ "$(tunnel_field a1 bob "$CAROL" repunches)" -ge 1 ]
	[ "$(tunnel_field b1 carol "$BOB" repunches)" -ge 1 ]
	# the same tunnel all along
	assert_equal "$(tunnel_field a1 bob "$CAROL" tunnel_id)" "$tid"
	assert_equal "$(tunnel_field b1 carol "$BOB" tunnel_id)" "$tid"
	# the stream goes on over the punched path
	wait_for 20 replies_after_at_least "$(date +%s%N)" 20
	ping_stream_stop
	lost=$(lost_echoes)
	echo "# echoes lost across punched -> moved -> punched again: $lost of" \
	    "$(grep -c time= "$TOPO_DIR/stream")" >&3
	# bounded: the old path dies with the move, and the peer follows to the
	# relay at the first datagram it gets there (20 echoes: a second)
	[ "$lost" -le 20 ]
	# the log and the human list say what happened
	grep -q "tunnel $CAROL: path punched -> relayed (this end moved: back on the relay)" \
	    "$TOPO_DIR/agent-bob.log"
	grep -q "tunnel $CAROL: path relayed -> punched (this end moved: punched to 198.18.3.1:" \
	    "$TOPO_DIR/agent-bob.log"
	grep -q "tunnel $BOB: path relayed -> punched (the peer moved: punched to 198.18.6.1:" \
	    "$TOPO_DIR/agent-carol.log"
	run ntmc a1 bob tunnel list
	assert_success
	assert_line --regexp "^  path: punched \\(this end moved: punched to 198\\.18\\.3\\.1:[0-9]+ in [0-9]+ ms \\((our probe answered|the peer's packets came direct)\\)\\)$"
}

@test "a punched end moves behind a NAT that varies by destination: it asks its DC for the route again, and both punch by birthday probing, same tunnel" {
	local tid
	run ntmc a1 bob tunnel ping -c 1 --timeout 20 "$CAROL"
	assert_success
	wait_for 20 path_is a1 bob "$CAROL" punched
	wait_for 20 path_is b1 carol "$BOB" punched
	tid=$(tunnel_field a1 bob "$CAROL" tunnel_id)
	lan_move a1 eth3 100.64.7.10 100.64.7.1
	wait_for 30 grep -qF "tunnel $CAROL: this end moved behind a NAT that varies by destination: asking the DC for the route again" \
	    "$TOPO_DIR/agent-bob.log"
	wait_for 30 path_reason_like b1 carol "$BOB" "punched to 198.18.7.1:* in * ms (*)"
	wait_for 30 path_reason_like a1 bob "$CAROL" "punched to 198.18.3.1:* in * ms (*)"
	# the per-destination end's path is from the one extra socket that was hit
	assert_equal "$(tunnel_field a1 bob "$CAROL" punch_sockets)" 1
	[ "$(tunnel_field b1 carol "$BOB" punch_predicted)" -gt 0 ]
	assert_equal "$(tunnel_field a1 bob "$CAROL" tunnel_id)" "$tid"
	assert_equal "$(tunnel_field b1 carol "$BOB" tunnel_id)" "$tid"
	run ntmc a1 bob tunnel ping -c 5 -i 0.2 --timeout 20 "$CAROL"
	assert_success
	run ntmc b1 carol tunnel ping -c 5 -i 0.2 --timeout 20 "$BOB"
	assert_success
}

@test "from behind the per-destination NAT back behind an endpoint-independent one: punched again" {
	run ntmc a1 bob tunnel ping -c 1 --timeout 20 "$CAROL"
	assert_success
	lan_move a1 eth1 100.64.2.30 100.64.2.1
	wait_for 30 path_reason_like b1 carol "$BOB" "the peer moved: punched to 198.18.2.1:* in * ms (*)"
	wait_for 30 path_is a1 bob "$CAROL" punched
	run ntmc b1 carol tunnel ping -c 3 --timeout 20 "$BOB"
	assert_success
}

@test "the peer moved behind a NAT that varies by destination: both punch by birthday probing, and again after a move of this end" {
	run ntmc a1 bob tunnel ping -c 1 --timeout 20 "$CAROL"
	assert_success
	wait_for 20 path_is a1 bob "$CAROL" punched
	lan_move b1 eth2 100.64.8.10 100.64.8.1
	# carol tells bob, whose DC opened the relay session, and bob asks it
	wait_for 30 grep -qF "tunnel $CAROL: the peer moved behind a NAT that varies by destination: asking the DC for the route again" \
	    "$TOPO_DIR/agent-bob.log"
	wait_for 30 path_reason_like a1 bob "$CAROL" "punched to 198.18.8.1:* in * ms (*)"
	wait_for 30 path_reason_like b1 carol "$BOB" "punched to 198.18.2.1:* in * ms (*)"
	# bob moves while carol is behind it: bob tells its candidates, carol
	# takes the hard part (its 256 mappings), bob probes predicted ports
	lan_move a1 eth2 100.64.6.20 100.64.6.1
	wait_for 30 path_reason_like a1 bob "$CAROL" "this end moved: punched to 198.18.8.1:* in * ms (*)"
	wait_for 30 path_reason_like b1 carol "$BOB" "the peer moved: punched to 198.18.6.1:* in * ms (*)"
	assert_equal "$(tunnel_field b1 carol "$BOB" punch_sockets)" 1
	run ntmc b1 carol tunnel ping -c 3 --timeout 20 "$BOB"
	assert_success
}

@test "no leftovers after the run" {
	topo_down "$TOPO_DIR"
	no_leftovers
}
