#!/usr/bin/env bash
# bench/handover.sh - the handover gap of each mobility case (root needed):
# runs the mobility topology (tests/netns/20-mobility.bats) with a ping
# every 10 ms through the tunnel and prints the longest silence around each
# address change; then the three longest silences of a TCP stream (2 MB/s
# through the user-space stack) that crosses three moves. Last, over all
# runs: the ping gaps and the stream's stalls (its three longest in each
# run: about one per move), median and p95 each, and the stall's excess
# over the gap. Nothing here passes or fails on a timing.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" -ne 0 ]; then
	echo "bench/handover.sh: needs root (network namespaces); skipped"
	exit 0
fi
runs=${BENCH_RUNS:-3}
out=$(mktemp /tmp/ntm-handover.XXXXXX)
trap 'rm -f "$out"' EXIT
echo "ping every 10 ms; $runs runs; gap = longest silence between replies"
for ((i = 1; i <= runs; i++)); do
	NTM_STREAM_INTERVAL=0.01 bats "$top/tests/netns/20-mobility.bats" 2>&1 |
	    sed -n -e "s/^# handover /run $i: /p" -e "s/^# stream stalls /run $i: TCP stream (3 moves) stalls /p" |
	    tee -a "$out"
done
# med_p95: "median/p95 (n)" of the numbers on standard input, one a line.
med_p95() {
	sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) { print "-"; exit }
	    printf "%s/%s ms (%d)\n", v[int((NR + 1) / 2)], v[int((NR * 95 + 99) / 100)], NR }'
}
gaps=$(sed -n 's/.*: gap \([0-9][0-9]*\) ms$/\1/p' "$out")
stalls=$(sed -n 's/.*stalls (longest three, ms): //p' "$out" | tr -s ' ,' '\n\n' | grep -E '^[0-9]+$' || true)
echo "all runs, median/p95 (samples): ping gap $(med_p95 <<<"$gaps");" \
    "TCP stall per move $(med_p95 <<<"$stalls")"
if [ -n "$gaps" ] && [ -n "$stalls" ]; then
	g=$(sort -g <<<"$gaps" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
	s=$(sort -g <<<"$stalls" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
	echo "median TCP stall - median ping gap: $((s - g)) ms"
fi
