/*
 * sealogin - test tool: seals a login to the AS key the way `ntm login`
 * does (docs/protocol.md §3.1) and prints the b64 box, so the bats suites
 * can present it to the AS as a DC would: once, twice (a replay), from
 * another DC (re-targeted), late (stale).
 *
 *   sealogin --as-key B64 --user USER --device ID --dc DOMAIN
 *            [--time-offset SEC] < PASSWORD
 *
 * Exits 0 and prints the box; 2 on bad arguments.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ntm.h"

int
main(int argc, char *argv[])
{
	static const struct option lo[] = {
		{ "as-key", required_argument, NULL, 'a' },
		{ "user", required_argument, NULL, 'u' },
		{ "device", required_argument, NULL, 'd' },
		{ "dc", required_argument, NULL, 'c' },
		{ "time-offset", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 }
	};
	struct ntm_login_box b;
	uint8_t as_pk[NTM_SIGN_PK];
	char out[NTM_B64_LEN(NTM_LOGIN_SEALED_MAX)];
	const char *ak = NULL;
	long off = 0;
	int c;

	memset(&b, 0, sizeof(b));
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'a': ak = optarg; break;
		case 'u': snprintf(b.user, sizeof(b.user), "%s", optarg); break;
		case 'd': snprintf(b.device, sizeof(b.device), "%s", optarg); break;
		case 'c': snprintf(b.dc, sizeof(b.dc), "%s", optarg); break;
		case 't': off = atol(optarg); break;
		default: return 2;
		}
	}
	if (ak == NULL || ntm_b64_decode_exact(as_pk, sizeof(as_pk), ak) < 0 ||
	    fgets(b.password, sizeof(b.password), stdin) == NULL || ntm_crypto_init() < 0) {
		fprintf(stderr, "usage: sealogin --as-key B64 --user USER --device ID --dc DOMAIN "
		    "[--time-offset SEC] < PASSWORD\n");
		return 2;
	}
	b.password[strcspn(b.password, "\n")] = '\0';
	b.time = (int64_t)time(NULL) + off;
	ntm_random(b.nonce, sizeof(b.nonce));
	ntm_random(b.device_key, sizeof(b.device_key));
	if (ntm_login_seal(out, sizeof(out), &b, as_pk) < 0) {
		fprintf(stderr, "sealogin: cannot seal (bad user, device, dc or password)\n");
		return 2;
	}
	puts(out);
	return 0;
}
