#!/usr/bin/env bats
# One account cannot take the RS's sessions (docs/protocol.md §4.4,
# account_sessions): the DC's tickets (version 2) name the account that
# asked for the tunnel, and the RS counts that account's sessions whatever
# addresses its devices bind from. Here bob has three devices behind three
# NATs (three public addresses, so the host quota never sees two of them)
# and the RS allows an account 2 sessions: two of bob's relayed tunnels come
# up, the third does not; dave, behind the very NAT of bob's third device,
# still gets his.
#
#   srv (AS, DC1, DC2, RS .4, dnsmasq) == switch
#       == nat1 198.18.2.1 == a1 100.64.2.10 (bob, device 1)
#       == nat2 198.18.3.1 == b1 100.64.3.10 (carol, the peer)
#       == nat3 198.18.4.1 == c1 100.64.4.10 (bob, device 2)
#       == nat4 198.18.5.1 == d1 100.64.5.10 (bob, device 3)
#                          == d2 100.64.5.11 (dave)
#       == g1 198.18.1.10, g2 198.18.1.11 (rsflood: tickets dc1 signs)
#
# Every tunnel is relayed (both ends behind NAT, no punching). Bob's
# devices and dave are at dc1, carol at dc2: each ticket is dc1's and
# names its requester.

load ../bats/helpers
load lib

setup_file() {
	require_root
	topo_up "$BATS_FILE_TMPDIR/t"
	servers_up
	printf '%s\n' "account_sessions = 2" "idle_timeout_s = 6" >> "$TOPO_DIR/rs.conf"
	restart_server rs
	nat_router nat1 198.18.2.1 100.64.2.1
	nat_router nat2 198.18.3.1 100.64.3.1
	nat_router nat3 198.18.4.1 100.64.4.1
	nat_router nat4 198.18.5.1 100.64.5.1
	host_behind a1 nat1 100.64.2.10 100.64.2.1
	host_behind b1 nat2 100.64.3.10 100.64.3.1
	host_behind c1 nat3 100.64.4.10 100.64.4.1
	host_behind d1 nat4 100.64.5.10 100.64.5.1
	host_behind d2 nat4 100.64.5.11 100.64.5.1
	host_global g1 198.18.1.10
	host_global g2 198.18.1.11
	client_up b1 carol carol dc2
	client_up a1 bob1 bob dc1
	client_up c1 bob2 bob dc1
	client_up d1 bob3 bob dc1
	client_up d2 dave dave dc1
}
teardown_file() { topo_down "$BATS_FILE_TMPDIR/t"; }
setup() { TOPO_DIR=$BATS_FILE_TMPDIR/t; P=$(cat "$TOPO_DIR/prefix"); }

rs_status() { n srv "$NTM_BIN/ntm-rs" -f "$TOPO_DIR/rs.conf" status --json; }
rs_field() { rs_status | jq "$1"; }

@test "one account's devices behind three NATs open two relayed tunnels, not three" {
	local carol
	carol=$(fqdn_of carol)
	run ntmc a1 bob1 tunnel ping -c 1 --timeout 15 "$carol"
	assert_success
	assert_equal "$(tunnel_field a1 bob1 "$carol" route)" relay
	run ntmc c1 bob2 tunnel ping -c 1 --timeout 15 "$carol"
	assert_success
	assert_equal "$(tunnel_field c1 bob2 "$carol" route)" relay
	# the third device, from a third public address: its ticket is dc1's
	# and valid, the RS refuses the session for bob's account
	run ntmc d1 bob3 tunnel ping -c 2 -i 1 --timeout 8 "$carol"
	assert_failure
	assert_equal "$(tunnel_field d1 bob3 "$carol" route)" relay
	wait_for 5 bash -c "[ \"\$(ip netns exec ${P}srv $NTM_BIN/ntm-rs -f $TOPO_DIR/rs.conf status --json | jq .counters.drops.account_quota)\" -ge 1 ]"
	run rs_status
	assert_success
	echo "# RS: $(jq -c '{sessions_total, account_sessions, drops: (.counters.drops | {account_quota, client_quota, dc_quota})}' <<<"$output")" >&3
	# two sessions, both of one account of dc1, with version 2 tickets
	assert_equal "$(jq .sessions_total <<<"$output")" 2
	assert_equal "$(jq -c '[.account_sessions[]]' <<<"$output")" "[2]"
	assert_equal "$(jq -r '.account_sessions | keys[0] | split("/")[0]' <<<"$output")" dc1.ntm.test
	assert_equal "$(jq -c '[.sessions[] | .ticket_version] | unique' <<<"$output")" "[2]"
	assert_equal "$(jq -c '[.sessions[] | .account] | unique | length' <<<"$output")" 1
	# the account id is not the name
	refute_output --partial '"bob'
	# not the host quota: each of bob's hosts holds one side at most
	assert_equal "$(jq .counters.drops.client_quota <<<"$output")" 0
	assert_equal "$(jq .limits.account_sessions <<<"$output")" 2
	# bob's two tunnels go on
	run ntmc a1 bob1 tunnel ping -c 1 --timeout 10 "$carol"
	assert_success
	run ntmc c1 bob2 tunnel ping -c 1 --timeout 10 "$carol"
	assert_success
}

@test "another account behind the same NAT as bob's refused device still gets a relayed tunnel" {
	local carol before
	carol=$(fqdn_of carol)
	before=$(rs_field .counters.drops.account_quota)
	run ntmc d2 dave tunnel ping -c 1 --timeout 15 "$carol"
	assert_success
	assert_equal "$(tunnel_field d2 dave "$carol" route)" relay
	wait_for 5 bash -c "[ \"\$(ip netns exec ${P}srv $NTM_BIN/ntm-rs -f $TOPO_DIR/rs.conf status --json | jq .sessions_total)\" -eq 3 ]"
	run rs_status
	assert_success
	assert_equal "$(jq -c '[.account_sessions[]] | sort' <<<"$output")" "[1,2]"
	# bob's third device is still refused, from the same public address
	run ntmc d1 bob3 tunnel ping -c 1 --timeout 5 "$carol"
	assert_failure
	[ "$(rs_field .counters.drops.account_quota)" -gt "$before" ]
}

@test "the account's quota comes back when one of its tunnels ends" {
	local carol
	carol=$(fqdn_of carol)
	# bob1 closes its tunnel, and carol's end goes too (CLOSE; closed
	# here as well in case that datagram was lost): the session idles out
	# (idle_timeout_s 6) once neither side binds
	run ntmc a1 bob1 tunnel close "$carol"
	assert_success
	run ntmc b1 carol tunnel close "$(fqdn_of bob1)"
	wait_for 20 bash -c "[ \"\$(ip netns exec ${P}srv $NTM_BIN/ntm-rs -f $TOPO_DIR/rs.conf status --json | jq '[.account_sessions[]] | max')\" -le 1 ]"
	# the refused tunnel of bob3 never came up: each end drops it (30 s
	# after it was made), and the next ping asks the DC for a new one
	wait_for 40 bash -c "[ -z \"\$(timeout 10 ip netns exec ${P}d1 $NTM_BIN/ntm -c $TOPO_DIR/bob3 tunnel list --json | jq -r --arg p $carol '(.tunnels // .)[] | select(.peer == \$p) | .peer')\" ]"
	run ntmc d1 bob3 tunnel ping -c 1 --timeout 15 "$carol"
	assert_success
	assert_equal "$(tunnel_field d1 bob3 "$carol" route)" relay
	run rs_status
	assert_equal "$(jq -c '[.account_sessions[]] | sort' <<<"$output")" "[1,2]"
}

@test "ntm-rs status and /metrics show the account quota" {
	run n srv "$NTM_BIN/ntm-rs" -f "$TOPO_DIR/rs.conf" status
	assert_success
	assert_output --partial "quotas 64 sessions per client address, 2 per account, 50% of the sessions per DC"
	assert_output --regexp "drops.* account_quota [1-9][0-9]*"
	run metrics rs
	assert_success
	assert_output --regexp 'ntm_rs_dropped_total\{reason="account_quota"\} [1-9][0-9]*'
}

@test "tickets of version 1 (a DC before version 2) are held by the host quota, version 2 by the account's from any host" {
	local k=("--to" "198.18.0.4:3478" "--key" "$TOPO_DIR/dc1/identity.key"
	    "--cert" "$TOPO_DIR/dc1/server.cert" "--rs-key" "$(cat "$TOPO_DIR/rs.pub")"
	    "--rs-name" "rs1.ntm.test" "--wait-ms" "300")
	# sessions bound on one side only stay for the whole test
	sed -i 's/^idle_timeout_s = .*/idle_timeout_s = 120/' "$TOPO_DIR/rs.conf"
	restart_server rs
	# one account's tickets, made as dc1 makes them, from two hosts
	run n g1 "$NTM_BIN/tests/rsflood" sessions "${k[@]}" --n 3 --account erin
	assert_success
	assert_output --regexp '^acked 2 of 3'
	run n g2 "$NTM_BIN/tests/rsflood" sessions "${k[@]}" --n 1 --account erin
	assert_output --regexp '^acked 0 of 1'
	# another account from the same host
	run n g2 "$NTM_BIN/tests/rsflood" sessions "${k[@]}" --n 1 --account frank
	assert_output --regexp '^acked 1 of 1'
	# version 1 names no account: three from g2, held by client_sessions only
	run n g2 "$NTM_BIN/tests/rsflood" sessions "${k[@]}" --n 3
	assert_output --regexp '^acked 3 of 3'
	wait_for 5 bash -c "[ \"\$(ip netns exec ${P}srv $NTM_BIN/ntm-rs -f $TOPO_DIR/rs.conf status --json | jq .sessions_total)\" -ge 6 ]"
	run rs_status
	assert_success
	# (the agents' tunnels bound again after the restart: bob's two, dave's)
	assert_equal "$(jq -c '[.account_sessions[]] | max' <<<"$output")" 2
	assert_equal "$(jq '[.sessions[] | select(.ticket_version == 1 and .account == null)] | length' <<<"$output")" 3
}
