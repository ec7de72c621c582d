#!/usr/bin/env bats
# An authenticated client that registers from a new source port again and
# again (a NAT rebinding storm, or an attacker rotating ports) makes its DC
# write the location and tell the peers (MOVED) a bounded number of times:
# every REG_REQ is answered, the changes over the limit are held back and
# counted, and the latest location is stored once the limit allows.

load helpers

setup_file() {
	platform_up
	add_user alice 'alice-pw-1'
	login "$BATS_FILE_TMPDIR/a" alice alice-pw-1 "$(dc1_url)" >/dev/null
}
teardown_file() { platform_down; }

# dc_udp KEY: a counter of dc1's `status --json` .udp (the status file is
# rewritten every 2 s).
dc_udp() { ntm-dc -f "$(P)/dc1.conf" status --json 2>/dev/null | jq -r ".udp.$1 // empty"; }

@test "30 registrations from 30 source ports at once: all answered, at most a burst of them stored, the rest held back and counted" {
	local i ok=0 before r
	before=$(dc_udp registered)
	before=${before:-0}
	for ((i = 0; i < 30; i++)); do
		# each one-shot registration comes from a fresh UDP port
		ntm -c "$BATS_FILE_TMPDIR/a" register --dc-udp "$(udp_of dc1)" --timeout 5 \
		    >/dev/null 2>&1 && ok=$((ok + 1))
	done
	assert_equal "$ok" 30
	for ((i = 0; i < 50; i++)); do
		r=$(dc_udp registered)
		[ "${r:-0}" -ge $((before + 30)) ] && break
		sleep 0.2
	done
	[ "$(dc_udp registered)" -ge $((before + 30)) ]
	run dc_udp moves_held
	echo "held back: $output of 30" >&3
	# The burst (4) and what the clock refilled meanwhile went; the rest did not.
	[ "$output" -ge 10 ]
	# What the DC stored is still a real location of alice's (the limit
	# never leaves it with none).
	run ntm-dc -f "$(P)/dc1.conf" client list --json
	assert_success
	[ "$(jq -r '.[] | select(.fqdn == "alice.dc1.ntm.test") | .location.reflexive' <<<"$output" | cut -d: -f1)" = 127.0.0.1 ]
}

@test "a device whose clock stepped back an hour registers at once: its counters stay above every one it sent (no nonce twice under the session key)" {
	local p=$BATS_FILE_TMPDIR/a
	run_t ntm -c "$p" register --dc-udp "$(udp_of dc1)" --timeout 5
	assert_success
	# The floor of the counters is kept beside the session, 0600.
	assert_file_exists "$p/reg-counter"
	assert_equal "$(stat -c %a "$p/reg-counter")" 600
	# With the wall clock an hour behind, counters from the clock alone
	# would be ones already used; the DC would drop them as replays.
	run timeout 20 faketime -f -1h ntm -c "$p" register --dc-udp "$(udp_of dc1)" --timeout 5
	assert_success
	assert_output --partial "reflexive: 127.0.0.1:"
	run timeout 20 faketime -f -1h ntm -c "$p" register --dc-udp "$(udp_of dc1)" --timeout 5
	assert_success
}

@test "a damaged counter floor is refused, naming the file, not guessed" {
	local p=$BATS_TEST_TMPDIR/b
	login "$p" alice alice-pw-1 "$(dc1_url)" >/dev/null
	echo 'not a number' > "$p/reg-counter"
	run_t ntm -c "$p" register --dc-udp "$(udp_of dc1)" --timeout 5
	assert_failure
	assert_output --partial "$p/reg-counter: not one number"
}
