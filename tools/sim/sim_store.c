/*
 * sim_store -- sharded profile store with the v2 override rule (see
 * sim_store.h).
 *
 * Layout: SHARDS independent hash tables, each behind its own mutex.  A
 * profile is one allocation (header + id) plus two packed records:
 *
 *   record := entry*      entry := name_id u32 | len u32 | mod_ms i64 | bytes
 *
 * `committed` holds merged values; `overlay` holds what the last v2 batch
 * (overlay_batch) set while the override rule is pending.  Both are small,
 * so lookups scan them linearly; a profile is capped at 64 KB by Target,
 * which keeps the scans short for honest data.
 *
 * The name table is global (names are shared by every profile) behind a
 * rwlock: readers are every update, writers only the first use of a name.
 */
#include "sim_store.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "sim_clock.h"

#define SHARDS 64
#define ENTRY_HDR 16

struct record {
	char *p;
	size_t len;
};

struct profile {
	struct profile *next;
	uint64_t hash;
	uint64_t overlay_batch;   /* 0: no pending overlay */
	int64_t modified_ms;
	struct record committed;
	struct record overlay;
	uint8_t id_type;
	size_t id_len;
	char id[];
};

struct shard {
	pthread_mutex_t lock;
	struct profile **buckets;
	size_t n_buckets;
	size_t count;
};

static struct shard shards[SHARDS];

/* Interned names: id -> string, and an open-addressing index string -> id. */
static pthread_rwlock_t names_lock = PTHREAD_RWLOCK_INITIALIZER;
static char **names;
static size_t *name_lens;
static size_t n_names, cap_names;
static uint32_t *name_index;      /* slots hold id+1; 0 = empty */
static size_t n_index;

static uint64_t hash_bytes(uint64_t h, const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static uint64_t hash_id(enum sim_id_type type, const char *id, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL ^ (uint64_t)type;

	h = hash_bytes(h, id, len);
	/* FNV is weak in its low bits for short keys; mix before masking. */
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ULL;
	return h ^ (h >> 32);
}

const char *sim_id_type_name(enum sim_id_type t)
{
	return t == SIM_ID_PCID ? "pcId" : "thirdPartyId";
}

int sim_store_init(void)
{
	size_t i;

	for (i = 0; i < SHARDS; i++) {
		pthread_mutex_init(&shards[i].lock, NULL);
		shards[i].n_buckets = 64;
		shards[i].buckets = calloc(64, sizeof(struct profile *));
		if (!shards[i].buckets)
			return -1;
	}
	return 0;
}

static void free_profile(struct profile *p)
{
	free(p->committed.p);
	free(p->overlay.p);
	free(p);
}

static void clear_shard(struct shard *s)
{
	size_t b;

	for (b = 0; b < s->n_buckets; b++) {
		struct profile *p = s->buckets[b], *nx;

		for (; p; p = nx) {
			nx = p->next;
			free_profile(p);
		}
		s->buckets[b] = NULL;
	}
	s->count = 0;
}

void sim_store_reset(void)
{
	size_t i;

	for (i = 0; i < SHARDS; i++) {
		pthread_mutex_lock(&shards[i].lock);
		clear_shard(&shards[i]);
		pthread_mutex_unlock(&shards[i].lock);
	}
}

void sim_store_destroy(void)
{
	size_t i;

	for (i = 0; i < SHARDS; i++) {
		clear_shard(&shards[i]);
		free(shards[i].buckets);
		shards[i].buckets = NULL;
		pthread_mutex_destroy(&shards[i].lock);
	}
	for (i = 0; i < n_names; i++)
		free(names[i]);
	free(names);
	free(name_lens);
	free(name_index);
	names = NULL;
	name_lens = NULL;
	name_index = NULL;
	n_names = cap_names = n_index = 0;
}

/* ---- names ---------------------------------------------------------- */

static uint32_t index_find(const char *name, size_t len, uint64_t h)
{
	size_t i;

	if (!n_index)
		return SIM_NAME_NONE;
	for (i = h & (n_index - 1);; i = (i + 1) & (n_index - 1)) {
		uint32_t slot = name_index[i];

		if (!slot)
			return SIM_NAME_NONE;
		if (name_lens[slot - 1] == len && memcmp(names[slot - 1], name, len) == 0)
			return slot - 1;
	}
}

static int index_rebuild(size_t size)
{
	uint32_t *idx = calloc(size, sizeof(*idx));
	size_t k, i;

	if (!idx)
		return -1;
	for (k = 0; k < n_names; k++) {
		uint64_t h = hash_bytes(0xcbf29ce484222325ULL, names[k], name_lens[k]);

		for (i = h & (size - 1); idx[i]; i = (i + 1) & (size - 1))
			;
		idx[i] = (uint32_t)k + 1;
	}
	free(name_index);
	name_index = idx;
	n_index = size;
	return 0;
}

uint32_t sim_store_intern(const char *name, size_t len)
{
	uint64_t h = hash_bytes(0xcbf29ce484222325ULL, name, len);
	uint32_t id;
	char *copy = NULL;

	pthread_rwlock_rdlock(&names_lock);
	id = index_find(name, len, h);
	pthread_rwlock_unlock(&names_lock);
	if (id != SIM_NAME_NONE)
		return id;

	pthread_rwlock_wrlock(&names_lock);
	id = index_find(name, len, h);
	if (id != SIM_NAME_NONE)
		goto out;
	if (n_names >= UINT32_MAX - 2)
		goto out;
	if (n_names == cap_names) {
		size_t nc = cap_names ? cap_names * 2 : 64;
		char **nn = realloc(names, nc * sizeof(*nn));
		size_t *nl;

		if (!nn)
			goto out;
		names = nn;
		nl = realloc(name_lens, nc * sizeof(*nl));
		if (!nl)
			goto out;
		name_lens = nl;
		cap_names = nc;
	}
	if ((n_names + 1) * 2 > n_index && index_rebuild(n_index ? n_index * 2 : 128))
		goto out;
	copy = malloc(len + 1);
	if (!copy)
		goto out;
	memcpy(copy, name, len);
	copy[len] = '\0';
	names[n_names] = copy;
	name_lens[n_names] = len;
	{
		size_t i;

		for (i = h & (n_index - 1); name_index[i]; i = (i + 1) & (n_index - 1))
			;
		name_index[i] = (uint32_t)n_names + 1;
	}
	id = (uint32_t)n_names++;
out:
	pthread_rwlock_unlock(&names_lock);
	return id;
}

/* Borrowed name; valid for the life of the process (names are never freed
 * before sim_store_destroy()). */
static const char *name_of(uint32_t id, size_t *len)
{
	const char *s;

	pthread_rwlock_rdlock(&names_lock);
	s = names[id];
	*len = name_lens[id];
	pthread_rwlock_unlock(&names_lock);
	return s;
}

/* ---- packed records ------------------------------------------------- */

struct entry {
	uint32_t name_id;
	uint32_t len;
	int64_t mod_ms;
	const char *value;
	size_t off;       /* of the entry header in the record */
};

static int rec_next(const struct record *r, size_t *pos, struct entry *e)
{
	if (*pos + ENTRY_HDR > r->len)
		return 0;
	memcpy(&e->name_id, r->p + *pos, 4);
	memcpy(&e->len, r->p + *pos + 4, 4);
	memcpy(&e->mod_ms, r->p + *pos + 8, 8);
	e->value = r->p + *pos + ENTRY_HDR;
	e->off = *pos;
	*pos += ENTRY_HDR + e->len;
	return 1;
}

static int rec_find(const struct record *r, uint32_t name_id, struct entry *e)
{
	size_t pos = 0;

	while (rec_next(r, &pos, e))
		if (e->name_id == name_id)
			return 1;
	return 0;
}

static void rec_remove(struct record *r, const struct entry *e)
{
	size_t sz = ENTRY_HDR + e->len;

	memmove(r->p + e->off, r->p + e->off + sz, r->len - e->off - sz);
	r->len -= sz;
}

/* Set name_id to value; replaces in place when the length is unchanged
 * (the hot path of repeated single updates). */
static int rec_set(struct record *r, uint32_t name_id, const char *v, size_t vlen,
                   int64_t mod_ms)
{
	struct entry e;
	uint32_t len32 = (uint32_t)vlen;
	char *np;

	if (vlen > UINT32_MAX)
		return -1;
	if (rec_find(r, name_id, &e)) {
		if (e.len == vlen) {
			memcpy(r->p + e.off + 8, &mod_ms, 8);
			memcpy(r->p + e.off + ENTRY_HDR, v, vlen);
			return 0;
		}
		rec_remove(r, &e);
	}
	np = realloc(r->p, r->len + ENTRY_HDR + vlen);
	if (!np)
		return -1;
	r->p = np;
	memcpy(r->p + r->len, &name_id, 4);
	memcpy(r->p + r->len + 4, &len32, 4);
	memcpy(r->p + r->len + 8, &mod_ms, 8);
	memcpy(r->p + r->len + ENTRY_HDR, v, vlen);
	r->len += ENTRY_HDR + vlen;
	return 0;
}

static void rec_free(struct record *r)
{
	free(r->p);
	r->p = NULL;
	r->len = 0;
}

/* Merge the pending overlay into committed values. */
static int commit_overlay(struct profile *p)
{
	size_t pos = 0;
	struct entry e;

	while (rec_next(&p->overlay, &pos, &e))
		if (rec_set(&p->committed, e.name_id, e.value, e.len, e.mod_ms))
			return -1;
	rec_free(&p->overlay);
	p->overlay_batch = 0;
	return 0;
}

/* ---- lookup --------------------------------------------------------- */

static struct shard *shard_of(uint64_t h)
{
	return &shards[(h >> 58) % SHARDS];
}

static struct profile *find(struct shard *s, uint64_t h, enum sim_id_type type,
                            const char *id, size_t len)
{
	struct profile *p = s->buckets[h & (s->n_buckets - 1)];

	for (; p; p = p->next)
		if (p->hash == h && p->id_type == type && p->id_len == len &&
		    memcmp(p->id, id, len) == 0)
			return p;
	return NULL;
}

static void maybe_grow(struct shard *s)
{
	size_t nb = s->n_buckets * 2, b;
	struct profile **nbk;

	if (s->count <= s->n_buckets)
		return;
	nbk = calloc(nb, sizeof(*nbk));
	if (!nbk)
		return;  /* longer chains, still correct */
	for (b = 0; b < s->n_buckets; b++) {
		struct profile *p = s->buckets[b], *nx;

		for (; p; p = nx) {
			nx = p->next;
			p->next = nbk[p->hash & (nb - 1)];
			nbk[p->hash & (nb - 1)] = p;
		}
	}
	free(s->buckets);
	s->buckets = nbk;
	s->n_buckets = nb;
}

static struct profile *create(struct shard *s, uint64_t h, enum sim_id_type type,
                              const char *id, size_t len, int64_t now_ms)
{
	struct profile *p = calloc(1, sizeof(*p) + len + 1);

	if (!p)
		return NULL;
	p->hash = h;
	p->id_type = (uint8_t)type;
	p->id_len = len;
	memcpy(p->id, id, len);
	p->modified_ms = now_ms;
	p->next = s->buckets[h & (s->n_buckets - 1)];
	s->buckets[h & (s->n_buckets - 1)] = p;
	s->count++;
	maybe_grow(s);
	return p;
}

int sim_store_apply(enum sim_id_type type, const char *id, size_t id_len,
                    const struct sim_kv *kv, size_t n, enum sim_apply_mode mode,
                    uint64_t batch_seq, int override_on, int64_t now_ms,
                    struct sim_apply_result *res)
{
	uint64_t h = hash_id(type, id, id_len);
	struct shard *s = shard_of(h);
	struct profile *p;
	struct record *target;
	size_t i;
	int rc = -1;

	memset(res, 0, sizeof(*res));
	pthread_mutex_lock(&s->lock);
	p = find(s, h, type, id, id_len);
	res->found = p != NULL;
	if (!p) {
		if (mode == SIM_APPLY_SINGLE || mode == SIM_APPLY_V1) {
			rc = 0;  /* not found: nothing to do, never created */
			goto out;
		}
		p = create(s, h, type, id, id_len, now_ms);
		if (!p)
			goto out;
		res->created = 1;
	}
	if (mode == SIM_APPLY_V2 && override_on) {
		if (p->overlay_batch && p->overlay_batch != batch_seq) {
			/* Consecutive v2 batches, no visit between: what only
			 * the earlier batch set is lost. */
			size_t pos = 0;
			struct entry e;

			while (rec_next(&p->overlay, &pos, &e)) {
				int also_set = 0;

				for (i = 0; i < n; i++)
					if (kv[i].name_id == e.name_id)
						also_set = 1;
				if (!also_set)
					res->attrs_lost++;
			}
			rec_free(&p->overlay);
		}
		p->overlay_batch = batch_seq;
		target = &p->overlay;
	} else {
		if (commit_overlay(p))
			goto out;
		target = &p->committed;
	}
	for (i = 0; i < n; i++)
		if (rec_set(target, kv[i].name_id, kv[i].value, kv[i].value_len, now_ms))
			goto out;
	p->modified_ms = now_ms;
	rc = 0;
out:
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int sim_store_visit(enum sim_id_type type, const char *id, size_t id_len, int64_t now_ms)
{
	uint64_t h = hash_id(type, id, id_len);
	struct shard *s = shard_of(h);
	struct profile *p;
	int rc = -1;

	pthread_mutex_lock(&s->lock);
	p = find(s, h, type, id, id_len);
	if (!p)
		p = create(s, h, type, id, id_len, now_ms);
	if (!p || commit_overlay(p))
		goto out;
	rc = 0;
out:
	pthread_mutex_unlock(&s->lock);
	return rc;
}

size_t sim_store_count(void)
{
	size_t i, total = 0;

	for (i = 0; i < SHARDS; i++) {
		pthread_mutex_lock(&shards[i].lock);
		total += shards[i].count;
		pthread_mutex_unlock(&shards[i].lock);
	}
	return total;
}

/* ---- output --------------------------------------------------------- */

struct view_item {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
	int64_t mod_ms;
};

static int cmp_view(const void *a, const void *b)
{
	const struct view_item *x = a, *y = b;
	size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
	int c = memcmp(x->name, y->name, n);

	if (c)
		return c;
	return (x->name_len > y->name_len) - (x->name_len < y->name_len);
}

/* The visible attributes of p (overlay over committed), sorted by name.
 * *items is caller-freed.  Returns the count, or -1. */
static long visible(const struct profile *p, struct view_item **items)
{
	size_t cap = 0, n = 0, pos;
	struct entry e;
	struct view_item *v;

	pos = 0;
	while (rec_next(&p->committed, &pos, &e))
		cap++;
	pos = 0;
	while (rec_next(&p->overlay, &pos, &e))
		cap++;
	v = calloc(cap ? cap : 1, sizeof(*v));
	if (!v)
		return -1;
	pos = 0;
	while (rec_next(&p->overlay, &pos, &e)) {
		v[n].name = name_of(e.name_id, &v[n].name_len);
		v[n].value = e.value;
		v[n].value_len = e.len;
		v[n].mod_ms = e.mod_ms;
		n++;
	}
	pos = 0;
	while (rec_next(&p->committed, &pos, &e)) {
		struct entry dummy;

		if (rec_find(&p->overlay, e.name_id, &dummy))
			continue;
		v[n].name = name_of(e.name_id, &v[n].name_len);
		v[n].value = e.value;
		v[n].value_len = e.len;
		v[n].mod_ms = e.mod_ms;
		n++;
	}
	qsort(v, n, sizeof(*v), cmp_view);
	*items = v;
	return (long)n;
}

int sim_store_fetch_json(enum sim_id_type type, const char *id, size_t id_len,
                         const char *client, struct sim_buf *out)
{
	uint64_t h = hash_id(type, id, id_len);
	struct shard *s = shard_of(h);
	struct profile *p;
	struct view_item *v = NULL;
	long n, i;
	char ts[40];
	int rc = -1;

	pthread_mutex_lock(&s->lock);
	p = find(s, h, type, id, id_len);
	if (!p) {
		rc = 0;
		goto out;
	}
	n = visible(p, &v);
	if (n < 0)
		goto out;
	sim_buf_adds(out, "{\"client\":");
	sim_buf_add_json(out, client, strlen(client));
	sim_buf_adds(out, ",\"visitorId\":");
	sim_buf_add_json(out, p->id, p->id_len);
	sim_clock_iso_offset(p->modified_ms, ts, sizeof(ts));
	sim_buf_printf(out, ",\"modifiedAt\":\"%s\",\"profileAttributes\":{", ts);
	for (i = 0; i < n; i++) {
		if (i)
			sim_buf_addc(out, ',');
		sim_buf_add_json(out, v[i].name, v[i].name_len);
		sim_buf_adds(out, ":{\"value\":");
		sim_buf_add_json(out, v[i].value, v[i].value_len);
		sim_clock_iso_offset(v[i].mod_ms, ts, sizeof(ts));
		sim_buf_printf(out, ",\"modifiedAt\":\"%s\"}", ts);
	}
	sim_buf_adds(out, "}}");
	rc = out->failed ? -1 : 1;
out:
	pthread_mutex_unlock(&s->lock);
	free(v);
	return rc;
}

static int cmp_profile(const void *a, const void *b)
{
	const struct profile *x = *(const struct profile *const *)a;
	const struct profile *y = *(const struct profile *const *)b;
	size_t n;
	int c;

	/* "pcId" sorts before "thirdPartyId", as the names do. */
	if (x->id_type != y->id_type)
		return x->id_type < y->id_type ? -1 : 1;
	n = x->id_len < y->id_len ? x->id_len : y->id_len;
	c = memcmp(x->id, y->id, n);
	if (c)
		return c;
	return (x->id_len > y->id_len) - (x->id_len < y->id_len);
}

int sim_store_dump_json(struct sim_buf *out)
{
	struct profile **all = NULL;
	size_t i, b, total = 0, k = 0;
	int rc = -1;

	/* Lock every shard (always in index order, so no deadlock) to show
	 * one consistent snapshot. */
	for (i = 0; i < SHARDS; i++) {
		pthread_mutex_lock(&shards[i].lock);
		total += shards[i].count;
	}
	all = malloc((total ? total : 1) * sizeof(*all));
	if (!all)
		goto out;
	for (i = 0; i < SHARDS; i++)
		for (b = 0; b < shards[i].n_buckets; b++) {
			struct profile *p = shards[i].buckets[b];

			for (; p; p = p->next)
				all[k++] = p;
		}
	qsort(all, total, sizeof(*all), cmp_profile);
	sim_buf_adds(out, "{\"profiles\":[");
	for (i = 0; i < total; i++) {
		struct view_item *v = NULL;
		long n = visible(all[i], &v), j;

		if (n < 0)
			goto out;
		if (i)
			sim_buf_addc(out, ',');
		sim_buf_printf(out, "{\"idType\":\"%s\",\"id\":",
		               sim_id_type_name((enum sim_id_type)all[i]->id_type));
		sim_buf_add_json(out, all[i]->id, all[i]->id_len);
		sim_buf_adds(out, ",\"attributes\":{");
		for (j = 0; j < n; j++) {
			if (j)
				sim_buf_addc(out, ',');
			sim_buf_add_json(out, v[j].name, v[j].name_len);
			sim_buf_addc(out, ':');
			sim_buf_add_json(out, v[j].value, v[j].value_len);
		}
		sim_buf_adds(out, "}}");
		free(v);
		if (out->failed)
			goto out;
	}
	sim_buf_adds(out, "]}");
	rc = out->failed ? -1 : 0;
out:
	for (i = 0; i < SHARDS; i++)
		pthread_mutex_unlock(&shards[i].lock);
	free(all);
	return rc;
}
