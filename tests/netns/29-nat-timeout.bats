#!/usr/bin/env bats
# NATs that forget quickly: two home routers (endpoint-independent
# masquerade, replies only from wan) whose conntrack keeps an idle UDP
# mapping only NAT_UDP_TIMEOUT (20) seconds, shorter than Linux's own 30/120
# and as short as the shortest home routers'. The DCs tell clients the
# production keepalive (keepalive_s = 15); tunnels send their keepalive
# after 10 s without data (docs/protocol.md §4.3). After idling through
# several timeouts, the punched tunnel must still carry a ping over the
# same direct path without punching again, and each DC must still reach
# its client behind the NAT to set up a new tunnel. (With NAT_UDP_TIMEOUT=5,
# below the tunnel keepalive, the second test fails: the punched path goes
# silent, as it would on such a NAT.)
#
#   srv: AS, DC1, DC2, RS, CS, dnsmasq
#     |
#   ==+============= switch: 198.18.0.0/15 =============
#     |                            |
#   nt0 198.18.30.1              nt1 198.18.31.1
#     |  (udp timeout 20 s)        |  (udp timeout 20 s)
#   ta 100.64.30.10 alice-like   tb 100.64.31.10
#   (dc1)                        (dc2)

load ../bats/helpers
load lib

setup_file() {
	require_root
	local i
	topo_up "$BATS_FILE_TMPDIR/t"
	NTM_PUNCH=1 NTM_KEEPALIVE=15 servers_up
	for i in 0 1; do
		home_router "nt$i" "198.18.$((30 + i)).1" "100.64.$((30 + i)).1"
		n "nt$i" sysctl -qw net.netfilter.nf_conntrack_udp_timeout="${NAT_UDP_TIMEOUT:-20}" \
		    net.netfilter.nf_conntrack_udp_timeout_stream="${NAT_UDP_TIMEOUT:-20}"
	done
	host_behind ta nt0 100.64.30.10 100.64.30.1
	host_behind tb nt1 100.64.31.10 100.64.31.1
	client_up ta ta ta dc1
	client_up tb tb tb dc2
}

teardown_file() { topo_down "$BATS_FILE_TMPDIR/t"; }

setup() {
	TOPO_DIR=$BATS_FILE_TMPDIR/t
	P=$(cat "$TOPO_DIR/prefix")
	FA=$(fqdn_of ta) FB=$(fqdn_of tb)
}

# punched NS PROF PEER: the tunnel's path is the punched one.
punched() { [ "$(tunnel_field "$1" "$2" "$3" path)" = punched ]; }

@test "the routers forget an idle UDP mapping after NAT_UDP_TIMEOUT seconds" {
	run n nt0 sysctl -n net.netfilter.nf_conntrack_udp_timeout_stream
	assert_output "${NAT_UDP_TIMEOUT:-20}"
}

@test "a punched tunnel idle through several NAT timeouts: the same path still carries a ping, no punching again" {
	local rp idle=$((3 * ${NAT_UDP_TIMEOUT:-20}))
	ntmc ta ta tunnel ping -c 1 --timeout 20 "$FB" > /dev/null
	wait_for 15 punched ta ta "$FB"
	wait_for 10 punched tb tb "$FA"
	rp=$(tunnel_field ta ta "$FB" repunches)
	# nothing but the keepalives for three timeouts
	sleep "$idle"
	run ntmc ta ta tunnel ping -c 2 --timeout 10 "$FB"
	assert_success
	run ntmc tb tb tunnel ping -c 2 --timeout 10 "$FA"
	assert_success
	assert_equal "$(tunnel_field ta ta "$FB" path)" punched
	assert_equal "$(tunnel_field tb tb "$FA" path)" punched
	assert_equal "$(tunnel_field ta ta "$FB" repunches)" "$rp"
	echo "# after ${idle} s idle behind ${NAT_UDP_TIMEOUT:-20} s NAT timeouts: $(tunnel_field ta ta "$FB" path) ($(tunnel_field ta ta "$FB" path_reason))" >&3
}

@test "after the idle time, each DC still reaches its client behind the NAT: a new tunnel the other way" {
	ntmc ta ta tunnel close "$FB" > /dev/null 2>&1 || true
	ntmc tb tb tunnel close "$FA" > /dev/null 2>&1 || true
	sleep "${NAT_UDP_TIMEOUT:-20}"
	# tb asks: dc1 must tell ta (through ta's NAT) about the tunnel
	run ntmc tb tb tunnel ping -c 1 --timeout 20 "$FA"
	assert_success
}
