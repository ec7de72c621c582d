#!/usr/bin/env bash
# demo.sh - bring up a complete local ntm platform on loopback and show it
# working: one AS, two DCs (dc1.ntm.test, dc2.ntm.test), one RS, one CS,
# accounts alice and bob, alice logged in at dc1 and bob at dc2, a resolver
# in front of the DCs, both agents up, and a ping through a tunnel.
#
#   scripts/demo.sh          start (state under $NTM_DEMO_DIR, default ./demo)
#   scripts/demo.sh stop     stop the daemons it started and keep the state
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/scripts/platform.sh"
dir=${NTM_DEMO_DIR:-$top/demo}
ntm="$NTM_BIN/ntm"
# platform.sh keeps the ports it handed out in a temp file: ours to remove.
trap 'rm -f "$_platform_ports_file"' EXIT

if [ "${1:-}" = stop ]; then
	[ -d "$dir" ] || { echo "no demo under $dir"; exit 0; }
	# An agent that is already down is no reason to leave the rest up.
	for u in alice bob; do
		[ -d "$dir/$u" ] && { "$ntm" -c "$dir/$u" down >/dev/null 2>&1 || true; }
	done
	platform_stop "$dir"
	echo "demo stopped (state kept in $dir; rm -rf it to start afresh)"
	exit 0
fi

for role in $PLATFORM_ROLES; do
	if [ -f "$dir/$role.pid" ] && kill -0 "$(cat "$dir/$role.pid")" 2>/dev/null; then
		echo "the demo is already running under $dir (stop it with: make demo-stop)" >&2
		exit 1
	fi
done
rm -rf "$dir"
mkdir -p "$dir"
step() { printf '\n==> %s\n' "$*"; }

step "creating the AS, two DCs, an RS and a CS under $dir"
platform_init "$dir"
echo "AS public key (trust anchor): $(cat "$dir/as.pub")"
# The CS of both DCs' clients, and where the AS pushes revocations.
for role in dc1 dc2 as; do
	echo "cs_url = $(platform_cs_url "$dir")" >> "$dir/$role.conf"
done

step "starting the daemons (logs: $dir/*.log)"
platform_start "$dir"
for role in $PLATFORM_ROLES; do
	printf '  %-4s %-14s https://127.0.0.1:%s\n' "$role" \
	    "$(sed -n 's/^name = //p' "$dir/$role.conf")" "$(platform_port "$dir" "$role")"
done

step "creating the accounts alice and bob"
for u in alice bob; do
	( umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$dir/$u.password" )
	"$NTM_BIN/ntm-as" -f "$dir/as.conf" user add "$u" --password-file "$dir/$u.password"
done
"$NTM_BIN/ntm-as" -f "$dir/as.conf" user list

step "logging alice in at dc1 and bob at dc2"
"$ntm" -c "$dir/alice" login --ca "$dir/as/ca.crt" -u alice \
    --password-file "$dir/alice.password" "https://127.0.0.1:$(platform_port "$dir" dc1)"
"$ntm" -c "$dir/bob" login --ca "$dir/as/ca.crt" -u bob \
    --password-file "$dir/bob.password" "https://127.0.0.1:$(platform_port "$dir" dc2)"

step "what each DC knows"
"$NTM_BIN/ntm-dc" -f "$dir/dc1.conf" client list
"$NTM_BIN/ntm-dc" -f "$dir/dc2.conf" client list

step "a resolver (dnsmasq) in front of both DCs, so each finds the other by DNS"
platform_resolver_start "$dir"
dig +short -p "$(cat "$dir/resolver.port")" @127.0.0.1 SRV _ntm._udp.dc2.ntm.test

step "starting alice's and bob's agents (one UDP socket each, registered with their DC)"
for u in alice bob; do
	printf 'resolver = 127.0.0.1:%s\n' "$(cat "$dir/resolver.port")" > "$dir/$u/ntm.conf"
	"$ntm" -c "$dir/$u" up
done

bob=$(jq -r .fqdn "$dir/bob/session.json")
step "alice pings bob over an end-to-end tunnel (dc1 asks dc2, both get the route)"
"$ntm" -c "$dir/alice" tunnel ping -c 3 "$bob"
"$ntm" -c "$dir/alice" tunnel list

step "a TCP stream between the vIPs (each agent's user-space stack): alice sends a file to bob"
head -c 1048576 /dev/urandom > "$dir/stream.in"
"$ntm" -c "$dir/bob" tunnel listen 7000 < /dev/null > "$dir/stream.out" &
lis=$!
for _ in $(seq 50); do
	"$ntm" -c "$dir/bob" tunnel list --json 2>/dev/null | grep -q '"listening"' && break
	sleep 0.1
done
"$ntm" -c "$dir/alice" -v tunnel open "$bob" 7000 < "$dir/stream.in"
wait "$lis"
if cmp -s "$dir/stream.in" "$dir/stream.out"; then
	echo "1 MiB sent through 'ntm tunnel open $bob 7000' arrived intact"
else
	echo "the stream's bytes differ" >&2
	exit 1
fi

step "offline data, end to end: alice exchanges keys with bob and sends him a file through the CS"
"$ntm" -c "$dir/alice" keys exchange "$bob"
echo "a note for bob, sealed end to end: the CS and the DCs cannot read it" > "$dir/note.txt"
"$ntm" -c "$dir/alice" send "$bob" "$dir/note.txt" --notify "a note from alice"
mkdir -p "$dir/bob-inbox"
"$ntm" -c "$dir/bob" fetch -o "$dir/bob-inbox"
cmp -s "$dir/note.txt" "$dir/bob-inbox/note.txt" && echo "bob's copy is the same as alice's"

step "alice's status, as her client sees it"
"$ntm" -c "$dir/alice" status

cat <<EOT

The platform and both agents keep running in the background. Try:
  $ntm -c $dir/alice status --json
  $ntm -c $dir/alice tunnel ping -c 5 $bob
  $ntm -c $dir/bob tunnel listen --udp 7000      (then, elsewhere:)
  echo hello | $ntm -c $dir/alice tunnel open $bob --udp 7000
  $ntm -c $dir/bob tunnel forward -R 8080:127.0.0.1:PORT   (expose a local service on bob's vIP)
  $ntm -c $dir/alice tunnel forward -L 9090:$bob:8080      (then: curl http://127.0.0.1:9090/)
  $ntm -c $dir/bob status
  $ntm -c $dir/alice shell
  $NTM_BIN/ntm-as -f $dir/as.conf user list --json
  $NTM_BIN/ntm-dc -f $dir/dc1.conf client list --json
  curl --cacert $dir/as/ca.crt https://127.0.0.1:$(platform_port "$dir" rs)/v1/health
(passwords are in $dir/alice.password and $dir/bob.password)

Stop it with:  make demo-stop
EOT
