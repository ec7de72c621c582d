#!/usr/bin/env bash
# bench/exchange.sh - the offline exchange through the cache server, on
# loopback: a platform of two DCs, the CS, a resolver, alice@dc1, bob@dc2.
#
#   large object   `ntm send BOB FILE` (BENCH_MB MiB of random bytes,
#                  default 1024) and bob's `ntm fetch --from ALICE -o DIR`,
#                  against a plain HTTPS transfer of the same bytes to and
#                  from nginx on the same loopback, in the same run:
#                  `curl -T FILE` (WebDAV PUT, nginx stores the file) and
#                  `curl -o /dev/null` (and `-o FILE`, written to disk as
#                  ntm fetch does). nginx's PUT leaves the file in the page
#                  cache, where the CS's commit makes the object durable
#                  (fsync): a further row adds the fsync of nginx's file
#                  to its PUT, the same durability, and another times the
#                  PUT with dd writing the same bytes durably beside it
#                  (O_DIRECT, fsync) until both are done, as the CS writes
#                  while it receives. Same CA, same curl/libcurl and OpenSSL
#                  on the client side; one nginx worker, as the CS is one
#                  process.
#                  ntm send seals (encrypts) the file as it uploads it, so
#                  its time is the whole command's, sealing included. ntm
#                  fetch decrypts while it downloads, writes the file and
#                  fsyncs it.
#   the disk       what a durable write costs this machine, beside the
#                  rows above: the object written alone with O_DIRECT and
#                  fsynced (dd), and a SHA-256 loop on every CPU, its
#                  throughput while dd writes over its throughput before
#                  (below 1: the disk's work takes CPU from everything
#                  else, as on virtual machines whose disk is served from
#                  the guest's own host CPUs). The CS's commit pays that
#                  write; nginx's PUT leaves it for later.
#   memory         peak RSS (ru_maxrss from wait4) of the sending and the
#                  fetching client; the CS's VmHWM after the transfers.
#                  The fetched file's SHA-256 must equal the sent one:
#                  otherwise the bench says FAILED and exits 1.
#   small messages BENCH_SMALL (20) rounds of: alice sends a 1 KiB file,
#                  bob runs `ntm fetch --from ALICE --wait`; the rounds are
#                  timed as a whole (each command is a fresh process, fork
#                  and exec included), next to the same rounds of `curl -T`
#                  then `curl -o FILE` of the 1 KiB to and from nginx. Twice:
#                  without agents (each command makes its own TLS
#                  connections), then with alice's and bob's agents up
#                  (`ntm up`: they carry the commands' requests on kept-alive
#                  connections).
#
# Figures are medians of BENCH_REPEAT runs (default 1 for the large object,
# 3 for the small messages), the rows of a round interleaved; the large
# object's nginx baselines are the fastest of their runs instead (the
# strictest comparison for ntm: a buffered write of 1 GiB into page-cache
# pages the machine has not used before can take 4x longer than into
# pages it has, so nginx's PUT and curl -o FILE vary several-fold from run
# to run on some virtual machines). nginx is
# installed with apt-get if missing (root); without it the ratios are
# skipped. Nothing here passes or fails on a timing.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
MB=${BENCH_MB:-1024}
SMALL=${BENCH_SMALL:-20}
BIG_REPEAT=${BENCH_REPEAT:-1}
SMALL_REPEAT=${BENCH_REPEAT:-3}
dir=$(mktemp -d /tmp/ntm-bench.XXXXXX)
_platform_ports_file=$dir/ports
. "$top/scripts/platform.sh"
export NTM_PWHASH_FAST=1
ng_pid=
cleanup() {
	set +e
	for u in alice bob; do "$NTM_BIN/ntm" -c "$dir/$u" down > /dev/null 2>&1; done
	if [ -n "$ng_pid" ]; then
		kill -TERM "$ng_pid" 2>/dev/null
		wait "$ng_pid" 2>/dev/null
	fi
	[ -z "${p:-}" ] || platform_stop "$p"
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
	echo "FAILED: $*"
	exit 1
}
now() { date +%s.%N; }
calc() { echo "scale=${2:-2}; $1" | bc; }
median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{ v[NR] = $1 }
	END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2];
	      else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
fastest() { tr ' ' '\n' | sed '/^$/d' | sort -g | head -1 | sed 's/^$/0/'; }
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f\n", ($14 + $15) / hz }' "/proc/$1/stat"; }
f2() { printf '%.2f' "$1"; }
kb_mib() { calc "$1 / 1024" 1; }

# run_m OUT THRESHOLD CMD...: run CMD, write "seconds mark_s maxrss_kB cpu_s"
# to OUT, where mark_s is when CMD had written THRESHOLD bytes (0: none).
cat > "$dir/run_m.py" <<'EOF'
import os, subprocess, sys, time
out, thresh, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
t0 = time.monotonic()
p = subprocess.Popen(cmd)
mark = 0.0
while True:
    pid, st, ru = os.wait4(p.pid, os.WNOHANG)
    if pid:
        break
    if thresh > 0 and not mark:
        try:
            with open("/proc/%d/io" % p.pid) as f:
                for l in f:
                    if l.startswith("wchar:") and int(l.split()[1]) >= thresh:
                        mark = time.monotonic() - t0
        except OSError:
            pass
    time.sleep(0.02)
t = time.monotonic() - t0
with open(out, "w") as f:
    f.write("%.3f %.3f %d %.2f\n" % (t, mark, ru.ru_maxrss, ru.ru_utime + ru.ru_stime))
sys.exit(os.waitstatus_to_exitcode(st))
EOF
run_m() { python3 "$dir/run_m.py" "$@"; }

# ---- the platform ----------------------------------------------------------
# Ports are picked free but bound only later: a concurrent run elsewhere on
# the machine can take one in between, so a failed start is retried afresh.
p=$dir/p
for ((try = 1; ; try++)); do
	rm -rf "$p"
	if platform_init "$p" > "$dir/init.log" 2>&1; then
		cs_url="cs_url = $(platform_cs_url "$p")"
		echo "$cs_url" >> "$p/dc1.conf"
		echo "$cs_url" >> "$p/dc2.conf"
		# Room for every round's object (the default quota is 1 GiB per account).
		echo "quota_bytes = $(( (BIG_REPEAT + 1) * (MB + 16) * 1048576 + 67108864 ))" \
		    >> "$p/cs.conf"
		platform_start "$p" 2>> "$dir/init.log" && platform_resolver_start "$p" \
		    2>> "$dir/init.log" && break
	fi
	platform_stop "$p"
	[ "$try" -lt 3 ] || { tail -5 "$dir/init.log"; fail "the platform did not start"; }
	echo "the platform did not start (try $try; $(tail -1 "$dir/init.log")); again"
done
ca=$p/as/ca.crt
ntm() { "$NTM_BIN/ntm" "$@"; }
for u in alice bob; do
	printf '%s-pw\n' "$u" | "$NTM_BIN/ntm-as" -f "$p/as.conf" user add "$u"
done
printf 'alice-pw\n' | ntm -c "$dir/alice" login --ca "$ca" -u alice \
    "https://127.0.0.1:$(platform_port "$p" dc1)" >/dev/null
printf 'bob-pw\n' | ntm -c "$dir/bob" login --ca "$ca" -u bob \
    "https://127.0.0.1:$(platform_port "$p" dc2)" >/dev/null
alice=$(jq -r .fqdn "$dir/alice/session.json")
bob=$(jq -r .fqdn "$dir/bob/session.json")
ntm -c "$dir/alice" keys exchange "$bob" >/dev/null
mkdir "$dir/out" "$dir/small" "$dir/smallout"
# bob takes the key now, so that the fetches below are data only.
ntm -c "$dir/bob" fetch --from "$alice" --wait --timeout 30 -o "$dir/out" >/dev/null
cs_pid=$(cat "$p/cs.pid")

# ---- nginx, the baseline ---------------------------------------------------
# have_or_install CMD PACKAGE...: CMD is on PATH, or apt-get installs the
# packages by name (root only); false if that fails.
have_or_install() {
	local cmd=$1
	shift
	command -v "$cmd" >/dev/null && return 0
	[ "$(id -u)" -eq 0 ] || { echo "  $cmd missing and not root: cannot install $*"; return 1; }
	echo "installing $* (apt-get)"
	DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -q \
	    --no-install-recommends "$@" > "$dir/apt.log" 2>&1 ||
	    { DEBIAN_FRONTEND=noninteractive timeout 300 apt-get update -q > "$dir/apt.log" 2>&1 &&
	      DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -q \
	      --no-install-recommends "$@" >> "$dir/apt.log" 2>&1; } ||
	    { tail -3 "$dir/apt.log" | sed 's/^/  apt-get: /'; return 1; }
	command -v "$cmd" >/dev/null
}
PATH=$PATH:/usr/sbin
NG=0 DAV=0
ng=$dir/nginx
if have_or_install nginx nginx; then
	nginx -V 2>&1 | grep -q -- --with-http_dav_module && DAV=1
	mkdir -p "$ng/www/dav" "$ng/tmp"
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
	    -keyout "$ng/key.pem" -out "$ng/req.csr" -subj /CN=127.0.0.1 2>/dev/null
	printf 'subjectAltName=IP:127.0.0.1\n' > "$ng/ext"
	openssl x509 -req -in "$ng/req.csr" -CA "$ca" -CAkey "$p/as/ca.key" \
	    -CAcreateserial -days 1 -extfile "$ng/ext" -out "$ng/cert.pem" 2>/dev/null
	ng_port=$(free_port)
	{
		[ "$(id -u)" -ne 0 ] || echo "user $(id -un) $(id -gn);"
		cat <<EOF
worker_processes 1;
daemon off;
pid $ng/nginx.pid;
error_log $ng/error.log warn;
events { worker_connections 64; }
http {
	access_log off;
	default_type application/octet-stream;
	client_body_temp_path $ng/tmp/body;
	proxy_temp_path $ng/tmp/proxy;
	fastcgi_temp_path $ng/tmp/fastcgi;
	uwsgi_temp_path $ng/tmp/uwsgi;
	scgi_temp_path $ng/tmp/scgi;
	server {
		listen 127.0.0.1:$ng_port ssl;
		ssl_certificate $ng/cert.pem;
		ssl_certificate_key $ng/key.pem;
		client_max_body_size 0;
		root $ng/www;
		location /dav/ {
$( [ $DAV -eq 1 ] && printf '\t\t\tdav_methods PUT;\n' )
		}
	}
}
EOF
	} > "$ng/nginx.conf"
	nginx -p "$ng" -c "$ng/nginx.conf" -e "$ng/error.log" > "$ng/out.log" 2>&1 &
	ng_pid=$!
	for ((i = 0; i < 50; i++)); do
		ss -Hltn "sport = :$ng_port" 2>/dev/null | grep -q . && { NG=1; break; }
		kill -0 "$ng_pid" 2>/dev/null || break
		sleep 0.1
	done
	if [ $NG -eq 0 ]; then
		echo "nginx did not start; baselines skipped:"
		tail -n 3 "$ng/error.log" "$ng/out.log" 2>/dev/null | sed 's/^/  /'
	fi
	ng_url="https://127.0.0.1:$ng_port/dav"
else
	echo "nginx: not installed (see above); the HTTPS baselines are skipped"
fi
[ $NG -eq 0 ] || [ $DAV -eq 1 ] ||
    echo "nginx has no WebDAV module (nginx -V): the upload baseline is skipped"
ng_cpu() { local c=0 p; for p in $ng_pid $(cat "/proc/$ng_pid/task/$ng_pid/children"); do
	c=$(calc "$c + $(cpu_s "$p")"); done; echo "$c"; }

# ---- the large object -------------------------------------------------------
size=$((MB * 1048576))
echo "BENCH_MB=$MB BENCH_SMALL=$SMALL; repeats: $BIG_REPEAT (large), $SMALL_REPEAT (small); $(nproc) CPUs"
[ $NG -eq 0 ] || echo "baseline: $(nginx -v 2>&1 | sed 's/^nginx version: //'), $(curl --version | head -1 | cut -d' ' -f1-2,5)"
echo "large object: $MB MiB of random bytes; loopback"
head -c "$size" /dev/urandom > "$dir/big.bin"
sum=$(sha256sum < "$dir/big.bin" | cut -c1-64)
curl_t() {	# OUT CURL-ARGS...: seconds of one curl transfer, its HTTP code in OUT
	local t0 t1
	t0=$(now)
	curl -sS --cacert "$ca" -o "$1.body" -w '%{http_code} %{size_upload} %{size_download}\n' \
	    "${@:2}" > "$1" 2>"$1.err" || { cat "$1.err"; return 1; }
	t1=$(now)
	printf '%.3f\n' "$(calc "$t1 - $t0")"
}
# ddw: the object written to the disk with O_DIRECT, then fsynced.
ddw() { dd if="$dir/big.bin" of="$dir/dd.bin" bs=1M oflag=direct conv=fsync status=none; }
up_ng='' upf_ng='' upd_ng='' dn_ng='' dnf_ng='' up_ntm='' dn_ntm=''
cpu_up_ng='' cpu_dn_ng='' cpu_up_ntm='' cpu_dn_ntm='' rss_send='' rss_fetch=''
for ((r = 1; r <= BIG_REPEAT; r++)); do
	if [ $NG -eq 1 ] && [ $DAV -eq 1 ]; then
		c0=$(ng_cpu)
		t=$(curl_t "$dir/put" -T "$dir/big.bin" "$ng_url/big.bin")
		read -r code _ < "$dir/put"
		case $code in 201|204) ;; *) fail "nginx PUT answered $code";; esac
		up_ng+=" $t" cpu_up_ng+=" $(calc "$(ng_cpu) - $c0")"
		t0=$(now)
		python3 -c 'import os, sys; os.fsync(os.open(sys.argv[1], os.O_RDONLY))' \
		    "$ng/www/dav/big.bin" || fail "fsync of nginx's file"
		upf_ng+=" $(printf '%.3f' "$(calc "$t + $(now) - $t0")")"
		# The same PUT with the same bytes written durably beside it, at
		# once (as the CS writes as it receives): until both are done.
		t0=$(now)
		ddw &
		dd_pid=$!
		curl_t "$dir/put2" -T "$dir/big.bin" "$ng_url/big2.bin" > /dev/null ||
		    fail "nginx PUT beside dd"
		wait "$dd_pid" || fail "dd beside nginx's PUT"
		upd_ng+=" $(printf '%.3f' "$(calc "$(now) - $t0")")"
		# Its pages go unwritten (deleted), not flushed during the next row.
		rm -f "$ng/www/dav/big2.bin" "$dir/dd.bin"
		sync
	fi
	c0=$(cpu_s "$cs_pid")
	run_m "$dir/send.m" 0 "$NTM_BIN/ntm" -c "$dir/alice" send --timeout 300 \
	    "$bob" "$dir/big.bin" > "$dir/send.out" 2> "$dir/send.err" ||
	    { cat "$dir/send.err"; fail "ntm send of $MB MiB"; }
	read -r t _ rss cpu < "$dir/send.m"
	up_ntm+=" $t" rss_send+=" $rss"
	cpu_up_ntm+=" $(calc "$(cpu_s "$cs_pid") - $c0") $cpu"
	if [ $NG -eq 1 ]; then
		# Without a WebDAV upload, nginx serves the input file itself.
		[ $DAV -eq 1 ] || cp "$dir/big.bin" "$ng/www/dav/big.bin"
		c0=$(ng_cpu)
		t=$(curl_t "$dir/get" "$ng_url/big.bin" -o /dev/null)
		read -r code _ dl < "$dir/get"
		[ "$code" = 200 ] && [ "${dl%.*}" -eq "$size" ] || fail "nginx GET: $code, $dl bytes"
		dn_ng+=" $t" cpu_dn_ng+=" $(calc "$(ng_cpu) - $c0")"
		t=$(curl_t "$dir/getf" "$ng_url/big.bin" -o "$dir/out/curl.bin")
		dnf_ng+=" $t"
		rm -f "$dir/out/curl.bin" "$ng/www/dav/big.bin"
	fi
	c0=$(cpu_s "$cs_pid")
	run_m "$dir/fetch.m" 0 "$NTM_BIN/ntm" -c "$dir/bob" fetch --timeout 300 \
	    --from "$alice" -o "$dir/out" > "$dir/fetch.out" 2> "$dir/fetch.err" ||
	    { cat "$dir/fetch.err"; fail "ntm fetch of $MB MiB"; }
	read -r t _ rss cpu < "$dir/fetch.m"
	dn_ntm+=" $t" rss_fetch+=" $rss"
	cpu_dn_ntm+=" $(calc "$(cpu_s "$cs_pid") - $c0") $cpu"
	[ -f "$dir/out/big.bin" ] || { cat "$dir/fetch.out"; fail "ntm fetch wrote no big.bin"; }
	got=$(sha256sum < "$dir/out/big.bin" | cut -c1-64)
	[ "$got" = "$sum" ] || fail "the fetched file's SHA-256 $got is not the sent one's $sum"
	rm -f "$dir/out/big.bin"
done
cs_hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$cs_pid/status")
cs_rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$cs_pid/status")

# rate SECONDS: MiB/s of the large object
rate() { calc "$MB / $1" 1; }
# row NAME SECONDS [BASE-SECONDS] [CPU-NOTE]
row() {
	local ratio=
	[ -z "${3:-}" ] || ratio=$(printf '%.2f x' "$(calc "$3 / $2" 3)")
	printf '  %-36s %7.2f s %7.1f MiB/s %7s   %s\n' "$1" "$2" "$(rate "$2")" "$ratio" "${4:-}"
}
# cpu_pair "server client server client ...": median server, median client
cpu_pair() { echo "$(echo "$1" | awk '{ for (i = 1; i <= NF; i += 2) printf "%s ", $i }' | median)" \
	"$(echo "$1" | awk '{ for (i = 2; i <= NF; i += 2) printf "%s ", $i }' | median)"; }
echo "  (ntm: median of $BIG_REPEAT; nginx: the fastest of $BIG_REPEAT;"
echo "   ratio = this transfer's rate / the HTTPS baseline's)"
U_NG=$(echo "$up_ng" | fastest) UF_NG=$(echo "$upf_ng" | fastest) UD_NG=$(echo "$upd_ng" | fastest) D_NG=$(echo "$dn_ng" | fastest) DF_NG=$(echo "$dnf_ng" | fastest)
U=$(echo "$up_ntm" | median) D=$(echo "$dn_ntm" | median)
read -r csu clu <<<"$(cpu_pair "$cpu_up_ntm")"
read -r csd cld <<<"$(cpu_pair "$cpu_dn_ntm")"
upb='' dnb=''
if [ $NG -eq 1 ] && [ $DAV -eq 1 ]; then
	row "curl -T (nginx WebDAV PUT)" "$U_NG" "" "CPU: nginx $(f2 "$(echo "$cpu_up_ng" | median)") s"
	upb=$U_NG
fi
row "ntm send (sealed as it goes up)" "$U" "$upb" "CPU: CS $(f2 "$csu") s, client $(f2 "$clu") s"
if [ -n "$upb" ]; then
	row "curl -T, then fsync of nginx's file" "$UF_NG" "" "(durable, as the CS's commit makes it)"
	printf '  %-36s %30.2f x\n' "ntm send / (curl -T + fsync)" "$(calc "$UF_NG / $U" 3)"
	row "curl -T, dd of the file beside it" "$UD_NG" "" "(durable as it goes, as the CS writes)"
	printf '  %-36s %30.2f x\n' "ntm send / (curl -T beside dd)" "$(calc "$UD_NG / $U" 3)"
fi
if [ $NG -eq 1 ]; then
	row "curl -o /dev/null (nginx GET)" "$D_NG" "" "CPU: nginx $(f2 "$(echo "$cpu_dn_ng" | median)") s"
	row "curl -o FILE (nginx GET)" "$DF_NG" "$D_NG"
	dnb=$D_NG
fi
row "ntm fetch (download + open + fsync)" "$D" "$dnb" "CPU: CS $(f2 "$csd") s, client $(f2 "$cld") s"
[ -z "$dnb" ] || printf '  %-36s %30.2f x\n' "ntm fetch / curl -o FILE" "$(calc "$DF_NG / $D" 3)"
if [ "$BIG_REPEAT" -gt 1 ]; then
	echo "  runs (s): curl -T:$up_ng; curl -T + fsync:$upf_ng; curl -T beside dd:$upd_ng;"
	echo "            ntm send:$up_ntm; curl -o /dev/null:$dn_ng;"
	echo "            curl -o FILE:$dnf_ng; ntm fetch:$dn_ntm"
	echo "  CPU runs (s, server then client): curl -T: nginx$cpu_up_ng; ntm send:$cpu_up_ntm"
fi
# ---- the disk ---------------------------------------------------------------
# spin SECONDS: MB/s of SHA-256 over 1 MiB blocks on every CPU at once.
spin() {
	local i n
	n=$(nproc)
	for ((i = 0; i < n; i++)); do
		python3 -c 'import hashlib, sys, time
b = bytes(1 << 20); t0 = time.time(); n = 0
while time.time() - t0 < float(sys.argv[1]):
    hashlib.sha256(b).digest(); n += 1
print(n / (time.time() - t0))' "$1" &
	done | awk '{ s += $1 } END { printf "%.0f\n", s }'
}
t0=$(now)
ddw || fail "dd of $MB MiB"
dd_t=$(calc "$(now) - $t0" 3)
rm -f "$dir/dd.bin"
sync
idle=$(spin 2)
ddw &
dd_pid=$!
busy=$(spin 2)
wait "$dd_pid" || fail "dd of $MB MiB beside the hash loop"
rm -f "$dir/dd.bin"
sync
echo "the disk:"
row "dd O_DIRECT + fsync, alone" "$dd_t"
printf '  %-36s %30.2f x   (%s MB/s with dd, %s MB/s before)\n' "SHA-256 on every CPU while dd runs" \
    "$(calc "$busy / $idle" 3)" "$busy" "$idle"

echo "peak RSS ($MB MiB object; median of $BIG_REPEAT):"
printf '  ntm send   %8s MiB\n' "$(kb_mib "$(echo "$rss_send" | median)")"
printf '  ntm fetch  %8s MiB\n' "$(kb_mib "$(echo "$rss_fetch" | median)")"
printf '  ntm-cs     %8s MiB VmHWM since start (VmRSS now %s MiB)\n' \
    "$(kb_mib "$cs_hwm")" "$(kb_mib "$cs_rss")"
echo "SHA-256 of every fetched copy = the sent file's: OK"

# ---- small messages ---------------------------------------------------------
for ((i = 0; i < SMALL; i++)); do
	head -c 1024 /dev/urandom > "$dir/small/m$i.bin"
done
# The baseline of a round trip: the same 1 KiB put to nginx by one curl
# process and got back by another (-T, then -o FILE), each with its own
# TLS handshake, as ntm send and ntm fetch each make theirs.
rts= brts= arts=
# small_rounds: the SMALL rounds of send + fetch --wait; prints round trips/s.
small_rounds() {
	local i t0 t1
	rm -f "$dir/smallout"/*
	t0=$(now)
	for ((i = 0; i < SMALL; i++)); do
		ntm -c "$dir/alice" send "$bob" "$dir/small/m$i.bin" > /dev/null 2> "$dir/small.err" ||
		    { cat "$dir/small.err" >&2; fail "ntm send of message $i"; }
		ntm -c "$dir/bob" fetch --from "$alice" --wait --timeout 30 -o "$dir/smallout" \
		    > /dev/null 2> "$dir/small.err" ||
		    { cat "$dir/small.err" >&2; fail "ntm fetch of message $i"; }
	done
	t1=$(now)
	for ((i = 0; i < SMALL; i++)); do
		cmp -s "$dir/small/m$i.bin" "$dir/smallout/m$i.bin" || fail "message $i differs"
	done
	calc "$SMALL / ($t1 - $t0)"
}
for ((r = 1; r <= SMALL_REPEAT; r++)); do
	rts+=" $(small_rounds)"
	[ $NG -eq 1 ] && [ $DAV -eq 1 ] || continue
	t0=$(now)
	for ((i = 0; i < SMALL; i++)); do
		curl -sS --cacert "$ca" -o /dev/null -T "$dir/small/m$i.bin" "$ng_url/m$i.bin" ||
		    fail "curl -T of message $i"
		curl -sS --cacert "$ca" -o "$dir/smallout/c$i.bin" "$ng_url/m$i.bin" ||
		    fail "curl -o of message $i"
	done
	t1=$(now)
	brts+=" $(calc "$SMALL / ($t1 - $t0)")"
done
# The same rounds with alice's and bob's agents up.
for u in alice:dc1 bob:dc2; do
	ntm -c "$dir/${u%%:*}" up --dc-udp "127.0.0.1:$(cat "$p/${u##*:}.udpport")" --timeout 15 \
	    > "$dir/up.out" 2>&1 || { cat "$dir/up.out"; fail "ntm up for ${u%%:*}"; }
done
for ((r = 1; r <= SMALL_REPEAT; r++)); do
	arts+=" $(small_rounds)"
done
RT=$(echo "$rts" | median)
printf 'small messages: %d x (send 1 KiB + fetch --wait), median of %d: %.2f round trips/s (%.1f ms each)\n' \
    "$SMALL" "$SMALL_REPEAT" "$RT" "$(calc "1000 / $RT" 2)"
echo "  runs: $rts round trips/s"
if [ -n "$brts" ]; then
	BRT=$(echo "$brts" | median)
	printf '  baseline: curl -T + curl -o FILE of the same 1 KiB (nginx), median of %d: %.2f round trips/s (%.1f ms each)\n' \
	    "$SMALL_REPEAT" "$BRT" "$(calc "1000 / $BRT" 2)"
	echo "  baseline runs: $brts round trips/s"
fi
ART=$(echo "$arts" | median)
printf '  with agents up: median of %d: %.2f round trips/s (%.1f ms each)\n' \
    "$SMALL_REPEAT" "$ART" "$(calc "1000 / $ART" 2)"
echo "  with agents runs: $arts round trips/s"
# The HTTPS requests of one round trip, as ntm -vv counts them.
reqs() { sed -n 's/.*debug: \([0-9]* HTTPS requests, [0-9]* connections.*\)$/\1/p'; }
rq_send=$(ntm -c "$dir/alice" -vv send "$bob" "$dir/small/m0.bin" 2>&1 >/dev/null | reqs)
rq_fetch=$(ntm -c "$dir/bob" -vv fetch --from "$alice" --wait --timeout 30 -o "$dir/smallout" \
    2>&1 >/dev/null | reqs)
echo "  per round trip with agents: ntm send ${rq_send:-?}; ntm fetch ${rq_fetch:-?}"
for u in alice bob; do ntm -c "$dir/$u" down > /dev/null 2>&1 || true; done
rq_send=$(ntm -c "$dir/alice" -vv send "$bob" "$dir/small/m0.bin" 2>&1 >/dev/null | reqs)
rq_fetch=$(ntm -c "$dir/bob" -vv fetch --from "$alice" --wait --timeout 30 -o "$dir/smallout" \
    2>&1 >/dev/null | reqs)
echo "  per round trip without: ntm send ${rq_send:-?}; ntm fetch ${rq_fetch:-?}"
