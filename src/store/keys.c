/*
 * keys.c - profile keys: finding a profile by (id type, profile id) and
 * creating new ones, at a cost that does not grow with the outbox.
 *
 * A nightly export lists mostly known profiles, in the same order every
 * night; its first night lists only new ones.  Neither may cost a probe of
 * a big random index per record:
 *
 *   1. hint     the profile after the last one found (profiles are numbered
 *               in arrival order, so a stable export walks them in order):
 *               one lookup by rowid, next to the previous one.
 *   2. new      profile_keys_new, small (a quarter of the big table at
 *               most) and so in the page cache: the keys of profiles
 *               created since the last merge.  A process that made all of
 *               them (an import, mostly) also keeps a Bloom filter over
 *               them, so a new profile skips this probe too.
 *   3. filter   a Bloom filter over profile_keys, loaded by a process that
 *               keeps reaching step 4 (an import), so new profiles skip it.
 *   4. main     profile_keys.
 *
 * Keys are 64-bit hashes of (id type, profile id) (pobox_khash, also an SQL
 * function on pobox's connections: SQL cannot compute it, which is why
 * sqlite3 producers stage their rows); a hash can collide, so every
 * candidate's text is compared.  When profile_keys_new holds more than
 * max(64k, a quarter of profile_keys) keys, the committing transaction
 * merges it into profile_keys in key order (one pass over the big table's
 * pages, a quarter of its size added: amortized, every key is rewritten a
 * few times in all, however big the outbox grows) and updates the filter.
 *
 * The filter is a Bloom filter with 10 bits per key and 7 probes (about 1%
 * false positives), sized for half again the keys it holds; it is stored in
 * key_filter with the generation (tallies.key_filter_gen) it matches, and
 * a process uses its copy only while the generation is current.
 */
#include "alloc.h"
#include "error.h"
#include "internal.h"

#include <string.h>

#define MERGE_MIN 65536
#define FILTER_BITS_PER_KEY 10
#define FILTER_PROBES 7
#define FILTER_LOAD_AFTER 2000 /* main-table probes before an import loads the filter */

struct key_filter {
	int64_t gen, keys;
	uint64_t nbits;
	unsigned char *bits;
};

/* ---- the hash ---------------------------------------------------------- */

static uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull; /* splitmix64's finalizer */
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

int64_t pobox_khash(int id_type, const char *id, size_t len)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a, then a finalizer */
	h = (h ^ (unsigned char)id_type) * 1099511628211ull;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)id[i]) * 1099511628211ull;
	return (int64_t)mix64(h);
}

static void khash_sql(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	(void)argc;
	int t = sqlite3_value_int(argv[0]);
	if (sqlite3_value_type(argv[0]) == SQLITE_TEXT) /* the old layout's names */
		t = strcmp((const char *)sqlite3_value_text(argv[0]), "pcId") == 0 ? POBOX_ID_PCID
		                                                                      : POBOX_ID_THIRDPARTY;
	const char *id = (const char *)sqlite3_value_text(argv[1]);
	int len = sqlite3_value_bytes(argv[1]);
	sqlite3_result_int64(ctx, pobox_khash(t, id ? id : "", (size_t)len));
}

int pobox_store_register_functions(struct pobox_store *st)
{
	int rc = sqlite3_create_function_v2(st->db, "pobox_khash", 2,
	                                    SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS,
	                                    NULL, khash_sql, NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : pobox_store_fail(st, rc, "registering functions");
}

/* ---- the filter -------------------------------------------------------- */

static void filter_free(struct key_filter *f)
{
	if (f) {
		pobox_free(f->bits);
		pobox_free(f);
	}
}

void pobox_store_keys_free(struct pobox_store *st)
{
	filter_free(st->filter);
	st->filter = NULL;
	filter_free(st->fresh);
	st->fresh = NULL;
}

static void filter_add(struct key_filter *f, int64_t key)
{
	uint64_t h1 = (uint64_t)key, h2 = mix64((uint64_t)key) | 1;
	for (int i = 0; i < FILTER_PROBES; i++) {
		uint64_t b = (h1 + (uint64_t)i * h2) % f->nbits;
		f->bits[b >> 3] |= (unsigned char)(1u << (b & 7));
	}
}

static int filter_has(const struct key_filter *f, int64_t key)
{
	uint64_t h1 = (uint64_t)key, h2 = mix64((uint64_t)key) | 1;
	for (int i = 0; i < FILTER_PROBES; i++) {
		uint64_t b = (h1 + (uint64_t)i * h2) % f->nbits;
		if (!(f->bits[b >> 3] & (1u << (b & 7))))
			return 0;
	}
	return 1;
}

static struct key_filter *filter_new(int64_t keys)
{
	struct key_filter *f = pobox_calloc(1, sizeof *f);
	if (!f)
		return NULL;
	f->keys = keys < 1024 ? 1024 : keys;
	f->nbits = ((uint64_t)f->keys * FILTER_BITS_PER_KEY + 63) & ~(uint64_t)63;
	if (!(f->bits = pobox_calloc(f->nbits / 8, 1))) {
		pobox_free(f);
		return NULL;
	}
	return f;
}

/* Loads the stored filter when it matches the current generation; leaves
 * st->filter NULL when there is none (lookups then probe profile_keys). */
static int filter_load(struct pobox_store *st, int64_t gen)
{
	static const char sql[] = "SELECT gen, keys, bits FROM key_filter WHERE one = 1";
	sqlite3_stmt *s = pobox_store_prep_raw(st, sql);
	if (!s)
		return POBOX_EIO;
	filter_free(st->filter);
	st->filter = NULL;
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW && sqlite3_column_int64(s, 0) == gen) {
		struct key_filter *f = pobox_calloc(1, sizeof *f);
		size_t n = (size_t)sqlite3_column_bytes(s, 2);
		if (f && (f->bits = pobox_malloc(n ? n : 1))) {
			memcpy(f->bits, sqlite3_column_blob(s, 2), n);
			f->gen = gen;
			f->keys = sqlite3_column_int64(s, 1);
			f->nbits = (uint64_t)n * 8;
			st->filter = f->nbits ? f : NULL;
			if (!st->filter)
				filter_free(f);
		} else {
			filter_free(f); /* only an optimisation: go on without it */
		}
	}
	sqlite3_reset(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : pobox_store_fail(st, rc, "reading the key filter");
}

/* ---- the filter over profile_keys_new ------------------------------------

   It covers the table while fresh_known = the table's rows: this process
   added every key since (a merge empties the table), or loaded them all.
   Another process's key makes the counts differ, and the filter is set
   aside until the table is empty again. */

static int fresh_valid(const struct pobox_store *st)
{
	return st->fresh && st->fresh_gen == st->filter_gen &&
	       st->fresh_known == st->keys_new + st->d.keys_new;
}

void pobox_store_keys_begin(struct pobox_store *st)
{
	if (st->fresh && st->fresh_gen == st->filter_gen && st->fresh_known == st->keys_new)
		return;
	filter_free(st->fresh);
	st->fresh = NULL;
	if (st->keys_new == 0) {
		/* empty: every key from here on is ours until told otherwise */
		int64_t cap = st->keys_main / 4 > MERGE_MIN ? st->keys_main / 4 : MERGE_MIN;
		if ((st->fresh = filter_new(cap + cap / 4))) {
			st->fresh_known = 0;
			st->fresh_gen = st->filter_gen;
		}
	}
}

void pobox_store_keys_rollback(struct pobox_store *st)
{
	/* the rolled-back keys stay set in the filter (a false maybe, no harm) */
	st->fresh_known -= st->d.keys_new;
}

/* Loads the keys of profile_keys_new into a filter, for a process that
 * looks up many profiles (another one made the table's keys). */
static void fresh_load(struct pobox_store *st)
{
	static const char sql[] = "SELECT khash FROM profile_keys_new";
	int64_t cap = st->keys_main / 4 > MERGE_MIN ? st->keys_main / 4 : MERGE_MIN;
	if (st->keys_new + st->d.keys_new > cap)
		cap = st->keys_new + st->d.keys_new;
	struct key_filter *f = filter_new(cap + cap / 4);
	sqlite3_stmt *s = f ? pobox_store_prep_raw(st, sql) : NULL;
	int64_t n = 0;
	int r = SQLITE_ERROR;
	if (s) {
		while ((r = sqlite3_step(s)) == SQLITE_ROW) {
			filter_add(f, sqlite3_column_int64(s, 0));
			n++;
		}
		sqlite3_reset(s);
	}
	if (r != SQLITE_DONE) {
		filter_free(f); /* only an optimisation */
		return;
	}
	filter_free(st->fresh);
	st->fresh = f;
	st->fresh_known = n;
	st->fresh_gen = st->filter_gen;
}

/* ---- lookups ------------------------------------------------------------ */

static const char SQL_BY_ID[] =
	"SELECT id_type, profile_id, done_seq, sent_seq "
	"FROM profiles WHERE id = ?1";
static const char SQL_BY_KEY_NEW[] =
	"SELECT p.id, p.id_type, p.profile_id, p.done_seq, p.sent_seq "
	"FROM profile_keys_new k JOIN profiles p ON p.id = k.profile WHERE k.khash = ?1";
static const char SQL_BY_KEY_MAIN[] =
	"SELECT p.id, p.id_type, p.profile_id, p.done_seq, p.sent_seq "
	"FROM profile_keys k JOIN profiles p ON p.id = k.profile WHERE k.khash = ?1";

static int same_key(sqlite3_stmt *s, int col, enum pobox_id_type t, const char *id, size_t len)
{
	return sqlite3_column_int(s, col) == (int)t && (size_t)sqlite3_column_bytes(s, col + 1) == len &&
	       memcmp(sqlite3_column_text(s, col + 1), id, len) == 0;
}

static void fill_ref(sqlite3_stmt *s, int col, struct pobox_profile_ref *ref)
{
	ref->done_seq = sqlite3_column_int64(s, col);
	ref->sent_seq = sqlite3_column_int64(s, col + 1);
}

static int by_hint(struct pobox_store *st, enum pobox_id_type t, const char *id, size_t len,
                   struct pobox_profile_ref *ref)
{
	/* the newest profile has no successor (yet) */
	if (pobox_store_in_tx(st) && st->hint + 1 >= st->next_profile + st->d.profiles)
		return 0;
	sqlite3_stmt *s = pobox_store_prep_raw(st, SQL_BY_ID);
	if (!s)
		return POBOX_EIO;
	sqlite3_bind_int64(s, 1, st->hint + 1);
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW && same_key(s, 0, t, id, len)) {
		ref->id = st->hint + 1;
		fill_ref(s, 2, ref);
	}
	sqlite3_reset(s);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : pobox_store_fail(st, rc, "finding a profile");
}

static int by_key(struct pobox_store *st, const char *sql, int64_t key, enum pobox_id_type t,
                  const char *id, size_t len, struct pobox_profile_ref *ref)
{
	sqlite3_stmt *s = pobox_store_prep_raw(st, sql);
	if (!s)
		return POBOX_EIO;
	sqlite3_bind_int64(s, 1, key);
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (same_key(s, 1, t, id, len)) {
			ref->id = sqlite3_column_int64(s, 0);
			fill_ref(s, 3, ref);
			rc = SQLITE_DONE;
			break;
		}
	}
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? 0 : pobox_store_fail(st, rc, "finding a profile");
}

/* The filter, when this process probes profile_keys often and one is
 * stored for the current generation. */
static int filter_ready(struct pobox_store *st, int64_t gen)
{
	if (st->filter && st->filter->gen == gen)
		return 1;
	if (++st->main_probes < FILTER_LOAD_AFTER || st->main_probes % FILTER_LOAD_AFTER)
		return 0; /* retried now and then: a merge may have stored one */
	return filter_load(st, gen) == 0 && st->filter;
}

static int current_gen(struct pobox_store *st, int64_t *gen)
{
	if (pobox_store_in_tx(st)) {
		*gen = st->filter_gen;
		return 0;
	}
	return pobox_store_one(st, "SELECT key_filter_gen FROM tallies", "reading the tallies", 0, NULL,
	                       gen, NULL);
}

int pobox_store_profile_find(struct pobox_store *st, enum pobox_id_type t, const char *id,
                             size_t len, struct pobox_profile_ref *ref)
{
	int64_t key, gen = 0;
	int rc = 0; /* two of the ways to `out` set none */
	memset(ref, 0, sizeof *ref);
	if (st->hint > 0 && ((rc = by_hint(st, t, id, len, ref)) != 0 || ref->id))
		goto out;
	key = pobox_khash((int)t, id, len);
	if ((ref->id = pobox_store_append_find(st, key, (int)t, id, len)) != 0)
		goto out; /* created by this transaction */
	if (pobox_store_in_tx(st) && !fresh_valid(st) && ++st->fresh_probes % FILTER_LOAD_AFTER == 0)
		fresh_load(st);
	if (!(pobox_store_in_tx(st) && fresh_valid(st) && !filter_has(st->fresh, key)) &&
	    ((rc = by_key(st, SQL_BY_KEY_NEW, key, t, id, len, ref)) != 0 || ref->id))
		goto out;
	if (pobox_store_in_tx(st) && st->keys_main == 0)
		goto out; /* nothing merged yet */
	if ((rc = current_gen(st, &gen)) != 0)
		goto out;
	if (filter_ready(st, gen) && !filter_has(st->filter, key))
		goto out;
	rc = by_key(st, SQL_BY_KEY_MAIN, key, t, id, len, ref);
out:
	if (rc == 0 && ref->id)
		st->hint = ref->id;
	return rc;
}

/* ---- new profiles -------------------------------------------------------- */

int pobox_store_profile_create(struct pobox_store *st, enum pobox_id_type t, const char *id,
                               size_t len, int64_t last_write, int64_t *out)
{
	int rc = pobox_store_need_tx(st, "creating a profile");
	if (rc)
		return rc;
	int64_t pid = st->next_profile + st->d.profiles;
	if ((rc = pobox_store_append_profile(st, pid, (int)t, id, len, pobox_khash((int)t, id, len),
	                                     last_write)) != 0)
		return rc;
	if (fresh_valid(st)) {
		filter_add(st->fresh, pobox_khash((int)t, id, len));
		st->fresh_known++;
	}
	st->d.profiles++;
	st->d.keys_new++;
	st->d.dirty = 1;
	st->hint = pid;
	*out = pid;
	return 0;
}

/* ---- merging ------------------------------------------------------------- */

/* Adds the keys of profile_keys_new to a filter sized for `keys` (made
 * anew, from every key, when the stored one is too small). */
static int filter_update(struct pobox_store *st, int64_t keys, int64_t gen)
{
	static const char all[] = "SELECT khash FROM profile_keys";
	static const char added[] = "SELECT khash FROM profile_keys_new";
	static const char save[] =
		"INSERT INTO key_filter (one, gen, keys, bits) VALUES (1, ?1, ?2, ?3) "
		"ON CONFLICT (one) DO UPDATE SET gen = ?1, keys = ?2, bits = ?3";
	int rc = 0, r;
	const char *from = added;
	if (!st->filter || st->filter->gen != st->filter_gen) {
		if ((rc = filter_load(st, st->filter_gen)) != 0)
			return rc;
	}
	if (!st->filter || st->filter->keys < keys) {
		filter_free(st->filter);
		if (!(st->filter = filter_new(keys + keys / 2)))
			return 0; /* no memory: no filter, lookups probe the table */
		from = all;   /* called before the merge: all = the old keys, then added */
	}
	for (int pass = 0; pass < (from == all ? 2 : 1); pass++) {
		sqlite3_stmt *s = pobox_store_prep(st, pass == 0 ? from : added);
		if (!s)
			return POBOX_EIO;
		while ((r = sqlite3_step(s)) == SQLITE_ROW)
			filter_add(st->filter, sqlite3_column_int64(s, 0));
		sqlite3_reset(s);
		if (r != SQLITE_DONE)
			return pobox_store_fail(st, r, "building the key filter");
	}
	st->filter->gen = gen;
	sqlite3_stmt *s = pobox_store_prep(st, save);
	if (!s)
		return POBOX_EIO;
	sqlite3_bind_int64(s, 1, gen);
	sqlite3_bind_int64(s, 2, st->filter->keys);
	sqlite3_bind_blob64(s, 3, st->filter->bits, st->filter->nbits / 8, SQLITE_STATIC);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_DONE ? 0 : pobox_store_fail(st, rc, "storing the key filter");
}

int pobox_store_keys_maybe_merge(struct pobox_store *st)
{
	static const char merge[] =
		"INSERT INTO profile_keys (khash, profile) SELECT khash, profile FROM profile_keys_new";
	static const char clear[] = "DELETE FROM profile_keys_new";
	static const char count[] =
		"UPDATE tallies SET keys_main = keys_main + ?1, keys_new = keys_new - ?1,"
		" key_filter_gen = ?2";
	int64_t fresh = st->keys_new + st->d.keys_new;
	int64_t limit = st->keys_main / 4 > MERGE_MIN ? st->keys_main / 4 : MERGE_MIN;
	if (fresh <= limit)
		return 0;
	int64_t gen = st->filter_gen + 1;
	int rc = filter_update(st, st->keys_main + fresh, gen);
	if (rc == 0)
		rc = pobox_store_run(st, merge, "merging profile keys", 0, NULL, 0, NULL);
	if (rc == 0)
		rc = pobox_store_run(st, clear, "merging profile keys", 0, NULL, 0, NULL);
	int64_t a[2] = {fresh, gen};
	if (rc == 0)
		rc = pobox_store_run(st, count, "merging profile keys", 2, a, 0, NULL);
	if (rc == 0) {
		st->keys_main += fresh;
		st->keys_new = -st->d.keys_new; /* so that keys_new + d.keys_new = 0 */
		st->filter_gen = gen;
	} else {
		filter_free(st->filter); /* it may hold keys the rollback removes */
		st->filter = NULL;
	}
	return rc;
}
