#!/usr/bin/env bats
# The push webhook (protocol.md §3.2, "Push notifications"): a device that
# logs in with --push URL is POSTed a JSON notice whenever a route direction
# is queued for it, besides the UDP NUDGE.
#
#   alice (agent) --dc2--> POST /v1/tunnel bob.dc1 --> dc1: POST /v1/dc/direction
#                                                      queue + NUDGE bob (agent)
#                                                      POST https://127.0.0.1:R/up/bob
#                                                            |
#                                             receiver (python, TLS from the demo CA)

load helpers

setup_file() {
	platform_up
	platform_resolver_start "$(P)"
	add_user alice 'alice-pw-1'
	add_user bob 'bob-pw-1'
	add_user carol 'carol-pw-1'
	add_user dave 'dave-pw-1'
	# The receiver's certificate, issued by the demo CA the DCs trust.
	local d=$BATS_FILE_TMPDIR
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	    -keyout "$d/recv.key" -out "$d/recv.csr" -subj /CN=127.0.0.1 2>/dev/null
	printf 'subjectAltName=IP:127.0.0.1\n' > "$d/recv.ext"
	openssl x509 -req -in "$d/recv.csr" -CA "$(P)/as/ca.crt" -CAkey "$(P)/as/ca.key" \
	    -CAcreateserial -days 1 -extfile "$d/recv.ext" -out "$d/recv.crt" 2>/dev/null
	export RECV_PORT
	RECV_PORT=$(free_port)
	recv_start
	echo "$RECV_PORT" > "$d/recv.port"
}

teardown_file() {
	local f
	for f in "$BATS_FILE_TMPDIR"/*.agentpid "$BATS_FILE_TMPDIR/recv.pid"; do
		[ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null
	done
	platform_down
}

# recv_start: an HTTPS server on 127.0.0.1:$RECV_PORT that appends each
# request (request line, Content-Type, body) to recv.log and answers 201.
recv_start() {
	local d=$BATS_FILE_TMPDIR i
	cat > "$d/recv.py" <<'EOF'
import http.server, ssl, sys
port, cert, key, log = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(min(n, 65536)).decode("utf-8", "replace")
        with open(log, "a") as f:
            f.write("%s %s\ncontent-type: %s\n%s\n" % (self.command, self.path,
                    self.headers.get("Content-Type"), body))
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
srv = http.server.HTTPServer(("127.0.0.1", port), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
EOF
	: > "$d/recv.log"
	python3 "$d/recv.py" "$RECV_PORT" "$d/recv.crt" "$d/recv.key" "$d/recv.log" \
	    >"$d/recv.out" 2>&1 &
	echo $! > "$d/recv.pid"
	for ((i = 0; i < 50; i++)); do
		ss -Hltn "sport = :$RECV_PORT" 2>/dev/null | grep -q . && return 0
		sleep 0.1
	done
	echo "recv_start: the receiver did not listen" >&2
	cat "$d/recv.out" >&2
	return 1
}

recv_url() { echo "https://127.0.0.1:$(cat "$BATS_FILE_TMPDIR/recv.port")"; }
udp_of() { echo "127.0.0.1:$(cat "$(P)/$1.udpport")"; }

# agent_up PROFILE DC: start the profile's agent (detached), record its pid.
agent_up() {
	local prof=$1 dc=$2 pid
	run_t ntm -c "$prof" up --dc-udp "$(udp_of "$dc")" --timeout 15
	assert_success
	pid=$(sed -n 's/^agent: running (pid \([0-9]*\),.*/\1/p' <<<"$output")
	[ -n "$pid" ]
	echo "$pid" > "$BATS_FILE_TMPDIR/$(basename "$prof").agentpid"
}

# status_push DC KEY: one push counter of `ntm-dc status --json`.
status_push() {
	ntm-dc -f "$(P)/$1.conf" status --json 2>/dev/null | jq -r ".push.$2 // empty"
}
push_is() { [ "$(status_push "$1" "$2")" = "$3" ]; }

@test "a direction queued for bob is POSTed to his push URL" {
	local pb=$BATS_FILE_TMPDIR/bob pa=$BATS_FILE_TMPDIR/alice bob_fqdn
	run login "$pb" bob bob-pw-1 "$(dc1_url)" --push "$(recv_url)/up/bob?token=s3cret" --json
	assert_success
	bob_fqdn=$(jf "$output" fqdn)
	run login "$pa" alice alice-pw-1 "$(dc2_url)" --json
	assert_success
	agent_up "$pb" dc1
	agent_up "$pa" dc2

	# alice at dc2 asks for bob at dc1: dc1 gets POST /v1/dc/direction.
	run_t ntm -c "$pa" tunnel ping -c 1 --timeout 20 "$bob_fqdn"
	assert_success

	wait_until 10 grep -q '^POST ' "$BATS_FILE_TMPDIR/recv.log"
	run cat "$BATS_FILE_TMPDIR/recv.log"
	assert_line --index 0 'POST /up/bob?token=s3cret'
	assert_line --index 1 'content-type: application/json'
	local body=${lines[2]}
	assert_equal "$(jq -r .type <<<"$body")" direction
	assert_equal "$(jq -r .fqdn <<<"$body")" "$bob_fqdn"
	assert_equal "$(jq -r .version <<<"$body")" 1
	assert_equal "$(jq -r .dc <<<"$body")" dc1.ntm.test
	[ "$(jq -r .pending <<<"$body")" -ge 1 ]

	# Counted (status.json is rewritten every 2 s) and logged without the query.
	wait_until 10 push_is dc1 push_sent 1
	assert_equal "$(status_push dc1 push_failed)" 0
	assert_equal "$(status_push dc1 push_dropped)" 0
	run grep "push $bob_fqdn to" "$(P)/dc1.log"
	assert_output --partial "push $bob_fqdn to $(recv_url)/up/bob: 201"
	run grep -c 's3cret' "$(P)/dc1.log"
	assert_output 0
	run_t ntm-dc -f "$(P)/dc1.conf" status
	assert_output --regexp 'push_sent +1'
}

@test "a local direction is pushed too; a login without --push clears the URL" {
	local pb=$BATS_FILE_TMPDIR/bob pc=$BATS_FILE_TMPDIR/carol pd=$BATS_FILE_TMPDIR/dave
	local bob_fqdn before
	bob_fqdn=$(jq -r .fqdn "$pb/session.json")
	run login "$pc" carol carol-pw-1 "$(dc1_url)"
	assert_success
	agent_up "$pc" dc1
	before=$(grep -c '^POST ' "$BATS_FILE_TMPDIR/recv.log")
	run_t ntm -c "$pc" tunnel ping -c 1 --timeout 20 "$bob_fqdn"
	assert_success
	wait_until 10 push_is dc1 push_sent $((before + 1))
	[ "$(grep -c '^POST /up/bob' "$BATS_FILE_TMPDIR/recv.log")" -eq $((before + 1)) ]

	# bob logs in again without --push (and restarts his agent on the new
	# session): a new peer's direction reaches him, but no push is sent.
	run login "$pb" bob bob-pw-1 "$(dc1_url)"
	assert_success
	local pid
	pid=$(cat "$BATS_FILE_TMPDIR/bob.agentpid")
	kill "$pid"
	wait_until 10 eval "! kill -0 $pid 2>/dev/null"
	agent_up "$pb" dc1
	login "$pd" dave dave-pw-1 "$(dc1_url)" >/dev/null
	agent_up "$pd" dc1
	run_t ntm -c "$pd" tunnel ping -c 1 --timeout 20 "$bob_fqdn"
	assert_success
	sleep 3		# a push would have been counted within one status period
	assert_equal "$(status_push dc1 push_sent)" $((before + 1))
	assert_equal "$(status_push dc1 push_failed)" 0
}

@test "--push must be https://: refused by the CLI (exit 2) and by the DC (400 push)" {
	run login "$BATS_TEST_TMPDIR/x" bob bob-pw-1 "$(dc1_url)" --push http://127.0.0.1/up
	assert_failure 2
	assert_output --partial "--push 'http://127.0.0.1/up'"
	run login "$BATS_TEST_TMPDIR/x" bob bob-pw-1 "$(dc1_url)" --push 'https://h/a b'
	assert_failure 2
	[ ! -e "$BATS_TEST_TMPDIR/x/session.json" ]

	local key
	key=$(head -c 32 /dev/urandom | basenc --base64url | tr -d '=')
	for url in http://127.0.0.1/up https:///up 'https://u:p@h/up' "https://h/$(head -c 600 /dev/zero | tr '\0' a)"; do
		run https POST "$(dc1_url)/v1/login" -d "$(jq -nc --arg u "$url" --arg k "$key" \
		    '{version: 1, user: "bob", password: "bob-pw-1", device: "d1",
		      client_key: $k, push: $u}')"
		assert_equal "$(status_of)" 400
		assert_equal "$(jf "$(body_of)" code)" bad_field
		assert_equal "$(jf "$(body_of)" field)" push
	done
}
