#!/usr/bin/env bats
# Administering the AS: accounts and server enrolment, and what the state
# directory looks like on disk.

load helpers

setup_file() { platform_up; }
teardown_file() { platform_down; }

@test "user add / list / del, with --json" {
	printf 'pw-one\n' | asadm user add frank
	run_t ntm-as -f "$(P)/as.conf" user list --json
	assert_success
	run jq -r '.[] | select(.name == "frank") | .locked' <<<"$output"
	assert_output false
	run_t ntm-as -f "$(P)/as.conf" user list
	assert_output --partial frank
	run_t ntm-as -f "$(P)/as.conf" user del frank
	assert_success
	run_t ntm-as -f "$(P)/as.conf" user list --json
	refute_output --partial frank
}

@test "user add refuses a duplicate and a bad name, naming it" {
	printf 'pw\n' | asadm user add gina
	run bash -c "printf 'pw\n' | ntm-as -f '$(P)/as.conf' user add gina"
	assert_failure 1
	assert_output --partial gina
	run bash -c "printf 'pw\n' | ntm-as -f '$(P)/as.conf' user add 'Bad!Name'"
	assert_failure
	assert_output --partial 'Bad!Name'
	assert_equal "${#lines[@]}" 1
}

@test "unknown user for del/lock/passwd fails naming it" {
	for c in del lock unlock; do
		run_t ntm-as -f "$(P)/as.conf" user "$c" nosuchuser
		assert_failure 1
		assert_output --partial nosuchuser
	done
}

@test "an empty password is refused" {
	run bash -c "printf '\n' | ntm-as -f '$(P)/as.conf' user add hank"
	assert_failure
	run_t ntm-as -f "$(P)/as.conf" user list --json
	refute_output --partial hank
}

@test "server list shows the enrolled DCs, RS and CS" {
	run_t ntm-as -f "$(P)/as.conf" server list --json
	assert_success
	run jq -r '[.[] | .name] | sort | join(" ")' <<<"$output"
	assert_output "cs1.localhost dc1.ntm.test dc2.ntm.test rs1.ntm.test"
}

@test "server add rejects a bad role, name or key" {
	run_t ntm-as -f "$(P)/as.conf" server add --role xx --name a.test --key AAAA
	assert_failure 2
	assert_output --partial xx
	run_t ntm-as -f "$(P)/as.conf" server add --role dc --name 'no good' --key AAAA
	assert_failure 2
	run_t ntm-as -f "$(P)/as.conf" server add --role dc --name ok.test --key AAAA
	assert_failure 2
	assert_output --partial AAAA
}

@test "state directories are 0700 and secret files 0600" {
	local d f
	for d in as dc1 dc2 rs cs; do
		run stat -c %a "$(P)/$d"
		assert_output 700
		for f in identity.key tls.key; do
			run stat -c %a "$(P)/$d/$f"
			assert_output 600
		done
	done
	for f in as/ca.key as/as.db dc1/dc.db; do
		run stat -c %a "$(P)/$f"
		assert_output 600
	done
}

@test "a daemon refuses a key file readable by others" {
	cp -a "$(P)/rs" "$BATS_TEST_TMPDIR/rs"
	sed -e "s|$(P)/rs|$BATS_TEST_TMPDIR/rs|" -e "s|^listen = .*|listen = 127.0.0.1:$(free_port)|" \
	    "$(P)/rs.conf" > "$BATS_TEST_TMPDIR/rs.conf"
	run_t ntm-rs -n -f "$BATS_TEST_TMPDIR/rs.conf"
	assert_success
	chmod 644 "$BATS_TEST_TMPDIR/rs/identity.key"
	run_t ntm-rs -n -f "$BATS_TEST_TMPDIR/rs.conf"
	assert_failure
	assert_output --partial identity.key
}

@test "config check (-n) names a bad key and line" {
	printf 'name = x.test\nstate_dir = /tmp/x\nlisten = 127.0.0.1:1\nbogus = 1\n' > "$BATS_TEST_TMPDIR/bad.conf"
	run_t ntm-as -n -f "$BATS_TEST_TMPDIR/bad.conf"
	assert_failure 2
	assert_output --partial bogus
	assert_output --partial 4
}

@test "the RS's bind limits and session quotas are settings, checked for range" {
	cp -a "$(P)/rs" "$BATS_TEST_TMPDIR/rs"
	sed -e "s|$(P)/rs|$BATS_TEST_TMPDIR/rs|" -e "s|^listen = .*|listen = 127.0.0.1:$(free_port)|" \
	    "$(P)/rs.conf" > "$BATS_TEST_TMPDIR/rs.conf"
	printf '%s\n' "bind_rate = 500" "bind_rate_source = 5" "bind_rate_prefix = 50" \
	    "client_sessions = 8" "dc_session_share = 100" >> "$BATS_TEST_TMPDIR/rs.conf"
	run_t ntm-rs -n -f "$BATS_TEST_TMPDIR/rs.conf"
	assert_success
	for bad in "bind_rate = 1" "dc_session_share = 101" "client_sessions = 0" \
	    "bind_rate_source = x"; do
		{ cat "$BATS_TEST_TMPDIR/rs.conf"; echo "$bad"; } > "$BATS_TEST_TMPDIR/bad.conf"
		run_t ntm-rs -n -f "$BATS_TEST_TMPDIR/bad.conf"
		assert_failure 2
		assert_output --partial "${bad%% *}"
	done
	# a DC does not take them
	printf 'name = x.test\nstate_dir = /tmp/x\nlisten = 127.0.0.1:1\nbind_rate = 5\n' > "$BATS_TEST_TMPDIR/dc.conf"
	run_t ntm-dc -n -f "$BATS_TEST_TMPDIR/dc.conf"
	assert_failure 2
	assert_output --partial bind_rate
}
