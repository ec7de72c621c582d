#!/usr/bin/env bats
# ntm netcheck behind real nftables NAT: the reflection probes to the DC
# and to the RS (different addresses and ports) tell the NAT kinds apart.
#
#   srv: AS, DC1 198.18.0.2:4501, RS 198.18.0.4:3478 (+ fd00:18::2, ::4), dnsmasq
#     |
#   ==+================== switch: 198.18.0.0/15 + fd00:18::/64 ==================
#     |                       |                            |
#   g1 (global)             nat1 (masquerade)            nat2 (masquerade fully-random)
#   198.18.1.10               |                            |
#   fd00:18::10             a1 100.64.2.10               b1 100.64.3.10
#
# g1 has no NAT (either family); nat1's masquerade keeps one mapping per
# source port whatever the destination (endpoint-independent, as Linux
# does); nat2's fully-random (iptables: --random-fully) takes a new port
# for each destination.

load ../bats/helpers
load lib

setup_file() {
	require_root
	topo_up "$BATS_FILE_TMPDIR/t"
	servers_up
	host_global g1 198.18.1.10 fd00:18::10
	nat_router nat1 198.18.2.1 100.64.2.1
	nat_router nat2 198.18.3.1 100.64.3.1
	n nat2 nft flush ruleset
	n nat2 nft -f - <<-NFT
	table ip nat {
		chain post {
			type nat hook postrouting priority srcnat;
			oifname "wan" masquerade fully-random
		}
	}
	NFT
	host_behind a1 nat1 100.64.2.10 100.64.2.1
	host_behind b1 nat2 100.64.3.10 100.64.3.1
	login_in g1 alice
	login_in a1 bob
	login_in b1 carol
}

teardown_file() {
	topo_down "$BATS_FILE_TMPDIR/t"
}

setup() { TOPO_DIR=$BATS_FILE_TMPDIR/t; P=$(cat "$TOPO_DIR/prefix"); }

# login_in NS USER: USER logs in to dc1 from NS (no agent: netcheck needs none).
login_in() {
	local prof=$TOPO_DIR/$2
	printf '%s-pw\n' "$2" | "$NTM_BIN/ntm-as" -f "$TOPO_DIR/as.conf" user add "$2"
	mkdir -p -m 700 "$prof"
	printf 'resolver = 198.18.0.53:53\n' > "$prof/ntm.conf"
	printf '%s-pw\n' "$2" | n "$1" "$NTM_BIN/ntm" -c "$prof" login --ca "$TOPO_DIR/as/ca.crt" \
	    -u "$2" --password-file - "https://198.18.0.2:${PORT[dc1]}" >/dev/null
}

# netcheck NS USER: `ntm netcheck --json` of USER in NS, into $j.
netcheck() {
	run ntmc "$1" "$2" netcheck --json
	echo "$1: $output" >&3
	assert_success
	j=$output
}

@test "a global host: no NAT over IPv4 and IPv6, both servers saw the local address" {
	netcheck g1 alice
	assert_equal "$(jq -r .ipv4.nat <<<"$j")" none
	assert_equal "$(jq -r .ipv4.natted <<<"$j")" false
	assert_equal "$(jq -r .ipv4.dc.addr <<<"$j")" "198.18.0.2:${UDP[dc1]}"
	assert_equal "$(jq -r .ipv4.relay.addr <<<"$j")" "198.18.0.4:${UDP[rs]}"
	assert_equal "$(jq -r .ipv4.local <<<"$j" | cut -d: -f1)" 198.18.1.10
	assert_equal "$(jq -r .ipv4.dc.reflexive <<<"$j")" "$(jq -r .ipv4.local <<<"$j")"
	assert_equal "$(jq -r .ipv4.relay.reflexive <<<"$j")" "$(jq -r .ipv4.local <<<"$j")"
	assert_equal "$(jq -r .ipv6.nat <<<"$j")" none
	assert_equal "$(jq -r .ipv6.dc.addr <<<"$j")" "[fd00:18::2]:${UDP[dc1]}"
	assert_equal "$(jq -r .ipv6.relay.addr <<<"$j")" "[fd00:18::4]:${UDP[rs]}"
	assert_equal "$(jq -r .ipv6.reflexive <<<"$j")" "$(jq -r .ipv6.local <<<"$j")"
	assert_equal "$(jq -r '.ipv6.relay.rtt_us | type' <<<"$j")" number
}

@test "behind masquerade: natted, the same mapping toward the DC and the RS (endpoint-independent)" {
	netcheck a1 bob
	assert_equal "$(jq -r .ipv4.nat <<<"$j")" endpoint-independent
	assert_equal "$(jq -r .ipv4.natted <<<"$j")" true
	assert_equal "$(jq -r .ipv4.mapping_varies_by_dest <<<"$j")" false
	assert_equal "$(jq -r .ipv4.local <<<"$j" | cut -d: -f1)" 100.64.2.10
	assert_equal "$(jq -r .ipv4.reflexive <<<"$j" | cut -d: -f1)" 198.18.2.1
	assert_equal "$(jq -r .ipv4.dc.reflexive <<<"$j")" "$(jq -r .ipv4.relay.reflexive <<<"$j")"
	# No IPv6 behind this NAT: not tested, and why.
	assert_equal "$(jq -r .ipv6.tested <<<"$j")" false
	[[ "$(jq -r .ipv6.error <<<"$j")" == "no route to "* ]]
	run ntmc a1 bob netcheck
	assert_success
	assert_line "	* IPv4 NAT: yes, endpoint-independent mapping"
}

@test "behind masquerade fully-random (random-fully): natted, the mapping varies by destination" {
	netcheck b1 carol
	assert_equal "$(jq -r .ipv4.nat <<<"$j")" varies-by-destination
	assert_equal "$(jq -r .ipv4.natted <<<"$j")" true
	assert_equal "$(jq -r .ipv4.mapping_varies_by_dest <<<"$j")" true
	assert_equal "$(jq -r .ipv4.dc.reflexive <<<"$j" | cut -d: -f1)" 198.18.3.1
	assert_equal "$(jq -r .ipv4.relay.reflexive <<<"$j" | cut -d: -f1)" 198.18.3.1
	[ "$(jq -r .ipv4.dc.reflexive <<<"$j")" != "$(jq -r .ipv4.relay.reflexive <<<"$j")" ]
	run ntmc b1 carol netcheck
	assert_success
	assert_line "	* IPv4 NAT: yes, the mapping varies by destination"
}

# agent_up NS USER: USER's agent (logged in already) in NS, registered.
agent_up() {
	bg "$1" "agent-$2" "$NTM_BIN/ntm" -c "$TOPO_DIR/$2" -v up -d >/dev/null
	wait_for 15 agent_registered "$1" "$TOPO_DIR/$2"
}
# nat_is USER KIND: dc1 keeps KIND as the NAT kind of USER's device.
nat_is() {
	[ "$("$NTM_BIN/ntm-dc" -f "$TOPO_DIR/dc1.conf" client list --json |
	    jq -r --arg f "$(fqdn_of "$1")" '.[] | select(.fqdn == $f) | .location.nat')" = "$2" ]
}

@test "each agent finds its NAT kind from its own socket and registers it: the DC keeps none, endpoint-independent, varies-by-destination" {
	agent_up g1 alice
	agent_up a1 bob
	agent_up b1 carol
	wait_for 15 nat_is alice none
	wait_for 15 nat_is bob endpoint-independent
	wait_for 15 nat_is carol varies-by-destination
	grep -q "nat: endpoint-independent (the DC saw 198.18.2.1:" "$TOPO_DIR/agent-bob.log"
	# ntm-dc status counts the online devices of each kind.
	wait_for 10 dc_status_is nat_varies_by_destination 1
	run "$NTM_BIN/ntm-dc" -f "$TOPO_DIR/dc1.conf" status --json
	assert_equal "$(jq -r '.udp | [.nat_none, .nat_endpoint_independent, .nat_varies_by_destination] | join(" ")' <<<"$output")" "1 1 1"
	run "$NTM_BIN/ntm-dc" -f "$TOPO_DIR/dc1.conf" status
	assert_line --regexp "^nat_endpoint_independent +1$"
}

# dc_status_is KEY N: dc1's status (rewritten every 2 s) has .udp.KEY == N.
dc_status_is() {
	[ "$("$NTM_BIN/ntm-dc" -f "$TOPO_DIR/dc1.conf" status --json | jq -r ".udp.$1")" = "$2" ]
}

@test "after a move behind a NAT that maps per destination, the agent finds it again and the DC learns it" {
	wait_for 15 nat_is bob endpoint-independent
	# nat1 now takes a new port for each destination; bob's host moves to
	# another address on its LAN, so its datagrams make new mappings.
	n nat1 nft flush ruleset
	n nat1 nft -f - <<-NFT
	table ip nat {
		chain post {
			type nat hook postrouting priority srcnat;
			oifname "wan" masquerade fully-random
		}
	}
	NFT
	n a1 ip addr add 100.64.2.20/24 dev eth1
	n a1 ip addr del 100.64.2.10/24 dev eth1
	wait_for 30 nat_is bob varies-by-destination
	grep -q "nat: varies-by-destination" "$TOPO_DIR/agent-bob.log"
}

@test "no leftovers after the run" {
	topo_down "$TOPO_DIR"
	no_leftovers
}
