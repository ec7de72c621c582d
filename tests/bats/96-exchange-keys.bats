#!/usr/bin/env bats
# ntm send / fetch / keys in everyday use (issue 10): a missing FILE named as
# such, key rotation with a file in flight, progress on request.
#
#   alice@dc1 --keys, sealed data--> cs1 --announce--> dc2 --cache list--> bob@dc2
#
# The resolver is dnsmasq; TLS is real (the demo CA); storage is SQLite.

load helpers

setup_file() {
	platform_init "$(P)" >"$BATS_FILE_TMPDIR/init.log" 2>&1 || {
		cat "$BATS_FILE_TMPDIR/init.log" >&3; return 1; }
	local cs="cs_url = $(platform_cs_url "$(P)")"
	echo "$cs" >> "$(P)/dc1.conf"
	echo "$cs" >> "$(P)/dc2.conf"
	echo "$cs" >> "$(P)/as.conf"
	platform_start "$(P)"
	platform_resolver_start "$(P)"
	add_user alice 'alice-pw-1'
	add_user bob 'bob-pw-1'
	login "$BATS_FILE_TMPDIR/alice" alice alice-pw-1 "$(dc1_url)" >/dev/null
	login "$BATS_FILE_TMPDIR/bob" bob bob-pw-1 "$(dc2_url)" >/dev/null
	head -c 3000000 /dev/urandom > "$BATS_FILE_TMPDIR/file.bin"
}

teardown_file() {
	platform_down
}

A() { echo "$BATS_FILE_TMPDIR/alice"; }
B() { echo "$BATS_FILE_TMPDIR/bob"; }
fqdn_of() { jq -r .fqdn "$1/session.json"; }
# keys_of PROFILE PEER: "current/key_id" lines of ntm keys list --json for PEER.
keys_of() {
	ntm -c "$1" keys list --json |
	    jq -r --arg p "$2" '.keys[] | select(.peer == $p) | "\(.current)/\(.key_id)"'
}

@test "send: a last operand that is neither a file nor a keyed peer is a missing file" {
	local bob
	bob=$(fqdn_of "$(B)")
	run_t ntm -c "$(A)" send "$bob" missing.txt
	assert_failure 2
	assert_output "ntm: send: missing.txt: no such file"
	run_t ntm -c "$(A)" send "$bob" ./dir/missing.txt
	assert_failure 2
	assert_output "ntm: send: ./dir/missing.txt: no such file"
	# A name that may be meant as a peer gets the hint as well.
	run_t ntm -c "$(A)" send "$bob" carol.dc1.ntm.test
	assert_failure 2
	assert_output --partial "carol.dc1.ntm.test: no such file (nor a peer with a shared key"
	# A peer we share a key with stays a peer (input from stdin).
	run_t ntm -c "$(A)" keys exchange "$bob"
	assert_success
	run_t ntm -c "$(A)" send carol.dc1.ntm.test "$bob" </dev/null
	assert_failure 13
	assert_output --partial "no shared key with carol.dc1.ntm.test"
	run_t ntm -c "$(B)" fetch -o "$BATS_TEST_TMPDIR"
	assert_success
}

@test "rotation with a file in flight: bob still opens it; both keys kept, then the old one goes" {
	local bob alice id k1 k2 out=$BATS_TEST_TMPDIR/out
	bob=$(fqdn_of "$(B)")
	alice=$(fqdn_of "$(A)")
	run_t ntm -c "$(A)" keys forget "$bob"	# from the test before
	run_t ntm -c "$(A)" keys exchange "$bob" --json
	assert_success
	k1=$(jq -r .key_id <<<"$output")
	run_t ntm -c "$(B)" fetch -o "$BATS_TEST_TMPDIR"
	assert_success
	# A file sealed with k1, then a new key before bob fetched it.
	run_t ntm -c "$(A)" send "$bob" "$BATS_FILE_TMPDIR/file.bin" --json
	assert_success
	id=$(jq -r .id <<<"$output")
	run_t ntm -c "$(A)" keys exchange "$bob" --json
	assert_success
	k2=$(jq -r .key_id <<<"$output")
	[ "$k1" != "$k2" ]
	# alice keeps k1 while the file waits; keys list shows which is current.
	assert_equal "$(keys_of "$(A)" "$bob")" "true/$k2"$'\n'"false/$k1"
	run_t ntm -c "$(A)" keys list
	assert_output --partial "previous key id: $k1"
	run_t ntm -c "$(A)" keys show "$bob" --json
	assert_equal "$(jq -r .key_id <<<"$output")" "$k2"

	# bob takes k2 but cannot write the file (standard output closed): the
	# entry stays, and so does k1 at his side.
	run timeout 30 bash -c 'ntm -c "$1" fetch -o - >/dev/full' _ "$(B)"
	assert_failure 1
	assert_output --partial "cannot write to standard output"
	assert_equal "$(keys_of "$(B)" "$alice")" "true/$k2"$'\n'"false/$k1"

	# The file opens with k1; then bob needs it no more.
	mkdir "$out"
	run_t ntm -c "$(B)" fetch -o "$out" --json
	assert_success
	assert_equal "$(jq -r '.fetched[0].kind' <<<"$output")" data
	cmp "$out/file.bin" "$BATS_FILE_TMPDIR/file.bin"
	assert_equal "$(keys_of "$(B)" "$alice")" "true/$k2"

	# alice sees it delivered; her next fetch finds nothing bob sealed with
	# k1 either, and k1 goes at her side too.
	run_t ntm -c "$(A)" send --status "$id"
	assert_success
	assert_output --regexp "$bob: delivered at "
	run_t ntm -c "$(A)" fetch -o "$BATS_TEST_TMPDIR"
	assert_success
	assert_equal "$(keys_of "$(A)" "$bob")" "true/$k2"
	# The new key works both ways.
	run_t ntm -c "$(A)" send "$bob" "$BATS_FILE_TMPDIR/file.bin"
	assert_success
	run_t ntm -c "$(B)" fetch -o "$out"
	assert_success
	cmp "$out/file.bin.1" "$BATS_FILE_TMPDIR/file.bin"
}

@test "a rotation with nothing in flight: the previous key goes at the next fetch" {
	local bob k
	bob=$(fqdn_of "$(B)")
	run_t ntm -c "$(A)" keys forget "$bob"
	run_t ntm -c "$(A)" keys exchange "$bob"
	assert_success
	run_t ntm -c "$(A)" keys rotate "$bob" --json
	assert_success
	k=$(jq -r .key_id <<<"$output")
	# bob may still be sealing with the old key until he fetches the new one.
	assert_equal "$(ntm -c "$(A)" keys list --json |
	    jq -r --arg p "$bob" '[.keys[] | select(.peer == $p and .current == false)][0].peer_waiting')" true
	run_t ntm -c "$(A)" fetch -o "$BATS_TEST_TMPDIR"
	assert_success
	assert_equal "$(keys_of "$(A)" "$bob")" "true/$k"
	run_t ntm -c "$(B)" fetch -o "$BATS_TEST_TMPDIR"
	assert_success
	assert_equal "$(keys_of "$(B)" "$(fqdn_of "$(A)")")" "true/$k"
}

@test "the recipient rotates while a file sealed with the old key is on its way: it still opens" {
	local bob alice k1 k2 out=$BATS_TEST_TMPDIR/out
	bob=$(fqdn_of "$(B)")
	alice=$(fqdn_of "$(A)")
	mkdir "$out"
	run_t ntm -c "$(A)" keys exchange "$bob" --json
	assert_success
	k1=$(jq -r .key_id <<<"$output")
	run_t ntm -c "$(B)" fetch -o "$BATS_TEST_TMPDIR"
	assert_success
	run_t ntm -c "$(A)" send "$bob" "$BATS_FILE_TMPDIR/file.bin"
	assert_success
	# bob makes a new key with alice before he fetched the file.
	run_t ntm -c "$(B)" keys exchange "$alice" --json
	assert_success
	k2=$(jq -r .key_id <<<"$output")
	assert_equal "$(keys_of "$(B)" "$alice")" "true/$k2"$'\n'"false/$k1"
	run_t ntm -c "$(B)" fetch -o "$out"
	assert_success
	cmp "$out/file.bin" "$BATS_FILE_TMPDIR/file.bin"
	assert_equal "$(keys_of "$(B)" "$alice")" "true/$k2"
	run_t ntm -c "$(A)" fetch -o "$BATS_TEST_TMPDIR"
	assert_success
	assert_output --partial "key from $bob"
}

@test "--progress shows rate and time left off a terminal; without it nothing extra" {
	local bob out=$BATS_TEST_TMPDIR/out err=$BATS_TEST_TMPDIR/err
	bob=$(fqdn_of "$(B)")
	mkdir "$out"
	# Not a terminal: stderr stays empty.
	run_t ntm -c "$(A)" send "$bob" "$BATS_FILE_TMPDIR/file.bin" --json
	assert_success
	run_t bash -c 'ntm -c "$1" fetch -o "$2" 2>"$3"' _ "$(B)" "$out" "$err.quiet"
	assert_success
	assert_output --partial "fetched $out/file.bin"
	[ ! -s "$err.quiet" ]
	run_t bash -c 'ntm -c "$1" send "$2" "$3" --no-progress 2>"$4"' _ "$(A)" "$bob" \
	    "$BATS_FILE_TMPDIR/file.bin" "$err.none"
	assert_success
	[ ! -s "$err.none" ]
	run_t ntm -c "$(B)" fetch -o "$out" --no-progress
	assert_success

	# --progress: the rate and the time taken, on stderr only (a file is
	# sealed as it goes up: one phase).
	run_t bash -c 'ntm -c "$1" send "$2" "$3" --progress 2>"$4"' _ "$(A)" "$bob" \
	    "$BATS_FILE_TMPDIR/file.bin" "$err.send"
	assert_success
	refute_output --partial "MiB/s"
	run cat "$err.send"
	assert_output --regexp "ntm: send: upload 2\.9 / 2\.9 MiB \(100%\), [0-9.]+ MiB/s, in [0-9]+\.[0-9]s"
	run_t bash -c 'ntm -c "$1" fetch -o "$2" --progress 2>"$3"' _ "$(B)" "$out" "$err.fetch"
	assert_success
	run cat "$err.fetch"
	assert_output --regexp "ntm: fetch: download 2\.9 / 2\.9 MiB \(100%\), [0-9.]+ MiB/s, in [0-9]+\.[0-9]s"
}

@test "a send talks to the CS alone over one connection; a remembered CS that is gone is asked for again" {
	local bob id dc
	bob=$(fqdn_of "$(B)")
	printf 'x' > "$BATS_TEST_TMPDIR/one"
	run_t ntm -c "$(A)" send "$bob" "$BATS_TEST_TMPDIR/one"	# remembers the CS
	assert_success
	run_t ntm -c "$(A)" -vv send "$bob" "$BATS_TEST_TMPDIR/one" --json
	assert_success
	assert_output --partial "debug: 3 HTTPS requests, 1 connections"
	refute_output --partial "/v1/exchange/cs"
	id=$(grep -o "[0-9a-f]\{64\}" <<<"$output" | head -n 1)
	# The CS moved (a port nothing listens on): the DC is asked again.
	dc=$(jq -r .dc_url "$(A)/session.json")
	printf '{"dc":"%s","cs":"https://127.0.0.1:%s","time":%s}' "$dc" "$(free_port)" \
	    "$(date +%s)" > "$(A)/cs.json"
	run_t ntm -c "$(A)" send --status "$id"
	assert_success
	assert_output --partial "$bob: announced"
	printf '{"dc":"%s","cs":"https://127.0.0.1:%s","time":%s}' "$dc" "$(free_port)" \
	    "$(date +%s)" > "$(A)/cs.json"
	run_t ntm -c "$(A)" -v send "$bob" "$BATS_TEST_TMPDIR/one"
	assert_success
	assert_output --partial "asking $dc for its CS"
	run_t ntm -c "$(B)" fetch -o "$BATS_TEST_TMPDIR"
	assert_success
}
