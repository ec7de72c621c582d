/*
 * identity.c - this device's key and certificate, the AS key the profile
 * trusts, and the peers' device keys remembered per FQDN (identity.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "common.h"
#include "identity.h"

int
id_device_keypair(const struct cli *cli, uint8_t pk[NTM_DEVKEY_LEN],
    uint8_t sk[NTM_DEVKEY_LEN], int create)
{
	char *path = cli_state_path(cli, ID_DEVICE_KEY_FILE);
	int ret;

	if ((ret = ntm_key_load(path, sk, NTM_DEVKEY_LEN)) == NTM_ERR_NOTFOUND && create) {
		ntm_random(sk, NTM_DEVKEY_LEN);
		ret = ntm_key_save(path, sk, NTM_DEVKEY_LEN);
	}
	if (ret == 0 && crypto_scalarmult_base(pk, sk) != 0)
		ret = NTM_ERR_INVAL;
	free(path);
	if (ret < 0)
		ntm_wipe(sk, NTM_DEVKEY_LEN);
	return ret;
}

int
id_as_key(const struct cli *cli, uint8_t pk[NTM_SIGN_PK], int *pinned)
{
	char *path;
	int ret;

	*pinned = 0;
	if (cli->conf.as_key) {
		if (ntm_b64_decode_exact(pk, NTM_SIGN_PK, cli->conf.as_key) < 0)
			return NTM_ERR_INVAL;
		return 0;
	}
	path = cli_state_path(cli, ID_AS_KEY_FILE);
	ret = ntm_key_load(path, pk, NTM_SIGN_PK);
	free(path);
	*pinned = ret == 0;
	return ret;
}

int
id_as_pin(const struct cli *cli, const uint8_t pk[NTM_SIGN_PK])
{
	char *path = cli_state_path(cli, ID_AS_KEY_FILE);
	int ret = ntm_key_save(path, pk, NTM_SIGN_PK);

	free(path);
	return ret;
}

int
id_cert_save(const struct cli *cli, const char *b64)
{
	char *path = cli_state_path(cli, ID_DEVICE_CERT_FILE), *text;
	int ret;

	text = xasprintf("%s\n", b64);
	ret = ntm_file_write(path, text, strlen(text), 0600);
	free(text);
	free(path);
	return ret;
}

void
id_summary(const struct cli *cli, char fp[NTM_DFP_LEN], char as_b64[NTM_B64_LEN(NTM_SIGN_PK)],
    int *pinned)
{
	char *path = cli_state_path(cli, ID_DEVICE_CERT_FILE), *text = NULL;
	uint8_t pk[NTM_SIGN_PK];
	struct ntm_dcert c;
	size_t len;

	fp[0] = as_b64[0] = '\0';
	if (ntm_file_read(path, 4096, &text, &len) == 0) {
		text[strcspn(text, "\n")] = '\0';
		if (ntm_dcert_from_b64(&c, text) == 0)
			ntm_dkey_fingerprint(fp, c.fqdn, c.pk);
	}
	free(text);
	free(path);
	if (id_as_key(cli, pk, pinned) == 0 &&
	    ntm_b64_encode(as_b64, NTM_B64_LEN(NTM_SIGN_PK), pk, sizeof(pk)) < 0)
		as_b64[0] = '\0';
}

/* ---- known devices: one line per FQDN --------------------------------------
 *   FQDN SP KEY(b64url) SP NOT_BEFORE SP SERIAL SP FIRST_SEEN LF          */

static int
known_parse(char *line, struct id_known *k)
{
	char fqdn[NTM_NAME_MAX + 1], key[64];
	long long nb, first;
	unsigned long long serial;

	memset(k, 0, sizeof(*k));
	if (sscanf(line, "%253s %63s %lld %llu %lld", fqdn, key, &nb, &serial, &first) != 5 ||
	    !ntm_valid_dnsname(fqdn) || ntm_b64_decode_exact(k->pk, sizeof(k->pk), key) < 0)
		return -1;
	snprintf(k->fqdn, sizeof(k->fqdn), "%s", fqdn);
	k->not_before = nb;
	k->serial = serial;
	k->first_seen = first;
	return 0;
}

/* Every entry of the file into *out (new, free()); *n of them. */
static int
known_load(const struct cli *cli, struct id_known **out, size_t *n)
{
	char *path = cli_state_path(cli, ID_KNOWN_FILE), *text = NULL, *line, *save;
	struct id_known *v = NULL;
	size_t len = 0, cap = 0;
	int ret;

	*out = NULL;
	*n = 0;
	ret = ntm_file_read(path, (size_t)ID_KNOWN_MAX * 400, &text, &len);
	free(path);
	if (ret == NTM_ERR_NOTFOUND || (ret < 0 && errno == ENOENT))
		return 0;
	if (ret < 0)
		return ret;
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (*n == cap) {
			cap = cap ? 2 * cap : 16;
			if ((v = realloc(*out, cap * sizeof(*v))) == NULL) {
				free(text);
				return NTM_ERR_NOMEM;
			}
			*out = v;
		}
		if (known_parse(line, &(*out)[*n]) == 0)
			(*n)++;
	}
	free(text);
	return 0;
}

static int
known_store(const struct cli *cli, const struct id_known *v, size_t n)
{
	struct ntm_buf b;
	char key[NTM_B64_LEN(NTM_DEVKEY_LEN)], *path;
	int ret = 0;

	ntm_buf_init(&b, (size_t)ID_KNOWN_MAX * 400);
	for (size_t i = 0; i < n && ret == 0; i++) {
		if (ntm_b64_encode(key, sizeof(key), v[i].pk, sizeof(v[i].pk)) < 0)
			continue;
		ret = ntm_buf_printf(&b, "%s %s %lld %llu %lld\n", v[i].fqdn, key,
		    (long long)v[i].not_before, (unsigned long long)v[i].serial,
		    (long long)v[i].first_seen);
	}
	if (ret == 0) {
		path = cli_state_path(cli, ID_KNOWN_FILE);
		ret = ntm_file_write(path, b.data ? (const char *)b.data : "", b.len, 0600);
		free(path);
	}
	ntm_buf_free(&b);
	return ret;
}

int
id_known_get(const struct cli *cli, const char *fqdn, struct id_known *out)
{
	struct id_known *v;
	size_t n;
	int ret;

	if ((ret = known_load(cli, &v, &n)) < 0)
		return ret;
	ret = NTM_ERR_NOTFOUND;
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].fqdn, fqdn) == 0) {
			*out = v[i];
			ret = 0;
		}
	free(v);
	return ret;
}

int
id_known_check(const struct cli *cli, const struct ntm_dcert *c, int64_t now,
    struct id_known *old)
{
	struct id_known *v, *k = NULL, *nv;
	size_t n;
	int ret;

	if ((ret = known_load(cli, &v, &n)) < 0)
		return ret;
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].fqdn, c->fqdn) == 0)
			k = &v[i];
	if (k && ntm_memcmp(k->pk, c->pk, sizeof(k->pk)) == 0) {
		ret = ID_SAME;
		if (c->serial > k->serial) {
			k->not_before = c->not_before;
			k->serial = c->serial;
			(void)known_store(cli, v, n);	/* only a newer date */
		}
		free(v);
		return ret;
	}
	if (k) {
		*old = *k;
		/* Only a certificate issued after the one we know (the AS
		 * numbers them in order) may bring another key: an older one,
		 * played back by a server, may not. */
		if (c->serial <= k->serial) {
			free(v);
			return NTM_ERR_IDENTITY;
		}
		memcpy(k->pk, c->pk, sizeof(k->pk));
		k->not_before = c->not_before;
		k->serial = c->serial;
		k->first_seen = now;
		ret = ID_CHANGED;
	} else {
		if (n >= ID_KNOWN_MAX) {
			free(v);
			return NTM_ERR_NOSPACE;
		}
		if ((nv = realloc(v, (n + 1) * sizeof(*v))) == NULL) {
			free(v);
			return NTM_ERR_NOMEM;
		}
		v = nv;
		k = &v[n++];
		memset(k, 0, sizeof(*k));
		snprintf(k->fqdn, sizeof(k->fqdn), "%s", c->fqdn);
		memcpy(k->pk, c->pk, sizeof(k->pk));
		k->not_before = c->not_before;
		k->serial = c->serial;
		k->first_seen = now;
		ret = ID_NEW;
	}
	if (known_store(cli, v, n) < 0)
		ret = NTM_ERR_IO;
	free(v);
	return ret;
}
