/*
 * xunwrap - test tool: tries to unwrap the shared key of a key exchange
 * object (docs/protocol.md §8.1) from what one party holds, the way an
 * attacker with that party's data would. Used by the bats suites to show
 * that what a DC stores does not open the key object, and what the
 * recipient's device holds does.
 *
 *   xunwrap --obj FILE --tkey B64 --kid HEX --from FQDN --to FQDN [--xsk FILE]
 *
 * --tkey is the temporal key as a DC stores it. Without --xsk it is used as
 * the temporal key itself (32 bytes); with --xsk (an exchange key file, as
 * STATE_DIR/exchange.key) it is first opened as a sealed temporal key.
 * Prints the shared key (base64url) and exits 0 when it unwraps; prints why
 * not and exits 1 otherwise; 2 on bad arguments.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ntm.h"
#include "xchg.h"

int
main(int argc, char *argv[])
{
	static const struct option lo[] = {
		{ "obj", required_argument, NULL, 'o' },
		{ "tkey", required_argument, NULL, 't' },
		{ "kid", required_argument, NULL, 'k' },
		{ "from", required_argument, NULL, 'f' },
		{ "to", required_argument, NULL, 'r' },
		{ "xsk", required_argument, NULL, 'x' },
		{ NULL, 0, NULL, 0 }
	};
	const char *objf = NULL, *tk = NULL, *kid = NULL, *from = NULL, *to = NULL, *xskf = NULL;
	uint8_t raw[NTM_XTKEY_SEALED_LEN + 16], tkey[NTM_KEY_LEN], id[NTM_XKEY_ID];
	uint8_t xpk[NTM_XPK_LEN], xsk[NTM_XSK_LEN], shared[NTM_KEY_LEN];
	char out[NTM_B64_LEN(NTM_KEY_LEN)], *obj = NULL;
	size_t objlen = 0;
	long n;
	int c, ret = 2;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'o': objf = optarg; break;
		case 't': tk = optarg; break;
		case 'k': kid = optarg; break;
		case 'f': from = optarg; break;
		case 'r': to = optarg; break;
		case 'x': xskf = optarg; break;
		default: return 2;
		}
	}
	if (!objf || !tk || !kid || !from || !to || ntm_crypto_init() < 0 ||
	    ntm_hex_decode_exact(id, sizeof(id), kid) != NTM_XKEY_ID ||
	    ntm_file_read(objf, 4096, &obj, &objlen) < 0) {
		fprintf(stderr, "xunwrap: bad arguments\n");
		return 2;
	}
	if ((n = ntm_b64_decode(raw, sizeof(raw), tk)) < 0) {
		fprintf(stderr, "xunwrap: --tkey is not base64url\n");
		goto out;
	}
	if (xskf) {
		if (ntm_key_load(xskf, xsk, sizeof(xsk)) < 0 || ntm_xpk_of(xpk, xsk) < 0) {
			fprintf(stderr, "xunwrap: cannot read %s\n", xskf);
			goto out;
		}
		if (ntm_xtkey_open(tkey, raw, (size_t)n, xpk, xsk) < 0) {
			printf("the stored temporal key does not open with this exchange key\n");
			ret = 1;
			goto out;
		}
	} else if (n == NTM_KEY_LEN)
		memcpy(tkey, raw, sizeof(tkey));
	else {
		printf("the stored temporal key is %ld bytes, not a %d-byte key: it is sealed\n",
		    n, NTM_KEY_LEN);
		ret = 1;
		goto out;
	}
	ret = 1;
	if (ntm_xkey_unwrap(shared, (const uint8_t *)obj, objlen, tkey, id, from, to) < 0)
		printf("the key object does not unwrap\n");
	else if (ntm_b64_encode(out, sizeof(out), shared, sizeof(shared)) < 0)
		ret = 2;
	else {
		printf("%s\n", out);
		ret = 0;
	}
out:
	free(obj);
	return ret;
}
