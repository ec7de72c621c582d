#!/usr/bin/env bats
# A relayed tunnel with one end behind a NAT that maps per destination
# (birthday probing, docs/protocol.md §4.8) tries the direct path again:
# on the timer (--direct-retry), and after a move of either end, at once.
# bob is behind endpoint-independent NATs, carol behind per-destination
# ones (masquerade fully-random); nat_block on bob's router keeps the two
# from reaching each other while a test wants the tunnel relayed.
#
#   srv: AS, DC1, DC2, RS 198.18.0.4, CS, dnsmasq
#     |
#   ==+====================== switch: 198.18.0.0/15 =======================
#     |               |                  |                  |              |
#   nat1 (masq)     nat5 (masq)        nat2 (random)      nat7 (random)  nat8 (random)
#   198.18.2.1      198.18.6.1         198.18.3.1         198.18.8.1     198.18.9.1
#     | eth1          | eth2             | eth1             | eth2         |
#     +-- a1: bob@dc1 --+                +-- b1: carol@dc2 --+           d1: dave@dc2
#       100.64.2.10 -> 100.64.6.10         100.64.3.10 -> 100.64.8.10    100.64.9.10
#       -> 100.64.2.40
#
# bob runs `ntm up --direct-retry 10`, carol and dave `--direct-retry off`:
# only a tunnel bob asked for tries again on the timer (the requester's),
# so a tunnel carol or dave asked for goes direct again only by a move.

load ../bats/helpers
load lib

setup_file() {
	require_root
	topo_up "$BATS_FILE_TMPDIR/t"
	NTM_PUNCH=1 servers_up
	home_router nat1 198.18.2.1 100.64.2.1
	home_router nat5 198.18.6.1 100.64.6.1
	home_router nat2 198.18.3.1 100.64.3.1 fully-random
	home_router nat7 198.18.8.1 100.64.8.1 fully-random
	home_router nat8 198.18.9.1 100.64.9.1 fully-random
	host_behind a1 nat1 100.64.2.10 100.64.2.1
	lan_link a1 nat5 eth2
	host_behind b1 nat2 100.64.3.10 100.64.3.1
	lan_link b1 nat7 eth2
	host_behind d1 nat8 100.64.9.10 100.64.9.1
	client_up a1 bob bob dc1 --direct-retry 10
	client_up b1 carol carol dc2 --direct-retry off
	client_up d1 dave dave dc2 --direct-retry off
	wait_for 20 dc_nat_is dc1 bob endpoint-independent
	wait_for 20 dc_nat_is dc2 carol varies-by-destination
}

teardown_file() { topo_down "$BATS_FILE_TMPDIR/t"; }

setup() {
	TOPO_DIR=$BATS_FILE_TMPDIR/t
	P=$(cat "$TOPO_DIR/prefix")
	BOB=$(fqdn_of bob) CAROL=$(fqdn_of carol) DAVE=$(fqdn_of dave)
}

bob() { tunnel_field a1 bob "$CAROL" "$1"; }
carol() { tunnel_field b1 carol "$BOB" "$1"; }
bob_dave() { tunnel_field a1 bob "$DAVE" "$1"; }
dave() { tunnel_field d1 dave "$BOB" "$1"; }
punched_both() { [ "$(bob path)" = punched ] && [ "$(carol path)" = punched ]; }
punched_dave() { [ "$(bob_dave path)" = punched ] && [ "$(dave path)" = punched ]; }
relayed_both() { [ "$(bob path)" = relayed ] && [ "$(carol path)" = relayed ]; }
# settled WHO: its tunnel is there, relayed, and punching gave up
settled() {
	local r
	r=$("$1" path_reason) || return 1
	[ "$("$1" path)" = relayed ] && [[ $r == *"no answer from the peer's "*": relayed" ]]
}
retried() { [ "$(bob direct_retries)" -ge "$1" ]; }
closed() {
	ntmc a1 bob tunnel close "$CAROL" > /dev/null 2>&1 || true
	ntmc b1 carol tunnel close "$BOB" > /dev/null 2>&1 || true
	ntmc a1 bob tunnel close "$DAVE" > /dev/null 2>&1 || true
	ntmc d1 dave tunnel close "$BOB" > /dev/null 2>&1 || true
}

@test "one end per destination: a punched path lost behind a block is punched again by birthday probing on the timer, the relay carrying the traffic meanwhile" {
	local tid lost
	run ntmc a1 bob tunnel ping -c 1 --timeout 20 "$CAROL"
	assert_success
	wait_for 30 punched_both
	[[ "$(bob path_reason)" == "punched to 198.18.3.1:"* ]]
	tid=$(bob tunnel_id)
	# the punched path dies: both fall back to the relay when it falls silent
	nat_block nat1 198.18.3.1
	wait_for 60 relayed_both
	[[ "$(bob path_reason)" == *"back on the relay"* ]]
	# the tries on the timer fail while the block stays
	wait_for 40 retried 1
	wait_for 30 settled bob
	assert_equal "$(bob path)" relayed
	# traffic goes on over the relay; once the way is open, the next try
	# (within --direct-retry x 2 after the one that failed) punches through
	ping_stream_start b1 carol "$BOB"
	nat_unblock nat1
	wait_for 60 punched_both
	wait_for 20 replies_after_at_least "$(date +%s%N)" 20
	ping_stream_stop
	retried 2
	[[ "$(bob path_reason)" == "trying direct again: punched to 198.18.3.1:"*" ms ("* ]]
	[[ "$(carol path_reason)" == "the peer tries direct again: punched to 198.18.2.1:"* ]]
	# the hard end took its part: its punched path is from one extra socket
	assert_equal "$(carol punch_sockets)" 1
	# the same tunnel, no move counted, nothing of the stream lost on the switch
	assert_equal "$(bob tunnel_id)" "$tid"
	assert_equal "$(carol tunnel_id)" "$tid"
	assert_equal "$(bob repunches)" 0
	assert_equal "$(carol repunches)" 0
	lost=$(lost_echoes)
	echo "# echoes lost across relayed -> punched: $lost of $(grep -c time= "$TOPO_DIR/stream")" >&3
	[ "$lost" -le 3 ]
}

@test "one end per destination, relayed, no timer: the endpoint-independent end moves and both punch by birthday probing at once" {
	closed
	# carol asks (her --direct-retry is off); the way between the first
	# two NATs is shut, so birthday probing fails and both stay relayed
	nat_block nat1 198.18.3.1
	run ntmc b1 carol tunnel ping -c 1 --timeout 20 "$BOB"
	assert_success
	wait_for 30 settled carol
	wait_for 30 settled bob
	assert_equal "$(carol direct_retry_s)" null
	# bob moves to another endpoint-independent NAT, where nothing is shut
	lan_move a1 eth2 100.64.6.10 100.64.6.1
	wait_for 40 punched_both
	[[ "$(bob path_reason)" == "this end moved: punched to 198.18.3.1:"* ]]
	[[ "$(carol path_reason)" == "the peer moved: punched to 198.18.6.1:"* ]]
	assert_equal "$(carol direct_retries)" 0
	assert_equal "$(carol punch_sockets)" 1
	run ntmc b1 carol tunnel ping -c 2 --timeout 10 "$BOB"
	assert_success
	nat_unblock nat1
}

@test "one end per destination, relayed, no timer: the per-destination end moves, asks its DC for the route again, and both punch at once" {
	local tid
	closed
	nat_block nat5 198.18.3.1
	run ntmc b1 carol tunnel ping -c 1 --timeout 20 "$BOB"
	assert_success
	wait_for 30 settled carol
	wait_for 30 settled bob
	tid=$(carol tunnel_id)
	# carol moves behind another per-destination NAT, where nothing is shut
	lan_move b1 eth2 100.64.8.10 100.64.8.1
	wait_for 40 punched_both
	[[ "$(bob path_reason)" == "punched to 198.18.8.1:"* ]]
	[[ "$(carol path_reason)" == "punched to 198.18.6.1:"* ]]
	grep -q "tunnel $BOB: this end moved behind a NAT that varies by destination: asking the DC for the route again" \
	    "$TOPO_DIR/agent-carol.log"
	# the same tunnel (the DC's route again keeps the session)
	assert_equal "$(carol tunnel_id)" "$tid"
	assert_equal "$(bob tunnel_id)" "$tid"
	assert_equal "$(carol direct_retries)" 0
	run ntmc a1 bob tunnel ping -c 2 --timeout 10 "$CAROL"
	assert_success
	nat_unblock nat5
}

@test "one agent, two relayed tunnels to per-destination peers: after its move (seen in two steps), one birthday run at a time, and both punched" {
	local at
	closed
	# bob is behind nat5 (above); shut the way from there to carol's and dave's NATs
	nat_block nat5 198.18.8.1
	nat_block nat5 198.18.9.1
	run ntmc b1 carol tunnel ping -c 1 --timeout 20 "$BOB"
	assert_success
	run ntmc d1 dave tunnel ping -c 1 --timeout 20 "$BOB"
	assert_success
	wait_for 30 settled carol
	wait_for 30 settled dave
	wait_for 30 settled bob
	wait_for 30 settled bob_dave
	at=$(wc -l < "$TOPO_DIR/agent-bob.log")
	# bob moves back behind nat1, where nothing is shut: the new address
	# first (still going out through nat5), then the rest; each step
	# starts the punching again, and each time one of the two tunnels
	# waits for the other's run to end (the same one: the other's run is
	# in flight). A busy host may show the move as two changes anyway.
	lan_move a1 eth1 100.64.2.40 100.64.2.1 steps
	wait_for 40 punched_both
	wait_for 40 punched_dave
	run bash -c "tail -n +$((at + 1)) '$TOPO_DIR/agent-bob.log' | sed -n 's/.* tunnel \([^ ]*\): this end moved .*: punching again after the birthday probing in flight\$/\1/p' | sort -u"
	assert_success
	assert_equal "${#lines[@]}" 1
	[[ $output == "$CAROL" || $output == "$DAVE" ]]
	run ntmc d1 dave tunnel ping -c 2 --timeout 10 "$BOB"
	assert_success
	nat_unblock nat5
}

@test "no leftovers after the run" {
	topo_down "$TOPO_DIR"
	no_leftovers
}
