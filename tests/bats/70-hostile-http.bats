#!/usr/bin/env bats
# The HTTPS servers under attack (issue 13): slow and oversized clients are
# closed within their deadlines, a Content-Length over the route's limit is
# answered 413 before the body is sent, one source cannot take more than its
# share of connections, memory stays bounded, and real requests are served
# all along. The hostile clients are tests/tools/hostile-http.py, from
# loopback source addresses 127.0.0.10-29 and 127.0.0.60.

load helpers

HOSTILE=$TOP/tests/tools/hostile-http.py
sreq() {	# sreq ROLE METHOD URL BODY: a request signed as ROLE
	local role=$1
	shift
	"$SIGNREQ" --ca "$(ca)" --key "$(P)/$role/identity.key" --cert "$(P)/$role/server.cert" "$@"
}
# Deadlines for this platform (ntm.conf(5)): short, so the test is quick;
# the test waits far longer (BOUND) before it calls a connection open.
HEAD_S=3
BODY_S=3
BOUND=25
# RSS bound per daemon while 500 hostile connections are open (see
# ntm.conf(5), http_max_conns: a few tens of KiB per connection).
RSS_MAX_KB=$((96 * 1024))

setup_file() {
	platform_init "$(P)" >"$BATS_FILE_TMPDIR/init.log" 2>&1 || {
		cat "$BATS_FILE_TMPDIR/init.log" >&3; return 1; }
	local r
	for r in as dc1 rs cs; do
		printf 'http_header_timeout_s = %s\nhttp_body_timeout_s = %s\n' \
		    "$HEAD_S" "$BODY_S" >> "$(P)/$r.conf"
	done
	# The CS takes 3 signed requests per certificate, then one a minute.
	printf 'signed_rate = 1\nsigned_burst = 3\n' >> "$(P)/cs.conf"
	# dc2: room for one 60000-byte body at a time, held up to 20 s, and
	# for 8 connections.
	printf 'http_header_timeout_s = %s\nhttp_body_timeout_s = 20\nhttp_body_mem_max = 100000\nhttp_max_conns = 8\n' \
	    "$HEAD_S" >> "$(P)/dc2.conf"
	platform_start "$(P)"
	add_user alice 'alice-pw-1'
}
teardown_file() { platform_down; }

port_of() { platform_port "$(P)" "$1"; }

# hostile MODE ROLE N [PATH [LENGTH]]: run the tool against ROLE in the
# background, its output in $BATS_TEST_TMPDIR/ROLE.MODE.out.
hostile() {
	local mode=$1 role=$2 n=$3 out=$BATS_TEST_TMPDIR/$2.$1.out
	shift 3
	: > "$out"	# before the glob of wait_ready sees the directory
	timeout $((BOUND + 60)) python3 "$HOSTILE" "$mode" "$(port_of "$role")" "$(ca)" \
	    "$n" 127.0.0.10-29 "$BOUND" "$@" >"$out" 2>&1 </dev/null &
	echo $! >> "$BATS_TEST_TMPDIR/pids"
}

# wait_ready FILE: until the tool says every connection is open (bounded).
wait_ready() {
	local i
	for ((i = 0; i < 600; i++)); do
		grep -q '^ready' "$1" && return 0
		sleep 0.1
	done
	fail "no 'ready' from $1: $(tail -n 3 "$1")"
}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$(cat "$(P)/$1.pid")/status"; }

@test "a Content-Length over the route's limit gets 413 body_too_large before the body is sent" {
	local role path
	# 200000 bytes: over the routes' 64 KiB, but under what evhttp would
	# otherwise read before any route ran (4 times the server's limit).
	for role in as dc1 rs cs; do
		case $role in
		as) path=/v1/as/login ;; dc1) path=/v1/login ;;
		rs) path=/v1/health ;; cs) path=/v1/cs/uploads ;;
		esac
		run timeout 60 python3 "$HOSTILE" bigbody "$(port_of $role)" "$(ca)" 1 \
		    127.0.0.10-10 20 "$path" 200000
		assert_success
		assert_line "conn 0 status 413 body_too_large"
		run timeout 60 python3 "$HOSTILE" bigbody "$(port_of $role)" "$(ca)" 1 \
		    127.0.0.10-10 20 "$path" 100000000
		assert_line "conn 0 status 413 body_too_large"
	done
	# Body bytes that look like the head of a route with a larger limit
	# (the CS's chunks, 4 MiB) do not lift the limit of this one.
	run timeout 60 python3 "$HOSTILE" bigtail "$(port_of cs)" "$(ca)" 1 \
	    127.0.0.10-10 20 /v1/cs/uploads 3000000
	assert_line "conn 0 status 413 body_too_large"
	# The JSON error names both sizes.
	run https POST "$(dc1_url)/v1/login" -H 'Content-Length: 200000' -H 'Expect:' \
	    --data-binary '{}' --max-time 10
	[[ $(body_of) == *'"message":"request body of 200000 bytes is over the limit of 65536"'* ]] ||
		fail "413 message: $output"
	# A body without Content-Length (chunked) is not read: 411.
	run https POST "$(dc1_url)/v1/login" -H 'Transfer-Encoding: chunked' -H 'Expect:' \
	    --data-binary '{"version":1}'
	expect_411=$(status_of)
	assert_equal "$expect_411" 411
	assert_equal "$(jq -r .code <<<"$(body_of)")" length_required
	# Nor one whose Content-Length the server cannot read as strictly
	# as evhttp does (padded past what it keeps of a line).
	run timeout 60 python3 "$HOSTILE" padlen "$(port_of dc1)" "$(ca)" 1 \
	    127.0.0.10-10 20 /v1/login 20
	assert_line "conn 0 status 411 length_required"
}

@test "requests pipelined in one write are all answered (TLS read ahead leaves none unread)" {
	# The servers read ahead: one read may take several TLS records, and
	# records left in OpenSSL's buffer must be taken without the socket
	# waking the loop again.
	local role
	for role in as dc1 rs cs; do
		run timeout 60 python3 "$HOSTILE" pipeline "$(port_of $role)" "$(ca)" 1 \
		    127.0.0.10-10 20 /v1/health 5
		assert_line "conn 0 answers 5"
	done
}

@test "a large upload is read only once its token checks out: none, or a forged one, gets 401 before the body" {
	local tok forged u="/v1/cs/upload?id=00112233445566778899aabbccddeeff&offset=0"
	login "$BATS_TEST_TMPDIR/a" alice alice-pw-1 "$(dc1_url)" >/dev/null
	tok=$(cs_token "$BATS_TEST_TMPDIR/a" "$(sed -n 's/^name = //p' "$(P)/cs.conf")")
	[ -n "$tok" ]
	forged=$(python3 -c 'import sys; t = sys.argv[1]; i = len(t) - 10
print(t[:i] + ("B" if t[i] == "A" else "A") + t[i + 1:])' "$tok")
	# 3 MB: within the chunk limit (4 MiB), so only the token can refuse it;
	# the head is sent and the body never is.
	run timeout 60 python3 "$HOSTILE" bigput "$(port_of cs)" "$(ca)" 1 127.0.0.10-10 20 "$u" 3000000
	assert_line "conn 0 status 401 unauthorized"
	BEARER=$forged run timeout 60 python3 "$HOSTILE" bigput "$(port_of cs)" "$(ca)" 1 \
	    127.0.0.10-10 20 "$u" 3000000
	assert_line "conn 0 status 401 unauthorized"
	# A good token: the body is read, and the CS answers about the upload.
	BEARER=$tok run timeout 60 python3 "$HOSTILE" bigsend "$(port_of cs)" "$(ca)" 1 \
	    127.0.0.10-10 20 "$u" 3000000
	assert_line --regexp '^conn 0 status 404 '
	# A small body is not held back: its token is checked as usual.
	run https PUT "$(platform_cs_url "$(P)")$u" --data-binary 'x' \
	    -H 'Content-Type: application/octet-stream'
	assert_equal "$(status_of)" 401
}

@test "bodies over the limit are not buffered: 20 connections sending 12 MiB each leave the CS's memory bounded" {
	local before peak
	before=$(awk '/^VmRSS:/ { print $2 }' "/proc/$(cat "$(P)/cs.pid")/status")
	run timeout 120 python3 "$HOSTILE" bigsend "$(port_of cs)" "$(ca)" 20 \
	    127.0.0.10-29 60 /v1/cs/upload $((12 * 1024 * 1024))
	assert_success
	assert_line done
	# Answered 413 on the Content-Length (or cut off while sending).
	[ "$(grep -c ' status 413 body_too_large\| closed ' <<<"$output")" -eq 20 ] ||
		fail "$output"
	peak=$(awk '/^VmHWM:/ { print $2 }' "/proc/$(cat "$(P)/cs.pid")/status")
	echo "# cs RSS ${before} kB before, peak ${peak} kB after 20 x 12 MiB" >&3
	[ "$peak" -lt $((before + 32 * 1024)) ] ||
		fail "cs peak RSS ${peak} kB, ${before} kB before"
}

@test "500 slow connections against each server are closed within their deadlines; memory bounded and given back; real requests served meanwhile" {
	local role f rss line i back
	local -A before
	for role in as dc1 rs cs; do before[$role]=$(rss_kb "$role"); done
	: > "$BATS_TEST_TMPDIR/pids"
	for role in as dc1 rs cs; do
		hostile silent "$role" 150
		hostile slowhead "$role" 200
		hostile slowbody "$role" 150 /v1/health
	done
	for f in "$BATS_TEST_TMPDIR"/*.out; do wait_ready "$f"; done
	# Served meanwhile: a login (DC and AS), a status (DC), health (RS, CS).
	run login "$BATS_TEST_TMPDIR/a" alice alice-pw-1 "$(dc1_url)" --json
	assert_success
	run_t ntm -c "$BATS_TEST_TMPDIR/a" status --json
	assert_success
	assert_equal "$(jf "$output" dc_status)" live
	for role in rs cs; do
		run https GET "https://127.0.0.1:$(port_of $role)/v1/health"
		assert_equal "$(status_of)" 200
	done
	for role in as dc1 rs cs; do
		rss=$(rss_kb "$role")
		echo "# $role RSS ${rss} kB with hostile connections open" >&3
		[ "$rss" -lt "$RSS_MAX_KB" ] || fail "$role RSS ${rss} kB over ${RSS_MAX_KB} kB"
	done
	while read -r pid; do wait "$pid" || true; done < "$BATS_TEST_TMPDIR/pids"
	for f in "$BATS_TEST_TMPDIR"/*.out; do
		grep -q '^done' "$f" || fail "$f did not finish: $(tail -n 3 "$f")"
		if grep -v '^ready\|^done\|^conn [0-9]* closed ' "$f" | grep -q .; then
			fail "$(basename "$f"): not closed within ${BOUND} s: $(grep -v '^ready\|^done\|closed' "$f" | head -n 3)"
		fi
		line=$(awk '$3 == "closed" && $4 > m { m = $4 } END { print m + 0 }' "$f")
		echo "# $(basename "$f" .out): $(grep -c ' closed ' "$f") closed, the last after ${line} s" >&3
	done
	# The memory the flood took is given back (within 8 MiB of before;
	# the servers look every 10 s): poll, bounded.
	for ((i = 0; i < 40; i++)); do
		back=1
		for role in as dc1 rs cs; do
			[ "$(rss_kb "$role")" -le $((before[$role] + 8 * 1024)) ] || back=0
		done
		[ "$back" = 1 ] && break
		sleep 1
	done
	for role in as dc1 rs cs; do
		echo "# $role RSS ${before[$role]} kB before, $(rss_kb "$role") kB after" >&3
	done
	[ "$back" = 1 ] || fail "memory not given back after the flood"
}

@test "one source holds at most http_max_conns_per_addr connections; others are still served" {
	local out=$BATS_TEST_TMPDIR/keep.out n200 nclosed
	# 80 keep-alive connections from one address against the default 64.
	coproc KEEP { timeout $((BOUND + 60)) python3 "$HOSTILE" keepalive "$(port_of dc1)" \
	    "$(ca)" 80 127.0.0.60-60 "$BOUND" /v1/health; }
	local i
	for ((i = 0; i < 600; i++)); do
		read -r -t 1 line <&"${KEEP[0]}" || continue
		echo "$line" >> "$out"
		[ "$line" = answered ] && break
	done
	run https GET "$(dc1_url)/v1/health"
	assert_equal "$(status_of)" 200
	eval "exec ${KEEP[1]}>&-"
	wait "$KEEP_PID" || true
	n200=$(grep -c ' status 200 ' "$out" || true)
	nclosed=$(grep -c ' closed ' "$out" || true)
	assert_equal "$n200" 64
	assert_equal "$nclosed" 16
}

@test "a flood of closed connections is summed up in the log per kind and source, at the default level" {
	local log=$(P)/dc1.log i n
	# Only 8 sources of a kind have summaries of their own at once, the
	# rest are "many sources": the 10 s windows of the floods above
	# (127.0.0.10-29) end first.
	sleep 11
	run timeout $((BOUND + 60)) python3 "$HOSTILE" slowhead "$(port_of dc1)" "$(ca)" 40 \
	    127.0.0.70-70 "$BOUND"
	assert_success
	assert_line done
	[ "$(grep -c ' closed ' <<<"$output")" -eq 40 ]
	# The summary comes when the source's 10 s window has ended (the
	# daemon looks every 10 s): poll, bounded.
	for ((i = 0; i < 400; i++)); do
		grep -q 'times from 127\.0\.0\.70 in the last 10 s' "$log" && break
		sleep 0.1
	done
	run grep '127\.0\.0\.70' "$log"
	assert_line --regexp '^ntm-dc: warning: httpd: closed: handshake and head not done within http_header_timeout_s: 40 times from 127\.0\.0\.70 in the last 10 s \(3 written\)$'
	# Not a line per connection: at most the first three, then the summary.
	n=$(grep -c '127\.0\.0\.70' "$log")
	[ "$n" -le 4 ] || fail "$n log lines name 127.0.0.70: $(grep '127\.0\.0\.70' "$log" | head -n 5)"
}

@test "bodies held at once are bounded by http_body_mem_max: past it 503 busy at once, and the room comes back" {
	# dc2 holds at most 100000 bytes of bodies: of four requests declaring
	# 60000 bytes (and sending none), one is let in and waits for its body,
	# the other three are answered 503 busy on their Content-Length.
	run timeout 120 python3 "$HOSTILE" bigbody "$(port_of dc2)" "$(ca)" 4 \
	    127.0.0.80-83 60 /v1/login 60000
	assert_success
	assert_line done
	[ "$(grep -c ' status 503 busy$' <<<"$output")" -eq 3 ] || fail "$output"
	[ "$(grep -c ' status 0 $' <<<"$output")" -eq 1 ] || fail "$output"
	# The tool has gone: its room is given back, a login passes.
	run login "$BATS_TEST_TMPDIR/b" alice alice-pw-1 "$(dc2_url)"
	assert_success
}

@test "at http_max_conns a newcomer from a source holding as few as the others is refused at once; once connections close, new ones are served" {
	local out=$BATS_TEST_TMPDIR/keep.out n200 line i
	# dc2 takes 8 connections: 12 keep-alive ones from 12 addresses, the
	# first 8 answered and held; the other 4 are refused (every source
	# holds one: none gives up its place).
	coproc KEEP { timeout $((BOUND + 60)) python3 "$HOSTILE" keepalive "$(port_of dc2)" \
	    "$(ca)" 12 127.0.0.90-101 "$BOUND" /v1/health; }
	for ((i = 0; i < 600; i++)); do
		read -r -t 1 line <&"${KEEP[0]}" || continue
		echo "$line" >> "$out"
		[ "$line" = answered ] && break
	done
	n200=$(grep -c ' status 200 ' "$out" || true)
	assert_equal "$n200" 8
	assert_equal "$(grep -c ' closed ' "$out" || true)" 4
	# Once they are gone the server accepts again.
	eval "exec ${KEEP[1]}>&-"
	wait "$KEEP_PID" || true
	for ((i = 0; i < 100; i++)); do
		run https GET "$(dc2_url)/v1/health"
		[ "$(status_of)" = 200 ] && break
		sleep 0.1
	done
	assert_equal "$(status_of)" 200
}

@test "at http_max_conns one source holding them all gives up its oldest to a newcomer from another source" {
	local out=$BATS_TEST_TMPDIR/keep.out line i
	# 8 keep-alive connections from one address take all of dc2's places.
	coproc KEEP { timeout $((BOUND + 60)) python3 "$HOSTILE" keepalive "$(port_of dc2)" \
	    "$(ca)" 8 127.0.0.90-90 "$BOUND" /v1/health; }
	for ((i = 0; i < 600; i++)); do
		read -r -t 1 line <&"${KEEP[0]}" || continue
		echo "$line" >> "$out"
		[ "$line" = answered ] && break
	done
	assert_equal "$(grep -c ' status 200 ' "$out" || true)" 8
	# Another address is served at once: one of the eight made room.
	run https GET "$(dc2_url)/v1/health"
	assert_equal "$(status_of)" 200
	grep -q 'one of a source holding 8 closed for one from 127.0.0.1' "$(P)/dc2.log"
	eval "exec ${KEEP[1]}>&-"
	wait "$KEEP_PID" || true
}

@test "signed requests are rate-limited per certificate: one server over its rate does not hold up another" {
	local u="https://127.0.0.1:$(port_of cs)/v1/cs/revoke" i code n429=0 t0 passed
	# Signed by dc1 (not a role the route takes): refused after the
	# signature and replay checks (401), or over dc1's rate (429).
	t0=$SECONDS
	for ((i = 0; i < 20; i++)); do
		run sreq dc1 POST "$u" '{"version":1}'
		code=$(jq -r .code <<<"$(body_of)")
		[ "$code" = rate_limited ] && n429=$((n429 + 1))
	done
	# A burst of 3, then one a second: however long the 20 took.
	passed=$((20 - n429))
	[ "$passed" -le $((3 + SECONDS - t0 + 1)) ] ||
		fail "dc1: $passed of 20 passed in $((SECONDS - t0)) s"
	[ "$n429" -ge 1 ] || fail "dc1: none of 20 refused as rate_limited"
	# dc2's requests are dc2's: not limited by dc1's flood.
	run sreq dc2 POST "$u" '{"version":1}'
	[ "$(jq -r .code <<<"$(body_of)")" != rate_limited ] || fail "dc2 limited: $output"
}
