#!/usr/bin/env bash
# bench/run.sh [NAME...] - ntm benchmarks. Each reports ratios against a
# baseline measured in the same run on the same path; nothing here passes or
# fails on a timing. Benchmarks are bench/*.sh other than this file; with
# names (tunnel, tcp, handover, control, exchange), only those run, in that order;
# without, the names in $BENCH (so `make bench BENCH="tcp tunnel"`).
set -u
cd "$(dirname "$0")/.." || exit 1
rc=0
# shellcheck disable=SC2086
[ $# -eq 0 ] && [ -n "${BENCH:-}" ] && set -- $BENCH
if [ $# -gt 0 ]; then
	list=()
	for name in "$@"; do
		name=${name#bench/} name=${name%.sh}
		if [ ! -f "bench/$name.sh" ] || [ "$name" = run ]; then
			echo "bench/run.sh: no benchmark '$name' (bench/*.sh)" >&2
			exit 2
		fi
		list+=("bench/$name.sh")
	done
else
	list=(bench/*.sh)
fi
for b in "${list[@]}"; do
	[ "$b" = bench/run.sh ] && continue
	echo "=== $b"
	bash "$b" || rc=1
done
exit $rc
