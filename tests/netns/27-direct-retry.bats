#!/usr/bin/env bats
# Trying the direct path again without a move (docs/protocol.md §4.8): two
# endpoint-independent NATs that cannot reach each other at first (nat1
# drops what goes between them), so punching fails and the tunnel stays
# relayed; bob (the requester) runs `ntm up --direct-retry 10`. Once the
# way is open, the next try punches through; while it stays shut, the
# tries back off.
#
#   srv: AS, DC1, DC2, RS, CS, dnsmasq
#     |
#   ==+============ switch: 198.18.0.0/15 ============
#     |                          |
#   nat1 198.18.2.1            nat2 198.18.3.1
#     |                          |
#   a1 100.64.2.10 bob@dc1     b1 100.64.3.10 carol@dc2

load ../bats/helpers
load lib

setup_file() {
	require_root
	topo_up "$BATS_FILE_TMPDIR/t"
	NTM_PUNCH=1 servers_up
	home_router nat1 198.18.2.1 100.64.2.1
	home_router nat2 198.18.3.1 100.64.3.1
	host_behind a1 nat1 100.64.2.10 100.64.2.1
	host_behind b1 nat2 100.64.3.10 100.64.3.1
	client_up a1 bob bob dc1 --direct-retry 10
	client_up b1 carol carol dc2
}

teardown_file() { topo_down "$BATS_FILE_TMPDIR/t"; }

setup() {
	TOPO_DIR=$BATS_FILE_TMPDIR/t
	P=$(cat "$TOPO_DIR/prefix")
	BOB=$(fqdn_of bob) CAROL=$(fqdn_of carol)
}

block() { nat_block nat1 198.18.3.1; }
unblock() { nat_unblock nat1; }

field() { tunnel_field a1 bob "$CAROL" "$1"; }
failed() { [[ "$(field path_reason)" == *"no answer from the peer's "*": relayed" ]]; }
punched_both() {
	[ "$(field path)" = punched ] && [ "$(tunnel_field b1 carol "$BOB" path)" = punched ]
}
retried() { [ "$(field direct_retries)" -ge "$1" ]; }

@test "punching fails behind a block; once it is lifted, the next try punches through, without a move" {
	block
	run ntmc a1 bob tunnel ping -c 1 --timeout 20 "$CAROL"
	assert_success
	wait_for 20 failed
	assert_equal "$(field path)" relayed
	# the next try is due (at most --direct-retry from now)
	[ "$(field direct_retry_s)" -le 10 ]
	unblock
	wait_for 40 punched_both
	retried 1
	# not a move: neither end counts one
	assert_equal "$(field repunches)" 0
	assert_equal "$(tunnel_field b1 carol "$BOB" repunches)" 0
	run ntmc a1 bob tunnel ping -c 2 --timeout 10 "$CAROL"
	assert_success
}

@test "while the way stays shut, each try that fails waits twice as long for the next" {
	ntmc a1 bob tunnel close "$CAROL" > /dev/null 2>&1 || true
	ntmc b1 carol tunnel close "$BOB" > /dev/null 2>&1 || true
	block
	run ntmc a1 bob tunnel ping -c 1 --timeout 20 "$CAROL"
	assert_success
	wait_for 20 failed
	wait_for 30 retried 1
	# the try punched for 5 s, failed again: the next in 20 s, not 10
	wait_for 20 failed
	[ "$(field direct_retry_s)" -gt 10 ]
	[ "$(field direct_retry_s)" -le 20 ]
	assert_equal "$(field path)" relayed
	run ntmc a1 bob tunnel ping -c 2 --timeout 10 "$CAROL"
	assert_success
	unblock
}
