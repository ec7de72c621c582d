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
