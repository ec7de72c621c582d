/*
 * identity.h - this device's identity and what it knows of its peers'
 * (docs/protocol.md §2.4, §4.3): the device key STATE_DIR/device.key
 * (X25519, 0600), its AS certificate STATE_DIR/device.cert, the AS key the
 * profile trusts (`as_key` in ntm.conf, else STATE_DIR/as.key pinned at
 * the first login), and the peers' device keys remembered per FQDN in
 * STATE_DIR/known_devices (key continuity).
 */
#ifndef NTM_IDENTITY_H
#define NTM_IDENTITY_H

#include <stdint.h>

#include "ntm-cli.h"

#define ID_DEVICE_KEY_FILE	"device.key"
#define ID_DEVICE_CERT_FILE	"device.cert"
#define ID_AS_KEY_FILE		"as.key"
#define ID_KNOWN_FILE		"known_devices"
#define ID_KNOWN_MAX		4096	/* peers remembered */

/* This device's key pair; made (and saved 0600) when create is set and
 * there is none. 0 or an NTM_ERR_* (sk wiped on failure). */
int  id_device_keypair(const struct cli *cli, uint8_t pk[NTM_DEVKEY_LEN],
    uint8_t sk[NTM_DEVKEY_LEN], int create);
/* The AS key the profile trusts: `as_key` in ntm.conf, else the pinned
 * one. *pinned tells which. 0, NTM_ERR_NOTFOUND (none yet) or an error. */
int  id_as_key(const struct cli *cli, uint8_t pk[NTM_SIGN_PK], int *pinned);
int  id_as_pin(const struct cli *cli, const uint8_t pk[NTM_SIGN_PK]);
int  id_cert_save(const struct cli *cli, const char *b64);
/* For ntm status: this device's key fingerprint (from its certificate,
 * "" if none) and the AS key the profile trusts (b64, "" if none; *pinned
 * as in id_as_key). */
void id_summary(const struct cli *cli, char fp[NTM_DFP_LEN],
    char as_b64[NTM_B64_LEN(NTM_SIGN_PK)], int *pinned);

/* What is remembered of a peer device. */
struct id_known {
	char		fqdn[NTM_NAME_MAX + 1];
	uint8_t		pk[NTM_DEVKEY_LEN];
	int64_t		not_before;		/* of the newest certificate seen */
	uint64_t	serial;
	int64_t		first_seen;
};
/* Key continuity for c (already checked against the AS key and the FQDN):
 * ID_NEW (first sight, remembered), ID_SAME, ID_CHANGED (another key with a
 * newer certificate, a larger serial: remembered, *old gets the previous),
 * or NTM_ERR_IDENTITY (another key whose certificate is not newer than the
 * one known: refused, *old gets the known one), or another NTM_ERR_*. */
enum { ID_SAME = 0, ID_NEW = 1, ID_CHANGED = 2 };
int  id_known_check(const struct cli *cli, const struct ntm_dcert *c, int64_t now,
    struct id_known *old);
/* The remembered key of fqdn: 0 or NTM_ERR_NOTFOUND. */
int  id_known_get(const struct cli *cli, const char *fqdn, struct id_known *out);

#endif
