/*
 * cells.h - the packed form of a write's values, and of a profile's last
 * delivered values, as JSON text the sqlite3 shell's JSON functions can
 * expand (schema/0006_storage.sql):
 *
 *   a write's cells    ["gold","838.19",null,"Zürich"]   one element per
 *                      position of the write's shape; null = not set
 *   a shape            [3,5,8,9]                          attribute ids
 *   a profile's sent   [[3,"gold",1042,1733011200000],...]
 *                      attribute, value, seq, delivery time (ms)
 *
 * Owns encoding (escaping exactly what JSON requires: '"', '\\' and the
 * control characters) and a small, strict decoder for these three forms.
 * The decoder accepts any valid JSON spelling of them (other escapes such
 * as \u00e9 or \/, white space), since rows may also be written by SQLite's
 * json_array(); anything else is an error, never a crash.  Knows nothing of
 * SQLite or of what the values mean.
 *
 * Ownership: a pobox_cells_buf owns its memory (pobox_cells_buf_free);
 * decoded strings point into a buffer the caller passes or into the input
 * when it needs no unescaping, and live as long as those.
 */
#ifndef POBOX_CELLS_H
#define POBOX_CELLS_H

#include <stddef.h>
#include <stdint.h>

/* A growable text buffer for building JSON. */
struct pobox_cells_buf {
	char *s;
	size_t len, cap;
	int nomem;          /* set when an append failed; the text is then incomplete */
	size_t elems;       /* elements written at the current level */
};

void pobox_cells_buf_reset(struct pobox_cells_buf *b);
void pobox_cells_buf_free(struct pobox_cells_buf *b);

/* Arrays: open, then elements, then close.  One level of nesting (the
 * sent form's inner arrays) is allowed. */
void pobox_cells_open(struct pobox_cells_buf *b);
void pobox_cells_close(struct pobox_cells_buf *b);
void pobox_cells_str(struct pobox_cells_buf *b, const char *v, size_t len);
void pobox_cells_null(struct pobox_cells_buf *b);
void pobox_cells_int(struct pobox_cells_buf *b, int64_t v);

/* One decoded element. */
enum pobox_cell_type { POBOX_CELL_NULL, POBOX_CELL_STR, POBOX_CELL_INT, POBOX_CELL_ARRAY };

struct pobox_cell {
	enum pobox_cell_type type;
	const char *s;      /* STR: the value (not NUL-terminated) */
	size_t len;
	int64_t i;          /* INT */
	const char *raw;    /* ARRAY: the nested array's text, for a second parse */
	size_t raw_len;
};

/* A decoder over one JSON array.  scratch receives unescaped strings; it
 * must hold at least the input's length (no unescaped value is longer than
 * its escaped form). */
struct pobox_cells_reader {
	const char *p, *end;
	char *scratch;
	size_t used;
	int first;
};

/* 0, or -1 when text is not a JSON array. */
int pobox_cells_read_begin(struct pobox_cells_reader *r, const char *text, size_t len,
                           char *scratch);
/* 1 and *out filled for the next element, 0 at the end, -1 when malformed. */
int pobox_cells_next(struct pobox_cells_reader *r, struct pobox_cell *out);

/* Decodes a shape: up to max ids into ids; *n = how many.  0 or -1. */
int pobox_cells_read_shape(const char *text, size_t len, int64_t *ids, size_t max, size_t *n);

#endif
