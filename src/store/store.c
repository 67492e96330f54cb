/*
 * store.c - the outbox store on SQLite.
 *
 * Owns: opening the file safely, schema migrations, connection settings
 * (WAL, busy timeout, synchronous), the prepared-statement cache,
 * transactions and the tallies they keep (see schema/0006_storage.sql),
 * interning of attribute, source and shape names, and status queries.
 * Profiles and writes are keys.c's and writes.c's; delivery is batch.c's.
 *
 * Opening, in order, so that a file we must refuse is never changed:
 *   0. look at the path first (store/health.c): a directory, a missing
 *      directory, an empty file where an outbox must exist or beside a
 *      non-empty WAL are refused with the path and what is wrong;
 *   1. open without creating unless asked; set the busy timeout first;
 *   2. read user_version and application_id; refuse a file that is not an
 *      SQLite database, belongs to another application, or carries a schema
 *      newer than this build (all before any write, even before WAL mode);
 *   3. switch to WAL and the configured synchronous level;
 *   4. install the commit hook that refuses writes to a damaged outbox;
 *   5. apply each missing migration in its own IMMEDIATE transaction,
 *      re-reading user_version inside it, so two processes opening a fresh
 *      outbox at once migrate it exactly once.
 * A reader whose open fails because SQLite cannot create -wal/-shm (a
 * read-only directory, a full disk) tries again read-only (open_ro); any
 * other failure of SQLite's files is explained (the disk is full, the
 * directory is not writable) by pobox_store_explain_open.
 *
 * Statement cache: each SQL statement is prepared once per store on first
 * use (pobox_store_prep) and reset after each use.  Interned names are
 * cached in memory; the caches are dropped on rollback because a rolled-back
 * insert would otherwise leave an id in the cache that no row holds.
 *
 * Tallies: a write transaction reads the tallies row at BEGIN (the next
 * seq, the next profile id, the key counts), every tallied change adds to
 * st->d, and pobox_store_commit writes the sum with one UPDATE before
 * COMMIT; a rollback drops it.  Writers are serialized by the write lock,
 * so the numbers read at BEGIN stay right for the whole transaction.
 */
#include "store.h"
#include "alloc.h"
#include "cells.h"
#include "error.h"
#include "migrations.h"
#include "internal.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define POBOX_APPLICATION_ID 0x504F4258 /* "POBX" */

const char *const pobox_update_state_names[POBOX_ST_COUNT] = {
	"pending", "batched", "delivered", "superseded", "dead",
};

static const char SQL_TALLIES_READ[] =
	"SELECT next_seq, profiles + 1, keys_main, keys_new, key_filter_gen, cut_seq, batch_gen "
	"FROM tallies";
static const char SQL_TALLIES_WRITE[] =
	"UPDATE tallies SET next_seq = next_seq + ?1, pending = pending + ?2, batched = batched + ?3,"
	" delivered = delivered + ?4, superseded = superseded + ?5, dead = dead + ?6,"
	" profiles = profiles + ?7, keys_new = keys_new + ?8,"
	" last_delivery_ms = max(last_delivery_ms, ?9),"
	" oldest_pending_ms = CASE WHEN ?10 > 0 THEN min(coalesce(oldest_pending_ms, ?10), ?10)"
	"                     ELSE oldest_pending_ms END";
/* O(held): the held profiles, the first write no cut has seen */
static const char SQL_OLDEST_RECOUNT[] =
	"UPDATE tallies SET oldest_pending_ms = (SELECT min(m) FROM ("
	" SELECT min(since_ms) AS m FROM held UNION ALL SELECT min(enqueued_at_ms) FROM staged"
	" UNION ALL SELECT (SELECT enqueued_at_ms FROM writes WHERE seq > tallies.cut_seq"
	"  ORDER BY seq LIMIT 1)))";

int pobox_store_code(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW: return 0;
	case SQLITE_BUSY:
	case SQLITE_LOCKED: return POBOX_EBUSY;
	case SQLITE_NOMEM: return POBOX_ENOMEM;
	case SQLITE_FULL: return POBOX_EFULL;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB: return POBOX_ECORRUPT;
	case SQLITE_CONSTRAINT:
	case SQLITE_MISMATCH:
	case SQLITE_TOOBIG: return POBOX_EINVALID;
	case SQLITE_CANTOPEN:
	case SQLITE_PERM:
	case SQLITE_READONLY:
	case SQLITE_IOERR: return POBOX_EIO;
	}
	return POBOX_EIO;
}

/* Records the SQLite error for `what` on the store and returns the pobox code. */
int pobox_store_fail(struct pobox_store *st, int rc, const char *what)
{
	if (st->hook_refused && (rc & 0xff) == SQLITE_CONSTRAINT) {
		st->hook_refused = 0;
		return pobox_store_refuse_damaged(st);
	}
	st->last_rc = rc;
	pobox_store_note_damage(st, rc, st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
	int code = pobox_store_code(rc);
	const char *hint = "";
	if (code == POBOX_EBUSY)
		hint = " (another process held the outbox's write lock past busy_timeout_ms)";
	else if (code == POBOX_ECORRUPT)
		hint = " (run `pobox doctor`)";
	else if (code == POBOX_EFULL)
		hint = " (the disk is full)";
	return pobox_errf(st->err, st->errlen, code, "outbox %s: %s: %s%s", st->path, what,
	                  st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc), hint);
}

sqlite3_stmt *pobox_store_prep_len(struct pobox_store *st, const char *sql, size_t len)
{
	for (int i = 0; i < st->ncache; i++)
		if (st->cache[i].sql == sql)
			return st->cache[i].stmt;
	if (st->ncache == (int)(sizeof st->cache / sizeof st->cache[0])) {
		pobox_errf(st->err, st->errlen, POBOX_EIO, "outbox %s: statement cache full (a bug)",
		           st->path);
		return NULL;
	}
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v3(st->db, sql, (int)len, SQLITE_PREPARE_PERSISTENT, &s, NULL);
	if (rc != SQLITE_OK) {
		pobox_store_fail(st, rc, "preparing a statement");
		return NULL;
	}
	st->cache[st->ncache].sql = sql;
	st->cache[st->ncache++].stmt = s;
	return s;
}

sqlite3_stmt *pobox_store_prep_raw(struct pobox_store *st, const char *sql)
{
	return pobox_store_prep_len(st, sql, strlen(sql));
}

sqlite3_stmt *pobox_store_prep(struct pobox_store *st, const char *sql)
{
	if (pobox_store_append_flush(st) != 0)
		return NULL;
	return pobox_store_prep_raw(st, sql);
}

/* ---- name cache ---------------------------------------------------- */

static uint64_t hash_name(const char *s, size_t len)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
	return h;
}

static int cache_get(const struct name_cache *c, const char *name, size_t len, int64_t *id)
{
	if (!c->cap)
		return 0;
	for (size_t i = hash_name(name, len) & (c->cap - 1);; i = (i + 1) & (c->cap - 1)) {
		const struct name_cache_entry *e = &c->slots[i];
		if (!e->name)
			return 0;
		if (strncmp(e->name, name, len) == 0 && e->name[len] == '\0') {
			*id = e->id;
			return 1;
		}
	}
}

static void cache_clear(struct name_cache *c)
{
	for (size_t i = 0; i < c->cap; i++)
		pobox_free(c->slots[i].name);
	pobox_free(c->slots);
	c->slots = NULL;
	c->cap = c->used = 0;
}

static int cache_put(struct name_cache *c, const char *name, size_t len, int64_t id)
{
	if ((c->used + 1) * 2 > c->cap) {
		size_t ncap = c->cap ? c->cap * 2 : 64;
		struct name_cache_entry *ns = pobox_calloc(ncap, sizeof *ns);
		if (!ns)
			return POBOX_ENOMEM;
		for (size_t i = 0; i < c->cap; i++) {
			struct name_cache_entry *e = &c->slots[i];
			if (!e->name)
				continue;
			size_t j = hash_name(e->name, strlen(e->name)) & (ncap - 1);
			while (ns[j].name)
				j = (j + 1) & (ncap - 1);
			ns[j] = *e;
		}
		pobox_free(c->slots);
		c->slots = ns;
		c->cap = ncap;
	}
	size_t i = hash_name(name, len) & (c->cap - 1);
	while (c->slots[i].name)
		i = (i + 1) & (c->cap - 1);
	c->slots[i].name = pobox_strndup(name, len);
	if (!c->slots[i].name)
		return POBOX_ENOMEM;
	c->slots[i].id = id;
	c->used++;
	return 0;
}

/* ---- opening and migrating -------------------------------------------- */

int pobox_store_known_version(void)
{
	int v = 0;
	for (const struct pobox_migration *m = pobox_migrations; m->version; m++)
		v = m->version;
	return v;
}

int pobox_store_query_int64(struct pobox_store *st, const char *sql, int64_t *out)
{
	sqlite3_stmt *s = NULL;
	int rc = pobox_store_append_flush(st);
	if (rc)
		return rc;
	rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(s);
		if (rc == SQLITE_ROW) {
			*out = sqlite3_column_int64(s, 0);
			rc = SQLITE_OK;
		}
	}
	sqlite3_finalize(s);
	return rc == SQLITE_OK || rc == SQLITE_DONE ? 0 : pobox_store_fail(st, rc, sql);
}

int pobox_store_query_int(struct pobox_store *st, const char *sql, int *out)
{
	int64_t v = *out;
	int rc = pobox_store_query_int64(st, sql, &v);
	if (rc == 0)
		*out = (int)v;
	return rc;
}

int pobox_store_exec_sql(struct pobox_store *st, const char *sql, const char *what)
{
	char *msg = NULL;
	int rc = pobox_store_append_flush(st);
	if (rc)
		return rc;
	rc = sqlite3_exec(st->db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
		if (st->hook_refused && (rc & 0xff) == SQLITE_CONSTRAINT) {
			st->hook_refused = 0;
			sqlite3_free(msg);
			return pobox_store_refuse_damaged(st);
		}
		st->last_rc = rc;
		pobox_store_note_damage(st, rc, msg ? msg : sqlite3_errstr(rc));
		int code = pobox_store_code(rc);
		pobox_errf(st->err, st->errlen, code, "outbox %s: %s: %s", st->path, what,
		           msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return code;
	}
	return 0;
}

/* Refuses files pobox must not touch.  Reads only. */
static int check_identity(struct pobox_store *st, int *version)
{
	int rc;
	int64_t app = 0, objects = 0, v = 0;
	/* One statement, so one snapshot: read separately, another process's
	 * first migration committing in between made a fresh outbox look like
	 * "tables but no pobox id" and get refused. */
	sqlite3_stmt *q = NULL;
	rc = sqlite3_prepare_v2(st->db,
	                        "SELECT (SELECT user_version FROM pragma_user_version),"
	                        " (SELECT application_id FROM pragma_application_id),"
	                        " (SELECT count(*) FROM sqlite_schema)", -1, &q, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		v = sqlite3_column_int64(q, 0);
		app = sqlite3_column_int64(q, 1);
		objects = sqlite3_column_int64(q, 2);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(q);
	if ((rc & 0xff) == SQLITE_NOTADB)
		return pobox_errf(st->err, st->errlen, POBOX_ECORRUPT,
		                  "%s is not an SQLite database, so not a pobox outbox (or its first "
		                  "page is damaged); pobox will not write over it: point --db at the "
		                  "outbox or at a new path (`pobox doctor` says what it finds)",
		                  st->path);
	if (rc != SQLITE_OK)
		return pobox_store_fail(st, rc, "reading the outbox's header");
	*version = (int)v;
	if ((*version > 0 || objects > 0) && app != POBOX_APPLICATION_ID)
		return pobox_errf(st->err, st->errlen, POBOX_ECORRUPT,
		                  "%s is an SQLite database but not a pobox outbox (application_id "
		                  "%lld); point --db at a pobox outbox or at a new file",
		                  st->path, (long long)app);
	st->identified = 1; /* from here on, damage SQLite reports is recorded */
	if (*version > pobox_store_known_version())
		return pobox_errf(st->err, st->errlen, POBOX_ECONFIG,
		                  "outbox %s has schema version %d, newer than this pobox %s knows "
		                  "(%d); upgrade pobox; the outbox was not changed",
		                  st->path, *version, POBOX_VERSION, pobox_store_known_version());
	return 0;
}

static int migrate(struct pobox_store *st)
{
	for (const struct pobox_migration *m = pobox_migrations; m->version; m++) {
		int v = 0, rc;
		if ((rc = pobox_store_exec_sql(st, "BEGIN IMMEDIATE", "starting a migration")) != 0)
			return rc;
		/* Another process may have migrated while we waited for the lock. */
		if ((rc = pobox_store_query_int(st, "PRAGMA user_version", &v)) != 0)
			goto rollback;
		if (v >= m->version) {
			pobox_store_exec_sql(st, "ROLLBACK", "ending a migration");
			continue;
		}
		if (v != m->version - 1) {
			rc = pobox_errf(st->err, st->errlen, POBOX_ECORRUPT,
			                "outbox %s: schema version %d, cannot apply migration %s",
			                st->path, v, m->name);
			goto rollback;
		}
		char what[160];
		snprintf(what, sizeof what, "applying migration %s", m->name);
		if ((rc = pobox_store_exec_sql(st, m->sql, what)) != 0)
			goto rollback;
		char set[64];
		snprintf(set, sizeof set, "PRAGMA user_version = %d", m->version);
		if ((rc = pobox_store_exec_sql(st, set, what)) != 0 || (rc = pobox_store_exec_sql(st, "COMMIT", what)) != 0)
			goto rollback;
		continue;
	rollback:
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		return rc;
	}
	return 0;
}

static int sync_settings(struct pobox_store *st, const struct pobox_store_opts *o)
{
	int cur = 0, rc;
	if ((rc = pobox_store_query_int(st, "SELECT value FROM settings WHERE key = 'max_value_chars'", &cur)) != 0)
		return rc;
	if (cur == o->max_value_chars)
		return 0;
	char sql[128];
	snprintf(sql, sizeof sql,
	         "UPDATE settings SET value = %d WHERE key = 'max_value_chars'", o->max_value_chars);
	return pobox_store_exec_sql(st, sql, "recording max_value_chars");
}

static const char *const sync_pragma[] = {
	[POBOX_SYNC_FULL] = "PRAGMA synchronous = FULL",
	[POBOX_SYNC_NORMAL] = "PRAGMA synchronous = NORMAL",
	[POBOX_SYNC_OFF] = "PRAGMA synchronous = OFF",
};

/* WAL lets producers append while `pobox run` and operators read.
 * Switching a new file to WAL needs an exclusive lock, and SQLite says
 * SQLITE_BUSY at once instead of waiting when another process is creating
 * the same outbox: retry until busy_timeout_ms. */
static int use_wal(struct pobox_store *st, const struct pobox_store_opts *o)
{
	sqlite3_stmt *s = NULL;
	const char *mode = NULL;
	int r, rc = 0;
	for (int waited = 0;; waited += 10) {
		r = sqlite3_prepare_v2(st->db, "PRAGMA journal_mode = WAL", -1, &s, NULL);
		if (r == SQLITE_OK && (r = sqlite3_step(s)) == SQLITE_ROW)
			mode = (const char *)sqlite3_column_text(s, 0);
		if ((r & 0xff) != SQLITE_BUSY || waited >= o->busy_timeout_ms)
			break;
		sqlite3_finalize(s);
		s = NULL;
		struct timespec ts = {0, 10 * 1000000L};
		nanosleep(&ts, NULL);
	}
	if (!mode || strcmp(mode, "wal") != 0)
		rc = r == SQLITE_ROW ? pobox_errf(st->err, st->errlen, POBOX_EIO,
		                                  "outbox %s: cannot use WAL mode (got %s); put the "
		                                  "outbox on a local file system", st->path,
		                                  mode ? mode : "nothing")
		                     : pobox_store_fail(st, r, "switching to WAL mode");
	sqlite3_finalize(s);
	return rc;
}

/* Opens for reading and writing, in the order the top of this file gives. */
static int open_rw(struct pobox_store *st, const struct pobox_store_opts *o)
{
	int rc, version = 0;
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (o->must_exist ? 0 : SQLITE_OPEN_CREATE);
	if ((rc = sqlite3_open_v2(st->path, &st->db, flags, NULL)) != SQLITE_OK)
		return pobox_store_fail(st, rc, "opening");
	sqlite3_extended_result_codes(st->db, 1);
	sqlite3_busy_timeout(st->db, o->busy_timeout_ms);
	if ((rc = pobox_store_register_functions(st)) != 0 || (rc = check_identity(st, &version)) != 0 ||
	    (rc = use_wal(st, o)) != 0 ||
	    (rc = pobox_store_exec_sql(st, sync_pragma[o->synchronous], "setting synchronous")) != 0)
		return rc;
	/* After a checkpoint the WAL file is cut back to 64 MB: without this, a
	 * WAL swollen by a big import keeps its size on disk forever. */
	if ((rc = pobox_store_exec_sql(st, "PRAGMA journal_size_limit = 67108864",
	                               "limiting the WAL")) != 0)
		return rc;
	pobox_store_guard_commits(st); /* from here on, a damaged outbox takes no write */
	if (version < pobox_store_known_version() && (rc = migrate(st)) != 0)
		return rc;
	/* a damaged outbox is still readable: leave its settings alone */
	if (!pobox_store_damaged(st, NULL, 0) && (rc = sync_settings(st, o)) != 0)
		return rc;
	return 0;
}

/* A reader's second try when SQLite could not set the outbox up for
 * writing (it must create -wal and -shm beside it: a read-only directory or
 * a full disk stop that): read-only, and when there is no -shm either and no
 * WAL holding commits, as an immutable snapshot (with no -wal file no
 * process has the outbox open, and none can start writing without creating
 * one).  Never migrates. */
static int open_ro(struct pobox_store *st, const struct pobox_store_opts *o)
{
	char wal[4200], uri[8400];
	struct stat sb;
	int rc = POBOX_EIO, version = 0;
	sqlite3_close(st->db);
	st->db = NULL;
	snprintf(wal, sizeof wal, "%s-wal", st->path);
	int have_wal = stat(wal, &sb) == 0 && sb.st_size > 0;
	for (int immutable = 0; immutable < 2; immutable++) {
		int flags = SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX;
		const char *name = st->path;
		if (immutable) {
			if (have_wal)
				return rc;
			/* a URI, so the path's own '%', '?' and '#' are escaped */
			size_t u = (size_t)snprintf(uri, sizeof uri, "file:");
			for (const char *p = st->path; *p && u + 4 < sizeof uri; p++)
				u += *p == '%' || *p == '?' || *p == '#'
				         ? (size_t)snprintf(uri + u, sizeof uri - u, "%%%02X", (unsigned char)*p)
				         : (uri[u] = *p, 1);
			snprintf(uri + u, sizeof uri - u, "?immutable=1");
			name = uri;
			flags |= SQLITE_OPEN_URI;
		}
		sqlite3_close(st->db);
		st->db = NULL;
		if ((rc = sqlite3_open_v2(name, &st->db, flags, NULL)) != SQLITE_OK) {
			rc = pobox_store_fail(st, rc, "opening read-only");
			continue;
		}
		sqlite3_extended_result_codes(st->db, 1);
		sqlite3_busy_timeout(st->db, o->busy_timeout_ms);
		st->immutable = immutable;
		if ((rc = pobox_store_register_functions(st)) == 0 && (rc = check_identity(st, &version)) == 0)
			break;
	}
	if (rc != 0)
		return rc;
	st->read_only = 1;
	if (version < pobox_store_known_version())
		return pobox_errf(st->err, st->errlen, POBOX_EIO,
		                  "outbox %s has schema version %d and this pobox needs %d, but it can "
		                  "only be opened read-only here: run a command that writes (with write "
		                  "access to its directory) once to migrate it",
		                  st->path, version, pobox_store_known_version());
	return 0;
}

int pobox_store_open(struct pobox_store **out, const char *path,
                     const struct pobox_store_opts *o, char *err, size_t errlen)
{
	struct pobox_store *st = NULL;
	int rc;

	if (!path || !*path)
		return pobox_errf(err, errlen, POBOX_ECONFIG, "no outbox path given (use --db PATH or "
		                  "the db key in the config file)");
	if (o->synchronous < POBOX_SYNC_FULL || o->synchronous > POBOX_SYNC_OFF)
		return pobox_errf(err, errlen, POBOX_ECONFIG, "synchronous level %d is not one of "
		                  "FULL, NORMAL, OFF", (int)o->synchronous);
	st = pobox_calloc(1, sizeof *st);
	if (!st || !(st->path = pobox_strdup(path)) ||
	    !(st->marker = pobox_malloc(strlen(path) + sizeof "-corrupt"))) {
		rc = pobox_errf(err, errlen, POBOX_ENOMEM, "out of memory opening %s", path);
		goto out;
	}
	sprintf(st->marker, "%s-corrupt", path);
	st->err = err;
	st->errlen = errlen;
	st->busy_timeout_ms = o->busy_timeout_ms;
	st->write_damaged = o->write_damaged;
	if ((rc = pobox_store_check_path(st, o->must_exist || o->reader)) != 0)
		goto out;
	rc = open_rw(st, o);
	if (rc != 0 && o->reader && pobox_store_setup_failed(st))
		rc = open_ro(st, o);
	if (rc != 0) {
		rc = pobox_store_explain_open(st, rc);
		goto out;
	}
	*out = st;
	st = NULL;
	rc = 0;
out:
	pobox_store_close(st);
	return rc;
}

void pobox_store_close(struct pobox_store *st)
{
	if (!st)
		return;
	for (int i = 0; i < st->ncache; i++)
		sqlite3_finalize(st->cache[i].stmt);
	if (st->db && !sqlite3_get_autocommit(st->db))
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_close(st->db);
	pobox_store_append_free(st);
	cache_clear(&st->attrs);
	cache_clear(&st->sources);
	cache_clear(&st->shape_ids);
	pobox_store_shapes_free(st);
	pobox_store_keys_free(st);
	pobox_store_members_free(st);
	pobox_free(st->scratch);
	pobox_free(st->path);
	pobox_free(st->marker);
	pobox_free(st);
}

const char *pobox_store_path(const struct pobox_store *st) { return st->path; }

int pobox_store_read_only(const struct pobox_store *st) { return st->read_only; }

int pobox_store_schema_version(struct pobox_store *st, int *out)
{
	return pobox_store_query_int(st, "PRAGMA user_version", out);
}

int pobox_store_exec(struct pobox_store *st, const char *sql) { return pobox_store_exec_sql(st, sql, "exec"); }

/* ---- transactions and tallies --------------------------------------- */

int pobox_store_in_tx(struct pobox_store *st) { return !sqlite3_get_autocommit(st->db); }

int pobox_store_need_tx(struct pobox_store *st, const char *what)
{
	if (pobox_store_in_tx(st))
		return 0;
	return pobox_errf(st->err, st->errlen, POBOX_EINVALID,
	                  "outbox %s: %s needs a write transaction (a bug)", st->path, what);
}

static void drop_caches(struct pobox_store *st)
{
	pobox_store_append_drop(st);
	pobox_store_members_free(st); /* the fence may hold uncommitted members */
	cache_clear(&st->attrs);
	cache_clear(&st->sources);
	cache_clear(&st->shape_ids);
	memset(&st->d, 0, sizeof st->d);
}

int pobox_store_begin(struct pobox_store *st)
{
	if (!st->write_damaged && pobox_store_damaged(st, NULL, 0))
		return pobox_store_refuse_damaged(st);
	int rc = pobox_store_exec_sql(st, "BEGIN IMMEDIATE", "starting a transaction");
	if (rc)
		return rc;
	memset(&st->d, 0, sizeof st->d);
	sqlite3_stmt *s = pobox_store_prep(st, SQL_TALLIES_READ);
	if (!s) {
		rc = POBOX_EIO;
		goto fail;
	}
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		st->next_seq = sqlite3_column_int64(s, 0);
		st->next_profile = sqlite3_column_int64(s, 1);
		st->keys_main = sqlite3_column_int64(s, 2);
		st->keys_new = sqlite3_column_int64(s, 3);
		st->filter_gen = sqlite3_column_int64(s, 4);
		st->cut_seq = sqlite3_column_int64(s, 5);
		st->batch_gen = sqlite3_column_int64(s, 6);
		st->cut_max = st->next_seq - 1;
		pobox_store_keys_begin(st);
		rc = SQLITE_OK;
	} else if (rc == SQLITE_DONE) {
		rc = SQLITE_CORRUPT; /* the row is made by the schema and never deleted */
	}
	sqlite3_reset(s);
	if (rc == SQLITE_OK)
		return 0;
	rc = pobox_store_fail(st, rc, "reading the tallies");
fail:
	sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

/* Writes the open transaction's tally changes (one UPDATE). */
static int write_tallies(struct pobox_store *st)
{
	const struct tally_delta *d = &st->d;
	if (!d->dirty)
		return 0;
	const int64_t a[10] = {d->seqs, d->pending, d->batched, d->delivered, d->superseded, d->dead,
	                       d->profiles, d->keys_new, d->last_delivery_ms, d->oldest_add};
	int rc = pobox_store_run(st, SQL_TALLIES_WRITE, "updating the tallies", 10, a, 0, NULL);
	if (rc == 0 && d->oldest_recount)
		rc = pobox_store_run(st, SQL_OLDEST_RECOUNT, "updating the tallies", 0, NULL, 0, NULL);
	return rc;
}

int pobox_store_begin_read(struct pobox_store *st)
{
	return pobox_store_exec_sql(st, "BEGIN", "starting a read transaction");
}

int pobox_store_commit(struct pobox_store *st)
{
	int rc = 0;
	if (pobox_store_in_tx(st)) {
		rc = pobox_store_append_flush(st);
		if (rc == 0)
			rc = write_tallies(st);
		if (rc == 0)
			rc = pobox_store_keys_maybe_merge(st);
	}
	if (rc == 0)
		rc = pobox_store_exec_sql(st, "COMMIT", "committing");
	if (rc != 0) {
		/* COMMIT failed but the transaction is still open (e.g. SQLITE_BUSY):
		 * roll it back so the handle is usable; the caller reports the loss.
		 * Either way what it interned is gone. */
		if (!sqlite3_get_autocommit(st->db))
			sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		pobox_store_keys_rollback(st);
		drop_caches(st);
	}
	memset(&st->d, 0, sizeof st->d);
	return rc;
}

int pobox_store_rollback(struct pobox_store *st)
{
	pobox_store_keys_rollback(st);
	drop_caches(st);
	if (sqlite3_get_autocommit(st->db))
		return 0;
	return pobox_store_exec_sql(st, "ROLLBACK", "rolling back");
}

/* ---- small statements ------------------------------------------------- */

int pobox_store_run(struct pobox_store *st, const char *sql, const char *what, int nint,
                    const int64_t *ints, int ntext, const char *const *texts)
{
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	if (!s)
		return POBOX_EIO;
	for (int i = 0; i < nint; i++)
		sqlite3_bind_int64(s, i + 1, ints[i]);
	for (int i = 0; i < ntext; i++) {
		if (texts[i])
			sqlite3_bind_text(s, nint + i + 1, texts[i], -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(s, nint + i + 1);
	}
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		;
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_DONE ? 0 : pobox_store_fail(st, rc, what);
}

int pobox_store_one(struct pobox_store *st, const char *sql, const char *what, int nint,
                    const int64_t *ints, int64_t *out, int *found)
{
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	if (!s)
		return POBOX_EIO;
	for (int i = 0; i < nint; i++)
		sqlite3_bind_int64(s, i + 1, ints[i]);
	int rc = sqlite3_step(s);
	if (found)
		*found = rc == SQLITE_ROW;
	if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
		*out = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : pobox_store_fail(st, rc, what);
}

int64_t pobox_store_col_int(sqlite3_stmt *s, int i, int64_t dflt)
{
	return sqlite3_column_type(s, i) == SQLITE_NULL ? dflt : sqlite3_column_int64(s, i);
}

char *pobox_store_scratch(struct pobox_store *st, size_t n)
{
	if (n <= st->scratch_cap)
		return st->scratch;
	size_t c = st->scratch_cap ? st->scratch_cap : 4096;
	while (c < n)
		c *= 2;
	char *ns = pobox_realloc(st->scratch, c);
	if (!ns)
		return NULL;
	st->scratch = ns;
	st->scratch_cap = c;
	return ns;
}

/* ---- interning names ----------------------------------------------------- */

/* Looks up name with `get`; inserts with `add` and looks again when absent.
 * The second look (rather than last_insert_rowid) is right even when another
 * process inserted the same name between our two statements. */
static int intern(struct pobox_store *st, const char *get, const char *add, const char *name,
                  size_t len, int64_t *out)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		sqlite3_stmt *s = pobox_store_prep(st, get);
		if (!s)
			return POBOX_EIO;
		sqlite3_bind_text(s, 1, name, (int)len, SQLITE_STATIC);
		int rc = sqlite3_step(s);
		if (rc == SQLITE_ROW) {
			*out = sqlite3_column_int64(s, 0);
			sqlite3_reset(s);
			return 0;
		}
		sqlite3_reset(s);
		if (rc != SQLITE_DONE)
			return pobox_store_fail(st, rc, "looking up a key");
		if (attempt)
			break;
		if (!(s = pobox_store_prep(st, add)))
			return POBOX_EIO;
		sqlite3_bind_text(s, 1, name, (int)len, SQLITE_STATIC);
		rc = sqlite3_step(s);
		sqlite3_reset(s);
		if (rc != SQLITE_DONE)
			return pobox_store_fail(st, rc, "adding a key");
		if (sqlite3_changes(st->db) == 1) {
			*out = sqlite3_last_insert_rowid(st->db);
			return 0;
		}
	}
	return pobox_errf(st->err, st->errlen, POBOX_ECORRUPT, "outbox %s: a key vanished while "
	                  "interning it", st->path);
}

static int intern_cached(struct pobox_store *st, struct name_cache *c, const char *get,
                         const char *add, const char *name, size_t len, int64_t *out)
{
	if (cache_get(c, name, len, out))
		return 0;
	int rc = intern(st, get, add, name, len, out);
	if (rc == 0 && cache_put(c, name, len, *out) != 0)
		cache_clear(c); /* only a cache: carry on without it */
	return rc;
}

int pobox_store_attr(struct pobox_store *st, const char *name, size_t len, int64_t *out)
{
	static const char get[] = "SELECT id FROM attributes WHERE name = ?1";
	static const char add[] = "INSERT OR IGNORE INTO attributes (name) VALUES (?1)";
	return intern_cached(st, &st->attrs, get, add, name, len, out);
}

int pobox_store_source(struct pobox_store *st, const char *name, int64_t *out)
{
	static const char get[] = "SELECT id FROM sources WHERE name = ?1";
	static const char add[] = "INSERT OR IGNORE INTO sources (name) VALUES (?1)";
	return intern_cached(st, &st->sources, get, add, name, strlen(name), out);
}

int pobox_store_shape_id(struct pobox_store *st, const int64_t *attrs, size_t n, int64_t *out)
{
	static const char get[] = "SELECT id FROM shapes WHERE attrs = ?1";
	static const char add[] = "INSERT OR IGNORE INTO shapes (attrs) VALUES (?1)";
	struct pobox_cells_buf b = {0};
	pobox_cells_open(&b);
	for (size_t i = 0; i < n; i++)
		pobox_cells_int(&b, attrs[i]);
	pobox_cells_close(&b);
	int rc = b.nomem ? pobox_errf(st->err, st->errlen, POBOX_ENOMEM, "out of memory")
	                 : intern_cached(st, &st->shape_ids, get, add, b.s, b.len, out);
	pobox_cells_buf_free(&b);
	return rc;
}

/* ---- status ------------------------------------------------------------ */

static int64_t file_size(const char *path, const char *suffix)
{
	char buf[4096];
	struct stat sb;
	snprintf(buf, sizeof buf, "%s%s", path, suffix);
	return stat(buf, &sb) == 0 ? (int64_t)sb.st_size : 0;
}

int pobox_store_status(struct pobox_store *st, struct pobox_status *out)
{
	/* all O(1): the tallies row */
	static const char sql[] =
		"SELECT t.pending, t.batched, t.delivered, t.superseded, t.dead, t.profiles,"
		" (SELECT count(*) FROM attributes),"
		" CASE WHEN t.pending > 0 THEN t.oldest_pending_ms END, t.last_delivery_ms "
		"FROM tallies t";
	struct pobox_status s;
	int rc;

	memset(&s, 0, sizeof s);
	s.oldest_pending_ms = -1;
	/* One read transaction, so the numbers agree with each other. */
	int own = !pobox_store_in_tx(st);
	if (own && (rc = pobox_store_exec_sql(st, "BEGIN", "reading status")) != 0)
		return rc;
	sqlite3_stmt *q = pobox_store_prep(st, sql);
	if (!q) {
		rc = POBOX_EIO;
		goto out;
	}
	if ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		for (int i = 0; i < POBOX_ST_COUNT; i++)
			s.updates[i] = sqlite3_column_int64(q, i);
		s.profiles = sqlite3_column_int64(q, 5);
		s.attributes = sqlite3_column_int64(q, 6);
		s.oldest_pending_ms = pobox_store_col_int(q, 7, -1);
		s.last_delivery_ms = sqlite3_column_int64(q, 8);
		rc = SQLITE_DONE;
	}
	sqlite3_reset(q);
	if (rc != SQLITE_DONE) {
		rc = pobox_store_fail(st, rc, "reading the tallies");
		goto out;
	}
	if ((rc = pobox_store_schema_version(st, &s.schema_version)) != 0)
		goto out;
	s.file_bytes = file_size(st->path, "") + file_size(st->path, "-wal");
	s.used_bytes = pobox_store_used_bytes(st);
	*out = s;
	rc = 0;
out:
	if (own)
		sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
	return rc;
}

int pobox_store_status_json(struct pobox_store *st, const struct pobox_status *s, int64_t now_ms,
                            char **out)
{
	static const char sql[] =
		"SELECT json_object("
		" 'outbox', ?1, 'schema_version', ?2, 'file_bytes', ?3,"
		" 'updates', json_object('pending', ?4, 'batched', ?5, 'delivered', ?6,"
		"                        'superseded', ?7, 'dead', ?8),"
		" 'profiles', ?9, 'attributes', ?10,"
		" 'oldest_pending_enqueued_at',"
		"   CASE WHEN ?11 >= 0 THEN strftime('%Y-%m-%dT%H:%M:%fZ', ?11 / 1000.0, 'unixepoch') END,"
		" 'oldest_pending_age_s', CASE WHEN ?11 >= 0 THEN (?12 - ?11) / 1000 END,"
		" 'used_bytes', ?13,"
		" 'bytes_per_update', CASE WHEN ?14 > 0 THEN round(?13 * 1.0 / ?14, 1) END)";
	sqlite3_stmt *q = pobox_store_prep(st, sql);
	int rc;
	if (!q)
		return POBOX_EIO;
	int64_t stored = 0;
	for (int i = 0; i < POBOX_ST_COUNT; i++)
		stored += s->updates[i];
	sqlite3_bind_text(q, 1, st->path, -1, SQLITE_STATIC);
	sqlite3_bind_int(q, 2, s->schema_version);
	sqlite3_bind_int64(q, 3, s->file_bytes);
	for (int i = 0; i < POBOX_ST_COUNT; i++)
		sqlite3_bind_int64(q, 4 + i, s->updates[i]);
	sqlite3_bind_int64(q, 9, s->profiles);
	sqlite3_bind_int64(q, 10, s->attributes);
	sqlite3_bind_int64(q, 11, s->oldest_pending_ms);
	sqlite3_bind_int64(q, 12, now_ms);
	sqlite3_bind_int64(q, 13, s->used_bytes);
	sqlite3_bind_int64(q, 14, stored);
	rc = sqlite3_step(q);
	if (rc == SQLITE_ROW) {
		const char *j = (const char *)sqlite3_column_text(q, 0);
		*out = pobox_strdup(j ? j : "{}");
		rc = *out ? 0 : POBOX_ENOMEM;
	} else {
		rc = pobox_store_fail(st, rc, "building status JSON");
	}
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	return rc;
}
