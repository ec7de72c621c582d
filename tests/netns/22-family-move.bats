#!/usr/bin/env bats
# A running agent moves to a network of the other address family: from
# IPv4 only to IPv6 only and back, under a ping stream and a TCP stream.
# It reaches its DC over the family it has now (both addresses of the DC
# came from DNS at start), and its tunnel to a dual-stack peer goes on.
#
#   srv (AS, DC1, DC2, RS, dnsmasq; 198.18.0.x and fd00:18::x)
#     |
#   ==+========== switch ==============+==========
#     |                                |
#   m: 198.18.1.30 <-> fd00:18::30     c: 198.18.1.40 + fd00:18::40
#   (alice@dc1)                        (bob@dc2, dual stack)

load ../bats/helpers
load lib

setup_file() {
	require_root
	export NTM_KEEPALIVE=1
	topo_up "$BATS_FILE_TMPDIR/t"
	servers_up
	host_global m 198.18.1.30
	host_global c 198.18.1.40 fd00:18::40
	client_up m alice alice dc1
	client_up c bob bob dc2
}

teardown_file() { topo_down "$BATS_FILE_TMPDIR/t"; }

setup() {
	TOPO_DIR=$BATS_FILE_TMPDIR/t
	P=$(cat "$TOPO_DIR/prefix")
	ALICE=$(fqdn_of alice) BOB=$(fqdn_of bob)
}

stream_start() { ping_stream_start c bob "$ALICE"; }
stream_stop() { ping_stream_stop; }

# resumed T: 10 replies time-stamped after T (ns) within 30 s.
resumed() { wait_for 30 bash -c "[ \$(awk -v t=$1 '\$1 > t && /time=/' '$TOPO_DIR/stream' | wc -l) -ge 10 ]"; }

@test "IPv4 only -> IPv6 only -> IPv4 only under a ping stream: the DC over the family the host has, the tunnel goes on" {
	local t
	run ntmc m alice tunnel ping -c 2 --timeout 20 "$BOB"
	assert_success
	stream_start
	# To IPv6 only: the IPv4 address and its routes go.
	t=$(date +%s%N)
	n m ip addr add fd00:18::30/64 dev eth0 nodad
	n m ip addr del 198.18.1.30/15 dev eth0
	resumed "$t"
	run ntmc m alice status --json
	[[ "$(jq -r .agent.registration.dc <<<"$output")" == "[fd00:18::2]:"* ]]
	[ "$(jq -r .agent.registration.registered <<<"$output")" = true ]
	grep -q 'the DC is now reached at \[fd00:18::2\]' "$TOPO_DIR/agent-alice.log"
	# And back to IPv4 only.
	t=$(date +%s%N)
	n m ip addr add 198.18.1.31/15 dev eth0
	n m ip addr del fd00:18::30/64 dev eth0
	resumed "$t"
	stream_stop
	run ntmc m alice status --json
	[[ "$(jq -r .agent.registration.dc <<<"$output")" == 198.18.0.2:* ]]
	run ntmc m alice tunnel ping -c 2 --timeout 10 "$BOB"
	assert_success
}

@test "a TCP stream from the moving node: IPv4 only -> IPv6 only -> IPv4 only, every byte arrives" {
	local want lis snd sz
	head -c $((16 * 1024 * 1024)) /dev/urandom > "$TOPO_DIR/fam.in"
	want=$(sha256sum < "$TOPO_DIR/fam.in" | cut -d' ' -f1)
	ntmc c bob tunnel listen 7301 > "$TOPO_DIR/fam.out" 2> "$TOPO_DIR/fam.err" < /dev/null &
	lis=$!
	sleep 1
	( rc=0
	  slow_cat "$TOPO_DIR/fam.in" 2000000 | timeout 120 ip netns exec "${P}m" \
	      "$NTM_BIN/ntm" -c "$TOPO_DIR/alice" tunnel open "$BOB" 7301 --timeout 20 \
	      2> "$TOPO_DIR/fam.snd.err" || rc=$?
	  echo "$rc" > "$TOPO_DIR/fam.rc" ) &
	snd=$!
	wait_for 20 bash -c "[ \$(stat -c %s '$TOPO_DIR/fam.out') -gt 1000000 ]"
	# IPv4 only -> IPv6 only
	n m ip addr add fd00:18::32/64 dev eth0 nodad
	n m ip addr flush dev eth0 scope global to 198.18.0.0/15
	sz=$(stat -c %s "$TOPO_DIR/fam.out")
	wait_for 30 bash -c "[ \$(stat -c %s '$TOPO_DIR/fam.out') -gt $((sz + 500000)) ]"
	# IPv6 only -> IPv4 only
	n m ip addr add 198.18.1.35/15 dev eth0
	n m ip addr del fd00:18::32/64 dev eth0
	wait_for 90 test -s "$TOPO_DIR/fam.rc"
	wait "$snd" || true
	wait_for 20 bash -c "! kill -0 $lis 2>/dev/null"
	cat "$TOPO_DIR/fam.snd.err" "$TOPO_DIR/fam.err" >&2
	assert_equal "$(cat "$TOPO_DIR/fam.rc")" 0
	assert_equal "$(sha256sum < "$TOPO_DIR/fam.out" | cut -d' ' -f1)" "$want"
}
