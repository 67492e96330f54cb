/*
 * health.c - what the store does once SQLite says the outbox is
 * damaged: the marker file, refusing writes, and the quick checks that find
 * damage before a write lands in it.  Part of the store module (see store.h
 * "damage" for the contract).
 *
 * Why a marker file: SQLite reports damage only when a statement touches a
 * damaged page, so a put that appends far from the damage succeeds and
 * writes more into a file SQLite already called malformed for another
 * command.  The first process that sees damage writes "<outbox>-corrupt"
 * (a separate file, so it cannot itself be lost in the damaged pages);
 * every process refuses writes while it exists.
 *
 *   healthy --(SQLITE_CORRUPT / NOTADB, failed quick or integrity check:
 *              pobox_store_note_damage)--> marked
 *   marked  --(doctor: integrity check ok, pobox_store_clear_damage)--> healthy
 *
 * While marked: pobox_store_begin refuses (a clear message at once), and the
 * commit hook refuses any other write transaction (autocommit statements,
 * another process's marker appearing mid-transaction).  Only a store opened
 * with write_damaged (doctor) may write.
 */
#include "error.h"
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

/* The directory part of path ("." when there is none). */
static void dir_of(const char *path, char *dir, size_t len)
{
	snprintf(dir, len, "%s", path);
	char *slash = strrchr(dir, '/');
	if (!slash)
		snprintf(dir, len, ".");
	else
		*(slash == dir ? slash + 1 : slash) = '\0';
}

int pobox_store_check_path(struct pobox_store *st, int existing)
{
	char dir[4096], wal[4200];
	struct stat sb, ws;
	const char *p = st->path;
	if (stat(p, &sb) == 0) {
		if (S_ISDIR(sb.st_mode))
			return pobox_errf(st->err, st->errlen, POBOX_ECONFIG,
			                  "outbox %s is a directory, not an outbox file: give the file's "
			                  "path (e.g. --db %s/outbox.db)",
			                  p, p);
		if (!S_ISREG(sb.st_mode))
			return pobox_errf(st->err, st->errlen, POBOX_ECONFIG,
			                  "outbox %s is not a regular file (a device, pipe or socket): give "
			                  "the outbox file's path",
			                  p);
		if (sb.st_size > 0)
			return 0;
		if (existing)
			return pobox_errf(st->err, st->errlen, POBOX_ENOTFOUND,
			                  "outbox %s is an empty file, not an outbox yet; put an update to "
			                  "create one there (nothing was changed)",
			                  p);
		snprintf(wal, sizeof wal, "%s-wal", p);
		if (stat(wal, &ws) == 0 && ws.st_size > 0)
			return pobox_errf(st->err, st->errlen, POBOX_ECORRUPT,
			                  "outbox %s is an empty file but %s beside it holds %lld bytes: the "
			                  "outbox was truncated? pobox will not create a new outbox over it; "
			                  "move both files aside and restore a backup (nothing was changed)",
			                  p, wal, (long long)ws.st_size);
		return 0; /* an empty file made for the outbox (e.g. with its owner and mode) */
	}
	int e = errno;
	dir_of(p, dir, sizeof dir);
	if (e == ENOENT || e == ENOTDIR) {
		if (stat(dir, &sb) != 0)
			return pobox_errf(st->err, st->errlen, POBOX_ECONFIG,
			                  "the directory %s of outbox %s does not exist (%s): create it, or "
			                  "check --db and the db key",
			                  dir, p, strerror(errno));
		if (!S_ISDIR(sb.st_mode))
			return pobox_errf(st->err, st->errlen, POBOX_ECONFIG,
			                  "%s, the directory of outbox %s, is not a directory: check --db "
			                  "and the db key",
			                  dir, p);
		if (existing)
			return pobox_errf(st->err, st->errlen, POBOX_ENOTFOUND,
			                  "outbox %s does not exist; check --db, or put an update to create "
			                  "it",
			                  p);
		return 0;
	}
	return pobox_errf(st->err, st->errlen, POBOX_EIO, "outbox %s: %s (check the permissions of "
	                  "%s and the directories above it)", p, strerror(e), dir);
}

int pobox_store_setup_failed(const struct pobox_store *st)
{
	switch (st->last_rc & 0xff) {
	case SQLITE_READONLY:
	case SQLITE_CANTOPEN:
	case SQLITE_IOERR:
	case SQLITE_FULL:
	case SQLITE_PERM: return 1;
	}
	return 0;
}

int pobox_store_explain_open(struct pobox_store *st, int code)
{
	char dir[4096];
	struct statvfs vs;
	if (!pobox_store_setup_failed(st) || (code != POBOX_EIO && code != POBOX_EFULL))
		return code;
	const char *sql = sqlite3_errstr(st->last_rc);
	dir_of(st->path, dir, sizeof dir);
	/* SQLite says "disk I/O error" when it cannot size its -shm file on a
	 * full disk: check the disk first */
	if (statvfs(dir, &vs) == 0 && (uint64_t)vs.f_bavail * vs.f_frsize < (1u << 20))
		return pobox_errf(st->err, st->errlen, POBOX_EFULL,
		                  "outbox %s: the disk is full (%llu bytes free in %s), so SQLite cannot "
		                  "write the outbox's files (%s); free some space and try again",
		                  st->path, (unsigned long long)vs.f_bavail * vs.f_frsize, dir, sql);
	if (access(dir, W_OK) != 0 && errno == EACCES)
		return pobox_errf(st->err, st->errlen, POBOX_EIO,
		                  "outbox %s: the directory %s is not writable by this user (uid %ld), "
		                  "and SQLite must create %s-wal and %s-shm beside the outbox; make the "
		                  "directory writable for the user running pobox",
		                  st->path, dir, (long)getuid(), st->path, st->path);
	if (access(st->path, W_OK) != 0 && errno == EACCES)
		return pobox_errf(st->err, st->errlen, POBOX_EIO,
		                  "outbox %s: the file is not writable by this user (uid %ld); "
		                  "writing commands need write access to the outbox and its directory",
		                  st->path, (long)getuid());
	return code;
}

static int is_damage(int rc)
{
	return (rc & 0xff) == SQLITE_CORRUPT || (rc & 0xff) == SQLITE_NOTADB;
}

/* Writes the marker unless one is there already (the first finding is the
 * one worth keeping).  Best effort: a read-only directory cannot take it,
 * and this process still refuses writes by its flag. */
static void write_marker(struct pobox_store *st, const char *msg)
{
	char line[768], when[32];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
	int n = snprintf(line, sizeof line, "%s pid %ld: %s\n", when, (long)getpid(),
	                 msg && *msg ? msg : "damaged");
	if (n < 0)
		return;
	if ((size_t)n >= sizeof line)
		n = (int)sizeof line - 1, line[n - 1] = '\n';
	for (char *p = line; p < line + n - 1; p++) /* one line */
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	int fd = open(st->marker, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	if (write(fd, line, (size_t)n) == n)
		fsync(fd);
	close(fd);
}

int pobox_store_note_damage(struct pobox_store *st, int rc, const char *msg)
{
	if (!is_damage(rc) || st->immutable || !st->identified)
		return rc;
	st->damaged = 1;
	write_marker(st, msg);
	return rc;
}

int pobox_store_damaged(struct pobox_store *st, char *why, size_t len)
{
	if (why && len)
		why[0] = '\0';
	int fd = open(st->marker, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (why && len) {
			ssize_t n = read(fd, why, len - 1);
			why[n > 0 ? n : 0] = '\0';
			why[strcspn(why, "\n")] = '\0';
		}
		close(fd);
		return 1;
	}
	if (st->damaged && why && len)
		snprintf(why, len, "seen by this process");
	return st->damaged;
}

int pobox_store_clear_damage(struct pobox_store *st)
{
	st->damaged = 0;
	if (unlink(st->marker) != 0 && errno != ENOENT)
		return pobox_errf(st->err, st->errlen, POBOX_EIO, "outbox %s: cannot remove %s: %s",
		                  st->path, st->marker, strerror(errno));
	return 0;
}

int pobox_store_refuse_damaged(struct pobox_store *st)
{
	char why[600];
	pobox_store_damaged(st, why, sizeof why);
	return pobox_errf(st->err, st->errlen, POBOX_ECORRUPT,
	                  "outbox %s is damaged (%s); pobox writes nothing into it until `pobox "
	                  "doctor` finds it healthy (see %s and pobox(1), DAMAGED OUTBOX)",
	                  st->path, why, st->marker);
}

/* Runs before every commit of a write transaction, in any statement: a
 * nonzero return turns the commit into a rollback. */
static int commit_hook(void *ctx)
{
	struct pobox_store *st = ctx;
	struct stat sb;
	if (st->write_damaged)
		return 0;
	st->hook_refused = st->damaged || stat(st->marker, &sb) == 0;
	return st->hook_refused;
}

void pobox_store_guard_commits(struct pobox_store *st)
{
	sqlite3_commit_hook(st->db, commit_hook, st);
}

/* The check looks at the file's structure (b-tree pages, cells, records):
 * damage.  Evaluating every row's CHECK constraints as well would cost it
 * four times as much and finds rows edited by hand, which is doctor's
 * business, so they are left out for its duration (and only then: the
 * setting also lets inserts skip their CHECKs). */
int pobox_store_quick_check(struct pobox_store *st, const char *table)
{
	sqlite3_stmt *s = NULL;
	char first[400] = "";
	int bad = 0;
	sqlite3_exec(st->db, "PRAGMA ignore_check_constraints = ON", NULL, NULL, NULL);
	int rc = sqlite3_prepare_v2(st->db, table ? "SELECT * FROM pragma_quick_check(?1)"
	                                          : "PRAGMA quick_check(1)", -1, &s, NULL);
	if (rc == SQLITE_OK && table)
		sqlite3_bind_text(s, 1, table, -1, SQLITE_STATIC);
	while (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *m = (const char *)sqlite3_column_text(s, 0);
		if (m && strcmp(m, "ok") != 0 && !bad++)
			snprintf(first, sizeof first, "%s", m);
	}
	if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		rc = SQLITE_OK;
	sqlite3_finalize(s);
	if (sqlite3_exec(st->db, "PRAGMA ignore_check_constraints = OFF", NULL, NULL, NULL) !=
	    SQLITE_OK)
		return pobox_errf(st->err, st->errlen, POBOX_EIO,
		                  "outbox %s: cannot turn CHECK constraints back on", st->path);
	if (rc != SQLITE_OK) /* damage bad enough to stop the check itself */
		return pobox_store_fail(st, rc, table ? "checking a table" : "checking the outbox");
	if (!bad)
		return 0;
	char msg[520];
	snprintf(msg, sizeof msg, "quick_check%s%s: %s", table ? " of " : "", table ? table : "",
	         first);
	pobox_store_note_damage(st, SQLITE_CORRUPT, msg);
	return pobox_errf(st->err, st->errlen, POBOX_ECORRUPT,
	                  "outbox %s is damaged: SQLite's %s; stop pobox, copy the outbox aside "
	                  "and see pobox(1), DAMAGED OUTBOX",
	                  st->path, msg);
}

int pobox_store_next_table(struct pobox_store *st, int64_t *cursor, char *name, size_t len)
{
	static const char sql[] =
		"SELECT rowid, name FROM sqlite_schema WHERE type = 'table' AND rowid > ?1 "
		"ORDER BY rowid LIMIT 1";
	for (int pass = 0; pass < 2; pass++) {
		sqlite3_stmt *s = pobox_store_prep(st, sql);
		if (!s)
			return POBOX_EIO;
		sqlite3_bind_int64(s, 1, *cursor);
		int rc = sqlite3_step(s);
		if (rc == SQLITE_ROW) {
			*cursor = sqlite3_column_int64(s, 0);
			snprintf(name, len, "%s", (const char *)sqlite3_column_text(s, 1));
			sqlite3_reset(s);
			return 0;
		}
		sqlite3_reset(s);
		if (rc != SQLITE_DONE)
			return pobox_store_fail(st, rc, "listing tables");
		*cursor = 0; /* wrap around */
	}
	return pobox_errf(st->err, st->errlen, POBOX_ECORRUPT, "outbox %s has no tables", st->path);
}
