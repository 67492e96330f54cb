/*
 * sim_auth -- IMS and Admin API tokens (see sim_auth.h).
 *
 * Tokens are "ims-<n>-<16 hex>" and "ptk-<n>-<16 hex>": a sequence number
 * and a hash of it with the seed, so two runs with one seed issue the same
 * tokens, and no token is a guess away from another.  The random generator
 * of the fault plan is not used, so asking for tokens never shifts which
 * requests a fault hits.
 *
 * State of the profile_api token (one slot, plus a short history so an old
 * token is told apart from one never issued):
 *
 *   none --POST--> current --POST--> current' (the old one: superseded, 403)
 *                     |--expiry (simulated clock)--> expired (401; GET: 404)
 *                     |--/_sim/auth?expire=revoke--> superseded (403), none
 */
#include "sim_auth.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sim_clock.h"
#include "sim_rng.h"
#include "sim_url.h"

#define CT_JSON "application/json;charset=UTF-8"
#define CT_TARGET "application/vnd.adobe.target.v1+json"
#define TOKEN_MAX 64

struct token {
	char text[TOKEN_MAX];
	int64_t expires_ms;
	int superseded;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct token ims[SIM_AUTH_IMS_KEEP];      /* ring */
static size_t ims_next, ims_issued;
static struct token profile[SIM_AUTH_PROFILE_KEEP]; /* ring; newest at profile_next-1 */
static size_t profile_next, profile_created;
static int profile_current;                      /* the newest slot is current */
static unsigned long requests;

static void make_token(char *out, const char *prefix, size_t n)
{
	uint64_t h = sim_rng_mix(sim_rng_seed_value() ^ (0x70b0c5ULL + n * 0x9e3779b97f4a7c15ULL));

	if (prefix[0] == 'p')
		h = sim_rng_mix(h ^ 0x5eedULL);
	snprintf(out, TOKEN_MAX, "%s-%zu-%016llx", prefix, n, (unsigned long long)h);
}

static void answer_init(struct sim_auth_answer *a, unsigned status, const char *ctype,
                        enum sim_outcome outcome)
{
	a->status = status;
	a->ctype = ctype;
	a->www_auth = NULL;
	a->outcome = outcome;
	sim_buf_init(&a->body, 0);
}

/* ---- IMS ---------------------------------------------------------------- */

static void ims_error(struct sim_auth_answer *a, unsigned status, const char *error,
                      const char *desc)
{
	enum sim_outcome o = status == 401 ? SIM_OUT_UNAUTHORIZED : status == 403 ? SIM_OUT_FORBIDDEN
	                     : status >= 500 ? SIM_OUT_FAULT_ERROR : SIM_OUT_REFUSED;

	answer_init(a, status, CT_JSON, o);
	sim_buf_adds(&a->body, "{\"error\":");
	sim_buf_add_json(&a->body, error, strlen(error));
	sim_buf_adds(&a->body, ",\"error_description\":");
	sim_buf_add_json(&a->body, desc, strlen(desc));
	sim_buf_adds(&a->body, "}");
}

static const struct sim_param *param(const struct sim_params *body, const struct sim_params *q,
                                     const char *name)
{
	const struct sim_param *p = sim_params_get(body, name);

	return p ? p : sim_params_get(q, name);
}

static int equal(const struct sim_param *p, const char *s)
{
	return p && p->value_len == strlen(s) && memcmp(p->value, s, p->value_len) == 0;
}

/* Every requested scope (comma list) is one of the allowed ones. */
static int scopes_allowed(const char *allowed, const char *req, size_t req_len, char *bad,
                          size_t bad_len)
{
	size_t i = 0;

	if (!allowed[0])
		return 1;
	while (i < req_len) {
		size_t n = 0, k = 0;
		int ok = 0;

		while (i + n < req_len && req[i + n] != ',')
			n++;
		while (allowed[k]) {
			size_t m = strcspn(allowed + k, ",");

			if (m == n && memcmp(allowed + k, req + i, n) == 0)
				ok = 1;
			k += m + (allowed[k + m] == ',');
		}
		if (!ok && n) {
			snprintf(bad, bad_len, "%.*s", (int)(n < 200 ? n : 200), req + i);
			return 0;
		}
		i += n + 1;
	}
	return 1;
}

void sim_auth_ims_request(const struct sim_config *cfg, int is_post, const char *query,
                          size_t query_len, const char *body, size_t body_len,
                          struct sim_auth_answer *a)
{
	struct sim_params q, b;
	const struct sim_param *grant, *id, *secret, *scope;
	char tok[TOKEN_MAX], bad[256], desc[400];
	int64_t now = sim_clock_now_ms();

	memset(&q, 0, sizeof(q));
	memset(&b, 0, sizeof(b));
	if (!is_post) {
		ims_error(a, 405, "method_not_allowed", "use POST");
		return;
	}
	if (cfg->ims_fail) {
		ims_error(a, (unsigned)cfg->ims_fail,
		          cfg->ims_fail == 401 ? "invalid_client" : cfg->ims_fail >= 500 ? "server_error"
		                                                                         : "invalid_request",
		          "simulated failure (ims_fail)");
		return;
	}
	if (sim_params_parse(&q, query, query_len, 64) || sim_params_parse(&b, body, body_len, 64)) {
		ims_error(a, 500, "server_error", "out of memory");
		goto out;
	}
	grant = param(&b, &q, "grant_type");
	id = param(&b, &q, "client_id");
	secret = param(&b, &q, "client_secret");
	scope = param(&b, &q, "scope");
	if (!grant || !grant->value_len) {
		ims_error(a, 400, "invalid_request", "missing grant_type parameter");
	} else if (!equal(grant, "client_credentials")) {
		ims_error(a, 400, "unsupported_grant_type", "only client_credentials is supported");
	} else if (!id || !id->value_len) {
		ims_error(a, 400, "invalid_request", "missing client_id parameter");
	} else if (!secret || !secret->value_len) {
		ims_error(a, 400, "invalid_request", "missing client_secret parameter");
	} else if (!scope || !scope->value_len) {
		ims_error(a, 400, "invalid_request", "missing scope parameter");
	} else if (!cfg->ims_client_id[0] || !equal(id, cfg->ims_client_id)) {
		ims_error(a, 401, "invalid_client", "invalid client_id parameter");
	} else if (!equal(secret, cfg->ims_client_secret)) {
		ims_error(a, 401, "invalid_client", "invalid client_secret parameter");
	} else if (!scopes_allowed(cfg->ims_scopes, scope->value, scope->value_len, bad,
	                           sizeof(bad))) {
		snprintf(desc, sizeof(desc), "invalid scope (%s)", bad);
		ims_error(a, 400, "invalid_scope", desc);
	} else {
		pthread_mutex_lock(&lock);
		make_token(tok, "ims", ++ims_issued);
		struct token *t = &ims[ims_next++ % SIM_AUTH_IMS_KEEP];
		snprintf(t->text, sizeof(t->text), "%s", tok);
		t->expires_ms = now + cfg->ims_token_lifetime_s * 1000;
		t->superseded = 0;
		pthread_mutex_unlock(&lock);
		answer_init(a, 200, CT_JSON, SIM_OUT_OK);
		sim_buf_printf(&a->body,
		               "{\"access_token\":\"%s\",\"token_type\":\"bearer\",\"expires_in\":%lld}",
		               tok, (long long)cfg->ims_token_lifetime_s);
		sim_counters_add(SIM_ST_IMS_TOKENS_ISSUED, 1);
	}
out:
	sim_params_free(&q);
	sim_params_free(&b);
}

/* ---- Admin API ---------------------------------------------------------- */

void sim_auth_admin_error(struct sim_auth_answer *a, unsigned status, const char *code,
                          const char *msg)
{
	enum sim_outcome o = status == 401   ? SIM_OUT_UNAUTHORIZED
	                     : status == 403 ? SIM_OUT_FORBIDDEN
	                     : status == 404 ? SIM_OUT_NOT_FOUND
	                     : status >= 500 ? SIM_OUT_FAULT_ERROR
	                                     : SIM_OUT_REFUSED;
	char ts[40];
	unsigned long n;

	pthread_mutex_lock(&lock);
	n = ++requests;
	pthread_mutex_unlock(&lock);
	sim_clock_iso(sim_clock_now_ms(), ts, sizeof(ts));
	answer_init(a, status, CT_JSON, o);
	sim_buf_printf(&a->body,
	               "{\"httpStatus\":%u,\"requestId\":\"sim-%lu\",\"requestTime\":\"%s\","
	               "\"errors\":[{\"errorCode\":",
	               status, n, ts);
	sim_buf_add_json(&a->body, code, strlen(code));
	sim_buf_adds(&a->body, ",\"message\":");
	sim_buf_add_json(&a->body, msg, strlen(msg));
	sim_buf_adds(&a->body, "}]}");
}

/* SIM_TOKEN_* of an IMS bearer ("Bearer X" header value). */
static enum sim_token_state ims_check(const char *authz, int64_t now)
{
	enum sim_token_state st = SIM_TOKEN_UNKNOWN;
	size_t i;

	if (!authz || strncasecmp(authz, "Bearer ", 7) != 0)
		return SIM_TOKEN_UNKNOWN;
	authz += 7;
	while (*authz == ' ')
		authz++;
	pthread_mutex_lock(&lock);
	for (i = 0; i < SIM_AUTH_IMS_KEEP; i++) {
		if (ims[i].text[0] && strcmp(ims[i].text, authz) == 0) {
			st = now < ims[i].expires_ms ? SIM_TOKEN_VALID : SIM_TOKEN_EXPIRED;
			break;
		}
	}
	pthread_mutex_unlock(&lock);
	return st;
}

/* Does the Accept header allow the versioned media type? */
static int accept_ok(const char *accept)
{
	return accept && strstr(accept, CT_TARGET) != NULL;
}

static void token_answer(struct sim_auth_answer *a, unsigned status, const char *tok,
                         const char *scope, int64_t expires_in_s)
{
	answer_init(a, status, CT_TARGET, SIM_OUT_OK);
	sim_buf_printf(&a->body,
	               "{\"accessToken\":\"%s\",\"tokenType\":\"bearer\",\"scope\":\"%s\","
	               "\"expiresIn\":%lld}",
	               tok, scope, (long long)expires_in_s);
}

/* The current profile token (lock held), NULL if none or expired. */
static struct token *current_profile(int64_t now)
{
	struct token *t;

	if (!profile_current)
		return NULL;
	t = &profile[(profile_next + SIM_AUTH_PROFILE_KEEP - 1) % SIM_AUTH_PROFILE_KEEP];
	return now < t->expires_ms ? t : NULL;
}

void sim_auth_admin_request(const struct sim_config *cfg, int method, const char *tenant,
                            size_t tenant_len, const char *query, size_t query_len,
                            const struct sim_admin_headers *h, struct sim_auth_answer *a)
{
	struct sim_params q;
	const struct sim_param *scope;
	int64_t now = sim_clock_now_ms();
	enum sim_token_state st;
	char tok[TOKEN_MAX], msg[200];
	int debug;

	if (method < 0) {
		sim_auth_admin_error(a, 405, "MethodNotAllowed", "use GET to retrieve or POST to create a token");
		return;
	}
	if (cfg->admin_fail) {
		sim_auth_admin_error(a, (unsigned)cfg->admin_fail, "Simulated",
		            "simulated failure (admin_fail)");
		return;
	}
	st = ims_check(h->authorization, now);
	if (st != SIM_TOKEN_VALID) {
		sim_auth_admin_error(a, 401, "Unauthorized",
		            st == SIM_TOKEN_EXPIRED ? "Oauth token has expired" : "Oauth token is not valid");
		a->www_auth = "Bearer";
		return;
	}
	if (!h->api_key || !cfg->ims_client_id[0] || strcmp(h->api_key, cfg->ims_client_id) != 0) {
		sim_auth_admin_error(a, 403, "Forbidden", "Api Key is invalid");
		return;
	}
	if (tenant_len != strlen(cfg->tenant) || memcmp(tenant, cfg->tenant, tenant_len) != 0) {
		snprintf(msg, sizeof(msg), "unknown tenant '%.*s'", (int)(tenant_len < 64 ? tenant_len : 64),
		         tenant);
		sim_auth_admin_error(a, 404, "NotFound", msg);
		return;
	}
	if (!accept_ok(h->accept)) {
		sim_auth_admin_error(a, 406, "NotAcceptable", "Accept must name " CT_TARGET);
		return;
	}
	if (sim_params_parse(&q, query, query_len, 64)) {
		sim_auth_admin_error(a, 500, "ServerError", "out of memory");
		return;
	}
	scope = sim_params_get(&q, "authorizationScope");
	debug = equal(scope, "debug_tools");
	if (!debug && !equal(scope, "profile_api")) {
		sim_auth_admin_error(a, 400, "BadRequest", "authorizationScope must be profile_api or debug_tools");
		goto out;
	}
	if (debug) {
		/* issued, but never a profile token */
		pthread_mutex_lock(&lock);
		make_token(tok, "dbg", ++requests);
		pthread_mutex_unlock(&lock);
		token_answer(a, method ? 201 : 200, tok, "debug_tools", cfg->profile_token_lifetime_s);
		goto out;
	}
	pthread_mutex_lock(&lock);
	if (method == 0) {
		struct token *t = current_profile(now);
		int64_t left = t ? (t->expires_ms - now) / 1000 : 0;

		if (t)
			snprintf(tok, sizeof(tok), "%s", t->text);
		pthread_mutex_unlock(&lock);
		if (!t) {
			sim_auth_admin_error(a, 404, "NotFound",
			            "no valid profile_api token exists; create one with POST");
			goto out;
		}
		token_answer(a, 200, tok, "profile_api", left);
		sim_counters_add(SIM_ST_PROFILE_TOKENS_RETRIEVED, 1);
		goto out;
	}
	if (profile_current)
		profile[(profile_next + SIM_AUTH_PROFILE_KEEP - 1) % SIM_AUTH_PROFILE_KEEP].superseded = 1;
	make_token(tok, "ptk", ++profile_created);
	{
		struct token *t = &profile[profile_next++ % SIM_AUTH_PROFILE_KEEP];

		snprintf(t->text, sizeof(t->text), "%s", tok);
		t->expires_ms = now + cfg->profile_token_lifetime_s * 1000;
		t->superseded = 0;
	}
	profile_current = 1;
	pthread_mutex_unlock(&lock);
	token_answer(a, 201, tok, "profile_api", cfg->profile_token_lifetime_s);
	sim_counters_add(SIM_ST_PROFILE_TOKENS_CREATED, 1);
out:
	sim_params_free(&q);
}

enum sim_token_state sim_auth_profile_check(const char *token, size_t len, int64_t now_ms)
{
	enum sim_token_state st = SIM_TOKEN_UNKNOWN;
	size_t i;

	pthread_mutex_lock(&lock);
	for (i = 0; i < SIM_AUTH_PROFILE_KEEP; i++) {
		const struct token *t = &profile[i];

		if (!t->text[0] || strlen(t->text) != len || memcmp(t->text, token, len) != 0)
			continue;
		if (!t->superseded)
			st = now_ms < t->expires_ms ? SIM_TOKEN_VALID : SIM_TOKEN_EXPIRED;
		break;
	}
	pthread_mutex_unlock(&lock);
	return st;
}

int sim_auth_control(const char *what, size_t len)
{
	int64_t now = sim_clock_now_ms();
	size_t i;
	int rc = 0;

	pthread_mutex_lock(&lock);
	if (len == 7 && memcmp(what, "profile", 7) == 0) {
		if (profile_current)
			profile[(profile_next + SIM_AUTH_PROFILE_KEEP - 1) % SIM_AUTH_PROFILE_KEEP]
			    .expires_ms = now;
	} else if (len == 6 && memcmp(what, "revoke", 6) == 0) {
		if (profile_current)
			profile[(profile_next + SIM_AUTH_PROFILE_KEEP - 1) % SIM_AUTH_PROFILE_KEEP]
			    .superseded = 1;
		profile_current = 0;
	} else if (len == 3 && memcmp(what, "ims", 3) == 0) {
		for (i = 0; i < SIM_AUTH_IMS_KEEP; i++)
			if (ims[i].text[0] && ims[i].expires_ms > now)
				ims[i].expires_ms = now;
	} else {
		rc = -1;
	}
	pthread_mutex_unlock(&lock);
	return rc;
}

int sim_auth_json(struct sim_buf *out)
{
	int64_t now = sim_clock_now_ms();
	char ts[40];
	size_t i, n = 0;

	pthread_mutex_lock(&lock);
	sim_buf_adds(out, "{\"profile_token\":");
	if (profile_current) {
		const struct token *t =
		    &profile[(profile_next + SIM_AUTH_PROFILE_KEEP - 1) % SIM_AUTH_PROFILE_KEEP];

		sim_clock_iso(t->expires_ms, ts, sizeof(ts));
		sim_buf_printf(out, "{\"token\":\"%s\",\"expires_at\":\"%s\",\"expired\":%s}", t->text,
		               ts, now < t->expires_ms ? "false" : "true");
	} else {
		sim_buf_adds(out, "null");
	}
	sim_buf_adds(out, ",\"profile_tokens\":[");
	for (i = 0; i < SIM_AUTH_PROFILE_KEEP; i++) {
		const struct token *t = &profile[(profile_next + i) % SIM_AUTH_PROFILE_KEEP];

		if (t->text[0])
			sim_buf_printf(out, "%s\"%s\"", n++ ? "," : "", t->text);
	}
	n = 0;
	sim_buf_adds(out, "],\"ims_tokens\":[");
	for (i = 0; i < SIM_AUTH_IMS_KEEP; i++) {
		const struct token *t = &ims[(ims_next + i) % SIM_AUTH_IMS_KEEP];

		if (t->text[0])
			sim_buf_printf(out, "%s\"%s\"", n++ ? "," : "", t->text);
	}
	sim_buf_printf(out, "],\"ims_issued\":%zu,\"profile_created\":%zu}", ims_issued,
	               profile_created);
	pthread_mutex_unlock(&lock);
	return out->failed ? -1 : 0;
}

void sim_auth_reset(void)
{
	pthread_mutex_lock(&lock);
	memset(ims, 0, sizeof(ims));
	memset(profile, 0, sizeof(profile));
	ims_next = ims_issued = profile_next = profile_created = 0;
	profile_current = 0;
	requests = 0;
	pthread_mutex_unlock(&lock);
}
