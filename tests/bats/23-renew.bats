#!/usr/bin/env bats
# ntm login --renew: a device logs in again without its password, proving
# its device key to the AS inside the sealed box (docs/protocol.md §3.1).
# The AS takes it for the key it last certified for that device at that
# DC, and not after the account changed (a new password, a lock).

load helpers

setup_file() {
	platform_up
	add_user alice alice-pw-1
	add_user bob bob-pw-1
}
teardown_file() { platform_down; }

token() { jq -r .token "$1/session.json"; }
at_dc() {
	curl -s -o /dev/null -w '%{http_code}' --max-time 10 --cacert "$(ca)" \
	    -H "Authorization: Bearer $1" "$(dc1_url)/v1/exchange/cache"
}

@test "a logged-in device renews its login without the password: a new token, the same FQDN" {
	local p=$BATS_TEST_TMPDIR/a t1 fq
	login "$p" alice alice-pw-1 "$(dc1_url)" > /dev/null
	t1=$(token "$p")
	fq=$(jq -r .fqdn "$p/session.json")
	# no password anywhere: stdin is closed
	run_t ntm -c "$p" login --renew < /dev/null
	assert_success
	assert_output --partial "logged in as alice at dc1.ntm.test: $fq"
	[ "$(token "$p")" != "$t1" ]
	assert_equal "$(at_dc "$(token "$p")")" 200
	# the older token's session was replaced, as by any newer login
	assert_equal "$(at_dc "$t1")" 401
	grep -q "login user=alice device=.* result=renewed" "$(P)/as.log"
	# and again
	run_t ntm -c "$p" login --renew < /dev/null
	assert_success
}

@test "another key than the one certified cannot renew: renew_refused, nothing saved" {
	local p=$BATS_TEST_TMPDIR/b t
	login "$p" bob bob-pw-1 "$(dc1_url)" > /dev/null
	t=$(token "$p")
	# a device key of another device of the same profile's name
	mv "$p/device.key" "$p/device.key.real"
	ntm -c "$BATS_TEST_TMPDIR/other" keys list > /dev/null 2>&1 || true
	login "$BATS_TEST_TMPDIR/other" bob bob-pw-1 "$(dc1_url)" --device other > /dev/null
	cp "$BATS_TEST_TMPDIR/other/device.key" "$p/device.key"
	run_t ntm -c "$p" login --renew < /dev/null
	assert_failure 4
	assert_output --partial "renew_refused"
	assert_output --partial "not the one certified for it here"
	assert_equal "$(token "$p")" "$t"
	mv "$p/device.key.real" "$p/device.key"
}

@test "after a new password or a lock, a renewal is refused until a login with the password" {
	local p=$BATS_TEST_TMPDIR/c
	add_user carol carol-pw-1
	login "$p" carol carol-pw-1 "$(dc1_url)" > /dev/null
	printf 'carol-pw-2\n' | asadm user passwd carol > /dev/null
	run_t ntm -c "$p" login --renew < /dev/null
	assert_failure
	assert_output --partial "renew_refused"
	assert_output --partial "the account changed since"
	login "$p" carol carol-pw-2 "$(dc1_url)" > /dev/null
	run_t ntm -c "$p" login --renew < /dev/null
	assert_success
	run_t ntm-as -f "$(P)/as.conf" user lock carol
	run_t ntm -c "$p" login --renew < /dev/null
	assert_failure
	assert_output --partial "user_locked"
}

@test "--renew: bad uses are usage errors naming them" {
	run_t ntm -c "$BATS_TEST_TMPDIR/none" login --renew
	assert_failure 7
	assert_output "ntm: login: --renew: no session to renew (log in with the password)"
	run_t ntm -c "$BATS_TEST_TMPDIR/none" login --renew --password-file /dev/null
	assert_failure 2
	assert_output "ntm: login: --renew takes no password (--password-file)"
}
