/*
 * deliver.c - the bulk uploader (see deliver.h for the state machine).
 *
 * Owns: the order of a batch action (reserve+mark, call, classify, record),
 * building request URLs (the status URL is used exactly as Target sent
 * it, within the Target origin family of origin.h, where an edge host
 * named over http:// is asked over https://; only `showDetails=true` is
 * appended for the details call),
 * retry timing, splitting rejected batches and resubmitting stuck or lost
 * ones.  HTTP is http.c's, parsing response.c's, the verdict classify.c's,
 * the SQL the store's.
 */
#include "deliver.h"
#include "alloc.h"
#include "backoff.h"
#include "classify.h"
#include "credentials.h"
#include "error.h"
#include "fleet.h"
#include "http.h"
#include "log.h"
#include "origin.h"
#include "outage.h"
#include "outbox.h"
#include "response.h"
#include "store.h"
#include "payload.h"
#include "zpayload.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define MAX_ACTIONS_PER_STEP 64

struct pobox_deliverer {
	struct pobox *pb;
	struct pobox_deliver_opts o;
	struct pobox_http *http;
	struct pobox_backoff backoff;
	char *client, *base_url;
	/* Batches allowed in flight now: halved when Target has forgotten a
	 * status (it keeps only its last few), back up by one per completion. */
	int64_t in_flight_limit;
	struct pobox_outage net;   /* the lane cannot reach Target (outage.h) */
	int lift;                  /* an answer ended an outage: lift the pauses */
	struct pobox_cred *cred;   /* a reference, or NULL */
	uint64_t token_gen;        /* of the token the http handle holds */
};

char *pobox_deliver_base_url(const struct pobox_deliver_opts *o)
{
	char *url;
	if (o->base_url && *o->base_url) {
		url = pobox_strdup(o->base_url);
	} else {
		size_t n = strlen(o->client) + 32;
		if ((url = pobox_malloc(n)))
			snprintf(url, n, "https://%s.tt.omtrdc.net", o->client);
	}
	size_t l = url ? strlen(url) : 0;
	while (l && url[l - 1] == '/')
		url[--l] = '\0';
	return url;
}

/* A bearer token will be sent: a static one, or one the credentials get. */
static int has_token(const struct pobox_deliver_opts *o)
{
	return (o->token && *o->token) ||
	       (o->cred && pobox_cred_source(o->cred) != POBOX_CRED_NONE);
}

int pobox_deliver_check(const struct pobox_deliver_opts *o, char *err, size_t errlen)
{
	struct pobox_origin b;
	char why[200];
	int rc = 0;
	if (!o->client || !*o->client)
		return pobox_errf(err, errlen, POBOX_ECONFIG,
		                  "no Target client code: set client in the config (or POBOX_CLIENT)");
	char *url = pobox_deliver_base_url(o);
	if (!url)
		return pobox_errf(err, errlen, POBOX_ENOMEM, "out of memory");
	if (pobox_origin_parse(&b, url, why, sizeof why) != 0)
		rc = pobox_errf(err, errlen, POBOX_ECONFIG, "base_url %s: %s", url, why);
	else if (has_token(o) && !b.https && !b.loopback)
		rc = pobox_errf(err, errlen, POBOX_ECONFIG,
		                "base_url %s is plain http: the bearer token would cross the network "
		                "unencrypted; use https:// (plain http only to 127.0.0.1, localhost "
		                "or ::1)", url);
	pobox_free(url);
	return rc;
}

int pobox_deliverer_new(struct pobox_deliverer **out, struct pobox *pb,
                        const struct pobox_deliver_opts *o, char *err, size_t errlen)
{
	struct pobox_deliverer *d;
	struct pobox_http_config hc;
	int rc;

	if ((rc = pobox_deliver_check(o, err, errlen)) != 0)
		return rc;
	if ((rc = pobox_http_global_init(err, errlen)) != 0)
		return rc;
	d = pobox_calloc(1, sizeof *d);
	if (!d)
		return pobox_errf(err, errlen, POBOX_ENOMEM, "out of memory");
	d->pb = pb;
	d->o = *o;
	d->in_flight_limit = o->max_in_flight > 0 ? o->max_in_flight : 1;
	d->client = pobox_strdup(o->client);
	d->base_url = pobox_deliver_base_url(o);
	if (!d->client || !d->base_url) {
		rc = pobox_errf(err, errlen, POBOX_ENOMEM, "out of memory");
		goto fail;
	}
	d->o.client = d->client;
	d->o.base_url = d->base_url;
	d->o.token = NULL; /* the http handle keeps its own copy */
	d->cred = d->o.cred = pobox_cred_ref(o->cred);
	pobox_http_config_init(&hc);
	hc.connect_timeout_ms = o->connect_timeout_ms;
	hc.timeout_ms = o->request_timeout_ms;
	hc.verify_tls = o->verify_tls;
	hc.bearer_token = o->token;
	hc.clock = &pb->clock;
	hc.max_body_bytes = 64u << 20; /* a details answer may list 500,000 failed rows */
	hc.abort_fn = o->abort_fn;
	hc.abort_ctx = o->abort_ctx;
	if ((rc = pobox_http_new(&d->http, &hc, err, errlen)) != 0)
		goto fail;
	pobox_backoff_init(&d->backoff, o->backoff_base_ms, o->backoff_cap_ms, 0,
	                   o->seed ? o->seed : (uint64_t)pobox_clock_now_ms(&pb->clock) ^
	                                           ((uint64_t)getpid() << 32));
	pobox_outage_init(&d->net, "bulk", o->backoff_base_ms, o->backoff_cap_ms,
	                  pobox_backoff_rand(&d->backoff));
	*out = d;
	return 0;
fail:
	pobox_deliverer_free(d);
	return rc;
}

void pobox_deliverer_free(struct pobox_deliverer *d)
{
	if (!d)
		return;
	pobox_http_free(d->http);
	pobox_cred_free(d->cred);
	pobox_free(d->client);
	pobox_free(d->base_url);
	pobox_free(d);
}

static int64_t now_ms(struct pobox_deliverer *d) { return pobox_clock_now_ms(&d->pb->clock); }

/* Commits, or rolls back keeping the error text. */
static int finish_tx(struct pobox *pb, int rc)
{
	if (rc == 0)
		return pobox_commit(pb);
	char keep[POBOX_ERRLEN];
	memcpy(keep, pb->err, sizeof keep);
	pobox_rollback(pb);
	memcpy(pb->err, keep, sizeof keep);
	return rc;
}

/* last_error = prefix + detail; the HTTP status when there was one */
static void set_error(struct pobox_batch *b, long http, const char *prefix, const char *detail)
{
	char buf[700];
	snprintf(buf, sizeof buf, "%s%s", prefix, detail ? detail : "");
	pobox_free(b->last_error);
	b->last_error = pobox_strdup(buf);
	if (http)
		b->last_http_status = http;
}

/* ---- one HTTP exchange -------------------------------------------------- */

struct exchange {
	struct pobox_http_resp resp;
	struct pobox_answer ans;
	struct pobox_verdict v;
	char msg[POBOX_ERRLEN];  /* readable reason for logs and last_error */
	int retry_now;           /* refused (401/403), and a new token is in hand */
	int request_rc;          /* pobox_http_request's result */
};

/* Puts the current token on the http handle.  0, or the credentials'
 * error (no usable token; reason in err). */
static int sync_token(struct pobox_deliverer *d, char *err, size_t errlen)
{
	const char *tok;
	uint64_t gen;
	int rc;
	if (!d->cred)
		return 0;
	if ((rc = pobox_cred_token(d->cred, &tok, &gen, err, errlen)) != 0)
		return rc;
	if (gen != d->token_gen && (rc = pobox_http_set_bearer(d->http, tok, err, errlen)) == 0)
		d->token_gen = gen;
	return rc;
}

/* Target refused the token (401/403): one refresh.  x->retry_now when a new
 * token is in hand; otherwise why not goes into x->msg. */
static void after_refusal(struct pobox_deliverer *d, struct exchange *x)
{
	char why[POBOX_ERRLEN];
	if (!d->cred || pobox_cred_source(d->cred) == POBOX_CRED_NONE)
		return;
	if (pobox_cred_refused(d->cred, d->token_gen, why, sizeof why) == 0 &&
	    sync_token(d, why, sizeof why) == 0) {
		x->retry_now = 1;
		return;
	}
	size_t n = strlen(x->msg);
	snprintf(x->msg + n, sizeof x->msg - n, "%sand a new token could not be had: %s",
	         n ? "; " : "", why);
}

static void exchange_free(struct exchange *x)
{
	pobox_http_resp_free(&x->resp);
	pobox_answer_free(&x->ans);
}

/* Makes the call and classifies it.  on_row collects failed rows of a
 * details answer. */
static void call_req(struct pobox_deliverer *d, enum pobox_call what,
                     const struct pobox_http_req *req, enum pobox_answer_kind kind,
                     pobox_profile_row_fn on_row, void *ctx, struct exchange *x)
{
	char err[POBOX_ERRLEN];
	int answer_rc = 0;

	memset(x, 0, sizeof *x);
	x->ans.success = -1;
	/* a token due for refresh is refreshed here; one that cannot be is
	 * still sent while it lasts (the deliver step paused the lane if
	 * there was none at all) */
	sync_token(d, err, sizeof err);
	int rc = pobox_http_request(d->http, req, &x->resp, err, sizeof err);
	x->request_rc = rc;
	if (d->o.fleet) /* the permit reserve_call took: when its call was seen */
		pobox_fleet_bulk_done(d->o.fleet, rc == 0 && x->resp.fail == POBOX_HTTP_FAIL_NONE);
	if (x->resp.fail == POBOX_HTTP_FAIL_NONE && rc == 0) {
		const char *b = x->resp.body ? x->resp.body : "";
		if (x->resp.status >= 200 && x->resp.status < 300) {
			answer_rc = pobox_response_parse(kind, &x->ans, b, x->resp.body_len, on_row, ctx,
			                                 err, sizeof err);
			if (answer_rc)
				snprintf(x->msg, sizeof x->msg, "%s", err);
		} else if (pobox_response_parse(POBOX_ANSWER_ANY, &x->ans, b, x->resp.body_len, NULL,
		                                NULL, err, sizeof err) != 0) {
			pobox_response_error_text(x->msg, sizeof x->msg, b, x->resp.body_len);
		}
		if (!x->msg[0] && x->ans.message)
			snprintf(x->msg, sizeof x->msg, "%.400s", x->ans.message);
	} else {
		snprintf(x->msg, sizeof x->msg, "%s", x->resp.errmsg[0] ? x->resp.errmsg : err);
	}
	struct pobox_outcome oc = {
		.call = what,
		.fail = x->resp.fail != POBOX_HTTP_FAIL_NONE ? x->resp.fail
		        : rc != 0 ? POBOX_HTTP_FAIL_OTHER : POBOX_HTTP_FAIL_NONE,
		.http_status = x->resp.status,
		.answer_rc = answer_rc,
		.success = x->ans.success,
		.message = x->msg[0] ? x->msg : NULL,
		.retry_after_ms = x->resp.retry_after_ms,
		.now_ms = now_ms(d),
	};
	pobox_classify(&x->v, &oc);
	/* any answer at all: Target is reachable again */
	if (x->resp.fail == POBOX_HTTP_FAIL_NONE && rc == 0) {
		enum pobox_outage_event ev = pobox_outage_ok(&d->net, oc.now_ms);
		pobox_outage_log(&d->net, ev, oc.now_ms);
		d->lift |= ev == POBOX_OUTAGE_END;
	}
	if (x->v.cls == POBOX_CLASS_AUTH)
		after_refusal(d, x);
}

static void call(struct pobox_deliverer *d, enum pobox_call what, enum pobox_http_method m,
                 const char *url, const char *body, size_t len, enum pobox_answer_kind kind,
                 pobox_profile_row_fn on_row, void *ctx, struct exchange *x)
{
	struct pobox_http_req req = {.method = m, .url = url, .body = body, .body_len = len};
	call_req(d, what, &req, kind, on_row, ctx, x);
}

/* A call that never reached Target: refused, or the name did not resolve. */
static int unreachable(const struct exchange *x)
{
	return x->resp.fail == POBOX_HTTP_FAIL_CONNECT || x->resp.fail == POBOX_HTTP_FAIL_RESOLVE;
}

/* A call our own stop or deadline ended: nothing is recorded (the batch
 * keeps its state, as after a crash), and the caller ends the step. */
static int never_answered(const struct pobox_batch *b, const struct exchange *x)
{
	if (x->resp.fail != POBOX_HTTP_FAIL_ABORTED)
		return 0;
	pobox_log(POBOX_LOG_INFO, "call_aborted", "batch=%lld state=%s reason=\"%s\"",
	          (long long)b->id, pobox_batch_state_names[b->state], x->msg);
	return 1;
}

static int aborting(const struct pobox_deliverer *d)
{
	return d->o.abort_fn && d->o.abort_fn(d->o.abort_ctx);
}

/* ---- recording outcomes ------------------------------------------------- */

/* Dead-letters the batch's updates with reason. */
static int kill_batch(struct pobox_deliverer *d, struct pobox_batch *b, const char *reason)
{
	b->state = POBOX_B_DEAD;
	b->finished_at_ms = now_ms(d);
	set_error(b, 0, "", reason);
	/* saved first: the dead rows take this attempt count and HTTP status */
	int rc = pobox_store_batch_save(d->pb->st, b);
	if (rc)
		return rc;
	pobox_log(POBOX_LOG_ERROR, "batch_dead", "batch=%lld updates=%lld reason=\"%s\"",
	          (long long)b->id, (long long)b->updates, reason);
	return pobox_store_batch_kill(d->pb->st, b->id, reason);
}

static int pause_lane(struct pobox_deliverer *d, const char *cls, int64_t until, const char *why)
{
	pobox_log(strcmp(cls, "throttle") == 0 ? POBOX_LOG_WARN : POBOX_LOG_ERROR, "lane_paused",
	          "lane=bulk class=%s until_s=%lld reason=\"%s\"", cls,
	          (long long)((until - now_ms(d) + 999) / 1000), why);
	return pobox_store_lane_pause(d->pb->st, "bulk", until, cls, why);
}

/* A transient failure: count an attempt when the verdict says so, give up
 * when attempts or age run out, else wait. */
static int retry_later(struct pobox_deliverer *d, struct pobox_batch *b, const struct exchange *x,
                       enum pobox_batch_state back_to)
{
	int64_t now = now_ms(d);
	if (x->v.charge_attempt)
		b->attempts++;
	set_error(b, x->resp.status, "", x->msg[0] ? x->msg : x->v.reason);
	if (b->attempts >= d->o.max_attempts || now - b->created_at_ms >= d->o.max_age_ms) {
		char why[600];
		snprintf(why, sizeof why, "gave up after %lld attempts over %llds; last: HTTP %ld, %s%s%s",
		         (long long)b->attempts, (long long)((now - b->created_at_ms) / 1000),
		         x->resp.status, x->v.reason, x->msg[0] ? ": " : "", x->msg);
		return kill_batch(d, b, why);
	}
	b->state = back_to;
	b->next_at_ms = now + pobox_backoff_delay_ms(&d->backoff, (unsigned)b->attempts,
	                                             x->v.retry_after_ms);
	pobox_log(POBOX_LOG_WARN, "retry_scheduled",
	          "batch=%lld attempt=%lld in_ms=%lld http=%ld reason=\"%s\"", (long long)b->id,
	          (long long)b->attempts, (long long)(b->next_at_ms - now), x->resp.status,
	          x->msg[0] ? x->msg : x->v.reason);
	return pobox_store_batch_save(d->pb->st, b);
}

/* Target unreachable: the lane goes (or stays) offline until the next
 * probe (outage.h).  b keeps its state and times: no attempt, no retry time,
 * no new row; only its last_error says why. */
static int went_offline(struct pobox_deliverer *d, struct pobox_batch *b, const struct exchange *x,
                        enum pobox_batch_state back_to)
{
	int64_t now = now_ms(d);
	const char *why = x->msg[0] ? x->msg : x->v.reason;
	enum pobox_outage_event ev = pobox_outage_failed(&d->net, now, why);
	pobox_outage_log(&d->net, ev, now);
	b->state = back_to;
	set_error(b, 0, "", why);
	int rc = pobox_outage_pause(d->pb, &d->net);
	return rc ? rc : pobox_store_batch_save(d->pb->st, b);
}

/* Throttle / auth / config: the whole lane waits; no attempt is spent. */
static int lane_wait(struct pobox_deliverer *d, struct pobox_batch *b, const struct exchange *x,
                     enum pobox_batch_state back_to)
{
	int64_t now = now_ms(d);
	const char *cls = x->v.cls == POBOX_CLASS_AUTH ? "auth"
	                  : x->v.cls == POBOX_CLASS_CONFIG ? "config" : "throttle";
	int64_t wait = x->v.retry_after_ms > 0 ? x->v.retry_after_ms
	               : strcmp(cls, "throttle") == 0 ? 60000 : 30000;
	char why[600];
	if (x->resp.status)
		snprintf(why, sizeof why, "HTTP %ld: %s%s%s", x->resp.status, x->v.reason,
		         x->msg[0] ? ": " : "", x->msg);
	else
		snprintf(why, sizeof why, "%s", x->msg[0] ? x->msg : x->v.reason);
	b->state = back_to;
	b->next_at_ms = now + wait;
	set_error(b, x->resp.status, "", why);
	int rc = pause_lane(d, cls, now + wait, why);
	return rc ? rc : pobox_store_batch_save(d->pb->st, b);
}

/* Target refused the token and a new one is in hand: the batch goes again
 * at once; no attempt, no pause. */
static int auth_retry(struct pobox_deliverer *d, struct pobox_batch *b, const struct exchange *x,
                      enum pobox_batch_state back_to)
{
	pobox_log(POBOX_LOG_WARN, "token_refused", "lane=bulk batch=%lld http=%ld action=retry_with_new_token",
	          (long long)b->id, x->resp.status);
	b->state = back_to;
	b->next_at_ms = now_ms(d);
	return pobox_store_batch_save(d->pb->st, b);
}

/* 401/403: a retry with the new token, or the loud pause. */
static int auth_or_wait(struct pobox_deliverer *d, struct pobox_batch *b, const struct exchange *x,
                        enum pobox_batch_state back_to)
{
	return x->v.cls == POBOX_CLASS_AUTH && x->retry_now ? auth_retry(d, b, x, back_to)
	                                                    : lane_wait(d, b, x, back_to);
}

/* A rejected file: halves go back as two batches; one row left is dead. */
static int split(struct pobox_deliverer *d, struct pobox_batch *b, const struct exchange *x)
{
	struct pobox *pb = d->pb;
	char why[600];
	int64_t median, a, c;
	int rc;
	snprintf(why, sizeof why, "Target refused the batch (HTTP %ld): %s", x->resp.status,
	         x->msg[0] ? x->msg : x->v.reason);
	if (x->v.charge_attempt)
		b->attempts++;
	b->last_http_status = x->resp.status;
	if (b->profiles <= 1)
		return kill_batch(d, b, why);
	if ((rc = pobox_store_batch_median(pb->st, b->id, &median)) != 0 ||
	    (rc = pobox_store_batch_new(pb->st, b->api, b->id_type, "split", b->id, 0, now_ms(d), &a)) != 0 ||
	    (rc = pobox_store_batch_new(pb->st, b->api, b->id_type, "split", b->id, 0, now_ms(d), &c)) != 0 ||
	    (rc = pobox_store_batch_move(pb->st, b->id, a, median)) != 0 ||
	    (rc = pobox_store_batch_move(pb->st, b->id, c, -1)) != 0 ||
	    (rc = pobox_sched_build(pb, &d->o.sched, a)) != 0 ||
	    (rc = pobox_sched_build(pb, &d->o.sched, c)) != 0)
		return rc;
	b->state = POBOX_B_SPLIT;
	b->finished_at_ms = now_ms(d);
	set_error(b, x->resp.status, "", why);
	pobox_log(POBOX_LOG_WARN, "batch_split", "batch=%lld into=%lld,%lld profiles=%lld reason=\"%s\"",
	          (long long)b->id, (long long)a, (long long)c, (long long)b->profiles, why);
	return pobox_store_batch_save(pb->st, b);
}

/* Lost (Target no longer knows the status): the same bytes go again as a
 * new batch, at most stuck_resubmits times in a row. */
static int resubmit(struct pobox_deliverer *d, struct pobox_batch *b, const char *why)
{
	struct pobox *pb = d->pb;
	int64_t n;
	int rc;
	if (strcmp(why, "lost") == 0 && d->in_flight_limit > 1) {
		d->in_flight_limit /= 2;
		pobox_log(POBOX_LOG_WARN, "in_flight_lowered", "limit=%lld reason=\"Target no longer knew "
		          "a batch status\"", (long long)d->in_flight_limit);
	}
	if (b->resubmits >= d->o.stuck_resubmits) {
		char r[300];
		snprintf(r, sizeof r, "batch %s again after %lld resubmissions", why,
		         (long long)b->resubmits);
		return kill_batch(d, b, r);
	}
	if ((rc = pobox_store_batch_new(pb->st, b->api, b->id_type, why, b->id, b->resubmits + 1,
	                                now_ms(d), &n)) != 0 ||
	    (rc = pobox_store_batch_copy_payload(pb->st, n, b->id)) != 0 ||
	    (rc = pobox_store_batch_move(pb->st, b->id, n, -1)) != 0)
		return rc;
	b->state = POBOX_B_REPLACED;
	b->finished_at_ms = now_ms(d);
	pobox_log(POBOX_LOG_WARN, "batch_resubmitted", "batch=%lld as=%lld why=%s generation=%lld",
	          (long long)b->id, (long long)n, why, (long long)(b->resubmits + 1));
	return pobox_store_batch_save(pb->st, b);
}

/* Stuck is Target's transient state: the batch's rows go back to pending
 * with an attempt counted and are cut again (with anything newer for the
 * same profiles); only max_attempts (per profile) and max_age make dead
 * letters. */
static int requeue_stuck(struct pobox_deliverer *d, struct pobox_batch *b)
{
	int64_t now = now_ms(d), killed = 0;
	char why[300];
	int rc;
	if (now - b->created_at_ms >= d->o.max_age_ms) {
		snprintf(why, sizeof why, "batch stuck at Target; gave up after max_age (%llds)",
		         (long long)(d->o.max_age_ms / 1000));
		return kill_batch(d, b, why);
	}
	snprintf(why, sizeof why, "batch %lld stuck at Target for %llds; its updates went back to "
	         "pending (attempt counted)", (long long)b->id,
	         (long long)((now - b->submitted_at_ms) / 1000));
	if ((rc = pobox_store_batch_retry_rows(d->pb->st, b->id, why, now, d->o.max_attempts,
	                                       &killed)) != 0)
		return rc;
	b->state = POBOX_B_REPLACED;
	b->finished_at_ms = now;
	set_error(b, 0, "", why);
	pobox_log(POBOX_LOG_WARN, "batch_stuck", "batch=%lld profiles=%lld requeued=%lld dead=%lld",
	          (long long)b->id, (long long)b->profiles, (long long)(b->profiles - killed),
	          (long long)killed);
	if (killed)
		pobox_log(POBOX_LOG_ERROR, "updates_dead", "lane=bulk batch=%lld profiles=%lld "
		          "reason=\"stuck after max_attempts (%lld)\"", (long long)b->id,
		          (long long)killed, (long long)d->o.max_attempts);
	return pobox_store_batch_save(d->pb->st, b);
}

/* ---- actions ----------------------------------------------------------- */

/* Reserves one bulk call in the per-minute ledger, in its own transaction,
 * marking b sending in the same one when b is given.  Returns 0, 1 when
 * this minute's calls are used up (st->next_due_ms says when one frees),
 * or an error. */
static int reserve_call(struct pobox_deliverer *d, struct pobox_batch *b, struct pobox_step *st)
{
	struct pobox *pb = d->pb;
	int64_t retry_at = 0, limit = d->o.calls_per_minute;
	int rc;
	/* a fleet's bulk limit is the account's: first the fleet's permit */
	if (d->o.fleet && pobox_fleet_bulk_take(d->o.fleet, now_ms(d), &limit, &retry_at) != 0) {
		st->next_due_ms = retry_at;
		return 1;
	}
	if ((rc = pobox_begin(pb)) != 0) {
		if (d->o.fleet)
			pobox_fleet_bulk_untake(d->o.fleet);
		return rc;
	}
	rc = pobox_store_bulk_call(pb->st, now_ms(d), limit, &retry_at);
	if (rc && d->o.fleet)
		pobox_fleet_bulk_untake(d->o.fleet);
	if (rc == POBOX_EBUSY) {
		pobox_rollback(pb);
		st->next_due_ms = retry_at;
		return 1;
	}
	if (rc == 0 && b) {
		b->state = POBOX_B_SENDING;
		rc = pobox_store_batch_save(pb->st, b);
	}
	return finish_tx(pb, rc);
}

/* The stored payload as the body source: inflated while curl sends it. */
static long payload_read(void *ctx, char *buf, size_t cap)
{
	return pobox_zreader_read(ctx, buf, cap);
}

static int payload_rewind(void *ctx)
{
	return pobox_zreader_rewind(ctx);
}

/* A payload that does not decode to the bytes stored at cut time is never
 * sent: its last piece is held back (zreader), the call aborted, and the
 * rows go back to pending to be cut again. */
static int payload_damaged(struct pobox_deliverer *d, struct pobox_batch *b)
{
	struct pobox *pb = d->pb;
	int rc;
	if ((rc = pobox_begin(pb)) != 0)
		return rc;
	rc = pobox_store_batch_release(pb->st, b->id);
	b->state = POBOX_B_DEAD;
	b->finished_at_ms = now_ms(d);
	set_error(b, 0, "", "stored payload failed its checksum; its updates were put back "
	                    "to pending");
	pobox_log(POBOX_LOG_ERROR, "payload_corrupt", "batch=%lld", (long long)b->id);
	if (rc == 0)
		rc = pobox_store_batch_save(pb->st, b);
	return finish_tx(pb, rc);
}

static int submit(struct pobox_deliverer *d, struct pobox_batch *b, struct pobox_step *st)
{
	struct pobox *pb = d->pb;
	struct exchange x;
	struct pobox_payload_src ps;
	struct pobox_zreader zr;
	char url[1024];
	int rc;

	/* 1. reserve a call and mark the batch sending, together */
	if ((rc = reserve_call(d, b, st)) != 0)
		return rc; /* 1: the minute's calls are used: stop this step */

	/* 2. the call, with the exact bytes stored at cut time */
	if ((rc = pobox_zreader_init(&zr, pobox_payload_src_init(&ps, pb->st, b->id),
	                             (uint64_t)b->bytes, b->payload_crc32)) != 0)
		return rc;
	struct pobox_http_source src = {.read = payload_read, .rewind = payload_rewind, .ctx = &zr};
	snprintf(url, sizeof url, "%s/m2/%s%s/profile/batchUpdate", d->base_url, d->client,
	         b->api == 2 ? "/v2" : "");
	struct pobox_http_req req = {
		.method = POBOX_HTTP_POST, .url = url, .source = &src, .body_len = (size_t)b->bytes};
	call_req(d, POBOX_CALL_BULK_SUBMIT, &req, POBOX_ANSWER_SUBMIT, NULL, NULL, &x);
	pobox_zreader_free(&zr);
	pobox_payload_src_free(&ps);
	st->actions++;
	if (never_answered(b, &x)) {
		exchange_free(&x);
		return 1; /* stays sending: re-sent later, as after a crash */
	}
	if (x.resp.fail != POBOX_HTTP_FAIL_NONE && x.request_rc == POBOX_ECORRUPT) {
		exchange_free(&x);
		return payload_damaged(d, b);
	}
	if (x.resp.fail != POBOX_HTTP_FAIL_NONE && x.request_rc < 0 &&
	    x.request_rc != POBOX_ETRANSIENT) {
		/* the outbox could not be read mid-send: as after a crash, the
		 * batch stays sending */
		rc = x.request_rc;
		exchange_free(&x);
		return rc;
	}

	/* 3. record the outcome */
	if ((rc = pobox_begin(pb)) != 0) {
		exchange_free(&x);
		return rc;
	}
	rc = pobox_store_count_call(pb->st, "bulk", x.resp.status, x.v.cls != POBOX_CLASS_OK);
	switch (rc ? -1 : unreachable(&x) ? -2 : (int)x.v.cls) {
	case -1:
		break;
	case -2:
		rc = went_offline(d, b, &x, POBOX_B_READY);
		break;
	case POBOX_CLASS_OK: {
		int64_t now = now_ms(d);
		b->state = POBOX_B_SUBMITTED;
		pobox_free(b->status_url);
		b->status_url = pobox_strdup(x.ans.status_url);
		b->submitted_at_ms = now;
		b->polls = 0;
		b->attempts = 0;
		b->next_at_ms = now + d->o.poll_initial_ms;
		b->last_http_status = x.resp.status;
		pobox_free(b->last_error);
		b->last_error = NULL;
		rc = b->status_url ? pobox_store_batch_save(pb->st, b) : POBOX_ENOMEM;
		pobox_log(POBOX_LOG_INFO, "batch_sent", "batch=%lld api=v%d profiles=%lld bytes=%lld",
		          (long long)b->id, b->api, (long long)b->profiles, (long long)b->bytes);
		break;
	}
	case POBOX_CLASS_THROTTLE:
	case POBOX_CLASS_BUDGET:
	case POBOX_CLASS_AUTH:
	case POBOX_CLASS_CONFIG:
		rc = auth_or_wait(d, b, &x, POBOX_B_READY);
		break;
	case POBOX_CLASS_REJECT:
	case POBOX_CLASS_NOTFOUND:
		rc = split(d, b, &x);
		break;
	case POBOX_CLASS_PERMANENT: {
		char why[600];
		snprintf(why, sizeof why, "Target refused the batch (HTTP %ld): %s", x.resp.status,
		         x.msg[0] ? x.msg : x.v.reason);
		b->attempts++;
		b->last_http_status = x.resp.status;
		rc = kill_batch(d, b, why);
		break;
	}
	case POBOX_CLASS_RETRY:
	default:
		rc = retry_later(d, b, &x, POBOX_B_READY);
		break;
	}
	exchange_free(&x);
	return finish_tx(pb, rc);
}

struct failed_rows {
	char **ids;
	size_t n, cap;
	int oom;
};

static int on_failed_row(void *ctx, const char *id, const char *status)
{
	struct failed_rows *f = ctx;
	/* since 2020 only failures are listed; the 2023 wording lists every row */
	if (strcmp(status, "success") == 0 || strcmp(status, "pending") == 0)
		return 0;
	if (f->n == f->cap) {
		size_t n = f->cap ? f->cap * 2 : 64;
		char **ni = pobox_realloc(f->ids, n * sizeof *ni);
		if (!ni) {
			f->oom = 1;
			return POBOX_ENOMEM;
		}
		f->ids = ni;
		f->cap = n;
	}
	if (!(f->ids[f->n] = pobox_strdup(id))) {
		f->oom = 1;
		return POBOX_ENOMEM;
	}
	f->n++;
	return 0;
}

static void failed_rows_free(struct failed_rows *f)
{
	for (size_t i = 0; i < f->n; i++)
		pobox_free(f->ids[i]);
	pobox_free(f->ids);
}

/* A poll said complete but no call was free for the details (the minute's
 * calls, or a fleet's permits, went to others): the poll is counted and its
 * answer kept, so the next call for the batch is the details call, not
 * another poll that would spend a call to learn the same again - with
 * several hosts sharing a limit, over and over.  Returns 1 (the step
 * stops; the batch stays due) or an error. */
static int complete_later(struct pobox_deliverer *d, struct pobox_batch *b, long poll_http)
{
	struct pobox *pb = d->pb;
	int rc;
	if ((rc = pobox_begin(pb)) != 0)
		return rc;
	pobox_free(b->remote_status);
	b->remote_status = pobox_strdup("complete"); /* NULL (no memory): polled again */
	if ((rc = pobox_store_count_call(pb->st, "bulk", poll_http, 0)) == 0)
		rc = pobox_store_batch_save(pb->st, b);
	rc = finish_tx(pb, rc);
	return rc ? rc : 1;
}

/* Whether Target already said the batch is complete (complete_later). */
static int said_complete(const struct pobox_batch *b)
{
	return b->state == POBOX_B_SUBMITTED && b->remote_status &&
	       strcmp(b->remote_status, "complete") == 0;
}

/* complete: fetch the details, then record delivery and failed rows in one
 * transaction.  poll_http: the status of the poll that said complete just
 * now (counted with the details call), 0 when complete_later counted it. */
static int complete(struct pobox_deliverer *d, struct pobox_batch *b, struct pobox_step *st,
                    long poll_http, const char *status_url)
{
	struct pobox *pb = d->pb;
	struct failed_rows f = {0};
	struct exchange x;
	char *url;
	int rc;

	if ((rc = reserve_call(d, NULL, st)) != 0) /* 1: no call free now */
		return rc == 1 && poll_http ? complete_later(d, b, poll_http) : rc;
	size_t n = strlen(status_url) + 24;
	if (!(url = pobox_malloc(n)))
		return POBOX_ENOMEM;
	snprintf(url, n, "%s%cshowDetails=true", status_url, strchr(status_url, '?') ? '&' : '?');
	call(d, POBOX_CALL_BULK_STATUS, POBOX_HTTP_GET, url, NULL, 0, POBOX_ANSWER_STATUS,
	     on_failed_row, &f, &x);
	pobox_free(url);
	st->actions++;
	if (never_answered(b, &x)) {
		rc = 1; /* still submitted: polled again */
		goto out;
	}
	if ((rc = pobox_begin(pb)) != 0)
		goto out;
	/* the poll that said complete, and this details call */
	if ((poll_http && (rc = pobox_store_count_call(pb->st, "bulk", poll_http, 0)) != 0) ||
	    (rc = pobox_store_count_call(pb->st, "bulk", x.resp.status, x.v.cls != POBOX_CLASS_OK)) != 0) {
		rc = finish_tx(pb, rc);
		goto out;
	}
	if (x.v.cls == POBOX_CLASS_OK && x.ans.status == POBOX_BATCH_COMPLETE && !f.oom) {
		int64_t now = now_ms(d);
		int64_t next = now + pobox_backoff_delay_ms(&d->backoff, 0, -1);
		for (size_t i = 0; i < f.n && rc == 0; i++) {
			int found = 0;
			char why[300];
			snprintf(why, sizeof why, "Target reported the row failed in batch %lld",
			         (long long)b->id);
			rc = pobox_store_row_failed(pb->st, b->id, b->id_type, f.ids[i], why, next,
			                            d->o.max_attempts, &found);
			if (rc == 0 && !found)
				pobox_log(POBOX_LOG_WARN, "unknown_failed_row", "batch=%lld id=\"%.64s\"",
				          (long long)b->id, f.ids[i]);
		}
		if (rc == 0)
			rc = pobox_store_batch_delivered(pb->st, b->id, b->api == 2, now);
		if (rc == 0) {
			b->state = POBOX_B_DONE;
			b->finished_at_ms = now;
			b->batch_size = x.ans.batch_size;
			b->successful_updates = x.ans.successful_updates;
			b->profiles_not_found = x.ans.profiles_not_found;
			b->failed_updates = x.ans.failed_updates >= 0 ? x.ans.failed_updates : (int64_t)f.n;
			pobox_free(b->remote_status);
			b->remote_status = pobox_strdup("complete");
			rc = pobox_store_batch_save(pb->st, b);
			if (d->in_flight_limit < d->o.max_in_flight)
				d->in_flight_limit++;
			pobox_log(POBOX_LOG_INFO, "batch_completed",
			          "batch=%lld profiles=%lld failed_rows=%zu not_found=%lld",
			          (long long)b->id, (long long)b->profiles, f.n,
			          (long long)b->profiles_not_found);
		}
	} else if (unreachable(&x)) {
		rc = went_offline(d, b, &x, POBOX_B_SUBMITTED);
	} else if (x.v.cls == POBOX_CLASS_OK || x.v.cls == POBOX_CLASS_RETRY) {
		/* the details call failed or said something else: poll again */
		pobox_free(b->remote_status);
		b->remote_status = NULL;
		b->polls++;
		b->next_at_ms = now_ms(d) + pobox_backoff_delay_ms(&d->backoff, (unsigned)(b->polls % 8),
		                                                   x.v.retry_after_ms);
		set_error(b, x.resp.status, "status details: ", x.msg[0] ? x.msg : x.v.reason);
		rc = pobox_store_batch_save(pb->st, b);
	} else if (x.v.cls == POBOX_CLASS_NOTFOUND) {
		rc = resubmit(d, b, "lost");
	} else {
		rc = auth_or_wait(d, b, &x, POBOX_B_SUBMITTED);
	}
	rc = finish_tx(pb, rc);
out:
	exchange_free(&x);
	failed_rows_free(&f);
	return rc;
}

/* A stored status URL outside the Target origin family (origin.h): no
 * request, so the token goes nowhere; the batch stays submitted and the
 * refusal counts like a failed poll, so a status that can never be read
 * ends like a lost one (resubmitted). */
static int refuse_status(struct pobox_deliverer *d, struct pobox_batch *b, const char *why)
{
	struct pobox *pb = d->pb;
	int rc;
	pobox_log(POBOX_LOG_ERROR, "status_url_refused", "batch=%lld attempt=%lld reason=\"%s\"",
	          (long long)b->id, (long long)b->attempts + 1, why);
	if ((rc = pobox_begin(pb)) != 0)
		return rc;
	set_error(b, 0, "", why);
	if (++b->attempts >= d->o.max_attempts) {
		b->attempts = 0;
		rc = resubmit(d, b, "lost");
	} else {
		b->next_at_ms = now_ms(d) + pobox_backoff_delay_ms(&d->backoff, (unsigned)b->attempts, -1);
		rc = pobox_store_batch_save(pb->st, b);
	}
	return finish_tx(pb, rc);
}

static int poll_status(struct pobox_deliverer *d, struct pobox_batch *b, struct pobox_step *st)
{
	struct pobox *pb = d->pb;
	struct exchange x;
	char *url = NULL, why[POBOX_ERRLEN];
	int rc;

	/* the URL Target gave, exactly, when it is within the origin family */
	if ((rc = pobox_origin_status_url(d->base_url, b->status_url, &url, why, sizeof why)) != 0)
		return rc == POBOX_EINVALID ? refuse_status(d, b, why) : rc;
	if (said_complete(b)) { /* only the details call is left */
		rc = complete(d, b, st, 0, url);
		pobox_free(url);
		return rc;
	}
	if ((rc = reserve_call(d, NULL, st)) != 0) {
		pobox_free(url);
		return rc;
	}
	call(d, POBOX_CALL_BULK_STATUS, POBOX_HTTP_GET, url, NULL, 0, POBOX_ANSWER_STATUS,
	     NULL, NULL, &x);
	st->actions++;
	if (never_answered(b, &x)) {
		exchange_free(&x);
		pobox_free(url);
		return 1; /* still submitted: polled again */
	}
	if (x.v.cls == POBOX_CLASS_OK && x.ans.status == POBOX_BATCH_COMPLETE) {
		long http = x.resp.status;
		exchange_free(&x);
		rc = complete(d, b, st, http, url);
		pobox_free(url);
		return rc;
	}
	pobox_free(url);
	if ((rc = pobox_begin(pb)) != 0) {
		exchange_free(&x);
		return rc;
	}
	int64_t now = now_ms(d);
	rc = pobox_store_count_call(pb->st, "bulk", x.resp.status, x.v.cls != POBOX_CLASS_OK);
	switch (rc ? -1 : unreachable(&x) ? -2 : (int)x.v.cls) {
	case -1:
		break;
	case -2:
		rc = went_offline(d, b, &x, POBOX_B_SUBMITTED);
		break;
	case POBOX_CLASS_OK:
		pobox_free(b->remote_status);
		b->remote_status = pobox_strdup(x.ans.status_text ? x.ans.status_text : "");
		b->polls++;
		b->attempts = 0;
		if (x.ans.status == POBOX_BATCH_STUCK) {
			if (now - b->submitted_at_ms >= d->o.stuck_wait_ms) {
				rc = requeue_stuck(d, b);
				break;
			}
			b->next_at_ms = b->submitted_at_ms + d->o.stuck_wait_ms;
		} else {
			int64_t iv = d->o.poll_initial_ms;
			for (int64_t i = 1; i < b->polls && iv < d->o.poll_cap_ms; i++)
				iv *= 2;
			b->next_at_ms = now + (iv < d->o.poll_cap_ms ? iv : d->o.poll_cap_ms);
		}
		rc = pobox_store_batch_save(pb->st, b);
		break;
	case POBOX_CLASS_NOTFOUND:
		pobox_log(POBOX_LOG_WARN, "status_lost", "batch=%lld http=%ld", (long long)b->id,
		          x.resp.status);
		rc = resubmit(d, b, "lost");
		break;
	case POBOX_CLASS_THROTTLE:
	case POBOX_CLASS_BUDGET:
	case POBOX_CLASS_AUTH:
	case POBOX_CLASS_CONFIG:
		rc = auth_or_wait(d, b, &x, POBOX_B_SUBMITTED);
		break;
	default:
		/* transient: poll again later; many failures in a row = lost */
		b->attempts++;
		if (b->attempts >= d->o.max_attempts) {
			b->attempts = 0;
			rc = resubmit(d, b, "lost");
			break;
		}
		b->next_at_ms = now + pobox_backoff_delay_ms(&d->backoff, (unsigned)b->attempts,
		                                             x.v.retry_after_ms);
		set_error(b, x.resp.status, "status poll: ", x.msg[0] ? x.msg : x.v.reason);
		rc = pobox_store_batch_save(pb->st, b);
		break;
	}
	exchange_free(&x);
	return finish_tx(pb, rc);
}

/* Before a call: a token in hand, or the lane pauses loudly with the
 * reason (no call is made without one).  0, 1 (paused), or a storage
 * error. */
static int need_token(struct pobox_deliverer *d, struct pobox_step *out)
{
	char why[POBOX_ERRLEN], reason[POBOX_ERRLEN + 64];
	int rc;
	if (sync_token(d, why, sizeof why) == 0)
		return 0;
	int64_t until = now_ms(d) + 30000;
	snprintf(reason, sizeof reason, "could not obtain a profile API token: %s", why);
	if ((rc = pobox_begin(d->pb)) != 0)
		return rc;
	if ((rc = finish_tx(d->pb, pause_lane(d, "auth", until, reason))) != 0)
		return rc;
	out->paused = 1;
	out->paused_until_ms = until;
	out->next_due_ms = until;
	snprintf(out->pause_class, sizeof out->pause_class, "auth");
	snprintf(out->pause_reason, sizeof out->pause_reason, "%.590s", reason);
	return 1;
}

int pobox_deliver_step(struct pobox_deliverer *d, struct pobox_step *out)
{
	struct pobox *pb = d->pb;
	int rc = 0;

	memset(out, 0, sizeof *out);
	out->next_due_ms = -1;
	for (int i = 0; i < MAX_ACTIONS_PER_STEP && !aborting(d); i++) {
		int64_t id, at, now = now_ms(d), until, flying = 0;
		/* Target keeps only the last few batch statuses (10, per its
		 * docs): with more in flight, old statuses vanish before they are
		 * polled.  Past max_in_flight only submitted batches are worked on. */
		if ((rc = pobox_store_in_flight(pb->st, &flying)) != 0)
			return rc;
		if ((rc = pobox_store_batch_next(pb->st, flying >= d->in_flight_limit, &id, &at)) != 0)
			return rc;
		if (id == 0)
			break;
		if ((rc = pobox_store_lane_get(pb->st, "bulk", &until, out->pause_class,
		                               sizeof out->pause_class, out->pause_reason,
		                               sizeof out->pause_reason)) != 0)
			return rc;
		if (until > now) {
			out->paused = 1;
			out->paused_until_ms = until;
			out->next_due_ms = until > at ? until : at;
			break;
		}
		if (at > now) {
			out->next_due_ms = at;
			break;
		}
		if ((rc = need_token(d, out)) != 0)
			return rc == 1 ? pobox_store_unfinished(pb->st, &out->unfinished) : rc;
		struct pobox_batch b;
		if ((rc = pobox_store_batch_get(pb->st, id, &b)) != 0)
			return rc;
		if (b.state == POBOX_B_SUBMITTED)
			rc = poll_status(d, &b, out);
		else
			rc = submit(d, &b, out);
		pobox_batch_free(&b);
		if (rc >= 0 && d->lift) { /* the network is back: both lanes go on */
			int r = pobox_begin(pb);
			if (r == 0)
				r = finish_tx(pb, pobox_outage_lift(pb));
			d->lift = r != 0;
			if (r)
				rc = r;
		}
		if (rc == 1) { /* out of calls for this minute, or stopping */
			rc = 0;
			break;
		}
		if (rc != 0)
			return rc;
	}
	return pobox_store_unfinished(pb->st, &out->unfinished);
}
