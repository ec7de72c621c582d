#!/usr/bin/env bash
# check.sh - what `make check` runs after deps and the build: C unit tests,
# the same under ASan/UBSan, the docs drift check (help, man pages and
# completions), the bats suites, and (as root) the network
# namespace topologies. Ends with one "check: N passed, N failed" line.
set -u
cd "$(dirname "$0")/.."
export NTM_PWHASH_FAST=1
# The bats files of a stage run NTM_BATS_JOBS at a time, each on a platform
# (or namespaces) of its own; the floods (of the RS, of logins), which load
# the machine and measure what gets through, run alone after them
# (scripts/run-bats.sh). Three at a time on two CPUs was too many: tests
# that wait a bounded time for an answer failed.
export NTM_BATS_JOBS=${NTM_BATS_JOBS:-2}
export NTM_BATS_ALONE=${NTM_BATS_ALONE-"45-rs-flood 79-login-flood"}
MAKE=${MAKE:-make}
jobs=-j${CHECK_JOBS:-$(nproc 2>/dev/null || echo 2)}
log=$(mktemp)
asan_log=$(mktemp)
asan_build=
trap 'rm -f "$log" "$asan_log"; [ -z "$asan_build" ] || kill "$asan_build" 2>/dev/null' EXIT
status=0

stage() {
	local name=$1
	shift
	printf '\n=== %s\n' "$name"
	"$@" 2>&1 | tee -a "$log"
	local rc=${PIPESTATUS[0]}
	[ "$rc" -eq 0 ] || { echo "=== $name FAILED (exit $rc)" | tee -a "$log"; status=1; }
}

stage "unit tests" $MAKE --no-print-directory "$jobs" unit
stage "unit tests under ASan/UBSan" $MAKE --no-print-directory "$jobs" asan
stage "the protocol core calls no I/O" ./scripts/layers-check.sh
stage "help, man pages and completions agree" ./scripts/docs-check.sh
# The files the last stage runs with the ASan/UBSan programs. As root they
# run there only, but for 55-forwards and 95-exchange, whose memory bounds
# hold for the programs as built (ASan's allocator takes more). Those
# programs build during the suites, at the lowest priority, on what the
# suites leave of the CPUs.
asan_files="tests/netns/40-hostile.bats tests/netns/50-streams.bats
    tests/netns/55-forwards.bats tests/netns/57-agent-life.bats
    tests/bats/92-cs-push.bats tests/bats/95-exchange.bats"
except=
suites="tests/bats" what="bats end-to-end"
if ls tests/netns/*.bats >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
	except="40-hostile 50-streams 57-agent-life 92-cs-push"
	suites="tests/bats tests/netns" what="$what and network namespace topologies"
	nice -n 19 $MAKE --no-print-directory "$jobs" SAN=1 BUILD=build-asan all tools \
	    > "$asan_log" 2>&1 &
	asan_build=$!
fi
# As root the bats suites and the network namespace topologies run as one
# pool of files, so that neither suite ends on one long file while the
# other CPU waits. NTM_BATS_FIRST (scripts/run-bats.sh) starts the files of
# a minute and more first, longest first (seconds in a clean-clone run:
# 171, 132, 125, 91-123, 103, 94, 83, 80, 80, 65).
export NTM_BATS_FIRST=${NTM_BATS_FIRST-"28-nat-matrix 90-cs.bats 27-hard-retry
    95-exchange 26-punch 51-peer-restart 57-agent-life 93-cs-wait 70-hostile-http
    60-demo"}
stage "$what" env NTM_BATS_EXCEPT="$except" ./scripts/run-bats.sh $suites
if ls tests/netns/*.bats >/dev/null 2>&1; then
	if [ "$(id -u)" -eq 0 ]; then
		# The programs built with ASan/UBSan; a sanitizer report aborts the
		# process and a test fails. The daemons and the agent under hostile
		# input (40-hostile's last test: "every daemon is still running");
		# the agent's user-space stack (streams, forwards, SOCKS5, clients
		# that vanish or are interrupted: lifetimes across lwIP and libevent
		# callbacks); the non-real-time path with every program sanitized
		# (the CS's announcements and long-polls, the DCs' forwarding, the
		# AS's pushes; ASan's allocator takes more than the RSS bound).
		wait "$asan_build"
		asan_rc=$?
		asan_build=
		stage "ASan/UBSan build of the programs (made during the suites)" \
		    sh -c 'cat "$1"; exit "$2"' sh "$asan_log" "$asan_rc"
		stage "hostile input, streams and forwards, key and data exchange with the ASan/UBSan programs" env \
		    NTM_BIN="$PWD/build-asan" ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
		    UBSAN_OPTIONS=halt_on_error=1 NTM_RSS_LIMIT_KB=524288 \
		    ./scripts/run-bats.sh $asan_files
	elif [ "${CI:-}" = true ]; then
		echo "=== netns topologies need root and CI=true: failing"
		status=1
	else
		echo "=== netns topologies skipped: they need root"
	fi
fi

# Sum the per-stage "X: N passed, N failed" lines.
read -r p f < <(grep -E '^(unit|bats): [0-9]+ passed, [0-9]+ failed' "$log" |
	sed -E 's/^.*: ([0-9]+) passed, ([0-9]+) failed.*/\1 \2/' |
	awk '{p += $1; f += $2} END {print p + 0, f + 0}')
[ "$status" -ne 0 ] && [ "$f" -eq 0 ] && f=1
# Every failure again, at the end (where a log cut to its tail still shows
# it): the failed stages, each failed unit test and bats test with the file
# it is in and its first lines of diagnostics.
if [ "$status" -ne 0 ]; then
	echo
	echo "=== the failures again"
	awk '
	/^=== .* FAILED \(exit [0-9]+\)$/ { print; next }
	/^# tests\/.*\.bats: [0-9]+ s$/ { file = $0; diag = 0; next }
	/^not ok [0-9]+/ { if (file != shown) { print file; shown = file }
		print; diag = 60; next }
	diag > 0 && /^#/ { print; diag--; next }
	{ diag = 0 }
	/^FAIL |: check failed: |: no summary line |: exit status [0-9]+$/ { print }
	' "$log" | head -n 400
fi
echo
echo "check: $p passed, $f failed"
exit $status
