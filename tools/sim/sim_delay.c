/*
 * sim_delay -- timer thread resuming suspended connections (see
 * sim_delay.h).  Held connections live in a binary min-heap on deadline.
 */
#include "sim_delay.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

struct held {
	int64_t due_ns;
	struct MHD_Connection *conn;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond;
static struct held *heap;
static size_t n_heap, cap_heap;
static int stopping;
static pthread_t thread;
static int running;

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void swap(size_t a, size_t b)
{
	struct held t = heap[a];

	heap[a] = heap[b];
	heap[b] = t;
}

static void push(struct held h)
{
	size_t i = n_heap++;

	heap[i] = h;
	while (i && heap[(i - 1) / 2].due_ns > heap[i].due_ns) {
		swap(i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static struct held pop(void)
{
	struct held top = heap[0];
	size_t i = 0;

	heap[0] = heap[--n_heap];
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < n_heap && heap[l].due_ns < heap[m].due_ns)
			m = l;
		if (r < n_heap && heap[r].due_ns < heap[m].due_ns)
			m = r;
		if (m == i)
			break;
		swap(i, m);
		i = m;
	}
	return top;
}

static void *loop(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&lock);
	for (;;) {
		int64_t now = now_ns();

		while (n_heap && (stopping || heap[0].due_ns <= now)) {
			struct held h = pop();

			MHD_resume_connection(h.conn);
		}
		if (stopping)
			break;
		if (n_heap) {
			struct timespec ts;
			int64_t due = heap[0].due_ns;

			ts.tv_sec = (time_t)(due / 1000000000);
			ts.tv_nsec = (long)(due % 1000000000);
			pthread_cond_timedwait(&cond, &lock, &ts);
		} else {
			pthread_cond_wait(&cond, &lock);
		}
	}
	pthread_mutex_unlock(&lock);
	return NULL;
}

int sim_delay_start(void)
{
	pthread_condattr_t attr;

	pthread_condattr_init(&attr);
	/* Deadlines are monotonic, so the wait must be too. */
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&cond, &attr);
	pthread_condattr_destroy(&attr);
	stopping = 0;
	if (pthread_create(&thread, NULL, loop, NULL))
		return -1;
	running = 1;
	return 0;
}

int sim_delay_add(struct MHD_Connection *conn, int64_t delay_ms)
{
	struct held h;
	int rc = -1;

	h.due_ns = now_ns() + delay_ms * 1000000;
	h.conn = conn;
	pthread_mutex_lock(&lock);
	if (stopping)
		goto out;
	if (n_heap == cap_heap) {
		size_t nc = cap_heap ? cap_heap * 2 : 64;
		struct held *nh = realloc(heap, nc * sizeof(*nh));

		if (!nh)
			goto out;
		heap = nh;
		cap_heap = nc;
	}
	push(h);
	pthread_cond_signal(&cond);
	rc = 0;
out:
	pthread_mutex_unlock(&lock);
	return rc;
}

void sim_delay_stop(void)
{
	if (!running)
		return;
	pthread_mutex_lock(&lock);
	stopping = 1;
	pthread_cond_signal(&cond);
	pthread_mutex_unlock(&lock);
	pthread_join(thread, NULL);
	running = 0;
	free(heap);
	heap = NULL;
	n_heap = cap_heap = 0;
	pthread_cond_destroy(&cond);
}
