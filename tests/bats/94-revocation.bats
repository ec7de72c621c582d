#!/usr/bin/env bats
# Revocations reach every server (docs/protocol.md §7.5): the AS pushes
# account, token and server-certificate revocations to the DCs and the RS
# of its revoke_url (and to the CSs of cs_url). A locked user's sessions end
# at its DC; a revoked DC certificate is refused by the other DC, the RS and
# the CS, also by one that was down when it was revoked, and after their
# restarts.

load helpers

setup_file() {
	platform_up
	add_user bob bob-pw-1
	add_user carol carol-pw-1
	add_user dave dave-pw-1
	# The CS takes the push too.
	echo "cs_url = https://127.0.0.1:$(platform_port "$(P)" cs)" >> "$(P)/as.conf"
	platform_stop_role "$(P)" as
	PLATFORM_ROLES=as platform_start "$(P)"
}
teardown_file() { platform_down; }

# sreq ROLE METHOD URL [BODY]: signed as the server ROLE (its identity and
# certificate); prints the body, then the status.
sreq() {
	local role=$1
	shift
	"$SIGNREQ" --ca "$(ca)" --key "$(P)/$role/identity.key" \
	    --cert "$(P)/$role/server.cert" "$@"
}
url_of() { echo "https://127.0.0.1:$(platform_port "$(P)" "$1")"; }
# token PROFILE: the DC token of a profile's session.
token() { jq -r .token "$1/session.json"; }
# at_dc TOKEN: the status of GET /v1/exchange/cache at dc1 with TOKEN.
at_dc() {
	curl -s -o /dev/null -w '%{http_code}' --max-time 10 --cacert "$(ca)" \
	    -H "Authorization: Bearer $1" "$(dc1_url)/v1/exchange/cache"
}
# signed_status ROLE AT: the status of GET /v1/status at AT signed as ROLE.
signed_status() { sreq "$1" GET "$(url_of "$2")/v1/status" | tail -n 1; }
serial_of() {
	asadm server list --json | jq -r --arg n "$1" '.[] | select(.name == $n) | .serial'
}

@test "a locked user's DC sessions end within seconds; a new login after unlock works" {
	local p=$BATS_TEST_TMPDIR/bob t
	login "$p" bob bob-pw-1 "$(dc1_url)" > /dev/null
	t=$(token "$p")
	assert_equal "$(at_dc "$t")" 200
	run_t ntm-as -f "$(P)/as.conf" user lock bob
	assert_success
	assert_output "revocation of bob's tokens at 1 DC queued for the servers"
	wait_until 10 eval '[ "$(at_dc "$t")" = 401 ]'
	grep -q "the AS revoked bob's tokens until [0-9]*: 1 session ended" "$(P)/dc1.log"
	# The body says why.
	run curl -s --max-time 10 --cacert "$(ca)" -H "Authorization: Bearer $t" \
	    "$(dc1_url)/v1/exchange/cache"
	assert_equal "$(jq -r .code <<<"$output")" unauthorized
	[[ "$(jq -r .message <<<"$output")" == *"no live session"* ]]
	run_t ntm-as -f "$(P)/as.conf" user unlock bob
	login "$p" bob bob-pw-1 "$(dc1_url)" > /dev/null
	assert_equal "$(at_dc "$(token "$p")")" 200
}

@test "a password change ends the user's DC sessions; another user's go on" {
	local pc=$BATS_TEST_TMPDIR/carol pd=$BATS_TEST_TMPDIR/dave tc td
	login "$pc" carol carol-pw-1 "$(dc1_url)" > /dev/null
	login "$pd" dave dave-pw-1 "$(dc1_url)" > /dev/null
	tc=$(token "$pc")
	td=$(token "$pd")
	printf 'carol-pw-2\n' | asadm user passwd carol
	wait_until 10 eval '[ "$(at_dc "$tc")" = 401 ]'
	assert_equal "$(at_dc "$td")" 200
	login "$pc" carol carol-pw-2 "$(dc1_url)" > /dev/null
	assert_equal "$(at_dc "$(token "$pc")")" 200
}

@test "a revoked DC certificate: dc1, the CS and the RS refuse it within seconds, the RS though it was down; all after a restart" {
	local serial r
	for r in dc1 cs rs; do
		assert_equal "$(signed_status dc2 "$r")" 200
	done
	serial=$(serial_of dc2.ntm.test)
	[ "$serial" -ge 1 ]
	platform_stop_role "$(P)" rs
	run_t ntm-as -f "$(P)/as.conf" server revoke "$serial"
	assert_success
	wait_until 10 eval '[ "$(signed_status dc2 dc1)" = 401 ]'
	wait_until 10 eval '[ "$(signed_status dc2 cs)" = 401 ]'
	run sreq dc2 GET "$(dc1_url)/v1/status"
	[[ "$(body_of | jq -r .message)" == *"dc2.ntm.test"*"revoked"* ]]
	# Another DC's certificate is still taken.
	assert_equal "$(signed_status dc1 cs)" 200
	# The RS was down: the AS kept its cursor and sends it when it is back.
	PLATFORM_ROLES=rs platform_start "$(P)"
	wait_until 10 eval '[ "$(signed_status dc2 rs)" = 401 ]'
	assert_equal "$(signed_status dc1 rs)" 200
	grep -qx "$serial dc2.ntm.test" "$(P)/rs/revoked-servers"
	# Kept on disk: still refused after restarts.
	for r in dc1 rs; do
		platform_stop_role "$(P)" "$r"
		PLATFORM_ROLES=$r platform_start "$(P)"
	done
	assert_equal "$(signed_status dc2 dc1)" 401
	assert_equal "$(signed_status dc2 rs)" 401
}

@test "POST /v1/revoke: only the AS; a bad entry is refused whole, naming it" {
	local body
	body='{"version":1,"servers":[{"serial":77,"name":"x.ntm.test"}]}'
	run sreq dc1 POST "$(url_of rs)/v1/revoke" "$body"
	assert_equal "$(status_of)" 403
	assert_equal "$(body_of | jq -r .code)" forbidden
	body='{"version":1,"servers":[{"serial":78,"name":"y.ntm.test"},{"serial":"x","name":"z"}]}'
	run "$SIGNREQ" --ca "$(ca)" --key "$(P)/as/identity.key" --as-self as.ntm.test \
	    POST "$(url_of rs)/v1/revoke" "$body"
	assert_equal "$(status_of)" 400
	assert_equal "$(body_of | jq -r .field)" servers
	[[ "$(body_of | jq -r .message)" == "servers[1]: "* ]]
	! grep -q '^78 ' "$(P)/rs/revoked-servers"
	body='{"version":1,"servers":[{"serial":78,"name":"y.ntm.test"}]}'
	run "$SIGNREQ" --ca "$(ca)" --key "$(P)/as/identity.key" --as-self as.ntm.test \
	    POST "$(url_of rs)/v1/revoke" "$body"
	assert_equal "$(status_of)" 200
	assert_equal "$(body_of | jq -c .)" '{"servers":1,"accounts":0,"tokens":0}'
	grep -qx '78 y.ntm.test' "$(P)/rs/revoked-servers"
}

@test "a revoked device: its DC session ends within seconds, it renews no more, a login with the password works" {
	local p=$BATS_TEST_TMPDIR/dev t fq
	add_user frank frank-pw-1
	login "$p" frank frank-pw-1 "$(dc1_url)" > /dev/null
	t=$(token "$p")
	fq=$(jq -r .fqdn "$p/session.json")
	assert_equal "$(at_dc "$t")" 200
	run_t ntm-as -f "$(P)/as.conf" device revoke "$fq"
	assert_success
	assert_output "device $fq revoked: 1 token queued for the servers"
	wait_until 10 eval '[ "$(at_dc "$t")" = 401 ]'
	run_t ntm -c "$p" login --renew < /dev/null
	assert_failure 4
	assert_output --partial "renew_refused: the device was revoked"
	login "$p" frank frank-pw-1 "$(dc1_url)" > /dev/null
	assert_equal "$(at_dc "$(token "$p")")" 200
	# an FQDN never certified, and one that is not an FQDN
	run_t ntm-as -f "$(P)/as.conf" device revoke nobody.dc1.ntm.test
	assert_failure 1
	assert_output "ntm-as: no device 'nobody.dc1.ntm.test' was certified here"
	run_t ntm-as -f "$(P)/as.conf" device revoke 'no such'
	assert_failure 2
	assert_output "ntm-as: device revoke: 'no such' is not a device FQDN"
}
