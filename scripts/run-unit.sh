#!/bin/sh
# run-unit.sh - run each unit test binary given as an argument, show its
# output, and sum the "X passed, Y failed" lines into one summary.
# Exits non-zero if any test failed or any binary did not report.

passed=0
failed=0
broken=0
for t in "$@"; do
	out=$("$t" 2>&1)
	rc=$?
	printf '%s\n' "$out"
	line=$(printf '%s\n' "$out" | sed -n 's/.*: \([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed$/\1 \2/p' | tail -n 1)
	if [ -z "$line" ]; then
		echo "$t: no summary line (exit status $rc)"
		broken=$((broken + 1))
		continue
	fi
	p=${line% *}
	f=${line#* }
	passed=$((passed + p))
	failed=$((failed + f))
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "$t: exit status $rc"
		broken=$((broken + 1))
	fi
done
failed=$((failed + broken))
echo "unit: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
