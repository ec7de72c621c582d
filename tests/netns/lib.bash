# lib.bash - network namespace topologies for the ntm real-time tests.
#
#                         "internet": 198.18.0.0/15 + fd00:18::/64, one L2 switch
#   +------------------------------ ${P}sw (bridge br0) ------------------------------+
#   |              |                      |                       |                  |
#  ${P}srv       ${P}g1 (global host)   ${P}nat1 (NAT router)   ${P}nat2 (NAT)    ${P}v6 (IPv6-only)
#   AS  .1         198.18.1.10          wan 198.18.2.1          wan 198.18.3.1     fd00:18::100
#   DC1 .2         fd00:18::10          lan 100.64.2.1/24       lan 100.64.3.1/24
#   DC2 .3                                 |                       |
#   RS  .4 + fd00:18::4                 ${P}a1 100.64.2.10      ${P}b1 100.64.3.10
#   CS  .5                              ${P}a2 100.64.2.11
#   dnsmasq .53 + fd00:18::53
#
# NAT: nftables masquerade on each router's wan. Servers listen on [::]
# (dual stack) on fixed ports: the namespaces are private network stacks.
# Every daemon started here is recorded by pid and stopped by pid; every
# namespace carries the prefix $P (with this shell's pid) and is deleted in
# topo_down.

NTM_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
: "${NTM_BIN:=$NTM_TOP/build}"
export NTM_BIN NTM_PWHASH_FAST=1


# n NS CMD...: run in namespace NS (short name, prefix added).
n() { local ns=$1; shift; ip netns exec "$P$ns" "$@"; }

_pids_file() { echo "$TOPO_DIR/pids"; }
# bg NS LOGNAME CMD...: start in the background inside NS, record the pid.
bg() {
	local ns=$1 log=$2
	shift 2
	ip netns exec "$P$ns" "$@" >>"$TOPO_DIR/$log.log" 2>&1 &
	echo "$! $log" >> "$(_pids_file)"
	echo $!
}

# Each namespace's /etc/hosts (ip netns exec mounts /etc/netns/NS/hosts over
# it) names the CS: a client presents a CS the token issued for its name,
# and a DC takes only the CS's own name as the host of its URL.
_ns_add() {
	ip netns add "$P$1"
	echo "$P$1" >> "$TOPO_DIR/namespaces"
	mkdir -p "/etc/netns/$P$1"
	printf '127.0.0.1 localhost\n::1 localhost\n198.18.0.5 cs1.ntm.test\nfd00:18::5 cs1.ntm.test\n' \
	    > "/etc/netns/$P$1/hosts"
	n "$1" ip link set lo up
	n "$1" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
	    net.ipv4.conf.all.promote_secondaries=1 net.ipv4.conf.default.promote_secondaries=1
}

# _veth NS1 IF1 NS2 IF2: a veth pair between two namespaces.
_veth() {
	ip link add "$2" netns "$P$1" type veth peer name "$4" netns "$P$3"
	n "$1" ip link set "$2" up
	n "$3" ip link set "$4" up
}

# _to_switch NS IF: connect NS to the internet switch.
_to_switch() {
	_veth "$1" "$2" sw "s-$1-$2"
	n sw ip link set "s-$1-$2" master br0
}

topo_up() {
	TOPO_DIR=${1:?topo_up DIR}
	mkdir -p "$TOPO_DIR"
	: > "$TOPO_DIR/namespaces"
	: > "$TOPO_DIR/pids"
	P="ntm${BASHPID}-"
	echo "$P" > "$TOPO_DIR/prefix"
	_ns_add sw
	n sw ip link add br0 type bridge
	n sw ip link set br0 up

	_ns_add srv
	_to_switch srv eth0
	local i
	for i in 1 2 3 4 5 53; do
		n srv ip addr add "198.18.0.$i/15" dev eth0
		n srv ip addr add "fd00:18::$i/64" dev eth0 nodad
	done
}

# host_global NAME ADDR4 [ADDR6]: a host on the internet (either may be "").
host_global() {
	_ns_add "$1"
	_to_switch "$1" eth0
	[ -n "${2:-}" ] && n "$1" ip addr add "$2/15" dev eth0
	[ -n "${3:-}" ] && n "$1" ip addr add "$3/64" dev eth0 nodad
	return 0
}

# nat_router NAME WAN4 LAN4 (LAN4 like 100.64.2.1): masquerading router.
nat_router() {
	local r=$1 wan=$2 lan=$3
	_ns_add "$r"
	_to_switch "$r" wan
	n "$r" ip addr add "$wan/15" dev wan
	n "$r" ip link add lan type bridge
	n "$r" ip link set lan up
	n "$r" ip addr add "$lan/24" dev lan
	n "$r" sysctl -qw net.ipv4.ip_forward=1
	n "$r" nft -f - <<-NFT
	table ip nat {
		chain post {
			type nat hook postrouting priority srcnat;
			oifname "wan" masquerade
		}
	}
	NFT
}

# nat_block ROUTER ADDR / nat_unblock ROUTER: ROUTER forwards nothing to or
# from ADDR (another router's WAN address), so no direct path between the
# two LANs; then again.
nat_block() {
	n "$1" nft -f - <<-NFT
	table inet punchblock {
		chain nodirect {
			type filter hook forward priority -10;
			ip daddr $2 drop
			ip saddr $2 drop
		}
	}
	NFT
}
nat_unblock() { n "$1" nft delete table inet punchblock; }

# home_router NAME WAN4 LAN4 [fully-random]: a NAT router as at home:
# masquerade out of wan (fully-random: a new port for each destination),
# and nothing from wan to the router itself. Without that input drop, the
# first hole punching probe to reach a bare masquerade router leaves a
# conntrack entry for itself there, so the router's own client gets
# another port towards the peer when it probes in turn.
home_router() {
	nat_router "$1" "$2" "$3"
	_home_rules "$1" "${4:-}"
}

# _home_rules ROUTER [fully-random] [INPUT-RULE]: ROUTER's ruleset becomes
# a home router's: masquerade out of wan, and an input chain that takes
# from wan only replies (and what INPUT-RULE accepts).
_home_rules() {
	n "$1" nft flush ruleset
	n "$1" nft -f - <<-NFT
	table ip nat {
		chain post {
			type nat hook postrouting priority srcnat;
			oifname "wan" masquerade ${2:-}
		}
	}
	table inet filter {
		chain input {
			type filter hook input priority 0; policy accept;
			iifname "wan" ct state established,related accept
			${3:-}
			iifname "wan" drop
		}
	}
	NFT
}

# host_behind NAME ROUTER ADDR4 GW4: a host on ROUTER's LAN.
# lan_link HOST ROUTER [IF]: connect HOST's IF (eth1) to ROUTER's LAN bridge.
lan_link() {
	_veth "$1" "${3:-eth1}" "$2" "l-$1"
	n "$2" ip link set "l-$1" master lan
}

host_behind() {
	local h=$1 r=$2 addr=$3 gw=$4
	_ns_add "$h"
	lan_link "$h" "$r"
	n "$h" ip addr add "$addr/24" dev eth1
	n "$h" ip route add default via "$gw"
}

# home_router_behind NAME UPSTREAM WAN4 GW4 LAN4 [fully-random]: a home
# router (as home_router) whose wan is on UPSTREAM's LAN (a router made by
# home_router or nat_router), with WAN4/24 and its default route via GW4:
# two NATs in series, e.g. a carrier-grade NAT and the home router behind it.
home_router_behind() {
	local r=$1 up=$2 wan=$3 gw=$4 lan=$5
	_ns_add "$r"
	_veth "$r" wan "$up" "l-$r"
	n "$up" ip link set "l-$r" master lan
	n "$r" ip addr add "$wan/24" dev wan
	n "$r" ip route add default via "$gw"
	n "$r" ip link add lan type bridge
	n "$r" ip link set lan up
	n "$r" ip addr add "$lan/24" dev lan
	n "$r" sysctl -qw net.ipv4.ip_forward=1
	_home_rules "$r" "${6:-}"
}

# forward_filter ROUTER: ROUTER forwards from wan to its LAN only what is
# a reply to what the LAN sent (ct state established,related), as a
# port-restricted NAT or a stateful firewall does; every other packet
# from wan is dropped.
forward_filter() {
	n "$1" nft -f - <<-NFT
	table inet fwdfilter {
		chain forward {
			type filter hook forward priority 0; policy accept;
			iifname "wan" ct state established,related accept
			iifname "wan" drop
		}
	}
	NFT
}

# dmz_router NAME WAN4 LAN4 HOST4: a home router whose "exposed host"
# (DMZ) setting is on: masquerade out of wan (Linux keeps the source port
# when it is free), and every new UDP datagram from wan, from any address
# and port, goes on to HOST4 at the port it came to. What an outgoing
# datagram mapped is so reachable from anywhere: filtering that depends on
# neither the address nor the port (replies to the LAN's flows go back by
# conntrack as ever; the nat chain sees only new ones).
dmz_router() {
	nat_router "$1" "$2" "$3"
	n "$1" nft -f - <<-NFT
	table ip dmz {
		chain pre {
			type nat hook prerouting priority dstnat;
			iifname "wan" meta l4proto udp dnat to $4
		}
	}
	NFT
}

# fw6_router NAME WAN6 LAN6 (LAN6 like fd00:61::1, a /64): an IPv6 router
# without NAT behind a stateful firewall (forward_filter), as at home. The
# server namespace routes LAN6/64 via WAN6; others call route6_via.
fw6_router() {
	local r=$1 wan=$2 lan=$3
	_ns_add "$r"
	_to_switch "$r" wan
	n "$r" ip addr add "$wan/64" dev wan nodad
	n "$r" ip link add lan type bridge
	n "$r" ip link set lan up
	n "$r" ip addr add "$lan/64" dev lan nodad
	n "$r" sysctl -qw net.ipv6.conf.all.forwarding=1
	forward_filter "$r"
	route6_via srv "$lan" "$wan"
}

# route6_via NS LAN6 WAN6: NS routes LAN6's /64 via WAN6.
route6_via() { n "$1" ip -6 route add "${2%::*}::/64" via "$3"; }

# host_behind6 NAME ROUTER ADDR6 GW6: an IPv6-only host on ROUTER's LAN.
host_behind6() {
	local h=$1 r=$2 addr=$3 gw=$4
	_ns_add "$h"
	lan_link "$h" "$r"
	n "$h" ip addr add "$addr/64" dev eth1 nodad
	n "$h" ip -6 route add default via "$gw"
}

# dual_home_router NAME WAN4 LAN4 WAN6 LAN6 [fully-random]: a home router
# of both families: IPv4 as home_router (masquerade, fully-random: a new
# port for each destination), IPv6 routed without NAT (LAN6 like
# fd00:71::1, a /64) behind a stateful firewall that forwards from wan only
# replies to what the LAN sent. The server namespace routes LAN6/64 via
# WAN6; other routers call route6_via.
dual_home_router() {
	local r=$1 wan6=$4 lan6=$5
	nat_router "$r" "$2" "$3"
	n "$r" ip addr add "$wan6/64" dev wan nodad
	n "$r" ip addr add "$lan6/64" dev lan nodad
	n "$r" sysctl -qw net.ipv6.conf.all.forwarding=1
	# as home_router, but neighbour discovery reaches the router over wan
	_home_rules "$r" "${6:-}" 'iifname "wan" meta nfproto ipv6 icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert } accept'
	n "$r" nft -f - <<-NFT
	table ip6 fw6 {
		chain forward {
			type filter hook forward priority 0; policy accept;
			iifname "wan" ct state established,related accept
			iifname "wan" drop
		}
	}
	NFT
	route6_via srv "$lan6" "$wan6"
}

# host_behind_dual NAME ROUTER ADDR4 GW4 ADDR6 GW6: a dual-stack host on
# ROUTER's LAN (made by dual_home_router).
host_behind_dual() {
	host_behind "$1" "$2" "$3" "$4"
	n "$1" ip addr add "$5/64" dev eth1 nodad
	n "$1" ip -6 route add default via "$6"
}

# dc_punch_off DC: DC gives no punching candidates (ntm.conf(5) punch = 0)
# from now on: restarted with its state.
dc_punch_off() {
	sed -i 's/^punch = .*/punch = 0/' "$TOPO_DIR/$1.conf"
	restart_server "$1"
}

# dc_nat_is DC USER KIND: the DC keeps KIND as the NAT kind of USER's
# device (what its agent found, docs/protocol.md §4.7).
dc_nat_is() {
	[ "$("$NTM_BIN/ntm-dc" -f "$TOPO_DIR/$1.conf" client list --json |
	    jq -r --arg f "$(fqdn_of "$2")" '.[] | select(.fqdn == $f) | .location.nat')" = "$3" ]
}

topo_down() {
	local dir=${1:-$TOPO_DIR} pid name
	[ -n "$dir" ] || return 0
	if [ -f "$dir/pids" ]; then
		while read -r pid name; do
			kill -TERM "$pid" 2>/dev/null || true
		done < "$dir/pids"
		sleep 0.3
		while read -r pid name; do
			kill -KILL "$pid" 2>/dev/null || true
		done < "$dir/pids"
		: > "$dir/pids"
	fi
	if [ -f "$dir/namespaces" ]; then
		while read -r name; do
			ip netns pids "$name" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
			ip netns del "$name" 2>/dev/null || true
			case $name in ntm*-*) rm -rf "/etc/netns/$name" ;; esac
		done < "$dir/namespaces"
		: > "$dir/namespaces"
	fi
	return 0
}

# wait_for SECONDS CMD...: poll until CMD succeeds (every 0.1 s).
wait_for() {
	local secs=$1 i
	shift
	for ((i = 0; i < secs * 10; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "wait_for: '$*' did not succeed within ${secs}s" >&2
	return 1
}

# A failed test shows the end of each agent's log: on a CI machine the
# topology's files are gone with the run, and what CI shows of its output
# is cut to its ends. So, short: the last 15 lines of each but debug ones
# (the NAT discovery's kept), the time of day and the message.
# A file that defines its own teardown calls this one from it.
teardown() { agent_logs_on_failure; }
agent_logs_on_failure() {
	local f
	[ -n "${BATS_TEST_COMPLETED:-}" ] && return 0
	for f in "${TOPO_DIR:-$BATS_FILE_TMPDIR/t}"/*/agent.log; do
		[ -f "$f" ] || continue
		echo "--- ${f#"$BATS_FILE_TMPDIR"/}, the last 15 lines (no debug but nat:)"
		awk '!/: debug: / || /: debug: nat: /' "$f" | tail -n 15 |
		    sed -E 's/^[0-9-]+T([0-9:.]+)Z ntm\[[0-9]+\]: (info: )?/\1 /' | cut -c 1-200
	done
	return 0
}

# ---- the servers --------------------------------------------------------

# Every server shares the server namespace, so each has its own ports; all
# listen dual-stack on [::] and answer from the address a request came to.
declare -gA PORT=([as]=8440 [dc1]=8441 [dc2]=8442 [rs]=8444 [cs]=8445)
declare -gA UDP=([dc1]=4501 [dc2]=4502 [rs]=3478)
declare -gA IPN=([as]=1 [dc1]=2 [dc2]=3 [rs]=4 [cs]=5)

_conf() {	# role name [lines...]
	local role=$1 name=$2
	shift 2
	[ -f "$TOPO_DIR/metrics.token" ] ||
	    (umask 077 && openssl rand -hex 32 > "$TOPO_DIR/metrics.token")
	{
		echo "name = $name"
		echo "state_dir = $TOPO_DIR/$role"
		echo "listen = [::]:${PORT[$role]}"
		echo "metrics_token_file = $TOPO_DIR/metrics.token"
		for l in "$@"; do echo "$l"; done
	} > "$TOPO_DIR/$role.conf"
}

# metrics ROLE: a server's GET /metrics (every one has the token above).
metrics() {
	n srv curl -sf --max-time 10 --cacert "$TOPO_DIR/as/ca.crt" \
	    -H "Authorization: Bearer $(cat "$TOPO_DIR/metrics.token")" \
	    "https://198.18.0.${IPN[$1]}:${PORT[$1]}/metrics"
}

# servers_up: the AS, both DCs, the RS and the CS. The DCs punch (ntm.conf(5)
# punch) only with NTM_PUNCH=1: the other suites test the relay between
# two NATs, 26-punch.bats the punched path.
servers_up() {
	local d=$TOPO_DIR aspk rspk k role name
	_conf as as.ntm.test
	"$NTM_BIN/ntm-as" -f "$d/as.conf" init --ip 198.18.0.1 --ip fd00:18::1 > "$d/as.pub"
	aspk=$(cat "$d/as.pub")
	_conf rs rs1.ntm.test "as_key = $aspk" "ca_file = $d/as/ca.crt" \
	    "udp_listen = [::]:${UDP[rs]}"
	"$NTM_BIN/ntm-rs" -f "$d/rs.conf" init > "$d/rs.pub" || return 1
	rspk=$(cat "$d/rs.pub")
	for k in 1 2; do
		_conf "dc$k" "dc$k.ntm.test" "as_key = $aspk" "ca_file = $d/as/ca.crt" \
		    "as_url = https://198.18.0.1:${PORT[as]}" \
		    "vip4_prefix = 100.96.$k.0/24" "vip6_prefix = fd00:6e74:$k::/64" \
		    "udp_listen = [::]:${UDP[dc$k]}" \
		    "dns_listen = 198.18.0.$((k + 1)):53" \
		    "dns_addr4 = 198.18.0.$((k + 1))" "dns_addr6 = fd00:18::$((k + 1))" \
		    "resolver = 198.18.0.53:53" "keepalive_s = ${NTM_KEEPALIVE:-2}" \
		    "punch = ${NTM_PUNCH:-0}" \
		    "relay_name = rs1.ntm.test" "relay_key = $rspk" \
		    "relay_addr4 = 198.18.0.4:${UDP[rs]}" "relay_addr6 = [fd00:18::4]:${UDP[rs]}" \
		    "cs_url = https://cs1.ntm.test:${PORT[cs]}"
	done
	_conf cs cs1.ntm.test "as_key = $aspk" "ca_file = $d/as/ca.crt" \
	    "as_url = https://198.18.0.1:${PORT[as]}" "resolver = 198.18.0.53:53" \
	    "public_url = https://cs1.ntm.test:${PORT[cs]}"
	for role in dc1 dc2 cs; do
		"$NTM_BIN/ntm-${role%[0-9]}" -f "$d/$role.conf" init > "$d/$role.pub" || return 1
	done
	for role in dc1 dc2 rs cs; do
		name=$(sed -n 's/^name = //p' "$d/$role.conf")
		"$NTM_BIN/ntm-as" -f "$d/as.conf" server add --role "${role%[0-9]}" \
		    --name "$name" --key "$(cat "$d/$role.pub")" --tls-dir "$d/$role" \
		    --ip "198.18.0.${IPN[$role]}" --ip "fd00:18::${IPN[$role]}" \
		    > "$d/$role/server.cert" || return 1
	done

	# A real resolver in front of the DCs.
	cat > "$d/dnsmasq.conf" <<-EOF
	no-resolv
	no-hosts
	bind-interfaces
	listen-address=198.18.0.53,fd00:18::53
	port=53
	server=/dc1.ntm.test/198.18.0.2
	server=/dc2.ntm.test/198.18.0.3
	# every other name does not exist, as on the internet
	address=/#/
	EOF
	bg srv dnsmasq dnsmasq --keep-in-foreground --conf-file="$d/dnsmasq.conf" \
	    --pid-file="$d/dnsmasq.pid" >/dev/null
	for role in as rs dc1 dc2 cs; do
		bg srv "$role" "$NTM_BIN/ntm-${role%[0-9]}" -d -v -f "$d/$role.conf" >/dev/null
	done
	for role in as rs dc1 dc2 cs; do
		wait_for 15 n srv curl -sf --cacert "$d/as/ca.crt" \
		    "https://198.18.0.${IPN[$role]}:${PORT[$role]}/v1/health" ||
		    { tail -5 "$d/$role.log" >&2; return 1; }
	done
}

# ---- streams under changes ------------------------------------------------

# ping_stream_start NS PROF PEER: PROF in NS pings PEER every
# $NTM_STREAM_INTERVAL (0.05) s; each reply line, time-stamped (ns), goes to
# $TOPO_DIR/stream. Sets STREAM; ping_stream_stop ends it.
ping_stream_start() {
	( ntmc "$1" "$2" tunnel ping -c 9000 -i "${NTM_STREAM_INTERVAL:-0.05}" "$3" 2>&1 |
	    while IFS= read -r l; do echo "$(date +%s%N) $l"; done ) > "$TOPO_DIR/stream" &
	STREAM=$!
	wait_for 20 grep -q 'time=' "$TOPO_DIR/stream"
}
ping_stream_stop() {
	pkill -P "$STREAM" 2>/dev/null || true
	kill "$STREAM" 2>/dev/null || true
	wait "$STREAM" 2>/dev/null || true
}
# replies_after T: stream replies time-stamped after T (ns).
replies_after() { awk -v t="$1" '$1 > t && /time=/' "$TOPO_DIR/stream" | wc -l; }

# slow_cat FILE BYTES_PER_S: FILE to stdout at about that rate (64 KiB steps).
slow_cat() {
	python3 -c '
import sys, time
f, rate = open(sys.argv[1], "rb"), int(sys.argv[2])
out, step = sys.stdout.buffer, 65536
while True:
    b = f.read(step)
    if not b:
        break
    out.write(b)
    out.flush()
    time.sleep(step / rate)
' "$1" "$2"
}

# gap_cat OUT GAPS: stdin to OUT; at its end, GAPS gets the three longest
# silences between two reads (ms, longest first), for the record only.
gap_cat() {
	python3 -c '
import sys, time
out, inp = open(sys.argv[1], "wb"), sys.stdin.buffer.raw
gaps, last = [], None
while True:
    b = inp.read(65536)
    if not b:
        break
    now = time.monotonic()
    if last is not None:
        gaps.append((now - last) * 1000)
    last = now
    out.write(b)
    out.flush()
gaps.sort(reverse=True)
open(sys.argv[2], "w").write(" ".join("%.0f" % g for g in gaps[:3]) + "\n")
' "$1" "$2"
}

# restart_server ROLE: stop a server by its recorded pid and start it again.
restart_server() {
	local role=$1 pid
	pid=$(awk -v r="$role" '$2 == r {print $1}' "$TOPO_DIR/pids" | tail -n 1)
	kill -TERM "$pid"
	wait_for 10 bash -c "! kill -0 $pid 2>/dev/null"
	bg srv "$role" "$NTM_BIN/ntm-${role%[0-9]}" -d -v -f "$TOPO_DIR/$role.conf" >/dev/null
	wait_for 15 n srv curl -sf --cacert "$TOPO_DIR/as/ca.crt" \
	    "https://198.18.0.${IPN[$role]}:${PORT[$role]}/v1/health"
}

# ---- clients ------------------------------------------------------------

# client NS PROFILE USER DC (dc1|dc2): log USER in from NS and start its agent.
client_up() {
	local ns=$1 prof=$TOPO_DIR/$2 prof_name=$2 user=$3 dc=$4 k
	shift 4		# the rest: more options of `ntm up`
	k=${dc#dc}
	if ! grep -qx "$user" "$TOPO_DIR/users" 2>/dev/null; then
		printf '%s-pw\n' "$user" | "$NTM_BIN/ntm-as" -f "$TOPO_DIR/as.conf" user add "$user"
		echo "$user" >> "$TOPO_DIR/users"
	fi
	mkdir -p -m 700 "$prof"
	local url="https://198.18.0.$((k + 1)):${PORT[$dc]}"
	# IPv6-only hosts reach the DC over IPv6.
	n "$ns" ip -4 addr show scope global | grep -q inet || url="https://[fd00:18::$((k + 1))]:${PORT[$dc]}"
	printf 'resolver = %s\n' "$(n "$ns" ip -4 addr show scope global | grep -q inet && echo 198.18.0.53:53 || echo '[fd00:18::53]:53')" > "$prof/ntm.conf"
	printf '%s-pw\n' "$user" | n "$ns" "$NTM_BIN/ntm" -c "$prof" login --ca "$TOPO_DIR/as/ca.crt" \
	    -u "$user" --password-file - "$url" >/dev/null || return 1
	bg "$ns" "agent-$prof_name" "$NTM_BIN/ntm" -c "$prof" -v up -d "$@" >/dev/null
	# the agent's own registration (not a one-shot `ntm register`)
	wait_for 15 agent_registered "$ns" "$prof"
}

agent_registered() {
	local out
	out=$(ip netns exec "$P$1" "$NTM_BIN/ntm" -c "$2" status --json 2>/dev/null) || return 1
	[ "$(jq -r '.agent.registration.registered // false' <<<"$out")" = true ]
}

fqdn_of() { jq -r .fqdn "$TOPO_DIR/$1/session.json"; }

# ntmc NS PROFILE ARGS...: the ntm client of PROFILE, run inside NS.
ntmc() {
	local ns=$1 prof=$TOPO_DIR/$2
	shift 2
	timeout 60 ip netns exec "$P$ns" "$NTM_BIN/ntm" -c "$prof" "$@"
}

# tunnel_field NS PROFILE PEER_FQDN FIELD: one field of `ntm tunnel list --json`.
tunnel_field() {
	ntmc "$1" "$2" tunnel list --json |
	    jq -r --arg p "$3" --arg f "$4" '(.tunnels // .)[] | select(.peer == $p) | .[$f]'
}

# ping_ok NS PROFILE PEER: one echo over the tunnel gets its reply.
ping_ok() { ntmc "$1" "$2" tunnel ping -c 1 --timeout 10 "$3" >/dev/null; }

# require_root: the topology tests need root; under CI a skip is a failure.
require_root() {
	if [ "$(id -u)" -ne 0 ] || ! ip netns add "ntmprobe$$" 2>/dev/null; then
		if [ "${CI:-}" = true ]; then
			echo "netns tests need root (CI=true: failing, not skipping)" >&2
			return 1
		fi
		skip "needs root and network namespaces"
	fi
	ip netns del "ntmprobe$$"
}

# no_leftovers: nothing of this run remains (namespaces, processes).
no_leftovers() {
	! ip netns list | grep -q "^$P" && {
		local pid name
		while read -r pid name; do
			kill -0 "$pid" 2>/dev/null && return 1
		done < "$TOPO_DIR/pids"
		return 0
	}
}

# restricted_router NAME WAN4 LAN4 HOST4 addr|port: a NAT router
# (masquerade out of wan, as nat_router) that also lets a new UDP datagram
# from wan on to HOST4 (at the port it came to; Linux keeps the source
# port when it is free), but only from where its LAN has sent: from any
# port of an address the LAN sent to (addr: address-dependent filtering,
# RFC 4787), or from the very address:port (port: port-dependent). Linux
# conntrack alone filters port-dependently; these filter by rule, with
# what the LAN sent kept in a set for two minutes.
restricted_router() {
	local key from type
	case $5 in
	addr) key='ip daddr' from='ip saddr' type=ipv4_addr ;;
	port) key='ip daddr . udp dport' from='ip saddr . udp sport'
	      type='ipv4_addr . inet_service' ;;
	*) echo "restricted_router: addr or port, not '$5'" >&2; return 1 ;;
	esac
	nat_router "$1" "$2" "$3"
	n "$1" nft -f - <<-NFT
	table ip restrict {
		set sent {
			type $type
			flags dynamic, timeout
			timeout 120s
		}
		chain seen {
			type filter hook forward priority 0; policy accept;
			oifname "wan" meta l4proto udp update @sent { $key }
		}
		chain in {
			type nat hook prerouting priority dstnat;
			iifname "wan" meta l4proto udp $from @sent dnat to $4
		}
	}
	NFT
}
# addr_restricted_router NAME WAN4 LAN4 HOST4 / port_restricted_router ...:
# restricted_router with addr or port.
addr_restricted_router() { restricted_router "$1" "$2" "$3" "$4" addr; }
port_restricted_router() { restricted_router "$1" "$2" "$3" "$4" port; }

# lan_move HOST IF ADDR4 GW4 [steps]: HOST leaves the IPv4 LAN it is on
# for the one on IF (linked with lan_link), in one go (one ip -batch), as a
# switch of networks does. With "steps", as the agent may see it on a busy
# host, or from a network manager: the new address, then 0.1 s later the
# way out through the new network and the old address gone (two address
# changes to the agent).
lan_move() {
	local old add="addr add $3/24 dev $2"
	old=$(n "$1" ip -4 -o addr show scope global | awk '{ print $2, $4 }')
	if [ "${5-}" = steps ]; then
		n "$1" ip $add
		sleep 0.1
		add=
	fi
	n "$1" ip -batch - <<-IPB
	$add
	route replace default via $4 src $3
	addr del ${old#* } dev ${old%% *}
	IPB
}

# lost_echoes: echoes of the stream (ping_stream_start) without a reply,
# between its first reply and its last (from the sequence numbers).
lost_echoes() {
	sed -n 's/.* seq=\([0-9]*\) .*/\1/p' "$TOPO_DIR/stream" | awk '
	    NR == 1 { prev = $1; next }
	    { if ($1 > prev + 1) lost += $1 - prev - 1; prev = $1 }
	    END { print lost + 0 }'
}

# replies_after_at_least T N: N stream replies came after T (ns).
replies_after_at_least() { [ "$(replies_after "$1")" -ge "$2" ]; }
