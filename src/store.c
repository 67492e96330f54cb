/*
 * store.c - the outbox store on SQLite.
 *
 * Owns: opening the file safely, schema migrations, connection settings
 * (WAL, busy timeout, synchronous), the prepared-statement cache, interning
 * of profiles/attributes/sources, appending updates, and status queries.
 * Does not own: validation (validate.c) or anything about delivery.
 *
 * Opening, in order, so that a file we must refuse is never changed:
 *   1. open without creating unless asked; set the busy timeout first;
 *   2. read user_version and application_id; refuse a file that is not an
 *      SQLite database, belongs to another application, or carries a schema
 *      newer than this build (all before any write, even before WAL mode);
 *   3. switch to WAL and the configured synchronous level;
 *   4. apply each missing migration in its own IMMEDIATE transaction,
 *      re-reading user_version inside it, so two processes opening a fresh
 *      outbox at once migrate it exactly once.
 *
 * Statement cache: each SQL statement is prepared once per store on first
 * use (stmt()) and reset after each use.  Interned attributes and sources are
 * cached in memory; the caches are dropped on rollback because a rolled-back
 * insert would otherwise leave an id in the cache that no row holds.
 */
#include "store.h"
#include "alloc.h"
#include "error.h"
#include "migrations.h"
#include "store_internal.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define POBOX_APPLICATION_ID 0x504F4258 /* "POBX" */

const char *const pobox_update_state_names[POBOX_ST_COUNT] = {
	"pending", "batched", "delivered", "superseded", "dead",
};

const char *const pobox_store_sql[S_COUNT] = {
	[S_PROFILE_GET] = "SELECT id FROM profiles WHERE id_type = ?1 AND profile_id = ?2",
	[S_PROFILE_ADD] = "INSERT OR IGNORE INTO profiles (id_type, profile_id) VALUES (?1, ?2)",
	[S_ATTR_GET] = "SELECT id FROM attributes WHERE name = ?1",
	[S_ATTR_ADD] = "INSERT OR IGNORE INTO attributes (name) VALUES (?1)",
	[S_SOURCE_GET] = "SELECT id FROM sources WHERE name = ?1",
	[S_SOURCE_ADD] = "INSERT OR IGNORE INTO sources (name) VALUES (?1)",
	[S_APPEND] = "INSERT INTO updates (profile, attr, value, enqueued_at_ms, source, urgent) "
	             "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	/* States derived as in v_updates (schema/0002_delivery.sql). */
	[S_COUNT_BY_STATE] =
		"WITH d AS (SELECT u.state AS fate, u.enqueued_at_ms AS t,"
		"  CASE WHEN u.state <> 'live' THEN 0"
		"       WHEN u.seq <= p.done_seq THEN 2"
		"       WHEN p.batch IS NOT NULL AND u.seq <= p.batch_seq THEN 1 ELSE -1 END AS k"
		"  FROM updates u JOIN profiles p ON p.id = u.profile) "
		/* one pass, no GROUP BY: a sorter over millions of rows is slow */
		"SELECT sum(k = -1), sum(k = 1), sum(k = 2), sum(fate = 'superseded'), sum(fate = 'dead'),"
		"       min(CASE WHEN k = -1 THEN t END) FROM d",
	[S_COUNT_KEYS] = "SELECT (SELECT count(*) FROM profiles), (SELECT count(*) FROM attributes)",
	[S_STATUS_JSON] =
		"SELECT json_object("
		" 'outbox', ?1, 'schema_version', ?2, 'file_bytes', ?3,"
		" 'updates', json_object('pending', ?4, 'batched', ?5, 'delivered', ?6,"
		"                        'superseded', ?7, 'dead', ?8),"
		" 'profiles', ?9, 'attributes', ?10,"
		" 'oldest_pending_enqueued_at',"
		"   CASE WHEN ?11 >= 0 THEN strftime('%Y-%m-%dT%H:%M:%fZ', ?11 / 1000.0, 'unixepoch') END,"
		" 'oldest_pending_age_s', CASE WHEN ?11 >= 0 THEN (?12 - ?11) / 1000 END)",
};

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

sqlite3_stmt *pobox_store_prep(struct pobox_store *st, const char *sql)
{
	for (int i = 0; i < st->ncache; i++)
		if (st->cache[i].sql == sql)
			return st->cache[i].stmt;
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, NULL);
	if (rc != SQLITE_OK) {
		pobox_store_fail(st, rc, "preparing a statement");
		return NULL;
	}
	if (st->ncache < (int)(sizeof st->cache / sizeof st->cache[0])) {
		st->cache[st->ncache].sql = sql;
		st->cache[st->ncache++].stmt = s;
	}
	/* A full cache would leak: 96 slots are more than the module has. */
	return s;
}

sqlite3_stmt *pobox_store_stmt(struct pobox_store *st, int id)
{
	if (!st->stmts[id]) {
		int rc = sqlite3_prepare_v3(st->db, pobox_store_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
		                            &st->stmts[id], NULL);
		if (rc != SQLITE_OK) {
			pobox_store_fail(st, rc, "preparing a statement");
			return NULL;
		}
	}
	return st->stmts[id];
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
	int rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
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
	int rc = sqlite3_exec(st->db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK) {
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
	if (rc != SQLITE_OK)
		return pobox_store_fail(st, rc, "reading the outbox's header");
	*version = (int)v;
	if ((*version > 0 || objects > 0) && app != POBOX_APPLICATION_ID)
		return pobox_errf(st->err, st->errlen, POBOX_ECORRUPT,
		                  "%s is an SQLite database but not a pobox outbox (application_id "
		                  "%lld); point --db at a pobox outbox or at a new file",
		                  st->path, (long long)app);
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

int pobox_store_open(struct pobox_store **out, const char *path,
                     const struct pobox_store_opts *o, char *err, size_t errlen)
{
	struct pobox_store *st = NULL;
	int rc, version = 0;
	static const char *const sync_pragma[] = {
		[POBOX_SYNC_FULL] = "PRAGMA synchronous = FULL",
		[POBOX_SYNC_NORMAL] = "PRAGMA synchronous = NORMAL",
		[POBOX_SYNC_OFF] = "PRAGMA synchronous = OFF",
	};

	if (!path || !*path)
		return pobox_errf(err, errlen, POBOX_ECONFIG, "no outbox path given (use --db PATH or "
		                  "the db key in the config file)");
	if (o->synchronous < POBOX_SYNC_FULL || o->synchronous > POBOX_SYNC_OFF)
		return pobox_errf(err, errlen, POBOX_ECONFIG, "synchronous level %d is not one of "
		                  "FULL, NORMAL, OFF", (int)o->synchronous);
	st = pobox_calloc(1, sizeof *st);
	if (!st || !(st->path = pobox_strdup(path))) {
		rc = pobox_errf(err, errlen, POBOX_ENOMEM, "out of memory opening %s", path);
		goto out;
	}
	st->err = err;
	st->errlen = errlen;

	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (o->must_exist ? 0 : SQLITE_OPEN_CREATE);
	rc = sqlite3_open_v2(path, &st->db, flags, NULL);
	if (rc != SQLITE_OK) {
		if (o->must_exist && rc == SQLITE_CANTOPEN) {
			struct stat sb;
			if (stat(path, &sb) != 0) {
				rc = pobox_errf(err, errlen, POBOX_ENOTFOUND,
				                "outbox %s does not exist; check --db, or put an update to "
				                "create it", path);
				goto out;
			}
		}
		rc = pobox_store_fail(st, rc, "opening");
		goto out;
	}
	sqlite3_extended_result_codes(st->db, 1);
	sqlite3_busy_timeout(st->db, o->busy_timeout_ms);
	if ((rc = check_identity(st, &version)) != 0)
		goto out;
	/* WAL lets producers append while `pobox run` and operators read.
	 * Switching a new file to WAL needs an exclusive lock, and SQLite says
	 * SQLITE_BUSY at once instead of waiting when another process is
	 * creating the same outbox: retry until busy_timeout_ms. */
	{
		sqlite3_stmt *s = NULL;
		const char *mode = NULL;
		int r;
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
		if (!mode || strcmp(mode, "wal") != 0) {
			rc = r == SQLITE_ROW ? pobox_errf(err, errlen, POBOX_EIO,
			                                  "outbox %s: cannot use WAL mode (got %s); put the "
			                                  "outbox on a local file system", path,
			                                  mode ? mode : "nothing")
			                     : pobox_store_fail(st, r, "switching to WAL mode");
			sqlite3_finalize(s);
			goto out;
		}
		sqlite3_finalize(s);
	}
	if ((rc = pobox_store_exec_sql(st, sync_pragma[o->synchronous], "setting synchronous")) != 0)
		goto out;
	/* After a checkpoint the WAL file is cut back to 64 MB: without this, a
	 * WAL swollen by a big import keeps its size on disk forever. */
	if ((rc = pobox_store_exec_sql(st, "PRAGMA journal_size_limit = 67108864",
	                               "limiting the WAL")) != 0)
		goto out;
	if (version < pobox_store_known_version() && (rc = migrate(st)) != 0)
		goto out;
	if ((rc = sync_settings(st, o)) != 0)
		goto out;
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
	for (int i = 0; i < S_COUNT; i++)
		sqlite3_finalize(st->stmts[i]);
	for (int i = 0; i < st->ncache; i++)
		sqlite3_finalize(st->cache[i].stmt);
	if (st->db && !sqlite3_get_autocommit(st->db))
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_close(st->db);
	cache_clear(&st->attrs);
	cache_clear(&st->sources);
	pobox_free(st->path);
	pobox_free(st);
}

const char *pobox_store_path(const struct pobox_store *st) { return st->path; }

int pobox_store_schema_version(struct pobox_store *st, int *out)
{
	return pobox_store_query_int(st, "PRAGMA user_version", out);
}

int pobox_store_exec(struct pobox_store *st, const char *sql) { return pobox_store_exec_sql(st, sql, "exec"); }

/* ---- transactions ------------------------------------------------------ */

int pobox_store_in_tx(struct pobox_store *st) { return !sqlite3_get_autocommit(st->db); }

int pobox_store_begin(struct pobox_store *st)
{
	return pobox_store_exec_sql(st, "BEGIN IMMEDIATE", "starting a transaction");
}

int pobox_store_commit(struct pobox_store *st)
{
	int rc = pobox_store_exec_sql(st, "COMMIT", "committing");
	if (rc != 0 && !sqlite3_get_autocommit(st->db)) {
		/* COMMIT failed but the transaction is still open (e.g. SQLITE_BUSY):
		 * roll it back so the handle is usable; the caller reports the loss. */
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
		cache_clear(&st->attrs);
		cache_clear(&st->sources);
	}
	return rc;
}

int pobox_store_rollback(struct pobox_store *st)
{
	cache_clear(&st->attrs);
	cache_clear(&st->sources);
	if (sqlite3_get_autocommit(st->db))
		return 0;
	return pobox_store_exec_sql(st, "ROLLBACK", "rolling back");
}

/* ---- interning --------------------------------------------------------- */

/* Looks up name with `get`; inserts with `add` and looks again when absent.
 * The second look (rather than last_insert_rowid) is right even when another
 * process inserted the same name between our two statements. */
static int intern(struct pobox_store *st, enum stmt_id get, enum stmt_id add, const char *type,
                  const char *name, size_t len, int64_t *out)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		sqlite3_stmt *s = pobox_store_stmt(st, get);
		if (!s)
			return POBOX_EIO;
		int bind = 1;
		if (type)
			sqlite3_bind_text(s, bind++, type, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, bind, name, (int)len, SQLITE_STATIC);
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
		s = pobox_store_stmt(st, add);
		if (!s)
			return POBOX_EIO;
		bind = 1;
		if (type)
			sqlite3_bind_text(s, bind++, type, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, bind, name, (int)len, SQLITE_STATIC);
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

int pobox_store_profile(struct pobox_store *st, enum pobox_id_type t, const char *id, size_t len,
                        int64_t *out)
{
	return intern(st, S_PROFILE_GET, S_PROFILE_ADD, pobox_id_type_name(t), id, len, out);
}

static int intern_cached(struct pobox_store *st, struct name_cache *c, enum stmt_id get,
                         enum stmt_id add, const char *name, size_t len, int64_t *out)
{
	if (cache_get(c, name, len, out))
		return 0;
	int rc = intern(st, get, add, NULL, name, len, out);
	if (rc == 0 && cache_put(c, name, len, *out) != 0)
		cache_clear(c); /* only a cache: carry on without it */
	return rc;
}

int pobox_store_attr(struct pobox_store *st, const char *name, size_t len, int64_t *out)
{
	return intern_cached(st, &st->attrs, S_ATTR_GET, S_ATTR_ADD, name, len, out);
}

int pobox_store_source(struct pobox_store *st, const char *name, int64_t *out)
{
	return intern_cached(st, &st->sources, S_SOURCE_GET, S_SOURCE_ADD, name, strlen(name), out);
}

int pobox_store_append(struct pobox_store *st, int64_t profile, int64_t attr, const char *value,
                       size_t len, int64_t enqueued_at_ms, int64_t source, int urgent)
{
	sqlite3_stmt *s = pobox_store_stmt(st, S_APPEND);
	if (!s)
		return POBOX_EIO;
	sqlite3_bind_int64(s, 1, profile);
	sqlite3_bind_int64(s, 2, attr);
	sqlite3_bind_text(s, 3, value, (int)len, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, enqueued_at_ms);
	if (source > 0)
		sqlite3_bind_int64(s, 5, source);
	else
		sqlite3_bind_null(s, 5);
	sqlite3_bind_int(s, 6, urgent ? 1 : 0);
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : pobox_store_fail(st, rc, "appending an update");
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
	struct pobox_status s;
	sqlite3_stmt *q;
	int rc;

	memset(&s, 0, sizeof s);
	s.oldest_pending_ms = -1;
	/* One read transaction, so the numbers agree with each other. */
	if ((rc = pobox_store_exec_sql(st, "BEGIN", "reading status")) != 0)
		return rc;
	if (!(q = pobox_store_stmt(st, S_COUNT_BY_STATE))) {
		rc = POBOX_EIO;
		goto out;
	}
	if ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		for (int i = 0; i < POBOX_ST_COUNT; i++)
			s.updates[i] = sqlite3_column_int64(q, i);
		if (sqlite3_column_type(q, 5) != SQLITE_NULL)
			s.oldest_pending_ms = sqlite3_column_int64(q, 5);
		rc = SQLITE_DONE;
	}
	sqlite3_reset(q);
	if (rc != SQLITE_DONE) {
		rc = pobox_store_fail(st, rc, "counting updates");
		goto out;
	}
	if (!(q = pobox_store_stmt(st, S_COUNT_KEYS))) {
		rc = POBOX_EIO;
		goto out;
	}
	if ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		s.profiles = sqlite3_column_int64(q, 0);
		s.attributes = sqlite3_column_int64(q, 1);
	}
	sqlite3_reset(q);
	if (rc != SQLITE_ROW) {
		rc = pobox_store_fail(st, rc, "counting keys");
		goto out;
	}
	if ((rc = pobox_store_schema_version(st, &s.schema_version)) != 0)
		goto out;
	s.file_bytes = file_size(st->path, "") + file_size(st->path, "-wal");
	*out = s;
	rc = 0;
out:
	sqlite3_exec(st->db, "COMMIT", NULL, NULL, NULL);
	return rc;
}

int pobox_store_status_json(struct pobox_store *st, const struct pobox_status *s, int64_t now_ms,
                            char **out)
{
	sqlite3_stmt *q = pobox_store_stmt(st, S_STATUS_JSON);
	int rc;
	if (!q)
		return POBOX_EIO;
	sqlite3_bind_text(q, 1, st->path, -1, SQLITE_STATIC);
	sqlite3_bind_int(q, 2, s->schema_version);
	sqlite3_bind_int64(q, 3, s->file_bytes);
	for (int i = 0; i < POBOX_ST_COUNT; i++)
		sqlite3_bind_int64(q, 4 + i, s->updates[i]);
	sqlite3_bind_int64(q, 9, s->profiles);
	sqlite3_bind_int64(q, 10, s->attributes);
	sqlite3_bind_int64(q, 11, s->oldest_pending_ms);
	sqlite3_bind_int64(q, 12, now_ms);
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
