/*
 * saved.c - what `ntm up` brings back after the agent restarts: the
 * forwards added at run time (`ntm tunnel forward`, forwards.c) and the
 * SOCKS5 address (`ntm up --socks5`), kept in STATE_DIR/agent.json (mode
 * 0600, written whole: temp file, fsync, rename):
 *
 *   {"version":1, "socks5":"127.0.0.1:1080" or null, "forwards":[REQ...]}
 *
 * REQ is a forward request as the control socket takes it ({"cmd":"forward",
 * ...}, docs/protocol.md §6, "Forwards"), replayed as it is at the next
 * start; forwards get new ids then. The file is rewritten whenever the set
 * changes; a missing file is an empty set, an unreadable one is reported
 * and then replaced at the next change.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "agentd.h"

#define SAVED_VERSION	1
#define SAVED_MAX	(256 * 1024)	/* 64 forwards are far less */

static struct {
	char	*path;
	json_t	*j;		/* {"version","socks5","forwards"} */
} sv;

static json_t *
saved_empty(void)
{
	return json_pack("{s:i, s:n, s:[]}", "version", SAVED_VERSION, "socks5", "forwards");
}

int
agent_saved_load(const struct cli *cli, char *err, size_t errlen)
{
	char *text = NULL;
	size_t len;
	struct ntm_jerr jerr;
	json_t *j = NULL, *fw, *socks;
	int r;

	json_decref(sv.j);
	free(sv.path);
	sv.path = cli_state_path(cli, AGENT_SAVED);
	sv.j = saved_empty();
	if ((r = ntm_file_read(sv.path, SAVED_MAX, &text, &len)) == NTM_ERR_NOTFOUND)
		return 0;
	if (r < 0) {
		snprintf(err, errlen, "%s: %s", sv.path, ntm_strerror(r));
		return -1;
	}
	j = ntm_json_parse(text, len, &jerr);
	free(text);
	if (j == NULL || !json_is_object(j) ||
	    json_integer_value(json_object_get(j, "version")) != SAVED_VERSION ||
	    !json_is_array(fw = json_object_get(j, "forwards")) ||
	    !((socks = json_object_get(j, "socks5")) == NULL || json_is_null(socks) ||
	    json_is_string(socks))) {
		snprintf(err, errlen, "%s: not a saved agent state (version %d): %s", sv.path,
		    SAVED_VERSION, j ? "unexpected fields" : jerr.message);
		json_decref(j);
		return -1;
	}
	json_decref(sv.j);
	sv.j = j;
	return 0;
}

static void
saved_write(void)
{
	char *text;
	int r;

	if (sv.path == NULL || (text = json_dumps(sv.j, JSON_INDENT(1))) == NULL)
		return;
	if ((r = ntm_file_write(sv.path, text, strlen(text), 0600)) < 0)
		log_warnx("cannot save the forwards and SOCKS5 address to %s: %s", sv.path,
		    ntm_strerror(r));
	free(text);
}

const char *
agent_saved_socks5(void)
{
	return sv.j ? json_string_value(json_object_get(sv.j, "socks5")) : NULL;
}

void
agent_saved_set_socks5(const char *spec)
{
	const char *now = agent_saved_socks5();

	if (sv.j == NULL || (spec == NULL && now == NULL) ||
	    (spec && now && strcmp(spec, now) == 0))
		return;
	json_object_set_new(sv.j, "socks5", spec ? json_string(spec) : json_null());
	saved_write();
}

json_t *
agent_saved_forwards(void)
{
	return sv.j ? json_object_get(sv.j, "forwards") : NULL;
}

void
agent_saved_set_forwards(json_t *arr)
{
	if (sv.j == NULL || arr == NULL) {
		json_decref(arr);
		return;
	}
	if (json_equal(arr, json_object_get(sv.j, "forwards"))) {
		json_decref(arr);
		return;
	}
	json_object_set_new(sv.j, "forwards", arr);
	saved_write();
}

void
agent_saved_free(void)
{
	json_decref(sv.j);
	free(sv.path);
	sv.j = NULL;
	sv.path = NULL;
}
