/*
 * keys.c - ntm keys exchange|list|show|rotate|forget: the end-to-end keys
 * shared with peers (docs/protocol.md §8.1). A key exchange, step by step:
 *
 *   0. GET /v1/exchange/key?fqdn=PEER at our DC: the peer's exchange key X
 *      (an X25519 key its device gave at login), from the peer's DC;
 *   1. make a temporal key T, a shared key K and a key id;
 *   2. POST /v1/exchange/temporal {to, key_id, T sealed to X} at our DC,
 *      which hands it to the peer's DC (found by DNS, signed
 *      POST /v1/dc/temporal);
 *   3. upload K sealed with T (76 bytes) to our DC's CS, to the peer;
 *   4. the CS announces it (kind "key") to the peer's DC (found by DNS),
 *      which lists it in the peer's cache list and notifies the peer.
 *
 * The peer's `ntm fetch` takes sealed T from its DC, opens it with its
 * exchange key, and the sealed K from our CS. No server holds T; K is kept
 * only in STATE_DIR/keys (0600). The fingerprint covers X, so a DC that
 * handed out another key than the peer's shows up as two fingerprints.
 *
 * `keys show PEER` also prints the fingerprint of PEER's device key, as
 * the tunnels remember it (identity.c; docs/protocol.md §2.4), and
 * `keys show` with this device's own FQDN prints ours: two people compare
 * them by voice to know that no server stands between their tunnels.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "identity.h"
#include "xcli.h"

struct kopts {
	const char	*sub, *peer;
	long		 timeout;
	int		 json;
};

static const struct cmd_opt keys_opts[] = {
	CLI_OPT_TIMEOUT(struct kopts, "exchange, rotate: give up on each server call "
	  "after SEC seconds (1..300, default 10)"),
	CLI_OPT_JSON(struct kopts, "print the result as one JSON object"),
	CLI_OPT_HELP,
	CLI_OPT_END
};

/* Step 0: the peer's exchange key, from its DC through ours, into
 * k->sealed_to. 0 or an exit code. */
static int
peer_xkey(struct xctx *x, const char *peer, struct xkey *k)
{
	char path[NTM_NAME_MAX + 32];
	struct ntm_m_xkey m;
	json_t *r = NULL;
	int ret;

	snprintf(path, sizeof(path), "/v1/exchange/key?fqdn=%s", peer);
	if ((ret = x_call(x, x->s.dc_url, "GET", path, NULL, 200, &r)) != 0)
		return ret;
	if (ntm_msg_xkey_decode(r, &m, NULL) < 0 ||
	    ntm_b64_decode_exact(k->sealed_to, NTM_XPK_LEN, m.exchange_key) != NTM_XPK_LEN) {
		cli_err(x->cmd, "bad answer from %s: no exchange key for %s", x->s.dc_url, peer);
		ret = EXIT_FAIL;
	}
	json_decref(r);
	return ret;
}

/* Step 2: the temporal key (tb64, sealed to the peer's exchange key) to our
 * DC, which passes it to the peer's. 0 or an exit code. */
static int
send_temporal(struct xctx *x, const char *peer, const char *kid, const char *tb64)
{
	struct ntm_m_temporal m = { .version = 1, .from = x->s.fqdn, .to = peer,
	    .key_id = kid, .temporal_key = tb64 };
	json_t *body, *v;
	int ret;

	if ((body = x_msg(x, &ntm_msg_temporal, &m)) == NULL)
		return EXIT_FAIL;
	ret = x_call(x, x->s.dc_url, "POST", "/v1/exchange/temporal", body, 200, NULL);
	v = json_object_get(body, "temporal_key");
	ntm_wipe((char *)json_string_value(v), json_string_length(v));
	json_decref(body);
	return ret;
}

/* Step 3: the key object staged in fp (hash sha) up to our CS for the peer;
 * 0 with *commit (new) the commit answer, or an exit code. */
static int
upload_key(struct xctx *x, const char *peer, const char *kid, FILE *fp, size_t size,
    const char *sha, json_t **commit)
{
	char notify[64];
	struct ntm_m_cs_upload m = { .version = 1, .from = x->s.fqdn, .kind = "key",
	    .app = X_APP_KEYS, .service = X_SERVICE_KEYS, .item = kid, .notify = notify };
	int ret;

	*commit = NULL;
	snprintf(notify, sizeof(notify), "key exchange %s", kid);
	if ((m.to = json_pack("[s]", peer)) == NULL)
		return EXIT_FAIL;
	ret = x_cs_upload(x, fileno(fp), size, sha, &m, commit, NULL);
	json_decref(m.to);
	return ret;
}

/* A short form of an exchange key, for messages. */
static void
xkey_short(char out[17], const uint8_t key[NTM_XPK_LEN])
{
	uint8_t h[NTM_HASH_LEN];

	ntm_hash(h, key, NTM_XPK_LEN);
	(void)ntm_hex_encode(out, 17, h, 8);
}

/* The peer's exchange key as we last sealed to it: that of the newest key
 * we made with it (a key it made was sealed to ours), or NULL. */
static const uint8_t *
known_xkey(const struct xkey *k)
{
	if (k == NULL)
		return NULL;
	if (k->initiator)
		return k->sealed_to;
	for (int i = 0; i < k->nold; i++)
		if (k->old[i].initiator)
			return k->old[i].sealed_to;
	return NULL;
}

/* Steps 1-4 above; on success k holds the new key. old (NULL: none) is the
 * key held with the peer: the exchange key we last sealed to must not have
 * changed (key continuity: a DC that hands out another one is refused).
 * 0 or an exit code. */
static int
exchange(struct xctx *x, const char *peer, struct xkey *k, char sha[65],
    const struct xkey *old)
{
	uint8_t tkey[NTM_KEY_LEN], obj[NTM_XKEY_OBJ_LEN], h[NTM_HASH_LEN];
	uint8_t sealed[NTM_XTKEY_SEALED_LEN];
	char kid[2 * NTM_XKEY_ID + 1], tb64[NTM_B64_LEN(NTM_XTKEY_SEALED_LEN)];
	const uint8_t *known;
	json_t *r = NULL;
	FILE *fp = NULL;
	int ret;

	memset(k, 0, sizeof(*k));
	if ((ret = peer_xkey(x, peer, k)) != 0)
		return ret;
	if ((known = known_xkey(old)) != NULL &&
	    ntm_memcmp(known, k->sealed_to, NTM_XPK_LEN) != 0) {
		char was[17], now[17];

		xkey_short(was, known);
		xkey_short(now, k->sealed_to);
		cli_err(x->cmd, "THE EXCHANGE KEY OF %s CHANGED (%s, the key held with it was "
		    "sealed to %s): refused, a server may be in the middle; if %s really "
		    "made a new one, check with it out of band, then 'ntm keys forget %s' "
		    "and exchange again", peer, now, was, peer, peer);
		return EXIT_IDENTITY;
	}
	snprintf(k->peer, sizeof(k->peer), "%s", peer);
	ntm_random(k->key_id, sizeof(k->key_id));
	ntm_random(k->key, sizeof(k->key));
	ntm_random(tkey, sizeof(tkey));
	k->created = now_unix();
	k->initiator = 1;
	if (ntm_xtkey_seal(sealed, tkey, k->sealed_to) < 0) {
		cli_err(x->cmd, "the exchange key %s's DC gave is not usable", peer);
		ret = EXIT_FAIL;
		goto out;
	}
	if (ntm_hex_encode(kid, sizeof(kid), k->key_id, NTM_XKEY_ID) < 0 ||
	    ntm_b64_encode(tb64, sizeof(tb64), sealed, sizeof(sealed)) < 0 ||
	    ntm_xkey_wrap(obj, k->key, tkey, k->key_id, x->s.fqdn, peer) < 0) {
		ret = EXIT_FAIL;
		goto out;
	}
	if ((ret = x_our_cs(x)) != 0)
		goto out;

	if ((ret = send_temporal(x, peer, kid, tb64)) != 0)
		goto out;

	/* 3: the shared key sealed with it, through our CS. */
	ntm_hash(h, obj, sizeof(obj));
	if (ntm_hex_encode(sha, 65, h, sizeof(h)) < 0 || (fp = tmpfile()) == NULL ||
	    fwrite(obj, 1, sizeof(obj), fp) != sizeof(obj) || fflush(fp) != 0) {
		cli_err(x->cmd, "cannot stage the key object");
		ret = EXIT_FAIL;
		goto out;
	}
	if ((ret = upload_key(x, peer, kid, fp, sizeof(obj), sha, &r)) != 0)
		goto out;

	/* 4: the CS announces it to the peer's DC, which notifies the peer. */
	json_decref(r);
	r = NULL;
	ret = x_announced(x, x->cs, sha, &r);
out:
	json_decref(r);
	if (fp)
		fclose(fp);
	ntm_wipe(tkey, sizeof(tkey));
	ntm_wipe(tb64, sizeof(tb64));
	ntm_wipe(obj, sizeof(obj));
	return ret;
}

static void
print_key(const struct xkey *k, int json, const char *extra_k, const char *extra_v)
{
	json_t *j = xkey_json(k);

	if (json) {
		if (extra_k)
			json_object_set_new(j, extra_k, json_string(extra_v));
		cli_print_json(j);
		return;
	}
	printf("%s\n  key id: %s%s\n  fingerprint: %s\n  made by: %s\n", k->peer,
	    json_string_value(json_object_get(j, "key_id")), k->nold ? " (current)" : "",
	    json_string_value(json_object_get(j, "fingerprint")),
	    json_string_value(json_object_get(j, "made_by")));
	if (extra_k)
		printf("  %s: %s\n", extra_k, extra_v);
	json_decref(j);
}

static int
do_exchange(struct cli *cli, const struct kopts *o, int rotate)
{
	struct xctx x;
	struct xkey k, old;
	char sha[65] = "";

	memset(&k, 0, sizeof(k));
	memset(&old, 0, sizeof(old));
	int ret, e;

	if ((ret = xctx_open(&x, cli, "keys", o->timeout)) != 0)
		return ret;
	if (!x_valid_peer(&x, o->peer, "PEER")) {
		ret = EXIT_USAGE;
		goto out;
	}
	e = xkey_load(cli, o->peer, &old);
	if (rotate && e == NTM_ERR_NOTFOUND) {
		cli_err("keys", "no key with %s to rotate (run 'ntm keys exchange %s')",
		    o->peer, o->peer);
		ret = EXIT_NOKEY;
		goto out;
	}
	if (cli_state_prepare(cli, "keys") < 0) {
		ret = EXIT_FAIL;
		goto out;
	}
	if ((ret = exchange(&x, o->peer, &k, sha, e == 0 ? &old : NULL)) != 0)
		goto out;
	/* Objects sealed with the old key may still be on their way: ours to
	 * the peer, and the peer's to us until it fetches the new key. */
	xkey_replace(&k, e == 0 ? &old : NULL, X_KEY_BEFORE_ANY);
	if ((e = xkey_save(cli, &k)) < 0) {
		cli_err("keys", "cannot save the key with %s: %s", o->peer, ntm_strerror(e));
		ret = EXIT_FAIL;
		goto out;
	}
	print_key(&k, o->json, "object", sha);
out:
	ntm_wipe(&k, sizeof(k));
	ntm_wipe(&old, sizeof(old));
	xctx_close(&x);
	return ret;
}

static int
list_one(const struct xkey *k, void *arg)
{
	json_t *arr = arg, *j;
	long long n;
	int i;

	if (arr)
		json_array_append_new(arr, xkey_json(k));
	else
		print_key(k, 0, NULL, NULL);
	for (i = 0; i < k->nold; i++) {
		j = xkey_old_json(k, i);
		if (arr) {
			json_array_append_new(arr, j);
			continue;
		}
		n = json_integer_value(json_object_get(j, "sent_waiting"));
		printf("  previous key id: %s\n  previous fingerprint: %s\n  kept for: ",
		    json_string_value(json_object_get(j, "key_id")),
		    json_string_value(json_object_get(j, "fingerprint")));
		if (n)
			printf("%lld object%s sent with it, not yet seen delivered%s", n,
			    n > 1 ? "s" : "", json_is_true(json_object_get(j, "peer_waiting")) ?
			    "; " : "\n");
		if (json_is_true(json_object_get(j, "peer_waiting")))
			printf("what %s may have sealed with it\n", k->peer);
		json_decref(j);
	}
	return 0;
}

static int
do_list(struct cli *cli, const struct kopts *o)
{
	json_t *arr = o->json ? json_array() : NULL;

	if (xkey_each(cli, list_one, arr) < 0) {
		cli_err("keys", "cannot read %s/keys", cli->state_dir);
		json_decref(arr);
		return EXIT_FAIL;
	}
	if (arr) {
		cli_print_json(json_pack("{s:o}", "keys", arr));
		return EXIT_OK;
	}
	return EXIT_OK;
}

/*
 * The device key of peer as a JSON object (NULL when none is known): the
 * one remembered from its AS certificate, or ours when peer is this
 * device's FQDN.
 */
static json_t *
device_json(struct cli *cli, const char *peer)
{
	struct ntm_dcert c;
	struct id_known k;
	char *path, *text = NULL, fp[NTM_DFP_LEN];
	size_t len;
	json_t *j = NULL;

	path = cli_state_path(cli, ID_DEVICE_CERT_FILE);
	if (ntm_file_read(path, 4096, &text, &len) == 0) {
		text[strcspn(text, "\n")] = '\0';
		if (ntm_dcert_from_b64(&c, text) == 0 && strcmp(c.fqdn, peer) == 0) {
			ntm_dkey_fingerprint(fp, c.fqdn, c.pk);
			j = json_pack("{s:s, s:s, s:I, s:I, s:b}", "fqdn", peer, "fingerprint",
			    fp, "serial", (json_int_t)c.serial, "not_after",
			    (json_int_t)c.not_after, "this_device", 1);
		}
	}
	free(text);
	free(path);
	if (j == NULL && id_known_get(cli, peer, &k) == 0) {
		ntm_dkey_fingerprint(fp, k.fqdn, k.pk);
		j = json_pack("{s:s, s:s, s:I, s:I, s:b}", "fqdn", peer, "fingerprint", fp,
		    "serial", (json_int_t)k.serial, "first_seen", (json_int_t)k.first_seen,
		    "this_device", 0);
	}
	return j;
}

static void
print_device(json_t *d)
{
	time_t t;
	char when[64] = "?";

	if (json_is_true(json_object_get(d, "this_device"))) {
		printf("%s (this device)\n  device key: %s (AS certificate serial %lld)\n",
		    json_string_value(json_object_get(d, "fqdn")),
		    json_string_value(json_object_get(d, "fingerprint")),
		    (long long)json_integer_value(json_object_get(d, "serial")));
		return;
	}
	t = (time_t)json_integer_value(json_object_get(d, "first_seen"));
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", gmtime(&t));
	printf("%s\n  device key: %s (AS certificate serial %lld, used since %s)\n",
	    json_string_value(json_object_get(d, "fqdn")),
	    json_string_value(json_object_get(d, "fingerprint")),
	    (long long)json_integer_value(json_object_get(d, "serial")), when);
}

static int
do_show_forget(struct cli *cli, const struct kopts *o, int forget)
{
	struct xkey k;
	json_t *dev = NULL;
	int e;

	if (!ntm_valid_dnsname(o->peer) || strchr(o->peer, '.') == NULL) {
		cli_err("keys", "PEER '%s': not a client FQDN (like bob.dc2.example)", o->peer);
		return EXIT_USAGE;
	}
	e = xkey_load(cli, o->peer, &k);
	if (!forget && (dev = device_json(cli, o->peer)) != NULL &&
	    (e == NTM_ERR_NOTFOUND || e == 0)) {
		/* The device key, then the exchange key when there is one. */
		if (o->json) {
			json_t *j = e == 0 ? xkey_json(&k) : json_pack("{s:s}", "peer", o->peer);

			json_object_set_new(j, "device", dev);
			cli_print_json(j);
		} else {
			print_device(dev);
			json_decref(dev);
			if (e == 0) {
				printf("  exchange key with it:\n");
				list_one(&k, NULL);
			}
		}
		ntm_wipe(&k, sizeof(k));
		return EXIT_OK;
	}
	json_decref(dev);
	if (e == NTM_ERR_NOTFOUND) {
		cli_err("keys", "no key with %s", o->peer);
		return EXIT_NOKEY;
	}
	if (e < 0) {
		cli_err("keys", "%s/keys/%s.key: %s", cli->state_dir, o->peer,
		    e == NTM_ERR_INVAL ? "malformed, or readable by others" : ntm_strerror(e));
		return EXIT_FAIL;
	}
	if (forget) {
		ntm_wipe(&k, sizeof(k));
		if (xkey_remove(cli, o->peer) < 0) {
			cli_err("keys", "cannot remove the key with %s", o->peer);
			return EXIT_FAIL;
		}
		if (o->json)
			cli_print_json(json_pack("{s:s, s:b}", "peer", o->peer, "forgotten", 1));
		else
			printf("forgot the key with %s\n", o->peer);
		return EXIT_OK;
	}
	if (o->json)
		print_key(&k, 1, NULL, NULL);
	else
		list_one(&k, NULL);
	ntm_wipe(&k, sizeof(k));
	return EXIT_OK;
}

/* The subcommand and its PEER, if it takes one, into the args. */
static struct kopts *
kopts(struct cmd_call *c)
{
	struct kopts *o = c->args;

	o->sub = c->sub->name;
	o->peer = c->npos ? c->pos[0] : NULL;
	return o;
}

static int
exchange_exec(void *ctx, struct cmd_call *c)
{
	return do_exchange(ctx, kopts(c), 0);
}

static int
rotate_exec(void *ctx, struct cmd_call *c)
{
	return do_exchange(ctx, kopts(c), 1);
}

static int
list_exec(void *ctx, struct cmd_call *c)
{
	return do_list(ctx, kopts(c));
}

static int
show_exec(void *ctx, struct cmd_call *c)
{
	return do_show_forget(ctx, kopts(c), 0);
}

static int
forget_exec(void *ctx, struct cmd_call *c)
{
	return do_show_forget(ctx, kopts(c), 1);
}

#define KEYS_SUB(name_, takes_, exec_) { .name = name_, .takes = takes_, .min = 1, \
	.max = 1, .missing = "missing PEER", .operands = CMD_OPERAND_PEER, .exec = exec_ }

static const struct cmd_entry keys_exchange = KEYS_SUB("exchange", "timeout json",
    exchange_exec);
static const struct cmd_entry keys_list = { .name = "list", .takes = "json", .max = 0,
    .exec = list_exec };
static const struct cmd_entry keys_show = KEYS_SUB("show", "json", show_exec);
static const struct cmd_entry keys_rotate = KEYS_SUB("rotate", "timeout json", rotate_exec);
static const struct cmd_entry keys_forget = KEYS_SUB("forget", "json", forget_exec);

static const struct cmd_entry *const keys_subs[] = {
	&keys_exchange, &keys_list, &keys_show, &keys_rotate, &keys_forget, NULL
};

const struct cmd_entry keys_entry = {
	.name = "keys",
	.summary = "end-to-end keys with peers: exchange, list, show, rotate, forget",
	.usage = "exchange|list|show|rotate|forget [PEER]",
	.opts = keys_opts,
	.subs = keys_subs,
	.missing = "missing subcommand (exchange, list, show, rotate, forget)",
	.args_size = sizeof(struct kopts),
};
