#!/usr/bin/env bats
# Server certificates are short (server_cert_days, 30 by default) and
# renewed by their servers (POST /v1/as/renew, docs/protocol.md §3.1):
# same serial, name and key, for longer, written back to the cert file and
# used at once. A revoked server gets none.

load helpers

setup_file() {
	platform_init "$(P)" > "$BATS_FILE_TMPDIR/init.log" 2>&1 || {
		cat "$BATS_FILE_TMPDIR/init.log" >&3; return 1; }
	local r
	# as enrolled: the default lifetime
	asadm server list --json > "$BATS_FILE_TMPDIR/before.json"
	for r in dc1 rs cs; do
		cp "$(P)/$r/server.cert" "$BATS_FILE_TMPDIR/$r.cert.before"
		# renew at once (the limit is far beyond the lifetime)
		echo "cert_renew_before_s = 315360000" >> "$(P)/$r.conf"
	done
	# renewals last 60 days
	echo "server_cert_days = 60" >> "$(P)/as.conf"
	platform_start "$(P)"
}
teardown_file() { platform_down; }

# field NAME KEY [FILE]: a server's row of `server list --json`.
field() {
	jq -r --arg n "$1" ".[] | select(.name == \$n) | .$2" \
	    "${3:-/dev/stdin}"
}
lifetime_days() {	# NAME [FILE]
	local j=${2:-}
	[ -n "$j" ] || { j=$BATS_TEST_TMPDIR/now.json; asadm server list --json > "$j"; }
	echo $(( ($(field "$1" not_after "$j") - $(field "$1" not_before "$j") + 3600) / 86400 ))
}

@test "servers are enrolled for 30 days by default; each renews its own for 60 at once" {
	local r n
	for n in dc1.ntm.test rs1.ntm.test cs1.localhost dc2.ntm.test; do
		assert_equal "$(lifetime_days "$n" "$BATS_FILE_TMPDIR/before.json")" 30
	done
	for r in dc1 rs cs; do
		n=$(sed -n 's/^name = //p' "$(P)/$r.conf")
		wait_until 10 eval '[ "$(lifetime_days "$n")" = 60 ]'
		wait_until 10 grep -q "certificate serial [0-9]* renewed until" "$(P)/$r.log"
		# written back, and not the same as before
		! cmp -s "$(P)/$r/server.cert" "$BATS_FILE_TMPDIR/$r.cert.before"
		# the same serial
		assert_equal "$(field "$n" serial "$BATS_FILE_TMPDIR/before.json")" \
		    "$(asadm server list --json | field "$n" serial)"
	done
	# dc2 was not asked to renew yet (a third of 30 days is far)
	assert_equal "$(lifetime_days dc2.ntm.test)" 30
}

@test "the renewed certificate is taken: signed requests with it are accepted, after a restart too" {
	run "$SIGNREQ" --ca "$(ca)" --key "$(P)/dc1/identity.key" --cert "$(P)/dc1/server.cert" \
	    GET "$(dc2_url)/v1/status"
	assert_equal "$(status_of)" 200
	platform_stop_role "$(P)" dc1
	PLATFORM_ROLES=dc1 platform_start "$(P)"
	run "$SIGNREQ" --ca "$(ca)" --key "$(P)/rs/identity.key" --cert "$(P)/rs/server.cert" \
	    GET "$(dc1_url)/v1/status"
	assert_equal "$(status_of)" 200
}

@test "a revoked server gets no renewal" {
	local serial
	serial=$(asadm server list --json | field rs1.ntm.test serial)
	run_t ntm-as -f "$(P)/as.conf" server revoke "$serial"
	assert_success
	platform_stop_role "$(P)" rs
	cp "$(P)/rs/server.cert" "$BATS_TEST_TMPDIR/rs.cert"
	PLATFORM_ROLES=rs platform_start "$(P)"
	wait_until 10 grep -q "certificate renewal at .*/v1/as/renew: HTTP 401" "$(P)/rs.log"
	cmp "$(P)/rs/server.cert" "$BATS_TEST_TMPDIR/rs.cert"
}
