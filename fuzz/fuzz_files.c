/*
 * fuzz_files.c - libFuzzer harness for the files a profile keeps (-c DIR):
 * the first byte picks one, the rest is its content, written with mode
 * 0600 into a fresh profile directory and read by the code that reads it:
 *
 *   0  session.json      session_load (profile.c); what loads is saved and
 *                        must load again to the same session
 *   1  device.key        id_device_keypair (identity.c, lib/io/keyfile.c)
 *   2  as.key            id_as_key; a key that loads saves and loads back
 *   3  known_devices     id_known_get, then id_known_check of a fixed
 *                        certificate: what it says is remembered must be
 *   4  device            cli_device_get: only a valid device id comes out
 *   5  device.cert       id_summary
 *   6  ntm.conf          cli_init (the CLI's settings)
 *
 * Sources: cmd/ntm/profile.c cmd/ntm/identity.c cmd/common/misc.c cmd/common/log.c
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "identity.h"
#include "ntm-cli.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

void
cli_err(const char *cmd, const char *fmt, ...)
{
	(void)cmd, (void)fmt;
}

static char dir[64];

static void
put(const char *name, const uint8_t *p, size_t n)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) < 0 ||
	    (n && write(fd, p, n) != (ssize_t)n))
		abort();
	close(fd);
}

static int
same(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

static void
session(struct cli *cli)
{
	struct session s, t;
	char err[512];

	if (session_load(cli, &s, err, sizeof(err)) != 0)
		return;
	if (session_save(cli, &s) != 0 || session_load(cli, &t, err, sizeof(err)) != 0)
		abort();
	if (!same(s.dc_url, t.dc_url) || !same(s.ca_file, t.ca_file) || !same(s.user, t.user) ||
	    !same(s.device, t.device) || !same(s.fqdn, t.fqdn) || !same(s.vip4, t.vip4) ||
	    !same(s.vip6, t.vip6) || !same(s.domain, t.domain) || !same(s.token, t.token) ||
	    s.token_expires != t.token_expires || !same(s.session_id, t.session_id) ||
	    !same(s.dc_key, t.dc_key) || !same(s.rx, t.rx) || !same(s.tx, t.tx) ||
	    s.login_time != t.login_time)
		abort();
	session_free(&s);
	session_free(&t);
}

static void
known(struct cli *cli)
{
	struct ntm_dcert c;
	struct id_known k, old;
	int r;

	(void)id_known_get(cli, "bob.dc2.ntm.test", &k);
	memset(&c, 0, sizeof(c));
	snprintf(c.fqdn, sizeof(c.fqdn), "bob.dc2.ntm.test");
	memset(c.pk, 0x5a, sizeof(c.pk));
	c.serial = 7;
	c.not_before = 1700000000;
	if ((r = id_known_check(cli, &c, 1700000100, &old)) < 0)
		return;
	if (id_known_get(cli, c.fqdn, &k) != 0 || memcmp(k.pk, c.pk, sizeof(c.pk)) != 0 ||
	    (r != ID_SAME && k.serial != c.serial))
		abort();
}

static const char *const files[] = { "session.json", "device.key", "as.key",
    "known_devices", "device", "device.cert", "ntm.conf" };

/* The profile directory goes when the fuzzer exits. */
static void
cleanup(void)
{
	char path[128];

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		unlink(path);
	}
	rmdir(dir);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cli cli;
	uint8_t pk[NTM_SIGN_PK], sk[NTM_DEVKEY_LEN], back[NTM_SIGN_PK];
	char fp[NTM_DFP_LEN], as[NTM_B64_LEN(NTM_SIGN_PK)], id[NTM_DEVICE_MAX + 1];
	char err[512], path[128];
	int pinned, which;

	if (size < 1)
		return 0;
	if (dir[0] == '\0') {
		snprintf(dir, sizeof(dir), "/dev/shm/fuzz-files-%d", (int)getpid());
		if (access("/dev/shm", W_OK) < 0)
			snprintf(dir, sizeof(dir), "/tmp/fuzz-files-%d", (int)getpid());
		if (ntm_mkdirs(dir, 0700) < 0)
			abort();
		atexit(cleanup);
	}
	which = data[0] % (sizeof(files) / sizeof(files[0]));
	put(files[which], data + 1, size - 1);
	memset(&cli, 0, sizeof(cli));
	cli.config_dir = dir;
	cli.state_dir = dir;
	switch (which) {
	case 0:
		session(&cli);
		break;
	case 1:
		(void)id_device_keypair(&cli, pk, sk, 0);
		break;
	case 2:
		if (id_as_key(&cli, pk, &pinned) == 0 && (!pinned || id_as_pin(&cli, pk) != 0 ||
		    id_as_key(&cli, back, &pinned) != 0 || memcmp(pk, back, sizeof(pk)) != 0))
			abort();
		break;
	case 3:
		known(&cli);
		break;
	case 4:
		if (cli_device_get(&cli, id) == 0 && !ntm_valid_device(id))
			abort();
		break;
	case 5:
		id_summary(&cli, fp, as, &pinned);
		break;
	case 6:
		err[0] = '\0';
		if (cli_init(&cli, dir, 0, err, sizeof(err)) != 0 && err[0] == '\0')
			abort();	/* a refusal says why */
		cli_free(&cli);		/* what it loaded, and the dirs */
		break;
	}
	/* Each case writes no file but its own, so the profile directory is
	 * empty again for the next input with one unlink (not one per file:
	 * those were a third of the time of a run). */
	snprintf(path, sizeof(path), "%s/%s", dir, files[which]);
	(void)unlink(path);
	return 0;
}
