/*
 * srv.h - the bootstrap shared by the servers (ntm-as, ntm-dc, ntm-rs,
 * ntm-cs): option parsing, the init/pubkey commands, --routes, --commands, loading the
 * config, identity key, AS-issued certificate (none for the AS, the trust
 * anchor) and TLS material, the HTTPS listener with GET /v1/health (and the
 * signed GET /v1/status of the enrolled servers) plus the daemon's route
 * tables, signals, pidfile and a clean shutdown. Each daemon supplies a
 * struct srv_spec and stays thin.
 */
#ifndef NTM_SRV_H
#define NTM_SRV_H

#include <stddef.h>
#include <stdint.h>

#include "cmd.h"
#include "common.h"

struct event_base;
struct ntm_prom;
struct ntm_req;
struct ntm_m_revoke;
struct srv;
struct srv_metrics;
struct srv_revoked;
struct srv_renew;
typedef struct json_t json_t;

/*
 * The role's commands are entries of the command model (cmd.h): exec is
 * called with the struct srv (configuration loaded) as its ctx, after the
 * shared parser has filled the command's args and checked its operands.
 * Rows the commands' option tables share; T is the command's args struct.
 */
#define SRV_OPT_HELP	{ .name = "help", .shortopt = 'h', .help = "show this help and exit", \
	.type = CMD_FLAG }
#define SRV_OPT_JSON(T)	{ .name = "json", .help = "print JSON", .type = CMD_FLAG, \
	.off = offsetof(T, json) }
#define SRV_OPT_END	{ .name = NULL }

struct srv_spec {
	int		 role;		/* NTM_ROLE_AS, _DC, _RS, _CS */
	const char	*prog;		/* "ntm-dc" */
	const char	*title;		/* "Direction Coordinator" */
	const char	*note;		/* extra paragraph for --help, or NULL */
	size_t		 max_body;	/* request body limit; 0: NTM_BODY_MAX */
	/* Role commands besides init/pubkey (ends with NULL); one of the same
	 * name replaces the built-in one. */
	const struct cmd_entry *const *cmds;
	/*
	 * The trust anchor (the AS): no AS-issued certificate; its own key
	 * verifies the certificates of signed requests, and cert_check (called
	 * with s->priv; may be NULL) decides whether each is still accepted.
	 * No GET /v1/status.
	 */
	int		 anchor;
	ntm_cert_check_fn *cert_check;
	/* The daemon's route tables (each ends with a row whose method is
	 * NULL; the list ends with NULL), registered once setup has run,
	 * their handlers called with s->priv. Printed by --routes. */
	const struct ntm_http_route *const *routes;
	/* Checks the token of NTM_ROUTE_BEARER routes; called with s->priv. */
	ntm_bearer_fn	*bearer;
	/* optional: the token of a large body, checked before it is read */
	ntm_bearer_precheck_fn *bearer_precheck;
	/*
	 * Called once the identity, certificate, event base and HTTPS server
	 * exist, before listening (also under -n): open storage, set s->priv.
	 * On failure fill err with one line naming what is wrong.
	 */
	int		(*setup)(struct srv *s, char *err, size_t errlen);
	/* Called after listening and after going to the background, before
	 * the loop runs: threads start here. May be NULL. */
	int		(*start)(struct srv *s, char *err, size_t errlen);
	/* SIGHUP. May be NULL. */
	void		(*reload)(struct srv *s);
	/* Frees what setup and start made; called once the loop has ended.
	 * May be NULL. */
	void		(*teardown)(struct srv *s);
	/* The role's families for GET /metrics (metrics.c), after the common
	 * ones; s->priv is the daemon's state. May be NULL. */
	void		(*metrics)(struct srv *s, struct ntm_prom *p);
	/* POST /v1/revoke (not at the anchor): the accounts and tokens of the
	 * AS's push (m, decoded; its server certificates are kept by srv).
	 * 0 when stored (srv answers 200), else it answered. May be NULL. */
	int		(*revoke)(struct srv *s, struct ntm_req *req,
			    const struct ntm_m_revoke *m);
	/* s->cert was renewed (renew.c): the role's own signed requests take
	 * it. 0, or -1 (logged). May be NULL. */
	int		(*cert_renewed)(struct srv *s);
};

struct srv {
	const struct srv_spec	*spec;
	struct srv_conf		 conf;
	const char		*conf_path;
	int			 foreground, check_only, verbose;
	uint8_t			 sk[NTM_SIGN_SK];	/* identity (secret) */
	uint8_t			 pk[NTM_SIGN_PK];
	struct ntm_cert		 cert;			/* AS-issued, verified;
							   zero for the anchor */
	struct event_base	*base;
	struct ntm_httpd	*httpd;
	uint16_t		 port;			/* bound port */
	int64_t			 started;
	void			*priv;			/* the daemon's own state */
	struct srv_metrics	*metrics;		/* metrics.c */
	struct srv_revoked	*revoked;		/* revoked.c; NULL at the anchor */
	struct srv_renew	*renew;			/* renew.c; NULL at the anchor */
	/* The AS's name as its GET /v1/health gives it (renew.c), which
	 * requests to the AS name as their receiver; "" until known. */
	char			 as_name[NTM_NAME_MAX + 1];
};

/* The anchor's certificate for its own key (role as, signed by itself): what
 * it signs its requests and answers with. */
void srv_anchor_cert(const char *name, const uint8_t sk[NTM_SIGN_SK], struct ntm_cert *c);
/* A GET /v1/health answer's name (a valid DNS name) with *role its role, or
 * NULL (then *role NULL too): what requests to that server name it by. */
const char *srv_health_name(json_t *health, const char **role);
/* The AS's name, or NULL while unknown (requests then name no receiver). */
const char *srv_as_name(const struct srv *s);

/* renew.c: the certificate renewed before it expires (POST /v1/as/renew). */
int  srv_renew_start(struct srv *s, char *err, size_t errlen);
void srv_renew_stop(struct srv *s);

/* Entries of one revocation push (tokens, accounts and servers in all). */
#define SRV_REVOKE_MAX	4096

/* revoked.c: the server certificates the AS revoked (docs/protocol.md §7.5),
 * in state_dir/revoked-servers. */
int    srv_revoked_load(struct srv *s, char *err, size_t errlen);
void   srv_revoked_free(struct srv *s);
int    srv_revoked_has(const struct srv *s, uint64_t serial);
size_t srv_revoked_count(const struct srv *s);
/* Keeps the "servers" array of a push (may be NULL): how many serials are
 * new, or < 0 after answering req (400 naming the element, 500 if the file
 * cannot be written). */
int    srv_revoked_store(struct srv *s, struct ntm_req *req, json_t *servers);

/* The whole program: parses argv, runs a subcommand or the daemon. */
int srv_main(const struct srv_spec *spec, int argc, char *argv[]);

/* ---- metrics.c: GET /metrics ---------------------------------------------- */

/* Reads metrics_token_file and watches every request's latency; after the
 * routes are added. 0, or -1 with err (one line). */
int  srv_metrics_setup(struct srv *s, char *err, size_t errlen);
void srv_metrics_free(struct srv *s);
/* The handler of GET /metrics (arg: the struct srv). */
void srv_on_metrics(struct ntm_req *req, void *arg);

/* Prints "PROG: message" on stderr (one line, for subcommand errors). */
void srv_errx(const char *fmt, ...) NTM_PRINTF(1, 2);

#endif
