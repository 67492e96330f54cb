/*
 * fetch.c - the Profile Fetch API (see fetch.h).
 */
#include "fetch.h"
#include "alloc.h"
#include "error.h"
#include "http.h"
#include "json.h"
#include "response.h"
#include "timefmt.h"
#include "urlenc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pobox_fetched_free(struct pobox_fetched *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->n; i++) {
		pobox_free(f->a[i].name);
		pobox_free(f->a[i].value);
	}
	pobox_free(f->a);
	memset(f, 0, sizeof *f);
	f->modified_ms = -1;
}

static int by_name(const void *x, const void *y)
{
	const struct pobox_fetched_attr *a = x, *b = y;
	return strcmp(a->name, b->name);
}

static const struct pobox_fetched_attr *find_exact(const struct pobox_fetched *f, const char *name)
{
	struct pobox_fetched_attr key = {.name = (char *)name};
	return f->n ? bsearch(&key, f->a, f->n, sizeof *f->a, by_name) : NULL;
}

const struct pobox_fetched_attr *pobox_fetched_find(const struct pobox_fetched *f, const char *name)
{
	const struct pobox_fetched_attr *a = find_exact(f, name);
	char pre[160];
	if (a || strlen(name) + 9 > sizeof pre)
		return a;
	snprintf(pre, sizeof pre, "profile.%s", name);
	return find_exact(f, pre);
}

char *pobox_fetch_url(const char *base, const char *client, enum pobox_id_type t, const char *id,
                      size_t id_len)
{
	size_t b = strlen(base);
	while (b && base[b - 1] == '/')
		b--;
	size_t n = b + 40 + pobox_urlencoded_len(id, id_len) + pobox_urlencoded_len(client, strlen(client));
	char *u = pobox_malloc(n);
	if (!u)
		return NULL;
	size_t o = (size_t)snprintf(u, n, "%.*s/rest/v1/profiles/%s", (int)b, base,
	                            t == POBOX_ID_THIRDPARTY ? "thirdPartyId/" : "");
	o += pobox_urlencode(u + o, id, id_len);
	o += (size_t)snprintf(u + o, n - o, "?client=");
	pobox_urlencode(u + o, client, strlen(client));
	return u;
}

/* modifiedAt of object tok, -1 when absent or unreadable. */
static int64_t modified_of(const struct pobox_json *d, long tok)
{
	long m = pobox_json_get(d, tok, "modifiedAt");
	int64_t ms;
	if (m < 0 || d->toks[m].type != POBOX_JSON_STRING ||
	    pobox_time_parse(d->text + d->toks[m].start, d->toks[m].len, &ms) != 0)
		return -1;
	return ms;
}

/* One member of profileAttributes: {"value": .., "modifiedAt": ..}, or
 * (tolerated) a bare value. */
static int read_attr(const struct pobox_json *d, long name_tok, struct pobox_fetched_attr *a)
{
	long v = name_tok + 1, val = v;
	memset(a, 0, sizeof *a);
	a->modified_ms = -1;
	if (pobox_json_string(d, name_tok, &a->name, NULL) != 0)
		return POBOX_ENOMEM;
	if (d->toks[v].type == POBOX_JSON_OBJECT) {
		a->modified_ms = modified_of(d, v);
		val = pobox_json_get(d, v, "value");
	}
	if (val < 0)
		return 0; /* no value: the attribute is there, empty */
	if (d->toks[val].type == POBOX_JSON_STRING)
		return pobox_json_string(d, val, &a->value, &a->value_len) == 0 ? 0 : POBOX_ENOMEM;
	const struct pobox_json_tok *t = &d->toks[val];
	size_t start = t->start, len = t->len;
	if (!(a->value = pobox_malloc(len + 1)))
		return POBOX_ENOMEM;
	memcpy(a->value, d->text + start, len);
	a->value[len] = '\0';
	a->value_len = len;
	return 0;
}

int pobox_fetch_parse(const char *body, size_t len, struct pobox_fetched *out, char *err,
                      size_t errlen)
{
	struct pobox_json d;
	char msg[160];
	int rc;
	memset(out, 0, sizeof *out);
	out->modified_ms = -1;
	/* a token is at least two bytes of text, but for a few */
	if ((rc = pobox_json_parse(&d, body, len, len / 2 + 16, msg, sizeof msg)) != 0) {
		pobox_json_free(&d);
		return rc == POBOX_ENOMEM ? pobox_errf(err, errlen, rc, "out of memory")
		                          : pobox_errf(err, errlen, POBOX_EPERMANENT, "%s", msg);
	}
	if (d.toks[0].type != POBOX_JSON_OBJECT) {
		pobox_json_free(&d);
		return pobox_errf(err, errlen, POBOX_EPERMANENT, "the answer is not a JSON object");
	}
	out->modified_ms = modified_of(&d, 0);
	long pa = pobox_json_get(&d, 0, "profileAttributes");
	if (pa >= 0 && d.toks[pa].type != POBOX_JSON_OBJECT) {
		pobox_json_free(&d);
		return pobox_errf(err, errlen, POBOX_EPERMANENT, "profileAttributes is not an object");
	}
	size_t cap = pa >= 0 ? d.toks[pa].size : 0;
	if (cap && !(out->a = pobox_calloc(cap, sizeof *out->a)))
		rc = POBOX_ENOMEM;
	for (long m = -1; rc == 0 && pa >= 0 && pobox_json_next_member(&d, pa, &m);)
		if ((rc = read_attr(&d, m, &out->a[out->n])) == 0 || out->a[out->n].name)
			out->n++;
	pobox_json_free(&d);
	if (rc) {
		pobox_fetched_free(out);
		return pobox_errf(err, errlen, rc, "out of memory");
	}
	if (out->n)
		qsort(out->a, out->n, sizeof *out->a, by_name);
	return 0;
}

/* Whether a 404's body is the API's "No profile found" JSON (a 404 from
 * a wrong base_url or path is not). */
static int is_not_found(const struct pobox_http_resp *r)
{
	struct pobox_json d;
	int yes = 0;
	if (r->body && pobox_json_parse(&d, r->body, r->body_len, 64, NULL, 0) == 0 &&
	    d.toks[0].type == POBOX_JSON_OBJECT) {
		long s = pobox_json_get(&d, 0, "status");
		int64_t v = 0;
		yes = s >= 0 && pobox_json_int64(&d, s, &v) == 0 && v == 404;
	}
	pobox_json_free(&d);
	return yes;
}

/* "GET /rest/v1/profiles/..." without the query, for messages. */
static void where(char *buf, size_t len, const char *url)
{
	const char *p = strstr(url, "/rest/v1/");
	if (!p)
		p = url;
	snprintf(buf, len, "GET %.*s", (int)strcspn(p, "?"), p);
}

int pobox_fetch_profile(struct pobox_http *h, const char *url, struct pobox_fetched *out,
                        enum pobox_fetch_outcome *outcome, long *status, int64_t *retry_after_ms,
                        char *err, size_t errlen)
{
	struct pobox_http_req req = {.method = POBOX_HTTP_GET, .url = url,
	                             .max_body_bytes = POBOX_FETCH_MAX_BODY};
	struct pobox_http_resp resp;
	char at[300], text[300], herr[300];
	memset(out, 0, sizeof *out);
	out->modified_ms = -1;
	where(at, sizeof at, url);
	int rc = pobox_http_request(h, &req, &resp, herr, sizeof herr);
	*status = resp.status;
	*retry_after_ms = resp.retry_after_ms;
	if (rc == POBOX_ENOMEM) {
		pobox_http_resp_free(&resp);
		return pobox_errf(err, errlen, rc, "%s: out of memory", at);
	}
	if (rc != 0 || resp.fail != POBOX_HTTP_FAIL_NONE) {
		*outcome = POBOX_FETCH_TRANSIENT;
		pobox_errf(err, errlen, POBOX_ETRANSIENT, "%s: %s", at, herr);
	} else if (resp.status == 200) {
		int p = pobox_fetch_parse(resp.body ? resp.body : "", resp.body_len, out, text, sizeof text);
		*outcome = p == 0 ? POBOX_FETCH_FOUND : POBOX_FETCH_FAILED;
		if (p == POBOX_ENOMEM)
			rc = POBOX_ENOMEM;
		if (p)
			pobox_errf(err, errlen, p, "%s: HTTP 200 but not a profile: %s", at, text);
	} else if (resp.status == 404 && is_not_found(&resp)) {
		*outcome = POBOX_FETCH_NOT_FOUND;
	} else {
		long s = resp.status;
		*outcome = s == 401 || s == 403 ? POBOX_FETCH_REFUSED
		           : s >= 500 || s == 429 ? POBOX_FETCH_TRANSIENT : POBOX_FETCH_FAILED;
		pobox_response_error_text(text, sizeof text, resp.body ? resp.body : "", resp.body_len);
		pobox_errf(err, errlen, POBOX_EPERMANENT, "%s: HTTP %ld: %s", at, s, text);
	}
	pobox_http_resp_free(&resp);
	return rc;
}
