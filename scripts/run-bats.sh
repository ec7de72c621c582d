#!/usr/bin/env bash
# run-bats.sh DIR|FILE... - run bats suites, print "bats: N passed, N failed,
# N skipped". Under CI=true a skipped test counts as a failure.
#
# NTM_BATS_JOBS=N (default 1) runs N files at once, each in a bats of its
# own: every file brings up its own platform (own temp dir, free ports,
# namespaces named after its PID), so files do not share state. A file's
# TAP is printed whole when it ends, under a "# FILE: N s" line. With more
# than one job, the files whose path contains a word of NTM_BATS_ALONE
# (default none) run by themselves after the others: tests that measure
# what a loaded machine lets through. The files whose path contains a word
# of NTM_BATS_EXCEPT (default none) are left out, each named in a "#" line
# (make check runs them in a stage of their own). The files named by the
# words of NTM_BATS_FIRST (default none) start first, in the order of the
# words, the others after them in their own order: with the longest files
# named, the run does not end on one long file started last.
set -u
jobs=${NTM_BATS_JOBS:-1}
alone=${NTM_BATS_ALONE-}
except=${NTM_BATS_EXCEPT-}
first=${NTM_BATS_FIRST-}
case $jobs in '' | *[!0-9]* | 0) echo "run-bats.sh: NTM_BATS_JOBS='$jobs' is not a count" >&2; exit 2;; esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
files=()
for d in "$@"; do
	if [ -f "$d" ]; then
		files+=("$d")
		continue
	fi
	for f in "$d"/*.bats; do [ -e "$f" ] && files+=("$f"); done
done

# named WORDS FILE: FILE's path contains one of WORDS.
named() {
	local p
	for p in $1; do
		case $2 in *$p*) return 0;; esac
	done
	return 1
}

kept=()
for f in ${files[@]+"${files[@]}"}; do
	if named "$except" "$f"; then
		echo "# $f: left out here (NTM_BATS_EXCEPT)"
	else
		kept+=("$f")
	fi
done
files=(${kept[@]+"${kept[@]}"})
if [ ${#files[@]} -eq 0 ]; then
	echo "bats: no suites in $*" >&2
	exit 1
fi
kept=()
declare -A taken=()
for w in $first; do
	for f in "${files[@]}"; do
		if named "$w" "$f" && [ -z "${taken[$f]-}" ]; then
			kept+=("$f")
			taken[$f]=1
		fi
	done
done
for f in "${files[@]}"; do
	[ -n "${taken[$f]-}" ] || kept+=("$f")
done
files=("${kept[@]}")

# one FILE INDEX: run it, then print its TAP whole (one printer at a time).
one() {
	local t0=$SECONDS rc
	bats --formatter tap --timing "$1" > "$tmp/$2.tap" 2>&1
	rc=$?
	echo "$rc" > "$tmp/$2.rc"
	{
		flock 9
		printf '# %s: %d s\n' "$1" $((SECONDS - t0))
		cat "$tmp/$2.tap"
	} 9> "$tmp/print.lock"
}

is_alone() { named "$alone" "$1"; }

if [ "$jobs" -eq 1 ]; then
	# one after the other, printed as they go
	for i in "${!files[@]}"; do
		bats --formatter tap --timing "${files[$i]}" 2>&1 | tee "$tmp/$i.tap"
		echo "${PIPESTATUS[0]}" > "$tmp/$i.rc"
	done
else
	for i in "${!files[@]}"; do
		is_alone "${files[$i]}" && continue
		while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
		one "${files[$i]}" "$i" &
	done
	wait
	for i in "${!files[@]}"; do
		is_alone "${files[$i]}" && one "${files[$i]}" "$i"
	done
fi

rc=0
for i in "${!files[@]}"; do
	[ "$(cat "$tmp/$i.rc" 2>/dev/null)" = 0 ] || rc=1
done
cat "$tmp"/*.tap > "$tmp/all"
pass=$(grep -cE '^ok [0-9]+' "$tmp/all" | tr -d ' ')
skip=$(grep -cE '^ok [0-9]+ .*# skip' "$tmp/all" | tr -d ' ')
fail=$(grep -cE '^not ok [0-9]+' "$tmp/all" | tr -d ' ')
pass=$((pass - skip))
if [ "${CI:-}" = true ] && [ "$skip" -gt 0 ]; then
	echo "bats: $skip skipped tests count as failures under CI" >&2
	fail=$((fail + skip))
	rc=1
fi
echo "bats: $pass passed, $fail failed, $skip skipped"
[ "$rc" -eq 0 ] && [ "$fail" -eq 0 ]
