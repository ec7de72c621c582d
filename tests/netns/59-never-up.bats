#!/usr/bin/env bats
# A tunnel that never comes up does not hold a place in the agent's table
# for good: alice asks for a tunnel to bob, but bob's host drops every
# datagram from alice (nftables), so no handshake ever completes. Both
# agents drop the tunnel AGENT_SETUP_MAX_MS (30 s) after it was made, and
# count it.
#
#   srv (AS, DC1, DC2, RS, CS, dnsmasq) == switch == g1 198.18.1.10 (alice@dc1)
#                                                 \== g2 198.18.1.20 (bob@dc2, drops g1)

load ../bats/helpers
load lib

setup_file() {
	require_root
	topo_up "$BATS_FILE_TMPDIR/t"
	servers_up
	host_global g1 198.18.1.10
	host_global g2 198.18.1.20
	client_up g1 alice alice dc1
	client_up g2 bob bob dc2
	n g2 nft -f - <<-NFT
	table inet drop_alice {
		chain in {
			type filter hook input priority 0;
			ip saddr 198.18.1.10 drop
		}
	}
	NFT
}

teardown_file() { topo_down "$BATS_FILE_TMPDIR/t"; }

setup() { TOPO_DIR=$BATS_FILE_TMPDIR/t; P=$(cat "$TOPO_DIR/prefix"); }

st() { ntmc "$1" "$2" status --json | jq -r ".agent.$3"; }

@test "a tunnel whose handshake never completes leaves both tables 30 s after it was made" {
	run ntmc g1 alice tunnel ping -c 1 --timeout 5 "$(fqdn_of bob)"
	assert_failure
	# Both ends hold it for now (bob's from the DC's direction).
	wait_for 10 bash -c "[ \"\$(ip netns exec ${P}g2 $NTM_BIN/ntm -c $TOPO_DIR/bob status --json | jq -r .agent.tunnels)\" = 1 ]"
	assert_equal "$(st g1 alice tunnels)" 1
	assert_equal "$(st g2 bob tunnels_never_up)" 0
	# Gone within the 30 s (and a registration interval) of their making.
	wait_for 60 bash -c "[ \"\$(ip netns exec ${P}g2 $NTM_BIN/ntm -c $TOPO_DIR/bob status --json | jq -r .agent.tunnels)\" = 0 ]"
	wait_for 30 bash -c "[ \"\$(ip netns exec ${P}g1 $NTM_BIN/ntm -c $TOPO_DIR/alice status --json | jq -r .agent.tunnels)\" = 0 ]"
	assert_equal "$(st g2 bob tunnels_never_up)" 1
	assert_equal "$(st g1 alice tunnels_never_up)" 1
	grep -q "tunnel $(fqdn_of alice): not up 30 s after it was made; dropped" "$TOPO_DIR/agent-bob.log"
}
