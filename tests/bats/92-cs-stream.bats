#!/usr/bin/env bats
# Chunks streamed to disk (issue 13, "authentication from the headers before
# a large body is read (CS chunks streamed to disk, not buffered); memory
# bounded per connection"; docs/protocol.md §7.2): the CS never holds a
# chunk whole, so 20 clients each sending a 4 MiB chunk slowly keep its RSS
# low, and every object arrives whole; a client that dies within a chunk
# leaves the upload at what the CS wrote, and the upload resumes from there;
# a chunk refused from its head (offset, upload) is refused before its body;
# a disk that fills within a chunk (a tmpfs too small) gets the chunk a 500
# and leaves the upload resumable, its running hash true to the file.
#
#   curl x 20 (u1..u20, --limit-rate) --HTTPS PUT, slow--> ntm-cs --pieces--> worker --> objects/tmp/ID
#   the test ----------------- VmRSS of /proc/PID/status, sampled --^

load helpers

# Only the AS (for the CA and enrolment) and the CS run.
PLATFORM_ROLES="as cs"
CHUNK=4194304
CLIENTS=20
# ntm-cs's resident memory while the 20 chunks come in: it starts near
# 15 MiB and holds at most about 2 x 512 KiB per chunk being received
# (ntm-cs(8)): 28 MiB at the peak measured (21 MiB with 256 KiB pieces). Holding each chunk whole, as
# before, took it to 98 MiB.
RSS_MAX_KB=$((48 * 1024))

setup_file() {
	platform_init "$(P)" >"$BATS_FILE_TMPDIR/init.log" 2>&1 || {
		cat "$BATS_FILE_TMPDIR/init.log" >&3; return 1; }
	platform_start "$(P)"
}

teardown_file() {
	local f
	for f in "$BATS_FILE_TMPDIR"/*.curlpid; do
		[ -f "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null
	done
	platform_down
	! mountpoint -q "$(P)/cs" || umount "$(P)/cs"
}

cs_url() { echo "https://127.0.0.1:$(platform_port "$(P)" cs)"; }
cs_pid() { cat "$(P)/cs.pid"; }

# tok USER [DC]: a token for cs1 signed by the AS key, as the AS issues them.
tok() {
	"$SIGNREQ" --key "$(P)/as/identity.key" --mint "$1:dev1:${2:-dc1.ntm.test}:cs:cs1.localhost" \
	    --lifetime 3600
}

# create TOKEN USER SIZE: prints the id of a new upload of SIZE bytes.
create() {
	local out
	out=$(https POST "$(cs_url)/v1/cs/uploads" -H "Authorization: Bearer $1" \
	    -d "{\"version\":1,\"from\":\"$2.dc1.ntm.test\",\"to\":[\"bob.dc2.ntm.test\"],\"size\":$3}")
	[ "$(tail -n 1 <<<"$out")" = 201 ] || { echo "create: $out" >&2; return 1; }
	sed '$d' <<<"$out" | jq -r .upload
}

# put_slow TOKEN ID OFFSET SHA256 FILE OUT RATE: PUTs FILE at OFFSET at RATE
# bytes/s with the commit's SHA-256, in the background; the answer and its
# status go to OUT, the pid to OUT.curlpid's place in BATS_FILE_TMPDIR.
put_slow() {
	curl -s --max-time 120 --cacert "$(ca)" -X PUT --limit-rate "$7" \
	    -H "Authorization: Bearer $1" -H 'Content-Type: application/octet-stream' \
	    --data-binary @"$5" -w '\n%{http_code}' -o - \
	    "$(cs_url)/v1/cs/upload?id=$2&offset=$3${4:+&sha256=$4}" > "$6" 2>&1 &
	echo $! > "$BATS_FILE_TMPDIR/$(basename "$6").curlpid"
}

# fetch TOKEN SHA256 OUT: GETs the object; prints the status.
fetch() {
	curl -s --max-time 120 --cacert "$(ca)" -H "Authorization: Bearer $1" \
	    -o "$3" -w '%{http_code}' "$(cs_url)/v1/cs/object?sha256=$2"
}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$(cs_pid)/status"; }

@test "20 slow uploads of a 4 MiB chunk each: the CS's RSS stays under the bound and every object arrives whole" {
	local i t id sha live peak=0 rss d=$BATS_TEST_TMPDIR
	for ((i = 1; i <= CLIENTS; i++)); do
		head -c $CHUNK /dev/urandom > "$d/f$i"
		sha256sum "$d/f$i" | cut -c1-64 > "$d/sha$i"
		tok "u$i" > "$d/tok$i"
		create "$(cat "$d/tok$i")" "u$i" $CHUNK > "$d/id$i"
	done
	echo "# ntm-cs RSS before: $(rss_kb) kB" >&3
	# 4 MiB at 512 KiB/s: about 8 s each, all at once.
	for ((i = 1; i <= CLIENTS; i++)); do
		put_slow "$(cat "$d/tok$i")" "$(cat "$d/id$i")" 0 "$(cat "$d/sha$i")" "$d/f$i" \
		    "$d/out$i" 512k
	done
	# Sample the CS's RSS until every client is done (at most 90 s).
	for ((t = 0; t < 900; t++)); do
		rss=$(rss_kb)
		[ "$rss" -gt "$peak" ] && peak=$rss
		live=0
		for ((i = 1; i <= CLIENTS; i++)); do
			kill -0 "$(cat "$BATS_FILE_TMPDIR/out$i.curlpid")" 2>/dev/null && live=$((live + 1))
		done
		[ $live -eq 0 ] && break
		sleep 0.1
	done
	echo "# ntm-cs peak RSS during $CLIENTS slow 4 MiB chunks: $peak kB (bound $RSS_MAX_KB kB)" >&3
	[ $live -eq 0 ]
	# Each chunk ended its upload: the CS committed it (201) ...
	for ((i = 1; i <= CLIENTS; i++)); do
		assert_equal "$(tail -n 1 "$d/out$i")" 201
		assert_equal "$(sed '$d' "$d/out$i" | jq -r .sha256)" "$(cat "$d/sha$i")"
	done
	# ... and what comes back is what was sent.
	for ((i = 1; i <= CLIENTS; i++)); do
		assert_equal "$(fetch "$(tok bob dc2.ntm.test)" "$(cat "$d/sha$i")" "$d/back")" 200
		assert_equal "$(sha256sum < "$d/back" | cut -c1-64)" "$(cat "$d/sha$i")"
	done
	[ "$peak" -lt "$RSS_MAX_KB" ]
}

@test "a client gone within a chunk leaves the upload at what the CS wrote; it resumes from that offset and the object is whole" {
	local a id f sha off size i out d=$BATS_TEST_TMPDIR
	a=$(tok alice)
	f=$d/obj
	size=$((CHUNK + 1000))
	head -c $size /dev/urandom > "$f"
	sha=$(sha256sum "$f" | cut -c1-64)
	id=$(create "$a" alice $size)
	head -c $CHUNK "$f" > "$d/first"
	put_slow "$a" "$id" 0 "" "$d/first" "$d/cut" 256k
	# Killed once the CS holds some of the chunk (at most 30 s).
	for ((i = 0; i < 300; i++)); do
		[ "$(stat -c %s "$(P)/cs/objects/tmp/$id")" -gt 0 ] && break
		sleep 0.1
	done
	kill -KILL "$(cat "$BATS_FILE_TMPDIR/cut.curlpid")"
	# The CS answers with the bytes it holds; they are the file's first
	# bytes, short of the chunk.
	for ((i = 0; i < 50; i++)); do
		run https GET "$(cs_url)/v1/cs/upload?id=$id" -H "Authorization: Bearer $a"
		off=$(jq -r .offset <<<"$(body_of)")
		[ "$off" = "$(stat -c %s "$(P)/cs/objects/tmp/$id")" ] && break
		sleep 0.1
	done
	assert_equal "$(status_of)" 200
	[ "$off" -gt 0 ] && [ "$off" -lt $CHUNK ]
	cmp -n "$off" "$f" "$(P)/cs/objects/tmp/$id"
	# Nothing is visible before the commit.
	run https GET "$(cs_url)/v1/cs/object?sha256=$sha" -H "Authorization: Bearer $a"
	assert_equal "$(status_of)" 404
	# The rest from the CS's offset, with the hash: committed whole. The
	# CS may not have seen the old connection end yet (503 busy): again.
	tail -c +$((off + 1)) "$f" > "$d/rest"
	for ((i = 0; i < 50; i++)); do
		put_slow "$a" "$id" "$off" "$sha" "$d/rest" "$d/resume" 100m
		wait "$(cat "$BATS_FILE_TMPDIR/resume.curlpid")" || true
		[ "$(tail -n 1 "$d/resume")" = 503 ] || break
		sleep 0.1
	done
	out=$(cat "$d/resume")
	assert_equal "$(tail -n 1 <<<"$out")" 201
	assert_equal "$(fetch "$(tok bob dc2.ntm.test)" "$sha" "$d/back")" 200
	assert_equal "$(sha256sum < "$d/back" | cut -c1-64)" "$sha"
}

@test "a chunk refused from its head is answered before its body: 409 bad_offset, 404 for another account's upload; the client sends no byte of it" {
	local a m id d=$BATS_TEST_TMPDIR out
	a=$(tok alice)
	m=$(tok mallory)
	id=$(create "$a" alice $CHUNK)
	head -c $CHUNK /dev/urandom > "$d/f"
	# curl asks first (Expect: 100-continue) and sends the body only when
	# told to: a refusal from the head comes instead, and nothing is sent.
	out=$(curl -s --max-time 60 --cacert "$(ca)" -X PUT -H 'Expect: 100-continue' \
	    -H "Authorization: Bearer $a" --data-binary @"$d/f" \
	    -w '\n%{http_code} %{size_upload}' "$(cs_url)/v1/cs/upload?id=$id&offset=5")
	assert_equal "$(tail -n 1 <<<"$out")" "409 0"
	assert_equal "$(sed '$d' <<<"$out" | jq -r .code)" bad_offset
	out=$(curl -s --max-time 60 --cacert "$(ca)" -X PUT -H 'Expect: 100-continue' \
	    -H "Authorization: Bearer $m" --data-binary @"$d/f" \
	    -w '\n%{http_code} %{size_upload}' "$(cs_url)/v1/cs/upload?id=$id&offset=0")
	assert_equal "$(tail -n 1 <<<"$out")" "404 0"
	assert_equal "$(sed '$d' <<<"$out" | jq -r .code)" unknown_upload
	assert_equal "$(stat -c %s "$(P)/cs/objects/tmp/$id")" 0
	# Told to, it sends the whole chunk, and the CS takes it.
	out=$(curl -s --max-time 60 --cacert "$(ca)" -X PUT -H 'Expect: 100-continue' \
	    -H "Authorization: Bearer $a" --data-binary @"$d/f" \
	    -w '\n%{http_code} %{size_upload}' "$(cs_url)/v1/cs/upload?id=$id&offset=0")
	assert_equal "$(tail -n 1 <<<"$out")" "200 $CHUNK"
	assert_equal "$(sed '$d' <<<"$out" | jq -r .offset)" $CHUNK
	cmp "$d/f" "$(P)/cs/objects/tmp/$id"
}

@test "chunks on one kept-alive connection, with a status request between them: each streamed in turn, the last one commits" {
	local a id f sha size out d=$BATS_TEST_TMPDIR
	a=$(tok alice)
	f=$d/obj
	size=$((2 * CHUNK + 4321))
	head -c $size /dev/urandom > "$f"
	sha=$(sha256sum "$f" | cut -c1-64)
	id=$(create "$a" alice $size)
	head -c $CHUNK "$f" > "$d/c0"
	tail -c +$((CHUNK + 1)) "$f" | head -c $CHUNK > "$d/c1"
	tail -c +$((2 * CHUNK + 1)) "$f" > "$d/c2"
	# One curl, one connection: PUT, GET, PUT, PUT with the hash.
	out=$(curl -s --max-time 60 --cacert "$(ca)" -w '\n%{http_code} %{num_connects}\n' \
	    -H "Authorization: Bearer $a" -X PUT --data-binary @"$d/c0" \
	    "$(cs_url)/v1/cs/upload?id=$id&offset=0" \
	    --next -s --cacert "$(ca)" -w '\n%{http_code} %{num_connects}\n' \
	    -H "Authorization: Bearer $a" "$(cs_url)/v1/cs/upload?id=$id" \
	    --next -s --cacert "$(ca)" -w '\n%{http_code} %{num_connects}\n' \
	    -H "Authorization: Bearer $a" -X PUT --data-binary @"$d/c1" \
	    "$(cs_url)/v1/cs/upload?id=$id&offset=$CHUNK" \
	    --next -s --cacert "$(ca)" -w '\n%{http_code} %{num_connects}\n' \
	    -H "Authorization: Bearer $a" -X PUT --data-binary @"$d/c2" \
	    "$(cs_url)/v1/cs/upload?id=$id&offset=$((2 * CHUNK))&sha256=$sha")
	# Status, and whether curl opened a connection for it: only the first.
	assert_equal "$(grep -E '^[0-9]{3} [0-9]+$' <<<"$out" | tr '\n' ' ')" "200 1 200 0 200 0 201 0 "
	assert_equal "$(grep -F '"upload"' <<<"$out" | jq -r .offset | tr '\n' ' ')" \
	    "$CHUNK $CHUNK $((2 * CHUNK)) "
	assert_equal "$(fetch "$(tok bob dc2.ntm.test)" "$sha" "$d/back")" 200
	assert_equal "$(sha256sum < "$d/back" | cut -c1-64)" "$sha"
}

@test "a chunk whose head comes in two pieces, its length in the first, is refused (400), not read into memory" {
	local a id
	a=$(tok alice)
	id=$(create "$a" alice $CHUNK)
	# Two TLS records, the second after the CS has read the first.
	run timeout 30 python3 -c '
import socket, ssl, sys, time
port, ca, tok, uid = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=ca)
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="127.0.0.1")
s.sendall(("PUT /v1/cs/upload?id=%s&offset=0 HTTP/1.1\r\nHost: cs\r\n"
    "Authorization: Bearer %s\r\nContent-Length: 4194304\r\n" % (uid, tok)).encode())
time.sleep(1)
s.sendall(b"Content-Type: application/octet-stream\r\n\r\n")
print(s.recv(4096).decode(errors="replace").split("\r\n")[0])
' "$(platform_port "$(P)" cs)" "$(ca)" "$a" "$id"
	assert_success
	assert_output "HTTP/1.1 400 Bad Request"
	assert_equal "$(stat -c %s "$(P)/cs/objects/tmp/$id")" 0
}

# put_range TOKEN ID FILE OFFSET LEN [SHA256]: PUTs LEN bytes of FILE from
# OFFSET as one chunk; prints the answer, then its status (000: no answer).
put_range() {
	tail -c +$(($4 + 1)) "$3" | head -c "$5" > "$BATS_TEST_TMPDIR/range"
	curl -s --max-time 60 --cacert "$(ca)" -X PUT -H "Authorization: Bearer $1" \
	    -H 'Content-Type: application/octet-stream' --data-binary @"$BATS_TEST_TMPDIR/range" \
	    -w '\n%{http_code}\n' "$(cs_url)/v1/cs/upload?id=$2&offset=$4${6:+&sha256=$6}"
}

# Last in this file: the CS goes on a tmpfs (root, to mount it) too small
# for the object. The pieces of a chunk are written and hashed on two
# threads, several at once: a write that fails must leave neither a hole
# in the file nor bytes in the running hash that the file does not hold.
@test "the CS's disk fills within a chunk: 500, the upload holds what was written; with room again it resumes and the object is whole" {
	[ "$(id -u)" -eq 0 ] || skip "mounting a tmpfs needs root"
	local a id f sha size off i st used d=$BATS_TEST_TMPDIR
	platform_stop_role "$(P)" cs
	mv "$(P)/cs" "$(P)/cs.disk"
	mkdir "$(P)/cs"
	# What the CS holds from the tests before, and 16 MiB more.
	used=$(du -sk "$(P)/cs.disk" | cut -f1)
	mount -t tmpfs -o size=$((used + 16384))k,mode=0700 ntm-test "$(P)/cs"
	cp -a "$(P)/cs.disk/." "$(P)/cs/"
	"$NTM_BIN/ntm-cs" -d -f "$(P)/cs.conf" >>"$(P)/cs.log" 2>&1 &
	echo $! > "$(P)/cs.pid"
	wait_health "$(cs_url)" "$(ca)"
	a=$(tok alice)
	f=$d/obj
	size=$((6 * CHUNK))
	head -c $size /dev/urandom > "$f"
	sha=$(sha256sum "$f" | cut -c1-64)
	id=$(create "$a" alice $size)
	# 24 MiB into 16 free: chunks go in until one is refused (at most 6).
	off=0
	for ((i = 0; i < 6; i++)); do
		run put_range "$a" "$id" "$f" $off $CHUNK
		st=$(status_of)
		[ "$st" = 200 ] || break
		off=$(jq -r .offset <<<"$(body_of)")
	done
	echo "# refused at offset $off with $st: $(body_of | tr -d '\n')" >&3
	# 500 from the CS, or no answer when it closed the connection before
	# curl had sent the chunk (the answer comes before the body's end).
	[ "$st" = 500 ] || [ "$st" = 000 ]
	[ "$st" = 000 ] || assert_equal "$(jq -r .code <<<"$(body_of)")" internal
	[ "$off" -ge $CHUNK ] && [ "$off" -lt $size ]
	grep -q "upload $id: write at" "$(P)/cs.log"
	kill -0 "$(cat "$(P)/cs.pid")"
	# The CS says where the upload stands: the bytes in its file, all the
	# object's first bytes (the commit below checks every one).
	run https GET "$(cs_url)/v1/cs/upload?id=$id" -H "Authorization: Bearer $a"
	assert_equal "$(status_of)" 200
	off=$(jq -r .offset <<<"$(body_of)")
	assert_equal "$off" "$(stat -c %s "$(P)/cs/objects/tmp/$id")"
	[ "$off" -lt $size ]
	# Room again: the rest goes from there, the last chunk commits.
	mount -o remount,size=$((used + 65536))k "$(P)/cs"
	while [ $((size - off)) -gt $CHUNK ]; do
		run put_range "$a" "$id" "$f" $off $CHUNK
		assert_equal "$(status_of)" 200
		off=$(jq -r .offset <<<"$(body_of)")
	done
	run put_range "$a" "$id" "$f" $off $((size - off)) "$sha"
	assert_equal "$(status_of)" 201
	assert_equal "$(jq -r .sha256 <<<"$(body_of)")" "$sha"
	assert_equal "$(fetch "$(tok bob dc2.ntm.test)" "$sha" "$d/back")" 200
	assert_equal "$(sha256sum < "$d/back" | cut -c1-64)" "$sha"
}
