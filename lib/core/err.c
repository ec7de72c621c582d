/*
 * err.c - error texts and the stable codes used in JSON error bodies
 * (docs/protocol.md section 1.1).
 */
#include <string.h>

#include "ntm-core.h"

struct errinfo {
	const char	*code;
	const char	*text;
};

/* Indexed by -err. */
static const struct errinfo errtab[] = {
	[0]			= { "ok",			"success" },
	[-NTM_ERR_NOMEM]	= { "internal",			"out of memory" },
	[-NTM_ERR_INVAL]	= { "bad_field",		"invalid argument or value" },
	[-NTM_ERR_SHORT]	= { "short_input",		"input ends too early" },
	[-NTM_ERR_TRAILING]	= { "trailing_bytes",		"bytes left after a complete message" },
	[-NTM_ERR_TOOBIG]	= { "body_too_large",		"size limit exceeded" },
	[-NTM_ERR_CRYPTO]	= { "bad_signature",		"authentication or signature check failed" },
	[-NTM_ERR_EXPIRED]	= { "expired",			"outside its validity period" },
	[-NTM_ERR_REPLAY]	= { "replayed",			"seen before" },
	[-NTM_ERR_IO]		= { "io_error",			"system call failed" },
	[-NTM_ERR_DB]		= { "storage_error",		"storage failure" },
	[-NTM_ERR_JSON]		= { "bad_json",			"malformed or unexpected JSON" },
	[-NTM_ERR_NOTFOUND]	= { "not_found",		"no such object" },
	[-NTM_ERR_EXISTS]	= { "exists",			"object already exists" },
	[-NTM_ERR_BADPASS]	= { "bad_password",		"wrong password" },
	[-NTM_ERR_NOUSER]	= { "unknown_user",		"unknown user" },
	[-NTM_ERR_LOCKED]	= { "user_locked",		"account locked" },
	[-NTM_ERR_REVOKED]	= { "revoked",			"certificate or token revoked" },
	[-NTM_ERR_TIMEOUT]	= { "timeout",			"no answer in time" },
	[-NTM_ERR_CONNECT]	= { "connect_failed",		"could not connect" },
	[-NTM_ERR_TLS]		= { "tls_error",		"TLS setup or verification failed" },
	[-NTM_ERR_PROTO]	= { "protocol_error",		"peer sent something unexpected" },
	[-NTM_ERR_HTTP]		= { "http_error",		"HTTP error status from a peer" },
	[-NTM_ERR_STATE]	= { "bad_state",		"wrong state for this call" },
	[-NTM_ERR_NOSPACE]	= { "no_space",			"address pool or table full" },
	[-NTM_ERR_UNAUTH]	= { "unauthorized",		"request not authenticated" },
	[-NTM_ERR_UNAVAIL]	= { "upstream_unavailable",	"upstream server unavailable" },
	[-NTM_ERR_VERSION]	= { "bad_version",		"unsupported version" },
	[-NTM_ERR_UNTRUSTED]	= { "untrusted_certificate",	"certificate not signed by a trusted CA" },
	[-NTM_ERR_IDENTITY]	= { "peer_identity",		"a peer device's key or certificate does not match" },
};

static const struct errinfo *
lookup(int err)
{
	if (err > 0 || err <= NTM_ERR__LAST)
		return NULL;
	return &errtab[-err];
}

const char *
ntm_strerror(int err)
{
	const struct errinfo *e = lookup(err);

	return e ? e->text : "unknown error";
}

const char *
ntm_errcode(int err)
{
	const struct errinfo *e = lookup(err);

	return e ? e->code : "internal";
}

/* Codes a server may send that have no error of their own. */
static const struct {
	const char	*code;
	int		 err;
} aliases[] = {
	{ "not_object",		NTM_ERR_JSON },
	{ "unknown_field",	NTM_ERR_JSON },
	{ "missing_field",	NTM_ERR_JSON },
	{ "tls_required",	NTM_ERR_TLS },
	{ "method_not_allowed",	NTM_ERR_PROTO },
};

int
ntm_err_from_code(const char *code)
{
	size_t i;

	if (code == NULL)
		return NTM_ERR_PROTO;
	/* Index 1 ("internal", out of memory) is skipped: a remote internal
	 * failure is not our memory shortage, so it stays NTM_ERR_PROTO. */
	for (i = 2; i < sizeof(errtab) / sizeof(errtab[0]); i++)
		if (strcmp(errtab[i].code, code) == 0)
			return -(int)i;
	for (i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++)
		if (strcmp(aliases[i].code, code) == 0)
			return aliases[i].err;
	return NTM_ERR_PROTO;
}
