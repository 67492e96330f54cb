/*
 * verify.c - what Target holds against what pobox sent (see verify.h).
 *
 * A run:
 *
 *   pick (store) --> for each profile:  what was sent (store)
 *                                       wait for its turn (rate)
 *                                       fetch --found / 404--> classify each attribute
 *                                         |--401/403--> a new token once, else stop (refused)
 *                                         |--transient--> once more, later; else count it
 *                                         |              as not fetched (5 in a row: stop)
 *                                         '--other (400, foreign 404, garbage)--> stop (unusable)
 *
 * Fetches start at most `rate` per second: each waits until 1/rate after
 * the previous one started, whatever the answers took.
 */
#include "verify.h"
#include "alloc.h"
#include "credentials.h"
#include "error.h"
#include "http.h"
#include "outbox.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define MAX_FAILS_IN_A_ROW 5
#define RETRY_AFTER_CAP_MS 30000

enum pobox_verify_class pobox_verify_classify(const struct pobox_sent_value *sent,
                                              int profile_found,
                                              const struct pobox_fetched_attr *target,
                                              int64_t now_ms, int64_t grace_ms, const char **why)
{
	int young = now_ms - sent->sent_at_ms < grace_ms;
	*why = NULL;
	if (!profile_found) {
		*why = "no_profile";
		return young ? POBOX_VC_NOT_YET_APPLIED : POBOX_VC_MISSING;
	}
	if (!target) {
		*why = "no_attribute";
		return young ? POBOX_VC_NOT_YET_APPLIED : POBOX_VC_MISSING;
	}
	if (target->value && target->value_len == sent->value_len &&
	    memcmp(target->value, sent->value, sent->value_len) == 0)
		return POBOX_VC_MATCHING;
	if (target->modified_ms > sent->sent_at_ms) {
		*why = "another_writer";
		return POBOX_VC_DIFFERENT;
	}
	*why = "older_value";
	return young ? POBOX_VC_NOT_YET_APPLIED : POBOX_VC_DIFFERENT;
}

void pobox_verify_result_free(struct pobox_verify_result *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nf; i++) {
		pobox_free((char *)r->f[i].profile_id);
		pobox_free((char *)r->f[i].attr);
		pobox_free((char *)r->f[i].sent);
		pobox_free((char *)r->f[i].target);
	}
	pobox_free(r->f);
	memset(r, 0, sizeof *r);
}

struct run {
	struct pobox *pb;
	const struct pobox_verify_opts *o;
	struct pobox_verify_result *out;
	struct pobox_http *http;
	uint64_t token_gen;
	double interval_ms;
	int64_t next_start_ms;
	int fails_in_a_row;
};

static int64_t now_ms(const struct run *r) { return pobox_clock_now_ms(&r->pb->clock); }

static int stopped(const struct run *r) { return r->o->stop && r->o->stop(r->o->ctx); }

/* Sleeps until t (real time: the rate is the server's), waking early for
 * a stop. */
static void wait_until(const struct run *r, int64_t t)
{
	for (int64_t n = now_ms(r); n < t && !stopped(r); n = now_ms(r)) {
		int64_t ms = t - n < 200 ? t - n : 200;
		struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
		nanosleep(&ts, NULL);
	}
}

/* Puts the credentials' current token on the handle. */
static int sync_token(struct run *r, char *err, size_t len)
{
	const char *tok;
	uint64_t gen;
	int rc;
	if (!r->o->cred)
		return 0;
	if ((rc = pobox_cred_token(r->o->cred, &tok, &gen, err, len)) != 0)
		return rc;
	if (gen != r->token_gen && (rc = pobox_http_set_bearer(r->http, tok, err, len)) == 0)
		r->token_gen = gen;
	return rc;
}

/* Target refused the token: 1 when a new one is in hand (fetch again),
 * 0 when not (out->error says why). */
static int after_refusal(struct run *r, const char *what)
{
	struct pobox_verify_result *o = r->out;
	char why[POBOX_ERRLEN];
	if (!r->o->cred || pobox_cred_source(r->o->cred) == POBOX_CRED_NONE) {
		snprintf(o->error, sizeof o->error,
		         "Target refused the profile fetch (%.500s): it wants a token and none is configured; "
		         "set token_file, token_command or ims_* (pobox.conf(5))", what);
		return 0;
	}
	if (pobox_cred_refused(r->o->cred, r->token_gen, why, sizeof why) == 0 &&
	    sync_token(r, why, sizeof why) == 0)
		return 1;
	snprintf(o->error, sizeof o->error,
	         "Target refused the profile fetch (%.300s), and a new token could not be had: %.500s", what, why);
	return 0;
}

enum got { GOT_FOUND, GOT_NOT_FOUND, GOT_NOTHING, GOT_STOP };

/* Fetches one profile at its turn: found, not found, not fetched (a
 * transient failure, twice), or stop (the run cannot go on). */
static int fetch_one(struct run *r, const struct pobox_sent_profile *sp, struct pobox_fetched *f,
                     enum got *got)
{
	struct pobox_verify_result *o = r->out;
	char *url = pobox_fetch_url(r->o->base_url, r->o->client, sp->id_type, sp->profile_id,
	                            strlen(sp->profile_id));
	char msg[POBOX_ERRLEN];
	int rc = 0, refreshed = 0, tries = 0;
	if (!url)
		return pobox_errf(r->pb->err, sizeof r->pb->err, POBOX_ENOMEM, "out of memory");
	*got = GOT_STOP;
	for (;;) {
		enum pobox_fetch_outcome oc;
		long status;
		int64_t retry_after;
		wait_until(r, r->next_start_ms);
		if (stopped(r))
			break;
		r->next_start_ms = now_ms(r) + (int64_t)(r->interval_ms + 0.5);
		if ((rc = sync_token(r, msg, sizeof msg)) != 0) {
			snprintf(o->error, sizeof o->error, "no profile API token: %.500s", msg);
			o->refused = 1;
			rc = 0;
			break;
		}
		pobox_fetched_free(f);
		if ((rc = pobox_fetch_profile(r->http, url, f, &oc, &status, &retry_after, msg,
		                              sizeof msg)) != 0)
			break;
		if (oc == POBOX_FETCH_FOUND || oc == POBOX_FETCH_NOT_FOUND) {
			*got = oc == POBOX_FETCH_FOUND ? GOT_FOUND : GOT_NOT_FOUND;
			r->fails_in_a_row = 0;
			break;
		}
		if (oc == POBOX_FETCH_REFUSED) {
			if (!refreshed++ && after_refusal(r, msg))
				continue;
			if (refreshed > 1)
				snprintf(o->error, sizeof o->error,
				         "Target refused the profile fetch (%.500s), with a new token too", msg);
			o->refused = 1;
			break;
		}
		if (oc == POBOX_FETCH_FAILED) {
			snprintf(o->error, sizeof o->error,
			         "%.500s: not the Profile Fetch API's answer; check client and base_url", msg);
			o->unusable = 1;
			break;
		}
		snprintf(o->error, sizeof o->error, "%.500s", msg);
		if (++tries < 2) { /* once more, later */
			int64_t later = retry_after > RETRY_AFTER_CAP_MS ? RETRY_AFTER_CAP_MS : retry_after;
			if (later < 1000)
				later = 1000;
			if (r->next_start_ms < now_ms(r) + later)
				r->next_start_ms = now_ms(r) + later;
			continue;
		}
		if (++r->fails_in_a_row >= MAX_FAILS_IN_A_ROW) {
			size_t n = strlen(o->error);
			snprintf(o->error + n, sizeof o->error - n,
			         " (%d profiles in a row could not be fetched: stopped)", MAX_FAILS_IN_A_ROW);
			o->unreachable = 1; /* counted as not fetched, then the run stops */
		}
		*got = GOT_NOTHING;
		break;
	}
	pobox_free(url);
	return rc;
}

static int keep_finding(struct pobox_verify_result *o, const struct pobox_sent_profile *sp,
                        const struct pobox_sent_value *v, const struct pobox_fetched_attr *t,
                        enum pobox_verify_class cls, const char *why)
{
	if (o->nf == POBOX_VERIFY_KEEP_FINDINGS)
		return 0;
	if (o->nf % 64 == 0) {
		struct pobox_verify_finding *nf = pobox_realloc(o->f, (o->nf + 64) * sizeof *nf);
		if (!nf)
			return POBOX_ENOMEM;
		o->f = nf;
	}
	struct pobox_verify_finding *f = &o->f[o->nf];
	memset(f, 0, sizeof *f);
	f->cls = cls;
	f->why = why;
	f->id_type = sp->id_type;
	f->sent_len = v->value_len;
	f->sent_at_ms = v->sent_at_ms;
	f->in_flight = v->in_flight;
	f->target_modified_at_ms = t ? t->modified_ms : -1;
	f->profile_id = pobox_strdup(sp->profile_id);
	f->attr = pobox_strdup(v->attr);
	f->sent = pobox_strndup(v->value, v->value_len);
	if (t && t->value) {
		f->target = pobox_strndup(t->value, t->value_len);
		f->target_len = t->value_len;
	}
	o->nf++; /* freed with the result, complete or not */
	if (!f->profile_id || !f->attr || !f->sent || (t && t->value && !f->target))
		return POBOX_ENOMEM;
	return 0;
}

/* Every attribute sent of one profile, against what Target answered. */
static int compare(struct run *r, const struct pobox_sent_profile *sp, int found,
                   const struct pobox_fetched *f)
{
	struct pobox_verify_result *o = r->out;
	struct pobox_verify_record *rec = &o->rec;
	int64_t now = now_ms(r);
	for (size_t i = 0; i < sp->n; i++) {
		const struct pobox_sent_value *v = &sp->v[i];
		const struct pobox_fetched_attr *t = found ? pobox_fetched_find(f, v->attr) : NULL;
		const char *why;
		enum pobox_verify_class c = pobox_verify_classify(v, found, t, now, r->o->grace_ms, &why);
		int64_t age = now - v->sent_at_ms;
		rec->count[c]++;
		if (rec->min_age_ms[c] < 0 || age < rec->min_age_ms[c])
			rec->min_age_ms[c] = age;
		if (age > rec->max_age_ms[c])
			rec->max_age_ms[c] = age;
		if (c == POBOX_VC_MATCHING)
			continue;
		o->findings++;
		if (keep_finding(o, sp, v, t, c, why) != 0)
			return pobox_errf(r->pb->err, sizeof r->pb->err, POBOX_ENOMEM, "out of memory");
	}
	return 0;
}

/* One profile: what was sent, what Target holds.  *more = 0 when the run
 * must stop. */
static int one_profile(struct run *r, int64_t id, int *more)
{
	struct pobox_sent_profile sp;
	struct pobox_fetched f = {.modified_ms = -1};
	enum got got = GOT_STOP;
	int rc = pobox_store_verify_sent(r->pb->st, id, &sp);
	*more = 1;
	if (rc == POBOX_ENOTFOUND) /* gone since the pick (doctor, a purge) */
		return 0;
	if (rc)
		return rc;
	if (sp.n > 0 && (rc = fetch_one(r, &sp, &f, &got)) == 0) {
		if (got == GOT_STOP)
			*more = 0;
		else if (got == GOT_NOTHING) {
			r->out->rec.fetch_errors++;
			*more = !r->out->unreachable;
		}
		else if ((rc = compare(r, &sp, got == GOT_FOUND, &f)) == 0)
			r->out->rec.profiles++;
	}
	pobox_fetched_free(&f);
	pobox_sent_profile_free(&sp);
	return rc;
}

static int open_http(struct run *r)
{
	struct pobox_http_config hc;
	pobox_http_config_init(&hc);
	hc.connect_timeout_ms = r->o->connect_timeout_ms;
	hc.timeout_ms = r->o->request_timeout_ms;
	hc.verify_tls = r->o->verify_tls;
	hc.clock = &r->pb->clock;
	hc.max_body_bytes = POBOX_FETCH_MAX_BODY;
	hc.compressed_answers = 1;
	return pobox_http_new(&r->http, &hc, r->pb->err, sizeof r->pb->err);
}

int pobox_verify_run(struct pobox *pb, const struct pobox_verify_opts *o,
                     struct pobox_verify_result *out)
{
	struct run r = {.pb = pb, .o = o, .out = out};
	int64_t *ids = NULL;
	size_t n = 0;
	int rc;
	memset(out, 0, sizeof *out);
	out->rec.started_at_ms = pobox_clock_now_ms(&pb->clock);
	out->rec.grace_ms = o->grace_ms;
	for (int c = 0; c < POBOX_VC_COUNT; c++)
		out->rec.min_age_ms[c] = out->rec.max_age_ms[c] = -1;
	r.interval_ms = o->rate > 0 ? 1000.0 / o->rate : 0;
	if ((rc = pobox_store_verify_pick(pb->st, &o->sel, &ids, &n, &out->rec.population)) != 0)
		goto done;
	if (n && (rc = open_http(&r)) != 0)
		goto done;
	for (size_t i = 0; i < n && rc == 0; i++) {
		int more = 1;
		if (stopped(&r)) {
			out->rec.interrupted = 1;
			break;
		}
		if ((rc = one_profile(&r, ids[i], &more)) != 0 || !more) {
			out->rec.interrupted = !out->refused && !out->unusable && !out->unreachable;
			break;
		}
		if (o->progress)
			o->progress(o->ctx, (int64_t)i + 1, (int64_t)n);
	}
done:
	out->rec.finished_at_ms = pobox_clock_now_ms(&pb->clock);
	pobox_http_free(r.http);
	pobox_free(ids);
	return rc;
}
