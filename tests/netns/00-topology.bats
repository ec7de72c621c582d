#!/usr/bin/env bats
# The test topology itself: the servers come up in their namespace behind a
# real resolver, each DC finds the other through it, NAT rewrites sources,
# and nothing is left behind afterwards.
#
#   srv (AS .1, DC1 .2, DC2 .3, RS .4, CS .5, dnsmasq .53)
#     |
#   ==+======== switch 198.18.0.0/15, fd00:18::/64 ========
#     |                     |
#   g1 198.18.1.10        nat1 (masq) -- a1 100.64.2.10

load ../bats/helpers
load lib

setup_file() {
	require_root
	topo_up "$BATS_FILE_TMPDIR/t"
	servers_up
	host_global g1 198.18.1.10 fd00:18::10
	nat_router nat1 198.18.2.1 100.64.2.1
	host_behind a1 nat1 100.64.2.10 100.64.2.1
}
teardown_file() { topo_down "$BATS_FILE_TMPDIR/t"; }
setup() { TOPO_DIR=$BATS_FILE_TMPDIR/t; P=$(cat "$TOPO_DIR/prefix"); }

@test "the resolver answers each DC's SRV records, from any host" {
	run n g1 dig +short @198.18.0.53 SRV _ntm._tcp.dc1.ntm.test
	assert_success
	assert_output "0 0 8441 dc1.ntm.test."
	run n a1 dig +short @198.18.0.53 SRV _ntm._udp.dc2.ntm.test
	assert_output "0 0 4502 dc2.ntm.test."
	run n g1 dig +short @fd00:18::53 AAAA dc2.ntm.test
	assert_output "fd00:18::3"
}

@test "each DC finds the other through the resolver" {
	run n srv "$NTM_BIN/ntm-dc" -f "$TOPO_DIR/dc1.conf" resolve dc2.ntm.test --json
	assert_success
	assert_equal "$(jf "$output" url)" "https://dc2.ntm.test:8442"
	run n srv "$NTM_BIN/ntm-dc" -f "$TOPO_DIR/dc2.conf" resolve dc1.ntm.test --json
	assert_equal "$(jf "$output" addr)" 198.18.0.2
}

@test "NAT: a host behind the router reaches the servers from the router's address" {
	n srv timeout 10 tcpdump -i eth0 -c 1 -nn "tcp port 8441 and tcp[tcpflags] & tcp-syn != 0" \
	    > "$TOPO_DIR/syn.txt" 2>/dev/null &
	local cap=$!
	sleep 0.5
	n a1 curl -s --cacert "$TOPO_DIR/as/ca.crt" https://198.18.0.2:8441/v1/health >/dev/null
	wait "$cap"
	run cat "$TOPO_DIR/syn.txt"
	assert_output --partial "198.18.2.1."
	refute_output --partial "100.64.2.10"
}

@test "cleanup leaves no namespace and no process behind" {
	local dir=$BATS_TEST_TMPDIR/t2 saved=$P
	topo_up "$dir"
	host_global x 198.18.9.9
	bg x sleeper sleep 600 >/dev/null
	local p2=$P
	topo_down "$dir"
	P=$saved
	run bash -c "ip netns list | grep -c '^$p2'"
	assert_output 0
	local pid
	pid=$(awk '$2 == "sleeper" {print $1}' "$dir/pids")
	[ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null
}
