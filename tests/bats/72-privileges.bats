#!/usr/bin/env bats
# Least privilege: a daemon started as root with `user` set binds its
# sockets, then becomes that user for good (no capability, no_new_privs),
# and still serves and writes its database.

load helpers

setup_file() {
	[ "$(id -u)" = 0 ] || skip "needs root (to start a daemon as root)"
	platform_up
	add_user alice 'alice-pw-1'
	# A state directory outside the test's private temp tree, which the
	# unprivileged user could not traverse.
	D=$(mktemp -d /tmp/ntm-priv.XXXXXX)
	chmod 755 "$D"
	echo "$D" > "$BATS_FILE_TMPDIR/dir"
}

teardown_file() {
	local f
	f="$BATS_FILE_TMPDIR/dc.pid"
	[ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null
	platform_down
	D=$(cat "$BATS_FILE_TMPDIR/dir" 2>/dev/null) && [ -n "$D" ] && rm -rf "$D"
}

dir() { cat "$BATS_FILE_TMPDIR/dir"; }

# dc_conf USER: dc1's configuration moved to $(dir)/dc1, running as USER.
dc_conf() {
	local d
	d=$(dir)
	sed -e "s|^state_dir = .*|state_dir = $d/dc1|" -e "s|^pidfile = .*|pidfile = $d/dc1/pid|" \
	    -e "s|^ca_file = .*|ca_file = $d/ca.crt|" "$(P)/dc1.conf" > "$d/dc1.conf"
	echo "user = $1" >> "$d/dc1.conf"
	cp "$(ca)" "$d/ca.crt"
	chmod 644 "$d/ca.crt" "$d/dc1.conf"
}

# status_of PID FIELD: a line of /proc/PID/status, its value only.
status_of() { sed -n "s/^$2:[[:space:]]*//p" "/proc/$1/status"; }

@test "a state directory that is not the user's: the DC refuses to start, naming the fix" {
	platform_stop_role "$(P)" dc1
	rm -rf "$(dir)/dc1"
	cp -a "$(P)/dc1" "$(dir)/dc1"
	dc_conf nobody
	run timeout 20 ntm-dc -d -f "$(dir)/dc1.conf"
	assert_failure
	assert_output --partial "state_dir $(dir)/dc1 belongs to uid 0, not to user 'nobody'"
	assert_output --partial "chown -R nobody $(dir)/dc1"
}

@test "an unknown user: the configuration check names it" {
	dc_conf no-such-user-ntm
	run timeout 20 ntm-dc -n -f "$(dir)/dc1.conf"
	assert_failure
	assert_output --partial "user 'no-such-user-ntm': no such user"
}

@test "user set: the DC binds as root, then runs as that user with no capability and no_new_privs, and serves logins" {
	local pid uid
	dc_conf nobody
	chown -R nobody: "$(dir)/dc1"
	ntm-dc -d -f "$(dir)/dc1.conf" >>"$(dir)/dc1.log" 2>&1 &
	pid=$!
	echo "$pid" > "$BATS_FILE_TMPDIR/dc.pid"
	wait_health "$(dc1_url)" "$(ca)" || { cat "$(dir)/dc1.log"; false; }
	# (the health answer comes before the drop is logged: wait for it)
	for ((i = 0; i < 50; i++)); do
		grep -q "running as user 'nobody'" "$(dir)/dc1.log" && break
		sleep 0.1
	done
	uid=$(id -u nobody)
	assert_equal "$(status_of "$pid" Uid)" "$(printf '%s\t%s\t%s\t%s' "$uid" "$uid" "$uid" "$uid")"
	assert_equal "$(status_of "$pid" Gid | cut -f1)" "$(id -g nobody)"
	assert_equal "$(status_of "$pid" CapEff)" 0000000000000000
	assert_equal "$(status_of "$pid" CapPrm)" 0000000000000000
	assert_equal "$(status_of "$pid" NoNewPrivs)" 1
	# Every thread, not only the main one, is the user's.
	local t
	for t in /proc/"$pid"/task/*; do
		assert_equal "$(sed -n 's/^Uid:[[:space:]]*\([0-9]*\).*/\1/p' "$t/status")" "$uid"
	done
	# It still writes its database (a login is a new client row).
	run login "$BATS_TEST_TMPDIR/a" alice alice-pw-1 "$(dc1_url)"
	assert_success
	run sqlite3 "$(dir)/dc1/dc.db" "select count(*) from clients"
	assert_output 1
	# What it created before dropping root is the user's too.
	run find "$(dir)/dc1" -maxdepth 1 -user root
	assert_output ''
}
