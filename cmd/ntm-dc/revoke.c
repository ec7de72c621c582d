/*
 * revoke.c - what the AS's revocation push (POST /v1/revoke, docs/protocol.md
 * §7.5) means at a DC: an account entry for this DC ends every session of
 * that user opened at or before its `before` (`ntm-as user lock|del|passwd`:
 * the devices are logged out within the push interval), a token entry ends
 * the session of that token. Both are ended as a logout ends them (the
 * session row gets `ended`; the session cache forgets the client, so its
 * UDP registrations stop), without telling the AS, which knows. The server
 * certificates of the push are kept by srv (revoked.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sqlite3.h>

#include "dc.h"
#include "msg.h"

#define REVOKE_IDS_MAX	4096	/* sessions one entry ends at once */

/* The live sessions' client ids matching where (?1, ?2 bound by bind), then
 * ended; the cache forgets each. How many, or an NTM_ERR_*. */
static int
end_sessions(struct dc *dc, const char *where, const char *a, int64_t b, int64_t now)
{
	char sql[512];
	int64_t ids[REVOKE_IDS_MAX];
	sqlite3_stmt *st;
	int n = 0, rc, ret;

	if ((ret = ntm_db_begin(dc->db)) < 0)
		return ret;
	snprintf(sql, sizeof(sql), "SELECT s.client_id FROM sessions s JOIN clients c ON "
	    "c.id = s.client_id WHERE s.ended IS NULL AND %s LIMIT %d", where,
	    REVOKE_IDS_MAX);
	if (sqlite3_prepare_v2(dc->db, sql, -1, &st, NULL) != SQLITE_OK)
		return ntm_db_end(dc->db, NTM_ERR_DB);
	sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, b);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		ids[n++] = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return ntm_db_end(dc->db, NTM_ERR_DB);
	snprintf(sql, sizeof(sql), "UPDATE sessions SET ended = ?3 WHERE ended IS NULL AND "
	    "client_id IN (SELECT s.client_id FROM sessions s JOIN clients c ON "
	    "c.id = s.client_id WHERE s.ended IS NULL AND %s)", where);
	ret = ntm_db_run(dc->db, sql, "sII", a, b, now);
	if ((ret = ntm_db_end(dc->db, ret)) < 0)
		return ret;
	for (int i = 0; i < n; i++)
		dc_sess_logout(dc, ids[i]);
	return n;
}

/* srv_spec.revoke: 0 when done (srv answers 200), else answered. */
int
dc_revoke(struct srv *s, struct ntm_req *req, const struct ntm_m_revoke *m)
{
	struct dc *dc = s->priv;
	struct ntm_m_revoke_account a;
	struct ntm_m_revoke_token t;
	struct ntm_jerr jerr;
	uint8_t raw[NTM_TOKEN_ID];
	char hex[2 * NTM_TOKEN_ID + 1];
	int64_t now = now_unix();
	size_t i;
	json_t *e;
	int n;

	/* Checked whole before anything is ended. */
	json_array_foreach(m->accounts, i, e) {
		memset(&jerr, 0, sizeof(jerr));
		if (ntm_msg_revoke_account_decode(e, &a, &jerr) < 0) {
			ntm_reply_error(req, 400, jerr.code, "accounts", "accounts[%zu]: %s", i,
			    jerr.message);
			return 1;
		}
	}
	json_array_foreach(m->tokens, i, e) {
		memset(&jerr, 0, sizeof(jerr));
		if (ntm_msg_revoke_token_decode(e, &t, &jerr) < 0) {
			ntm_reply_error(req, 400, jerr.code, "tokens", "tokens[%zu]: %s", i,
			    jerr.message);
			return 1;
		}
	}
	json_array_foreach(m->accounts, i, e) {
		if (ntm_msg_revoke_account_decode(e, &a, NULL) < 0 ||
		    strcmp(a.dc, s->conf.name) != 0)
			continue;		/* another DC's user */
		if (a.before <= 0)
			a.before = now;
		if ((n = end_sessions(dc, "c.user = ?1 AND s.created <= ?2", a.user, a.before,
		    now)) < 0)
			goto failed;
		if (n > 0)
			log_info("the AS revoked %s's tokens until %lld: %d session%s ended",
			    a.user, (long long)a.before, n, n == 1 ? "" : "s");
	}
	json_array_foreach(m->tokens, i, e) {
		if (ntm_msg_revoke_token_decode(e, &t, NULL) < 0 ||
		    ntm_b64_decode_exact(raw, sizeof(raw), t.id) < 0 ||
		    ntm_hex_encode(hex, sizeof(hex), raw, sizeof(raw)) < 0)
			continue;
		if ((n = end_sessions(dc, "s.token_id = ?1 AND ?2 = ?2", hex, 0, now)) < 0)
			goto failed;
		if (n > 0)
			log_info("the AS revoked a token: its session ended");
	}
	return 0;
failed:
	log_warnx("revocations: cannot end sessions: %s", sqlite3_errmsg(dc->db));
	ntm_reply_error(req, 500, "internal", NULL, "storage failure");
	return 1;
}
