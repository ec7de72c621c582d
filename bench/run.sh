#!/usr/bin/env bash
# bench/run.sh - ntm benchmarks. Each reports ratios against a baseline
# measured in the same run on the same path; nothing here passes or fails on
# a timing. Benchmarks are bench/*.sh other than this file.
set -u
cd "$(dirname "$0")/.."
rc=0
for b in bench/*.sh; do
	[ "$b" = bench/run.sh ] && continue
	echo "=== $b"
	bash "$b" || rc=1
done
exit $rc
