/*
 * csvio.h - streaming CSV reading (and, for batch files, writing) on libcsv.
 * The only module that includes csv.h.
 *
 * The reader never holds more than one row: it feeds libcsv the input in
 * 64 KiB blocks, split at line ends so each row can be given the line number
 * it starts on (rows with quoted newlines span several lines).  A UTF-8 BOM
 * at the start is dropped; a UTF-16 or UTF-32 BOM stops the read with
 * POBOX_EINVALID naming the encoding; LF, CRLF and a lone CR (old Mac
 * exports) end rows and lines alike; blank lines are skipped.
 *
 * Memory is bounded: a field longer than POBOX_CSV_MAX_FIELD or a row with
 * more than POBOX_CSV_MAX_FIELDS fields stops the read with POBOX_EINVALID
 * and the line (for a quoted field, where its quote opened: an unclosed
 * quote is the usual cause).
 */
#ifndef POBOX_CSVIO_H
#define POBOX_CSVIO_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The fuzz build (tools/fuzz) lowers these three so that small inputs reach
 * every bound and block edge; nothing else may change them. */
#ifndef POBOX_CSV_MAX_FIELD
#define POBOX_CSV_MAX_FIELD (1u << 20)
#endif
#ifndef POBOX_CSV_MAX_FIELDS
#define POBOX_CSV_MAX_FIELDS 4096
#endif
#ifndef POBOX_CSV_BLOCK
#define POBOX_CSV_BLOCK (1 << 16) /* bytes read from the input at a time */
#endif

struct pobox_csv_row {
	size_t nfields;
	char **fields;        /* NUL-terminated; borrowed until the callback returns */
	const size_t *lens;
	int64_t line;         /* 1-based line the row starts on */
	int64_t end_line;     /* ... and ends on (later with quoted newlines) */
	int64_t bytes_read;   /* input consumed so far, for progress */
};

/* Called once per row; a nonzero return stops the read and is returned by
 * pobox_csv_read. */
typedef int (*pobox_csv_row_fn)(void *ctx, const struct pobox_csv_row *row);

/* Reads all of in, calling fn per row.  Returns 0, fn's nonzero result, or a
 * negative POBOX_E* code with a message in err naming `name` and the line. */
int pobox_csv_read(FILE *in, const char *name, pobox_csv_row_fn fn, void *ctx, char *err,
                   size_t errlen);

/* Writes one CSV row (fields quoted when needed, LF line end) to fp.
 * Returns 0 or POBOX_EIO. */
int pobox_csv_write_row(FILE *fp, size_t n, const char *const *fields, const size_t *lens);

#endif
