/*
 * xchg.h - the end-to-end formats of the non-real-time path
 * (docs/protocol.md §8): the wrapped shared key of a key exchange, the
 * fingerprint two users compare, and the encrypted data object. I/O free:
 * the caller feeds bytes and writes what comes out.
 */
#ifndef NTM_XCHG_H
#define NTM_XCHG_H

#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

#include "ntm-core.h"

#define NTM_XKEY_ID		16	/* key id, bytes (hex on the wire) */
#define NTM_XKEY_MAGIC		"NTK1"
/* magic 4 | nonce 24 | shared key sealed 32 + 16 */
#define NTM_XKEY_OBJ_LEN	(4 + NTM_AEAD_NONCE + NTM_KEY_LEN + NTM_AEAD_TAG)
#define NTM_XFP_LEN		40	/* "xxxx xxxx xxxx xxxx xxxx xxxx xxxx xxxx" + NUL */

/*
 * The key exchange object: the shared key sealed with the temporal key,
 * bound to key_id and the two FQDNs (additional data), so it cannot be
 * replayed for another pair or another key id. out gets
 * NTM_XKEY_OBJ_LEN bytes. 0 or NTM_ERR_INVAL (a name too long).
 */
int ntm_xkey_wrap(uint8_t out[NTM_XKEY_OBJ_LEN], const uint8_t shared[NTM_KEY_LEN],
    const uint8_t tkey[NTM_KEY_LEN], const uint8_t key_id[NTM_XKEY_ID],
    const char *from, const char *to) NTM_WUR;
/* 0 with shared set; NTM_ERR_PROTO (wrong length or magic) or
 * NTM_ERR_CRYPTO (wrong key, ids, names, or tampered). */
int ntm_xkey_unwrap(uint8_t shared[NTM_KEY_LEN], const uint8_t *obj, size_t n,
    const uint8_t tkey[NTM_KEY_LEN], const uint8_t key_id[NTM_XKEY_ID],
    const char *from, const char *to) NTM_WUR;
/*
 * The temporal key travels through the DCs sealed to the recipient
 * device's exchange key (X25519, libsodium crypto_box_seal): a DC holds
 * NTM_XTKEY_SEALED_LEN opaque bytes, never the temporal key itself, so
 * even with the recipient's token it cannot unwrap the key object.
 */
#define NTM_XPK_LEN		crypto_box_PUBLICKEYBYTES	/* 32 */
#define NTM_XSK_LEN		crypto_box_SECRETKEYBYTES	/* 32 */
#define NTM_XTKEY_SEALED_LEN	(crypto_box_SEALBYTES + NTM_KEY_LEN)	/* 80 */
/* A device's exchange key pair. */
void ntm_xkeypair(uint8_t pk[NTM_XPK_LEN], uint8_t sk[NTM_XSK_LEN]);
/* Derives pk from sk (to check a stored pair). */
int  ntm_xpk_of(uint8_t pk[NTM_XPK_LEN], const uint8_t sk[NTM_XSK_LEN]) NTM_WUR;
/* 0, or NTM_ERR_CRYPTO (pk is not a usable X25519 key). */
int  ntm_xtkey_seal(uint8_t out[NTM_XTKEY_SEALED_LEN], const uint8_t tkey[NTM_KEY_LEN],
    const uint8_t pk[NTM_XPK_LEN]) NTM_WUR;
/* 0 with tkey set; NTM_ERR_PROTO (wrong length) or NTM_ERR_CRYPTO (sealed to
 * another key, or tampered). */
int  ntm_xtkey_open(uint8_t tkey[NTM_KEY_LEN], const uint8_t *in, size_t n,
    const uint8_t pk[NTM_XPK_LEN], const uint8_t sk[NTM_XSK_LEN]) NTM_WUR;

/*
 * BLAKE2b-128 of "ntm-fp-v2" | key_id | shared | xpk, as 8 groups of 4 hex
 * digits; xpk is the exchange key the temporal key was sealed to (the
 * sender uses the one its DC gave, the recipient its own), so a DC that
 * handed out another key shows as different fingerprints.
 */
void ntm_xkey_fingerprint(char out[NTM_XFP_LEN], const uint8_t key_id[NTM_XKEY_ID],
    const uint8_t shared[NTM_KEY_LEN], const uint8_t xpk[NTM_XPK_LEN]);

/*
 * The data object:
 *   "NTD1" | n (1..16) | n x (key_id 16 | nonce 24 | content key sealed 48)
 *   | secretstream header 24
 * then messages, each u32 length (big-endian) | secretstream ciphertext:
 * the first carries the metadata (additional data: SHA-256 of the header
 * bytes, so any change to them fails), the rest the payload in pieces of
 * at most NTM_XDATA_CHUNK bytes; the last has the FINAL tag.
 */
#define NTM_XDATA_MAGIC		"NTD1"
#define NTM_XDATA_DEST_MAX	16
#define NTM_XDATA_ENTRY		(NTM_XKEY_ID + NTM_AEAD_NONCE + NTM_KEY_LEN + NTM_AEAD_TAG)
#define NTM_XDATA_SSHDR		crypto_secretstream_xchacha20poly1305_HEADERBYTES
#define NTM_XDATA_HDR_MAX	(5 + NTM_XDATA_DEST_MAX * NTM_XDATA_ENTRY + NTM_XDATA_SSHDR)
#define NTM_XDATA_CHUNK		65536
#define NTM_XDATA_ABYTES	crypto_secretstream_xchacha20poly1305_ABYTES
#define NTM_XDATA_MSG_MAX	(NTM_XDATA_CHUNK + NTM_XDATA_ABYTES)

/*
 * Each message is libsodium's secretstream (XChaCha20-Poly1305), whose bulk
 * is the IETF ChaCha20-Poly1305 AEAD (RFC 8439) of a 64-byte tag block
 * followed by the message, under the stream's key and 12-byte nonce. A
 * faster implementation of that AEAD may be installed (lib/io has
 * OpenSSL's); messages whose length is a multiple of 16 (see xchg.c) are
 * then made and opened with it, the same bytes either way (tests/unit/test_xchg.c checks both against each other).
 * Install it before any stream starts; NULL goes back to libsodium alone.
 */
struct ntm_xaead {
	/* blk || m encrypted into cblk || c, its tag into mac: 0 or -1. */
	int	(*seal)(const uint8_t k[32], const uint8_t n[12], const uint8_t *ad,
		    size_t adlen, const uint8_t blk[64], const uint8_t *m, size_t mlen,
		    uint8_t cblk[64], uint8_t *c, uint8_t mac[16]);
	/* cblk || c decrypted into blk || m when mac is right: 0, else -1
	 * (m then holds nothing to use). */
	int	(*open)(const uint8_t k[32], const uint8_t n[12], const uint8_t *ad,
		    size_t adlen, const uint8_t cblk[64], const uint8_t *c, size_t clen,
		    const uint8_t mac[16], uint8_t blk[64], uint8_t *m);
};
void ntm_xdata_aead(const struct ntm_xaead *a);

struct ntm_xseal {
	crypto_secretstream_xchacha20poly1305_state st;
	uint8_t	hdr_hash[NTM_HASH_LEN];
	int	first;
};

/*
 * Writes the header for n recipients (their key ids and shared keys) with a
 * fresh content key. Returns its length (<= NTM_XDATA_HDR_MAX) or
 * NTM_ERR_INVAL / NTM_ERR_TOOBIG. The content key is wiped.
 */
int  ntm_xseal_init(struct ntm_xseal *s, uint8_t *out, size_t cap, int n,
    const uint8_t key_ids[][NTM_XKEY_ID], const uint8_t keys[][NTM_KEY_LEN]) NTM_WUR;
/* One message (the first call is the metadata): 4 + len + ABYTES bytes into
 * out, NTM_ERR_TOOBIG (len > NTM_XDATA_CHUNK or cap too small), or
 * NTM_ERR_CRYPTO (the installed AEAD failed). */
long ntm_xseal_push(struct ntm_xseal *s, uint8_t *out, size_t cap, const void *m,
    size_t len, int final) NTM_WUR;
void ntm_xseal_wipe(struct ntm_xseal *s);

struct ntm_xopen {
	crypto_secretstream_xchacha20poly1305_state st;
	uint8_t	hdr_hash[NTM_HASH_LEN];
	int	first, done;
};
/* Total header length from its first 5 bytes, or NTM_ERR_PROTO. */
int  ntm_xopen_hdrlen(const uint8_t first5[5]) NTM_WUR;
/* Opens the header with the recipient's key: 0, NTM_ERR_NOTFOUND (no entry
 * for key_id), NTM_ERR_CRYPTO (the entry does not open), NTM_ERR_PROTO. */
int  ntm_xopen_init(struct ntm_xopen *o, const uint8_t *hdr, size_t len,
    const uint8_t key_id[NTM_XKEY_ID], const uint8_t key[NTM_KEY_LEN]) NTM_WUR;
/* One message's ciphertext (without its length prefix) into out (cap at
 * least clen - ABYTES): the plaintext length, *final set on the last one;
 * NTM_ERR_CRYPTO if forged, NTM_ERR_PROTO for a message after the last. */
long ntm_xopen_pull(struct ntm_xopen *o, uint8_t *out, size_t cap, const uint8_t *c,
    size_t clen, int *final) NTM_WUR;
void ntm_xopen_wipe(struct ntm_xopen *o);

#endif
