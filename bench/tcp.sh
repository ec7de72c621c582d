#!/usr/bin/env bash
# bench/tcp.sh - TCP throughput through ntm streams (the agent's user-space
# TCP/IP stack), as ratios to raw TCP measured in the same run on the same
# namespace path, and, where Debian's wireguard-go and nebula install, the
# same iperf3 transfer through them on the same hosts (root needed).
#
#   srv (AS, DC1, DC2, RS, dnsmasq)
#     |
#   ==+==== switch 198.18.0.0/15 ====+==============+=============+====
#     |                               |              |             |
#   g1 198.18.1.10 (alice@dc1)     g2 198.18.1.20  nat1 -- a1    nat2 -- b1
#   wg 100.127.1.1, nebula .2.1    (bob@dc2)       (carol@dc1)   (dave@dc2)
#                                  wg 100.127.1.2, nebula .2.2
#
# Rows:
#   raw TCP        iperf3 g1 -> g2, and a1 -> the RS's host (the relay
#                  path's first leg): kernel TCP over veth with GSO/GRO
#                  (64 KiB segments), a ceiling, not a fair baseline for
#                  any tunnel.
#   ntm stream     `ntm tunnel open PEER PORT < /dev/zero` into
#                  `ntm tunnel listen PORT > /dev/null`, alice -> bob
#                  (direct) and carol -> dave (relayed through the RS).
#   ntm TUN mode   `ntm up --tun` in g3 (erin@dc1) and g4 (frank@dc2):
#                  iperf3 between the vIPs on the kernel interfaces.
#   wireguard-go   a userspace WireGuard interface in g1 and g2, iperf3.
#   nebula         two nebula nodes in g1 and g2 without a lighthouse
#                  (static_host_map), iperf3.
#
# Every rate is what the receiver got over BENCH_SECONDS (10) after one
# second of warm-up (iperf3 -O 1; for a stream, the receiving agent's
# bytes_in). CPU is user + system time of the two tunnel processes (both
# agents; both wireguard-go; both nebula) per MB received over the same
# window; the applications (iperf3, the ntm CLI) are not counted. Each
# figure is the median of BENCH_REPEAT (3) runs, all rows interleaved in
# each round so that drifts of a shared machine hit them alike. Nothing
# here passes or fails on a timing; the issue's targets are reported.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
SECS=${BENCH_SECONDS:-10}
REPEAT=${BENCH_REPEAT:-3}
if [ "$(id -u)" -ne 0 ]; then
	echo "bench/tcp.sh: needs root (network namespaces); skipped"
	exit 0
fi
BATS_TEST_DIRNAME=$top/tests/netns
. "$top/tests/netns/lib.bash"
dir=$(mktemp -d /tmp/ntm-bench.XXXXXX)
# Interface names carry this shell's pid: wireguard-go's control sockets
# live in /run/wireguard, shared by every namespace.
WG_IF=ntmwg$$ NB_IF=ntmnb$$
cleanup() {
	topo_down "$dir"
	rm -f "/run/wireguard/${WG_IF}a.sock" "/run/wireguard/${WG_IF}b.sock"
	rm -rf "$dir"
}
trap cleanup EXIT

# have_or_install CMD PACKAGE...: CMD is on PATH, or apt-get installs the
# packages by name (once, quietly); false if that fails.
have_or_install() {
	local cmd=$1
	shift
	command -v "$cmd" >/dev/null && return 0
	echo "installing $* (apt-get)"
	DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -q \
	    --no-install-recommends "$@" > "$dir/apt.log" 2>&1 ||
	    { DEBIAN_FRONTEND=noninteractive timeout 300 apt-get update -q > "$dir/apt.log" 2>&1 &&
	      DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -q \
	      --no-install-recommends "$@" >> "$dir/apt.log" 2>&1; } ||
	    { tail -3 "$dir/apt.log" | sed 's/^/  apt-get: /'; return 1; }
	command -v "$cmd" >/dev/null
}
WG=1 NB=1
have_or_install wireguard-go wireguard-go wireguard-tools && command -v wg >/dev/null || WG=0
have_or_install nebula nebula && command -v nebula-cert >/dev/null || NB=0

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
# TUN mode: the vIPs on kernel interfaces, iperf3 between them.
TUN=0
if [ -c /dev/net/tun ]; then
	host_global g3 198.18.1.30
	host_global g4 198.18.1.40
	# frank's agent lets in erin's pings and the iperf3 server's port only
	# (TUN mode denies the rest inbound): the filter is in the measured path.
	if client_up g3 erin erin dc1 --tun ntm0 &&
	    client_up g4 frank frank dc2 --tun ntm0 --allow icmp --allow 5201/tcp &&
	    ntmc g3 erin tunnel ping -c 1 --timeout 20 "$(fqdn_of frank)" >/dev/null; then
		TUN=1
		tun_pids="$(ntmc g3 erin status --json | jq -r .agent.pid) $(ntmc g4 frank status --json | jq -r .agent.pid)"
		frank_v4=$(jq -r '.vip4 | split("/")[0]' "$dir/frank/session.json")
	fi
fi

mbps() { echo "scale=1; $1 * 8 / 1000000" | bc; }
ratio() { echo "scale=2; $1 / $2" | bc; }
agent_pid() { ntmc "$1" "$2" status --json | jq -r .agent.pid; }
cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) * 1000 / hz}' "/proc/$1/stat"; }
cpu2() { echo "$(cpu_ms "$1") + $(cpu_ms "$2")" | bc; }
now() { date +%s.%N; }
tcp_listens() { n "$1" ss -Hltn "sport = :$2" | grep -q .; }
# reaches NS ADDR: a TCP connection from NS to ADDR port 9 is answered, by
# a reset if nothing listens there (no ping in the namespaces' toolbox).
reaches() {
	local out
	out=$(timeout 2 ip netns exec "$P$1" bash -c "exec 3<>/dev/tcp/$2/9" 2>&1) && return 0
	[[ $out == *refused* ]]
}

# ---- wireguard-go: wg0-like interfaces ${WG_IF}a (g1) and ${WG_IF}b (g2) ---
wg_pids=
wg_up() {
	local k ns ifn a b o
	umask 077
	for k in a b; do
		wg genkey > "$dir/wg.$k.key"
		wg pubkey < "$dir/wg.$k.key" > "$dir/wg.$k.pub"
	done
	umask 022
	for k in a b; do
		if [ $k = a ]; then ns=g1 a=1 b=2 o=b; else ns=g2 a=2 b=1 o=a; fi
		ifn=$WG_IF$k
		# -f: stay in the foreground, so the recorded pid is the daemon
		WG_PROCESS_FOREGROUND=1 bg "$ns" "wg-$k" wireguard-go -f "$ifn" >> "$dir/wg.pids"
		wait_for 5 n "$ns" ip link show "$ifn" || return 1
		n "$ns" wg set "$ifn" private-key "$dir/wg.$k.key" listen-port 51820 \
		    peer "$(cat "$dir/wg.$o.pub")" allowed-ips "100.127.1.$b/32" \
		    endpoint "198.18.1.${b}0:51820" || return 1
		n "$ns" ip addr add "100.127.1.$a/24" dev "$ifn"
		n "$ns" ip link set "$ifn" up
	done
	wg_pids=$(tr '\n' ' ' < "$dir/wg.pids")
	wait_for 15 reaches g1 100.127.1.2
}

# ---- nebula: two nodes, certificates from a throwaway CA --------------------
nb_pids=
nb_up() {
	local k ns a b
	mkdir -m 700 "$dir/nebula"
	(cd "$dir/nebula" && nebula-cert ca -name "ntm bench" -duration 2h &&
	 nebula-cert sign -name a -ip 100.127.2.1/24 -duration 1h &&
	 nebula-cert sign -name b -ip 100.127.2.2/24 -duration 1h) > "$dir/nebula-cert.log" 2>&1 ||
	    return 1
	for k in a b; do
		if [ $k = a ]; then ns=g1 a=1 b=2; else ns=g2 a=2 b=1; fi
		cat > "$dir/nebula/$k.yml" <<-EOF
		pki:
		  ca: $dir/nebula/ca.crt
		  cert: $dir/nebula/$k.crt
		  key: $dir/nebula/$k.key
		static_host_map:
		  "100.127.2.$b": ["198.18.1.${b}0:4242"]
		lighthouse:
		  am_lighthouse: false
		  hosts: []
		listen:
		  host: 0.0.0.0
		  port: 4242
		punchy:
		  punch: false
		tun:
		  disabled: false
		  dev: $NB_IF$k
		  mtu: 1300
		logging:
		  level: warning
		firewall:
		  outbound:
		    - port: any
		      proto: any
		      host: any
		  inbound:
		    - port: any
		      proto: any
		      host: any
		EOF
		bg "$ns" "nebula-$k" nebula -config "$dir/nebula/$k.yml" >> "$dir/nb.pids"
	done
	nb_pids=$(tr '\n' ' ' < "$dir/nb.pids")
	wait_for 10 n g1 ip link show "${NB_IF}a" &&
	    wait_for 10 n g2 ip link show "${NB_IF}b" &&
	    wait_for 15 reaches g1 100.127.2.2
}

if [ $WG = 1 ] && ! wg_up; then
	echo "wireguard-go: could not bring the interfaces up (see below); row skipped"
	tail -3 "$dir"/wg-*.log 2>/dev/null | sed 's/^/  /'
	WG=0
fi
if [ $NB = 1 ] && ! nb_up; then
	echo "nebula: could not bring the nodes up (see below); row skipped"
	tail -3 "$dir"/nebula-*.log "$dir/nebula-cert.log" 2>/dev/null | sed 's/^/  /'
	NB=0
fi

# iperf NS_FROM NS_TO ADDR [PID PID]: iperf3 TCP goodput at the receiver,
# bytes/s, over SECS after a one-second warm-up; with two pids, also their
# CPU ms per MB over (about) the same window; else "-".
iperf() {
	local from=$1 to=$2 addr=$3 srv cli c0 c1 bytes secs
	srv=$(bg "$to" iperf3 iperf3 -s -1 -B "$addr")
	wait_for 5 tcp_listens "$to" 5201
	n "$from" iperf3 -c "$addr" -t "$SECS" -O 1 -J > "$dir/iperf.json" &
	cli=$!
	sleep 1
	[ $# -eq 5 ] && c0=$(cpu2 "$4" "$5")
	wait "$cli" || true
	[ $# -eq 5 ] && c1=$(cpu2 "$4" "$5")
	wait_for 5 bash -c "! kill -0 $srv 2>/dev/null" || kill "$srv" 2>/dev/null || true
	bytes=$(jq '.end.sum_received.bytes // 0' "$dir/iperf.json")
	secs=$(jq '.end.sum_received.seconds // 1' "$dir/iperf.json")
	if [ "$bytes" = 0 ]; then
		echo "0 -"
		return
	fi
	echo "$(echo "$bytes / $secs" | bc) $([ $# -eq 5 ] &&
	    echo "scale=2; ($c1 - $c0) / ($bytes / 1000000)" | bc || echo -)"
}

# stream_in NS PROFILE PORT: bytes_in of the open stream on our PORT.
stream_in() {
	ntmc "$1" "$2" tunnel list --json |
	    jq -e --argjson p "$3" '[.streams[] | select(.port == $p and .state == "open")][0].bytes_in'
}

# stream NS_FROM PROF_FROM NS_TO PROF_TO PORT [PID]: bytes/s the receiving
# agent took from the stream over SECS after one second of warm-up, CPU ms
# per MB of both agents over that window, and that of PID (the RS) or "-".
stream() {
	local from=$1 pf=$2 to=$3 pt=$4 port=$5 x=${6:-} peer lis snd a b c0 c1 b0 b1 t0 t1 x0 x1
	peer=$(fqdn_of "$pt")
	ntmc "$from" "$pf" tunnel ping -c 1 --timeout 20 "$peer" >/dev/null
	ip netns exec "$P$to" "$NTM_BIN/ntm" -c "$dir/$pt" tunnel listen "$port" \
	    < /dev/null > /dev/null 2>> "$dir/stream.log" &
	lis=$!
	wait_for 10 bash -c "ip netns exec '$P$to' '$NTM_BIN/ntm' -c '$dir/$pt' tunnel list --json |
	    jq -e '.streams[] | select(.port == $port and .state == \"listening\")'"
	ip netns exec "$P$from" "$NTM_BIN/ntm" -c "$dir/$pf" tunnel open "$peer" "$port" \
	    --timeout 20 < /dev/zero > /dev/null 2>> "$dir/stream.log" &
	snd=$!
	a=$(agent_pid "$from" "$pf") b=$(agent_pid "$to" "$pt")
	if ! wait_for 20 stream_in "$to" "$pt" "$port"; then
		kill "$snd" "$lis" 2>/dev/null || true
		wait "$snd" "$lis" 2>/dev/null || true
		echo "0 - -"
		return
	fi
	sleep 1
	b0=$(stream_in "$to" "$pt" "$port") t0=$(now) c0=$(cpu2 "$a" "$b")
	[ -n "$x" ] && x0=$(cpu_ms "$x")
	sleep "$SECS"
	b1=$(stream_in "$to" "$pt" "$port") t1=$(now) c1=$(cpu2 "$a" "$b")
	[ -n "$x" ] && x1=$(cpu_ms "$x")
	kill "$snd" 2>/dev/null || true
	wait "$snd" 2>/dev/null || true
	wait_for 10 bash -c "! kill -0 $lis 2>/dev/null" || kill "$lis" 2>/dev/null || true
	wait "$lis" 2>/dev/null || true
	echo "$(echo "($b1 - $b0) / ($t1 - $t0)" | bc)" \
	    "$(echo "scale=2; ($c1 - $c0) / (($b1 - $b0) / 1000000)" | bc)" \
	    "$([ -n "$x" ] && echo "scale=2; ($x1 - $x0) / (($b1 - $b0) / 1000000)" | bc || echo -)"
}

# median of the arguments (numbers; "-" ignored, "-" if none), and the
# range of rates in Mbit/s
median() {
	printf '%s\n' "$@" | grep -v '^-$' | sort -g |
	    awk '{v[NR]=$1} END {print NR ? v[int((NR+1)/2)] : "-"}'
}
range() { printf '%s\n' "$@" | sort -g | awk 'NR==1{lo=$1} {hi=$1} END {printf "%.0f-%.0f", lo*8/1e6, hi*8/1e6}'; }

echo "TCP, ${SECS}s per run after 1s warm-up, median of $REPEAT runs; $(nproc) CPUs," \
    "load $(cut -d' ' -f1-3 /proc/loadavg)"
declare -a r_raw r_rawr r_sd c_sd r_sr c_sr c_rs r_wg c_wg r_nb c_nb r_tn c_tn
rs_pid=$(awk '$2 == "rs" {print $1}' "$dir/pids" | tail -n 1)
port=7200
for _ in $(seq "$REPEAT"); do
	read -r t _c < <(iperf g1 g2 198.18.1.20); r_raw+=("$t")
	read -r t c _x < <(stream g1 alice g2 bob $((port++))); r_sd+=("$t") c_sd+=("$c")
	if [ $WG = 1 ]; then
		# shellcheck disable=SC2086
		read -r t c < <(iperf g1 g2 100.127.1.2 $wg_pids); r_wg+=("$t") c_wg+=("$c")
	fi
	read -r t _c < <(iperf a1 srv 198.18.0.4); r_rawr+=("$t")
	read -r t c x < <(stream a1 carol b1 dave $((port++)) "$rs_pid")
	r_sr+=("$t") c_sr+=("$c") c_rs+=("$x")
	if [ $NB = 1 ]; then
		# shellcheck disable=SC2086
		read -r t c < <(iperf g1 g2 100.127.2.2 $nb_pids); r_nb+=("$t") c_nb+=("$c")
	fi
	if [ $TUN = 1 ]; then
		# shellcheck disable=SC2086
		read -r t c < <(iperf g3 g4 "$frank_v4" $tun_pids); r_tn+=("$t") c_tn+=("$c")
	fi
done

raw=$(median "${r_raw[@]}") rawr=$(median "${r_rawr[@]}")
wg=-
[ $WG = 1 ] && wg=$(median "${r_wg[@]}")
route_d=$(tunnel_field g1 alice "$(fqdn_of bob)" route)
route_r=$(tunnel_field a1 carol "$(fqdn_of dave)" route)

# row NAME RATE BASE CPU RUNS...: one line of the table.
row() {
	local name=$1 rate=$2 base=$3 cpu=$4 xwg=-
	shift 4
	[ "$wg" != - ] && [ "$wg" != 0 ] && xwg=$(ratio "$rate" "$wg")
	printf '%-36s %9s %8s %8s %10s   %s\n' "$name" "$(mbps "$rate")" \
	    "$( [ "$base" = - ] && echo - || ratio "$rate" "$base")" "$xwg" "$cpu" "$(range "$@")"
}
printf '%-36s %9s %8s %8s %10s   %s\n' "" "Mbit/s" "x raw" "x wg-go" "CPU-ms/MB" "runs (Mbit/s)"
row "raw TCP g1 -> g2 (iperf3)" "$raw" - - "${r_raw[@]}"
row "raw TCP a1 -> RS host (iperf3)" "$rawr" - - "${r_rawr[@]}"
row "ntm stream, $route_d (alice -> bob)" "$(median "${r_sd[@]}")" "$raw" \
    "$(median "${c_sd[@]}")" "${r_sd[@]}"
row "ntm stream, $route_r (carol -> dave)" "$(median "${r_sr[@]}")" "$rawr" \
    "$(median "${c_sr[@]}")" "${r_sr[@]}"
if [ $TUN = 1 ]; then
	row "ntm TUN mode, direct (erin -> frank)" "$(median "${r_tn[@]}")" "$raw" \
	    "$(median "${c_tn[@]}")" "${r_tn[@]}"
else
	echo "ntm TUN mode: no /dev/net/tun or the agents did not come up; row skipped"
fi
if [ $WG = 1 ]; then
	row "wireguard-go g1 -> g2 (iperf3)" "$wg" "$raw" "$(median "${c_wg[@]}")" "${r_wg[@]}"
else
	echo "wireguard-go: not installed or not up (see above); row skipped"
fi
if [ $NB = 1 ]; then
	row "nebula g1 -> g2 (iperf3)" "$(median "${r_nb[@]}")" "$raw" \
	    "$(median "${c_nb[@]}")" "${r_nb[@]}"
else
	echo "nebula: not installed or not up (see above); row skipped"
fi
echo "raw TCP rides veth with GSO/GRO (64 KiB segments): a ceiling, not a fair baseline for a tunnel."
echo "inner MTU: ntm 1400, wireguard-go 1420, nebula 1300 (their defaults); the RS relaying" \
    "carol -> dave used $(median "${c_rs[@]}") CPU-ms/MB besides the agents."
vers() { dpkg-query -W -f '${Version}' "$1" 2>/dev/null || echo -; }
echo "versions: wireguard-go $(vers wireguard-go), nebula $(vers nebula), lwIP $(vers liblwip-dev)"
if [ $WG = 1 ]; then
	echo "target (issue 4), user-space TCP >= wireguard-go in the same run:" \
	    "direct $(ratio "$(median "${r_sd[@]}")" "$wg") x, relayed $(ratio "$(median "${r_sr[@]}")" "$wg") x"
	[ $TUN = 1 ] && echo "target (issue 4), TUN-mode TCP >= 1.5 x wireguard-go and >= nebula:" \
	    "$(ratio "$(median "${r_tn[@]}")" "$wg") x wireguard-go" \
	    "$([ $NB = 1 ] && echo ", $(ratio "$(median "${r_tn[@]}")" "$(median "${r_nb[@]}")") x nebula")"
fi
exit 0
