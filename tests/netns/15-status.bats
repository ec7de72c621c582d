#!/usr/bin/env bats
# ntm status lists the peers this device has tunnels with, like
# `tailscale status`: name, vIPs, online, route and the DC's reason, last
# handshake, bytes each way, RTT.
#
#   srv: AS, DC1, DC2, RS, CS, dnsmasq
#     |
#   ==+============ switch: 198.18.0.0/15 ============
#     |                 |                   |
#   g1 (global)       nat1 (masq)         nat2 (masq)
#   198.18.1.10         |                   |
#                     a1 100.64.2.10      b1 100.64.3.10
#
# bob (a1) has a direct tunnel to alice (g1: one side behind NAT) and a
# relayed one to carol (b1: both behind NAT).

load ../bats/helpers
load lib

setup_file() {
	require_root
	topo_up "$BATS_FILE_TMPDIR/t"
	servers_up
	host_global g1 198.18.1.10
	nat_router nat1 198.18.2.1 100.64.2.1
	nat_router nat2 198.18.3.1 100.64.3.1
	host_behind a1 nat1 100.64.2.10 100.64.2.1
	host_behind b1 nat2 100.64.3.10 100.64.3.1
	client_up g1 alice alice dc1
	client_up a1 bob bob dc2
	client_up b1 carol carol dc1
}

teardown_file() {
	topo_down "$BATS_FILE_TMPDIR/t"
}

setup() { TOPO_DIR=$BATS_FILE_TMPDIR/t; P=$(cat "$TOPO_DIR/prefix"); }

vip_of() { jq -r ".$2" "$TOPO_DIR/$1/session.json"; }

# peer_field FIELD PEER: one field of bob's `ntm status --json` peers.
peer_field() { jq -r --arg p "$2" --arg f "$1" '.peers[] | select(.peer == $p) | .[$f]' \
    <<<"$status"; }

@test "no tunnels yet: status says so, and --json has an empty peers list" {
	run ntmc a1 bob status
	assert_success
	assert_output --partial "peers: none"
	run ntmc a1 bob status --json
	assert_success
	assert_equal "$(jq -c .peers <<<"$output")" "[]"
}

@test "status lists a direct and a relayed peer: route and why, vIPs, bytes, RTT, handshake" {
	local alice carol status
	alice=$(fqdn_of alice) carol=$(fqdn_of carol)
	run ntmc a1 bob tunnel ping -c 2 --timeout 20 "$alice"
	assert_success
	run ntmc a1 bob tunnel ping -c 2 --timeout 20 "$carol"
	assert_success

	run ntmc a1 bob status --json
	assert_success
	status=$output
	assert_equal "$(jq '.peers | length' <<<"$status")" 2
	assert_equal "$(peer_field route "$alice")" direct
	assert_equal "$(peer_field reason "$alice")" "requester behind NAT initiates"
	assert_equal "$(peer_field route "$carol")" relay
	assert_equal "$(peer_field reason "$carol")" "both behind NAT"
	local p
	for p in "$alice" "$carol"; do
		assert_equal "$(peer_field online "$p")" true
		assert_equal "$(peer_field state "$p")" up
		[ "$(peer_field rx_bytes "$p")" -gt 0 ]
		[ "$(peer_field tx_bytes "$p")" -gt 0 ]
		# the RTT of the last ping
		[[ "$(peer_field rtt_ms "$p")" =~ ^[0-9.]+$ ]]
		[[ "$(peer_field last_handshake_s "$p")" =~ ^[0-9]+$ ]]
		[[ "$(peer_field last_rx_s "$p")" =~ ^[0-9]+$ ]]
	done
	assert_equal "$(peer_field vip4 "$alice")" "$(vip_of alice vip4)"
	assert_equal "$(peer_field vip6 "$carol")" "$(vip_of carol vip6)"

	# The same in the human table: one row per peer, with the header.
	run ntmc a1 bob status --offline
	assert_success
	assert_output --regexp 'PEER +VIP4 +VIP6 +STATE +ROUTE +HANDSHAKE +RX +TX +RTT'
	assert_output --regexp "$alice +$(vip_of alice vip4) +$(vip_of alice vip6) +online +direct over IPv4 \\(requester behind NAT initiates\\) +[0-9]+s ago +[0-9.]+ (B|KiB) +[0-9.]+ (B|KiB) +[0-9.]+ ms"
	assert_output --regexp "$carol +$(vip_of carol vip4) +$(vip_of carol vip6) +online +relay over IPv4 \\(both behind NAT\\) +[0-9]+s ago"
}

@test "the relayed and the direct tunnel in the servers' metrics (promtool clean)" {
	local f=$BATS_TEST_TMPDIR r sum
	# After the test before: bob's tunnels to alice (direct) and carol (relay).
	for r in rs dc1 dc2; do
		metrics "$r" > "$f/$r.prom"
		run promtool check metrics < "$f/$r.prom"
		assert_success
		assert_output ''
	done
	[ "$(awk '$1 == "ntm_rs_sessions_created_total" { print $2 }' "$f/rs.prom")" -ge 1 ]
	[ "$(awk '$1 == "ntm_rs_binds_total" { print $2 }' "$f/rs.prom")" -ge 2 ]
	[ "$(awk '$1 == "ntm_rs_forwarded_packets_total" { print $2 }' "$f/rs.prom")" -ge 4 ]
	[ "$(awk '$1 == "ntm_rs_forwarded_bytes_total" { print $2 }' "$f/rs.prom")" -gt 0 ]
	# bob's DC (dc2) made both directions: one direct, one relayed.
	for r in direct relay; do
		sum=$(awk -v s="ntm_dc_tunnels_total{route=\"$r\"}" '$1 == s { n += $2 }
		    END { print n + 0 }' "$f/dc1.prom" "$f/dc2.prom")
		[ "$sum" -ge 1 ]
	done
	# bob's agent: two tunnels up, one per route.
	run ntmc a1 bob status --metrics
	assert_success
	assert_line 'ntm_agent_tunnels{route="direct",state="up"} 1'
	assert_line 'ntm_agent_tunnels{route="relay",state="up"} 1'
}
