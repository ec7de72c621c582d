#!/usr/bin/env bats
# End-to-end identity (docs/protocol.md §2.4, §4.3): each device's key is
# certified by the AS and proved in every tunnel handshake, so a party that
# holds everything the DC holds for a tunnel — the direction with its
# temporal key K, the other end's address and certificate, any client's
# token — cannot stand in for a device. hsmitm (tests/tools) plays that
# party: with bob's token it takes bob's direction from the DC and answers
# alice on the UDP port the DC points her at (bob's agent killed, so the DC
# still sends her there). Without bob's device key it fails and alice says
# why (peer_identity, exit 16, counted); with bob's key file it succeeds,
# which shows the test can fail.

load helpers

HSMITM=$NTM_BIN/tests/hsmitm

setup_file() {
	platform_up
	platform_resolver_start "$(P)"
	add_user alice 'alice-pw-1'
	add_user bob 'bob-pw-1'
	login "$(A)" alice alice-pw-1 "$(dc1_url)" >/dev/null
	login "$(B)" bob bob-pw-1 "$(dc1_url)" >/dev/null
	agent_up "$(A)" dc1
	agent_up "$(B)" dc1
}

teardown_file() {
	agents_down
	platform_down
}

A() { echo "$BATS_FILE_TMPDIR/alice"; }
B() { echo "$BATS_FILE_TMPDIR/bob"; }
bob() { jq -r ".$1" "$(B)/session.json"; }

# bob_gone: a fresh agent for bob (so the DC counts him online with a known
# port), then killed at once without a word to the DC; prints its port.
bob_gone() {
	local pid port
	pid=$(cat "$BATS_FILE_TMPDIR/bob.agentpid" 2>/dev/null) && kill -9 "$pid" 2>/dev/null
	agent_up "$(B)" dc1 || return 1
	port=$(ntm -c "$(B)" status --json |
	    jq -r '.agent.registration.locals[0] // empty' | sed 's/.*://')
	[ -n "$port" ] || return 1
	kill -9 "$(cat "$BATS_FILE_TMPDIR/bob.agentpid")"
	echo "$port"
}

# bob_direction FILE: what the DC queued for bob (with his token, as a DC
# has it), polled until there is one (bounded), into FILE.
bob_direction() {
	local i out
	for ((i = 0; i < 100; i++)); do
		out=$(curl -s --max-time 5 --cacert "$(ca)" -H "Authorization: Bearer $(bob token)" \
		    "$(dc1_url)/v1/directions") || true
		if [ "$(jq -r '.directions | length' <<<"$out" 2>/dev/null)" -gt 0 ] 2>/dev/null; then
			jq '.directions[-1]' <<<"$out" > "$1"
			return 0
		fi
		sleep 0.1
	done
	return 1
}

# mitm [hsmitm options]: alice pings bob while hsmitm plays bob; leaves
# $d/ping.rc, $d/ping.out, $d/ping.err and $output/$status of hsmitm.
mitm() {
	local port ppid
	d=$BATS_TEST_TMPDIR
	ntm -c "$(A)" tunnel close "$(bob fqdn)" >/dev/null 2>&1 || true
	port=$(bob_gone)
	[ -n "$port" ]
	timeout 30 ntm -c "$(A)" tunnel ping -c 1 --timeout 12 "$(bob fqdn)" \
	    >"$d/ping.out" 2>"$d/ping.err" &
	ppid=$!
	bob_direction "$d/dir.json"
	run timeout 30 "$HSMITM" --direction "$d/dir.json" --bind "127.0.0.1:$port" \
	    --timeout 8 "$@"
	wait "$ppid" && echo 0 >"$d/ping.rc" || echo $? >"$d/ping.rc"
}

@test "login: the device key is made 0600, its AS certificate checked and kept, the AS key pinned" {
	assert_file_exists "$(A)/device.key"
	run stat -c %a "$(A)/device.key"
	assert_output 600
	assert_file_exists "$(A)/device.cert"
	assert_file_exists "$(A)/as.key"
	# the pinned key is the AS's own
	run cat "$(A)/as.key"
	assert_output "$(cat "$(P)/as.pub")"
	# status shows it, and this device's fingerprint
	run_t ntm -c "$(A)" status --offline --json
	assert_success
	assert_equal "$(jq -r .as_key <<<"$output")" "$(cat "$(P)/as.pub")"
	assert_equal "$(jq -r .as_key_from <<<"$output")" pinned
	fp=$(jq -r .device_fingerprint <<<"$output")
	[[ $fp =~ ^[0-9a-f]{4}(-[0-9a-f]{4}){7}$ ]]
	run_t ntm -c "$(A)" keys show "$(jq -r .fqdn "$(A)/session.json")"
	assert_output --partial "device key: $fp"
}

@test "tunnel list shows the peer's verified identity and device key fingerprint" {
	run_t ntm -c "$(A)" tunnel ping -c 1 --timeout 15 "$(bob fqdn)"
	assert_success
	run_t ntm -c "$(A)" tunnel list --json
	assert_success
	assert_equal "$(jq -r '.tunnels[0].peer_verified' <<<"$output")" true
	fp=$(jq -r '.tunnels[0].peer_fingerprint' <<<"$output")
	[[ $fp =~ ^[0-9a-f]{4}(-[0-9a-f]{4}){7}$ ]]
	run_t ntm -c "$(A)" tunnel list
	assert_output --partial "identity: $(bob fqdn) verified by the AS, device key $fp"
}

@test "the party in the middle with bob's own device key completes the handshake (the test can fail)" {
	mitm --key "$(B)/device.key"
	assert_success
	assert_output --partial "SESSION ESTABLISHED with $(jq -r .fqdn "$(A)/session.json")"
}

@test "a DC in the middle with K but not bob's key: no session; alice refuses it, exit 16, counted" {
	run_t ntm -c "$(A)" status --json
	before=$(jq -r '.agent.dropped.identity // 0' <<<"$output")
	mitm
	assert_failure 3
	assert_output --partial "no session with $(jq -r .fqdn "$(A)/session.json")"
	mitm_out=$output
	run_t ntm -c "$(A)" status --json
	after=$(jq -r '.agent.dropped.identity' <<<"$output")
	[ "$after" -gt "$before" ]
	# alice asked, so on loopback she initiates: she got an answer made
	# with K but without bob's key, and gave up at once, naming bob
	assert_equal "$(jq -r .role "$d/dir.json")" responder
	grep -q "answered with K alone" <<<"$mitm_out"
	assert_equal "$(cat "$d/ping.rc")" 16
	run cat "$d/ping.err"
	assert_output --partial "peer_identity"
	assert_output --partial "$(bob fqdn)"
	assert_output --partial "device key"
	# and her agent's log says it loudly, naming bob
	run grep -c "holds the tunnel's temporal key but not the device key of $(bob fqdn)" \
	    "$(A)/agent.log"
	[ "$output" -ge 1 ]
}

@test "a DC in the middle that starts the handshake itself: bob refuses it, counted per tunnel and agent" {
	local d=$BATS_TEST_TMPDIR port before out alice
	alice=$(jq -r .fqdn "$(A)/session.json")
	agent_up "$(B)" dc1
	run_t ntm -c "$(B)" status --json
	before=$(jq -r '.agent.dropped.identity // 0' <<<"$output")
	# alice's agent gone without a word; the party in the middle asks the
	# DC for a tunnel to bob with alice's token (the DC holds it) and plays
	# alice, the initiator, from her port, with K and a key of its own
	port=$(ntm -c "$(A)" status --json |
	    jq -r '.agent.registration.locals[0] // empty' | sed 's/.*://')
	[ -n "$port" ]
	kill -9 "$(cat "$BATS_FILE_TMPDIR/alice.agentpid")"
	out=$(curl -s --max-time 10 --cacert "$(ca)" -H 'Content-Type: application/json' \
	    -H "Authorization: Bearer $(jq -r .token "$(A)/session.json")" \
	    -d "{\"version\":1,\"peer\":\"$(bob fqdn)\"}" "$(dc1_url)/v1/tunnel")
	jq . <<<"$out" > "$d/dir.json"
	assert_equal "$(jq -r .role "$d/dir.json")" initiator
	run timeout 30 "$HSMITM" --direction "$d/dir.json" --bind "127.0.0.1:$port" --timeout 5
	assert_failure 3
	assert_output --partial "no session with $(bob fqdn)"
	run_t ntm -c "$(B)" status --json
	[ "$(jq -r '.agent.dropped.identity' <<<"$output")" -gt "$before" ]
	run_t ntm -c "$(B)" tunnel list --json
	[ "$(jq -r --arg p "$alice" '.tunnels[] | select(.peer == $p) | .identity_failures' \
	    <<<"$output")" -ge 1 ]
	run grep -c "holds the tunnel's temporal key but not the device key of $alice" \
	    "$(B)/agent.log"
	[ "$output" -ge 1 ]
}

@test "key continuity: a new key with a newer AS certificate is taken and shown; an older certificate played back by the DC is refused, exit 16" {
	local d=$BATS_TEST_TMPDIR bobf old new cert1 db
	bobf=$(bob fqdn)
	agent_up "$(A)" dc1
	ntm -c "$(A)" tunnel close "$bobf" >/dev/null 2>&1 || true
	run_t ntm -c "$(A)" tunnel ping -c 1 --timeout 15 "$bobf"
	assert_success
	# both sides print the same fingerprint for bob's device key
	run_t ntm -c "$(A)" keys show "$bobf" --json
	assert_success
	old=$(jq -r .device.fingerprint <<<"$output")
	run_t ntm -c "$(B)" keys show "$bobf"
	assert_success
	assert_output --partial "device key: $old"
	assert_output --partial "(this device)"
	cert1=$(cat "$(B)/device.cert")

	# bob's device gets a new key (a reinstall): a new login, a new certificate
	kill "$(cat "$BATS_FILE_TMPDIR/bob.agentpid")"
	rm "$(B)/device.key"
	login "$(B)" bob bob-pw-1 "$(dc1_url)" >/dev/null
	agent_up "$(B)" dc1
	ntm -c "$(A)" tunnel close "$bobf" >/dev/null 2>&1 || true
	run_t ntm -c "$(A)" tunnel ping -c 1 --timeout 15 "$bobf"
	assert_success
	run_t ntm -c "$(A)" keys show "$bobf" --json
	new=$(jq -r .device.fingerprint <<<"$output")
	[ "$new" != "$old" ]
	run_t ntm -c "$(B)" keys show "$bobf"
	assert_output --partial "device key: $new"

	# the DC plays back bob's first certificate (old key, still valid)
	db=$(find "$(P)" -name dc.db -path '*dc1*' | head -n 1)
	[ -n "$db" ]
	sqlite3 -cmd '.timeout 5000' "$db" \
	    "UPDATE clients SET device_cert = '$cert1' WHERE fqdn = '$bobf'"
	ntm -c "$(A)" tunnel close "$bobf" >/dev/null 2>&1 || true
	run_t ntm -c "$(A)" tunnel ping -c 1 --timeout 15 "$bobf"
	assert_failure 16
	assert_output --partial "peer_identity"
	assert_output --partial "THE DEVICE KEY OF $bobf CHANGED"
	assert_output --partial "refused"
	# and alice still holds the newer key
	run_t ntm -c "$(A)" keys show "$bobf" --json
	assert_equal "$(jq -r .device.fingerprint <<<"$output")" "$new"
}
