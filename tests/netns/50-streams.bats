#!/usr/bin/env bats
# Byte streams between vIPs for unmodified programs: TCP in each agent's
# user-space stack (lwIP), carried by the tunnel, through real NATs.
#
#   srv: AS, DC1, DC2, RS, CS, dnsmasq
#     |
#   ==+=================== switch: 198.18.0.0/15 ==================
#     |                      |                      |
#   g1 (global)            nat1 (masq)            nat2 (masq)
#   198.18.1.10              |                      |
#   alice@dc1              a1 100.64.2.10         b1 100.64.3.10
#                          bob@dc2                carol@dc1
#
# alice <-> bob is direct (bob behind a NAT initiates); bob <-> carol is
# relayed through the RS (two different NATs).

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
	host_behind b1 nat2 100.64.3.10 100.64.3.1
	client_up g1 alice alice dc1
	client_up a1 bob bob dc2
	client_up b1 carol carol dc1
	head -c $((50 * 1024 * 1024)) /dev/urandom > "$BATS_FILE_TMPDIR/t/big"
}

teardown_file() { topo_down "$BATS_FILE_TMPDIR/t"; }

setup() {
	TOPO_DIR=$BATS_FILE_TMPDIR/t
	P=$(cat "$TOPO_DIR/prefix")
	ALICE=$(fqdn_of alice) BOB=$(fqdn_of bob) CAROL=$(fqdn_of carol)
}

# transfer FROM_NS FROM_PROF TO_NS TO_PROF PEER PORT: 50 MiB through a stream;
# prints the receiver's SHA-256.
transfer() {
	local out=$TOPO_DIR/recv.$6
	ntmc "$3" "$4" tunnel listen "$6" > "$out" 2> "$TOPO_DIR/listen.$6.err" < /dev/null &
	local lis=$!
	sleep 1
	timeout 120 ip netns exec "$P$1" "$NTM_BIN/ntm" -c "$TOPO_DIR/$2" \
	    tunnel open "$5" "$6" --timeout 20 < "$TOPO_DIR/big" > /dev/null
	local rc=$?
	wait_for 30 bash -c "! kill -0 $lis 2>/dev/null" || kill "$lis"
	wait "$lis"
	local lrc=$?
	echo "sender $rc listener $lrc" >&2
	[ "$rc" -eq 0 ] && [ "$lrc" -eq 0 ] && sha256sum < "$out" | cut -d' ' -f1
}

@test "50 MiB through a direct tunnel arrives with the same SHA-256" {
	local want got
	want=$(sha256sum < "$TOPO_DIR/big" | cut -d' ' -f1)
	got=$(transfer a1 bob g1 alice "$ALICE" 7100)
	assert_equal "$got" "$want"
	assert_equal "$(tunnel_field a1 bob "$ALICE" route)" direct
}

@test "50 MiB through the relay arrives with the same SHA-256" {
	local want got
	want=$(sha256sum < "$TOPO_DIR/big" | cut -d' ' -f1)
	got=$(transfer a1 bob b1 carol "$CAROL" 7101)
	assert_equal "$got" "$want"
	assert_equal "$(tunnel_field a1 bob "$CAROL" route)" relay
}

@test "half-close: end of input reaches the peer, whose answer still comes back" {
	# The listener's command answers only after it has read to EOF.
	ntmc g1 alice tunnel listen 7102 --exec 'wc -c; echo after-eof' > /dev/null 2>&1 &
	local lis=$!
	sleep 1
	run bash -c "printf 'twelve bytes' | ip netns exec '${P}a1' '$NTM_BIN/ntm' \
	    -c '$TOPO_DIR/bob' tunnel open '$ALICE' 7102"
	assert_success
	assert_equal "$(echo "$output" | tr -d ' ' | head -1)" 12
	assert_line after-eof
	wait "$lis"
}

@test "a peer given by vIP reaches the same stream" {
	local vip
	vip=$(ntmc g1 alice status --json | jq -r .agent.vip4)
	ntmc g1 alice tunnel listen 7103 --exec 'echo hi-from-vip' > /dev/null 2>&1 &
	local lis=$!
	sleep 1
	run ntmc a1 bob tunnel open "${vip%/*}" 7103 < /dev/null
	assert_success
	assert_output hi-from-vip
	wait "$lis"
}

@test "a port nobody listens on is refused at once (exit 11)" {
	run ntmc a1 bob tunnel open "$ALICE" 7999 < /dev/null
	assert_failure 11
	assert_output --partial "refused"
}

@test "a tunnel closed mid-transfer ends the stream with exit 12, not a hang" {
	ntmc g1 alice tunnel listen 7104 > /dev/null 2>&1 &
	local lis=$!
	sleep 1
	( rc=0
	  timeout 60 ip netns exec "${P}a1" "$NTM_BIN/ntm" -c "$TOPO_DIR/bob" \
	    tunnel open "$ALICE" 7104 < /dev/zero > /dev/null 2> "$TOPO_DIR/torn.err" || rc=$?
	  echo "$rc" > "$TOPO_DIR/torn.rc" ) &
	local snd=$!
	wait_for 20 bash -c "ip netns exec '${P}a1' '$NTM_BIN/ntm' -c '$TOPO_DIR/bob' \
	    tunnel list --json | jq -e '.streams[] | select(.port == 7104 and .bytes_out > 100000)'"
	ntmc a1 bob tunnel close "$ALICE"
	wait_for 20 test -s "$TOPO_DIR/torn.rc"
	cat "$TOPO_DIR/torn.err" >&2
	assert_equal "$(cat "$TOPO_DIR/torn.rc")" 12
	grep -q "tunnel_closed" "$TOPO_DIR/torn.err"
	# the listener hears a reset, also exit 12, in bounded time
	wait_for 40 bash -c "! kill -0 $lis 2>/dev/null"
	run wait "$lis"
	assert_equal "$status" 12
	wait "$snd" || true
}

@test "an offline peer: a clear error and exit 10 in bounded time" {
	local dave
	dave=dave.dc1.ntm.test
	run timeout 30 ip netns exec "${P}a1" "$NTM_BIN/ntm" -c "$TOPO_DIR/bob" \
	    tunnel open "$dave" 7000 --timeout 5 < /dev/null
	assert_failure 10
}

@test "bad stream arguments are refused with one line and exit 2" {
	run ntmc a1 bob tunnel open "$ALICE"
	assert_failure 2
	assert_output --partial "missing PORT"
	run ntmc a1 bob tunnel open "$ALICE" 70000
	assert_failure 2
	assert_output --partial "PORT '70000'"
	run ntmc a1 bob tunnel open "$ALICE" 7000 --udp 7000
	assert_failure 2
	run ntmc a1 bob tunnel open "$ALICE" --udp 7000 --exec cat
	assert_failure 2
	assert_output --partial "--exec applies to streams"
}
