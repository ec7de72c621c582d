#!/usr/bin/env bats
# A DC spends nothing (above all, no call to the AS) on logins over its
# per-source limits: login_rate per address and login_rate_prefix per /24
# or /56, each with bursts of five seconds' worth. Over them: 429
# rate_limited at once, and one summary in the log, not a line each.

load helpers

setup_file() {
	platform_up
	add_user alice 'alice-pw-1'
	# dc1 with the default limits (the platform raises them for the others).
	platform_stop_role "$(P)" dc1
	sed -i -e '/^login_rate/d' "$(P)/dc1.conf"
	ntm-dc -d -f "$(P)/dc1.conf" >>"$(P)/dc1.log" 2>&1 &
	echo $! > "$(P)/dc1.pid"
	wait_health "$(dc1_url)" "$(ca)"
}
teardown_file() { platform_down; }

@test "logins from one address over login_rate get 429 rate_limited without reaching the AS; a later one goes" {
	local i code ok=0 limited=0
	# 40 anonymous logins at once (unknown users): a burst of 10 passes.
	for ((i = 0; i < 40; i++)); do
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 --cacert "$(ca)" \
		    -H 'Content-Type: application/json' -d "{\"version\":1,\"user\":\"nobody$i\",\"password\":\"x\",\"device\":\"d\",\"client_key\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}" \
		    "$(dc1_url)/v1/login")
		case $code in 429) limited=$((limited + 1)) ;; *) ok=$((ok + 1)) ;; esac
	done
	echo "# 40 at once: $ok went on, $limited refused" >&3
	[ "$limited" -ge 20 ]
	[ "$ok" -le 15 ]
	# Only those reached the AS.
	[ "$(grep -c 'login user=nobody' "$(P)/as.log")" -eq "$ok" ]
	# The answer names no server and no state.
	run curl -s --max-time 10 --cacert "$(ca)" -H 'Content-Type: application/json' \
	    -d '{"version":1}' "$(dc1_url)/v1/login"
	assert_output '{"code":"rate_limited","message":"too many logins from your address; try again in a few seconds"}'
	# One summary line, not a line per refusal.
	sleep 11
	run curl -s -o /dev/null --max-time 10 --cacert "$(ca)" -d '{"version":1}' "$(dc1_url)/v1/login"
	[ "$(grep -c 'login refused: over login_rate' "$(P)/dc1.log")" -le 5 ]
	# The bucket fills again: a real login goes.
	sleep 1
	run login "$BATS_TEST_TMPDIR/a" alice alice-pw-1 "$(dc1_url)"
	assert_success
}
