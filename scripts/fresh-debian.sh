#!/usr/bin/env bash
# fresh-debian.sh - the README's two commands on a Debian 12 that has nothing
# installed: a minimal bookworm made with debootstrap, a clean clone of this
# tree's HEAD inside it, then `make demo`, `make demo-stop` and `make check`
# run there as root (CI=true, so nothing may be skipped). Only `make` and
# `git` are added to the minimal system first: a newcomer needs them to get
# the tree at all. Everything else must come from scripts/deps.sh.
#
#   sudo scripts/fresh-debian.sh [--keep] [--no-check]
#
# Needs root (debootstrap, chroot, mounts) and Debian's mirror. Not part of
# `make check`: it takes about 20 minutes. The chroot lives in a temp dir
# ($NTM_FRESH_DIR to choose) and is removed at the end unless --keep.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
keep=0
check=1
for a in "$@"; do
	case "$a" in
	--keep) keep=1 ;;
	--no-check) check=0 ;;
	-h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "fresh-debian.sh: unknown argument '$a' (see --help)" >&2; exit 2 ;;
	esac
done
[ "$(id -u)" -eq 0 ] || { echo "fresh-debian.sh: needs root (debootstrap, chroot)" >&2; exit 1; }

root=${NTM_FRESH_DIR:-$(mktemp -d /var/tmp/ntm-fresh.XXXXXX)}
mounted=()
cleanup() {
	local m i
	# Whatever the run left inside (a failed demo's daemons) dies with it:
	# only processes whose root is this chroot.
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && kill -KILL "${p#/proc/}" 2>/dev/null
	done
	for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
		umount -l "${mounted[i]}" 2>/dev/null || true
	done
	if [ "$keep" -eq 0 ]; then
		rm -rf --one-file-system "$root"
	else
		echo "fresh-debian.sh: kept $root"
	fi
}
trap cleanup EXIT

command -v debootstrap >/dev/null || {
	echo "fresh-debian.sh: installing debootstrap" >&2
	apt-get install -y -qq debootstrap >/dev/null
}
# The mirror this machine uses, else Debian's own.
mirror=$(sed -n 's/^URIs: *\(http[^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)
[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $3 == "bookworm" {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian

step() { printf '\n==> %s\n' "$*"; }
step "debootstrap bookworm (minbase) into $root from $mirror"
t0=$(date +%s)
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.debootstrap.log" 2>&1 ||
	{ tail -n 20 "$root.debootstrap.log" >&2; exit 1; }
rm -f "$root.debootstrap.log"

mnt() {	# mnt TYPE-OR-BIND SRC DST
	mkdir -p "$3"
	if [ "$1" = bind ]; then mount --rbind "$2" "$3"; mount --make-rslave "$3"
	else mount -t "$1" "$2" "$3"; fi
	mounted+=("$3")
}
# The root a mount point of its own: `ip netns exec` makes / a slave mount,
# which only a mount point can be.
mnt bind "$root" "$root"
mnt proc proc "$root/proc"
mnt bind /sys "$root/sys"
mnt bind /dev "$root/dev"
mnt tmpfs tmpfs "$root/run"
mnt tmpfs tmpfs "$root/tmp"
cp /etc/resolv.conf "$root/etc/resolv.conf"

step "a clean clone of $(git -C "$top" rev-parse --short HEAD) in /root/ntm"
git clone -q "$top" "$root/root/ntm"

in_root() { chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb \
	PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"; }

step "only make and git added to the minimal system"
in_root sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends make git >/dev/null'
in_root sh -c 'dpkg -l | grep -c ^ii' | sed 's/^/packages installed: /'

step "make demo"
in_root sh -c 'cd /root/ntm && make demo'
step "make demo-stop"
in_root sh -c 'cd /root/ntm && make demo-stop'
if [ "$check" -eq 1 ]; then
	step "make check (CI=true)"
	in_root sh -c 'cd /root/ntm && CI=true make check'
fi
echo
echo "fresh-debian.sh: make demo$([ "$check" -eq 1 ] && echo ' and make check') passed on a fresh bookworm in $(( $(date +%s) - t0 )) s"
