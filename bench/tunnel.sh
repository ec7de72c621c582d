#!/usr/bin/env bash
# bench/tunnel.sh - datagram throughput through ntm tunnels, as ratios to raw
# UDP measured in the same run on the same namespace path (root needed).
#
#   srv (AS, DC1, DC2, RS, dnsmasq)
#     |
#   ==+==== switch 198.18.0.0/15 ====+==============+=============+====
#     |                               |              |             |
#   g1 198.18.1.10 (alice@dc1)     g2 198.18.1.20  nat1 -- a1    nat2 -- b1
#                                  (bob@dc2)       (carol@dc1)   (dave@dc2)
#
# direct: alice -> bob; relayed: carol -> dave (both behind NAT, via the RS).
# Baselines: iperf3 -u with the same datagram size, g1 -> g2 (direct path)
# and a1 -> the RS's host (the relay path's first leg). The tunnel rate is
# what the receiving application got (`ntm tunnel listen --udp`, fed by
# `ntm tunnel open --udp` at the sender); CPU is both agents' user + system
# time per MB moved. Each figure is the median of BENCH_REPEAT (3) runs.
# Nothing here passes or fails on a timing.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
SECS=${BENCH_SECONDS:-5}
SIZE=${BENCH_SIZE:-1200}	# datagram payload bytes (raw and inner UDP payload)
if [ "$(id -u)" -ne 0 ]; then
	echo "bench/tunnel.sh: needs root (network namespaces); skipped"
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

mbps() { echo "scale=1; $1 * 8 / $2 / 1000000" | bc; }
ratio() { echo "scale=2; $1 / $2" | bc; }
agent_pid() { ntmc "$1" "$2" status --json | jq -r .agent.pid; }
cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) * 1000 / hz}' "/proc/$1/stat"; }

# raw NS_FROM NS_TO ADDR: iperf3 UDP goodput (receiver side), bytes/s.
raw() {
	local from=$1 to=$2 addr=$3 pid
	pid=$(bg "$to" iperf3 iperf3 -s -1 -B "$addr")
	sleep 0.5
	n "$from" iperf3 -u -b 0 -l "$SIZE" -t "$SECS" -c "$addr" -J > "$dir/iperf.json"
	wait_for 5 bash -c "! kill -0 $pid 2>/dev/null" || kill "$pid" 2>/dev/null || true
	jq '.end.sum.bytes / .end.sum.seconds * (1 - .end.sum.lost_percent / 100)' "$dir/iperf.json"
}

# tunnel NS_FROM PROF_FROM NS_TO PROF_TO: UDP goodput between the vIPs as
# the receiving application sees it (bytes the listener printed: payload +
# newline = SIZE per datagram), bytes/s, and CPU ms per MB of both agents.
tunnel() {
	local from=$1 pf=$2 to=$3 pt=$4 peer c0 c1 a b line bytes
	peer=$(fqdn_of "$pt")
	ntmc "$from" "$pf" tunnel ping -c 1 --timeout 20 "$peer" >/dev/null
	rm -f "$dir/fifo" "$dir/count"
	mkfifo "$dir/fifo"
	wc -c < "$dir/fifo" > "$dir/count" &
	local counter=$! lis
	ip netns exec "$P$to" "$NTM_BIN/ntm" -c "$dir/$pt" tunnel listen --udp 9 \
	    > "$dir/fifo" 2>/dev/null &
	lis=$!
	sleep 0.5
	a=$(agent_pid "$from" "$pf") b=$(agent_pid "$to" "$pt")
	c0=$(echo "$(cpu_ms "$a") + $(cpu_ms "$b")" | bc)
	line=$(head -c $((SIZE - 1)) /dev/zero | tr '\0' 'x')
	yes "$line" | timeout "$SECS" ip netns exec "$P$from" "$NTM_BIN/ntm" -c "$dir/$pf" \
	    tunnel open "$peer" --udp 9 --wait 0 >/dev/null 2>&1 || true
	sleep 0.5
	c1=$(echo "$(cpu_ms "$a") + $(cpu_ms "$b")" | bc)
	kill "$lis" 2>/dev/null || true
	wait "$lis" 2>/dev/null || true
	wait "$counter" || true
	bytes=$(cat "$dir/count")
	echo "$((bytes / SECS)) $(echo "scale=1; ($c1 - $c0) / ($bytes / 1000000)" | bc)"
}

# median of the arguments (numbers), and "min-max" of them
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
range() { printf '%s\n' "$@" | sort -g | awk 'NR==1{lo=$1} {hi=$1} END {printf "%.0f-%.0f", lo*8/1e6, hi*8/1e6}'; }

# The raw baseline on a 2-CPU namespace path moves by +-20% from one
# measurement to the next, so each figure is the median of REPEAT runs,
# raw and tunnel runs interleaved so that drifts hit both alike.
REPEAT=${BENCH_REPEAT:-3}
echo "datagram payload $SIZE bytes, ${SECS}s per run, median of $REPEAT runs; $(nproc) CPUs"
rd=() rr=() td=() tr=() cd=() cr=()
for _ in $(seq "$REPEAT"); do
	rd+=("$(raw g1 g2 198.18.1.20)")
	read -r t c < <(tunnel g1 alice g2 bob)
	td+=("$t") cd+=("$c")
	rr+=("$(raw a1 srv 198.18.0.4)")
	read -r t c < <(tunnel a1 carol b1 dave)
	tr+=("$t") cr+=("$c")
done
raw_direct=$(median "${rd[@]}") raw_relay=$(median "${rr[@]}")
tun_direct=$(median "${td[@]}") tun_relay=$(median "${tr[@]}")
cpu_direct=$(median "${cd[@]}") cpu_relay=$(median "${cr[@]}")
route_d=$(tunnel_field g1 alice "$(fqdn_of bob)" route)
route_r=$(tunnel_field a1 carol "$(fqdn_of dave)" route)
printf '%-34s %8s Mbit/s  (runs %s)\n' "raw UDP g1 -> g2 (iperf3)" \
    "$(mbps "${raw_direct%.*}" 1)" "$(range "${rd[@]}")"
printf '%-34s %8s Mbit/s  (runs %s)\n' "raw UDP a1 -> RS host (iperf3)" \
    "$(mbps "${raw_relay%.*}" 1)" "$(range "${rr[@]}")"
printf '%-34s %8s Mbit/s  %s x raw  (runs %s; %s CPU-ms/MB)\n' "tunnel, $route_d (alice -> bob)" \
    "$(mbps "$tun_direct" 1)" "$(ratio "$tun_direct" "${raw_direct%.*}")" \
    "$(range "${td[@]}")" "$cpu_direct"
printf '%-34s %8s Mbit/s  %s x raw, %s x direct  (runs %s; %s CPU-ms/MB)\n' \
    "tunnel, $route_r (carol -> dave)" "$(mbps "$tun_relay" 1)" \
    "$(ratio "$tun_relay" "${raw_relay%.*}")" "$(ratio "$tun_relay" "$tun_direct")" \
    "$(range "${tr[@]}")" "$cpu_relay"
# Whether the agents' UDP GSO/GRO were in use (iperf3 sends datagram by
# datagram): counters of messages that carried runs of datagrams.
printf '%-34s sender %s, receiver %s\n' "offload (alice -> bob)" \
    "$(ntmc g1 alice status --json | jq -c .agent.offload)" \
    "$(ntmc g2 bob status --json | jq -c .agent.offload)"
