/*
 * conf.c - "key = value" configuration files.
 *
 * The whole file is parsed into temporaries first; the caller's outputs are
 * written only when every line was good, so a failed reload leaves the
 * running configuration untouched.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ntm.h"

#define CONF_FILE_MAX	(1024 * 1024)
#define CONF_ITEMS_MAX	256

union cval {
	char	*s;
	long	 l;
	int	 b;
};

static void
conf_err(char *errbuf, size_t errlen, const char *fmt, ...) NTM_PRINTF(3, 4);

static void
conf_err(char *errbuf, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errbuf == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(errbuf, errlen, fmt, ap);
	va_end(ap);
}

static char *
trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

static int
valid_key(const char *k)
{
	if (*k == '\0')
		return 0;
	for (; *k != '\0'; k++)
		if (!((*k >= 'a' && *k <= 'z') || (*k >= '0' && *k <= '9') ||
		    *k == '_' || *k == '-' || *k == '.'))
			return 0;
	return 1;
}

static int
parse_bool(const char *v, int *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcmp(v, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcmp(v, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return NTM_ERR_INVAL;
}

static int
parse_long(const char *v, long min, long max, long *out)
{
	char *end;
	long l;

	/* strtol skips leading space and takes '+'; insist on digits. */
	if (!(isdigit((unsigned char)v[0]) ||
	    (v[0] == '-' && isdigit((unsigned char)v[1]))))
		return NTM_ERR_INVAL;
	errno = 0;
	l = strtol(v, &end, 10);
	if (errno != 0 || *end != '\0' || l < min || l > max)
		return NTM_ERR_INVAL;
	*out = l;
	return 0;
}

int
ntm_conf_load(const char *path, const struct ntm_citem *items, size_t n,
    char *errbuf, size_t errlen)
{
	union cval vals[CONF_ITEMS_MAX];
	unsigned char seen[CONF_ITEMS_MAX];
	char *text = NULL, *line, *next;
	size_t len = 0, i;
	int ret, lineno = 0;

	if (errbuf != NULL && errlen > 0)
		errbuf[0] = '\0';
	if (path == NULL || n > CONF_ITEMS_MAX) {
		conf_err(errbuf, errlen, "invalid arguments");
		return NTM_ERR_INVAL;
	}
	memset(vals, 0, sizeof(vals));
	memset(seen, 0, sizeof(seen));
	if ((ret = ntm_file_read(path, CONF_FILE_MAX, &text, &len)) < 0) {
		if (ret == NTM_ERR_TOOBIG)
			conf_err(errbuf, errlen, "%s: larger than %d bytes",
			    path, CONF_FILE_MAX);
		else if (ret == NTM_ERR_IO || ret == NTM_ERR_NOTFOUND)
			conf_err(errbuf, errlen, "%s: %s", path, strerror(errno));
		else
			conf_err(errbuf, errlen, "%s: %s", path, ntm_strerror(ret));
		return ret;
	}
	if (strlen(text) != len) {
		conf_err(errbuf, errlen, "%s: contains a NUL byte", path);
		ret = NTM_ERR_INVAL;
		goto cleanup;
	}

	ret = NTM_ERR_INVAL;
	for (line = text; line != NULL; line = next) {
		char *eq, *key, *val;
		int idx = -1;

		lineno++;
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		line = trim(line);
		if (*line == '\0' || *line == '#')
			continue;
		if ((eq = strchr(line, '=')) == NULL) {
			conf_err(errbuf, errlen, "%s:%d: expected 'key = value', got '%.64s'",
			    path, lineno, line);
			goto cleanup;
		}
		*eq = '\0';
		key = trim(line);
		val = trim(eq + 1);
		if (!valid_key(key)) {
			conf_err(errbuf, errlen, "%s:%d: invalid key '%.64s'",
			    path, lineno, key);
			goto cleanup;
		}
		for (i = 0; i < n; i++)
			if (strcmp(items[i].key, key) == 0) {
				idx = (int)i;
				break;
			}
		if (idx < 0) {
			conf_err(errbuf, errlen, "%s:%d: unknown key '%.64s'",
			    path, lineno, key);
			goto cleanup;
		}
		if (seen[idx]) {
			conf_err(errbuf, errlen, "%s:%d: duplicate key '%s'",
			    path, lineno, key);
			goto cleanup;
		}
		if (*val == '\0') {
			conf_err(errbuf, errlen, "%s:%d: '%s' has no value",
			    path, lineno, key);
			goto cleanup;
		}
		switch (items[idx].type) {
		case NTM_C_STR:
			if ((vals[idx].s = strdup(val)) == NULL) {
				conf_err(errbuf, errlen, "out of memory");
				ret = NTM_ERR_NOMEM;
				goto cleanup;
			}
			break;
		case NTM_C_INT:
			if (parse_long(val, items[idx].min, items[idx].max,
			    &vals[idx].l) < 0) {
				conf_err(errbuf, errlen, "%s:%d: '%s': expected an "
				    "integer in %ld..%ld, got '%.64s'", path, lineno,
				    key, items[idx].min, items[idx].max, val);
				goto cleanup;
			}
			break;
		case NTM_C_BOOL:
			if (parse_bool(val, &vals[idx].b) < 0) {
				conf_err(errbuf, errlen, "%s:%d: '%s': expected yes "
				    "or no, got '%.64s'", path, lineno, key, val);
				goto cleanup;
			}
			break;
		default:
			conf_err(errbuf, errlen, "%s:%d: '%s': bad item type",
			    path, lineno, key);
			goto cleanup;
		}
		seen[idx] = 1;
	}

	for (i = 0; i < n; i++) {
		if (!seen[i] || items[i].out == NULL)
			continue;
		switch (items[i].type) {
		case NTM_C_STR:
			/* Overwritten, not freed: the old value may be a
			 * default the caller does not own. */
			*(char **)items[i].out = vals[i].s;
			vals[i].s = NULL;
			break;
		case NTM_C_INT:
			*(long *)items[i].out = vals[i].l;
			break;
		case NTM_C_BOOL:
			*(int *)items[i].out = vals[i].b;
			break;
		}
	}
	ret = 0;

cleanup:
	for (i = 0; i < n; i++)
		if (items[i].type == NTM_C_STR)
			free(vals[i].s);
	free(text);
	return ret;
}
