#!/usr/bin/env bats
# A DC restarts while a tunnel carries traffic: the tunnel keeps working
# (the DCs are not on the data path) and the clients register again; a
# restarted DC knows a dual-stack device's second family from its database.
#
#   srv (AS, DC1, DC2, RS, dnsmasq) == switch == g1 198.18.1.10 (alice@dc1)
#                                          |=== nat1 == a1 100.64.2.10 (bob@dc2)
#                                          |=== d1 198.18.1.20 + fd00:18::20 (dan@dc1)
#                                          \=== v6 fd00:18::100 (vic@dc2, IPv6 only)

load ../bats/helpers
load lib

setup_file() {
	require_root
	export NTM_KEEPALIVE=1
	topo_up "$BATS_FILE_TMPDIR/t"
	servers_up
	host_global g1 198.18.1.10
	nat_router nat1 198.18.2.1 100.64.2.1
	host_behind a1 nat1 100.64.2.10 100.64.2.1
	host_global d1 198.18.1.20 fd00:18::20
	host_global v6 "" fd00:18::100
	client_up g1 alice alice dc1
	client_up a1 bob bob dc2
	client_up d1 dan dan dc1
	client_up v6 vic vic dc2
}
teardown_file() { topo_down "$BATS_FILE_TMPDIR/t"; }
setup() { TOPO_DIR=$BATS_FILE_TMPDIR/t; P=$(cat "$TOPO_DIR/prefix"); }

# reg_field NS PROF JQ: one field of the agent's registration (ntm status).
reg_field() { ntmc "$1" "$2" status --json | jq -r ".agent.registration$3"; }
# reg_field_is NS PROF JQ VALUE
reg_field_is() { [ "$(reg_field "$1" "$2" "$3")" = "$4" ]; }
# also_taken DC: REG_REQs of a second family the DC took since it started.
also_taken() { metrics "$1" | awk '$1 == "ntm_dc_registrations_also_total" { print $2 }'; }
also_taken_some() { [ "$(also_taken "$1")" -ge 1 ]; }
# field NS PROF FIELD PEER_PROF: one field of the tunnel to PEER_PROF's device.
field() { tunnel_field "$1" "$2" "$(fqdn_of "$4")" "$3"; }
# stored DC PROF JQ: a field of PROF's device in the DC's client list.
stored() {
	n srv "$NTM_BIN/ntm-dc" -f "$TOPO_DIR/$1.conf" client list --json |
	    jq -r --arg f "$(fqdn_of "$2")" ".[] | select(.fqdn == \$f) | .location$3"
}
stored_is() { [ "$(stored "$1" "$2" "$3")" = "$4" ]; }
# stored_starts DC PROF JQ PREFIX
stored_starts() { [[ "$(stored "$1" "$2" "$3")" == "$4"* ]]; }

@test "restarting both DCs under traffic: the tunnel carries on, clients re-register" {
	local bob alice
	bob=$(fqdn_of bob) alice=$(fqdn_of alice)
	run ntmc g1 alice tunnel ping -c 2 --timeout 20 "$bob"
	assert_success
	ntmc a1 bob tunnel ping -c 9000 -i 0.1 "$alice" > "$TOPO_DIR/stream" 2>&1 &
	local s=$!
	wait_for 10 grep -q time= "$TOPO_DIR/stream"
	local t0
	t0=$(date +%s)
	restart_server dc1
	restart_server dc2
	local before
	before=$(grep -c time= "$TOPO_DIR/stream")
	wait_for 10 bash -c "[ \$(grep -c time= '$TOPO_DIR/stream') -ge $((before + 20)) ]"
	kill "$s"
	# the stream never stopped for long: no reply lost beyond a few
	run ntmc g1 alice tunnel list --json
	assert_success
	# both clients registered again with the restarted DCs
	wait_for 10 bash -c "ip netns exec ${P}srv $NTM_BIN/ntm-dc -f $TOPO_DIR/dc1.conf client list --json | jq -e '.[] | select(.fqdn == \"$alice\") | .location.last_seen >= $t0' | grep -q true"
	wait_for 10 bash -c "ip netns exec ${P}srv $NTM_BIN/ntm-dc -f $TOPO_DIR/dc2.conf client list --json | jq -e '.[] | select(.fqdn == \"$bob\") | .location.last_seen >= $t0' | grep -q true"
	# and new tunnels can be made through them
	run ntmc a1 bob tunnel close "$alice"
	run ntmc a1 bob tunnel ping -c 2 --timeout 20 "$alice"
	assert_success
}

@test "a restarted DC knows a dual-stack device's second family before it registers again: a new route goes direct over IPv6" {
	local dan vic
	dan=$(fqdn_of dan) vic=$(fqdn_of vic)
	# dan (IPv4 first, IPv6 second) registers at DC1, whose keepalive is
	# made long: dan's agent (it follows the DC) registers next only
	# 120 s after DC1's first answer with it, well after the check
	sed -i 's/^keepalive_s = .*/keepalive_s = 120/' "$TOPO_DIR/dc1.conf"
	restart_server dc1
	wait_for 20 reg_field_is d1 dan .keepalive_s 120
	wait_for 20 also_taken_some dc1
	assert_equal "$(reg_field d1 dan .family)" 4
	assert_equal "$(reg_field d1 dan .also.family)" 6
	# the restart under test: dan sends DC1 nothing until its next keepalive
	restart_server dc1
	assert_equal "$(also_taken dc1)" 0
	# dan asks DC1 for a route to vic, IPv6 only: DC1 must know dan's IPv6
	# location (else: the relay, bridging IPv4 and IPv6)
	run ntmc d1 dan tunnel ping -c 2 --timeout 20 "$vic"
	assert_success
	assert_equal "$(field d1 dan route vic)" direct
	assert_equal "$(field d1 dan family vic)" IPv6
	assert_equal "$(field d1 dan reason vic)" "IPv6: both global"
	# the peer has the same route
	assert_equal "$(field v6 vic route dan)" direct
	assert_equal "$(field v6 vic family dan)" IPv6
	[[ "$(field v6 vic endpoint dan)" == "[fd00:18::20]:"* ]]
	# and the admin sees both locations, as stored
	stored_starts dc1 dan .reflexive 198.18.1.20:
	stored_starts dc1 dan .also.reflexive "[fd00:18::20]:"
	assert_equal "$(stored dc1 dan .also.online)" true
	# all of it from the database: dan registered nothing of IPv6 meanwhile
	assert_equal "$(also_taken dc1)" 0
}

@test "the stored second location goes when the DC's does: the host loses IPv6, the agent stops" {
	local dan
	dan=$(fqdn_of dan)
	stored_starts dc1 dan .also.reflexive "[fd00:18::20]:"
	# the host loses its IPv6 address: its agent registers again at once
	# with IPv4 locals only, and DC1 drops (and deletes) the second location
	n d1 ip addr del fd00:18::20/64 dev eth0
	wait_for 20 stored_is dc1 dan .also null
	grep -q "register $dan: its location in the other family is gone" "$TOPO_DIR/dc1.log"
	stored_starts dc1 dan .reflexive 198.18.1.20:
	# back: stored again
	n d1 ip addr add fd00:18::20/64 dev eth0 nodad
	wait_for 20 stored_starts dc1 dan .also.reflexive "[fd00:18::20]:"
	# the agent stops: the goodbye deletes it with the first one's offline mark
	run ntmc d1 dan down
	assert_success
	wait_for 20 stored_is dc1 dan .also null
	stored_starts dc1 dan .reflexive 198.18.1.20:
	assert_equal "$(stored dc1 dan .online)" false
}
