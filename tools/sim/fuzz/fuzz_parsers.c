/*
 * fuzz_parsers -- libFuzzer entry point for everything the simulator parses
 * from the network: batch bodies (fed in pieces of fuzzer-chosen sizes, as
 * MHD delivers them), batch rows, query/form strings, percent-decoding and
 * the /_sim/faults settings form; plus the XML/JSON escaping of whatever
 * came out.  The first input byte picks the target; the same function is
 * driven by replay_main.c over a corpus in a ctest test.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sim_batch_parse.h"
#include "sim_buf.h"
#include "sim_config.h"
#include "sim_url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void batch(const uint8_t *data, size_t size)
{
	struct sim_batch_parse p;
	struct sim_buf scratch, out;
	size_t pos = 0, chunk = 1 + (size ? data[0] % 17 : 0);
	const char *cells[8];
	size_t lens[8];

	sim_batch_parse_init(&p, 1 << 20, 64, size);
	sim_buf_init(&scratch, 0);
	sim_buf_init(&out, 0);
	while (pos < size) {
		size_t n = size - pos < chunk ? size - pos : chunk;

		sim_batch_parse_feed(&p, (const char *)data + pos, n);
		pos += n;
		chunk = chunk * 3 % 61 + 1;
	}
	if (sim_batch_parse_finish(&p) == 0) {
		size_t off = 0, i;

		for (i = 0; i < p.n_attrs; i++)
			if (p.attr_names[i])
				sim_buf_add_json(&out, p.attr_names[i], p.attr_name_lens[i]);
		while (off < p.rows.len) {
			const char *line = p.rows.data + off;
			const char *nl = memchr(line, '\n', p.rows.len - off);
			size_t len = nl ? (size_t)(nl - line) : p.rows.len - off, n, extra;
			int bad;

			off += len + 1;
			if (sim_batch_row_parse(line, len, &scratch, cells, lens, 8, &n, &extra, &bad))
				continue;
			for (i = 0; i < n; i++) {
				sim_buf_add_xml(&out, cells[i], lens[i]);
				sim_buf_add_json(&out, cells[i], lens[i]);
			}
		}
	}
	sim_buf_free(&out);
	sim_buf_free(&scratch);
	sim_batch_parse_free(&p);
}

static void params(const uint8_t *data, size_t size)
{
	struct sim_params ps;
	struct sim_buf out;
	size_t i;

	sim_buf_init(&out, 0);
	if (sim_params_parse(&ps, (const char *)data, size, 64) == 0) {
		sim_params_get(&ps, "mbox3rdPartyId");
		sim_params_get(&ps, "batchId");
		for (i = 0; i < ps.count; i++) {
			sim_buf_add_xml(&out, ps.items[i].name, ps.items[i].name_len);
			sim_buf_add_json(&out, ps.items[i].value, ps.items[i].value_len);
		}
	}
	sim_params_free(&ps);
	sim_buf_free(&out);
}

static void decode(const uint8_t *data, size_t size)
{
	char *dst = malloc(size + 1);

	if (!dst)
		return;
	sim_url_decode(dst, (const char *)data, size, (int)(size & 1));
	free(dst);
}

static void settings(const uint8_t *data, size_t size)
{
	struct sim_config c;
	char err[256];

	sim_config_defaults(&c);
	sim_config_parse_form(&c, (const char *)data, size, err, sizeof(err));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!size)
		return 0;
	switch (data[0] & 3) {
	case 0:
		batch(data + 1, size - 1);
		break;
	case 1:
		params(data + 1, size - 1);
		break;
	case 2:
		decode(data + 1, size - 1);
		break;
	default:
		settings(data + 1, size - 1);
	}
	return 0;
}
