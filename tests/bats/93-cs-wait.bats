#!/usr/bin/env bats
# Chunks that wait for an upload slot (issue 13; docs/protocol.md §7.2,
# ntm-cs(8) chunk_wait_*): the CS receives at most 64 chunks at once
# (CS_WRITING). A chunk PUT that finds every slot busy waits for one, its
# body unread, instead of an immediate 503 the client must send again; at
# most chunk_wait_max such chunks in all and chunk_wait_per_addr from one
# source address, each at most chunk_wait_ms. Past a bound: 503 busy, with
# its JSON error, at once.
#
#   curl x 64 (slow, 127.0.0.1) ---PUT---> ntm-cs [64 slots busy]
#   curl x 4 (127.0.0.1), 1 (127.0.0.2), 1 (127.0.0.3) --PUT--> wait
#   curl (127.0.0.1: per address) and curl (127.0.0.4: in all) --PUT--> 503
#   then, chunk_wait_ms = 1500: one that waits longer --> 503

load helpers

PLATFORM_ROLES="as cs"
SLOTS=64
SLOW=$((1024 * 1024))

setup_file() {
	platform_init "$(P)" >"$BATS_FILE_TMPDIR/init.log" 2>&1 || {
		cat "$BATS_FILE_TMPDIR/init.log" >&3; return 1; }
	(umask 077 && openssl rand -hex 32 > "$(P)/metrics.token")
	{
		echo "metrics_token_file = $(P)/metrics.token"
		echo "chunk_wait_max = 6"
		echo "chunk_wait_per_addr = 4"
		echo "chunk_wait_ms = 60000"
		# The 64 slow clients and the others from 127.0.0.1 all connect.
		echo "http_max_conns_per_addr = 256"
	} >> "$(P)/cs.conf"
	platform_start "$(P)"
}

teardown_file() {
	local f
	for f in "$BATS_FILE_TMPDIR"/*.curlpid; do
		[ -f "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null
	done
	platform_down
}

cs_url() { echo "https://127.0.0.1:$(platform_port "$(P)" cs)"; }

setup() {
	CA=$(ca)
	URL=$(cs_url)
}

tok() {
	"$SIGNREQ" --key "$(P)/as/identity.key" --mint "$1:dev1:dc1.ntm.test:cs:cs1.localhost" \
	    --lifetime 3600
}

create() {
	local out
	out=$(https POST "$(cs_url)/v1/cs/uploads" -H "Authorization: Bearer $1" \
	    -d "{\"version\":1,\"from\":\"$2.dc1.ntm.test\",\"to\":[\"bob.dc2.ntm.test\"],\"size\":$3}")
	[ "$(tail -n 1 <<<"$out")" = 201 ] || { echo "create: $out" >&2; return 1; }
	sed '$d' <<<"$out" | jq -r .upload
}

# put NAME SOURCE RATE: PUTs object NAME (made by obj) from address SOURCE
# at RATE bytes/s as the chunk that commits, in the background; the answer
# and its status go to $BATS_FILE_TMPDIR/NAME.out. It starts curl and no
# other process (the 64 slow ones start within a second on a loaded
# machine, long before the first of them could end).
put() {
	local d=$BATS_FILE_TMPDIR tok id sha
	read -r tok < "$d/$1.tok"
	read -r id < "$d/$1.id"
	read -r sha < "$d/$1.sha"
	curl -s --max-time 120 --interface "$2" --cacert "$CA" -X PUT --limit-rate "$3" \
	    -H "Authorization: Bearer $tok" \
	    -H 'Content-Type: application/octet-stream' --data-binary @"$d/$1" \
	    -w '\n%{http_code}' -o - \
	    "$URL/v1/cs/upload?id=$id&offset=0&sha256=$sha" > "$d/$1.out" 2>&1 &
	echo $! > "$d/$1.curlpid"
}

# obj NAME USER SIZE: an object of SIZE random bytes and its upload.
obj() {
	local d=$BATS_FILE_TMPDIR
	head -c "$3" /dev/urandom > "$d/$1"
	sha256sum < "$d/$1" | cut -c1-64 > "$d/$1.sha"
	tok "$2" > "$d/$1.tok"
	create "$(cat "$d/$1.tok")" "$2" "$3" > "$d/$1.id"
}

# metric NAME: a gauge of the CS's.
metric() {
	curl -s --max-time 10 --cacert "$(ca)" -H "Authorization: Bearer $(cat "$(P)/metrics.token")" \
	    "$(cs_url)/metrics" | awk -v m="$1" '$1 == m { print $2 }'
}
waiting() { metric ntm_cs_chunks_waiting; }

# wait_for WHAT CMD...: polls CMD until it succeeds (at most 60 s).
wait_for() {
	local what=$1 t
	shift
	for ((t = 0; t < 600; t++)); do
		"$@" && return 0
		sleep 0.1
	done
	echo "timed out waiting for $what" >&2
	state >&2
	return 1
}

# state: what the CS and the clients are doing (printed when a wait
# times out): the partial files and their sizes, the clients that ended
# and what they were answered, the CS's log.
state() {
	local f n=0 live=0
	echo "# files in objects/tmp (size > 0: $(find "$(P)/cs/objects/tmp" -type f -size +0 | wc -l)):"
	find "$(P)/cs/objects/tmp" -type f -printf '#   %s %f\n' | sort -n | head -n 80
	for f in "$BATS_FILE_TMPDIR"/*.curlpid; do
		[ -f "$f" ] || continue
		n=$((n + 1))
		if kill -0 "$(cat "$f")" 2>/dev/null; then
			live=$((live + 1))
		else
			echo "# ended: $(basename "$f" .curlpid): $(tr '\n' ' ' < "${f%.curlpid}.out")"
		fi
	done
	echo "# clients: $n started, $live running; chunks receiving: \
$(metric ntm_cs_chunks_receiving), waiting: $(waiting)"
	echo "# the CS's log, last lines:"
	tail -n 30 "$(P)/cs.log" | sed 's/^/#   /'
}

slots_busy() { [ "$(metric ntm_cs_chunks_receiving)" = "$SLOTS" ]; }
waiting_is() { [ "$(waiting)" = "$1" ]; }
# signal SIG PREFIX: sends SIG to the 64 slow clients PREFIX1..64 (curl
# processes this test started). Stopped, they hold their slots however
# long the checks take on a slow machine (a body's deadline is 20 s plus
# a second per 500 bytes).
signal() {
	local i
	for ((i = 1; i <= SLOTS; i++)); do
		kill "-$1" "$(cat "$BATS_FILE_TMPDIR/$2$i.curlpid")" 2>/dev/null || true
	done
}
done_all() {
	local f
	for f in "$@"; do
		kill -0 "$(cat "$BATS_FILE_TMPDIR/$f.curlpid")" 2>/dev/null && return 1
	done
	return 0
}

@test "more chunks than upload slots: those beyond wait for a slot and are stored, no 503; past chunk_wait_per_addr and chunk_wait_max, 503 busy at once" {
	local i d=$BATS_FILE_TMPDIR all=()
	for ((i = 1; i <= SLOTS; i++)); do
		obj "s$i" "u$((i % 16))" $SLOW
		all+=("s$i")
	done
	for n in w1 w2 w3 w4 w5 w6 x1 x2; do
		obj "$n" "v${n}" 100000
	done
	# 1 MiB at 64 KiB/s (16 s), each holding a slot; once the CS counts
	# 64 chunks being received they are stopped until the checks are done.
	for ((i = 1; i <= SLOTS; i++)); do
		put "s$i" 127.0.0.1 64k
	done
	wait_for "64 chunks being received" slots_busy
	signal STOP s
	# Four more from the same address wait (chunk_wait_per_addr = 4) ...
	for n in w1 w2 w3 w4; do
		put "$n" 127.0.0.1 100m
	done
	wait_for "4 chunks waiting" waiting_is 4
	# ... a fifth from it does not: 503 at once, with the JSON error.
	put x1 127.0.0.1 100m
	wait_for "x1 answered" done_all x1
	assert_equal "$(tail -n 1 "$d/x1.out")" 503
	assert_equal "$(sed '$d' "$d/x1.out" | jq -r .code)" busy
	sed '$d' "$d/x1.out" | jq -r .message | grep -q chunk_wait_per_addr
	# Two more from other addresses wait (chunk_wait_max = 6) ...
	put w5 127.0.0.2 100m
	put w6 127.0.0.3 100m
	wait_for "6 chunks waiting" waiting_is 6
	# ... and a seventh does not.
	put x2 127.0.0.4 100m
	wait_for "x2 answered" done_all x2
	assert_equal "$(tail -n 1 "$d/x2.out")" 503
	assert_equal "$(sed '$d' "$d/x2.out" | jq -r .code)" busy
	sed '$d' "$d/x2.out" | jq -r .message | grep -q chunk_wait_max
	# Every other chunk is stored whole as slots free up: 201, none 503.
	signal CONT s
	all+=(w1 w2 w3 w4 w5 w6)
	wait_for "every upload answered" done_all "${all[@]}"
	for n in "${all[@]}"; do
		assert_equal "$(tail -n 1 "$d/$n.out")" 201
		assert_equal "$(sed '$d' "$d/$n.out" | jq -r .sha256)" "$(cat "$d/$n.sha")"
	done
	assert_equal "$(waiting)" 0
}

@test "a chunk that waits longer than chunk_wait_ms is answered 503 busy, naming it" {
	local i d=$BATS_FILE_TMPDIR
	platform_stop_role "$(P)" cs
	sed -i 's/^chunk_wait_ms = .*/chunk_wait_ms = 1500/' "$(P)/cs.conf"
	PLATFORM_ROLES=cs platform_start "$(P)"
	for ((i = 1; i <= SLOTS; i++)); do
		obj "t$i" "u$((i % 16))" $SLOW
	done
	obj tw vtw 100000
	for ((i = 1; i <= SLOTS; i++)); do
		put "t$i" 127.0.0.1 64k
	done
	wait_for "64 chunks being received" slots_busy
	signal STOP t
	put tw 127.0.0.2 100m
	wait_for "tw answered" done_all tw
	assert_equal "$(tail -n 1 "$d/tw.out")" 503
	assert_equal "$(sed '$d' "$d/tw.out" | jq -r .code)" busy
	sed '$d' "$d/tw.out" | jq -r .message | grep -q chunk_wait_ms
	assert_equal "$(waiting)" 0
	signal KILL t
}
