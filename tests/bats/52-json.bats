#!/usr/bin/env bats
# --json on every command that prints something (ntm(1), "JSON OUTPUT").
# The list of commands is `ntm help --commands` (commands and subcommands);
# every line of it must be in the table below, so a new command without a
# JSON check fails here. Each entry runs the command where it can succeed:
# a platform with a CS and a resolver, alice at dc1 and bob at dc2 with
# agents, so tunnels, keys, send and fetch all work.

load helpers

setup_file() {
	platform_up_cs
	platform_resolver_start "$(P)"
	alice_bob_up
	add_user carol 'carol-pw-1'
}

teardown_file() {
	agents_down
	platform_down
}

A() { echo "$BATS_FILE_TMPDIR/alice"; }
B() { echo "$BATS_FILE_TMPDIR/bob"; }
fqdn_of() { jq -r .fqdn "$1/session.json"; }


# is_json WHAT TEXT: TEXT is exactly one JSON object, or fail naming WHAT.
is_json() {
	if [ -z "$2" ] || ! jq -e 'type == "object"' <<<"$2" >/dev/null 2>&1 ||
	    [ "$(jq -s length <<<"$2")" != 1 ]; then
		echo "$1: not one JSON object: '$2'" >&2
		return 1
	fi
}

# j NAME CMD...: run CMD (30 s bound); its stdout must be one JSON object.
j() {
	local name=$1 rc
	shift
	out=$(timeout 30 "$@" 2>"$BATS_FILE_TMPDIR/err") && rc=0 || rc=$?
	if [ "$rc" -ne 0 ]; then
		echo "$name: exit $rc: $* -> $out $(cat "$BATS_FILE_TMPDIR/err")" >&2
		return 1
	fi
	is_json "$name" "$out"
}

# The last line of a file (stream commands report on stderr).
last_of() { tail -n 1 "$1"; }

# One function per line of `ntm help --commands`, run in this order.
t_login() {
	# (login is the helper that gives the password on stdin)
	out=$(login "$BATS_FILE_TMPDIR/carol" carol carol-pw-1 "$(dc1_url)" --json) || return 1
	is_json login "$out"
	[ "$(jq -r .user <<<"$out")" = carol ]
}
t_status() {
	j status ntm -c "$(A)" status --json
	[ "$(jq -r .agent.tunnels <<<"$out")" != null ]
	[ "$(jq -r '.peers | type' <<<"$out")" = array ]
}
t_register() { j register ntm -c "$(A)" register --json; }
t_netcheck() {
	j netcheck ntm -c "$(A)" netcheck --json --dc-udp "$(udp_of dc1)" || return 1
	[ "$(jq -r .ipv4.nat <<<"$out")" = none ]
}
t_tunnel_ping() {
	j "tunnel ping" ntm -c "$(A)" tunnel ping -c 1 --timeout 20 "$(fqdn_of "$(B)")" --json
	[ "$(jq -r .received <<<"$out")" = 1 ]
}
t_tunnel_list() {
	j "tunnel list" ntm -c "$(A)" tunnel list --json
	[ "$(jq -r '.tunnels | length' <<<"$out")" -ge 1 ]
}
t_tunnel_forward() { j "tunnel forward" ntm -c "$(A)" tunnel forward --json; }
# Datagrams: bob listens for one, alice sends one; both summaries on stderr.
t_tunnel_listen() {
	local d=$BATS_FILE_TMPDIR i
	timeout 30 ntm -c "$(B)" tunnel listen --udp 7101 -c 1 --json \
	    </dev/null >"$d/ul.out" 2>"$d/ul.err" &
	local lpid=$!
	# Until the listener is there, a datagram is lost: send a few (bounded).
	for ((i = 0; i < 20; i++)); do
		printf 'hello-udp\n' | timeout 30 ntm -c "$(A)" tunnel open --udp 7101 --wait 1 \
		    --json "$(fqdn_of "$(B)")" >"$d/uo.out" 2>"$d/uo.err" || {
			echo "tunnel open --udp: $(cat "$d/uo.err")" >&2; return 1; }
		kill -0 "$lpid" 2>/dev/null || break
	done
	wait "$lpid" || { echo "tunnel listen --udp: $(cat "$d/ul.err")" >&2; return 1; }
	grep -q hello-udp "$d/ul.out"
	is_json "tunnel listen --udp (stderr)" "$(last_of "$d/ul.err")"
	[ "$(jq -r .datagrams_received <<<"$(last_of "$d/ul.err")")" = 1 ]
	is_json "tunnel open --udp (stderr)" "$(last_of "$d/uo.err")"
	[ "$(jq -r .ok <<<"$(last_of "$d/uo.err")")" = true ]
}
# A stream: the data on stdout, the summary the last line of stderr.
t_tunnel_open() {
	local d=$BATS_FILE_TMPDIR i
	timeout 30 ntm -c "$(B)" tunnel listen 7102 --json </dev/null >"$d/sl.out" \
	    2>"$d/sl.err" &
	local lpid=$!
	for ((i = 0; i < 50; i++)); do
		ntm -c "$(B)" tunnel list --json | jq -e '.streams[]? | select(.port == 7102)' \
		    >/dev/null 2>&1 && break
		sleep 0.1
	done
	printf 'hello-tcp\n' | timeout 30 ntm -c "$(A)" tunnel open --json \
	    "$(fqdn_of "$(B)")" 7102 >"$d/so.out" 2>"$d/so.err" || {
		echo "tunnel open: $(cat "$d/so.err")" >&2; return 1; }
	wait "$lpid" || { echo "tunnel listen: $(cat "$d/sl.err")" >&2; return 1; }
	grep -q hello-tcp "$d/sl.out"
	is_json "tunnel listen (stderr)" "$(last_of "$d/sl.err")"
	is_json "tunnel open (stderr)" "$(last_of "$d/so.err")"
	[ "$(jq -r .proto <<<"$(last_of "$d/so.err")")" = tcp ]
	# and when it fails, the summary says so
	timeout 30 ntm -c "$BATS_FILE_TMPDIR/nobody" tunnel open --json a.dc1.ntm.test 7 \
	    </dev/null >"$d/f.out" 2>"$d/f.err" && return 1
	is_json "tunnel open, no agent (stderr)" "$(last_of "$d/f.err")"
	[ "$(jq -r .exit <<<"$(last_of "$d/f.err")")" = 9 ]
}
t_tunnel_close() {
	j "tunnel close" ntm -c "$(A)" tunnel close "$(fqdn_of "$(B)")" --json
	[ "$(jq -r .closed <<<"$out")" = true ]
}
t_keys_exchange() { j "keys exchange" ntm -c "$(A)" keys exchange "$(fqdn_of "$(B)")" --json; }
t_keys_list() { j "keys list" ntm -c "$(A)" keys list --json; }
t_keys_show() { j "keys show" ntm -c "$(A)" keys show "$(fqdn_of "$(B)")" --json; }
t_send() {
	echo "a file" > "$BATS_FILE_TMPDIR/f.txt"
	j send ntm -c "$(A)" send "$(fqdn_of "$(B)")" "$BATS_FILE_TMPDIR/f.txt" --json
}
t_fetch() {
	mkdir -p "$BATS_FILE_TMPDIR/got"
	j fetch ntm -c "$(B)" fetch -o "$BATS_FILE_TMPDIR/got" --json
}
t_keys_rotate() { j "keys rotate" ntm -c "$(A)" keys rotate "$(fqdn_of "$(B)")" --json; }
t_keys_forget() { j "keys forget" ntm -c "$(A)" keys forget "$(fqdn_of "$(B)")" --json; }
t_help() {
	j help ntm help --json
	[ "$(jq -r '.commands | length' <<<"$out")" -ge 10 ]
	j "help tunnel" ntm help tunnel --json
	[ "$(jq -r '.subcommands[0].name' <<<"$out")" = ping ]
}
t_up() {
	local c=$BATS_FILE_TMPDIR/carol
	j up ntm -c "$c" up --dc-udp "$(udp_of dc1)" --timeout 15 --json || return 1
	echo "$(jq -r .pid <<<"$out")" > "$BATS_FILE_TMPDIR/carol.agentpid"
	[ "$(jq -r .fqdn <<<"$out")" = "$(fqdn_of "$c")" ]
}
t_down() {
	j down ntm -c "$BATS_FILE_TMPDIR/carol" down --json || return 1
	[ "$(jq -r .stopped <<<"$out")" = true ]
	j down ntm -c "$BATS_FILE_TMPDIR/carol" down --json || return 1
	[ "$(jq -r .stopped <<<"$out")" = false ]
}
t_logout() { j logout ntm -c "$BATS_FILE_TMPDIR/carol" logout --json; }

# name|how: "run" = the function t_NAME (spaces as _); "subs" = printed by
# its subcommands' lines; anything else is why it has no --json.
TABLE='login|run
status|run
register|run
netcheck|run
tunnel ping|run
tunnel list|run
tunnel forward|run
tunnel listen|run
tunnel open|run
tunnel close|run
keys exchange|run
keys list|run
keys show|run
send|run
fetch|run
keys rotate|run
keys forget|run
up|run
down|run
help|run
logout|run
tunnel|subs
keys|subs
shell|interactive: it runs the other commands, whose --json applies inside it'

@test "every command that prints takes --json and prints one JSON object" {
	local name opts how fail=0
	# Every line of the command table is in TABLE ...
	while IFS=$'\t' read -r name opts; do
		how=$(awk -F'|' -v n="$name" '$1 == n { print $2 }' <<<"$TABLE")
		if [ -z "$how" ]; then
			echo "'$name' (from ntm help --commands) is not in the table" >&2
			fail=1
		elif [ "$how" = run ] && ! grep -qw -- --json <<<"$opts"; then
			echo "'$name' has no --json: $opts" >&2
			fail=1
		fi
	done < <(ntm help --commands)
	# ... and every entry of TABLE is a line of it (subcommands included) ...
	while IFS='|' read -r name how; do
		ntm help --commands | cut -f1 | grep -qxF -- "$name" || {
			echo "'$name' is not in ntm help --commands" >&2; fail=1; }
	done <<<"$TABLE"
	# ... and each one that prints gives JSON where it can run.
	while IFS='|' read -r name how; do
		[ "$how" = run ] || continue
		if ! "t_${name// /_}"; then
			echo "FAILED: $name" >&2
			fail=1
		fi
	done <<<"$TABLE"
	[ "$fail" -eq 0 ]
}
