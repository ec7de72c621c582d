/* test_conf.c - configuration file parsing. */
#include <dirent.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <unistd.h>

#include "ntm.h"
#include "unit.h"

static char path[64];

struct conf {
	char	*name;
	long	 port;
	int	 debug;
};

static int
load(const char *text, struct conf *c, char *err, size_t errlen)
{
	const struct ntm_citem items[] = {
		{ "name", NTM_C_STR, &c->name, 0, 0 },
		{ "port", NTM_C_INT, &c->port, 1, 65535 },
		{ "debug", NTM_C_BOOL, &c->debug, 0, 0 },
	};

	if (path[0] == '\0') {
		int fd;

		snprintf(path, sizeof(path), "/tmp/ntm-test-conf.XXXXXX");
		if ((fd = mkstemp(path)) < 0)
			abort();
		close(fd);
	}
	if (ntm_file_write(path, text, strlen(text), 0600) != 0)
		abort();
	return ntm_conf_load(path, items, 3, err, errlen);
}

TEST(table)
{
	static const struct {
		const char *text;
		int err;
		const char *msg;	/* after "path:" */
		const char *name;
		long port;
		int debug;
	} cases[] = {
		{ "", 0, NULL, NULL, 0, -1 },
		{ "# comment\n\n  \nname = dc1.ntm.test\nport=443\ndebug = yes\n",
		  0, NULL, "dc1.ntm.test", 443, 1 },
		{ "name = a b c  \r\ndebug=off", 0, NULL, "a b c", 0, 0 },
		{ "port = 1\n", 0, NULL, NULL, 1, -1 },
		{ "port = 65535\n", 0, NULL, NULL, 65535, -1 },
		{ "\n\nfoo = 1\n", NTM_ERR_INVAL, "3: unknown key 'foo'", NULL, 0, 0 },
		{ "port = 1\nport = 2\n", NTM_ERR_INVAL, "2: duplicate key 'port'", NULL, 0, 0 },
		{ "port = 0\n", NTM_ERR_INVAL,
		  "1: 'port': expected an integer in 1..65535, got '0'", NULL, 0, 0 },
		{ "# x\nport = 65536\n", NTM_ERR_INVAL,
		  "2: 'port': expected an integer in 1..65535, got '65536'", NULL, 0, 0 },
		{ "port = 12ab\n", NTM_ERR_INVAL,
		  "1: 'port': expected an integer in 1..65535, got '12ab'", NULL, 0, 0 },
		{ "port = +1\n", NTM_ERR_INVAL,
		  "1: 'port': expected an integer in 1..65535, got '+1'", NULL, 0, 0 },
		{ "port = 99999999999999999999999\n", NTM_ERR_INVAL,
		  "1: 'port': expected an integer in 1..65535, got '99999999999999999999999'", NULL, 0, 0 },
		{ "debug = maybe\n", NTM_ERR_INVAL,
		  "1: 'debug': expected yes or no, got 'maybe'", NULL, 0, 0 },
		{ "name\n", NTM_ERR_INVAL, "1: expected 'key = value', got 'name'", NULL, 0, 0 },
		{ "name =\n", NTM_ERR_INVAL, "1: 'name' has no value", NULL, 0, 0 },
		{ " = x\n", NTM_ERR_INVAL, "1: invalid key ''", NULL, 0, 0 },
		{ "Name = x\n", NTM_ERR_INVAL, "1: invalid key 'Name'", NULL, 0, 0 },
		{ "name = x # not a comment\nport = x\n", NTM_ERR_INVAL,
		  "2: 'port': expected an integer in 1..65535, got 'x'", NULL, 0, 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct conf c = { NULL, 0, -1 };
		char err[256], want[256];
		int ret = load(cases[i].text, &c, err, sizeof(err));

		CHECK_EQ(ret, cases[i].err);
		if (cases[i].err == 0) {
			CHECK_STR(err, "");
			if (cases[i].name != NULL)
				CHECK_STR(c.name, cases[i].name);
			else
				CHECK(c.name == NULL);
			CHECK_EQ(c.port, cases[i].port);
			CHECK_EQ(c.debug, cases[i].debug);
		} else {
			snprintf(want, sizeof(want), "%s:%s", path, cases[i].msg);
			CHECK_STR(err, want);
			/* Nothing is stored from a bad file. */
			CHECK(c.name == NULL);
			CHECK_EQ(c.port, 0);
			CHECK_EQ(c.debug, -1);
		}
		free(c.name);
	}
}

TEST(files)
{
	struct ntm_citem items[] = { { "a", NTM_C_INT, NULL, 0, 10 } };
	char err[256];

	CHECK_EQ(ntm_conf_load("/nonexistent/ntm.conf", items, 1, err,
	    sizeof(err)), NTM_ERR_NOTFOUND);
	CHECK(strstr(err, "/nonexistent/ntm.conf: ") == err);
	/* NUL bytes are refused. */
	CHECK_EQ(ntm_file_write(path, "a = 1\n\0", 7, 0600), 0);
	CHECK_EQ(ntm_conf_load(path, items, 1, err, sizeof(err)), NTM_ERR_INVAL);
	CHECK(strstr(err, "NUL") != NULL);
	/* Small error buffers truncate, never overflow. */
	CHECK_EQ(ntm_file_write(path, "b = 1\n", 6, 0600), 0);
	CHECK_EQ(ntm_conf_load(path, items, 1, err, 4), NTM_ERR_INVAL);
	CHECK_EQ(strlen(err), 3);
	CHECK_EQ(ntm_conf_load(path, items, 1, NULL, 0), NTM_ERR_INVAL);
	unlink(path);
}

/* ntm_file_replace: the whole new content or the old, the mode given, no
 * temporary file left behind. */
TEST(replace)
{
	char *text = NULL, dir[sizeof(path)], *slash;
	struct stat st;
	size_t len = 0;
	DIR *d;
	struct dirent *e;
	int others = 0;

	CHECK_EQ(ntm_file_replace(path, "first\n", 6, 0640), 0);
	CHECK_EQ(ntm_file_replace(path, "second\n", 7, 0600), 0);
	CHECK_EQ(ntm_file_read(path, 64, &text, &len), 0);
	CHECK_EQ(len, 7);
	CHECK(memcmp(text, "second\n", 7) == 0);
	free(text);
	CHECK_EQ(stat(path, &st), 0);
	CHECK_EQ(st.st_mode & 07777, 0600);
	CHECK_EQ(ntm_file_replace(path, "x", 1, 010000), NTM_ERR_INVAL);
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	CHECK(slash != NULL);
	*slash = '\0';
	CHECK((d = opendir(dir)) != NULL);
	while ((e = readdir(d)) != NULL)
		if (strncmp(e->d_name, slash + 1, strlen(slash + 1)) == 0 &&
		    strcmp(e->d_name, slash + 1) != 0)
			others++;
	closedir(d);
	CHECK_EQ(others, 0);
	unlink(path);
}

UNIT_MAIN(T(table), T(files), T(replace))
