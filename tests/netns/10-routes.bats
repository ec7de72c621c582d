#!/usr/bin/env bats
# Route decisions through real NATs (nftables masquerade), end to end.
#
#   srv: AS, DC1 (dc1.ntm.test), DC2 (dc2.ntm.test), RS, CS, dnsmasq
#     |
#   ==+===================== switch: 198.18.0.0/15, fd00:18::/64 ==========
#     |              |                   |                     |
#   g1 (global)    nat1 (masq)         nat2 (masq)          v6 (IPv6 only)
#   198.18.1.10      |                   |                  fd00:18::100
#                  a1 100.64.2.10      b1 100.64.3.10
#                  a2 100.64.2.11
#
# 1. g1 (alice@dc1) <-> a1 (bob@dc2): direct, a1 (behind NAT) initiates.
# 2. a1 (bob@dc2) <-> b1 (carol@dc1): relayed through the RS; a capture on
#    the RS's link never shows the marker sent through the tunnel.
# 3. a1 <-> a2 (dave@dc1), same NAT: direct over local addresses.
# 4. v6 (erin@dc2, IPv6 only) <-> a1 (IPv4 only): relayed, bridged by the RS.

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
	host_behind a2 nat1 100.64.2.11 100.64.2.1
	host_behind b1 nat2 100.64.3.10 100.64.3.1
	host_global v6 "" fd00:18::100
	client_up g1 alice alice dc1
	client_up a1 bob bob dc2
	client_up b1 carol carol dc1
	client_up a2 dave dave dc1
	client_up v6 erin erin dc2
}

teardown_file() {
	topo_down "$BATS_FILE_TMPDIR/t"
}

setup() { TOPO_DIR=$BATS_FILE_TMPDIR/t; P=$(cat "$TOPO_DIR/prefix"); }

@test "registration: the DC sees the NAT (reflexive address differs from local)" {
	run ntmc a1 bob register --json
	assert_success
	assert_equal "$(jf "$output" natted)" true
	[[ "$(jf "$output" reflexive)" == 198.18.2.1:* ]]
	run ntmc g1 alice register --json
	assert_success
	assert_equal "$(jf "$output" natted)" false
	[[ "$(jf "$output" reflexive)" == 198.18.1.10:* ]]
}

@test "1. global <-> behind NAT: direct, the NATed side initiates" {
	local bob alice
	bob=$(fqdn_of bob) alice=$(fqdn_of alice)
	run ntmc g1 alice tunnel ping -c 3 --timeout 20 "$bob"
	assert_success
	assert_equal "$(tunnel_field g1 alice "$bob" route)" direct
	assert_equal "$(tunnel_field g1 alice "$bob" role)" responder
	assert_equal "$(tunnel_field a1 bob "$alice" role)" initiator
	# alice sees bob at the NAT's public address
	[[ "$(tunnel_field g1 alice "$bob" endpoint)" == 198.18.2.1:* ]]
	run ntmc a1 bob tunnel ping -c 2 "$alice"
	assert_success
}

@test "a burst through the NAT goes as UDP GSO runs and arrives whole and in order" {
	local alice
	alice=$(fqdn_of alice)
	ntmc g1 alice tunnel listen --udp 7001 > "$TOPO_DIR/burst.out" 2>&1 &
	local lis=$!
	sleep 1
	seq -f "burst-%06g-0123456789abcdef0123456789abcdef" 1 400 > "$TOPO_DIR/burst.in"
	ntmc a1 bob tunnel open "$alice" --udp 7001 --timeout 10 < "$TOPO_DIR/burst.in" || true
	wait_for 10 bash -c "[ \$(wc -l < '$TOPO_DIR/burst.out') -ge 400 ]" || true
	kill "$lis" 2>/dev/null || true
	run diff "$TOPO_DIR/burst.in" "$TOPO_DIR/burst.out"
	assert_success
	# the runs were sent with GSO and taken apart after GRO
	[ "$(ntmc a1 bob status --json | jq .agent.offload.gso_sends)" -gt 0 ]
	[ "$(ntmc g1 alice status --json | jq .agent.offload.gro_recvs)" -gt 0 ]
}

@test "2. two different NATs: relayed; the RS never sees the plaintext" {
	local carol bob
	carol=$(fqdn_of carol) bob=$(fqdn_of bob)
	# run directly (not through the n() function) so that $! is timeout(1), which
	# hands the INT below to tcpdump
	ip netns exec "${P}srv" timeout 40 tcpdump -i eth0 -U -w "$TOPO_DIR/rs.pcap" udp port 3478 2>/dev/null &
	local cap=$!
	sleep 1
	run ntmc a1 bob tunnel ping -c 2 --timeout 20 "$carol"
	assert_success
	assert_equal "$(tunnel_field a1 bob "$carol" route)" relay
	[[ "$(tunnel_field a1 bob "$carol" endpoint)" == 198.18.0.4:* ]]
	# A marker datagram through the tunnel, UDP between the vIPs.
	ntmc b1 carol tunnel listen --udp 7777 > "$TOPO_DIR/carol.out" 2>&1 &
	local lis=$!
	sleep 1
	echo "MARKER-ntm-relay-$$" | ntmc a1 bob tunnel open "$carol" --udp 7777 --timeout 5 || true
	wait_for 10 grep -q "MARKER-ntm-relay-$$" "$TOPO_DIR/carol.out"
	kill "$lis" 2>/dev/null
	kill -INT "$cap"; wait "$cap" 2>/dev/null || true
	# the RS did carry the traffic ...
	run tcpdump -r "$TOPO_DIR/rs.pcap" -nn 2>/dev/null
	[ "${#lines[@]}" -gt 4 ]
	# ... and never saw the marker.
	run bash -c "tcpdump -r '$TOPO_DIR/rs.pcap' -A 2>/dev/null | grep -c 'MARKER-ntm-relay'"
	assert_output 0
}

@test "a burst through the relay: runs in and out of the RS (GRO/GSO), whole and in order" {
	local carol
	carol=$(fqdn_of carol)
	ntmc b1 carol tunnel listen --udp 7002 > "$TOPO_DIR/rburst.out" 2>&1 &
	local lis=$!
	sleep 1
	seq -f "relay-%06g-0123456789abcdef0123456789abcdef" 1 400 > "$TOPO_DIR/rburst.in"
	ntmc a1 bob tunnel open "$carol" --udp 7002 --timeout 10 < "$TOPO_DIR/rburst.in" || true
	wait_for 10 bash -c "[ \$(wc -l < '$TOPO_DIR/rburst.out') -ge 400 ]" || true
	kill "$lis" 2>/dev/null || true
	run diff "$TOPO_DIR/rburst.in" "$TOPO_DIR/rburst.out"
	assert_success
	run n srv "$NTM_BIN/ntm-rs" -f "$TOPO_DIR/rs.conf" status --json
	[ "$(jq .counters.gro_recvs <<<"$output")" -gt 0 ]
	[ "$(jq .counters.gso_sends <<<"$output")" -gt 0 ]
}

@test "3. same NAT: direct over local addresses" {
	local dave bob
	dave=$(fqdn_of dave) bob=$(fqdn_of bob)
	run ntmc a1 bob tunnel ping -c 2 --timeout 20 "$dave"
	assert_success
	assert_equal "$(tunnel_field a1 bob "$dave" route)" local
	[[ "$(tunnel_field a1 bob "$dave" endpoint)" == 100.64.2.11:* ]]
}

@test "4. IPv6-only <-> IPv4-only: relayed, bridged by the RS" {
	local erin bob
	erin=$(fqdn_of erin) bob=$(fqdn_of bob)
	run ntmc v6 erin tunnel ping -c 2 --timeout 20 "$bob"
	assert_success
	assert_equal "$(tunnel_field v6 erin "$bob" route)" relay
	[[ "$(tunnel_field v6 erin "$bob" endpoint)" == "[fd00:18::4]:"* ]]
	[[ "$(tunnel_field a1 bob "$erin" endpoint)" == 198.18.0.4:* ]]
}

@test "tunnel list shows per-tunnel counters, and close removes it" {
	local bob
	bob=$(fqdn_of bob)
	run ntmc g1 alice tunnel list --json
	assert_success
	[ "$(tunnel_field g1 alice "$bob" tx_packets)" -gt 0 ]
	[ "$(tunnel_field g1 alice "$bob" rx_packets)" -gt 0 ]
	run ntmc g1 alice tunnel close "$bob"
	assert_success
	assert_equal "$(tunnel_field g1 alice "$bob" route)" ""
}
