#!/usr/bin/env bats
# Naming a peer that cannot be reached: each cause has its own error code,
# a message that names the domain or the peer (never a DC's URL), and its
# documented exit code.
#
#   alice (agent, dc1) --POST /v1/tunnel, /v1/exchange/key--> dc1
#       dc1 --DNS SRV _ntm._tcp.DOMAIN--> dnsmasq --> dc2's DNS (else NXDOMAIN)
#       dc1 --HTTPS /v1/dc/...--> dc2 (bob, carol)
#
#   no DC for the domain by DNS     unknown_domain        exit 10
#   no such device at its DC        unknown_peer          exit 10
#   the peer's DC found, not up     upstream_unavailable  exit 3
#   the peer's agent stopped        peer_offline          exit 10
#     (ntm down tells its DC, which answers at once: no wait for a
#     handshake with nobody, no tunnel_timeout)

load helpers

setup_file() {
	platform_up
	platform_resolver_start "$(P)"
	add_user alice 'alice-pw-1'
	add_user bob 'bob-pw-1'
	add_user carol 'carol-pw-1'
	add_user dave 'dave-pw-1'
	add_user erin 'erin-pw-1'
	login "$(prof alice)" alice alice-pw-1 "$(dc1_url)" >/dev/null
	login "$(prof bob)" bob bob-pw-1 "$(dc2_url)" >/dev/null
	login "$(prof carol)" carol carol-pw-1 "$(dc2_url)" >/dev/null
	login "$(prof dave)" dave dave-pw-1 "$(dc1_url)" >/dev/null
	login "$(prof erin)" erin erin-pw-1 "$(dc1_url)" >/dev/null
	agent_up "$(prof alice)" dc1
	agent_up "$(prof bob)" dc2
}

teardown_file() {
	agents_down
	platform_down
}

prof() { echo "$BATS_FILE_TMPDIR/$1"; }


@test "a peer in a domain DNS knows no DC for: exit 10, unknown_domain, the domain named" {
	run_t ntm -c "$(prof alice)" tunnel ping -c 1 --timeout 20 bob.dc9.ntm.test
	assert_failure 10
	assert_equal "${#lines[@]}" 1
	assert_output "ntm: tunnel: unknown_domain: no DC found for the domain dc9.ntm.test by DNS (no SRV _ntm._tcp.dc9.ntm.test): check the name"
	run_t ntm -c "$(prof alice)" keys exchange bob.dc9.ntm.test
	assert_failure 10
	assert_output --partial "unknown_domain: no DC found for the domain dc9.ntm.test"
	assert_output --partial "check the name"
	refute_output --partial upstream
	# A name under no test zone at all is the same case.
	run_t ntm -c "$(prof alice)" tunnel ping -c 1 --timeout 20 bob.nowhere.example
	assert_failure 10
	assert_output --partial "unknown_domain: no DC found for the domain nowhere.example"
}

@test "a device its DC does not know: exit 10, unknown_peer, the device named" {
	run_t ntm -c "$(prof alice)" tunnel ping -c 1 --timeout 20 nobody.dc2.ntm.test
	assert_failure 10
	assert_output "ntm: tunnel: unknown_peer: no device nobody.dc2.ntm.test at dc2.ntm.test: check the name"
	run_t ntm -c "$(prof alice)" keys exchange nobody.dc2.ntm.test
	assert_failure 10
	assert_output --partial "unknown_peer"
	assert_output --partial "no device nobody.dc2.ntm.test at dc2.ntm.test: check the name"
	# In the asker's own domain as well.
	run_t ntm -c "$(prof alice)" tunnel ping -c 1 --timeout 20 nobody.dc1.ntm.test
	assert_failure 10
	assert_output "ntm: tunnel: unknown_peer: no device nobody.dc1.ntm.test at dc1.ntm.test: check the name"
}

# registered DC FQDN: whether the DC holds a live registration of FQDN.
registered() {
	ntm-dc -f "$(P)/$1.conf" client list --json |
	    jq -e --arg f "$2" '.[] | select(.fqdn == $f) | .location.online == true' >/dev/null
}

# offline_at_once NAME DC FQDN: NAME's agent runs, then stops; alice asks
# for a tunnel to it.
offline_at_once() {
	local name=$1 dc=$2 fqdn=$3
	agent_up "$(prof "$name")" "$dc"
	registered "$dc" "$fqdn"
	run_t ntm -c "$(prof "$name")" down
	assert_success
	# The DC holds its last location, offline, at once.
	run registered "$dc" "$fqdn"
	assert_failure
	run_t ntm-dc -f "$(P)/$dc.conf" client list --json
	assert_equal "$(jq -r --arg f "$fqdn" '.[] | select(.fqdn == $f) | .location.online' <<<"$output")" false
	run_t ntm -c "$(prof alice)" tunnel ping -c 1 --timeout 20 "$fqdn"
	assert_failure 10
	assert_equal "${#lines[@]}" 1
	assert_output "ntm: tunnel: peer_offline: $fqdn is offline: its agent stopped (ntm down)"
	# Back up: reachable again.
	agent_up "$(prof "$name")" "$dc"
	run_t ntm -c "$(prof alice)" tunnel ping -c 1 --timeout 20 "$fqdn"
	assert_success
	run_t ntm -c "$(prof "$name")" down
	assert_success
}

@test "a peer at another DC whose agent stopped: exit 10, peer_offline saying so, no tunnel_timeout" {
	offline_at_once carol dc2 carol.dc2.ntm.test
}

@test "a peer at the same DC whose agent stopped: exit 10, peer_offline saying so" {
	offline_at_once dave dc1 dave.dc1.ntm.test
}

@test "a peer logged in that never started an agent: peer_offline asks whether it runs" {
	run_t ntm -c "$(prof alice)" tunnel ping -c 1 --timeout 20 erin.dc1.ntm.test
	assert_failure 10
	assert_output --regexp '^ntm: tunnel: peer_offline: erin\.dc1\.ntm\.test is offline: it has not registered within [0-9]+ s \(is its agent running\?\)$'
}

@test "the peer's DC is found but down: exit 3, upstream_unavailable naming the domain, not the DC's URL" {
	local port
	port=$(platform_port "$(P)" dc2)
	# dc2 answers: bob is reached (and dc1 has found dc2 by DNS).
	run_t ntm -c "$(prof alice)" tunnel ping -c 1 --timeout 20 bob.dc2.ntm.test
	assert_success
	platform_stop_role "$(P)" dc2
	# A peer alice has no tunnel with: dc1 must ask dc2, which is gone.
	run_t ntm -c "$(prof alice)" tunnel ping -c 1 --timeout 20 frank.dc2.ntm.test
	assert_failure 3
	assert_equal "${#lines[@]}" 1
	assert_output --regexp '^ntm: tunnel: upstream_unavailable: .*dc2\.ntm\.test'
	refute_output --partial https://
	refute_output --partial "$port"
	refute_output --partial unknown_
	run_t ntm -c "$(prof alice)" keys exchange bob.dc2.ntm.test
	assert_failure 3
	assert_output --regexp 'upstream_unavailable: .*dc2\.ntm\.test'
	refute_output --partial https://
	refute_output --partial "$port"
	PLATFORM_ROLES=dc2 platform_start "$(P)"
}
