#!/usr/bin/env bats
# Logging in at a DC: FQDN and virtual addresses, their stability, and the
# distinct failures a script can tell apart by exit code.

load helpers

setup_file() {
	platform_up
	add_user alice 'alice-pw-1'
	add_user bob 'bob-pw-1'
	add_user carol 'carol-pw-1'
}
teardown_file() { platform_down; }

@test "login at a DC yields an FQDN and a virtual IPv4/IPv6 pair" {
	run login "$BATS_TEST_TMPDIR/a" alice alice-pw-1 "$(dc1_url)" --json
	assert_success
	assert_equal "$(jf "$output" user)" alice
	assert_equal "$(jf "$output" fqdn)" alice.dc1.ntm.test
	[[ "$(jf "$output" vip4)" == 100.64.1.* ]]
	[[ "$(jf "$output" vip6)" == fd00:6e74:1::* ]]
	# The secret parts never reach the output.
	refute_output --partial token\"
	run_t ntm -c "$BATS_TEST_TMPDIR/a" status --json
	assert_success
	assert_equal "$(jf "$output" logged_in)" true
	assert_equal "$(jf "$output" fqdn)" alice.dc1.ntm.test
	assert_equal "$(jf "$output" dc_status)" live
}

@test "human output names the user, FQDN and addresses" {
	run login "$BATS_TEST_TMPDIR/a" alice alice-pw-1 "$(dc1_url)"
	assert_success
	# each test's profile is a new device: alice, alice-2, ...
	assert_output --regexp '^logged in as alice at dc1\.ntm\.test: alice(-[0-9]+)?\.dc1\.ntm\.test 100\.64\.1\.[0-9]+ fd00:6e74:1::[0-9a-f]+$'
}

@test "the same device gets the same vIPs after a DC restart; the DC lists it" {
	run login "$BATS_TEST_TMPDIR/b" bob bob-pw-1 "$(dc1_url)" --json
	assert_success
	local v4=$(jf "$output" vip4) v6=$(jf "$output" vip6) fqdn=$(jf "$output" fqdn)

	platform_stop_role "$(P)" dc1
	ntm-dc -d -f "$(P)/dc1.conf" >>"$(P)/dc1.log" 2>&1 &
	echo $! > "$(P)/dc1.pid"
	wait_health "$(dc1_url)" "$(ca)"

	run login "$BATS_TEST_TMPDIR/b" bob bob-pw-1 "$(dc1_url)" --json
	assert_success
	assert_equal "$(jf "$output" vip4)" "$v4"
	assert_equal "$(jf "$output" vip6)" "$v6"
	assert_equal "$(jf "$output" fqdn)" "$fqdn"

	run_t ntm-dc -f "$(P)/dc1.conf" client list --json
	assert_success
	run jq -r --arg f "$fqdn" '.[] | select(.fqdn == $f) | .vip4' <<<"$output"
	assert_output "$v4"
}

@test "two users, and two devices of one user, get different vIPs and names" {
	run login "$BATS_TEST_TMPDIR/c1" carol carol-pw-1 "$(dc2_url)" --json
	assert_success
	local c1=$output
	run login "$BATS_TEST_TMPDIR/c2" carol carol-pw-1 "$(dc2_url)" --json
	assert_success
	local c2=$output
	run login "$BATS_TEST_TMPDIR/b2" bob bob-pw-1 "$(dc2_url)" --json
	assert_success
	local b=$output
	assert_equal "$(jf "$c1" fqdn)" carol.dc2.ntm.test
	assert_equal "$(jf "$c2" fqdn)" carol-2.dc2.ntm.test
	[ "$(jf "$c1" vip4)" != "$(jf "$c2" vip4)" ]
	[ "$(jf "$c1" vip4)" != "$(jf "$b" vip4)" ]
	[ "$(jf "$c2" vip4)" != "$(jf "$b" vip4)" ]
	[ "$(jf "$c1" vip6)" != "$(jf "$b" vip6)" ]
	[[ "$(jf "$b" vip4)" == 100.64.2.* ]]
}

@test "wrong password: one line, exit 4" {
	run login "$BATS_TEST_TMPDIR/x" alice wrong "$(dc1_url)"
	assert_failure 4
	assert_equal "${#lines[@]}" 1
	assert_output --partial bad_password
	assert_file_not_exists "$BATS_TEST_TMPDIR/x/session.json"
}

@test "unknown user: answered as a wrong password (the AS tells no one who exists), one line, exit 4" {
	run login "$BATS_TEST_TMPDIR/x" nobody whatever "$(dc1_url)"
	assert_failure 4
	assert_equal "${#lines[@]}" 1
	assert_output "ntm: login: bad_password: wrong user name or password for 'nobody'"
	run login "$BATS_TEST_TMPDIR/x" alice wrong "$(dc1_url)"
	assert_output "ntm: login: bad_password: wrong user name or password for 'alice'"
	# Only the AS's own log tells them apart.
	grep -q 'login user=nobody .*result=unknown_user' "$(P)/as.log"
}

@test "password guessing: after 5 failures a user waits, known or not, alike (429 too_many_attempts), 1 s and twice as long after each next failure; the right password then waits too" {
	local u i
	add_user gina gina-pw-1
	for u in gina nobody2; do
		for ((i = 0; i < 5; i++)); do
			run login "$BATS_TEST_TMPDIR/x" "$u" wrong "$(dc1_url)"
			assert_failure 4
		done
		# Once each wait is over (1 s, then 2 s), the password is
		# checked again: the 6th and 7th failures.
		for i in 1.1 2.1; do
			sleep "$i"
			run login "$BATS_TEST_TMPDIR/x" "$u" wrong "$(dc1_url)"
			assert_failure 4
		done
		# Within the 4 s after the 7th (a login takes a few hundred ms
		# on a loaded machine: the 1 s after the 5th could be over).
		if [ "$u" = gina ]; then
			run login "$BATS_TEST_TMPDIR/x" gina gina-pw-1 "$(dc1_url)"
			assert_failure 8
		fi
		run login "$BATS_TEST_TMPDIR/x" "$u" wrong "$(dc1_url)"
		assert_failure 8
		assert_output --regexp "^ntm: login: too_many_attempts: too many failed logins for '$u'; try again in [1-4] s$"
	done
	# The wait over (4 s after gina's 7th failure), the password is checked.
	sleep 4.2
	run login "$BATS_TEST_TMPDIR/g" gina gina-pw-1 "$(dc1_url)"
	assert_success
}

@test "locked user: one line, exit 6; unlocked again: logs in" {
	add_user dave dave-pw-1
	run_t ntm-as -f "$(P)/as.conf" user lock dave
	assert_success
	run login "$BATS_TEST_TMPDIR/d" dave dave-pw-1 "$(dc1_url)"
	assert_failure 6
	assert_equal "${#lines[@]}" 1
	assert_output --partial user_locked
	run_t ntm-as -f "$(P)/as.conf" user unlock dave
	run login "$BATS_TEST_TMPDIR/d" dave dave-pw-1 "$(dc1_url)"
	assert_success
}

@test "changed password: the old one fails, the new one works" {
	add_user erin erin-old
	printf 'erin-new\n' | ntm-as -f "$(P)/as.conf" user passwd erin
	run login "$BATS_TEST_TMPDIR/e" erin erin-old "$(dc1_url)"
	assert_failure 4
	run login "$BATS_TEST_TMPDIR/e" erin erin-new "$(dc1_url)"
	assert_success
}

@test "DC down: exit 3 quickly" {
	run login "$BATS_TEST_TMPDIR/x" alice alice-pw-1 "https://127.0.0.1:$(free_port)"
	assert_failure 3
	assert_equal "${#lines[@]}" 1
}

@test "wrong CA: the certificate is not trusted, exit 15 with the --ca hint, nothing saved" {
	# The system's public CAs do not vouch for the demo CA's certificates.
	run bash -c "printf 'alice-pw-1\n' | timeout 30 ntm -c '$BATS_TEST_TMPDIR/x' login --ca /etc/ssl/certs/ca-certificates.crt -u alice '$(dc1_url)'"
	assert_failure 15
	assert_equal "${#lines[@]}" 1
	assert_output "ntm: login: the certificate of $(dc1_url) is not trusted (unable to get local issuer certificate): pass the CA that signed it with 'ntm login --ca FILE'"
	assert_file_not_exists "$BATS_TEST_TMPDIR/x/session.json"
}

@test "no --ca and a certificate the system store does not know: exit 15, the hint names --ca" {
	run bash -c "printf 'alice-pw-1\n' | timeout 30 ntm -c '$BATS_TEST_TMPDIR/x' login -u alice '$(dc1_url)'"
	assert_failure 15
	assert_equal "${#lines[@]}" 1
	assert_output --partial "ntm: login: the certificate of $(dc1_url) is not trusted ("
	assert_output --partial "pass the CA that signed it with 'ntm login --ca FILE'"
	refute_output --partial 'SSL certificate problem'
	assert_file_not_exists "$BATS_TEST_TMPDIR/x/session.json"
}

@test "--ca naming a file with no certificate: usage error naming it (exit 2), not 'cannot reach'" {
	printf 'not a certificate\n' > "$BATS_TEST_TMPDIR/notca.txt"
	run bash -c "printf 'alice-pw-1\n' | timeout 30 ntm -c '$BATS_TEST_TMPDIR/x' login --ca '$BATS_TEST_TMPDIR/notca.txt' -u alice '$(dc1_url)'"
	assert_failure 2
	assert_output "ntm: login: --ca '$BATS_TEST_TMPDIR/notca.txt': no PEM certificate in it (expected the CA bundle that signed the DC's certificate, e.g. the platform's ca.crt)"
	assert_file_not_exists "$BATS_TEST_TMPDIR/x/session.json"
}

@test "login at a server that is not a DC (the AS): exit 8, the URL is named as not a DC" {
	run login "$BATS_TEST_TMPDIR/x" alice alice-pw-1 "$(as_url)"
	assert_failure 8
	assert_output "ntm: login: $(as_url) is the account server, not a DC (ntm login needs the URL of your DC)"
}

@test "a proxy's error page in front of the DC: 'HTTP 502 from URL' (exit 3), not its words taken for ours" {
	# An HTTPS server with a certificate the CA vouches for (the CS's),
	# answering every request as a gateway does: JSON, but no error of §1.1.
	local port pid i d=$BATS_TEST_TMPDIR
	port=$(free_port)
	cat > "$d/proxy.py" <<'EOF'
import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        body = b'{"code":"BAD GATEWAY","message":"upstream connect error"}'
        self.send_response(502)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_GET = do_POST
    def log_message(self, *a):
        pass
srv = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
EOF
	python3 "$d/proxy.py" "$port" "$(P)/cs/tls.crt" "$(P)/cs/tls.key" 2>"$d/proxy.err" &
	pid=$!
	for ((i = 0; i < 50; i++)); do
		ss -Hltn "sport = :$port" 2>/dev/null | grep -q . && break
		sleep 0.1
	done
	run login "$d/x" alice alice-pw-1 "https://127.0.0.1:$port"
	kill "$pid"
	assert_failure 3
	assert_output "ntm: login: HTTP 502 from https://127.0.0.1:$port"
	assert_file_not_exists "$d/x/session.json"
}

@test "a certificate that does not name the host is a TLS failure (exit 3), not a CA problem" {
	local port
	port=$(platform_port "$(P)" dc1)
	run bash -c "printf 'alice-pw-1\n' | timeout 30 ntm -c '$BATS_TEST_TMPDIR/x' login --ca '$(ca)' -u alice 'https://localhost:$port'"
	assert_failure 3
	refute_output --partial 'not trusted'
	assert_output --partial "cannot reach https://localhost:$port"
}

@test "a session whose CA does not vouch for the DC: logout says not trusted, exit 15" {
	run login "$BATS_TEST_TMPDIR/a" alice alice-pw-1 "$(dc1_url)"
	assert_success
	# The profile's CA file is replaced by the system store.
	jq --arg c /etc/ssl/certs/ca-certificates.crt '.ca_file = $c' \
	    "$BATS_TEST_TMPDIR/a/session.json" > "$BATS_TEST_TMPDIR/s.json"
	cat "$BATS_TEST_TMPDIR/s.json" > "$BATS_TEST_TMPDIR/a/session.json"
	run_t ntm -c "$BATS_TEST_TMPDIR/a" logout
	assert_failure 15
	assert_output --partial "is not trusted (unable to get local issuer certificate)"
}

# untrust PROFILE: the profile's CA file is replaced by the system store,
# which does not vouch for the platform's certificates.
untrust() {
	jq --arg c /etc/ssl/certs/ca-certificates.crt '.ca_file = $c' \
	    "$1/session.json" > "$BATS_TEST_TMPDIR/s.json"
	cat "$BATS_TEST_TMPDIR/s.json" > "$1/session.json"
}

@test "status and logout name an untrusted certificate as such, with the --ca hint" {
	run login "$BATS_TEST_TMPDIR/a" alice alice-pw-1 "$(dc1_url)"
	assert_success
	untrust "$BATS_TEST_TMPDIR/a"
	run_t ntm -c "$BATS_TEST_TMPDIR/a" status --json
	assert_failure 15
	assert_equal "$(jf "$output" dc_status)" untrusted_certificate
	[[ "$(jf "$output" dc_error)" == *"not trusted"*"--ca FILE"* ]]
	run_t ntm -c "$BATS_TEST_TMPDIR/a" status
	assert_failure 15
	assert_line --partial "dc: untrusted certificate (the certificate of $(dc1_url) is not trusted"
	run_t ntm -c "$BATS_TEST_TMPDIR/a" logout --json
	assert_failure 15
	assert_equal "$(jq -r .dc_status <<<"$(grep '^{' <<<"$output")")" untrusted_certificate
}

@test "the agent's own call to the DC: an untrusted certificate is exit 15, not unreachable" {
	local a=$BATS_TEST_TMPDIR/a out pid
	run login "$a" alice alice-pw-1 "$(dc1_url)"
	assert_success
	untrust "$a"
	out=$(timeout 30 ntm -c "$a" up --dc-udp "127.0.0.1:$(cat "$(P)/dc1.udpport")" \
	    --timeout 15)
	pid=$(sed -n 's/^agent: running (pid \([0-9]*\),.*/\1/p' <<<"$out")
	[ -n "$pid" ]
	run_t ntm -c "$a" tunnel ping -c 1 --timeout 10 bob.dc1.ntm.test
	kill "$pid"
	assert_failure 15
	assert_output --partial "untrusted_certificate: the certificate of $(dc1_url) is not trusted"
	assert_output --partial "'ntm login --ca FILE'"
}

@test "logout ends the session at the DC; status then says not logged in (exit 7)" {
	run login "$BATS_TEST_TMPDIR/a" alice alice-pw-1 "$(dc1_url)"
	assert_success
	local token
	token=$(jq -r .token "$BATS_TEST_TMPDIR/a/session.json")
	run https GET "$(dc1_url)/v1/session" -H "Authorization: Bearer $token"
	assert_equal "$(status_of)" 200
	run_t ntm -c "$BATS_TEST_TMPDIR/a" logout
	assert_success
	assert_file_not_exists "$BATS_TEST_TMPDIR/a/session.json"
	# The old token no longer opens the session.
	run https GET "$(dc1_url)/v1/session" -H "Authorization: Bearer $token"
	assert_equal "$(status_of)" 401
	run_t ntm -c "$BATS_TEST_TMPDIR/a" status
	assert_failure 7
	run_t ntm -c "$BATS_TEST_TMPDIR/a" logout
	assert_failure 7
}

@test "AS unreachable: login fails with exit 3 within the DC's bound" {
	platform_stop_role "$(P)" as
	# login runs under timeout(1): a hang would be exit 124, not 3, and the
	# message proves the DC itself gave up on the AS (as_timeout_ms).
	run login "$BATS_TEST_TMPDIR/a" alice alice-pw-1 "$(dc1_url)"
	assert_failure 3
	assert_equal "${#lines[@]}" 1
	# Which server failed, without its URL or curl's words (the DC logs those).
	assert_output "ntm: login: upstream_unavailable: the account server (AS) did not answer the DC (could not connect)"
	grep -q "AS $(as_url): " "$(P)/dc1.log"
	ntm-as -d -f "$(P)/as.conf" >>"$(P)/as.log" 2>&1 &
	echo $! > "$(P)/as.pid"
	wait_health "$(as_url)" "$(ca)"
	run login "$BATS_TEST_TMPDIR/a" alice alice-pw-1 "$(dc1_url)"
	assert_success
}

@test "AS frozen (accepts, never answers): the DC times out, login exit 3" {
	local pid
	pid=$(cat "$(P)/as.pid")
	kill -STOP "$pid"
	run login "$BATS_TEST_TMPDIR/a" alice alice-pw-1 "$(dc1_url)"
	kill -CONT "$pid"
	assert_failure 3
	assert_output "ntm: login: upstream_unavailable: the account server (AS) did not answer the DC (no answer in time)"
	run login "$BATS_TEST_TMPDIR/a" alice alice-pw-1 "$(dc1_url)"
	assert_success
}
