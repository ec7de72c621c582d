#!/usr/bin/env bash
# bench/as-pair.sh - logins per second with production Argon2id through one
# and through two ntm-as on one PostgreSQL (ntm-as(8), Storage), on
# loopback, and the same with one AS killed (-9) in the middle.
#
#   loadgen -> dc1 -> as1 (then as2)  \
#                                      > PostgreSQL (a cluster of its own,
#   loadgen -> dc2 -> as2 (then as1)  /   run as nobody in a temp dir)
#
# 1. one AS: BENCH_AS_N (200) logins at dc1 alone (as1 hashes them);
# 2. two AS: BENCH_AS_N logins at dc1 and as many at dc2 at once (as1 and
#    as2 each hash their DC's);
# 3. kill: BENCH_AS_N logins at dc1 with as1 killed -9 after
#    BENCH_AS_KILL_S (2) s: dc1 moves to as2; what got through.
# Each by tests/tools/loadgen (its login phase is what is read here; its
# short steady phase follows). Reports rates and ratios from one run;
# nothing passes or fails on a timing. Needs PostgreSQL (scripts/deps.sh)
# and root (the cluster runs as nobody).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
_platform_ports_file=$(mktemp /tmp/ntm-ports.XXXXXX)
. "$top/scripts/platform.sh"
N=${BENCH_AS_N:-200}
CONNS=${BENCH_AS_CONNS:-16}
KILL_S=${BENCH_AS_KILL_S:-2}
LG=$NTM_BIN/tests/loadgen
[ -x "$LG" ] || { echo "as-pair.sh: $LG missing (make tools)" >&2; exit 1; }
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$PGBIN" ] || [ "$(id -u)" -ne 0 ]; then
	echo "bench/as-pair.sh: needs PostgreSQL (scripts/deps.sh) and root (the" \
	    "cluster runs as nobody); skipped"
	rm -f "$_platform_ports_file"
	exit 0
fi

dir= pg=
cleanup() {
	[ -z "$dir" ] || platform_stop "$dir"
	if [ -n "$pg" ]; then
		[ -f "$pg/pid" ] && kill -INT "$(cat "$pg/pid")" 2>/dev/null
		for ((i = 0; i < 100; i++)); do
			[ -f "$pg/pid" ] && kill -0 "$(cat "$pg/pid")" 2>/dev/null || break
			sleep 0.1
		done
		rm -rf "$pg"
	fi
	[ -z "$dir" ] || rm -rf "$dir"
	rm -f "$_platform_ports_file"
}
trap cleanup EXIT
unset NTM_PWHASH_FAST

# The cluster: initdb and the server as nobody, a Unix socket only.
pg=$(mktemp -d /tmp/ntm-pg.XXXXXX)
chown nobody:nogroup "$pg" && chmod 700 "$pg"
pgport=$(free_port)
nob() { setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"; }
nob "$PGBIN/initdb" -D "$pg/data" -U ntm --auth=trust -E UTF8 >"$pg/initdb.log" 2>&1
nob "$PGBIN/pg_ctl" -D "$pg/data" -l "$pg/pg.log" -w -t 30 \
    -o "-k $pg -c listen_addresses= -p $pgport" start >/dev/null
head -n 1 "$pg/data/postmaster.pid" > "$pg/pid"

PLATFORM_ROLES="as as2 dc1 dc2"
dir=$(mktemp -d /tmp/ntm-aspair.XXXXXX)
PLATFORM_AS_DATABASE="host=$pg port=$pgport user=ntm dbname=postgres" platform_init "$dir" >/dev/null
cp -a "$dir/as" "$dir/as2"
rm -f "$dir/as2/pid"
free_port > "$dir/as2.port"
sed -e "s|^state_dir = .*|state_dir = $dir/as2|" -e "s|^pidfile = .*|pidfile = $dir/as2/pid|" \
    -e "s|^listen = .*|listen = 127.0.0.1:$(cat "$dir/as2.port")|" "$dir/as.conf" > "$dir/as2.conf"
as1="https://127.0.0.1:$(cat "$dir/as.port")" as2="https://127.0.0.1:$(cat "$dir/as2.port")"
for d in dc1 dc2; do
	sed -i -e '/^login_rate/d' -e '/^as_url/d' "$dir/$d.conf"
	{
		echo "login_rate = 1000000"
		echo "login_rate_prefix = 1000000"
		echo "login_queue_prefix = 100000"
		echo "login_inflight = 64"
		echo "max_devices = 0"
	} >> "$dir/$d.conf"
done
echo "as_url = $as1, $as2" >> "$dir/dc1.conf"
echo "as_url = $as2, $as1" >> "$dir/dc2.conf"
for a in as as2; do
	{ echo "signed_rate = 1000000"; echo "signed_burst = 1000000"; } >> "$dir/$a.conf"
done
platform_start "$dir"
head -c 18 /dev/urandom | base64 > "$dir/pw"
users=$(( (N + 99) / 100 ))
for ((u = 0; u < users; u++)); do
	"$NTM_BIN/ntm-as" -f "$dir/as.conf" user add "lg$u" --password-file "$dir/pw" >/dev/null
done

# lg DC PREFIX-OF-DEVICES: one loadgen run at DC; its result line.
lg() {
	"$LG" --dc "https://127.0.0.1:$(platform_port "$dir" "$1")" --ca "$dir/as/ca.crt" \
	    --udp "127.0.0.1:$(cat "$dir/$1.udpport")" --password-file "$dir/pw" \
	    --users "$users" --n "$N" --sources 16 --http-conns "$CONNS" --seconds 1 \
	    --tunnel-rate 1 --timeout 900 2>/dev/null | grep '^result'
}
field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"; }

echo "# AS: $N logins a DC, production Argon2id, $CONNS connections, $(nproc) CPUs (shared)"
r1=$(lg dc1)
one=$(field "$r1" login_per_s)
echo "one AS:  $(field "$r1" logged_in)/$N logged in, $one logins/s"

lg dc1 > "$dir/r2a" & p1=$!
lg dc2 > "$dir/r2b" & p2=$!
wait $p1 $p2
a=$(field "$(cat "$dir/r2a")" login_per_s) b=$(field "$(cat "$dir/r2b")" login_per_s)
echo "two AS:  $(field "$(cat "$dir/r2a")" logged_in)+$(field "$(cat "$dir/r2b")" logged_in)/$((2 * N))" \
    "logged in, $a + $b = $((a + b)) logins/s, $(echo "scale=2; ($a + $b) / $one" | bc) x one AS"

lg dc1 > "$dir/r3" & p3=$!
sleep "$KILL_S"
kill -9 "$(cat "$dir/as.pid")"
wait $p3 || true
r3=$(cat "$dir/r3")
echo "as1 killed -9 after ${KILL_S} s: $(field "$r3" logged_in)/$N logged in," \
    "$(field "$r3" login_per_s) logins/s; dc1: $(grep -c 'asking .* from now on' \
    "$dir/dc1.log") move(s) to the next AS"
