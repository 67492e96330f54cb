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
	int reader;           /* the caller only reads: when SQLite cannot create
	                       * the -wal/-shm files (read-only directory, full
	                       * disk), open the outbox read-only instead */
	int write_damaged;    /* pobox doctor: writes allowed although the outbox
	                       * is marked damaged */
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
/* A read transaction (one snapshot for several queries); end it with commit
 * or rollback.  Works on a read-only outbox. */
int pobox_store_begin_read(struct pobox_store *st);
int pobox_store_commit(struct pobox_store *st);
int pobox_store_rollback(struct pobox_store *st);
int pobox_store_in_tx(struct pobox_store *st);

/* Interning of names: the row id of an attribute / source, created on
 * first use.  Call inside a write transaction. */
int pobox_store_attr(struct pobox_store *st, const char *name, size_t len, int64_t *out);
int pobox_store_source(struct pobox_store *st, const char *name, int64_t *out);
/* The id of the shape (attribute ids in order) of a write, created on
 * first use.  Inside a write transaction. */
int pobox_store_shape_id(struct pobox_store *st, const int64_t *attrs, size_t n, int64_t *out);

/* A profile as a producer sees it.  id 0: not in the outbox yet. */
struct pobox_profile_ref {
	int64_t id;
	int64_t done_seq;      /* delivered updates are <= this */
	int64_t sent_seq;      /* delivered updates <= this are folded into sent */
};

/* Looks a profile up by key (store/keys.c: the last one found's successor
 * first, as exports come in a stable order, then the key tables).  Sets
 * ref->id = 0 when unknown. */
int pobox_store_profile_find(struct pobox_store *st, enum pobox_id_type t, const char *id,
                             size_t len, struct pobox_profile_ref *ref);

/* Appends one write: the values `cells` (JSON text, see cells.h) for the
 * `width` positions of `shape`, n of them set.  ref comes from
 * pobox_store_profile_find for the same key (the profile is created when
 * ref->id is 0); on return it names the profile.  *first_seq (may be NULL)
 * = the seq of position 0.  Inside a write transaction. */
int pobox_store_write(struct pobox_store *st, enum pobox_id_type t, const char *id, size_t len,
                      struct pobox_profile_ref *ref, int64_t shape, size_t width,
                      const char *cells, size_t cells_len, int64_t n, int64_t enqueued_at_ms,
                      int64_t source, int urgent, int64_t *first_seq);

/* Moves updates staged by sqlite3 producers into writes (their seqs kept).
 * Inside a write transaction; *moved = how many. */
int pobox_store_ingest(struct pobox_store *st, int64_t *moved);

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
	int64_t used_bytes;         /* pages in use */
	int64_t last_delivery_ms;   /* 0: never */
	int schema_version;
};

int pobox_store_status(struct pobox_store *st, struct pobox_status *out);

/* The status as one JSON object, built with SQLite's JSON functions. */
int pobox_store_status_json(struct pobox_store *st, const struct pobox_status *s, int64_t now_ms,
                            char **out);

/* The first column of the first row of sql as an int (PRAGMAs, counts);
 * *out is left alone when there is no row. */
int pobox_store_query_int(struct pobox_store *st, const char *sql, int *out);
int pobox_store_query_int64(struct pobox_store *st, const char *sql, int64_t *out);

/* Runs SQL with no results (tests and tools). */
int pobox_store_exec(struct pobox_store *st, const char *sql);

/* The path the store was opened with (borrowed). */
const char *pobox_store_path(const struct pobox_store *st);
/* 1 when the outbox could only be opened read-only (see opts.reader). */
int pobox_store_read_only(const struct pobox_store *st);

/* ---- damage (store/health.c) -------------------------------------------
 *
 * Once SQLite reports the file damaged (SQLITE_CORRUPT, SQLITE_NOTADB, a
 * failed integrity or quick check) in any process, the store records it in
 * a marker file beside the outbox, "<outbox>-corrupt" (outside the damaged
 * pages; one line: when, which process, what SQLite said).  While the
 * marker exists every write transaction of every process is refused with
 * POBOX_ECORRUPT (checked at BEGIN, and at every commit as a backstop),
 * until pobox doctor finds the file healthy and removes the marker.
 * Readers keep working. */

/* 1 when the outbox is marked damaged (by this process or the marker); the
 * marker's line goes to why (may be NULL). */
int pobox_store_damaged(struct pobox_store *st, char *why, size_t len);
/* POBOX_ECORRUPT with the reason on the handle: what a write meets while
 * the outbox is marked damaged. */
int pobox_store_refuse_damaged(struct pobox_store *st);
/* Removes the marker (doctor, after a clean integrity check). */
int pobox_store_clear_damage(struct pobox_store *st);
/* PRAGMA quick_check of one table and its indexes (table NULL: the whole
 * file).  0 when healthy; POBOX_ECORRUPT (marker written, SQLite's first
 * complaint on the handle) when not; other codes when it cannot run. */
int pobox_store_quick_check(struct pobox_store *st, const char *table);
/* The name of the next table after *cursor in the schema, for checking
 * one table at a time in turn; wraps around.  *cursor starts at 0. */
int pobox_store_next_table(struct pobox_store *st, int64_t *cursor, char *name, size_t len);

/* ---- the pending set and the cut (store/scan.c, writes.c, sent.c) ------- */

/* One profile's live, not yet delivered updates, as the scheduler sees them:
 * sorted by attribute, then enqueue order.  Arrays are borrowed for the
 * callback only. */
struct pobox_prow {
	int64_t profile;
	enum pobox_id_type id_type;
	const char *profile_id;
	size_t profile_id_len;
	int64_t done_seq;
	int64_t sent_seq;        /* delivered updates <= this are folded into sent */
	int64_t last_v2_at_ms;   /* -1: never */
	int route_bulk;          /* a single call did not find it: bulk only */
	int delivered_once;      /* Target has had an update of it confirmed */
	size_t n;
	const int64_t *seq;
	const int64_t *attr;
	const char *const *value;
	const size_t *value_len;
	const int *urgent;
	const int64_t *enqueued_at_ms;
};
typedef int (*pobox_prow_fn)(void *ctx, const struct pobox_prow *p);

/* Calls fn for every profile that has pending updates, is not fenced and is
 * due (next_attempt_at_ms <= now_ms), in profile order.  fn may write
 * (supersede, fence, kill) the profile it is given. */
int pobox_store_scan_pending(struct pobox_store *st, int64_t now_ms, pobox_prow_fn fn, void *ctx);
/* The same for the profiles held by batch, with the updates it carries. */
int pobox_store_scan_batch(struct pobox_store *st, int64_t batch, pobox_prow_fn fn, void *ctx);

/* Calls fn(ctx, attr_id, name) for every attribute. */
int pobox_store_each_attr(struct pobox_store *st,
                          int (*fn)(void *ctx, int64_t id, const char *name), void *ctx);

/* The last delivered value of each attribute of a profile: its folded
 * values overlaid by delivered writes not folded yet.  fn's text is
 * borrowed for the call. */
int pobox_store_last_delivered(struct pobox_store *st, int64_t profile, int64_t done_seq,
                               int64_t sent_seq,
                               int (*fn)(void *ctx, int64_t attr, const char *v, size_t len),
                               void *ctx);

/* Marks update seq superseded by by_seq (a pending update). */
int pobox_store_supersede(struct pobox_store *st, int64_t seq, int64_t by_seq);
/* Marks the profile's pending updates (seq in (done_seq, upto]) dead. */
int pobox_store_kill_rows(struct pobox_store *st, int64_t profile, int64_t done_seq, int64_t upto,
                          const char *reason, int64_t attempts);
/* The cut takes the profile into batch, with its `cells` live updates up
 * to the cut's seq (they leave the pending set); its delivered values not
 * folded yet are folded first (so each keeps its delivery time). */
int pobox_store_cut_profile(struct pobox_store *st, const struct pobox_prow *p, int64_t batch,
                            int64_t cells);

/* Housekeeping: deletes writes whose updates are all delivered before
 * cutoff_ms or all superseded (enqueued before it), none dead; their
 * profiles' last delivered values are folded first, so changed-only and
 * carry-forward keep them.  Examines at most `limit` writes after *cursor
 * (0: from the oldest) and sets *cursor to where to go on, or 0 when it
 * reached the end.  *pruned = updates deleted.  Inside a transaction. */
int pobox_store_prune(struct pobox_store *st, int64_t cutoff_ms, int64_t limit, int64_t *cursor,
                      int64_t *pruned);
/* The same for a full outbox: every write at or below its profile's
 * delivery watermark (delivered, or superseded by what was delivered),
 * whatever its age; superseded updates of profiles still waiting stay. */
int pobox_store_prune_delivered(struct pobox_store *st, int64_t limit, int64_t *cursor,
                                int64_t *pruned);

/* ---- batches (store/batch.c) ---------------------------------------- */

enum pobox_batch_state {
	POBOX_B_READY, POBOX_B_SENDING, POBOX_B_SUBMITTED, POBOX_B_DONE, POBOX_B_DEAD,
	POBOX_B_SPLIT, POBOX_B_REPLACED, POBOX_B_COUNT
};
extern const char *const pobox_batch_state_names[POBOX_B_COUNT];

/* A batch row.  Strings are owned by the struct (pobox_batch_free). */
struct pobox_batch {
	int64_t id;
	int api;                      /* 1, 2 */
	enum pobox_id_type id_type;
	enum pobox_batch_state state;
	char *reason;                 /* cut, split, stuck, lost */
	int64_t parent, resubmits;
	int64_t profiles, updates, carried, bytes;
	uint32_t payload_crc32;       /* of the bytes sent (the payload inflated) */
	char *status_url;
	int64_t attempts, polls, next_at_ms;
	char *remote_status;
	int64_t last_http_status;     /* 0: none */
	char *last_error;
	int64_t created_at_ms, submitted_at_ms, finished_at_ms;  /* 0: not yet */
	int64_t batch_size, successful_updates, profiles_not_found, failed_updates; /* -1: unknown */
};
void pobox_batch_free(struct pobox_batch *b);

/* Inserts a new ready batch (payload empty until pobox_store_batch_payload). */
int pobox_store_batch_new(struct pobox_store *st, int api, enum pobox_id_type t,
                          const char *reason, int64_t parent, int64_t resubmits, int64_t now_ms,
                          int64_t *id);
/* A batch's payload (zlib, zpayload.h) is stored in parts, in order, as
 * the cut makes them: the rows' parts from 1 while they are written, then
 * part 0, the header (known last), with the counts and the members.  A
 * rebuild first clears the old parts. */
int pobox_store_payload_part(struct pobox_store *st, int64_t batch, int64_t part,
                             const void *data, size_t len);
int pobox_store_payload_clear(struct pobox_store *st, int64_t batch);
int pobox_store_batch_payload(struct pobox_store *st, int64_t id, int64_t profiles,
                              int64_t updates, int64_t carried, int64_t bytes,
                              const void *head, size_t head_len, uint32_t crc);
/* The first part of batch's payload after part `after` (-1: from the
 * start): copied into *buf (grown with pobox_realloc, *cap its size; the
 * caller frees), *len bytes, *part its number; *len = 0 past the last. */
int pobox_store_payload_next(struct pobox_store *st, int64_t batch, int64_t after,
                             int64_t *part, void **buf, size_t *cap, size_t *len);
/* Deletes a batch that never got a row (only inside the cut that made it). */
int pobox_store_batch_delete_empty(struct pobox_store *st, int64_t id);
/* Copies another batch's payload and counts (stuck/lost resubmission). */
int pobox_store_batch_copy_payload(struct pobox_store *st, int64_t to, int64_t from);
int pobox_store_batch_get(struct pobox_store *st, int64_t id, struct pobox_batch *out);
/* Writes the mutable fields of b (state, attempts, polls, next_at_ms,
 * status_url, remote_status, last_http_status, last_error, submitted_at,
 * finished_at, counts). */
int pobox_store_batch_save(struct pobox_store *st, const struct pobox_batch *b);
/* The unfinished bulk batch due first (only submitted ones when
 * submitted_only): *id = 0 when none; *next_at_ms = its time. */
int pobox_store_batch_next(struct pobox_store *st, int submitted_only, int64_t *id,
                           int64_t *next_at_ms);
/* Bulk batches submitted and not yet final. */
int pobox_store_in_flight(struct pobox_store *st, int64_t *count);
/* Lifts auth/config/offline lane pauses and makes the batches they held
 * due now (a new process, or a reload, may have the fix). */
int pobox_store_lane_unpause_auth(struct pobox_store *st);
int pobox_store_unfinished(struct pobox_store *st, int64_t *count);
/* Pending updates: how many profiles are due now, how many wait for a
 * retry time, the earliest such time, and the oldest pending enqueue time. */
int pobox_store_pending(struct pobox_store *st, int64_t now_ms, int64_t *due_profiles,
                        int64_t *later_profiles, int64_t *next_due_ms, int64_t *oldest_ms);

/* Moves profiles from one batch to another: all of them (max_profile < 0),
 * or those with id <= max_profile. */
int pobox_store_batch_move(struct pobox_store *st, int64_t from, int64_t to, int64_t max_profile);
/* The id of the profile in the middle of a batch (for bisecting). */
int pobox_store_batch_median(struct pobox_store *st, int64_t batch, int64_t *profile_id);
/* Completion: every profile still in batch is delivered (done_seq =
 * batch_seq, fence released). */
int pobox_store_batch_delivered(struct pobox_store *st, int64_t batch, int v2, int64_t now_ms);
/* Releases every profile of batch back to pending, without an attempt. */
int pobox_store_batch_release(struct pobox_store *st, int64_t batch);
/* Dead-letters every update the batch carries, releasing its profiles. */
int pobox_store_batch_kill(struct pobox_store *st, int64_t batch, const char *reason);
/* Every profile of batch goes back to pending with an attempt counted, due
 * at next_at_ms; the rows of those that reach max_attempts are dead
 * letters with reason (*killed = how many profiles). */
int pobox_store_batch_retry_rows(struct pobox_store *st, int64_t batch, const char *reason,
                                 int64_t next_at_ms, int64_t max_attempts, int64_t *killed);
/* One failed row of a batch: its profile leaves the batch, counts an attempt
 * and waits until next_at_ms; after max_attempts its rows are dead.
 * *found = 0 when no profile of the batch has that id. */
int pobox_store_row_failed(struct pobox_store *st, int64_t batch, enum pobox_id_type t,
                           const char *profile_id, const char *reason, int64_t next_at_ms,
                           int64_t max_attempts, int *found);

/* Reserves one bulk call under `limit` calls in any 60 s: 0 and recorded,
 * or POBOX_EBUSY with *retry_at_ms = when one frees up. */
int pobox_store_bulk_call(struct pobox_store *st, int64_t now_ms, int64_t limit,
                          int64_t *retry_at_ms);
int pobox_store_lane_get(struct pobox_store *st, const char *lane, int64_t *until_ms,
                         char *cls, size_t cls_len, char *reason, size_t reason_len);
int pobox_store_lane_pause(struct pobox_store *st, const char *lane, int64_t until_ms,
                           const char *cls, const char *reason);

/* Runs sql with ?1 bound to arg1 (when has_arg), calling fn per row with
 * the columns as text (NULL for SQL NULL). */
int pobox_store_each_row(struct pobox_store *st, const char *sql, int has_arg, int64_t arg1,
                         int (*fn)(void *ctx, int ncols, const char *const *names,
                                   const char *const *values),
                         void *ctx);


/* ---- single lane and quota (store/quota.c) ---------------------------- */

/* Single calls in the rolling 24 hours ending at now_ms: used (settled) and
 * reserved (in flight), all processes together. */
int pobox_store_quota_sum(struct pobox_store *st, int64_t now_ms, int64_t *used,
                          int64_t *urgent_used, int64_t *reserved);
/* Records a reservation of n units (urgent of them for urgent updates) for
 * owner in the minute of now_ms. */
int pobox_store_quota_reserve(struct pobox_store *st, const char *owner, int64_t now_ms,
                              int64_t n, int64_t urgent);
/* Settles units reserved by owner in `minute`: used ones are counted in
 * that minute, released ones just return to the budget. */
int pobox_store_quota_settle(struct pobox_store *st, const char *owner, int64_t minute,
                             int64_t used, int64_t urgent_used, int64_t released,
                             int64_t urgent_released);
/* Calls fn for each owner holding reservations. */
int pobox_store_quota_owners(struct pobox_store *st,
                             int (*fn)(void *ctx, const char *owner), void *ctx);
/* Counts all of an owner's reservations as used (its process died: the
 * calls may have reached Target). */
int pobox_store_quota_reap(struct pobox_store *st, const char *owner);
/* Counts every reservation made before `minute` as used. */
int pobox_store_quota_reap_before(struct pobox_store *st, int64_t minute);
/* fn(ctx, minute, used, urgent) for every minute of the last 24 hours with use. */
int pobox_store_quota_minutes(struct pobox_store *st, int64_t now_ms,
                              int (*fn)(void *ctx, int64_t minute, int64_t used, int64_t urgent),
                              void *ctx);

/* Counts one call for metrics (lane bulk or single; 0 = no answer). */
int pobox_store_count_call(struct pobox_store *st, const char *lane, long http_status, int error);
int pobox_store_count_calls(struct pobox_store *st, const char *lane, long http_status,
                            int64_t calls, int64_t errors);

/* Profile outcomes of single calls: profiles[i] of batch, with its
 * cells[i] updates in it, was delivered. */
int pobox_store_profiles_delivered(struct pobox_store *st, int64_t batch,
                                   const int64_t *profiles, const int64_t *cells, size_t n,
                                   int64_t now_ms);
/* The profile (with its `cells` updates) leaves batch: to the bulk lane
 * (route_bulk), after a failure (charge: count an attempt; dead after
 * max_attempts), or simply back to pending.  *killed = 1 when its updates
 * were dead-lettered.  Nothing happens when it had left already. */
int pobox_store_profile_release(struct pobox_store *st, int64_t batch, int64_t profile,
                                int64_t cells, int route_bulk, int charge, int64_t next_at_ms,
                                const char *reason, int64_t max_attempts, int *killed);
/* Finishes a single-lane batch whose profiles have all left it. */
int pobox_store_single_batch_finish(struct pobox_store *st, int64_t batch, int64_t now_ms,
                                    int64_t ok, int64_t not_found, int64_t failed);
/* Creates a single-lane batch row. */
int pobox_store_single_batch_new(struct pobox_store *st, enum pobox_id_type t, int64_t now_ms,
                                 int64_t *id);
int pobox_store_single_batch_counts(struct pobox_store *st, int64_t id, int64_t profiles,
                                    int64_t updates, int64_t bytes);
/* The unfinished batch of a lane due first (0 when none), other than
 * batch `except` (0: none excepted). */
int pobox_store_lane_next(struct pobox_store *st, const char *lane, int64_t except, int64_t *id,
                          int64_t *next_at_ms);
/* The highest seq, and whether any live urgent update is newer than after_seq
 * and than the cut watermark (what no cut has seen; rows staged by sqlite3
 * producers are looked at from after_seq).  O(what no cut has seen). */
int pobox_store_newest(struct pobox_store *st, int64_t after_seq, int64_t *max_seq,
                       int *urgent_after, int64_t *oldest_after_ms);
/* The outbox's size on disk (main file + WAL), in bytes. */
int64_t pobox_store_file_bytes(struct pobox_store *st);
/* The bytes the outbox holds: pages in use (not the WAL's high-water mark). */
int64_t pobox_store_used_bytes(struct pobox_store *st);
/* For room checks, also inside a write transaction: *used as
 * pobox_store_used_bytes (counting the transaction's new pages), and
 * *unwritten, an upper bound of the bytes SQLite will still write to disk
 * for what it holds now: its page cache (dirty pages go to the WAL at
 * commit) and the main file's growth when the WAL is checkpointed. */
void pobox_store_space(struct pobox_store *st, int64_t *used, int64_t *unwritten);
/* Checkpoints the WAL into the main file and truncates it (after an import
 * stopped, so a swollen WAL gives its space back).  Waits at most a second
 * for other processes; best effort, errors are ignored. */
void pobox_store_checkpoint(struct pobox_store *st);
/* Whether a pending update (not delivered, not in a batch) exists for
 * profile+attr. */
int pobox_store_pending_exists(struct pobox_store *st, enum pobox_id_type t, const char *id,
                               size_t id_len, const char *attr, size_t attr_len, int *exists);

/* ---- verification (store/verify.c) -------------------------------------
 *
 * What pobox last sent Target of each profile attribute, for `pobox verify`
 * (verify.h) to compare with what Target holds; and the record of each
 * verification (schema/0007_verify.sql).  A profile counts as sent when
 * Target has confirmed something of it (delivered), or it is a member of a
 * bulk batch Target has accepted and not yet reported complete (in
 * flight): then the values that batch carries count, as sent when Target
 * took the batch. */

/* Which profiles.  Criteria combine (all set ones must hold). */
struct pobox_verify_sel {
	int64_t profile;     /* this profile only (pobox_store_profile_find); 0: any */
	int64_t batch;       /* members of this batch only (submitted or done); 0: any */
	int64_t since_ms;    /* last sent at or after this time; 0: any */
	int64_t sample;      /* at most this many, chosen at random; 0: all */
	uint64_t seed;       /* of the random choice */
};

/* The selected profiles, ascending, in *ids (caller frees, pobox_free);
 * *population = how many matched before sampling.  A batch that does not
 * exist: POBOX_ENOTFOUND; one Target never took (ready, sending, dead) or
 * that was split or replaced, or whose member list went with the
 * retention: POBOX_EINVALID; the reason on the handle.  Reads only; costs
 * a scan of the profiles (or the batch's members). */
int pobox_store_verify_pick(struct pobox_store *st, const struct pobox_verify_sel *sel,
                            int64_t **ids, size_t *n, int64_t *population);

struct pobox_sent_value {
	char *attr;               /* the attribute's name */
	char *value;
	size_t value_len;
	int64_t sent_at_ms;       /* Target confirmed it (or took its batch, in_flight) */
	int in_flight;
};

/* What pobox last sent of one profile.  Owned by the caller
 * (pobox_sent_profile_free). */
struct pobox_sent_profile {
	int64_t id;
	enum pobox_id_type id_type;
	char *profile_id;
	size_t n;
	struct pobox_sent_value *v;   /* sorted by attribute name */
};
void pobox_sent_profile_free(struct pobox_sent_profile *p);

/* The last value sent of each of the profile's attributes (n = 0 when
 * nothing was).  POBOX_ENOTFOUND when there is no such profile. */
int pobox_store_verify_sent(struct pobox_store *st, int64_t profile, struct pobox_sent_profile *out);

enum pobox_verify_class {
	POBOX_VC_MATCHING, POBOX_VC_NOT_YET_APPLIED, POBOX_VC_DIFFERENT, POBOX_VC_MISSING,
	POBOX_VC_COUNT
};
/* "matching", "not_yet_applied", "different", "missing" (the schema's). */
extern const char *const pobox_verify_class_names[POBOX_VC_COUNT];

/* The figures of one verification.  Ages: how long before the run's end
 * pobox had sent the attributes of a class (-1 when the class is empty). */
struct pobox_verify_record {
	int64_t id;                       /* set by save */
	int64_t started_at_ms, finished_at_ms;
	char selection[256];
	int64_t grace_ms;
	int64_t population, profiles, fetch_errors;
	int64_t count[POBOX_VC_COUNT];
	int64_t min_age_ms[POBOX_VC_COUNT], max_age_ms[POBOX_VC_COUNT];
	int interrupted;
	int exit_code;
};

/* An attribute that did not match.  Borrowed strings. */
struct pobox_verify_finding {
	enum pobox_verify_class cls;      /* not matching */
	const char *why;                  /* another_writer, older_value, no_attribute, no_profile */
	enum pobox_id_type id_type;
	const char *profile_id;
	const char *attr;
	const char *sent;
	size_t sent_len;
	int64_t sent_at_ms;
	int in_flight;
	const char *target;               /* NULL: Target holds nothing */
	size_t target_len;
	int64_t target_modified_at_ms;    /* -1: none or unreadable */
};

#define POBOX_VERIFY_KEEP_RUNS 100
#define POBOX_VERIFY_KEEP_FINDINGS 1000

/* Records a verification and (the first POBOX_VERIFY_KEEP_FINDINGS of) its
 * findings in one transaction of its own, dropping runs older than the last
 * POBOX_VERIFY_KEEP_RUNS; sets r->id. */
int pobox_store_verify_save(struct pobox_store *st, struct pobox_verify_record *r,
                            const struct pobox_verify_finding *f, size_t nf);
/* The last recorded verification; *found = 0 when there is none. */
int pobox_store_verify_last(struct pobox_store *st, struct pobox_verify_record *out, int *found);
/* A recorded verification with its findings as one JSON object (SQLite's
 * JSON functions); caller frees *out. */
int pobox_store_verify_json(struct pobox_store *st, int64_t id, char **out);

/* ---- terminal views (store/watch.c) ------------------------------------
 *
 * Figures for the views a person watches: flush --wait's progress line and
 * status --watch.  Each is a few indexed reads, cheap enough to repeat
 * every second. */

/* The bulk batches with id > after_id that were not final before since_ms
 * (those a flush that started then waits for), by how far they got. */
struct pobox_batch_tally {
	int64_t cut;                 /* all of them */
	int64_t sent;                /* submitted to Target at least once */
	int64_t done, dead;
	int64_t waiting;             /* submitted, not complete yet */
	int64_t oldest_waiting_ms;   /* submit time of the oldest waiting one; 0: none */
};
int pobox_store_batch_tally(struct pobox_store *st, int64_t after_id, int64_t since_ms,
                            struct pobox_batch_tally *out);
/* *after_id = the id just below the oldest batch that is not final (the
 * newest id when every batch is). */
int pobox_store_batch_floor(struct pobox_store *st, int64_t *after_id);

struct pobox_watch {
	int64_t enqueued;                   /* updates ever enqueued (seqs handed out) */
	int64_t batches[2][POBOX_B_COUNT];  /* by lane (0 bulk, 1 single) and state */
	int64_t bulk_calls_last_minute;     /* the per-minute ledger, all processes */
	int64_t oldest_waiting_ms;          /* submit time of the oldest submitted bulk batch; 0: none */
};
int pobox_store_watch(struct pobox_store *st, int64_t now_ms, struct pobox_watch *out);

/* ---- a fleet's leases (store/fleet.c) ---------------------------------
 * This host's side of a fleet-wide budget (schema/0008_fleet.sql): the one
 * fleet_state row, the grants held (fleet_leases), their use per bucket
 * (fleet_lease_use) and the window's calls per bucket (fleet_usage).
 * fleet.c decides; these only read and write.  Writers run inside the
 * caller's transaction when it holds one. */

struct pobox_fleet_row {
	char account[128], host[256], incarnation[40];
	char epoch[64], reported_epoch[64];   /* "" when none */
	int64_t next_seq, serial;
	/* the account and the fleet, as of the last answer; budget < 0 when none yet */
	int64_t budget, margin, window_ms, bucket_ms, bulk_limit, lease_ms, reserve_ms;
	double urgent_share, grant_rate;
	int64_t spent, free, hosts, soon;
	int learning, reachable;
	int64_t last_contact_ms, last_attempt_ms, requests;
	char last_error[300];
};

/* *found = 0 when the outbox has no fleet state yet. */
int pobox_store_fleet_get(struct pobox_store *st, struct pobox_fleet_row *r, int *found);
/* Writes the whole row (creating it). */
int pobox_store_fleet_put(struct pobox_store *st, const struct pobox_fleet_row *r);

struct pobox_fleet_lease_row {
	int64_t id;
	int reserve;
	char epoch[64], boot_id[40];
	int64_t granted, used, reserved;
	int64_t grant_coord_ms, sent_mono_ms, life_ms, start_by_mono_ms, charge_k;
	int closed;
	int64_t granted_at_ms;
};

int pobox_store_fleet_leases(struct pobox_store *st,
                             int (*fn)(void *ctx, const struct pobox_fleet_lease_row *l), void *ctx);
int pobox_store_fleet_lease_add(struct pobox_store *st, const struct pobox_fleet_lease_row *l);
int pobox_store_fleet_lease_close(struct pobox_store *st, int64_t id);
/* A grant given a new life (same id): its deadline, mapping and charge. */
int pobox_store_fleet_lease_renew(struct pobox_store *st, const struct pobox_fleet_lease_row *l);
/* Forgets a grant and its use rows (the coordinator acknowledged it). */
int pobox_store_fleet_lease_drop(struct pobox_store *st, int64_t id);
/* reserved += d_reserved, used += d_used. */
int pobox_store_fleet_lease_change(struct pobox_store *st, int64_t id, int64_t d_reserved,
                                   int64_t d_used);
/* fleet_lease_use (lease, k) += n */
int pobox_store_fleet_use_add(struct pobox_store *st, int64_t lease, int64_t k, int64_t n);
/* fleet_usage (k) += n */
int pobox_store_fleet_usage_add(struct pobox_store *st, int64_t k, int64_t n);
int pobox_store_fleet_lease_uses(struct pobox_store *st, int64_t lease,
                                 int (*fn)(void *ctx, int64_t k, int64_t n), void *ctx);
/* fleet_usage rows with k > since_k. */
int pobox_store_fleet_history(struct pobox_store *st, int64_t since_k,
                              int (*fn)(void *ctx, int64_t k, int64_t n), void *ctx);
int pobox_store_fleet_usage_prune(struct pobox_store *st, int64_t before_k);
/* Units left reserved by a process that is gone become used at their
 * grant's charge bucket.  Returns how many in *units. */
int pobox_store_fleet_recover(struct pobox_store *st, int64_t *units);

/* What the host holds, from the outbox (for status, routing, metrics):
 * units left in open grants usable now (start_by after mono_now_ms, this
 * boot), apart for leases and the reserve. */
struct pobox_fleet_held {
	int64_t lease_left, reserve_left, reserve_granted, leases, used_open;
	int64_t lease_expires_mono_ms, reserve_expires_mono_ms;  /* latest start_by, -1: none */
};
int pobox_store_fleet_held(struct pobox_store *st, int64_t mono_now_ms, const char *boot_id,
                           struct pobox_fleet_held *h);

/* ---- operations (store/ops.c) ----------------------------------------- */

/* Which dead updates an operator means.  All set criteria must hold. */
struct pobox_dead_filter {
	const char *ids;         /* comma-separated seqs, or NULL */
	const char *reason;      /* substring of last_error, or NULL */
	int64_t since_ms;        /* died at or after this time; 0: any */
	int all;                 /* no criterion: every dead update */
};

/* Fills temp.dead_sel with the selected dead updates; *n = how many. */
int pobox_store_dead_select(struct pobox_store *st, const struct pobox_dead_filter *f, int64_t *n);
/* Requeues temp.dead_sel: an update some newer value of the same profile and
 * attribute has replaced becomes superseded by it; otherwise the newest
 * selected value per profile and attribute is enqueued again (a new update
 * with the same value), and older selected ones point at it.  Resets the
 * profiles' retry counters.  *requeued = updates enqueued again (the rest of
 * the selection is now superseded). */
int pobox_store_dead_requeue(struct pobox_store *st, int64_t now_ms, int64_t *requeued);
/* Deletes temp.dead_sel.  *n = deleted. */
int pobox_store_dead_purge(struct pobox_store *st, int64_t *n);

/* pobox doctor's invariant checks: fn(ctx, name, problems, fixed, advice)
 * per check, fixing the safe ones when repair is set (inside the caller's
 * transaction).  *integrity_ok = 0 when SQLite's integrity check fails
 * (its first message goes to fn as a problem): the outbox is then marked
 * damaged and nothing is repaired.  When it passes, a damage mark is
 * removed. */
int pobox_store_doctor(struct pobox_store *st, int repair, int64_t now_ms,
                       int (*fn)(void *ctx, const char *name, int64_t problems, int fixed,
                                 const char *advice),
                       void *ctx, int *integrity_ok);

#endif
