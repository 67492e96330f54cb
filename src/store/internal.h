/*
 * internal.h - what the files of the store (src/store/) share:
 * the handle, the statement cache, error mapping.  Not for any other
 * module: everything else goes through store.h.
 */
#ifndef POBOX_STORE_INTERNAL_H
#define POBOX_STORE_INTERNAL_H

#include "store.h"

#include <sqlite3.h>

enum stmt_id {
	S_PROFILE_GET,
	S_PROFILE_ADD,
	S_ATTR_GET,
	S_ATTR_ADD,
	S_SOURCE_GET,
	S_SOURCE_ADD,
	S_APPEND,
	S_COUNT_BY_STATE,
	S_COUNT_KEYS,
	S_STATUS_JSON,
	S_COUNT
};

extern const char *const pobox_store_sql[S_COUNT];

struct name_cache_entry {
	char *name;
	int64_t id;
};

/* A small open-addressing map from name to row id.  Attribute and source
 * names are few (tens to thousands), so a linear-probe table that doubles is
 * plenty; it is only a cache in front of the UNIQUE index. */
struct name_cache {
	struct name_cache_entry *slots;
	size_t cap, used;
};

struct pobox_store {
	sqlite3 *db;
	char *path;
	char *marker;          /* "<path>-corrupt" */
	int busy_timeout_ms;
	int read_only;         /* opened read-only (opts.reader fallback) */
	int immutable;         /* ... and without -shm: a snapshot, no marker */
	int write_damaged;     /* doctor: writes allowed when marked */
	int damaged;           /* this process saw damage */
	int hook_refused;      /* the commit hook refused the last commit */
	int last_rc;           /* SQLite's code of the last failure */
	int identified;        /* the file proved to be a pobox outbox (or new) */
	char *err;
	size_t errlen;
	sqlite3_stmt *stmts[S_COUNT];
	struct name_cache attrs;
	struct name_cache sources;
	/* statements of store_batch.c, cached by the address of their SQL */
	struct {
		const char *sql;
		sqlite3_stmt *stmt;
	} cache[64];
	int ncache;
};

/* The statement for sql (a string with static storage), prepared once. */
sqlite3_stmt *pobox_store_prep(struct pobox_store *st, const char *sql);

int pobox_store_code(int rc);
/* Records damage when rc says SQLite found the file damaged (marker file,
 * flag); returns rc.  msg is SQLite's message. */
int pobox_store_note_damage(struct pobox_store *st, int rc, const char *msg);
/* Installs the commit hook that refuses commits while damaged. */
void pobox_store_guard_commits(struct pobox_store *st);

/* Opening (store/health.c).  Before SQLite sees the path: refuses, naming
 * the path and what is wrong, a directory, a missing directory, a
 * non-regular file, an empty file where an outbox must exist (existing) and
 * an empty file beside a non-empty WAL (a truncated outbox). */
int pobox_store_check_path(struct pobox_store *st, int existing);
/* 1 when the last failure was SQLite failing to set up its files (a
 * read-only directory or file, a full disk): a reader may then try
 * read-only. */
int pobox_store_setup_failed(const struct pobox_store *st);
/* Rewrites an open failure (code) into what the operator can act on: the
 * disk is full (POBOX_EFULL), the directory or file is not writable. */
int pobox_store_explain_open(struct pobox_store *st, int code);
int pobox_store_fail(struct pobox_store *st, int rc, const char *what);
/* The cached statement id, prepared on first use; NULL (error set) on failure. */
sqlite3_stmt *pobox_store_stmt(struct pobox_store *st, int id);
int pobox_store_exec_sql(struct pobox_store *st, const char *sql, const char *what);

#endif
