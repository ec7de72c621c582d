#!/usr/bin/env bats
# Temporal keys live as long as their exchange (issue 13, "orphan temporal
# keys expire with their exchange"; docs/protocol.md §3.4): a key exchange's
# temporal key waits at the recipient's DC as long as the key object the
# sender's CS announced for it; one whose key object never comes is dropped
# after xkey_orphan_s (5 s here) and counted in `ntm-dc status`, and gives
# its place in the recipient's queue of 64 back.
#
#   alice@dc1 --temporal key--> dc1 --signed POST /v1/dc/temporal--> dc2 (bob)
#       \--key object--> cs1 --signed POST /v1/dc/announce--> dc2: cache list
#   curl as alice: a temporal key alone (no key object follows: an orphan)

load helpers

setup_file() {
	platform_init "$(P)" >"$BATS_FILE_TMPDIR/init.log" 2>&1 || {
		cat "$BATS_FILE_TMPDIR/init.log" >&3; return 1; }
	local cs="cs_url = $(platform_cs_url "$(P)")"
	# Short, but longer than the steps of a loaded machine between making
	# an orphan and seeing it wait.
	printf '%s\nxkey_orphan_s = 5\n' "$cs" >> "$(P)/dc1.conf"
	printf '%s\nxkey_orphan_s = 5\n' "$cs" >> "$(P)/dc2.conf"
	echo "$cs" >> "$(P)/as.conf"
	# Objects (the key objects among them) live a day: less than the 7
	# days a temporal key may wait with no key object.
	echo "object_ttl_s = 86400" >> "$(P)/cs.conf"
	platform_start "$(P)"
	platform_resolver_start "$(P)"
	add_user alice 'alice-pw-1'
	add_user bob 'bob-pw-1'
	login "$(A)" alice alice-pw-1 "$(dc1_url)" >/dev/null
	login "$(B)" bob bob-pw-1 "$(dc2_url)" >/dev/null
}

teardown_file() { platform_down; }

A() { echo "$BATS_FILE_TMPDIR/alice"; }
B() { echo "$BATS_FILE_TMPDIR/bob"; }
fqdn_of() { jq -r .fqdn "$1/session.json"; }
token_of() { jq -r .token "$1/session.json"; }

# orphan: alice hands dc1 a temporal key for bob (no key object follows);
# prints its key id, or fails with the DC's answer.
orphan() {
	local kid tk out
	kid=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
	tk=$(head -c 80 /dev/urandom | basenc --base64url | tr -d '=\n')
	out=$(https POST "$(dc1_url)/v1/exchange/temporal" \
	    -H "Authorization: Bearer $(token_of "$(A)")" \
	    -d "{\"version\":1,\"from\":\"$(fqdn_of "$(A)")\",\"to\":\"$(fqdn_of "$(B)")\",\"key_id\":\"$kid\",\"temporal_key\":\"$tk\"}")
	[ "$(tail -n 1 <<<"$out")" = 200 ] || { echo "$out"; return 1; }
	echo "$kid"
}

# orphans N: N orphans at once, sent in parallel by one curl (one by one, a
# slow machine takes longer than xkey_orphan_s, and the first ones are
# dropped before the last go); fails unless each is taken (200).
orphans() {
	local i kid tk args=() codes
	for ((i = 0; i < $1; i++)); do
		kid=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
		tk=$(head -c 80 /dev/urandom | basenc --base64url | tr -d '=\n')
		[ "$i" -eq 0 ] || args+=(--next)
		args+=(-s -o /dev/null -w '%{http_code}\n' --max-time 10 --cacert "$(ca)"
		    -H 'Content-Type: application/json' -H "Authorization: Bearer $(token_of "$(A)")"
		    -d "{\"version\":1,\"from\":\"$(fqdn_of "$(A)")\",\"to\":\"$(fqdn_of "$(B)")\",\"key_id\":\"$kid\",\"temporal_key\":\"$tk\"}"
		    "$(dc1_url)/v1/exchange/temporal")
	done
	codes=$(curl -s --parallel --parallel-max 16 "${args[@]}" | sort | uniq -c | awk '{ print $2 ":" $1 }')
	[ "$codes" = "200:$1" ] || { echo "orphans: $codes" >&2; return 1; }
}

# bob_keys: the key ids waiting for bob at dc2, one a line.
bob_keys() {
	https GET "$(dc2_url)/v1/exchange/temporal" -H "Authorization: Bearer $(token_of "$(B)")" |
	    sed '$d' | jq -r '.keys[].key_id'
}
bob_has() { bob_keys | grep -qx "$1"; }
xstat() { ntm-dc -f "$(P)/dc2.conf" status --json 2>/dev/null | jq -r ".temporal_keys.$1 // empty"; }

@test "a temporal key whose key object never comes is dropped after xkey_orphan_s and counted; one whose key object came stays and opens" {
	local lone real entry_exp key_exp
	lone=$(orphan)
	bob_has "$lone"
	run_t ntm -c "$(A)" keys exchange "$(fqdn_of "$(B)")" --json
	assert_success
	real=$(jf "$output" key_id)
	[[ "$real" =~ ^[0-9a-f]{32}$ ]]
	bob_has "$real"
	# The real one lives as long as its key object's cache entry.
	entry_exp=$(https GET "$(dc2_url)/v1/exchange/cache" -H "Authorization: Bearer $(token_of "$(B)")" |
	    sed '$d' | jq -r --arg k "$real" '.entries[] | select(.kind == "key" and .item == $k) | .expires')
	key_exp=$(https GET "$(dc2_url)/v1/exchange/temporal" \
	    -H "Authorization: Bearer $(token_of "$(B)")" | sed '$d' |
	    jq -r --arg k "$real" '.keys[] | select(.key_id == $k) | .expires')
	[ -n "$entry_exp" ]
	assert_equal "$key_exp" "$entry_exp"
	# The lone one goes within xkey_orphan_s and a sweep (10 s).
	wait_until 30 eval '! bob_has "$lone"'
	bob_has "$real"
	wait_until 10 eval '[ "$(xstat orphaned)" -ge 1 ]'
	grep -q "temporal keys: dropped 1 with no key object after 5 s (xkey_orphan_s)" "$(P)/dc2.log"
	assert_equal "$(xstat waiting)" 1
	run ntm-dc -f "$(P)/dc2.conf" status
	assert_success
	assert_line --regexp '^temporal_keys orphaned +1$'
	# bob still opens the key that kept its place.
	run_t ntm -c "$(B)" fetch
	assert_success
	assert_output --partial "key from $(fqdn_of "$(A)")"
	run bob_keys
	assert_output ""
}

@test "orphans give their places in the recipient's queue back" {
	local kid
	orphans 64
	# The queue of 64 is full.
	run orphan
	assert_failure
	assert_output --partial '"code":"queue_full"'
	# Dropped as orphans, they leave room again.
	wait_until 30 eval '[ -z "$(bob_keys)" ]'
	kid=$(orphan)
	bob_has "$kid"
	wait_until 10 eval '[ "$(xstat orphaned)" -ge 65 ]'
}
