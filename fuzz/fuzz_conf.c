/* fuzz_conf.c - libFuzzer harness for configuration files. The parser
 * takes a path, so each input is written to one private temp file (in
 * /dev/shm when it is writable). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ntm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[64];
static int fd = -1;

static void
cleanup(void)
{
	if (path[0] != '\0')
		unlink(path);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *name = NULL, *addr = NULL, err[256];
	long port = 0, count = 0;
	int debug = 0;
	const struct ntm_citem items[] = {
		{ "name", NTM_C_STR, &name, 0, 0 },
		{ "listen-addr", NTM_C_STR, &addr, 0, 0 },
		{ "port", NTM_C_INT, &port, 1, 65535 },
		{ "count", NTM_C_INT, &count, -10, 10 },
		{ "debug", NTM_C_BOOL, &debug, 0, 0 },
	};

	if (fd < 0) {
		/* memory (tmpfs) if there is one: a disk's journal is slow */
		snprintf(path, sizeof(path), "%s/ntm-fuzz-conf.XXXXXX",
		    access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
		if ((fd = mkstemp(path)) < 0)
			abort();
		atexit(cleanup);
	}
	if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
		abort();
	if (ntm_conf_load(path, items, sizeof(items) / sizeof(items[0]), err,
	    sizeof(err)) == 0) {
		if (port < 0 || port > 65535 || count < -10 || count > 10)
			abort();
	} else if (memchr(err, '\0', sizeof(err)) == NULL || err[0] == '\0')
		abort();
	free(name);
	free(addr);
	return 0;
}
