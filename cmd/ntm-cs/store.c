/*
 * store.c - the object files. An upload is appended to objects/tmp/<id>;
 * a commit fsyncs it, checks its SHA-256, renames it to objects/xx/<sha256>
 * and fsyncs that directory, all before the metadata row is written
 * (db.c): a row names only a complete, durable file, and a crash at any
 * point leaves at worst a stray file that cs_store_sweep() removes.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "cs.h"

#define HASH_BUF	(256 * 1024)

int
cs_store_init(struct cs *cs, char *err, size_t errlen)
{
	int e;

	cs->objdir = xasprintf("%s/objects", cs->srv->conf.state_dir);
	cs->tmpdir = xasprintf("%s/tmp", cs->objdir);
	if ((e = ntm_mkdirs(cs->tmpdir, 0700)) < 0) {
		snprintf(err, errlen, "%s: %s", cs->tmpdir,
		    e == NTM_ERR_IO ? strerror(errno) : ntm_strerror(e));
		return -1;
	}
	return 0;
}

void
cs_tmp_path(const struct cs *cs, const char *id, char *out, size_t cap)
{
	snprintf(out, cap, "%s/%s", cs->tmpdir, id);
}

int
cs_tmp_create(struct cs *cs, const char *id)
{
	char path[PATH_MAX];
	int fd;

	cs_tmp_path(cs, id, path, sizeof(path));
	if ((fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)) < 0)
		return NTM_ERR_IO;
	return close(fd) == 0 ? 0 : NTM_ERR_IO;
}

int
cs_tmp_open(struct cs *cs, const char *id, struct cs_tmpfile *f)
{
	char path[PATH_MAX];
	int fd;

	memset(f, 0, sizeof(*f));
	cs_tmp_path(cs, id, path, sizeof(path));
	/* Never O_CREAT: the file is made empty when the upload is, and a
	 * chunk of an upload that was dropped must not bring it back. */
	if ((fd = open(path, O_WRONLY | O_CLOEXEC)) < 0)
		return errno == ENOENT ? NTM_ERR_NOTFOUND : NTM_ERR_IO;
	f->open = 1;
	f->fd = fd;
	f->flags = fcntl(fd, F_GETFL);
	f->direct = f->flags >= 0;	/* until a file system refuses it */
	return 0;
}

void
cs_tmp_close(struct cs_tmpfile *f)
{
	if (f->open)
		close(f->fd);
	f->open = 0;
}

/* O_DIRECT on or off for the next write; 0, or -1 when it cannot be. */
static int
set_direct(struct cs_tmpfile *f, int on)
{
	if (on == f->on)
		return 0;
	if (fcntl(f->fd, F_SETFL, on ? f->flags | O_DIRECT : f->flags & ~O_DIRECT) < 0)
		return -1;
	f->on = on;
	return 0;
}

/*
 * The bytes of an upload go to the disk from the piece's own memory
 * (O_DIRECT) when the piece and its offset are aligned, as they are but
 * for a resumed upload's odd offset and an object's last bytes: they are
 * not copied into the page cache, where they would only wait for the
 * commit's fsync (the recipient reads them later, often much later), and
 * nothing is left for that fsync but the file's metadata. The rest, and
 * everything on a file system that refuses O_DIRECT, is written through
 * the page cache and handed to the disk in runs of at least
 * CS_WRITEBACK_LAG, that much behind the end (so a page just written is
 * never waited on).
 * Nothing here needs to be durable: a commit fsyncs, and one after a crash
 * reads the file back and checks its hash.
 */
int
cs_tmp_append(struct cs_tmpfile *f, uint64_t offset, const void *p, size_t len)
{
	const uint8_t *b = p;
	struct stat st;
	size_t want;
	ssize_t n;
	int dio;

	/* Right after the piece before it, or that one failed: no hole. */
	if (fstat(f->fd, &st) < 0)
		return NTM_ERR_IO;
	if ((uint64_t)st.st_size != offset)
		return NTM_ERR_SHORT;
	while (len > 0) {
		dio = f->direct && offset % CS_DIO_ALIGN == 0 &&
		    (uintptr_t)b % CS_DIO_ALIGN == 0 && len >= CS_DIO_ALIGN;
		want = dio ? len - len % CS_DIO_ALIGN : len;
		if (set_direct(f, dio) < 0) {
			f->direct = 0;
			continue;
		}
		if ((n = pwrite(f->fd, b, want, (off_t)offset)) < 0) {
			if (errno == EINTR)
				continue;
			if (dio && errno == EINVAL) {
				f->direct = 0;	/* this file system will not */
				continue;
			}
			return NTM_ERR_IO;
		}
		b += n;
		len -= (size_t)n;
		offset += (uint64_t)n;
	}
	if (offset >= f->wb + 2 * (uint64_t)CS_WRITEBACK_LAG) {
		(void)sync_file_range(f->fd, (off_t)f->wb,
		    (off_t)(offset - CS_WRITEBACK_LAG - f->wb), SYNC_FILE_RANGE_WRITE);
		f->wb = offset - CS_WRITEBACK_LAG;
	}
	return 0;
}

/* ---- running hashes ------------------------------------------------------- */

static struct cs_hash *
hash_find(struct cs *cs, const char *id)
{
	for (int i = 0; i < CS_HASHES; i++)
		if (strcmp(cs->hashes[i].id, id) == 0)
			return &cs->hashes[i];
	return NULL;
}

static void
hash_free(struct cs_hash *e)
{
	ntm_sha256_free(&e->h);
	memset(e, 0, sizeof(*e));
}

void
cs_hash_drop(struct cs *cs, const char *id)
{
	struct cs_hash *e;

	pthread_mutex_lock(&cs->hash_lock);
	if ((e = hash_find(cs, id)) != NULL)
		hash_free(e);
	pthread_mutex_unlock(&cs->hash_lock);
}

void
cs_hash_add(struct cs *cs, const char *id, uint64_t offset, const void *p, size_t len)
{
	struct cs_hash *e, *old;
	int i;

	pthread_mutex_lock(&cs->hash_lock);
	e = hash_find(cs, id);
	if (e && e->at != offset)
		hash_free(e), e = NULL;	/* a gap (resumed elsewhere): read back at commit */
	if (e == NULL) {
		if (offset != 0)
			goto out;
		for (old = &cs->hashes[0], i = 0; i < CS_HASHES; i++) {
			if (cs->hashes[i].id[0] == '\0') {
				old = &cs->hashes[i];
				break;
			}
			if (cs->hashes[i].used < old->used)
				old = &cs->hashes[i];
		}
		hash_free(old);
		if (ntm_sha256_init(&old->h) < 0)
			goto out;
		snprintf(old->id, sizeof(old->id), "%s", id);
		e = old;
	}
	ntm_sha256_update(&e->h, p, len);
	e->at += len;
	e->used = ++cs->hash_clock;
out:
	pthread_mutex_unlock(&cs->hash_lock);
}

int
cs_hash_take(struct cs *cs, const char *id, uint64_t size, uint8_t hash[NTM_HASH_LEN])
{
	struct cs_hash *e;
	int ret = -1;

	pthread_mutex_lock(&cs->hash_lock);
	e = hash_find(cs, id);
	if (e && e->at == size && ntm_sha256_final(&e->h, hash) == 0)
		ret = 0;
	if (e)
		hash_free(e);
	pthread_mutex_unlock(&cs->hash_lock);
	return ret;
}

void
cs_hashes_free(struct cs *cs)
{
	for (int i = 0; i < CS_HASHES; i++)
		hash_free(&cs->hashes[i]);
}

int64_t
cs_tmp_size(struct cs *cs, const char *id)
{
	char path[PATH_MAX];
	struct stat st;

	cs_tmp_path(cs, id, path, sizeof(path));
	if (stat(path, &st) < 0)
		return errno == ENOENT ? NTM_ERR_NOTFOUND : NTM_ERR_IO;
	return (int64_t)st.st_size;
}

void
cs_tmp_remove(struct cs *cs, const char *id)
{
	char path[PATH_MAX];

	cs_hash_drop(cs, id);
	cs_tmp_path(cs, id, path, sizeof(path));
	if (unlink(path) < 0 && errno != ENOENT)
		log_warn("unlink %s", path);
}

static int
fsync_dir(const char *path)
{
	int fd, ret;

	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return NTM_ERR_IO;
	ret = fsync(fd) == 0 ? 0 : NTM_ERR_IO;
	close(fd);
	return ret;
}

/* fsync + SHA-256 of the whole file, reading through a bounded buffer
 * (hashed: only fsync, and check the size). */
static int
sync_and_hash(int fd, uint64_t size, uint8_t hash[NTM_HASH_LEN], int hashed)
{
	struct ntm_sha256 h;
	struct stat st;
	uint8_t *buf;
	uint64_t off = 0;
	ssize_t n;

	if (fsync(fd) < 0)
		return NTM_ERR_IO;
	if (hashed)
		return fstat(fd, &st) == 0 && (uint64_t)st.st_size == size ? 0 : NTM_ERR_SHORT;
	if ((buf = malloc(HASH_BUF)) == NULL)
		return NTM_ERR_IO;
	if (ntm_sha256_init(&h) < 0) {
		free(buf);
		return NTM_ERR_NOMEM;
	}
	while (off < size) {
		n = pread(fd, buf, HASH_BUF, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		ntm_sha256_update(&h, buf, (size_t)n);
		off += (uint64_t)n;
	}
	free(buf);
	if (off != size) {
		ntm_sha256_free(&h);
		return NTM_ERR_SHORT;
	}
	return ntm_sha256_final(&h, hash);
}

/* Renames tmp to its content address and makes the name durable. */
static int
place(struct cs *cs, const char *tmp, const char *hex)
{
	char dir[PATH_MAX], path[PATH_MAX];
	int made = 0;

	snprintf(dir, sizeof(dir), "%s/%.2s", cs->objdir, hex);
	if (ntm_cs_object_path(path, sizeof(path), cs->objdir, hex) < 0)
		return NTM_ERR_TOOBIG;
	if (mkdir(dir, 0700) == 0)
		made = 1;
	else if (errno != EEXIST)
		return NTM_ERR_IO;
	if (rename(tmp, path) < 0 || fsync_dir(dir) < 0)
		return NTM_ERR_IO;
	if (made && fsync_dir(cs->objdir) < 0)
		return NTM_ERR_IO;
	return 0;
}

/*
 * Runs on the worker thread (touches only files). Returns 0 with hash
 * filled when the file is in place under hex; NTM_ERR_CRYPTO when its hash
 * is not hex (the temp file is then removed); another error otherwise.
 */
int
cs_store_commit(struct cs *cs, const char *id, uint64_t size,
    uint8_t hash[NTM_HASH_LEN], int hashed, const char *hex)
{
	char tmp[PATH_MAX];
	uint8_t want[NTM_HASH_LEN];
	int fd, ret;

	cs_tmp_path(cs, id, tmp, sizeof(tmp));
	if (ntm_hex_decode_exact(want, sizeof(want), hex) < 0)
		return NTM_ERR_INVAL;
	if ((fd = open(tmp, O_RDONLY | O_CLOEXEC)) < 0)
		return errno == ENOENT ? NTM_ERR_NOTFOUND : NTM_ERR_IO;
	ret = sync_and_hash(fd, size, hash, hashed);
	close(fd);
	if (ret < 0)
		return ret;
	if (ntm_memcmp(hash, want, NTM_HASH_LEN) != 0) {
		unlink(tmp);
		return NTM_ERR_CRYPTO;
	}
	return place(cs, tmp, hex);
}

int
cs_obj_open(struct cs *cs, const char *sha256, uint64_t size)
{
	char path[PATH_MAX];
	struct stat st;
	int fd;

	if (ntm_cs_object_path(path, sizeof(path), cs->objdir, sha256) < 0)
		return NTM_ERR_TOOBIG;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return NTM_ERR_IO;
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size != size) {
		log_warnx("object %s: file has %lld bytes, its row says %llu", sha256,
		    (long long)st.st_size, (unsigned long long)size);
		close(fd);
		return NTM_ERR_IO;
	}
	return fd;
}

void
cs_obj_remove(struct cs *cs, const char *sha256)
{
	char path[PATH_MAX];

	if (ntm_cs_object_path(path, sizeof(path), cs->objdir, sha256) < 0)
		return;
	if (unlink(path) < 0 && errno != ENOENT)
		log_warn("unlink %s", path);
}

/* ---- start-up sweep ------------------------------------------------------ */

static void
sweep_tmp(struct cs *cs)
{
	DIR *d = opendir(cs->tmpdir);
	struct dirent *e;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (!ntm_cs_valid_hex(e->d_name, CS_HEX_ID) || !cs_db_has_upload(cs->db, e->d_name)) {
			log_info("gc: removing stray upload file %s", e->d_name);
			if (unlinkat(dirfd(d), e->d_name, 0) < 0)
				log_warn("unlink %s/%s", cs->tmpdir, e->d_name);
		}
	}
	closedir(d);
}

static void
sweep_bucket(struct cs *cs, const char *name)
{
	char path[PATH_MAX];
	DIR *d;
	struct dirent *e;

	snprintf(path, sizeof(path), "%s/%s", cs->objdir, name);
	if ((d = opendir(path)) == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (ntm_cs_valid_hex(e->d_name, CS_HEX_HASH) && cs_db_has_obj(cs->db, e->d_name))
			continue;
		log_info("gc: removing object file %s/%s with no metadata", name, e->d_name);
		if (unlinkat(dirfd(d), e->d_name, 0) < 0)
			log_warn("unlink %s/%s", path, e->d_name);
	}
	closedir(d);
}

/* (An upload row whose file vanished is dropped when next used: upload.c.) */
void
cs_store_sweep(struct cs *cs)
{
	DIR *d;
	struct dirent *e;

	sweep_tmp(cs);
	if ((d = opendir(cs->objdir)) == NULL)
		return;
	while ((e = readdir(d)) != NULL)
		if (strlen(e->d_name) == 2 && ntm_cs_valid_hex(e->d_name, 2))
			sweep_bucket(cs, e->d_name);
	closedir(d);
}
