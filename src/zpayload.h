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

/* Reads a stored payload back piece by piece (an HTTP body source), so a
 * 49 MB batch is never held inflated.  The payload must inflate to exactly
 * want_len bytes with CRC-32 want_crc: the piece that would end it is only
 * handed out once both are checked, so a damaged payload is refused before
 * its last byte leaves.  The blob is borrowed. */
struct pobox_zreader {
	void *z;                  /* z_stream, opaque */
	const unsigned char *blob;
	size_t blob_len;
	uint64_t want_len, out;   /* out: bytes handed out so far */
	uint32_t want_crc, crc;
	int in_stream;
};

int pobox_zreader_init(struct pobox_zreader *r, const void *blob, size_t len,
                       uint64_t want_len, uint32_t want_crc);
/* Up to cap bytes into buf: returns how many, 0 at the (checked) end,
 * POBOX_ECORRUPT when the payload does not decode to what was stored. */
long pobox_zreader_read(struct pobox_zreader *r, char *buf, size_t cap);
/* Back to the first byte. */
int pobox_zreader_rewind(struct pobox_zreader *r);
void pobox_zreader_free(struct pobox_zreader *r);

/* Whether the payload decodes to exactly want_len bytes of CRC-32 want_crc,
 * in constant memory: 0, POBOX_ECORRUPT or POBOX_ENOMEM.  With out set,
 * the bytes go to it as they are checked (only use that after a check). */
int pobox_zpayload_check(const void *blob, size_t len, uint64_t want_len, uint32_t want_crc,
                         int (*out)(void *ctx, const char *data, size_t n), void *ctx);

#endif
