#!/bin/sh
# fuzz.sh - build each libFuzzer harness given as an argument (fuzz/fuzz_*.c)
# with ASan/UBSan and run it for FUZZ_SECONDS (default 5; 0: no time limit)
# or FUZZ_RUNS executions (libFuzzer -runs; default none), whichever comes
# first. Prints each harness's executions, seconds, and the coverage it
# reached (libFuzzer's cov: edges, ft: features).
# Seeds come from fuzz/corpus/NAME/; findings are kept in build-fuzz/.
# A harness of code in cmd/ names the sources it is linked with in a
# comment line " * Sources: cmd/DIR/FILE.c ..." (or more such lines; lib/core
# and lib/io always), and any more header directories it needs in a line
# " * Includes: DIR ...".
# Exits non-zero if a harness fails to build or finds a crash.
set -eu

BUILD=${FUZZ_BUILD:-build-fuzz}
SECONDS_EACH=${FUZZ_SECONDS:-5}
RUNS=${FUZZ_RUNS:-}
CC=${FUZZ_CC:-clang}
PKGS="libevent libevent_openssl libevent_pthreads libcurl jansson libsodium sqlite3 libcares openssl"

if [ $# -eq 0 ]; then
	echo "usage: $0 fuzz/fuzz_NAME.c ..." >&2
	exit 2
fi
if ! command -v "$CC" >/dev/null 2>&1; then
	echo "fuzz: $CC not found (libFuzzer needs clang)" >&2
	exit 1
fi

SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
CFLAGS="-g -O1 -fno-omit-frame-pointer -std=c11 -D_GNU_SOURCE $SAN \
    $(pkg-config --cflags $PKGS) -Ilib -Ilib/core -Ilib/io -Icmd/common"
LIBS="$(pkg-config --libs $PKGS) -lpthread"

mkdir -p "$BUILD/lib"
objs=""
newest_h=$(ls -t lib/*.h lib/*/*.h | head -n 1)
for src in lib/core/*.c lib/io/*.c; do
	obj="$BUILD/lib/$(basename "$src" .c).o"
	if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ "$newest_h" -nt "$obj" ]; then
		$CC $CFLAGS -fsanitize=fuzzer-no-link -c -o "$obj" "$src"
	fi
	objs="$objs $obj"
done

failed=0
for src in "$@"; do
	name=$(basename "$src" .c)
	short=${name#fuzz_}
	bin="$BUILD/$name"
	extra=$(sed -n 's/^ \* Sources: //p' "$src")
	incs=""
	for f in $extra; do
		incs="$incs -I$(dirname "$f")"
	done
	for d in $(sed -n 's/^ \* Includes: //p' "$src"); do
		incs="$incs -I$d"
	done
	$CC $CFLAGS $incs -fsanitize=fuzzer -o "$bin" "$src" $extra $objs $LIBS

	corpus="$BUILD/corpus/$short"
	mkdir -p "$corpus" "$BUILD/crashes/$short"
	if [ -d "fuzz/corpus/$short" ]; then
		cp -n fuzz/corpus/"$short"/* "$corpus"/ 2>/dev/null || true
	fi
	limit="-max_total_time=$SECONDS_EACH"
	[ -n "$RUNS" ] && limit="$limit -runs=$RUNS"
	if [ "$SECONDS_EACH" = 0 ]; then
		echo "fuzz: $name to ${RUNS:-unlimited} runs"
	else
		echo "fuzz: $name for ${SECONDS_EACH}s${RUNS:+ or $RUNS runs}"
	fi
	start=$(date +%s)
	# shellcheck disable=SC2086
	if ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	    "$bin" $limit -max_len=4096 \
	    -artifact_prefix="$BUILD/crashes/$short/" -print_final_stats=1 \
	    "$corpus" >"$BUILD/$name.log" 2>&1; then
		# executions, time, and the coverage libFuzzer reached (edges,
		# features)
		echo "fuzz: $name: $(sed -n 's/^stat::number_of_executed_units: *//p' "$BUILD/$name.log") runs" \
		    "in $(($(date +%s) - start))s," \
		    "$(grep -o 'cov: [0-9]* ft: [0-9]*' "$BUILD/$name.log" | tail -n 1)"
	else
		echo "fuzz: $name FAILED (log: $BUILD/$name.log)"
		grep -E 'ERROR|runtime error|Test unit written' "$BUILD/$name.log" | head -n 5
		failed=$((failed + 1))
	fi
done

echo "fuzz: $# harnesses, $failed failed"
[ "$failed" -eq 0 ]
