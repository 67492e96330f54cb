/*
 * sim_limits -- exact sliding-window limiter (see sim_limits.h).
 */
#include "sim_limits.h"

#include <stdlib.h>
#include <string.h>

int sim_window_init(struct sim_window *w, size_t limit, int64_t window_ms)
{
	memset(w, 0, sizeof(*w));
	pthread_mutex_init(&w->lock, NULL);
	w->window_ms = window_ms;
	return sim_window_set_limit(w, limit);
}

void sim_window_destroy(struct sim_window *w)
{
	free(w->ts);
	w->ts = NULL;
	pthread_mutex_destroy(&w->lock);
}

int sim_window_set_limit(struct sim_window *w, size_t limit)
{
	int64_t *nts = NULL;
	size_t keep, i;
	int rc = -1;

	pthread_mutex_lock(&w->lock);
	if (limit) {
		nts = malloc(limit * sizeof(*nts));
		if (!nts)
			goto out;
	}
	/* Keep the newest min(count, limit) admissions, oldest first. */
	keep = w->count < limit ? w->count : limit;
	for (i = 0; i < keep; i++)
		nts[i] = w->ts[(w->head + w->count - keep + i) % w->limit];
	free(w->ts);
	w->ts = nts;
	w->limit = limit;
	w->head = 0;
	w->count = keep;
	rc = 0;
out:
	pthread_mutex_unlock(&w->lock);
	return rc;
}

void sim_window_reset(struct sim_window *w)
{
	pthread_mutex_lock(&w->lock);
	w->head = w->count = 0;
	pthread_mutex_unlock(&w->lock);
}

static void expire(struct sim_window *w, int64_t now_ms)
{
	while (w->count && w->ts[w->head] <= now_ms - w->window_ms) {
		w->head = (w->head + 1) % w->limit;
		w->count--;
	}
}

int sim_window_take(struct sim_window *w, int64_t now_ms, int64_t *next_ms)
{
	int ok;

	pthread_mutex_lock(&w->lock);
	if (!w->limit) {
		ok = 1;
		goto out;
	}
	expire(w, now_ms);
	ok = w->count < w->limit;
	if (ok) {
		w->ts[(w->head + w->count) % w->limit] = now_ms;
		w->count++;
	} else if (next_ms) {
		*next_ms = w->ts[w->head] + w->window_ms;
	}
out:
	pthread_mutex_unlock(&w->lock);
	return ok;
}

size_t sim_window_used(struct sim_window *w, int64_t now_ms)
{
	size_t n;

	pthread_mutex_lock(&w->lock);
	if (w->limit)
		expire(w, now_ms);
	n = w->count;
	pthread_mutex_unlock(&w->lock);
	return n;
}
