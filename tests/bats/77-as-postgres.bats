#!/usr/bin/env bats
# The AS on PostgreSQL (`database` in ntm.conf(5)): a real cluster of this
# file's own (initdb and pg_ctl as nobody, a Unix socket in a temporary
# directory), the same accounts, logins, device certificates, revocations
# and pushes as on SQLite, all kept in the cluster.

load helpers

setup_file() {
	pg_up
	PLATFORM_AS_DATABASE=$(pg_conninfo) platform_up
	add_user alice alice-pw-1
	add_user bob bob-pw-1
}
teardown_file() {
	platform_down
	pg_down
}

token() { jq -r .token "$1/session.json"; }
# at_dc TOKEN: the status of GET /v1/exchange/cache at dc1 with TOKEN.
at_dc() {
	curl -s -o /dev/null -w '%{http_code}' --max-time 10 --cacert "$(ca)" \
	    -H "Authorization: Bearer $1" "$(dc1_url)/v1/exchange/cache"
}

@test "init made the AS's schema in PostgreSQL, no SQLite file; users and servers are there" {
	assert_file_not_exists "$(P)/as/as.db"
	[ "$(pg_sql 'SELECT version FROM ntm_schema')" -gt 0 ]
	run pg_sql "SELECT name FROM users ORDER BY name"
	assert_output $'alice\nbob'
	run pg_sql "SELECT role || ' ' || name FROM servers ORDER BY serial"
	assert_output $'dc dc1.ntm.test\ndc dc2.ntm.test\nrs rs1.ntm.test\ncs cs1.localhost'
	run_t ntm-as -f "$(P)/as.conf" user list --json
	assert_success
	assert_equal "$(jq -r '.[].name' <<<"$output" | tr '\n' ' ')" "alice bob "
}

@test "a login through a DC: its token and device certificate are recorded in PostgreSQL" {
	local p=$BATS_TEST_TMPDIR/a fq
	run login "$p" alice alice-pw-1 "$(dc1_url)" --json
	assert_success
	fq=$(jf "$output" fqdn)
	assert_equal "$fq" alice.dc1.ntm.test
	assert_file_exists "$p/device.cert"
	assert_equal "$(at_dc "$(token "$p")")" 200
	[ "$(pg_sql "SELECT count(*) FROM tokens WHERE \"user\" = 'alice' AND dc = 'dc1.ntm.test'")" -ge 1 ]
	run pg_sql "SELECT \"user\" || ' ' || dc FROM devices WHERE fqdn = '$fq'"
	assert_output "alice dc1.ntm.test"
	# the device's key, from the sealed login, is the one certified
	[ "$(pg_sql "SELECT count(*) FROM token_keys")" -ge 1 ]
}

@test "a wrong password and a locked account are refused as on SQLite" {
	run login "$BATS_TEST_TMPDIR/w" alice wrong-pw "$(dc1_url)"
	assert_failure 4
	run_t ntm-as -f "$(P)/as.conf" user lock bob
	assert_success
	run login "$BATS_TEST_TMPDIR/l" bob bob-pw-1 "$(dc1_url)"
	assert_failure 6
	run_t ntm-as -f "$(P)/as.conf" user unlock bob
	assert_success
	run login "$BATS_TEST_TMPDIR/l" bob bob-pw-1 "$(dc1_url)"
	assert_success
}

@test "a lock is queued in PostgreSQL and pushed: the DC session ends; the cursors move" {
	local p=$BATS_TEST_TMPDIR/c t
	add_user carol carol-pw-1
	login "$p" carol carol-pw-1 "$(dc1_url)" > /dev/null
	t=$(token "$p")
	assert_equal "$(at_dc "$t")" 200
	run_t ntm-as -f "$(P)/as.conf" user lock carol
	assert_success
	assert_output "revocation of carol's tokens at 1 DC queued for the servers"
	wait_until 10 eval '[ "$(at_dc "$t")" = 401 ]'
	[ "$(pg_sql "SELECT count(*) FROM revocations WHERE \"user\" = 'carol'")" -eq 1 ]
	# every server of revoke_url took it: its cursor is past the entry
	wait_until 10 eval '[ "$(pg_sql "SELECT count(*) FROM push_cursor WHERE last_id >= (SELECT max(id) FROM revocations)")" -eq 3 ]'
	run_t ntm-as -f "$(P)/as.conf" user unlock carol
	login "$p" carol carol-pw-1 "$(dc1_url)" > /dev/null
	assert_equal "$(at_dc "$(token "$p")")" 200
}

@test "a logout queues its token; a revoked device renews no more" {
	local p=$BATS_TEST_TMPDIR/d fq n
	add_user dave dave-pw-1
	login "$p" dave dave-pw-1 "$(dc1_url)" > /dev/null
	n=$(pg_sql "SELECT count(*) FROM revocations WHERE token_id IS NOT NULL")
	run_t ntm -c "$p" logout
	assert_success
	wait_until 10 eval '[ "$(pg_sql "SELECT count(*) FROM revocations WHERE token_id IS NOT NULL")" -gt "$n" ]'
	login "$p" dave dave-pw-1 "$(dc1_url)" > /dev/null
	fq=$(jq -r .fqdn "$p/session.json")
	run_t ntm-as -f "$(P)/as.conf" device revoke "$fq"
	assert_success
	# the logged-out token is still unexpired: queued again, with the new one
	assert_output "device $fq revoked: 2 tokens queued for the servers"
	[ -n "$(pg_sql "SELECT revoked_at FROM devices WHERE fqdn = '$fq' LIMIT 1")" ]
	run_t ntm -c "$p" login --renew < /dev/null
	assert_failure 4
	assert_output --partial "renew_refused: the device was revoked"
}

@test "server revoke: recorded and queued in PostgreSQL; the serial is the store's" {
	local pk serial
	pk=$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
	run_t ntm-as -f "$(P)/as.conf" server add --role dc --name dcx.ntm.test --key "$pk"
	assert_success
	serial=$(pg_sql "SELECT serial FROM servers WHERE name = 'dcx.ntm.test'")
	run_t ntm-as -f "$(P)/as.conf" server list --json
	assert_equal "$(jq -r '.[] | select(.name == "dcx.ntm.test") | .serial' <<<"$output")" "$serial"
	run_t ntm-as -f "$(P)/as.conf" server revoke "$serial"
	assert_success
	[ "$(pg_sql "SELECT count(*) FROM revocations WHERE serial = $serial")" -eq 1 ]
	[ -n "$(pg_sql "SELECT revoked_at FROM servers WHERE serial = $serial")" ]
}

@test "a PostgreSQL database without the AS's schema: the daemon and the admin commands refuse it" {
	local conf=$BATS_TEST_TMPDIR/empty.conf
	pg_sql "CREATE DATABASE empty_as"
	sed -e "s|^database = .*|database = $(pg_conninfo | sed 's/dbname=postgres/dbname=empty_as/')|" \
	    -e "s|^listen = .*|listen = 127.0.0.1:$(free_port)|" "$(P)/as.conf" > "$conf"
	run_t ntm-as -f "$conf" user list
	assert_failure 1
	assert_output "ntm-as: postgresql: no AS schema in the database (run 'ntm-as init' first)"
	run_t ntm-as -d -f "$conf"
	assert_failure
	assert_output --partial "no AS schema in the database"
	# nothing was made there
	run "$(pg_bin)/psql" -X -q -A -t "$(pg_conninfo | sed 's/dbname=postgres/dbname=empty_as/')" \
	    -c "SELECT count(*) FROM pg_tables WHERE tablename = 'users'"
	assert_output 0
}

@test "database: a value that is neither sqlite nor PostgreSQL is a configuration error naming it" {
	local conf=$BATS_TEST_TMPDIR/bad.conf
	sed -e "s|^database = .*|database = /var/lib/as.db|" "$(P)/as.conf" > "$conf"
	run_t ntm-as -n -f "$conf"
	assert_failure
	assert_output --partial "database '/var/lib/as.db' is neither 'sqlite' nor a postgresql:// URI"
}

@test "PostgreSQL restarted under the running AS: it connects again; logins during the outage fail, none after" {
	run login "$BATS_TEST_TMPDIR/r0" alice alice-pw-1 "$(dc1_url)" --device r0
	assert_success
	# a restart between two logins: the next one is served on a new connection
	pg_stop
	pg_start
	run login "$BATS_TEST_TMPDIR/r1" alice alice-pw-1 "$(dc1_url)" --device r1
	assert_success
	# a login while the database is down fails, and says the AS did
	pg_stop
	run login "$BATS_TEST_TMPDIR/r2" alice alice-pw-1 "$(dc1_url)" --device r2
	assert_failure
	pg_start
	run login "$BATS_TEST_TMPDIR/r2" alice alice-pw-1 "$(dc1_url)" --device r2
	assert_success
	run pg_sql "SELECT device FROM devices WHERE device LIKE 'r_' ORDER BY device"
	assert_output $'r0\nr1\nr2'
	grep -q "postgresql: connection lost, connecting again" "$(P)/as.log"
}

@test "two ntm-as made at once on one empty database migrate it once" {
	local i pids=() rc=0
	pg_sql "CREATE DATABASE twice_as"
	for i in 1 2 3; do
		mkdir -p "$BATS_TEST_TMPDIR/i$i"
		sed -e "s|^database = .*|database = $(pg_conninfo | sed 's/dbname=postgres/dbname=twice_as/')|" \
		    -e "s|^state_dir = .*|state_dir = $BATS_TEST_TMPDIR/i$i/as|" \
		    -e "s|^pidfile = .*|pidfile = $BATS_TEST_TMPDIR/i$i/pid|" \
		    "$(P)/as.conf" > "$BATS_TEST_TMPDIR/i$i.conf"
		timeout 30 ntm-as -f "$BATS_TEST_TMPDIR/i$i.conf" init \
		    > "$BATS_TEST_TMPDIR/i$i.out" 2>&1 &
		pids+=($!)
	done
	for i in "${!pids[@]}"; do
		wait "${pids[$i]}" || { rc=1; cat "$BATS_TEST_TMPDIR/i$((i + 1)).out" >&3; }
	done
	[ "$rc" -eq 0 ]
	run "$(pg_bin)/psql" -X -q -A -t "$(pg_conninfo | sed 's/dbname=postgres/dbname=twice_as/')" \
	    -c "SELECT count(*) || ' ' || min(version) FROM ntm_schema"
	assert_output "1 $(pg_sql 'SELECT version FROM ntm_schema')"
}
