#!/usr/bin/env bats
# Two ntm-as on one PostgreSQL (ntm-as(8), Storage), and DCs that list both
# in as_url (ntm.conf(5)): both answer logins at once, what one records
# the other reads, revocations queued by either are pushed once the
# cursors say so, and when one AS is killed (-9) under a loop of logins the
# DC moves to the other: every login succeeds, at most retried, and no
# account, device or certificate is lost.
#
#   client -> dc1 -> as1, as2 (in that order)  \
#                                               > one PostgreSQL cluster
#   client -> dc2 -> as2, as1                  /

load helpers

PLATFORM_ROLES="as as2 dc1 dc2 rs"

setup_file() {
	local p
	pg_up
	PLATFORM_AS_DATABASE=$(pg_conninfo) platform_init "$(P)" >"$BATS_FILE_TMPDIR/init.log" 2>&1 || {
		cat "$BATS_FILE_TMPDIR/init.log" >&3; return 1; }
	p=$(cd "$(P)" && pwd)
	# as2: the same identity, CA and TLS certificate (a copy of as1's
	# state directory), its own port, the same database.
	cp -a "$p/as" "$p/as2"
	rm -f "$p/as2/pid"
	free_port > "$p/as2.port"
	sed -e "s|^state_dir = .*|state_dir = $p/as2|" -e "s|^pidfile = .*|pidfile = $p/as2/pid|" \
	    -e "s|^listen = .*|listen = 127.0.0.1:$(cat "$p/as2.port")|" "$p/as.conf" > "$p/as2.conf"
	sed -i "s|^as_url = .*|as_url = $(as1_url), $(as2_url)|" "$p/dc1.conf"
	sed -i "s|^as_url = .*|as_url = $(as2_url), $(as1_url)|" "$p/dc2.conf"
	(umask 077 && openssl rand -hex 32 > "$p/metrics.token")
	echo "metrics_token_file = $p/metrics.token" >> "$p/dc1.conf"
	platform_start "$(P)"
	for i in 0 1 2 3 4 5 6 7 8 9; do add_user "u$i" "pw-u$i"; done
}
teardown_file() {
	platform_down
	pg_down
}

as1_url() { echo "https://127.0.0.1:$(cat "$(P)/as.port")"; }
as2_url() { echo "https://127.0.0.1:$(cat "$(P)/as2.port")"; }
token() { jq -r .token "$1/session.json"; }
# dc1_metric NAME: the value of a series of dc1's /metrics.
dc1_metric() {
	curl -s --max-time 10 --cacert "$(ca)" -H "Authorization: Bearer $(cat "$(P)/metrics.token")" \
	    "$(dc1_url)/metrics" | awk -v s="$1" '$1 == s { print $2; exit }'
}
# logins_at ROLE USER: the logins of USER that AS ROLE (as, as2) granted.
logins_at() { grep -c "login user=$2 .*result=ok" "$(P)/$1.log" || true; }

@test "both AS answer; a user added through one's configuration logs in through the other" {
	run curl -sf --max-time 5 --cacert "$(ca)" "$(as1_url)/v1/health"
	assert_success
	run curl -sf --max-time 5 --cacert "$(ca)" "$(as2_url)/v1/health"
	assert_success
	printf 'pw-erin\n' | ntm-as -f "$(P)/as2.conf" user add erin
	# dc1 asks as1 first
	run login "$BATS_TEST_TMPDIR/e1" erin pw-erin "$(dc1_url)"
	assert_success
	assert_equal "$(logins_at as erin)" 1
	assert_equal "$(logins_at as2 erin)" 0
	printf 'pw-fred\n' | ntm-as -f "$(P)/as.conf" user add fred
	# dc2 asks as2 first
	run login "$BATS_TEST_TMPDIR/f1" fred pw-fred "$(dc2_url)"
	assert_success
	assert_equal "$(logins_at as2 fred)" 1
	assert_equal "$(logins_at as fred)" 0
}

@test "logins at both DCs at once: every one succeeds, each AS serves its DC's" {
	local i pids=() rc=0
	for i in 0 1 2 3 4 5 6 7; do
		login "$BATS_TEST_TMPDIR/c$i" "u$i" "pw-u$i" "$( ((i % 2)) && dc2_url || dc1_url)" \
		    --device "par$i" > "$BATS_TEST_TMPDIR/c$i.out" 2>&1 &
		pids+=($!)
	done
	for i in "${!pids[@]}"; do
		wait "${pids[$i]}" || { rc=1; cat "$BATS_TEST_TMPDIR/c$i.out" >&3; }
	done
	[ "$rc" -eq 0 ]
	for i in 0 2 4 6; do assert_equal "$(logins_at as "u$i")" 1; done
	for i in 1 3 5 7; do assert_equal "$(logins_at as2 "u$i")" 1; done
}

@test "a lock made through one AS ends the session a login through the other made" {
	local p=$BATS_TEST_TMPDIR/g t
	printf 'pw-gina\n' | ntm-as -f "$(P)/as.conf" user add gina
	login "$p" gina pw-gina "$(dc2_url)" > /dev/null
	t=$(token "$p")
	at_dc2() {
		curl -s -o /dev/null -w '%{http_code}' --max-time 10 --cacert "$(ca)" \
		    -H "Authorization: Bearer $1" "$(dc2_url)/v1/exchange/cache"
	}
	assert_equal "$(at_dc2 "$t")" 200
	run_t ntm-as -f "$(P)/as.conf" user lock gina
	assert_success
	wait_until 10 eval '[ "$(at_dc2 "$t")" = 401 ]'
	# the login through as2 is refused as well
	run login "$BATS_TEST_TMPDIR/g2" gina pw-gina "$(dc2_url)"
	assert_failure 6
}

@test "password guessing is counted by both AS together: the 6th try, through the other, waits" {
	local i
	printf 'pw-hank\n' | ntm-as -f "$(P)/as.conf" user add hank
	for ((i = 0; i < 5; i++)); do
		run login "$BATS_TEST_TMPDIR/h" hank wrong "$(dc1_url)"
		assert_failure 4
	done
	assert_equal "$(logins_at as2 hank)" 0
	# through dc2, so as2: the failures as1 counted hold there too
	run login "$BATS_TEST_TMPDIR/h" hank wrong "$(dc2_url)"
	assert_failure 8
	assert_output --regexp "too_many_attempts: too many failed logins for 'hank'; try again in [12] s$"
	run login "$BATS_TEST_TMPDIR/h" hank pw-hank "$(dc2_url)"
	assert_failure 8
	grep -q "login user=hank .*dc=dc2.ntm.test result=backoff" "$(P)/as2.log"
	# the wait over, the password is checked, and a success clears the count
	sleep 2.2
	run login "$BATS_TEST_TMPDIR/h" hank pw-hank "$(dc2_url)"
	assert_success
	assert_equal "$(pg_sql "SELECT count(*) FROM login_fails WHERE name = 'hank'")" 0
}

@test "kill -9 of one AS under loops of logins: the DC moves to the other, nothing is lost" {
	local n=30 loops=3 i l out=$BATS_TEST_TMPDIR/loop users0 devs pids=()
	users0=$(pg_sql "SELECT count(*) FROM users")
	assert_equal "$(dc1_metric ntm_dc_as_failovers_total)" 0
	# Three loops at once, ten logins each: a fresh device each time, at
	# most 3 tries of at most 10 s (the client's bound).
	for ((l = 0; l < loops; l++)); do
		(
			for ((i = l; i < n; i += loops)); do
				tries=0
				while [ $tries -lt 3 ]; do
					tries=$((tries + 1))
					if login "$BATS_TEST_TMPDIR/k$i" "u$((i % 10))" "pw-u$((i % 10))" \
					    "$(dc1_url)" --device "kill$i" > "$BATS_TEST_TMPDIR/k$i.out" 2>&1
					then
						echo "$i ok $tries $(date +%s.%N)" >> "$out"
						continue 2
					fi
				done
				echo "$i failed $tries $(date +%s.%N)" >> "$out"
			done
		) &
		pids+=($!)
	done
	wait_until 60 eval '[ "$(wc -l < "$out" 2>/dev/null || echo 0)" -ge 10 ]'
	local killed_at
	killed_at=$(date +%s.%N)
	kill -9 "$(cat "$(P)/as.pid")"
	# bounded: 10 logins a loop of at most 3 x 10 s each
	local alive
	for ((i = 0; i < 3000; i++)); do
		alive=0
		for l in "${pids[@]}"; do kill -0 "$l" 2>/dev/null && alive=1; done
		[ "$alive" -eq 1 ] || break
		sleep 0.1
	done
	for l in "${pids[@]}"; do
		kill "$l" 2>/dev/null || true
		wait "$l" || true
	done
	run cat "$out"
	assert_equal "$(wc -l < "$out")" "$n"
	refute_output --partial failed
	# dc1 moved to as2, and as2 took the logins after the kill
	grep -q "AS $(as1_url): .*asking $(as2_url) from now on" "$(P)/dc1.log"
	assert_equal "$(dc1_metric ntm_dc_as_failovers_total)" 1
	[ "$(grep -c 'result=ok' "$(P)/as2.log")" -gt 0 ]
	# nothing lost: every account, and one certified device per login
	assert_equal "$(pg_sql "SELECT count(*) FROM users")" "$users0"
	devs=$(pg_sql "SELECT count(DISTINCT device) FROM devices WHERE device LIKE 'kill%'")
	assert_equal "$devs" "$n"
	for ((i = 0; i < n; i++)); do
		assert_file_exists "$BATS_TEST_TMPDIR/k$i/device.cert"
	done
	# The gap in service (reported, not asserted): from the kill to the
	# first login done after it, against the median time between two
	# logins; and how many logins the client had to try again.
	local after median retried
	sort -n -k4 "$out" > "$out.sorted"
	after=$(awk -v k="$killed_at" '$4 > k { printf "%.3f", $4 - k; exit }' "$out.sorted")
	median=$(awk 'NR > 1 { printf "%.3f\n", $4 - p } { p = $4 }' "$out.sorted" | sort -n |
	    awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
	retried=$(awk '$3 > 1' "$out" | wc -l)
	echo "# gap: the first login after the kill done $after s after it (median" \
	    "between logins $median s); $(dc1_metric ntm_dc_as_resent_total) requests" \
	    "sent again by dc1 to as2; $retried of $n logins tried again by the client" >&3
}

@test "a server whose first AS is down renews its certificate at the next one at once" {
	platform_stop_role "$(P)" as		# down, if the test before did not kill it
	sed -i "s|^as_url = .*|as_url = $(as1_url), $(as2_url)|" "$(P)/rs.conf"
	echo "cert_renew_before_s = 315360000" >> "$(P)/rs.conf"
	platform_stop_role "$(P)" rs
	PLATFORM_ROLES=rs platform_start "$(P)"
	wait_until 20 grep -q "certificate serial [0-9]* renewed until" "$(P)/rs.log" || { tail -n 20 "$(P)/rs.log" >&3; false; }
	grep -q "certificate renewal at $(as1_url)/v1/as/renew: .*(asking the next AS)" "$(P)/rs.log"
	grep -q "certificate serial [0-9]* of rs 'rs1.ntm.test' renewed until" "$(P)/as2.log"
}

@test "as_url: up to 8 https URLs; an empty entry, a repeat or another scheme is named" {
	local conf=$BATS_TEST_TMPDIR/dc.conf
	try_as_url() {
		sed -e "s|^as_url = .*|as_url = $1|" "$(P)/dc1.conf" > "$conf"
		run_t ntm-dc -n -f "$conf"
	}
	try_as_url "$(as1_url),, $(as2_url)"
	assert_failure
	assert_output --partial "as_url has an empty entry (a stray comma?)"
	try_as_url "$(as1_url), $(as1_url)/"
	assert_failure
	assert_output --partial "as_url names '$(as1_url)' twice"
	try_as_url "$(as1_url), http://127.0.0.1:1"
	assert_failure
	assert_output --partial "as_url 'http://127.0.0.1:1' must start with https://"
	try_as_url "$(for i in 1 2 3 4 5 6 7 8 9; do printf 'https://127.0.0.%s:1,' "$i"; done)https://x:1"
	assert_failure
	assert_output --partial "as_url lists more than 8 servers"
}
