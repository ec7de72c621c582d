#!/usr/bin/env bash
# bench/control.sh - control-plane cost on loopback.
#
# Baseline: an HTTPS GET /v1/health round trip to the DC (TLS handshake +
# one request, made by the same curl binary). Measured against it, in the
# same run: a full `ntm login` (client -> DC -> signed request -> AS ->
# Argon2id on a worker -> token -> vIP lease -> session key), with the real
# Argon2id parameters. Also reports the CPU time of each daemon per login,
# and the logins/s the platform takes from many clients at once.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
# The ports the platform hands out, in a file that goes with the run.
_platform_ports_file=$(mktemp /tmp/ntm-ports.XXXXXX)
. "$top/scripts/platform.sh"
N=${BENCH_N:-20}
dir=$(mktemp -d /tmp/ntm-bench.XXXXXX)
trap 'platform_stop "$dir"; rm -rf "$dir" "$_platform_ports_file"' EXIT
unset NTM_PWHASH_FAST
platform_init "$dir" >/dev/null
platform_start "$dir"
head -c 18 /dev/urandom | base64 > "$dir/pw"
"$NTM_BIN/ntm-as" -f "$dir/as.conf" user add bench --password-file "$dir/pw"
dc="https://127.0.0.1:$(platform_port "$dir" dc1)"

now_ns() { date +%s%N; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

t0=$(now_ns)
for ((i = 0; i < N; i++)); do
	curl -sf --cacert "$dir/as/ca.crt" "$dc/v1/health" >/dev/null
done
t1=$(now_ns)
as_pid=$(cat "$dir/as.pid") dc_pid=$(cat "$dir/dc1.pid")
as0=$(cpu_ticks "$as_pid") dc0=$(cpu_ticks "$dc_pid")
t2=$(now_ns)
for ((i = 0; i < N; i++)); do
	"$NTM_BIN/ntm" -c "$dir/client" login --ca "$dir/as/ca.crt" -u bench \
	    --password-file "$dir/pw" "$dc" >/dev/null
done
t3=$(now_ns)
as1=$(cpu_ticks "$as_pid") dc1=$(cpu_ticks "$dc_pid")
hz=$(getconf CLK_TCK)
health_ms=$(( (t1 - t0) / N / 1000000 ))
login_ms=$(( (t3 - t2) / N / 1000000 ))
printf 'health round trip (baseline): %d ms\n' "$health_ms"
printf 'ntm login:                    %d ms  (%.1f x baseline)\n' "$login_ms" \
    "$(echo "scale=2; ($t3 - $t2) / ($t1 - $t0)" | bc)"
printf 'CPU per login: AS %d ms, DC %d ms (Argon2id at the AS dominates)\n' \
    $(( (as1 - as0) * 1000 / hz / N )) $(( (dc1 - dc0) * 1000 / hz / N ))

# Unknown and known users answered alike: a wrong password for N distinct
# existing users against N distinct unknown names (distinct, so that the
# per-user backoff never starts), the same answer, and the times compared.
K=${BENCH_ALIKE:-40}
for ((i = 0; i < K; i++)); do
	"$NTM_BIN/ntm-as" -f "$dir/as.conf" user add "known$i" --password-file "$dir/pw" >/dev/null
done
echo wrong > "$dir/wrong"
# one NAME: microseconds of one login as NAME with a wrong password.
one() {
	local t0 t1
	t0=$(now_ns)
	"$NTM_BIN/ntm" -c "$dir/x$1" login --ca "$dir/as/ca.crt" -u "$1" \
	    --password-file "$dir/wrong" "$dc" >/dev/null 2>&1 || true
	t1=$(now_ns)
	echo $(( (t1 - t0) / 1000 ))
}
# Interleaved, so that a drift of the machine falls on both alike.
for ((i = 0; i < K; i++)); do
	one "known$i" >> "$dir/known.us"
	one "nobody$i" >> "$dir/unknown.us"
done
median() { sort -n "$1" | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
known_us=$(median "$dir/known.us")
unknown_us=$(median "$dir/unknown.us")
printf 'wrong password (medians of %d), existing user: %d.%03d ms; unknown user: %d.%03d ms (ratio %s; the same answer)\n' \
    "$K" $((known_us / 1000)) $((known_us % 1000)) $((unknown_us / 1000)) $((unknown_us % 1000)) \
    "$(echo "scale=3; $unknown_us / $known_us" | bc)"

# Throughput: P clients logging in at once, M logins each, every one a
# distinct user (no per-user backoff), with the real Argon2id: logins/s
# the platform takes, the AS's password checks on its workers bounding it.
P=${BENCH_PAR:-8}
M=${BENCH_PAR_EACH:-4}
for ((i = 0; i < P; i++)); do
	"$NTM_BIN/ntm-as" -f "$dir/as.conf" user add "par$i" --password-file "$dir/pw" >/dev/null
done
as0=$(cpu_ticks "$as_pid")
t0=$(now_ns)
pids=()
for ((i = 0; i < P; i++)); do
	(
		for ((j = 0; j < M; j++)); do
			"$NTM_BIN/ntm" -c "$dir/par$i" login --ca "$dir/as/ca.crt" -u "par$i" \
			    --password-file "$dir/pw" "$dc" >/dev/null 2>&1 && echo ok
		done > "$dir/par$i.ok"
	) &
	pids+=($!)
done
wait "${pids[@]}"
t1=$(now_ns)
as1=$(cpu_ticks "$as_pid")
ok=$(cat "$dir"/par*.ok | grep -c ok || true)
printf 'parallel logins: %d clients x %d: %d ok in %d ms = %s logins/s (AS CPU %d ms per login, %d cores)\n' \
    "$P" "$M" "$ok" $(( (t1 - t0) / 1000000 )) \
    "$(echo "scale=1; $ok * 1000000000 / ($t1 - $t0)" | bc)" \
    $(( ok > 0 ? (as1 - as0) * 1000 / hz / ok : 0 )) "$(nproc)"
