#!/usr/bin/env bats
# A tunnel that moves onto the relay shakes hands there again
# (docs/protocol.md §4.4, §4.6): a client uses one UDP socket for all its
# tunnels, so at the RS its address may be bound in several sessions (a
# closed tunnel's session idles there 2 minutes); the RS then routes DATA
# only by the receiver indices it saw in a handshake it forwarded. A
# direct tunnel remade relayed kept its session and never showed the RS
# its indices: the RS dropped its DATA as unbound until the next rekey
# (2 minutes), or until its initiator gave it up as lost (15 s) and
# asked for a new tunnel. No punching (the DCs' default here): a relayed
# route stays relayed.
#
#   srv: AS, DC1, DC2, RS 198.18.0.4, CS, dnsmasq
#     |
#   ==+=============== switch: 198.18.0.0/15 ===============================
#     |                  |                     |                  |
#   g1: erin@dc1       nat5 (masq)           nat2 (masq)        nat7 (masq)
#   198.18.10.10       198.18.6.1            198.18.3.1         198.18.8.1
#     |                  | eth1                |                  |
#     +-- erin's LAN ----+                   b1: carol@dc2      d1: dave@dc2
#   global (eth0), or 100.64.6.10            100.64.3.10        100.64.8.10

load ../bats/helpers
load lib

setup_file() {
	require_root
	topo_up "$BATS_FILE_TMPDIR/t"
	servers_up
	home_router nat2 198.18.3.1 100.64.3.1
	home_router nat5 198.18.6.1 100.64.6.1
	host_global g1 198.18.10.10
	lan_link g1 nat5 eth1
	home_router nat7 198.18.8.1 100.64.8.1
	host_behind b1 nat2 100.64.3.10 100.64.3.1
	host_behind d1 nat7 100.64.8.10 100.64.8.1
	client_up g1 erin erin dc1
	client_up b1 carol carol dc2
	client_up d1 dave dave dc2
}

teardown_file() { topo_down "$BATS_FILE_TMPDIR/t"; }

setup() {
	TOPO_DIR=$BATS_FILE_TMPDIR/t
	P=$(cat "$TOPO_DIR/prefix")
	ERIN=$(fqdn_of erin) CAROL=$(fqdn_of carol) DAVE=$(fqdn_of dave)
}

erin() { tunnel_field g1 erin "$CAROL" "$1"; }
carol() { tunnel_field b1 carol "$ERIN" "$1"; }
dave() { tunnel_field d1 dave "$ERIN" "$1"; }
erin_dave() { tunnel_field g1 erin "$DAVE" "$1"; }
field_is() { [ "$("$1" "$2")" = "$3" ]; }

# rs_drops REASON: datagrams the RS dropped for REASON.
rs_drops() {
	"$NTM_BIN/ntm-rs" -f "$TOPO_DIR/rs.conf" status --json | jq -r ".counters.drops.$1"
}

# erin_global: erin leaves her NAT for her global address again.
erin_global() {
	local old
	old=$(n g1 ip -4 -o addr show scope global | awk '{ print $2, $4 }')
	[ "${old#* }" = 198.18.10.10/15 ] && return 0
	n g1 ip -batch - <<-IPB
	addr add 198.18.10.10/15 dev eth0
	route del default
	addr del ${old#* } dev ${old%% *}
	IPB
}

@test "a direct tunnel remade relayed while both ends are bound in a closed tunnel's relay session: the initiator shakes hands through the relay, the pings go on" {
	local ub t tid
	# a first tunnel, through the relay (both behind NATs), then closed:
	# its session at the RS holds both ends' addresses for 2 minutes
	lan_move g1 eth1 100.64.6.10 100.64.6.1
	wait_for 20 dc_nat_is dc1 erin endpoint-independent
	run ntmc g1 erin tunnel ping -c 1 --timeout 20 "$CAROL"
	assert_success
	field_is erin route relay
	ntmc g1 erin tunnel close "$CAROL"
	# carol's end goes too (CLOSE); if that datagram was lost, here
	ntmc b1 carol tunnel close "$ERIN" >/dev/null 2>&1 || true
	# erin global: a new tunnel is direct, carol (behind NAT) initiates
	erin_global
	wait_for 20 dc_nat_is dc1 erin none
	run ntmc g1 erin tunnel ping -c 1 --timeout 20 "$CAROL"
	assert_success
	field_is erin route direct
	field_is carol role initiator
	field_is erin role responder
	tid=$(carol tunnel_id)
	# carol pings erin every 50 ms while erin moves behind her NAT again:
	# the route is remade relayed (same session, same tunnel id), and the
	# RS holds both addresses in the closed tunnel's session as well
	ping_stream_start b1 carol "$ERIN"
	ub=$(rs_drops unbound)
	lan_move g1 eth1 100.64.6.10 100.64.6.1
	wait_for 30 field_is erin route relay
	wait_for 30 field_is carol route relay
	t=$(date +%s%N)
	wait_for 20 replies_after_at_least "$t" 20
	ping_stream_stop
	echo "# relay unbound drops across the move: $(($(rs_drops unbound) - ub)); echoes lost: $(lost_echoes)" >&3
	# the same tunnel carried them, after a handshake through the relay:
	# on the old code the RS dropped its DATA as unbound until carol gave
	# the tunnel up as lost (15 s) and asked her DC for a new one
	assert_equal "$(carol tunnel_id)" "$tid"
	assert_equal "$(erin tunnel_id)" "$tid"
	[ "$(carol handshakes)" -ge 2 ]
	run ntmc b1 carol tunnel ping -c 3 --timeout 20 "$ERIN"
	assert_success
}

@test "two direct tunnels of one agent remade relayed at once (its address bound in both new sessions, and in a third): each initiator shakes hands through the relay, the pings go on" {
	local ub t tc td
	# from the test before: erin behind her NAT, her tunnel to carol
	# relayed; erin global again: it is remade direct (its relay session
	# idles at the RS, erin's NAT address in it)
	erin_global
	wait_for 20 dc_nat_is dc1 erin none
	wait_for 30 field_is carol route direct
	run ntmc g1 erin tunnel ping -c 1 --timeout 20 "$CAROL"
	assert_success
	# a second direct tunnel, to dave (behind NAT: he initiates)
	run ntmc g1 erin tunnel ping -c 1 --timeout 20 "$DAVE"
	assert_success
	field_is dave route direct
	field_is dave role initiator
	tc=$(carol tunnel_id)
	td=$(dave tunnel_id)
	# dave pings erin every 50 ms while erin moves behind her NAT: both
	# tunnels are remade relayed, and her address is in both new sessions
	ping_stream_start d1 dave "$ERIN"
	ub=$(rs_drops unbound)
	lan_move g1 eth1 100.64.6.10 100.64.6.1
	wait_for 30 field_is dave route relay
	wait_for 30 field_is carol route relay
	t=$(date +%s%N)
	wait_for 20 replies_after_at_least "$t" 20
	ping_stream_stop
	echo "# relay unbound drops across the move: $(($(rs_drops unbound) - ub)); echoes lost: $(lost_echoes)" >&3
	# the same tunnels (on the old code the RS dropped erin's answers as
	# unbound until dave gave the tunnel up as lost and asked for a new one)
	assert_equal "$(dave tunnel_id)" "$td"
	assert_equal "$(erin_dave tunnel_id)" "$td"
	[ "$(dave handshakes)" -ge 2 ]
	run ntmc b1 carol tunnel ping -c 3 --timeout 20 "$ERIN"
	assert_success
	assert_equal "$(carol tunnel_id)" "$tc"
	[ "$(carol handshakes)" -ge 2 ]
}

@test "no leftovers after the run" {
	topo_down "$TOPO_DIR"
	no_leftovers
}
