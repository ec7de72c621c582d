#!/usr/bin/env bats
# Hostile and malformed HTTP input to every endpoint: each gets its
# documented 4xx JSON error (docs/protocol.md §1.1) and the daemons keep
# serving. Server-to-server requests with a missing, bad, stale, replayed,
# forged or revoked signature get 401.

load helpers

setup_file() {
	platform_up
	printf 'alice-pw\n' | ntm-as -f "$(P)/as.conf" user add alice
}
teardown_file() { platform_down; }

# expect_error STATUS CODE [FIELD]: checks $output from https()/signreq.
expect_error() {
	assert_equal "$(status_of)" "$1"
	local body
	body=$(body_of)
	assert_equal "$(jq -r .code <<<"$body")" "$2"
	[ -n "$(jq -r .message <<<"$body")" ]
	if [ -n "${3:-}" ]; then
		assert_equal "$(jq -r .field <<<"$body")" "$3"
		jq -r .message <<<"$body" | grep -q -- "$3"
	fi
}

# sreq ROLE METHOD URL [BODY] [signreq options...]: signed as the DC/RS ROLE.
sreq() {
	local role=$1
	shift
	"$SIGNREQ" --ca "$(ca)" --key "$(P)/$role/identity.key" --cert "$(P)/$role/server.cert" "$@"
}

@test "every server answers /v1/health with its role and name" {
	local r
	for r in as dc1 dc2 rs cs; do
		run https GET "https://127.0.0.1:$(platform_port "$(P)" $r)/v1/health"
		assert_equal "$(status_of)" 200
		assert_equal "$(jq -r .name <<<"$(body_of)")" "$(sed -n 's/^name = //p' "$(P)/$r.conf")"
		assert_equal "$(jq -r .protocol <<<"$(body_of)")" 1
	done
}

@test "unknown path is 404, wrong method is 405, both JSON" {
	run https GET "$(dc1_url)/v1/nope"
	expect_error 404 not_found
	run https GET "$(dc1_url)/v1/login"
	expect_error 405 method_not_allowed
	run https POST "$(as_url)/v1/health" -d '{}'
	expect_error 405 method_not_allowed
}

@test "DC /v1/login: malformed JSON, non-object, unknown, missing and wrong-typed fields" {
	local u
	u="$(dc1_url)/v1/login"
	local key=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
	run https POST "$u" -d '{"version":1,'
	expect_error 400 bad_json
	run https POST "$u" -d '[1,2]'
	expect_error 400 not_object
	run https POST "$u" -d "{\"version\":1,\"user\":\"alice\",\"password\":\"x\",\"device\":\"d1\",\"client_key\":\"$key\",\"admin\":true}"
	expect_error 400 unknown_field admin
	run https POST "$u" -d "{\"version\":1,\"password\":\"x\",\"device\":\"d1\",\"client_key\":\"$key\"}"
	expect_error 400 missing_field user
	run https POST "$u" -d "{\"version\":1,\"user\":7,\"password\":\"x\",\"device\":\"d1\",\"client_key\":\"$key\"}"
	expect_error 400 bad_field user
	run https POST "$u" -d "{\"version\":\"1\",\"user\":\"alice\",\"password\":\"x\",\"device\":\"d1\",\"client_key\":\"$key\"}"
	expect_error 400 bad_field version
	run https POST "$u" -d "{\"version\":2,\"user\":\"alice\",\"password\":\"x\",\"device\":\"d1\",\"client_key\":\"$key\"}"
	expect_error 400 bad_version
	run https POST "$u" -d "{\"version\":1,\"user\":\"alice\",\"password\":\"x\",\"device\":\"d1\",\"client_key\":\"short\"}"
	expect_error 400 bad_field client_key
	run https POST "$u" -d "{\"version\":1,\"user\":\"alice\",\"password\":\"x\",\"device\":\"bad device!\",\"client_key\":\"$key\"}"
	expect_error 400 bad_field device
	run https POST "$u" -d "{\"version\":1,\"user\":\"alice\\u0000x\",\"password\":\"x\",\"device\":\"d1\",\"client_key\":\"$key\"}"
	expect_error 400 bad_field user
}

@test "oversized bodies get 413 body_too_large" {
	head -c 70000 /dev/zero | tr '\0' 'a' > "$BATS_TEST_TMPDIR/big"
	run https POST "$(dc1_url)/v1/login" --data-binary "@$BATS_TEST_TMPDIR/big"
	expect_error 413 body_too_large
	run https POST "$(as_url)/v1/as/login" --data-binary "@$BATS_TEST_TMPDIR/big"
	expect_error 413 body_too_large
}

@test "plain HTTP to an HTTPS port gets 400 tls_required" {
	local r
	for r in as dc1 rs cs; do
		run curl -s --max-time 10 -w '\n%{http_code}\n' "http://127.0.0.1:$(platform_port "$(P)" $r)/v1/health"
		expect_error 400 tls_required
	done
}

@test "DC /v1/session and /v1/logout without or with a bad token: 401" {
	run https GET "$(dc1_url)/v1/session"
	expect_error 401 unauthorized
	run https GET "$(dc1_url)/v1/session" -H 'Authorization: Bearer AAAA'
	expect_error 401 unauthorized
	run https POST "$(dc1_url)/v1/logout" -d '{"version":1}' -H 'Authorization: Bearer garbage!!'
	expect_error 401 unauthorized
}

@test "DC /v1/logout with a valid token: strict body" {
	run login "$BATS_TEST_TMPDIR/a" alice alice-pw "$(dc1_url)"
	assert_success
	local tok
	tok=$(jq -r .token "$BATS_TEST_TMPDIR/a/session.json")
	run https POST "$(dc1_url)/v1/logout" -H "Authorization: Bearer $tok" -d '{"version":1,"x":1}'
	expect_error 400 unknown_field x
	run https POST "$(dc1_url)/v1/logout" -H "Authorization: Bearer $tok" -d 'nope'
	expect_error 400 bad_json
	run https POST "$(dc1_url)/v1/logout" -H "Authorization: Bearer $tok" -d '{"version":1}'
	assert_equal "$(status_of)" 200
}

@test "AS /v1/as/login: unsigned is 401 whatever the body" {
	run https POST "$(as_url)/v1/as/login" -d '{"version":1,"user":"alice","password":"alice-pw","device":"d"}'
	expect_error 401 unauthorized
	run https POST "$(as_url)/v1/as/login" -d 'garbage'
	expect_error 401 unauthorized
}

@test "AS /v1/as/login signed by a DC: strict JSON, then credentials" {
	local u="$(as_url)/v1/as/login"
	run sreq dc1 POST "$u" '{"version":1,"user":"alice","password":"alice-pw","device":"d1"}'
	assert_equal "$(status_of)" 200
	[ -n "$(jq -r .token <<<"$(body_of)")" ]
	run sreq dc1 POST "$u" '{"version":1,"user":"alice","password":"nope","device":"d1"}'
	expect_error 401 bad_password
	run sreq dc1 POST "$u" '{"version":1,"user":"zed","password":"nope","device":"d1"}'
	expect_error 401 bad_password
	run sreq dc1 POST "$u" '{"version":1,"user":"alice","password":"x","device":"d1","extra":1}'
	expect_error 400 unknown_field extra
	run sreq dc1 POST "$u" '{"version":1,"user":"alice","device":"d1"}'
	expect_error 400 missing_field password
	run sreq dc1 POST "$u" '{"version":1,"user":["alice"],"password":"x","device":"d1"}'
	expect_error 400 bad_field user
	run sreq dc1 POST "$u" '{"version":1,'
	expect_error 400 bad_json
}

@test "signed requests: missing headers, bad signature, tampering, stale or future date: 401" {
	local u="$(as_url)/v1/as/login" b='{"version":1,"user":"alice","password":"alice-pw","device":"d1"}'
	local what
	for what in date cert sig nonce; do
		run sreq dc1 --omit "$what" POST "$u" "$b"
		expect_error 401 unauthorized
	done
	for what in sig body path nonce; do
		run sreq dc1 --tamper "$what" POST "$u" "$b"
		expect_error 401 unauthorized
	done
	run sreq dc1 --date-offset -400 POST "$u" "$b"
	expect_error 401 unauthorized
	run sreq dc1 --date-offset 400 POST "$u" "$b"
	expect_error 401 unauthorized
	# RS and CS check signatures the same way.
	run sreq dc1 GET "https://127.0.0.1:$(platform_port "$(P)" rs)/v1/status"
	assert_equal "$(status_of)" 200
	run sreq dc1 --tamper sig GET "https://127.0.0.1:$(platform_port "$(P)" cs)/v1/status"
	expect_error 401 unauthorized
	run https GET "https://127.0.0.1:$(platform_port "$(P)" cs)/v1/status"
	expect_error 401 unauthorized
}

@test "a replayed signed request is refused" {
	run sreq dc1 --repeat 2 GET "https://127.0.0.1:$(platform_port "$(P)" rs)/v1/status"
	assert_equal "$(grep -c '^200$' <<<"$output")" 1
	assert_equal "$(status_of)" 401
	assert_output --partial unauthorized
}

@test "only DCs may call /v1/as/login; an RS certificate gets 401" {
	run sreq rs POST "$(as_url)/v1/as/login" '{"version":1,"user":"alice","password":"alice-pw","device":"d1"}'
	expect_error 401 unauthorized
}

@test "a certificate from another AS, and a revoked one, get 401" {
	local x=$BATS_TEST_TMPDIR/x
	mkdir -p "$x"
	# A second, unrelated AS issues a certificate for a "DC".
	sed -e "s|$(P)/as|$x/as2|" -e "s|^listen = .*|listen = 127.0.0.1:$(free_port)|" \
	    "$(P)/as.conf" > "$x/as2.conf"
	ntm-as -f "$x/as2.conf" init >/dev/null
	sed -e "s|$(P)/dc1|$x/dcx|" -e "s|^name = .*|name = dcx.ntm.test|" "$(P)/dc1.conf" > "$x/dcx.conf"
	local pk
	pk=$(ntm-dc -f "$x/dcx.conf" init)
	ntm-as -f "$x/as2.conf" server add --role dc --name dcx.ntm.test --key "$pk" > "$x/forged.cert"
	local b='{"version":1,"user":"alice","password":"alice-pw","device":"d1"}'
	run "$SIGNREQ" --ca "$(ca)" --key "$x/dcx/identity.key" --cert "$x/forged.cert" POST "$(as_url)/v1/as/login" "$b"
	expect_error 401 unauthorized

	# The real AS enrols the same key, the request passes, then revocation stops it.
	ntm-as -f "$(P)/as.conf" server add --role dc --name dcx.ntm.test --key "$pk" > "$x/real.cert"
	run "$SIGNREQ" --ca "$(ca)" --key "$x/dcx/identity.key" --cert "$x/real.cert" POST "$(as_url)/v1/as/login" "$b"
	assert_equal "$(status_of)" 200
	local serial
	serial=$(ntm-as -f "$(P)/as.conf" server list --json | jq -r '.[] | select(.name == "dcx.ntm.test") | .serial')
	run_t ntm-as -f "$(P)/as.conf" server revoke "$serial"
	assert_success
	run "$SIGNREQ" --ca "$(ca)" --key "$x/dcx/identity.key" --cert "$x/real.cert" POST "$(as_url)/v1/as/login" "$b"
	expect_error 401 unauthorized
	run_t ntm-as -f "$(P)/as.conf" server list --json
	run jq -r --arg s "$serial" '.[] | select((.serial|tostring) == $s) | .revoked' <<<"$output"
	assert_output true
}

@test "DC /v1/dc/moved: DCs only, signed, strict fields, the caller's own clients" {
	local u="$(dc1_url)/v1/dc/moved" tid=00112233445566778899aabbccddeeff
	local ok='"to":"bob.dc1.ntm.test","from":"alice.dc2.ntm.test","tunnel_id":"'$tid'","endpoint":"198.18.0.9:4000"'
	run https POST "$u" -d "{\"version\":1,$ok}"
	expect_error 401 unauthorized
	run sreq rs POST "$u" "{\"version\":1,$ok}"
	expect_error 401 unauthorized
	run sreq dc2 POST "$u" "{\"version\":2,$ok}"
	expect_error 400 bad_version version
	run sreq dc2 POST "$u" "{\"version\":1,$ok,\"x\":1}"
	expect_error 400 unknown_field x
	run sreq dc2 POST "$u" '{"version":1,"to":"bob.dc1.ntm.test"}'
	assert_equal "$(status_of)" 400
	run sreq dc2 POST "$u" "{\"version\":1,${ok/alice.dc2/alice.dc3}}"
	expect_error 400 bad_field from
	run sreq dc2 POST "$u" "{\"version\":1,${ok/$tid/zz}}"
	expect_error 400 bad_field tunnel_id
	run sreq dc2 POST "$u" "{\"version\":1,${ok/198.18.0.9:4000/nope}}"
	expect_error 400 bad_field endpoint
	run sreq dc2 POST "$u" "{\"version\":1,${ok/198.18.0.9:4000/[fd00::1]:99999}}"
	expect_error 400 bad_field endpoint
	# No such client here: 404, and nothing is sent.
	run sreq dc2 POST "$u" "{\"version\":1,$ok}"
	expect_error 404 unknown_peer
	run sreq dc2 POST "$u" "{\"version\":1,${ok/bob.dc1/bob.dc2}}"
	expect_error 404 unknown_peer
}

@test "DC /v1/dc/locate: version 1 or 2 (2 reads location_also), others refused naming the field" {
	local u="$(dc1_url)/v1/dc/locate" v
	local ok='"fqdn":"nobody.dc1.ntm.test","from":"alice.dc2.ntm.test"'
	for v in 1 2; do
		run sreq dc2 POST "$u" "{\"version\":$v,$ok}"
		expect_error 404 unknown_peer
	done
	for v in 0 3 -1; do
		run sreq dc2 POST "$u" "{\"version\":$v,$ok}"
		expect_error 400 bad_version version
	done
	# the other DC-to-DC routes still take version 1 only
	run sreq dc2 POST "$(dc1_url)/v1/dc/direction" "{\"version\":2,\"to\":\"bob.dc1.ntm.test\"}"
	expect_error 400 bad_version version
}

@test "after all of that every daemon still serves" {
	local r
	for r in as dc1 dc2 rs cs; do
		kill -0 "$(cat "$(P)/$r.pid")"
		run https GET "https://127.0.0.1:$(platform_port "$(P)" $r)/v1/health"
		assert_equal "$(status_of)" 200
	done
	run login "$BATS_TEST_TMPDIR/a" alice alice-pw "$(dc1_url)"
	assert_success
}

@test "every route a daemon lists (--routes) makes its checks before the handler" {
	local r url method path flags roles max code
	head -c 70000 /dev/zero | tr '\0' x > "$BATS_TEST_TMPDIR/big"
	for r in as dc1 rs cs; do
		url="https://127.0.0.1:$(platform_port "$(P)" "$r")"
		run_t "ntm-${r%[0-9]}" --routes
		assert_success
		[ "${#lines[@]}" -ge 2 ]
		while IFS=$'\t' read -r method path flags roles max; do
			[[ $max =~ ^[0-9]+$ ]]
			case $flags in
			*signed*|*bearer*)
				# Neither signed nor with a token: 401, whatever the body.
				run https "$method" "$url$path" -d '{"version":1}'
				expect_error 401 unauthorized ;;
			esac
			if [[ $flags == *signed* && $roles != any && $roles != *rs* ]]; then
				# A route that does not admit the RS: signed by it,
				# refused. (One route admits it: POST /v1/as/renew,
				# every enrolled server's; 94-cert-renew.bats.)
				run sreq rs "$method" "$url$path" '{"version":1}'
				code=$(jq -r .code <<<"$(body_of)")
				case $code in
				unauthorized) assert_equal "$(status_of)" 401 ;;
				forbidden) assert_equal "$(status_of)" 403 ;;
				*) fail "$r $method $path: signed by the RS: $output" ;;
				esac
			fi
			if [ "$max" -lt 70000 ] && [ "$method" != GET ]; then
				run https "$method" "$url$path" --data-binary @"$BATS_TEST_TMPDIR/big"
				expect_error 413 body_too_large
			fi
		done <<<"$output"
	done
}
