#!/usr/bin/env bash
# bench/natmatrix.sh - the NAT matrix (root needed): runs
# tests/netns/28-nat-matrix.bats with NAT_TRIALS (20) fresh tunnels per
# pair of kinds (endpoint-independent, port-restricted, per-destination,
# two NATs in series, firewalled IPv6, global, short UDP timeouts held by
# keepalives) and prints, per pair, the
# route reached, the share of trials that went direct (punched or a direct
# route), the requester's time to the punched path (median/p95, ms) and the
# reason. The run's own checks expect NAT_MIN_SHARE (95) percent direct
# where a pair should punch; the numbers are printed either way.
# NAT_KINDS limits the kinds; NAT_COLD=1 starts every trial cold (no NAT
# state left by the trial before: see the test's header). The trials run
# one at a time (NAT_SERIAL=1), where make check runs a round of pairs
# with no NAT in common at once: the times are of one tunnel alone.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" -ne 0 ]; then
	echo "bench/natmatrix.sh: needs root (network namespaces); skipped"
	exit 0
fi
out=$(mktemp /tmp/ntm-natmatrix.XXXXXX)
trap 'rm -f "$out" "$out.trials"' EXIT
trials=${NAT_TRIALS:-20}
echo "NAT matrix: $trials fresh tunnels per pair of kinds (requester at dc1, peer at dc2)"
rc=0
NAT_SERIAL=${NAT_SERIAL:-1} NAT_TRIALS=$trials NAT_MIN_SHARE=${NAT_MIN_SHARE:-95} NAT_MATRIX_OUT=$out NTM_PWHASH_FAST=1 \
    bats "$top/tests/netns/28-nat-matrix.bats" > "$out.log" 2>&1 || rc=$?
cat "$out" 2>/dev/null || echo "(no table: the run did not get that far)"
if [ -s "$out.trials" ]; then
	awk '$4 != "ok" || $5 != "ok" { if (!n++) print "trials whose ping failed:"; print }' "$out.trials"
fi
[ "$rc" = 0 ] || sed -n '/^not ok/,/^ok /p' "$out.log" | grep -v '^ok ' | head -40
rm -f "$out.log"
exit $rc
