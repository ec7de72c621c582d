#!/usr/bin/env bats
# The NAT matrix (docs/protocol.md §4.5, §4.8): for each pair of kinds of
# NAT or firewall, NAT_TRIALS (3) fresh tunnels with a ping; the route
# each reached (direct, punched, relayed, from `ntm tunnel list --json`)
# and why, and the share that went direct. bench/natmatrix.sh runs 20.
#
#   srv: AS, DC1, DC2, RS 198.18.0.4 + fd00:18::4, CS, dnsmasq
#     |
#   ==+=================== switch: 198.18.0.0/15, fd00:18::/64 ====================
#     |          |          |          |           |                |
#   nei1/2     npr1/2     npd1/2     cgn1/2      fw1/2            gla, glb
#   .10/.11.1  .12/.13.1  .14/.15.1  .16/.17.1   fd00:18::61/62   198.18.20/21.10
#     |          |          |          |  100.100.16/17.0/24  |
#   eia/eib    pra/prb    pda/pdb    hs1/2 (home)  f6a/f6b fd00:61/62::10
#   100.64.10  100.64.12  100.64.14    |
#   /11.10     /13.10     /15.10     cga/cgb 100.64.16/17.10
#
# The kinds (each twice: the "a" host at dc1 asks for a tunnel to the "b"
# host of the other kind at dc2):
#   ei  endpoint-independent masquerade, a home router: input from wan
#       dropped (as in 26-punch.bats; conntrack lets in only replies)
#   pr  port-restricted: the same mapping, and a forward filter that lets
#       from wan only replies to what the host sent (forward_filter)
#   pd  per-destination mapping: masquerade fully-random (a new random port
#       for each destination address and port)
#   cg  two NATs in series: a carrier-grade NAT (LAN 100.100.x.0/24) and a
#       home router behind it, both endpoint-independent
#   f6  IPv6 only, no NAT, behind a stateful firewall (fd00:61::/64, fd00:62::/64)
#   gl  global IPv4, no NAT, no firewall
#   st  short UDP timeouts: an endpoint-independent home router (nst0/1,
#       198.18.22/23.1, LAN 100.64.22/23.0/24) that forgets a UDP flow after
#       ST_UDP_TIMEOUT (2) seconds without a packet, where Linux keeps 30 s
#       (120 s once answered); its hosts' agents register every second
#       (`ntm up --keepalive 1`), and so keep their tunnels alive as often.
#       In every trial of a pair with st, the tunnel idles ST_IDLE (3)
#       seconds, longer than the router remembers, before its second ping:
#       only the keepalives hold the path (punched or relayed) open.
# NAT_KINDS (default all six) limits the kinds set up, for a quick look.
# Trials follow each other within a second, so a NAT may still hold what
# the trial before opened (the probes of birthday probing, above all).
# The pairs go in rounds in which no host, and so no NAT, takes part
# twice; the trials of a round run at once (NAT_SERIAL=1: one at a time,
# as bench/natmatrix.sh runs them).
# NAT_COLD=1 makes every trial start cold: the endpoint-independent
# routers forget an unanswered UDP flow after 1 s (conntrack's UDP
# timeout, 30 s by default), and each trial waits 2 s first.

load ../bats/helpers
load lib

KINDS_ALL="ei pr pd cg f6 gl st"
ST_UDP_TIMEOUT=2
ST_IDLE=3

setup_file() {
	require_root
	local k
	topo_up "$BATS_FILE_TMPDIR/t"
	NTM_PUNCH=1 servers_up
	# every trial opens a relay session, freed only when it idles out
	# (docs/protocol.md §4.4): room for NAT_TRIALS x 5 of them per host
	# and account (default 64)
	printf 'client_sessions = 1000\naccount_sessions = 1000\n' >> "$TOPO_DIR/rs.conf"
	restart_server rs
	echo "${NAT_KINDS:-$KINDS_ALL}" > "$TOPO_DIR/kinds"
	for k in ${NAT_KINDS:-$KINDS_ALL}; do
		kind_up "$k"
	done
	if [ "${NAT_COLD:-0}" = 1 ]; then
		for r in nei0 nei1 npr0 npr1 cgn0 cgn1 hs0 hs1; do
			if [ -e "/run/netns/$P$r" ]; then
				n "$r" sysctl -qw net.netfilter.nf_conntrack_udp_timeout=1
			fi
		done
	fi
	for k in ${NAT_KINDS:-$KINDS_ALL}; do
		wait_for 20 dc_nat_is dc1 "${k}a" "$(kind_nat "$k")"
		wait_for 20 dc_nat_is dc2 "${k}b" "$(kind_nat "$k")"
	done
}

teardown_file() {
	topo_down "$BATS_FILE_TMPDIR/t"
}

setup() { TOPO_DIR=$BATS_FILE_TMPDIR/t; P=$(cat "$TOPO_DIR/prefix"); }

# kind_up KIND: its two hosts, KINDa (dc1) and KINDb (dc2), each behind
# its own router(s).
kind_up() {
	local k=$1 i s host
	for i in 0 1; do
		s=$([ $i = 0 ] && echo a || echo b)
		host=$k$s
		case $k in
		ei)	home_router "nei$i" "198.18.$((10 + i)).1" "100.64.$((10 + i)).1"
			host_behind "$host" "nei$i" "100.64.$((10 + i)).10" "100.64.$((10 + i)).1" ;;
		pr)	home_router "npr$i" "198.18.$((12 + i)).1" "100.64.$((12 + i)).1"
			forward_filter "npr$i"
			host_behind "$host" "npr$i" "100.64.$((12 + i)).10" "100.64.$((12 + i)).1" ;;
		pd)	home_router "npd$i" "198.18.$((14 + i)).1" "100.64.$((14 + i)).1" fully-random
			host_behind "$host" "npd$i" "100.64.$((14 + i)).10" "100.64.$((14 + i)).1" ;;
		cg)	home_router "cgn$i" "198.18.$((16 + i)).1" "100.100.$((16 + i)).1"
			home_router_behind "hs$i" "cgn$i" "100.100.$((16 + i)).2" \
			    "100.100.$((16 + i)).1" "100.64.$((16 + i)).1"
			host_behind "$host" "hs$i" "100.64.$((16 + i)).10" "100.64.$((16 + i)).1" ;;
		f6)	fw6_router "fw$i" "fd00:18::$((61 + i))" "fd00:$((61 + i))::1"
			host_behind6 "$host" "fw$i" "fd00:$((61 + i))::10" "fd00:$((61 + i))::1" ;;
		gl)	host_global "$host" "198.18.$((20 + i)).10" ;;
		st)	home_router "nst$i" "198.18.$((22 + i)).1" "100.64.$((22 + i)).1"
			n "nst$i" sysctl -qw net.netfilter.nf_conntrack_udp_timeout=$ST_UDP_TIMEOUT \
			    net.netfilter.nf_conntrack_udp_timeout_stream=$ST_UDP_TIMEOUT
			host_behind "$host" "nst$i" "100.64.$((22 + i)).10" "100.64.$((22 + i)).1" ;;
		esac
	done
	# the two firewalled IPv6 networks route to each other
	[ "$k" = f6 ] && route6_via fw0 fd00:62::1 fd00:18::62 &&
	    route6_via fw1 fd00:61::1 fd00:18::61
	local opt=()
	[ "$k" != st ] || opt=(--keepalive 1)
	client_up "${k}a" "${k}a" "${k}a" dc1 "${opt[@]}"
	client_up "${k}b" "${k}b" "${k}b" dc2 "${opt[@]}"
}

# rs_other_dc: relay binds the RS refused for coming from another DC than
# the one that opened the session.
rs_other_dc() {
	"$NTM_BIN/ntm-rs" -f "$TOPO_DIR/rs.conf" status --json | jq -r .counters.drops.other_dc
}

# kind_nat KIND: the NAT kind its agents find (§4.7).
kind_nat() {
	case $1 in
	ei|pr|cg|st)	echo endpoint-independent ;;
	pd)		echo varies-by-destination ;;
	f6|gl)		echo none ;;
	esac
}

# settled NS PROF PEER: the tunnel is there and no longer punching.
settled() {
	local r
	r=$(tunnel_field "$1" "$2" "$3" path_reason) || return 1
	[ -n "$r" ] && [[ $r != punching:* ]] && [[ $r != *": punching: "* ]]
}

# trial K L I: a fresh tunnel from K's "a" host to L's "b" host, a ping
# as soon as it is made, a wait (bounded) until punching is over at both
# ends, a ping again; one line in results:
# K L I ping1 ping2 route path-a path-b <TAB> reason-a <TAB> reason-b
trial() {
	local k=$1 l=$2 i=$3 a=${1}a b=${2}b fa fb p1=ok p2=ok
	fa=$(fqdn_of "$a") fb=$(fqdn_of "$b")
	ntmc "$a" "$a" tunnel close "$fb" >/dev/null 2>&1 || true
	ntmc "$b" "$b" tunnel close "$fa" >/dev/null 2>&1 || true
	# cold: what the trial before left unanswered in the NATs expires
	if [ "${NAT_COLD:-0}" = 1 ]; then sleep 2; fi
	ntmc "$a" "$a" tunnel ping -c 1 --timeout 20 "$fb" >/dev/null 2>&1 || p1=fail
	wait_for 12 settled "$a" "$a" "$fb" 2>/dev/null || true
	wait_for 6 settled "$b" "$b" "$fa" 2>/dev/null || true
	# short UDP timeouts: idle past them; the keepalives must hold the path
	if [ "$k" = st ] || [ "$l" = st ]; then sleep "$ST_IDLE"; fi
	ntmc "$a" "$a" tunnel ping -c 1 --timeout 10 "$fb" >/dev/null 2>&1 || p2=fail
	printf '%s %s %s %s %s %s %s %s\t%s\t%s\n' "$k" "$l" "$i" "$p1" "$p2" \
	    "$(tunnel_field "$a" "$a" "$fb" route)" \
	    "$(tunnel_field "$a" "$a" "$fb" path)" "$(tunnel_field "$b" "$b" "$fa" path)" \
	    "$(tunnel_field "$a" "$a" "$fb" path_reason)" \
	    "$(tunnel_field "$b" "$b" "$fa" path_reason)" >> "$TOPO_DIR/results"
}

# results_of K L: the result lines of the pair.
results_of() { awk -v k="$1" -v l="$2" '$1 == k && $2 == l' "$TOPO_DIR/results"; }
# direct_count K L: trials of the pair where both ends went direct or
# punched, and the tunnel carried both pings.
direct_count() {
	results_of "$1" "$2" | awk '$4 == "ok" && $5 == "ok" &&
	    ($7 == "direct" || $7 == "punched") &&
	    ($8 == "direct" || $8 == "punched") { n++ } END { print n + 0 }'
}
# pair_ran K L: the pair is in this run (NAT_KINDS).
pair_ran() { [ -n "$(results_of "$1" "$2")" ]; }
need_pair() { pair_ran "$1" "$2" || skip "kinds $1, $2 not in NAT_KINDS"; }

# punch_ms RESULTS: the requester's time to its punched path (from the
# direction), median/p95 in ms, of the trials that punched; - if none.
punch_ms() {
	cut -f2 <<<"$1" | sed -n 's/^punched to .* in \([0-9][0-9]*\) ms .*/\1/p' | sort -n |
	    awk '{ v[NR] = $1 } END { if (NR == 0) print "-"; else
	    print v[int((NR + 1) / 2)] "/" v[int((NR * 95 + 99) / 100)] }'
}

# table: the matrix, one line per pair, for the record.
table() {
	local k l r ok n
	printf '%-5s %-5s %-7s %-9s %-9s %-6s %-9s %s\n' req peer route path-req path-peer direct \
	    punch-ms "reason (the requester's, most frequent)"
	while read -r k l; do
		r=$(results_of "$k" "$l")
		[ -n "$r" ] || continue
		n=$(wc -l <<<"$r")
		ok=$(direct_count "$k" "$l")
		printf '%-5s %-5s %-7s %-9s %-9s %-6s %-9s %s\n' "$k" "$l" \
		    "$(awk '{ print $6 }' <<<"$r" | sort | uniq -c | sort -rn | awk 'NR == 1 { print $2 }')" \
		    "$(awk '{ print $7 }' <<<"$r" | sort | uniq -c | sort -rn | awk 'NR == 1 { print $2 }')" \
		    "$(awk '{ print $8 }' <<<"$r" | sort | uniq -c | sort -rn | awk 'NR == 1 { print $2 }')" \
		    "$ok/$n" "$(punch_ms "$r")" \
		    "$(cut -f2 <<<"$r" | sed 's/ [0-9][0-9]* ms / T ms /; s/:[0-9][0-9]* / /' | sort | uniq -c |
		    sort -rn | awk 'NR == 1 { $1 = ""; sub(/^ /, ""); print }')"
	done < "$TOPO_DIR/pairs"
}

# rounds: the pairs of the pairs file, a round a line ("k:l k:l ..."),
# in which no "a" host and no "b" host comes twice (greedy, in order).
rounds() {
	awk '{
		for (r = 1; r <= nr; r++)
			if (!((r, "a", $1) in used) && !((r, "b", $2) in used))
				break
		if (r > nr)
			nr = r
		used[r, "a", $1]; used[r, "b", $2]
		line[r] = line[r] (line[r] == "" ? "" : " ") $1 ":" $2
	} END { for (r = 1; r <= nr; r++) print line[r] }' "$TOPO_DIR/pairs"
}

@test "every pair of kinds, NAT_TRIALS fresh tunnels each: every tunnel carries the ping" {
	local kinds k l i p round seen="" n=${NAT_TRIALS:-3} pids
	kinds=$(cat "$TOPO_DIR/kinds")
	: > "$TOPO_DIR/results"
	: > "$TOPO_DIR/pairs"
	for k in $kinds; do
		seen="$seen $k"
		for l in $kinds; do
			# each unordered pair once: l not before k in the list
			[[ " ${seen% "$k"} " == *" $l "* ]] && continue
			echo "$k $l" >> "$TOPO_DIR/pairs"
		done
	done
	if [ "${NAT_SERIAL:-0}" = 1 ]; then
		while read -r k l; do
			for ((i = 1; i <= n; i++)); do
				trial "$k" "$l" "$i"
			done
		done < "$TOPO_DIR/pairs"
	else
		echo "# $(rounds | wc -l) rounds of trials at once" >&3
		while read -r round; do
			for ((i = 1; i <= n; i++)); do
				pids=()
				for p in $round; do
					trial "${p%:*}" "${p#*:}" "$i" &
					pids+=($!)
				done
				wait "${pids[@]}"
			done
		done < <(rounds)
	fi
	table > "$TOPO_DIR/table"
	sed 's/^/# /' "$TOPO_DIR/table" >&3
	[ -z "${NAT_MATRIX_OUT:-}" ] || { cp "$TOPO_DIR/table" "$NAT_MATRIX_OUT"; cp "$TOPO_DIR/results" "$NAT_MATRIX_OUT.trials"; }
	# every trial's tunnel carried both pings, whatever its route
	run awk '$4 != "ok" || $5 != "ok"' "$TOPO_DIR/results"
	assert_output ""
	assert_equal "$(wc -l < "$TOPO_DIR/results")" "$(($(wc -l < "$TOPO_DIR/pairs") * n))"
}

# all_direct K L: every trial of the pair punched through (≥ 95% in the
# bench: NAT_MIN_SHARE, percent), both ends.
all_direct() {
	local total ok
	total=$(results_of "$1" "$2" | wc -l)
	ok=$(direct_count "$1" "$2")
	echo "$1 x $2: $ok/$total direct" >&2
	[ "$total" -gt 0 ] && [ $((ok * 100)) -ge $((total * ${NAT_MIN_SHARE:-100})) ]
}

# every_trial K L REGEX: every trial line of the pair matches, after
# "K L I ", the extended REGEX.
every_trial() {
	local bad
	pair_ran "$1" "$2" || return 1
	bad=$(results_of "$1" "$2" | grep -Ev "^$1 $2 [0-9]+ $3") || true
	[ -z "$bad" ] || { echo "$bad" >&2; return 1; }
}

@test "endpoint-independent mappings, with either filtering: punched direct in every trial" {
	need_pair ei ei
	need_pair ei pr
	need_pair pr pr
	all_direct ei ei
	all_direct ei pr
	all_direct pr pr
	run results_of ei pr
	assert_line --partial "relay punched punched	punched to 198.18.13.1:"
}

@test "two IPv6 hosts behind stateful firewalls (no NAT): punched direct in every trial, the relay meanwhile" {
	need_pair f6 f6
	# each firewall drops what its host did not ask for, both ways
	run n f6a ping -6 -c 1 -W 1 fd00:62::10
	assert_failure
	run n f6b ping -6 -c 1 -W 1 fd00:61::10
	assert_failure
	all_direct f6 f6
	run results_of f6 f6
	assert_line --regexp "^f6 f6 [0-9]+ ok ok relay punched punched	punched to \[fd00:62::10\]:[0-9]+ in [0-9]+ ms "
	refute_line --partial "direct direct"
}

@test "two global IPv4 hosts: punched (nothing in the way), in every trial" {
	need_pair gl gl
	all_direct gl gl
	run results_of gl gl
	assert_line --partial "relay punched punched	punched to 198.18.21.10:"
}

@test "two NATs in series (carrier-grade + home), both endpoint-independent: punched direct in every trial" {
	need_pair cg cg
	need_pair ei cg
	need_pair pr cg
	all_direct cg cg
	all_direct ei cg
	all_direct pr cg
}

@test "per-destination mapping on both ends: stays relayed with the reason, both ends" {
	need_pair pd pd
	assert_equal "$(direct_count pd pd)" 0
	every_trial pd pd "ok ok relay relayed relayed	both NATs vary by destination: relay	both NATs vary by destination: relay$"
	# no probing at all: no extra sockets, no predicted ports
	assert_equal "$(tunnel_field pda pda "$(fqdn_of pdb)" punch_sockets)" 0
	assert_equal "$(tunnel_field pda pda "$(fqdn_of pdb)" punch_probes)" 0
}

# Linux conntrack lets in only replies to what went out to that very
# address and port (every kind here filters so): a probe from the
# per-destination end's new mapping is dropped at the other end's NAT, so
# the peer-reflexive address alone opens nothing. Birthday probing does:
# the per-destination end holds 256 mappings towards the other end, which
# probes ~2000 ports of its NAT's address (§4.8).
# sockets_kept H E: H's tunnel to E holds 1 extra socket if punched, else 0.
sockets_kept() {
	local fe path
	fe=$(fqdn_of "$2")
	path=$(tunnel_field "$1" "$1" "$fe" path)
	echo "$1 -> $2: path $path, $(tunnel_field "$1" "$1" "$fe" punch_sockets) extra sockets" >&2
	assert_equal "$(tunnel_field "$1" "$1" "$fe" punch_sockets)" \
	    "$([ "$path" = punched ] && echo 1 || echo 0)"
}

@test "per-destination mapping on one end: punched to a predicted port in every trial" {
	need_pair ei pd
	need_pair pr pd
	need_pair pd cg
	all_direct ei pd
	all_direct pr pd
	all_direct pd cg
	# the requester (endpoint-independent) sprayed, and its path is a port
	# of the other NAT's address; the other end's path is from its extra
	# socket that was hit
	every_trial ei pd "ok ok relay punched punched	punched to 198\.18\.15\.1:[0-9]+ in [0-9]+ ms \((a predicted port answered|the peer's packets came direct, peer-reflexive)\)	punched to 198\.18\.10\.1:[0-9]+ in [0-9]+ ms \((our probe answered|the peer's packets came direct)\)$"
	# the first trial of the pair (the NATs hold nothing of another yet)
	# is the easy end's predicted port; later ones may open sooner, by
	# a peer-reflexive probe through what the trial before left open
	run results_of ei pd
	assert_line --partial "(a predicted port answered)"
	every_trial pd cg "ok ok relay punched punched	punched to 198\.18\.17\.1:[0-9]+ in [0-9]+ ms .*	punched to 198\.18\.14\.1:[0-9]+ in [0-9]+ ms .*$"
	# of its 256 extra sockets, the per-destination end keeps the one its
	# punched path uses (the last trial's tunnels are still there), none
	# once back on the relay (NAT_COLD's 1 s UDP timeout may end a path)
	sockets_kept pdb eia
	sockets_kept pda cgb
}

@test "a NAT against a global host: direct, the natted end initiates" {
	need_pair ei gl
	need_pair pd gl
	need_pair cg gl
	all_direct ei gl
	all_direct pd gl
	all_direct cg gl
	every_trial pd gl "ok ok direct direct direct	requester behind NAT initiates	peer behind NAT initiates$"
}

@test "IPv4 against the firewalled IPv6 hosts: relayed, the relay bridges" {
	need_pair ei f6
	need_pair f6 gl
	every_trial ei f6 "ok ok relay relayed relayed	IPv4 and IPv6: relay bridges	IPv4 and IPv6: relay bridges$"
	every_trial f6 gl "ok ok relay relayed relayed	IPv4 and IPv6: relay bridges	IPv4 and IPv6: relay bridges$"
}

@test "short UDP timeouts (st, 2 s), agents registering every second: after idling 3 s every pair with st carries its ping on the path it reached" {
	local k
	for k in ei pr pd cg gl st; do need_pair "$k" st; done
	need_pair f6 st
	# the router forgets flows that fast (a flow older than that is gone)
	assert_equal "$(n nst0 sysctl -n net.netfilter.nf_conntrack_udp_timeout)" "$ST_UDP_TIMEOUT"
	for k in ei pr pd cg gl st; do all_direct "$k" st; done
	every_trial st st "ok ok relay punched punched	punched to 198\.18\.23\.1:[0-9]+ in [0-9]+ ms .*	punched to 198\.18\.22\.1:[0-9]+ in [0-9]+ ms .*$"
	every_trial gl st "ok ok direct direct direct	peer behind NAT initiates	requester behind NAT initiates$"
	every_trial f6 st "ok ok relay relayed relayed	IPv4 and IPv6: relay bridges	IPv4 and IPv6: relay bridges$"
	# the agents took the interval, and the tunnels keep alive as often
	run ntmc sta sta status --json
	assert_success
	assert_equal "$(jq -r .agent.registration.keepalive_s <<<"$output")" 1
}

path_is() { [ "$(tunnel_field "$1" "$2" "$3" path)" = "$4" ]; }
reason_is() { [ "$(tunnel_field "$1" "$2" "$3" reason)" = "$4" ]; }

# f6_stream_punched FQDN-A FQDN-B: a fresh tunnel from f6a to f6b under a
# ping stream, punched at both ends.
f6_stream_punched() {
	ntmc f6a f6a tunnel close "$2" >/dev/null 2>&1 || true
	ntmc f6b f6b tunnel close "$1" >/dev/null 2>&1 || true
	ping_stream_start f6a f6a "$2"
	wait_for 15 path_is f6a f6a "$2" punched
	wait_for 15 path_is f6b f6b "$1" punched
}

@test "a punched firewalled IPv6 end takes a new address: the ping stream goes on over the relay, and both punch again" {
	local fa fb t lines
	need_pair f6 f6
	fa=$(fqdn_of f6a) fb=$(fqdn_of f6b)
	f6_stream_punched "$fa" "$fb"
	lines=$(wc -l < "$TOPO_DIR/agent-f6a.log")
	t=$(date +%s%N)
	n f6a ip addr add fd00:61::20/64 dev eth1 nodad
	n f6a ip addr del fd00:61::10/64 dev eth1
	wait_for 20 bash -c "tail -n +$((lines + 1)) '$TOPO_DIR/agent-f6a.log' |
	    grep -qF 'tunnel $fb: path punched -> relayed (this end moved: back on the relay)'"
	# the DC gives both ends the new candidates: punched again, to the new address
	wait_for 20 path_is f6a f6a "$fb" punched
	wait_for 20 path_is f6b f6b "$fa" punched
	[[ "$(tunnel_field f6b f6b "$fa" path_reason)" == "punched to [fd00:61::20]:"* ]]
	[[ "$(tunnel_field f6b f6b "$fa" endpoint)" == "[fd00:61::20]:"* ]]
	wait_for 20 bash -c "[ \$(awk -v t=$t '\$1 > t && /time=/' '$TOPO_DIR/stream' | wc -l) -ge 20 ]"
	ping_stream_stop 2>/dev/null
	echo "# the stream across the move: $(grep -c time= "$TOPO_DIR/stream") echoes answered," \
	    "the longest gap $(awk '/time=/ { if (p) { d = ($1 - p) / 1e6; if (d > m) m = d } p = $1 }
	    END { printf "%.0f", m }' "$TOPO_DIR/stream") ms" >&3
	run ntmc f6b f6b tunnel ping -c 3 --timeout 20 "$fa"
	assert_success
}

@test "the firewalled IPv6 responder takes a new address: it tells the requester, whose DC makes the route again (the relay takes tickets only from the DC that opened the session); both punch again" {
	local fa fb t lines la od
	need_pair f6 f6
	fa=$(fqdn_of f6a) fb=$(fqdn_of f6b)
	f6_stream_punched "$fa" "$fb"
	lines=$(wc -l < "$TOPO_DIR/agent-f6b.log")
	la=$(wc -l < "$TOPO_DIR/agent-f6a.log")
	od=$(rs_other_dc)
	t=$(date +%s%N)
	n f6b ip addr add fd00:62::20/64 dev eth1 nodad
	n f6b ip addr del fd00:62::10/64 dev eth1
	wait_for 20 bash -c "tail -n +$((lines + 1)) '$TOPO_DIR/agent-f6b.log' |
	    grep -qF 'tunnel $fa: this end moved and is global: relayed, the peer asks its DC again'"
	wait_for 20 bash -c "tail -n +$((la + 1)) '$TOPO_DIR/agent-f6a.log' |
	    grep -qF 'tunnel $fb: the peer moved and is global: asking the DC for the route again'"
	wait_for 20 path_is f6b f6b "$fa" punched
	wait_for 20 path_is f6a f6a "$fb" punched
	[[ "$(tunnel_field f6a f6a "$fb" endpoint)" == "[fd00:62::20]:"* ]]
	wait_for 20 bash -c "[ \$(awk -v t=$t '\$1 > t && /time=/' '$TOPO_DIR/stream' | wc -l) -ge 20 ]"
	ping_stream_stop 2>/dev/null
	# the relay refused no ticket for coming from another DC than the
	# session's (the responder's DC asked, before)
	assert_equal "$(rs_other_dc)" "$od"
	run ntmc f6b f6b tunnel ping -c 3 --timeout 20 "$fa"
	assert_success
}

# ei_stream_punched FQDN-A FQDN-B: a fresh tunnel from eia to eib under a
# ping stream, punched at both ends.
ei_stream_punched() {
	ntmc eia eia tunnel close "$2" >/dev/null 2>&1 || true
	ntmc eib eib tunnel close "$1" >/dev/null 2>&1 || true
	ping_stream_start eia eia "$2"
	wait_for 15 path_is eia eia "$2" punched
	wait_for 15 path_is eib eib "$1" punched
}

# v6_net HOST: an IPv6 network behind a stateful firewall (fw7,
# fd00:67::/64), linked to HOST's eth2 beside its IPv4 NAT; made once
# per host.
v6_net() {
	[ -e "/run/netns/${P}fw7" ] || fw6_router fw7 fd00:18::67 fd00:67::1
	n "$1" ip link show eth2 >/dev/null 2>&1 || lan_link "$1" fw7 eth2
}

@test "the responder behind a per-destination NAT gains an IPv6 address (a second family) on a relayed route: it tells the requester, whose DC remakes the route; the relay refuses no ticket of the responder's DC" {
	local fa fb t lb la od
	need_pair pd pd
	fa=$(fqdn_of pda) fb=$(fqdn_of pdb)
	v6_net pdb
	ntmc pda pda tunnel close "$fb" >/dev/null 2>&1 || true
	ntmc pdb pdb tunnel close "$fa" >/dev/null 2>&1 || true
	ping_stream_start pda pda "$fb"
	wait_for 15 path_is pda pda "$fb" relayed
	wait_for 15 path_is pdb pdb "$fa" relayed
	lb=$(wc -l < "$TOPO_DIR/agent-pdb.log")
	la=$(wc -l < "$TOPO_DIR/agent-pda.log")
	od=$(rs_other_dc)
	t=$(date +%s%N)
	n pdb ip -batch - <<-IPB
	addr add fd00:67::30/64 dev eth2 nodad
	route add ::/0 via fd00:67::1 dev eth2
	IPB
	wait_for 20 bash -c "tail -n +$((lb + 1)) '$TOPO_DIR/agent-pdb.log' |
	    grep -qF 'registered over IPv6 too'"
	wait_for 30 replies_after_at_least "$t" 20
	# the relay refused no ticket for coming from another DC than the
	# requester's, which opened the session (the responder's DC asked,
	# before)
	assert_equal "$(rs_other_dc)" "$od"
	wait_for 20 bash -c "tail -n +$((lb + 1)) '$TOPO_DIR/agent-pdb.log' |
	    grep -qF 'tunnel $fa: this end registered over IPv6 too: relayed, the peer asks its DC again'"
	wait_for 20 bash -c "tail -n +$((la + 1)) '$TOPO_DIR/agent-pda.log' |
	    grep -qF 'tunnel $fb: the peer moved: asking the DC for the route again'"
	wait_for 20 bash -c "tail -n +$((la + 1)) '$TOPO_DIR/agent-pda.log' |
	    grep -qF 'tunnel $fb: route relay -> relay'"
	ping_stream_stop 2>/dev/null
	assert_equal "$(rs_other_dc)" "$od"
	run ntmc pdb pdb tunnel ping -c 3 --timeout 20 "$fa"
	assert_success
}

@test "the responder behind NAT moves to an IPv6-only network: it tells the requester, whose DC remakes the route (the relay bridges); the relay refuses no ticket of the responder's DC" {
	local fa fb t lb la od
	need_pair ei ei
	fa=$(fqdn_of eia) fb=$(fqdn_of eib)
	v6_net eib
	ei_stream_punched "$fa" "$fb"
	lb=$(wc -l < "$TOPO_DIR/agent-eib.log")
	la=$(wc -l < "$TOPO_DIR/agent-eia.log")
	od=$(rs_other_dc)
	t=$(date +%s%N)
	# from behind the IPv4 NAT to IPv6 only, in one go
	n eib ip -batch - <<-IPB
	addr flush dev eth2 scope global
	addr add fd00:67::10/64 dev eth2 nodad
	route add ::/0 via fd00:67::1 dev eth2
	addr del 100.64.11.10/24 dev eth1
	IPB
	wait_for 30 replies_after_at_least "$t" 20
	# the relay refused no ticket for coming from another DC than the
	# session's: the route was remade by the requester's DC, which opened
	# it (the responder's DC did, before)
	assert_equal "$(rs_other_dc)" "$od"
	wait_for 20 bash -c "tail -n +$((lb + 1)) '$TOPO_DIR/agent-eib.log' |
	    grep -qF 'tunnel $fa: this end moved (NAT or family): relayed, the peer asks its DC again'"
	wait_for 20 bash -c "tail -n +$((la + 1)) '$TOPO_DIR/agent-eia.log' |
	    grep -qF 'tunnel $fb: the peer moved: asking the DC for the route again'"
	wait_for 20 reason_is eib eib "$fa" "IPv4 and IPv6: relay bridges"
	ping_stream_stop 2>/dev/null
	assert_equal "$(rs_other_dc)" "$od"
	run ntmc eib eib tunnel ping -c 3 --timeout 20 "$fa"
	assert_success
}

@test "no leftovers after the run" {
	topo_down "$TOPO_DIR"
	no_leftovers
}
