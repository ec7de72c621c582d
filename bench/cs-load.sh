#!/usr/bin/env bash
# bench/cs-load.sh - many senders storing objects at one CS at once, on
# loopback (tests/tools/csload.c over the CS's real HTTPS interface).
#
# BENCH_CS_SENDERS (1000) senders, each over its own connection from its own
# address of 127.3.0.0/16, logged in as BENCH_CS_USERS (125) accounts (the
# CS takes 8 unfinished uploads per account), each store
# BENCH_CS_OBJECTS (1) objects of BENCH_CS_SIZE (1 MiB) for one recipient:
# a create and one PUT that is also the commit. Reports objects/s and MiB/s
# over the send phase, the time of one object, the CS's RSS before and at
# its peak; baseline: the same objects sent by BENCH_CS_BASE (1) sender one
# after another in the same run, so the ratio shows what concurrency costs
# or gains. AS hash cost lowered (NTM_PWHASH_FAST). Bounded in time.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d /tmp/ntm-bench.XXXXXX)
_platform_ports_file=$dir/ports
. "$top/scripts/platform.sh"
export NTM_PWHASH_FAST=1
N=${BENCH_CS_SENDERS:-1000}
K=${BENCH_CS_USERS:-125}
M=${BENCH_CS_OBJECTS:-1}
SIZE=${BENCH_CS_SIZE:-1048576}
trap 'platform_stop "$dir/p"; rm -rf "$dir"' EXIT
[ -x "$NTM_BIN/tests/csload" ] || make -C "$top" -s tools >/dev/null
p=$dir/p
platform_init "$p" >/dev/null
# Room at dc1 for every sender's device (its vIPv4 prefix, a /24 in the
# test platform, and no cap of devices per user).
sed -i -e '/^vip4_prefix/d' "$p/dc1.conf"
printf 'vip4_prefix = 100.68.0.0/20\nmax_devices = 0\n' >> "$p/dc1.conf"
echo "cs_url = $(platform_cs_url "$p")" >> "$p/dc1.conf"
echo "cs_url = $(platform_cs_url "$p")" >> "$p/dc2.conf"
platform_start "$p"
head -c 18 /dev/urandom | base64 > "$dir/pw"
for ((i = 0; i < K; i++)); do
	"$NTM_BIN/ntm-as" -f "$p/as.conf" user add "cs$i" --password-file "$dir/pw" >/dev/null
done
"$NTM_BIN/ntm-as" -f "$p/as.conf" user add sink --password-file "$dir/pw" >/dev/null
"$NTM_BIN/ntm" -c "$dir/sink" login --ca "$p/as/ca.crt" -u sink --password-file "$dir/pw" \
    "https://127.0.0.1:$(platform_port "$p" dc2)" >/dev/null
to=$(jq -r .fqdn "$dir/sink/session.json")
args=(--dc "https://127.0.0.1:$(platform_port "$p" dc1)" --cs "$(platform_cs_url "$p")"
    --ca "$p/as/ca.crt" --password-file "$dir/pw" --to "$to" --size "$SIZE"
    --cs-pid "$(cat "$p/cs.pid")" --timeout 600)
echo "baseline: one sender, $((M * 20)) objects one after another"
"$NTM_BIN/tests/csload" "${args[@]}" --user-prefix cs --users 1 --n 1 --objects $((M * 20)) |
    grep '^send:'
echo "$N senders at once ($K accounts), $M object(s) each"
"$NTM_BIN/tests/csload" "${args[@]}" --user-prefix cs --users "$K" --n "$N" --objects "$M" |
    sed "s/^result /answers: /"
echo "CS RSS after: $(awk '/VmRSS/ {print $2}' "/proc/$(cat "$p/cs.pid")/status") kB"
