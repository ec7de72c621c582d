#!/usr/bin/env bats
# Logins sealed to the AS (docs/protocol.md §3.1): a client that knows the
# AS key (as_key in ntm.conf, or pinned at its first login) seals the
# password and its device key to it, bound to the DC's domain, the time and
# a fresh nonce; the DC relays a box it cannot open. After logins, the
# password is in none of the DC's database, log or memory; the AS refuses a
# box played again, relayed by another DC, or stale, and certifies no other
# device key than the sealed one. A DC that swaps the device key in a login
# (dcswap, tests/tools) is caught by the device, or by the AS when sealed.

load helpers

SEALOGIN=$NTM_BIN/tests/sealogin

setup_file() {
	platform_up
	PW="zebra-$$-$RANDOM-unique-secret"
	echo "$PW" > "$BATS_FILE_TMPDIR/pw"
	add_user alice "$PW"
}

teardown_file() { platform_down; }

# the dcswap front of a test, if it started one (by its recorded pid)
teardown() {
	[ -f "$BATS_TEST_TMPDIR/front.pid" ] && kill "$(cat "$BATS_TEST_TMPDIR/front.pid")" 2>/dev/null
	return 0
}

pw() { cat "$BATS_FILE_TMPDIR/pw"; }

# sreq ROLE METHOD URL [BODY]: signed as the DC ROLE.
sreq() {
	local role=$1
	shift
	"$SIGNREQ" --ca "$(ca)" --key "$(P)/$role/identity.key" --cert "$(P)/$role/server.cert" "$@"
}

# scan_mem PID NEEDLE: how many times NEEDLE is in the process's memory
# (every readable mapping, through /proc/PID/mem, 16 MiB at a time; the
# huge reserved mappings of a sanitizer build, over 4 GiB, are skipped).
scan_mem() {
	python3 - "$1" "$2" <<'PY'
import sys
pid, needle = sys.argv[1], sys.argv[2].encode()
step, n = 1 << 24, 0
with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
    for line in maps:
        a, perms = line.split()[:2]
        lo, hi = (int(x, 16) for x in a.split("-"))
        if perms[0] != "r" or hi - lo > (1 << 32):
            continue
        tail = b""
        for off in range(lo, hi, step):
            try:
                mem.seek(off)
                chunk = tail + mem.read(min(step, hi - off))
            except (OSError, ValueError, OverflowError):
                tail = b""
                continue
            n += chunk.count(needle)
            tail = chunk[-(len(needle) - 1):]	# a match across two chunks
print(n)
PY
}

@test "a sealed login: the password is in none of the DC's database, log or memory" {
	local prof=$BATS_TEST_TMPDIR/alice pid f
	mkdir -m 700 "$prof"
	echo "as_key = $(cat "$(P)/as.pub")" > "$prof/ntm.conf"
	for i in 1 2 3; do
		run login "$prof" alice "$(pw)" "$(dc1_url)"
		assert_success
	done
	assert_file_exists "$prof/device.cert"
	pid=$(cat "$(P)/dc1.pid")
	# the scan reads the DC's memory: what the DC does hold is found
	[ "$(scan_mem "$pid" "alice.dc1.ntm.test")" -gt 0 ]
	assert_equal "$(scan_mem "$pid" "$(pw)")" 0
	for f in "$(P)"/dc1/dc.db* "$(P)/dc1.log"; do
		[ -f "$f" ] || continue
		run grep -a -c -F -- "$(pw)" "$f"
		assert_output 0
	done
	# the AS logged the logins as sealed ones it opened
	run grep -c "login user=alice .* result=ok" "$(P)/as.log"
	[ "$output" -ge 3 ]
}

@test "a profile's first login, without as_key, is sealed too: the key the DC names is pinned, the password is not in the DC" {
	local prof=$BATS_TEST_TMPDIR/first pid
	mkdir -m 700 "$prof"
	run login "$prof" alice "$(pw)" "$(dc1_url)"
	assert_success
	assert_equal "$(cat "$prof/as.key")" "$(cat "$(P)/as.pub")"
	pid=$(cat "$(P)/dc1.pid")
	assert_equal "$(scan_mem "$pid" "$(pw)")" 0
	run grep -a -c -F -- "$(pw)" "$(P)/dc1.log"
	assert_output 0
}

@test "a DC that names no AS key gets no login from a profile without one: the password is never sent" {
	local prof=$BATS_TEST_TMPDIR/nokey port pid i d=$BATS_TEST_TMPDIR
	mkdir -m 700 "$prof"
	port=$(free_port)
	cat > "$d/nokey.py" <<'EOF'
import http.server, json, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        b = json.dumps({"role": "dc", "name": "dc1.ntm.test", "version": "0.1.0",
                        "protocol": 1}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    def do_POST(self):
        with open(sys.argv[4], "a") as f:
            f.write(self.path + "\n")
        self.do_GET()
    def log_message(self, *a):
        pass
srv = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
EOF
	python3 "$d/nokey.py" "$port" "$(P)/cs/tls.crt" "$(P)/cs/tls.key" "$d/posts" \
	    2>"$d/nokey.err" &
	pid=$!
	for ((i = 0; i < 50; i++)); do
		ss -Hltn "sport = :$port" 2>/dev/null | grep -q . && break
		sleep 0.1
	done
	run login "$prof" alice "$(pw)" "https://127.0.0.1:$port"
	kill "$pid"
	assert_failure 16
	assert_output "ntm: login: https://127.0.0.1:$port names no AS key to seal the login to, and this profile has none (set as_key in ntm.conf)"
	assert_file_not_exists "$d/posts"
	assert_file_not_exists "$prof/session.json"
}

@test "the AS refuses a sealed login played again, relayed by another DC, stale, or for another user" {
	local box dev=laptop-1
	box=$(pw | "$SEALOGIN" --as-key "$(cat "$(P)/as.pub")" --user alice --device $dev \
	    --dc dc1.ntm.test)
	body="{\"version\":1,\"user\":\"alice\",\"device\":\"$dev\",\"sealed\":\"$box\"}"
	run sreq dc1 POST "$(as_url)/v1/as/login" "$body"
	assert_equal "$(status_of)" 200
	# the same box again, from the same DC: a replay
	run sreq dc1 POST "$(as_url)/v1/as/login" "$body"
	assert_equal "$(status_of)" 409
	assert_output --partial '"code":"replayed"'
	# a fresh box for dc1, relayed by dc2: re-targeted
	box=$(pw | "$SEALOGIN" --as-key "$(cat "$(P)/as.pub")" --user alice --device $dev \
	    --dc dc1.ntm.test)
	run sreq dc2 POST "$(as_url)/v1/as/login" \
	    "{\"version\":1,\"user\":\"alice\",\"device\":\"$dev\",\"sealed\":\"$box\"}"
	assert_equal "$(status_of)" 403
	assert_output --partial "relayed by dc2.ntm.test"
	# sealed 20 minutes ago
	box=$(pw | "$SEALOGIN" --as-key "$(cat "$(P)/as.pub")" --user alice --device $dev \
	    --dc dc1.ntm.test --time-offset -1200)
	run sreq dc1 POST "$(as_url)/v1/as/login" \
	    "{\"version\":1,\"user\":\"alice\",\"device\":\"$dev\",\"sealed\":\"$box\"}"
	assert_equal "$(status_of)" 401
	assert_output --partial '"code":"expired"'
	# a box for alice presented for bob
	box=$(pw | "$SEALOGIN" --as-key "$(cat "$(P)/as.pub")" --user alice --device $dev \
	    --dc dc1.ntm.test)
	run sreq dc1 POST "$(as_url)/v1/as/login" \
	    "{\"version\":1,\"user\":\"bob\",\"device\":\"$dev\",\"sealed\":\"$box\"}"
	assert_equal "$(status_of)" 400
	assert_output --partial "another user or device"
}

@test "a DC that swaps the device key of a sealed login gets no certificate for it" {
	local box tok dev=tablet-9
	box=$(pw | "$SEALOGIN" --as-key "$(cat "$(P)/as.pub")" --user alice --device $dev \
	    --dc dc1.ntm.test)
	run sreq dc1 POST "$(as_url)/v1/as/login" \
	    "{\"version\":1,\"user\":\"alice\",\"device\":\"$dev\",\"sealed\":\"$box\"}"
	assert_equal "$(status_of)" 200
	tok=$(body_of | jq -r .token)
	[ -n "$tok" ] && [ "$tok" != null ]
	# the DC asks for a key of its own (sealogin sealed a random one)
	run sreq dc1 POST "$(as_url)/v1/as/device" \
	    "{\"version\":1,\"token\":\"$tok\",\"fqdn\":\"alice-9.dc1.ntm.test\",\"device_key\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}"
	assert_equal "$(status_of)" 409
	assert_output --partial '"code":"device_key_mismatch"'
}

# front_up: dcswap in front of dc1 (its TLS certificate and key); prints
# its URL; records its pid.
front_up() {
	local port i
	port=$(free_port)
	python3 "$TOP/tests/tools/dcswap.py" "$port" "$(P)/dc1/tls.crt" "$(P)/dc1/tls.key" \
	    "$(ca)" "$(dc1_url)" > "$BATS_TEST_TMPDIR/front.out" 2>&1 &
	echo $! > "$BATS_TEST_TMPDIR/front.pid"
	for ((i = 0; i < 50; i++)); do
		grep -q listening "$BATS_TEST_TMPDIR/front.out" 2>/dev/null && break
		sleep 0.1
	done
	echo "https://127.0.0.1:$port"
}

front_down() { kill "$(cat "$BATS_TEST_TMPDIR/front.pid")" 2>/dev/null || true; }

@test "a DC that swaps the device key in a login: the AS refuses it, with or without as_key; nothing saved, no key pinned" {
	local prof=$BATS_TEST_TMPDIR/swapped url
	url=$(front_up)
	mkdir -m 700 "$prof"
	# no AS key yet: the login is sealed to the key the DC's /v1/health
	# names (trust on first use), so the AS certifies only the key in the
	# box, and the login fails
	run login "$prof" alice "$(pw)" "$url"
	assert_failure 3
	assert_output --partial "device_key_mismatch"
	assert_file_not_exists "$prof/session.json"
	assert_file_not_exists "$prof/device.cert"
	assert_file_not_exists "$prof/as.key"
	grep -q swapped "$BATS_TEST_TMPDIR/front.out"
	# the same with as_key given
	echo "as_key = $(cat "$(P)/as.pub")" > "$prof/ntm.conf"
	run login "$prof" alice "$(pw)" "$url"
	assert_failure
	assert_output --partial "device_key_mismatch"
	assert_file_not_exists "$prof/session.json"
	front_down
	# through the honest DC, the same profile logs in
	run login "$prof" alice "$(pw)" "$(dc1_url)"
	assert_success
}
