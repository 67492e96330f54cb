/*
 * internal.h - what the files of the store (src/store/) share:
 * the handle, the statement cache, the tallies kept for the open
 * transaction, error mapping.  Not for any other module: everything else
 * goes through store.h.
 *
 *   store.c   opening, migrations, transactions, tallies, status
 *   keys.c    profile keys: the hash, lookups, new profiles, merges, filter
 *   writes.c  writes and their cells: appending, staged rows, the pending
 *             scan, superseding, fencing, folding delivered values, pruning
 *   batch.c   batch rows and their lifecycle, the bulk ledger, lanes
 *   quota.c   the single-call ledger and single-lane outcomes
 *   ops.c     dead letters, doctor
 */
#ifndef POBOX_STORE_INTERNAL_H
#define POBOX_STORE_INTERNAL_H

#include "store.h"

#include <sqlite3.h>

struct name_cache_entry {
	char *name;
	int64_t id;
};

/* A small open-addressing map from name to row id.  Attribute, source and
 * shape names are few (tens to thousands), so a linear-probe table that
 * doubles is plenty; it is only a cache in front of the UNIQUE index. */
struct name_cache {
	struct name_cache_entry *slots;
	size_t cap, used;
};

/* Changes to the tallies row made by the open transaction; written by one
 * UPDATE just before COMMIT (pobox_store_commit). */
struct tally_delta {
	int64_t pending, batched, delivered, superseded, dead;
	int64_t seqs;            /* seqs handed out */
	int64_t profiles;        /* profiles created */
	int64_t keys_new;        /* rows added to profile_keys_new */
	int64_t last_delivery_ms;
	int64_t oldest_add;      /* least enqueue time made pending (0: none) */
	int oldest_recount;      /* something left the pending set: recount */
	int dirty;
};

/* The shape of a write, decoded (cached by id). */
struct shape {
	int64_t id;
	size_t n;
	int64_t *attrs;
};

struct key_filter;

struct pobox_store {
	sqlite3 *db;
	char *path;
	char *err;
	size_t errlen;
	struct name_cache attrs;
	struct name_cache sources;
	struct name_cache shape_ids;   /* shape JSON -> id */
	struct shape *shapes;          /* by id, decoded on use */
	size_t nshapes;
	/* statements, cached by the address of their SQL */
	struct {
		const char *sql;
		sqlite3_stmt *stmt;
	} cache[160];
	int ncache;
	/* valid inside a write transaction (read at BEGIN) */
	int64_t next_seq, next_profile, keys_main, keys_new, filter_gen;
	struct tally_delta d;
	/* keys.c */
	int64_t hint;                  /* id of the last profile looked up */
	struct key_filter *filter;     /* Bloom filter over profile_keys, if loaded */
	int64_t main_probes;           /* lookups that reached profile_keys */
	/* writes.c scratch */
	char *scratch;
	size_t scratch_cap;
	sqlite3 *reader;               /* second connection for streaming payloads */
};

/* The statement for sql (a string with static storage), prepared once. */
sqlite3_stmt *pobox_store_prep(struct pobox_store *st, const char *sql);

int pobox_store_code(int rc);
int pobox_store_fail(struct pobox_store *st, int rc, const char *what);
int pobox_store_exec_sql(struct pobox_store *st, const char *sql, const char *what);
/* An error when no write transaction is open (tallied changes need one). */
int pobox_store_need_tx(struct pobox_store *st, const char *what);

/* Runs a prepared statement that returns no rows (or ignores them), with
 * nint int64 binds then ntext text binds (NULL binds SQL NULL). */
int pobox_store_run(struct pobox_store *st, const char *sql, const char *what, int nint,
                    const int64_t *ints, int ntext, const char *const *texts);
/* First column of the first row as int64 (*out untouched when no row or
 * NULL); *found (may be NULL) = whether there was a row. */
int pobox_store_one(struct pobox_store *st, const char *sql, const char *what, int nint,
                    const int64_t *ints, int64_t *out, int *found);

/* Column i as int64, or dflt when NULL. */
int64_t pobox_store_col_int(sqlite3_stmt *s, int i, int64_t dflt);

/* A scratch buffer of at least n bytes owned by the store (reused). */
char *pobox_store_scratch(struct pobox_store *st, size_t n);

/* keys.c */
int64_t pobox_khash(int id_type, const char *id, size_t len);
int pobox_store_register_functions(struct pobox_store *st);
/* Merges profile_keys_new into profile_keys when it has grown enough
 * (called before COMMIT). */
int pobox_store_keys_maybe_merge(struct pobox_store *st);
void pobox_store_keys_free(struct pobox_store *st);
/* A new profile with the next id (pending_since_ms < 0: not pending). */
int pobox_store_profile_create(struct pobox_store *st, enum pobox_id_type t, const char *id,
                               size_t len, int64_t pending_since_ms, int64_t *out);

/* writes.c */
/* Calls fn for each live update of a write (value borrowed for the call);
 * nfates = writes.fates (0: no need to look at fates). */
typedef int (*pobox_store_cell_fn)(void *ctx, int64_t seq, int64_t attr, const char *v, size_t len);
int pobox_store_each_cell(struct pobox_store *st, int64_t seq, int64_t shape_id, const char *cells,
                          size_t cells_len, int64_t nfates, pobox_store_cell_fn fn, void *ctx);
/* Decoded shape by id (borrowed, valid until the store closes). */
int pobox_store_shape(struct pobox_store *st, int64_t id, const struct shape **out);
void pobox_store_shapes_free(struct pobox_store *st);

#endif
