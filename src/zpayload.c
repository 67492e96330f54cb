/*
 * zpayload.c - zlib for payloads at rest (see zpayload.h).
 */
#include "zpayload.h"
#include "alloc.h"
#include "pobox.h"

#include <string.h>
#include <zlib.h>

static voidpf z_alloc(voidpf opaque, uInt items, uInt size)
{
	(void)opaque;
	return pobox_calloc(items, size);
}

static void z_free(voidpf opaque, voidpf p)
{
	(void)opaque;
	pobox_free(p);
}

int pobox_zwriter_init(struct pobox_zwriter *w, int level)
{
	memset(w, 0, sizeof *w);
	z_stream *z = pobox_calloc(1, sizeof *z);
	if (!z)
		return POBOX_ENOMEM;
	z->zalloc = z_alloc;
	z->zfree = z_free;
	if (deflateInit(z, level) != Z_OK) {
		pobox_free(z);
		return POBOX_ENOMEM;
	}
	w->z = z;
	return 0;
}

static int pump(struct pobox_zwriter *w, int flush)
{
	z_stream *z = w->z;
	for (;;) {
		if (w->cap - w->len < 65536) {
			/* grow by half: a 20 MB stream then never holds 40 MB */
			size_t ncap = w->cap ? w->cap + w->cap / 2 : 1 << 17;
			unsigned char *n = pobox_realloc(w->out, ncap);
			if (!n)
				return POBOX_ENOMEM;
			w->out = n;
			w->cap = ncap;
		}
		z->next_out = w->out + w->len;
		z->avail_out = (uInt)(w->cap - w->len);
		int rc = deflate(z, flush);
		w->len = w->cap - z->avail_out;
		if (rc == Z_STREAM_END)
			return 0;
		if (rc != Z_OK && rc != Z_BUF_ERROR)
			return POBOX_EIO;
		if (flush == Z_NO_FLUSH && z->avail_in == 0)
			return 0;
		if (flush == Z_FINISH && rc == Z_BUF_ERROR && z->avail_out != 0)
			return POBOX_EIO;
	}
}

/* Small writes (a batch row is ~100 bytes) are gathered: deflate and the
 * CRC cost per call. */
#define GATHER 65536

static int drain(struct pobox_zwriter *w, const void *data, size_t len, int flush)
{
	z_stream *z = w->z;
	w->crc = (uint32_t)crc32(w->crc, data, (uInt)len);
	z->next_in = (Bytef *)data;
	z->avail_in = (uInt)len;
	return pump(w, flush);
}

int pobox_zwriter_write(struct pobox_zwriter *w, const void *data, size_t len)
{
	int rc = 0;
	w->in_bytes += len;
	if (w->in_len + len > GATHER && w->in_len) {
		if ((rc = drain(w, w->in, w->in_len, Z_NO_FLUSH)) != 0)
			return rc;
		w->in_len = 0;
	}
	if (len >= GATHER)
		return drain(w, data, len, Z_NO_FLUSH);
	if (!w->in && !(w->in = pobox_malloc(GATHER)))
		return POBOX_ENOMEM;
	memcpy(w->in + w->in_len, data, len);
	w->in_len += len;
	return 0;
}

void pobox_zwriter_taken(struct pobox_zwriter *w)
{
	w->len = 0;
}

int pobox_zwriter_finish(struct pobox_zwriter *w)
{
	int rc = drain(w, w->in, w->in_len, Z_FINISH);
	w->in_len = 0;
	return rc;
}

void pobox_zwriter_free(struct pobox_zwriter *w)
{
	if (w->z) {
		deflateEnd(w->z);
		pobox_free(w->z);
	}
	pobox_free(w->out);
	pobox_free(w->in);
	memset(w, 0, sizeof *w);
}

uint32_t pobox_crc32(uint32_t crc, const void *data, size_t len)
{
	return (uint32_t)crc32(crc, data, (uInt)len);
}

uint32_t pobox_crc32_combine(uint32_t a, uint32_t b, uint64_t len_b)
{
	return (uint32_t)crc32_combine(a, b, (z_off_t)len_b);
}

/* ---- reading back, piece by piece -------------------------------------- */

int pobox_zreader_init(struct pobox_zreader *r, const struct pobox_zsource *src,
                       uint64_t want_len, uint32_t want_crc)
{
	memset(r, 0, sizeof *r);
	z_stream *z = pobox_calloc(1, sizeof *z);
	if (!z)
		return POBOX_ENOMEM;
	z->zalloc = z_alloc;
	z->zfree = z_free;
	if (inflateInit(z) != Z_OK) {
		pobox_free(z);
		return POBOX_ENOMEM;
	}
	r->z = z;
	r->src = src;
	r->want_len = want_len;
	r->want_crc = want_crc;
	return 0;
}

int pobox_zreader_rewind(struct pobox_zreader *r)
{
	z_stream *z = r->z;
	int rc = r->src->rewind(r->src->ctx);
	if (rc)
		return rc;
	if (inflateReset(z) != Z_OK)
		return POBOX_ECORRUPT;
	z->next_in = NULL;
	z->avail_in = 0;
	r->src_done = 0;
	r->out = 0;
	r->crc = 0;
	r->in_stream = 0;
	return 0;
}

/* More input when the last piece is used up. */
static int pull(struct pobox_zreader *r)
{
	z_stream *z = r->z;
	const void *data;
	size_t len;
	if (z->avail_in > 0 || r->src_done)
		return 0;
	int rc = r->src->next(r->src->ctx, &data, &len);
	if (rc)
		return rc;
	if (len == 0) {
		r->src_done = 1;
		return 0;
	}
	z->next_in = (Bytef *)(uintptr_t)data;
	z->avail_in = (uInt)len;
	return 0;
}

/* Inflates into buf[0..cap): the bytes produced, or an error.  Streams
 * back to back are one payload (header, then rows). */
static long inflate_some(struct pobox_zreader *r, unsigned char *buf, size_t cap)
{
	z_stream *z = r->z;
	size_t got = 0;
	int rc;
	while (got < cap) {
		if ((rc = pull(r)) != 0)
			return rc;
		if (z->avail_in == 0)
			break; /* the source has ended */
		r->in_stream = 1;
		z->next_out = buf + got;
		z->avail_out = (uInt)(cap - got);
		rc = inflate(z, Z_NO_FLUSH);
		got = cap - z->avail_out;
		if (rc == Z_STREAM_END) {
			r->in_stream = 0;
			if (inflateReset(z) != Z_OK)
				return POBOX_ECORRUPT;
		} else if (rc != Z_OK && !(rc == Z_BUF_ERROR && z->avail_out == 0)) {
			return POBOX_ECORRUPT;
		}
	}
	return (long)got;
}

/* At the stored length: nothing more may decode, the last stream must have
 * ended, the source must be used up and the CRC must match. */
static int check_end(struct pobox_zreader *r)
{
	unsigned char extra[1];
	long n = inflate_some(r, extra, sizeof extra);
	if (n < 0)
		return (int)n;
	int rc = pull(r);
	if (rc)
		return rc;
	if (n != 0 || r->in_stream || ((z_stream *)r->z)->avail_in != 0 || !r->src_done ||
	    r->crc != r->want_crc)
		return POBOX_ECORRUPT;
	return 0;
}

long pobox_zreader_read(struct pobox_zreader *r, char *buf, size_t cap)
{
	uint64_t left = r->want_len - r->out;
	if (left == 0)
		return check_end(r);
	if (cap > left)
		cap = (size_t)left;
	long n = inflate_some(r, (unsigned char *)buf, cap);
	if (n < 0)
		return n;
	if (n == 0)
		return POBOX_ECORRUPT; /* the payload ends before its stored length */
	r->crc = (uint32_t)crc32(r->crc, (const Bytef *)buf, (uInt)n);
	r->out += (uint64_t)n;
	if (r->out == r->want_len) {
		int rc = check_end(r);
		if (rc)
			return rc;
	}
	return n;
}

void pobox_zreader_free(struct pobox_zreader *r)
{
	if (r->z) {
		inflateEnd(r->z);
		pobox_free(r->z);
	}
	memset(r, 0, sizeof *r);
}

int pobox_zpayload_check(const struct pobox_zsource *src, uint64_t want_len, uint32_t want_crc,
                         int (*out)(void *ctx, const char *data, size_t n), void *ctx)
{
	struct pobox_zreader r;
	char buf[65536];
	long n;
	int rc = pobox_zreader_init(&r, src, want_len, want_crc);
	if (rc)
		return rc;
	while ((n = pobox_zreader_read(&r, buf, sizeof buf)) > 0)
		if (out && (rc = out(ctx, buf, (size_t)n)) != 0)
			break;
	pobox_zreader_free(&r);
	return rc ? rc : (int)(n < 0 ? n : 0);
}

static int blob_next(void *ctx, const void **data, size_t *len)
{
	struct pobox_zblob *b = ctx;
	*data = b->data;
	*len = b->given ? 0 : b->len;
	b->given = 1;
	return 0;
}

static int blob_rewind(void *ctx)
{
	((struct pobox_zblob *)ctx)->given = 0;
	return 0;
}

const struct pobox_zsource *pobox_zblob_init(struct pobox_zblob *b, const void *data, size_t len)
{
	b->data = data;
	b->len = len;
	b->given = 0;
	b->src.next = blob_next;
	b->src.rewind = blob_rewind;
	b->src.ctx = b;
	return &b->src;
}
