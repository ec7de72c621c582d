#!/usr/bin/env bats
# make install honours PREFIX and DESTDIR, and the installed library,
# header and pkg-config file build a program against libntm.

load helpers

@test "make install into a DESTDIR, then build and run a program with pkg-config" {
	local d=$BATS_TEST_TMPDIR/root
	run make -s -C "$TOP" install DESTDIR="$d" PREFIX=/opt/ntm
	assert_success
	local f
	for f in bin/ntm bin/ntm-as bin/ntm-dc bin/ntm-rs bin/ntm-cs lib/libntm.a \
	    lib/libntm.so.0 lib/pkgconfig/ntm.pc include/ntm.h share/man/man1/ntm.1 \
	    share/man/man5/ntm.conf.5 share/man/man8/ntm-as.8 share/man/man8/ntm-dc.8 \
	    share/man/man8/ntm-rs.8 share/man/man8/ntm-cs.8 \
	    share/bash-completion/completions/ntm share/zsh/vendor-completions/_ntm \
	    share/fish/vendor_completions.d/ntm.fish; do
		assert_file_exists "$d/opt/ntm/$f"
	done
	cat > "$BATS_TEST_TMPDIR/t.c" <<'C'
#include <stdio.h>
#include <ntm.h>
int main(void) {
	char b64[NTM_B64_LEN(3)];
	if (ntm_crypto_init() < 0 || ntm_b64_encode(b64, sizeof(b64), "ntm", 3) < 0)
		return 1;
	printf("%s %s %s\n", NTM_VERSION, b64, ntm_errcode(NTM_ERR_BADPASS));
	return 0;
}
C
	# The .pc file names the final prefix; point the compiler into DESTDIR.
	run bash -c "PKG_CONFIG_PATH='$d/opt/ntm/lib/pkgconfig' PKG_CONFIG_SYSROOT_DIR='$d' \
	    cc -o '$BATS_TEST_TMPDIR/t' '$BATS_TEST_TMPDIR/t.c' \
	    \$(PKG_CONFIG_PATH='$d/opt/ntm/lib/pkgconfig' PKG_CONFIG_SYSROOT_DIR='$d' pkg-config --cflags ntm) \
	    '$d/opt/ntm/lib/libntm.a' \$(pkg-config --libs libevent libevent_openssl libevent_pthreads libcurl jansson libsodium sqlite3 libcares openssl) -lpthread"
	assert_success
	run "$BATS_TEST_TMPDIR/t"
	assert_success
	assert_output "0.1.0 bnRt bad_password"
	run man -l "$d/opt/ntm/share/man/man1/ntm.1"
	assert_success
}

@test "make install puts hardened systemd units for the four daemons and the agent, naming the installed binaries" {
	local d=$BATS_TEST_TMPDIR/root r u
	run make -s -C "$TOP" install DESTDIR="$d" PREFIX=/opt/ntm
	assert_success
	for r in as dc rs cs; do
		u=$d/opt/ntm/lib/systemd/system/ntm-$r.service
		assert_file_exists "$u"
		run grep -c "^ExecStart=/opt/ntm/bin/ntm-$r -d -f /etc/ntm/$r.conf\$" "$u"
		assert_output 1
		refute grep -q '@BINDIR@' "$u"
		# systemd's own measure of what the unit exposes (0 best, 10 worst):
		# every daemon "OK" or better; the figure is in the test log.
		run systemd-analyze security --offline=true --threshold=20 "$u"
		assert_success
		echo "ntm-$r.service: ${lines[-1]}" >&3
	done
	u=$d/opt/ntm/lib/systemd/user/ntm-agent.service
	assert_file_exists "$u"
	run grep -c '^ExecStart=/opt/ntm/bin/ntm up -d$' "$u"
	assert_output 1
	run make -s -C "$TOP" uninstall DESTDIR="$d" PREFIX=/opt/ntm
	assert_success
	assert_file_not_exists "$d/opt/ntm/lib/systemd/system/ntm-dc.service"
	assert_file_not_exists "$u"
}
