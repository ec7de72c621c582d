#!/usr/bin/env bats
# `make demo` as a newcomer runs it: the whole platform comes up, alice and
# bob log in at their DCs, and it stops cleanly.

load helpers

teardown() {
	[ -d "$BATS_TEST_TMPDIR/demo" ] && NTM_DEMO_DIR=$BATS_TEST_TMPDIR/demo "$TOP/scripts/demo.sh" stop >/dev/null 2>&1
	true
}

@test "the demo brings up the platform and logs alice and bob in" {
	unset NTM_PWHASH_FAST	# the real Argon2id parameters
	export NTM_DEMO_DIR=$BATS_TEST_TMPDIR/demo
	run timeout 120 "$TOP/scripts/demo.sh"
	assert_success
	assert_output --partial alice.dc1.ntm.test
	assert_output --partial bob.dc2.ntm.test
	assert_output --regexp '100\.64\.1\.[0-9]+'
	assert_output --regexp '100\.64\.2\.[0-9]+'
	assert_output --partial 'make demo-stop'
	# both agents came up and the ping went through a tunnel, on loopback
	assert_output --partial '3 sent, 3 received, 0% loss'
	assert_output --regexp 'endpoint: 127\.0\.0\.1:[0-9]+'
	# Running it twice is refused while it runs.
	run timeout 60 "$TOP/scripts/demo.sh"
	assert_failure
	assert_output --partial 'already running'
	run_t ntm -c "$NTM_DEMO_DIR/bob" status --json
	assert_success
	assert_equal "$(jf "$output" dc_status)" live
	run timeout 60 "$TOP/scripts/demo.sh" stop
	assert_success
	local r
	for r in as dc1 dc2 rs cs resolver; do
		assert_file_not_exists "$NTM_DEMO_DIR/$r.pid"
	done
	run_t ntm -c "$NTM_DEMO_DIR/alice" down
	assert_success
	assert_output "no agent running"	# the demo stopped the agents too
}

@test "demo-stop stops everything even with an agent down and a DC restarted by hand, and leaves no temp file" {
	export NTM_DEMO_DIR=$BATS_TEST_TMPDIR/demo
	local tmp=$BATS_TEST_TMPDIR/tmp d=$BATS_TEST_TMPDIR/demo
	mkdir -p "$tmp"
	run env -u BATS_RUN_TMPDIR TMPDIR="$tmp" timeout 120 "$TOP/scripts/demo.sh"
	assert_success
	# bob's agent is already down when the demo is stopped
	run_t ntm -c "$d/bob" down
	assert_success
	# dc2 restarted by hand: it writes its own pidfile, not demo/dc2.pid
	platform_stop_role "$d" dc2
	ntm-dc -d -f "$d/dc2.conf" >>"$d/dc2.log" 2>&1 &
	local dc2=$!
	wait_health "https://127.0.0.1:$(platform_port "$d" dc2)" "$d/as/ca.crt"
	local r pids=("$dc2")
	for r in as dc1 rs cs; do
		pids+=("$(cat "$d/$r/pid")")
	done
	run env -u BATS_RUN_TMPDIR TMPDIR="$tmp" timeout 60 "$TOP/scripts/demo.sh" stop
	assert_success
	assert_output --partial 'demo stopped'
	for r in "${pids[@]}"; do
		run kill -0 "$r"
		assert_failure
	done
	run ls "$tmp"
	assert_output ''
	# and it starts again
	run env -u BATS_RUN_TMPDIR TMPDIR="$tmp" timeout 120 "$TOP/scripts/demo.sh"
	assert_success
}
