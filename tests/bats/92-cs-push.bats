#!/usr/bin/env bats
# The AS pushes revocations to several cache servers (protocol.md §7.5):
# cs_url lists cs1 and cs2, each with its own cursor in the AS database, so
# a CS that is down holds back no other and is sent its backlog when it is
# back. Tokens are real ones, from logins at dc1; the clients are curl.
#
#   ntm login --> dc1 --signed POST /v1/as/login--> ntm-as
#   ntm-as user lock NAME (queued)      ntm-as --signed POST /v1/cs/revoke--> cs1
#                                              \--signed POST /v1/cs/revoke--> cs2
#   curl --Bearer token--> GET /v1/cs/account at cs1 and at cs2

load helpers

PLATFORM_ROLES="as dc1 cs cs2"

setup_file() {
	# The AS logs every push at info level, each retry at debug level.
	export NTM_DAEMON_ARGS=-vv
	platform_init "$(P)" >"$BATS_FILE_TMPDIR/init.log" 2>&1 || {
		cat "$BATS_FILE_TMPDIR/init.log" >&3; return 1; }
	# Blanks and a trailing '/' are allowed; the AS names cs2 without it.
	echo "cs_url = $(cs_url cs) , $(cs_url cs2)/" >> "$(P)/as.conf"
	platform_start "$(P)"
	add_user alice alice-pw-1
	add_user bob bob-pw-1
}

teardown_file() { platform_down; }

cs_url() { echo "https://127.0.0.1:$(platform_port "$(P)" "$1")"; }

# cs_answer ROLE PROFILE: "STATUS" or "STATUS CODE" of GET /v1/cs/account at
# the CS of that role (cs or cs2), with the profile's token for that CS;
# "000" when nothing answers.
cs_answer() {
	local out code name
	name=$(sed -n 's/^name = //p' "$(P)/$1.conf")
	out=$(https GET "$(cs_url "$1")/v1/cs/account" \
	    -H "Authorization: Bearer $(cs_token "$2" "$name")")
	code=$(sed '$d' <<<"$out" | jq -r '.code // empty' 2>/dev/null)
	echo "$(tail -n 1 <<<"$out")${code:+ $code}"
}
refuses() { [ "$(cs_answer "$1" "$2")" = "401 token_revoked" ]; }

# as_db SQL: one value from the AS's database (read-only).
as_db() {
	python3 -c 'import sqlite3, sys
db = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
r = db.execute(sys.argv[2]).fetchone()
print("" if r is None or r[0] is None else r[0])' "$(P)/as/as.db" "$1"
}
cursor_of() { as_db "SELECT last_id FROM push_cursor WHERE cs = '$(cs_url "$1")'"; }
cursor_is() { [ "$(cursor_of "$1")" = "$2" ]; }

# login_token PROFILE USER PASSWORD: logs in at dc1, prints the profile
# (whose session holds a token per CS).
login_token() {
	login "$1" "$2" "$3" "$(dc1_url)" >/dev/null || return 1
	echo "$1"
}

@test "a token works at both CSs; a lock is refused at both within seconds" {
	local t
	t=$(login_token "$BATS_FILE_TMPDIR/alice" alice alice-pw-1)
	assert_equal "$(cs_answer cs "$t")" 200
	assert_equal "$(cs_answer cs2 "$t")" 200
	run_t ntm-as -f "$(P)/as.conf" user lock alice
	assert_success
	assert_output "revocation of alice's tokens at 1 DC queued for the servers"
	wait_until 10 refuses cs "$t"
	wait_until 10 refuses cs2 "$t"
	# Per CS: the log names each push, the database keeps each cursor
	# (the DCs and the RS of revoke_url have theirs too).
	run grep -e "info: revocations #1\.\.#1 pushed to $(cs_url cs)\$" \
	    -e "info: revocations #1\.\.#1 pushed to $(cs_url cs2)\$" "$(P)/as.log"
	assert_line --partial "pushed to $(cs_url cs)"
	assert_line --partial "pushed to $(cs_url cs2)"
	assert_equal "${#lines[@]}" 2
	assert_equal "$(cursor_of cs)" 1
	assert_equal "$(cursor_of cs2)" 1
}

@test "a CS that is down holds back no other, and is sent its backlog when it is back" {
	local t last
	t=$(login_token "$BATS_TEST_TMPDIR/bob" bob bob-pw-1)
	assert_equal "$(cs_answer cs "$t")" 200
	assert_equal "$(cs_answer cs2 "$t")" 200
	platform_stop_role "$(P)" cs2
	assert_equal "$(cs_answer cs2 "$t")" 000
	run_t ntm-as -f "$(P)/as.conf" user lock bob
	assert_success
	last=$(as_db "SELECT MAX(id) FROM revocations")
	wait_until 10 refuses cs "$t"
	assert_equal "$(cursor_of cs)" "$last"
	# The AS tried cs2 (twice: a retry is logged at debug level) and kept
	# its cursor where it was.
	wait_until 10 grep -q "warning: revocation push to $(cs_url cs2): " "$(P)/as.log"
	wait_until 10 grep -q "debug: revocation push to $(cs_url cs2): " "$(P)/as.log"
	assert_equal "$(cursor_of cs2)" $((last - 1))
	assert_equal "$(cs_answer cs "$t")" "401 token_revoked"

	PLATFORM_ROLES=cs2 platform_start "$(P)"
	wait_until 10 refuses cs2 "$t"
	wait_until 10 cursor_is cs2 "$last"
	run grep -c "pushed to $(cs_url cs2)\$" "$(P)/as.log"
	assert_output 2
	# One warning when it failed, not one per retry; one when it is back.
	run grep -c "warning: revocation push to $(cs_url cs2): .*(retried every 2 s)" \
	    "$(P)/as.log"
	assert_output 1
	grep -q "warning: revocation push to $(cs_url cs2): answered again, sent up to #$last\$" \
	    "$(P)/as.log"
	# What cs2 had before it went down is still refused there.
	refuses cs2 "$BATS_FILE_TMPDIR/alice"
}

@test "cs_url: a bad, repeated or empty entry, or more than 16, is one line naming it, exit 2; a DC refuses a list" {
	local c=$BATS_TEST_TMPDIR/as.conf d=$BATS_TEST_TMPDIR/dc.conf i list=
	with_cs() { grep -v '^cs_url' "$(P)/$1.conf" > "$2"; echo "cs_url = $3" >> "$2"; }

	with_cs as "$c" "$(cs_url cs), http://127.0.0.1:1"
	run_t ntm-as -n -f "$c"
	assert_failure 2
	assert_output "ntm-as: $c: cs_url 'http://127.0.0.1:1' is not an https://HOST[:PORT] URL"
	# The daemon refuses to start on it too.
	run_t ntm-as -d -f "$c"
	assert_failure 2
	assert_output "ntm-as: $c: cs_url 'http://127.0.0.1:1' is not an https://HOST[:PORT] URL"
	with_cs as "$c" "$(cs_url cs),https://user@127.0.0.1:1"
	run_t ntm-as -n -f "$c"
	assert_failure 2
	assert_output "ntm-as: $c: cs_url 'https://user@127.0.0.1:1' is not an https://HOST[:PORT] URL"
	with_cs as "$c" "$(cs_url cs),$(cs_url cs2),$(cs_url cs)/"
	run_t ntm-as -n -f "$c"
	assert_failure 2
	assert_output "ntm-as: $c: cs_url names '$(cs_url cs)' twice"
	with_cs as "$c" "$(cs_url cs),,$(cs_url cs2)"
	run_t ntm-as -n -f "$c"
	assert_failure 2
	assert_output "ntm-as: $c: cs_url has an empty entry (a stray comma?)"
	for ((i = 1; i <= 16; i++)); do list+="${list:+,}https://cs$i.ntm.test"; done
	with_cs as "$c" "$list"
	run_t ntm-as -n -f "$c"
	assert_success
	assert_output "ntm-as: $c: configuration OK"
	with_cs as "$c" "$list,https://cs17.ntm.test"
	run_t ntm-as -n -f "$c"
	assert_failure 2
	assert_output "ntm-as: $c: cs_url lists more than 16 servers"

	with_cs dc1 "$d" "$(cs_url cs),$(cs_url cs2)"
	run_t ntm-dc -n -f "$d"
	assert_failure 2
	assert_output "ntm-dc: $d: cs_url '$(cs_url cs),$(cs_url cs2)': a DC has one cache server, not a list"
	with_cs dc1 "$d" "$(cs_url cs)"
	run_t ntm-dc -n -f "$d"
	assert_success
}

@test "upgrade: what the old version marked pushed counts as sent to the one CS configured; with two, both are sent everything" {
	local last from
	last=$(as_db "SELECT MAX(id) FROM revocations")
	[ "$last" -ge 2 ]
	# downgrade: the database as the previous version leaves it (schema 3,
	# everything but the last entry marked pushed), and cs_url set to ONE.
	downgrade() {
		python3 -c 'import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.executescript("DROP TABLE push_cursor; ALTER TABLE revocations DROP COLUMN serial;"
    "ALTER TABLE devices DROP COLUMN account_updated;"
    "ALTER TABLE devices DROP COLUMN revoked_at;"
    "UPDATE revocations SET pushed = NULL;"
    "UPDATE revocations SET pushed = 1 WHERE id < %d; PRAGMA user_version = 3;"
    % int(sys.argv[2]))
db.close()' "$(P)/as/as.db" "$last"
		grep -v '^cs_url' "$(P)/as.conf" > "$(P)/as.conf.new"
		echo "cs_url = $1" >> "$(P)/as.conf.new"
		mv "$(P)/as.conf.new" "$(P)/as.conf"
	}

	platform_stop_role "$(P)" as
	downgrade "$(cs_url cs)"
	from=$(($(wc -l < "$(P)/as.log") + 1))
	PLATFORM_ROLES=as platform_start "$(P)"
	wait_until 10 cursor_is cs "$last"
	run tail -n +"$from" "$(P)/as.log"
	assert_line --partial "$(cs_url cs): revocations marked pushed before the upgrade count as sent to it"
	assert_line --partial "info: revocations #$last..#$last pushed to $(cs_url cs)"
	assert_equal "$(as_db "SELECT COUNT(*) FROM push_cursor WHERE cs IN ('$(cs_url cs)', '$(cs_url cs2)')")" 1

	platform_stop_role "$(P)" as
	downgrade "$(cs_url cs),$(cs_url cs2)"
	from=$(($(wc -l < "$(P)/as.log") + 1))
	PLATFORM_ROLES=as platform_start "$(P)"
	wait_until 10 cursor_is cs "$last"
	wait_until 10 cursor_is cs2 "$last"
	run tail -n +"$from" "$(P)/as.log"
	refute_output --partial "count as sent"
	assert_line --partial "info: revocations #1..#$last pushed to $(cs_url cs)"
	assert_line --partial "info: revocations #1..#$last pushed to $(cs_url cs2)"
	assert_equal "$(as_db "SELECT COUNT(*) FROM push_cursor WHERE cs IN ('$(cs_url cs)', '$(cs_url cs2)')")" 2
	# Still refused at both.
	refuses cs "$BATS_FILE_TMPDIR/alice"
	refuses cs2 "$BATS_FILE_TMPDIR/alice"
}
