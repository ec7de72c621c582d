/*
 * libcurl.c - libcurl for the ntm binary, opened at the first call.
 *
 * Linking libcurl brings in some thirty libraries (its TLS, SSH, LDAP,
 * Kerberos, IDN and compression back ends), and their loading and symbol
 * binding cost each ntm process about 3.5 ms on a small machine: more than
 * the whole of `ntm status` or of a send carried by the agent. Most ntm
 * commands never speak HTTPS themselves, so ntm is linked without libcurl
 * and these definitions of the libcurl calls that ntm makes open
 * libcurl.so.4 with dlopen(3) the first time one of them runs, then call
 * through. The daemons link libcurl as usual.
 *
 * When libcurl cannot be opened, the calls fail as libcurl's own do when
 * out of resources (NULL handles, CURLE_FAILED_INIT), and every caller
 * already turns that into an error line; curl_easy_strerror says why.
 * The executable does not export these names (no -rdynamic), so libcurl's
 * own calls between its functions are never routed here.
 */
#define CURL_DISABLE_TYPECHECK	/* the real prototypes, not the checking macros */
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <curl/curl.h>

#define LIBCURL_SONAME	"libcurl.so.4"

/* Every call ntm makes (`nm -D --undefined-only` of an ntm linked with
 * -lcurl lists them); a new one is a link error until added here. */
#define CURL_CALLS(X) \
	X(CURLcode, global_init, (long)) \
	X(CURL *, easy_init, (void)) \
	X(void, easy_cleanup, (CURL *)) \
	X(void, easy_reset, (CURL *)) \
	X(CURLcode, easy_perform, (CURL *)) \
	X(CURLcode, easy_setopt, (CURL *, CURLoption, ...)) \
	X(CURLcode, easy_getinfo, (CURL *, CURLINFO, ...)) \
	X(const char *, easy_strerror, (CURLcode)) \
	X(CURLHcode, easy_header, (CURL *, const char *, size_t, unsigned int, int, \
	    struct curl_header **)) \
	X(void, free, (void *)) \
	X(struct curl_slist *, slist_append, (struct curl_slist *, const char *)) \
	X(void, slist_free_all, (struct curl_slist *)) \
	X(CURLM *, multi_init, (void)) \
	X(CURLMcode, multi_cleanup, (CURLM *)) \
	X(CURLMcode, multi_add_handle, (CURLM *, CURL *)) \
	X(CURLMcode, multi_remove_handle, (CURLM *, CURL *)) \
	X(CURLMcode, multi_setopt, (CURLM *, CURLMoption, ...)) \
	X(CURLMcode, multi_assign, (CURLM *, curl_socket_t, void *)) \
	X(CURLMcode, multi_socket_action, (CURLM *, curl_socket_t, int, int *)) \
	X(CURLMsg *, multi_info_read, (CURLM *, int *)) \
	X(CURLU *, url, (void)) \
	X(void, url_cleanup, (CURLU *)) \
	X(CURLUcode, url_get, (CURLU *, CURLUPart, char **, unsigned int)) \
	X(CURLUcode, url_set, (CURLU *, CURLUPart, const char *, unsigned int))

#define CURL_PTR(ret, name, args) ret (*name) args;
static struct {
	CURL_CALLS(CURL_PTR)
} lc;
static pthread_once_t lc_once = PTHREAD_ONCE_INIT;
static int lc_ok;
static char lc_why[160];

static void
lc_open(void)
{
	void *h, *p;

	if ((h = dlopen(LIBCURL_SONAME, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		snprintf(lc_why, sizeof(lc_why), "cannot open %s: %s", LIBCURL_SONAME,
		    dlerror());
		return;
	}
#define CURL_SYM(ret, name, args) \
	if ((p = dlsym(h, "curl_" #name)) == NULL) { \
		snprintf(lc_why, sizeof(lc_why), "%s has no curl_%s", LIBCURL_SONAME, #name); \
		return; \
	} \
	*(void **)&lc.name = p;
	CURL_CALLS(CURL_SYM)
	/* Before any other call, as libcurl asks; once for the process. */
	if (lc.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(lc_why, sizeof(lc_why), "cannot initialise libcurl");
		return;
	}
	lc_ok = 1;
}

static int
lc_have(void)
{
	pthread_once(&lc_once, lc_open);
	return lc_ok;
}

/* Opening libcurl initialises it; its resources go with the process. */
CURLcode
curl_global_init(long flags)
{
	(void)flags;
	return lc_have() ? CURLE_OK : CURLE_FAILED_INIT;
}

void
curl_global_cleanup(void)
{
}

CURL *
curl_easy_init(void)
{
	return lc_have() ? lc.easy_init() : NULL;
}

/* The calls below take a handle, a list or a string that only libcurl
 * made, so libcurl is open when they run. */
void
curl_easy_cleanup(CURL *c)
{
	if (c && lc_have())
		lc.easy_cleanup(c);
}

void
curl_easy_reset(CURL *c)
{
	if (lc_have())
		lc.easy_reset(c);
}

CURLcode
curl_easy_perform(CURL *c)
{
	return lc_have() ? lc.easy_perform(c) : CURLE_FAILED_INIT;
}

/*
 * An option's number says its argument's type (curl.h's CURLOPTTYPE_*):
 * a long below 10000, a pointer (object, string, list, callback, blob)
 * from there, a curl_off_t from 30000 to 39999.
 */
#define OPT_IS_LONG(o)	((o) < CURLOPTTYPE_OBJECTPOINT)
#define OPT_IS_OFF_T(o)	((o) >= CURLOPTTYPE_OFF_T && (o) < CURLOPTTYPE_BLOB)

CURLcode
curl_easy_setopt(CURL *c, CURLoption opt, ...)
{
	CURLcode rc;
	va_list ap;

	if (!lc_have())
		return CURLE_FAILED_INIT;
	va_start(ap, opt);
	if (OPT_IS_LONG(opt))
		rc = lc.easy_setopt(c, opt, va_arg(ap, long));
	else if (OPT_IS_OFF_T(opt))
		rc = lc.easy_setopt(c, opt, va_arg(ap, curl_off_t));
	else
		rc = lc.easy_setopt(c, opt, va_arg(ap, void *));
	va_end(ap);
	return rc;
}

/* Every CURLINFO_* takes a pointer to where the answer goes. */
CURLcode
curl_easy_getinfo(CURL *c, CURLINFO info, ...)
{
	CURLcode rc;
	va_list ap;

	if (!lc_have())
		return CURLE_FAILED_INIT;
	va_start(ap, info);
	rc = lc.easy_getinfo(c, info, va_arg(ap, void *));
	va_end(ap);
	return rc;
}

const char *
curl_easy_strerror(CURLcode rc)
{
	return lc_have() ? lc.easy_strerror(rc) : lc_why;
}

CURLHcode
curl_easy_header(CURL *c, const char *name, size_t index, unsigned int origin, int request,
    struct curl_header **h)
{
	return lc_have() ? lc.easy_header(c, name, index, origin, request, h) :
	    CURLHE_NOT_BUILT_IN;
}

void
curl_free(void *p)
{
	if (p && lc_have())
		lc.free(p);
}

struct curl_slist *
curl_slist_append(struct curl_slist *l, const char *s)
{
	return lc_have() ? lc.slist_append(l, s) : NULL;
}

void
curl_slist_free_all(struct curl_slist *l)
{
	if (l && lc_have())
		lc.slist_free_all(l);
}

CURLM *
curl_multi_init(void)
{
	return lc_have() ? lc.multi_init() : NULL;
}

CURLMcode
curl_multi_cleanup(CURLM *m)
{
	return lc_have() ? lc.multi_cleanup(m) : CURLM_BAD_HANDLE;
}

CURLMcode
curl_multi_add_handle(CURLM *m, CURL *c)
{
	return lc_have() ? lc.multi_add_handle(m, c) : CURLM_BAD_HANDLE;
}

CURLMcode
curl_multi_remove_handle(CURLM *m, CURL *c)
{
	return lc_have() ? lc.multi_remove_handle(m, c) : CURLM_BAD_HANDLE;
}

/* Multi options follow the same numbering as the easy ones. */
CURLMcode
curl_multi_setopt(CURLM *m, CURLMoption opt, ...)
{
	CURLMcode rc;
	va_list ap;

	if (!lc_have())
		return CURLM_BAD_HANDLE;
	va_start(ap, opt);
	if (OPT_IS_LONG(opt))
		rc = lc.multi_setopt(m, opt, va_arg(ap, long));
	else if (OPT_IS_OFF_T(opt))
		rc = lc.multi_setopt(m, opt, va_arg(ap, curl_off_t));
	else
		rc = lc.multi_setopt(m, opt, va_arg(ap, void *));
	va_end(ap);
	return rc;
}

CURLMcode
curl_multi_assign(CURLM *m, curl_socket_t fd, void *p)
{
	return lc_have() ? lc.multi_assign(m, fd, p) : CURLM_BAD_HANDLE;
}

CURLMcode
curl_multi_socket_action(CURLM *m, curl_socket_t fd, int ev, int *running)
{
	return lc_have() ? lc.multi_socket_action(m, fd, ev, running) : CURLM_BAD_HANDLE;
}

CURLMsg *
curl_multi_info_read(CURLM *m, int *left)
{
	return lc_have() ? lc.multi_info_read(m, left) : NULL;
}

CURLU *
curl_url(void)
{
	return lc_have() ? lc.url() : NULL;
}

void
curl_url_cleanup(CURLU *u)
{
	if (u && lc_have())
		lc.url_cleanup(u);
}

CURLUcode
curl_url_get(CURLU *u, CURLUPart part, char **out, unsigned int flags)
{
	return lc_have() ? lc.url_get(u, part, out, flags) : CURLUE_OUT_OF_MEMORY;
}

CURLUcode
curl_url_set(CURLU *u, CURLUPart part, const char *s, unsigned int flags)
{
	return lc_have() ? lc.url_set(u, part, s, flags) : CURLUE_OUT_OF_MEMORY;
}
