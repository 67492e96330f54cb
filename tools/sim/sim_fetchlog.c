/*
 * sim_fetchlog -- the fetch arrival ring (see sim_fetchlog.h).
 */
#include "sim_fetchlog.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "sim_clock.h"

#define ID_KEEP 96

struct fetch {
	int64_t real_ms;
	int64_t sim_ms;
	uint8_t id_type;
	uint8_t id_len;
	uint16_t status;
	char id[ID_KEEP];
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct fetch ring[SIM_FETCHLOG_KEEP];
static size_t next;        /* total added; ring slot = next % KEEP */

void sim_fetchlog_add(int64_t real_ms, int64_t sim_ms, enum sim_id_type type, const char *id,
                      size_t id_len, unsigned status)
{
	struct fetch *f;

	pthread_mutex_lock(&lock);
	f = &ring[next++ % SIM_FETCHLOG_KEEP];
	f->real_ms = real_ms;
	f->sim_ms = sim_ms;
	f->id_type = (uint8_t)type;
	f->id_len = (uint8_t)(id_len < ID_KEEP ? id_len : ID_KEEP);
	memcpy(f->id, id, f->id_len);
	f->status = (uint16_t)status;
	pthread_mutex_unlock(&lock);
}

/* The ring in the order added: element i of kept (lock held). */
static const struct fetch *at(size_t i, size_t kept)
{
	return &ring[(next - kept + i) % SIM_FETCHLOG_KEEP];
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* The most arrivals within any window_ms (lock held). */
static size_t busiest(size_t kept, int64_t window_ms, int64_t *first, int64_t *last)
{
	static int64_t t[SIM_FETCHLOG_KEEP];   /* under the lock */
	size_t i, lo = 0, best = 0;

	for (i = 0; i < kept; i++)
		t[i] = at(i, kept)->real_ms;
	qsort(t, kept, sizeof(t[0]), cmp_i64);
	for (i = 0; i < kept; i++) {
		while (t[i] - t[lo] >= window_ms)
			lo++;
		if (i - lo + 1 > best)
			best = i - lo + 1;
	}
	*first = kept ? t[0] : 0;
	*last = kept ? t[kept - 1] : 0;
	return best;
}

int sim_fetchlog_json(struct sim_buf *out, int64_t window_ms, int list)
{
	size_t kept, i, best;
	int64_t first, last;
	char ts[40];

	pthread_mutex_lock(&lock);
	kept = next < SIM_FETCHLOG_KEEP ? next : SIM_FETCHLOG_KEEP;
	best = busiest(kept, window_ms > 0 ? window_ms : 1, &first, &last);
	sim_buf_printf(out, "{\"count\":%zu,\"kept\":%zu,\"window_ms\":%lld,\"max_in_window\":%zu", next,
	               kept, (long long)window_ms, best);
	if (kept)
		sim_buf_printf(out, ",\"first_real_ms\":%lld,\"last_real_ms\":%lld", (long long)first,
		               (long long)last);
	if (list) {
		sim_buf_adds(out, ",\"fetches\":[");
		for (i = 0; i < kept; i++) {
			const struct fetch *f = at(i, kept);

			sim_clock_iso(f->sim_ms, ts, sizeof(ts));
			sim_buf_printf(out, "%s{\"real_ms\":%lld,\"at\":\"%s\",\"id_type\":\"%s\",\"id\":",
			               i ? "," : "", (long long)f->real_ms, ts,
			               sim_id_type_name((enum sim_id_type)f->id_type));
			sim_buf_add_json(out, f->id, f->id_len);
			sim_buf_printf(out, ",\"status\":%u}", f->status);
		}
		sim_buf_adds(out, "]");
	}
	sim_buf_adds(out, "}");
	pthread_mutex_unlock(&lock);
	return out->failed ? -1 : 0;
}

void sim_fetchlog_reset(void)
{
	pthread_mutex_lock(&lock);
	next = 0;
	pthread_mutex_unlock(&lock);
}
