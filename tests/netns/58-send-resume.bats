#!/usr/bin/env bats
# ntm send under faults: the CS is killed (kill -9) five times while a
# 100 MiB object is uploaded over a link of 80 Mbit/s; each time it starts
# again, and the sender asks it where the upload is and goes on from there,
# waiting longer after each failure. The object arrives whole, as one
# upload, and nothing partial is ever delivered.
#
#   srv (AS, DC1, DC2, RS, CS, dnsmasq) == switch == g1 (alice@dc1, 80 Mbit/s)
#                                                 \== g2 (bob@dc2)

load ../bats/helpers
load lib

setup_file() {
	require_root
	topo_up "$BATS_FILE_TMPDIR/t"
	servers_up
	host_global g1 198.18.1.10
	host_global g2 198.18.1.20
	client_up g1 alice alice dc1
	client_up g2 bob bob dc2
	n g1 tc qdisc add dev eth0 root tbf rate 80mbit burst 64kb latency 100ms
	head -c $((100 * 1024 * 1024)) /dev/urandom > "$BATS_FILE_TMPDIR/t/big.bin"
}

teardown_file() { topo_down "$BATS_FILE_TMPDIR/t"; }

setup() { TOPO_DIR=$BATS_FILE_TMPDIR/t; P=$(cat "$TOPO_DIR/prefix"); }

# cs_kill9: kill -9 the CS, start it again, wait until it answers.
cs_kill9() {
	local pid
	pid=$(awk '$2 == "cs" {print $1}' "$TOPO_DIR/pids" | tail -n 1)
	kill -9 "$pid"
	wait_for 10 bash -c "! kill -0 $pid 2>/dev/null"
	bg srv cs "$NTM_BIN/ntm-cs" -d -v -f "$TOPO_DIR/cs.conf" >/dev/null
	wait_for 15 n srv curl -sf --cacert "$TOPO_DIR/as/ca.crt" \
	    "https://198.18.0.${IPN[cs]}:${PORT[cs]}/v1/health"
}

@test "a 100 MiB send survives five kill -9 of the CS: resumed from the CS's offset, delivered whole, one upload" {
	local bob i kills=0 out=$TOPO_DIR/out objs
	bob=$(fqdn_of bob)
	# A shared key first (an object of its own at the CS, fetched by bob).
	run ntmc g1 alice keys exchange "$bob"
	assert_success
	mkdir -p "$out"
	run ntmc g2 bob fetch --timeout 30 -o "$out"
	assert_success
	objs=$(sqlite3 "$TOPO_DIR/cs/cs.db" 'select count(*) from objects')
	( rc=0
	  timeout 300 ip netns exec "${P}g1" "$NTM_BIN/ntm" -c "$TOPO_DIR/alice" -vv send \
	      --timeout 20 --json --no-progress "$bob" "$TOPO_DIR/big.bin" \
	      > "$TOPO_DIR/send.json" 2> "$TOPO_DIR/send.err" || rc=$?
	  echo "$rc" > "$TOPO_DIR/send.rc" ) &
	# Five kills while the upload goes on (it takes about 11 s at 80 Mbit/s).
	wait_for 60 grep -q 'PUT .*/v1/cs/upload?id=' "$TOPO_DIR/send.err" || { head -c 3000 "$TOPO_DIR/send.err" >&2; cat "$TOPO_DIR/send.rc" >&2; false; }
	for ((i = 0; i < 5; i++)); do
		sleep "0.$((5 + RANDOM % 5))"
		[ -s "$TOPO_DIR/send.rc" ] && break
		cs_kill9
		kills=$((kills + 1))
	done
	wait_for 240 test -s "$TOPO_DIR/send.rc"
	echo "# $kills kills; $(grep -c 'resuming at' "$TOPO_DIR/send.err") resumptions" >&3
	[ "$kills" -ge 3 ]
	cat "$TOPO_DIR/send.err" | grep -v '^ntm: info' >&2 || true
	assert_equal "$(cat "$TOPO_DIR/send.rc")" 0
	[ "$(grep -c 'resuming at' "$TOPO_DIR/send.err")" -ge 3 ]
	# One object more and no upload left behind at the CS.
	assert_equal "$(sqlite3 "$TOPO_DIR/cs/cs.db" 'select count(*) from objects')" $((objs + 1))
	assert_equal "$(sqlite3 "$TOPO_DIR/cs/cs.db" 'select count(*) from uploads')" 0
	# Bob gets it whole.
	run ip netns exec "${P}g2" "$NTM_BIN/ntm" -c "$TOPO_DIR/bob" fetch --timeout 60 -o "$out"
	assert_success
	cmp "$out/big.bin" "$TOPO_DIR/big.bin"
}
