/*
 * payload.c - a batch's stored payload as a zlib source (see payload.h).
 */
#include "payload.h"
#include "alloc.h"

#include <string.h>

static int next(void *ctx, const void **data, size_t *len)
{
	struct pobox_payload_src *p = ctx;
	int rc = pobox_store_payload_next(p->st, p->batch, p->part, &p->part, &p->buf, &p->cap, len);
	*data = p->buf;
	return rc;
}

static int rewind_src(void *ctx)
{
	((struct pobox_payload_src *)ctx)->part = -1;
	return 0;
}

const struct pobox_zsource *pobox_payload_src_init(struct pobox_payload_src *p,
                                                   struct pobox_store *st, int64_t batch)
{
	memset(p, 0, sizeof *p);
	p->st = st;
	p->batch = batch;
	p->part = -1;
	p->src.next = next;
	p->src.rewind = rewind_src;
	p->src.ctx = p;
	return &p->src;
}

void pobox_payload_src_free(struct pobox_payload_src *p)
{
	pobox_free(p->buf);
	p->buf = NULL;
	p->cap = 0;
}

int pobox_payload_check(struct pobox_store *st, const struct pobox_batch *b,
                        int (*out)(void *ctx, const char *data, size_t n), void *ctx)
{
	struct pobox_payload_src p;
	int rc = pobox_zpayload_check(pobox_payload_src_init(&p, st, b->id), (uint64_t)b->bytes,
	                              b->payload_crc32, out, ctx);
	pobox_payload_src_free(&p);
	return rc;
}
