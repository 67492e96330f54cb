/*
 * pobox-fleet-bench - many simulated hosts sharing one fleet account, for
 * tools/bench/fleet_bench.sh.
 *
 * Each host has its own outbox and its own struct pobox_fleet (its
 * coordinator thread and PostgreSQL connection), exactly as `pobox run`
 * opens them; what is simulated is the demand and the Target call: a call
 * is a unit taken from the host's leases (pobox_fleet_take, written in an
 * outbox transaction) and settled as used at once, and its time is logged.
 * A few driver threads share the hosts; each host's outbox handle belongs
 * to one driver.  Demand a host's leases do not cover waits up to a
 * second (the lease is on its way), then counts as sent by bulk.
 *
 * The same arrivals are also run through a static split - each host its
 * own rolling window of budget/N, as fleet_share = 1/N gives - so the two
 * are compared on identical demand.
 *
 *   pobox-fleet-bench --url URL --account A --dir DIR --hosts N --busy K
 *       --busy-rate R --idle-rate r --budget B --window-ms W --lease-ms L
 *       --seconds S [--margin M] [--reserve-share F] [--drivers D]
 *
 * Writes DIR/fleet.calls and DIR/static.calls (one epoch-ms time per call)
 * and prints "key value" lines: calls, bulk, static_calls, static_bulk.
 */
#include "fleet.h"
#include "log.h"
#include "pobox.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct host {
	struct pobox *pb;
	struct pobox_fleet *f;
	double rate, acc;
	int64_t pending, made, bulk;
	/* the static split: its own exact rolling window */
	int64_t *ring;
	size_t cap, head, count;
	int64_t s_made, s_bulk;
	int64_t *leases;
	size_t nleases;
};

static struct host *hosts;
static int nhosts, ndrivers = 4;
static int64_t budget, window_ms, lease_ms, seconds;
static double margin = 0.01, reserve_share = 0.01;
static const char *url, *account, *dir;
static FILE *fleet_log, *static_log;
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int static_take(struct host *h, int64_t now)
{
	while (h->count && h->ring[h->head] <= now - window_ms) {
		h->head = (h->head + 1) % h->cap;
		h->count--;
	}
	if (h->count == h->cap)
		return 0;
	h->ring[(h->head + h->count) % h->cap] = now;
	h->count++;
	return 1;
}

/* One tick of one host: new demand, the static split's verdict on it,
 * then the fleet: take, "call", settle. */
static void tick(struct host *h, double dt_s)
{
	int64_t now = wall_ms();
	h->acc += h->rate * dt_s;
	int64_t fresh = (int64_t)h->acc;
	h->acc -= (double)fresh;
	for (int64_t i = 0; i < fresh; i++) {
		if (static_take(h, now)) {
			h->s_made++;
			pthread_mutex_lock(&log_mu);
			fprintf(static_log, "%lld\n", (long long)now);
			pthread_mutex_unlock(&log_mu);
		} else {
			h->s_bulk++;
		}
	}
	h->pending += fresh;
	if (h->pending == 0)
		return;
	struct pobox_fleet_limits l;
	pobox_fleet_limits(h->f, &l);
	int64_t want = h->pending, got = 0;
	if ((size_t)want > h->nleases) {
		int64_t *n = realloc(h->leases, (size_t)want * sizeof *n);
		if (!n)
			return;
		h->leases = n;
		h->nleases = (size_t)want;
	}
	if (pobox_begin(h->pb) != 0)
		return;
	for (; got < want; got++) {
		int64_t by;
		if (pobox_fleet_take(h->f, 0, &h->leases[got], &by) != 0)
			break;
	}
	int ok = pobox_fleet_write(h->f, h->pb) == 0 && pobox_commit(h->pb) == 0;
	if (!ok)
		pobox_rollback(h->pb);
	pobox_fleet_done(h->f, ok);
	if (!ok)
		return;
	/* the calls */
	int64_t at = wall_ms(), mono = pobox_fleet_mono_ms();
	pthread_mutex_lock(&log_mu);
	for (int64_t i = 0; i < got; i++)
		fprintf(fleet_log, "%lld\n", (long long)at);
	pthread_mutex_unlock(&log_mu);
	if (pobox_begin(h->pb) == 0) {
		for (int64_t i = 0; i < got; i++)
			pobox_fleet_settle(h->f, h->leases[i], 1, mono);
		ok = pobox_fleet_write(h->f, h->pb) == 0 && pobox_commit(h->pb) == 0;
		if (!ok)
			pobox_rollback(h->pb);
		pobox_fleet_done(h->f, ok);
	}
	h->made += got;
	h->pending -= got;
	/* what the leases did not cover: asked for (as pobox's cut does with
	 * what the budget sent bulk), waits a second at most, then goes bulk */
	if (h->pending)
		pobox_fleet_short(h->f, h->pending, 0);
	int64_t keep = (int64_t)ceil(h->rate);
	if (l.wait_ms < 0 || h->pending > keep) {
		int64_t drop = l.wait_ms < 0 ? h->pending : h->pending - keep;
		h->bulk += drop;
		h->pending -= drop;
	}
}

struct driver {
	int first, n;
	pthread_t th;
};

static void *drive(void *arg)
{
	struct driver *d = arg;
	struct timespec ts = {0, 20 * 1000000L};
	int64_t t0 = wall_ms(), last = t0;
	while (wall_ms() - t0 < seconds * 1000) {
		int64_t now = wall_ms();
		double dt = (double)(now - last) / 1000.0;
		last = now;
		for (int i = d->first; i < d->first + d->n; i++)
			tick(&hosts[i], dt);
		nanosleep(&ts, NULL);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int busy = 0;
	double busy_rate = 10, idle_rate = 0.1;
	for (int i = 1; i + 1 < argc; i += 2) {
		const char *k = argv[i], *v = argv[i + 1];
		if (!strcmp(k, "--url")) url = v;
		else if (!strcmp(k, "--account")) account = v;
		else if (!strcmp(k, "--dir")) dir = v;
		else if (!strcmp(k, "--hosts")) nhosts = atoi(v);
		else if (!strcmp(k, "--busy")) busy = atoi(v);
		else if (!strcmp(k, "--busy-rate")) busy_rate = atof(v);
		else if (!strcmp(k, "--idle-rate")) idle_rate = atof(v);
		else if (!strcmp(k, "--budget")) budget = atoll(v);
		else if (!strcmp(k, "--window-ms")) window_ms = atoll(v);
		else if (!strcmp(k, "--lease-ms")) lease_ms = atoll(v);
		else if (!strcmp(k, "--seconds")) seconds = atoll(v);
		else if (!strcmp(k, "--margin")) margin = atof(v);
		else if (!strcmp(k, "--reserve-share")) reserve_share = atof(v);
		else if (!strcmp(k, "--drivers")) ndrivers = atoi(v);
		else {
			fprintf(stderr, "pobox-fleet-bench: unknown option %s\n", k);
			return 64;
		}
	}
	if (!url || !account || !dir || nhosts < 1 || budget < 1 || window_ms < 1 || lease_ms < 1 ||
	    seconds < 1 || ndrivers < 1) {
		fprintf(stderr, "usage: see the comment at the top of fleet_bench.c\n");
		return 64;
	}
	char path[4096];
	pobox_log_set_level(POBOX_LOG_WARN); /* 200 hosts joining is not news */
	snprintf(path, sizeof path, "%s/fleet.calls", dir);
	fleet_log = fopen(path, "w");
	snprintf(path, sizeof path, "%s/static.calls", dir);
	static_log = fopen(path, "w");
	hosts = calloc((size_t)nhosts, sizeof *hosts);
	if (!fleet_log || !static_log || !hosts)
		return 71;
	struct pobox_options po;
	pobox_options_init(&po);
	po.synchronous = POBOX_SYNC_OFF;
	po.busy_timeout_ms = 60000;
	for (int i = 0; i < nhosts; i++) {
		struct host *h = &hosts[i];
		char err[512], name[64];
		snprintf(path, sizeof path, "%s/h%d.db", dir, i);
		snprintf(name, sizeof name, "h%d", i);
		if (pobox_open(&h->pb, path, &po, err, sizeof err) != 0) {
			fprintf(stderr, "pobox-fleet-bench: %s: %s\n", path, err);
			return 1;
		}
		struct pobox_fleet_opts fo = {
			.url = url, .account = account, .host = name, .db_path = path, .open = po,
			.budget = budget, .bulk_limit = 45, .margin_share = margin,
			.reserve_share = reserve_share, .urgent_share = 0, .window_ms = window_ms,
			.bulk_window_ms = 60000, .lease_ms = lease_ms, .reserve_ms = window_ms,
			.permit_ms = 10000, .fleet_size = nhosts, .timeout_ms = 5000, .horizon_ms = 1000,
			.bulk_horizon_ms = 1000,
		};
		if (pobox_fleet_open(&h->f, h->pb, &fo, err, sizeof err) != 0) {
			fprintf(stderr, "pobox-fleet-bench: h%d: %s\n", i, err);
			return 1;
		}
		h->rate = i < busy ? busy_rate : idle_rate;
		h->cap = (size_t)(budget / nhosts > 0 ? budget / nhosts : 1);
		h->ring = calloc(h->cap, sizeof *h->ring);
		if (!h->ring)
			return 71;
	}
	sleep(2); /* every host joins */
	struct driver *d = calloc((size_t)ndrivers, sizeof *d);
	int per = (nhosts + ndrivers - 1) / ndrivers;
	for (int i = 0; i < ndrivers; i++) {
		d[i].first = i * per;
		d[i].n = d[i].first + per > nhosts ? nhosts - d[i].first : per;
		if (d[i].n > 0)
			pthread_create(&d[i].th, NULL, drive, &d[i]);
	}
	for (int i = 0; i < ndrivers; i++)
		if (d[i].n > 0)
			pthread_join(d[i].th, NULL);
	int64_t calls = 0, bulk = 0, s_calls = 0, s_bulk = 0, busy_calls = 0;
	for (int i = 0; i < nhosts; i++) {
		calls += hosts[i].made;
		bulk += hosts[i].bulk + hosts[i].pending;
		s_calls += hosts[i].s_made;
		s_bulk += hosts[i].s_bulk;
		if (i < busy)
			busy_calls += hosts[i].made;
		pobox_fleet_close(hosts[i].f);
		pobox_close(hosts[i].pb);
		free(hosts[i].ring);
		free(hosts[i].leases);
	}
	fclose(fleet_log);
	fclose(static_log);
	printf("calls %lld\nbulk %lld\nstatic_calls %lld\nstatic_bulk %lld\nbusy_calls %lld\n",
	       (long long)calls, (long long)bulk, (long long)s_calls, (long long)s_bulk,
	       (long long)busy_calls);
	free(d);
	free(hosts);
	return 0;
}
