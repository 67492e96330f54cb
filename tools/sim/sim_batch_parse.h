/*
 * sim_batch_parse -- incremental parser for batchUpdate bodies.
 *
 * Owns: reading the body of a bulk upload exactly as MHD delivers it, in
 * pieces of any size, and deciding whether the batch is acceptable: the
 * `batch=` prefix, the header row (id column `pcId` or `thirdPartyId`, then
 * URL-encoded attribute names), the byte limit and the row limit.  Rows are
 * kept as their raw text in one buffer sized from Content-Length, so a
 * 50 MB upload costs about 50 MB once, never several copies; cells are split
 * and URL-decoded only when the batch is applied (sim_batch_row_parse()).
 * It does not apply anything and knows nothing about profiles or HTTP.
 *
 * The body is form-urlencoded: the whole file is the value of the form field
 * `batch`, so an unencoded '&' ends that field -- the rest of the body is
 * ignored, as a form parser would (recorded in `ignored_bytes`).
 *
 * Ownership: the parser owns its buffers until sim_batch_parse_free().
 */
#ifndef SIM_BATCH_PARSE_H
#define SIM_BATCH_PARSE_H

#include <stddef.h>

#include "sim_buf.h"

enum sim_id_type { SIM_ID_PCID = 0, SIM_ID_THIRDPARTY = 1 };

struct sim_batch_parse {
	size_t max_bytes;      /* a body of max_bytes or more is refused */
	size_t max_rows;       /* more rows than this are refused */
	int state;             /* private */
	int line_has_content;  /* private */
	size_t total_bytes;    /* body bytes seen, including ignored ones */
	size_t ignored_bytes;  /* bytes after an unencoded '&' */
	struct sim_buf header; /* raw header line */
	struct sim_buf rows;   /* raw data rows, '\n'-separated */
	size_t n_rows;         /* non-empty data rows */
	int refused;           /* set once the body can no longer be accepted */
	char message[256];     /* why, when refused */
	/* Filled by sim_batch_parse_finish() on success: */
	enum sim_id_type id_type;
	char **attr_names;     /* decoded, NUL-terminated; NULL for empty names */
	size_t *attr_name_lens;
	size_t n_attrs;        /* columns after the id column */
};

/* size_hint: the Content-Length if known (0 otherwise), to size the row
 * buffer once.  It is capped at max_bytes. */
void sim_batch_parse_init(struct sim_batch_parse *p, size_t max_bytes, size_t max_rows,
                          size_t size_hint);
/* Feed the next n bytes.  Returns 0, or -1 once refused (feeding more is
 * harmless and only counts bytes). */
int sim_batch_parse_feed(struct sim_batch_parse *p, const char *data, size_t n);
/* End of body.  Returns 0 if the batch is acceptable, -1 with `message`. */
int sim_batch_parse_finish(struct sim_batch_parse *p);
void sim_batch_parse_free(struct sim_batch_parse *p);

/*
 * One data row, split and decoded.  `line` is one raw row (without '\n');
 * cells are decoded into `scratch` (reset by the call).  On return cells[i]
 * points into scratch with lens[i]; *n_cells is at most max_cells (extra
 * cells are counted in *extra_nonempty when not empty).  Returns 0, or -1
 * on allocation failure.
 */
int sim_batch_row_parse(const char *line, size_t len, struct sim_buf *scratch,
                        const char **cells, size_t *lens, size_t max_cells,
                        size_t *n_cells, size_t *extra_nonempty,
                        int *id_raw_plus_or_slash);

#endif
