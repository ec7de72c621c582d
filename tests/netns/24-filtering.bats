#!/usr/bin/env bats
# The filtering test of ntm netcheck (docs/protocol.md §4.7) behind real
# nftables routers: the RS answers a probe from its other port (the relay
# port + 1) and whether that answer gets in tells how the path filters.
#
#   srv: AS, DC1 198.18.0.2:4501, RS 198.18.0.4:3478 (other port 3479), dnsmasq
#     |
#   ==+========================= switch: 198.18.0.0/15 + fd00:18::/64 ==========================
#     |                    |                       |                        |
#   g1 (global)          hr1 (home_router)       fr1 (nat_router +        dr1 (dmz_router:
#   198.18.1.10            |                      forward_filter)          every UDP to d1)
#   fd00:18::10          h1 100.64.2.10            |                        |
#                                                 f1 100.64.3.10           d1 100.64.4.10
#
#   ar1 (addr_restricted_router) 198.18.5.1 - a1 100.64.5.10
#   pr1 (port_restricted_router) 198.18.6.1 - p1 100.64.6.10
#
# Linux conntrack lets in only what answers the exact address:port sent
# to, so hr1 and fr1 filter port-dependently; dr1 forwards any UDP to its
# exposed host; g1 has nothing in the way. ar1 lets in any port of an
# address a1 sent to, pr1 only the address:port p1 sent to. Later the RS
# gets a second address, 198.18.0.6 (probe_alt_addr), which tells
# endpoint-independent filtering (dr1) from address-dependent (ar1).

load ../bats/helpers
load lib

setup_file() {
	require_root
	topo_up "$BATS_FILE_TMPDIR/t"
	NTM_PUNCH=1 servers_up
	host_global g1 198.18.1.10 fd00:18::10
	home_router hr1 198.18.2.1 100.64.2.1
	host_behind h1 hr1 100.64.2.10 100.64.2.1
	nat_router fr1 198.18.3.1 100.64.3.1
	forward_filter fr1
	host_behind f1 fr1 100.64.3.10 100.64.3.1
	dmz_router dr1 198.18.4.1 100.64.4.1 100.64.4.10
	host_behind d1 dr1 100.64.4.10 100.64.4.1
	addr_restricted_router ar1 198.18.5.1 100.64.5.1 100.64.5.10
	host_behind a1 ar1 100.64.5.10 100.64.5.1
	port_restricted_router pr1 198.18.6.1 100.64.6.1 100.64.6.10
	host_behind p1 pr1 100.64.6.10 100.64.6.1
	n srv ip addr add 198.18.0.6/15 dev eth0
	login_in g1 alice
	login_in h1 bob
	login_in f1 carol
	login_in d1 dave
	login_in a1 erin
	login_in p1 frank
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

rs_alt_answered() {
	"$NTM_BIN/ntm-rs" -f "$TOPO_DIR/rs.conf" status --json | jq -r .counters.probes_alt_answered
}

@test "the RS opens its other port next to the relay port and says so in status" {
	run "$NTM_BIN/ntm-rs" -f "$TOPO_DIR/rs.conf" status --json
	assert_equal "$(jq -c .probe_alt <<<"$output")" "[\"[::]:$((UDP[rs] + 1))\"]"
	grep -q "probes: the other port is udp \[::\]:$((UDP[rs] + 1))" "$TOPO_DIR/rs.log"
}

@test "a global host: no NAT and nothing filters, over IPv4 and IPv6 (the other port's answer came in)" {
	netcheck g1 alice
	assert_equal "$(jq -r .ipv4.nat <<<"$j")" none
	assert_equal "$(jq -r .ipv4.filtering <<<"$j")" none
	assert_equal "$(jq -r .ipv4.relay.other_port <<<"$j")" "$((UDP[rs] + 1))"
	assert_equal "$(jq -r .ipv6.nat <<<"$j")" none
	assert_equal "$(jq -r .ipv6.filtering <<<"$j")" none
	run ntmc g1 alice netcheck
	assert_success
	assert_line "	* IPv4 filtering: none (no NAT, and the relay's answer from its other port came in)"
}

@test "behind a home router (masquerade, conntrack): endpoint-independent mapping, port-dependent filtering" {
	local before
	before=$(rs_alt_answered)
	netcheck h1 bob
	assert_equal "$(jq -r .ipv4.nat <<<"$j")" endpoint-independent
	assert_equal "$(jq -r .ipv4.filtering <<<"$j")" port-dependent
	assert_equal "$(jq -r .ipv4.relay.other_port <<<"$j")" "$((UDP[rs] + 1))"
	run ntmc h1 bob netcheck
	assert_success
	assert_line "	* IPv4 filtering: port-dependent (the relay's answer from its other port never came in)"
	# The RS did send them (3 a run, one a probe): the router dropped them.
	wait_for 10 bash -c "[ \"\$(\"$NTM_BIN/ntm-rs\" -f \"$TOPO_DIR/rs.conf\" status --json |
	    jq -r .counters.probes_alt_answered)\" -ge $((before + 6)) ]"
}

@test "behind a router that forwards from wan only replies (forward_filter): port-dependent" {
	netcheck f1 carol
	assert_equal "$(jq -r .ipv4.nat <<<"$j")" endpoint-independent
	assert_equal "$(jq -r .ipv4.filtering <<<"$j")" port-dependent
}

@test "behind a router with an exposed (DMZ) host: the other port's answer gets in: address-dependent-or-less" {
	netcheck d1 dave
	assert_equal "$(jq -r .ipv4.nat <<<"$j")" endpoint-independent
	assert_equal "$(jq -r .ipv4.reflexive <<<"$j" | cut -d: -f1)" 198.18.4.1
	assert_equal "$(jq -r .ipv4.filtering <<<"$j")" address-dependent-or-less
	run ntmc d1 dave netcheck
	assert_success
	assert_line "	* IPv4 filtering: address-dependent-or-less (the relay's answer from its other port came in)"
}

# agent_up NS USER: USER's agent (logged in already) in NS, registered.
agent_up() {
	bg "$1" "agent-$2" "$NTM_BIN/ntm" -c "$TOPO_DIR/$2" -v up -d >/dev/null
	wait_for 15 agent_registered "$1" "$TOPO_DIR/$2"
}
# agent_filter_is NS USER KIND: `ntm status --json` of USER's agent says KIND.
agent_filter_is() {
	[ "$(ntmc "$1" "$2" status --json | jq -r .agent.registration.filtering)" = "$3" ]
}

@test "each agent makes the test from its own socket: ntm status --json shows its NAT kind and filtering" {
	agent_up g1 alice
	agent_up h1 bob
	agent_up d1 dave
	wait_for 20 agent_filter_is g1 alice none
	wait_for 20 agent_filter_is h1 bob port-dependent
	wait_for 20 agent_filter_is d1 dave address-dependent-or-less
	run ntmc h1 bob status --json
	assert_equal "$(jq -r .agent.registration.nat <<<"$output")" endpoint-independent
	grep -q "nat: filtering port-dependent (the relay's answer from its other port never came in)" \
	    "$TOPO_DIR/agent-bob.log"
}

@test "an RS with one address: an address-restricted router is address-dependent-or-less, a port-restricted one port-dependent" {
	netcheck a1 erin
	assert_equal "$(jq -r .ipv4.nat <<<"$j")" endpoint-independent
	assert_equal "$(jq -r .ipv4.filtering <<<"$j")" address-dependent-or-less
	assert_equal "$(jq -r .ipv4.relay.other_addr <<<"$j")" null
	netcheck p1 frank
	assert_equal "$(jq -r .ipv4.filtering <<<"$j")" port-dependent
}

@test "probe_alt_addr: the RS answers from its second address too, and says so" {
	echo "probe_alt_addr = 198.18.0.6" >> "$TOPO_DIR/rs.conf"
	restart_server rs
	run "$NTM_BIN/ntm-rs" -f "$TOPO_DIR/rs.conf" status --json
	assert_success
	local alt
	alt=$(jq -r .probe_alt_addr <<<"$output")
	[[ $alt == 198.18.0.6:* ]]
	assert_equal "$(jq -c .probe_alt <<<"$output")" "[\"[::]:$((UDP[rs] + 1))\"]"
	grep -q "probes: the other address is udp $alt" "$TOPO_DIR/rs.log"
	run "$NTM_BIN/ntm-rs" -f "$TOPO_DIR/rs.conf" status
	assert_line --partial "probes' other address $alt"
}

@test "with the RS's second address: none, endpoint-independent, address-dependent, port-dependent" {
	local alt before
	alt=$("$NTM_BIN/ntm-rs" -f "$TOPO_DIR/rs.conf" status --json | jq -r .probe_alt_addr)
	netcheck g1 alice
	assert_equal "$(jq -r .ipv4.filtering <<<"$j")" none
	assert_equal "$(jq -r .ipv4.relay.other_addr <<<"$j")" "$alt"
	# IPv6: the second address is IPv4 only, so the port test decides.
	assert_equal "$(jq -r .ipv6.filtering <<<"$j")" none
	assert_equal "$(jq -r .ipv6.relay.other_addr <<<"$j")" null
	netcheck d1 dave
	assert_equal "$(jq -r .ipv4.nat <<<"$j")" endpoint-independent
	assert_equal "$(jq -r .ipv4.filtering <<<"$j")" endpoint-independent
	run ntmc d1 dave netcheck
	assert_line "	* IPv4 filtering: endpoint-independent (the relay's answer from its other address came in)"
	before=$("$NTM_BIN/ntm-rs" -f "$TOPO_DIR/rs.conf" status --json |
	    jq -r .counters.probes_alt_addr_answered)
	netcheck a1 erin
	assert_equal "$(jq -r .ipv4.nat <<<"$j")" endpoint-independent
	assert_equal "$(jq -r .ipv4.filtering <<<"$j")" address-dependent
	run ntmc a1 erin netcheck
	assert_line "	* IPv4 filtering: address-dependent (the relay's answer from its other port came in, from its other address never)"
	# The RS did answer from its second address: the router dropped it.
	wait_for 10 bash -c "[ \"\$(\"$NTM_BIN/ntm-rs\" -f \"$TOPO_DIR/rs.conf\" status --json |
	    jq -r .counters.probes_alt_addr_answered)\" -gt $before ]"
	netcheck p1 frank
	assert_equal "$(jq -r .ipv4.filtering <<<"$j")" port-dependent
	netcheck h1 bob
	assert_equal "$(jq -r .ipv4.filtering <<<"$j")" port-dependent
}

@test "with the RS's second address: the agent finds its filtering from its own socket" {
	agent_up a1 erin
	agent_up p1 frank
	wait_for 20 agent_filter_is a1 erin address-dependent
	wait_for 20 agent_filter_is p1 frank port-dependent
	grep -q "nat: filtering address-dependent (the relay's answer from its other port came in, from its other address never)" \
	    "$TOPO_DIR/agent-erin.log"
	# dave's agent found address-dependent-or-less before the RS had a
	# second address; its router's public address changes (a move, for
	# the agent): it probes again and finds endpoint-independent.
	agent_filter_is d1 dave address-dependent-or-less
	n dr1 ip addr add 198.18.4.2/15 dev wan
	n dr1 ip addr del 198.18.4.1/15 dev wan
	wait_for 30 agent_filter_is d1 dave endpoint-independent
}

# dc_filter_count KIND N: dc1's status counts N online devices of KIND.
dc_filter_count() {
	[ "$("$NTM_BIN/ntm-dc" -f "$TOPO_DIR/dc1.conf" status --json | jq -r ".udp.filter_$1")" = "$2" ]
}

# reason_is NS USER PEER TEXT: USER's tunnel to PEER was routed for TEXT.
reason_is() { [ "$(tunnel_field "$1" "$2" "$3" reason)" = "$4" ]; }

# dc_filter_is USER KIND: dc1 keeps KIND as the filtering of USER's device.
dc_filter_is() {
	[ "$("$NTM_BIN/ntm-dc" -f "$TOPO_DIR/dc1.conf" client list --json |
	    jq -r --arg f "$(fqdn_of "$1")" '.[] | select(.fqdn == $f) | .location.filtering')" = "$2" ]
}

@test "the agents register their filtering: the DC keeps it with the location, logs it, and names it in a punching route's reason" {
	wait_for 20 dc_filter_is erin address-dependent
	wait_for 20 dc_filter_is frank port-dependent
	wait_for 20 dc_filter_is dave endpoint-independent
	# and counts the online devices by filtering (g1's agent: none; h1's
	# moved by the next test, port-dependent until then)
	wait_for 10 dc_filter_count endpoint_independent 1
	wait_for 10 dc_filter_count address_dependent 1
	wait_for 10 dc_filter_count port_dependent 2
	grep -q "register $(fqdn_of erin) from 198.18.5.1:[0-9]*: natted, agent, nat endpoint-independent, filtering address-dependent" \
	    "$TOPO_DIR/dc1.log"
	# A restarted DC still knows it (its database).
	restart_server dc1
	dc_filter_is erin address-dependent
	# Two endpoint-independent NATs, each letting in any port of an
	# address it sent to: the reason says so, from each side.
	local dave erin frank
	dave=$(fqdn_of dave) erin=$(fqdn_of erin) frank=$(fqdn_of frank)
	run ntmc a1 erin tunnel ping -c 1 --timeout 20 "$dave"
	assert_success
	assert_equal "$(tunnel_field a1 erin "$dave" reason)" \
	    "both behind endpoint-independent NATs: relay, punching; both NATs filter by address"
	# Against a port-restricted NAT: only the requester's is named; the
	# peer reads it as its own side.
	run ntmc a1 erin tunnel ping -c 1 --timeout 20 "$frank"
	assert_success
	assert_equal "$(tunnel_field a1 erin "$frank" reason)" \
	    "both behind endpoint-independent NATs: relay, punching; requester's NAT filters by address"
	wait_for 10 reason_is p1 frank "$erin" \
	    "both behind endpoint-independent NATs: relay, punching; peer's NAT filters by address"
}

@test "an RS with probe_alt_port 0: no other port, the filtering is unknown (the NAT kind still found)" {
	# no second address either (the tests above gave it one)
	sed -i '/^probe_alt_addr/d' "$TOPO_DIR/rs.conf"
	echo "probe_alt_port = 0" >> "$TOPO_DIR/rs.conf"
	restart_server rs
	run "$NTM_BIN/ntm-rs" -f "$TOPO_DIR/rs.conf" status --json
	assert_equal "$(jq -c .probe_alt <<<"$output")" "[]"
	netcheck g1 alice
	assert_equal "$(jq -r .ipv4.nat <<<"$j")" none
	assert_equal "$(jq -r .ipv4.filtering <<<"$j")" unknown
	assert_equal "$(jq -r .ipv4.relay.other_port <<<"$j")" null
	netcheck h1 bob
	assert_equal "$(jq -r .ipv4.nat <<<"$j")" endpoint-independent
	assert_equal "$(jq -r .ipv4.filtering <<<"$j")" unknown
	run ntmc h1 bob netcheck
	assert_line "	* IPv4 filtering: unknown (no NAT verdict, or the relay answers from no other port)"
	# An agent that probes again (a move) finds it unknown too.
	n h1 ip addr add 100.64.2.20/24 dev eth1
	n h1 ip addr del 100.64.2.10/24 dev eth1
	wait_for 30 agent_filter_is h1 bob unknown
}

@test "no leftovers after the run" {
	topo_down "$TOPO_DIR"
	no_leftovers
}
