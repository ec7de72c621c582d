#!/usr/bin/env bash
# bench/setup.sh - how long a new tunnel takes to carry its first packet:
# `ntm tunnel ping -c 1` to a peer with no tunnel yet (direction request,
# handshake, one echo), direct (global <-> global) against relayed (two
# different NATs, through the RS), in the same run on the same servers.
# Each trial closes the tunnel first. Reports the median and p95 of
# BENCH_N (20) trials per route and the relayed/direct ratio; a baseline of
# the same ping over a tunnel already up is printed too. Root needed.
# Nothing here passes or fails on a timing.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
N=${BENCH_N:-20}
if [ "$(id -u)" -ne 0 ]; then
	echo "bench/setup.sh: needs root (network namespaces); skipped"
	exit 0
fi
BATS_TEST_DIRNAME=$top/tests/netns
. "$top/tests/netns/lib.bash"
dir=$(mktemp -d /tmp/ntm-bench.XXXXXX)
trap 'topo_down "$dir"; rm -rf "$dir"' EXIT
export NTM_KEEPALIVE=5
topo_up "$dir" >/dev/null
servers_up >/dev/null
host_global g1 198.18.1.10
host_global g2 198.18.1.20
nat_router nat1 198.18.2.1 100.64.2.1
nat_router nat2 198.18.3.1 100.64.3.1
host_behind a1 nat1 100.64.2.10 100.64.2.1
host_behind b1 nat2 100.64.3.10 100.64.3.1
client_up g1 alice alice dc1
client_up g2 bob bob dc2
client_up a1 carol carol dc1
client_up b1 dave dave dc2

now_ns() { date +%s%N; }
# first NS PROF PEER: ms from a closed tunnel to the first echo reply.
first() {
	local t0 t1
	ntmc "$1" "$2" tunnel close "$3" >/dev/null 2>&1 || true
	sleep 0.3
	t0=$(now_ns)
	ntmc "$1" "$2" tunnel ping -c 1 --timeout 20 "$3" >/dev/null
	t1=$(now_ns)
	echo $(( (t1 - t0) / 1000000 ))
}
# again NS PROF PEER: ms of the same one-echo ping over the tunnel up now.
again() {
	local t0 t1
	t0=$(now_ns)
	ntmc "$1" "$2" tunnel ping -c 1 --timeout 20 "$3" >/dev/null
	t1=$(now_ns)
	echo $(( (t1 - t0) / 1000000 ))
}
stats() { sort -n | awk '{v[NR] = $1} END {m = v[int((NR + 1) / 2)]; p = v[int(NR * 0.95 + 0.999)]; printf "%d %d\n", m, p}'; }

bob=$(fqdn_of bob) dave=$(fqdn_of dave)
for ((i = 0; i < N; i++)); do first g1 alice "$bob"; done > "$dir/direct"
for ((i = 0; i < N; i++)); do again g1 alice "$bob"; done > "$dir/direct.up"
for ((i = 0; i < N; i++)); do first a1 carol "$dave"; done > "$dir/relay"
route=$(ntmc a1 carol tunnel list --json | jq -r '(.tunnels // .)[0].route')
read -r dm dp < <(stats < "$dir/direct")
read -r um up < <(stats < "$dir/direct.up")
read -r rm rp < <(stats < "$dir/relay")
echo "time to the first echo reply over a new tunnel (ms; median p95 of $N; CLI start included)"
printf '  %-34s %6s %6s\n' "ping over a tunnel already up" "$um" "$up"
printf '  %-34s %6s %6s\n' "new tunnel, direct" "$dm" "$dp"
printf '  %-34s %6s %6s   (route: %s)\n' "new tunnel, relayed" "$rm" "$rp" "$route"
echo "  relayed / direct (medians): $(echo "scale=2; $rm / $dm" | bc)"
