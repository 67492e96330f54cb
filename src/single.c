/*
 * single.c - the single-call lane (see single.h).
 *
 * Owns building the update URLs (GET when the whole URL fits in
 * max_get_bytes, else POST with the parameters as a form body), the
 * reservation and settlement of quota around the calls, and applying each
 * call's outcome to its profile.  HTTP is http.c's multi client, parsing
 * response.c's, verdicts classify.c's.
 *
 * Threads: during a step, `threads` sender threads each drive their own
 * curl multi handle (their share of the connections) and take calls from
 * the published groups, oldest first.  The calling thread meanwhile does
 * all the database work: it prepares the next group (scan, URLs, quota
 * reservation) while the current one is on the wire, settles answered
 * calls every SETTLE_EVERY_MS, and ends a group as soon as its last answer
 * is in -- so the connections never wait for the database.  At most two
 * groups are in hand at once.  A sender touches a call from the moment it
 * takes it until it puts it on its group's done list, and never after;
 * everything else the threads share (the groups' counters and done lists,
 * the stop and outage state) is under `mu`.
 */
#include "single.h"
#include "alloc.h"
#include "backoff.h"
#include "classify.h"
#include "credentials.h"
#include "error.h"
#include "fleet.h"
#include "http.h"
#include "log.h"
#include "outage.h"
#include "outbox.h"
#include "response.h"
#include "store.h"
#include "urlenc.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SETTLE_EVERY_MS 200

struct call {
	int64_t profile;
	int64_t cells;           /* its updates in the batch */
	int urgent;
	int64_t minute;          /* quota minute it was reserved in */
	int64_t lease;           /* fleet: the lease its unit came from, 0: none */
	int64_t start_by;        /* fleet: it must not start after this (monotonic ms) */
	int64_t answered;        /* monotonic ms its answer arrived, -1: none */
	char *url;               /* full URL (GET) or path only (POST) */
	char *body;              /* POST form body, NULL for GET */
	size_t body_len;
	/* QUEUED -> FLYING (a sender took it) -> DONE (back on the done list)
	 * -> SETTLED (outcome written); budget refusals go QUEUED -> SETTLED */
	enum { C_QUEUED, C_FLYING, C_DONE, C_SETTLED } st;
	enum pobox_class cls;
	int charge, reached;
	int aborted;             /* ended by our stop or deadline: never answered */
	long http;
	int64_t retry_after_ms;
	char msg[160];
};

struct pobox_singler;

/* One single-lane batch in hand: its calls and their progress. */
struct group {
	int64_t batch;
	struct call *calls;
	size_t ncalls, capcalls;
	int64_t counts[3];        /* delivered, not found, failed (settler's) */
	size_t held;              /* calls that stay in the batch (settler's) */
	size_t *settling;         /* the settler's copy of done */
	size_t capdone;
	/* under mu */
	int published;            /* its calls may be taken; the slot is in use */
	uint64_t seq;             /* publication order: older groups go first */
	size_t next;              /* next call to hand out */
	size_t taken, answered;   /* handed to a multi handle / back from it */
	size_t *done, ndone;      /* answered, not yet settled (capacity ncalls) */
};

struct sender {
	struct pobox_singler *s;
	struct pobox_http_multi *multi;  /* kept from step to step: live connections */
	struct pobox_response_parser *parser; /* reset for each answer */
	int64_t conc;                    /* its share of the connections */
	int index;
	pthread_t th;
};

struct pobox_singler {
	struct pobox *pb;
	struct pobox_deliver_opts d;
	struct pobox_single_opts o;
	struct sender *senders;
	int nsenders;
	int broken;               /* an error mid-step: calls may still be in a multi
	                           * handle, so no further step may run */
	struct pobox_backoff backoff;
	char *client, *base_url;
	char **names;             /* attribute id -> name */
	size_t nnames;
	struct group g[2];
	pthread_mutex_t mu;
	pthread_cond_t cv;        /* to the settler: a group is answered, a sender ended */
	pthread_cond_t work;      /* to the senders: calls published, or closing */
	/* under mu */
	uint64_t published;       /* groups published so far */
	size_t sent;              /* calls handed to a multi handle this step */
	int live_senders;
	int closing;              /* no more groups this step: senders end when idle */
	int failed_rc;            /* a sender's or the settler's error: stop sending */
	char failed_err[POBOX_ERRLEN];
	int64_t down_since_ms;    /* first unreachable call of an outage, -1 none */
	int64_t recovered_at_ms;  /* last recovery, for the ramp */
	int stop;                 /* budget, auth or config: send no more */
	int aborted;              /* a stop or deadline (abort_fn): send no more;
	                           * calls in flight end unanswered */
	int offline;              /* a call could not reach Target: send no more */
	char offline_msg[160];
	struct pobox_outage net;  /* probes and log lines of an outage (outage.h) */
	int lift;                 /* an answer ended an outage: lift the pauses */
	atomic_int halt;          /* stop || failed_rc, readable without mu (the
	                           * multi handles' gate) */
	int pause_written;        /* the settler's: the lane pause for stop is recorded */
	int offline_written;      /* the settler's: the offline pause is recorded */
	int64_t probe_at_ms;      /* ... until then */
	struct pobox_verdict stop_v;
	char stop_msg[600];
	int senders_running;      /* the step's sender threads exist */
	struct pobox_cred *cred;  /* a reference, or NULL */
	uint64_t token_gen;       /* of the token the multi handles hold */
};

static int64_t now_ms(struct pobox_singler *s) { return pobox_clock_now_ms(&s->pb->clock); }

/* A call's tag in a multi handle: its index in its group, and which of
 * the two groups. */
static void *call_tag(const struct pobox_singler *s, const struct group *g, size_t i)
{
	return (void *)(uintptr_t)(i << 1 | (size_t)(g - s->g));
}

/* The group and index a tag names. */
static struct group *call_of(struct pobox_singler *s, void *tag, size_t *idx)
{
	*idx = (size_t)((uintptr_t)tag >> 1);
	return &s->g[(uintptr_t)tag & 1];
}

/* Reads and classifies a call's answer into c (a sender thread, without
 * mu: the call is this sender's until it is on the done list).  Returns
 * the verdict; *fail is the transport failure, if any. */
static struct pobox_verdict judge(struct sender *w, struct call *c, int rc,
                                  const struct pobox_http_resp *resp, int64_t now,
                                  enum pobox_http_fail *fail)
{
	struct pobox_answer ans;
	struct pobox_verdict v;
	char err[256] = "";
	int answer_rc = 0;

	memset(&ans, 0, sizeof ans);
	ans.success = -1;
	c->http = resp->status;
	c->retry_after_ms = resp->retry_after_ms;
	/* the client reports transport failures both ways: an error code and
	 * the precise category, which is what classification needs */
	*fail = resp->fail != POBOX_HTTP_FAIL_NONE ? resp->fail
	        : rc != 0 ? POBOX_HTTP_FAIL_OTHER : POBOX_HTTP_FAIL_NONE;
	c->answered = *fail == POBOX_HTTP_FAIL_NONE ? pobox_fleet_mono_ms() : -1;
	/* a refused or unresolved connection never reached Target */
	c->reached = !(*fail == POBOX_HTTP_FAIL_CONNECT || *fail == POBOX_HTTP_FAIL_RESOLVE);
	c->aborted = *fail == POBOX_HTTP_FAIL_ABORTED;
	if (*fail == POBOX_HTTP_FAIL_NONE) {
		const char *b = resp->body ? resp->body : "";
		enum pobox_answer_kind k = resp->status >= 200 && resp->status < 300 ? POBOX_ANSWER_SINGLE
		                                                                   : POBOX_ANSWER_ANY;
		answer_rc = pobox_response_parse_again(w->parser, k, &ans, b, resp->body_len, err, sizeof err);
		if (answer_rc && k == POBOX_ANSWER_ANY) {
			answer_rc = 0;
			pobox_response_error_text(c->msg, sizeof c->msg, b, resp->body_len);
		} else if (answer_rc) {
			snprintf(c->msg, sizeof c->msg, "%.150s", err);
		} else if (ans.message) {
			snprintf(c->msg, sizeof c->msg, "%.150s", ans.message);
		}
	} else {
		snprintf(c->msg, sizeof c->msg, "%.150s", resp->errmsg);
	}
	struct pobox_outcome oc = {
		.call = POBOX_CALL_SINGLE,
		.fail = *fail,
		.http_status = resp->status,
		.answer_rc = answer_rc,
		.success = ans.success,
		.message = c->msg[0] ? c->msg : NULL,
		.retry_after_ms = resp->retry_after_ms,
		.now_ms = now,
	};
	pobox_classify(&v, &oc);
	c->cls = v.cls;
	c->charge = v.charge_attempt;
	if (v.retry_after_ms > c->retry_after_ms)
		c->retry_after_ms = v.retry_after_ms;
	if (!c->msg[0])
		snprintf(c->msg, sizeof c->msg, "%s", v.reason);
	pobox_answer_free(&ans);
	return v;
}

/* What a call's outcome means for the lane (mu held): a stop (budget,
 * auth, config, our own abort), the network gone (the rest of the step is
 * not sent; outage.h), or back.  Returns an outage event to log. */
static enum pobox_outage_event note_outcome(struct pobox_singler *s, const struct call *c,
                                            const struct pobox_verdict *v,
                                            enum pobox_http_fail fail, int64_t now)
{
	if (c->aborted && !s->aborted) {
		s->aborted = 1;
		atomic_store(&s->halt, 1);
	}
	if ((v->cls == POBOX_CLASS_BUDGET || v->cls == POBOX_CLASS_AUTH || v->cls == POBOX_CLASS_CONFIG) &&
	    !s->stop) {
		s->stop = 1;
		atomic_store(&s->halt, 1);
		s->stop_v = *v;
		s->stop_v.retry_after_ms = c->retry_after_ms;
		snprintf(s->stop_msg, sizeof s->stop_msg, "HTTP %ld: %s", c->http, c->msg);
	}
	if (!c->reached) {
		/* the network is gone: this step sends nothing more */
		if (!s->offline)
			snprintf(s->offline_msg, sizeof s->offline_msg, "%s", c->msg);
		s->offline = 1;
		atomic_store(&s->halt, 1);
		if (s->down_since_ms < 0)
			s->down_since_ms = now;
		return POBOX_OUTAGE_NONE;
	}
	if (fail != POBOX_HTTP_FAIL_NONE)
		return POBOX_OUTAGE_NONE;
	if (s->down_since_ms >= 0) { /* for the ramp */
		s->down_since_ms = -1;
		s->recovered_at_ms = now;
	}
	s->offline = 0; /* an answer after all: no pause for this step */
	enum pobox_outage_event ev = pobox_outage_ok(&s->net, now);
	s->lift |= ev == POBOX_OUTAGE_END;
	return ev;
}

static void on_done(void *ctx, void *user, int rc, struct pobox_http_resp *resp)
{
	struct sender *w = ctx;
	struct pobox_singler *s = w->s;
	size_t idx;
	struct group *g = call_of(s, user, &idx);
	struct call *c = &g->calls[idx];
	enum pobox_http_fail fail;
	int64_t now = now_ms(s);
	struct pobox_verdict v = judge(w, c, rc, resp, now, &fail);

	pthread_mutex_lock(&s->mu);
	enum pobox_outage_event ev = note_outcome(s, c, &v, fail, now);
	struct pobox_outage net = s->net;
	c->st = C_DONE;
	g->done[g->ndone++] = idx;
	g->answered++;
	if (g->answered == g->taken)
		pthread_cond_signal(&s->cv); /* perhaps the group's last answer */
	pthread_mutex_unlock(&s->mu);
	pobox_outage_log(&net, ev, now);
}

/* The multi handles' gate: queued calls start only while the lane goes on. */
static int may_send(void *ctx)
{
	const struct sender *w = ctx;
	return !atomic_load_explicit(&w->s->halt, memory_order_relaxed);
}

/* A call queued in a multi handle but never started, taken back after the
 * lane stopped (mu held): it is settled as never sent. */
static void unsent(void *ctx, void *user)
{
	struct sender *w = ctx;
	size_t idx;
	struct group *g = call_of(w->s, user, &idx);
	g->calls[idx].st = C_QUEUED;
	g->taken--;
}

static int load_name(void *ctx, int64_t id, const char *name)
{
	struct pobox_singler *s = ctx;
	if ((size_t)id >= s->nnames) {
		size_t n = (size_t)id + 64;
		char **nn = pobox_realloc(s->names, n * sizeof *nn);
		if (!nn)
			return POBOX_ENOMEM;
		memset(nn + s->nnames, 0, (n - s->nnames) * sizeof *nn);
		s->names = nn;
		s->nnames = n;
	}
	if (!s->names[id] && !(s->names[id] = pobox_strdup(name)))
		return POBOX_ENOMEM;
	return 0;
}

int pobox_singler_new(struct pobox_singler **out, struct pobox *pb,
                      const struct pobox_deliver_opts *d, const struct pobox_single_opts *o,
                      char *err, size_t errlen)
{
	struct pobox_singler *s;
	struct pobox_http_config hc;
	int rc;
	if ((rc = pobox_deliver_check(d, err, errlen)) != 0 ||
	    (rc = pobox_http_global_init(err, errlen)) != 0)
		return rc;
	if (!(s = pobox_calloc(1, sizeof *s)))
		return pobox_errf(err, errlen, POBOX_ENOMEM, "out of memory");
	s->pb = pb;
	s->d = *d;
	s->o = *o;
	s->down_since_ms = -1;
	s->recovered_at_ms = -1;
	pthread_mutex_init(&s->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cv, &ca);
	pthread_cond_init(&s->work, &ca);
	pthread_condattr_destroy(&ca);
	s->client = pobox_strdup(d->client);
	s->base_url = pobox_deliver_base_url(d);
	if (!s->client || !s->base_url) {
		rc = pobox_errf(err, errlen, POBOX_ENOMEM, "out of memory");
		goto fail;
	}
	s->d.token = NULL;
	s->cred = s->d.cred = pobox_cred_ref(d->cred);
	pobox_http_config_init(&hc);
	hc.connect_timeout_ms = d->connect_timeout_ms;
	hc.timeout_ms = d->request_timeout_ms;
	hc.verify_tls = d->verify_tls;
	hc.bearer_token = d->token;
	hc.compressed_answers = 0; /* a single call's answer is a few hundred bytes */
	hc.abort_fn = d->abort_fn;
	hc.abort_ctx = d->abort_ctx;
	hc.clock = &pb->clock;
	/* the connections are split between the senders; never a sender
	 * without one */
	int64_t conc = o->concurrency > 0 ? o->concurrency : 1;
	int64_t nth = o->threads > 0 ? o->threads : 1;
	if (nth > conc)
		nth = conc;
	if (!(s->senders = pobox_calloc((size_t)nth, sizeof *s->senders))) {
		rc = pobox_errf(err, errlen, POBOX_ENOMEM, "out of memory");
		goto fail;
	}
	for (int i = 0; i < (int)nth; i++) {
		struct sender *w = &s->senders[i];
		w->s = s;
		w->index = i;
		w->conc = conc / nth + (i < conc % nth);
		s->nsenders++; /* counted first: a half-made sender is freed too */
		if ((rc = pobox_http_multi_new(&w->multi, &hc, (int)w->conc, on_done, w, err, errlen)) != 0 ||
		    (rc = pobox_response_parser_new(&w->parser, POBOX_ANSWER_SINGLE, NULL, NULL, err, errlen)) != 0)
			goto fail;
		pobox_http_multi_set_gate(w->multi, may_send);
	}
	pobox_backoff_init(&s->backoff, d->backoff_base_ms, d->backoff_cap_ms, 0,
	                   (d->seed ? d->seed : (uint64_t)now_ms(s)) ^ ((uint64_t)getpid() << 20) ^ 0x5157);
	pobox_outage_init(&s->net, "single", d->backoff_base_ms, d->backoff_cap_ms,
	                  pobox_backoff_rand(&s->backoff));
	*out = s;
	return 0;
fail:
	pobox_singler_free(s);
	return rc;
}

static void group_clear(struct group *g)
{
	for (size_t i = 0; i < g->ncalls; i++) {
		pobox_free(g->calls[i].url);
		pobox_free(g->calls[i].body);
	}
	g->ncalls = 0;
	g->batch = 0;
	g->held = 0;
	memset(g->counts, 0, sizeof g->counts);
}

void pobox_singler_free(struct pobox_singler *s)
{
	if (!s)
		return;
	for (int i = 0; i < 2; i++) {
		group_clear(&s->g[i]);
		pobox_free(s->g[i].calls);
		pobox_free(s->g[i].done);
		pobox_free(s->g[i].settling);
	}
	for (int i = 0; i < s->nsenders; i++) {
		pobox_http_multi_free(s->senders[i].multi);
		pobox_response_parser_free(s->senders[i].parser);
	}
	pobox_free(s->senders);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	pthread_cond_destroy(&s->work);
	for (size_t i = 0; i < s->nnames; i++)
		pobox_free(s->names[i]);
	pobox_free(s->names);
	pobox_cred_free(s->cred);
	pobox_free(s->client);
	pobox_free(s->base_url);
	pobox_free(s);
}

/* ---- the token ------------------------------------------------------- */

/* Whether 401/403 is for the credentials to handle (refresh once) rather
 * than an immediate pause. */
static int cred_refreshes(const struct pobox_singler *s)
{
	return s->cred && pobox_cred_source(s->cred) != POBOX_CRED_NONE;
}

/* Puts the current token on every sender's handle; only between steps or
 * before the first group of one (nothing in flight).  0 or the reason. */
static int sync_token(struct pobox_singler *s, char *err, size_t errlen)
{
	const char *tok;
	uint64_t gen;
	int rc;
	if (!s->cred)
		return 0;
	if ((rc = pobox_cred_token(s->cred, &tok, &gen, err, errlen)) != 0 || gen == s->token_gen)
		return rc;
	for (int i = 0; i < s->nsenders; i++)
		if ((rc = pobox_http_multi_set_bearer(s->senders[i].multi, tok, err, errlen)) != 0)
			return rc;
	s->token_gen = gen;
	return 0;
}

/* The lane's pause, in its own transaction (outside the settle). */
static int write_pause(struct pobox_singler *s, const char *cls, int64_t wait, const char *why)
{
	int rc;
	pobox_log(POBOX_LOG_ERROR, "lane_paused", "lane=single class=%s until_s=%lld reason=\"%s\"", cls,
	          (long long)(wait / 1000), why);
	if ((rc = pobox_begin(s->pb)) != 0)
		return rc;
	rc = pobox_store_lane_pause(s->pb->st, "single", now_ms(s) + wait, cls, why);
	return rc ? (pobox_rollback(s->pb), rc) : pobox_commit(s->pb);
}

/* After a step stopped on 401/403: one refresh; the lane pauses only when
 * it gives no new token.  Returns 0 (and *retry) or a storage error. */
static int after_refusal(struct pobox_singler *s, int *retry)
{
	char why[400];
	*retry = 0;
	if (pobox_cred_refused(s->cred, s->token_gen, why, sizeof why) == 0 &&
	    sync_token(s, why, sizeof why) == 0) {
		pobox_log(POBOX_LOG_WARN, "token_refused", "lane=single action=retry_with_new_token "
		          "reason=\"%s\"", s->stop_msg);
		*retry = 1;
		return 0;
	}
	size_t n = strlen(s->stop_msg);
	snprintf(s->stop_msg + n, sizeof s->stop_msg - n, "; and a new token could not be had: %s", why);
	return write_pause(s, "auth", 30000, s->stop_msg);
}

/* ---- building calls ------------------------------------------------- */

/* What the scan callbacks fill. */
struct build {
	struct pobox_singler *s;
	struct group *g;
};

/* A new zeroed call at the end of g (not yet counted in ncalls). */
static struct call *new_call(struct group *g)
{
	if (g->ncalls == g->capcalls) {
		size_t cap = g->capcalls ? g->capcalls * 2 : 64;
		struct call *nc = pobox_realloc(g->calls, cap * sizeof *nc);
		if (!nc)
			return NULL;
		g->calls = nc;
		g->capcalls = cap;
	}
	struct call *c = &g->calls[g->ncalls];
	memset(c, 0, sizeof *c);
	return c;
}

/* Only the profile ids (to hand a group to the bulk lane). */
static int on_profile_id(void *ctx, const struct pobox_prow *p)
{
	struct build *bd = ctx;
	struct call *c = new_call(bd->g);
	if (!c)
		return POBOX_ENOMEM;
	c->profile = p->profile;
	c->cells = (int64_t)p->n;
	bd->g->ncalls++;
	return 0;
}

static int on_profile(void *ctx, const struct pobox_prow *p)
{
	struct build *bd = ctx;
	struct pobox_singler *s = bd->s;
	struct call *c;
	int64_t qlen;
	size_t n;

	if (!(c = new_call(bd->g)))
		return POBOX_ENOMEM;
	c->profile = p->profile;
	c->cells = (int64_t)p->n;
	/* the rows carried are already coalesced: one per attribute */
	qlen = pobox_single_query_len(p->id_type, p->profile_id, p->profile_id_len, NULL, NULL, NULL, 0);
	for (size_t i = 0; i < p->n; i++) {
		if ((size_t)p->attr[i] >= s->nnames || !s->names[p->attr[i]])
			return pobox_errf(s->pb->err, sizeof s->pb->err, POBOX_ECORRUPT,
			                  "attribute %lld missing", (long long)p->attr[i]);
		qlen += 9 + (int64_t)pobox_urlencoded_len(s->names[p->attr[i]], strlen(s->names[p->attr[i]])) +
		        1 + (int64_t)pobox_urlencoded_len(p->value[i], p->value_len[i]);
		c->urgent |= p->urgent[i];
	}
	char *q = pobox_malloc((size_t)qlen + 1);
	if (!q)
		return POBOX_ENOMEM;
	n = (size_t)snprintf(q, (size_t)qlen + 1, "%s=", p->id_type == POBOX_ID_PCID ? "mboxPC" : "mbox3rdPartyId");
	n += pobox_urlencode(q + n, p->profile_id, p->profile_id_len);
	for (size_t i = 0; i < p->n; i++) {
		memcpy(q + n, "&profile.", 9);
		n += 9;
		n += pobox_urlencode(q + n, s->names[p->attr[i]], strlen(s->names[p->attr[i]]));
		q[n++] = '=';
		n += pobox_urlencode(q + n, p->value[i], p->value_len[i]);
	}
	q[n] = '\0';
	size_t base = strlen(s->base_url) + strlen(s->client) + 20; /* /m2/<c>/profile/update? */
	size_t ulen = base + n + 1;
	if (!(c->url = pobox_malloc(ulen))) {
		pobox_free(q);
		return POBOX_ENOMEM;
	}
	if ((int64_t)(base + n) <= s->o.max_get_bytes) {
		snprintf(c->url, ulen, "%s/m2/%s/profile/update?%s", s->base_url, s->client, q);
		pobox_free(q);
	} else {
		snprintf(c->url, ulen, "%s/m2/%s/profile/update", s->base_url, s->client);
		c->body = q;
		c->body_len = n;
	}
	bd->g->ncalls++;
	return 0;
}

/* ---- settling ---------------------------------------------------------- */

/* Ends a transaction of the lane: the fleet ledger's part is written in
 * it and learns whether it committed. */
static int end_tx(struct pobox_singler *s, int rc)
{
	struct pobox *pb = s->pb;
	if (rc == 0 && s->o.fleet)
		rc = pobox_fleet_write(s->o.fleet, pb);
	if (rc == 0)
		rc = pobox_commit(pb);
	if (rc) {
		char keep[POBOX_ERRLEN];
		memcpy(keep, pb->err, sizeof keep);
		pobox_rollback(pb);
		memcpy(pb->err, keep, sizeof keep);
	}
	if (s->o.fleet)
		pobox_fleet_done(s->o.fleet, rc == 0);
	return rc;
}

/* What one settle sums up and writes once: quota per minute, call counts
 * per HTTP status, delivered profiles 32 at a time, and the retries for
 * its one log line.  Per call, only the profile's own outcome is a
 * statement. */
struct settle_sums {
	struct qsum {
		int64_t minute, used, urgent_used, released, urgent_released;
	} q[4];
	struct csum {
		long http;
		int64_t calls, errors;
	} cc[16];
	int nq, ncc;
	int64_t batch;
	int64_t delivered[32], delivered_cells[32];
	size_t ndelivered;
	int64_t retries, first_retry_ms;
	char retry_why[240];
};

/* The lane's stop state, copied under mu for one settle. */
struct stop_state {
	int down, stop, offline, aborted, lift;
	struct pobox_verdict v;
	char msg[600];            /* the singler's stop_msg */
};

/* Counts an answered call under its HTTP status (written by write_sums;
 * a 17th status is written at once). */
static int sum_http(struct pobox_singler *s, struct settle_sums *m, const struct call *c)
{
	int k;
	for (k = 0; k < m->ncc && m->cc[k].http != c->http; k++)
		;
	if (k == m->ncc && m->ncc < 16) {
		m->cc[m->ncc].http = c->http;
		m->cc[m->ncc].calls = m->cc[m->ncc].errors = 0;
		m->ncc++;
	}
	if (k == m->ncc)
		return pobox_store_count_call(s->pb->st, "single", c->http, c->cls != POBOX_CLASS_OK);
	m->cc[k].calls++;
	m->cc[k].errors += c->cls != POBOX_CLASS_OK;
	return 0;
}

/* Writes the quota minutes summed so far. */
static int write_quota(struct settle_sums *m, struct pobox_store *st)
{
	int rc = 0;
	for (int j = 0; j < m->nq && rc == 0; j++)
		rc = pobox_store_quota_settle(st, pobox_quota_owner(), m->q[j].minute, m->q[j].used,
		                              m->q[j].urgent_used, m->q[j].released,
		                              m->q[j].urgent_released);
	return rc;
}

/* Counts a call's quota unit as used or released in its minute (four
 * minutes are summed; a fifth writes what is summed first). */
static int sum_quota(struct pobox_singler *s, struct settle_sums *m, const struct call *c, int used)
{
	int k, rc = 0;
	for (k = 0; k < m->nq && m->q[k].minute != c->minute; k++)
		;
	if (k == m->nq) {
		if (m->nq == 4) {
			rc = write_quota(m, s->pb->st);
			m->nq = k = 0;
		}
		memset(&m->q[m->nq], 0, sizeof m->q[0]);
		m->q[m->nq++].minute = c->minute;
	}
	m->q[k].used += used;
	m->q[k].urgent_used += used && c->urgent;
	m->q[k].released += !used;
	m->q[k].urgent_released += !used && c->urgent;
	return rc;
}

/* A transient failure: back to pending with backoff (an attempt counted
 * when the verdict says so); dead after max_attempts. */
static int retry_call(struct pobox_singler *s, struct group *g, struct settle_sums *m,
                      const struct call *c, int64_t now, int *killed)
{
	char why[220];
	snprintf(why, sizeof why, "single call: HTTP %ld: %s", c->http, c->msg);
	int64_t delay = pobox_backoff_delay_ms(&s->backoff, 1, c->retry_after_ms);
	int rc = pobox_store_profile_release(s->pb->st, g->batch, c->profile, c->cells, 0, c->charge,
	                                     now + delay, why, s->d.max_attempts, killed);
	g->counts[2]++;
	if (!*killed) {
		if (m->retries++ == 0 || delay < m->first_retry_ms)
			m->first_retry_ms = delay;
		snprintf(m->retry_why, sizeof m->retry_why, "%s", why);
	}
	return rc;
}

/* Applies an answered call's outcome to its profile. */
static int apply_outcome(struct pobox_singler *s, struct group *g, struct settle_sums *m,
                         const struct call *c, int64_t now)
{
	struct pobox_store *st = s->pb->st;
	int killed = 0, rc = 0;
	switch (c->cls) {
	case POBOX_CLASS_OK:
		m->delivered_cells[m->ndelivered] = c->cells;
		m->delivered[m->ndelivered++] = c->profile;
		if (m->ndelivered == sizeof m->delivered / sizeof m->delivered[0]) {
			rc = pobox_store_profiles_delivered(st, m->batch, m->delivered, m->delivered_cells,
			                                    m->ndelivered, now);
			m->ndelivered = 0;
		}
		g->counts[0]++;
		break;
	case POBOX_CLASS_NOTFOUND:
		/* single calls cannot create profiles: the bulk lane (v2) can */
		rc = pobox_store_profile_release(st, g->batch, c->profile, c->cells, 1, 0, 0,
		                                 "profile not found by a single call; sent by bulk",
		                                 0, &killed);
		g->counts[1]++;
		break;
	case POBOX_CLASS_BUDGET:
	case POBOX_CLASS_AUTH:
	case POBOX_CLASS_CONFIG:
	case POBOX_CLASS_THROTTLE:
		rc = pobox_store_profile_release(st, g->batch, c->profile, c->cells, 0, 0, 0, c->msg, 0,
		                                 &killed);
		break;
	case POBOX_CLASS_PERMANENT:
	case POBOX_CLASS_REJECT: {
		char why[220];
		snprintf(why, sizeof why, "Target refused the update (HTTP %ld): %s", c->http, c->msg);
		rc = pobox_store_profile_release(st, g->batch, c->profile, c->cells, 0, 1, 0, why, 1,
		                                 &killed);
		g->counts[2]++;
		break;
	}
	case POBOX_CLASS_RETRY:
	default:
		rc = retry_call(s, g, m, c, now, &killed);
		break;
	}
	if (rc == 0 && killed)
		pobox_log(POBOX_LOG_ERROR, "updates_dead", "lane=single profile=%lld reason=\"%s\"",
		          (long long)c->profile, c->msg);
	return rc;
}

/* One call of a settle: its counts and quota, then its outcome.  A call
 * that could not reach Target, or was ended by our own stop, leaves its
 * profile in the batch (the batch is retried as it is: the probe of an
 * outage, or re-sent as after a crash).  A call never sent goes back to
 * pending, where it keeps coalescing (while the lane is offline the
 * scheduler leaves it there), or, after our own stop (keep), stays in the
 * batch too. */
static int settle_call(struct pobox_singler *s, struct group *g, struct settle_sums *m,
                       struct call *c, int64_t now, int keep)
{
	int killed, rc = 0;
	int used = c->st == C_DONE && c->reached && c->cls != POBOX_CLASS_BUDGET;
	if (c->st == C_DONE && !c->aborted && (rc = sum_http(s, m, c)) != 0)
		return rc;
	if ((rc = sum_quota(s, m, c, used)) != 0)
		return rc;
	if (c->lease) /* staged; written with the settle (end_tx) */
		pobox_fleet_settle(s->o.fleet, c->lease, used, c->answered);
	if ((c->st == C_QUEUED && keep) || (c->st == C_DONE && (c->aborted || !c->reached)))
		g->held++; /* the unit goes back; the profile waits in the batch */
	else if (c->st == C_QUEUED) /* never sent: the lane stopped */
		rc = pobox_store_profile_release(s->pb->st, g->batch, c->profile, c->cells, 0, 0, 0,
		                                 NULL, 0, &killed);
	else
		rc = apply_outcome(s, g, m, c, now);
	c->st = C_SETTLED;
	return rc;
}

/* Writes what the settle summed: delivered profiles, quota, call counts,
 * and one line for its retries. */
static int write_sums(struct pobox_singler *s, struct settle_sums *m, int64_t now, int down)
{
	struct pobox_store *st = s->pb->st;
	int rc = 0;
	if (m->ndelivered)
		rc = pobox_store_profiles_delivered(st, m->batch, m->delivered, m->delivered_cells,
		                                    m->ndelivered, now);
	if (rc == 0)
		rc = write_quota(m, st);
	for (int j = 0; j < m->ncc && rc == 0; j++)
		rc = pobox_store_count_calls(st, "single", m->cc[j].http, m->cc[j].calls, m->cc[j].errors);
	if (rc == 0 && m->retries)
		/* one line per settle, not per call: an outage must not flood the log */
		pobox_log(POBOX_LOG_WARN, "retry_scheduled",
		          "lane=single profiles=%lld first_in_ms=%lld attempt_counted=%s reason=\"%s\"",
		          (long long)m->retries, (long long)m->first_retry_ms, down ? "no" : "yes",
		          m->retry_why);
	return rc;
}

/* The lane is offline (a call could not reach Target): the pause until the
 * next probe (once per step), and g's batch, with the profiles whose calls
 * could not reach Target, ready again at that time: the same batch is the
 * next probe; nothing is cut for the lane until one gets an answer. */
static int hold_batch(struct pobox_singler *s, struct group *g, int64_t now)
{
	struct pobox_batch b;
	int rc;
	if (!s->offline_written) {
		pthread_mutex_lock(&s->mu);
		enum pobox_outage_event ev = pobox_outage_failed(&s->net, now, s->offline_msg);
		struct pobox_outage net = s->net;
		pthread_mutex_unlock(&s->mu);
		pobox_outage_log(&net, ev, now);
		if ((rc = pobox_outage_pause(s->pb, &net)) != 0)
			return rc;
		s->offline_written = 1;
		s->probe_at_ms = net.next_probe_ms;
	}
	if (!g->held)
		return 0; /* nothing of it is left: it finishes */
	if ((rc = pobox_store_batch_get(s->pb->st, g->batch, &b)) != 0)
		return rc;
	b.state = POBOX_B_READY;
	b.next_at_ms = s->probe_at_ms;
	pobox_free(b.last_error);
	b.last_error = pobox_strdup(s->offline_msg);
	rc = pobox_store_batch_save(s->pb->st, &b);
	pobox_batch_free(&b);
	return rc;
}

/* The end of a group: the lane's pause when it stopped (once per step),
 * and the batch finished (or held, while offline). */
static int end_group(struct pobox_singler *s, struct group *g, const struct stop_state *ss,
                     int64_t now)
{
	struct pobox_store *st = s->pb->st;
	int rc = 0;
	/* a 401/403 goes to the credentials first, after the step */
	if (ss->stop && !s->pause_written && !(ss->v.cls == POBOX_CLASS_AUTH && cred_refreshes(s))) {
		int64_t wait = ss->v.retry_after_ms > 0 ? ss->v.retry_after_ms : 60000;
		const char *cls = ss->v.cls == POBOX_CLASS_BUDGET ? "budget"
		                  : ss->v.cls == POBOX_CLASS_AUTH ? "auth" : "config";
		pobox_log(POBOX_LOG_ERROR, "lane_paused", "lane=single class=%s until_s=%lld reason=\"%s\"",
		          cls, (long long)(wait / 1000), ss->msg);
		rc = pobox_store_lane_pause(st, "single", now + wait, cls, ss->msg);
		s->pause_written = rc == 0; /* once per step, not once per group */
	}
	if (rc == 0 && ss->offline)
		rc = hold_batch(s, g, now);
	if (rc == 0) /* a no-op while the batch holds profiles */
		rc = pobox_store_single_batch_finish(st, g->batch, now, g->counts[0], g->counts[1],
		                                     g->counts[2]);
	return rc;
}

/* Applies the outcomes and quota of the calls idx[0..n) in one transaction
 * (final: also the unsent ones, and the batch's end). */
static int settle(struct pobox_singler *s, struct group *g, const size_t *idx, size_t n, int final)
{
	struct pobox *pb = s->pb;
	struct settle_sums m = {.first_retry_ms = -1, .batch = g->batch};
	struct stop_state ss;
	int64_t now = now_ms(s);
	int rc;
	if ((rc = pobox_begin(pb)) != 0)
		return rc;
	pthread_mutex_lock(&s->mu);
	ss.down = s->down_since_ms >= 0;
	ss.stop = s->stop;
	ss.offline = s->offline;
	ss.aborted = s->aborted;
	ss.lift = s->lift;
	s->lift = 0;
	ss.v = s->stop_v;
	memcpy(ss.msg, s->stop_msg, sizeof ss.msg);
	pthread_mutex_unlock(&s->mu);
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct call *c = &g->calls[idx[i]];
		if (c->st == C_DONE || (c->st == C_QUEUED && final))
			rc = settle_call(s, g, &m, c, now, ss.aborted);
	}
	if (rc == 0)
		rc = write_sums(s, &m, now, ss.down);
	if (rc == 0 && ss.lift) /* the network is back: both lanes go on */
		rc = pobox_outage_lift(pb);
	if (rc == 0 && final)
		rc = end_group(s, g, &ss, now);
	return end_tx(s, rc);
}

/* ---- sending ----------------------------------------------------------- */

/* How many calls sender w may have queued in its multi handle now (mu
 * held): twice its connections normally, so a slot that frees is refilled
 * at once; during an outage one call in all (the first sender's); while
 * ramping up after one, its share of the ramp. */
static int64_t sender_depth(struct pobox_singler *s, const struct sender *w, int64_t now)
{
	int64_t full = s->o.concurrency > 0 ? s->o.concurrency : 1;
	if (s->down_since_ms >= 0)
		return w->index == 0 ? 1 : 0;
	if (s->recovered_at_ms >= 0 && now - s->recovered_at_ms < s->o.recovery_ramp_ms) {
		int64_t allowed = pobox_backoff_ramp(now, s->recovered_at_ms, s->o.recovery_ramp_ms, full);
		return allowed / s->nsenders + (w->index < allowed % s->nsenders);
	}
	return 2 * w->conc;
}

/* Whether this step sends no more calls (mu held): stopped, failed,
 * aborted, or offline. */
static int halted(const struct pobox_singler *s)
{
	return s->stop || s->failed_rc || s->aborted || s->offline;
}

/* The oldest published group with calls left to hand out (mu held). */
static struct group *group_to_take(struct pobox_singler *s)
{
	struct group *a = &s->g[0], *b = &s->g[1];
	int ra = a->published && a->next < a->ncalls, rb = b->published && b->next < b->ncalls;
	if (halted(s))
		return NULL;
	if (ra && rb)
		return a->seq < b->seq ? a : b;
	return ra ? a : rb ? b : NULL;
}

/* Whether g has all its answers (mu held): nothing more will be taken
 * from it and everything taken is back. */
static int group_answered(const struct pobox_singler *s, const struct group *g)
{
	return g->published && (g->next >= g->ncalls || halted(s)) &&
	       g->answered == g->taken;
}

static void sleep_ms(int64_t ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* A sender thread: takes calls from the published groups into its own
 * multi handle and runs it; waits when there is nothing to take; ends when
 * the step is closing and nothing of its own is in flight.  Answers reach
 * on_done, which puts them on their group's done list. */
static void *sender_main(void *arg)
{
	struct sender *w = arg;
	struct pobox_singler *s = w->s;
	char err[POBOX_ERRLEN] = "";
	struct group *g;
	int rc = 0;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		if (halted(s) && pobox_http_multi_cancel_queued(w->multi, unsent) > 0)
			pthread_cond_signal(&s->cv); /* perhaps a group's last answer */
		int64_t depth = sender_depth(s, w, now_ms(s));
		while ((int64_t)pobox_http_multi_pending(w->multi) < depth && (g = group_to_take(s))) {
			size_t i = g->next++;
			struct call *c = &g->calls[i];
			if (c->st != C_QUEUED || (c->lease && pobox_fleet_mono_ms() >= c->start_by)) {
				/* the budget did not cover it, or its lease ran out before
				 * it could start (then it is settled as never sent);
				 * perhaps the group's end */
				if (group_answered(s, g))
					pthread_cond_signal(&s->cv);
				continue;
			}
			c->st = C_FLYING;
			g->taken++;
			pthread_mutex_unlock(&s->mu);
			struct pobox_http_req req = {
				.method = c->body ? POBOX_HTTP_POST : POBOX_HTTP_GET,
				.url = c->url,
				.body = c->body,
				.body_len = c->body_len,
			};
			rc = pobox_http_multi_add(w->multi, &req, call_tag(s, g, i),
			                          err, sizeof err);
			pthread_mutex_lock(&s->mu);
			if (rc) {
				c->st = C_QUEUED; /* never sent: settled as such */
				g->taken--;
				break;
			}
			s->sent++;
		}
		size_t pending = pobox_http_multi_pending(w->multi);
		if (rc || (pending == 0 && s->closing))
			break;
		if (pending == 0) {
			if (depth > 0) {
				pthread_cond_wait(&s->work, &s->mu); /* nothing to take yet */
				continue;
			}
			pthread_mutex_unlock(&s->mu);
			sleep_ms(10); /* another sender probes an outage */
			pthread_mutex_lock(&s->mu);
			continue;
		}
		int more = group_to_take(s) != NULL;
		pthread_mutex_unlock(&s->mu);
		/* short while there is more to queue (come back to refill),
		 * longer when only answers are awaited */
		rc = pobox_http_multi_run(w->multi, more ? 2 : 50, err, sizeof err);
		pthread_mutex_lock(&s->mu);
		if (rc)
			break;
	}
	if (rc && !s->failed_rc) {
		s->failed_rc = rc;
		atomic_store(&s->halt, 1);
		snprintf(s->failed_err, sizeof s->failed_err, "%s", err);
	}
	s->live_senders--;
	pthread_cond_signal(&s->cv);
	pthread_cond_broadcast(&s->work); /* a failure stops the others too */
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* Starts the senders (they take no signals: SIGTERM and SIGHUP stay the
 * calling thread's).  Returns how many started. */
static int start_senders(struct pobox_singler *s)
{
	sigset_t all, old;
	int started = 0;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	pthread_mutex_lock(&s->mu);
	for (int i = 0; i < s->nsenders; i++) {
		if (pthread_create(&s->senders[i].th, NULL, sender_main, &s->senders[i]) != 0)
			break;
		started++;
		s->live_senders++;
	}
	s->senders_running = started > 0;
	pthread_mutex_unlock(&s->mu);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return started;
}

/* Settles g's answered calls (mu held on entry and return; released while
 * writing).  final: g has all its answers; its unsent calls and its end are
 * written too, and the slot is freed. */
static int settle_group(struct pobox_singler *s, struct group *g, int final)
{
	size_t n = g->ndone;
	memcpy(g->settling, g->done, n * sizeof *g->done);
	g->ndone = 0;
	pthread_mutex_unlock(&s->mu);
	int rc = 0;
	if (final) {
		for (size_t i = 0; i < g->ncalls; i++)
			if (g->calls[i].st == C_QUEUED)
				g->settling[n++] = i;
		rc = settle(s, g, g->settling, n, 1);
		if (rc == 0 && (g->counts[0] || g->counts[1] || g->counts[2]))
			pobox_log(POBOX_LOG_INFO, "single_calls",
			          "batch=%lld delivered=%lld not_found=%lld failed=%lld", (long long)g->batch,
			          (long long)g->counts[0], (long long)g->counts[1], (long long)g->counts[2]);
		group_clear(g);
	} else if (n) {
		rc = settle(s, g, g->settling, n, 0);
	}
	pthread_mutex_lock(&s->mu);
	if (final)
		g->published = 0;
	return rc;
}

/* ---- one step ---------------------------------------------------------- */

static int prepare(struct pobox_singler *s, struct group *g, struct pobox_step *out, int *did);

/* A stop or deadline (abort_fn) seen by the settler (mu held): no more
 * calls start, and the senders end those in flight (pobox_http_multi_run
 * asks abort_fn too). */
static void notice_abort(struct pobox_singler *s)
{
	if (s->aborted || !s->d.abort_fn || !s->d.abort_fn(s->d.abort_ctx))
		return;
	s->aborted = 1;
	atomic_store(&s->halt, 1);
	pthread_cond_broadcast(&s->work);
}

/* Records a database error of the settler (mu held): the senders stop
 * taking calls; pb->err is kept for the caller. */
static void fail_step(struct pobox_singler *s, int rc)
{
	if (!s->failed_rc) {
		s->failed_rc = rc;
		atomic_store(&s->halt, 1);
		snprintf(s->failed_err, sizeof s->failed_err, "%s", s->pb->err);
	}
	pthread_cond_broadcast(&s->work);
}

/* A step starts with no stop, pause or failure of the last one. */
static void step_reset(struct pobox_singler *s)
{
	s->stop = 0;
	s->aborted = 0;
	s->offline = 0;
	s->pause_written = 0;
	s->offline_written = 0;
	s->failed_rc = 0;
	atomic_store(&s->halt, 0);
	s->closing = 0;
	s->sent = 0;
}

/* What the step's loop carries from one turn to the next. */
struct step_loop {
	int rc, started, groups, more;
	int64_t last_settle;
};

/* Prepares the next due group into the free slot fr and publishes it
 * (mu held; released while preparing), starting the senders the first
 * time.  Returns 1 when a group was published (try the other slot too). */
static int fill_slot(struct pobox_singler *s, struct group *fr, struct pobox_step *out,
                     struct step_loop *l)
{
	int did = 0;
	pthread_mutex_unlock(&s->mu);
	int r = prepare(s, fr, out, &did);
	pthread_mutex_lock(&s->mu);
	if (r) {
		l->rc = r;
		fail_step(s, r);
		l->more = 0;
		return 0;
	}
	if (!did || out->paused) {
		l->more = 0;
		return 0;
	}
	l->groups++;
	fr->published = 1;
	fr->seq = ++s->published;
	fr->next = fr->taken = fr->answered = fr->ndone = 0;
	pthread_cond_broadcast(&s->work);
	if (!l->started) {
		pthread_mutex_unlock(&s->mu);
		l->started = start_senders(s);
		pthread_mutex_lock(&s->mu);
		if (!l->started) {
			l->rc = pobox_errf(s->pb->err, sizeof s->pb->err, POBOX_EIO,
			                   "cannot start a sender thread");
			fail_step(s, l->rc);
			l->more = 0;
		}
	}
	return 1;
}

/* Waits a little for answers (mu held) and settles what came in
 * meanwhile, every SETTLE_EVERY_MS. */
static void wait_and_settle(struct pobox_singler *s, struct step_loop *l)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_nsec += SETTLE_EVERY_MS * 1000000L;
	ts.tv_sec += ts.tv_nsec / 1000000000L;
	ts.tv_nsec %= 1000000000L;
	pthread_cond_timedwait(&s->cv, &s->mu, &ts);
	if (s->failed_rc || now_ms(s) - l->last_settle < SETTLE_EVERY_MS)
		return;
	for (int i = 0; i < 2 && l->rc == 0; i++)
		if (s->g[i].published && s->g[i].ndone && (l->rc = settle_group(s, &s->g[i], 0)) != 0)
			fail_step(s, l->rc);
	l->last_settle = now_ms(s);
}

/* The step's loop (mu held): fill free slots, settle answered groups,
 * wait; until nothing is in hand and nothing more is due, or a failure. */
static void step_loop(struct pobox_singler *s, struct pobox_step *out, struct step_loop *l)
{
	for (;;) {
		/* the next due group, into a free slot, while the other one is sent;
		 * a bounded number per step */
		struct group *fr = !s->g[0].published ? &s->g[0] : !s->g[1].published ? &s->g[1] : NULL;
		notice_abort(s);
		if (fr && l->more && l->groups < 16 && !halted(s) && fill_slot(s, fr, out, l))
			continue; /* perhaps the other slot can be filled too */
		/* end any group with all its answers in (the older first) */
		struct group *a = &s->g[0], *b = &s->g[1];
		struct group *fin = group_answered(s, a) && (!group_answered(s, b) || a->seq < b->seq) ? a
		                    : group_answered(s, b) ? b : NULL;
		if (fin && !s->failed_rc) {
			int r = settle_group(s, fin, 1);
			if (r) {
				l->rc = r;
				fail_step(s, r);
			}
			continue;
		}
		if (!s->g[0].published && !s->g[1].published)
			break; /* nothing in hand and nothing more to prepare */
		if (s->failed_rc)
			break; /* the senders finish what is in flight and end */
		wait_and_settle(s, l);
	}
}

/* After the senders ended: why the lane stopped or pauses, and when to
 * come back. */
static int step_result(struct pobox_singler *s, struct pobox_step *out, const struct step_loop *l)
{
	int retry = 0;
	if (s->stop && s->stop_v.cls == POBOX_CLASS_AUTH && cred_refreshes(s)) {
		int rc2 = after_refusal(s, &retry);
		if (rc2)
			return rc2;
	}
	if (retry) {
		out->next_due_ms = now_ms(s); /* the refused calls are pending again */
	} else if (s->stop) {
		out->paused = 1;
		snprintf(out->pause_class, sizeof out->pause_class, "%s",
		         s->stop_v.cls == POBOX_CLASS_BUDGET ? "budget"
		         : s->stop_v.cls == POBOX_CLASS_AUTH ? "auth" : "config");
		snprintf(out->pause_reason, sizeof out->pause_reason, "%s", s->stop_msg);
	} else if (l->groups == 16 && l->more) {
		out->next_due_ms = now_ms(s); /* more may be due: come back at once */
	}
	if (s->offline_written) { /* the next probe */
		out->paused = 1;
		out->paused_until_ms = out->next_due_ms = s->probe_at_ms;
		snprintf(out->pause_class, sizeof out->pause_class, "offline");
		snprintf(out->pause_reason, sizeof out->pause_reason, "%s", s->offline_msg);
	}
	return 0;
}

int pobox_single_step(struct pobox_singler *s, struct pobox_step *out)
{
	struct pobox *pb = s->pb;
	struct step_loop l = {0, 0, 0, 1, now_ms(s)};

	memset(out, 0, sizeof *out);
	out->next_due_ms = -1;
	if (s->broken)
		return pobox_errf(pb->err, sizeof pb->err, POBOX_EIO, "single lane stopped by an earlier error");
	step_reset(s);
	pthread_mutex_lock(&s->mu);
	step_loop(s, out, &l);
	s->closing = 1;
	pthread_cond_broadcast(&s->work);
	pthread_mutex_unlock(&s->mu);
	for (int i = 0; i < l.started; i++)
		pthread_join(s->senders[i].th, NULL);
	s->senders_running = 0;
	out->actions = (int64_t)s->sent;
	if (s->failed_rc) {
		/* calls may still sit in a multi handle: this singler is done */
		s->broken = 1;
		snprintf(pb->err, sizeof pb->err, "%s", s->failed_err);
		return s->failed_rc;
	}
	return step_result(s, out, &l);
}

/* What a group's reservation did: units granted (urgent of them), and
 * calls sent back to pending to wait for the fleet's next lease; or, for a
 * probe, that it waits in its batch until later_ms (0: it does not). */
struct grant {
	int64_t granted, urgent, waiting;
	int waiting_urgent;
	int64_t later_ms;
};

/* One call's unit from the budget (and, with a fleet, from a lease), or
 * where its profile goes instead: back to pending briefly when the fleet's
 * next lease is on its way (fl->wait_ms >= 0), else bulk. */
static int reserve_call(struct pobox_singler *s, struct group *g, struct call *c,
                        const struct pobox_quota *q, const struct pobox_fleet_limits *fl,
                        int64_t now, struct grant *gr)
{
	struct pobox_store *st = s->pb->st;
	int killed;
	int ok = c->urgent ? gr->granted < q->left_urgent : gr->granted < q->left_normal;
	if (ok && s->o.fleet && pobox_fleet_take(s->o.fleet, c->urgent, &c->lease, &c->start_by) != 0)
		ok = 0;
	if (ok) {
		c->minute = now / 60000;
		gr->granted++;
		gr->urgent += c->urgent;
		return 0;
	}
	c->st = C_SETTLED;
	if (fl->wait_ms >= 0) {
		gr->waiting++;
		gr->waiting_urgent |= c->urgent;
		return pobox_store_profile_release(st, g->batch, c->profile, c->cells, 0, 0,
		                                   now + fl->wait_ms, NULL, 0, &killed);
	}
	return pobox_store_profile_release(st, g->batch, c->profile, c->cells, 1, 0, 0,
	                                   "single-call budget spent; sent by bulk", 0, &killed);
}

/* Reserves the units of g's calls, inside the caller's transaction: what
 * the budget (with a fleet: the leases held) covers is reserved in the
 * quota ledger, the rest goes bulk or waits (reserve_call).  probe: g is
 * the batch an offline lane keeps as its probe (outage.h); when the fleet
 * holds nothing for it yet a lease is on its way, it keeps all its
 * profiles and waits (gr->later_ms): sent back to pending they would be
 * held there, uncut, with no batch left to find Target again. */
static int reserve_group(struct pobox_singler *s, struct group *g, int64_t now, int probe,
                         struct grant *gr)
{
	struct pobox *pb = s->pb;
	struct pobox_quota q;
	struct pobox_fleet_limits fl = {0, 0, -1};
	int rc;
	if ((rc = pobox_quota_reap(pb, now)) != 0 || (rc = pobox_quota_read(pb, &s->o.quota, now, &q)) != 0)
		return rc;
	if (s->o.fleet) { /* what the leases cover, not the outbox's view of the fleet */
		pobox_fleet_limits(s->o.fleet, &fl);
		q.left_urgent = fl.left_urgent;
		q.left_normal = fl.left_normal;
		if (probe && fl.left_urgent <= 0 && fl.wait_ms >= 0) {
			gr->later_ms = now + fl.wait_ms;
			gr->waiting = (int64_t)g->ncalls;
			for (size_t i = 0; i < g->ncalls; i++)
				gr->waiting_urgent |= g->calls[i].urgent;
			return 0;
		}
	}
	for (size_t i = 0; i < g->ncalls && rc == 0; i++)
		rc = reserve_call(s, g, &g->calls[i], &q, &fl, now, gr);
	int64_t bulk = (int64_t)g->ncalls - gr->granted - gr->waiting;
	if (rc == 0 && bulk > 0)
		pobox_log(POBOX_LOG_WARN, "budget_low",
		          "lane=single routed_to_bulk=%lld remaining=%lld budget=%lld", (long long)bulk,
		          (long long)q.remaining, (long long)q.budget);
	if (rc == 0 && gr->granted)
		rc = pobox_store_quota_reserve(pb->st, pobox_quota_owner(), now, gr->granted, gr->urgent);
	return rc;
}

/* Readies the next due single-lane batch in g: its calls built and their
 * quota reserved (what the budget cannot cover goes bulk), the batch marked
 * sending.  *did = 0 when none is due; out says why (paused, next due). */
/* The budget is spent until the lane's pause ends: the batch's updates go
 * bulk instead of waiting (no attempt counted, no unit used) and the batch
 * ends done. */
static int budget_spent(struct pobox_singler *s, struct group *g, int64_t id, int64_t now,
                        const char *reason)
{
	struct pobox *pb = s->pb;
	struct build bd = {s, g};
	struct pobox_batch b;
	int killed, rc;
	group_clear(g);
	if ((rc = pobox_store_scan_batch(pb->st, id, on_profile_id, &bd)) != 0)
		return rc;
	if ((rc = pobox_begin(pb)) != 0)
		return rc;
	for (size_t i = 0; i < g->ncalls && rc == 0; i++)
		rc = pobox_store_profile_release(pb->st, id, g->calls[i].profile, g->calls[i].cells,
		                                 1, 0, 0,
		                                 "single-call budget spent; sent by bulk", 0, &killed);
	if (rc == 0 && (rc = pobox_store_batch_get(pb->st, id, &b)) == 0) {
		b.state = POBOX_B_DONE;
		b.finished_at_ms = now;
		rc = pobox_store_batch_save(pb->st, &b);
		pobox_batch_free(&b);
	}
	if (rc == 0)
		pobox_log(POBOX_LOG_WARN, "budget_low", "lane=single routed_to_bulk=%zu reason=\"%s\"",
		          g->ncalls, reason);
	rc = rc ? (pobox_rollback(pb), rc) : pobox_commit(pb);
	group_clear(g);
	return rc;
}

/* Room in the group's done and settling lists for each of its calls. */
static int group_room(struct pobox_singler *s, struct group *g)
{
	if (g->capdone >= g->ncalls)
		return 0;
	size_t *d = pobox_realloc(g->done, g->ncalls * sizeof *d);
	if (d)
		g->done = d;
	size_t *t = d ? pobox_realloc(g->settling, g->ncalls * sizeof *t) : NULL;
	if (t)
		g->settling = t;
	if (!d || !t)
		return pobox_errf(s->pb->err, sizeof s->pb->err, POBOX_ENOMEM, "out of memory");
	g->capdone = g->ncalls;
	return 0;
}

static int prepare(struct pobox_singler *s, struct group *g, struct pobox_step *out, int *did)
{
	struct pobox *pb = s->pb;
	struct build bd = {s, g};
	int64_t id, at, until, now = now_ms(s);
	int rc;

	if ((rc = pobox_store_lane_get(pb->st, "single", &until, out->pause_class,
	                               sizeof out->pause_class, out->pause_reason,
	                               sizeof out->pause_reason)) != 0)
		return rc;
	/* not the batch in the other slot: it is being sent */
	if ((rc = pobox_store_lane_next(pb->st, "single", s->g[g == s->g].batch, &id, &at)) != 0)
		return rc;
	if (id == 0)
		return 0;
	if (until > now && strcmp(out->pause_class, "budget") == 0) {
		*did = 1;
		out->paused = 1;
		out->paused_until_ms = until;
		return budget_spent(s, g, id, now, out->pause_reason);
	}
	if (until > now) {
		out->paused = 1;
		out->paused_until_ms = until;
		out->next_due_ms = until;
		return 0;
	}
	if (at > now) {
		out->next_due_ms = at;
		return 0;
	}
	/* the token, while no sender is running (their handles are idle) */
	if (!s->senders_running) {
		char why[400];
		if (sync_token(s, why, sizeof why) != 0) {
			snprintf(out->pause_reason, sizeof out->pause_reason,
			         "could not obtain a profile API token: %s", why);
			snprintf(out->pause_class, sizeof out->pause_class, "auth");
			out->paused = 1;
			out->paused_until_ms = out->next_due_ms = now + 30000;
			return write_pause(s, "auth", 30000, out->pause_reason);
		}
	}
	*did = 1;
	group_clear(g);
	g->batch = id;
	if ((rc = pobox_store_each_attr(pb->st, load_name, s)) != 0 ||
	    (rc = pobox_store_scan_batch(pb->st, id, on_profile, &bd)) != 0)
		return rc;
	if ((rc = group_room(s, g)) != 0)
		return rc;

	/* reserve before calling; what the budget cannot cover goes bulk */
	struct grant gr = {0};
	if ((rc = pobox_begin(pb)) != 0)
		return rc;
	rc = reserve_group(s, g, now, strcmp(out->pause_class, "offline") == 0, &gr);
	if (rc == 0) {
		struct pobox_batch b;
		if ((rc = pobox_store_batch_get(pb->st, id, &b)) == 0) {
			if (gr.later_ms) /* a probe waiting for a lease: ready again then */
				b.next_at_ms = gr.later_ms;
			else
				b.state = POBOX_B_SENDING;
			rc = pobox_store_batch_save(pb->st, &b);
			pobox_batch_free(&b);
		}
	}
	rc = end_tx(s, rc);
	if (s->o.fleet && gr.waiting)
		pobox_fleet_short(s->o.fleet, gr.waiting, gr.waiting_urgent);
	if (rc == 0 && gr.later_ms) { /* nothing of it is sent now */
		group_clear(g);
		*did = 0;
		out->next_due_ms = gr.later_ms;
	}
	return rc;
}
