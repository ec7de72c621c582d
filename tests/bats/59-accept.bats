#!/usr/bin/env bats
# ntm up --accept PEER: only the peers it names may open tunnels to this
# device; the agent makes no tunnel for another's direction, counts and
# logs it. A tunnel the device opens itself is not concerned. bob at dc2
# accepts carol (dc1), not alice (dc1); then every device of dc1 (dave).

load helpers

setup_file() {
	platform_up
	platform_resolver_start "$(P)"
	add_user alice 'alice-pw-1'
	add_user bob 'bob-pw-1'
	add_user carol 'carol-pw-1'
	add_user dave 'dave-pw-1'
	login "$(A)" alice alice-pw-1 "$(dc1_url)" >/dev/null
	login "$(B)" bob bob-pw-1 "$(dc2_url)" >/dev/null
	login "$(C)" carol carol-pw-1 "$(dc1_url)" >/dev/null
	login "$(D)" dave dave-pw-1 "$(dc1_url)" >/dev/null
	agent_up "$(A)" dc1
	agent_up "$(C)" dc1
	agent_up "$(D)" dc1
	bob_up --accept "$(fqdn_of "$(C)")"
}

teardown_file() {
	agents_down
	platform_down
}

A() { echo "$BATS_FILE_TMPDIR/alice"; }
B() { echo "$BATS_FILE_TMPDIR/bob"; }
C() { echo "$BATS_FILE_TMPDIR/carol"; }
D() { echo "$BATS_FILE_TMPDIR/dave"; }
fqdn_of() { jq -r .fqdn "$1/session.json"; }
# bob_up ARGS...: bob's agent with those options (agent_up's, and ARGS).
bob_up() {
	local out pid
	out=$(timeout 30 ntm -c "$(B)" up --dc-udp "$(udp_of dc2)" --timeout 15 "$@") || {
		echo "bob_up: $out" >&3; return 1; }
	pid=$(sed -n 's/^agent: running (pid \([0-9]*\),.*/\1/p' <<<"$out")
	[ -n "$pid" ] || return 1
	echo "$pid" > "$BATS_FILE_TMPDIR/bob.agentpid"
}
refused() { ntm -c "$(B)" status --json | jq .agent.tunnels_refused; }

@test "a peer --accept names opens a tunnel; another's is refused, counted and logged" {
	run_t ntm -c "$(C)" tunnel ping -c 1 --timeout 20 "$(fqdn_of "$(B)")"
	assert_success
	assert_equal "$(refused)" 0
	run_t ntm -c "$(A)" tunnel ping -c 1 --timeout 6 "$(fqdn_of "$(B)")"
	assert_failure
	refute_output --partial "bytes from"
	[ "$(refused)" -ge 1 ]
	assert_equal "$(ntm -c "$(B)" status --json | jq -c .agent.accept)" "[\"$(fqdn_of "$(C)")\"]"
	grep -q "a tunnel from $(fqdn_of "$(A)") refused: not a peer --accept names" \
	    "$(B)/agent.log"
	# bob's agent made no tunnel for alice
	run_t ntm -c "$(B)" tunnel list --json
	assert_equal "$(jq --arg p "$(fqdn_of "$(A)")" '[.tunnels[] | select(.peer == $p)] | length' <<<"$output")" 0
}

@test "a tunnel bob opens himself is not concerned" {
	run_t ntm -c "$(B)" tunnel ping -c 1 --timeout 20 "$(fqdn_of "$(A)")"
	assert_success
	assert_output --partial "bytes from"
}

@test "*.DOMAIN accepts every device of a domain; a bad pattern is a usage error" {
	run_t ntm -c "$(B)" up --accept 'x..y'
	assert_failure 2
	assert_output "ntm: up: --accept 'x..y': expected a peer FQDN or *.DOMAIN"
	run_t ntm -c "$(B)" down
	assert_success
	bob_up --accept '*.dc1.ntm.test'
	# dave (dc1), who never had a tunnel to bob's agent of before
	run_t ntm -c "$(D)" tunnel ping -c 1 --timeout 20 "$(fqdn_of "$(B)")"
	assert_success
	assert_equal "$(refused)" 0
	assert_equal "$(ntm -c "$(B)" status --json | jq -c .agent.accept)" '["*.dc1.ntm.test"]'
}
