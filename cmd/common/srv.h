/*
 * srv.h - the bootstrap shared by the enrolled servers (ntm-dc, ntm-rs,
 * ntm-cs): option parsing, the init/pubkey subcommands, loading the config,
 * identity key, AS-issued certificate and TLS material, the HTTPS listener
 * with GET /v1/health and signed GET /v1/status, signals, pidfile and a
 * clean shutdown. Each daemon supplies a struct srv_spec and stays thin.
 */
#ifndef NTM_SRV_H
#define NTM_SRV_H

#include <stdint.h>

#include "common.h"

struct event_base;
struct srv;

/* A role-specific subcommand; argv[0] is its name. Returns the exit code. */
struct srv_cmd {
	const char	*name;
	int		(*fn)(struct srv *s, int argc, char *argv[]);
	const char	*usage;		/* e.g. "client list [--json]" */
	const char	*help;		/* one line */
};

struct srv_spec {
	int		 role;		/* NTM_ROLE_DC, NTM_ROLE_RS, NTM_ROLE_CS */
	const char	*prog;		/* "ntm-dc" */
	const char	*title;		/* "Direction Coordinator" */
	const char	*note;		/* extra paragraph for --help, or NULL */
	size_t		 max_body;	/* request body limit; 0: NTM_BODY_MAX */
	const struct srv_cmd *cmds;	/* role subcommands besides init/pubkey */
	size_t		 ncmds;
	/*
	 * Called once the identity, certificate, event base and HTTPS server
	 * exist, before listening (also under -n): open storage, add routes.
	 * On failure fill err with one line naming what is wrong.
	 */
	int		(*setup)(struct srv *s, char *err, size_t errlen);
	/* Frees what setup made; called once the loop has ended. May be NULL. */
	void		(*teardown)(struct srv *s);
};

struct srv {
	const struct srv_spec	*spec;
	struct srv_conf		 conf;
	const char		*conf_path;
	int			 foreground, check_only, verbose;
	uint8_t			 sk[NTM_SIGN_SK];	/* identity (secret) */
	uint8_t			 pk[NTM_SIGN_PK];
	struct ntm_cert		 cert;			/* AS-issued, verified */
	struct event_base	*base;
	struct ntm_httpd	*httpd;
	uint16_t		 port;			/* bound port */
	int64_t			 started;
	void			*priv;			/* the daemon's own state */
};

/* The whole program: parses argv, runs a subcommand or the daemon. */
int srv_main(const struct srv_spec *spec, int argc, char *argv[]);

/* Prints "PROG: message" on stderr (one line, for subcommand errors). */
void srv_errx(const char *fmt, ...) NTM_PRINTF(1, 2);

#endif
