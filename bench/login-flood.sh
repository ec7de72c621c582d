#!/usr/bin/env bash
# bench/login-flood.sh - legitimate logins at both DCs while dc1 is flooded,
# on loopback, real Argon2id at the AS, the DCs' production login limits.
#
# Two floods, one after the other (tests/tools/flood.c):
#  - login: BENCH_FLOOD_RATE (2000) anonymous POST /v1/login a second for
#    BENCH_FLOOD_S (30) s at dc1, from BENCH_FLOOD_SOURCES (64) addresses,
#    one per /24 of 127.10.0.0/16, each login a fresh unknown user;
#  - moved: one authenticated device at dc1 with a tunnel to its twin at dc2
#    registers from a new UDP port BENCH_MOVED_RATE (5000) times a second
#    for BENCH_FLOOD_S s (every REG_REQ a location change: a stored location,
#    a MOVED and a POST /v1/dc/moved to dc2 each, unless the DC holds them).
# Meanwhile, and in quiet phases before, between and after, devices that
# logged in before (each with its own profile) log in again, one at a time,
# alternately at dc1 and dc2, from 127.0.0.1. Reports, per phase and DC: the
# logins made, the share that succeeded, median and p95 time, and the p95
# against the quiet phase before (the baseline of this run); and what each
# flood sent and how it was answered. Bounded in count and time. Nothing
# here passes or fails on a timing.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
# The ports the platform hands out, in a file that goes with the run.
_platform_ports_file=$(mktemp /tmp/ntm-ports.XXXXXX)
. "$top/scripts/platform.sh"
RATE=${BENCH_FLOOD_RATE:-2000}
SECS=${BENCH_FLOOD_S:-30}
SOURCES=${BENCH_FLOOD_SOURCES:-64}
MRATE=${BENCH_MOVED_RATE:-5000}
QUIET=${BENCH_QUIET_S:-15}
dir=$(mktemp -d /tmp/ntm-bench.XXXXXX)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; platform_stop "$dir"; rm -rf "$dir" "$_platform_ports_file"' EXIT
[ -x "$NTM_BIN/tests/flood" ] || make -C "$top" -s tools >/dev/null
unset NTM_PWHASH_FAST
platform_init "$dir" >/dev/null
# The production login limits on both DCs (the test platform raises them).
sed -i -e '/^login_rate/d' "$dir/dc1.conf" "$dir/dc2.conf"
platform_start "$dir"
platform_resolver_start "$dir"
head -c 18 /dev/urandom | base64 > "$dir/pw"
for u in bench mover; do
	"$NTM_BIN/ntm-as" -f "$dir/as.conf" user add "$u" --password-file "$dir/pw"
done
url() { echo "https://127.0.0.1:$(platform_port "$dir" "$1")"; }

now_ns() { date +%s%N; }
# login DC: one login of the legitimate device at DC; "ok|fail ms".
login() {
	local t0 t1 r
	t0=$(now_ns)
	if timeout 30 "$NTM_BIN/ntm" -c "$dir/legit.$1" login --ca "$dir/as/ca.crt" -u bench \
	    --password-file "$dir/pw" "$(url "$1")" >/dev/null 2>>"$dir/legit.err"; then
		r=ok
	else
		r=fail
	fi
	t1=$(now_ns)
	echo "$r $(( (t1 - t0) / 1000000 ))"
}
# legit PHASE SECONDS: logins one after another, dc1 and dc2 in turn, for
# SECONDS; a line "PHASE DC ok|fail ms" each.
legit() {
	local end=$(( $(date +%s) + $2 )) dc=dc1
	while [ "$(date +%s)" -lt "$end" ]; do
		echo "$1 $dc $(login "$dc")" >> "$dir/legit.txt"
		[ "$dc" = dc1 ] && dc=dc2 || dc=dc1
		sleep 0.5
	done
}

# Each legitimate device logs in once before: a device the DC knows.
login dc1 >/dev/null
login dc2 >/dev/null
legit quiet "$QUIET"
"$NTM_BIN/tests/flood" login --url "$(url dc1)" --ca "$dir/as/ca.crt" --rate "$RATE" \
    --seconds "$SECS" --sources "$SOURCES" --conns 12 > "$dir/flood.login" 2>&1 &
pids+=($!)
legit login-flood "$SECS"
wait "${pids[0]}" || true
pids=()
legit after-login "$QUIET"
"$NTM_BIN/tests/flood" moved --dc "$(url dc1)" --ca "$dir/as/ca.crt" \
    --udp "127.0.0.1:$(cat "$dir/dc1.udpport")" --peer-dc "$(url dc2)" \
    --peer-udp "127.0.0.1:$(cat "$dir/dc2.udpport")" --user mover --password-file "$dir/pw" \
    --rate "$MRATE" --seconds "$SECS" > "$dir/flood.moved" 2>&1 &
pids+=($!)
legit moved-flood "$SECS"
wait "${pids[0]}" || true
pids=()
legit after-moved "$QUIET"

# stats PHASE DC: "n ok median p95"
stats() {
	awk -v p="$1" -v d="$2" '$1 == p && $2 == d { n++; if ($3 == "ok") ok++; print $4 > "/dev/stderr" }
	    END { printf "%d %d ", n, ok }' "$dir/legit.txt" 2>"$dir/ms"
	sort -n "$dir/ms" | awk '{v[NR] = $1} END {if (NR == 0) {print "- -"; exit}
	    print v[int((NR + 1) / 2)], v[int(NR * 0.95 + 0.999)]}'
}
echo "legitimate logins of known devices (one at a time, dc1 and dc2 in turn, from 127.0.0.1), real Argon2id:"
for dc in dc1 dc2; do
	read -r _ _ _ base < <(stats quiet "$dc")
	for ph in quiet login-flood after-login moved-flood after-moved; do
		read -r n ok med p95 < <(stats "$ph" "$dc")
		printf '  %s %-12s %3d logins, %5s%% ok, median %4s ms, p95 %4s ms (%sx quiet)\n' \
		    "$dc" "$ph" "$n" "$( [ "$n" -gt 0 ] && echo "scale=1; 100 * $ok / $n" | bc || echo -)" \
		    "$med" "$p95" "$( [ "$base" != - ] && [ "$p95" != - ] && echo "scale=2; $p95 / $base" | bc || echo -)"
	done
done
if [ -s "$dir/legit.err" ]; then
	echo "  why the failed ones failed:"
	sed 's/^/    /' "$dir/legit.err" | sort | uniq -c | sort -rn | head -5
fi
echo "login flood (asked $RATE/s for $SECS s from $SOURCES addresses): $(grep -h '^result\|flood:' "$dir/flood.login" | tail -1)"
echo "moved flood (asked $MRATE/s for $SECS s): $(grep -h '^result\|flood:' "$dir/flood.moved" | tail -1)"
echo "dc1 udp counters: $("$NTM_BIN/ntm-dc" -f "$dir/dc1.conf" status --json 2>/dev/null |
    jq -c '.udp | {registered, moved, moves_held}' 2>/dev/null || echo -)"
for r in as dc1 dc2; do
	printf '%s RSS after: %s kB; ' "$r" "$(awk '/VmRSS/ {print $2}' "/proc/$(cat "$dir/$r.pid")/status")"
done
echo
