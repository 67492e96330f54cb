/*
 * store_internal.h - what the store's own files (store.c, store_batch.c)
 * share: the handle, the statement cache, error mapping.  Not for any other
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
	char *err;
	size_t errlen;
	sqlite3_stmt *stmts[S_COUNT];
	struct name_cache attrs;
	struct name_cache sources;
	/* statements of store_batch.c, cached by the address of their SQL */
	struct {
		const char *sql;
		sqlite3_stmt *stmt;
	} cache[96];
	int ncache;
};

/* The statement for sql (a string with static storage), prepared once. */
sqlite3_stmt *pobox_store_prep(struct pobox_store *st, const char *sql);

int pobox_store_code(int rc);
int pobox_store_fail(struct pobox_store *st, int rc, const char *what);
/* The cached statement id, prepared on first use; NULL (error set) on failure. */
sqlite3_stmt *pobox_store_stmt(struct pobox_store *st, int id);
int pobox_store_exec_sql(struct pobox_store *st, const char *sql, const char *what);

#endif
