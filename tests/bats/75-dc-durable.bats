#!/usr/bin/env bats
# The DC stores locations on a writer thread of its own (cmd/ntm-dc/udp.c):
# a REG_RESP still means the location is on disk, so a DC killed -9 right
# after answering has it after the restart, even when another writer held
# the database meanwhile; and while the location writes wait for the
# database, the DC's event loop goes on answering.

load helpers

setup_file() {
	platform_up
	add_user alice 'alice-pw-1'
	login "$BATS_FILE_TMPDIR/a" alice alice-pw-1 "$(dc1_url)" >/dev/null
}
teardown_file() { platform_down; }

dc1_db() { echo "$(sed -n 's/^state_dir = //p' "$(P)/dc1.conf")/dc.db"; }

# hold_db SECONDS FLAG RESULT [LATE]: holds the write lock of dc1's
# database (as another process's transaction would) until FLAG exists or
# SECONDS passed; writes "answered" or "timeout" to RESULT, then commits.
# RESULT.locked exists once the lock is held. With LATE, FLAG counts only
# once it was touched LATE seconds or more into the hold.
hold_db() {
	python3 - "$(dc1_db)" "$@" <<'EOF'
import os, sqlite3, sys, time
db, secs, flag, res = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
late = float(sys.argv[5]) if len(sys.argv) > 5 else None
c = sqlite3.connect(db, isolation_level=None, timeout=10)
c.execute("BEGIN IMMEDIATE")
c.execute("UPDATE clients SET last_login = last_login WHERE id = 0")
t0 = time.time()
open(res + ".locked", "w").close()
def seen():
    try:
        return late is None or os.path.getmtime(flag) - t0 >= late
    except OSError:
        return False
t = time.monotonic()
while time.monotonic() - t < secs and not seen():
    time.sleep(0.05)
with open(res, "w") as f:
    f.write("answered" if seen() else "timeout")
c.execute("COMMIT")
EOF
}

# The reflexive address dc1 has stored for alice.
stored_loc() {
	ntm-dc -f "$(P)/dc1.conf" client list --json |
	    jq -r '.[] | select(.fqdn == "alice.dc1.ntm.test") | .location.reflexive'
}

restart_dc1() {
	ntm-dc -d -f "$(P)/dc1.conf" >>"$(P)/dc1.log" 2>&1 &
	echo $! > "$(P)/dc1.pid"
	wait_health "$(dc1_url)" "$(ca)"
}

@test "kill -9 right after a REG_RESP, three times, once with the database locked by another writer: each new location survives the restart" {
	local i refl t=$BATS_TEST_TMPDIR
	for ((i = 0; i < 3; i++)); do
		rm -f "$t/res" "$t/res.locked"
		if [ "$i" -eq 1 ]; then
			# The location's write waits for this lock (2 s): the answer
			# must wait too, or the kill below loses the location.
			hold_db 2 "$t/never" "$t/res" &
			wait_until 10 test -f "$t/res.locked"
		fi
		# A one-shot registration from a fresh UDP port: a new location.
		run_t ntm -c "$BATS_FILE_TMPDIR/a" register --dc-udp "$(udp_of dc1)" --timeout 10
		assert_success
		refl=$(sed -n 's/^reflexive: //p' <<<"$output")
		[ -n "$refl" ]
		kill -9 "$(cat "$(P)/dc1.pid")"
		wait_until 10 bash -c "! kill -0 $(cat "$(P)/dc1.pid") 2>/dev/null"
		[ "$i" -ne 1 ] || wait
		restart_dc1
		run stored_loc
		echo "round $i: answered from $refl, stored after kill -9: $output" >&3
		assert_output "$refl"
	done
}

@test "while another writer holds the database, the DC's loop still answers (the location write waits on its own thread; its timers' writes wait for their next round), then stores and answers the registration" {
	local t=$BATS_TEST_TMPDIR reg lines
	lines=$(grep -c 'register alice.dc1.ntm.test from' "$(P)/dc1.log" || true)
	# 4 s, under the DC's busy timeout (5 s), so that the location write
	# gets through after it. An answer counts 2.5 s or more into the hold:
	# past a round of the DC's timer of ended tokens (every 2 s), whose
	# sweep writes and once stopped the loop until the lock was let go.
	hold_db 4 "$t/health" "$t/res" 2.5 &
	local holder=$!
	wait_until 10 test -f "$t/res.locked"
	ntm -c "$BATS_FILE_TMPDIR/a" register --dc-udp "$(udp_of dc1)" --timeout 15 \
	    > "$t/reg.out" 2>&1 &
	reg=$!
	# The DC took the registration (a new location: logged), and its write
	# now waits for the lock.
	wait_until 10 bash -c "[ \$(grep -c 'register alice.dc1.ntm.test from' '$(P)/dc1.log') -gt $lines ]"
	# health, again and again while the lock is held (bounded by the
	# holder's 4 s)
	while kill -0 "$holder" 2>/dev/null; do
		curl -sf --max-time 10 --cacert "$(ca)" "$(dc1_url)/v1/health" >/dev/null &&
		    touch "$t/health"
		sleep 0.2
	done
	wait "$holder"
	run cat "$t/res"
	assert_output "answered"
	wait "$reg"
	run sed -n 's/^reflexive: //p' "$t/reg.out"
	[ -n "$output" ]
	local refl=$output
	run stored_loc
	assert_output "$refl"
}

# Online devices of dc1 summed over the NAT kinds ("nat_*" in status).
online_by_nat() {
	ntm-dc -f "$(P)/dc1.conf" status --json 2>/dev/null |
	    jq -r '[.udp | to_entries[] | select(.key | startswith("nat_")) | .value] | add // empty'
}
nat_is() { [ "$(online_by_nat)" = "$1" ]; }

@test "online devices by NAT kind are counted as devices register and leave (no pass over all sessions)" {
	# After the restarts above, alice's stored location came back online.
	run_t ntm -c "$BATS_FILE_TMPDIR/a" register --dc-udp "$(udp_of dc1)" --timeout 10
	assert_success
	wait_until 10 nat_is 1
	run_t ntm-dc -f "$(P)/dc1.conf" client del alice.dc1.ntm.test
	assert_success
	# The running DC drops the session within seconds: counted no more.
	wait_until 20 nat_is 0
}
