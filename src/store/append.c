/*
 * append.c - rows the open transaction appends, inserted 32 at a time.
 *
 * An import appends a profile, its key and a write per record.  One
 * INSERT per row spends most of its time starting and ending statements;
 * one INSERT of 32 rows does the same B-tree work for a fraction of that.
 * So new profiles, new keys and writes wait here until 32 of a kind are
 * buffered, and go in before anything else reads the outbox:
 *
 *   - pobox_store_prep() flushes before handing out any statement, except
 *     the ones marked raw (the key lookups of keys.c, which look at the
 *     buffer themselves, and these inserts);
 *   - commit flushes first; rollback drops the buffer.
 *
 * Invariant: while rows are buffered, no statement other than a raw one
 * has run since they were buffered, so nobody has read a table they
 * belong to.
 */
#include "alloc.h"
#include "error.h"
#include "internal.h"

#include <string.h>

#define P4 "(?,?,?,?),"
#define P2 "(?,?),"
#define P8 "(?,?,?,?,?,?,?,?),"
#define X4(x) x x x x
#define X32(x) X4(X4(x)) X4(x) X4(x) X4(x) X4(x)

/* 32 rows each (the last row's trailing comma is cut by the length) */
static const char SQL_PROFILES[] =
	"INSERT INTO profiles (id, id_type, profile_id, last_write) VALUES " X32(P4);
static const char SQL_KEYS[] = "INSERT INTO profile_keys_new (khash, profile) VALUES " X32(P2);
static const char SQL_WRITES[] =
	"INSERT INTO writes (seq, profile, shape, cells, n, enqueued_at_ms, source, urgent) VALUES "
	X32(P8);
/* and one row */
static const char SQL_PROFILE1[] =
	"INSERT INTO profiles (id, id_type, profile_id, last_write) VALUES (?,?,?,?)";
static const char SQL_KEY1[] = "INSERT INTO profile_keys_new (khash, profile) VALUES (?,?)";
static const char SQL_WRITE1[] =
	"INSERT INTO writes (seq, profile, shape, cells, n, enqueued_at_ms, source, urgent) "
	"VALUES (?,?,?,?,?,?,?,?)";

static sqlite3_stmt *prep_n(struct pobox_store *st, const char *sql, size_t len)
{
	/* the 32-row SQL ends with a comma: prepare it without */
	return pobox_store_prep_len(st, sql, len);
}

static int keep_text(struct append_buf *b, const char *s, size_t len, size_t *off)
{
	if (b->text_len + len > b->text_cap) {
		size_t c = b->text_cap ? b->text_cap : 16384;
		while (c < b->text_len + len)
			c *= 2;
		char *nt = pobox_realloc(b->text, c);
		if (!nt)
			return POBOX_ENOMEM;
		b->text = nt;
		b->text_cap = c;
	}
	memcpy(b->text + b->text_len, s, len);
	*off = b->text_len;
	b->text_len += len;
	return 0;
}

static int step(struct pobox_store *st, sqlite3_stmt *s, const char *what)
{
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_DONE ? 0 : pobox_store_fail(st, rc, what);
}

static int flush_profiles(struct pobox_store *st, struct append_buf *b)
{
	int rc = 0;
	for (int at = 0; at < b->np && rc == 0;) {
		int n = b->np - at >= APPEND_ROWS ? APPEND_ROWS : 1;
		sqlite3_stmt *s = n > 1 ? prep_n(st, SQL_PROFILES, sizeof SQL_PROFILES - 2)
		                        : pobox_store_prep_raw(st, SQL_PROFILE1);
		if (!s)
			return POBOX_EIO;
		for (int i = 0; i < n; i++) {
			const struct ab_profile *p = &b->p[at + i];
			sqlite3_bind_int64(s, 4 * i + 1, p->id);
			sqlite3_bind_int(s, 4 * i + 2, p->type);
			sqlite3_bind_text(s, 4 * i + 3, b->text + p->off, (int)p->len, SQLITE_STATIC);
			sqlite3_bind_int64(s, 4 * i + 4, p->last_write);
		}
		rc = step(st, s, "adding profiles");
		if (rc == 0) {
			s = n > 1 ? prep_n(st, SQL_KEYS, sizeof SQL_KEYS - 2) : pobox_store_prep_raw(st, SQL_KEY1);
			if (!s)
				return POBOX_EIO;
			for (int i = 0; i < n; i++) {
				sqlite3_bind_int64(s, 2 * i + 1, b->p[at + i].khash);
				sqlite3_bind_int64(s, 2 * i + 2, b->p[at + i].id);
			}
			rc = step(st, s, "adding profile keys");
		}
		at += n;
	}
	return rc;
}

static int flush_writes(struct pobox_store *st, struct append_buf *b)
{
	int rc = 0;
	for (int at = 0; at < b->nw && rc == 0;) {
		int n = b->nw - at >= APPEND_ROWS ? APPEND_ROWS : 1;
		sqlite3_stmt *s = n > 1 ? prep_n(st, SQL_WRITES, sizeof SQL_WRITES - 2)
		                        : pobox_store_prep_raw(st, SQL_WRITE1);
		if (!s)
			return POBOX_EIO;
		for (int i = 0; i < n; i++) {
			const struct ab_write *w = &b->w[at + i];
			int k = 8 * i;
			sqlite3_bind_int64(s, k + 1, w->seq);
			sqlite3_bind_int64(s, k + 2, w->profile);
			sqlite3_bind_int64(s, k + 3, w->shape);
			sqlite3_bind_text(s, k + 4, b->text + w->off, (int)w->len, SQLITE_STATIC);
			sqlite3_bind_int64(s, k + 5, w->n);
			sqlite3_bind_int64(s, k + 6, w->enq);
			if (w->source > 0)
				sqlite3_bind_int64(s, k + 7, w->source);
			sqlite3_bind_int(s, k + 8, w->urgent);
		}
		rc = step(st, s, "appending writes");
		at += n;
	}
	return rc;
}

int pobox_store_append_flush(struct pobox_store *st)
{
	struct append_buf *b = &st->ab;
	if ((b->np == 0 && b->nw == 0) || b->flushing)
		return 0;
	b->flushing = 1;
	/* profiles before the writes that name them */
	int rc = flush_profiles(st, b);
	if (rc == 0)
		rc = flush_writes(st, b);
	b->flushing = 0;
	pobox_store_append_drop(st);
	return rc;
}

void pobox_store_append_drop(struct pobox_store *st)
{
	st->ab.np = st->ab.nw = 0;
	st->ab.text_len = 0;
}

void pobox_store_append_free(struct pobox_store *st)
{
	pobox_free(st->ab.text);
	memset(&st->ab, 0, sizeof st->ab);
}

int pobox_store_append_profile(struct pobox_store *st, int64_t id, int type, const char *pid,
                               size_t len, int64_t khash, int64_t last_write)
{
	struct append_buf *b = &st->ab;
	int rc;
	if (b->np == APPEND_ROWS && (rc = pobox_store_append_flush(st)) != 0)
		return rc;
	struct ab_profile *p = &b->p[b->np];
	if (keep_text(b, pid, len, &p->off) != 0)
		return pobox_errf(st->err, st->errlen, POBOX_ENOMEM, "out of memory");
	p->id = id;
	p->type = type;
	p->len = len;
	p->khash = khash;
	p->last_write = last_write;
	b->np++;
	return 0;
}

int pobox_store_append_write(struct pobox_store *st, int64_t seq, int64_t profile, int64_t shape,
                             const char *cells, size_t len, int64_t n, int64_t enq,
                             int64_t source, int urgent)
{
	struct append_buf *b = &st->ab;
	int rc;
	/* a full buffer of writes flushes the profiles they name too */
	if (b->nw == APPEND_ROWS && (rc = pobox_store_append_flush(st)) != 0)
		return rc;
	struct ab_write *w = &b->w[b->nw];
	if (keep_text(b, cells, len, &w->off) != 0)
		return pobox_errf(st->err, st->errlen, POBOX_ENOMEM, "out of memory");
	*w = (struct ab_write){seq, profile, shape, n, enq, source, urgent ? 1 : 0, w->off, len};
	b->nw++;
	return 0;
}

int pobox_store_append_last_write(struct pobox_store *st, int64_t profile, int64_t seq)
{
	struct append_buf *b = &st->ab;
	for (int i = b->np - 1; i >= 0; i--) {
		if (b->p[i].id == profile) {
			if (seq > b->p[i].last_write)
				b->p[i].last_write = seq;
			return 1;
		}
	}
	return 0;
}

int64_t pobox_store_append_find(const struct pobox_store *st, int64_t khash, int type,
                                const char *pid, size_t len)
{
	const struct append_buf *b = &st->ab;
	for (int i = b->np - 1; i >= 0; i--) {
		const struct ab_profile *p = &b->p[i];
		if (p->khash == khash && p->type == type && p->len == len &&
		    memcmp(b->text + p->off, pid, len) == 0)
			return p->id;
	}
	return 0;
}
