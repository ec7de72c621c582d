#!/usr/bin/env bats
# Key continuity for exchange keys (issue 12): `ntm keys exchange` and
# `rotate` with a peer there is already a key with check that the peer's
# exchange key, as the DCs hand it over, is the one the key held was
# sealed to. A DC that swaps it (here: bob's row in dc2's database, as a
# dishonest DC would) is refused, exit 16, before anything is sent.
#
#   alice@dc1 --keys--> cs1 --announce--> dc2 --> bob@dc2

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
}

teardown_file() {
	platform_down
}

A() { echo "$BATS_FILE_TMPDIR/alice"; }
B() { echo "$BATS_FILE_TMPDIR/bob"; }
fqdn_of() { jq -r .fqdn "$1/session.json"; }

@test "a rotation keeps to the peer's exchange key; one a DC swapped in is refused, exit 16" {
	local bob db k1 sent
	bob=$(fqdn_of "$(B)")
	run_t ntm -c "$(A)" keys exchange "$bob" --json
	assert_success
	k1=$(jq -r .key_id <<<"$output")
	# the same exchange key: rotating works
	run_t ntm -c "$(A)" keys rotate "$bob" --json
	assert_success
	# dc2 hands out another exchange key for bob
	db=$(find "$(P)" -name dc.db -path '*dc2*' | head -n 1)
	[ -n "$db" ]
	sqlite3 -cmd '.timeout 5000' "$db" \
	    "UPDATE clients SET xkey = 'AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE' WHERE fqdn = '$bob'"
	sent=$(ntm -c "$(A)" keys list --json | jq -r '[.keys[] | select(.peer == "'"$bob"'")] | length')
	run_t ntm -c "$(A)" keys rotate "$bob"
	assert_failure 16
	assert_output --partial "THE EXCHANGE KEY OF $bob CHANGED"
	assert_output --partial "refused"
	run_t ntm -c "$(A)" keys exchange "$bob"
	assert_failure 16
	# nothing changed at alice's side
	assert_equal "$(ntm -c "$(A)" keys list --json | jq -r '[.keys[] | select(.peer == "'"$bob"'")] | length')" "$sent"
	# after forgetting the key (the user's decision), a new exchange is allowed
	run_t ntm -c "$(A)" keys forget "$bob"
	assert_success
	run_t ntm -c "$(A)" keys exchange "$bob"
	assert_success
}
