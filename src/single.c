/*
 * single.c - the single-call lane (see single.h).
 *
 * Owns building the update URLs (GET when the whole URL fits in
 * max_get_bytes, else POST with the parameters as a form body), the
 * reservation and settlement of quota around the calls, and applying each
 * call's outcome to its profile.  HTTP is http.c's multi client, parsing
 * response.c's, verdicts classify.c's.
 */
#include "single.h"
#include "alloc.h"
#include "backoff.h"
#include "classify.h"
#include "error.h"
#include "http.h"
#include "log.h"
#include "outbox.h"
#include "response.h"
#include "store.h"
#include "urlenc.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define SETTLE_EVERY_MS 200

struct call {
	int64_t profile;
	int urgent;
	int64_t minute;          /* quota minute it was reserved in */
	char *url;               /* full URL (GET) or path only (POST) */
	char *body;              /* POST form body, NULL for GET */
	size_t body_len;
	enum { C_QUEUED, C_FLYING, C_DONE, C_SETTLED } st;
	enum pobox_class cls;
	int charge, reached;
	long http;
	int64_t retry_after_ms;
	char msg[160];
};

struct pobox_singler {
	struct pobox *pb;
	struct pobox_deliver_opts d;
	struct pobox_single_opts o;
	struct pobox_http_multi *multi;
	struct pobox_backoff backoff;
	char *client, *base_url;
	char **names;             /* attribute id -> name */
	size_t nnames;
	int64_t down_since_ms;    /* first unreachable call of an outage, -1 none */
	int64_t recovered_at_ms;  /* last recovery, for the ramp */
	/* the batch being sent */
	struct call *calls;
	size_t ncalls, capcalls;
	int stop;                 /* budget, auth or config: send no more */
	struct pobox_verdict stop_v;
	char stop_msg[200];
};

static int64_t now_ms(struct pobox_singler *s) { return pobox_clock_now_ms(&s->pb->clock); }

static void on_done(void *ctx, void *user, int rc, struct pobox_http_resp *resp)
{
	struct pobox_singler *s = ctx;
	struct call *c = &s->calls[(size_t)(uintptr_t)user];
	struct pobox_answer ans;
	char err[256] = "";
	int answer_rc = 0;

	memset(&ans, 0, sizeof ans);
	ans.success = -1;
	c->st = C_DONE;
	c->http = resp->status;
	c->retry_after_ms = resp->retry_after_ms;
	/* the client reports transport failures both ways: an error code and
	 * the precise category, which is what classification needs */
	enum pobox_http_fail fail = resp->fail != POBOX_HTTP_FAIL_NONE ? resp->fail
	                            : rc != 0 ? POBOX_HTTP_FAIL_OTHER : POBOX_HTTP_FAIL_NONE;
	/* a refused or unresolved connection never reached Target */
	c->reached = !(fail == POBOX_HTTP_FAIL_CONNECT || fail == POBOX_HTTP_FAIL_RESOLVE);
	if (fail == POBOX_HTTP_FAIL_NONE) {
		const char *b = resp->body ? resp->body : "";
		enum pobox_answer_kind k = resp->status >= 200 && resp->status < 300 ? POBOX_ANSWER_SINGLE
		                                                                   : POBOX_ANSWER_ANY;
		answer_rc = pobox_response_parse(k, &ans, b, resp->body_len, NULL, NULL, err, sizeof err);
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
		.fail = fail,
		.http_status = resp->status,
		.answer_rc = answer_rc,
		.success = ans.success,
		.message = c->msg[0] ? c->msg : NULL,
		.retry_after_ms = resp->retry_after_ms,
		.now_ms = now_ms(s),
	};
	struct pobox_verdict v;
	pobox_classify(&v, &oc);
	c->cls = v.cls;
	c->charge = v.charge_attempt;
	if (v.retry_after_ms > c->retry_after_ms)
		c->retry_after_ms = v.retry_after_ms;
	if (!c->msg[0])
		snprintf(c->msg, sizeof c->msg, "%s", v.reason);
	if ((v.cls == POBOX_CLASS_BUDGET || v.cls == POBOX_CLASS_AUTH || v.cls == POBOX_CLASS_CONFIG) &&
	    !s->stop) {
		s->stop = 1;
		s->stop_v = v;
		s->stop_v.retry_after_ms = c->retry_after_ms;
		snprintf(s->stop_msg, sizeof s->stop_msg, "HTTP %ld: %s", c->http, c->msg);
	}
	/* outage bookkeeping for the ramp */
	if (!c->reached) {
		if (s->down_since_ms < 0)
			s->down_since_ms = now_ms(s);
	} else if (fail == POBOX_HTTP_FAIL_NONE && s->down_since_ms >= 0) {
		pobox_log(POBOX_LOG_INFO, "network_back", "lane=single down_s=%lld",
		          (long long)((now_ms(s) - s->down_since_ms) / 1000));
		s->down_since_ms = -1;
		s->recovered_at_ms = now_ms(s);
	}
	pobox_answer_free(&ans);
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
	if ((rc = pobox_http_global_init(err, errlen)) != 0)
		return rc;
	if (!(s = pobox_calloc(1, sizeof *s)))
		return pobox_errf(err, errlen, POBOX_ENOMEM, "out of memory");
	s->pb = pb;
	s->d = *d;
	s->o = *o;
	s->down_since_ms = -1;
	s->recovered_at_ms = -1;
	s->client = pobox_strdup(d->client);
	s->base_url = pobox_deliver_base_url(d);
	if (!s->client || !s->base_url) {
		rc = pobox_errf(err, errlen, POBOX_ENOMEM, "out of memory");
		goto fail;
	}
	s->d.token = NULL;
	pobox_http_config_init(&hc);
	hc.connect_timeout_ms = d->connect_timeout_ms;
	hc.timeout_ms = d->request_timeout_ms;
	hc.verify_tls = d->verify_tls;
	hc.bearer_token = d->token;
	hc.clock = &pb->clock;
	int conc = o->concurrency > 0 ? (int)o->concurrency : 1;
	if ((rc = pobox_http_multi_new(&s->multi, &hc, conc, on_done, s, err, errlen)) != 0)
		goto fail;
	pobox_backoff_init(&s->backoff, d->backoff_base_ms, d->backoff_cap_ms, 0,
	                   (d->seed ? d->seed : (uint64_t)now_ms(s)) ^ ((uint64_t)getpid() << 20) ^ 0x5157);
	*out = s;
	return 0;
fail:
	pobox_singler_free(s);
	return rc;
}

static void calls_clear(struct pobox_singler *s)
{
	for (size_t i = 0; i < s->ncalls; i++) {
		pobox_free(s->calls[i].url);
		pobox_free(s->calls[i].body);
	}
	s->ncalls = 0;
	s->stop = 0;
}

void pobox_singler_free(struct pobox_singler *s)
{
	if (!s)
		return;
	calls_clear(s);
	pobox_free(s->calls);
	pobox_http_multi_free(s->multi);
	for (size_t i = 0; i < s->nnames; i++)
		pobox_free(s->names[i]);
	pobox_free(s->names);
	pobox_free(s->client);
	pobox_free(s->base_url);
	pobox_free(s);
}

/* ---- building calls ------------------------------------------------- */

/* Only the profile ids (to hand a group to the bulk lane). */
static int on_profile_id(void *ctx, const struct pobox_prow *p)
{
	struct pobox_singler *s = ctx;
	if (s->ncalls == s->capcalls) {
		size_t cap = s->capcalls ? s->capcalls * 2 : 64;
		struct call *nc = pobox_realloc(s->calls, cap * sizeof *nc);
		if (!nc)
			return POBOX_ENOMEM;
		s->calls = nc;
		s->capcalls = cap;
	}
	memset(&s->calls[s->ncalls], 0, sizeof s->calls[0]);
	s->calls[s->ncalls++].profile = p->profile;
	return 0;
}

static int on_profile(void *ctx, const struct pobox_prow *p)
{
	struct pobox_singler *s = ctx;
	struct call *c;
	int64_t qlen;
	size_t n;

	if (s->ncalls == s->capcalls) {
		size_t cap = s->capcalls ? s->capcalls * 2 : 64;
		struct call *nc = pobox_realloc(s->calls, cap * sizeof *nc);
		if (!nc)
			return POBOX_ENOMEM;
		s->calls = nc;
		s->capcalls = cap;
	}
	c = &s->calls[s->ncalls];
	memset(c, 0, sizeof *c);
	c->profile = p->profile;
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
	s->ncalls++;
	return 0;
}

/* ---- settling ---------------------------------------------------------- */

/* Applies finished calls' outcomes and quota in one transaction. */
static int settle(struct pobox_singler *s, int64_t batch, int final, int64_t counts[3])
{
	struct pobox *pb = s->pb;
	int64_t now = now_ms(s), retries = 0, first_retry_ms = -1;
	char retry_why[240] = "";
	/* Quota and call counters are summed here and written once per settle:
	 * per call, only the profile's own outcome is a statement. */
	struct qsum {
		int64_t minute, used, urgent_used, released, urgent_released;
	} q[4];
	struct csum {
		long http;
		int64_t calls, errors;
	} cc[16];
	int nq = 0, ncc = 0;
	int rc;
	if ((rc = pobox_begin(pb)) != 0)
		return rc;
	for (size_t i = 0; i < s->ncalls && rc == 0; i++) {
		struct call *c = &s->calls[i];
		int killed = 0, used = 0, k;
		if (c->st == C_QUEUED && final) {
			used = 0; /* never sent: the lane stopped; the unit goes back */
		} else if (c->st != C_DONE) {
			continue;
		} else {
			used = c->reached && c->cls != POBOX_CLASS_BUDGET;
			for (k = 0; k < ncc && cc[k].http != c->http; k++)
				;
			if (k == ncc && ncc < 16) {
				cc[ncc].http = c->http;
				cc[ncc].calls = cc[ncc].errors = 0;
				ncc++;
			}
			if (k < ncc) {
				cc[k].calls++;
				cc[k].errors += c->cls != POBOX_CLASS_OK;
			} else if ((rc = pobox_store_count_call(pb->st, "single", c->http,
			                                        c->cls != POBOX_CLASS_OK)) != 0) {
				break;
			}
		}
		for (k = 0; k < nq && q[k].minute != c->minute; k++)
			;
		if (k == nq) {
			if (nq == 4) { /* more minutes than slots: write what is summed */
				for (int j = 0; j < nq && rc == 0; j++)
					rc = pobox_store_quota_settle(pb->st, pobox_quota_owner(), q[j].minute, q[j].used,
					                              q[j].urgent_used, q[j].released,
					                              q[j].urgent_released);
				nq = k = 0;
			}
			memset(&q[nq], 0, sizeof q[0]);
			q[nq++].minute = c->minute;
		}
		q[k].used += used;
		q[k].urgent_used += used && c->urgent;
		q[k].released += !used;
		q[k].urgent_released += !used && c->urgent;
		if (c->st == C_QUEUED) {
			if (rc == 0)
				rc = pobox_store_profile_release(pb->st, c->profile, 0, 0, 0, NULL, 0, &killed);
			c->st = C_SETTLED;
			continue;
		}
		if (rc)
			break;
		switch (c->cls) {
		case POBOX_CLASS_OK:
			rc = pobox_store_profile_delivered(pb->st, c->profile, now);
			counts[0]++;
			break;
		case POBOX_CLASS_NOTFOUND:
			/* single calls cannot create profiles: the bulk lane (v2) can */
			rc = pobox_store_profile_release(pb->st, c->profile, 1, 0, 0,
			                                 "profile not found by a single call; sent by bulk",
			                                 0, &killed);
			counts[1]++;
			break;
		case POBOX_CLASS_BUDGET:
		case POBOX_CLASS_AUTH:
		case POBOX_CLASS_CONFIG:
		case POBOX_CLASS_THROTTLE:
			rc = pobox_store_profile_release(pb->st, c->profile, 0, 0, 0, c->msg, 0, &killed);
			break;
		case POBOX_CLASS_PERMANENT:
		case POBOX_CLASS_REJECT: {
			char why[220];
			snprintf(why, sizeof why, "Target refused the update (HTTP %ld): %s", c->http, c->msg);
			rc = pobox_store_profile_release(pb->st, c->profile, 0, 1, 0, why, 1, &killed);
			counts[2]++;
			break;
		}
		case POBOX_CLASS_RETRY:
		default: {
			char why[220];
			snprintf(why, sizeof why, "single call: HTTP %ld: %s", c->http, c->msg);
			int64_t delay = pobox_backoff_delay_ms(&s->backoff, 1, c->retry_after_ms);
			rc = pobox_store_profile_release(pb->st, c->profile, 0, c->charge, now + delay, why,
			                                 s->d.max_attempts, &killed);
			counts[2]++;
			if (!killed) {
				if (retries++ == 0 || delay < first_retry_ms)
					first_retry_ms = delay;
				snprintf(retry_why, sizeof retry_why, "%s", why);
			}
			break;
		}
		}
		if (killed)
			pobox_log(POBOX_LOG_ERROR, "updates_dead", "lane=single profile=%lld reason=\"%s\"",
			          (long long)c->profile, c->msg);
		c->st = C_SETTLED;
	}
	for (int j = 0; j < nq && rc == 0; j++)
		rc = pobox_store_quota_settle(pb->st, pobox_quota_owner(), q[j].minute, q[j].used,
		                              q[j].urgent_used, q[j].released, q[j].urgent_released);
	for (int j = 0; j < ncc && rc == 0; j++)
		rc = pobox_store_count_calls(pb->st, "single", cc[j].http, cc[j].calls, cc[j].errors);
	if (rc == 0 && retries)
		/* one line per settle, not per call: an outage must not flood the log */
		pobox_log(POBOX_LOG_WARN, "retry_scheduled",
		          "lane=single profiles=%lld first_in_ms=%lld attempt_counted=%s reason=\"%s\"",
		          (long long)retries, (long long)first_retry_ms,
		          s->down_since_ms >= 0 ? "no" : "yes", retry_why);
	if (rc == 0 && final) {
		if (s->stop) {
			int64_t wait = s->stop_v.retry_after_ms > 0 ? s->stop_v.retry_after_ms : 60000;
			const char *cls = s->stop_v.cls == POBOX_CLASS_BUDGET ? "budget"
			                  : s->stop_v.cls == POBOX_CLASS_AUTH ? "auth" : "config";
			pobox_log(POBOX_LOG_ERROR, "lane_paused", "lane=single class=%s until_s=%lld reason=\"%s\"",
			          cls, (long long)(wait / 1000), s->stop_msg);
			rc = pobox_store_lane_pause(pb->st, "single", now + wait, cls, s->stop_msg);
		}
		if (rc == 0)
			rc = pobox_store_single_batch_finish(pb->st, batch, now, counts[0], counts[1], counts[2]);
	}
	if (rc == 0)
		return pobox_commit(pb);
	char keep[POBOX_ERRLEN];
	memcpy(keep, pb->err, sizeof keep);
	pobox_rollback(pb);
	memcpy(pb->err, keep, sizeof keep);
	return rc;
}

/* ---- one step ---------------------------------------------------------- */

static int single_batch(struct pobox_singler *s, struct pobox_step *out, int *did);

int pobox_single_step(struct pobox_singler *s, struct pobox_step *out)
{
	memset(out, 0, sizeof *out);
	out->next_due_ms = -1;
	/* every due group, a bounded number per step */
	for (int i = 0; i < 16; i++) {
		int did = 0;
		int64_t actions = out->actions;
		int rc = single_batch(s, out, &did);
		out->actions += actions;
		if (rc || !did || out->paused)
			return rc;
	}
	out->next_due_ms = now_ms(s);
	return 0;
}

static int single_batch(struct pobox_singler *s, struct pobox_step *out, int *did)
{
	struct pobox *pb = s->pb;
	int64_t id, at, until, now = now_ms(s);
	int64_t counts[3] = {0, 0, 0};
	char err[POBOX_ERRLEN];
	int rc;

	out->actions = 0;
	if ((rc = pobox_store_lane_get(pb->st, "single", &until, out->pause_class,
	                               sizeof out->pause_class, out->pause_reason,
	                               sizeof out->pause_reason)) != 0)
		return rc;
	if ((rc = pobox_store_lane_next(pb->st, "single", &id, &at)) != 0)
		return rc;
	if (id == 0)
		return 0;
	if (until > now && strcmp(out->pause_class, "budget") == 0) {
		/* the budget is spent until `until`: these updates go bulk instead
		 * of waiting (no attempt counted, no unit used) */
		int killed;
		struct pobox_batch b;
		*did = 1;
		calls_clear(s);
		if ((rc = pobox_store_scan_batch(pb->st, id, on_profile_id, s)) != 0)
			return rc;
		if ((rc = pobox_begin(pb)) != 0)
			return rc;
		for (size_t i = 0; i < s->ncalls && rc == 0; i++)
			rc = pobox_store_profile_release(pb->st, s->calls[i].profile, 1, 0, 0,
			                                 "single-call budget spent; sent by bulk", 0, &killed);
		if (rc == 0 && (rc = pobox_store_batch_get(pb->st, id, 0, &b)) == 0) {
			b.state = POBOX_B_DONE;
			b.finished_at_ms = now;
			rc = pobox_store_batch_save(pb->st, &b);
			pobox_batch_free(&b);
		}
		if (rc == 0)
			pobox_log(POBOX_LOG_WARN, "budget_low", "lane=single routed_to_bulk=%zu reason=\"%s\"",
			          s->ncalls, out->pause_reason);
		rc = rc ? (pobox_rollback(pb), rc) : pobox_commit(pb);
		calls_clear(s);
		out->paused = 1;
		out->paused_until_ms = until;
		return rc;
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
	*did = 1;
	calls_clear(s);
	if ((rc = pobox_store_each_attr(pb->st, load_name, s)) != 0 ||
	    (rc = pobox_store_scan_batch(pb->st, id, on_profile, s)) != 0)
		return rc;

	/* reserve before calling; what the budget cannot cover goes bulk */
	struct pobox_quota q;
	int64_t granted = 0, granted_urgent = 0;
	if ((rc = pobox_begin(pb)) != 0)
		return rc;
	if ((rc = pobox_quota_reap(pb, now)) == 0 && (rc = pobox_quota_read(pb, &s->o.quota, now, &q)) == 0) {
		int64_t minute = now / 60000;
		for (size_t i = 0; i < s->ncalls && rc == 0; i++) {
			struct call *c = &s->calls[i];
			int ok = c->urgent ? granted < q.left_urgent : granted < q.left_normal;
			if (!ok) {
				int killed;
				rc = pobox_store_profile_release(pb->st, c->profile, 1, 0, 0,
				                                 "single-call budget spent; sent by bulk", 0, &killed);
				c->st = C_SETTLED;
				continue;
			}
			c->minute = minute;
			granted++;
			granted_urgent += c->urgent;
		}
		if (rc == 0 && granted < (int64_t)s->ncalls)
			pobox_log(POBOX_LOG_WARN, "budget_low",
			          "lane=single routed_to_bulk=%lld remaining=%lld budget=%lld",
			          (long long)((int64_t)s->ncalls - granted), (long long)q.remaining,
			          (long long)q.budget);
		if (rc == 0 && granted)
			rc = pobox_store_quota_reserve(pb->st, pobox_quota_owner(), now, granted, granted_urgent);
	}
	if (rc == 0) {
		struct pobox_batch b;
		if ((rc = pobox_store_batch_get(pb->st, id, 0, &b)) == 0) {
			b.state = POBOX_B_SENDING;
			rc = pobox_store_batch_save(pb->st, &b);
			pobox_batch_free(&b);
		}
	}
	if (rc == 0)
		rc = pobox_commit(pb);
	else
		pobox_rollback(pb);
	if (rc)
		return rc;

	/* send, with at most `concurrency` in flight (fewer right after an outage) */
	size_t next = 0;
	int64_t last_settle = now_ms(s);
	for (;;) {
		int64_t full = s->o.concurrency > 0 ? s->o.concurrency : 1;
		int64_t allowed = s->recovered_at_ms >= 0
		                      ? pobox_backoff_ramp(now_ms(s), s->recovered_at_ms, s->o.recovery_ramp_ms, full)
		                      : full;
		if (s->down_since_ms >= 0)
			allowed = 1; /* probing an outage: one call at a time */
		/* Queue up to twice the calls allowed in flight: the multi client
		 * starts a queued call the moment a slot frees, so the pipeline never
		 * drains while this loop refills. */
		int64_t depth = s->down_since_ms >= 0 || s->recovered_at_ms >= 0 ? allowed : 2 * allowed;
		while (!s->stop && next < s->ncalls &&
		       (int64_t)pobox_http_multi_pending(s->multi) < depth) {
			struct call *c = &s->calls[next];
			if (c->st != C_QUEUED) {
				next++;
				continue;
			}
			struct pobox_http_req req = {
				.method = c->body ? POBOX_HTTP_POST : POBOX_HTTP_GET,
				.url = c->url,
				.body = c->body,
				.body_len = c->body_len,
			};
			if ((rc = pobox_http_multi_add(s->multi, &req, (void *)(uintptr_t)next, err, sizeof err)) != 0) {
				pobox_errf(pb->err, sizeof pb->err, rc, "%s", err);
				return rc;
			}
			c->st = C_FLYING;
			next++;
			out->actions++;
		}
		if (pobox_http_multi_pending(s->multi) == 0)
			break;
		/* short while there is more to queue (come back to refill), longer
		 * when only answers are awaited */
		int64_t wait_ms = !s->stop && next < s->ncalls ? 2 : 50;
		if ((rc = pobox_http_multi_run(s->multi, wait_ms, err, sizeof err)) != 0) {
			pobox_errf(pb->err, sizeof pb->err, rc, "%s", err);
			return rc;
		}
		if (now_ms(s) - last_settle >= SETTLE_EVERY_MS) {
			if ((rc = settle(s, id, 0, counts)) != 0)
				return rc;
			last_settle = now_ms(s);
		}
	}
	if ((rc = settle(s, id, 1, counts)) != 0)
		return rc;
	if (counts[0] || counts[1] || counts[2])
		pobox_log(POBOX_LOG_INFO, "single_calls", "batch=%lld delivered=%lld not_found=%lld failed=%lld",
		          (long long)id, (long long)counts[0], (long long)counts[1], (long long)counts[2]);
	if (s->stop) {
		out->paused = 1;
		snprintf(out->pause_class, sizeof out->pause_class, "%s",
		         s->stop_v.cls == POBOX_CLASS_BUDGET ? "budget"
		         : s->stop_v.cls == POBOX_CLASS_AUTH ? "auth" : "config");
		snprintf(out->pause_reason, sizeof out->pause_reason, "%s", s->stop_msg);
	}
	calls_clear(s);
	return 0;
}
