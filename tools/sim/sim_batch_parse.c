/*
 * sim_batch_parse -- incremental parser for batchUpdate bodies (see
 * sim_batch_parse.h).  The state machine:
 *
 *   PREFIX --"batch="--> HEADER --'\n'--> ROWS
 *      |                   |  '&'           | '&'
 *      | mismatch          +------> IGNORE <+
 *      v
 *   (refused)
 *
 * Rows are counted as they stream past (a row is a line with at least one
 * byte other than '\r'), so the row limit is enforced without a second pass.
 */
#include "sim_batch_parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_url.h"

enum { ST_PREFIX, ST_HEADER, ST_ROWS, ST_IGNORE };

static const char prefix[] = "batch=";
#define PREFIX_LEN (sizeof(prefix) - 1)
/* A header row longer than this is hostile, not a batch. */
#define MAX_HEADER_BYTES (1024 * 1024)

void sim_batch_parse_init(struct sim_batch_parse *p, size_t max_bytes, size_t max_rows,
                          size_t size_hint)
{
	memset(p, 0, sizeof(*p));
	p->max_bytes = max_bytes;
	p->max_rows = max_rows;
	p->state = ST_PREFIX;
	sim_buf_init(&p->header, MAX_HEADER_BYTES);
	sim_buf_init(&p->rows, max_bytes);
	if (size_hint > max_bytes)
		size_hint = max_bytes;
	/* One allocation for the whole body when the length is announced;
	 * untouched pages of it cost no memory. */
	if (size_hint && sim_buf_add(&p->rows, "", 0) == 0 && size_hint + 1 > p->rows.cap) {
		char *d = realloc(p->rows.data, size_hint + 1);

		if (d) {
			p->rows.data = d;
			p->rows.cap = size_hint + 1;
		}
	}
}

static void refuse(struct sim_batch_parse *p, const char *msg)
{
	if (p->refused)
		return;
	p->refused = 1;
	snprintf(p->message, sizeof(p->message), "%s", msg);
	/* Nothing stored is needed any more: give the memory back now. */
	sim_buf_free(&p->rows);
	sim_buf_free(&p->header);
}

static void end_row(struct sim_batch_parse *p)
{
	char msg[128];

	if (!p->line_has_content)
		return;
	p->line_has_content = 0;
	if (++p->n_rows > p->max_rows) {
		snprintf(msg, sizeof(msg), "too many rows: a batch may hold at most %zu rows",
		         p->max_rows);
		refuse(p, msg);
	}
}

int sim_batch_parse_feed(struct sim_batch_parse *p, const char *data, size_t n)
{
	size_t i = 0;
	char msg[160];

	p->total_bytes += n;
	if (!p->refused && p->total_bytes >= p->max_bytes) {
		snprintf(msg, sizeof(msg),
		         "batch too large: a batch file must be smaller than %zu bytes", p->max_bytes);
		refuse(p, msg);
	}
	if (p->refused)
		return -1;
	while (i < n) {
		switch (p->state) {
		case ST_PREFIX:
			if (data[i] != prefix[p->header.len]) {
				refuse(p, "missing batch= prefix: the body must begin with "
				          "batch= followed by the header row");
				return -1;
			}
			sim_buf_addc(&p->header, data[i++]);
			if (p->header.len == PREFIX_LEN) {
				sim_buf_clear(&p->header);
				p->state = ST_HEADER;
			}
			break;
		case ST_HEADER: {
			const char *start = data + i;
			size_t k = 0;

			while (i + k < n && start[k] != '\n' && start[k] != '&')
				k++;
			if (sim_buf_add(&p->header, start, k)) {
				refuse(p, "header row too long");
				return -1;
			}
			i += k;
			if (i < n) {
				p->state = data[i] == '&' ? ST_IGNORE : ST_ROWS;
				i++;
				if (p->state == ST_IGNORE)
					p->ignored_bytes += n - i;
			}
			break;
		}
		case ST_ROWS: {
			const char *start = data + i;
			size_t k = 0;

			for (; i + k < n; k++) {
				char c = start[k];

				if (c == '&')
					break;
				if (c == '\n') {
					end_row(p);
					if (p->refused)
						return -1;
				} else if (c != '\r') {
					p->line_has_content = 1;
				}
			}
			if (sim_buf_add(&p->rows, start, k)) {
				refuse(p, "out of memory storing the batch");
				return -1;
			}
			i += k;
			if (i < n) {
				/* Unencoded '&': the form field "batch" ends here. */
				p->state = ST_IGNORE;
				i++;
				p->ignored_bytes += n - i;
			}
			break;
		}
		default: /* ST_IGNORE: counted when entering the state */
			if (i == 0)
				p->ignored_bytes += n;
			i = n;
		}
	}
	return 0;
}

static int parse_header(struct sim_batch_parse *p)
{
	const char *h = p->header.data ? p->header.data : "";
	size_t len = p->header.len, i, col = 0, start = 0, cols = 1;
	char msg[200];
	int rc = -1;

	while (len && h[len - 1] == '\r')
		len--;
	for (i = 0; i < len; i++)
		if (h[i] == ',')
			cols++;
	p->attr_names = calloc(cols, sizeof(*p->attr_names));
	p->attr_name_lens = calloc(cols, sizeof(*p->attr_name_lens));
	if (!p->attr_names || !p->attr_name_lens) {
		refuse(p, "out of memory");
		goto out;
	}
	for (i = 0; i <= len; i++) {
		char *name;
		size_t nlen;

		if (i < len && h[i] != ',')
			continue;
		name = malloc(i - start + 1);
		if (!name) {
			refuse(p, "out of memory");
			goto out;
		}
		nlen = sim_url_decode(name, h + start, i - start, 1);
		name[nlen] = '\0';
		if (col == 0) {
			if (nlen == 4 && memcmp(name, "pcId", 4) == 0) {
				p->id_type = SIM_ID_PCID;
			} else if (nlen == 12 && memcmp(name, "thirdPartyId", 12) == 0) {
				p->id_type = SIM_ID_THIRDPARTY;
			} else {
				snprintf(msg, sizeof(msg),
				         "unknown id column '%.64s': the first header must be "
				         "pcId or thirdPartyId", name);
				free(name);
				refuse(p, msg);
				goto out;
			}
			free(name);
		} else if (nlen == 0) {
			free(name);  /* a column without a name is ignored */
		} else {
			p->attr_names[col - 1] = name;
			p->attr_name_lens[col - 1] = nlen;
		}
		col++;
		start = i + 1;
	}
	p->n_attrs = cols - 1;
	rc = 0;
out:
	return rc;
}

int sim_batch_parse_finish(struct sim_batch_parse *p)
{
	if (p->refused)
		return -1;
	if (p->state == ST_PREFIX) {
		refuse(p, "missing batch= prefix: the body must begin with batch= "
		          "followed by the header row");
		return -1;
	}
	if (p->state == ST_ROWS) {
		end_row(p);
		if (p->refused)
			return -1;
	}
	if (parse_header(p))
		return -1;
	return 0;
}

void sim_batch_parse_free(struct sim_batch_parse *p)
{
	size_t i;

	if (p->attr_names)
		for (i = 0; i < p->n_attrs; i++)
			free(p->attr_names[i]);
	free(p->attr_names);
	free(p->attr_name_lens);
	sim_buf_free(&p->header);
	sim_buf_free(&p->rows);
	memset(p, 0, sizeof(*p));
}

int sim_batch_row_parse(const char *line, size_t len, struct sim_buf *scratch,
                        const char **cells, size_t *lens, size_t max_cells,
                        size_t *n_cells, size_t *extra_nonempty,
                        int *id_raw_plus_or_slash)
{
	size_t i, start = 0, n = 0, off;

	while (len && line[len - 1] == '\r')
		len--;
	sim_buf_clear(scratch);
	/* Decoded cells are never longer than the raw line: reserve once so
	 * the cell pointers stay valid. */
	if (sim_buf_add(scratch, line, len))
		return -1;
	off = 0;
	*extra_nonempty = 0;
	*id_raw_plus_or_slash = 0;
	for (i = 0; i <= len; i++) {
		size_t dl;

		if (i < len && line[i] != ',')
			continue;
		if (n == 0)
			*id_raw_plus_or_slash = memchr(line, '+', i) || memchr(line, '/', i);
		if (n < max_cells) {
			dl = sim_url_decode(scratch->data + off, line + start, i - start, 1);
			cells[n] = scratch->data + off;
			lens[n] = dl;
			off += dl;
			n++;
		} else if (i > start) {
			(*extra_nonempty)++;
		}
		start = i + 1;
	}
	*n_cells = n;
	return 0;
}
