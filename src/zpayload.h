/*
 * zpayload.h - batch payloads at rest: zlib compression and CRC-32.  The
 * only module that includes zlib.h.
 *
 * A stored payload is one or more zlib streams back to back (the batch
 * writer compresses the header and the rows separately, because the header
 * is only known once the rows are); pobox_zpayload_inflate decodes them all,
 * in order, into the exact bytes to send.
 */
#ifndef POBOX_ZPAYLOAD_H
#define POBOX_ZPAYLOAD_H

#include <stddef.h>
#include <stdint.h>

/* A compressing writer into a growable buffer. */
struct pobox_zwriter {
	void *z;            /* z_stream, opaque */
	unsigned char *out;
	size_t len, cap;
	uint64_t in_bytes;
	uint32_t crc;       /* CRC-32 of everything written */
	unsigned char *in;  /* writes gathered for one deflate call */
	size_t in_len;
};

int pobox_zwriter_init(struct pobox_zwriter *w, int level);
int pobox_zwriter_write(struct pobox_zwriter *w, const void *data, size_t len);
/* Ends the stream; w->out/w->len hold it (owned by w until free). */
int pobox_zwriter_finish(struct pobox_zwriter *w);
void pobox_zwriter_free(struct pobox_zwriter *w);

/* CRC-32 (zlib's) of data, continuing from crc (start with 0). */
uint32_t pobox_crc32(uint32_t crc, const void *data, size_t len);
/* The CRC-32 of a followed by b, from their CRCs and b's length. */
uint32_t pobox_crc32_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);

/* Decodes all concatenated zlib streams in blob into *out (pobox_malloc'd,
 * NUL-terminated, *out_len bytes not counting the NUL).  At most max_out
 * bytes.  Returns 0, POBOX_ECORRUPT for bad data, POBOX_ENOMEM. */
int pobox_zpayload_inflate(const void *blob, size_t len, size_t max_out, char **out,
                           size_t *out_len);

#endif
