/*
 * ims.c - IMS and Admin API token requests (see ims.h).
 */
#define _GNU_SOURCE
#include "ims.h"
#include "alloc.h"
#include "error.h"
#include "json.h"
#include "pobox.h"
#include "response.h"
#include "tokencmd.h"
#include "urlenc.h"

#include <stdio.h>
#include <string.h>

#define MAX_ANSWER (64 * 1024)
#define ADMIN_TYPE "application/vnd.adobe.target.v1+json"
#define TEN_YEARS_S (10LL * 366 * 86400)

/* base without trailing slashes + path; caller frees. */
static char *join(const char *base, const char *path)
{
	size_t b = strlen(base);
	while (b && base[b - 1] == '/')
		b--;
	size_t n = b + strlen(path) + 1;
	char *u = pobox_malloc(n);
	if (u)
		snprintf(u, n, "%.*s%s", (int)b, base, path);
	return u;
}

/* Appends name=<urlencoded value> (with '&' before all but the first). */
static size_t form_add(char *out, size_t at, const char *name, const char *value)
{
	if (at)
		out[at++] = '&';
	at += (size_t)sprintf(out + at, "%s=", name);
	return at + pobox_urlencode(out + at, value, strlen(value));
}

static size_t form_room(const char *name, const char *value)
{
	return strlen(name) + 2 + pobox_urlencoded_len(value, strlen(value));
}

/* Frees an answer that may hold a token. */
static void resp_wipe_free(struct pobox_http_resp *resp)
{
	if (resp->body)
		explicit_bzero(resp->body, resp->body_len);
	pobox_http_resp_free(resp);
}

/* "step: METHOD url" for messages (our URLs carry no secrets; the query,
 * authorizationScope, is left out for brevity). */
static void where(char *buf, size_t len, const char *step, enum pobox_http_method m,
                  const char *url)
{
	snprintf(buf, len, "%s: %s %.*s", step, m == POBOX_HTTP_POST ? "POST" : "GET",
	         (int)strcspn(url, "?"), url);
}

/* The transport failure, or a non-2xx answer, as our error. */
static int http_failure(const char *at, int rc, const struct pobox_http_resp *resp,
                        const char *detail, const char *hint, char *err, size_t errlen)
{
	if (rc == POBOX_ENOMEM)
		return pobox_errf(err, errlen, rc, "%s: out of memory", at);
	if (resp->fail != POBOX_HTTP_FAIL_NONE || rc != 0)
		return pobox_errf(err, errlen, POBOX_ETRANSIENT, "%s: %s: %s", at,
		                  pobox_http_fail_name(resp->fail), resp->errmsg);
	int transient = resp->status >= 500 || resp->status == 429;
	return pobox_errf(err, errlen, transient ? POBOX_ETRANSIENT : POBOX_EPERMANENT,
	                  "%s: HTTP %ld %s%s", at, resp->status, detail, hint ? hint : "");
}

/* A JSON object's string member, decoded (NULL when absent). */
static char *member_string(const struct pobox_json *d, const char *name)
{
	char *s = NULL;
	long t = pobox_json_get(d, 0, name);
	if (t >= 0 && d->toks[t].type == POBOX_JSON_STRING && pobox_json_string(d, t, &s, NULL) != 0)
		s = NULL;
	return s;
}

/* The gist of an error body: IMS's error / error_description, the Admin
 * API's errors[0].errorCode / message, or the text of anything else. */
static void error_detail(const struct pobox_http_resp *resp, char *buf, size_t len)
{
	struct pobox_json d;
	const char *b = resp->body ? resp->body : "";
	buf[0] = '\0';
	if (pobox_json_parse(&d, b, resp->body_len, 256, NULL, 0) == 0 &&
	    d.toks[0].type == POBOX_JSON_OBJECT) {
		char *e = member_string(&d, "error"), *ed = member_string(&d, "error_description");
		long errs = pobox_json_get(&d, 0, "errors");
		char *code = NULL, *msg = NULL;
		if (errs >= 0 && d.toks[errs].type == POBOX_JSON_ARRAY && d.toks[errs].size > 0 &&
		    d.toks[errs + 1].type == POBOX_JSON_OBJECT) {
			long first = errs + 1, t;
			if ((t = pobox_json_get(&d, first, "errorCode")) >= 0)
				pobox_json_string(&d, t, &code, NULL);
			if ((t = pobox_json_get(&d, first, "message")) >= 0)
				pobox_json_string(&d, t, &msg, NULL);
		}
		if (!msg)
			msg = member_string(&d, "message");
		if (e || ed)
			snprintf(buf, len, "%.80s%s%.200s", e ? e : "", e && ed ? ": " : "", ed ? ed : "");
		else if (code || msg)
			snprintf(buf, len, "%.80s%s%.200s", code ? code : "", code && msg ? ": " : "",
			         msg ? msg : "");
		pobox_free(e);
		pobox_free(ed);
		pobox_free(code);
		pobox_free(msg);
	}
	pobox_json_free(&d);
	if (!buf[0])
		pobox_response_error_text(buf, len, b, resp->body_len);
	for (char *p = buf; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
}

/* Reads a token answer: name of the token member and of its lifetime. */
static int read_token(const struct pobox_http_resp *resp, const char *at, const char *tok_name,
                      const char *life_name, int may_be_ms, char **token, int64_t *lifetime_ms,
                      char *err, size_t errlen)
{
	struct pobox_json d;
	char msg[160];
	int64_t life = -1;
	double v;
	int rc = 0;
	*token = NULL;
	if (pobox_json_parse(&d, resp->body ? resp->body : "", resp->body_len, 256, msg, sizeof msg) != 0 ||
	    d.toks[0].type != POBOX_JSON_OBJECT) {
		pobox_json_free(&d);
		return pobox_errf(err, errlen, POBOX_EPERMANENT, "%s: HTTP %ld but the answer is not "
		                  "a JSON object%s%s", at, resp->status, msg[0] ? ": " : "", msg[0] ? msg : "");
	}
	char *t = member_string(&d, tok_name);
	long lt = pobox_json_get(&d, 0, life_name);
	if (lt >= 0 && pobox_json_double(&d, lt, &v) == 0 && v > 0 && v < 1e15)
		life = (int64_t)v;
	if (!t || !pobox_token_valid(t, strlen(t))) {
		rc = pobox_errf(err, errlen, POBOX_EPERMANENT, "%s: HTTP %ld but no usable \"%s\" in "
		                "the answer", at, resp->status, tok_name);
	} else if (life < 0) {
		rc = pobox_errf(err, errlen, POBOX_EPERMANENT, "%s: HTTP %ld but no \"%s\" number in "
		                "the answer", at, resp->status, life_name);
	}
	if (rc) {
		if (t)
			explicit_bzero(t, strlen(t));
		pobox_free(t);
	} else {
		*token = t;
		*lifetime_ms = may_be_ms && life > TEN_YEARS_S ? life : life * 1000;
	}
	pobox_json_free(&d);
	return rc;
}

int pobox_ims_token(struct pobox_http *h, const struct pobox_ims_opts *o, char **token,
                    int64_t *lifetime_ms, char *err, size_t errlen)
{
	struct pobox_http_resp resp;
	char at[300], detail[300];
	char *url = join(o->ims_base_url, "/ims/token/v3"), *body = NULL;
	int rc;
	*token = NULL;
	size_t n = form_room("grant_type", "client_credentials") + form_room("client_id", o->client_id) +
	           form_room("client_secret", o->client_secret) + form_room("scope", o->scopes) + 1;
	if (!url || !(body = pobox_malloc(n))) {
		pobox_free(url);
		return pobox_errf(err, errlen, POBOX_ENOMEM, "IMS token: out of memory");
	}
	size_t len = form_add(body, 0, "grant_type", "client_credentials");
	len = form_add(body, len, "client_id", o->client_id);
	len = form_add(body, len, "client_secret", o->client_secret);
	len = form_add(body, len, "scope", o->scopes);
	where(at, sizeof at, "IMS token", POBOX_HTTP_POST, url);
	struct pobox_http_req req = {.method = POBOX_HTTP_POST, .url = url, .body = body,
	                             .body_len = len, .max_body_bytes = MAX_ANSWER};
	rc = pobox_http_request(h, &req, &resp, NULL, 0);
	explicit_bzero(body, n);
	if (rc == 0 && resp.status == 200) {
		rc = read_token(&resp, at, "access_token", "expires_in", 0, token, lifetime_ms, err, errlen);
	} else {
		if (rc == 0)
			error_detail(&resp, detail, sizeof detail);
		rc = http_failure(at, rc, &resp, detail,
		                  resp.status == 401 || resp.status == 400
		                      ? " (check ims_client_id, ims_client_secret_file, ims_scopes)"
		                      : NULL,
		                  err, errlen);
	}
	resp_wipe_free(&resp);
	pobox_free(body);
	pobox_free(url);
	return rc;
}

int pobox_admin_token(struct pobox_http *h, const struct pobox_ims_opts *o, const char *ims_token,
                      enum pobox_http_method method, char **token, int64_t *lifetime_ms,
                      long *http_status, char *err, size_t errlen)
{
	struct pobox_http_resp resp;
	char at[400], detail[300], *url = NULL, *path = NULL, *auth = NULL, *key = NULL;
	int rc;
	*token = NULL;
	*http_status = 0;
	size_t tl = pobox_urlencoded_len(o->tenant, strlen(o->tenant));
	size_t pl = tl + 64, al = strlen(ims_token) + 32, kl = strlen(o->client_id) + 16;
	if ((path = pobox_malloc(pl)) && (auth = pobox_malloc(al)) && (key = pobox_malloc(kl))) {
		size_t p = (size_t)sprintf(path, "/");
		p += pobox_urlencode(path + p, o->tenant, strlen(o->tenant));
		snprintf(path + p, pl - p, "/target/authentication/token?authorizationScope=profile_api");
		url = join(o->admin_base_url, path);
		snprintf(auth, al, "Authorization: Bearer %s", ims_token);
		snprintf(key, kl, "X-Api-Key: %s", o->client_id);
	}
	if (!url) {
		rc = pobox_errf(err, errlen, POBOX_ENOMEM, "Admin API token: out of memory");
		goto out;
	}
	where(at, sizeof at, "Admin API token", method, url);
	const char *headers[] = {auth, key, "Accept: " ADMIN_TYPE, NULL};
	struct pobox_http_req req = {.method = method, .url = url, .max_body_bytes = MAX_ANSWER,
	                             .content_type = ADMIN_TYPE, .headers = headers};
	rc = pobox_http_request(h, &req, &resp, NULL, 0);
	*http_status = resp.status;
	if (rc == 0 && (resp.status == 200 || resp.status == 201)) {
		rc = read_token(&resp, at, "accessToken", "expiresIn", 1, token, lifetime_ms, err, errlen);
	} else {
		const char *hint = NULL;
		if (rc == 0)
			error_detail(&resp, detail, sizeof detail);
		if (resp.status == 401)
			hint = " (does the Developer Console project have the Target API?)";
		else if (resp.status == 403)
			hint = " (check ims_client_id: it is also the API key)";
		else if (resp.status == 404 && method == POBOX_HTTP_POST)
			hint = " (check target_tenant)";
		rc = http_failure(at, rc, &resp, detail, hint, err, errlen);
	}
	resp_wipe_free(&resp);
out:
	if (auth)
		explicit_bzero(auth, strlen(auth));
	pobox_free(auth);
	pobox_free(key);
	pobox_free(path);
	pobox_free(url);
	return rc;
}
