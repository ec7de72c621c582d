/*
 * profile.c - where a client keeps its state: the config dir (ntm.conf),
 * the state dir (device id, session.json, shell history). `-c DIR` or
 * $NTM_PROFILE makes DIR both, so several clients run side by side.
 */
#include <sys/stat.h>

#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common.h"
#include "ntm-cli.h"

#define SESSION_FILE	"session.json"
#define DEVICE_FILE	"device"
#define CONF_FILE	"ntm.conf"
#define SESSION_MAX	(16 * 1024)

static const char *
home_dir(void)
{
	const char *h = getenv("HOME");
	struct passwd *pw;

	if (h && *h == '/')
		return h;
	if ((pw = getpwuid(getuid())) != NULL && pw->pw_dir && *pw->pw_dir == '/')
		return pw->pw_dir;
	return NULL;
}

/* $VAR/ntm if VAR is an absolute path (XDG says ignore relative ones),
 * else ~/fallback/ntm. */
static char *
xdg_dir(const char *var, const char *fallback)
{
	const char *v = getenv(var), *home;

	if (v && *v == '/')
		return xasprintf("%s/ntm", v);
	if ((home = home_dir()) == NULL)
		return NULL;
	return xasprintf("%s/%s/ntm", home, fallback);
}

static int
load_conf(struct cli *cli, char *err, size_t errlen)
{
	struct cli_conf *c = &cli->conf;
	char *path, *ca = NULL;
	const struct ntm_citem items[] = {
		{ "dc", NTM_C_STR, &c->dc, 0, 0 },
		{ "user", NTM_C_STR, &c->user, 0, 0 },
		{ "ca_file", NTM_C_STR, &ca, 0, 0 },
		{ "timeout", NTM_C_INT, &c->timeout, 1, NTM_CLI_TIMEOUT_MAX },
		{ "dc_udp", NTM_C_STR, &c->dc_udp, 0, 0 },
		{ "resolver", NTM_C_STR, &c->resolver, 0, 0 },
		{ "as_key", NTM_C_STR, &c->as_key, 0, 0 },
	};
	int ret = 0;

	path = xasprintf("%s/%s", cli->config_dir, CONF_FILE);
	if (access(path, F_OK) < 0 && errno == ENOENT)
		goto done;
	if (ntm_conf_load(path, items, sizeof(items) / sizeof(items[0]),
	    err, errlen) < 0) {
		ret = EXIT_USAGE;
		goto done;
	}
	if (ca) {
		if (*ca == '/' || *ca == '\0')
			c->ca_file = ca;
		else {
			c->ca_file = xasprintf("%s/%s", cli->config_dir, ca);
			free(ca);
		}
	}
done:
	free(path);
	return ret;
}

/* dir as an absolute path (new): a detached agent works from / and reads
 * its profile's files long after `ntm -c DIR up` returned. */
static char *
abs_dir(const char *dir)
{
	char cwd[PATH_MAX];

	if (dir[0] == '/' || getcwd(cwd, sizeof(cwd)) == NULL)
		return xstrdup(dir);
	return xasprintf("%s/%s", strcmp(cwd, "/") == 0 ? "" : cwd, dir);
}

int
cli_init(struct cli *cli, const char *dir, int verbose, char *err, size_t errlen)
{
	memset(cli, 0, sizeof(*cli));
	cli->verbose = verbose;
	if (dir == NULL && (dir = getenv("NTM_PROFILE")) != NULL && *dir == '\0')
		dir = NULL;
	if (dir) {
		cli->config_dir = abs_dir(dir);
		cli->state_dir = abs_dir(dir);
	} else {
		cli->config_dir = xdg_dir("XDG_CONFIG_HOME", ".config");
		cli->state_dir = xdg_dir("XDG_STATE_HOME", ".local/state");
		if (cli->config_dir == NULL || cli->state_dir == NULL) {
			snprintf(err, errlen, "cannot find the home directory "
			    "(set HOME, XDG_CONFIG_HOME and XDG_STATE_HOME, or use -c DIR)");
			cli_free(cli);
			return EXIT_USAGE;
		}
	}
	return load_conf(cli, err, errlen);
}

void
cli_free(struct cli *cli)
{
	free(cli->config_dir);
	free(cli->state_dir);
	free(cli->conf.dc);
	free(cli->conf.user);
	free(cli->conf.ca_file);
	free(cli->conf.dc_udp);
	free(cli->conf.resolver);
	free(cli->conf.as_key);
	memset(cli, 0, sizeof(*cli));
}

char *
cli_state_path(const struct cli *cli, const char *name)
{
	return xasprintf("%s/%s", cli->state_dir, name);
}

int
cli_state_mkdir(const struct cli *cli)
{
	return ntm_mkdirs(cli->state_dir, 0700);
}

int
cli_state_prepare(const struct cli *cli, const char *cmd)
{
	struct stat st;
	int err;

	if (stat(cli->state_dir, &st) == 0) {
		if (!S_ISDIR(st.st_mode)) {
			cli_err(cmd, "state dir '%s': not a directory", cli->state_dir);
			return -1;
		}
		if (st.st_uid != geteuid()) {
			cli_err(cmd, "state dir '%s': not owned by you", cli->state_dir);
			return -1;
		}
		if (st.st_mode & 077) {
			cli_err(cmd, "state dir '%s': accessible by group or others "
			    "(run: chmod 700 '%s')", cli->state_dir, cli->state_dir);
			return -1;
		}
		return 0;
	}
	if ((err = cli_state_mkdir(cli)) < 0) {
		cli_err(cmd, "cannot create the state dir '%s': %s", cli->state_dir,
		    err == NTM_ERR_IO ? strerror(errno) : ntm_strerror(err));
		return -1;
	}
	return 0;
}

long
cli_timeout(const struct cli *cli, long opt)
{
	if (opt > 0)
		return opt;
	if (cli->conf.timeout > 0)
		return cli->conf.timeout;
	return NTM_CLI_TIMEOUT_DEF;
}

int
cli_device_set(const struct cli *cli, const char *id)
{
	char *path, *line;
	int ret;

	if (!ntm_valid_device(id))
		return NTM_ERR_INVAL;
	if ((ret = cli_state_mkdir(cli)) < 0)
		return ret;
	path = cli_state_path(cli, DEVICE_FILE);
	line = xasprintf("%s\n", id);
	ret = ntm_file_write(path, line, strlen(line), 0600);
	free(line);
	free(path);
	return ret;
}

int
cli_device_get(const struct cli *cli, char out[NTM_DEVICE_MAX + 1])
{
	uint8_t rnd[16];
	char *path, *text = NULL;
	size_t len;
	int ret;

	path = cli_state_path(cli, DEVICE_FILE);
	if (access(path, F_OK) == 0 || errno != ENOENT) {
		if ((ret = ntm_file_read(path, 256, &text, &len)) == 0) {
			text[strcspn(text, "\r\n")] = '\0';
			ret = NTM_ERR_INVAL;
			if (ntm_valid_device(text)) {
				snprintf(out, NTM_DEVICE_MAX + 1, "%s", text);
				ret = 0;
			}
			free(text);
		}
		free(path);
		return ret;
	}
	free(path);
	ntm_random(rnd, sizeof(rnd));
	if ((ret = ntm_hex_encode(out, NTM_DEVICE_MAX + 1, rnd, sizeof(rnd))) < 0)
		return ret;
	return cli_device_set(cli, out);
}

/* ---- session.json ------------------------------------------------------- */

void
session_free(struct session *s)
{
	char **secrets[] = { &s->token, &s->rx, &s->tx };

	for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
		if (*secrets[i])
			ntm_wipe(*secrets[i], strlen(*secrets[i]));
	for (int i = 0; i < s->ncs_tokens; i++) {
		ntm_wipe(s->cs_tokens[i], strlen(s->cs_tokens[i]));
		free(s->cs_tokens[i]);
	}
	free(s->dc_url);
	free(s->ca_file);
	free(s->user);
	free(s->device);
	free(s->fqdn);
	free(s->vip4);
	free(s->vip6);
	free(s->domain);
	free(s->token);
	free(s->session_id);
	free(s->dc_key);
	free(s->rx);
	free(s->tx);
	memset(s, 0, sizeof(*s));
}

int
session_save(const struct cli *cli, const struct session *s)
{
	json_t *j;
	char *text = NULL, *path = NULL;
	int ret;

	if ((ret = cli_state_mkdir(cli)) < 0)
		return ret;
	j = json_pack("{s:i, s:s, s:s*, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:s,"
	    " s:s, s:s, s:s, s:I}",
	    "version", 1,
	    "dc_url", s->dc_url, "ca_file", s->ca_file,
	    "user", s->user, "device", s->device, "fqdn", s->fqdn,
	    "vip4", s->vip4, "vip6", s->vip6, "domain", s->domain,
	    "token", s->token, "token_expires", (json_int_t)s->token_expires,
	    "session_id", s->session_id, "dc_key", s->dc_key,
	    "rx", s->rx, "tx", s->tx, "login_time", (json_int_t)s->login_time);
	if (j == NULL)
		return NTM_ERR_NOMEM;
	if (s->ncs_tokens > 0) {
		json_t *a = json_array();

		for (int i = 0; i < s->ncs_tokens; i++)
			json_array_append_new(a, json_string(s->cs_tokens[i]));
		json_object_set_new(j, "cs_tokens", a);
	}
	text = json_dumps(j, JSON_INDENT(2));
	json_decref(j);
	if (text == NULL)
		return NTM_ERR_NOMEM;
	path = cli_state_path(cli, SESSION_FILE);
	ret = ntm_file_write(path, text, strlen(text), 0600);
	ntm_wipe(text, strlen(text));
	free(text);
	free(path);
	return ret;
}

int
session_load(const struct cli *cli, struct session *s, char *err, size_t errlen)
{
	const char *dc_url = NULL, *ca_file = NULL, *user = NULL, *device = NULL,
	    *fqdn = NULL, *vip4 = NULL, *vip6 = NULL, *domain = NULL, *token = NULL,
	    *session_id = NULL, *dc_key = NULL, *rx = NULL, *tx = NULL;
	int64_t version = 0, expires = 0, login_time = 0;
	json_t *cs = NULL, *v;
	size_t i;
	const struct ntm_jfield fields[] = {
		{ "version", NTM_J_INT, 1, &version, 0 },
		{ "dc_url", NTM_J_STR, 1, &dc_url, NTM_URL_MAX },
		{ "ca_file", NTM_J_STR, 0, &ca_file, PATH_MAX },
		{ "user", NTM_J_STR, 1, &user, NTM_USER_MAX },
		{ "device", NTM_J_STR, 1, &device, NTM_DEVICE_MAX },
		{ "fqdn", NTM_J_STR, 1, &fqdn, NTM_NAME_MAX },
		{ "vip4", NTM_J_STR, 1, &vip4, 64 },
		{ "vip6", NTM_J_STR, 1, &vip6, 64 },
		{ "domain", NTM_J_STR, 1, &domain, NTM_NAME_MAX },
		{ "token", NTM_J_STR, 1, &token, 4096 },
		{ "token_expires", NTM_J_INT, 1, &expires, 0 },
		{ "session_id", NTM_J_STR, 1, &session_id, 64 },
		{ "dc_key", NTM_J_STR, 1, &dc_key, 64 },
		{ "rx", NTM_J_STR, 1, &rx, 64 },
		{ "tx", NTM_J_STR, 1, &tx, 64 },
		{ "login_time", NTM_J_INT, 0, &login_time, 0 },
		{ "cs_tokens", NTM_J_ARR, 0, &cs, 0 },
	};
	struct ntm_jerr jerr;
	struct stat st;
	char *path, *text = NULL;
	size_t len;
	json_t *j = NULL;
	int ret;

	memset(s, 0, sizeof(*s));
	path = cli_state_path(cli, SESSION_FILE);
	if (stat(path, &st) < 0) {
		ret = errno == ENOENT ? NTM_ERR_NOTFOUND : NTM_ERR_IO;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	if ((ret = ntm_file_read(path, SESSION_MAX, &text, &len)) < 0) {
		snprintf(err, errlen, "%s: %s", path, ntm_strerror(ret));
		goto out;
	}
	if ((j = ntm_json_parse(text, len, &jerr)) == NULL ||
	    ntm_json_unpack(j, fields, sizeof(fields) / sizeof(fields[0]), &jerr) < 0) {
		snprintf(err, errlen, "%s: %s", path, jerr.message);
		ret = NTM_ERR_JSON;
		goto out;
	}
	if (version != 1) {
		snprintf(err, errlen, "%s: unsupported version %lld", path, (long long)version);
		ret = NTM_ERR_VERSION;
		goto out;
	}
	if (json_array_size(cs) > NTM_CS_TOKENS_MAX) {
		snprintf(err, errlen, "%s: more than %d cs_tokens", path, NTM_CS_TOKENS_MAX);
		ret = NTM_ERR_JSON;
		goto out;
	}
	json_array_foreach(cs, i, v) {
		if (!json_is_string(v) || json_string_length(v) > 4096) {
			snprintf(err, errlen, "%s: cs_tokens[%zu]: expected a token", path, i);
			ret = NTM_ERR_JSON;
			goto out;
		}
	}
	s->dc_url = xstrdup(dc_url);
	s->ca_file = ca_file ? xstrdup(ca_file) : NULL;
	s->user = xstrdup(user);
	s->device = xstrdup(device);
	s->fqdn = xstrdup(fqdn);
	s->vip4 = xstrdup(vip4);
	s->vip6 = xstrdup(vip6);
	s->domain = xstrdup(domain);
	s->token = xstrdup(token);
	s->token_expires = expires;
	s->session_id = xstrdup(session_id);
	s->dc_key = xstrdup(dc_key);
	s->rx = xstrdup(rx);
	s->tx = xstrdup(tx);
	s->login_time = login_time;
	json_array_foreach(cs, i, v)
		s->cs_tokens[s->ncs_tokens++] = xstrdup(json_string_value(v));
	ret = 0;
out:
	json_decref(j);
	if (text) {
		ntm_wipe(text, len);
		free(text);
	}
	free(path);
	return ret;
}

int
session_remove(const struct cli *cli)
{
	char *path = cli_state_path(cli, SESSION_FILE);
	int ret = 0;

	if (unlink(path) < 0)
		ret = errno == ENOENT ? NTM_ERR_NOTFOUND : NTM_ERR_IO;
	free(path);
	return ret;
}
