/*
 * classify.c - the one place that decides what an outcome means (see the
 * table in classify.h; the code below follows its rows in order).
 *
 * This module owns the rules only.  It keeps no state, reads no clock (now
 * comes in the outcome) and allocates nothing, so it can be tested row by
 * row and called from anywhere.  Target documents almost none of its error
 * codes (target-api.md section 6), so the message checks are deliberately
 * narrow: a wrong guess toward AUTH or CONFIG pauses delivery loudly, which
 * an operator sees at once; a wrong guess toward THROTTLE or BUDGET would
 * retry without charging attempts, forever, so those need specific words.
 */
#include "classify.h"

#include <ctype.h>
#include <string.h>

const char *pobox_class_name(enum pobox_class c)
{
	switch (c) {
	case POBOX_CLASS_OK: return "ok";
	case POBOX_CLASS_RETRY: return "retry";
	case POBOX_CLASS_THROTTLE: return "throttle";
	case POBOX_CLASS_BUDGET: return "budget";
	case POBOX_CLASS_AUTH: return "auth";
	case POBOX_CLASS_CONFIG: return "config";
	case POBOX_CLASS_NOTFOUND: return "notfound";
	case POBOX_CLASS_REJECT: return "reject";
	case POBOX_CLASS_PERMANENT: return "permanent";
	}
	return "unknown";
}

/* Case-insensitive substring search (ASCII). */
static int contains(const char *hay, const char *needle)
{
	if (!hay)
		return 0;
	size_t n = strlen(needle);
	for (; *hay; hay++) {
		size_t i = 0;
		while (i < n && hay[i] &&
		       tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i]))
			i++;
		if (i == n)
			return 1;
	}
	return 0;
}

static int contains_any(const char *hay, const char *const *needles)
{
	for (; *needles; needles++)
		if (contains(hay, *needles))
			return 1;
	return 0;
}

static const char *const single_budget_words[] = {
	"quota", "too many", "rate limit", "budget", "next call", "daily limit", "24 hours",
	"throttl", NULL,
};
static const char *const bulk_throttle_words[] = {
	"too many requests", "rate limit", "per minute", "throttl", NULL,
};
static const char *const client_words[] = {
	"client code", "invalid client", "unknown client", "client not found", NULL,
};
static const char *const auth_words[] = {
	"unauthorized", "unauthorised", "forbidden", "authentication", "invalid token",
	"expired token", "token expired", "token is invalid", "token has expired", NULL,
};
static const char *const notfound_words[] = {
	"not found", "no profile", NULL,
};

static int digits(const char *s, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return 0;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 1;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil), so no timegm() and no TZ environment is involved. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/* Parses an ISO 8601 date-time starting exactly at s. */
static int parse_time_at(const char *s, int64_t *out_ms)
{
	int y, mo, d, h, mi, sec, ms = 0;
	if (!digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
	    !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
	    !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' ||
	    !digits(s + 17, 2, &sec))
		return 0;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
		return 0;
	const char *p = s + 19;
	if (*p == '.' || *p == ',') {
		int scale = 100;
		for (p++; isdigit((unsigned char)*p); p++) {
			ms += (*p - '0') * scale;
			scale /= 10;
		}
	}
	int64_t offset_min = 0;
	if (*p == '+' || *p == '-') {
		int oh, om = 0;
		int sign = *p == '-' ? -1 : 1;
		if (!digits(p + 1, 2, &oh))
			return 0;
		if (p[3] == ':' ? !digits(p + 4, 2, &om) : !digits(p + 3, 2, &om))
			om = 0;
		offset_min = sign * (oh * 60 + om);
	}
	int64_t t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + (sec > 59 ? 59 : sec);
	*out_ms = (t - offset_min * 60) * 1000 + ms;
	return 1;
}

int pobox_classify_find_time(const char *text, int64_t *out_ms)
{
	if (!text)
		return 0;
	size_t n = strlen(text);
	for (size_t i = 0; i + 19 <= n; i++) {
		if (i > 0 && isdigit((unsigned char)text[i - 1]))
			continue;
		if (parse_time_at(text + i, out_ms))
			return 1;
	}
	return 0;
}

static void set(struct pobox_verdict *v, enum pobox_class cls, int charge, const char *reason)
{
	v->cls = cls;
	v->charge_attempt = charge;
	v->reason = reason;
}

void pobox_classify(struct pobox_verdict *v, const struct pobox_outcome *in)
{
	const long st = in->http_status;
	const int is_2xx = st >= 200 && st <= 299;
	const int single = in->call == POBOX_CALL_SINGLE;
	const int poll = in->call == POBOX_CALL_BULK_STATUS;
	const int submit = in->call == POBOX_CALL_BULK_SUBMIT;
	const char *msg = in->message;

	v->retry_after_ms = in->retry_after_ms >= 0 ? in->retry_after_ms : -1;

	switch (in->fail) {
	case POBOX_HTTP_FAIL_NONE:
		break;
	case POBOX_HTTP_FAIL_RESOLVE:
		set(v, POBOX_CLASS_RETRY, 0, "host name did not resolve (offline?)");
		return;
	case POBOX_HTTP_FAIL_CONNECT:
		set(v, POBOX_CLASS_RETRY, 0, "could not connect (offline?)");
		return;
	case POBOX_HTTP_FAIL_TLS:
		set(v, POBOX_CLASS_CONFIG, 0, "TLS verification failed");
		return;
	case POBOX_HTTP_FAIL_TIMEOUT:
		set(v, POBOX_CLASS_RETRY, 1, "timed out");
		return;
	case POBOX_HTTP_FAIL_SENDRECV:
		set(v, POBOX_CLASS_RETRY, 1, "connection failed mid-request");
		return;
	case POBOX_HTTP_FAIL_TOOBIG:
		set(v, POBOX_CLASS_RETRY, 1, "answer too big");
		return;
	case POBOX_HTTP_FAIL_OTHER:
		set(v, POBOX_CLASS_RETRY, 1, "transfer failed");
		return;
	case POBOX_HTTP_FAIL_ABORTED:
		/* our own stop: the callers record nothing (never answered) */
		set(v, POBOX_CLASS_RETRY, 0, "aborted by a stop or deadline");
		return;
	}

	if (is_2xx && in->answer_rc != 0) {
		set(v, POBOX_CLASS_RETRY, 1, "malformed answer");
		return;
	}
	if (is_2xx && (poll || in->success == 1)) {
		set(v, POBOX_CLASS_OK, 0, "ok");
		return;
	}
	if ((st >= 100 && st <= 199) || (st >= 300 && st <= 399)) {
		set(v, POBOX_CLASS_CONFIG, 0, "unexpected redirect or interim answer: check base_url");
		return;
	}
	if (st == 401 || st == 403) {
		set(v, POBOX_CLASS_AUTH, 0, "authentication refused: check the profile API token");
		return;
	}
	if (single && (st == 429 || contains_any(msg, single_budget_words))) {
		int64_t at_ms;
		if (pobox_classify_find_time(msg, &at_ms)) {
			int64_t wait = at_ms > in->now_ms ? at_ms - in->now_ms : 0;
			if (wait > v->retry_after_ms)
				v->retry_after_ms = wait;
		}
		set(v, POBOX_CLASS_BUDGET, 0, "single update budget spent");
		return;
	}
	if (!single && (st == 429 || st == 503 || contains_any(msg, bulk_throttle_words))) {
		if (v->retry_after_ms < 0)
			v->retry_after_ms = POBOX_THROTTLE_DEFAULT_MS;
		set(v, POBOX_CLASS_THROTTLE, 0, "bulk calls over the per-minute limit");
		return;
	}
	if (st == 408 || (st >= 500 && st <= 599)) {
		set(v, POBOX_CLASS_RETRY, 1, "server error");
		return;
	}
	if (contains_any(msg, client_words)) {
		set(v, POBOX_CLASS_CONFIG, 0, "Target does not know the client code: check client");
		return;
	}
	if (contains_any(msg, auth_words)) {
		set(v, POBOX_CLASS_AUTH, 0, "authentication refused: check the profile API token");
		return;
	}
	if (single && contains_any(msg, notfound_words)) {
		set(v, POBOX_CLASS_NOTFOUND, 0, "profile not found: reroute to bulk");
		return;
	}
	if (is_2xx) {
		if (in->success < 0)
			set(v, POBOX_CLASS_RETRY, 1, "answer without a success flag");
		else if (submit)
			set(v, POBOX_CLASS_REJECT, 1, "batch rejected");
		else
			set(v, POBOX_CLASS_PERMANENT, 1, "update rejected");
		return;
	}
	if (st >= 400 && st <= 499) {
		if (submit && st == 404)
			set(v, POBOX_CLASS_CONFIG, 0, "bulk endpoint not found: check client and base_url");
		else if (submit)
			set(v, POBOX_CLASS_REJECT, 1, "batch rejected");
		else if (poll && (st == 404 || st == 410))
			set(v, POBOX_CLASS_NOTFOUND, 0, "batch status no longer available");
		else if (poll)
			set(v, POBOX_CLASS_RETRY, 1, "status poll refused");
		else if (st == 404)
			set(v, POBOX_CLASS_CONFIG, 0, "update endpoint not found: check client and base_url");
		else
			set(v, POBOX_CLASS_PERMANENT, 1, "update rejected");
		return;
	}
	set(v, POBOX_CLASS_RETRY, 1, "unexpected answer");
}
