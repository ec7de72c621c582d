#!/usr/bin/env bats
# The DC's DNS: each DC answers authoritatively for its domain (SOA, NS, its
# own A, SRV _ntm._tcp / _ntm._udp, client FQDNs -> vIPs), refuses other
# names and survives garbage; a real dnsmasq in front forwards each domain
# to its DC, and `ntm-dc resolve` finds the other DC through it.

load helpers

setup_file() {
	platform_up
	platform_resolver_start "$(P)"
	add_user alice 'alice-pass-1234'
	login "$BATS_FILE_TMPDIR/alice" alice 'alice-pass-1234' "$(dc1_url)" >/dev/null
}

teardown_file() {
	platform_down
}

dns1() { cat "$(P)/dc1.dnsport"; }
dns2() { cat "$(P)/dc2.dnsport"; }
resolver() { cat "$(P)/resolver.port"; }

# q PORT NAME TYPE: dig the answer section (+short) with a hard timeout.
q() { timeout 10 dig +norec +time=2 +tries=1 +short @127.0.0.1 -p "$1" "$2" "$3"; }
# qs PORT NAME TYPE: the full dig output (status, flags, sections).
qs() { timeout 10 dig +norec +time=2 +tries=1 @127.0.0.1 -p "$1" "$2" "$3" "${@:4}"; }

@test "SOA and NS of the domain, authoritative" {
	run qs "$(dns1)" dc1.ntm.test SOA
	assert_success
	assert_output --partial 'status: NOERROR'
	assert_output --regexp 'flags: qr aa'
	assert_output --regexp 'dc1\.ntm\.test\.[[:space:]]+60[[:space:]]+IN[[:space:]]+SOA[[:space:]]+dc1\.ntm\.test\. hostmaster\.dc1\.ntm\.test\.'
	run q "$(dns1)" dc1.ntm.test NS
	assert_success
	assert_output 'dc1.ntm.test.'
}

@test "A of the DC's own name, case-insensitive" {
	run q "$(dns1)" dc1.ntm.test A
	assert_success
	assert_output 127.0.0.1
	run q "$(dns1)" Dc1.NTM.Test A
	assert_output 127.0.0.1
}

@test "SRV _ntm._tcp points at the HTTPS port" {
	run q "$(dns1)" _ntm._tcp.dc1.ntm.test SRV
	assert_success
	assert_output "0 0 $(platform_port "$(P)" dc1) dc1.ntm.test."
	run q "$(dns2)" _ntm._tcp.dc2.ntm.test SRV
	assert_output "0 0 $(platform_port "$(P)" dc2) dc2.ntm.test."
}

@test "SRV _ntm._udp: the registration port when udp_listen is set" {
	if ! grep -q '^udp_listen' "$(P)/dc1.conf"; then
		# Without udp_listen there is no registration socket: no record.
		run qs "$(dns1)" _ntm._udp.dc1.ntm.test SRV
		assert_output --partial 'status: NXDOMAIN'
		return 0
	fi
	local port
	port=$(sed -n 's/^udp_listen = .*:\([0-9]*\)$/\1/p' "$(P)/dc1.conf")
	run q "$(dns1)" _ntm._udp.dc1.ntm.test SRV
	assert_success
	assert_output --regexp "^0 0 [0-9]+ dc1\.ntm\.test\.$"
	[ "$port" = 0 ] || assert_output "0 0 $port dc1.ntm.test."
}

@test "A/AAAA of a logged-in client's FQDN are its vIPs" {
	local v4 v6
	run_t ntm-dc -f "$(P)/dc1.conf" client list --json
	assert_success
	v4=$(printf '%s' "$output" | jq -r '.[] | select(.fqdn == "alice.dc1.ntm.test") | .vip4')
	v6=$(printf '%s' "$output" | jq -r '.[] | select(.fqdn == "alice.dc1.ntm.test") | .vip6')
	[ -n "$v4" ] && [ -n "$v6" ]
	run q "$(dns1)" alice.dc1.ntm.test A
	assert_output "$v4"
	run q "$(dns1)" ALICE.dc1.ntm.test AAAA
	assert_output "$v6"
	# A name that exists without the type: NOERROR, no answer, the SOA.
	run qs "$(dns1)" alice.dc1.ntm.test TXT
	assert_output --partial 'status: NOERROR'
	assert_output --partial 'ANSWER: 0, AUTHORITY: 1'
}

@test "unknown name in the domain: NXDOMAIN with the SOA" {
	run qs "$(dns1)" nobody.dc1.ntm.test A
	assert_success
	assert_output --partial 'status: NXDOMAIN'
	assert_output --regexp 'flags: qr aa'
	assert_output --partial 'AUTHORITY: 1'
	run qs "$(dns1)" a.b.dc1.ntm.test AAAA
	assert_output --partial 'status: NXDOMAIN'
}

@test "names outside the domain are REFUSED" {
	run qs "$(dns1)" example.com A
	assert_success
	assert_output --partial 'status: REFUSED'
	run qs "$(dns1)" alice.dc2.ntm.test A
	assert_output --partial 'status: REFUSED'
	run qs "$(dns1)" xdc1.ntm.test A
	assert_output --partial 'status: REFUSED'
}

@test "garbage datagrams to the DNS port do not stop the DC" {
	python3 - "$(dns1)" <<'EOF'
import os, random, socket, sys
port = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
random.seed(80)
base = bytes.fromhex("000101000001000000000000") + b"\x05alice\x03dc1\x03ntm\x04test\x00\x00\x01\x00\x01"
for n in range(0, 40):			# short ones (libevent 2.1.12 crashed on < 12 bytes)
    s.sendto(os.urandom(n), ("127.0.0.1", port))
for i in range(2000):			# mutated queries and noise
    b = bytearray(base)
    for _ in range(random.randint(1, 6)):
        b[random.randrange(len(b))] = random.getrandbits(8)
    if random.random() < 0.3:
        b = b[:random.randint(0, len(b))]
    if random.random() < 0.2:
        b = bytearray(os.urandom(random.randint(0, 600)))
    s.sendto(bytes(b), ("127.0.0.1", port))
s.sendto(b"", ("127.0.0.1", port))
EOF
	run q "$(dns1)" dc1.ntm.test A
	assert_output 127.0.0.1
	run_t curl -sf --cacert "$(ca)" "$(dc1_url)/v1/health"
	assert_success
}

@test "dnsmasq in front forwards each domain to its DC" {
	run q "$(resolver)" _ntm._tcp.dc2.ntm.test SRV
	assert_success
	assert_output --partial "0 0 $(platform_port "$(P)" dc2) dc2.ntm.test."
	run q "$(resolver)" alice.dc1.ntm.test A
	assert_output --regexp '^100\.64\.1\.[0-9]+$'
}

@test "ntm-dc resolve finds the other DC through the resolver" {
	run_t ntm-dc -f "$(P)/dc1.conf" resolve dc2.ntm.test
	assert_success
	assert_output "https://dc2.ntm.test:$(platform_port "$(P)" dc2)	127.0.0.1"
	run_t ntm-dc -f "$(P)/dc1.conf" resolve DC2.ntm.test. --json
	assert_success
	assert_equal "$(jf "$output" url)" "https://dc2.ntm.test:$(platform_port "$(P)" dc2)"
	assert_equal "$(jf "$output" host)" dc2.ntm.test
	assert_equal "$(jf "$output" addr)" 127.0.0.1
	assert_equal "$(jf "$output" port)" "$(platform_port "$(P)" dc2)"
	# The found URL serves the DC when its name is pinned to the address.
	run_t curl -sf --cacert "$(ca)" --resolve "dc2.ntm.test:$(platform_port "$(P)" dc2):127.0.0.1" \
	    "https://dc2.ntm.test:$(platform_port "$(P)" dc2)/v1/health"
	assert_success
	assert_equal "$(jf "$output" name)" dc2.ntm.test
}

@test "ntm-dc resolve: a domain without a DC fails in bounded time" {
	run_t ntm-dc -f "$(P)/dc1.conf" resolve nobody.dc1.ntm.test
	assert_failure 1
	assert_output --partial 'no DC found'
	run_t ntm-dc -f "$(P)/dc1.conf" resolve example.org
	assert_failure 1
	run_t ntm-dc -f "$(P)/dc1.conf" resolve 'bad..name'
	assert_failure 2
	run_t ntm-dc -f "$(P)/dc1.conf" resolve
	assert_failure 2
}

@test "ntm-dc resolve: a resolver that refuses is named, not 'upstream server unavailable'" {
	local port
	port=$(free_port)
	sed "s/^resolver = .*/resolver = 127.0.0.1:$port/" "$(P)/dc1.conf" > "$BATS_TEST_TMPDIR/dc1.conf"
	run_t ntm-dc -f "$BATS_TEST_TMPDIR/dc1.conf" resolve dc2.ntm.test
	assert_failure 1
	assert_output --regexp "^ntm-dc: resolve dc2\.ntm\.test: the resolver 127\.0\.0\.1:$port (failed or refused the lookup|\(or the domain's name server behind it\) did not answer in time)"
}

@test "an unknown domain through the resolver is NXDOMAIN, not REFUSED" {
	run timeout 10 dig +time=2 +tries=1 @127.0.0.1 -p "$(resolver)" _ntm._tcp.dc9.ntm.test SRV
	assert_success
	assert_output --partial 'status: NXDOMAIN'
}

@test "ANY is one synthesized HINFO (RFC 8482), never every record of the name" {
	local n
	# (dig asks ANY over TCP unless told; the DC serves UDP only)
	for n in dc1.ntm.test alice.dc1.ntm.test _ntm._tcp.dc1.ntm.test; do
		run qs "$(dns1)" "$n" ANY +notcp
		assert_success
		assert_output --partial 'status: NOERROR'
		assert_output --partial 'ANSWER: 1,'
		assert_output --partial 'AUTHORITY: 0, ADDITIONAL: 0'
		assert_output --regexp "$n\.[[:space:]]+60[[:space:]]+IN[[:space:]]+HINFO[[:space:]]+\"RFC8482\" \"\""
	done
	# No amplification: the answer is about the size of the query.
	local q r
	q=$(sed -n 's/.*MSG SIZE  rcvd: \([0-9]*\).*/\1/p' <<<"$output")
	[ "$q" -lt 120 ]
	run qs "$(dns1)" nobody.dc1.ntm.test ANY +notcp
	assert_output --partial 'status: NXDOMAIN'
}

# burst PORT N NAME TYPE: sends N queries for NAME/TYPE at once (distinct
# ids; NAME "%d" gets each query's number), then counts the answers that
# arrive within 2 s of the last one sent.
burst() {
	python3 - "$@" <<'EOF'
import socket, struct, sys, time
port, n, name, qtype = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
for i in range(n):
    qn = b"".join(bytes([len(l)]) + l.encode() for l in (name % i if "%d" in name else name).split("."))
    s.sendto(struct.pack(">HHHHHH", i, 0, 1, 0, 0, 0) + qn + b"\x00" + struct.pack(">HH", qtype, 1),
             ("127.0.0.1", port))
s.settimeout(0.2)
got, end = 0, time.monotonic() + 2
while time.monotonic() < end:
    try:
        s.recv(2048)
        got += 1
    except socket.timeout:
        pass
print(got)
EOF
}

@test "response-rate limiting: alike answers over dns_rate per source prefix go unanswered, others still get theirs, summarised in the log" {
	# 300 identical questions at once: about dns_rate (20) are answered.
	run burst "$(dns1)" 300 dc1.ntm.test 1
	assert_success
	echo "answered $output of 300 identical" >&3
	[ "$output" -ge 5 ] && [ "$output" -le 100 ]
	# 300 NXDOMAINs for 300 different names are alike too.
	run burst "$(dns1)" 300 'n%d.dc1.ntm.test' 1
	echo "answered $output of 300 NXDOMAIN" >&3
	[ "$output" -ge 5 ] && [ "$output" -le 100 ]
	# Another question from the same source is answered meanwhile.
	run q "$(dns1)" _ntm._tcp.dc1.ntm.test SRV
	assert_output "0 0 $(platform_port "$(P)" dc1) dc1.ntm.test."
	# The operator sees it, a line per 10 s at most, not a line per
	# dropped answer (600 here). Earlier tests of the file drop answers
	# too: on a loaded machine the two bursts can fall on both sides of
	# a report's 10 s.
	run grep -c 'over the rate limit' "$(P)/dc1.log"
	[ "$output" -ge 1 ] && [ "$output" -le 2 ]
	run grep -c 'dns: ' "$(P)/dc1.log"
	[ "$output" -lt 20 ]
	# The bucket fills again: the same question is answered a second later.
	sleep 1.2
	run q "$(dns1)" dc1.ntm.test A
	assert_output 127.0.0.1
}
