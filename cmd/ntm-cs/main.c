/*
 * ntm-cs - the Cache Server: stores end-to-end encrypted objects for clients
 * that may be offline, content-addressed by SHA-256, for the owner and the
 * destinations it names; clients are authenticated by their AS token.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

#include "cs.h"
#include "prom.h"

static struct cs cs;

static int
cs_setup(struct srv *s, char *err, size_t errlen)
{
	cs.srv = s;
	s->priv = &cs;
	pthread_mutex_init(&cs.hash_lock, NULL);
	if (cs_db_open(s->conf.db, &cs.db, err, errlen) < 0 ||
	    cs_store_init(&cs, err, errlen) < 0)
		return -1;
	if (s->check_only)
		return 0;
	cs_store_sweep(&cs);
	cs_gc_run(&cs);
	if (cs_gc_start(&cs, err, errlen) < 0)
		return -1;
	return cs_announce_start(&cs, err, errlen);
}

static void
cs_teardown(struct srv *s)
{
	cs_meta_waits_free(&cs);
	cs_parked_free(&cs);
	cs_hashes_free(&cs);
	cs_announce_stop(&cs);
	cs_gc_stop(&cs);
	/* The hasher first: the end of a chunk's last piece may start a
	 * commit, which the worker then runs as any queued before the stop. */
	ntm_worker_free(cs.hasher);
	cs.hasher = NULL;
	ntm_worker_free(cs.worker);
	cs.worker = NULL;
	ntm_db_close(cs.db);
	cs.db = NULL;
	free(cs.objdir);
	free(cs.tmpdir);
	cs.objdir = cs.tmpdir = NULL;
}

/*
 * GET /metrics: what is stored now (from the database: one count per
 * family, on indexed or small tables), what was stored and announced since
 * the start (counted as it happens).
 */
static void
cs_metrics(struct srv *s, struct ntm_prom *p)
{
	static const struct {
		const char	*name, *help, *sql;
	} now[] = {
		{ "ntm_cs_objects", "Objects stored now", "SELECT count(*) FROM objects" },
		{ "ntm_cs_object_bytes", "Bytes of the objects stored now",
		  "SELECT CAST(total(size) AS INTEGER) FROM objects" },
		{ "ntm_cs_uploads", "Uploads begun and not finished", "SELECT count(*) FROM uploads" },
		{ "ntm_cs_announcements_waiting", "Destinations whose DC has not taken the "
		  "announcement yet (nor refused it for good)", "SELECT count(*) FROM dests "
		  "WHERE announced IS NULL AND failed IS NULL" },
		{ "ntm_cs_deliveries_waiting", "Destinations that have not confirmed delivery",
		  "SELECT count(*) FROM dests WHERE delivered IS NULL" },
	};
	static const char *const result[] = { "ok", "failed", "retry" };
	int64_t n;
	size_t i;

	for (i = 0; i < sizeof(now) / sizeof(now[0]); i++)
		if (ntm_db_int(cs.db, &n, now[i].sql, NULL) == 0) {
			ntm_prom_family(p, now[i].name, NTM_PROM_GAUGE, now[i].help);
			ntm_prom_int(p, NULL, n);
		}
	ntm_prom_family(p, "ntm_cs_objects_stored_total", NTM_PROM_COUNTER,
	    "Objects committed (uploads complete and hash checked)");
	ntm_prom_int(p, NULL, (int64_t)cs.objects_stored);
	ntm_prom_family(p, "ntm_cs_stored_bytes_total", NTM_PROM_COUNTER,
	    "Bytes of the objects committed");
	ntm_prom_int(p, NULL, (int64_t)cs.bytes_stored);
	ntm_prom_family(p, "ntm_cs_chunks_waiting", NTM_PROM_GAUGE,
	    "Chunk PUTs waiting for a free upload slot (chunk_wait_max)");
	ntm_prom_int(p, NULL, (int64_t)cs.nparked);
	ntm_prom_family(p, "ntm_cs_chunks_receiving", NTM_PROM_GAUGE,
	    "Upload slots receiving a chunk now (at most 64; then chunks wait)");
	ntm_prom_int(p, NULL, (int64_t)cs_chunks_receiving(&cs));
	ntm_prom_family(p, "ntm_cs_announcements_total", NTM_PROM_COUNTER,
	    "Announcements to recipients' DCs, by result (ok, failed for good, retry later)");
	for (i = 0; i < sizeof(result) / sizeof(result[0]); i++)
		ntm_prom_int(p, (const char *const[]){ "result", result[i], NULL },
		    (int64_t)cs.announced[i]);
}

static const struct ntm_http_route *const cs_routes[] = {
	cs_auth_routes, cs_upload_routes, cs_object_routes, NULL
};

static int
cs_cert_renewed(struct srv *s)
{
	return cs_announce_cert_renewed(s->priv);
}

static const struct srv_spec cs_spec = {
	.role		= NTM_ROLE_CS,
	.prog		= "ntm-cs",
	.title		= "Cache Server",
	.note		= "It stores end-to-end encrypted objects, content-addressed by SHA-256,\n"
			  "for clients that may be offline (uploads in chunks, downloads streamed),\n"
			  "announces each object to its recipients' DCs (found by DNS), and\n"
			  "takes token revocations from the AS.\n"
			  "\n"
			  "Configuration keys of ntm-cs besides the common ones (ntm-cs(8)):\n"
			  "  quota_bytes = N      bytes stored per account (default 1073741824)\n"
			  "  object_ttl_s = N     default and longest object lifetime (default 604800)\n"
			  "  gc_interval_s = N    garbage collector period (default 60)\n"
			  "  upload_idle_s = N    an unfinished upload idle this long is dropped\n"
			  "                       (default 3600)\n"
			  "  resolver = IP:PORT   DNS resolver finding the recipients' DCs; without\n"
			  "                       it objects are stored but not announced\n"
			  "  public_url = URL     the https URL clients reach this CS at\n"
			  "                       (default https://LISTEN)\n"
			  "  announce_retry_max_s = N  longest wait between tries (default 300)\n"
			  "  chunk_wait_max = N   chunk PUTs that wait for a free upload slot,\n"
			  "                       past them 503 busy (default 1024; 0: none)\n"
			  "  chunk_wait_per_addr = N  the same, from one address (default 16)\n"
			  "  chunk_wait_ms = N    the longest such wait (default 15000)",
	.max_body	= CS_CHUNK_MAX,
	.revoke		= cs_revoke,
	.cert_renewed	= cs_cert_renewed,
	.routes		= cs_routes,
	.bearer		= cs_bearer,
	.bearer_precheck = cs_bearer_precheck,
	.setup		= cs_setup,
	.metrics	= cs_metrics,
	.teardown	= cs_teardown,
};

int
main(int argc, char *argv[])
{
	/* The pieces of a chunk being received (about NTM_HTTPD_STREAM_WINDOW
	 * each, never the whole chunk) come from the heap and its memory is
	 * kept for the next ones, instead of a fresh mapping per piece that
	 * faults in and zeroes every page. */
	mallopt(M_MMAP_THRESHOLD, 2 * CS_CHUNK_MAX);
	mallopt(M_TRIM_THRESHOLD, 4 * CS_CHUNK_MAX);
	return srv_main(&cs_spec, argc, argv);
}
