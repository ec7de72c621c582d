#!/usr/bin/env bats
# ntm netcheck on loopback, and the reflection probe it sends (PROBE,
# docs/protocol.md §4.7) as the DC's and the RS's UDP sockets answer it:
# never with more bytes than the probe, and a flood from one source is cut
# to probe_rate a second.

load helpers
bats_require_minimum_version 1.5.0

setup_file() {
	platform_up
	add_user alice 'alice-pw-1'
	login "$BATS_FILE_TMPDIR/a" alice alice-pw-1 "$(dc1_url)" >/dev/null
}
teardown_file() { platform_down; }

rs_udp() { echo "127.0.0.1:$(cat "$(P)/rs.udpport")"; }

# probe ADDR:PORT COUNT SIZE: COUNT datagrams of SIZE bytes (a PROBE when
# SIZE is 64, a PROBE-typed datagram of the wrong length otherwise) from one
# socket, as fast as it can; prints "sent N answers M max_len L port P".
probe() {
	timeout 20 python3 - "$@" <<-'PY'
	import os, socket, sys, time
	host, port = sys.argv[1].rsplit(":", 1)
	count, size = int(sys.argv[2]), int(sys.argv[3])
	s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
	s.bind(("127.0.0.1", 0))
	txid = os.urandom(16)
	msg = bytes([11, 2, 0, 0]) + txid + bytes(max(0, size - 20))
	for _ in range(count):
	    s.sendto(msg[:size], (host, int(port)))
	s.settimeout(0.5)
	answers, longest, seen_port = 0, 0, 0
	while True:
	    try:
	        d = s.recv(2048)
	    except socket.timeout:
	        break
	    answers += 1
	    longest = max(longest, len(d))
	    if d[0] == 12 and d[4:20] == txid and d[20] == 4:
	        seen_port = int.from_bytes(d[22:24], "big")
	print("sent %d answers %d max_len %d port %d ok %d" % (count, answers, longest,
	      seen_port, seen_port == s.getsockname()[1]))
	PY
}

@test "netcheck without a session: exit 7 and one line naming the problem" {
	run_t -7 ntm -c "$BATS_TEST_TMPDIR/none" netcheck --json
	assert_output "ntm: netcheck: not logged in"
}

@test "netcheck --json on loopback: stable keys, no NAT, the DC and the relay answer with round trips" {
	run_t ntm -c "$BATS_FILE_TMPDIR/a" netcheck --json --dc-udp "$(udp_of dc1)"
	assert_success
	local j=$output
	assert_equal "$(jq -c 'keys' <<<"$j")" '["ipv4","ipv6","udp"]'
	assert_equal "$(jq -c '.ipv4 | keys' <<<"$j")" \
	    '["dc","error","filtering","local","mapping_varies_by_dest","nat","natted","reflexive","relay","tested","udp"]'
	assert_equal "$(jq -c '.ipv6 | keys' <<<"$j")" "$(jq -c '.ipv4 | keys' <<<"$j")"
	assert_equal "$(jq -c '.ipv4.dc | keys' <<<"$j")" '["addr","probes","reflexive","rtt_us"]'
	assert_equal "$(jq -r .udp <<<"$j")" true
	assert_equal "$(jq -r .ipv4.nat <<<"$j")" none
	assert_equal "$(jq -r .ipv4.natted <<<"$j")" false
	assert_equal "$(jq -r .ipv4.mapping_varies_by_dest <<<"$j")" false
	# The relay's answer from its other port came in: nothing filters.
	assert_equal "$(jq -r .ipv4.filtering <<<"$j")" none
	assert_equal "$(jq -r .ipv4.relay.other_port <<<"$j")" "$(( $(cat "$(P)/rs.udpport") + 1 ))"
	assert_equal "$(jq -r .ipv4.dc.addr <<<"$j")" "$(udp_of dc1)"
	assert_equal "$(jq -r .ipv4.relay.addr <<<"$j")" "$(rs_udp)"
	# Both saw the one socket's address and port, which is the local one.
	assert_equal "$(jq -r .ipv4.dc.reflexive <<<"$j")" "$(jq -r .ipv4.local <<<"$j")"
	assert_equal "$(jq -r .ipv4.relay.reflexive <<<"$j")" "$(jq -r .ipv4.local <<<"$j")"
	assert_equal "$(jq -r '.ipv4.dc.rtt_us | type' <<<"$j")" number
	assert_equal "$(jq -r '.ipv4.relay.rtt_us | type' <<<"$j")" number
	# No IPv6 address for either server here: not tested, and said why.
	assert_equal "$(jq -r .ipv6.tested <<<"$j")" false
	assert_equal "$(jq -r .ipv6.nat <<<"$j")" unknown
	assert_equal "$(jq -r .ipv6.natted <<<"$j")" null
	[[ "$(jq -r .ipv6.error <<<"$j")" == *"no"*"IPv6 address"* ]]
}

@test "netcheck in text: the report names the NAT kind and the round trips" {
	run_t ntm -c "$BATS_FILE_TMPDIR/a" netcheck --dc-udp "$(udp_of dc1)"
	assert_success
	assert_line --partial "* IPv4: yes, 127.0.0.1:"
	assert_line --partial "* IPv4 NAT: no"
	assert_line --partial "* IPv4 filtering: none (no NAT, and the relay's answer from its other port came in)"
	assert_line --regexp "- dc $(udp_of dc1): [0-9.]+ ms, saw 127.0.0.1:"
	assert_line --regexp "- relay $(rs_udp): [0-9.]+ ms, saw 127.0.0.1:"
}

@test "netcheck with a DC that does not answer: three probes, then the relay's answer alone; nothing answers: exit 3" {
	local dead
	dead=$(free_port)
	run_t ntm -c "$BATS_FILE_TMPDIR/a" netcheck --json --dc-udp "127.0.0.1:$dead"
	assert_success
	assert_equal "$(jq -r .ipv4.dc.probes <<<"$output")" 3
	assert_equal "$(jq -r .ipv4.dc.reflexive <<<"$output")" null
	assert_equal "$(jq -r .ipv4.dc.rtt_us <<<"$output")" null
	assert_equal "$(jq -r .ipv4.relay.reflexive <<<"$output")" "$(jq -r .ipv4.local <<<"$output")"
	assert_equal "$(jq -r .ipv4.nat <<<"$output")" none


	# Nothing answers: the DC's HTTPS (which names the relay) and its UDP
	# port are dead.
	local q=$BATS_TEST_TMPDIR/q
	cp -r "$BATS_FILE_TMPDIR/a" "$q"
	jq --arg u "https://127.0.0.1:$dead" '.dc_url = $u' "$BATS_FILE_TMPDIR/a/session.json" \
	    > "$q/session.json"
	run_t -3 ntm -c "$q" netcheck --json --dc-udp "127.0.0.1:$dead" --timeout 1
	assert_line --partial "ntm: netcheck: the relay's address is unknown"
	assert_line "ntm: netcheck: no answer from the DC or the relay over UDP within 1 s"
	assert_equal "$(grep '^{' <<<"$output" | jq -r '.udp, .ipv4.relay')" "$(printf 'false\nnull')"
}

@test "a PROBE to the DC and to the RS: one answer of 64 bytes naming the source port; a probe-typed datagram of another length: none" {
	local to
	for to in "$(udp_of dc1)" "$(rs_udp)"; do
		run probe "$to" 1 64
		assert_output "sent 1 answers 1 max_len 64 port $(sed -n 's/.* port \([0-9]*\) .*/\1/p' <<<"$output") ok 1"
		run probe "$to" 3 1400
		assert_output --regexp "^sent 3 answers 0 "
		run probe "$to" 3 63
		assert_output --regexp "^sent 3 answers 0 "
	done
}

# probe_flags ADDR:PORT FLAGS [addr]: one PROBE with FLAGS in its first
# padding byte; prints each answer as "from PORT len N flags F other O", or
# with addr "from ADDR:PORT ... addr FAMILY PORT A.B.C.D" (the other
# address field at bytes 43..62).
probe_flags() {
	timeout 20 python3 - "$@" <<-'PY'
	import os, socket, sys
	host, port = sys.argv[1].rsplit(":", 1)
	s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
	s.bind(("127.0.0.1", 0))
	txid = os.urandom(16)
	s.sendto(bytes([11, 2, 0, 0]) + txid + bytes([int(sys.argv[2])]) + bytes(43),
	         (host, int(port)))
	s.settimeout(0.5)
	while True:
	    try:
	        d, src = s.recvfrom(2048)
	    except socket.timeout:
	        break
	    ok = d[0] == 12 and d[4:20] == txid
	    if len(sys.argv) < 4:
	        print("from %d len %d flags %d other %d ok %d" % (src[1], len(d), d[40],
	              int.from_bytes(d[41:43], "big"), ok))
	        continue
	    w = d[43:63]
	    print("from %s:%d len %d flags %d other %d addr %d %d %s ok %d" % (src[0], src[1],
	          len(d), d[40], int.from_bytes(d[41:43], "big"), w[0],
	          int.from_bytes(w[2:4], "big"), ".".join(str(b) for b in w[4:8]),
	          ok and d[63] == 0))
	PY
}

@test "the filtering test: a PROBE asking for the other port gets one answer of 64 bytes from the RS's other port, counted; asking its name, one from the relay port" {
	local rp=$(cat "$(P)/rs.udpport") before
	before=$(ntm-rs -f "$(P)/rs.conf" status --json | jq -r .counters.probes_alt_answered)
	assert_equal "$(ntm-rs -f "$(P)/rs.conf" status --json | jq -c .probe_alt)" "[\"127.0.0.1:$((rp + 1))\"]"
	run probe_flags "$(rs_udp)" 1
	assert_output "from $((rp + 1)) len 64 flags 1 other $((rp + 1)) ok 1"
	run probe_flags "$(rs_udp)" 2
	assert_output "from $rp len 64 flags 0 other $((rp + 1)) ok 1"
	# Unknown flag bits: malformed, no answer.
	run probe_flags "$(rs_udp)" 4
	assert_output ""
	# The DC has no other port: it answers from its own, saying so.
	run probe_flags "$(udp_of dc1)" 1
	assert_output "from $(udp_of dc1 | sed 's/.*://') len 64 flags 0 other 0 ok 1"
	counter_at_least rs .counters.probes_alt_answered $((before + 1))
	run ntm-rs -f "$(P)/rs.conf" status
	assert_line --regexp "^udp 127.0.0.1:$rp  probes' other port 127.0.0.1:$((rp + 1))\$"
	assert_line --regexp "^probes answered [0-9]+ \(10/s per address, [1-9][0-9]* from the other port\)"
}

@test "probe_alt_port: checked for range, RS only; a configured port that cannot be bound stops the start, naming it" {
	cp -a "$(P)/rs" "$BATS_TEST_TMPDIR/rs"
	sed -e "s|$(P)/rs|$BATS_TEST_TMPDIR/rs|" -e "s|^listen = .*|listen = 127.0.0.1:$(free_port)|" \
	    -e "s|^udp_listen = .*|udp_listen = 127.0.0.1:$(free_port)|" \
	    "$(P)/rs.conf" > "$BATS_TEST_TMPDIR/rs.conf"
	for bad in "probe_alt_port = 65536" "probe_alt_port = -1" "probe_alt_port = x"; do
		{ cat "$BATS_TEST_TMPDIR/rs.conf"; echo "$bad"; } > "$BATS_TEST_TMPDIR/bad.conf"
		run_t ntm-rs -n -f "$BATS_TEST_TMPDIR/bad.conf"
		assert_failure 2
		assert_output --partial probe_alt_port
	done
	printf 'name = x.test\nstate_dir = /tmp/x\nlisten = 127.0.0.1:1\nprobe_alt_port = 5\n' \
	    > "$BATS_TEST_TMPDIR/dc.conf"
	run_t ntm-dc -n -f "$BATS_TEST_TMPDIR/dc.conf"
	assert_failure 2
	assert_output --partial probe_alt_port
	# dc1's UDP port is taken on this address.
	{ cat "$BATS_TEST_TMPDIR/rs.conf"; echo "probe_alt_port = $(udp_of dc1 | sed 's/.*://')"; } \
	    > "$BATS_TEST_TMPDIR/taken.conf"
	run_t ntm-rs -d -f "$BATS_TEST_TMPDIR/taken.conf"
	assert_failure
	assert_output --partial "probe_alt_port $(udp_of dc1 | sed 's/.*://') on 127.0.0.1:"
	assert_output --partial "Address already in use"
}

# A second RS of the test's own (alt_rs_up), stopped by its pid.
teardown() {
	if [ -f "$BATS_TEST_TMPDIR/alt-rs.pid" ]; then
		kill "$(cat "$BATS_TEST_TMPDIR/alt-rs.pid")" 2>/dev/null || true
	fi
}

@test "probe_alt_addr: checked, RS only; an address that cannot be bound stops the start; a second address answers CHANGE|ADDR, ASK|ADDR names it" {
	local up ap
	up=$(free_port)
	cp -a "$(P)/rs" "$BATS_TEST_TMPDIR/rs"
	sed -e "s|$(P)/rs|$BATS_TEST_TMPDIR/rs|" -e "s|^listen = .*|listen = 127.0.0.1:$(free_port)|" \
	    -e "s|^udp_listen = .*|udp_listen = 127.0.0.1:$up|" \
	    "$(P)/rs.conf" > "$BATS_TEST_TMPDIR/rs.conf"
	for bad in "probe_alt_addr = x" "probe_alt_addr = 127.0.0.1:99999" "probe_alt_addr = ::ffff:127.0.0.2"; do
		{ cat "$BATS_TEST_TMPDIR/rs.conf"; echo "$bad"; } > "$BATS_TEST_TMPDIR/bad.conf"
		run_t ntm-rs -n -f "$BATS_TEST_TMPDIR/bad.conf"
		assert_failure 2
		assert_output --partial "probe_alt_addr '${bad#probe_alt_addr = }' is not an IP address or ip:port"
	done
	printf 'name = x.test\nstate_dir = /tmp/x\nlisten = 127.0.0.1:1\nprobe_alt_addr = 127.0.0.2\n' \
	    > "$BATS_TEST_TMPDIR/dc.conf"
	run_t ntm-dc -n -f "$BATS_TEST_TMPDIR/dc.conf"
	assert_failure 2
	assert_output --partial probe_alt_addr
	# An address this host does not have.
	{ cat "$BATS_TEST_TMPDIR/rs.conf"; echo "probe_alt_addr = 198.51.100.7"; } \
	    > "$BATS_TEST_TMPDIR/nohost.conf"
	run_t ntm-rs -d -f "$BATS_TEST_TMPDIR/nohost.conf"
	assert_failure
	assert_output --partial "probe_alt_addr 198.51.100.7: Cannot assign requested address"
	# 127.0.0.2, another loopback address: answers from there.
	ap=$(free_port)
	echo "probe_alt_addr = 127.0.0.2:$ap" >> "$BATS_TEST_TMPDIR/rs.conf"
	ntm-rs -d -f "$BATS_TEST_TMPDIR/rs.conf" >"$BATS_TEST_TMPDIR/rs.log" 2>&1 3>&- &
	echo $! > "$BATS_TEST_TMPDIR/alt-rs.pid"
	wait_until 10 grep -q "probes: the other address is udp 127.0.0.2:$ap" "$BATS_TEST_TMPDIR/rs.log"
	run probe_flags "127.0.0.1:$up" 5 addr
	assert_output "from 127.0.0.2:$ap len 64 flags 2 other $((up + 1)) addr 4 $ap 127.0.0.2 ok 1"
	run probe_flags "127.0.0.1:$up" 6 addr
	assert_output "from 127.0.0.1:$up len 64 flags 0 other $((up + 1)) addr 4 $ap 127.0.0.2 ok 1"
	# The port test's probes never get the address field.
	run probe_flags "127.0.0.1:$up" 2 addr
	assert_output "from 127.0.0.1:$up len 64 flags 0 other $((up + 1)) addr 0 0 0.0.0.0 ok 1"
	# The platform's RS has none: ASK|ADDR names none, CHANGE|ADDR comes
	# from the relay port.
	run probe_flags "$(rs_udp)" 5 addr
	assert_output "from $(rs_udp) len 64 flags 0 other $(($(cat "$(P)/rs.udpport") + 1)) addr 0 0 0.0.0.0 ok 1"
	run ntm-rs -f "$BATS_TEST_TMPDIR/rs.conf" status --json
	assert_equal "$(jq -r .probe_alt_addr <<<"$output")" "127.0.0.2:$ap"
}

# counter ROLE JQ: a counter of the DC's or the RS's status (rewritten
# every second or two), polled until it is at least MIN (bounded).
counter_at_least() {
	local role=$1 q=$2 min=$3 i v
	for ((i = 0; i < 50; i++)); do
		v=$("ntm-${role%1}" -f "$(P)/$role.conf" status --json 2>/dev/null | jq -r "$q // 0")
		[ "${v:-0}" -ge "$min" ] && return 0
		sleep 0.2
	done
	echo "$role $q: ${v:-none}, wanted at least $min" >&2
	return 1
}

@test "a flood of 300 probes from one source: the DC and the RS answer at most their burst (2 s of probe_rate), never more bytes than sent, and count the rest" {
	local to role n
	for role in dc1 rs; do
		[ "$role" = rs ] && to=$(rs_udp) || to=$(udp_of dc1)
		run probe "$to" 300 64
		echo "$role: $output" >&3
		n=$(awk '{print $4}' <<<"$output")
		# probe_rate 10 (the default): a burst of 20, plus what refills while
		# the flood is sent.
		[ "$n" -ge 1 ] && [ "$n" -le 25 ]
		assert_output --regexp "max_len 64 "
	done
	counter_at_least dc1 .udp.dropped.probe_limited 200
	counter_at_least rs .counters.probes_limited 200
}
