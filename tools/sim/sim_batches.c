/*
 * sim_batches -- batch registry and processing (see sim_batches.h).
 *
 * Locks: `reg_lock` guards the list and every batch's status fields, and is
 * only ever held briefly.  `proc_lock` serialises processing runs, so rows
 * are applied outside reg_lock (a 500,000-row batch does not stall status
 * polls of other batches) and two runs never apply the same batch.  Order:
 * proc_lock before reg_lock.
 */
#include "sim_batches.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim_clock.h"
#include "sim_counters.h"
#include "sim_rng.h"
#include "sim_store.h"

enum { B_PENDING, B_CLAIMED, B_COMPLETE, B_STUCK };

struct batch {
	struct batch *next;        /* submission order */
	uint64_t seq;
	char id[128];
	char client[64];
	int version;
	int state;
	int stuck;                 /* decided at submit, revealed when due */
	int visible;               /* status still retrievable */
	int64_t submitted_ms;      /* simulated epoch ms */
	int64_t ready_ms;
	size_t batch_size;
	size_t consumed, successful, not_found, failed;
	struct sim_buf failed_ids; /* NUL-separated decoded ids (v2) */
	struct sim_batch_parse parse;
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t proc_lock = PTHREAD_MUTEX_INITIALIZER;
static struct batch *head, *tail;
static uint64_t next_seq = 1;

static pthread_t ticker;
static int ticker_running;
static pthread_mutex_t stop_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stop_cond = PTHREAD_COND_INITIALIZER;
static int stop_flag;

static void free_batch(struct batch *b)
{
	sim_batch_parse_free(&b->parse);
	sim_buf_free(&b->failed_ids);
	free(b);
}

/* Drop batches nobody can see or will apply.  reg_lock held. */
static void collect(int64_t now_ms)
{
	const struct sim_config *cfg = sim_config_current();
	struct batch **pp = &head, *b;

	tail = NULL;
	while ((b = *pp)) {
		if (b->visible && now_ms - b->submitted_ms >= cfg->status_ttl_s * 1000)
			b->visible = 0;
		if (!b->visible && b->state != B_PENDING && b->state != B_CLAIMED) {
			*pp = b->next;
			free_batch(b);
			continue;
		}
		tail = b;
		pp = &b->next;
	}
}

/* Keep only the newest status_keep statuses of `client`.  reg_lock held. */
static void evict(const char *client, int64_t keep)
{
	struct batch *b;
	int64_t n = 0;

	for (b = head; b; b = b->next)
		if (b->visible && !strcmp(b->client, client))
			n++;
	for (b = head; b && n > keep; b = b->next)
		if (b->visible && !strcmp(b->client, client)) {
			b->visible = 0;
			n--;
		}
}

int sim_batches_submit(struct sim_batch_parse *parse, const char *client, int version,
                       const struct sim_config *cfg, char *id_out, size_t id_len)
{
	struct batch *b = calloc(1, sizeof(*b));
	int64_t now = sim_clock_now_ms();

	if (!b)
		return -1;
	b->parse = *parse;
	memset(parse, 0, sizeof(*parse));
	snprintf(b->client, sizeof(b->client), "%s", client);
	b->version = version;
	b->visible = 1;
	b->submitted_ms = now;
	b->ready_ms = now + cfg->process_delay_ms;
	b->batch_size = b->parse.n_rows;
	b->stuck = cfg->stuck_rate > 0 && sim_rng_unit() < cfg->stuck_rate;
	sim_buf_init(&b->failed_ids, 0);
	sim_counters_add(SIM_ST_BATCHES_ACCEPTED, 1);
	sim_counters_add(SIM_ST_ROWS_RECEIVED, b->batch_size);

	pthread_mutex_lock(&reg_lock);
	b->seq = next_seq++;
	snprintf(b->id, sizeof(b->id), "%s-%lld-%llu", client, (long long)now,
	         (unsigned long long)b->seq);
	if (tail)
		tail->next = b;
	else
		head = b;
	tail = b;
	evict(client, cfg->status_keep);
	snprintf(id_out, id_len, "%s", b->id);
	pthread_mutex_unlock(&reg_lock);
	/* No delay and no shuffling: "at once" means before the answer, so
	 * a later single update can never be overtaken by this batch. */
	if (cfg->process_delay_ms == 0 && cfg->shuffle_window_ms == 0)
		sim_batches_process_due();
	return 0;
}

static int id_has_forbidden(const char *id, size_t len)
{
	return memchr(id, '+', len) || memchr(id, '/', len);
}

/* Apply every row of b.  Runs without reg_lock; b is CLAIMED so nobody
 * else touches its rows. */
static void apply_batch(struct batch *b, int override_on)
{
	struct sim_batch_parse *p = &b->parse;
	size_t max_cells = p->n_attrs + 1, pos = 0;
	const char **cells = calloc(max_cells, sizeof(*cells));
	size_t *lens = calloc(max_cells, sizeof(*lens));
	uint32_t *ids = calloc(max_cells, sizeof(*ids));
	struct sim_kv *kv = calloc(max_cells, sizeof(*kv));
	struct sim_buf scratch;
	int64_t now = sim_clock_now_ms();
	size_t i;

	sim_buf_init(&scratch, 0);
	if (!cells || !lens || !ids || !kv)
		goto out;
	for (i = 0; i < p->n_attrs; i++)
		ids[i] = p->attr_names[i] ? sim_store_intern(p->attr_names[i], p->attr_name_lens[i])
		                          : SIM_NAME_NONE;
	while (pos < p->rows.len) {
		const char *line = p->rows.data + pos;
		const char *nl = memchr(line, '\n', p->rows.len - pos);
		size_t len = nl ? (size_t)(nl - line) : p->rows.len - pos, n_cells, extra, n_kv = 0;
		struct sim_apply_result res;
		int raw_bad, bad = 0;

		pos += len + 1;
		while (len && line[len - 1] == '\r')
			len--;
		if (!len)
			continue;
		b->consumed++;
		if (sim_batch_row_parse(line, len, &scratch, cells, lens, max_cells, &n_cells,
		                        &extra, &raw_bad))
			bad = 1;
		else if (lens[0] == 0 || extra)
			bad = 1;
		else if (p->id_type == SIM_ID_THIRDPARTY &&
		         (raw_bad || id_has_forbidden(cells[0], lens[0]) || lens[0] > 256))
			bad = 1;
		if (bad) {
			b->failed++;
			sim_counters_add(SIM_ST_ROWS_FAILED, 1);
			if (b->version == 2 && !scratch.failed) {
				/* The id as the client sent it, decoded. */
				sim_buf_add(&b->failed_ids, n_cells ? cells[0] : "",
				            n_cells ? lens[0] : 0);
				sim_buf_addc(&b->failed_ids, '\0');
			}
			continue;
		}
		for (i = 1; i < n_cells; i++)
			if (lens[i] && ids[i - 1] != SIM_NAME_NONE) {
				kv[n_kv].name_id = ids[i - 1];
				kv[n_kv].value = cells[i];
				kv[n_kv].value_len = lens[i];
				n_kv++;
			}
		if (!n_kv) {
			/* Only empty values: Target skips the row entirely. */
			b->successful++;
			sim_counters_add(SIM_ST_ROWS_SKIPPED_EMPTY, 1);
			continue;
		}
		if (sim_store_apply(p->id_type, cells[0], lens[0], kv, n_kv,
		                    b->version == 2 ? SIM_APPLY_V2 : SIM_APPLY_V1, b->seq,
		                    override_on, now, &res)) {
			b->failed++;
			sim_counters_add(SIM_ST_ROWS_FAILED, 1);
			continue;
		}
		if (!res.found && !res.created) {
			b->not_found++;
			sim_counters_add(SIM_ST_ROWS_NOT_FOUND, 1);
			continue;
		}
		b->successful++;
		sim_counters_add(SIM_ST_ROWS_APPLIED, 1);
		if (res.attrs_lost) {
			sim_counters_add(SIM_ST_ROWS_LOST_TO_OVERRIDE, 1);
			sim_counters_add(SIM_ST_ATTRS_LOST_TO_OVERRIDE, res.attrs_lost);
		}
	}
out:
	free(cells);
	free(lens);
	free(ids);
	free(kv);
	sim_buf_free(&scratch);
}

/*
 * One processing run.  force: everything pending is due.  Returns how many
 * batches were finished.  proc_lock held by the caller.
 */
static size_t run(int force)
{
	const struct sim_config *cfg = sim_config_current();
	int64_t now = sim_clock_now_ms(), window = cfg->shuffle_window_ms;
	struct batch **due = NULL, *b;
	size_t n = 0, cap = 0, i, start;

	pthread_mutex_lock(&reg_lock);
	collect(now);
	for (b = head; b; b = b->next)
		if (b->state == B_PENDING)
			cap++;
	if (cap)
		due = calloc(cap, sizeof(*due));
	/*
	 * Walk pending batches in submission order.  The first pending batch
	 * opens a shuffle group of everything submitted within `window` of
	 * it; the group is due once the window has closed and each member's
	 * own delay has passed.  Groups are taken in order and we stop at the
	 * first one not due, so later batches never overtake earlier groups.
	 */
	if (due) {
		b = head;
		while (b) {
			struct batch *g = NULL, *c;
			int ok = 1;
			size_t before = n;

			while (b && b->state != B_PENDING)
				b = b->next;
			if (!b)
				break;
			g = b;
			if (!force && window > 0 && now < g->submitted_ms + window)
				break;
			for (c = g; c; c = c->next) {
				if (c->state != B_PENDING)
					continue;
				if (c != g && c->submitted_ms >= g->submitted_ms + window)
					break;
				if (!force && now < c->ready_ms) {
					ok = 0;
					break;
				}
				due[n++] = c;
			}
			if (!ok) {
				n = before;
				break;
			}
			for (i = before; i < n; i++)
				due[i]->state = B_CLAIMED;
			b = c;
			/* Shuffle this group with the seeded generator. */
			if (window > 0)
				for (i = n - 1; i > before; i--) {
					size_t j = before + (size_t)sim_rng_below(i - before + 1);
					struct batch *t = due[i];

					due[i] = due[j];
					due[j] = t;
				}
		}
	}
	pthread_mutex_unlock(&reg_lock);

	for (start = 0; start < n; start++) {
		b = due[start];
		if (!b->stuck)
			apply_batch(b, cfg->override);
		pthread_mutex_lock(&reg_lock);
		if (b->stuck) {
			b->state = B_STUCK;
			sim_counters_add(SIM_ST_BATCHES_STUCK, 1);
			sim_counters_add(SIM_ST_ROWS_LOST_STUCK, b->batch_size);
		} else {
			b->state = B_COMPLETE;
			sim_counters_add(SIM_ST_BATCHES_PROCESSED, 1);
		}
		sim_batch_parse_free(&b->parse);
		pthread_mutex_unlock(&reg_lock);
	}
	free(due);
	return n;
}

void sim_batches_process_due(void)
{
	pthread_mutex_lock(&proc_lock);
	run(0);
	pthread_mutex_unlock(&proc_lock);
}

size_t sim_batches_process_all(void)
{
	size_t n;

	pthread_mutex_lock(&proc_lock);
	n = run(1);
	pthread_mutex_unlock(&proc_lock);
	return n;
}

size_t sim_batches_pending(void)
{
	struct batch *b;
	size_t n = 0;

	pthread_mutex_lock(&reg_lock);
	for (b = head; b; b = b->next)
		if (b->state == B_PENDING || b->state == B_CLAIMED)
			n++;
	pthread_mutex_unlock(&reg_lock);
	return n;
}

int sim_batches_status_xml(const char *id, size_t id_len, int details, struct sim_buf *out)
{
	struct batch *b;
	const char *status;
	int rc = 0;

	sim_batches_process_due();
	pthread_mutex_lock(&reg_lock);
	collect(sim_clock_now_ms());
	for (b = head; b; b = b->next)
		if (b->visible && strlen(b->id) == id_len && !memcmp(b->id, id, id_len))
			break;
	if (!b)
		goto out;
	status = b->state == B_COMPLETE ? "complete" : b->state == B_STUCK ? "stuck" : "incomplete";
	sim_buf_adds(out, "<response><batchId>");
	sim_buf_add_xml(out, b->id, strlen(b->id));
	sim_buf_printf(out, "</batchId><status>%s</status><batchSize>%zu</batchSize>", status,
	               b->batch_size);
	if (details) {
		int done = b->state == B_COMPLETE;

		sim_buf_printf(out,
		               "<consumedCount>%zu</consumedCount>"
		               "<successfulUpdates>%zu</successfulUpdates>"
		               "<profilesNotFound>%zu</profilesNotFound>"
		               "<failedUpdates>%zu</failedUpdates>",
		               done ? b->consumed : 0, done ? b->successful : 0,
		               done ? b->not_found : 0, done ? b->failed : 0);
	}
	if (b->state == B_COMPLETE && b->version == 2) {
		size_t pos = 0;

		while (pos < b->failed_ids.len) {
			const char *fid = b->failed_ids.data + pos;
			size_t flen = strlen(fid);

			sim_buf_adds(out, "<profile><id>");
			sim_buf_add_xml(out, fid, flen);
			sim_buf_adds(out, "</id><status>failed</status></profile>");
			pos += flen + 1;
		}
	}
	sim_buf_adds(out, "</response>");
	rc = out->failed ? -1 : 1;
out:
	pthread_mutex_unlock(&reg_lock);
	return rc;
}

void sim_batches_reset(void)
{
	struct batch *b, *nx;

	pthread_mutex_lock(&proc_lock);
	pthread_mutex_lock(&reg_lock);
	for (b = head; b; b = nx) {
		nx = b->next;
		free_batch(b);
	}
	head = tail = NULL;
	pthread_mutex_unlock(&reg_lock);
	pthread_mutex_unlock(&proc_lock);
}

static void *tick(void *arg)
{
	struct timespec ts;

	(void)arg;
	pthread_mutex_lock(&stop_lock);
	while (!stop_flag) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 20 * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&stop_cond, &stop_lock, &ts);
		if (stop_flag)
			break;
		pthread_mutex_unlock(&stop_lock);
		sim_batches_process_due();
		pthread_mutex_lock(&stop_lock);
	}
	pthread_mutex_unlock(&stop_lock);
	return NULL;
}

int sim_batches_start(void)
{
	stop_flag = 0;
	if (pthread_create(&ticker, NULL, tick, NULL))
		return -1;
	ticker_running = 1;
	return 0;
}

void sim_batches_stop(void)
{
	if (ticker_running) {
		pthread_mutex_lock(&stop_lock);
		stop_flag = 1;
		pthread_cond_signal(&stop_cond);
		pthread_mutex_unlock(&stop_lock);
		pthread_join(ticker, NULL);
		ticker_running = 0;
	}
	sim_batches_reset();
}
