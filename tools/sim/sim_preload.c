/*
 * sim_preload -- load existing profiles from a CSV (see sim_preload.h).
 */
#include "sim_preload.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_batch_parse.h"
#include "sim_clock.h"
#include "sim_store.h"

long sim_preload_file(const char *path, char *err, size_t err_len)
{
	struct sim_batch_parse p;
	struct sim_buf scratch;
	FILE *f = fopen(path, "rb");
	char chunk[65536];
	const char **cells = NULL;
	size_t *lens = NULL, n, pos = 0, line_no = 1, i;
	uint32_t *ids = NULL;
	struct sim_kv *kv = NULL;
	long loaded = -1, count = 0;
	int64_t now = sim_clock_now_ms();

	sim_batch_parse_init(&p, SIZE_MAX / 2, SIZE_MAX / 2, 0);
	sim_buf_init(&scratch, 0);
	if (!f) {
		snprintf(err, err_len, "--preload: cannot open %s: %s", path, strerror(errno));
		goto out;
	}
	sim_batch_parse_feed(&p, "batch=", 6);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		sim_batch_parse_feed(&p, chunk, n);
	if (ferror(f) || sim_batch_parse_finish(&p)) {
		snprintf(err, err_len, "--preload: %s: %s", path,
		         p.refused ? p.message : "read error");
		goto out;
	}
	cells = calloc(p.n_attrs + 1, sizeof(*cells));
	lens = calloc(p.n_attrs + 1, sizeof(*lens));
	ids = calloc(p.n_attrs + 1, sizeof(*ids));
	kv = calloc(p.n_attrs + 1, sizeof(*kv));
	if (!cells || !lens || !ids || !kv) {
		snprintf(err, err_len, "--preload: out of memory");
		goto out;
	}
	for (i = 0; i < p.n_attrs; i++)
		ids[i] = p.attr_names[i] ? sim_store_intern(p.attr_names[i], p.attr_name_lens[i])
		                         : SIM_NAME_NONE;
	while (pos < p.rows.len) {
		const char *line = p.rows.data + pos;
		const char *nl = memchr(line, '\n', p.rows.len - pos);
		size_t len = nl ? (size_t)(nl - line) : p.rows.len - pos, n_cells, extra, n_kv = 0;
		struct sim_apply_result res;
		int raw_bad;

		pos += len + 1;
		line_no++;
		while (len && line[len - 1] == '\r')
			len--;
		if (!len)
			continue;
		if (sim_batch_row_parse(line, len, &scratch, cells, lens, p.n_attrs + 1, &n_cells,
		                        &extra, &raw_bad) || lens[0] == 0 || extra) {
			snprintf(err, err_len, "--preload: %s:%zu: empty id or more cells than "
			         "header columns", path, line_no);
			goto out;
		}
		for (i = 1; i < n_cells; i++)
			if (lens[i] && ids[i - 1] != SIM_NAME_NONE) {
				kv[n_kv].name_id = ids[i - 1];
				kv[n_kv].value = cells[i];
				kv[n_kv].value_len = lens[i];
				n_kv++;
			}
		if (sim_store_apply(p.id_type, cells[0], lens[0], kv, n_kv, SIM_APPLY_PRELOAD, 0, 0,
		                    now, &res)) {
			snprintf(err, err_len, "--preload: out of memory");
			goto out;
		}
		count += res.created;
	}
	loaded = count;
out:
	if (f)
		fclose(f);
	free(cells);
	free(lens);
	free(ids);
	free(kv);
	sim_buf_free(&scratch);
	sim_batch_parse_free(&p);
	return loaded;
}
