#!/usr/bin/env bash
# bench/login-flood.sh - legitimate logins while anonymous clients flood the
# DC with logins of unknown users, on loopback, real Argon2id at the AS.
#
# Flood: BENCH_FLOOD_RATE (2000) POST /v1/login per second for
# BENCH_FLOOD_S (30) seconds, from BENCH_FLOOD_SOURCES (64) addresses of
# 127.0.0.0/8 spread over as many /24s (curl --interface), each a fresh
# unknown user. Meanwhile, and for the same time before and after, one
# legitimate `ntm login` at a time from 127.0.0.1 (its own /24). Reports,
# per phase (before, during, after): legitimate logins made, the share
# that succeeded, their median and p95 time; and the flood's rate sent and
# how it was answered. Baseline: the same logins with no flood, before it.
# Bounded in count and time. Nothing here passes or fails on a timing.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
# The ports the platform hands out, in a file that goes with the run.
_platform_ports_file=$(mktemp /tmp/ntm-ports.XXXXXX)
. "$top/scripts/platform.sh"
RATE=${BENCH_FLOOD_RATE:-2000}
SECS=${BENCH_FLOOD_S:-30}
SOURCES=${BENCH_FLOOD_SOURCES:-64}
dir=$(mktemp -d /tmp/ntm-bench.XXXXXX)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; platform_stop "$dir"; rm -rf "$dir" "$_platform_ports_file"' EXIT
unset NTM_PWHASH_FAST
platform_init "$dir" >/dev/null
# The production login limits on the DC (the test platform raises them).
sed -i -e '/^login_rate/d' "$dir/dc1.conf"
platform_start "$dir"
head -c 18 /dev/urandom | base64 > "$dir/pw"
"$NTM_BIN/ntm-as" -f "$dir/as.conf" user add bench --password-file "$dir/pw"
port=$(platform_port "$dir" dc1)
dc="https://127.0.0.1:$port"

now_ns() { date +%s%N; }
# legit PHASE SECONDS: one login after another from 127.0.0.1 for SECONDS;
# a line "PHASE ok|fail ms" each.
legit() {
	local end=$(( $(date +%s) + $2 )) t0 t1 r
	while [ "$(date +%s)" -lt "$end" ]; do
		t0=$(now_ns)
		if timeout 20 "$NTM_BIN/ntm" -c "$dir/legit" login --ca "$dir/as/ca.crt" -u bench \
		    --password-file "$dir/pw" "https://127.0.0.1:$port" >/dev/null 2>>"$dir/legit.err"; then
			r=ok
		else
			r=fail
		fi
		t1=$(now_ns)
		echo "$1 $r $(( (t1 - t0) / 1000000 ))" >> "$dir/legit.txt"
		sleep 1
	done
}

# flood: RATE requests a second from SOURCES addresses for SECS seconds.
flood() {
	local per=$(( RATE / SOURCES )) s
	[ "$per" -ge 1 ] || per=1
	for ((s = 0; s < SOURCES; s++)); do
		python3 - "$port" "$dir/as/ca.crt" "127.0.$((s + 10)).1" "$per" "$SECS" \
		    "$dir/flood.$s" <<'EOF' &
import http.client, json, ssl, sys, time, socket
port, ca, src, rate, secs, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
ctx = ssl.create_default_context(cafile=ca)
ctx.check_hostname = False
sent, codes, t_end, i = 0, {}, time.time() + secs, 0
conn = None
while time.time() < t_end:
    t0 = time.time()
    for _ in range(rate):
        if time.time() >= t_end:
            break
        i += 1
        body = json.dumps({"version": 1, "user": "x%s%d" % (src.replace(".", ""), i),
            "password": "guess", "device": "d", "client_key": "A" * 43})
        try:
            if conn is None:
                conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx,
                    timeout=5, source_address=(src, 0))
            conn.request("POST", "/v1/login", body, {"Content-Type": "application/json"})
            r = conn.getresponse(); r.read()
            c = r.status
        except Exception:
            c = 0
            conn = None
        sent += 1
        codes[c] = codes.get(c, 0) + 1
    d = 1.0 - (time.time() - t0)
    if d > 0:
        time.sleep(d)
open(out, "w").write(json.dumps({"sent": sent, "codes": codes}))
EOF
		pids+=($!)
	done
}

legit before 10
flood
legit during "$SECS"
for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
pids=()
legit after 15

report() {	# PHASE
	awk -v p="$1" '$1 == p { n++; if ($2 == "ok") ok++; print $3 > "/dev/stderr" }
	    END { printf "%d %d\n", n, ok }' "$dir/legit.txt" 2>"$dir/ms.$1"
}
echo "legitimate logins (one at a time, from their own address), real Argon2id:"
for ph in before during after; do
	read -r n ok < <(report "$ph")
	read -r med p95 < <(sort -n "$dir/ms.$ph" | awk '{v[NR] = $1} END {if (NR == 0) {print "- -"; exit}
	    print v[int((NR + 1) / 2)], v[int(NR * 0.95 + 0.999)]}')
	printf '  %-7s %3d logins, %5s%% ok, median %s ms, p95 %s ms\n' "$ph" "$n" \
	    "$( [ "$n" -gt 0 ] && echo "scale=1; 100 * $ok / $n" | bc || echo -)" "$med" "$p95"
done
if [ -s "$dir/legit.err" ]; then
	echo "  why the failed ones failed:"
	sed 's/^/    /' "$dir/legit.err" | sort | uniq -c | sort -rn | head -5
fi
python3 - "$dir" "$SOURCES" "$SECS" <<'EOF'
import json, sys, glob
d, n, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
sent, codes = 0, {}
for f in glob.glob(d + "/flood.*"):
    j = json.load(open(f)); sent += j["sent"]
    for k, v in j["codes"].items(): codes[k] = codes.get(k, 0) + v
print("flood: %d requests in %.0f s from %d addresses (%.0f/s sent); answers: %s" % (
    sent, secs, n, sent / secs, ", ".join("%s %d" % (k if k != "0" else "no answer", v)
    for k, v in sorted(codes.items()))))
EOF
