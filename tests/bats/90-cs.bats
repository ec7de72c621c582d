#!/usr/bin/env bats
# The Cache Server's object store (protocol.md §7): token authentication,
# AS-pushed revocations, chunked uploads committed with a SHA-256, streamed
# downloads, delivery status, quota, expiry, and crashes (kill -9) during and
# right after an upload. Clients are played by curl; tokens are minted with
# the AS key by signreq --mint, as the AS would issue them at login.
#
#   curl (alice, bob, ...) --HTTPS--> ntm-cs (state_dir/objects, cs.db)
#   signreq --as-self ----signed----> POST /v1/cs/revoke

load helpers

# Only the AS (for the CA and enrolment) and the CS run.
PLATFORM_ROLES="as cs"
CHUNK=4194304

setup_file() {
	platform_init "$(P)" >"$BATS_FILE_TMPDIR/init.log" 2>&1 || {
		cat "$BATS_FILE_TMPDIR/init.log" >&3; return 1; }
	# A fast collector, so expiry shows within seconds. Unfinished uploads
	# are kept long enough for the tests that pause between an upload's
	# chunks on a loaded machine; the collector's own tests make it 10 s
	# (cs_idle).
	printf 'gc_interval_s = 1\nupload_idle_s = 600\n' >> "$(P)/cs.conf"
	platform_start "$(P)"
}

teardown_file() { platform_down; }

cs_url() { echo "https://127.0.0.1:$(platform_port "$(P)" cs)"; }
cs_dir() { echo "$(P)/cs"; }

# tok USER [DC] [LIFETIME] [DATE-OFFSET]: a token signed by the AS key.
tok() {
	"$SIGNREQ" --key "$(P)/as/identity.key" --mint "$1:dev1:${2:-dc1.ntm.test}:cs:${5:-cs1.localhost}" \
	    --lifetime "${3:-3600}" --date-offset "${4:-0}"
}

# creq TOKEN METHOD PATH [curl args]: body, then the status on the last line.
creq() {
	local t=$1 m=$2 p=$3
	shift 3
	https "$m" "$(cs_url)$p" -H "Authorization: Bearer $t" "$@"
}

# expect_error STATUS CODE [FIELD]
expect_error() {
	assert_equal "$(status_of)" "$1"
	assert_equal "$(jq -r .code <<<"$(body_of)")" "$2"
	[ -n "$(jq -r .message <<<"$(body_of)")" ]
	[ -z "${3:-}" ] || assert_equal "$(jq -r .field <<<"$(body_of)")" "$3"
}

# create TOKEN FROM TO SIZE [EXTRA-JSON]: prints the upload id.
create() {
	local out
	out=$(creq "$1" POST /v1/cs/uploads -d "{\"version\":1,\"from\":\"$2\",\"to\":[\"$3\"],\"size\":$4${5:+,$5}}")
	[ "$(tail -n 1 <<<"$out")" = 201 ] || { echo "create: $out" >&2; return 1; }
	sed '$d' <<<"$out" | jq -r .upload
}

# put_from TOKEN ID FILE FIRST-CHUNK: PUTs the chunks of FILE from index FIRST.
put_from() {
	local t=$1 id=$2 f=$3 i=$4 size n out
	size=$(stat -c %s "$f")
	n=$(( (size + CHUNK - 1) / CHUNK ))
	for (( ; i < n; i++)); do
		out=$(dd if="$f" bs=$CHUNK skip=$i count=1 status=none |
		    creq "$t" PUT "/v1/cs/upload?id=$id&offset=$((i * CHUNK))" \
		    -H 'Content-Type: application/octet-stream' --data-binary @-)
		[ "$(tail -n 1 <<<"$out")" = 200 ] || { echo "put $i: $out" >&2; return 1; }
	done
}

# commit TOKEN ID SIZE SHA256: sets $output like run https.
commit() {
	run creq "$1" POST /v1/cs/upload/commit -d \
	    "{\"version\":1,\"upload\":\"$2\",\"size\":$3,\"sha256\":\"$4\"}"
}

# upload TOKEN FROM TO FILE [EXTRA-JSON]: the whole sequence; 201 expected.
upload() {
	local id size sha
	size=$(stat -c %s "$4")
	sha=$(sha256sum "$4" | cut -c1-64)
	id=$(create "$1" "$2" "$3" "$size" "${5:-}") || return 1
	put_from "$1" "$id" "$4" 0 || return 1
	commit "$1" "$id" "$size" "$sha"
	assert_equal "$(status_of)" 201
	assert_equal "$(jq -r .sha256 <<<"$(body_of)")" "$sha"
}

# download TOKEN SHA256 OUT: GET the object into OUT; prints the status.
download() {
	curl -s --max-time 120 --cacert "$(ca)" -H "Authorization: Bearer $1" \
	    -o "$3" -w '%{http_code}' "$(cs_url)/v1/cs/object?sha256=$2"
}

obj_file() { echo "$(cs_dir)/objects/${1:0:2}/$1"; }

# rows SQL: one value from the CS's database (read-only).
rows() {
	python3 -c 'import sqlite3, sys
db = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
print(db.execute(sys.argv[2]).fetchone()[0])' "$(cs_dir)/cs.db" "$1"
}

cs_start() {
	"$NTM_BIN/ntm-cs" -d -f "$(P)/cs.conf" >>"$(P)/cs.log" 2>&1 &
	echo $! > "$(P)/cs.pid"
	wait_health "$(cs_url)" "$(ca)"
}

# cs_idle SECONDS: the CS runs with upload_idle_s = SECONDS (restarted
# when it did not already).
cs_idle() {
	grep -qx "upload_idle_s = $1" "$(P)/cs.conf" && return 0
	sed -i "s/^upload_idle_s = .*/upload_idle_s = $1/" "$(P)/cs.conf"
	cs_kill9
	cs_start
}

# cs_kill9: SIGKILL the CS and wait until it is gone.
cs_kill9() {
	local pid i
	pid=$(cat "$(P)/cs.pid")
	kill -KILL "$pid"
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	return 1
}

rand_file() { head -c "$2" /dev/urandom > "$1"; }

@test "upload in chunks, commit, download: the SHA-256 matches; the recipient confirms, the owner sees it delivered" {
	local a b f sha id
	a=$(tok alice)
	b=$(tok bob dc2.ntm.test)
	f=$BATS_TEST_TMPDIR/obj
	rand_file "$f" 10000000
	sha=$(sha256sum "$f" | cut -c1-64)
	upload "$a" alice.dc1.ntm.test bob.dc2.ntm.test "$f" \
	    '"app":"chat","service":"files","item":"42","notify":"a file from alice","ttl":600'
	assert_file_exists "$(obj_file "$sha")"
	assert_equal "$(stat -c %s "$(obj_file "$sha")")" 10000000

	assert_equal "$(download "$a" "$sha" "$BATS_TEST_TMPDIR/a.out")" 200
	assert_equal "$(sha256sum < "$BATS_TEST_TMPDIR/a.out" | cut -c1-64)" "$sha"
	assert_equal "$(download "$b" "$sha" "$BATS_TEST_TMPDIR/b.out")" 200
	assert_equal "$(sha256sum < "$BATS_TEST_TMPDIR/b.out" | cut -c1-64)" "$sha"

	run creq "$a" GET "/v1/cs/object/meta?sha256=$sha"
	assert_equal "$(status_of)" 200
	assert_equal "$(jq -r '.size, .owner, .from, .app, .service, .item, .notify' <<<"$(body_of)" | tr '\n' ' ')" \
	    "10000000 alice alice.dc1.ntm.test chat files 42 a file from alice "
	assert_equal "$(jq -r '.to[0].fqdn, .to[0].status' <<<"$(body_of)" | tr '\n' ' ')" \
	    "bob.dc2.ntm.test pending "

	# Someone else: as if it did not exist. The owner cannot confirm.
	run creq "$(tok eve dc2.ntm.test)" GET "/v1/cs/object?sha256=$sha"
	expect_error 404 unknown_object sha256
	run creq "$a" POST /v1/cs/object/confirm -d "{\"version\":1,\"sha256\":\"$sha\"}"
	expect_error 403 not_recipient
	run creq "$b" POST /v1/cs/object/confirm -d "{\"version\":1,\"sha256\":\"$sha\"}"
	assert_equal "$(status_of)" 200
	run creq "$a" GET "/v1/cs/object/meta?sha256=$sha"
	assert_equal "$(jq -r '.to[0].status' <<<"$(body_of)")" delivered
	[ "$(jq -r '.to[0].delivered' <<<"$(body_of)")" -gt 0 ]

	# The same bytes again are already there.
	id=$(create "$a" alice.dc1.ntm.test bob.dc2.ntm.test 10000000)
	put_from "$a" "$id" "$f" 0
	commit "$a" "$id" 10000000 "$sha"
	expect_error 409 exists sha256
}

@test "missing, malformed, forged, expired and revoked tokens get 401; revocations survive a restart" {
	run https GET "$(cs_url)/v1/cs/account"
	expect_error 401 unauthorized
	run creq 'not-a-token' GET /v1/cs/account
	expect_error 401 unauthorized
	# Signed by a key other than the AS's (the CS's own).
	run "$SIGNREQ" --key "$(cs_dir)/identity.key" --mint alice:dev1:dc1.ntm.test
	run creq "$output" GET /v1/cs/account
	expect_error 401 unauthorized
	run creq "$(tok alice dc1.ntm.test 60 -7200)" GET /v1/cs/account
	expect_error 401 token_expired

	# Revoke one token by id, and every token of mallory issued so far.
	local t1 t2 m1 m2 id
	t1=$(tok trent)
	t2=$(tok trent)
	m1=$(tok mallory)
	run creq "$t1" GET /v1/cs/account
	assert_equal "$(status_of)" 200
	id=$(python3 -c 'import base64, sys
b = base64.urlsafe_b64decode(sys.argv[1] + "=" * (-len(sys.argv[1]) % 4))
p = 1
for _ in range(3): p += 1 + b[p]
p += 1
p += 1 + b[p]
print(base64.urlsafe_b64encode(b[p:p + 16]).decode().rstrip("="))' "$t1")
	# Only the AS may push: unsigned 401, signed by the CS itself 403.
	run https POST "$(cs_url)/v1/cs/revoke" -d '{"version":1}'
	expect_error 401 unauthorized
	run "$SIGNREQ" --ca "$(ca)" --key "$(cs_dir)/identity.key" --cert "$(cs_dir)/server.cert" \
	    POST "$(cs_url)/v1/cs/revoke" '{"version":1}'
	expect_error 403 forbidden
	run "$SIGNREQ" --ca "$(ca)" --key "$(P)/as/identity.key" --as-self as.ntm.test \
	    POST "$(cs_url)/v1/cs/revoke" '{"version":1,"tokens":[{"id":"short"}]}'
	expect_error 400 bad_field tokens
	run "$SIGNREQ" --ca "$(ca)" --key "$(P)/as/identity.key" --as-self as.ntm.test \
	    POST "$(cs_url)/v1/cs/revoke" \
	    "{\"version\":1,\"tokens\":[{\"id\":\"$id\",\"expires\":$(( $(date +%s) + 3600 ))}],\"accounts\":[{\"user\":\"mallory\",\"dc\":\"dc1.ntm.test\"}]}"
	assert_equal "$(status_of)" 200
	assert_equal "$(jq -c . <<<"$(body_of)")" '{"tokens":1,"accounts":1}'

	run creq "$t1" GET /v1/cs/account
	expect_error 401 token_revoked
	run creq "$t2" GET /v1/cs/account
	assert_equal "$(status_of)" 200
	run creq "$m1" GET /v1/cs/account
	expect_error 401 token_revoked
	# A login after the revocation gives a token that works.
	m2=$(tok mallory dc1.ntm.test 3600 2)
	run creq "$m2" GET /v1/cs/account
	assert_equal "$(status_of)" 200

	platform_stop_role "$(P)" cs
	cs_start
	run creq "$t1" GET /v1/cs/account
	expect_error 401 token_revoked
	run creq "$m1" GET /v1/cs/account
	expect_error 401 token_revoked
	run creq "$t2" GET /v1/cs/account
	assert_equal "$(status_of)" 200
}

@test "over the account's quota: 413 quota_exceeded naming the limit; deleting frees room" {
	local c f sha used id
	c=$(tok carol)
	run creq "$c" POST /v1/cs/uploads -d \
	    '{"version":1,"from":"carol.dc1.ntm.test","to":["dan.dc2.ntm.test"],"size":2147483648}'
	expect_error 413 quota_exceeded size
	body_of | jq -r .message | grep -q 'quota of 1073741824 bytes'
	f=$BATS_TEST_TMPDIR/obj
	rand_file "$f" 3000000
	sha=$(sha256sum "$f" | cut -c1-64)
	upload "$c" carol-2.dc1.ntm.test dan.dc2.ntm.test "$f"
	run creq "$c" GET /v1/cs/account
	assert_equal "$(jq -r .used <<<"$(body_of)")" 3000000
	# Declared sizes of open uploads count too.
	run creq "$c" POST /v1/cs/uploads -d \
	    "{\"version\":1,\"from\":\"carol.dc1.ntm.test\",\"to\":[\"dan.dc2.ntm.test\"],\"size\":$((1073741824 - 2999999))}"
	expect_error 413 quota_exceeded size
	run creq "$c" DELETE "/v1/cs/object?sha256=$sha"
	assert_equal "$(status_of)" 200
	assert_file_not_exists "$(obj_file "$sha")"
	id=$(create "$c" carol.dc1.ntm.test dan.dc2.ntm.test $((1073741824 - 2999999)))
	run creq "$c" GET /v1/cs/account
	assert_equal "$(jq -r .used <<<"$(body_of)")" $((1073741824 - 2999999))
	run creq "$c" DELETE "/v1/cs/upload?id=$id"
	assert_equal "$(status_of)" 200
}

@test "a commit whose SHA-256 does not match is refused with 409 and leaves nothing visible" {
	local a f sha wrong id
	a=$(tok alice)
	f=$BATS_TEST_TMPDIR/obj
	rand_file "$f" 5000000
	sha=$(sha256sum "$f" | cut -c1-64)
	wrong=$(printf x | sha256sum | cut -c1-64)
	id=$(create "$a" alice.dc1.ntm.test bob.dc2.ntm.test 5000000)
	put_from "$a" "$id" "$f" 0
	commit "$a" "$id" 5000000 "$wrong"
	expect_error 409 hash_mismatch sha256
	body_of | jq -r .message | grep -q "$sha"
	assert_file_not_exists "$(obj_file "$sha")"
	assert_file_not_exists "$(obj_file "$wrong")"
	assert_file_not_exists "$(cs_dir)/objects/tmp/$id"
	assert_equal "$(rows "SELECT COUNT(*) FROM objects WHERE sha256 IN ('$sha', '$wrong')")" 0
	run creq "$a" GET "/v1/cs/object?sha256=$sha"
	expect_error 404 unknown_object
	run creq "$a" GET "/v1/cs/upload?id=$id"
	expect_error 404 unknown_upload id
}

@test "malformed requests get 400 (or 409) naming the field, and the CS keeps serving" {
	local a f id
	a=$(tok alice)
	run creq "$a" POST /v1/cs/uploads -d '{"version":1,'
	expect_error 400 bad_json
	run creq "$a" POST /v1/cs/uploads -d '[1]'
	expect_error 400 not_object
	run creq "$a" POST /v1/cs/uploads -d '{"version":1,"from":"alice.dc1.ntm.test","to":["b.dc2.ntm.test"],"size":1,"colour":"red"}'
	expect_error 400 unknown_field colour
	run creq "$a" POST /v1/cs/uploads -d '{"version":1,"from":"alice.dc1.ntm.test","to":["b.dc2.ntm.test"]}'
	expect_error 400 missing_field size
	run creq "$a" POST /v1/cs/uploads -d '{"version":2,"from":"alice.dc1.ntm.test","to":["b.dc2.ntm.test"],"size":1}'
	expect_error 400 bad_version version
	run creq "$a" POST /v1/cs/uploads -d '{"version":1,"from":"alice.dc1.ntm.test","to":["B..x"],"size":1}'
	expect_error 400 bad_field to
	run creq "$a" POST /v1/cs/uploads -d '{"version":1,"from":"alice.dc1.ntm.test","to":[],"size":1}'
	expect_error 400 bad_field to
	run creq "$a" POST /v1/cs/uploads -d '{"version":1,"from":"alice.dc1.ntm.test","to":["b.dc2.ntm.test","b.dc2.ntm.test"],"size":1}'
	expect_error 400 bad_field to
	run creq "$a" POST /v1/cs/uploads -d '{"version":1,"from":"alice.dc1.ntm.test","to":["b.dc2.ntm.test"],"size":-1}'
	expect_error 400 bad_field size
	run creq "$a" POST /v1/cs/uploads -d '{"version":1,"from":"alice.dc1.ntm.test","to":["b.dc2.ntm.test"],"size":1,"ttl":0}'
	expect_error 400 bad_field ttl
	run creq "$a" POST /v1/cs/uploads -d '{"version":1,"from":"alice.dc1.ntm.test","to":["b.dc2.ntm.test"],"size":1,"kind":"mail"}'
	expect_error 400 bad_field kind
	run creq "$a" POST /v1/cs/uploads -d "{\"version\":1,\"from\":\"alice.dc1.ntm.test\",\"to\":[\"b.dc2.ntm.test\"],\"size\":1,\"notify\":\"$(head -c 513 /dev/zero | tr '\0' x)\"}"
	expect_error 400 bad_field notify
	run creq "$a" POST /v1/cs/uploads -d '{"version":1,"from":"bob.dc1.ntm.test","to":["b.dc2.ntm.test"],"size":1}'
	expect_error 403 forbidden from
	run creq "$a" GET "/v1/cs/object?sha256=../../etc/passwd"
	expect_error 400 bad_field sha256
	run creq "$a" GET "/v1/cs/object"
	expect_error 400 bad_field sha256
	run creq "$a" GET "/v1/cs/upload?id=nothex"
	expect_error 400 bad_field id

	f=$BATS_TEST_TMPDIR/obj
	rand_file "$f" 100
	id=$(create "$a" alice.dc1.ntm.test bob.dc2.ntm.test 100)
	run creq "$a" PUT "/v1/cs/upload?id=$id&offset=x" --data-binary @"$f"
	expect_error 400 bad_field offset
	run creq "$a" PUT "/v1/cs/upload?id=$id&offset=10" --data-binary @"$f"
	expect_error 409 bad_offset offset
	run creq "$a" PUT "/v1/cs/upload?id=$id&offset=0" --data-binary @"$f" --data-binary x
	expect_error 400 past_size offset
	run creq "$a" PUT "/v1/cs/upload?id=$id&offset=0" -H 'Content-Length: 0'
	expect_error 400 empty_chunk body
	head -c $((CHUNK + 1)) /dev/zero > "$BATS_TEST_TMPDIR/big"
	run creq "$a" PUT "/v1/cs/upload?id=$id&offset=0" --data-binary @"$BATS_TEST_TMPDIR/big"
	expect_error 413 body_too_large
	commit "$a" "$id" 100 "$(sha256sum "$f" | cut -c1-64)"
	expect_error 409 incomplete size
	commit "$a" "$id" 99 "$(sha256sum "$f" | cut -c1-64)"
	expect_error 409 size_mismatch size
	commit "$a" "$id" 100 NOTHEX
	expect_error 400 bad_field sha256
	run creq "$(tok bob dc2.ntm.test)" GET "/v1/cs/upload?id=$id"
	expect_error 404 unknown_upload id
	run creq "$a" POST /v1/cs/upload/commit -d "{\"version\":1,\"upload\":\"$id\",\"size\":100,\"sha256\":\"$(head -c 70000 /dev/zero | tr '\0' a)\"}"
	expect_error 413 body_too_large
	run creq "$a" PATCH /v1/cs/uploads -d '{}'
	expect_error 405 method_not_allowed

	# Still serving, and the upload still completes.
	run https GET "$(cs_url)/v1/health"
	assert_equal "$(status_of)" 200
	put_from "$a" "$id" "$f" 0
	commit "$a" "$id" 100 "$(sha256sum "$f" | cut -c1-64)"
	assert_equal "$(status_of)" 201
}

@test "kill -9 during an upload: nothing partial is visible; after the restart the upload resumes and succeeds" {
	local a f sha id size out off
	a=$(tok alice)
	f=$BATS_TEST_TMPDIR/obj
	size=$((5 * CHUNK + 12345))
	rand_file "$f" $size
	sha=$(sha256sum "$f" | cut -c1-64)
	id=$(create "$a" alice.dc1.ntm.test bob.dc2.ntm.test $size)
	# Two chunks in, the third on the wire (slowly) when the CS dies.
	dd if="$f" bs=$CHUNK count=2 status=none > "$BATS_TEST_TMPDIR/first"
	put_from "$a" "$id" "$BATS_TEST_TMPDIR/first" 0
	dd if="$f" bs=$CHUNK skip=2 count=1 status=none |
	    timeout 20 curl -s --cacert "$(ca)" --limit-rate 500k -X PUT \
	    -H "Authorization: Bearer $a" --data-binary @- \
	    "$(cs_url)/v1/cs/upload?id=$id&offset=$((2 * CHUNK))" >/dev/null 2>&1 &
	local cpid=$!
	sleep 1
	cs_kill9
	wait "$cpid" || true
	assert_file_not_exists "$(obj_file "$sha")"
	assert_equal "$(rows "SELECT COUNT(*) FROM objects WHERE sha256 = '$sha'")" 0

	cs_start
	run creq "$a" GET "/v1/cs/object?sha256=$sha"
	expect_error 404 unknown_object
	# The CS holds the acknowledged chunks and what it wrote of the third
	# (chunks are written as they come): resume from its offset.
	run creq "$a" GET "/v1/cs/upload?id=$id"
	assert_equal "$(status_of)" 200
	off=$(jq -r .offset <<<"$(body_of)")
	[ "$off" -ge $((2 * CHUNK)) ] && [ "$off" -lt $((3 * CHUNK)) ]
	assert_equal "$off" "$(stat -c %s "$(cs_dir)/objects/tmp/$id")"
	cmp -n "$off" "$f" "$(cs_dir)/objects/tmp/$id"
	commit "$a" "$id" $size "$sha"
	expect_error 409 incomplete size
	if [ "$off" -gt $((2 * CHUNK)) ]; then
		out=$(tail -c +$((off + 1)) "$f" | head -c $((3 * CHUNK - off)) |
		    creq "$a" PUT "/v1/cs/upload?id=$id&offset=$off" --data-binary @-)
		assert_equal "$(tail -n 1 <<<"$out")" 200
		put_from "$a" "$id" "$f" 3
	else
		put_from "$a" "$id" "$f" 2
	fi
	commit "$a" "$id" $size "$sha"
	assert_equal "$(status_of)" 201
	assert_equal "$(download "$a" "$sha" "$BATS_TEST_TMPDIR/out")" 200
	assert_equal "$(sha256sum < "$BATS_TEST_TMPDIR/out" | cut -c1-64)" "$sha"
	assert_file_not_exists "$(cs_dir)/objects/tmp/$id"
}

@test "kill -9 right after an acknowledged upload loses nothing" {
	local a f sha
	a=$(tok alice)
	f=$BATS_TEST_TMPDIR/obj
	rand_file "$f" 3333333
	sha=$(sha256sum "$f" | cut -c1-64)
	upload "$a" alice.dc1.ntm.test bob.dc2.ntm.test "$f"
	cs_kill9
	cs_start
	assert_equal "$(download "$(tok bob dc2.ntm.test)" "$sha" "$BATS_TEST_TMPDIR/out")" 200
	assert_equal "$(sha256sum < "$BATS_TEST_TMPDIR/out" | cut -c1-64)" "$sha"
	run creq "$a" GET "/v1/cs/object/meta?sha256=$sha"
	assert_equal "$(jq -r '.size, .to[0].fqdn' <<<"$(body_of)" | tr '\n' ' ')" "3333333 bob.dc2.ntm.test "
}

@test "the collector deletes expired objects (file and row) and abandoned uploads" {
	local a f sha id i
	cs_idle 10
	a=$(tok alice)
	f=$BATS_TEST_TMPDIR/obj
	rand_file "$f" 1000
	sha=$(sha256sum "$f" | cut -c1-64)
	upload "$a" alice.dc1.ntm.test bob.dc2.ntm.test "$f" '"ttl":1'
	id=$(create "$a" alice.dc1.ntm.test bob.dc2.ntm.test 2000)
	put_from "$a" "$id" "$f" 0
	assert_file_exists "$(cs_dir)/objects/tmp/$id"
	# ttl 1 s, gc_interval_s 1, upload_idle_s 10.
	for ((i = 0; i < 100; i++)); do
		[ -e "$(obj_file "$sha")" ] || [ -e "$(cs_dir)/objects/tmp/$id" ] || break
		sleep 0.2
	done
	assert_file_not_exists "$(obj_file "$sha")"
	assert_equal "$(rows "SELECT COUNT(*) FROM objects WHERE sha256 = '$sha'")" 0
	assert_equal "$(rows "SELECT COUNT(*) FROM dests WHERE sha256 = '$sha'")" 0
	assert_file_not_exists "$(cs_dir)/objects/tmp/$id"
	assert_equal "$(rows "SELECT COUNT(*) FROM uploads WHERE id = '$id'")" 0
	run creq "$a" GET "/v1/cs/upload?id=$id"
	expect_error 404 unknown_upload
	grep -q "gc: object $sha expired" "$(P)/cs.log"
}

@test "chunks keep their upload from the collector past upload_idle_s, though its row is touched at most every upload_idle_s / 8" {
	local a id i t0
	cs_idle 10
	a=$(tok alice)
	id=$(create "$a" alice.dc1.ntm.test bob.dc2.ntm.test 30)
	t0=$(rows "SELECT touched FROM uploads WHERE id = '$id'")
	# upload_idle_s 10: a byte every 3 s for 15 s; the collector (every
	# second) would take an upload untouched since its creation at 10 s.
	for ((i = 0; i < 5; i++)); do
		sleep 3
		run creq "$a" PUT "/v1/cs/upload?id=$id&offset=$i" \
		    -H 'Content-Type: application/octet-stream' --data-binary x
		assert_line 200
	done
	[ "$(rows "SELECT touched FROM uploads WHERE id = '$id'")" -ge $((t0 + 12)) ]
	run creq "$a" GET "/v1/cs/upload?id=$id"
	assert_line 200
	assert_equal "$(jq -r .offset <<<"${lines[0]}")" 5
	run creq "$a" DELETE "/v1/cs/upload?id=$id"
}

@test "a 200 MiB object goes up and down with the CS's peak RSS under 64 MiB" {
	local a f sha hwm
	a=$(tok alice)
	f=$BATS_TEST_TMPDIR/big
	rand_file "$f" $((200 * 1024 * 1024))
	sha=$(sha256sum "$f" | cut -c1-64)
	upload "$a" alice.dc1.ntm.test bob.dc2.ntm.test "$f"
	assert_equal "$(download "$(tok bob dc2.ntm.test)" "$sha" "$BATS_TEST_TMPDIR/out")" 200
	assert_equal "$(sha256sum < "$BATS_TEST_TMPDIR/out" | cut -c1-64)" "$sha"
	rm -f "$f" "$BATS_TEST_TMPDIR/out"
	hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$(cat "$(P)/cs.pid")/status")
	echo "# ntm-cs peak RSS after a 200 MiB round trip: $hwm kB" >&3
	[ "$hwm" -lt $((64 * 1024)) ]
}

@test "announcement settings: a bad public_url or a wildcard listen without one is refused, naming it" {
	local c=$BATS_TEST_TMPDIR/cs.conf
	grep -v '^listen\|^public_url' "$(P)/cs.conf" > "$c"
	printf 'listen = 0.0.0.0:1\n' >> "$c"
	run ntm-cs -n -f "$c"
	assert_failure 2
	assert_output "ntm-cs: $c: listen '0.0.0.0:1' names no single address: set public_url, the https URL clients reach this CS at"
	printf 'public_url = http://cs1.ntm.test\n' >> "$c"
	run ntm-cs -n -f "$c"
	assert_failure 2
	assert_output "ntm-cs: $c: public_url 'http://cs1.ntm.test' is not an https://HOST[:PORT] URL"
	sed -i 's|^public_url = .*|public_url = https://cs1.ntm.test:7443|' "$c"
	run ntm-cs -n -f "$c"
	assert_success
	sed -i 's|^resolver = .*|resolver = nowhere|' "$c"
	run ntm-cs -n -f "$c"
	assert_failure 2
	assert_output --partial "resolver 'nowhere' is not ip:port"
}

@test "upgrade: an object stored before the CS announced (schema 1) counts as announced" {
	local a f sha
	a=$(tok alice)
	f=$BATS_TEST_TMPDIR/obj
	rand_file "$f" 1000
	sha=$(sha256sum "$f" | cut -c1-64)
	upload "$a" alice.dc1.ntm.test bob.dc2.ntm.test "$f"
	cs_kill9
	# Back to schema 1, as an older ntm-cs left it (its sender announced it).
	python3 - "$(cs_dir)/cs.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("DROP INDEX dests_due")
for c in ("announced", "failed", "attempts", "next_try", "error_code", "error_message"):
    db.execute("ALTER TABLE dests DROP COLUMN " + c)
db.execute("ALTER TABLE objects DROP COLUMN kind")
db.execute("ALTER TABLE uploads DROP COLUMN kind")
db.execute("PRAGMA user_version = 1")
db.commit()
PY
	assert_equal "$(rows 'PRAGMA user_version')" 1
	cs_start
	assert_equal "$(rows 'PRAGMA user_version')" 2
	run creq "$a" GET "/v1/cs/object/meta?sha256=$sha"
	assert_equal "$(status_of)" 200
	assert_equal "$(jq -r '.kind, .to[0].status' <<<"$(body_of)" | tr '\n' ' ')" "data announced "
	assert_equal "$(jq -r '.to[0].announced == .created' <<<"$(body_of)")" true
	assert_equal "$(rows "SELECT count(*) FROM dests WHERE sha256 = '$sha' AND announced IS NULL")" 0
}

@test "the last chunk can carry the SHA-256: the CS commits with it (201), and refuses it elsewhere" {
	local a f sha id size half
	a=$(tok alice)
	f=$BATS_TEST_TMPDIR/obj
	rand_file "$f" 5000000
	size=5000000
	sha=$(sha256sum "$f" | cut -c1-64)
	id=$(create "$a" alice.dc1.ntm.test bob.dc2.ntm.test "$size")
	# Not on a chunk that does not end the upload; not malformed.
	run creq "$a" PUT "/v1/cs/upload?id=$id&offset=0&sha256=$sha" \
	    -H 'Content-Type: application/octet-stream' --data-binary @<(head -c $CHUNK "$f")
	expect_error 400 bad_field sha256
	run creq "$a" PUT "/v1/cs/upload?id=$id&offset=0&sha256=XYZ" \
	    -H 'Content-Type: application/octet-stream' --data-binary @<(head -c $CHUNK "$f")
	expect_error 400 bad_field sha256
	# Start over: the last chunk with a wrong hash is refused, nothing visible.
	id=$(create "$a" alice.dc1.ntm.test bob.dc2.ntm.test "$size")
	run creq "$a" PUT "/v1/cs/upload?id=$id&offset=0" \
	    -H 'Content-Type: application/octet-stream' --data-binary @<(head -c $CHUNK "$f")
	assert_equal "$(status_of)" 200
	half=$(printf '%064d' 0)
	run creq "$a" PUT "/v1/cs/upload?id=$id&offset=$CHUNK&sha256=$half" \
	    -H 'Content-Type: application/octet-stream' --data-binary @<(tail -c +$((CHUNK + 1)) "$f")
	expect_error 409 hash_mismatch sha256
	assert_file_not_exists "$(obj_file "$half")"
	# The right one: 201 with the commit's answer; the object is there.
	id=$(create "$a" alice.dc1.ntm.test bob.dc2.ntm.test "$size")
	run creq "$a" PUT "/v1/cs/upload?id=$id&offset=0" \
	    -H 'Content-Type: application/octet-stream' --data-binary @<(head -c $CHUNK "$f")
	assert_equal "$(status_of)" 200
	run creq "$a" PUT "/v1/cs/upload?id=$id&offset=$CHUNK&sha256=$sha" \
	    -H 'Content-Type: application/octet-stream' --data-binary @<(tail -c +$((CHUNK + 1)) "$f")
	assert_equal "$(status_of)" 201
	assert_equal "$(jq -r .sha256 <<<"$(body_of)")" "$sha"
	assert_equal "$(jq -r .size <<<"$(body_of)")" "$size"
	assert_equal "$(download "$a" "$sha" "$BATS_TEST_TMPDIR/a.out")" 200
	cmp "$BATS_TEST_TMPDIR/a.out" "$f"
	# The upload is gone once committed.
	run creq "$a" GET "/v1/cs/upload?id=$id"
	expect_error 404 unknown_upload id
}
