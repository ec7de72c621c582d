#!/usr/bin/env bash
# bench/scale.sh - how far one DC and one RS go, on loopback, one run.
#
# DC: a platform (AS, dc1, RS) whose per-source limits, meant for the
# hostile internet, are raised so that one load generator from 127.0.0.0/8
# is not refused (below); then tests/tools/loadgen for each N of
# BENCH_SCALE_N (default "1000 10000"): N devices log in (AS Argon2id cost
# lowered, NTM_PWHASH_FAST=1, as in the tests), register over UDP from
# BENCH_SCALE_SOURCES (256) addresses of 127.2.0.0/16, twice (a first
# registration stores a location; the second is a keepalive), with at most
# BENCH_SCALE_WINDOW (128) REG_REQs unanswered at once, then for
# BENCH_SCALE_S (20) seconds keep registering once per keepalive_s while
# asking BENCH_SCALE_TUNNEL_RATE (200) tunnels a second between random
# pairs. Reported per N: logins/s, peak registrations/s (first, again),
# the DC's CPU time per registration in each burst (us/first, us/again:
# microseconds of user + system time of all its threads over the burst,
# /proc/PID/stat, divided by the registrations answered; in ticks of 10
# ms, so meaningful from about 10,000 devices; it moves far less with the
# other load on the machine than the rates do), tunnel requests/s with
# p50/p99, the DC's RSS per device (VmRSS after the run minus VmRSS
# before, / N) and its CPU seconds over the whole run. The smallest N is
# the baseline of the p99 ratio. A fresh DC (and database) for each N.
#
# RS: BENCH_SCALE_RELAYS (10000) tunnels bound on both sides through the RS
# (tickets made with the DC's key, as rsflood sessions does), then packets
# sent through them for BENCH_SCALE_RELAY_S (5) seconds; forwarded packets/s
# and Mbit/s against raw UDP between the same two sockets (no RS).
# BENCH_SCALE_RELAYS=0 leaves the RS part out.
#
# Limits raised (and only for this run):
#   dc1: login_rate, login_rate_prefix  (logins per source address and /24)
#        login_queue_prefix, login_inflight (logins waiting per /24, and at
#                                         the AS at once: the generator's
#                                         connections all come from 127.0.0.1)
#        max_devices 0                  (devices per user)
#        vip4_prefix 100.68.0.0/14      (room for 262,142 devices; the
#                                         platform's /24 holds 253)
#   as:  signed_rate, signed_burst      (the DC's relayed logins per second)
#   rs:  max_sessions                   (BENCH_SCALE_RELAYS + 16)
#        bind_rate, bind_rate_source,   (full ticket checks per second, for
#        bind_rate_prefix                the RS, an address, a /24)
#        dc_session_share 100           (all the tickets come from dc1)
# Nothing here passes or fails on a timing: it reports.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
# The ports the platform hands out, in a file that goes with the run.
_platform_ports_file=$(mktemp /tmp/ntm-ports.XXXXXX)
. "$top/scripts/platform.sh"
PLATFORM_ROLES="as dc1 rs"
NS=${BENCH_SCALE_N:-"1000 10000"}
SECS=${BENCH_SCALE_S:-20}
RATE=${BENCH_SCALE_TUNNEL_RATE:-200}
SOURCES=${BENCH_SCALE_SOURCES:-256}
CONNS=${BENCH_SCALE_CONNS:-32}
WINDOW=${BENCH_SCALE_WINDOW:-128}
RELAYS=${BENCH_SCALE_RELAYS:-10000}
RELAY_S=${BENCH_SCALE_RELAY_S:-5}
export NTM_PWHASH_FAST=1
LG=$NTM_BIN/tests/loadgen
[ -x "$LG" ] || { echo "scale.sh: $LG missing (make tools)" >&2; exit 1; }
dir=
cleanup() {
	[ -z "$dir" ] || { platform_stop "$dir"; rm -rf "$dir"; }
	rm -f "$_platform_ports_file"
}
trap cleanup EXIT

kb_rss() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status"; }
# CPU seconds (user + system) of a process, from /proc/PID/stat.
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }

platform() {
	dir=$(mktemp -d /tmp/ntm-scale.XXXXXX)
	platform_init "$dir" >/dev/null
	sed -i -e '/^login_rate/d' -e '/^login_queue/d' -e '/^login_inflight/d' \
	    -e '/^vip4_prefix/d' "$dir/dc1.conf"
	{
		echo "login_rate = 1000000"
		echo "login_rate_prefix = 1000000"
		echo "login_queue_prefix = 100000"
		echo "login_inflight = 64"
		echo "max_devices = 0"
		echo "vip4_prefix = 100.68.0.0/14"
	} >> "$dir/dc1.conf"
	{
		echo "signed_rate = 1000000"
		echo "signed_burst = 1000000"
	} >> "$dir/as.conf"
	{
		echo "max_sessions = $((RELAYS + 16))"
		echo "bind_rate = 1000000"
		echo "bind_rate_source = 1000000"
		echo "bind_rate_prefix = 1000000"
		echo "dc_session_share = 100"
	} >> "$dir/rs.conf"
	platform_start "$dir"
	head -c 18 /dev/urandom | base64 > "$dir/pw"
}

# run_dc N: one loadgen run against a fresh DC; a line of results.
run_dc() {
	local n=$1 users pid rss0 rss1 cpu0 cpu1 out
	platform
	users=$(( (n + 99) / 100 ))
	for ((u = 0; u < users; u++)); do
		"$NTM_BIN/ntm-as" -f "$dir/as.conf" user add "lg$u" --password-file "$dir/pw" \
		    >/dev/null
	done
	pid=$(cat "$dir/dc1.pid")
	rss0=$(kb_rss "$pid")
	cpu0=$(cpu_s "$pid")
	out=$("$LG" --dc "https://127.0.0.1:$(platform_port "$dir" dc1)" --ca "$dir/as/ca.crt" \
	    --udp "127.0.0.1:$(cat "$dir/dc1.udpport")" --password-file "$dir/pw" \
	    --users "$users" --n "$n" --sources "$SOURCES" --http-conns "$CONNS" --window "$WINDOW" \
	    --seconds "$SECS" --tunnel-rate "$RATE" --timeout 1800 --dc-pid "$pid")
	rss1=$(kb_rss "$pid")
	cpu1=$(cpu_s "$pid")
	echo "$out" | grep -v '^result' >&2
	echo "$(echo "$out" | grep '^result') dc_rss0_kb=$rss0 dc_rss1_kb=$rss1" \
	    "dc_cpu_s=$(echo "$cpu1 - $cpu0" | bc)"
	platform_stop "$dir"
	rm -rf "$dir"
	dir=
}

field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

echo "# DC: loadgen, $SECS s steady phase, $RATE tunnels/s asked, $SOURCES source addresses," \
    "$WINDOW registrations in flight"
printf '%-8s %9s %12s %12s %11s %11s %10s %10s %10s %12s %9s\n' devices logins/s \
    reg-first/s reg-again/s us/first us/again tunnels/s p50-ms p99-ms RSS/device dc-cpu-s
base99=
for n in $NS; do
	r=$(run_dc "$n")
	rssdev=$(( ( $(field "$r" dc_rss1_kb) - $(field "$r" dc_rss0_kb) ) * 1024 / n ))
	printf '%-8s %9s %12s %12s %11s %11s %10s %10s %10s %10s B %9s\n' "$n" \
	    "$(field "$r" login_per_s)" "$(field "$r" reg_first_per_s)" \
	    "$(field "$r" reg_again_per_s)" "$(field "$r" reg_first_dc_us)" \
	    "$(field "$r" reg_again_dc_us)" \
	    "$(field "$r" tunnel_per_s)" "$(field "$r" tunnel_p50_ms)" \
	    "$(field "$r" tunnel_p99_ms)" "$rssdev" "$(field "$r" dc_cpu_s)"
	p99=$(field "$r" tunnel_p99_ms)
	if [ -z "$base99" ]; then
		base99=$p99
	else
		echo "#   p99 at $n devices / p99 at the baseline: $(echo "scale=2; $p99 / $base99" | bc)"
	fi
	echo "#   REG_REQs sent again (unanswered after 1 s): first $(field "$r" reg_first_resent)," \
	    "again $(field "$r" reg_again_resent)"
	echo "#   errors: login $(field "$r" login_errors), udp $(field "$r" udp_errors)," \
	    "tunnel $(field "$r" tunnel_errors); tunnel requests not sent (connections busy):" \
	    "$(field "$r" tunnel_busy)"
done

[ "$RELAYS" -gt 0 ] || exit 0
echo
echo "# RS: $RELAYS relayed tunnels, both sides bound; ${RELAY_S} s of 1000-byte DATA each way"
platform
pid=$(cat "$dir/rs.pid")
rss0=$(kb_rss "$pid")
cpu0=$(cpu_s "$pid")
out=$("$NTM_BIN/tests/rsflood" relay --to "127.0.0.1:$(cat "$dir/rs.udpport")" \
    --key "$dir/dc1/identity.key" --cert "$dir/dc1/server.cert" \
    --rs-key "$("$NTM_BIN/ntm-rs" -f "$dir/rs.conf" pubkey)" --rs-name rs1.ntm.test \
    --n "$RELAYS" --seconds "$RELAY_S" --size 1000)
rss1=$(kb_rss "$pid")
cpu1=$(cpu_s "$pid")
echo "$out" | grep -v '^result'
r=$(echo "$out" | grep '^result')
printf '%-8s %9s %10s %12s %10s %10s %12s %9s\n' tunnels bound relay-pps relay-Mbit/s \
    raw-pps raw-Mbit/s relay/raw RSS/tunnel
printf '%-8s %9s %10s %12s %10s %10s %12s %8s B\n' "$RELAYS" "$(field "$r" bound)" \
    "$(field "$r" relay_pps)" "$(field "$r" relay_mbit)" "$(field "$r" raw_pps)" \
    "$(field "$r" raw_mbit)" "$(field "$r" ratio)" "$(( (rss1 - rss0) * 1024 / RELAYS ))"
echo "#   the RS's CPU over the run: $(echo "$(cpu_s "$pid") - $cpu0" | bc) s"
