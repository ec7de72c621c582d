#!/usr/bin/env bash
# layers-check.sh - libntm's protocol core (lib/core/) stays a core: it
# includes no header of libevent, libcurl, SQLite, OpenSSL or lwIP, nor the
# I/O glue's (ntm-io.h, ntm.h), and its objects call nothing but libsodium,
# jansson, the core itself and libc's memory, string and formatting
# functions: no sockets, no files, no clock. Checked on the built objects
# (nm), so a call that slips in through a macro is caught too.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$top/build}
fail=0

hdrs=$(grep -nE '#include *[<"](event2/|curl/|sqlite3\.h|openssl/|lwip/|ntm-io\.h|ntm\.h)' \
    "$top"/lib/core/*.[ch])
if [ -n "$hdrs" ]; then
	echo "layers-check: lib/core includes an I/O header:" >&2
	echo "$hdrs" >&2
	fail=1
fi

objs=$(ls "$build"/lib/core/*.o 2>/dev/null)
[ -n "$objs" ] || { echo "layers-check: no objects under $build/lib/core (build first)" >&2; exit 1; }
# libc functions the core may call: memory, strings, formatting, address
# text, and getenv (NTM_PWHASH_FAST).
libc='calloc|free|malloc|realloc|memchr|memcmp|memcpy|memmove|memset|snprintf|vsnprintf|strchr|strrchr|strcmp|strncmp|strcasecmp|strncasecmp|strcpy|strncpy|strcspn|strspn|strlen|strnlen|strtoul|strtol|strtoll|strtoull|inet_ntop|inet_pton|getenv|abort|__stack_chk_fail|__assert_fail|__errno_location'
core_defs=$(nm -g --defined-only $objs | awk 'NF == 3 {print $3}' | sort -u)
bad=$(nm -u $objs | awk '{print $2}' | sort -u |
	grep -vE "^(crypto_|sodium_|randombytes_|json_|jansson_)" |
	grep -vxE "$libc" | grep -vxF -f <(printf '%s\n' "$core_defs") |
	grep -vE '^(__asan|__ubsan|__sanitizer|_GLOBAL_OFFSET_TABLE_)')
if [ -n "$bad" ]; then
	echo "layers-check: lib/core calls outside libsodium, jansson, itself and libc's pure functions:" >&2
	for s in $bad; do
		printf '  %s (in %s)\n' "$s" "$(nm -A -u $objs | awk -v s="$s" '$NF == s {sub(/:.*/, "", $1); n = split($1, p, "/"); printf "%s ", p[n]}')" >&2
	done
	fail=1
fi
[ "$fail" -eq 0 ] && echo "layers-check: lib/core calls only libsodium, jansson, itself and pure libc"
exit $fail
