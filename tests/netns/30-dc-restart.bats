#!/usr/bin/env bats
# A DC restarts while a tunnel carries traffic: the tunnel keeps working
# (the DCs are not on the data path) and the clients register again.
#
#   srv (AS, DC1, DC2, RS, dnsmasq) == switch == g1 198.18.1.10 (alice@dc1)
#                                          \=== nat1 == a1 100.64.2.10 (bob@dc2)

load ../bats/helpers
load lib

setup_file() {
	require_root
	export NTM_KEEPALIVE=1
	topo_up "$BATS_FILE_TMPDIR/t"
	servers_up
	host_global g1 198.18.1.10
	nat_router nat1 198.18.2.1 100.64.2.1
	host_behind a1 nat1 100.64.2.10 100.64.2.1
	client_up g1 alice alice dc1
	client_up a1 bob bob dc2
}
teardown_file() { topo_down "$BATS_FILE_TMPDIR/t"; }
setup() { TOPO_DIR=$BATS_FILE_TMPDIR/t; P=$(cat "$TOPO_DIR/prefix"); }

@test "restarting both DCs under traffic: the tunnel carries on, clients re-register" {
	local bob alice
	bob=$(fqdn_of bob) alice=$(fqdn_of alice)
	run ntmc g1 alice tunnel ping -c 2 --timeout 20 "$bob"
	assert_success
	ntmc a1 bob tunnel ping -c 9000 -i 0.1 "$alice" > "$TOPO_DIR/stream" 2>&1 &
	local s=$!
	wait_for 10 grep -q time= "$TOPO_DIR/stream"
	local t0
	t0=$(date +%s)
	restart_server dc1
	restart_server dc2
	local before
	before=$(grep -c time= "$TOPO_DIR/stream")
	wait_for 10 bash -c "[ \$(grep -c time= '$TOPO_DIR/stream') -ge $((before + 20)) ]"
	kill "$s"
	# the stream never stopped for long: no reply lost beyond a few
	run ntmc g1 alice tunnel list --json
	assert_success
	# both clients registered again with the restarted DCs
	wait_for 10 bash -c "ip netns exec ${P}srv $NTM_BIN/ntm-dc -f $TOPO_DIR/dc1.conf client list --json | jq -e '.[] | select(.fqdn == \"$alice\") | .location.last_seen >= $t0' | grep -q true"
	wait_for 10 bash -c "ip netns exec ${P}srv $NTM_BIN/ntm-dc -f $TOPO_DIR/dc2.conf client list --json | jq -e '.[] | select(.fqdn == \"$bob\") | .location.last_seen >= $t0' | grep -q true"
	# and new tunnels can be made through them
	run ntmc a1 bob tunnel close "$alice"
	run ntmc a1 bob tunnel ping -c 2 --timeout 20 "$alice"
	assert_success
}
