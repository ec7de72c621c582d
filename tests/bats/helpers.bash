# helpers.bash - shared setup for the bats suites.
#
# Each .bats file brings up its own platform (own temp dir, own free ports)
# in setup_file and stops it, by recorded pid only, in teardown_file. Each
# test gets its own client profiles under $BATS_TEST_TMPDIR.

TOP=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
export NTM_BIN=${NTM_BIN:-$TOP/build}
export NTM_PWHASH_FAST=1
export PATH="$NTM_BIN:$PATH"
SIGNREQ=$NTM_BIN/tests/signreq
XUNWRAP=$NTM_BIN/tests/xunwrap
. "$TOP/scripts/platform.sh"

bats_load_library bats-support
bats_load_library bats-assert
bats_load_library bats-file

# run_t [-N] CMD...: run with a hard timeout (30 s) so nothing can hang.
run_t() {
	local expect=
	case "${1:-}" in -[0-9]*|-[0-9]) expect=$1; shift ;; esac
	if [ -n "$expect" ]; then
		run "$expect" timeout 30 "$@"
	else
		run timeout 30 "$@"
	fi
}

# The platform of this file.
P() { echo "$BATS_FILE_TMPDIR/p"; }
platform_up() {
	platform_init "$(P)" >"$BATS_FILE_TMPDIR/init.log" 2>&1 || {
		cat "$BATS_FILE_TMPDIR/init.log" >&3; return 1; }
	platform_start "$(P)"
}
platform_down() { platform_stop "$(P)"; }

as_url()  { echo "https://127.0.0.1:$(platform_port "$(P)" as)"; }
dc1_url() { echo "https://127.0.0.1:$(platform_port "$(P)" dc1)"; }
dc2_url() { echo "https://127.0.0.1:$(platform_port "$(P)" dc2)"; }
ca()      { echo "$(P)/as/ca.crt"; }
asadm()   { ntm-as -f "$(P)/as.conf" "$@"; }

# add_user NAME PASSWORD
add_user() { printf '%s\n' "$2" | asadm user add "$1"; }

# login PROFILE USER PASSWORD DCURL [extra args]: run ntm login, password on stdin.
login() {
	local prof=$1 user=$2 pw=$3 url=$4
	shift 4
	printf '%s\n' "$pw" | timeout 30 ntm -c "$prof" login --ca "$(ca)" -u "$user" "$@" "$url"
}

# https METHOD PATH-URL [BODY]: curl printing the body, then the status line.
https() {
	local method=$1 url=$2
	shift 2
	curl -s --max-time 10 --cacert "$(ca)" -X "$method" -H 'Content-Type: application/json' \
	    -w '\n%{http_code}\n' "$@" "$url"
}

# json_field JSON KEY
jf() { printf '%s' "$1" | jq -r ".$2"; }

# Lines of $output: the body (all but last) and the status (last).
status_of() { printf '%s\n' "$output" | tail -n 1; }
body_of() { printf '%s\n' "$output" | sed '$d'; }

# wait_until SECONDS CMD...: CMD until it succeeds, every 0.2 s, for at most
# SECONDS; 1 if it never did.
wait_until() {
	local secs=$1 i
	shift
	for ((i = 0; i < secs * 5; i++)); do
		"$@" && return 0
		sleep 0.2
	done
	return 1
}

# platform_up_cs: platform_up with the CS named in both DCs' cs_url (the
# suites that send, fetch or exchange keys).
platform_up_cs() {
	platform_init "$(P)" >"$BATS_FILE_TMPDIR/init.log" 2>&1 || {
		cat "$BATS_FILE_TMPDIR/init.log" >&3; return 1; }
	local cs="cs_url = $(platform_cs_url "$(P)")"
	echo "$cs" >> "$(P)/dc1.conf"
	echo "$cs" >> "$(P)/dc2.conf"
	platform_start "$(P)"
}

# cs_token PROFILE CS-NAME: the session's token for that CS (the AS issues
# one per CS at login, each naming its CS: docs/protocol.md §2.3); "" if none.
cs_token() {
	jq -r '.cs_tokens[]?' "$1/session.json" | python3 -c '
import base64, sys
for t in sys.stdin.read().split():
    b = base64.urlsafe_b64decode(t + "=" * (-len(t) % 4))
    i = 1
    for _ in range(3):
        i += 1 + b[i]
    if b[i] == 4 and b[i + 2:i + 2 + b[i + 1]].decode() == sys.argv[1]:
        print(t)
' "$2"
}

# udp_of ROLE: the UDP address of a DC's registration socket (dc1, dc2).
udp_of() { echo "127.0.0.1:$(cat "$(P)/$1.udpport")"; }

# agent_up PROFILE DC: start the profile's agent (detached) registered with
# DC, and record its pid for agents_down.
agent_up() {
	local out pid
	out=$(timeout 30 ntm -c "$1" up --dc-udp "$(udp_of "$2")" --timeout 15) || {
		echo "agent_up $1: $out" >&3; return 1; }
	pid=$(sed -n 's/^agent: running (pid \([0-9]*\),.*/\1/p' <<<"$out")
	[ -n "$pid" ] || return 1
	echo "$pid" > "$BATS_FILE_TMPDIR/$(basename "$1").agentpid"
}

# alice_bob_up: users alice (alice-pw-1) and bob (bob-pw-1), logged in at dc1
# and dc2 with their agents running; after platform_up and the resolver.
alice_bob_up() {
	add_user alice alice-pw-1
	add_user bob bob-pw-1
	login "$(A)" alice alice-pw-1 "$(dc1_url)" >/dev/null
	login "$(B)" bob bob-pw-1 "$(dc2_url)" >/dev/null
	agent_up "$(A)" dc1
	agent_up "$(B)" dc2
}

# agents_down: stop the agents agent_up recorded, by pid.
agents_down() {
	local f
	for f in "$BATS_FILE_TMPDIR"/*.agentpid; do
		[ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null
	done
	return 0
}

# pg_up: a PostgreSQL cluster of its own for this file, in a temporary
# directory owned by nobody (initdb refuses root), listening only on a Unix
# socket there; its conninfo in $(P).pg/conninfo. Fails under CI=true when
# the server is not installed (scripts/deps.sh installs it), else skips.
PGDIR_FILE() { echo "$BATS_FILE_TMPDIR/pgdir"; }
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
pg_as() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }
pg_up() {
	local bin d port
	bin=$(pg_bin)
	if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
		[ "${CI:-}" = true ] && { echo "pg_up: PostgreSQL is not installed" >&3; return 1; }
		skip "PostgreSQL is not installed (scripts/deps.sh: postgresql)"
	fi
	# Not under BATS_FILE_TMPDIR: nobody must reach it, and the socket's
	# path must stay short (108 bytes).
	d=$(mktemp -d /tmp/ntm-pg.XXXXXX) || return 1
	echo "$d" > "$(PGDIR_FILE)"
	chown nobody:nogroup "$d" && chmod 700 "$d" || return 1
	port=$(free_port) || return 1
	pg_as "$bin/initdb" -D "$d/data" -U ntm --auth=trust -E UTF8 >"$d/initdb.log" 2>&1 || {
		tail -n 5 "$d/initdb.log" >&3; return 1; }
	echo "$port" > "$d/port"
	echo "host=$d port=$port user=ntm dbname=postgres" > "$d/conninfo"
	pg_start
}
# pg_start: start the cluster pg_up made (again); its pid in DIR/pid.
pg_start() {
	local d
	d=$(cat "$(PGDIR_FILE)")
	pg_as "$(pg_bin)/pg_ctl" -D "$d/data" -l "$d/pg.log" -w -t 30 \
	    -o "-k $d -c listen_addresses= -p $(cat "$d/port")" start >/dev/null || {
		tail -n 5 "$d/pg.log" >&3; return 1; }
	head -n 1 "$d/data/postmaster.pid" > "$d/pid"
}
# pg_conninfo: the cluster's libpq conninfo.
pg_conninfo() { cat "$(cat "$(PGDIR_FILE)")/conninfo"; }
# pg_sql SQL: one statement through psql, unaligned rows on stdout.
pg_sql() { "$(pg_bin)/psql" -X -q -A -t "$(pg_conninfo)" -c "$1"; }
# pg_stop: stop the cluster by its postmaster's pid (fast shutdown, then
# KILL after 10 s).
pg_stop() {
	local d pid i
	[ -f "$(PGDIR_FILE)" ] || return 0
	d=$(cat "$(PGDIR_FILE)")
	[ -f "$d/pid" ] || return 0
	pid=$(cat "$d/pid")
	rm -f "$d/pid"
	kill -INT "$pid" 2>/dev/null
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null
	return 0
}
# pg_down: pg_stop, and delete the cluster's directory.
pg_down() {
	local d
	[ -f "$(PGDIR_FILE)" ] || return 0
	d=$(cat "$(PGDIR_FILE)")
	pg_stop
	case "$d" in /tmp/ntm-pg.*) rm -rf "$d" ;; esac
	rm -f "$(PGDIR_FILE)"
}
