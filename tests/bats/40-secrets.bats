#!/usr/bin/env bats
# Secrets: never on argv or in ps, never in logs (even at the most verbose
# level), and stored 0600 under 0700 directories.

load helpers

setup_file() {
	export NTM_DAEMON_ARGS=-vvv
	platform_up
	printf 'Sup3r-Secret-Alice\n' | ntm-as -f "$(P)/as.conf" user add alice
}
teardown_file() { platform_down; }

@test "the password is in no process's argv while a login waits for it" {
	local fifo=$BATS_TEST_TMPDIR/pw
	mkfifo "$fifo"
	ntm -c "$BATS_TEST_TMPDIR/a" login --ca "$(ca)" -u alice --password-file "$fifo" "$(dc1_url)" \
	    >"$BATS_TEST_TMPDIR/out" 2>&1 &
	local pid=$!
	exec 7>"$fifo"	# the client is now blocked reading the password
	run ps -eo args
	assert_output --partial "login --ca"	# the waiting client is there
	refute_output --partial Sup3r-Secret-Alice
	printf 'Sup3r-Secret-Alice\n' >&7
	exec 7>&-
	wait "$pid"
	run cat "$BATS_TEST_TMPDIR/out"
	assert_output --partial alice.dc1.ntm.test
}

@test "admin commands take passwords from stdin or a file, not argv" {
	run_t ntm-as -f "$(P)/as.conf" user add --help
	refute_output --partial -- '--password '
	printf 'from-a-file\n' > "$BATS_TEST_TMPDIR/pwf"
	run_t ntm-as -f "$(P)/as.conf" user add ivan --password-file "$BATS_TEST_TMPDIR/pwf"
	assert_success
	run login "$BATS_TEST_TMPDIR/i" ivan from-a-file "$(dc1_url)"
	assert_success
}

@test "no password, token or secret key appears in any daemon log" {
	run login "$BATS_TEST_TMPDIR/a" alice Sup3r-Secret-Alice "$(dc1_url)"
	assert_success
	run login "$BATS_TEST_TMPDIR/a" alice wrong-Secret-Guess "$(dc1_url)"
	assert_failure 4
	local tok
	tok=$(jq -r .token "$BATS_TEST_TMPDIR/a/session.json" 2>/dev/null || true)
	run login "$BATS_TEST_TMPDIR/a" alice Sup3r-Secret-Alice "$(dc1_url)"
	tok=$(jq -r .token "$BATS_TEST_TMPDIR/a/session.json")
	local rx
	rx=$(jq -r .rx "$BATS_TEST_TMPDIR/a/session.json")
	# the logs did get written at this verbosity
	[ -s "$(P)/dc1.log" ] && [ -s "$(P)/as.log" ]
	run grep -l -e Sup3r-Secret -e wrong-Secret -e "$tok" -e "$rx" "$(P)"/*.log
	assert_failure
	local r k
	for r in as dc1 dc2 rs cs; do
		k=$(tr -d '\n' < "$(P)/$r/identity.key")
		run grep -l -e "$k" "$(P)"/*.log
		assert_failure
	done
}

@test "the client's profile is 0700 and its session file 0600" {
	run login "$BATS_TEST_TMPDIR/a" alice Sup3r-Secret-Alice "$(dc1_url)"
	assert_success
	run stat -c %a "$BATS_TEST_TMPDIR/a"
	assert_output 700
	run stat -c %a "$BATS_TEST_TMPDIR/a/session.json"
	assert_output 600
	run grep -c Sup3r-Secret "$BATS_TEST_TMPDIR/a/session.json"
	assert_output 0
}

@test "status shows no token or key" {
	run login "$BATS_TEST_TMPDIR/a" alice Sup3r-Secret-Alice "$(dc1_url)"
	local tok
	tok=$(jq -r .token "$BATS_TEST_TMPDIR/a/session.json")
	run_t ntm -c "$BATS_TEST_TMPDIR/a" status
	assert_success
	refute_output --partial "$tok"
	run_t ntm -c "$BATS_TEST_TMPDIR/a" status --json
	refute_output --partial "$tok"
}
