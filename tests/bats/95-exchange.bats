#!/usr/bin/env bats
# The non-real-time path end to end (protocol.md §3.4, §7, §8): key exchange
# and data exchange through the DCs and the CS, with bob offline.
#
#   alice@dc1 --temporal key--> dc1 --signed POST /v1/dc/temporal--> dc2 (bob)
#       \--sealed shared key, sealed data--> cs1 (cs_url of dc1 and dc2)
#                 cs1 --signed POST /v1/dc/announce--> dc2: cache list,
#                     (DC found by DNS)    NUDGE (online) or push (offline) to bob
#   bob@dc2: ntm fetch = cache list (dc2) + temporal key (dc2) + objects (cs1)
#   carol@dc1: the same, with every step local to dc1
#
# The resolver is dnsmasq; TLS is real (the demo CA); storage is SQLite.

load helpers

setup_file() {
	platform_init "$(P)" >"$BATS_FILE_TMPDIR/init.log" 2>&1 || {
		cat "$BATS_FILE_TMPDIR/init.log" >&3; return 1; }
	local cs="cs_url = $(platform_cs_url "$(P)")"
	echo "$cs" >> "$(P)/dc1.conf"
	echo "$cs" >> "$(P)/dc2.conf"
	echo "$cs" >> "$(P)/as.conf"	# where the AS pushes revocations
	# Announcements to a DC that is down are tried again within a second.
	echo "announce_retry_max_s = 1" >> "$(P)/cs.conf"
	platform_start "$(P)"
	platform_resolver_start "$(P)"
	add_user alice 'alice-pw-1'
	add_user bob 'bob-pw-1'
	add_user carol 'carol-pw-1'
	local d=$BATS_FILE_TMPDIR
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	    -keyout "$d/recv.key" -out "$d/recv.csr" -subj /CN=127.0.0.1 2>/dev/null
	printf 'subjectAltName=IP:127.0.0.1\n' > "$d/recv.ext"
	openssl x509 -req -in "$d/recv.csr" -CA "$(P)/as/ca.crt" -CAkey "$(P)/as/ca.key" \
	    -CAcreateserial -days 1 -extfile "$d/recv.ext" -out "$d/recv.crt" 2>/dev/null
	free_port > "$d/recv.port"
	recv_start
	login "$d/alice" alice alice-pw-1 "$(dc1_url)" >/dev/null
	login "$d/bob" bob bob-pw-1 "$(dc2_url)" --push "$(recv_url)/up/bob" >/dev/null
	login "$d/carol" carol carol-pw-1 "$(dc1_url)" >/dev/null
	# A marker that must never be readable on a server.
	{ echo "MARKER-7f3a9c-plaintext-never-on-a-server"; head -c 5000000 /dev/urandom; } \
	    > "$d/file.bin"
}

teardown_file() {
	local f
	for f in "$BATS_FILE_TMPDIR"/*.agentpid "$BATS_FILE_TMPDIR/recv.pid"; do
		[ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null
	done
	platform_down
}

A() { echo "$BATS_FILE_TMPDIR/alice"; }
B() { echo "$BATS_FILE_TMPDIR/bob"; }
C() { echo "$BATS_FILE_TMPDIR/carol"; }
fqdn_of() { jq -r .fqdn "$1/session.json"; }
token_of() { jq -r .token "$1/session.json"; }
# cs_tok PROFILE: the profile's token for cs1 (the DC's is refused there).
cs_tok() { cs_token "$1" "$(sed -n 's/^name = //p' "$(P)/cs.conf")"; }

# recv_start: an HTTPS receiver appending each POST (path, body) to recv.log.
recv_start() {
	local d=$BATS_FILE_TMPDIR port i
	port=$(cat "$d/recv.port")
	cat > "$d/recv.py" <<'EOF'
import http.server, ssl, sys
port, cert, key, log = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(min(n, 65536)).decode("utf-8", "replace")
        with open(log, "a") as f:
            f.write("%s %s\n%s\n" % (self.command, self.path, body))
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
	python3 "$d/recv.py" "$port" "$d/recv.crt" "$d/recv.key" "$d/recv.log" \
	    >"$d/recv.out" 2>&1 &
	echo $! > "$d/recv.pid"
	for ((i = 0; i < 50; i++)); do
		ss -Hltn "sport = :$port" 2>/dev/null | grep -q . && return 0
		sleep 0.1
	done
	cat "$d/recv.out" >&2
	return 1
}
recv_url() { echo "https://127.0.0.1:$(cat "$BATS_FILE_TMPDIR/recv.port")"; }

agent_up() {
	local prof=$1 dc=$2 pid
	run_t ntm -c "$prof" up --dc-udp "127.0.0.1:$(cat "$(P)/$dc.udpport")" --timeout 15
	assert_success
	pid=$(sed -n 's/^agent: running (pid \([0-9]*\),.*/\1/p' <<<"$output")
	[ -n "$pid" ]
	echo "$pid" > "$BATS_FILE_TMPDIR/$(basename "$prof").agentpid"
}

nudges_of() { ntm -c "$1" status --offline --json | jq -r '.agent.nudges // 0'; }
exch_stat() {
	ntm-dc -f "$(P)/$1.conf" status --json 2>/dev/null | jq -r ".exchange.$2 // 0"
}
exch_ended() {
	ntm-dc -f "$(P)/$1.conf" status --json 2>/dev/null | jq -r ".ended_tokens.$2 // 0"
}
# pushes_to_bob TYPE: webhook POSTs of that type received for bob.
pushes_to_bob() {
	grep -A1 '^POST /up/bob' "$BATS_FILE_TMPDIR/recv.log" | grep -c "\"type\":\"$1\"" || true
}

@test "alice exchanges keys with bob while he is offline: the webhook tells him" {
	local bob
	bob=$(fqdn_of "$(B)")
	run_t ntm -c "$(A)" keys exchange "$bob" --json
	assert_success
	assert_equal "$(jf "$output" peer)" "$bob"
	assert_equal "$(jf "$output" made_by)" us
	[[ "$(jf "$output" fingerprint)" =~ ^([0-9a-f]{4} ){7}[0-9a-f]{4}$ ]]
	# dc1 handed the temporal key to dc2, and cs1 announced the sealed
	# shared key to dc2 (each found by DNS, each request signed).
	run grep -E "temporal key [0-9a-f]{32} from $(fqdn_of "$(A)") for $bob: stored" "$(P)/dc2.log"
	assert_success
	run grep "cache entry .* for $bob: key" "$(P)/dc2.log"
	assert_success
	run grep -E "object [0-9a-f]{64}: announced to $bob at dc2.ntm.test" "$(P)/cs.log"
	assert_success
	# bob has no agent: dc2 pushed the notice to his webhook instead of a NUDGE.
	wait_until 10 eval '[ "$(pushes_to_bob cache)" -ge 1 ]'
	run grep -A1 '^POST /up/bob' "$BATS_FILE_TMPDIR/recv.log"
	assert_output --partial "\"fqdn\":\"$bob\""
	assert_output --partial '"dc":"dc2.ntm.test"'
	# The key file is private to alice.
	assert_equal "$(stat -c %a "$(A)/keys/$bob.key")" 600
	run_t ntm -c "$(A)" keys list --json
	assert_equal "$(jq -r '.keys | length' <<<"$output")" 1
}

@test "a dishonest DC: bob's token and all that dc2 stores do not open the key; bob's device does" {
	local bob alice db kid tk sha cs obj=$BATS_TEST_TMPDIR/key.obj
	bob=$(fqdn_of "$(B)")
	alice=$(fqdn_of "$(A)")
	db="$(P)/dc2/dc.db"
	q() {
		python3 -c 'import sqlite3, sys
db = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
print(db.execute(sys.argv[2]).fetchone()[0])' "$db" "$1"
	}
	# Everything dc2 holds for bob's pending key exchange ...
	kid=$(q "SELECT key_id FROM temporal_keys ORDER BY id DESC LIMIT 1")
	tk=$(q "SELECT tkey FROM temporal_keys WHERE key_id = '$kid'")
	sha=$(q "SELECT sha256 FROM cache_entries WHERE kind = 'key' ORDER BY id DESC LIMIT 1")
	cs=$(q "SELECT cs FROM cache_entries WHERE sha256 = '$sha'")
	# ... and bob's bearer token, which dc2 sees: the CS refuses it, as it
	# is for dc2 alone.
	run curl -s --cacert "$(P)/as/ca.crt" -H "Authorization: Bearer $(token_of "$(B)")" \
	    "$cs/v1/cs/object?sha256=$sha"
	assert_equal "$(jq -r .code <<<"$output")" wrong_audience
	# With the CS on its side, bob's token for the CS: the CS hands over the
	# key object.
	run curl -s --cacert "$(P)/as/ca.crt" -H "Authorization: Bearer $(cs_tok "$(B)")" \
	    -o "$obj" -w '%{http_code}' "$cs/v1/cs/object?sha256=$sha"
	assert_output 200
	[ "$(stat -c %s "$obj")" -eq 76 ]
	# The temporal key dc2 holds is sealed to bob's device: no shared key.
	run "$XUNWRAP" --obj "$obj" --tkey "$tk" --kid "$kid" --from "$alice" --to "$bob"
	assert_failure 1
	assert_output --partial 'it is sealed'
	# Bob's device key opens it, and it is the key alice holds.
	run "$XUNWRAP" --obj "$obj" --tkey "$tk" --kid "$kid" --from "$alice" --to "$bob" \
	    --xsk "$(B)/exchange.key"
	assert_success
	assert_output "$(jq -r .key "$(A)/keys/$bob.key")"
	assert_equal "$(stat -c %a "$(B)/exchange.key")" 600
}

@test "alice sends a file; bob comes online, is nudged, fetches; alice sees it delivered" {
	local bob alice id out=$BATS_TEST_TMPDIR/out pushes
	bob=$(fqdn_of "$(B)")
	alice=$(fqdn_of "$(A)")
	pushes=$(pushes_to_bob cache)
	run_t ntm -c "$(A)" send "$bob" "$BATS_FILE_TMPDIR/file.bin" --app chat \
	    --service files --item 42 --notify 'a file from alice' --json
	assert_success
	id=$(jf "$output" id)
	[[ "$id" =~ ^[0-9a-f]{64}$ ]]
	assert_equal "$(jq -r '.to[0].status' <<<"$output")" announced
	echo "$id" > "$BATS_FILE_TMPDIR/first.id"
	wait_until 10 eval '[ "$(pushes_to_bob cache)" -gt '"$pushes"' ]'
	run_t ntm -c "$(A)" send --status "$id" --json
	assert_equal "$(jq -r '.to[0].status' <<<"$output")" announced
	assert_equal "$(jq -r .kind <<<"$output")" data
	assert_equal "$(jq -r .app <<<"$output")/$(jq -r .service <<<"$output")/$(jq -r .item <<<"$output")" chat/files/42

	# bob comes online: dc2 NUDGEs his agent (kind 2) as he registers.
	agent_up "$(B)" dc2
	wait_until 10 eval '[ "$(nudges_of "$(B)")" -ge 1 ]'
	wait_until 10 eval '[ "$(exch_stat dc2 nudged)" -ge 1 ]'

	mkdir "$out"
	run_t ntm -c "$(B)" fetch -o "$out" --json
	assert_success
	assert_equal "$(jq -r '.fetched | length' <<<"$output")" 2
	assert_equal "$(jq -r '.fetched[0].kind' <<<"$output")" key
	assert_equal "$(jq -r '.fetched[1].kind' <<<"$output")" data
	assert_equal "$(jq -r '.fetched[1].notify' <<<"$output")" 'a file from alice'
	assert_equal "$(sha256sum < "$out/file.bin")" "$(sha256sum < "$BATS_FILE_TMPDIR/file.bin")"
	assert_equal "$(ls -A "$out")" file.bin

	# Both ends show the same fingerprint.
	assert_equal "$(ntm -c "$(B)" keys show "$alice" --json | jq -r .fingerprint)" \
	    "$(ntm -c "$(A)" keys show "$bob" --json | jq -r .fingerprint)"
	assert_equal "$(ntm -c "$(B)" keys show "$alice" --json | jq -r .made_by)" peer

	run_t ntm -c "$(A)" send --status "$id"
	assert_success
	assert_output --regexp "$bob: delivered at "
	run_t ntm -c "$(B)" fetch
	assert_success
	assert_output 'nothing to fetch'
}

@test "one send to bob (dc2) and carol (dc1): both fetch and verify; both delivered" {
	local bob carol id ob=$BATS_TEST_TMPDIR/b oc=$BATS_TEST_TMPDIR/c
	bob=$(fqdn_of "$(B)")
	carol=$(fqdn_of "$(C)")
	run_t ntm -c "$(A)" keys exchange "$carol"
	assert_success
	printf 'to both of you\n' > "$BATS_TEST_TMPDIR/note.txt"
	run_t ntm -c "$(A)" send "$bob" "$carol" "$BATS_TEST_TMPDIR/note.txt" --json
	assert_success
	id=$(jf "$output" id)
	assert_equal "$(jq -r '[.to[].status] | join(",")' <<<"$output")" announced,announced
	mkdir "$ob" "$oc"
	run_t ntm -c "$(B)" fetch -o "$ob"
	assert_success
	assert_output --partial "from $(fqdn_of "$(A)")"
	run_t ntm -c "$(C)" fetch -o "$oc"
	assert_success
	assert_line --index 0 --regexp "^key from .*: fingerprint "
	cmp "$ob/note.txt" "$BATS_TEST_TMPDIR/note.txt"
	cmp "$oc/note.txt" "$BATS_TEST_TMPDIR/note.txt"
	run_t ntm -c "$(A)" send --status "$id" --json
	assert_equal "$(jq -r '[.to[].status] | join(",")' <<<"$output")" delivered,delivered
	# To stdout as well.
	printf 'piped\n' | ntm -c "$(A)" send "$carol" - >/dev/null
	run_t ntm -c "$(C)" fetch -o -
	assert_success
	assert_line --index 0 piped
}

@test "fetch --wait returns as soon as something arrives (long-poll)" {
	local carol out=$BATS_TEST_TMPDIR/o
	carol=$(fqdn_of "$(C)")
	mkdir "$out"
	( ntm -c "$(C)" fetch --wait --timeout 30 -o "$out" > "$BATS_TEST_TMPDIR/w.out" 2>&1
	  echo $? > "$BATS_TEST_TMPDIR/w.rc" ) &
	wait_until 10 eval '[ "$(exch_stat dc1 polls_waiting)" -ge 1 ]'
	printf 'later\n' > "$BATS_TEST_TMPDIR/later.txt"
	run_t ntm -c "$(A)" send "$carol" "$BATS_TEST_TMPDIR/later.txt"
	assert_success
	wait_until 10 test -f "$BATS_TEST_TMPDIR/w.rc"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/w.rc")" 0
	cmp "$out/later.txt" "$BATS_TEST_TMPDIR/later.txt"
	wait_until 10 eval '[ "$(exch_stat dc1 polls_woken)" -ge 1 ]'
	# Nothing arrives: it gives up after --timeout, exit 1.
	run_t ntm -c "$(C)" fetch --wait --timeout 2 -o "$out"
	assert_failure 1
}

@test "bob's DC is down: the CS keeps trying, survives kill -9, announces when dc2 is back" {
	local bob id js out=$BATS_TEST_TMPDIR/o i
	bob=$(fqdn_of "$(B)")
	platform_stop_role "$(P)" dc2
	printf 'sent while dc2 was down\n' > "$BATS_TEST_TMPDIR/down.txt"
	# Stored at the CS: the send succeeds and says the CS will try again.
	js=$(timeout 30 ntm -c "$(A)" send "$bob" "$BATS_TEST_TMPDIR/down.txt" --json \
	    2>"$BATS_TEST_TMPDIR/err")
	id=$(jf "$js" id)
	[[ "$id" =~ ^[0-9a-f]{64}$ ]]
	assert_equal "$(jq -r '.to[0].status' <<<"$js")" pending
	assert_equal "$(jq -r '.to[0].error.code' <<<"$js")" upstream_unavailable
	grep -q "$bob: not announced yet (upstream_unavailable: .*); the CS tries again" \
	    "$BATS_TEST_TMPDIR/err"
	# The CS dies with the announcement outstanding; its state is on disk.
	kill -9 "$(cat "$(P)/cs.pid")"
	for ((i = 0; i < 50; i++)); do kill -0 "$(cat "$(P)/cs.pid")" 2>/dev/null || break; sleep 0.1; done
	PLATFORM_ROLES=cs platform_start "$(P)"
	PLATFORM_ROLES=dc2 platform_start "$(P)"
	wait_until 20 eval '[ "$(ntm -c "$(A)" send --status "$id" --json | jq -r ".to[0].status")" = announced ]'
	run_t ntm -c "$(A)" send --status "$id" --json
	[ "$(jq -r '.to[0].attempts' <<<"$output")" -ge 2 ]
	assert_equal "$(jq -r '.to[0].error' <<<"$output")" null
	mkdir "$out"
	run_t ntm -c "$(B)" fetch -o "$out"
	assert_success
	cmp "$out/down.txt" "$BATS_TEST_TMPDIR/down.txt"
}

@test "a recipient its DC does not know: the CS gives up at once and says why" {
	local tok cs sha id
	tok=$(cs_tok "$(A)")
	cs="https://127.0.0.1:$(platform_port "$(P)" cs)"
	printf 'nobody' > "$BATS_TEST_TMPDIR/g"
	sha=$(sha256sum "$BATS_TEST_TMPDIR/g" | cut -c1-64)
	run https POST "$cs/v1/cs/uploads" -H "Authorization: Bearer $tok" \
	    -d "{\"version\":1,\"from\":\"$(fqdn_of "$(A)")\",\"to\":[\"ghost.dc2.ntm.test\"],\"size\":6}"
	assert_equal "$(status_of)" 201
	id=$(jq -r .upload <<<"$(body_of)")
	run https PUT "$cs/v1/cs/upload?id=$id&offset=0" -H "Authorization: Bearer $tok" \
	    --data-binary @"$BATS_TEST_TMPDIR/g"
	assert_equal "$(status_of)" 200
	run https POST "$cs/v1/cs/upload/commit" -H "Authorization: Bearer $tok" \
	    -d "{\"version\":1,\"upload\":\"$id\",\"size\":6,\"sha256\":\"$sha\"}"
	assert_equal "$(status_of)" 201
	meta() { https GET "$cs/v1/cs/object/meta?sha256=$sha${1:-}" -H "Authorization: Bearer $tok" | sed '$d'; }
	# A long-poll: answered once dc2 said no (or after 20 s).
	assert_equal "$(meta '&wait=20' | jq -r '.to[0].status')" failed
	assert_equal "$(meta | jq -r '.to[0].error.code')" unknown_peer
	meta | jq -r '.to[0].error.message' | grep -q 'ghost.dc2.ntm.test'
	assert_equal "$(meta | jq -r '.to[0].attempts')" 1
	run https GET "$cs/v1/cs/object/meta?sha256=$sha&wait=31" -H "Authorization: Bearer $tok"
	expect_error 400 bad_field wait
}

@test "a 100 MiB send and fetch stay within bounded memory (peak RSS of the client)" {
	local carol out=$BATS_TEST_TMPDIR/big rs rf
	carol=$(fqdn_of "$(C)")
	head -c 104857600 /dev/urandom > "$BATS_TEST_TMPDIR/big.bin"
	mkdir "$out"
	run /usr/bin/time -f 'rss %M' -o "$BATS_TEST_TMPDIR/send.rss" timeout 120 \
	    ntm -c "$(A)" send --timeout 60 "$carol" "$BATS_TEST_TMPDIR/big.bin"
	assert_success
	run /usr/bin/time -f 'rss %M' -o "$BATS_TEST_TMPDIR/fetch.rss" timeout 120 \
	    ntm -c "$(C)" fetch --timeout 60 -o "$out"
	assert_success
	cmp "$out/big.bin" "$BATS_TEST_TMPDIR/big.bin"
	rs=$(awk '/^rss/ { print $2 }' "$BATS_TEST_TMPDIR/send.rss")
	rf=$(awk '/^rss/ { print $2 }' "$BATS_TEST_TMPDIR/fetch.rss")
	echo "# peak RSS for 100 MiB: ntm send $rs kB, ntm fetch $rf kB" >&3
	# 32 MiB; the sanitizer build (scripts/check.sh) keeps freed memory in
	# quarantine and sets a higher bound.
	[ "$rs" -lt "${NTM_RSS_LIMIT_KB:-32768}" ]
	[ "$rf" -lt "${NTM_RSS_LIMIT_KB:-32768}" ]
	# On a terminal (script(1) gives it one) the upload shows its progress.
	head -c 3000000 /dev/urandom > "$BATS_TEST_TMPDIR/mid.bin"
	run timeout 60 script -qec "ntm -c '$(A)' send '$carol' '$BATS_TEST_TMPDIR/mid.bin'" /dev/null
	assert_success
	assert_output --partial 'ntm: send: upload 2.9 / 2.9 MiB (100%)'
	run_t ntm -c "$(C)" fetch -o "$out"
	assert_success
	rm -f "$BATS_TEST_TMPDIR/big.bin" "$out/big.bin"
}

@test "neither the marker nor the shared key is anywhere on a server" {
	local alice key hex
	alice=$(fqdn_of "$(A)")
	key=$(jq -r .key "$(B)/keys/$alice.key")
	hex=$(printf '%s' "$key" | basenc --base64url -d 2>/dev/null | od -An -tx1 | tr -d ' \n')
	[ ${#hex} -eq 64 ]
	# The platform dir holds every server's state dir, database and log.
	run grep -rlaF MARKER-7f3a9c "$(P)"
	assert_failure
	run grep -rlaF "$key" "$(P)"
	assert_failure
	run grep -rlaiF "$hex" "$(P)"
	assert_failure
	run python3 - "$(P)" "$hex" <<'EOF'
import os, sys
raw = bytes.fromhex(sys.argv[2])
for d, _, fs in os.walk(sys.argv[1]):
    for f in fs:
        p = os.path.join(d, f)
        try:
            if raw in open(p, "rb").read():
                print(p)
        except OSError:
            pass
EOF
	assert_output ''
	# ... while the clients hold it (the test would be void otherwise).
	grep -qaF MARKER-7f3a9c "$BATS_FILE_TMPDIR/file.bin"
}

@test "bad input: each CLI command names the bad value and exits with its code" {
	local bob
	bob=$(fqdn_of "$(B)")
	run ntm -c "$(A)" keys exchange not_an_fqdn
	assert_failure 2
	assert_output "ntm: keys: PEER 'not_an_fqdn': not a client FQDN (like bob.dc2.example)"
	run ntm -c "$(A)" keys frob
	assert_failure 2
	assert_output --partial "'frob'"
	run ntm -c "$(A)" keys show
	assert_failure 2
	run ntm -c "$(A)" keys show nobody.dc1.ntm.test
	assert_failure 13
	assert_output "ntm: keys: no key with nobody.dc1.ntm.test"
	run ntm -c "$(A)" keys rotate nobody.dc1.ntm.test
	assert_failure 13
	run ntm -c "$(A)" send nobody.dc2.ntm.test "$BATS_FILE_TMPDIR/file.bin"
	assert_failure 13
	assert_output --partial "no shared key with nobody.dc2.ntm.test"
	run ntm -c "$(A)" send "$bob" --app "$(head -c 65 /dev/zero | tr '\0' a)"
	assert_failure 2
	assert_output --partial "--app 'aaaa"
	run ntm -c "$(A)" send --status xyz
	assert_failure 2
	assert_output "ntm: send: --status 'xyz': expected an object ID (64 lowercase hex digits)"
	run ntm -c "$(A)" send --ttl 0 "$bob"
	assert_failure 2
	assert_output --partial "--ttl '0'"
	run ntm -c "$(A)" send "$(fqdn_of "$(A)")" "$BATS_FILE_TMPDIR/file.bin"
	assert_failure 2
	assert_output --partial "that is you"
	run ntm -c "$(B)" fetch -o /nonexistent/dir
	assert_failure 2
	assert_output "ntm: fetch: -o '/nonexistent/dir': not a directory"
	run ntm -c "$(B)" fetch --from 'bad..name'
	assert_failure 2
	assert_output --partial "--from 'bad..name'"
	run ntm -c "$(B)" fetch extra
	assert_failure 2
	# Not logged in: exit 7.
	run ntm -c "$BATS_TEST_TMPDIR/nobody" fetch
	assert_failure 7
	# A peer no DC knows: the DC says unknown_peer, exit 10.
	run ntm -c "$(A)" keys exchange ghost.dc2.ntm.test
	assert_failure 10
	assert_output --partial unknown_peer
}

# xreq METHOD PATH [BODY]: a client request at dc1 with alice's token.
xreq() {
	local m=$1 p=$2
	shift 2
	https "$m" "$(dc1_url)$p" -H "Authorization: Bearer $(token_of "$(A)")" "$@"
}
# csreq METHOD URL [BODY]: a request signed as the CS (cs1).
csreq() {
	"$SIGNREQ" --ca "$(P)/as/ca.crt" --key "$(P)/cs/identity.key" \
	    --cert "$(P)/cs/server.cert" "$@"
}
expect_error() {
	assert_equal "$(status_of)" "$1"
	assert_equal "$(jq -r .code <<<"$(body_of)")" "$2"
	[ -z "${3:-}" ] || assert_equal "$(jq -r .field <<<"$(body_of)")" "$3"
}

@test "bad input: each new endpoint answers a JSON error naming the field" {
	local alice bob tk kid sha exp
	alice=$(fqdn_of "$(A)")
	bob=$(fqdn_of "$(B)")
	tk=$(head -c 32 /dev/urandom | basenc --base64url | tr -d '=')
	kid=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
	sha=$(printf x | sha256sum | cut -c1-64)
	exp=$(( $(date +%s) + 3600 ))
	run xreq POST /v1/exchange/temporal -d "{\"version\":1,\"from\":\"$alice\",\"to\":\"$bob\",\"temporal_key\":\"$tk\"}"
	expect_error 400 missing_field key_id
	run xreq POST /v1/exchange/temporal -d "{\"version\":1,\"from\":\"$alice\",\"to\":\"$bob\",\"key_id\":\"$kid\",\"temporal_key\":\"short\"}"
	expect_error 400 bad_field temporal_key
	run xreq POST /v1/exchange/temporal -d "{\"version\":1,\"from\":\"$alice\",\"to\":\"$bob\",\"key_id\":\"XYZ\",\"temporal_key\":\"$tk\"}"
	expect_error 400 bad_field key_id
	run xreq POST /v1/exchange/temporal -d "{\"version\":1,\"from\":\"$bob\",\"to\":\"$alice\",\"key_id\":\"$kid\",\"temporal_key\":\"$tk\"}"
	expect_error 403 forbidden from
	run xreq POST /v1/exchange/temporal -d "{\"version\":2,\"from\":\"$alice\",\"to\":\"$bob\",\"key_id\":\"$kid\",\"temporal_key\":\"$tk\"}"
	expect_error 400 bad_version version
	run xreq POST /v1/exchange/temporal -d "{\"version\":1,\"from\":\"$alice\",\"to\":\"$alice\",\"key_id\":\"$kid\",\"temporal_key\":\"$tk\"}"
	expect_error 400 bad_field to
	# POST /v1/dc/announce: only a CS may call it, and it checks every field.
	local obj="\"version\":1,\"sha256\":\"$sha\",\"size\":1,\"expires\":$exp"
	local ann="$obj,\"from\":\"$alice\",\"cs\":\"https://cs1.localhost:1\""
	run csreq POST "$(dc2_url)/v1/dc/announce" "{$ann,\"to\":\"$bob\",\"kind\":\"nope\"}"
	expect_error 400 bad_field kind
	run csreq POST "$(dc2_url)/v1/dc/announce" "{$ann,\"to\":\"$alice\",\"kind\":\"data\"}"
	expect_error 400 bad_field to
	run csreq POST "$(dc2_url)/v1/dc/announce" "{$ann,\"to\":\"ghost.dc2.ntm.test\",\"kind\":\"data\"}"
	expect_error 404 unknown_peer
	run csreq POST "$(dc2_url)/v1/dc/announce" "{$obj,\"from\":\"$alice\",\"to\":\"$bob\",\"kind\":\"data\",\"cs\":\"http://x\"}"
	expect_error 400 bad_field cs
	run csreq POST "$(dc2_url)/v1/dc/announce" "{$obj,\"cs\":\"https://127.0.0.1:1\",\"to\":\"$bob\",\"kind\":\"data\",\"from\":\"nodomain\"}"
	expect_error 400 bad_field from
	run csreq POST "$(dc2_url)/v1/dc/announce" "{\"version\":1,\"from\":\"$alice\",\"sha256\":\"ABC\",\"size\":1,\"expires\":$exp,\"to\":\"$bob\",\"kind\":\"data\",\"cs\":\"https://127.0.0.1:1\"}"
	expect_error 400 bad_field sha256
	run csreq POST "$(dc2_url)/v1/dc/announce" "{\"version\":1,\"from\":\"$alice\",\"sha256\":\"$sha\",\"size\":1,\"expires\":1,\"to\":\"$bob\",\"kind\":\"data\",\"cs\":\"https://127.0.0.1:1\"}"
	expect_error 400 bad_field expires
	run csreq POST "$(dc2_url)/v1/dc/announce" "{$ann,\"to\":\"$bob\",\"kind\":\"data\",\"notify\":\"$(head -c 513 /dev/zero | tr '\0' n)\"}"
	expect_error 400 bad_field notify
	# A DC's certificate is not enough: announcements come from CSs.
	run "$SIGNREQ" --ca "$(P)/as/ca.crt" --key "$(P)/dc1/identity.key" \
	    --cert "$(P)/dc1/server.cert" POST "$(dc2_url)/v1/dc/announce" "{$ann,\"to\":\"$bob\",\"kind\":\"data\"}"
	expect_error 401 unauthorized
	# The old client path is gone.
	run xreq POST /v1/exchange/announce -d "{$ann,\"to\":[\"$bob\"],\"kind\":\"data\"}"
	assert_equal "$(status_of)" 404
	# GET /v1/exchange/key and its DC-to-DC half.
	run xreq GET '/v1/exchange/key'
	expect_error 400 missing_field fqdn
	run xreq GET '/v1/exchange/key?fqdn=nodot'
	expect_error 400 bad_field fqdn
	run xreq GET '/v1/exchange/key?fqdn=ghost.dc2.ntm.test'
	expect_error 404 unknown_peer
	run xreq GET "/v1/exchange/key?fqdn=$bob"
	assert_equal "$(status_of)" 200
	assert_equal "$(jq -r .exchange_key <<<"$(body_of)")" \
	    "$(python3 -c 'import sqlite3, sys
db = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
print(db.execute("SELECT xkey FROM clients WHERE fqdn = ?", (sys.argv[2],)).fetchone()[0])' \
	       "$(P)/dc2/dc.db" "$bob")"
	run https POST "$(dc2_url)/v1/dc/xkey" -d "{\"version\":1,\"to\":\"$bob\"}"
	expect_error 401 unauthorized
	# A login with a malformed exchange key is refused, naming it.
	run https POST "$(dc1_url)/v1/login" -d "{\"version\":1,\"user\":\"carol\",\"password\":\"carol-pw-1\",\"device\":\"old\",\"client_key\":\"$tk\",\"exchange_key\":\"short\"}"
	expect_error 400 bad_field exchange_key
	# A device that gave none at its login cannot be sent keys: the sender is told why.
	run https POST "$(dc1_url)/v1/login" -d "{\"version\":1,\"user\":\"carol\",\"password\":\"carol-pw-1\",\"device\":\"old\",\"client_key\":\"$tk\"}"
	assert_equal "$(status_of)" 200
	run ntm -c "$(A)" keys exchange "$(jq -r .fqdn <<<"$(body_of)")"
	assert_failure
	assert_output --partial no_exchange_key
	run xreq GET '/v1/exchange/cache?wait=99'
	expect_error 400 bad_field wait
	run xreq GET '/v1/exchange/cache?from=x'
	expect_error 400 bad_field from
	run xreq GET '/v1/exchange/temporal/key?id=zz'
	expect_error 400 bad_field id
	run xreq GET '/v1/exchange/temporal/key'
	expect_error 400 missing_field id
	run xreq GET "/v1/exchange/temporal/key?id=$kid"
	expect_error 404 unknown_key id
	run xreq DELETE '/v1/exchange/cache?id=0'
	expect_error 400 bad_field id
	run xreq DELETE '/v1/exchange/cache?id=999999'
	expect_error 404 unknown_entry id
	# No token, a DC-to-DC path without a signature.
	run https GET "$(dc1_url)/v1/exchange/cache"
	expect_error 401 unauthorized
	run https POST "$(dc1_url)/v1/dc/announce" -d '{}'
	expect_error 401 unauthorized
	run https POST "$(dc1_url)/v1/dc/temporal" -d '{}'
	expect_error 401 unauthorized
	# Not JSON; and the DC still serves.
	run xreq POST /v1/exchange/temporal -d 'nope'
	expect_error 400 bad_json
	run csreq POST "$(dc2_url)/v1/dc/announce" 'nope'
	expect_error 400 bad_json
	run xreq GET /v1/exchange/cs
	assert_equal "$(status_of)" 200
	assert_equal "$(jq -r .cs <<<"$(body_of)")" "$(platform_cs_url "$(P)")"
}

@test "a large object (opened by fetch's second thread) with a byte modified early or last: fetch fails clearly and writes nothing" {
	local bob id obj at out=$BATS_TEST_TMPDIR/out
	bob=$(fqdn_of "$(B)")
	head -c 12000000 /dev/urandom > "$BATS_TEST_TMPDIR/big.bin"
	mkdir "$out"
	for at in 1100000 -1; do
		run_t ntm -c "$(A)" send "$bob" "$BATS_TEST_TMPDIR/big.bin" --json
		assert_success
		id=$(jf "$output" id)
		obj="$(P)/cs/objects/${id:0:2}/$id"
		chmod u+w "$obj"
		python3 - "$obj" "$at" <<'EOF'
import sys
p, at = sys.argv[1], int(sys.argv[2])
b = bytearray(open(p, "rb").read())
b[at] ^= 0x01
open(p, "wb").write(bytes(b))
EOF
		run_t ntm -c "$(B)" fetch -o "$out"
		assert_failure 14
		assert_output --partial "object $id from $(fqdn_of "$(A)") failed verification"
		assert_output --partial "nothing was written"
		assert_equal "$(ls -A "$out")" ''
		entry=$(sed -n "s/.*entry \([0-9]*\) stays listed; drop it with 'ntm fetch --discard \1'.*/\1/p" <<<"$output")
		[ -n "$entry" ]
		run_t ntm -c "$(B)" fetch --discard "$entry"
		assert_success
	done
	# The same bytes unmodified arrive whole.
	run_t ntm -c "$(A)" send "$bob" "$BATS_TEST_TMPDIR/big.bin"
	assert_success
	run_t ntm -c "$(B)" fetch -o "$out"
	assert_success
	cmp "$out/big.bin" "$BATS_TEST_TMPDIR/big.bin"
	# And to standard output, copied from the file written with O_DIRECT.
	run_t ntm -c "$(A)" send "$bob" "$BATS_TEST_TMPDIR/big.bin"
	assert_success
	timeout 60 ntm -c "$(B)" fetch -o - > "$BATS_TEST_TMPDIR/stdout.bin"
	cmp "$BATS_TEST_TMPDIR/stdout.bin" "$BATS_TEST_TMPDIR/big.bin"
}

@test "a modified byte in the stored object: fetch fails clearly and writes nothing" {
	local bob id obj out=$BATS_TEST_TMPDIR/out
	bob=$(fqdn_of "$(B)")
	head -c 300000 /dev/urandom > "$BATS_TEST_TMPDIR/t.bin"
	run_t ntm -c "$(A)" send "$bob" "$BATS_TEST_TMPDIR/t.bin" --json
	assert_success
	id=$(jf "$output" id)
	obj="$(P)/cs/objects/${id:0:2}/$id"
	[ -f "$obj" ]
	chmod u+w "$obj"
	python3 - "$obj" <<'EOF'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) // 2] ^= 0x01
open(p, "wb").write(bytes(b))
EOF
	mkdir "$out"
	run_t ntm -c "$(B)" fetch -o "$out"
	assert_failure 14
	assert_output --partial "object $id from $(fqdn_of "$(A)") failed verification"
	assert_output --partial "nothing was written"
	assert_equal "$(ls -A "$out")" ''
	# Still listed (not confirmed): the sender sees it announced, not delivered.
	run_t ntm -c "$(A)" send --status "$id" --json
	assert_equal "$(jq -r '.to[0].status' <<<"$output")" announced
	run_t ntm -c "$(B)" fetch -o -
	assert_failure 14
	# It stays listed, and the message names it: bob can drop it.
	local entry
	entry=$(sed -n "s/.*entry \([0-9]*\) stays listed; drop it with 'ntm fetch --discard \1'.*/\1/p" <<<"$output")
	[ -n "$entry" ]
	run_t ntm -c "$(B)" fetch --discard "$entry"
	assert_success
	assert_output "discarded entry $entry"
	run_t ntm -c "$(B)" fetch -o "$out"
	assert_success
	assert_output 'nothing to fetch'
	run_t ntm -c "$(B)" fetch --discard "$entry"
	assert_failure
	assert_output --partial unknown_entry
	run ntm -c "$(B)" fetch --discard 0
	assert_failure 2
	assert_output "ntm: fetch: --discard '0': expected a cache entry ID (a positive number)"
}

@test "the AS pushes a lock to the CS: bob's token is refused there at once; a new login works" {
	local cs tok
	cs="https://127.0.0.1:$(platform_port "$(P)" cs)"
	tok=$(cs_tok "$(B)")
	run https GET "$cs/v1/cs/account" -H "Authorization: Bearer $tok"
	assert_equal "$(status_of)" 200
	# Something waits for bob at the CS.
	printf 'before the lock\n' > "$BATS_TEST_TMPDIR/lock.txt"
	run_t ntm -c "$(A)" send "$(fqdn_of "$(B)")" "$BATS_TEST_TMPDIR/lock.txt"
	assert_success
	run_t ntm-as -f "$(P)/as.conf" user lock bob
	assert_success
	assert_output "revocation of bob's tokens at 1 DC queued for the servers"
	cs_refuses() {
		run https GET "$cs/v1/cs/account" -H "Authorization: Bearer $tok"
		[ "$(status_of)" = 401 ] && [ "$(jq -r .code <<<"$(body_of)")" = token_revoked ]
	}
	wait_until 10 cs_refuses
	# The same push ended bob's session at his DC: his client is told so,
	# exit 7.
	wait_until 10 grep -q "the AS revoked bob's tokens" "$(P)/dc2.log"
	run_t ntm -c "$(B)" fetch -o "$BATS_TEST_TMPDIR"
	assert_failure 7
	assert_output --partial "no live session"
	# Unlocked, a later login gets a token the CS takes again.
	run_t ntm-as -f "$(P)/as.conf" user unlock bob
	sleep 1
	login "$(B)" bob bob-pw-1 "$(dc2_url)" >/dev/null
	run https GET "$cs/v1/cs/account" -H "Authorization: Bearer $(cs_tok "$(B)")"
	assert_equal "$(status_of)" 200
}

@test "a logout at the DC reaches the CS through the AS: the old token is refused there" {
	local cs tok d=$BATS_TEST_TMPDIR/carol2
	cs="https://127.0.0.1:$(platform_port "$(P)" cs)"
	login "$d" carol carol-pw-1 "$(dc1_url)" >/dev/null
	tok=$(cs_tok "$d")
	run https GET "$cs/v1/cs/account" -H "Authorization: Bearer $tok"
	assert_equal "$(status_of)" 200
	run_t ntm -c "$d" logout
	assert_success
	cs_refuses() {
		run https GET "$cs/v1/cs/account" -H "Authorization: Bearer $tok"
		[ "$(status_of)" = 401 ] && [ "$(jq -r .code <<<"$(body_of)")" = token_revoked ]
	}
	wait_until 10 cs_refuses
	# carol's other session (another profile, another token) still works
	run https GET "$cs/v1/cs/account" -H "Authorization: Bearer $(cs_tok "$(C)")"
	assert_equal "$(status_of)" 200
}

@test "the AS is down at a logout: the DC keeps the token and it reaches the CS later" {
	local cs tok d=$BATS_TEST_TMPDIR/carol3
	cs="https://127.0.0.1:$(platform_port "$(P)" cs)"
	login "$d" carol carol-pw-1 "$(dc1_url)" >/dev/null
	tok=$(cs_tok "$d")
	platform_stop_role "$(P)" as
	# The logout itself needs only the DC.
	run_t ntm -c "$d" logout
	assert_success
	cs_code() {
		https GET "$cs/v1/cs/account" -H "Authorization: Bearer $tok" | sed '$d' |
		    jq -r '.code // "ok"'
	}
	# The AS never heard of it yet, so the CS has nothing to refuse.
	sleep 3
	assert_equal "$(cs_code)" ok
	wait_until 10 eval '[ "$(exch_ended dc1 waiting)" -ge 1 ]'
	PLATFORM_ROLES=as platform_start "$(P)"
	wait_until 30 eval '[ "$(cs_code)" = token_revoked ]'
	wait_until 10 eval '[ "$(exch_ended dc1 waiting)" -eq 0 ]'
}

@test "a newer login of the same device ends the older token at the CS too" {
	local cs old d=$BATS_TEST_TMPDIR/carol4
	cs="https://127.0.0.1:$(platform_port "$(P)" cs)"
	login "$d" carol carol-pw-1 "$(dc1_url)" >/dev/null
	old=$(cs_tok "$d")
	login "$d" carol carol-pw-1 "$(dc1_url)" >/dev/null
	[ "$(cs_tok "$d")" != "$old" ]
	cs_code() {
		https GET "$cs/v1/cs/account" -H "Authorization: Bearer $1" | sed '$d' |
		    jq -r '.code // "ok"'
	}
	wait_until 10 eval '[ "$(cs_code "$old")" = token_revoked ]'
	assert_equal "$(cs_code "$(cs_tok "$d")")" ok
}

@test "a CS without a resolver stores but announces nothing, and the sender is told so" {
	local conf="$(P)/cs.conf" out
	cp "$conf" "$BATS_TEST_TMPDIR/cs.conf.orig"
	platform_stop_role "$(P)" cs
	sed -i '/^resolver = /d' "$conf"
	PLATFORM_ROLES=cs platform_start "$(P)"
	grep -q 'no resolver: objects are stored but not announced to DCs' "$(P)/cs.log"
	printf 'nobody will be told\n' > "$BATS_TEST_TMPDIR/quiet.txt"
	run_t ntm -c "$(A)" send "$(fqdn_of "$(C)")" "$BATS_TEST_TMPDIR/quiet.txt" --timeout 20
	assert_success
	assert_output --partial "announces nothing (it has no resolver): the recipients are not told"
	refute_output --partial "the CS keeps trying"
	out=$(ntm -c "$(A)" send --status "$(sed -n 's/^sent \([0-9a-f]*\) .*/\1/p' <<<"$output")" --json)
	assert_equal "$(jq -r '.announcing, .to[0].status' <<<"$out" | tr '\n' ' ')" "false pending "
	platform_stop_role "$(P)" cs
	cp "$BATS_TEST_TMPDIR/cs.conf.orig" "$conf"
	PLATFORM_ROLES=cs platform_start "$(P)"
}
