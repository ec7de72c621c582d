#!/usr/bin/env bats
# A send killed part way, and the same file sent again (issue 13, "a resent
# object reuses its abandoned upload instead of starting another";
# docs/protocol.md §7.6): the second send goes on with the upload the first
# left at the CS, from the CS's offset, so the CS ends with one object and
# no upload left over, and bob gets the bytes whole.
#
#   alice@dc1 --sealed data, chunks--> cs1 --announce--> dc2 --cache list--> bob@dc2
#        \-- STATE_DIR/send/NAME.json: the upload and how to seal the same bytes
#
# The send is stopped mid-upload by freezing the CS (SIGSTOP) once it holds
# some of the upload, killing the sender (SIGKILL) and thawing the CS.

load helpers

SIZE=$((48 * 1024 * 1024))

setup_file() {
	platform_init "$(P)" >"$BATS_FILE_TMPDIR/init.log" 2>&1 || {
		cat "$BATS_FILE_TMPDIR/init.log" >&3; return 1; }
	local cs="cs_url = $(platform_cs_url "$(P)")"
	echo "$cs" >> "$(P)/dc1.conf"
	echo "$cs" >> "$(P)/dc2.conf"
	echo "$cs" >> "$(P)/as.conf"
	# An announcement that failed is tried again within a second.
	echo "announce_retry_max_s = 1" >> "$(P)/cs.conf"
	platform_start "$(P)"
	platform_resolver_start "$(P)"
	add_user alice 'alice-pw-1'
	add_user bob 'bob-pw-1'
	login "$(A)" alice alice-pw-1 "$(dc1_url)" >/dev/null
	login "$(B)" bob bob-pw-1 "$(dc2_url)" >/dev/null
	timeout 30 ntm -c "$(A)" keys exchange "$(fqdn_of "$(B)")" >/dev/null
}

teardown_file() {
	local f
	# A CS or DC left frozen by a failed test still stops.
	for f in "$(P)/cs.pid" "$(P)/dc2.pid"; do
		[ -f "$f" ] && kill -CONT "$(cat "$f")" 2>/dev/null
	done
	for f in "$BATS_FILE_TMPDIR"/*.sendpid; do
		[ -f "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null
	done
	platform_down
}

A() { echo "$BATS_FILE_TMPDIR/alice"; }
B() { echo "$BATS_FILE_TMPDIR/bob"; }
fqdn_of() { jq -r .fqdn "$1/session.json"; }
tmpdir() { echo "$(P)/cs/objects/tmp"; }
# cs_tok PROFILE: the profile's token for cs1.
cs_tok() { cs_token "$1" "$(sed -n 's/^name = //p' "$(P)/cs.conf")"; }

# rows SQL: one value from the CS's database (read-only).
rows() {
	python3 -c 'import sqlite3, sys
db = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
print(db.execute(sys.argv[2]).fetchone()[0])' "$(P)/cs/cs.db" "$1"
}

# held: the bytes of the largest upload file at the CS (none: empty).
held() {
	find "$(tmpdir)" -maxdepth 1 -type f -printf '%s\n' | sort -n | tail -n 1
}

# settled: the upload file stops growing (the CS wrote what it took).
settled() {
	local a b
	a=$(held)
	sleep 0.3
	b=$(held)
	[ "$a" = "$b" ]
}

# send_killed FILE [WHEN]: start a send of FILE to bob, and once the CS holds
# some of it (WHEN: a shell test, run every 10 ms, at most 30 s) freeze the
# CS, kill -9 the sender and thaw the CS. Fails if the send ended first.
send_killed() {
	local f=$1 when=${2:-'[ "$(held)" -gt 0 ] 2>/dev/null'} cs i spid
	cs=$(cat "$(P)/cs.pid")
	ntm -c "$(A)" -v send --no-progress "$(fqdn_of "$(B)")" "$f" \
	    >"$BATS_TEST_TMPDIR/first.out" 2>"$BATS_TEST_TMPDIR/first.err" &
	spid=$!
	echo "$spid" > "$BATS_FILE_TMPDIR/first.sendpid"
	for ((i = 0; i < 3000; i++)); do
		eval "$when" && break
		kill -0 "$spid" 2>/dev/null || break
		sleep 0.01
	done
	kill -STOP "$cs"
	kill -KILL "$spid" 2>/dev/null || { kill -CONT "$cs"; echo "the send ended first" >&2
		cat "$BATS_TEST_TMPDIR/first.err" >&2; return 1; }
	wait "$spid" 2>/dev/null || true
	rm -f "$BATS_FILE_TMPDIR/first.sendpid"
	kill -CONT "$cs"
	wait_until 10 settled
}

# resend FILE: the same send again, to the end; its log in second.err.
resend() {
	timeout 120 ntm -c "$(A)" -vv send --no-progress --json "$(fqdn_of "$(B)")" "$1" \
	    >"$BATS_TEST_TMPDIR/second.out" 2>"$BATS_TEST_TMPDIR/second.err" || {
		cat "$BATS_TEST_TMPDIR/second.err" >&2; return 1; }
}

# fetched_whole FILE: bob fetches; what he wrote is FILE byte for byte.
fetched_whole() {
	local out=$BATS_TEST_TMPDIR/fetched
	mkdir -p "$out"
	run_t ntm -c "$(B)" fetch --timeout 30 -o "$out"
	assert_success
	cmp "$out/$(basename "$1")" "$1"
}

@test "a send killed mid-upload, sent again: the same upload goes on from the CS's offset; one object, no upload left" {
	local f=$BATS_TEST_TMPDIR/big.bin objs id at size bob_tok
	head -c $SIZE /dev/urandom > "$f"
	objs=$(rows 'SELECT COUNT(*) FROM objects')
	send_killed "$f"
	# The CS holds part of one upload; alice's state dir says which.
	assert_equal "$(rows 'SELECT COUNT(*) FROM uploads')" 1
	id=$(rows 'SELECT id FROM uploads')
	size=$(rows 'SELECT size FROM uploads')
	at=$(held)
	[ "$at" -gt 0 ] && [ "$at" -lt "$size" ]
	run jq -r .upload "$(A)"/send/*.json
	assert_output "$id"
	# Nobody else can attach to it: to bob's token it does not exist.
	bob_tok=$(cs_tok "$(B)")
	run https GET "$(platform_cs_url "$(P)")/v1/cs/upload?id=$id" \
	    -H "Authorization: Bearer $bob_tok"
	assert_equal "$(status_of)" 404
	assert_equal "$(jq -r .code <<<"$(body_of)")" unknown_upload

	resend "$f"
	grep -q "upload $id: going on at $at, where an earlier send left it" \
	    "$BATS_TEST_TMPDIR/second.err"
	# Only the bytes the CS did not hold went up again.
	run grep -m1 -o "PUT [^ ]*/v1/cs/upload?id=[^ ]*" "$BATS_TEST_TMPDIR/second.err"
	assert_output --partial "?id=$id&offset=$at"
	# One upload made in all; one object more, no upload left over.
	assert_equal "$(grep -cE "upload [0-9a-f]{32}: $size bytes from" "$(P)/cs.log")" 1
	assert_equal "$(rows 'SELECT COUNT(*) FROM uploads')" 0
	assert_equal "$(rows 'SELECT COUNT(*) FROM objects')" $((objs + 1))
	assert_equal "$(rows "SELECT COUNT(*) FROM objects WHERE size = $size")" 1
	# The account's quota counts the object once, and no open upload.
	run https GET "$(platform_cs_url "$(P)")/v1/cs/account" \
	    -H "Authorization: Bearer $(cs_tok "$(A)")"
	assert_equal "$(status_of)" 200
	assert_equal "$(jq -r .uploads <<<"$(body_of)")" 0
	assert_equal "$(jq -r .used <<<"$(body_of)")" \
	    "$(rows "SELECT SUM(size) FROM objects WHERE user = 'alice'")"
	assert_equal "$(ls -A "$(tmpdir)")" ""
	assert_equal "$(ls -A "$(A)/send")" ""
	assert_equal "$(jq -r '.to[0].status' "$BATS_TEST_TMPDIR/second.out")" announced
	fetched_whole "$f"
}

@test "the file changed after the killed send: its upload is given up, a new one carries the new bytes" {
	local f=$BATS_TEST_TMPDIR/changed.bin objs id
	head -c $SIZE /dev/urandom > "$f"
	objs=$(rows 'SELECT COUNT(*) FROM objects')
	send_killed "$f"
	assert_equal "$(rows 'SELECT COUNT(*) FROM uploads')" 1
	id=$(rows 'SELECT id FROM uploads')
	head -c 1000 /dev/urandom >> "$f"
	resend "$f"
	run grep -c "going on at" "$BATS_TEST_TMPDIR/second.err"
	assert_output 0
	grep -q "upload $id: given up" "$BATS_TEST_TMPDIR/second.err"
	assert_equal "$(rows 'SELECT COUNT(*) FROM uploads')" 0
	assert_equal "$(rows 'SELECT COUNT(*) FROM objects')" $((objs + 1))
	assert_equal "$(ls -A "$(tmpdir)")" ""
	fetched_whole "$f"
}

@test "a send killed while it waits for the announcement, sent again: the object stored is reported, not stored twice" {
	local f=$BATS_TEST_TMPDIR/stored.bin objs dc2 sha
	head -c $((SIZE / 4)) /dev/urandom > "$f"
	objs=$(rows 'SELECT COUNT(*) FROM objects')
	# bob's DC frozen: the CS's announcement hangs, and the sender with it.
	dc2=$(cat "$(P)/dc2.pid")
	kill -STOP "$dc2"
	send_killed "$f" 'grep -q "GET .*/v1/cs/object/meta?sha256=.*&wait=" "$BATS_TEST_TMPDIR/first.err"'
	kill -CONT "$dc2"
	assert_equal "$(rows 'SELECT COUNT(*) FROM objects')" $((objs + 1))
	sha=$(rows 'SELECT sha256 FROM objects ORDER BY created DESC, rowid DESC LIMIT 1')
	resend "$f"
	grep -q "object $sha: an earlier send of this file stored it" "$BATS_TEST_TMPDIR/second.err"
	assert_equal "$(jq -r .id "$BATS_TEST_TMPDIR/second.out")" "$sha"
	assert_equal "$(jq -r '.to[0].status' "$BATS_TEST_TMPDIR/second.out")" announced
	run grep -c "POST .*/v1/cs/uploads" "$BATS_TEST_TMPDIR/second.err"
	assert_output 0
	assert_equal "$(rows 'SELECT COUNT(*) FROM objects')" $((objs + 1))
	assert_equal "$(rows 'SELECT COUNT(*) FROM uploads')" 0
	assert_equal "$(ls -A "$(A)/send")" ""
	fetched_whole "$f"
}

@test "the account's unfinished uploads at the limit (8): the resend goes through, taking no second place" {
	local f=$BATS_TEST_TMPDIR/slots.bin t ids=() i out objs
	head -c $SIZE /dev/urandom > "$f"
	t=$(cs_tok "$(A)")
	objs=$(rows 'SELECT COUNT(*) FROM objects')
	# Seven uploads of alice's left open by hand, the eighth by a killed send.
	for ((i = 0; i < 7; i++)); do
		out=$(https POST "$(platform_cs_url "$(P)")/v1/cs/uploads" -H "Authorization: Bearer $t" \
		    -d "{\"version\":1,\"from\":\"$(fqdn_of "$(A)")\",\"to\":[\"$(fqdn_of "$(B)")\"],\"size\":10}")
		assert_equal "$(tail -n 1 <<<"$out")" 201
		ids+=("$(sed '$d' <<<"$out" | jq -r .upload)")
	done
	send_killed "$f"
	assert_equal "$(rows 'SELECT COUNT(*) FROM uploads')" 8
	resend "$f"
	grep -q "going on at" "$BATS_TEST_TMPDIR/second.err"
	assert_equal "$(rows 'SELECT COUNT(*) FROM uploads')" 7
	assert_equal "$(rows 'SELECT COUNT(*) FROM objects')" $((objs + 1))
	fetched_whole "$f"
	for i in "${ids[@]}"; do
		run https DELETE "$(platform_cs_url "$(P)")/v1/cs/upload?id=$i" -H "Authorization: Bearer $t"
		assert_equal "$(status_of)" 200
	done
}
