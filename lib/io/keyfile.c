/*
 * keyfile.c - secret key files and atomic whole-file writes.
 *
 * Files are replaced with temp + fsync + rename + fsync(dir), so a crash
 * leaves either the old or the new content, never a torn file.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "ntm.h"

#define KEY_MAX		1024	/* largest key ntm_key_save/load handle */

/* Copies the directory part of path ("." if none) into dir. */
static int
dir_of(const char *path, char *dir, size_t cap)
{
	const char *slash = strrchr(path, '/');
	size_t n;

	if (slash == NULL) {
		if (cap < 2)
			return NTM_ERR_TOOBIG;
		strcpy(dir, ".");
		return 0;
	}
	n = slash == path ? 1 : (size_t)(slash - path);
	if (n >= cap)
		return NTM_ERR_TOOBIG;
	memcpy(dir, path, n);
	dir[n] = '\0';
	return 0;
}

static int
write_all(int fd, const void *p, size_t n)
{
	const uint8_t *q = p;
	ssize_t w;

	while (n > 0) {
		if ((w = write(fd, q, n)) < 0) {
			if (errno == EINTR)
				continue;
			return NTM_ERR_IO;
		}
		q += w;
		n -= (size_t)w;
	}
	return 0;
}

static int file_write(const char *path, const void *p, size_t n, int mode, int durable);

int
ntm_file_write(const char *path, const void *p, size_t n, int mode)
{
	return file_write(path, p, n, mode, 1);
}

int
ntm_file_replace(const char *path, const void *p, size_t n, int mode)
{
	return file_write(path, p, n, mode, 0);
}

static int
file_write(const char *path, const void *p, size_t n, int mode, int durable)
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	int fd = -1, dfd, ret = NTM_ERR_IO, saved;

	if (path == NULL || *path == '\0' || (mode & ~07777) != 0)
		return NTM_ERR_INVAL;
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path) >= (int)sizeof(tmp))
		return NTM_ERR_TOOBIG;
	if ((ret = dir_of(path, dir, sizeof(dir))) < 0)
		return ret;
	ret = NTM_ERR_IO;
	/* mkstemp creates the file 0600, so a secret is never exposed even
	 * before the fchmod. */
	if ((fd = mkstemp(tmp)) < 0)
		return NTM_ERR_IO;
	if (fchmod(fd, (mode_t)mode) < 0)
		goto cleanup;
	if (write_all(fd, p, n) < 0)
		goto cleanup;
	if (durable && fsync(fd) < 0)
		goto cleanup;
	if (close(fd) < 0) {
		fd = -1;
		goto cleanup;
	}
	fd = -1;
	if (rename(tmp, path) < 0)
		goto cleanup;
	/* Make the rename itself durable. */
	if (durable && (dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	return 0;

cleanup:
	saved = errno;
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	errno = saved;
	return ret;
}

/*
 * Reads fd to the end, at most max bytes, into a new NUL-terminated buffer.
 * The buffer starts at the size fstat gave (hint) plus one byte, to see the
 * end or that the file is over max, and grows (up to max + 1) only if the
 * file grew since: a file of a few hundred bytes with a limit of megabytes
 * takes a few hundred bytes. A buffer left behind is wiped (key files).
 */
static int
read_fd(int fd, size_t max, size_t hint, char **out, size_t *len)
{
	char *buf, *nb;
	size_t cap, ncap, n = 0;
	ssize_t r;

	if (max > SIZE_MAX - 2)
		return NTM_ERR_TOOBIG;
	cap = (hint < max ? hint : max) + 1;
	if ((buf = malloc(cap + 1)) == NULL)
		return NTM_ERR_NOMEM;
	for (;;) {
		if (n == cap) {
			if (cap > max)
				break;
			ncap = cap > (max + 1) / 2 ? max + 1 : 2 * cap;
			if ((nb = malloc(ncap + 1)) == NULL) {
				sodium_memzero(buf, cap + 1);
				free(buf);
				return NTM_ERR_NOMEM;
			}
			memcpy(nb, buf, n);
			sodium_memzero(buf, cap + 1);
			free(buf);
			buf = nb;
			cap = ncap;
		}
		if ((r = read(fd, buf + n, cap - n)) < 0) {
			if (errno == EINTR)
				continue;
			sodium_memzero(buf, cap + 1);
			free(buf);
			return NTM_ERR_IO;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (n > max) {
		sodium_memzero(buf, cap + 1);
		free(buf);
		return NTM_ERR_TOOBIG;
	}
	buf[n] = '\0';
	*out = buf;
	if (len != NULL)
		*len = n;
	return 0;
}

int
ntm_file_read(const char *path, size_t max, char **out, size_t *len)
{
	struct stat st;
	int fd, ret;

	*out = NULL;
	if (path == NULL)
		return NTM_ERR_INVAL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return errno == ENOENT ? NTM_ERR_NOTFOUND : NTM_ERR_IO;
	if (fstat(fd, &st) < 0) {
		ret = NTM_ERR_IO;
		goto cleanup;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = NTM_ERR_INVAL;
		goto cleanup;
	}
	ret = read_fd(fd, max, (size_t)st.st_size, out, len);
cleanup:
	close(fd);
	return ret;
}

int
ntm_key_save(const char *path, const void *key, size_t n)
{
	char text[NTM_B64_LEN(KEY_MAX) + 1];
	int len, ret;

	if (n == 0 || n > KEY_MAX)
		return NTM_ERR_INVAL;
	if ((len = ntm_b64_encode(text, sizeof(text) - 1, key, n)) < 0)
		return len;
	text[len++] = '\n';
	ret = ntm_file_write(path, text, (size_t)len, 0600);
	sodium_memzero(text, sizeof(text));
	return ret;
}

int
ntm_key_load(const char *path, void *key, size_t n)
{
	struct stat st;
	char *text = NULL;
	size_t len = 0;
	int fd, ret;

	if (n == 0 || n > KEY_MAX)
		return NTM_ERR_INVAL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return errno == ENOENT ? NTM_ERR_NOTFOUND : NTM_ERR_IO;
	if (fstat(fd, &st) < 0) {
		ret = NTM_ERR_IO;
		goto cleanup;
	}
	if (!S_ISREG(st.st_mode) || (st.st_mode & 077) != 0) {
		ret = NTM_ERR_INVAL;
		goto cleanup;
	}
	if ((ret = read_fd(fd, NTM_B64_LEN(n) + 1, (size_t)st.st_size, &text, &len)) < 0) {
		if (ret == NTM_ERR_TOOBIG)
			ret = NTM_ERR_INVAL;
		goto cleanup;
	}
	/* Exactly the encoding and one optional newline. */
	if (len > 0 && text[len - 1] == '\n')
		text[--len] = '\0';
	if (strlen(text) != len) {
		ret = NTM_ERR_INVAL;
		goto cleanup;
	}
	ret = ntm_b64_decode_exact(key, n, text) < 0 ? NTM_ERR_INVAL : 0;
cleanup:
	if (text != NULL) {
		sodium_memzero(text, len + 1);
		free(text);
	}
	close(fd);
	return ret;
}

int
ntm_mkdirs(const char *path, int mode)
{
	char buf[PATH_MAX];
	struct stat st;
	size_t len;
	int created = 0;

	if (path == NULL || *path == '\0' || (mode & ~07777) != 0)
		return NTM_ERR_INVAL;
	if ((len = strlen(path)) >= sizeof(buf))
		return NTM_ERR_TOOBIG;
	memcpy(buf, path, len + 1);
	while (len > 1 && buf[len - 1] == '/')
		buf[--len] = '\0';

	for (char *p = buf + 1; ; p++) {
		int last = *p == '\0';

		if (*p != '/' && !last)
			continue;
		*p = '\0';
		created = 0;
		if (mkdir(buf, (mode_t)mode) == 0)
			created = 1;
		else if (errno != EEXIST)
			return NTM_ERR_IO;
		if (!last)
			*p = '/';
		else
			break;
		while (p[1] == '/')
			p++;
	}
	if (stat(buf, &st) < 0)
		return NTM_ERR_IO;
	if (!S_ISDIR(st.st_mode)) {
		errno = ENOTDIR;
		return NTM_ERR_IO;
	}
	/* Strict for private directories: an existing one that others can
	 * read is refused, not silently used. */
	if (!created && (mode & 077) == 0 && (st.st_mode & 077) != 0) {
		errno = EPERM;
		return NTM_ERR_INVAL;
	}
	return 0;
}
