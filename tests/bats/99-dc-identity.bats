#!/usr/bin/env bats
# Server-to-server identity from the AS PKI (docs/protocol.md §2.2): a DC
# takes an answer for another domain only when it is signed by that
# domain's DC, with the certificate the AS issued it. A server that holds a
# TLS certificate for the name (here from a second CA that dc1 trusts, as a
# public CA in the system store would be) and that DNS points at is not
# taken for the DC.
#
#   alice@dc1 --keys exchange bob@dc2--> dc1 --DNS (rogue)--> impostor
#
# The resolvers are dnsmasq; TLS is real; the impostor is Python's ssl.

load helpers

setup_file() {
	local d=$BATS_FILE_TMPDIR
	platform_up
	platform_resolver_start "$(P)"
	add_user alice alice-pw-1
	add_user bob bob-pw-1
	login "$d/alice" alice alice-pw-1 "$(dc1_url)" > /dev/null
	login "$d/bob" bob bob-pw-1 "$(dc2_url)" > /dev/null
	# A second CA, and its certificate for dc2's name.
	openssl req -x509 -newkey ed25519 -nodes -keyout "$d/rogue-ca.key" \
	    -out "$d/rogue-ca.crt" -days 1 -subj /CN=rogue-ca 2>/dev/null
	openssl req -newkey ed25519 -nodes -keyout "$d/imp.key" -out "$d/imp.csr" \
	    -subj /CN=dc2.ntm.test 2>/dev/null
	printf 'subjectAltName=DNS:dc2.ntm.test\n' > "$d/imp.ext"
	openssl x509 -req -in "$d/imp.csr" -CA "$d/rogue-ca.crt" -CAkey "$d/rogue-ca.key" \
	    -CAcreateserial -days 1 -extfile "$d/imp.ext" -out "$d/imp.crt" 2>/dev/null
	cat "$(ca)" "$d/rogue-ca.crt" > "$d/bundle.crt"
	# The impostor: 200 to everything, with a well-formed exchange key; it
	# notes each request.
	free_port > "$d/imp.port"
	python3 - "$(cat "$d/imp.port")" "$d" <<'EOF' > /dev/null 2>&1 &
import http.server, json, ssl, sys
port, d = int(sys.argv[1]), sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        self.rfile.read(n)
        with open(d + "/imp.log", "a") as f:
            f.write("%s %s to=%s\n" % (self.command, self.path,
                                         self.headers.get("NTM-To")))
        b = json.dumps({"fqdn": "bob.dc2.ntm.test",
                        "exchange_key": "A" * 43}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    do_GET = do_POST
    def log_message(self, *a):
        pass
srv = http.server.HTTPServer(("127.0.0.1", port), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(d + "/imp.crt", d + "/imp.key")
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
EOF
	echo $! > "$d/imp.pid"
	# dc1's resolver now sends dc2.ntm.test to the impostor.
	free_port > "$d/rogue-dns.port"
	dnsmasq --no-daemon --no-resolv --no-hosts --cache-size=0 --log-facility=- \
	    --port="$(cat "$d/rogue-dns.port")" --listen-address=127.0.0.1 --bind-interfaces \
	    --server="/dc1.ntm.test/127.0.0.1#$(cat "$(P)/dc1.dnsport")" \
	    --srv-host="_ntm._tcp.dc2.ntm.test,dc2.ntm.test,$(cat "$d/imp.port")" \
	    --host-record=dc2.ntm.test,127.0.0.1 --address=/#/ \
	    > "$d/rogue-dns.log" 2>&1 &
	echo $! > "$d/rogue-dns.pid"
	platform_stop_role "$(P)" dc1
	sed -i -e "s|^resolver = .*|resolver = 127.0.0.1:$(cat "$d/rogue-dns.port")|" \
	    -e "s|^ca_file = .*|ca_file = $d/bundle.crt|" "$(P)/dc1.conf"
	PLATFORM_ROLES=dc1 platform_start "$(P)"
	wait_until 10 eval 'ss -Hlnt "sport = :$(cat "$d/imp.port")" | grep -q .'
}

teardown_file() {
	local f
	for f in imp rogue-dns; do
		[ -f "$BATS_FILE_TMPDIR/$f.pid" ] && kill "$(cat "$BATS_FILE_TMPDIR/$f.pid")" 2>/dev/null
	done
	platform_down
}

@test "a server with a TLS certificate for dc2's name but not dc2's key is not taken for dc2" {
	local d=$BATS_FILE_TMPDIR
	# It is reached: TLS (the second CA) and DNS lead dc1 there.
	run_t ntm -c "$d/alice" keys exchange bob.dc2.ntm.test
	assert_failure 3
	assert_output --partial "the answer (HTTP 200) is not from the DC of dc2.ntm.test: the answer is not signed"
	# The request named its receiver: dc2.ntm.test, signed over.
	grep -qx "POST /v1/dc/xkey to=dc2.ntm.test" "$d/imp.log"
	# dc1 took nothing from it: no exchange key, no temporal key sent on.
	run grep -c . "$d/imp.log"
	assert_output 1
	run_t ntm -c "$d/alice" keys list --json
	assert_success
	assert_equal "$(jq '[.keys[] | select(.peer == "bob.dc2.ntm.test")] | length' <<<"$output")" 0
	grep -q "is not from the DC of dc2.ntm.test" "$(P)/dc1.log"
}

@test "each DC signs its answers to signed requests with its own certificate" {
	local r
	# (The honest cross-DC paths, which now require these signatures, are
	# the tunnel, exchange and announcement suites.)
	for r in dc1 dc2; do
		"$SIGNREQ" --ca "$(ca)" --key "$(P)/rs/identity.key" --cert "$(P)/rs/server.cert" \
		    --answer "$(P)/as.pub" GET "https://127.0.0.1:$(platform_port "$(P)" $r)/v1/status" \
		    2> "$BATS_TEST_TMPDIR/ans" > /dev/null
		assert_equal "$(cat "$BATS_TEST_TMPDIR/ans")" "answer: signed by dc $r.ntm.test"
	done
}

@test "a request naming its receiver is taken by that server only" {
	local u r
	u="$(dc1_url)/v1/status"
	sr() { "$SIGNREQ" --ca "$(ca)" --key "$(P)/dc2/identity.key" \
	    --cert "$(P)/dc2/server.cert" "$@"; }
	run sr --to dc1.ntm.test GET "$u"
	assert_equal "$(status_of)" 200
	# Addressed to another server (dc1 would replay it there, say).
	run sr --to cs1.localhost GET "$u"
	assert_equal "$(status_of)" 401
	[[ "$(body_of | jq -r .message)" == *"addressed to 'cs1.localhost', not to this server ('dc1.ntm.test')"* ]]
	# The name is signed over: the header added to a request signed
	# without it does not verify.
	run sr --to-unsigned dc1.ntm.test GET "$u"
	assert_equal "$(status_of)" 401
	[[ "$(body_of | jq -r .message)" == *"does not verify"* ]]
}

# recorder NAME ROLE: an HTTPS server (the CS's TLS certificate, which the
# CA vouches for, for 127.0.0.1) that says it is ROLE NAME at GET
# /v1/health, answers every POST 200 {} and notes "PATH to=NTM-To" in
# $BATS_TEST_TMPDIR/rec.log; its URL on stdout.
recorder() {
	local port d=$BATS_TEST_TMPDIR i
	port=$(free_port)
	python3 - "$port" "$(P)/cs/tls.crt" "$(P)/cs/tls.key" "$d/rec.log" "$1" "$2" \
	    <<'EOF' > /dev/null 2>&1 3>&- &
import http.server, json, ssl, sys
port, crt, key, log, name, role = sys.argv[1:7]
class H(http.server.BaseHTTPRequestHandler):
    def answer(self, o):
        b = json.dumps(o).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    def do_GET(self):
        self.answer({"role": role, "name": name, "version": "0.1.0", "protocol": 1})
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with open(log, "a") as f:
            f.write("%s to=%s\n" % (self.path, self.headers.get("NTM-To")))
        self.answer({})
    def log_message(self, *a):
        pass
srv = http.server.HTTPServer(("127.0.0.1", int(port)), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(crt, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
EOF
	echo $! > "$d/rec.pid"
	for ((i = 0; i < 50; i++)); do
		ss -Hltn "sport = :$port" 2>/dev/null | grep -q . && break
		sleep 0.1
	done
	echo "https://127.0.0.1:$port"
}
rec_down() { kill "$(cat "$BATS_TEST_TMPDIR/rec.pid")" 2>/dev/null || true; }

@test "the AS's pushes name their receiver, as its /v1/health names itself" {
	local url
	url=$(recorder rec.ntm.test dc)
	platform_stop_role "$(P)" as
	cp "$(P)/as.conf" "$BATS_TEST_TMPDIR/as.conf"
	sed -i "s|^revoke_url = .*|&, $url|" "$(P)/as.conf"
	PLATFORM_ROLES=as platform_start "$(P)"
	add_user erin erin-pw-1
	login "$BATS_TEST_TMPDIR/erin" erin erin-pw-1 "$(dc2_url)" > /dev/null
	run_t ntm-as -f "$(P)/as.conf" user lock erin
	wait_until 10 grep -qx "/v1/revoke to=rec.ntm.test" "$BATS_TEST_TMPDIR/rec.log"
	grep -q "revocations go to $url as dc rec.ntm.test" "$(P)/as.log"
	rec_down
	platform_stop_role "$(P)" as
	cp "$BATS_TEST_TMPDIR/as.conf" "$(P)/as.conf"
	PLATFORM_ROLES=as platform_start "$(P)"
}

@test "a DC's requests to the AS name it, as the AS's /v1/health names itself" {
	local url
	url=$(recorder as.ntm.test as)
	platform_stop_role "$(P)" dc2
	cp "$(P)/dc2.conf" "$BATS_TEST_TMPDIR/dc2.conf"
	sed -i "s|^as_url = .*|as_url = $url|" "$(P)/dc2.conf"
	PLATFORM_ROLES=dc2 platform_start "$(P)"
	# the DC learns the AS's name at start; a login it relays names it
	wait_until 10 eval 'run login "$BATS_TEST_TMPDIR/f" alice alice-pw-1 "$(dc2_url)";
	    grep -qx "/v1/as/login to=as.ntm.test" "$BATS_TEST_TMPDIR/rec.log"'
	rec_down
	platform_stop_role "$(P)" dc2
	cp "$BATS_TEST_TMPDIR/dc2.conf" "$(P)/dc2.conf"
	PLATFORM_ROLES=dc2 platform_start "$(P)"
}

@test "the AS takes only the requests that name it, or no one" {
	run "$SIGNREQ" --ca "$(ca)" --key "$(P)/dc1/identity.key" --cert "$(P)/dc1/server.cert" \
	    --to dc2.ntm.test POST "$(as_url)/v1/as/logout" '{"version":1,"token_id":"00"}'
	assert_equal "$(status_of)" 401
	[[ "$(body_of | jq -r .message)" == *"addressed to 'dc2.ntm.test', not to this server ('as.ntm.test')"* ]]
	"$SIGNREQ" --ca "$(ca)" --key "$(P)/dc1/identity.key" --cert "$(P)/dc1/server.cert" \
	    --to as.ntm.test --answer "$(P)/as.pub" POST "$(as_url)/v1/as/logout" \
	    '{"version":1,"token_id":"00"}' > "$BATS_TEST_TMPDIR/out" 2> "$BATS_TEST_TMPDIR/ans"
	assert_equal "$(tail -n 1 "$BATS_TEST_TMPDIR/out")" 400
	# and its answers are signed with its own key
	assert_equal "$(cat "$BATS_TEST_TMPDIR/ans")" "answer: signed by as as.ntm.test"
}
