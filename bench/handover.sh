#!/usr/bin/env bash
# bench/handover.sh - the handover gap of each mobility case (root needed):
# runs the mobility topology (tests/netns/20-mobility.bats) with a ping
# every 10 ms through the tunnel and prints the longest silence around each
# address change; then the three longest silences of a TCP stream (2 MB/s
# through the user-space stack) that crosses three moves. Nothing here
# passes or fails on a timing.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" -ne 0 ]; then
	echo "bench/handover.sh: needs root (network namespaces); skipped"
	exit 0
fi
runs=${BENCH_RUNS:-3}
echo "ping every 10 ms; $runs runs; gap = longest silence between replies"
for ((i = 1; i <= runs; i++)); do
	NTM_STREAM_INTERVAL=0.01 bats "$top/tests/netns/20-mobility.bats" 2>&1 |
	    sed -n -e "s/^# handover /run $i: /p" -e "s/^# stream stalls /run $i: TCP stream (3 moves) stalls /p"
done
