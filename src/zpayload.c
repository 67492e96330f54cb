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

int pobox_zpayload_inflate(const void *blob, size_t len, size_t max_out, char **out,
                           size_t *out_len)
{
	z_stream z;
	char *buf = NULL;
	size_t cap = 0, used = 0;
	int rc = POBOX_ECORRUPT, in_stream = 0;

	memset(&z, 0, sizeof z);
	z.zalloc = z_alloc;
	z.zfree = z_free;
	if (inflateInit(&z) != Z_OK)
		return POBOX_ENOMEM;
	z.next_in = (Bytef *)blob;
	z.avail_in = (uInt)len;
	while (z.avail_in > 0) {
		in_stream = 1;
		if (cap - used < 65536 && cap < max_out + 1) {
			size_t ncap = cap ? cap * 2 : (len * 4 > 65536 ? len * 4 : 65536);
			if (ncap > max_out + 1)
				ncap = max_out + 1;
			char *n = pobox_realloc(buf, ncap);
			if (!n) {
				rc = POBOX_ENOMEM;
				goto out;
			}
			buf = n;
			cap = ncap;
		}
		if (cap - used <= 1)
			goto out; /* more than max_out bytes: not a payload of ours */
		z.next_out = (Bytef *)buf + used;
		z.avail_out = (uInt)(cap - used - 1);
		int r = inflate(&z, Z_NO_FLUSH);
		used = cap - 1 - z.avail_out;
		if (r == Z_STREAM_END) {
			/* another stream may follow (header and rows are separate) */
			in_stream = 0;
			if (inflateReset(&z) != Z_OK)
				goto out;
			continue;
		}
		if (r != Z_OK && !(r == Z_BUF_ERROR && z.avail_out == 0))
			goto out;
	}
	if (in_stream)
		goto out; /* truncated: the last stream never ended */
	if (!buf && !(buf = pobox_malloc(1))) {
		rc = POBOX_ENOMEM;
		goto out;
	}
	buf[used] = '\0';
	*out = buf;
	*out_len = used;
	buf = NULL;
	rc = 0;
out:
	inflateEnd(&z);
	pobox_free(buf);
	return rc;
}
