#!/usr/bin/env bats
# A running agent takes a renewed login: `ntm login --renew` (from a timer,
# say) replaces the session the agent holds; the agent notices the new
# session.json, registers with the new session and uses the new token, so
# its tunnels keep working without a restart.

load helpers

setup_file() {
	platform_up
	platform_resolver_start "$(P)"
	alice_bob_up
}

teardown_file() {
	agents_down
	platform_down
}

A() { echo "$BATS_FILE_TMPDIR/alice"; }
B() { echo "$BATS_FILE_TMPDIR/bob"; }

# registered PROFILE: the agent's session id from `ntm status --json`.
agent_sid() { ntm -c "$1" status --json 2>/dev/null | jq -r '.agent.session_id // empty'; }

@test "after ntm login --renew the running agent uses the new session: a new tunnel to it comes up, no restart" {
	local sid0 sid1 i ok=0 bobfq
	bobfq=$(jq -r .fqdn "$(B)/session.json")
	sid0=$(jq -r .session_id "$(B)/session.json")
	run_t ntm -c "$(B)" login --renew < /dev/null
	assert_success
	sid1=$(jq -r .session_id "$(B)/session.json")
	[ "$sid1" != "$sid0" ]
	# The agent's registrations with the old session are refused from now
	# on; with the new one they go on. A new tunnel from alice to bob needs
	# bob registered (bounded: 40 tries, 30 s).
	for ((i = 0; i < 40; i++)); do
		if timeout 15 ntm -c "$(A)" tunnel ping -c 1 --timeout 5 "$bobfq" >/dev/null 2>&1; then
			ok=1
			break
		fi
		sleep 0.5
	done
	assert_equal "$ok" 1
	grep -q "session.json renewed" "$(B)/agent.log"
	# And the tunnel works both ways: bob's agent answers with the new token.
	run_t ntm -c "$(B)" tunnel ping -c 2 --timeout 10 "$(jq -r .fqdn "$(A)/session.json")"
	assert_success
}
