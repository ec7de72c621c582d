#!/usr/bin/env bats
# The command-line contract: help, version, usage errors (exit 2, one line
# naming the bad value), the shell, and help/man/completions not drifting.

load helpers

@test "--version and --help of every binary" {
	local b
	for b in ntm ntm-as ntm-dc ntm-rs ntm-cs; do
		run_t "$b" --version
		assert_success
		assert_output --partial 0.1.0
		run_t "$b" --help
		assert_success
		assert_output --partial usage
	done
	run_t ntm --help
	assert_output --partial login
	assert_output --partial "exit status"
}

@test "ntm: unknown command, unknown option, bad value: exit 2, one line naming it" {
	run_t ntm frobnicate
	assert_failure 2
	assert_equal "${#lines[@]}" 1
	assert_output --partial frobnicate
	run_t ntm login --bogus x https://127.0.0.1:1
	assert_failure 2
	assert_output --partial bogus
	run_t ntm -c "$BATS_TEST_TMPDIR/p" login --timeout abc -u alice https://127.0.0.1:1
	assert_failure 2
	assert_equal "${#lines[@]}" 1
	assert_output --partial "'abc'"
	run_t ntm -c "$BATS_TEST_TMPDIR/p" login -u 'Bad User' https://127.0.0.1:1
	assert_failure 2
	assert_output --partial 'Bad User'
	run_t ntm -c "$BATS_TEST_TMPDIR/p" login -u alice
	assert_failure 2
}

@test "a bad PEER is named, with the form of the names users see" {
	local p
	for p in bob 'bob_2.dc2.example' 'alice..dc1.ntm.test'; do
		run_t ntm -c "$BATS_TEST_TMPDIR/p" tunnel ping "$p"
		assert_failure 2
		assert_equal "${#lines[@]}" 1
		assert_output --partial "'$p'"
		assert_output --partial alice.dc1.ntm.test
		assert_output --partial bob-2.dc2.example
		refute_output --partial user-device
	done
	run_t ntm -c "$BATS_TEST_TMPDIR/p" tunnel forward -L 8080:bob:80
	assert_failure 2
	assert_output --partial "'bob'"
	assert_output --partial bob-2.dc2.example
}

@test "each command's --help and 'ntm help CMD' agree" {
	local c
	# subcommands too: "ntm tunnel ping --help", "ntm help tunnel ping"
	while IFS=$'\t' read -r c _; do
		# shellcheck disable=SC2086 # "tunnel ping" is two words
		run_t ntm $c --help
		assert_success
		local h=$output
		# shellcheck disable=SC2086
		run_t ntm help $c
		assert_success
		assert_equal "$output" "$h"
	done < <(ntm help --commands)
}

@test "daemons: usage errors exit 2" {
	run_t ntm-as --nope
	assert_failure 2
	run_t ntm-dc -f /nonexistent/dc.conf -n
	assert_failure 2
	assert_output --partial /nonexistent/dc.conf
	run_t ntm-as -f /nonexistent/as.conf user frob
	assert_failure 2
}

@test "ntm down with no agent running is a success" {
	run_t ntm -c "$BATS_TEST_TMPDIR/empty" down
	assert_success
	assert_output "no agent running"
	run_t ntm -c "$BATS_TEST_TMPDIR/empty" down --json
	assert_success
	assert_output '{"stopped":false,"pid":null}'
}

@test "not logged in: status exits 7" {
	run_t ntm -c "$BATS_TEST_TMPDIR/empty" status
	assert_failure 7
	run_t ntm -c "$BATS_TEST_TMPDIR/empty" status --json
	assert_failure 7
	assert_equal "$(jf "$output" logged_in)" false
}

@test "ntm shell runs commands from its input, and keeps going after errors" {
	# Like sh, the shell's exit status is that of the last command (status: 7).
	run bash -c "printf 'help\nfrobnicate\nstatus --offline\n' | timeout 30 ntm -c '$BATS_TEST_TMPDIR/s' shell"
	assert_failure 7
	assert_output --partial login
	assert_output --partial frobnicate
	assert_output --partial "not logged in"
}

@test "help, man pages and completions cover every command and option" {
	run_t "$TOP/scripts/docs-check.sh"
	assert_success
}

@test "daemons: --commands lists each command and subcommand; each takes --help without a configuration and names an unknown option" {
	local d cmd opts o
	for d in ntm-as ntm-dc ntm-rs ntm-cs; do
		run_t "$d" --commands
		assert_success
		assert_line --regexp $'^init\t.*--force'
		assert_line --regexp $'^pubkey\t--help$'
		while IFS=$'\t' read -r cmd opts; do
			# --help needs no configuration file
			run_t "$d" -f /nonexistent/x.conf $cmd --help
			assert_success
			assert_output --partial "usage: $d ${cmd%% *}"
			for o in $opts; do
				assert_output --partial -- "$o"
			done
			run_t "$d" -f /nonexistent/x.conf $cmd --no-such-option
			assert_failure 2
			assert_output "$d: ${cmd%% *}: unknown option '--no-such-option' (see '$d ${cmd%% *} --help')"
		done < <("$d" --commands)
	done
	run_t ntm-as --commands
	assert_line $'user add\t--help --password-file'
	assert_line $'server list\t--help --json'
	run_t ntm-dc --commands
	assert_line $'client list\t--help --json'
	assert_line $'resolve\t--help --json'
	run_t ntm-as -f /nonexistent/x.conf user add --json bob
	assert_failure 2
	assert_output "ntm-as: user: --json does not apply to 'add' (see 'ntm-as user --help')"
	run_t ntm-dc -f /nonexistent/x.conf status extra
	assert_failure 2
	assert_output "ntm-dc: status: unexpected argument 'extra'"
}
