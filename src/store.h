/*
 * store.h - the outbox store: the SQLite file, its schema and the statements
 * pobox runs on it.  This is the only module that includes sqlite3.h; every
 * other module talks to the outbox through these functions.
 *
 * Ownership: a store is made by pobox_store_open and released by
 * pobox_store_close.  It writes error text into the buffer given at open
 * (owned by the caller, who must keep it alive as long as the store).
 * Results returned through char ** are owned by the caller (pobox_free).
 */
#ifndef POBOX_STORE_H
#define POBOX_STORE_H

#include "pobox.h"

#include <stddef.h>
#include <stdint.h>

struct pobox_store;

struct pobox_store_opts {
	enum pobox_sync synchronous;
	int busy_timeout_ms;
	int max_value_chars;  /* written to settings for the enqueue trigger */
	int must_exist;       /* refuse to create a new file */
};

/* The schema version this build knows (the highest embedded migration). */
int pobox_store_known_version(void);

int pobox_store_open(struct pobox_store **out, const char *path,
                     const struct pobox_store_opts *o, char *err, size_t errlen);
void pobox_store_close(struct pobox_store *st);

int pobox_store_schema_version(struct pobox_store *st, int *out);

/* Write transactions take the write lock at once (BEGIN IMMEDIATE), so a
 * writer never fails halfway on a lock upgrade; waiting for the lock is
 * bounded by busy_timeout_ms. */
int pobox_store_begin(struct pobox_store *st);
int pobox_store_commit(struct pobox_store *st);
int pobox_store_rollback(struct pobox_store *st);
int pobox_store_in_tx(struct pobox_store *st);

/* Interning: the row id of a profile / attribute / source name, created on
 * first use.  Call inside a write transaction. */
int pobox_store_profile(struct pobox_store *st, enum pobox_id_type t, const char *id, size_t len,
                        int64_t *out);
int pobox_store_attr(struct pobox_store *st, const char *name, size_t len, int64_t *out);
int pobox_store_source(struct pobox_store *st, const char *name, int64_t *out);

/* Appends one pending update.  Inside a write transaction. */
int pobox_store_append(struct pobox_store *st, int64_t profile, int64_t attr, const char *value,
                       size_t len, int64_t enqueued_at_ms, int64_t source, int urgent);

enum pobox_update_state {
	POBOX_ST_PENDING,
	POBOX_ST_BATCHED,
	POBOX_ST_DELIVERED,
	POBOX_ST_SUPERSEDED,
	POBOX_ST_DEAD,
	POBOX_ST_COUNT
};
extern const char *const pobox_update_state_names[POBOX_ST_COUNT];

struct pobox_status {
	int64_t updates[POBOX_ST_COUNT];
	int64_t oldest_pending_ms;  /* enqueue time of the oldest pending update, -1 if none */
	int64_t profiles;
	int64_t attributes;
	int64_t file_bytes;         /* main file + WAL */
	int schema_version;
};

int pobox_store_status(struct pobox_store *st, struct pobox_status *out);

/* The status as one JSON object, built with SQLite's JSON functions. */
int pobox_store_status_json(struct pobox_store *st, const struct pobox_status *s, int64_t now_ms,
                            char **out);

/* The first column of the first row of sql as an int (PRAGMAs, counts);
 * *out is left alone when there is no row. */
int pobox_store_query_int(struct pobox_store *st, const char *sql, int *out);

/* Runs SQL with no results (tests and tools). */
int pobox_store_exec(struct pobox_store *st, const char *sql);

/* The path the store was opened with (borrowed). */
const char *pobox_store_path(const struct pobox_store *st);

#endif
