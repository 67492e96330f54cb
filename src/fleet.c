/*
 * fleet.c - this host's lease ledger and the thread that keeps it filled
 * (see fleet.h for the contract, the invariants and the link states; the
 * coordinator's side is schema/fleet/0001_ledger.sql).
 *
 * Two threads share struct pobox_fleet under `mu`:
 *
 *   the delivery thread   takes units for calls and settles them
 *                         (in-memory at once, in the outbox through its
 *                         own transactions: pobox_fleet_write / _done)
 *   the fleet thread      decides what to ask for (plan), makes the round
 *                         trip without holding `mu`, writes the answer to
 *                         the outbox through its own handle, then publishes
 *                         it (apply).  A grant is usable only once its row
 *                         is committed (invariant 1).
 *
 * A grant in memory (struct grant) goes:
 *
 *   open --deadline passed / epoch changed / released--> closed
 *   closed + inflight == 0 --reported in a request--> reporting
 *   reporting --the answer acknowledges it--> gone (row dropped)
 *   reporting --the request failed--> closed (reported again later)
 *
 * Sizes: a lease asks for target_ms (half a lease life) of the recent rate
 * of takes, plus what the lanes found short; a new one is asked for when
 * what is held would last less than a quarter of that.  The standing
 * reserve is renewed at half its life: the new one is asked for first, the
 * old one closed only once the new one is in hand (closing first would
 * leave nothing if the request was lost).
 */
#include "fleet.h"
#include "alloc.h"
#include "error.h"
#include "fleet_pg.h"
#include "log.h"
#include "outbox.h"
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DRIFT 1e-3          /* clocks may run this much fast or slow */
#define GUARD_MS 20         /* no unit is taken this close to its lease's deadline */
#define MAX_GRANTS 16
#define MAX_PERMITS 4
#define MAX_UNLEASED 256

struct grant {
	int64_t id;
	int reserve;                 /* the standing reserve, else a lease */
	int64_t granted, used, inflight, avail;
	int64_t grant_coord, sent_mono, life_ms, start_by, charge_k;
	int closed, reporting;
	int64_t closed_mono;
};

struct permit {
	int64_t id, n, left, taken;
	int64_t grant_coord, sent_mono, start_by, charge_k;
	int64_t use_k[8];
	int nuses, reporting;
	int64_t done_mono;           /* when its last call ended */
};

struct stage {                   /* one grant's changes in the open transaction */
	int64_t lease, take, used, released;
};

struct stage_use {
	int64_t lease, k, n;
};

enum link { L_START, L_ONLINE, L_OFFLINE, L_REFUSED };

struct pobox_fleet {
	char *url, *password, *account, *host, *db_path;
	struct pobox_fleet_opts o;
	char boot[40];
	pthread_t th;
	int started;
	pthread_mutex_t mu;
	pthread_cond_t wake;         /* to the fleet thread */
	pthread_cond_t answer;       /* to the delivery thread: a round trip ended */
	/* under mu */
	struct grant g[MAX_GRANTS];
	int ng;
	struct permit p[MAX_PERMITS];
	int np;
	int stop;
	enum link link;
	char why[POBOX_ERRLEN];      /* the last failure or refusal */
	int joined;
	struct pobox_fleet_account acct;
	int64_t bucket_ms;           /* the outbox's, until the account's is known */
	int64_t free, spent, hosts;
	int learning;
	double take_rate;            /* units taken per second, decaying */
	int64_t take_rate_at;
	double grant_rate;           /* units granted per second, decaying */
	int64_t grant_rate_at, last_grant_mono;
	int64_t unmet;
	int unmet_urgent;
	int fresh;                   /* a lease came after a shortfall (pobox_fleet_fresh) */
	int64_t standing, standing_until; /* recent shortfall, asked for again while the
	                                   * fleet is spent (when the window frees) */
	int permit_wanted;
	int64_t permit_refused_wall; /* > 0: none to be had before this wall time */
	uint64_t trips;              /* round trips ended (answered or not) */
	int64_t ref_coord, ref_mono; /* the last answer: coordinator time and its send time */
	int64_t unleased[MAX_UNLEASED]; /* offline bulk calls' buckets, not yet reported */
	int nunleased;
	struct permit *bulk_cur;
	int bulk_cur_offline;
	int64_t rtt_ms;
	/* delivery thread only */
	struct stage *st;
	size_t nst, capst;
	struct stage_use *su;
	size_t nsu, capsu;
	int stage_oom;
	/* fleet thread only */
	struct pobox *tpb;
	struct pobox_fleet_conn *conn;
	struct pobox_fleet_row row;
	int fails;
	int64_t next_try, last_reserve_try;
	int64_t lease_retry;         /* no lease is asked for before this (the fleet is spent) */
	int64_t coord_off_wall;
	int64_t offline_since_wall;
};

int64_t pobox_fleet_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char boot_buf[40];
static pthread_once_t boot_once = PTHREAD_ONCE_INIT;

static void read_boot(void)
{
	char buf[64] = "";
	FILE *fp = fopen("/proc/sys/kernel/random/boot_id", "r");
	if (!fp)
		return;
	if (fgets(buf, sizeof buf, fp))
		buf[strcspn(buf, "\r\n")] = '\0';
	fclose(fp);
	buf[sizeof boot_buf - 1] = '\0'; /* a uuid: 36 characters */
	memcpy(boot_buf, buf, sizeof boot_buf);
}

const char *pobox_fleet_boot_id(void)
{
	pthread_once(&boot_once, read_boot);
	return boot_buf[0] ? boot_buf : "unknown";
}

/* ---- small helpers (mu held where they touch shared state) -------------- */

static int64_t bucket_end(int64_t t, int64_t width)
{
	if (width < 1)
		width = 1;
	return t >= 0 ? (t + width - 1) / width * width : t / width * width;
}

/* The latest coordinator time at which something this host saw at mono
 * time `at` can have happened (invariant 4). */
static int64_t coord_at(int64_t grant_coord, int64_t sent_mono, int64_t at)
{
	int64_t d = at - sent_mono;
	if (d < 0)
		d = 0;
	return grant_coord + (int64_t)ceil((double)d * (1 + DRIFT)) + 1;
}

static struct grant *grant_find(struct pobox_fleet *f, int64_t id)
{
	for (int i = 0; i < f->ng; i++)
		if (f->g[i].id == id)
			return &f->g[i];
	return NULL;
}

static void grant_remove(struct pobox_fleet *f, struct grant *g)
{
	*g = f->g[--f->ng];
}

static double decayed(double rate, int64_t at, int64_t now, int64_t tau_ms)
{
	if (now <= at)
		return rate;
	return rate * exp(-(double)(now - at) / (double)tau_ms);
}

/* The rates' memory: a quarter of a lease life, from 2 to 15 s (long
 * enough to smooth a cut's burst, short enough to follow the demand). */
static int64_t tau_ms(const struct pobox_fleet *f)
{
	int64_t l = (f->joined ? f->acct.lease_ms : f->o.lease_ms) / 4;
	return l < 2000 ? 2000 : l > 15000 ? 15000 : l;
}

/* Usable for a take at `now`: open, before its deadline, something left. */
static int usable(const struct grant *g, int64_t now)
{
	return !g->closed && g->avail > 0 && g->start_by - now > GUARD_MS;
}

/* Units in leases (not the reserve) usable for at least `lead` more ms. */
static int64_t held(const struct pobox_fleet *f, int64_t now, int64_t lead)
{
	int64_t h = 0;
	for (int i = 0; i < f->ng; i++)
		if (!f->g[i].reserve && usable(&f->g[i], now) && f->g[i].start_by - now > lead)
			h += f->g[i].avail;
	return h;
}

static struct grant *reserve_of(struct pobox_fleet *f)
{
	struct grant *r = NULL;
	for (int i = 0; i < f->ng; i++)
		if (f->g[i].reserve && !f->g[i].closed && (!r || f->g[i].start_by > r->start_by))
			r = &f->g[i];
	return r;
}

static int64_t reserve_floor(const struct pobox_fleet *f, const struct grant *r)
{
	double share = f->joined ? f->acct.urgent_share : f->o.urgent_share;
	return (int64_t)floor((double)r->granted * share);
}

static int offline(const struct pobox_fleet *f) { return f->link == L_OFFLINE || f->link == L_REFUSED; }

/* ---- open and close ----------------------------------------------------- */

static void random_hex(char *buf, size_t bytes)
{
	unsigned char r[32];
	size_t got = 0;
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, r, bytes > sizeof r ? sizeof r : bytes);
		got = n > 0 ? (size_t)n : 0;
		close(fd);
	}
	for (size_t i = got; i < bytes && i < sizeof r; i++) /* only if urandom failed */
		r[i] = (unsigned char)(rand() ^ (int)(pobox_fleet_mono_ms() >> (i % 8)));
	for (size_t i = 0; i < bytes && i < sizeof r; i++)
		snprintf(buf + 2 * i, 3, "%02x", r[i]);
}

static int load_grant(void *ctx, const struct pobox_fleet_lease_row *l)
{
	struct pobox_fleet *f = ctx;
	if (f->ng == MAX_GRANTS)
		return 0; /* more rows than slots: the rest wait for their report */
	struct grant *g = &f->g[f->ng++];
	int64_t now = pobox_fleet_mono_ms();
	memset(g, 0, sizeof *g);
	g->id = l->id;
	g->reserve = l->reserve;
	g->granted = l->granted;
	g->used = l->used;
	g->avail = l->granted - l->used - l->reserved;
	g->grant_coord = l->grant_coord_ms;
	g->sent_mono = l->sent_mono_ms;
	g->life_ms = l->life_ms;
	g->start_by = l->start_by_mono_ms;
	g->charge_k = l->charge_k;
	/* another boot's monotonic times mean nothing: closed */
	g->closed = l->closed || strcmp(l->boot_id, pobox_fleet_boot_id()) != 0 || now >= g->start_by;
	g->closed_mono = now;
	if (strcmp(l->boot_id, pobox_fleet_boot_id()) != 0)
		g->start_by = g->sent_mono = 0;
	return 0;
}

/* The outbox's fleet state, made or reset for this account and host. */
static int state_init(struct pobox_fleet *f, struct pobox *pb, int64_t *recovered)
{
	struct pobox_fleet_row *r = &f->row;
	int found, rc;
	if ((rc = pobox_begin(pb)) != 0)
		return rc;
	if ((rc = pobox_store_fleet_get(pb->st, r, &found)) != 0)
		goto out;
	if (found && (strcmp(r->account, f->account) != 0 || strcmp(r->host, f->host) != 0)) {
		/* a new identity: what the old one holds is charged under its
		 * name and cannot be reported under this one */
		pobox_log(POBOX_LOG_WARN, "fleet_identity_changed",
		          "account=\"%s\" host=\"%s\" was=\"%s/%s\" leases_dropped=yes", f->account, f->host,
		          r->account, r->host);
		found = 0;
		if ((rc = pobox_store_exec(pb->st, "DELETE FROM fleet_lease_use; DELETE FROM fleet_leases")) != 0)
			goto out;
	}
	if (!found) {
		memset(r, 0, sizeof *r);
		snprintf(r->account, sizeof r->account, "%s", f->account);
		snprintf(r->host, sizeof r->host, "%s", f->host);
		random_hex(r->incarnation, 16);
		r->next_seq = 1;
		r->budget = -1;
		if ((rc = pobox_store_fleet_put(pb->st, r)) != 0)
			goto out;
	}
	rc = pobox_store_fleet_recover(pb->st, recovered);
	if (rc == 0)
		rc = pobox_store_fleet_leases(pb->st, load_grant, f);
	f->bucket_ms = r->bucket_ms > 0 ? r->bucket_ms : 1;
out:
	if (rc == 0)
		return pobox_commit(pb);
	char keep[POBOX_ERRLEN];
	snprintf(keep, sizeof keep, "%s", pb->err);
	pobox_rollback(pb);
	snprintf(pb->err, sizeof pb->err, "%s", keep);
	return rc;
}

static void *thread_main(void *arg);

static void fleet_free(struct pobox_fleet *f)
{
	if (!f)
		return;
	if (f->password) {
		memset(f->password, 0, strlen(f->password));
		pobox_free(f->password);
	}
	pobox_free(f->url);
	pobox_free(f->account);
	pobox_free(f->host);
	pobox_free(f->db_path);
	pobox_free(f->st);
	pobox_free(f->su);
	pthread_mutex_destroy(&f->mu);
	pthread_cond_destroy(&f->wake);
	pthread_cond_destroy(&f->answer);
	pobox_free(f);
}

int pobox_fleet_open(struct pobox_fleet **out, struct pobox *pb, const struct pobox_fleet_opts *o,
                     char *err, size_t errlen)
{
	struct pobox_fleet *f;
	int64_t recovered = 0;
	int rc;
	if ((rc = pobox_fleet_pg_check_url(o->url, err, errlen)) != 0)
		return rc;
	if (!o->account || !*o->account)
		return pobox_errf(err, errlen, POBOX_ECONFIG, "fleet_url is set but fleet_account is not");
	if (!(f = pobox_calloc(1, sizeof *f)))
		return pobox_errf(err, errlen, POBOX_ENOMEM, "out of memory");
	pthread_mutex_init(&f->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&f->wake, &ca);
	pthread_cond_init(&f->answer, &ca);
	pthread_condattr_destroy(&ca);
	f->o = *o;
	f->url = pobox_strdup(o->url);
	f->password = o->password ? pobox_strdup(o->password) : NULL;
	f->account = pobox_strdup(o->account);
	f->host = pobox_strdup(o->host);
	f->db_path = pobox_strdup(o->db_path);
	if (!f->url || !f->account || !f->host || !f->db_path || (o->password && !f->password)) {
		fleet_free(f);
		return pobox_errf(err, errlen, POBOX_ENOMEM, "out of memory");
	}
	f->o.url = f->url;
	f->o.password = f->password;
	f->o.account = f->account;
	f->o.host = f->host;
	f->o.db_path = f->db_path;
	f->link = L_START;
	f->permit_refused_wall = 0;
	snprintf(f->boot, sizeof f->boot, "%s", pobox_fleet_boot_id());
	if ((rc = state_init(f, pb, &recovered)) != 0) {
		pobox_errf(err, errlen, rc, "fleet state: %s", pobox_errmsg(pb));
		fleet_free(f);
		return rc;
	}
	if (recovered)
		pobox_log(POBOX_LOG_WARN, "fleet_units_recovered",
		          "units=%lld reason=\"taken by a process that stopped before settling them; "
		          "counted as used\"", (long long)recovered);
	/* the thread takes no signals: SIGTERM and SIGHUP stay the caller's */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&f->th, NULL, thread_main, f);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		fleet_free(f);
		return pobox_errf(err, errlen, POBOX_EIO, "cannot start the fleet thread");
	}
	f->started = 1;
	*out = f;
	return 0;
}

void pobox_fleet_close(struct pobox_fleet *f)
{
	if (!f)
		return;
	if (f->started) {
		pthread_mutex_lock(&f->mu);
		f->stop = 1;
		pthread_cond_broadcast(&f->wake);
		pthread_mutex_unlock(&f->mu);
		pthread_join(f->th, NULL);
	}
	fleet_free(f);
}

int pobox_fleet_refused(struct pobox_fleet *f, char *msg, size_t len)
{
	pthread_mutex_lock(&f->mu);
	int r = f->link == L_REFUSED;
	if (r && msg)
		snprintf(msg, len, "%s", f->why);
	pthread_mutex_unlock(&f->mu);
	return r;
}

/* ---- the single lane (delivery thread) ---------------------------------- */

void pobox_fleet_limits(struct pobox_fleet *f, struct pobox_fleet_limits *l)
{
	pthread_mutex_lock(&f->mu);
	int64_t now = pobox_fleet_mono_ms(), leases = held(f, now, 0), res = 0, floor_ = 0;
	struct grant *r = reserve_of(f);
	if (r && offline(f) && usable(r, now)) {
		res = r->avail;
		floor_ = reserve_floor(f, r);
	}
	l->left_urgent = leases + res;
	l->left_normal = leases + (res > floor_ ? res - floor_ : 0);
	/* online: the next lease is on its way, unless the fleet's budget is
	 * spent (nothing free, nothing granted for a lease's life) */
	int64_t life = f->joined ? f->acct.lease_ms : f->o.lease_ms;
	int spent = f->joined && f->free <= 0 && now - f->last_grant_mono > life;
	l->wait_ms = offline(f) || spent ? -1 : life / 10 < 50 ? 50 : life / 10 > 500 ? 500 : life / 10;
	pthread_mutex_unlock(&f->mu);
}

static struct stage *stage_for(struct pobox_fleet *f, int64_t lease)
{
	for (size_t i = 0; i < f->nst; i++)
		if (f->st[i].lease == lease)
			return &f->st[i];
	if (f->nst == f->capst) {
		size_t cap = f->capst ? f->capst * 2 : 8;
		struct stage *n = pobox_realloc(f->st, cap * sizeof *n);
		if (!n) {
			f->stage_oom = 1;
			return NULL;
		}
		f->st = n;
		f->capst = cap;
	}
	struct stage *s = &f->st[f->nst++];
	memset(s, 0, sizeof *s);
	s->lease = lease;
	return s;
}

int pobox_fleet_take(struct pobox_fleet *f, int urgent, int64_t *lease, int64_t *start_by_mono_ms)
{
	struct grant *best = NULL;
	pthread_mutex_lock(&f->mu);
	int64_t now = pobox_fleet_mono_ms();
	for (int i = 0; i < f->ng; i++)
		if (!f->g[i].reserve && usable(&f->g[i], now) && (!best || f->g[i].start_by < best->start_by))
			best = &f->g[i];
	if (!best && offline(f)) {
		struct grant *r = reserve_of(f);
		if (r && usable(r, now) && (urgent || r->avail > reserve_floor(f, r)))
			best = r;
	}
	struct stage *s = best ? stage_for(f, best->id) : NULL;
	if (!s) {
		pthread_mutex_unlock(&f->mu);
		return POBOX_EBUSY;
	}
	best->avail--;
	best->inflight++;
	s->take++;
	f->take_rate = decayed(f->take_rate, f->take_rate_at, now, tau_ms(f)) + 1000.0 / (double)tau_ms(f);
	f->take_rate_at = now;
	*lease = best->id;
	*start_by_mono_ms = best->start_by;
	pthread_mutex_unlock(&f->mu);
	return 0;
}

void pobox_fleet_settle(struct pobox_fleet *f, int64_t lease, int used, int64_t answered_mono_ms)
{
	pthread_mutex_lock(&f->mu);
	struct grant *g = grant_find(f, lease);
	struct stage *s = g ? stage_for(f, lease) : NULL;
	if (!s) {
		pthread_mutex_unlock(&f->mu);
		return;
	}
	if (!used) {
		s->released++;
		pthread_mutex_unlock(&f->mu);
		return;
	}
	s->used++;
	int64_t width = f->joined ? f->acct.bucket_ms : f->bucket_ms;
	int64_t k = answered_mono_ms >= 0 && g->sent_mono > 0
	            ? coord_at(g->grant_coord, g->sent_mono, answered_mono_ms) : g->charge_k;
	if (k > g->charge_k)
		k = g->charge_k;
	k = bucket_end(k, width);
	if (k > g->charge_k)
		k = g->charge_k;
	size_t i;
	for (i = 0; i < f->nsu && (f->su[i].lease != lease || f->su[i].k != k); i++)
		;
	if (i == f->nsu) {
		if (f->nsu == f->capsu) {
			size_t cap = f->capsu ? f->capsu * 2 : 16;
			struct stage_use *n = pobox_realloc(f->su, cap * sizeof *n);
			if (!n) {
				f->stage_oom = 1;
				pthread_mutex_unlock(&f->mu);
				return;
			}
			f->su = n;
			f->capsu = cap;
		}
		f->su[f->nsu++] = (struct stage_use){lease, k, 0};
	}
	f->su[i].n++;
	pthread_mutex_unlock(&f->mu);
}

int pobox_fleet_write(struct pobox_fleet *f, struct pobox *pb)
{
	int rc = 0;
	if (f->stage_oom)
		return pobox_errf(pb->err, sizeof pb->err, POBOX_ENOMEM, "out of memory (fleet ledger)");
	for (size_t i = 0; i < f->nst && rc == 0; i++) {
		const struct stage *s = &f->st[i];
		if (s->take || s->used || s->released)
			rc = pobox_store_fleet_lease_change(pb->st, s->lease, s->take - s->used - s->released,
			                                    s->used);
	}
	for (size_t i = 0; i < f->nsu && rc == 0; i++)
		if ((rc = pobox_store_fleet_use_add(pb->st, f->su[i].lease, f->su[i].k, f->su[i].n)) == 0)
			rc = pobox_store_fleet_usage_add(pb->st, f->su[i].k, f->su[i].n);
	return rc;
}

void pobox_fleet_done(struct pobox_fleet *f, int committed)
{
	int wake = 0;
	pthread_mutex_lock(&f->mu);
	int64_t now = pobox_fleet_mono_ms();
	for (size_t i = 0; i < f->nst; i++) {
		const struct stage *s = &f->st[i];
		struct grant *g = grant_find(f, s->lease);
		if (!g)
			continue;
		if (committed) {
			g->inflight -= s->used + s->released;
			g->used += s->used;
			if (!g->closed && g->start_by > now)
				g->avail += s->released;
			wake |= g->closed && g->inflight == 0;
		} else {
			/* the takes never happened; the settles are still to come */
			g->avail += s->take;
			g->inflight -= s->take;
		}
	}
	f->nst = f->nsu = 0;
	f->stage_oom = 0;
	if (wake)
		pthread_cond_signal(&f->wake);
	pthread_mutex_unlock(&f->mu);
}

void pobox_fleet_short(struct pobox_fleet *f, int64_t n, int urgent)
{
	if (n <= 0)
		return;
	pthread_mutex_lock(&f->mu);
	if (f->unmet < n)
		f->unmet = n; /* the same calls come back: the largest shortfall, not a sum */
	f->unmet_urgent |= urgent;
	if (f->standing < n)
		f->standing = n;
	f->standing_until = pobox_fleet_mono_ms() + 2 * (f->joined ? f->acct.lease_ms : f->o.lease_ms);
	pthread_cond_signal(&f->wake);
	pthread_mutex_unlock(&f->mu);
}

int pobox_fleet_fresh(struct pobox_fleet *f)
{
	pthread_mutex_lock(&f->mu);
	int r = f->fresh;
	f->fresh = 0;
	pthread_mutex_unlock(&f->mu);
	return r;
}

/* ---- the bulk lane (delivery thread) ------------------------------------ */

static struct permit *permit_usable(struct pobox_fleet *f, int64_t now)
{
	for (int i = 0; i < f->np; i++)
		if (f->p[i].left > 0 && !f->p[i].reporting && f->p[i].start_by - now > GUARD_MS)
			return &f->p[i];
	return NULL;
}

int pobox_fleet_bulk_take(struct pobox_fleet *f, int64_t now_ms, int64_t *limit,
                          int64_t *retry_at_ms)
{
	struct timespec ts;
	int rc = 0;
	pthread_mutex_lock(&f->mu);
	int64_t now = pobox_fleet_mono_ms();
	int64_t deadline = now + (f->o.timeout_ms < 500 ? f->o.timeout_ms : 500);
	if (f->bulk_cur) {
		/* taken for a call that never told how it went: as late as allowed */
		struct permit *o = f->bulk_cur;
		if (o->nuses < 8)
			o->use_k[o->nuses++] = o->charge_k;
		o->taken--;
	}
	struct permit *p = permit_usable(f, now);
	f->bulk_cur = NULL;
	f->bulk_cur_offline = 0;
	if (!p && !offline(f) && f->permit_refused_wall <= now_ms) {
		/* ask, and wait (briefly) for the round trip that answers it */
		uint64_t trips = f->trips;
		f->permit_wanted = 1;
		pthread_cond_signal(&f->wake);
		while (!(p = permit_usable(f, now)) && !offline(f) && now < deadline &&
		       !(f->trips != trips && !f->permit_wanted)) {
			clock_gettime(CLOCK_MONOTONIC, &ts);
			int64_t left = deadline - now;
			ts.tv_sec += left / 1000;
			ts.tv_nsec += (left % 1000) * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&f->answer, &f->mu, &ts);
			now = pobox_fleet_mono_ms();
		}
	}
	if (p) {
		p->left--;
		p->taken++;
		f->bulk_cur = p;
	} else if (offline(f) && f->o.offline_bulk_per_minute > 0) {
		*limit = f->o.offline_bulk_per_minute; /* not reserved: see the README */
		f->bulk_cur_offline = 1;
	} else {
		rc = 1;
		*retry_at_ms = f->permit_refused_wall > now_ms ? f->permit_refused_wall
		               : now_ms + (offline(f) ? 1000 : 200);
	}
	pthread_mutex_unlock(&f->mu);
	return rc;
}

void pobox_fleet_bulk_untake(struct pobox_fleet *f)
{
	pthread_mutex_lock(&f->mu);
	if (f->bulk_cur) {
		f->bulk_cur->left++;
		f->bulk_cur->taken--;
	}
	f->bulk_cur = NULL;
	f->bulk_cur_offline = 0;
	pthread_mutex_unlock(&f->mu);
}

void pobox_fleet_bulk_done(struct pobox_fleet *f, int answered)
{
	pthread_mutex_lock(&f->mu);
	int64_t now = pobox_fleet_mono_ms();
	int64_t width = f->joined ? f->acct.bulk_bucket_ms : 1000;
	struct permit *p = f->bulk_cur;
	if (p) {
		int64_t k = answered ? coord_at(p->grant_coord, p->sent_mono, now) : p->charge_k;
		k = bucket_end(k, width);
		if (k > p->charge_k)
			k = p->charge_k;
		if (p->nuses < 8)
			p->use_k[p->nuses++] = k;
		p->taken--;
		p->done_mono = now;
		if (p->left == 0 && p->taken == 0)
			pthread_cond_signal(&f->wake); /* report it soon: the window wants it back */
	} else if (f->bulk_cur_offline && f->ref_mono > 0 && f->nunleased < MAX_UNLEASED) {
		/* as late as it can have been, by the last answer's clock */
		int64_t horizon = answered ? 0 : f->o.bulk_horizon_ms;
		f->unleased[f->nunleased++] = bucket_end(coord_at(f->ref_coord, f->ref_mono, now + horizon), width);
	}
	f->bulk_cur = NULL;
	f->bulk_cur_offline = 0;
	pthread_mutex_unlock(&f->mu);
}

/* ---- the fleet thread --------------------------------------------------- */

struct plan {
	int join, final, due;
	int64_t want, extend;
	int urgent, reserve, permits, hist;
	int64_t close[MAX_GRANTS + MAX_PERMITS];
	int nclose;
};

/* What to ask for now (mu held).  Marks what it reports as reporting. */
static void plan(struct pobox_fleet *f, int64_t now, struct plan *pl)
{
	memset(pl, 0, sizeof *pl);
	if (!f->joined) {
		pl->join = pl->due = !f->stop;
		return;
	}
	int64_t life = f->acct.lease_ms, delay = life / 2 < 1000 ? life / 2 : 1000, oldest = now;
	int urgent_report = 0;
	for (int i = 0; i < f->ng; i++) {
		struct grant *g = &f->g[i];
		if (!g->closed && now >= g->start_by) {
			g->closed = 1;
			g->closed_mono = now;
		}
		if (g->closed && g->inflight == 0 && !g->reporting) {
			pl->close[pl->nclose++] = g->id;
			if (g->closed_mono < oldest)
				oldest = g->closed_mono;
		}
	}
	for (int i = 0; i < f->np; i++) {
		struct permit *p = &f->p[i];
		if (!p->reporting && p->taken == 0 && (p->left == 0 || now >= p->start_by)) {
			pl->close[pl->nclose++] = p->id;
			/* its charge sits far ahead until reported: soon, but leave a
			 * moment for the next bulk call's permit request to carry it */
			urgent_report |= p->nuses > 0 && now - p->done_mono >= 200;
		}
	}
	pl->hist = strcmp(f->row.reported_epoch, f->row.epoch) != 0;
	double rate = decayed(f->take_rate, f->take_rate_at, now, tau_ms(f));
	int64_t target = life / 2, lead = target / 4;
	if (lead < 3 * f->rtt_ms)
		lead = 3 * f->rtt_ms;
	if (lead < 100)
		lead = 100;
	int open = 0;
	for (int i = 0; i < f->ng; i++)
		open += !f->g[i].closed;
	int64_t standing = now < f->standing_until ? f->standing : 0;
	int64_t unmet = f->unmet > standing ? f->unmet : standing;
	if (!f->stop && open < MAX_GRANTS - 4 && (now >= f->lease_retry || f->unmet_urgent) &&
	    (unmet > 0 || (rate > 0.05 && (double)held(f, now, lead) < rate * (double)lead / 1000.0))) {
		pl->want = (int64_t)ceil(rate * (double)target / 1000.0) + unmet;
		if (pl->want < 1)
			pl->want = 1;
		pl->urgent = f->unmet_urgent;
	}
	struct grant *r = reserve_of(f);
	int64_t rlife = f->acct.reserve_ms, retry = rlife / 4 < 2000 ? rlife / 4 : 2000;
	/* renewed at half its life; at once after it was spent from offline,
	 * so the use is reported and the reserve whole again */
	if (!f->stop && f->acct.reserve_share > 0 && open < MAX_GRANTS - 2 &&
	    now - f->last_reserve_try >= retry &&
	    (!r || now - r->sent_mono > r->life_ms / 2 || (r->used > 0 && f->link == L_ONLINE))) {
		/* an unused reserve gets a new life (no capacity needed); a used
		 * one is replaced, and closed once the new one is in hand */
		if (r && r->used == 0 && r->inflight == 0 && r->avail == r->granted)
			pl->extend = r->id;
		else
			pl->reserve = 1;
	}
	if (!f->stop && f->permit_wanted && !permit_usable(f, now) && f->np < MAX_PERMITS)
		pl->permits = 1;
	int reports = pl->nclose && (f->stop || urgent_report || now - oldest >= delay);
	pl->due = pl->want || pl->reserve || pl->extend || pl->permits || pl->hist || reports || f->nunleased;
	if (!pl->due)
		pl->nclose = 0;
	for (int i = 0; i < pl->nclose; i++) {
		struct grant *g = grant_find(f, pl->close[i]);
		if (g)
			g->reporting = 1;
		for (int j = 0; j < f->np; j++)
			if (f->p[j].id == pl->close[i])
				f->p[j].reporting = 1;
	}
}

/* Undoes plan's marks after a failed round trip (mu held). */
static void unplan(struct pobox_fleet *f, const struct plan *pl)
{
	for (int i = 0; i < pl->nclose; i++) {
		struct grant *g = grant_find(f, pl->close[i]);
		if (g)
			g->reporting = 0;
		for (int j = 0; j < f->np; j++)
			if (f->p[j].id == pl->close[i])
				f->p[j].reporting = 0;
	}
}

/* A growable list of uses for a request. */
struct uses {
	struct pobox_fleet_use *u;
	size_t n, cap;
	int oom;
};

static void uses_add(struct uses *l, int64_t lease, int64_t k, int64_t n, int bulk)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->u[i].lease == lease && l->u[i].k == k && l->u[i].bulk == bulk) {
			l->u[i].n += n;
			return;
		}
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 32;
		struct pobox_fleet_use *nu = pobox_realloc(l->u, cap * sizeof *nu);
		if (!nu) {
			l->oom = 1;
			return;
		}
		l->u = nu;
		l->cap = cap;
	}
	l->u[l->n++] = (struct pobox_fleet_use){lease, k, n, bulk};
}

struct use_ctx {
	struct uses *l;
	int64_t lease, shift, since;
};

static int on_use(void *ctx, int64_t k, int64_t n)
{
	struct use_ctx *c = ctx;
	uses_add(c->l, c->lease, k, n, 0);
	return c->l->oom ? POBOX_ENOMEM : 0;
}

/* pre-fleet minutes of the local ledger, moved to the coordinator's clock */
static int on_minute(void *ctx, int64_t minute, int64_t used, int64_t urgent)
{
	struct use_ctx *c = ctx;
	(void)urgent;
	int64_t k = (minute + 1) * 60000 + c->shift;
	if (used > 0 && k > c->since)
		uses_add(c->l, 0, k, used, 0);
	return c->l->oom ? POBOX_ENOMEM : 0;
}

static void set_why(struct pobox_fleet *f, const char *err)
{
	pthread_mutex_lock(&f->mu);
	snprintf(f->why, sizeof f->why, "%s", err);
	pthread_mutex_unlock(&f->mu);
}

/* Writes f->row, in its own transaction on the thread's handle. */
static int save_row(struct pobox_fleet *f)
{
	int rc = pobox_begin(f->tpb);
	if (rc == 0 && (rc = pobox_store_fleet_put(f->tpb->st, &f->row)) == 0)
		return pobox_commit(f->tpb);
	if (rc != POBOX_EBUSY)
		pobox_rollback(f->tpb);
	return rc;
}

static int do_join(struct pobox_fleet *f, char *err, size_t errlen)
{
	struct pobox_fleet_proposal p = {
		.account = f->account, .host = f->host, .budget = f->o.budget, .bulk_limit = f->o.bulk_limit,
		.margin_share = f->o.margin_share, .reserve_share = f->o.reserve_share,
		.urgent_share = f->o.urgent_share, .window_ms = f->o.window_ms,
		.bulk_window_ms = f->o.bulk_window_ms, .lease_ms = f->o.lease_ms,
		.reserve_ms = f->o.reserve_ms, .permit_ms = f->o.permit_ms, .fleet_size = f->o.fleet_size,
	};
	struct pobox_fleet_account a;
	int64_t wall = wall_ms(), sent = pobox_fleet_mono_ms();
	int rc = pobox_fleet_pg_join(f->conn, &p, &a, f->o.timeout_ms, err, errlen);
	if (rc)
		return rc;
	int changed = f->row.epoch[0] && strcmp(f->row.epoch, a.epoch) != 0;
	struct pobox_fleet_row keep = f->row;
	if (changed || !f->row.epoch[0])
		f->row.serial = a.serial;
	snprintf(f->row.epoch, sizeof f->row.epoch, "%s", a.epoch);
	f->row.budget = a.budget;
	f->row.margin = a.margin;
	f->row.window_ms = a.window_ms;
	f->row.bucket_ms = a.bucket_ms;
	f->row.bulk_limit = a.bulk_limit;
	f->row.urgent_share = a.urgent_share;
	f->row.lease_ms = a.lease_ms;
	f->row.reserve_ms = a.reserve_ms;
	f->row.reachable = 1;
	f->row.last_contact_ms = wall_ms();
	f->row.requests++;
	f->row.last_error[0] = '\0';
	if ((rc = pobox_begin(f->tpb)) == 0) {
		if (changed)
			rc = pobox_store_exec(f->tpb->st, "UPDATE fleet_leases SET closed = 1");
		if (rc == 0)
			rc = pobox_store_fleet_put(f->tpb->st, &f->row);
		rc = rc == 0 ? pobox_commit(f->tpb) : (pobox_rollback(f->tpb), rc);
	}
	if (rc) {
		f->row = keep;
		return pobox_errf(err, errlen, rc, "fleet state: %s", pobox_errmsg(f->tpb));
	}
	pthread_mutex_lock(&f->mu);
	f->acct = a;
	f->joined = 1;
	f->coord_off_wall = a.now_ms - wall;
	f->ref_coord = a.now_ms;
	f->ref_mono = sent;
	if (changed)
		for (int i = 0; i < f->ng; i++)
			f->g[i].closed = 1;
	pthread_mutex_unlock(&f->mu);
	pobox_log(POBOX_LOG_INFO, "fleet_joined",
	          "account=\"%s\" host=\"%s\" budget=%lld margin=%lld window_s=%lld bulk_per_window=%lld "
	          "lease_s=%.1f epoch=%s", f->account, f->host, (long long)a.budget, (long long)a.margin,
	          (long long)(a.window_ms / 1000), (long long)a.bulk_limit, (double)a.lease_ms / 1000.0,
	          a.epoch);
	if (changed)
		pobox_log(POBOX_LOG_WARN, "fleet_epoch_changed",
		          "account=\"%s\" epoch=%s reason=\"the coordinator's ledger was re-created or "
		          "restored; re-reporting this host's calls of the last window\"", f->account, a.epoch);
	return 0;
}

/* The grant rows to record from an answer: sent is when this attempt left;
 * for a replayed answer the grant is older than that (invariant 4 then
 * needs the send time moved back by the age of the grant). */
static void grant_row(struct pobox_fleet *f, const struct pobox_fleet_response *r,
                      const struct pobox_fleet_grant *g, int reserve, int64_t sent,
                      struct pobox_fleet_lease_row *l)
{
	int64_t age = r->now_ms - r->grant_ms;
	memset(l, 0, sizeof *l);
	l->id = g->id;
	l->reserve = reserve;
	snprintf(l->epoch, sizeof l->epoch, "%s", r->epoch);
	snprintf(l->boot_id, sizeof l->boot_id, "%s", f->boot);
	l->granted = g->n;
	l->grant_coord_ms = r->grant_ms;
	l->sent_mono_ms = sent - (age > 0 ? (int64_t)ceil((double)age * (1 + DRIFT)) : 0);
	l->life_ms = g->life_ms;
	int64_t slack = g->life_ms / 4 < 1000 ? g->life_ms / 4 : 1000;
	l->start_by_mono_ms = l->sent_mono_ms + (int64_t)((double)g->life_ms * (1 - DRIFT)) - slack;
	l->charge_k = g->k;
	l->granted_at_ms = wall_ms();
}

static void add_grant(struct pobox_fleet *f, const struct pobox_fleet_lease_row *l)
{
	if (!l->id || grant_find(f, l->id) || f->ng == MAX_GRANTS)
		return;
	struct grant *g = &f->g[f->ng++];
	memset(g, 0, sizeof *g);
	g->id = l->id;
	g->reserve = l->reserve;
	g->granted = g->avail = l->granted;
	g->grant_coord = l->grant_coord_ms;
	g->sent_mono = l->sent_mono_ms;
	g->life_ms = l->life_ms;
	g->start_by = l->start_by_mono_ms;
	g->charge_k = l->charge_k;
}

/* What an answer changes, worked out once for recording and publishing. */
struct answer {
	struct pobox_fleet_lease_row lease, res;
	int changed;            /* a new epoch: every grant held is closed */
	int renewed;            /* res is the held reserve given a new life */
	int64_t old_reserve;    /* the reserve res replaces, closed now */
	double grant_rate;
};

/* The answer's grant rows, and what it does to the fleet state row. */
static void read_answer(struct pobox_fleet *f, const struct pobox_fleet_request *q,
                        const struct pobox_fleet_response *r, int64_t sent, struct answer *a)
{
	memset(a, 0, sizeof *a);
	a->changed = r->status != POBOX_FLEET_STALE && f->row.epoch[0] && strcmp(f->row.epoch, r->epoch) != 0;
	if (r->status == POBOX_FLEET_OK || r->status == POBOX_FLEET_REPLAY) {
		if (r->lease.id)
			grant_row(f, r, &r->lease, 0, sent, &a->lease);
		if (r->reserve.id)
			grant_row(f, r, &r->reserve, 1, sent, &a->res);
	}
	f->row.next_seq = r->next_seq;
	if (r->status != POBOX_FLEET_STALE) {
		f->row.serial = a->changed || r->serial > f->row.serial ? r->serial : f->row.serial;
		snprintf(f->row.epoch, sizeof f->row.epoch, "%s", r->epoch);
		if (r->status == POBOX_FLEET_OK && q->send_hist)
			snprintf(f->row.reported_epoch, sizeof f->row.reported_epoch, "%s", r->epoch);
		f->row.spent = r->spent;
		f->row.free = r->free;
		f->row.hosts = r->hosts;
		f->row.learning = r->learning;
		f->row.soon = r->refill / (r->active > 0 ? r->active : 1);
	}
	f->row.reachable = 1;
	f->row.last_contact_ms = f->row.last_attempt_ms = wall_ms();
	f->row.last_error[0] = '\0';
	f->row.requests++;
	pthread_mutex_lock(&f->mu);
	int64_t now = pobox_fleet_mono_ms();
	a->grant_rate = decayed(f->grant_rate, f->grant_rate_at, now, tau_ms(f)) +
	                1000.0 * (double)a->lease.granted / (double)tau_ms(f);
	struct grant *old = reserve_of(f);
	a->old_reserve = a->res.id && old && old->id != a->res.id ? old->id : 0;
	a->renewed = a->res.id && grant_find(f, a->res.id) != NULL;
	pthread_mutex_unlock(&f->mu);
	f->row.grant_rate = a->grant_rate;
}

/* Writes the answer to the outbox, in one transaction (invariant 1: a
 * grant is usable only once this has committed). */
static int record_answer(struct pobox_fleet *f, const struct pobox_fleet_response *r,
                         const struct answer *a)
{
	struct pobox_store *st = f->tpb->st;
	int rc = pobox_begin(f->tpb);
	if (rc)
		return rc;
	if (a->changed)
		rc = pobox_store_exec(st, "UPDATE fleet_leases SET closed = 1");
	if (rc == 0 && a->lease.id)
		rc = pobox_store_fleet_lease_add(st, &a->lease);
	if (rc == 0 && a->res.id)
		rc = a->renewed ? pobox_store_fleet_lease_renew(st, &a->res) : pobox_store_fleet_lease_add(st, &a->res);
	if (rc == 0 && a->old_reserve) /* only now: the new one is in hand */
		rc = pobox_store_fleet_lease_close(st, a->old_reserve);
	for (size_t i = 0; i < r->nclosed && rc == 0; i++)
		rc = pobox_store_fleet_lease_drop(st, r->closed[i]);
	if (rc == 0 && r->status != POBOX_FLEET_STALE && f->acct.window_ms > 0)
		rc = pobox_store_fleet_usage_prune(st, r->now_ms - f->acct.window_ms);
	if (rc == 0)
		rc = pobox_store_fleet_put(st, &f->row);
	return rc == 0 ? pobox_commit(f->tpb) : (pobox_rollback(f->tpb), rc);
}

/* The grants' side of publishing (mu held). */
static void publish_grants(struct pobox_fleet *f, const struct pobox_fleet_response *r,
                           const struct answer *a, int64_t sent, int64_t now)
{
	if (a->changed) {
		for (int i = 0; i < f->ng; i++)
			if (!f->g[i].closed) {
				f->g[i].closed = 1;
				f->g[i].closed_mono = now;
			}
		f->np = 0;
	}
	add_grant(f, &a->lease);
	add_grant(f, &a->res);
	struct grant *rg = a->renewed ? grant_find(f, a->res.id) : NULL;
	if (rg) { /* its new life; what was spent from it stays spent */
		rg->grant_coord = a->res.grant_coord_ms;
		rg->sent_mono = a->res.sent_mono_ms;
		rg->life_ms = a->res.life_ms;
		rg->start_by = a->res.start_by_mono_ms;
		rg->charge_k = a->res.charge_k;
		rg->closed = 0;
	}
	struct grant *o = a->old_reserve ? grant_find(f, a->old_reserve) : NULL;
	if (o) {
		o->closed = 1;
		o->closed_mono = now;
	}
	for (size_t i = 0; i < r->nclosed; i++) {
		struct grant *g = grant_find(f, r->closed[i]);
		if (g)
			grant_remove(f, g);
		for (int j = 0; j < f->np; j++)
			if (f->p[j].id == r->closed[i])
				f->p[j--] = f->p[--f->np];
	}
	if (r->status == POBOX_FLEET_OK && r->permit.id && f->np < MAX_PERMITS) {
		/* a replayed permit may have been used by a process that died: never */
		struct permit *p = &f->p[f->np++];
		memset(p, 0, sizeof *p);
		p->id = r->permit.id;
		p->n = p->left = r->permit.n;
		p->grant_coord = r->grant_ms;
		p->sent_mono = sent;
		int64_t slack = r->permit.life_ms / 4 < 1000 ? r->permit.life_ms / 4 : 1000;
		p->start_by = sent + (int64_t)((double)r->permit.life_ms * (1 - DRIFT)) - slack;
		p->charge_k = r->permit.k;
	}
}

/* The demand's side of publishing (mu held): what was asked is answered. */
static void publish_demand(struct pobox_fleet *f, const struct pobox_fleet_request *q,
                           const struct pobox_fleet_response *r, const struct answer *a, int64_t now)
{
	if (q->permits) {
		f->permit_wanted = 0;
		f->permit_refused_wall = r->permit.id ? 0
		                         : wall_ms() + (r->bulk_free_ms > r->now_ms ? r->bulk_free_ms - r->now_ms + 1 : 1000);
	}
	if (q->want) {
		f->fresh |= a->lease.granted > 0 && (f->unmet > 0 || f->standing > 0);
		f->unmet = 0;
		f->unmet_urgent = 0;
		if (a->lease.granted >= q->want)
			f->standing = 0; /* met in full */
		/* short: ask again when the window frees some, not before */
		int64_t wait = 0, cap = f->acct.lease_ms / 4 < 100 ? 100 : f->acct.lease_ms / 4;
		int64_t floor_ = f->acct.lease_ms / 40 < 50 ? 50 : f->acct.lease_ms / 40;
		if (a->lease.granted < q->want)
			wait = r->single_free_ms > r->now_ms ? r->single_free_ms - r->now_ms : cap;
		f->lease_retry = now + (wait > cap ? cap : wait > 0 && wait < floor_ ? floor_ : wait);
	}
	if (q->reserve || q->extend)
		f->last_reserve_try = now;
	if (a->lease.granted)
		f->last_grant_mono = now;
}

/* Records an answer in the outbox, then publishes it (invariant 1). */
static int take_answer(struct pobox_fleet *f, const struct plan *pl,
                       const struct pobox_fleet_request *q, const struct pobox_fleet_response *r,
                       int64_t sent, char *err, size_t errlen)
{
	struct pobox_fleet_row keep = f->row;
	struct answer a;
	read_answer(f, q, r, sent, &a);
	int rc = record_answer(f, r, &a);
	if (rc) {
		f->row = keep;
		return pobox_errf(err, errlen, rc, "fleet state: %s", pobox_errmsg(f->tpb));
	}
	pthread_mutex_lock(&f->mu);
	int64_t now = pobox_fleet_mono_ms();
	publish_grants(f, r, &a, sent, now);
	unplan(f, pl); /* whatever was not acknowledged is reported again */
	publish_demand(f, q, r, &a, now);
	f->grant_rate = a.grant_rate;
	f->grant_rate_at = now;
	f->free = r->free;
	f->spent = r->spent;
	f->hosts = r->hosts;
	f->learning = r->learning;
	f->ref_coord = r->now_ms;
	f->ref_mono = sent;
	pthread_mutex_unlock(&f->mu);
	if (a.changed)
		pobox_log(POBOX_LOG_WARN, "fleet_epoch_changed",
		          "account=\"%s\" epoch=%s reason=\"the coordinator's ledger went back in time (a "
		          "restore, or a failover that lost commits); re-reporting this host's calls of "
		          "the last window\"", f->account, r->epoch);
	if (r->status == POBOX_FLEET_REPLAY)
		pobox_log(POBOX_LOG_INFO, "fleet_replayed", "seq=%lld lease=%lld reason=\"a retried request "
		          "was answered from the ledger: nothing granted twice\"", (long long)q->seq,
		          (long long)r->lease.n);
	if (r->status == POBOX_FLEET_STALE)
		pobox_log(POBOX_LOG_WARN, "fleet_sequence_reset", "next_seq=%lld reason=\"the coordinator "
		          "had answered newer requests of this host\"", (long long)r->next_seq);
	return 0;
}

/* Builds the request for pl, makes the round trip, records the answer. */
static int do_grant(struct pobox_fleet *f, struct plan *pl, char *err, size_t errlen)
{
	struct uses uses = {0}, hist = {0};
	struct pobox_fleet_response r;
	int64_t unleased[MAX_UNLEASED];
	int nunleased, rc = 0;

	pthread_mutex_lock(&f->mu);
	int64_t now = pobox_fleet_mono_ms();
	int64_t coord_now = f->ref_coord + (now - f->ref_mono);
	for (int i = 0; i < pl->nclose; i++)
		for (int j = 0; j < f->np; j++)
			if (f->p[j].id == pl->close[i])
				for (int k = 0; k < f->p[j].nuses; k++)
					uses_add(&uses, f->p[j].id, f->p[j].use_k[k], 1, 1);
	if (pl->hist) /* what may still be in flight from grants of before */
		for (int i = 0; i < f->ng; i++)
			if (f->g[i].inflight > 0)
				uses_add(&hist, 0, f->g[i].charge_k, f->g[i].inflight, 0);
	nunleased = f->nunleased;
	memcpy(unleased, f->unleased, (size_t)nunleased * sizeof *unleased);
	f->nunleased = 0;
	pthread_mutex_unlock(&f->mu);
	for (int i = 0; i < nunleased; i++)
		uses_add(&hist, 0, unleased[i], 1, 1);

	for (int i = 0; i < pl->nclose && rc == 0; i++) {
		struct use_ctx c = {&uses, pl->close[i], 0, 0};
		rc = pobox_store_fleet_lease_uses(f->tpb->st, pl->close[i], on_use, &c);
	}
	if (rc == 0 && pl->hist) {
		int64_t since = coord_now - f->acct.window_ms;
		struct use_ctx c = {&hist, 0, 0, since};
		rc = pobox_store_fleet_history(f->tpb->st, since, on_use, &c);
		if (rc == 0 && !f->row.reported_epoch[0]) {
			/* joining for the first time: the calls made before, by the
			 * local ledger's minutes, as late as they can have been */
			c.shift = f->coord_off_wall + 1;
			rc = pobox_store_quota_minutes(f->tpb->st, wall_ms(), on_minute, &c);
		}
	}
	if (rc == 0 && (uses.oom || hist.oom))
		rc = POBOX_ENOMEM;
	if (rc) {
		rc = pobox_errf(err, errlen, rc, "fleet state: %s", pobox_errmsg(f->tpb));
		goto out;
	}
	struct pobox_fleet_request q = {
		.account = f->account, .host = f->host, .incarnation = f->row.incarnation,
		.seq = f->row.next_seq, .epoch = f->row.epoch[0] ? f->row.epoch : NULL,
		.serial = f->row.serial, .want = pl->want, .urgent = pl->urgent, .reserve = pl->reserve,
		.extend = pl->extend,
		.permits = pl->permits, .horizon_ms = f->o.horizon_ms, .bulk_horizon_ms = f->o.bulk_horizon_ms,
		.close = pl->close, .nclose = (size_t)pl->nclose, .uses = uses.u, .nuses = uses.n,
		.hist = hist.u, .nhist = hist.n, .send_hist = pl->hist,
	};
	int64_t sent = pobox_fleet_mono_ms();
	rc = pobox_fleet_pg_grant(f->conn, &q, &r, f->o.timeout_ms, err, errlen);
	if (pobox_log_enabled(POBOX_LOG_DEBUG))
		pobox_log(POBOX_LOG_DEBUG, "fleet_round_trip",
		          "seq=%lld want=%lld reserve=%d permits=%lld close=%d uses=%zu hist=%d rc=%d status=%d "
		          "lease=%lld reserve_n=%lld permit=%lld free=%lld", (long long)q.seq,
		          (long long)q.want, q.reserve, (long long)q.permits, pl->nclose, uses.n, pl->hist, rc,
		          rc ? -1 : (int)r.status, rc ? 0LL : (long long)r.lease.n,
		          rc ? 0LL : (long long)r.reserve.n, rc ? 0LL : (long long)r.permit.n,
		          rc ? 0LL : (long long)r.free);
	int64_t rtt = pobox_fleet_mono_ms() - sent;
	pthread_mutex_lock(&f->mu);
	f->rtt_ms = f->rtt_ms ? (f->rtt_ms * 7 + rtt) / 8 : rtt;
	pthread_mutex_unlock(&f->mu);
	if (rc == 0) {
		rc = take_answer(f, pl, &q, &r, sent, err, errlen);
		pobox_fleet_pg_response_free(&r);
	}
out:
	if (rc) {
		pthread_mutex_lock(&f->mu);
		unplan(f, pl);
		for (int i = 0; i < nunleased && f->nunleased < MAX_UNLEASED; i++)
			f->unleased[f->nunleased++] = unleased[i];
		pthread_mutex_unlock(&f->mu);
	}
	pobox_free(uses.u);
	pobox_free(hist.u);
	return rc;
}

static int round_trip(struct pobox_fleet *f, struct plan *pl, char *err, size_t errlen)
{
	int rc;
	if (!f->conn && (rc = pobox_fleet_pg_connect(&f->conn, f->url, f->password, f->host,
	                                             f->o.timeout_ms, err, errlen)) != 0)
		return rc;
	rc = pl->join ? do_join(f, err, errlen) : do_grant(f, pl, err, errlen);
	if (rc == POBOX_ETRANSIENT || rc == POBOX_ECONFIG || rc == POBOX_EIO) {
		/* whatever state the connection is in, start afresh next time */
		pobox_fleet_pg_close(f->conn);
		f->conn = NULL;
	}
	return rc;
}

/* After a round trip (mu not held). */
static void trip_ended(struct pobox_fleet *f, int rc, const char *err)
{
	int64_t now = pobox_fleet_mono_ms();
	enum link was;
	pthread_mutex_lock(&f->mu);
	was = f->link;
	if (rc == 0) {
		f->link = L_ONLINE;
		f->fails = 0;
		f->next_try = 0;
	} else {
		f->link = rc == POBOX_ECONFIG ? L_REFUSED : L_OFFLINE;
		snprintf(f->why, sizeof f->why, "%s", err);
		f->fails++;
		int64_t back = 200LL << (f->fails < 4 ? f->fails : 4);
		f->next_try = now + (rc == POBOX_ECONFIG ? 30000 : back > 2000 ? 2000 : back);
		f->permit_wanted = 0; /* the waiting lane sees the link down */
	}
	f->trips++;
	pthread_cond_broadcast(&f->answer);
	pthread_mutex_unlock(&f->mu);
	if (rc == 0 && was == L_OFFLINE)
		pobox_log(POBOX_LOG_INFO, "fleet_online", "account=\"%s\" down_s=%lld", f->account,
		          (long long)((wall_ms() - f->offline_since_wall) / 1000));
	if (rc && f->link != was) {
		if (rc == POBOX_ECONFIG)
			pobox_log(POBOX_LOG_ERROR, "fleet_refused", "account=\"%s\" reason=\"%s\"", f->account, err);
		else
			pobox_log(POBOX_LOG_WARN, "fleet_offline", "account=\"%s\" reason=\"%s\" then=\"the rest "
			          "of the leases, then the standing reserve, then bulk only\"", f->account, err);
		f->offline_since_wall = wall_ms();
	}
	if (rc && f->tpb && (f->link != was || now - f->row.last_attempt_ms > 10000)) {
		/* for status: unreachable, and why (not on every retry) */
		f->row.reachable = 0;
		f->row.last_attempt_ms = wall_ms();
		snprintf(f->row.last_error, sizeof f->row.last_error, "%s", err);
		save_row(f);
	}
}

/* The last round trip: every lease (not the reserve) closed and reported. */
static void release(struct pobox_fleet *f)
{
	struct plan pl;
	char err[POBOX_ERRLEN];
	int closed = 0;
	if (!f->joined || f->link == L_REFUSED || !f->tpb)
		return;
	pthread_mutex_lock(&f->mu);
	for (int i = 0; i < f->ng; i++)
		if (!f->g[i].reserve && !f->g[i].closed) {
			f->g[i].closed = 1;
			closed = 1;
		}
	pthread_mutex_unlock(&f->mu);
	/* closed in the outbox before they are reported: never spent after */
	if (closed && pobox_begin(f->tpb) == 0) {
		if (pobox_store_exec(f->tpb->st, "UPDATE fleet_leases SET closed = 1 WHERE kind = 'lease'") == 0)
			pobox_commit(f->tpb);
		else
			pobox_rollback(f->tpb);
	}
	pthread_mutex_lock(&f->mu);
	plan(f, pobox_fleet_mono_ms(), &pl);
	pthread_mutex_unlock(&f->mu);
	if (pl.due && round_trip(f, &pl, err, sizeof err) != 0)
		pobox_log(POBOX_LOG_WARN, "fleet_release_failed", "reason=\"%s\" then=\"reported by the next "
		          "start\"", err);
}

static void *thread_main(void *arg)
{
	struct pobox_fleet *f = arg;
	char err[POBOX_ERRLEN];
	struct plan pl;
	struct timespec ts;

	pthread_mutex_lock(&f->mu);
	while (!f->stop) {
		int64_t now = pobox_fleet_mono_ms();
		if (!f->tpb) {
			/* the thread's own handle: its transactions never mix with the
			 * delivery thread's */
			pthread_mutex_unlock(&f->mu);
			int rc = pobox_open(&f->tpb, f->db_path, &f->o.open, err, sizeof err);
			int found = 0;
			if (rc == 0 && (rc = pobox_store_fleet_get(f->tpb->st, &f->row, &found)) == 0 && !found)
				rc = POBOX_ECORRUPT;
			if (rc) {
				pobox_close(f->tpb);
				f->tpb = NULL;
				set_why(f, err);
				pobox_log(POBOX_LOG_ERROR, "fleet_outbox_failed", "reason=\"%s\"", err);
			}
			pthread_mutex_lock(&f->mu);
			if (rc) {
				f->next_try = now + 2000;
				goto wait;
			}
		}
		if (now >= f->next_try) {
			plan(f, now, &pl);
			if (pl.due) {
				pthread_mutex_unlock(&f->mu);
				err[0] = '\0';
				int rc = round_trip(f, &pl, err, sizeof err);
				if (rc) { /* what was to be reported is reported again */
					pthread_mutex_lock(&f->mu);
					unplan(f, &pl);
					pthread_mutex_unlock(&f->mu);
				}
				trip_ended(f, rc, err);
				pthread_mutex_lock(&f->mu);
				continue;
			}
		}
	wait:
		clock_gettime(CLOCK_MONOTONIC, &ts);
		int64_t nap = f->next_try > now && f->next_try - now < 100 ? f->next_try - now : 100;
		ts.tv_nsec += (long)(nap * 1000000);
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&f->wake, &f->mu, &ts);
	}
	pthread_mutex_unlock(&f->mu);
	release(f);
	pobox_fleet_pg_close(f->conn);
	f->conn = NULL;
	pobox_close(f->tpb);
	f->tpb = NULL;
	return NULL;
}
