#!/usr/bin/env bats
# Who asks its DC for a relayed route again (docs/protocol.md §4.6, §4.8):
# the end whose DC made the route, side 0 at the relay (the RS takes a
# session's tickets only from the DC that opened it: other_dc), which is
# not always the handshake initiator. erin starts global and asks for a
# tunnel to carol, who is behind a NAT: direct, carol initiates (§4.5).
# erin moves behind a NAT: her DC makes the route again, relayed, erin
# side 0 and still the handshake responder (an end keeps its role). Both
# run `ntm up --direct-retry 10`.
#
#   srv: AS, DC1, DC2, RS 198.18.0.4, CS, dnsmasq
#     |
#   ==+======================= switch: 198.18.0.0/15 =========================
#     |            |            |            |           |           |           |
#   g1: erin@dc1 nat5 (masq)  nat6 (random) nat8 (masq) nat2 (masq) nat7 (random) nat9 (random)
#   198.18.10.10 198.18.6.1   198.18.7.1   198.18.9.1  198.18.3.1  198.18.8.1   198.18.11.1
#     |            | eth1       | eth2       | eth3      | eth1      | eth2       | eth3
#     +-- erin's LANs ----------+------------+           +-- b1: carol@dc2 -------+
#   global (eth0), then 100.64.6.10, 100.64.7.10;   100.64.3.10 -> 100.64.8.10
#   global, 100.64.6.20; global, 100.64.9.10        -> 100.64.11.10
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
	home_router nat7 198.18.8.1 100.64.8.1 fully-random
	home_router nat8 198.18.9.1 100.64.9.1
	home_router nat9 198.18.11.1 100.64.11.1 fully-random
	host_global g1 198.18.10.10
	lan_link g1 nat5 eth1
	lan_link g1 nat6 eth2
	lan_link g1 nat8 eth3
	host_behind b1 nat2 100.64.3.10 100.64.3.1
	lan_link b1 nat7 eth2
	lan_link b1 nat9 eth3
	client_up g1 erin erin dc1 --direct-retry 10
	client_up b1 carol carol dc2 --direct-retry 10
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

punched_both() { [ "$(erin path)" = punched ] && [ "$(carol path)" = punched ]; }
relayed_both() { [ "$(erin path)" = relayed ] && [ "$(carol path)" = relayed ]; }
erin_retried_more() { [ "$(erin direct_retries)" -gt "$1" ]; }

# side0_responder NAT IF ADDR4 GW4 CAROL_NAT [blocked]: a fresh tunnel,
# relayed and punched (blocked: punching failed), whose side 0 (erin) is
# the handshake responder. erin, global, asks for it while carol is
# behind a NAT (its kind CAROL_NAT at her DC): direct, carol initiates.
# erin moves behind NAT (endpoint-independent) on IF at ADDR4: her DC
# makes the route again, relayed and punching, and she keeps her role.
# Sets TID.
side0_responder() {
	local old
	ntmc g1 erin tunnel close "$CAROL" >/dev/null 2>&1 || true
	ntmc b1 carol tunnel close "$ERIN" >/dev/null 2>&1 || true
	old=$(n g1 ip -4 -o addr show scope global | awk '{ print $2, $4 }')
	if [ "${old#* }" != 198.18.10.10/15 ]; then
		n g1 ip -batch - <<-IPB
		addr add 198.18.10.10/15 dev eth0
		route del default
		addr del ${old#* } dev ${old%% *}
		IPB
	fi
	wait_for 20 dc_nat_is dc1 erin none
	wait_for 20 dc_nat_is dc2 carol "$5"
	run ntmc g1 erin tunnel ping -c 1 --timeout 20 "$CAROL"
	assert_success
	field_is erin route direct
	field_is erin role responder
	field_is carol role initiator
	TID=$(erin tunnel_id)
	# Her ask waits at NAT until her DC has her NAT's kind (her first
	# registration from there still says none, and a route decided then
	# would not punch): its SYN is dropped meanwhile, and a retransmitted
	# one goes through.
	n "$1" nft -f - <<-NFT
	table inet holdask {
		chain hold {
			type filter hook forward priority -10;
			ip saddr $3 ip daddr 198.18.0.2 tcp dport ${PORT[dc1]} drop
		}
	}
	NFT
	lan_move g1 "$2" "$3" "$4"
	wait_for 20 dc_nat_is dc1 erin endpoint-independent
	n "$1" nft delete table inet holdask
	wait_for 30 field_is erin route relay
	wait_for 30 field_is carol route relay
	field_is erin relay_side 0
	field_is erin role responder
	field_is carol relay_side 1
	field_is carol role initiator
	if [ "${6:-}" = blocked ]; then
		wait_for 30 path_reason_like g1 erin "$CAROL" "no answer from the peer's *: relayed"
	else
		wait_for 30 punched_both
	fi
	assert_equal "$(erin tunnel_id)" "$TID"
}

@test "side 0, the handshake responder, moves behind a per-destination NAT: it asks its DC for the route, not the peer (the relay refuses no ticket)" {
	local od le lc
	side0_responder nat5 eth1 100.64.6.10 100.64.6.1 endpoint-independent
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
	assert_equal "$(erin tunnel_id)" "$TID"
	assert_equal "$(erin relay_side)" 0
	run ntmc b1 carol tunnel ping -c 3 --timeout 20 "$ERIN"
	assert_success
}

@test "side 1, the handshake initiator, moves behind a per-destination NAT: it tells side 0, whose DC makes the route again (the relay refuses no ticket)" {
	local od le lc
	side0_responder nat5 eth1 100.64.6.20 100.64.6.1 endpoint-independent
	ping_stream_start g1 erin "$CAROL"
	od=$(rs_other_dc)
	le=$(wc -l < "$TOPO_DIR/agent-erin.log")
	lc=$(wc -l < "$TOPO_DIR/agent-carol.log")
	lan_move b1 eth2 100.64.8.10 100.64.8.1
	wait_for 30 bash -c "tail -n +$((lc + 1)) '$TOPO_DIR/agent-carol.log' |
	    grep -qF 'tunnel $ERIN: route relay -> relay'"
	wait_for 30 path_reason_like g1 erin "$CAROL" "punched to 198.18.8.1:* in * ms (*)"
	wait_for 30 path_reason_like b1 carol "$ERIN" "punched to 198.18.6.1:* in * ms (*)"
	wait_for 30 replies_after_at_least "$(date +%s%N)" 20
	ping_stream_stop
	assert_equal "$(rs_other_dc)" "$od"
	# carol told, erin asked
	run grep -F "tunnel $ERIN: this end moved behind a NAT that varies by destination: relayed, the peer asks its DC again" \
	    <(tail -n +$((lc + 1)) "$TOPO_DIR/agent-carol.log")
	assert_success
	run grep -F "tunnel $CAROL: the peer moved behind a NAT that varies by destination: asking the DC for the route again" \
	    <(tail -n +$((le + 1)) "$TOPO_DIR/agent-erin.log")
	assert_success
	assert_equal "$(carol tunnel_id)" "$TID"
	assert_equal "$(erin relay_side)" 0
	assert_equal "$(carol relay_side)" 1
	run ntmc b1 carol tunnel ping -c 3 --timeout 20 "$ERIN"
	assert_success
}

@test "punching failed behind a block: side 0, the handshake responder, tries again on the timer, not the per-destination initiator (the relay refuses no ticket)" {
	local od
	od=$(rs_other_dc)
	# carol behind nat9 (per destination), erin behind nat8; the way
	# between the two NATs shut: punching fails. (The tunnel moves to
	# the relay with a new handshake there, so the closed tunnels'
	# sessions idling at the relay with either address do not matter,
	# §4.4; 27-relay-rehs.bats.)
	ntmc g1 erin tunnel close "$CAROL" >/dev/null 2>&1 || true
	ntmc b1 carol tunnel close "$ERIN" >/dev/null 2>&1 || true
	lan_move b1 eth3 100.64.11.10 100.64.11.1
	nat_block nat8 198.18.11.1
	side0_responder nat8 eth3 100.64.9.10 100.64.9.1 varies-by-destination blocked
	# erin's try on the timer (10 s) fails while the block stays
	wait_for 40 erin_retried_more 0
	ping_stream_start b1 carol "$ERIN"
	nat_unblock nat8
	wait_for 60 punched_both
	wait_for 20 replies_after_at_least "$(date +%s%N)" 20
	ping_stream_stop
	[[ "$(erin path_reason)" == "trying direct again: punched to 198.18.11.1:"* ]]
	[[ "$(carol path_reason)" == "the peer tries direct again: punched to 198.18.9.1:"* ]]
	assert_equal "$(carol direct_retries)" 0
	assert_equal "$(rs_other_dc)" "$od"
	assert_equal "$(erin relay_side)" 0
}

@test "no leftovers after the run" {
	topo_down "$TOPO_DIR"
	no_leftovers
}
