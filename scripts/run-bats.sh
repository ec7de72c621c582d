#!/usr/bin/env bash
# run-bats.sh DIR|FILE... - run bats suites, print "bats: N passed, N failed,
# N skipped". Under CI=true a skipped test counts as a failure.
set -u
out=$(mktemp)
trap 'rm -f "$out"' EXIT
files=()
for d in "$@"; do
	if [ -f "$d" ]; then
		files+=("$d")
		continue
	fi
	for f in "$d"/*.bats; do [ -e "$f" ] && files+=("$f"); done
done
if [ ${#files[@]} -eq 0 ]; then
	echo "bats: no suites in $*" >&2
	exit 1
fi
bats --formatter tap --timing "${files[@]}" | tee "$out"
rc=${PIPESTATUS[0]}
pass=$(grep -cE '^ok [0-9]+' "$out" | tr -d ' ')
skip=$(grep -cE '^ok [0-9]+ .*# skip' "$out" | tr -d ' ')
fail=$(grep -cE '^not ok [0-9]+' "$out" | tr -d ' ')
pass=$((pass - skip))
if [ "${CI:-}" = true ] && [ "$skip" -gt 0 ]; then
	echo "bats: $skip skipped tests count as failures under CI" >&2
	fail=$((fail + skip))
	rc=1
fi
echo "bats: $pass passed, $fail failed, $skip skipped"
[ "$rc" -eq 0 ] && [ "$fail" -eq 0 ]
