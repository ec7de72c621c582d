/* test_crypto.c - libsodium wrappers and key files. */
#include <sys/stat.h>

#include <malloc.h>
#include <stdlib.h>
#include <unistd.h>

#include <sodium.h>

#include "ntm.h"
#include "unit.h"

static char tmpdir[64];

static void
setup(void)
{
	if (tmpdir[0] == '\0') {
		snprintf(tmpdir, sizeof(tmpdir), "/tmp/ntm-test-crypto.XXXXXX");
		if (mkdtemp(tmpdir) == NULL)
			abort();
	}
}

TEST(hash)
{
	uint8_t h[NTM_HASH_LEN];
	char hex[2 * NTM_HASH_LEN + 1];

	ntm_hash(h, "abc", 3);
	CHECK_EQ(ntm_hex_encode(hex, sizeof(hex), h, sizeof(h)), 64);
	CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(sign)
{
	uint8_t pk[NTM_SIGN_PK], pk2[NTM_SIGN_PK], sk[NTM_SIGN_SK], sig[NTM_SIG_LEN];

	CHECK_EQ(ntm_sign_keypair(pk, sk), 0);
	ntm_sign_pk(pk2, sk);
	CHECK(memcmp(pk, pk2, sizeof(pk)) == 0);
	ntm_sign(sig, "msg", 3, sk);
	CHECK_EQ(ntm_sign_verify(sig, "msg", 3, pk), 0);
	CHECK_EQ(ntm_sign_verify(sig, "msh", 3, pk), NTM_ERR_CRYPTO);
	sig[0] ^= 1;
	CHECK_EQ(ntm_sign_verify(sig, "msg", 3, pk), NTM_ERR_CRYPTO);
}

TEST(kx_aead)
{
	uint8_t cpk[NTM_KX_PK], csk[NTM_KX_SK], spk[NTM_KX_PK], ssk[NTM_KX_SK];
	uint8_t crx[NTM_KEY_LEN], ctx[NTM_KEY_LEN], srx[NTM_KEY_LEN], stx[NTM_KEY_LEN];
	uint8_t nonce[NTM_AEAD_NONCE] = { 1 }, zero[NTM_KX_PK] = { 0 };
	uint8_t c[5 + NTM_AEAD_TAG], m[5];

	CHECK_EQ(ntm_kx_keypair(cpk, csk), 0);
	CHECK_EQ(ntm_kx_keypair(spk, ssk), 0);
	CHECK_EQ(ntm_kx_session(crx, ctx, 1, cpk, csk, spk), 0);
	CHECK_EQ(ntm_kx_session(srx, stx, 0, spk, ssk, cpk), 0);
	CHECK(memcmp(ctx, srx, NTM_KEY_LEN) == 0);
	CHECK(memcmp(crx, stx, NTM_KEY_LEN) == 0);
	CHECK(memcmp(crx, ctx, NTM_KEY_LEN) != 0);
	/* A low-order peer key fails and leaves zeroed keys. */
	{
		uint8_t brx[NTM_KEY_LEN], btx[NTM_KEY_LEN];

		CHECK_EQ(ntm_kx_session(brx, btx, 1, cpk, csk, zero), NTM_ERR_CRYPTO);
		CHECK(brx[0] == 0 && btx[NTM_KEY_LEN - 1] == 0);
	}

	ntm_aead_seal(c, "hello", 5, "ad", 2, nonce, stx);
	CHECK_EQ(ntm_aead_open(m, c, sizeof(c), "ad", 2, nonce, crx), 0);
	CHECK(memcmp(m, "hello", 5) == 0);
	CHECK_EQ(ntm_aead_open(m, c, sizeof(c), "ae", 2, nonce, crx), NTM_ERR_CRYPTO);
	c[0] ^= 1;
	CHECK_EQ(ntm_aead_open(m, c, sizeof(c), "ad", 2, nonce, crx), NTM_ERR_CRYPTO);
	CHECK_EQ(ntm_aead_open(m, c, NTM_AEAD_TAG - 1, "ad", 2, nonce, crx),
	    NTM_ERR_CRYPTO);
}

TEST(memcmp_wipe)
{
	uint8_t a[4] = { 1, 2, 3, 4 }, b[4] = { 1, 2, 3, 4 };

	CHECK_EQ(ntm_memcmp(a, b, 4), 0);
	b[3] = 5;
	CHECK(ntm_memcmp(a, b, 4) != 0);
	ntm_wipe(a, sizeof(a));
	CHECK(a[0] == 0 && a[3] == 0);
	ntm_wipe(NULL, 0);
}

TEST(pwhash)
{
	char str[NTM_PWHASH_STR];

	setenv("NTM_PWHASH_FAST", "1", 1);
	CHECK_EQ(ntm_pwhash(str, "secret", 6), 0);
	CHECK(strncmp(str, "$argon2id$", 10) == 0);
	CHECK_EQ(ntm_pwhash_verify(str, "secret", 6), 0);
	CHECK_EQ(ntm_pwhash_verify(str, "secreT", 6), NTM_ERR_BADPASS);
	CHECK_EQ(ntm_pwhash_verify(str, "secret", 5), NTM_ERR_BADPASS);
	CHECK_EQ(ntm_pwhash_verify("garbage", "secret", 6), NTM_ERR_BADPASS);
}

TEST(keyfile)
{
	char path[128], bad[128];
	uint8_t key[32], got[32];
	struct stat st;
	char *text = NULL;
	size_t len = 0;

	setup();
	snprintf(path, sizeof(path), "%s/k/e/y", tmpdir);
	CHECK_EQ(ntm_mkdirs(path, 0700), 0);
	CHECK_EQ(ntm_mkdirs(path, 0700), 0);	/* idempotent */
	snprintf(path, sizeof(path), "%s/k/e/y/sk", tmpdir);
	ntm_random(key, sizeof(key));
	CHECK_EQ(ntm_key_save(path, key, sizeof(key)), 0);
	CHECK_EQ(stat(path, &st), 0);
	CHECK_EQ(st.st_mode & 0777, 0600);
	CHECK_EQ(ntm_key_load(path, got, sizeof(got)), 0);
	CHECK(memcmp(key, got, sizeof(key)) == 0);
	CHECK_EQ(ntm_key_load(path, got, 31), NTM_ERR_INVAL);
	CHECK_EQ(ntm_file_read(path, 1024, &text, &len), 0);
	CHECK_EQ(len, 44);
	CHECK_EQ(text[43], '\n');
	free(text);
	CHECK_EQ(ntm_file_read(path, 43, &text, &len), NTM_ERR_TOOBIG);
	/* A small file under a large limit takes a small buffer (known_devices
	 * is read under 1.6 MB, ntm.conf under 1 MB). */
	CHECK_EQ(ntm_file_read(path, 1 << 20, &text, &len), 0);
	CHECK_EQ(len, 44);
	CHECK(malloc_usable_size(text) < 4096);
	free(text);
	/* A file longer than fstat says (size 0 in /proc): read whole, up
	 * to the limit, through a buffer that grows. */
	CHECK_EQ(ntm_file_read("/proc/self/status", 1 << 20, &text, &len), 0);
	CHECK(len > 100 && strlen(text) == len && strncmp(text, "Name:", 5) == 0 &&
	    strstr(text, "\nPid:") != NULL);
	free(text);
	CHECK_EQ(ntm_file_read("/proc/self/status", 100, &text, &len), NTM_ERR_TOOBIG);

	/* Group-readable keys are refused. */
	CHECK_EQ(chmod(path, 0640), 0);
	CHECK_EQ(ntm_key_load(path, got, sizeof(got)), NTM_ERR_INVAL);

	/* Malformed contents. */
	snprintf(bad, sizeof(bad), "%s/bad", tmpdir);
	CHECK_EQ(ntm_file_write(bad, "AAAA\n\n", 6, 0600), 0);
	CHECK_EQ(ntm_key_load(bad, got, 3), NTM_ERR_INVAL);
	CHECK_EQ(ntm_file_write(bad, "AAAA", 4, 0600), 0);
	CHECK_EQ(ntm_key_load(bad, got, 3), 0);
	CHECK_EQ(ntm_file_write(bad, "AAAA\n", 5, 0644), 0);
	CHECK_EQ(stat(bad, &st), 0);
	CHECK_EQ(st.st_mode & 0777, 0644);
	snprintf(bad, sizeof(bad), "%s/missing", tmpdir);
	CHECK_EQ(ntm_key_load(bad, got, 3), NTM_ERR_NOTFOUND);

	/* A private directory that already exists open to others is refused. */
	snprintf(bad, sizeof(bad), "%s/open", tmpdir);
	CHECK_EQ(ntm_mkdirs(bad, 0755), 0);
	CHECK_EQ(ntm_mkdirs(bad, 0700), NTM_ERR_INVAL);
	snprintf(bad, sizeof(bad), "%s/bad/x", tmpdir);	/* file in the way */
	CHECK(ntm_mkdirs(bad, 0700) < 0);
}

static void
cleanup_tmp(void)
{
	char cmd[128];

	if (tmpdir[0] != '\0') {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", tmpdir);
	}
}

TEST(init)
{
	CHECK_EQ(ntm_crypto_init(), 0);
	atexit(cleanup_tmp);
}

/* The bulk SHA-256 equals the one-shot one, however the data is split. */
TEST(sha256_stream)
{
	static uint8_t buf[200000];
	uint8_t a[NTM_HASH_LEN], b[NTM_HASH_LEN];
	struct ntm_sha256 h;
	size_t sizes[] = { 0, 1, 55, 56, 64, 1000, 65536, sizeof(buf) };

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 131 + 7);
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		size_t n = sizes[k], off = 0, step = 1;

		ntm_hash(a, buf, n);
		CHECK_EQ(ntm_sha256_init(&h), 0);
		while (off < n) {		/* pieces of 1, 2, 4 ... bytes */
			size_t m = n - off < step ? n - off : step;

			ntm_sha256_update(&h, buf + off, m);
			off += m;
			step *= 2;
		}
		CHECK_EQ(ntm_sha256_final(&h, b), 0);
		CHECK(memcmp(a, b, sizeof(a)) == 0);
		CHECK(h.ctx == NULL);
	}
	/* "abc": FIPS 180-2 */
	CHECK_EQ(ntm_sha256_init(&h), 0);
	ntm_sha256_update(&h, "abc", 3);
	CHECK_EQ(ntm_sha256_final(&h, b), 0);
	CHECK_EQ(b[0], 0xba);
	CHECK_EQ(b[31], 0xad);
	/* free without final, twice */
	CHECK_EQ(ntm_sha256_init(&h), 0);
	ntm_sha256_free(&h);
	ntm_sha256_free(&h);
	CHECK_EQ(ntm_sha256_final(&h, b), NTM_ERR_NOMEM);
}

/* A login sealed to the AS key: opens with that key only, whole, with
 * every field as sealed; altered or for another key, it does not. */
TEST(login_box)
{
	struct ntm_login_box b, o;
	uint8_t pk[NTM_SIGN_PK], sk[NTM_SIGN_SK], pk2[NTM_SIGN_PK], sk2[NTM_SIGN_SK];
	char box[NTM_B64_LEN(NTM_LOGIN_SEALED_MAX)];

	CHECK_EQ(ntm_crypto_init(), 0);
	CHECK_EQ(ntm_sign_keypair(pk, sk), 0);
	CHECK_EQ(ntm_sign_keypair(pk2, sk2), 0);
	memset(&b, 0, sizeof(b));
	snprintf(b.user, sizeof(b.user), "alice");
	snprintf(b.device, sizeof(b.device), "laptop-1");
	snprintf(b.dc, sizeof(b.dc), "dc1.ntm.test");
	b.time = 1700000000;
	memset(b.nonce, 7, sizeof(b.nonce));
	memset(b.device_key, 0x5d, sizeof(b.device_key));
	snprintf(b.password, sizeof(b.password), "correct horse");
	CHECK(ntm_login_seal(box, sizeof(box), &b, pk) > 0);
	CHECK(strstr(box, "correct") == NULL);
	CHECK_EQ(ntm_login_open(&o, box, sk), 0);
	CHECK_STR(o.user, "alice");
	CHECK_STR(o.device, "laptop-1");
	CHECK_STR(o.dc, "dc1.ntm.test");
	CHECK_STR(o.password, "correct horse");
	CHECK_EQ(o.time, 1700000000);
	CHECK(memcmp(o.nonce, b.nonce, sizeof(b.nonce)) == 0);
	CHECK(memcmp(o.device_key, b.device_key, sizeof(b.device_key)) == 0);
	CHECK_EQ(ntm_login_open(&o, box, sk2), NTM_ERR_CRYPTO);	/* another AS */
	CHECK_EQ(o.password[0], 0);
	box[10] = box[10] == 'A' ? 'B' : 'A';				/* altered */
	CHECK_EQ(ntm_login_open(&o, box, sk), NTM_ERR_CRYPTO);
	CHECK_EQ(ntm_login_open(&o, "AAAA", sk), NTM_ERR_INVAL);
	CHECK_EQ(ntm_login_open(&o, NULL, sk), NTM_ERR_INVAL);
	b.password[0] = '\0';						/* nothing to seal */
	CHECK_EQ(ntm_login_seal(box, sizeof(box), &b, pk), NTM_ERR_INVAL);
	snprintf(b.password, sizeof(b.password), "pw");
	snprintf(b.user, sizeof(b.user), "Alice");			/* not a user name */
	CHECK_EQ(ntm_login_seal(box, sizeof(box), &b, pk), NTM_ERR_INVAL);
}

/* A renewal: no password, a proof of the device key that only its holder
 * (or the AS) can make. */
TEST(login_renew)
{
	struct ntm_login_box b, o;
	uint8_t pk[NTM_SIGN_PK], sk[NTM_SIGN_SK], pk2[NTM_SIGN_PK], sk2[NTM_SIGN_SK];
	uint8_t dsk[NTM_DEVKEY_LEN], dsk2[NTM_DEVKEY_LEN];
	char box[NTM_B64_LEN(NTM_LOGIN_SEALED_MAX)];

	CHECK_EQ(ntm_crypto_init(), 0);
	CHECK_EQ(ntm_sign_keypair(pk, sk), 0);
	CHECK_EQ(ntm_sign_keypair(pk2, sk2), 0);
	memset(&b, 0, sizeof(b));
	snprintf(b.user, sizeof(b.user), "alice");
	snprintf(b.device, sizeof(b.device), "laptop-1");
	snprintf(b.dc, sizeof(b.dc), "dc1.ntm.test");
	b.time = 1700000000;
	memset(b.nonce, 7, sizeof(b.nonce));
	memset(dsk, 0x31, sizeof(dsk));
	memset(dsk2, 0x32, sizeof(dsk2));
	CHECK_EQ(crypto_scalarmult_base(b.device_key, dsk), 0);
	CHECK(ntm_login_seal_renew(box, sizeof(box), &b, pk, dsk) > 0);
	CHECK_EQ(ntm_login_open(&o, box, sk), 0);
	CHECK_EQ(o.renew, 1);
	CHECK_EQ(o.password[0], 0);
	CHECK_STR(o.user, "alice");
	CHECK(memcmp(o.device_key, b.device_key, sizeof(b.device_key)) == 0);
	CHECK_EQ(ntm_login_open(&o, box, sk2), NTM_ERR_CRYPTO);	/* another AS */
	/* Another device's secret for this device's key: the proof is wrong. */
	CHECK(ntm_login_seal_renew(box, sizeof(box), &b, pk, dsk2) > 0);
	CHECK_EQ(ntm_login_open(&o, box, sk), NTM_ERR_CRYPTO);
	CHECK_EQ(o.renew, 0);
	/* A password box is no renewal; a renewal carries no password. */
	snprintf(b.password, sizeof(b.password), "pw");
	CHECK(ntm_login_seal(box, sizeof(box), &b, pk) > 0);
	CHECK_EQ(ntm_login_open(&o, box, sk), 0);
	CHECK_EQ(o.renew, 0);
	CHECK_EQ(ntm_login_seal_renew(box, sizeof(box), &b, pk, dsk), NTM_ERR_INVAL);
	CHECK_EQ(ntm_login_seal_renew(box, sizeof(box), &b, pk, NULL), NTM_ERR_INVAL);
}

UNIT_MAIN(T(sha256_stream), T(init), T(login_box), T(login_renew), T(hash), T(sign), T(kx_aead),
    T(memcmp_wipe), T(pwhash), T(keyfile))
