/*
 * pobox.h - the public C API of libpobox: a durable outbox of visitor-profile
 * updates for Adobe Target.
 *
 * A producer opens the outbox (one SQLite file), puts updates, and closes it.
 * An update is durable once pobox_put() returns 0 outside a transaction, or
 * once pobox_commit() returns 0 for a transaction.  Delivery to Target is done
 * by `pobox run` / `pobox flush`, never by the producer: putting an update
 * never waits on the network.
 *
 * Threads and processes
 *   - A `struct pobox` handle belongs to one thread at a time.  Open one
 *     handle per thread; handles share nothing.
 *   - Any number of processes (and threads with their own handles) may put
 *     updates into the same outbox at once, with `pobox run` and operators'
 *     `sqlite3` shells reading it.  Writers are serialised by SQLite (WAL
 *     mode); a writer waits up to `busy_timeout_ms` for its turn instead of
 *     failing.  POBOX_EBUSY means that wait ran out.
 *   - Keep transactions short: a transaction holds the outbox's single write
 *     lock from pobox_begin() to pobox_commit().
 *   - Do not fork() with an open handle and use it in the child.
 *
 * Ownership
 *   - Strings passed in are borrowed for the duration of the call only.
 *   - pobox_errmsg() returns a borrowed string owned by the handle, valid until
 *     the next call on that handle.
 *   - pobox_open() writes a new handle to *out only on success; the caller
 *     owns it and releases it with pobox_close().
 *
 * Errors
 *   Fallible functions return 0 on success, or a negative POBOX_E* code.  The
 *   handle's error text (pobox_errmsg) is one line naming what failed and why.
 */
#ifndef POBOX_H
#define POBOX_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define POBOX_VERSION "0.1.0"

/* Result codes.  0 is success; a positive POBOX_SKIPPED is a success that did
 * nothing (see pobox_put).  The list is short on purpose: callers decide by
 * code, people read the message. */
enum pobox_result {
	POBOX_OK = 0,
	POBOX_SKIPPED = 1,      /* not an error: the update was empty, nothing stored */
	POBOX_ENOTFOUND = -1,   /* no such row/batch/file */
	POBOX_EBUSY = -2,       /* the outbox stayed locked past busy_timeout_ms */
	POBOX_ETRANSIENT = -3,  /* temporary failure; retrying later may succeed */
	POBOX_EPERMANENT = -4,  /* will never succeed as asked */
	POBOX_EINVALID = -5,    /* bad input: an id, attribute, value or argument */
	POBOX_ECONFIG = -6,     /* bad configuration, or an outbox newer than this pobox */
	POBOX_ENOMEM = -7,      /* out of memory */
	POBOX_EIO = -8,         /* an I/O error (disk, file) */
	POBOX_ECORRUPT = -9,    /* the outbox is damaged; see `pobox doctor` */
	POBOX_EFULL = -10,      /* the outbox reached its size limit or the disk its floor */
};

/* A short, static description of a result code ("invalid input", ...). */
const char *pobox_strerror(int code);

/* Target's two profile identifiers.  ECID (marketingCloudVisitorId) is not
 * one: Target's profile update APIs do not accept it. */
enum pobox_id_type {
	POBOX_ID_PCID = 1,        /* Target's own visitor id: "pcId" (aliases mboxPC, tntId) */
	POBOX_ID_THIRDPARTY = 2,  /* your id for the visitor: "thirdPartyId" (alias mbox3rdPartyId) */
};

/* Parses an id type name, accepting the documented aliases.  Returns 0 and
 * sets *out, or POBOX_EINVALID with a message in err (errlen bytes, may be
 * NULL) that says why, e.g. for ECID that Target does not support it. */
int pobox_id_type_parse(const char *name, enum pobox_id_type *out, char *err, size_t errlen);

/* The canonical name of an id type ("pcId" or "thirdPartyId"). */
const char *pobox_id_type_name(enum pobox_id_type t);

enum pobox_sync {
	POBOX_SYNC_FULL = 0,    /* default: a committed update survives power loss */
	POBOX_SYNC_NORMAL = 1,  /* WAL + NORMAL: survives a crash of pobox, may lose the
	                         * last commits on power loss; never corrupts */
	POBOX_SYNC_OFF = 2,     /* for throwaway outboxes in tests and benchmarks only */
};

struct pobox_options {
	enum pobox_sync synchronous;  /* default POBOX_SYNC_FULL */
	int busy_timeout_ms;          /* wait for the write lock; default 30000 */
	int max_value_chars;          /* longest value accepted, in characters; default 256 */
	int read_only;                /* open an existing outbox only (never create one) */
	int64_t max_outbox_bytes;     /* refuse new updates past this size; 0: no limit */
	int64_t min_free_bytes;       /* ... or when the disk has less free; default 100 MiB */
};

/* Fills *o with the defaults above. */
void pobox_options_init(struct pobox_options *o);

struct pobox;

/* Opens (creating if needed) the outbox at path, applies pending schema
 * migrations, and writes the handle to *out.  opts may be NULL for defaults.
 *
 * Refuses, changing nothing, an outbox whose schema is newer than this build
 * knows (POBOX_ECONFIG) and a file that is not a pobox outbox or is damaged
 * (POBOX_ECORRUPT).  err/errlen (may be NULL/0) receive the reason when no
 * handle could be made. */
int pobox_open(struct pobox **out, const char *path, const struct pobox_options *opts,
               char *err, size_t errlen);

/* Closes the handle (rolling back an open transaction).  NULL is a no-op. */
void pobox_close(struct pobox *pb);

/* The last error on this handle: one line, borrowed, "" when none. */
const char *pobox_errmsg(const struct pobox *pb);

/* One attribute update for one profile. */
struct pobox_update {
	enum pobox_id_type id_type;
	const char *profile_id;  /* the pcId or thirdPartyId, UTF-8, 1..256 bytes */
	const char *attr;        /* attribute name; a leading "profile." is stripped */
	const char *value;       /* UTF-8; "" (or NULL) is not an update: see pobox_put */
	int urgent;              /* nonzero: deliver as soon as possible (single lane) */
	const char *source;      /* free text naming the producer, may be NULL */
};

/* Validates and appends one update.  Returns:
 *   0               stored (durable now, or at pobox_commit inside a transaction)
 *   POBOX_SKIPPED   the value was empty: Target ignores empty values, so
 *                   nothing is stored (callers count these)
 *   POBOX_EINVALID  the update breaks a rule; pobox_errmsg says which
 *   POBOX_EFULL     the outbox reached max_outbox_bytes or the disk its
 *                   min_free_bytes floor; an update that only replaces a
 *                   value still pending (not yet in a batch) for the same
 *                   profile and attribute is accepted anyway
 *   POBOX_EBUSY, POBOX_EIO, ...  storage failures
 * A failed put inside a transaction leaves the transaction open and usable:
 * earlier puts in it are kept. */
int pobox_put(struct pobox *pb, const struct pobox_update *u);

/* Transactions for putting many updates at once: everything put between
 * begin and commit becomes durable together, or not at all (rollback, or a
 * crash before commit).  Transactions do not nest. */
int pobox_begin(struct pobox *pb);
int pobox_commit(struct pobox *pb);
int pobox_rollback(struct pobox *pb);

#ifdef __cplusplus
}
#endif
#endif /* POBOX_H */
