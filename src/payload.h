/*
 * payload.h - a batch's stored payload as a zlib source (zpayload.h): the
 * parts of batch_payloads read one at a time, so neither checking nor
 * sending a batch holds more than a part of it (about a megabyte).
 */
#ifndef POBOX_PAYLOAD_H
#define POBOX_PAYLOAD_H

#include "store.h"
#include "zpayload.h"

#include <stddef.h>
#include <stdint.h>

struct pobox_payload_src {
	struct pobox_store *st;
	int64_t batch, part;    /* the last part read (-1: none yet) */
	void *buf;              /* that part */
	size_t cap;
	struct pobox_zsource src;
};

/* The source for batch's payload; the store is borrowed. */
const struct pobox_zsource *pobox_payload_src_init(struct pobox_payload_src *p,
                                                   struct pobox_store *st, int64_t batch);
void pobox_payload_src_free(struct pobox_payload_src *p);

/* Whether b's stored payload decodes to its bytes and CRC (0,
 * POBOX_ECORRUPT, or the store's error); with out set, the bytes go to it
 * as they are read. */
int pobox_payload_check(struct pobox_store *st, const struct pobox_batch *b,
                        int (*out)(void *ctx, const char *data, size_t n), void *ctx);

#endif
