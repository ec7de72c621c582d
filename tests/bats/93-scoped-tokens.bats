#!/usr/bin/env bats
# Scoped tokens (protocol.md §2.3, §2.5, §3.4): every token names the one
# server that takes it. At login the AS gives a device a token for its DC
# and one for each CS; ntm presents each only to its server, so a CS that
# keeps what it was given cannot replay it at the DC (and take a tunnel's
# K from GET /v1/directions) or at another CS. A DC takes an announcement's
# CS URL only when its host is the announcing CS's name. The CS tokens of a
# sealed login are sealed to the device key: the DC relays what it cannot use.
#
#   ntm send/fetch --CS token--> recorder (plays cs1: its name, its TLS key)
#   recorded token --> dc1 GET /v1/directions: 401 wrong_audience
#   DC token --> cs1, cs1's token --> cs2: 401 wrong_audience
#   signreq as cs2 --POST /v1/dc/announce {cs: cs1's URL}--> dc2: 403

load helpers

PLATFORM_ROLES="as dc1 dc2 rs cs cs2"

setup_file() {
	platform_up_cs
	platform_resolver_start "$(P)"
	add_user alice alice-pw-1
	add_user bob bob-pw-1
	login "$(A)" alice alice-pw-1 "$(dc1_url)" >/dev/null
	login "$(B)" bob bob-pw-1 "$(dc2_url)" >/dev/null
	# A key exchange and a file: bob has an entry to fetch from cs1.
	run_t ntm -c "$(A)" keys exchange "$(fqdn_of "$(B)")"
	[ "$status" -eq 0 ] || { echo "$output" >&3; return 1; }
}

teardown_file() {
	agents_down
	[ -f "$BATS_FILE_TMPDIR/recorder.pid" ] && kill "$(cat "$BATS_FILE_TMPDIR/recorder.pid")"
	platform_down
}

A() { echo "$BATS_FILE_TMPDIR/alice"; }
B() { echo "$BATS_FILE_TMPDIR/bob"; }
fqdn_of() { jq -r .fqdn "$1/session.json"; }
token_of() { jq -r .token "$1/session.json"; }
name_of() { sed -n 's/^name = //p' "$(P)/$1.conf"; }

# code_of: the "code" of the JSON body in $output (body, then status line).
code_of() { jq -r .code <<<"$(body_of)"; }

# recorder PORT LOG: an HTTPS server with cs1's name and TLS key that notes
# the Authorization header of each request in LOG and answers 503 busy (a
# CS that keeps the tokens it is given). Its pid in recorder.pid.
recorder() {
	python3 - "$1" "$2" "$(P)/cs/tls.crt" "$(P)/cs/tls.key" <<-'EOF' 3>&- >/dev/null 2>&1 &
	import http.server, ssl, sys
	port, log, crt, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
	class H(http.server.BaseHTTPRequestHandler):
	    def answer(self):
	        n = int(self.headers.get("Content-Length") or 0)
	        if n:
	            self.rfile.read(n)
	        with open(log, "a") as f:
	            f.write("%s %s %s\n" % (self.command, self.path,
	                    self.headers.get("Authorization", "-")))
	        body = b'{"code":"busy","message":"recording"}'
	        self.send_response(503)
	        self.send_header("Content-Type", "application/json")
	        self.send_header("Content-Length", str(len(body)))
	        self.end_headers()
	        self.wfile.write(body)
	    do_GET = do_POST = do_PUT = do_DELETE = answer
	    def log_message(self, *a):
	        pass
	s = http.server.ThreadingHTTPServer(("127.0.0.1", port), H)
	c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
	c.load_cert_chain(crt, key)
	s.socket = c.wrap_socket(s.socket, server_side=True)
	s.serve_forever()
	EOF
	echo $! > "$BATS_FILE_TMPDIR/recorder.pid"
	local i
	for ((i = 0; i < 50; i++)); do
		ss -Hltn "sport = :$1" | grep -q . && return 0
		sleep 0.1
	done
	return 1
}

# as_cs PROFILE URL: the profile's next send goes to the CS at URL (its
# remembered CS of the DC, STATE_DIR/cs.json, as a send keeps it).
as_cs() {
	printf '{"dc":"%s","cs":"%s","time":%s}\n' "$(jq -r .dc_url "$1/session.json")" \
	    "$2" "$(date +%s)" > "$1/cs.json"
}

@test "a CS that records the tokens it is given cannot use them at the DC (GET /v1/directions: 401 wrong_audience)" {
	local port log=$BATS_TEST_TMPDIR/tokens url tok
	port=$(free_port)
	recorder "$port" "$log"
	url="https://$(name_of cs):$port"
	printf 'to bob\n' > "$BATS_TEST_TMPDIR/f"
	# Without an agent (libcurl), then through the agent (its https verb).
	as_cs "$(A)" "$url"
	run_t ntm -c "$(A)" send --timeout 5 "$(fqdn_of "$(B)")" "$BATS_TEST_TMPDIR/f"
	assert_failure
	agent_up "$(A)" dc1
	as_cs "$(A)" "$url"
	run_t ntm -c "$(A)" send --timeout 5 "$(fqdn_of "$(B)")" "$BATS_TEST_TMPDIR/f"
	assert_failure
	agents_down
	rm -f "$(A)/cs.json"
	[ "$(wc -l < "$log")" -ge 2 ]
	# Every request carried alice's token for cs1, never the DC's.
	run awk '$3 != "Bearer" || $4 == "" { print }' "$log"
	assert_output ''
	run bash -c "awk '{ print \$4 }' '$log' | sort -u"
	assert_output "$(cs_token "$(A)" "$(name_of cs)")"
	tok=$output
	[ "$tok" != "$(token_of "$(A)")" ]
	# Replayed at alice's DC, it opens nothing there.
	run https GET "$(dc1_url)/v1/directions" -H "Authorization: Bearer $tok"
	assert_equal "$(status_of)" 401
	assert_equal "$(code_of)" wrong_audience
	run https GET "$(dc1_url)/v1/session" -H "Authorization: Bearer $tok"
	assert_equal "$(code_of)" wrong_audience
	# alice's own DC token still does.
	run https GET "$(dc1_url)/v1/directions" -H "Authorization: Bearer $(token_of "$(A)")"
	assert_equal "$(status_of)" 200
}

@test "a DC token presented to a CS is refused (401 wrong_audience); the CS's own token opens it" {
	run https GET "$(platform_cs_url "$(P)")/v1/cs/account" \
	    -H "Authorization: Bearer $(token_of "$(B)")"
	assert_equal "$(status_of)" 401
	assert_equal "$(code_of)" wrong_audience
	assert_equal "$(jq -r .message <<<"$(body_of)")" \
	    "token is for the DC 'dc2.ntm.test', not for this CS ('$(name_of cs)')"
	run https GET "$(platform_cs_url "$(P)")/v1/cs/account" \
	    -H "Authorization: Bearer $(cs_token "$(B)" "$(name_of cs)")"
	assert_equal "$(status_of)" 200
	# ntm itself sends each its own: bob fetches alice's key from cs1.
	run_t ntm -c "$(B)" fetch --from "$(fqdn_of "$(A)")" -o "$BATS_TEST_TMPDIR"
	assert_success
	assert_output --partial "key from $(fqdn_of "$(A)")"
}

@test "a token for one CS is refused by another (401 wrong_audience)" {
	local t1 t2
	t1=$(cs_token "$(A)" "$(name_of cs)")
	t2=$(cs_token "$(A)" "$(name_of cs2)")
	[ -n "$t1" ]
	[ -n "$t2" ]
	[ "$t1" != "$t2" ]
	run https GET "$(platform_cs_url "$(P)" cs2)/v1/cs/account" -H "Authorization: Bearer $t1"
	assert_equal "$(status_of)" 401
	assert_equal "$(code_of)" wrong_audience
	run https GET "$(platform_cs_url "$(P)")/v1/cs/account" -H "Authorization: Bearer $t2"
	assert_equal "$(code_of)" wrong_audience
	run https GET "$(platform_cs_url "$(P)" cs2)/v1/cs/account" -H "Authorization: Bearer $t2"
	assert_equal "$(status_of)" 200
	# A token signed for a CS by the AS key but for none of these names.
	run https GET "$(platform_cs_url "$(P)")/v1/cs/account" -H "Authorization: Bearer $(
	    "$SIGNREQ" --key "$(P)/as/identity.key" --mint "alice:dev1:dc1.ntm.test:cs:cs9.localhost")"
	assert_equal "$(code_of)" wrong_audience
}

@test "an announcement naming another CS's URL is refused by the DC (403 cs_not_announcer)" {
	local body
	body="\"version\":1,\"from\":\"$(fqdn_of "$(A)")\",\"to\":\"$(fqdn_of "$(B)")\",\"kind\":\"data\""
	body="$body,\"sha256\":\"$(printf 'x' | sha256sum | cut -c1-64)\",\"size\":1"
	body="$body,\"expires\":$(( $(date +%s) + 600 ))"
	# cs2, signing as itself, names cs1's URL, or an address: refused.
	run "$SIGNREQ" --ca "$(ca)" --key "$(P)/cs2/identity.key" --cert "$(P)/cs2/server.cert" \
	    POST "$(dc2_url)/v1/dc/announce" "{$body,\"cs\":\"$(platform_cs_url "$(P)")\"}"
	assert_equal "$(status_of)" 403
	assert_equal "$(code_of)" cs_not_announcer
	assert_equal "$(jq -r .field <<<"$(body_of)")" cs
	run "$SIGNREQ" --ca "$(ca)" --key "$(P)/cs2/identity.key" --cert "$(P)/cs2/server.cert" \
	    POST "$(dc2_url)/v1/dc/announce" \
	    "{$body,\"cs\":\"https://127.0.0.1:$(platform_port "$(P)" cs2)\"}"
	assert_equal "$(status_of)" 403
	assert_equal "$(code_of)" cs_not_announcer
	# Its own name: taken.
	run "$SIGNREQ" --ca "$(ca)" --key "$(P)/cs2/identity.key" --cert "$(P)/cs2/server.cert" \
	    POST "$(dc2_url)/v1/dc/announce" "{$body,\"cs\":\"$(platform_cs_url "$(P)" cs2)\"}"
	assert_equal "$(status_of)" 200
	assert_equal "$(jq -c . <<<"$(body_of)")" '{"queued":true}'
}

@test "a session without a token for a CS (one enrolled after the login) asks its DC once and keeps it" {
	local cs2 out t
	cs2=$(name_of cs2)
	# alice's session as if cs2 had been enrolled after her login.
	jq --arg t "$(cs_token "$(A)" "$cs2")" '.cs_tokens -= [$t]' "$(A)/session.json" \
	    > "$BATS_TEST_TMPDIR/s" && cat "$BATS_TEST_TMPDIR/s" > "$(A)/session.json"
	[ -z "$(cs_token "$(A)" "$cs2")" ]
	printf 'through cs2\n' > "$BATS_TEST_TMPDIR/via2.txt"
	as_cs "$(A)" "$(platform_cs_url "$(P)" cs2)"
	run_t ntm -c "$(A)" -v send "$(fqdn_of "$(B)")" "$BATS_TEST_TMPDIR/via2.txt"
	assert_success
	assert_equal "$(grep -c 'POST .*/v1/exchange/cstoken' <<<"$output")" 1
	[ -n "$(cs_token "$(A)" "$cs2")" ]
	# Kept: the next send asks for none.
	as_cs "$(A)" "$(platform_cs_url "$(P)" cs2)"
	run_t ntm -c "$(A)" -v send "$(fqdn_of "$(B)")" "$BATS_TEST_TMPDIR/via2.txt"
	assert_success
	refute_output --partial /v1/exchange/cstoken
	rm -f "$(A)/cs.json"
	# cs2 announced its own URL: bob fetches there with his token for cs2.
	out=$BATS_TEST_TMPDIR/out
	mkdir "$out"
	# (The entry the test above had dc2 queue names an object cs2 never had:
	# that one fails, exit 8.)
	run_t ntm -c "$(B)" fetch --from "$(fqdn_of "$(A)")" -o "$out"
	assert_line "fetched $out/via2.txt (12 bytes) from $(fqdn_of "$(A)")"
	assert_line "fetched $out/via2.txt.1 (12 bytes) from $(fqdn_of "$(A)")"
	cmp "$out/via2.txt" "$BATS_TEST_TMPDIR/via2.txt"
	# The DC asks the AS; a CS the AS does not know gets none, nor does a
	# token that is not the DC's.
	run https POST "$(dc1_url)/v1/exchange/cstoken" -d '{"version":1,"cs":"cs9.localhost"}' \
	    -H "Authorization: Bearer $(token_of "$(A)")"
	assert_equal "$(status_of)" 404
	assert_equal "$(code_of)" unknown_cs
	run https POST "$(dc1_url)/v1/exchange/cstoken" -d "{\"version\":1,\"cs\":\"$cs2\"}" \
	    -H "Authorization: Bearer $(cs_token "$(A)" "$cs2")"
	assert_equal "$(code_of)" wrong_audience
	run https POST "$(dc1_url)/v1/exchange/cstoken" -d "{\"version\":1,\"cs\":\"$cs2\"}" \
	    -H "Authorization: Bearer $(token_of "$(A)")"
	assert_equal "$(status_of)" 200
	# alice's logins are sealed (her first too): the DC relays the token
	# sealed to her device key, which only her client opens; as it is, cs2
	# does not take it.
	t=$(jq -r .token <<<"$(body_of)")
	[ -n "$t" ] && [ "$t" != "$(cs_token "$(A)" "$cs2")" ]
	run https GET "$(platform_cs_url "$(P)" cs2)/v1/cs/account" -H "Authorization: Bearer $t"
	assert_equal "$(status_of)" 401
}

@test "a sealed login: the CS tokens the DC relays are sealed to the device key; the device opens them" {
	local box t out=$BATS_TEST_TMPDIR/out
	# What a DC relays of a sealed login (sealogin plays the device, with a
	# device key of its own; signreq the DC): no CS takes those tokens.
	box=$(printf 'alice-pw-1\n' | "$NTM_BIN/tests/sealogin" --as-key "$(cat "$(P)/as.pub")" \
	    --user alice --device sealdev --dc dc1.ntm.test)
	run "$SIGNREQ" --ca "$(ca)" --key "$(P)/dc1/identity.key" --cert "$(P)/dc1/server.cert" \
	    POST "$(as_url)/v1/as/login" \
	    "{\"version\":1,\"user\":\"alice\",\"device\":\"sealdev\",\"sealed\":\"$box\"}"
	assert_equal "$(status_of)" 200
	assert_equal "$(jq '.cs_tokens | length' <<<"$(body_of)")" 2
	for t in $(jq -r '.cs_tokens[]' <<<"$(body_of)"); do
		run https GET "$(platform_cs_url "$(P)")/v1/cs/account" -H "Authorization: Bearer $t"
		assert_equal "$(status_of)" 401
		assert_equal "$(code_of)" unauthorized
	done
	# alice's profile pinned the AS key at its first login: this login is
	# sealed, and ntm opens its CS tokens with its device key.
	login "$(A)" alice alice-pw-1 "$(dc1_url)" >/dev/null
	run https GET "$(platform_cs_url "$(P)")/v1/cs/account" \
	    -H "Authorization: Bearer $(cs_token "$(A)" "$(name_of cs)")"
	assert_equal "$(status_of)" 200
	printf 'sealed login\n' > "$BATS_TEST_TMPDIR/sealed.txt"
	run_t ntm -c "$(A)" send "$(fqdn_of "$(B)")" "$BATS_TEST_TMPDIR/sealed.txt"
	assert_success
	mkdir "$out"
	run_t ntm -c "$(B)" fetch --from "$(fqdn_of "$(A)")" -o "$out"
	assert_line "fetched $out/sealed.txt (13 bytes) from $(fqdn_of "$(A)")"
	# A token asked for later comes sealed too: the DC relays what it cannot use.
	run "$SIGNREQ" --ca "$(ca)" --key "$(P)/dc1/identity.key" --cert "$(P)/dc1/server.cert" \
	    POST "$(as_url)/v1/as/cstoken" \
	    "{\"version\":1,\"token\":\"$(token_of "$(A)")\",\"cs\":\"$(name_of cs2)\"}"
	assert_equal "$(status_of)" 200
	run https GET "$(platform_cs_url "$(P)" cs2)/v1/cs/account" \
	    -H "Authorization: Bearer $(jq -r .token <<<"$(body_of)")"
	assert_equal "$(code_of)" unauthorized
	# ntm, asking for it (as after a CS was enrolled), opens it.
	jq --arg t "$(cs_token "$(A)" "$(name_of cs2)")" '.cs_tokens -= [$t]' \
	    "$(A)/session.json" > "$BATS_TEST_TMPDIR/s" && cat "$BATS_TEST_TMPDIR/s" > "$(A)/session.json"
	[ -z "$(cs_token "$(A)" "$(name_of cs2)")" ]
	as_cs "$(A)" "$(platform_cs_url "$(P)" cs2)"
	run_t ntm -c "$(A)" -v send "$(fqdn_of "$(B)")" "$BATS_TEST_TMPDIR/sealed.txt"
	assert_success
	assert_output --partial /v1/exchange/cstoken
	rm -f "$(A)/cs.json"
	run https GET "$(platform_cs_url "$(P)" cs2)/v1/cs/account" \
	    -H "Authorization: Bearer $(cs_token "$(A)" "$(name_of cs2)")"
	assert_equal "$(status_of)" 200
}
