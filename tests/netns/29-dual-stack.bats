#!/usr/bin/env bats
# Dual stack (docs/protocol.md §4.2 NTM_REG_F_ALSO, §4.5 "Two families"):
# an agent with both IPv4 and IPv6 registers over both with its DC, and the
# DC routes a tunnel direct in whichever family both ends have, before the
# relay.
#
#   srv (AS, DC1 punch = 1, DC2 punch = 0, RS, dnsmasq; 198.18.0.x, fd00:18::x)
#     |
#   ==+================ switch: 198.18.0.0/15, fd00:18::/64 =================
#     |               |              |              |            |          |
#   a 198.18.1.50   b 198.18.1.60  c fd00:18::70   d .1.80      e .1.90    hr0, hr1 (home,
#     fd00:18::50   (IPv4 only)    (IPv6 only)     fd00:18::80  fd00:18::90 both families)
#   (dual, dc2)     (dc2)          (dc2)           (dual, dc2)  (dual, dc2)  wan .71.1/.72.1
#   f 198.18.1.95 + fd00:18::95 (dual, dc1), g .1.97 + fd00:18::97, h .1.99 +
#   fd00:18::99 (dual, dc2)
#                                                                            fd00:18::71/72
#                                                                  |              |
#                                                        p0 100.64.71.10   p1 100.64.72.10
#                                                        fd00:71::10       fd00:72::10
#                                                        (dc1)             (dc1)
#
# hr0, hr1: IPv4 masquerade fully-random (a mapping per destination: two
# of them never punch, the relay carries IPv4), IPv6 routed behind a
# stateful firewall (replies only: punched through, §4.8).

load ../bats/helpers
load lib

setup_file() {
	require_root
	topo_up "$BATS_FILE_TMPDIR/t"
	NTM_PUNCH=1 servers_up
	dc_punch_off dc2
	host_global a 198.18.1.50 fd00:18::50
	host_global b 198.18.1.60
	host_global c "" fd00:18::70
	host_global d 198.18.1.80 fd00:18::80
	host_global e 198.18.1.90 fd00:18::90
	host_global f 198.18.1.95 fd00:18::95
	host_global g 198.18.1.97 fd00:18::97
	host_global h 198.18.1.99 fd00:18::99
	dual_home_router hr0 198.18.71.1 100.64.71.1 fd00:18::71 fd00:71::1 fully-random
	dual_home_router hr1 198.18.72.1 100.64.72.1 fd00:18::72 fd00:72::1 fully-random
	route6_via hr0 fd00:72::1 fd00:18::72
	route6_via hr1 fd00:71::1 fd00:18::71
	host_behind_dual p0 hr0 100.64.71.10 100.64.71.1 fd00:71::10 fd00:71::1
	host_behind_dual p1 hr1 100.64.72.10 100.64.72.1 fd00:72::10 fd00:72::1
	client_up a alice alice dc2
	client_up b bob bob dc2
	client_up c carol carol dc2
	client_up d dave dave dc2
	client_up e erin erin dc2
	client_up f fay fay dc1
	client_up g gil gil dc2
	client_up h hal hal dc2
	client_up p0 pat pat dc1
	client_up p1 pia pia dc1
	# the dual-stack agents have registered over their second family too
	wait_for 20 also_registered a alice
	wait_for 20 also_registered d dave
	wait_for 20 also_registered e erin
	wait_for 20 also_registered f fay
	wait_for 20 also_registered g gil
	wait_for 20 also_registered h hal
	wait_for 20 also_registered p0 pat
	wait_for 20 also_registered p1 pia
	# and found their IPv4 NATs varying by destination (§4.7)
	wait_for 20 dc_nat_is dc1 pat varies-by-destination
	wait_for 20 dc_nat_is dc1 pia varies-by-destination
}

teardown_file() { topo_down "$BATS_FILE_TMPDIR/t"; }

setup() { TOPO_DIR=$BATS_FILE_TMPDIR/t; P=$(cat "$TOPO_DIR/prefix"); }

# also_registered NS PROF: its agent is registered over its second family.
also_registered() {
	[ "$(ntmc "$1" "$2" status --json | jq -r '.agent.registration.also.registered')" = true ]
}

# field NS PROF FIELD PEER_PROF: one field of the tunnel to PEER_PROF's device.
field() { tunnel_field "$1" "$2" "$(fqdn_of "$4")" "$3"; }
# field_is NS PROF FIELD PEER_PROF VALUE
field_is() { [ "$(field "$1" "$2" "$3" "$4")" = "$5" ]; }

@test "an agent with IPv4 and IPv6 registers over both; one with a single family over that one" {
	run ntmc a alice status --json
	assert_success
	[ "$(jq -r .agent.registration.family <<<"$output")" = 4 ]
	[[ "$(jq -r .agent.registration.also.dc <<<"$output")" == "[fd00:18::3]:"* ]]
	[ "$(jq -r .agent.registration.also.family <<<"$output")" = 6 ]
	[[ "$(jq -r .agent.registration.also.reflexive <<<"$output")" == "[fd00:18::50]:"* ]]
	[ "$(jq -r .agent.registration.also.natted <<<"$output")" = false ]
	run ntmc b bob status --json
	[ "$(jq -r .agent.registration.also <<<"$output")" = null ]
	run ntmc c carol status --json
	[ "$(jq -r .agent.registration.family <<<"$output")" = 6 ]
	[ "$(jq -r .agent.registration.also <<<"$output")" = null ]
	grep -q "register $(fqdn_of alice) also from \[fd00:18::50\]:[0-9]*: global" \
	    "$TOPO_DIR/dc2.log"
}

@test "dual stack with IPv4 only and with IPv6 only: both tunnels direct, over IPv4 and over IPv6" {
	run ntmc a alice tunnel ping -c 2 --timeout 20 "$(fqdn_of bob)"
	assert_success
	run ntmc a alice tunnel ping -c 2 --timeout 20 "$(fqdn_of carol)"
	assert_success
	assert_equal "$(field a alice route bob)" direct
	assert_equal "$(field a alice route carol)" direct
	assert_equal "$(field a alice reason bob)" "both global"
	assert_equal "$(field a alice family bob)" IPv4
	assert_equal "$(field a alice family carol)" IPv6
	assert_equal "$(field a alice reason carol)" "IPv6: both global"
	[[ "$(field a alice endpoint carol)" == "[fd00:18::70]:"* ]]
	# the IPv6-only end has the same route, over IPv6
	assert_equal "$(field c carol route alice)" direct
	assert_equal "$(field c carol family alice)" IPv6
	run ntmc c carol tunnel ping -c 2 --timeout 10 "$(fqdn_of alice)"
	assert_success
	# and both say so to people
	run ntmc a alice tunnel list
	assert_output --partial "family: IPv6"
	run ntmc a alice status
	assert_output --partial "direct over IPv6 (IPv6: both global)"
}

@test "across two DCs: an IPv6-only device reaches a dual-stack one at the other DC direct over IPv6" {
	run ntmc c carol tunnel ping -c 2 --timeout 20 "$(fqdn_of fay)"
	assert_success
	assert_equal "$(field c carol route fay)" direct
	assert_equal "$(field c carol reason fay)" "IPv6: both global"
	assert_equal "$(field c carol family fay)" IPv6
	[[ "$(field c carol endpoint fay)" == "[fd00:18::95]:"* ]]
	assert_equal "$(field f fay route carol)" direct
	assert_equal "$(field f fay family carol)" IPv6
	grep -q "locate $(fqdn_of fay) for $(fqdn_of carol)" "$TOPO_DIR/dc1.log"
}

@test "dual-stack pair, IPv4 NAT x NAT per destination, IPv6 behind firewalls: direct over IPv6" {
	run ntmc p0 pat tunnel ping -c 2 --timeout 20 "$(fqdn_of pia)"
	assert_success
	# (the IPv4 reason does not fit beside it in a direction's 95 bytes)
	assert_equal "$(field p0 pat reason pia)" \
	    "IPv6: both global: relay, punching through their firewalls"
	# punched through both firewalls, over IPv6
	wait_for 20 field_is p0 pat path pia punched
	assert_equal "$(field p0 pat family pia)" IPv6
	[[ "$(field p0 pat endpoint pia)" == "[fd00:72::10]:"* ]]
	wait_for 20 field_is p1 pia path pat punched
	assert_equal "$(field p1 pia family pat)" IPv6
	run ntmc p1 pia tunnel ping -c 3 --timeout 10 "$(fqdn_of pat)"
	assert_success
}

@test "a dual-stack agent loses its IPv4 address under a ping stream: the tunnel goes on, direct over IPv6" {
	local t
	run ntmc e erin tunnel ping -c 2 --timeout 20 "$(fqdn_of dave)"
	assert_success
	# both ends have both families: their first ones win the tie
	assert_equal "$(field e erin route dave)" direct
	local fam_before
	fam_before=$(field e erin family dave)
	ping_stream_start d dave "$(fqdn_of erin)"
	t=$(date +%s%N)
	n e ip addr del 198.18.1.90/15 dev eth0
	wait_for 30 bash -c "[ \$(awk -v t=$t '\$1 > t && /time=/' '$TOPO_DIR/stream' | wc -l) -ge 10 ]"
	ping_stream_stop
	wait_for 20 field_is e erin route dave direct
	assert_equal "$fam_before" IPv4
	# registered over IPv6 alone now, and the DC knows it
	run ntmc e erin status --json
	[ "$(jq -r .agent.registration.family <<<"$output")" = 6 ]
	[ "$(jq -r .agent.registration.also <<<"$output")" = null ]
	wait_for 20 field_is d dave family erin IPv6
	assert_equal "$(field d dave route erin)" direct
	assert_equal "$(field e erin route dave)" direct
	assert_equal "$(field e erin family dave)" IPv6
	run ntmc e erin tunnel ping -c 2 --timeout 10 "$(fqdn_of dave)"
	assert_success
}

@test "a dual-stack agent loses its IPv6 address: the DC forgets that family, the tunnel to an IPv6-only peer goes on through the relay" {
	local t
	run ntmc g gil tunnel ping -c 2 --timeout 20 "$(fqdn_of carol)"
	assert_success
	assert_equal "$(field g gil route carol)" direct
	assert_equal "$(field g gil family carol)" IPv6
	ping_stream_start c carol "$(fqdn_of gil)"
	t=$(date +%s%N)
	n g ip addr del fd00:18::97/64 dev eth0
	wait_for 30 bash -c "[ \$(awk -v t=$t '\$1 > t && /time=/' '$TOPO_DIR/stream' | wc -l) -ge 10 ]"
	ping_stream_stop
	run ntmc g gil status --json
	[ "$(jq -r .agent.registration.family <<<"$output")" = 4 ]
	[ "$(jq -r .agent.registration.also <<<"$output")" = null ]
	grep -q "register $(fqdn_of gil): its location in the other family is gone" \
	    "$TOPO_DIR/dc2.log"
	wait_for 20 field_is g gil route carol relay
	assert_equal "$(field g gil reason carol)" "IPv4 and IPv6: relay bridges"
	run ntmc g gil tunnel ping -c 2 --timeout 10 "$(fqdn_of carol)"
	assert_success
}

@test "a TCP stream from a dual-stack agent that loses its IPv4 address: every byte arrives, direct over IPv6 after" {
	local want lis snd sz fam_before
	head -c $((8 * 1024 * 1024)) /dev/urandom > "$TOPO_DIR/dual.in"
	want=$(sha256sum < "$TOPO_DIR/dual.in" | cut -d' ' -f1)
	ntmc d dave tunnel listen 7302 > "$TOPO_DIR/dual.out" 2> "$TOPO_DIR/dual.err" < /dev/null &
	lis=$!
	sleep 1
	( rc=0
	  slow_cat "$TOPO_DIR/dual.in" 2000000 | timeout 120 ip netns exec "${P}h" \
	      "$NTM_BIN/ntm" -c "$TOPO_DIR/hal" tunnel open "$(fqdn_of dave)" 7302 --timeout 20 \
	      2> "$TOPO_DIR/dual.snd.err" || rc=$?
	  echo "$rc" > "$TOPO_DIR/dual.rc" ) &
	snd=$!
	wait_for 20 bash -c "[ \$(stat -c %s '$TOPO_DIR/dual.out') -gt 1000000 ]"
	fam_before=$(field h hal family dave)
	n h ip addr del 198.18.1.99/15 dev eth0
	sz=$(stat -c %s "$TOPO_DIR/dual.out")
	wait_for 30 bash -c "[ \$(stat -c %s '$TOPO_DIR/dual.out') -gt $((sz + 500000)) ]"
	wait_for 90 test -s "$TOPO_DIR/dual.rc"
	wait "$snd" || true
	wait_for 20 bash -c "! kill -0 $lis 2>/dev/null"
	cat "$TOPO_DIR/dual.snd.err" "$TOPO_DIR/dual.err" >&2
	assert_equal "$(cat "$TOPO_DIR/dual.rc")" 0
	assert_equal "$(sha256sum < "$TOPO_DIR/dual.out" | cut -d' ' -f1)" "$want"
	assert_equal "$(field h hal route dave)" direct
	assert_equal "$fam_before" IPv4
	assert_equal "$(field h hal family dave)" IPv6
}
