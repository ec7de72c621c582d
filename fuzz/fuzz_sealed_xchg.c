/*
 * fuzz_sealed_xchg.c - libFuzzer harness for what the non-real-time path
 * (docs/protocol.md §8, §3.1) keeps behind its AEADs: the input is
 * PLAINTEXT, sealed with the test keys as the sender would, so mutations
 * reach the code after the tag check. The first byte picks the target:
 *
 *   0  a data object (what `ntm fetch` opens, cmd/ntm/fetch.c): its header
 *      made for 1 to 3 recipients (ours among them, maybe under one of our
 *      old key ids), then messages whose plaintexts and secretstream tags
 *      the input chooses (u8 flags, u16 length, bytes: the tag, and for the
 *      first one whether it is bound to the header hash). The whole object
 *      goes through fetch.c's own opener (open_sink, step, take_meta) in
 *      pieces whose size the second byte sets, with OpenSSL's AEAD
 *      installed as ntm installs it (lib/io/xaead.c): what libsodium
 *      sealed, OpenSSL opens. Checked: what the opener
 *      finishes is what was sealed (metadata first, the rest written in
 *      order, FINAL last); a well-formed object always opens.
 *   1  a temporal key sealed to our exchange key (crypto_box_seal, any
 *      length): it opens only at the key's length, to those bytes.
 *   2  a login sealed to the AS (§3.1; lib/core/crypto.c ntm_login_open):
 *      what opens names a valid user, device and DC.
 *
 * fetch.c is included to reach its static opener; the rest of the CLI it
 * calls (HTTP, the key store, output) is never reached here: stand-ins
 * below abort.
 *
 * Sources: cmd/common/misc.c cmd/common/log.c
 * Includes: cmd/ntm
 */
#include "../cmd/ntm/fetch.c"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- stand-ins for the CLI around the opener ------------------------------ */

void cli_err(const char *cmd, const char *fmt, ...) { abort(); }
void cli_print_json(json_t *j) { abort(); }
int cli_state_prepare(const struct cli *cli, const char *cmd) { abort(); }
int xctx_open(struct xctx *x, struct cli *cli, const char *cmd, long timeout_s) { abort(); }
void xctx_close(struct xctx *x) { abort(); }
int x_valid_peer(struct xctx *x, const char *s, const char *what) { abort(); }
int x_call(struct xctx *x, const char *base, const char *method, const char *path,
    json_t *body, long want, json_t **out) { abort(); }
json_t *x_msg(struct xctx *x, const struct ntm_jmsg *m, const void *in) { abort(); }
int x_exchange_keypair(const struct cli *cli, uint8_t pk[NTM_XPK_LEN],
    uint8_t sk[NTM_XSK_LEN], int create) { abort(); }
int x_cs_download(struct xctx *x, const char *base, const char *sha256, uint64_t size,
    x_sink_fn *fn, void *arg) { abort(); }
int xkey_load(const struct cli *cli, const char *peer, struct xkey *k) { abort(); }
int xkey_save(const struct cli *cli, const struct xkey *k) { abort(); }
void xkey_replace(struct xkey *k, const struct xkey *prev, int64_t before) { abort(); }
int xkey_entries_left(struct xkey *k, int64_t oldest) { abort(); }
int xkey_each(const struct cli *cli, int (*fn)(const struct xkey *k, void *arg), void *arg)
{ abort(); }
json_t *xkey_json(const struct xkey *k) { abort(); }

static int out_fd = -1;
static struct xkey our;
static uint8_t xpk[NTM_XPK_LEN], xsk[NTM_XSK_LEN];
static uint8_t as_pk[NTM_SIGN_PK], as_sk[NTM_SIGN_SK];

static void
setup(void)
{
	uint8_t seed[32];

	if (ntm_crypto_init() < 0 || (out_fd = memfd_create("fuzz", 0)) < 0)
		abort();
	/* As ntm does: messages of a multiple of 16 bytes open with OpenSSL's
	 * AEAD, while they are sealed here with libsodium's own push. */
	ntm_xaead_openssl();
	memset(our.key_id, 0x11, sizeof(our.key_id));
	memset(our.key, 0x22, sizeof(our.key));
	our.nold = 1;
	memset(our.old[0].key_id, 0x33, sizeof(our.old[0].key_id));
	memset(our.old[0].key, 0x44, sizeof(our.old[0].key));
	memset(xsk, 0x55, sizeof(xsk));
	if (ntm_xpk_of(xpk, xsk) < 0)
		abort();
	memset(seed, 0x66, sizeof(seed));
	crypto_sign_seed_keypair(as_pk, as_sk, seed);
}

/* ---- 0: the data object ---------------------------------------------------- */

/* take_meta's test: JSON with a string "name" */
static int
meta_ok(const uint8_t *p, size_t n)
{
	struct ntm_jerr je;
	json_t *j = ntm_json_parse(p, n, &je);
	int ok = json_is_string(json_object_get(j, "name"));

	json_decref(j);
	return ok;
}

#define OBJ_MAX	(NTM_XDATA_HDR_MAX + 64 * 1024)
#define MSGS_MAX 64

static void
data_object(const uint8_t *d, size_t n)
{
	static uint8_t obj[OBJ_MAX], plain[OBJ_MAX], got[OBJ_MAX];
	static struct opener op;
	uint8_t ids[3][NTM_XKEY_ID], keys[3][NTM_KEY_LEN];
	struct ntm_xseal s;
	size_t off, piece, plen = 0, mlen[MSGS_MAX];
	unsigned long long clen;
	int nrcpt, h, nmsg = 0, wellformed = 1, r = 0, bound;
	uint8_t tags[MSGS_MAX];
	char name[256];

	if (n < 2)
		return;
	nrcpt = 1 + d[0] % 3;
	piece = 1 + (size_t)d[1] * 17;
	for (int i = 0; i < nrcpt; i++) {
		memset(ids[i], 0x70 + i, sizeof(ids[i]));
		memset(keys[i], 0x80 + i, sizeof(keys[i]));
	}
	/* ours: the current key, or an old one; the last recipient */
	memcpy(ids[nrcpt - 1], d[0] & 0x80 ? our.old[0].key_id : our.key_id, NTM_XKEY_ID);
	memcpy(keys[nrcpt - 1], d[0] & 0x80 ? our.old[0].key : our.key, NTM_KEY_LEN);
	d += 2;
	n -= 2;
	if ((h = ntm_xseal_init(&s, obj, sizeof(obj), nrcpt, (const uint8_t (*)[NTM_XKEY_ID])ids,
	    (const uint8_t (*)[NTM_KEY_LEN])keys)) < 0)
		abort();
	off = (size_t)h;
	while (n >= 3 && nmsg < MSGS_MAX) {
		uint8_t flags = d[0], tag;
		size_t len = ((size_t)d[1] << 8 | d[2]) % 2048;

		d += 3;
		n -= 3;
		if (len > n)
			len = n;
		if (off + 4 + len + NTM_XDATA_ABYTES > sizeof(obj))
			break;
		tag = flags & 3;	/* MESSAGE, PUSH, REKEY, FINAL */
		/* the first bound to the header hash, the rest not; flag 4
		 * says otherwise */
		bound = (nmsg == 0) ^ !!(flags & 4);
		if (flags & 4)
			wellformed = 0;
		if (nmsg == 0 && !meta_ok(d, len))
			wellformed = 0;
		obj[off] = (uint8_t)((len + NTM_XDATA_ABYTES) >> 24);
		obj[off + 1] = (uint8_t)((len + NTM_XDATA_ABYTES) >> 16);
		obj[off + 2] = (uint8_t)((len + NTM_XDATA_ABYTES) >> 8);
		obj[off + 3] = (uint8_t)(len + NTM_XDATA_ABYTES);
		crypto_secretstream_xchacha20poly1305_push(&s.st, obj + off + 4, &clen, d, len,
		    bound ? s.hdr_hash : NULL, bound ? sizeof(s.hdr_hash) : 0, tag);
		off += 4 + (size_t)clen;
		if (nmsg > 0) {
			memcpy(plain + plen, d, len);
			plen += len;
		}
		tags[nmsg] = tag;
		mlen[nmsg++] = len;
		d += len;
		n -= len;
	}
	ntm_xseal_wipe(&s);
	/* metadata, then data, the last one FINAL and only it */
	for (int i = 0; i < nmsg; i++)
		if (tags[i] != (i == nmsg - 1 ? 3 : 0))
			wellformed = 0;

	/* fetch.c's opener, as take_data sets it up */
	memset(&op, 0, sizeof(op));
	op.key = &our;
	op.fd = out_fd;
	op.state = S_HDR5;
	op.need = 5;
	if (ntm_sha256_init(&op.h) < 0)
		abort();
	if (ftruncate(out_fd, 0) < 0 || lseek(out_fd, 0, SEEK_SET) < 0)
		abort();
	for (size_t o = 0; o < off && r == 0; o += piece)
		r = open_sink(obj + o, off - o < piece ? off - o : piece, &op);

	if (r == 0 && op.state == S_DONE) {
		/* it opened: every message as sealed, FINAL last and only last */
		if (nmsg < 2 || tags[nmsg - 1] != 3 || op.nmsg != nmsg ||
		    op.written != plen || lseek(out_fd, 0, SEEK_SET) < 0 ||
		    read(out_fd, got, plen) != (ssize_t)plen || memcmp(got, plain, plen) != 0)
			abort();
		for (int i = 0; i < nmsg - 1; i++)
			if (tags[i] == 3)
				abort();
	}
	/* a well-formed object with good metadata always opens, whichever
	 * AEAD opens each message */
	if (wellformed && nmsg >= 2 && (r != 0 || op.state != S_DONE))
		abort();
	if (r != 0 && op.why == NULL)
		abort();
	/* the opener stops at FINAL: anything after it is refused */
	if (op.state == S_DONE && r != 0 && strcmp(op.why, "bytes after the last message") != 0)
		abort();
	if (op.state == S_DONE || op.nmsg > 0) {
		/* the name a file is placed under: one component, printable */
		safe_name(name, sizeof(name), op.name, "0123456789abcdef0123");
		if (name[0] == '\0' || name[0] == '.' || strchr(name, '/') != NULL)
			abort();
		for (size_t i = 0; name[i]; i++)
			if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
				abort();
	}
	(void)mlen;
	ntm_sha256_free(&op.h);
	ntm_xopen_wipe(&op.xo);
}

/* ---- 1: a sealed temporal key ---------------------------------------------- */

static void
tkey(const uint8_t *d, size_t n)
{
	uint8_t sealed[crypto_box_SEALBYTES + 256], k[NTM_KEY_LEN];
	int r;

	if (n > 256)
		n = 256;
	if (crypto_box_seal(sealed, d, n, xpk) != 0)
		abort();
	r = ntm_xtkey_open(k, sealed, n + crypto_box_SEALBYTES, xpk, xsk);
	if ((r == 0) != (n == NTM_KEY_LEN) || (r == 0 && memcmp(k, d, n) != 0))
		abort();
}

/* ---- 2: a login sealed to the AS ------------------------------------------- */

/* A renewal (version 2) ends with a proof keyed with what only the device
 * and the AS can make: made good here, as the device would, from the
 * device key the box names (after three names, the time and the nonce). */
static void
renew_proof(uint8_t *p, size_t n)
{
	uint8_t axsk[32], shared[32], key[32];
	crypto_generichash_state st;
	size_t off = 1;

	for (int i = 0; i < 3 && off < n; i++)
		off += 1 + p[off];
	off += 8 + NTM_LOGIN_NONCE;
	if (off + NTM_DEVKEY_LEN + 32 > n)
		return;
	if (crypto_sign_ed25519_sk_to_curve25519(axsk, as_sk) != 0)
		abort();
	if (crypto_scalarmult(shared, axsk, p + off) != 0)
		return;		/* a low-order device key: no proof can be made */
	crypto_generichash_init(&st, NULL, 0, 32);
	crypto_generichash_update(&st, (const uint8_t *)"ntm-renew-v1", 12);
	crypto_generichash_update(&st, shared, sizeof(shared));
	crypto_generichash_final(&st, key, 32);
	crypto_generichash(p + n - 32, 32, p, n - 32, key, sizeof(key));
}

static void
login(const uint8_t *d, size_t n)
{
	static char b64[NTM_B64_LEN(NTM_LOGIN_SEALED_MAX) + 1];
	uint8_t sealed[NTM_LOGIN_SEALED_MAX], plain[NTM_LOGIN_SEALED_MAX], axpk[32];
	struct ntm_login_box b;

	if (n + crypto_box_SEALBYTES > sizeof(sealed))
		n = sizeof(sealed) - crypto_box_SEALBYTES;
	memcpy(plain, d, n);
	if (n > 0 && plain[0] == 2)
		renew_proof(plain, n);
	if (crypto_sign_ed25519_pk_to_curve25519(axpk, as_pk) != 0 ||
	    crypto_box_seal(sealed, plain, n, axpk) != 0 ||
	    ntm_b64_encode(b64, sizeof(b64), sealed, n + crypto_box_SEALBYTES) < 0)
		abort();
	if (ntm_login_open(&b, b64, as_sk) == 0 &&
	    (!ntm_valid_user(b.user) || !ntm_valid_device(b.device) ||
	    !ntm_valid_dnsname(b.dc)))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (out_fd < 0)
		setup();
	if (size < 1)
		return 0;
	switch (data[0] % 3) {
	case 0:
		data_object(data + 1, size - 1);
		break;
	case 1:
		tkey(data + 1, size - 1);
		break;
	default:
		login(data + 1, size - 1);
		break;
	}
	return 0;
}
