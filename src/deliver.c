/*
 * deliver.c - the bulk uploader (see deliver.h for the state machine).
 *
 * Owns: the order of a batch action (reserve+mark, call, classify, record),
 * building request URLs (the status URL is always used exactly as Target
 * sent it; only `showDetails=true` is appended for the details call),
 * retry timing, splitting rejected batches and resubmitting stuck or lost
 * ones.  HTTP is http.c's, parsing response.c's, the verdict classify.c's,
 * the SQL the store's.
 */
#include "deliver.h"
#include "alloc.h"
#include "backoff.h"
#include "classify.h"
#include "error.h"
#include "fleet.h"
#include "http.h"
#include "log.h"
#include "outbox.h"
#include "response.h"
#include "store.h"
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

int pobox_deliverer_new(struct pobox_deliverer **out, struct pobox *pb,
                        const struct pobox_deliver_opts *o, char *err, size_t errlen)
{
	struct pobox_deliverer *d;
	struct pobox_http_config hc;
	int rc;

	if (!o->client || !*o->client)
		return pobox_errf(err, errlen, POBOX_ECONFIG,
		                  "no Target client code: set client in the config (or POBOX_CLIENT)");
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
	pobox_http_config_init(&hc);
	hc.connect_timeout_ms = o->connect_timeout_ms;
	hc.timeout_ms = o->request_timeout_ms;
	hc.verify_tls = o->verify_tls;
	hc.bearer_token = o->token;
	hc.clock = &pb->clock;
	hc.max_body_bytes = 64u << 20; /* a details answer may list 500,000 failed rows */
	if ((rc = pobox_http_new(&d->http, &hc, err, errlen)) != 0)
		goto fail;
	pobox_backoff_init(&d->backoff, o->backoff_base_ms, o->backoff_cap_ms, 0,
	                   o->seed ? o->seed : (uint64_t)pobox_clock_now_ms(&pb->clock) ^
	                                           ((uint64_t)getpid() << 32));
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
};

static void exchange_free(struct exchange *x)
{
	pobox_http_resp_free(&x->resp);
	pobox_answer_free(&x->ans);
}

/* Makes the call and classifies it.  on_row collects failed rows of a
 * details answer. */
static void call(struct pobox_deliverer *d, enum pobox_call what, enum pobox_http_method m,
                 const char *url, const char *body, size_t len, enum pobox_answer_kind kind,
                 pobox_profile_row_fn on_row, void *ctx, struct exchange *x)
{
	struct pobox_http_req req = {.method = m, .url = url, .body = body, .body_len = len};
	char err[POBOX_ERRLEN];
	int answer_rc = 0;

	memset(x, 0, sizeof *x);
	x->ans.success = -1;
	int rc = pobox_http_request(d->http, &req, &x->resp, err, sizeof err);
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
	snprintf(why, sizeof why, "HTTP %ld: %s%s%s", x->resp.status, x->v.reason,
	         x->msg[0] ? ": " : "", x->msg);
	b->state = back_to;
	b->next_at_ms = now + wait;
	set_error(b, x->resp.status, "", why);
	int rc = pause_lane(d, cls, now + wait, why);
	return rc ? rc : pobox_store_batch_save(d->pb->st, b);
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

/* Stuck or lost: the same bytes go again as a new batch. */
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

static int submit(struct pobox_deliverer *d, struct pobox_batch *b, struct pobox_step *st)
{
	struct pobox *pb = d->pb;
	struct exchange x;
	char *body = NULL, url[1024];
	size_t body_len = 0;
	int rc;

	/* 1. reserve a call and mark the batch sending, together */
	if ((rc = reserve_call(d, b, st)) != 0)
		return rc; /* 1: the minute's calls are used: stop this step */

	/* 2. the exact bytes stored at cut time */
	rc = pobox_zpayload_inflate(b->payload, b->payload_len, (size_t)b->bytes, &body, &body_len);
	if (rc == 0 && ((int64_t)body_len != b->bytes ||
	                pobox_crc32(0, body, body_len) != b->payload_crc32))
		rc = POBOX_ECORRUPT;
	if (rc != 0) {
		pobox_free(body);
		/* never send damaged bytes: put the rows back to be cut again */
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

	/* 3. the call */
	snprintf(url, sizeof url, "%s/m2/%s%s/profile/batchUpdate", d->base_url, d->client,
	         b->api == 2 ? "/v2" : "");
	call(d, POBOX_CALL_BULK_SUBMIT, POBOX_HTTP_POST, url, body, body_len, POBOX_ANSWER_SUBMIT,
	     NULL, NULL, &x);
	pobox_free(body);
	st->actions++;

	/* 4. record the outcome */
	if ((rc = pobox_begin(pb)) != 0) {
		exchange_free(&x);
		return rc;
	}
	rc = pobox_store_count_call(pb->st, "bulk", x.resp.status, x.v.cls != POBOX_CLASS_OK);
	switch (rc ? -1 : (int)x.v.cls) {
	case -1:
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
		rc = lane_wait(d, b, &x, POBOX_B_READY);
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

/* complete: fetch the details, then record delivery and failed rows in one
 * transaction. */
static int complete(struct pobox_deliverer *d, struct pobox_batch *b, struct pobox_step *st,
                    long poll_http)
{
	struct pobox *pb = d->pb;
	struct failed_rows f = {0};
	struct exchange x;
	char *url;
	int rc;

	if ((rc = reserve_call(d, NULL, st)) != 0)
		return rc; /* 1: still submitted and due: polled when calls free up */
	size_t n = strlen(b->status_url) + 24;
	if (!(url = pobox_malloc(n)))
		return POBOX_ENOMEM;
	snprintf(url, n, "%s%cshowDetails=true", b->status_url, strchr(b->status_url, '?') ? '&' : '?');
	call(d, POBOX_CALL_BULK_STATUS, POBOX_HTTP_GET, url, NULL, 0, POBOX_ANSWER_STATUS,
	     on_failed_row, &f, &x);
	pobox_free(url);
	st->actions++;
	if ((rc = pobox_begin(pb)) != 0)
		goto out;
	/* the poll that said complete, and this details call */
	if ((rc = pobox_store_count_call(pb->st, "bulk", poll_http, 0)) != 0 ||
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
	} else if (x.v.cls == POBOX_CLASS_OK || x.v.cls == POBOX_CLASS_RETRY) {
		/* the details call failed or said something else: poll again */
		b->polls++;
		b->next_at_ms = now_ms(d) + pobox_backoff_delay_ms(&d->backoff, (unsigned)(b->polls % 8),
		                                                   x.v.retry_after_ms);
		set_error(b, x.resp.status, "status details: ", x.msg[0] ? x.msg : x.v.reason);
		rc = pobox_store_batch_save(pb->st, b);
	} else if (x.v.cls == POBOX_CLASS_NOTFOUND) {
		rc = resubmit(d, b, "lost");
	} else {
		rc = lane_wait(d, b, &x, POBOX_B_SUBMITTED);
	}
	rc = finish_tx(pb, rc);
out:
	exchange_free(&x);
	failed_rows_free(&f);
	return rc;
}

static int poll_status(struct pobox_deliverer *d, struct pobox_batch *b, struct pobox_step *st)
{
	struct pobox *pb = d->pb;
	struct exchange x;
	int rc;

	if ((rc = reserve_call(d, NULL, st)) != 0)
		return rc;
	/* verbatim: the URL Target gave, on whatever host it named */
	call(d, POBOX_CALL_BULK_STATUS, POBOX_HTTP_GET, b->status_url, NULL, 0, POBOX_ANSWER_STATUS,
	     NULL, NULL, &x);
	st->actions++;
	if (x.v.cls == POBOX_CLASS_OK && x.ans.status == POBOX_BATCH_COMPLETE) {
		long http = x.resp.status;
		exchange_free(&x);
		return complete(d, b, st, http);
	}
	if ((rc = pobox_begin(pb)) != 0) {
		exchange_free(&x);
		return rc;
	}
	int64_t now = now_ms(d);
	rc = pobox_store_count_call(pb->st, "bulk", x.resp.status, x.v.cls != POBOX_CLASS_OK);
	switch (rc ? -1 : (int)x.v.cls) {
	case -1:
		break;
	case POBOX_CLASS_OK:
		pobox_free(b->remote_status);
		b->remote_status = pobox_strdup(x.ans.status_text ? x.ans.status_text : "");
		b->polls++;
		b->attempts = 0;
		if (x.ans.status == POBOX_BATCH_STUCK) {
			if (now - b->submitted_at_ms >= d->o.stuck_wait_ms) {
				rc = resubmit(d, b, "stuck");
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
		rc = lane_wait(d, b, &x, POBOX_B_SUBMITTED);
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

int pobox_deliver_step(struct pobox_deliverer *d, struct pobox_step *out)
{
	struct pobox *pb = d->pb;
	int rc = 0;

	memset(out, 0, sizeof *out);
	out->next_due_ms = -1;
	for (int i = 0; i < MAX_ACTIONS_PER_STEP; i++) {
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
		struct pobox_batch b;
		if ((rc = pobox_store_batch_get(pb->st, id, 1, &b)) != 0)
			return rc;
		if (b.state == POBOX_B_SUBMITTED)
			rc = poll_status(d, &b, out);
		else
			rc = submit(d, &b, out);
		pobox_batch_free(&b);
		if (rc == 1) { /* out of calls for this minute */
			rc = 0;
			break;
		}
		if (rc != 0)
			return rc;
	}
	return pobox_store_unfinished(pb->st, &out->unfinished);
}
