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
	local i code ok=0 asked=0 limited=0 other=0 args=()
	# 40 anonymous logins at once (unknown users): a burst of 10 passes.
	# One curl sends them all in parallel, so that the bucket has no time
	# to fill again in between, however slow the machine starts programs.
	for ((i = 0; i < 40; i++)); do
		[ "$i" -eq 0 ] || args+=(--next)
		args+=(-s -o /dev/null -w '%{http_code}\n' --max-time 10 --cacert "$(ca)"
		    -H 'Content-Type: application/json' -d "{\"version\":1,\"user\":\"nobody$i\",\"password\":\"x\",\"device\":\"d\",\"client_key\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}"
		    "$(dc1_url)/v1/login")
	done
	while read -r code; do
		case $code in
		429) limited=$((limited + 1)) ;;
		# 401 from the AS (unknown users); 503: past the DC's queues
		# for the AS (login_queue_prefix), not asked either
		401) ok=$((ok + 1)) asked=$((asked + 1)) ;;
		503) ok=$((ok + 1)) ;;
		*) other=$((other + 1)) ;;
		esac
	done < <(curl -s --parallel --parallel-immediate --parallel-max 40 "${args[@]}")
	[ "$other" -eq 0 ]
	echo "# 40 at once: $ok went on ($asked to the AS), $limited refused" >&3
	[ "$limited" -ge 20 ]
	[ "$ok" -le 15 ]
	# Only those reached the AS.
	[ "$(grep -c 'login user=nobody' "$(P)/as.log")" -eq "$asked" ]
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
# all and 2 per /24, and its metrics on (restarted once).
dc2_small_queues() {
	grep -q '^login_queue = 3' "$(P)/dc2.conf" && return 0
	platform_stop_role "$(P)" dc2
	(umask 077 && openssl rand -hex 32 > "$(P)/metrics.token")
	printf 'login_inflight = 1\nlogin_queue = 3\nlogin_queue_prefix = 2\nas_timeout_ms = 30000\nmetrics_token_file = %s\n' \
	    "$(P)/metrics.token" >> "$(P)/dc2.conf"
	ntm-dc -d -f "$(P)/dc2.conf" >>"$(P)/dc2.log" 2>&1 &
	echo $! > "$(P)/dc2.pid"
	wait_health "$(dc2_url)" "$(ca)"
}

# logins_are AT WAITING: dc2 has AT logins at the AS and WAITING in its
# queues now (its metrics).
logins_are() {
	local m
	m=$(curl -s --max-time 10 --cacert "$(ca)" \
	    -H "Authorization: Bearer $(cat "$(P)/metrics.token")" "$(dc2_url)/metrics") ||
	    return 1
	[ "$(awk '$1 == "ntm_dc_logins_at_as" { print $2 }' <<<"$m")" = "$1" ] &&
	    [ "$(awk '$1 == "ntm_dc_logins_waiting" { print $2 }' <<<"$m")" = "$2" ]
}

# until_logins AT WAITING: waits until logins_are AT WAITING (at most 30 s),
# so that the logins reach dc2 in the order the test sends them, however
# slowly the machine starts them.
until_logins() {
	local t
	for ((t = 0; t < 300; t++)); do
		logins_are "$1" "$2" && return 0
		sleep 0.1
	done
	echo "dc2 never had $1 logins at the AS and $2 waiting" >&2
	return 1
}

@test "logins wait their turn at the AS: one queue per /24, served in turns; past the queues 503 busy" {
	local d=$BATS_TEST_TMPDIR as_pid u order pids
	dc2_small_queues
	as_pid=$(cat "$(P)/as.pid")
	# The AS stops answering: the first login holds the one place at the AS.
	kill -STOP "$as_pid"
	login_as turn0 127.0.0.1 "$d/u0" &
	pids=$!
	until_logins 1 0
	# Two more from 127.0.0.0/24 wait; a third finds its /24's queue full.
	login_as turna1 127.0.0.1 "$d/a1" &
	pids+=" $!"
	until_logins 1 1
	login_as turna2 127.0.0.1 "$d/a2" &
	pids+=" $!"
	until_logins 1 2
	login_as turna3 127.0.0.1 "$d/a3"
	# One from 127.0.9.0/24 waits too; the queue is then full for everyone.
	login_as turnb1 127.0.9.1 "$d/b1" &
	pids+=" $!"
	until_logins 1 3
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
	until_logins 1 0
	login_as knowna1 127.0.0.1 "$d/a1" &
	pids+=" $!"
	until_logins 1 1
	login_as knowna2 127.0.0.1 "$d/a2" &
	pids+=" $!"
	until_logins 1 2
	login_as knownb1 127.0.9.1 "$d/b1" &
	pids+=" $!"
	until_logins 1 3
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
	# (known devices have places at the AS of their own: alice's is there)
	until_logins 2 3
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
	# alice went to the AS while the three anonymous ones still waited
	# (until_logins 2 3 above: known devices have places of their own);
	# so the AS had her before those of her own /24 (b1, of another,
	# went when 0 was done, and may finish first: the AS hashes two at
	# a time).
	[[ "$order" =~ alice\ .*a1\  && "$order" =~ alice\ .*a2\  ]]
}
