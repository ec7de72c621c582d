#!/usr/bin/env bats
# ntm send and ntm fetch with an agent up (docs/protocol.md §6, "https"):
# the agent carries their small requests on its kept-alive connections, so
# a command makes no TLS handshake of its own; and ntm loads libcurl only
# for a command that speaks HTTPS itself.
#
#   alice@dc1 (agent) --send--> cs <--fetch-- bob@dc2 (agent)
#   carol@dc1: no agent, every request her own

load helpers

setup_file() {
	platform_up_cs
	platform_resolver_start "$(P)"
	add_user alice 'alice-pw-1'
	add_user bob 'bob-pw-1'
	add_user carol 'carol-pw-1'
	local d=$BATS_FILE_TMPDIR
	login "$d/alice" alice alice-pw-1 "$(dc1_url)" >/dev/null
	login "$d/bob" bob bob-pw-1 "$(dc2_url)" >/dev/null
	login "$d/carol" carol carol-pw-1 "$(dc1_url)" >/dev/null
	agent_up "$d/alice" dc1
	agent_up "$d/bob" dc2
	ntm -c "$d/alice" keys exchange "$(fqdn_of "$d/bob")" >/dev/null
	ntm -c "$d/carol" keys exchange "$(fqdn_of "$d/bob")" >/dev/null
	# bob takes both keys now: the fetches below carry data only.
	ntm -c "$d/bob" fetch -o "$d" >/dev/null
}

teardown_file() {
	agents_down
	platform_down
}

A() { echo "$BATS_FILE_TMPDIR/alice"; }
B() { echo "$BATS_FILE_TMPDIR/bob"; }
C() { echo "$BATS_FILE_TMPDIR/carol"; }
fqdn_of() { jq -r .fqdn "$1/session.json"; }
# The -vv summary line of a send or fetch: "N HTTPS requests, M connections ...".
summary() { sed -n 's/^ntm: debug: \([0-9]* HTTPS requests, .*\)$/\1/p' <<<"$output"; }
polls_waiting() {
	ntm-dc -f "$(P)/$1.conf" status --json 2>/dev/null | jq -r '.exchange.polls_waiting // 0'
}
# ctl PROFILE LINE [BODY]: one request on the profile's control socket;
# prints the answer line.
ctl() {
	python3 - "$1/agent.sock" "$2" "${3:-}" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n" + sys.argv[3].encode())
buf = b""
while b"\n" not in buf:
    d = s.recv(65536)
    if not d:
        break
    buf += d
print(buf.split(b"\n")[0].decode())
EOF
}

@test "with an agent up, send and fetch open no connection of their own; the bytes arrive intact" {
	local out=$BATS_TEST_TMPDIR/o
	mkdir "$out"
	head -c 1024 /dev/urandom > "$BATS_TEST_TMPDIR/m.bin"
	run_t ntm -c "$(A)" -vv send "$(fqdn_of "$(B)")" "$BATS_TEST_TMPDIR/m.bin"
	assert_success
	assert_equal "$(summary)" "3 HTTPS requests, 0 connections (all carried by the agent)"
	assert_output --partial "(by the agent)"
	assert_line --partial ": announced"
	run_t ntm -c "$(B)" -vv fetch --from "$(fqdn_of "$(A)")" --wait --timeout 30 -o "$out"
	assert_success
	assert_equal "$(summary)" "4 HTTPS requests, 0 connections (all carried by the agent)"
	cmp "$out/m.bin" "$BATS_TEST_TMPDIR/m.bin"
	# Without an agent, the same send makes its own connection.
	run_t ntm -c "$(C)" -vv send "$(fqdn_of "$(B)")" "$BATS_TEST_TMPDIR/m.bin"
	assert_success
	[[ "$(summary)" =~ ^3\ HTTPS\ requests,\ 1\ connections$ ]]
	refute_output --partial "by the agent"
}

@test "a file over the agent's limit goes up directly, its small requests through the agent" {
	local out=$BATS_TEST_TMPDIR/o
	mkdir "$out"
	head -c 600000 /dev/urandom > "$BATS_TEST_TMPDIR/big.bin"
	run_t ntm -c "$(A)" -vv send "$(fqdn_of "$(B)")" "$BATS_TEST_TMPDIR/big.bin"
	assert_success
	# The PUT of 600 kB is alice's own; the creation and the announcement
	# check go through her agent.
	assert_line --regexp '^ntm: debug: PUT .*: 201 in .* \(new connection\)$'
	assert_line --regexp '^ntm: debug: POST .*/v1/cs/uploads: 201 in .* \(by the agent\)$'
	[[ "$(summary)" =~ ^3\ HTTPS\ requests,\ 1\ connections\ \(some\ carried\ by\ the\ agent\)$ ]]
	run_t ntm -c "$(B)" fetch --from "$(fqdn_of "$(A)")" -o "$out"
	assert_success
	cmp "$out/big.bin" "$BATS_TEST_TMPDIR/big.bin"
}

@test "ntm loads libcurl only for a command that speaks HTTPS itself" {
	LD_DEBUG=files ntm -c "$(B)" status --offline > /dev/null 2> "$BATS_TEST_TMPDIR/ld.status"
	LD_DEBUG=files ntm --version > /dev/null 2> "$BATS_TEST_TMPDIR/ld.version"
	head -c 100 /dev/urandom > "$BATS_TEST_TMPDIR/s.bin"
	LD_DEBUG=files ntm -c "$(C)" send "$(fqdn_of "$(B)")" "$BATS_TEST_TMPDIR/s.bin" \
	    > /dev/null 2> "$BATS_TEST_TMPDIR/ld.send"
	grep -q 'file=libjansson\.so' "$BATS_TEST_TMPDIR/ld.status"	# LD_DEBUG took
	assert_equal "$(grep -c 'file=libcurl\.so' "$BATS_TEST_TMPDIR/ld.status")" 0
	assert_equal "$(grep -c 'file=libcurl\.so' "$BATS_TEST_TMPDIR/ld.version")" 0
	grep -q 'file=libcurl\.so' "$BATS_TEST_TMPDIR/ld.send"
	# carol's send worked with the libcurl it opened.
	mkdir "$BATS_TEST_TMPDIR/o"
	run_t ntm -c "$(B)" fetch --from "$(fqdn_of "$(C)")" -o "$BATS_TEST_TMPDIR/o"
	assert_success
	cmp "$BATS_TEST_TMPDIR/o/s.bin" "$BATS_TEST_TMPDIR/s.bin"
}

@test "a fetch --wait carried by the agent and interrupted (INT, TERM): the agent carries the next one" {
	local sig pid rc out=$BATS_TEST_TMPDIR/o apid
	mkdir "$out"
	apid=$(cat "$BATS_FILE_TMPDIR/bob.agentpid")
	for sig in INT TERM; do
		# No poll left over from before (the status file lags by up to
		# 2 s): the one counted below is this fetch's.
		wait_until 10 eval '[ "$(polls_waiting dc2)" -eq 0 ]'
		# A background job of a script starts with SIGINT ignored; a
		# terminal's does not: the default back first.
		python3 -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execvp(sys.argv[1], sys.argv[1:])' \
		    ntm -c "$(B)" fetch --from "$(fqdn_of "$(A)")" --wait --timeout 60 -o "$out" \
		    > /dev/null 2>&1 &
		pid=$!
		wait_until 10 eval '[ "$(polls_waiting dc2)" -ge 1 ]'
		kill -"$sig" "$pid"
		# Ended by the signal, not by its 60 s timeout.
		wait "$pid" && rc=0 || rc=$?
		[ "$rc" -gt 128 ]
		kill -0 "$apid"
	done
	# The agent dropped each request, and the DC its long-poll at once
	# (not 60 s later): both places free.
	wait_until 10 eval '[ "$(polls_waiting dc2)" -eq 0 ]'
	assert_equal "$(ntm-dc -f "$(P)/dc2.conf" status --json | jq .exchange.polls_gone)" 2
	printf 'after the interrupts\n' > "$BATS_TEST_TMPDIR/n.txt"
	run_t ntm -c "$(A)" send "$(fqdn_of "$(B)")" "$BATS_TEST_TMPDIR/n.txt"
	assert_success
	run_t ntm -c "$(B)" -vv fetch --from "$(fqdn_of "$(A)")" --wait --timeout 30 -o "$out"
	assert_success
	assert_equal "$(summary)" "4 HTTPS requests, 0 connections (all carried by the agent)"
	cmp "$out/n.txt" "$BATS_TEST_TMPDIR/n.txt"
}

@test "the agent refuses a bad https request, naming the field, and keeps serving" {
	local r
	r=$(ctl "$(B)" '{"cmd":"https","method":"GET","url":"http://127.0.0.1:1/"}')
	assert_equal "$(jq -r .code <<<"$r")" bad_request
	[[ "$(jq -r .message <<<"$r")" == url:* ]]
	r=$(ctl "$(B)" '{"cmd":"https","method":"PATCH","url":"https://127.0.0.1:1/"}')
	[[ "$(jq -r .message <<<"$r")" == method:* ]]
	r=$(ctl "$(B)" '{"cmd":"https","method":"PUT","url":"https://127.0.0.1:1/","length":300000}')
	[[ "$(jq -r .message <<<"$r")" == length:* ]]
	r=$(ctl "$(B)" '{"cmd":"https","method":"GET","url":"https://127.0.0.1:1/","timeout_ms":0}')
	[[ "$(jq -r .message <<<"$r")" == timeout_ms:* ]]
	r=$(ctl "$(B)" '{"cmd":"https","method":"GET","url":"https://127.0.0.1:1/","via":"x"}')
	assert_equal "$(jq -r .code <<<"$r")" bad_request
	[[ "$(jq -r .message <<<"$r")" == *via* ]]
	# Nothing listens there: an error with its code, not an HTTP answer.
	r=$(ctl "$(B)" '{"cmd":"https","method":"GET","url":"https://127.0.0.1:1/","timeout_ms":3000}')
	assert_equal "$(jq -r .ok <<<"$r")" false
	assert_equal "$(jq -r .code <<<"$r")" connect
	# What the server answers comes back as it is: here the CS's 401.
	r=$(ctl "$(B)" '{"cmd":"https","method":"POST","url":"'"$(platform_cs_url "$(P)")"'/v1/cs/uploads","content_type":"application/json","length":2}' '{}')
	assert_equal "$(jq -r .ok <<<"$r")" true
	assert_equal "$(jq -r .status <<<"$r")" 401
	kill -0 "$(cat "$BATS_FILE_TMPDIR/bob.agentpid")"
	run_t ntm -c "$(B)" status --json
	assert_success
}

@test "the agent stops during a fetch --wait: the fetch goes on directly and gets the file" {
	local pid out=$BATS_TEST_TMPDIR/o
	mkdir "$out"
	ntm -c "$(B)" -vv fetch --from "$(fqdn_of "$(A)")" --wait --timeout 60 -o "$out" \
	    > "$BATS_TEST_TMPDIR/f.out" 2>&1 &
	pid=$!
	wait_until 10 eval '[ "$(polls_waiting dc2)" -ge 1 ]'
	run_t ntm -c "$(B)" down
	assert_success
	printf 'while bob had no agent\n' > "$BATS_TEST_TMPDIR/w.txt"
	# The fetch's own long-poll is in place before the send.
	wait_until 10 grep -q 'going on without the agent' "$BATS_TEST_TMPDIR/f.out"
	wait_until 10 eval '[ "$(polls_waiting dc2)" -ge 1 ]'
	run_t ntm -c "$(A)" send "$(fqdn_of "$(B)")" "$BATS_TEST_TMPDIR/w.txt"
	assert_success
	wait "$pid"
	cmp "$out/w.txt" "$BATS_TEST_TMPDIR/w.txt"
	run grep -c '(new connection)' "$BATS_TEST_TMPDIR/f.out"
	[ "$output" -ge 1 ]
	agent_up "$(B)" dc2
}
