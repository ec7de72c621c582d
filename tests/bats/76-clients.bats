#!/usr/bin/env bats
# Devices do not hold a DC's addresses for good: an admin deletes one
# (`ntm-dc client del`), and a running DC reclaims devices unseen for
# client_idle_days. Either way the device's session ends at once and its
# addresses are free again.

load helpers

setup_file() {
	platform_up
	add_user alice 'alice-pw-1'
	add_user bob 'bob-pw-1'
	add_user carol 'carol-pw-1'
}
teardown_file() {
	[ -f "$BATS_FILE_TMPDIR/dc.pid" ] && kill "$(cat "$BATS_FILE_TMPDIR/dc.pid")" 2>/dev/null
	platform_down
}

fqdns() { ntm-dc -f "$(P)/dc1.conf" client list --json | jq -r '.[].fqdn' | sort | xargs; }

@test "client del: the device is gone, its session ends at the running DC within seconds, its address is free again" {
	local p=$BATS_TEST_TMPDIR/a v4 i
	login "$p" alice alice-pw-1 "$(dc1_url)" --device phone >/dev/null
	v4=$(jq -r '.vip4' "$p/session.json")
	run_t ntm -c "$p" register --dc-udp "$(udp_of dc1)" --timeout 5
	assert_success
	run_t ntm-dc -f "$(P)/dc1.conf" client del alice.dc1.ntm.test
	assert_success
	assert_output "deleted alice.dc1.ntm.test (a running DC ends its session within seconds)"
	[[ " $(fqdns) " != *" alice.dc1.ntm.test "* ]]
	# The running DC drops the cached session: registrations go unanswered.
	for ((i = 0; i < 30; i++)); do
		ntm -c "$p" register --dc-udp "$(udp_of dc1)" --timeout 1 >/dev/null 2>&1 || break
		sleep 0.5
	done
	run_t ntm -c "$p" register --dc-udp "$(udp_of dc1)" --timeout 2
	assert_failure
	grep -q "client alice.dc1.ntm.test: deleted from the database; its session ends" "$(P)/dc1.log"
	# Its address goes to the next new device.
	login "$BATS_TEST_TMPDIR/b" bob bob-pw-1 "$(dc1_url)" >/dev/null
	assert_equal "$(jq -r '.vip4' "$BATS_TEST_TMPDIR/b/session.json")" "$v4"
}

@test "client del: an unknown FQDN and a malformed one, one line each" {
	run_t ntm-dc -f "$(P)/dc1.conf" client del nobody.dc1.ntm.test
	assert_failure 1
	assert_output "ntm-dc: client del: no client 'nobody.dc1.ntm.test'"
	run_t ntm-dc -f "$(P)/dc1.conf" client del 'no such'
	assert_failure 2
	assert_output "ntm-dc: client del: 'no such' is not a client FQDN"
	run_t ntm-dc -f "$(P)/dc1.conf" client del
	assert_failure 2
	assert_output --partial "missing FQDN"
}

@test "client_idle_days: a DC whose clock is 100 days on reclaims the devices unseen since (their sessions long over)" {
	login "$BATS_TEST_TMPDIR/c" alice alice-pw-1 "$(dc1_url)" --device laptop >/dev/null
	[[ " $(fqdns) " == *" alice.dc1.ntm.test "* ]]
	platform_stop_role "$(P)" dc1
	# The same DC, 100 days later. Its AS certificate (30 days) would have
	# been renewed by then: one for a year stands for that; its TLS
	# certificate is good for a year.
	ntm-as -f "$(P)/as.conf" server add --role dc --name dc1.ntm.test --days 365 \
	    --key "$(ntm-dc -f "$(P)/dc1.conf" pubkey)" > "$(P)/dc1/server.cert"
	faketime -f +100d ntm-dc -d -f "$(P)/dc1.conf" >>"$(P)/dc1.log" 2>&1 &
	echo $! > "$BATS_FILE_TMPDIR/dc.pid"
	for ((i = 0; i < 50; i++)); do
		grep -q 'reclaimed [0-9]* device' "$(P)/dc1.log" && break
		sleep 0.2
	done
	run grep 'reclaimed [0-9]* devices* unseen for 90 days' "$(P)/dc1.log"
	assert_success
	[[ " $(fqdns) " != *" alice.dc1.ntm.test "* ]]
	[[ " $(fqdns) " != *" bob.dc1.ntm.test "* ]]
}

@test "max_devices: one device more than the cap is refused (403 too_many_devices, exit 8); known devices log in again; a deleted one frees a place" {
	local i
	[ -f "$BATS_FILE_TMPDIR/dc.pid" ] && kill "$(cat "$BATS_FILE_TMPDIR/dc.pid")" 2>/dev/null
	platform_stop_role "$(P)" dc1
	for ((i = 0; i < 50; i++)); do
		ss -Hltn "sport = :$(platform_port "$(P)" dc1)" | grep -q . || break
		sleep 0.1
	done
	echo "max_devices = 2" >> "$(P)/dc1.conf"
	ntm-dc -d -f "$(P)/dc1.conf" >>"$(P)/dc1.log" 2>&1 &
	echo $! > "$BATS_FILE_TMPDIR/dc.pid"
	wait_health "$(dc1_url)" "$(ca)"
	login "$BATS_TEST_TMPDIR/d1" carol carol-pw-1 "$(dc1_url)" --device one >/dev/null
	login "$BATS_TEST_TMPDIR/d2" carol carol-pw-1 "$(dc1_url)" --device two >/dev/null
	run login "$BATS_TEST_TMPDIR/d3" carol carol-pw-1 "$(dc1_url)" --device three
	assert_failure 8
	assert_output "ntm: login: too_many_devices: user carol has 2 devices at this DC already (max_devices); an administrator frees one with 'ntm-dc client del'"
	assert_file_not_exists "$BATS_TEST_TMPDIR/d3/session.json"
	# A device it has logs in again.
	run login "$BATS_TEST_TMPDIR/d1" carol carol-pw-1 "$(dc1_url)" --device one
	assert_success
	run_t ntm-dc -f "$(P)/dc1.conf" client del "$(jq -r .fqdn "$BATS_TEST_TMPDIR/d2/session.json")"
	assert_success
	run login "$BATS_TEST_TMPDIR/d3" carol carol-pw-1 "$(dc1_url)" --device three
	assert_success
}
