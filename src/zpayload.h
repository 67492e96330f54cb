/*
 * zpayload.h - batch payloads at rest: zlib compression and CRC-32.  The
 * only module that includes zlib.h.
 *
 * A stored payload is one or more zlib streams back to back (the batch
 * writer compresses the header and the rows separately, because the header
 * is only known once the rows are); a zreader decodes them all, in order,
 * into the exact bytes to send.
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
/* The caller has stored out[0..len): the buffer starts over (a stream
 * written out in parts as it grows). */
void pobox_zwriter_taken(struct pobox_zwriter *w);
/* Ends the stream; w->out/w->len hold it (owned by w until free). */
int pobox_zwriter_finish(struct pobox_zwriter *w);
void pobox_zwriter_free(struct pobox_zwriter *w);

/* CRC-32 (zlib's) of data, continuing from crc (start with 0). */
uint32_t pobox_crc32(uint32_t crc, const void *data, size_t len);
/* The CRC-32 of a followed by b, from their CRCs and b's length. */
uint32_t pobox_crc32_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b);

/* Where a reader's compressed bytes come from: next points *data at the
 * next piece (valid until the next call) and sets *len, 0 at the end; it
 * returns 0 or a negative POBOX_E* code.  rewind starts from the first
 * piece again.  A stored payload comes in parts (payload.h); a blob in
 * memory is one piece (pobox_zblob). */
struct pobox_zsource {
	int (*next)(void *ctx, const void **data, size_t *len);
	int (*rewind)(void *ctx);
	void *ctx;
};

/* Reads a payload back piece by piece (an HTTP body source), so a 49 MB
 * batch is never held inflated.  The payload must inflate to exactly
 * want_len bytes with CRC-32 want_crc: the piece that would end it is only
 * handed out once both are checked, so a damaged payload is refused before
 * its last byte leaves.  The source is borrowed. */
struct pobox_zreader {
	void *z;                  /* z_stream, opaque */
	const struct pobox_zsource *src;
	int src_done;             /* the source has no more pieces */
	uint64_t want_len, out;   /* out: bytes handed out so far */
	uint32_t want_crc, crc;
	int in_stream;
};

int pobox_zreader_init(struct pobox_zreader *r, const struct pobox_zsource *src,
                       uint64_t want_len, uint32_t want_crc);
/* Up to cap bytes into buf: returns how many, 0 at the (checked) end,
 * POBOX_ECORRUPT when the payload does not decode to what was stored, or
 * the source's error. */
long pobox_zreader_read(struct pobox_zreader *r, char *buf, size_t cap);
/* Back to the first byte. */
int pobox_zreader_rewind(struct pobox_zreader *r);
void pobox_zreader_free(struct pobox_zreader *r);

/* Whether the payload decodes to exactly want_len bytes of CRC-32 want_crc,
 * in constant memory: 0, POBOX_ECORRUPT, POBOX_ENOMEM or the source's
 * error.  With out set, the bytes go to it as they are read (so only use
 * that after a check). */
int pobox_zpayload_check(const struct pobox_zsource *src, uint64_t want_len, uint32_t want_crc,
                         int (*out)(void *ctx, const char *data, size_t n), void *ctx);

/* A blob in memory as a source of one piece. */
struct pobox_zblob {
	const void *data;
	size_t len;
	int given;
	struct pobox_zsource src;
};
const struct pobox_zsource *pobox_zblob_init(struct pobox_zblob *b, const void *data, size_t len);

#endif
