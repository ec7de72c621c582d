#!/usr/bin/env bats
# GET /metrics on every server and `ntm status --metrics` for the agent
# (docs/protocol.md §3, ntm.conf(5) metrics_token_file): Prometheus text
# that promtool accepts, counters that move with what the platform does,
# and no metrics for whoever lacks the token.
#
#   alice, carol @dc1 (agents, a tunnel between them, a send through cs1)
#   as, dc1, rs, cs: metrics_token_file set;  dc2: not set (off)

load helpers

setup_file() {
	command -v promtool >/dev/null || {
		echo "promtool missing (Debian package prometheus; scripts/deps.sh)" >&3
		return 1
	}
	platform_init "$(P)" >"$BATS_FILE_TMPDIR/init.log" 2>&1 || {
		cat "$BATS_FILE_TMPDIR/init.log" >&3; return 1; }
	local cs="cs_url = $(platform_cs_url "$(P)")" r
	echo "$cs" >> "$(P)/dc1.conf"
	echo "$cs" >> "$(P)/dc2.conf"
	echo "$cs" >> "$(P)/as.conf"	# the AS pushes revocations to it
	(umask 077 && openssl rand -hex 32 > "$(P)/metrics.token")
	for r in as dc1 rs cs; do
		echo "metrics_token_file = $(P)/metrics.token" >> "$(P)/$r.conf"
	done
	platform_start "$(P)"
	platform_resolver_start "$(P)"
	add_user alice 'alice-pw-1'
	add_user carol 'carol-pw-1'
}

teardown_file() {
	agents_down
	platform_down
}

A() { echo "$BATS_FILE_TMPDIR/alice"; }
C() { echo "$BATS_FILE_TMPDIR/carol"; }
token() { cat "$(P)/metrics.token"; }

# scrape ROLE [CURL ARGS...]: GET /metrics of ROLE with the token into
# $BATS_TEST_TMPDIR/ROLE.prom; fails unless it answers 200.
scrape() {
	local role=$1 code
	shift
	code=$(curl -s --max-time 10 --cacert "$(ca)" -H "Authorization: Bearer $(token)" \
	    -o "$BATS_TEST_TMPDIR/$role.prom" -w '%{http_code}' "$@" \
	    "https://127.0.0.1:$(platform_port "$(P)" "$role")/metrics")
	[ "$code" = 200 ] || { echo "scrape $role: HTTP $code" >&2; return 1; }
}

# mval ROLE SERIES: the value of one series ('name' or 'name{l="v",...}')
# in ROLE's last scrape; empty if absent.
mval() {
	awk -v s="$2" '$1 == s { print $2; exit }' "$BATS_TEST_TMPDIR/$1.prom"
}

# above ROLE SERIES N: a fresh scrape of ROLE has SERIES above N.
above() {
	scrape "$1" && [ "$(mval "$1" "$2")" -gt "$3" ]
}

@test "every server's /metrics passes promtool and says who it is" {
	local r role
	for r in as dc1 rs cs; do
		scrape "$r"
		run promtool check metrics < "$BATS_TEST_TMPDIR/$r.prom"
		assert_success
		assert_output ''
		role=${r%[0-9]}
		grep -q "^ntm_server_info{role=\"$role\",name=\"[a-z0-9.]*\",version=\"" \
		    "$BATS_TEST_TMPDIR/$r.prom"
		grep -q '^# TYPE ntm_http_request_duration_seconds histogram$' \
		    "$BATS_TEST_TMPDIR/$r.prom"
	done
	# The reply's type is the text format's.
	run curl -s --max-time 10 --cacert "$(ca)" -H "Authorization: Bearer $(token)" \
	    -o /dev/null -w '%{content_type}' "https://127.0.0.1:$(platform_port "$(P)" dc1)/metrics"
	assert_output 'text/plain; version=0.0.4; charset=utf-8'
}

@test "no token, a wrong one, or metrics off: a JSON error, never the metrics" {
	local url
	url="https://127.0.0.1:$(platform_port "$(P)" dc1)/metrics"
	run https GET "$url"
	assert_equal "$(status_of)" 401
	assert_equal "$(jf "$(body_of)" code)" unauthorized
	run https GET "$url" -H "Authorization: Bearer $(token)x"
	assert_equal "$(status_of)" 401
	assert_equal "$(jf "$(body_of)" code)" unauthorized
	refute_output --partial ntm_
	# dc2 has no metrics_token_file: off for everyone, its token or not.
	run https GET "https://127.0.0.1:$(platform_port "$(P)" dc2)/metrics" \
	    -H "Authorization: Bearer $(token)"
	assert_equal "$(status_of)" 403
	assert_equal "$(jf "$(body_of)" code)" forbidden
	assert_equal "$(jf "$(body_of)" message)" \
	    "metrics are off (no metrics_token_file in $(P)/dc2.conf)"
	# The refusals are counted.
	scrape dc1
	[ "$(mval dc1 ntm_metrics_refused_total)" -ge 2 ]
}

@test "a token file others can read is refused at start" {
	local conf=$BATS_TEST_TMPDIR/dc1.conf
	cp "$(P)/metrics.token" "$BATS_TEST_TMPDIR/open.token"
	chmod 644 "$BATS_TEST_TMPDIR/open.token"
	sed "s|^metrics_token_file = .*|metrics_token_file = $BATS_TEST_TMPDIR/open.token|" \
	    "$(P)/dc1.conf" > "$conf"
	run_t ntm-dc -n -f "$conf"
	assert_failure
	assert_output --partial "metrics_token_file $BATS_TEST_TMPDIR/open.token: readable by others"
	printf 'short\n' > "$BATS_TEST_TMPDIR/open.token"
	chmod 600 "$BATS_TEST_TMPDIR/open.token"
	run_t ntm-dc -n -f "$conf"
	assert_failure
	assert_output --partial "not one line of 16 to 256 printable characters"
}

@test "logins, registrations, a tunnel and a send move the counters" {
	local f=$BATS_TEST_TMPDIR/file.bin logins0 bad0 reg0 dirs0 obj0 ann0 rx0
	scrape as
	logins0=$(mval as 'ntm_as_logins_total{result="ok"}')
	bad0=$(mval as 'ntm_as_logins_total{result="bad_password"}')
	scrape dc1
	reg0=$(mval dc1 ntm_dc_registrations_total)
	dirs0=$(awk '/^ntm_dc_tunnels_total\{/ { n += $2 } END { print n + 0 }' \
	    "$BATS_TEST_TMPDIR/dc1.prom")
	scrape cs
	obj0=$(mval cs ntm_cs_objects_stored_total)
	ann0=$(mval cs 'ntm_cs_announcements_total{result="ok"}')
	scrape rs
	rx0=$(mval rs ntm_rs_received_packets_total)

	# One wrong password, two logins, two agents, a tunnel, a send.
	run login "$BATS_TEST_TMPDIR/nobody" alice 'wrong-pw' "$(dc1_url)"
	assert_failure
	login "$(A)" alice alice-pw-1 "$(dc1_url)" >/dev/null
	login "$(C)" carol carol-pw-1 "$(dc1_url)" >/dev/null
	agent_up "$(A)" dc1
	agent_up "$(C)" dc1
	run_t ntm -c "$(A)" tunnel ping -c 1 --timeout 20 "$(jq -r .fqdn "$(C)/session.json")"
	assert_success
	head -c 100000 /dev/urandom > "$f"
	run_t ntm -c "$(A)" keys exchange "$(jq -r .fqdn "$(C)/session.json")"
	assert_success
	run_t ntm -c "$(A)" send "$(jq -r .fqdn "$(C)/session.json")" "$f" --json
	assert_success
	# A datagram the RS cannot parse: received, and dropped as malformed.
	printf 'not a relay datagram' > "/dev/udp/127.0.0.1/$(cat "$(P)/rs.udpport")"

	scrape as
	[ "$(mval as 'ntm_as_logins_total{result="ok"}')" -ge $((logins0 + 2)) ]
	[ "$(mval as 'ntm_as_logins_total{result="bad_password"}')" -ge $((bad0 + 1)) ]
	[ "$(mval as ntm_as_accounts)" -ge 2 ]
	scrape dc1
	[ "$(mval dc1 ntm_dc_registrations_total)" -gt "$reg0" ]
	[ "$(mval dc1 ntm_dc_online_devices)" -ge 2 ]
	[ "$(awk '/^ntm_dc_tunnels_total\{/ { n += $2 } END { print n + 0 }' \
	    "$BATS_TEST_TMPDIR/dc1.prom")" -gt "$dirs0" ]
	[ "$(mval dc1 ntm_dc_exchange_keys_stored_total)" -ge 1 ]
	# The latency of the logins this DC relayed, by route and class.
	[ "$(mval dc1 'ntm_http_request_duration_seconds_count{route="/v1/login",method="POST",code="2xx"}')" -ge 2 ]
	[ "$(mval dc1 'ntm_http_request_duration_seconds_bucket{route="/v1/login",method="POST",code="2xx",le="+Inf"}')" -ge 2 ]
	[ "$(mval dc1 'ntm_http_request_duration_seconds_count{route="/v1/login",method="POST",code="4xx"}')" -ge 1 ]
	wait_until 10 above cs ntm_cs_objects_stored_total "$obj0"
	[ "$(mval cs ntm_cs_stored_bytes_total)" -ge 100000 ]
	[ "$(mval cs ntm_cs_objects)" -ge 1 ]
	wait_until 10 above cs 'ntm_cs_announcements_total{result="ok"}' "$ann0"
	wait_until 10 above rs ntm_rs_received_packets_total "$rx0"
	[ "$(mval rs 'ntm_rs_dropped_total{reason="malformed"}')" -ge 1 ]
	for r in as dc1 rs cs; do
		run promtool check metrics < "$BATS_TEST_TMPDIR/$r.prom"
		assert_success
		assert_output ''
	done
}

@test "ntm status --metrics: the agent's counters, promtool clean" {
	local out=$BATS_TEST_TMPDIR/agent.prom
	# After the previous test: alice's agent with its tunnel to carol.
	[ -f "$BATS_FILE_TMPDIR/alice.agentpid" ]
	run_t ntm -c "$(A)" status --metrics
	assert_success
	printf '%s\n' "$output" > "$out"
	run promtool check metrics < "$out"
	assert_success
	assert_output ''
	grep -q "^ntm_agent_info{fqdn=\"$(jq -r .fqdn "$(A)/session.json")\",version=\"" "$out"
	[ "$(awk '$1 == "ntm_agent_registered" { print $2 }' "$out")" = 1 ]
	[ "$(awk '$1 == "ntm_agent_registrations_sent_total" { print $2 }' "$out")" -ge 1 ]
	[ "$(awk '/^ntm_agent_tunnels\{.*state="up"\}/ { n += $2 } END { print n + 0 }' "$out")" -ge 1 ]
	[ "$(awk '/^ntm_agent_tunnel_tx_bytes_total\{peer="carol/ { print $2 }' "$out")" -gt 0 ]
	# --json and --metrics together: a usage error.
	run_t ntm -c "$(A)" status --metrics --json
	assert_failure 2
	# No agent: exit 9, nothing on stdout.
	run_t ntm -c "$BATS_TEST_TMPDIR/none" status --metrics
	assert_failure 9
}

@test "scrapes are rate-limited per address (429 rate_limited)" {
	local url codes args=() i
	url="https://127.0.0.1:$(platform_port "$(P)" cs)/metrics"
	# 60 scrapes on one kept-alive connection: far past 5 a second and the
	# burst of 10, however slow this machine is.
	for ((i = 0; i < 60; i++)); do args+=(-o /dev/null "$url"); done
	codes=$(curl -s --max-time 30 --cacert "$(ca)" -H "Authorization: Bearer $(token)" \
	    -w '%{http_code}\n' "${args[@]}")
	[ "$(grep -c '^200$' <<<"$codes")" -ge 1 ]
	[ "$(grep -c '^429$' <<<"$codes")" -ge 1 ]
}
