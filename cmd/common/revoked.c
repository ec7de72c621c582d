/*
 * revoked.c - the server certificates the AS revoked, as every DC, RS and CS
 * knows them (docs/protocol.md §7.5). The AS pushes them with the other
 * revocations, to POST /v1/revoke (and a CS's /v1/cs/revoke); each daemon
 * keeps them in state_dir/revoked-servers, one "SERIAL NAME" line each,
 * rewritten whole and fsync'd before the push is answered 200, so a
 * revocation survives a restart and the AS resends what was not answered.
 * The serials are held sorted in memory: the httpd asks, for every signed
 * request, whether its certificate is among them (srv.c), and the RS, for
 * every ticket it checks in full.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "srv.h"
#include "msg.h"
#include "ntm-io.h"

#define REVOKED_MAX	65536		/* serials a daemon keeps */
#define REVOKED_LINE	(20 + 1 + NTM_NAME_MAX + 1)
#define REVOKED_FILE	"revoked-servers"

struct srv_revoked_entry {
	uint64_t	 serial;
	char		 name[NTM_NAME_MAX + 1];
};

struct srv_revoked {
	char			*path;
	struct srv_revoked_entry *e;	/* sorted by serial */
	size_t			 n, cap;
	uint64_t		 stored;	/* new serials stored since the start */
};

static int
by_serial(const void *a, const void *b)
{
	const struct srv_revoked_entry *x = a, *y = b;

	return x->serial < y->serial ? -1 : x->serial > y->serial;
}

static struct srv_revoked_entry *
find(const struct srv_revoked *r, uint64_t serial)
{
	struct srv_revoked_entry key = { .serial = serial };

	if (r == NULL || r->n == 0)
		return NULL;
	return bsearch(&key, r->e, r->n, sizeof(*r->e), by_serial);
}

int
srv_revoked_has(const struct srv *s, uint64_t serial)
{
	return find(s->revoked, serial) != NULL;
}

size_t
srv_revoked_count(const struct srv *s)
{
	return s->revoked ? s->revoked->n : 0;
}

/* Appends (unsorted); 0, or -1 when full or out of memory. */
static int
append(struct srv_revoked *r, uint64_t serial, const char *name)
{
	struct srv_revoked_entry *ne;
	size_t ncap;

	if (r->n == REVOKED_MAX)
		return -1;
	if (r->n == r->cap) {
		ncap = r->cap ? r->cap * 2 : 16;
		if ((ne = realloc(r->e, ncap * sizeof(*ne))) == NULL)
			return -1;
		r->e = ne;
		r->cap = ncap;
	}
	r->e[r->n].serial = serial;
	snprintf(r->e[r->n].name, sizeof(r->e[r->n].name), "%s", name);
	r->n++;
	return 0;
}

/* Parses one "SERIAL NAME" line (no newline); 0 or -1. */
static int
parse_line(char *line, uint64_t *serial, const char **name)
{
	char *sp = strchr(line, ' '), *end;
	unsigned long long v;

	if (sp == NULL || sp == line)
		return -1;
	*sp = '\0';
	errno = 0;
	v = strtoull(line, &end, 10);
	if (errno || *end != '\0' || v == 0 || line[0] == '-' || line[0] == '+')
		return -1;
	if (!ntm_valid_dnsname(sp + 1))
		return -1;
	*serial = v;
	*name = sp + 1;
	return 0;
}

int
srv_revoked_load(struct srv *s, char *err, size_t errlen)
{
	struct srv_revoked *r;
	char line[REVOKED_LINE + 2];
	const char *name;
	uint64_t serial;
	size_t lineno = 0, len;
	FILE *f;

	if ((r = calloc(1, sizeof(*r))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	s->revoked = r;
	r->path = xasprintf("%s/%s", s->conf.state_dir, REVOKED_FILE);
	if ((f = fopen(r->path, "re")) == NULL) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", r->path, strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		len = strlen(line);
		if (len == 0 || line[len - 1] != '\n') {
			snprintf(err, errlen, "%s:%zu: line too long or not ended", r->path,
			    lineno);
			goto fail;
		}
		line[len - 1] = '\0';
		if (parse_line(line, &serial, &name) < 0) {
			snprintf(err, errlen, "%s:%zu: expected 'SERIAL NAME'", r->path, lineno);
			goto fail;
		}
		if (append(r, serial, name) < 0) {
			snprintf(err, errlen, "%s: more than %d serials", r->path, REVOKED_MAX);
			goto fail;
		}
	}
	if (ferror(f)) {
		snprintf(err, errlen, "%s: %s", r->path, strerror(errno));
		goto fail;
	}
	fclose(f);
	qsort(r->e, r->n, sizeof(*r->e), by_serial);
	return 0;
fail:
	fclose(f);
	return -1;
}

void
srv_revoked_free(struct srv *s)
{
	struct srv_revoked *r = s->revoked;

	if (r == NULL)
		return;
	free(r->path);
	free(r->e);
	free(r);
	s->revoked = NULL;
}

/* The whole list to its file, durably. */
static int
save(const struct srv_revoked *r)
{
	char *text, *p;
	size_t i, cap = r->n * REVOKED_LINE + 1;
	int ret, n;

	if ((p = text = malloc(cap)) == NULL)
		return NTM_ERR_NOMEM;
	*p = '\0';
	for (i = 0; i < r->n; i++) {
		n = snprintf(p, cap - (size_t)(p - text), "%llu %s\n",
		    (unsigned long long)r->e[i].serial, r->e[i].name);
		p += n;
	}
	ret = ntm_file_write(r->path, text, (size_t)(p - text), 0600);
	free(text);
	return ret;
}

/* Back to the n entries of old (freed); r->e holds at least n. */
static void
restore(struct srv_revoked *r, struct srv_revoked_entry *old, size_t n)
{
	if (n)
		memcpy(r->e, old, n * sizeof(*old));
	r->n = n;
	free(old);
}

int
srv_revoked_store(struct srv *s, struct ntm_req *req, json_t *servers)
{
	struct srv_revoked *r = s->revoked;
	struct srv_revoked_entry *old = NULL;
	struct ntm_m_revoke_server m;
	struct ntm_jerr jerr;
	size_t i, before;
	json_t *e;
	int ret;

	if (servers == NULL || json_array_size(servers) == 0)
		return 0;
	if (r == NULL) {
		ntm_reply_error(req, 500, "internal", NULL, "no list of revoked servers");
		return -1;
	}
	if (!json_is_array(servers)) {
		ntm_reply_error(req, 400, "bad_field", "servers", "expected an array");
		return -1;
	}
	/* Every element checked before anything is kept. */
	json_array_foreach(servers, i, e) {
		memset(&jerr, 0, sizeof(jerr));
		if (ntm_msg_revoke_server_decode(e, &m, &jerr) < 0) {
			ntm_reply_error(req, 400, jerr.code, "servers", "servers[%zu]: %s", i,
			    jerr.message);
			return -1;
		}
		if (m.serial < 1) {
			ntm_reply_error(req, 400, "bad_field", "servers",
			    "servers[%zu]: serial: expected a positive number", i);
			return -1;
		}
	}
	/* What to go back to if the file cannot be written. */
	before = r->n;
	if (before && (old = malloc(before * sizeof(*old))) == NULL) {
		ntm_reply_error(req, 500, "internal", NULL, "out of memory");
		return NTM_ERR_NOMEM;
	}
	if (old)
		memcpy(old, r->e, before * sizeof(*old));
	json_array_foreach(servers, i, e) {
		if (ntm_msg_revoke_server_decode(e, &m, NULL) < 0 ||
		    find(r, (uint64_t)m.serial) != NULL)
			continue;
		if (append(r, (uint64_t)m.serial, m.name) < 0) {
			restore(r, old, before);
			ntm_reply_error(req, 400, "bad_field", "servers",
			    "at most %d revoked server certificates", REVOKED_MAX);
			return -1;
		}
		/* Sorted again after each, so that a serial twice in one push
		 * is found the second time. */
		qsort(r->e, r->n, sizeof(*r->e), by_serial);
		log_warnx("the AS revoked the certificate serial %lld of '%s': refused "
		    "from now on", (long long)m.serial, m.name);
	}
	if (r->n == before) {
		free(old);
		return 0;
	}
	if ((ret = save(r)) < 0) {
		/* Not kept, not answered 200: the AS sends it again. */
		restore(r, old, before);
		ntm_reply_error(req, 500, "internal", NULL, "cannot store the revocations");
		return ret;
	}
	free(old);
	r->stored += r->n - before;
	return (int)(r->n - before);
}
