/*
 * import.h - `pobox import`: stream a CSV export into the outbox.
 *
 * The header row names the columns: the id column (the first, unless
 * id_column names another) and attribute columns.  A Target batch file's
 * header (`batch=thirdPartyId,...`) is accepted too; its names and cells are
 * then URL-decoded, since batch files carry them encoded.
 *
 * A row is all or nothing: if any cell breaks a rule, the whole row is
 * rejected (written to the reject file with its line and reason) so the
 * operator can fix it and import it again.  Empty cells are skipped and
 * counted (Target ignores empty values).  Valid rows are committed in
 * transactions of rows_per_tx rows: a crash loses at most the rows of the
 * open transaction, and importing the same file again is harmless (the
 * scheduler keeps only the newest value per profile and attribute).
 */
#ifndef POBOX_IMPORT_H
#define POBOX_IMPORT_H

#include "pobox.h"

#include <stdint.h>
#include <stdio.h>

struct pobox_import_opts {
	const char *id_column;       /* NULL: the first column */
	int have_id_type;            /* nonzero: id_type below overrides the header */
	enum pobox_id_type id_type;
	FILE *reject;                /* NULL: rejects are only counted */
	const char *source;          /* source recorded on each update */
	int urgent;
	int changed_only;            /* skip cells equal to the last delivered value */
	int64_t rows_per_tx;         /* 0: default (10000) */
	int64_t total_bytes;         /* input size for progress percent, 0 = unknown */
	/* Progress callback, called about every 250 ms; NULL for none. */
	void (*progress)(void *ctx, int64_t rows, int64_t bytes, int64_t total_bytes,
	                 int64_t elapsed_ms);
	void *progress_ctx;
	/* Called for each rejected row; NULL for none. */
	void (*on_reject)(void *ctx, int64_t line, const char *reason);
	void *reject_ctx;
};

/* Counts of what is in the outbox: rows of a transaction that was rolled
 * back (a full disk, a busy or failing store) are not counted, and their
 * rejects are cut off the reject file again. */
struct pobox_import_summary {
	int64_t rows;        /* data rows read and committed (not the header) */
	int64_t updates;     /* updates enqueued (committed) */
	int64_t empty;       /* empty cells skipped */
	int64_t rejected;    /* rows rejected */
	int64_t unchanged;   /* cells skipped by changed_only */
	int64_t stopped_line; /* 0: the input was read to its end (or never begun);
	                       * else the import stopped there: the rows starting
	                       * before this line are in (or rejected), none from
	                       * it on, so importing from it resumes the file */
};

/* Imports in (named `name` in messages).  Returns 0 when the whole input was
 * read (rows may have been rejected: see summary), or a negative code when
 * the import stopped (bad header, malformed CSV, no room, storage failure):
 * rows committed before the stop stay in the outbox, summary counts them
 * and says where it stopped.  A refusal before anything is read (the
 * outbox is full) leaves stopped_line 0.
 *
 * max_outbox_bytes and min_free_bytes are looked at inside transactions
 * too, often enough that neither is overshot by more than a few hundred
 * KiB; an import stopped by them keeps every complete row before the stop.
 * After a stop, the WAL is checkpointed and truncated so a full disk gets
 * its space back. */
int pobox_import(struct pobox *pb, FILE *in, const char *name, const struct pobox_import_opts *o,
                 struct pobox_import_summary *summary);

#endif
