/*
 * device.c - `ntm-as device revoke FQDN`: a device is revoked (lost,
 * stolen): its live tokens are queued for the servers (push.c), so its DC
 * ends its session and the CSs refuse its tokens within the push interval,
 * and it can no more renew its login without the password (serve.c). A
 * later login with the password certifies it anew.
 */
#include <stdio.h>
#include <stdlib.h>

#include <string.h>

#include "ntm-as.h"

static int
device_revoke(struct as *as, struct cmd_call *c)
{
	const char *fqdn = c->pos[0];
	int n;

	if (!ntm_valid_dnsname(fqdn) || strchr(fqdn, '.') == NULL) {
		as_errx("device revoke: '%s' is not a device FQDN", fqdn);
		return EXIT_USAGE;
	}
	if (as_open_db(as, 1) != EXIT_OK)
		return EXIT_FAIL;
	if ((n = as_db_device_revoke(as->db, fqdn, now_unix())) == NTM_ERR_NOTFOUND) {
		as_errx("no device '%s' was certified here", fqdn);
		return EXIT_FAIL;
	}
	if (n < 0)
		return as_db_failed(as, "cannot revoke the device");
	printf("device %s revoked: %d token%s queued for the servers\n", fqdn, n,
	    n == 1 ? "" : "s");
	return EXIT_OK;
}

AS_EXEC(device_revoke)

static const struct cmd_entry device_revoke_entry = {
	.name = "revoke",
	.summary = "revoke a device: its sessions end, it renews no more without the password",
	.usage = "FQDN",
	.takes = "",
	.min = 1,
	.max = 1,
	.missing = "missing FQDN (usage: device revoke FQDN)",
	.exec = device_revoke_exec,
};

static const struct cmd_entry *const device_subs[] = {
	&device_revoke_entry, NULL
};

static const struct cmd_opt device_opts[] = {
	SRV_OPT_HELP,
	SRV_OPT_END
};

const struct cmd_entry as_device_entry = {
	.name = "device",
	.summary = "revoke a device (its certificate and tokens)",
	.usage = "revoke FQDN",
	.opts = device_opts,
	.subs = device_subs,
	.flags = CMD_SUBOPTS_STRICT,
	.missing = "missing command (revoke)",
};
