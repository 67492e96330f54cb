/*
 * internal.h - what the files of the store (src/store/) share:
 * the handle, the statement cache, the tallies kept for the open
 * transaction, error mapping.  Not for any other module: everything else
 * goes through store.h.
 *
 *   store.c   opening, migrations, transactions, tallies, status
 *   append.c  rows appended by a transaction, inserted 32 at a time
 *   keys.c    profile keys: the hash, lookups, new profiles, merges, filter
 *   writes.c  writes and their cells: appending, staged rows, reading a
 *             write's updates, superseding, dead-lettering
 *   scan.c    the pending set and a batch's profiles, as a cut reads them
 *   members.c batch members, the fence, profiles leaving a batch
 *   sent.c    last delivered values, folding, pruning history
 *   batch.c   batch rows and their lifecycle, the bulk ledger, lanes
 *   quota.c   the single-call ledger and single-lane outcomes
 *   fleet.c   a fleet's leases: this host's side of a shared budget
 *   ops.c     dead letters, doctor
 *   verify.c  what Target was sent, per profile, and the record of each
 *             verification
 *   watch.c   figures for flush's progress line and status --watch
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

/* Rows appended by the open transaction, not inserted yet (append.c). */
#define APPEND_ROWS 32
struct ab_profile {
	int64_t id, khash, last_write;
	int type;
	size_t off, len;           /* the profile id, in text */
};
struct ab_write {
	int64_t seq, profile, shape, n, enq, source;
	int urgent;
	size_t off, len;           /* the cells, in text */
};
struct append_buf {
	struct ab_profile p[APPEND_ROWS];
	struct ab_write w[APPEND_ROWS];
	int np, nw, flushing;
	char *text;
	size_t text_len, text_cap;
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
	struct name_cache attrs;
	struct name_cache sources;
	struct name_cache shape_ids;   /* shape JSON -> id */
	struct shape *shapes;          /* by id, decoded on use */
	size_t nshapes;
	/* statements, cached by the address of their SQL: the store's files
	 * define at most 158 (139 without fleet.c's 19); a full cache is an
	 * error, so keep room */
	struct {
		const char *sql;
		sqlite3_stmt *stmt;
	} cache[192];
	int ncache;
	/* valid inside a write transaction (read at BEGIN) */
	int64_t next_seq, next_profile, keys_main, keys_new, filter_gen, cut_seq, batch_gen;
	struct tally_delta d;
	int taken;                     /* the scanned profile was cut or killed */
	int64_t cut_max;               /* the open cut's newest seq */
	/* keys.c */
	int64_t hint;                  /* id of the last profile looked up */
	struct key_filter *filter;     /* Bloom filter over profile_keys, if loaded */
	int64_t main_probes;           /* lookups that reached profile_keys */
	struct key_filter *fresh;      /* Bloom filter over profile_keys_new, when it
	                                  covers all of it (fresh_known rows) */
	int64_t fresh_known, fresh_gen;
	int64_t fresh_probes;
	/* members.c */
	struct fence *fence;           /* members of unfinished batches, by batch_gen */
	struct cut_members *cm;        /* members collected by the open cut */
	/* writes.c scratch */
	char *scratch;
	size_t scratch_cap;
	struct append_buf ab;
};

/* The statement for sql (a string with static storage), prepared once.
 * Rows waiting in the append buffer go in first (append.c). */
sqlite3_stmt *pobox_store_prep(struct pobox_store *st, const char *sql);
/* The same without that: only for statements that cannot see the buffered
 * rows' tables or that look at the buffer themselves. */
sqlite3_stmt *pobox_store_prep_raw(struct pobox_store *st, const char *sql);
/* The first len bytes of sql as the statement (cached by sql's address). */
sqlite3_stmt *pobox_store_prep_len(struct pobox_store *st, const char *sql, size_t len);

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
/* At BEGIN and at ROLLBACK: keeps the filter over profile_keys_new true. */
void pobox_store_keys_begin(struct pobox_store *st);
void pobox_store_keys_rollback(struct pobox_store *st);
/* A new profile with the next id, its newest write last_write. */
int pobox_store_profile_create(struct pobox_store *st, enum pobox_id_type t, const char *id,
                               size_t len, int64_t last_write, int64_t *out);

/* append.c */
int pobox_store_append_flush(struct pobox_store *st);
void pobox_store_append_drop(struct pobox_store *st);
void pobox_store_append_free(struct pobox_store *st);
int pobox_store_append_profile(struct pobox_store *st, int64_t id, int type, const char *pid,
                               size_t len, int64_t khash, int64_t last_write);
int pobox_store_append_write(struct pobox_store *st, int64_t seq, int64_t profile, int64_t shape,
                             const char *cells, size_t len, int64_t n, int64_t enq,
                             int64_t source, int urgent);
/* Moves a buffered new profile's newest write: 0 when it is not buffered. */
int pobox_store_append_last_write(struct pobox_store *st, int64_t profile, int64_t seq);
/* The id of a buffered new profile with this key, 0 when none. */
int64_t pobox_store_append_find(const struct pobox_store *st, int64_t khash, int type,
                                const char *pid, size_t len);

/* members.c: who is in which batch */
struct fence;
struct cut_members;
/* *batch_seq = the cut seq of the unfinished batch profile is a member of
 * (and has not left), 0 when none. */
int pobox_store_fenced(struct pobox_store *st, int64_t profile, int64_t *batch_seq);
/* The same, with the batch's id (0 when none). */
int pobox_store_fenced_by(struct pobox_store *st, int64_t profile, int64_t *batch,
                          int64_t *batch_seq);
/* The members of batch (minus those that left), ascending: *ids owned by
 * the caller (pobox_free). */
int pobox_store_members(struct pobox_store *st, int64_t batch, int64_t **ids, size_t *n);
/* Replaces batch's members with ids[0..n) (ascending). */
int pobox_store_members_set(struct pobox_store *st, int64_t batch, const int64_t *ids, size_t n);
/* Drops the payloads and member lists of batches finished before
 * cutoff_ms, a few batches at a time (the rows stay: history). */
int pobox_store_prune_batches(struct pobox_store *st, int64_t cutoff_ms);
/* A cut's members, collected per batch and written when it is filled. */
int pobox_store_member_add(struct pobox_store *st, int64_t batch, int64_t profile);
/* Writes the members collected for batch (if any) and the cut's seq. */
int pobox_store_members_flush(struct pobox_store *st, int64_t batch);
void pobox_store_members_free(struct pobox_store *st);
/* Profiles leaving an unfinished batch early. */
int pobox_store_leave(struct pobox_store *st, int64_t batch, int64_t profile);
/* The live updates of profile in (lo, hi]. */
int pobox_store_cells_in(struct pobox_store *st, int64_t profile, int64_t lo, int64_t hi,
                         int64_t *n);
/* Puts profile in held (its pending updates wait), since_ms = the enqueue
 * time of its oldest pending one. */
int pobox_store_hold(struct pobox_store *st, int64_t profile, int64_t since_ms);

/* sent.c: folds the profile's delivered writes in (sent_seq, done_seq]
 * into its sent row. */
int pobox_store_fold(struct pobox_store *st, int64_t profile, int64_t done_seq, int64_t sent_seq);
/* sent.c: the profile's last delivered value of each attribute (as
 * pobox_store_last_delivered) with its seq and when Target confirmed it. */
typedef int (*pobox_store_dval_fn)(void *ctx, int64_t attr, const char *v, size_t len,
                                   int64_t seq, int64_t sent_at_ms);
int pobox_store_delivered_each(struct pobox_store *st, int64_t profile, int64_t done_seq,
                               int64_t sent_seq, pobox_store_dval_fn fn, void *ctx);

/* writes.c */
/* Calls fn for each live update of a write (value borrowed for the call);
 * nfates = writes.fates (0: no need to look at fates). */
typedef int (*pobox_store_cell_fn)(void *ctx, int64_t seq, int64_t attr, const char *v, size_t len);
int pobox_store_each_cell(struct pobox_store *st, int64_t seq, int64_t shape_id, const char *cells,
                          size_t cells_len, int64_t nfates, pobox_store_cell_fn fn, void *ctx);
/* fn for each live update of the profile's writes with lo < seq <= hi, in
 * seq order (writes.c); `what` names the step in an error. */
int pobox_store_each_cell_in(struct pobox_store *st, int64_t profile, int64_t lo, int64_t hi,
                             const char *what, pobox_store_cell_fn fn, void *ctx);
/* Decoded shape by id (borrowed, valid until the store closes). */
int pobox_store_shape(struct pobox_store *st, int64_t id, const struct shape **out);
void pobox_store_shapes_free(struct pobox_store *st);

#endif
