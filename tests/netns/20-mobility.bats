#!/usr/bin/env bats
# Mobility while traffic flows: the mobile node's address changes under a
# running ping stream; the stream resumes without restarting anything, the
# session index and the virtual IPs stay, and the gap is printed.
#
#   srv (AS, DC1, DC2, RS, dnsmasq)
#     |
#   ==+========== switch 198.18.0.0/15 ====================+=========
#     |                                  |                  |
#   m: eth0 (global 198.18.1.30 -> .31)  nat1 (masq)        nat2 (masq)
#      eth1 ---------------------------- lan 100.64.2.1     lan 100.64.3.1
#                                                           |
#                                                         c: 100.64.3.20
#
# MN (m, alice@dc1) and CN (c, bob@dc2, behind nat2).
#   a. global -> another global: direct stays direct
#   b. global -> behind nat1: direct becomes relayed
#   c. behind nat1 -> global: relayed becomes direct

load ../bats/helpers
load lib

setup_file() {
	require_root
	export NTM_KEEPALIVE=1
	topo_up "$BATS_FILE_TMPDIR/t"
	servers_up
	nat_router nat1 198.18.2.1 100.64.2.1
	nat_router nat2 198.18.3.1 100.64.3.1
	host_global m 198.18.1.30
	lan_link m nat1
	host_behind c nat2 100.64.3.20 100.64.3.1
	client_up m alice alice dc1
	client_up c bob bob dc2
}

teardown_file() { topo_down "$BATS_FILE_TMPDIR/t"; }

setup() {
	TOPO_DIR=$BATS_FILE_TMPDIR/t
	P=$(cat "$TOPO_DIR/prefix")
	ALICE=$(fqdn_of alice) BOB=$(fqdn_of bob)
}

# stream_start: CN pings MN every 50 ms (lib.bash).
stream_start() { ping_stream_start c bob "$ALICE"; }
stream_stop() { ping_stream_stop; }

# gap_ms T1 T2: the longest silence between two consecutive replies, for
# replies from just before the change (T1) up to T2 (stream resumed).
gap_ms() {
	awk -v t1="$1" -v t2="$2" '/time=/ {
		if ($1 <= t1) { prev = $1; next }
		if ($1 > t2) exit
		if (prev && $1 - prev > max) max = $1 - prev
		prev = $1
	    } END { printf "%d\n", max / 1e6 }' "$TOPO_DIR/stream"
}

# move DESCRIPTION CMDS...: change the address under the stream, wait for
# the stream to resume, print the gap.
move() {
	local what=$1
	shift
	local t
	t=$(date +%s%N)
	"$@"
	wait_for 30 bash -c "[ \$(awk -v t=$t '\$1 > t && /time=/' '$TOPO_DIR/stream' | wc -l) -ge 10 ]"
	echo "# handover ($what): gap $(gap_ms "$t" "$(date +%s%N)") ms" >&3
}

@test "the mobile node moves three times under a ping stream" {
	run ntmc m alice tunnel ping -c 2 --timeout 20 "$BOB"
	assert_success
	assert_equal "$(tunnel_field m alice "$BOB" route)" direct
	local tid vip4
	tid=$(tunnel_field c bob "$ALICE" tunnel_id)
	vip4=$(jq -r .vip4 "$TOPO_DIR/alice/session.json")
	stream_start

	# a. global -> another global address
	move "global -> global" bash -c "ip netns exec ${P}m ip addr add 198.18.1.31/15 dev eth0 &&
	    ip netns exec ${P}m ip addr del 198.18.1.30/15 dev eth0"
	assert_equal "$(tunnel_field c bob "$ALICE" route)" direct
	[[ "$(tunnel_field c bob "$ALICE" endpoint)" == 198.18.1.31:* ]]

	# b. global -> behind nat1 (both behind NATs now: relayed)
	move "global -> NAT (direct -> relay)" bash -c "ip netns exec ${P}m ip addr del 198.18.1.31/15 dev eth0 &&
	    ip netns exec ${P}m ip addr add 100.64.2.30/24 dev eth1 &&
	    ip netns exec ${P}m ip route add default via 100.64.2.1"
	wait_for 20 bash -c "[ \"\$(ip netns exec ${P}c $NTM_BIN/ntm -c $TOPO_DIR/bob tunnel list --json | jq -r '(.tunnels // .)[] | .route')\" = relay ]"
	assert_equal "$(tunnel_field m alice "$BOB" route)" relay

	# c. behind nat1 -> global again (direct)
	move "NAT -> global (relay -> direct)" bash -c "ip netns exec ${P}m ip route del default &&
	    ip netns exec ${P}m ip addr del 100.64.2.30/24 dev eth1 &&
	    ip netns exec ${P}m ip addr add 198.18.1.32/15 dev eth0"
	wait_for 20 bash -c "[ \"\$(ip netns exec ${P}c $NTM_BIN/ntm -c $TOPO_DIR/bob tunnel list --json | jq -r '(.tunnels // .)[] | .route')\" = direct ]"
	stream_stop

	# Nothing was restarted: same tunnel, same virtual address (the
	# session index changed: onto the relay, the tunnel's initiator
	# shook hands again there, docs/protocol.md §4.4).
	assert_equal "$(tunnel_field c bob "$ALICE" tunnel_id)" "$tid"
	assert_equal "$(jq -r .vip4 "$TOPO_DIR/alice/session.json")" "$vip4"
	run ntmc m alice tunnel ping -c 2 "$BOB"
	assert_success
}

@test "a TCP stream from the mobile node survives three address changes, intact" {
	# from wherever the previous test left m: make it global at .32
	ip netns exec "${P}m" ip route del default 2>/dev/null || true
	ip netns exec "${P}m" ip addr flush dev eth1 2>/dev/null || true
	ip netns exec "${P}m" ip addr flush dev eth0
	ip netns exec "${P}m" ip addr add 198.18.1.32/15 dev eth0
	head -c $((24 * 1024 * 1024)) /dev/urandom > "$TOPO_DIR/mobile.in"
	local want
	want=$(sha256sum < "$TOPO_DIR/mobile.in" | cut -d' ' -f1)
	ntmc c bob tunnel listen 7300 2> "$TOPO_DIR/mobile.err" < /dev/null |
	    gap_cat "$TOPO_DIR/mobile.out" "$TOPO_DIR/mobile.gaps" &
	local lis=$!
	sleep 1
	# about 12 s of sending: long enough for three moves
	( rc=0
	  slow_cat "$TOPO_DIR/mobile.in" 2000000 | timeout 120 ip netns exec "${P}m" \
	      "$NTM_BIN/ntm" -c "$TOPO_DIR/alice" tunnel open "$BOB" 7300 --timeout 20 \
	      2> "$TOPO_DIR/mobile.snd.err" || rc=$?
	  echo "$rc" > "$TOPO_DIR/mobile.rc" ) &
	local snd=$!
	wait_for 20 bash -c "[ \$(stat -c %s '$TOPO_DIR/mobile.out') -gt 1000000 ]"

	# 1. global -> another global
	ip netns exec "${P}m" ip addr add 198.18.1.33/15 dev eth0
	ip netns exec "${P}m" ip addr del 198.18.1.32/15 dev eth0
	wait_for 20 bash -c "[[ \"\$(ip netns exec ${P}c $NTM_BIN/ntm -c $TOPO_DIR/bob tunnel list --json | jq -r '.tunnels[0].endpoint')\" == 198.18.1.33:* ]]"
	local sz
	sz=$(stat -c %s "$TOPO_DIR/mobile.out")
	wait_for 20 bash -c "[ \$(stat -c %s '$TOPO_DIR/mobile.out') -gt $((sz + 500000)) ]"
	# 2. global -> behind nat1 (relayed)
	ip netns exec "${P}m" ip addr del 198.18.1.33/15 dev eth0
	ip netns exec "${P}m" ip addr add 100.64.2.30/24 dev eth1
	ip netns exec "${P}m" ip route add default via 100.64.2.1
	wait_for 20 bash -c "[ \"\$(ip netns exec ${P}c $NTM_BIN/ntm -c $TOPO_DIR/bob tunnel list --json | jq -r '.tunnels[0].route')\" = relay ]"
	sz=$(stat -c %s "$TOPO_DIR/mobile.out")
	wait_for 20 bash -c "[ \$(stat -c %s '$TOPO_DIR/mobile.out') -gt $((sz + 500000)) ]"
	# 3. behind nat1 -> another global (direct)
	ip netns exec "${P}m" ip route del default
	ip netns exec "${P}m" ip addr del 100.64.2.30/24 dev eth1
	ip netns exec "${P}m" ip addr add 198.18.1.34/15 dev eth0
	wait_for 20 bash -c "[ \"\$(ip netns exec ${P}c $NTM_BIN/ntm -c $TOPO_DIR/bob tunnel list --json | jq -r '.tunnels[0].route')\" = direct ]"

	wait_for 90 test -s "$TOPO_DIR/mobile.rc"
	wait "$snd" || true
	wait_for 20 bash -c "! kill -0 $lis 2>/dev/null"
	cat "$TOPO_DIR/mobile.snd.err" "$TOPO_DIR/mobile.err" >&2
	assert_equal "$(cat "$TOPO_DIR/mobile.rc")" 0
	assert_equal "$(sha256sum < "$TOPO_DIR/mobile.out" | cut -d' ' -f1)" "$want"
	wait_for 10 test -s "$TOPO_DIR/mobile.gaps"
	echo "# stream stalls (longest three, ms): $(cat "$TOPO_DIR/mobile.gaps")" >&3
	# (segments these moves lose go again as soon as each new path works:
	# how many there were varies, none at times; the next test loses some
	# for sure)
	run ntmc m alice status --json
	assert_success
	echo "# tcp_rexmits on the mobile node: $(jq -r .agent.stack.tcp_rexmits <<<"$output")" >&3
}

rexmits() { ntmc m alice status --json | jq -r .agent.stack.tcp_rexmits; }

@test "what a TCP stream sent while the mobile node had no address goes again as soon as the new path answers, not at the stack's timer" {
	ip netns exec "${P}m" ip route del default 2>/dev/null || true
	ip netns exec "${P}m" ip addr flush dev eth1 2>/dev/null || true
	ip netns exec "${P}m" ip addr flush dev eth0
	ip netns exec "${P}m" ip addr add 198.18.1.35/15 dev eth0
	head -c $((8 * 1024 * 1024)) /dev/urandom > "$TOPO_DIR/gap.in"
	local want r0
	want=$(sha256sum < "$TOPO_DIR/gap.in" | cut -d' ' -f1)
	ntmc c bob tunnel listen 7301 2> "$TOPO_DIR/gap.err" < /dev/null > "$TOPO_DIR/gap.out" &
	local lis=$!
	sleep 1
	( rc=0
	  slow_cat "$TOPO_DIR/gap.in" 2000000 | timeout 60 ip netns exec "${P}m" \
	      "$NTM_BIN/ntm" -c "$TOPO_DIR/alice" tunnel open "$BOB" 7301 --timeout 20 \
	      2> "$TOPO_DIR/gap.snd.err" || rc=$?
	  echo "$rc" > "$TOPO_DIR/gap.rc" ) &
	local snd=$!
	wait_for 20 bash -c "[ \$(stat -c %s '$TOPO_DIR/gap.out') -gt 1000000 ]"
	r0=$(rexmits)
	# 0.3 s without an address: what the stream sends meanwhile is lost
	# (lwIP's retransmission timer is 1 s at least)
	ip netns exec "${P}m" ip addr del 198.18.1.35/15 dev eth0
	sleep 0.3
	ip netns exec "${P}m" ip addr add 198.18.1.36/15 dev eth0
	wait_for 20 bash -c "[[ \"\$(ip netns exec ${P}c $NTM_BIN/ntm -c $TOPO_DIR/bob tunnel list --json | jq -r '.tunnels[0].endpoint')\" == 198.18.1.36:* ]]"
	wait_for 60 test -s "$TOPO_DIR/gap.rc"
	wait "$snd" || true
	wait_for 20 bash -c "! kill -0 $lis 2>/dev/null"
	cat "$TOPO_DIR/gap.snd.err" "$TOPO_DIR/gap.err" >&2
	assert_equal "$(cat "$TOPO_DIR/gap.rc")" 0
	assert_equal "$(sha256sum < "$TOPO_DIR/gap.out" | cut -d' ' -f1)" "$want"
	echo "# tcp_rexmits: $r0 before the gap, $(rexmits) after" >&3
	[ "$(rexmits)" -gt "$r0" ]
}
