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
	# The answer names no server and no state. (On a slow machine the
	# bucket may have refilled by one or two: the first refusal is read.)
	for ((i = 0; i < 20; i++)); do
		run curl -s --max-time 10 --cacert "$(ca)" -H 'Content-Type: application/json' \
		    -d '{"version":1}' "$(dc1_url)/v1/login"
		[[ "$output" == *rate_limited* ]] && break
	done
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

# login_as USER SRC OUT: an anonymous login of USER from the address SRC,
# its HTTP status written to OUT when it ends.
login_as() {
	curl -s -o /dev/null -w '%{http_code}' --max-time 30 --interface "$2" --cacert "$(ca)" \
	    -H 'Content-Type: application/json' -d "{\"version\":1,\"user\":\"$1\",\"password\":\"x\",\"device\":\"d\",\"client_key\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}" \
	    "$(dc2_url)/v1/login" > "$3"
}

# dc2_small_queues: dc2 with one login at the AS at a time, 3 waiting in
# all and 2 per /24 (restarted once).
dc2_small_queues() {
	grep -q '^login_queue = 3' "$(P)/dc2.conf" && return 0
	platform_stop_role "$(P)" dc2
	printf 'login_inflight = 1\nlogin_queue = 3\nlogin_queue_prefix = 2\nas_timeout_ms = 30000\n' \
	    >> "$(P)/dc2.conf"
	ntm-dc -d -f "$(P)/dc2.conf" >>"$(P)/dc2.log" 2>&1 &
	echo $! > "$(P)/dc2.pid"
	wait_health "$(dc2_url)" "$(ca)"
}

@test "logins wait their turn at the AS: one queue per /24, served in turns; past the queues 503 busy" {
	local d=$BATS_TEST_TMPDIR as_pid u order pids
	dc2_small_queues
	as_pid=$(cat "$(P)/as.pid")
	# The AS stops answering: the first login holds the one place at the AS.
	kill -STOP "$as_pid"
	login_as turn0 127.0.0.1 "$d/u0" &
	pids=$!
	sleep 0.5
	# Two more from 127.0.0.0/24 wait; a third finds its /24's queue full.
	login_as turna1 127.0.0.1 "$d/a1" &
	pids+=" $!"
	sleep 0.3
	login_as turna2 127.0.0.1 "$d/a2" &
	pids+=" $!"
	sleep 0.3
	login_as turna3 127.0.0.1 "$d/a3"
	# One from 127.0.9.0/24 waits too; the queue is then full for everyone.
	login_as turnb1 127.0.9.1 "$d/b1" &
	pids+=" $!"
	sleep 0.3
	login_as turnc1 127.0.10.1 "$d/c1"
	kill -CONT "$as_pid"
	# shellcheck disable=SC2086
	wait $pids
	assert_equal "$(cat "$d/a3")" 503
	assert_equal "$(cat "$d/c1")" 503
	for u in u0 a1 a2 b1; do
		assert_equal "$(cat "$d/$u")" 401	# unknown users, asked at the AS
	done
	# The AS saw them in turns: b1 (its own /24) before the second of 127.0.0.0/24.
	order=$(grep -o 'login user=turn[a-z0-9]*' "$(P)/as.log" | sed 's/login user=turn//' |
	    tr '\n' ' ')
	echo "# order at the AS: $order" >&3
	[[ "$order" =~ 0\ .*b1\ .*a2 ]]
	[[ "$order" != *a3* && "$order" != *c1* ]]
	run grep -c 'busy (login_queue' "$(P)/dc2.log"
	[ "$output" -eq 2 ]
}

@test "a known device's login goes first: its last token here puts it before the queues; a forged one does not" {
	local d=$BATS_TEST_TMPDIR as_pid pids order tok forged rc
	dc2_small_queues
	login "$d/alice" alice alice-pw-1 "$(dc2_url)" >/dev/null
	tok=$(jq -r .token "$d/alice/session.json")
	# The same token with a character of its signature (its last 64 bytes)
	# changed.
	forged=$(python3 -c 'import sys; t = sys.argv[1]; i = len(t) - 10
print(t[:i] + ("B" if t[i] == "A" else "A") + t[i + 1:])' "$tok")
	[ "$forged" != "$tok" ]
	as_pid=$(cat "$(P)/as.pid")
	kill -STOP "$as_pid"
	login_as known0 127.0.0.1 "$d/k0" &
	pids=$!
	sleep 0.5
	login_as knowna1 127.0.0.1 "$d/a1" &
	pids+=" $!"
	sleep 0.3
	login_as knowna2 127.0.0.1 "$d/a2" &
	pids+=" $!"
	sleep 0.3
	login_as knownb1 127.0.9.1 "$d/b1" &
	pids+=" $!"
	sleep 0.3
	# Full for anonymous logins, and for a forged prior token.
	login_as knownc1 127.0.11.1 "$d/c1"
	assert_equal "$(cat "$d/c1")" 503
	run curl -s -o /dev/null -w '%{http_code}' --max-time 30 --interface 127.0.12.1 \
	    --cacert "$(ca)" -H 'Content-Type: application/json' -d "{\"version\":1,\"user\":\"alice\",\"password\":\"x\",\"device\":\"$(jq -r .device "$d/alice/session.json")\",\"client_key\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\",\"prior_token\":\"$forged\"}" \
	    "$(dc2_url)/v1/login"
	assert_output 503
	# alice's own device, from the full 127.0.0.0/24, waits before all of them.
	( login "$d/alice" alice alice-pw-1 "$(dc2_url)" >/dev/null; echo $? > "$d/alice.rc" ) &
	pids+=" $!"
	sleep 0.5
	kill -CONT "$as_pid"
	# shellcheck disable=SC2086
	wait $pids
	assert_equal "$(cat "$d/alice.rc")" 0
	for rc in k0 a1 a2 b1; do
		assert_equal "$(cat "$d/$rc")" 401
	done
	order=$(grep -o 'login user=\(known[a-z0-9]*\|alice\) ' "$(P)/as.log" | tail -n 5 |
	    sed 's/login user=//; s/known//' | tr -d '\n')
	echo "# order at the AS: $order" >&3
	# alice before every anonymous one that waited: right after the one
	# at the AS, or with it (known devices have places of their own).
	[[ "$order" == "0 alice "* || "$order" == "alice 0 "* ]]
}
