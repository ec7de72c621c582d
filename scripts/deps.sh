#!/bin/sh
# Install every Debian package that ntm's build, tests, demo and benchmarks
# need. Idempotent; quiet when everything is already present.
set -eu

PKGS="
build-essential pkg-config
libevent-dev libcurl4-openssl-dev libjansson-dev libsodium-dev
libreadline-dev libsqlite3-dev libc-ares-dev liblwip-dev libssl-dev libpq-dev
openssl ca-certificates curl sqlite3
clang llvm libclang-rt-14-dev
bats bats-assert bats-support bats-file
jq bc xxd time faketime python3 systemd fish iproute2 iputils-ping nftables dnsmasq-base bind9-dnsutils iperf3 tcpdump procps psmisc
prometheus postgresql
"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "deps.sh: missing packages:$missing" >&2
	echo "deps.sh: run as root (or: sudo apt-get install$missing)" >&2
	exit 1
fi
echo "deps.sh: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
