#!/usr/bin/env bats
# Logins hold under floods, with the real Argon2id at the AS and the DCs'
# production login limits: the AS takes turns between its DCs; an
# anonymous login flood from 64 /24s at one DC and an authenticated
# client's location-change flood leave the logins of known devices at both
# DCs succeeding. The rates reached are printed; bench/login-flood.sh
# measures the latencies. Nothing here asserts a timing.

load helpers

setup_file() {
	# The real password hash: the AS's CPU is what a flood aims at.
	unset NTM_PWHASH_FAST
	platform_init "$(P)" >"$BATS_FILE_TMPDIR/init.log" 2>&1 || {
		cat "$BATS_FILE_TMPDIR/init.log" >&3; return 1; }
	# Both DCs with the default login limits (the platform raises them).
	sed -i -e '/^login_rate/d' "$(P)/dc1.conf" "$(P)/dc2.conf"
	(umask 077 && openssl rand -hex 32 > "$(P)/metrics.token")
	echo "metrics_token_file = $(P)/metrics.token" >> "$(P)/as.conf"
	# dc2 keeps up to 8 logins at the AS (the turns test); dc1 the default 4.
	echo "login_inflight = 8" >> "$(P)/dc2.conf"
	platform_start "$(P)"
	platform_resolver_start "$(P)"
	printf 'bench-pw-1\n' > "$BATS_FILE_TMPDIR/pw"
	add_user bench bench-pw-1
	add_user mover bench-pw-1
	# Each legitimate device logs in once: a device its DC knows.
	login "$BATS_FILE_TMPDIR/l1" bench bench-pw-1 "$(dc1_url)" >/dev/null
	login "$BATS_FILE_TMPDIR/l2" bench bench-pw-1 "$(dc2_url)" >/dev/null
}
teardown_file() { platform_down; }

# anon DC USER SRC OUT: an anonymous login of USER at DC (dc1, dc2) from SRC;
# its HTTP status into OUT.
anon() {
	curl -s -o /dev/null -w '%{http_code}' --max-time 60 --interface "$3" --cacert "$(ca)" \
	    -H 'Content-Type: application/json' -d "{\"version\":1,\"user\":\"$2\",\"password\":\"x\",\"device\":\"d\",\"client_key\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}" \
	    "$("$1"_url)/v1/login" > "$4"
}

@test "the AS takes turns between DCs: a login from dc1 waits behind none of dc2's queued ones" {
	local d=$BATS_TEST_TMPDIR pids= i k order pos
	# dc2 keeps eight logins at the AS (login_inflight 8): two hashing, six
	# waiting, each from its own /24.
	for ((i = 1; i <= 12; i++)); do
		anon dc2 "turna$i" "127.0.$((30 + i)).1" "$d/a$i" 3>&- &
		pids+=" $!"
	done
	for ((i = 0; i < 200; i++)); do
		grep -q 'login user=turna' "$(P)/as.log" && break
		sleep 0.05
	done
	k=$(grep -c 'login user=turn' "$(P)/as.log")
	anon dc1 turnb 127.0.50.1 "$d/b"
	# shellcheck disable=SC2086
	wait $pids
	for ((i = 1; i <= 12; i++)); do
		assert_equal "$(cat "$d/a$i")" 401	# unknown users, hashed at the AS
	done
	assert_equal "$(cat "$d/b")" 401
	order=$(grep -o 'login user=turn[a-z0-9]*' "$(P)/as.log" | sed 's/login user=turn//' |
	    tr '\n' ' ')
	pos=$(tr ' ' '\n' <<<"$order" | grep -n '^b$' | cut -d: -f1)
	echo "# hashed at the AS in this order: $order; $k were done when b was sent" >&3
	# b went at the next free thread: after at most the two hashing and
	# one more done meanwhile; in one queue it would wait behind six.
	[ "$pos" -le $((k + 4)) ]
	run curl -s --max-time 10 --cacert "$(ca)" -H "Authorization: Bearer $(cat "$(P)/metrics.token")" \
	    "$(as_url)/metrics"
	assert_output --partial 'ntm_as_login_waiting 0'
	assert_output --partial 'ntm_as_login_refused_total{reason="busy"} 0'
}

# legit SECONDS OUT: known devices log in again, one at a time, dc1 and dc2
# in turn, for SECONDS (bounded: 60 logins at most); "DC ok|fail" lines.
legit() {
	local end=$(( $(date +%s) + $1 )) i dc prof
	for ((i = 0; i < 60 && $(date +%s) < end; i++)); do
		if [ $((i % 2)) -eq 0 ]; then dc=dc1 prof=l1; else dc=dc2 prof=l2; fi
		if ntm -c "$BATS_FILE_TMPDIR/$prof" login --ca "$(ca)" -u bench \
		    --password-file "$BATS_FILE_TMPDIR/pw" "$("$dc"_url)" >/dev/null 2>>"$2.err"; then
			echo "$dc ok" >> "$2"
		else
			echo "$dc fail" >> "$2"
		fi
		sleep 0.5
	done
}

@test "an anonymous login flood from 64 /24s at dc1: every login of a known device at both DCs succeeds, during and after" {
	local d=$BATS_TEST_TMPDIR fpid
	timeout 60 "$NTM_BIN/tests/flood" login --url "$(dc1_url)" --ca "$(ca)" --rate 2000 \
	    --seconds 12 --sources 64 --conns 12 > "$d/flood" 2>&1 3>&- &
	fpid=$!
	sleep 1
	legit 10 "$d/during"
	wait "$fpid"
	legit 4 "$d/after"
	echo "# $(cat "$d/flood")" >&3
	echo "# during: $(sort "$d/during" | uniq -c | tr '\n' ' '); after: $(sort "$d/after" | uniq -c | tr '\n' ' ')" >&3
	# The flood was sent and mostly refused at the DC before the AS.
	[ "$(grep -o ' sent=[0-9]*' "$d/flood" | cut -d= -f2)" -ge 2000 ]
	[ "$(grep -o 'http_429=[0-9]*' "$d/flood" | cut -d= -f2)" -ge 1000 ]
	grep -q 'dc1 ok' "$d/during"
	grep -q 'dc2 ok' "$d/during"
	[ "$(cat "$d/during.err" "$d/after.err" 2>/dev/null | wc -l)" -eq 0 ]
	! grep -q fail "$d/during" "$d/after"
}

@test "a location-change flood from an authenticated client (a new port each REG_REQ, a peer at dc2): logins at both DCs succeed, the moves are held back" {
	local d=$BATS_TEST_TMPDIR fpid held
	timeout 60 "$NTM_BIN/tests/flood" moved --dc "$(dc1_url)" --ca "$(ca)" \
	    --udp "$(udp_of dc1)" --peer-dc "$(dc2_url)" --peer-udp "$(udp_of dc2)" \
	    --user mover --password-file "$BATS_FILE_TMPDIR/pw" --rate 5000 --seconds 10 \
	    > "$d/flood" 2>&1 3>&- &
	fpid=$!
	sleep 1
	legit 8 "$d/during"
	wait "$fpid"
	echo "# $(cat "$d/flood")" >&3
	echo "# during: $(sort "$d/during" | uniq -c | tr '\n' ' ')" >&3
	[ "$(grep -o ' sent=[0-9]*' "$d/flood" | cut -d= -f2)" -ge 5000 ]
	grep -q 'dc1 ok' "$d/during"
	grep -q 'dc2 ok' "$d/during"
	! grep -q fail "$d/during"
	# Every REG_REQ was answered; the location changes over the limit were
	# held back, not written and told.
	held=$(ntm-dc -f "$(P)/dc1.conf" status --json | jq -r .udp.moves_held)
	echo "# moves held back at dc1: $held" >&3
	[ "$held" -ge 4000 ]
}
