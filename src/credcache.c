/*
 * credcache.c - the shared token cache (see credcache.h).
 */
#define _GNU_SOURCE
#include "credcache.h"
#include "alloc.h"
#include "error.h"
#include "json.h"
#include "pobox.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CACHE_MAX (64 * 1024)

void pobox_credcache_entry_free(struct pobox_credcache_entry *e)
{
	if (e->ims_token)
		explicit_bzero(e->ims_token, strlen(e->ims_token));
	if (e->token)
		explicit_bzero(e->token, strlen(e->token));
	pobox_free(e->ims_token);
	pobox_free(e->token);
	memset(e, 0, sizeof *e);
}

static int64_t number(const struct pobox_json *d, const char *name)
{
	int64_t v;
	long t = pobox_json_get(d, 0, name);
	return t >= 0 && pobox_json_int64(d, t, &v) == 0 ? v : -1;
}

static char *string(const struct pobox_json *d, const char *name)
{
	char *s = NULL;
	long t = pobox_json_get(d, 0, name);
	if (t < 0 || d->toks[t].type != POBOX_JSON_STRING || pobox_json_string(d, t, &s, NULL) != 0)
		return NULL;
	return s;
}

int pobox_credcache_read(const char *path, const char *key, struct pobox_credcache_entry *e,
                         char *err, size_t errlen)
{
	struct pobox_json d = {0};
	struct stat sb;
	char *buf = NULL, msg[160];
	ssize_t n = 0;
	int rc = 0, fd;
	memset(e, 0, sizeof *e);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT)
			return POBOX_ENOTFOUND;
		return pobox_errf(err, errlen, POBOX_EIO, "token cache %s: %s", path, strerror(errno));
	}
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_uid != geteuid() ||
	    (sb.st_mode & 077)) {
		rc = pobox_errf(err, errlen, POBOX_EINVALID,
		                "token cache %s is not a private file of this user (mode %04o); not "
		                "using it", path, (unsigned)(sb.st_mode & 07777));
		goto out;
	}
	if (!(buf = pobox_malloc(CACHE_MAX + 1))) {
		rc = pobox_errf(err, errlen, POBOX_ENOMEM, "out of memory");
		goto out;
	}
	for (ssize_t r; (size_t)n < CACHE_MAX && (r = read(fd, buf + n, CACHE_MAX - (size_t)n)) != 0; ) {
		if (r < 0) {
			if (errno == EINTR)
				continue;
			rc = pobox_errf(err, errlen, POBOX_EIO, "token cache %s: %s", path, strerror(errno));
			goto out;
		}
		n += r;
	}
	if ((rc = pobox_json_parse(&d, buf, (size_t)n, 64, msg, sizeof msg)) != 0 ||
	    d.toks[0].type != POBOX_JSON_OBJECT || number(&d, "version") != 1) {
		rc = pobox_errf(err, errlen, rc == POBOX_ENOMEM ? rc : POBOX_EINVALID,
		                "token cache %s is damaged (%s); not using it", path,
		                rc ? msg : "not a version 1 cache");
		goto out;
	}
	long k = pobox_json_get(&d, 0, "key");
	if (!pobox_json_string_is(&d, k, key)) {
		rc = POBOX_ENOTFOUND;
		goto out;
	}
	e->ims_token = string(&d, "ims_token");
	e->ims_obtained_ms = number(&d, "ims_obtained_at_ms");
	e->ims_expires_ms = number(&d, "ims_expires_at_ms");
	e->token = string(&d, "token");
	e->obtained_ms = number(&d, "obtained_at_ms");
	e->expires_ms = number(&d, "expires_at_ms");
out:
	pobox_json_free(&d);
	if (buf) {
		explicit_bzero(buf, (size_t)n);
		pobox_free(buf);
	}
	close(fd);
	if (rc && rc != POBOX_ENOTFOUND)
		pobox_credcache_entry_free(e);
	return rc;
}

/* Appends a JSON string (tokens are printable ASCII; escape anyway). */
static size_t put_string(char *out, size_t at, const char *s)
{
	if (!s)
		return at + (size_t)sprintf(out + at, "null");
	out[at++] = '"';
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			out[at++] = '\\';
			out[at++] = (char)c;
		} else if (c < 0x20) {
			at += (size_t)sprintf(out + at, "\\u%04x", c);
		} else {
			out[at++] = (char)c;
		}
	}
	out[at++] = '"';
	return at;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* fsync of the directory holding path, so the rename is durable. */
static int sync_dir(const char *path)
{
	char *copy = pobox_strdup(path);
	if (!copy)
		return -1;
	int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	pobox_free(copy);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	close(fd);
	return rc;
}

int pobox_credcache_write(const char *path, const char *key, const struct pobox_credcache_entry *e,
                          char *err, size_t errlen)
{
	size_t cap = 512 + 6 * (strlen(key) + (e->ims_token ? strlen(e->ims_token) : 0) +
	                        (e->token ? strlen(e->token) : 0));
	char *buf = pobox_malloc(cap), *tmp = pobox_malloc(strlen(path) + 32);
	size_t n = 0;
	int fd = -1, rc = 0;
	if (!buf || !tmp) {
		rc = pobox_errf(err, errlen, POBOX_ENOMEM, "out of memory");
		goto out;
	}
	n += (size_t)sprintf(buf, "{\"version\":1,\"key\":");
	n = put_string(buf, n, key);
	n += (size_t)sprintf(buf + n, ",\"ims_token\":");
	n = put_string(buf, n, e->ims_token);
	n += (size_t)sprintf(buf + n, ",\"ims_obtained_at_ms\":%lld,\"ims_expires_at_ms\":%lld,\"token\":",
	                     (long long)e->ims_obtained_ms, (long long)e->ims_expires_ms);
	n = put_string(buf, n, e->token);
	n += (size_t)sprintf(buf + n, ",\"obtained_at_ms\":%lld,\"expires_at_ms\":%lld}\n",
	                     (long long)e->obtained_ms, (long long)e->expires_ms);
	sprintf(tmp, "%s.tmp.%ld", path, (long)getpid());
	unlink(tmp); /* a leftover of a crashed process with our pid */
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || write_all(fd, buf, n) != 0 || fsync(fd) != 0) {
		rc = pobox_errf(err, errlen, POBOX_EIO, "token cache %s: %s", tmp, strerror(errno));
		goto out;
	}
	if (close(fd) != 0) {
		fd = -1;
		rc = pobox_errf(err, errlen, POBOX_EIO, "token cache %s: %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) != 0) {
		rc = pobox_errf(err, errlen, POBOX_EIO, "token cache %s: rename: %s", path, strerror(errno));
		goto out;
	}
	if (sync_dir(path) != 0)
		rc = pobox_errf(err, errlen, POBOX_EIO, "token cache %s: fsync of its directory: %s",
		                path, strerror(errno));
out:
	if (fd >= 0)
		close(fd);
	if (rc && tmp)
		unlink(tmp);
	if (buf) {
		explicit_bzero(buf, cap);
		pobox_free(buf);
	}
	pobox_free(tmp);
	return rc;
}

int pobox_credcache_lock(const char *path, int64_t wait_ms, int *out, char *err, size_t errlen)
{
	char *lp = pobox_malloc(strlen(path) + 8);
	int fd;
	if (!lp)
		return pobox_errf(err, errlen, POBOX_ENOMEM, "out of memory");
	sprintf(lp, "%s.lock", path);
	fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		int rc = pobox_errf(err, errlen, POBOX_EIO, "token cache lock %s: %s", lp, strerror(errno));
		pobox_free(lp);
		return rc;
	}
	pobox_free(lp);
	for (int64_t waited = 0;; waited += 20) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
			*out = fd;
			return 0;
		}
		if (errno != EWOULDBLOCK && errno != EINTR) {
			int rc = pobox_errf(err, errlen, POBOX_EIO, "token cache lock: %s", strerror(errno));
			close(fd);
			return rc;
		}
		if (waited >= wait_ms) {
			close(fd);
			return pobox_errf(err, errlen, POBOX_EBUSY,
			                  "another process held the token cache lock for %llds",
			                  (long long)(wait_ms / 1000));
		}
		struct timespec ts = {0, 20 * 1000000L};
		nanosleep(&ts, NULL);
	}
}

void pobox_credcache_unlock(int fd)
{
	if (fd >= 0)
		close(fd); /* releases the flock */
}
