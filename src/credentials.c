/*
 * credentials.c - the profile API token and its refresh (see
 * credentials.h for the sources and the refresh diagram).
 *
 * Owns: the policy -- when a token is due, what a refusal does, how often
 * anything may be asked -- and the log lines about tokens.  Running the
 * command is tokencmd.c's, the IMS and Admin API requests ims.c's, the
 * shared cache file credcache.c's.
 *
 * The IMS path, in pobox_cred_token or after a refusal:
 *   1. the cache, without the lock: a profile token not yet due for refresh
 *      (and not the one just refused) is taken as it is;
 *   2. else the lock, and the cache again (another process may have minted
 *      while we waited);
 *   3. else mint: the IMS token from the cache when still good, or a new
 *      one; then the Admin API: GET the existing profile token; POST a new
 *      one when there is none (404), when the existing one is due for
 *      refresh, or when it is the very token Target refused.  A 401 from
 *      the Admin API with a cached IMS token gets one new IMS token and one
 *      more try.
 *   4. write the cache, unlock.
 */
#define _GNU_SOURCE
#include "credentials.h"
#include "alloc.h"
#include "credcache.h"
#include "error.h"
#include "http.h"
#include "ims.h"
#include "log.h"
#include "pobox.h"
#include "timefmt.h"
#include "tokencmd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MARGIN_MIN_MS 60000
#define MARGIN_MAX_MS 3600000
#define SECRET_FILE_MAX 16384
#define ERRLEN 512

struct pobox_cred {
	int refs;
	enum pobox_cred_source source;
	/* configuration (copies) */
	char *token_file, *secret, **argv;
	struct pobox_ims_opts ims;
	char *ims_client_id, *ims_scopes, *tenant, *ims_base, *admin_base;
	char *cache_path;
	char key[17];
	int64_t command_timeout_ms, min_interval_ms;
	struct pobox_http_config hc;
	char *ca_file;
	struct pobox_clock clock;
	struct pobox_http *http;          /* IMS: made at first use */
	/* the token in hand */
	char *token;
	uint64_t gen;
	const char *origin;
	int64_t obtained_ms, expires_ms, refresh_ms;
	char *ims_token;
	int64_t ims_obtained_ms, ims_expires_ms;
	/* rate limit: last command run or IMS round trip, and why it failed */
	int64_t last_fetch_ms;
	char last_err[ERRLEN];
	int last_rc;
	uint64_t mints;
};

static void wipe_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		pobox_free(s);
	}
}

static int64_t now_ms(const struct pobox_cred *c) { return pobox_clock_now_ms(&c->clock); }

const char *pobox_cred_source_name(enum pobox_cred_source s)
{
	switch (s) {
	case POBOX_CRED_FILE: return "token_file";
	case POBOX_CRED_COMMAND: return "token_command";
	case POBOX_CRED_IMS: return "ims";
	default: return "none";
	}
}

/* Refresh this long before the expiry. */
static int64_t margin_ms(int64_t lifetime_ms)
{
	int64_t m = lifetime_ms / 10;
	return m < MARGIN_MIN_MS ? MARGIN_MIN_MS : m > MARGIN_MAX_MS ? MARGIN_MAX_MS : m;
}

static int64_t refresh_at(int64_t obtained_ms, int64_t expires_ms)
{
	if (expires_ms < 0)
		return -1;
	return expires_ms - margin_ms(expires_ms - obtained_ms);
}

/* Due: no token, or past its refresh time. */
static int due(int64_t refresh_ms, int64_t now)
{
	return refresh_ms >= 0 && now >= refresh_ms;
}

/* ---- reading the files ------------------------------------------------- */

/* The first line of a file no one else may read.  what names the key. */
static int read_private(const char *path, const char *what, char **out, char *err, size_t errlen)
{
	struct stat sb;
	char buf[SECRET_FILE_MAX];
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;
	ssize_t n = 0;
	*out = NULL;
	if (fd < 0)
		return pobox_errf(err, errlen, POBOX_ECONFIG, "%s %s: %s", what, path, strerror(errno));
	if (fstat(fd, &sb) == 0 && (sb.st_mode & 077)) {
		rc = pobox_errf(err, errlen, POBOX_ECONFIG,
		                "%s %s is readable by other users (mode %04o); run chmod 600 %s", what,
		                path, (unsigned)(sb.st_mode & 07777), path);
		goto out;
	}
	for (ssize_t r; (size_t)n < sizeof buf - 1 && (r = read(fd, buf + n, sizeof buf - 1 - (size_t)n)) != 0; ) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = pobox_errf(err, errlen, POBOX_ECONFIG, "%s %s: %s", what, path, strerror(errno));
			goto out;
		}
		n += r;
	}
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	if (!buf[0])
		rc = pobox_errf(err, errlen, POBOX_ECONFIG, "%s %s is empty", what, path);
	else if (!(*out = pobox_strdup(buf)))
		rc = pobox_errf(err, errlen, POBOX_ENOMEM, "out of memory");
out:
	explicit_bzero(buf, sizeof buf);
	close(fd);
	return rc;
}

/* ---- life cycle -------------------------------------------------------- */

static uint64_t fnv(uint64_t h, const char *s)
{
	for (; s && *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
	return (h ^ 0xff) * 0x100000001b3ULL; /* a separator between fields */
}

static int dup_opt(char **dst, const char *src)
{
	if (!src)
		return 0;
	return (*dst = pobox_strdup(src)) ? 0 : POBOX_ENOMEM;
}

static int check_ims(const struct pobox_cred_opts *o, char *err, size_t errlen)
{
	if (!o->ims_client_secret_file || !*o->ims_client_secret_file)
		return pobox_errf(err, errlen, POBOX_ECONFIG,
		                  "ims_client_id is set but ims_client_secret_file is not: put the client "
		                  "secret from the Developer Console in a mode-600 file and name it there");
	if (!o->ims_scopes || !*o->ims_scopes)
		return pobox_errf(err, errlen, POBOX_ECONFIG,
		                  "ims_scopes is not set: copy the scopes shown on the project's OAuth "
		                  "Server-to-Server credential in the Developer Console");
	if (!o->tenant || !*o->tenant)
		return pobox_errf(err, errlen, POBOX_ECONFIG,
		                  "target_tenant is not set: it is the tenant name in your Target URL "
		                  "(https://experience.adobe.com/#/@TENANT/target)");
	return 0;
}

int pobox_cred_new(struct pobox_cred **out, const struct pobox_cred_opts *o, char *err,
                   size_t errlen)
{
	struct pobox_cred *c;
	int rc = 0, n = 0;
	n += o->token_file && *o->token_file;
	n += o->token_command && *o->token_command;
	n += o->ims_client_id && *o->ims_client_id;
	if (n > 1)
		return pobox_errf(err, errlen, POBOX_ECONFIG,
		                  "set only one of token_file, token_command and ims_client_id");
	if (!(c = pobox_calloc(1, sizeof *c)))
		return pobox_errf(err, errlen, POBOX_ENOMEM, "out of memory");
	c->refs = 1;
	c->clock = o->clock ? *o->clock : (struct pobox_clock){pobox_clock_real_ms, NULL};
	c->command_timeout_ms = o->command_timeout_ms > 0 ? o->command_timeout_ms : 30000;
	c->min_interval_ms = o->min_interval_ms > 0 ? o->min_interval_ms : 60000;
	c->expires_ms = c->refresh_ms = c->ims_expires_ms = c->last_fetch_ms = -1;
	pobox_http_config_init(&c->hc);
	c->hc.connect_timeout_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 10000;
	c->hc.timeout_ms = o->request_timeout_ms > 0 ? o->request_timeout_ms : 60000;
	c->hc.verify_tls = o->verify_tls;
	c->hc.compressed_answers = 0;
	if (dup_opt(&c->ca_file, o->ca_file)) {
		rc = pobox_errf(err, errlen, POBOX_ENOMEM, "out of memory");
		goto fail;
	}
	c->hc.ca_file = c->ca_file;
	if (o->token_file && *o->token_file) {
		c->source = POBOX_CRED_FILE;
		if (dup_opt(&c->token_file, o->token_file))
			rc = pobox_errf(err, errlen, POBOX_ENOMEM, "out of memory");
		else if ((rc = read_private(o->token_file, "token_file", &c->token, err, errlen)) == 0) {
			c->gen = 1;
			c->origin = "file";
			c->obtained_ms = now_ms(c);
		}
	} else if (o->token_command && *o->token_command) {
		c->source = POBOX_CRED_COMMAND;
		rc = pobox_tokencmd_split(o->token_command, &c->argv, err, errlen);
	} else if (o->ims_client_id && *o->ims_client_id) {
		c->source = POBOX_CRED_IMS;
		if ((rc = check_ims(o, err, errlen)) != 0 ||
		    (rc = read_private(o->ims_client_secret_file, "ims_client_secret_file", &c->secret,
		                       err, errlen)) != 0)
			goto fail;
		if (dup_opt(&c->ims_client_id, o->ims_client_id) || dup_opt(&c->ims_scopes, o->ims_scopes) ||
		    dup_opt(&c->tenant, o->tenant) ||
		    dup_opt(&c->ims_base, o->ims_base_url && *o->ims_base_url ? o->ims_base_url
		                                                              : POBOX_IMS_DEFAULT_BASE) ||
		    dup_opt(&c->admin_base, o->admin_base_url && *o->admin_base_url
		                                ? o->admin_base_url : POBOX_ADMIN_DEFAULT_BASE) ||
		    dup_opt(&c->cache_path, o->cache_path)) {
			rc = pobox_errf(err, errlen, POBOX_ENOMEM, "out of memory");
			goto fail;
		}
		c->ims = (struct pobox_ims_opts){c->ims_client_id, c->secret, c->ims_scopes, c->tenant,
		                                 c->ims_base, c->admin_base};
		uint64_t h = 0xcbf29ce484222325ULL;
		h = fnv(fnv(fnv(fnv(fnv(h, c->ims_client_id), c->tenant), c->ims_scopes), c->ims_base),
		        c->admin_base);
		snprintf(c->key, sizeof c->key, "%016llx", (unsigned long long)h);
	}
	if (rc)
		goto fail;
	*out = c;
	return 0;
fail:
	pobox_cred_free(c);
	return rc;
}

struct pobox_cred *pobox_cred_ref(struct pobox_cred *c)
{
	if (c)
		c->refs++;
	return c;
}

void pobox_cred_free(struct pobox_cred *c)
{
	if (!c || --c->refs > 0)
		return;
	pobox_http_free(c->http);
	wipe_free(c->token);
	wipe_free(c->ims_token);
	wipe_free(c->secret);
	pobox_tokencmd_argv_free(c->argv);
	pobox_free(c->token_file);
	pobox_free(c->ims_client_id);
	pobox_free(c->ims_scopes);
	pobox_free(c->tenant);
	pobox_free(c->ims_base);
	pobox_free(c->admin_base);
	pobox_free(c->cache_path);
	pobox_free(c->ca_file);
	pobox_free(c);
}

enum pobox_cred_source pobox_cred_source(const struct pobox_cred *c)
{
	return c ? c->source : POBOX_CRED_NONE;
}

void pobox_cred_info(const struct pobox_cred *c, struct pobox_cred_info *o)
{
	memset(o, 0, sizeof *o);
	o->expires_at_ms = o->refresh_at_ms = o->ims_expires_at_ms = -1;
	if (!c)
		return;
	o->source = c->source;
	o->have = c->token != NULL;
	o->origin = c->origin;
	o->obtained_at_ms = c->obtained_ms;
	o->expires_at_ms = c->expires_ms;
	o->refresh_at_ms = c->refresh_ms;
	o->ims_expires_at_ms = c->ims_token ? c->ims_expires_ms : -1;
	o->mints = c->mints;
}

/* ---- the token in hand ------------------------------------------------- */

/* Takes token (ownership) as the current one. */
static void adopt(struct pobox_cred *c, char *token, const char *origin, int64_t obtained,
                  int64_t expires)
{
	wipe_free(c->token);
	c->token = token;
	c->gen++;
	c->origin = origin;
	c->obtained_ms = obtained;
	c->expires_ms = expires;
	c->refresh_ms = refresh_at(obtained, expires);
}

static void log_token(const struct pobox_cred *c, const char *event, const char *reason)
{
	char exp[32] = "none", ref[32] = "none";
	if (c->expires_ms >= 0)
		pobox_time_format(c->expires_ms, exp, sizeof exp);
	if (c->refresh_ms >= 0)
		pobox_time_format(c->refresh_ms, ref, sizeof ref);
	if (c->expires_ms >= 0)
		pobox_log(POBOX_LOG_INFO, event,
		          "source=%s from=\"%s\" reason=%s lifetime_s=%lld expires_at=%s refresh_at=%s",
		          pobox_cred_source_name(c->source), c->origin, reason,
		          (long long)((c->expires_ms - c->obtained_ms) / 1000), exp, ref);
	else
		pobox_log(POBOX_LOG_INFO, event,
		          "source=%s from=\"%s\" reason=%s lifetime_s=unknown expires_at=none "
		          "refresh_at=when_refused",
		          pobox_cred_source_name(c->source), c->origin, reason);
}

/* ---- token_command ------------------------------------------------------ */

static void on_stderr(void *ctx, const char *line)
{
	(void)ctx;
	pobox_log(POBOX_LOG_WARN, "token_command_stderr", "line=\"%s\"", line);
}

static int run_command(struct pobox_cred *c, const char *reason, char *err, size_t errlen)
{
	struct pobox_tokencmd_result r;
	int64_t now = now_ms(c);
	c->last_fetch_ms = now;
	c->mints++;
	int rc = pobox_tokencmd_run(c->argv, c->command_timeout_ms, reason, now, on_stderr, NULL, &r,
	                            err, errlen);
	if (rc)
		return rc;
	if (c->token && strcmp(c->token, r.token) == 0 && strcmp(reason, "refused") == 0) {
		wipe_free(r.token);
		return pobox_errf(err, errlen, POBOX_EPERMANENT,
		                  "token_command printed the same token Target had just refused");
	}
	adopt(c, r.token, "command", now, r.expires_at_ms);
	log_token(c, "token_obtained", reason);
	return 0;
}

/* ---- IMS --------------------------------------------------------------- */

/* A cached profile token worth taking: present, not due, not `refused`. */
static int cache_usable(const struct pobox_credcache_entry *e, const char *refused, int64_t now)
{
	return e->token && e->expires_ms > now && !due(refresh_at(e->obtained_ms, e->expires_ms), now) &&
	       !(refused && strcmp(e->token, refused) == 0);
}

/* Reads the cache; adopts its profile token when usable (returns 1), and
 * its IMS token when ours is older. */
static int from_cache(struct pobox_cred *c, const char *refused, int64_t now)
{
	struct pobox_credcache_entry e;
	char msg[ERRLEN];
	int rc, took = 0;
	if (!c->cache_path)
		return 0;
	if ((rc = pobox_credcache_read(c->cache_path, c->key, &e, msg, sizeof msg)) != 0) {
		if (rc != POBOX_ENOTFOUND)
			pobox_log(POBOX_LOG_WARN, "token_cache_unusable", "reason=\"%s\"", msg);
		return 0;
	}
	if (e.ims_token && e.ims_expires_ms > now && e.ims_expires_ms > c->ims_expires_ms) {
		wipe_free(c->ims_token);
		c->ims_token = e.ims_token;
		e.ims_token = NULL;
		c->ims_obtained_ms = e.ims_obtained_ms;
		c->ims_expires_ms = e.ims_expires_ms;
	}
	if (cache_usable(&e, refused, now) && !(c->token && strcmp(c->token, e.token) == 0)) {
		adopt(c, e.token, "cache", e.obtained_ms, e.expires_ms);
		e.token = NULL;
		log_token(c, "token_from_cache", "shared");
		took = 1;
	}
	pobox_credcache_entry_free(&e);
	return took;
}

static int ims_mint(struct pobox_cred *c, char *err, size_t errlen)
{
	char *t = NULL;
	int64_t life = 0, now = now_ms(c);
	int rc = pobox_ims_token(c->http, &c->ims, &t, &life, err, errlen);
	if (rc)
		return rc;
	wipe_free(c->ims_token);
	c->ims_token = t;
	c->ims_obtained_ms = now;
	c->ims_expires_ms = now + life;
	char exp[32], ref[32];
	pobox_log(POBOX_LOG_INFO, "ims_token_obtained", "lifetime_s=%lld expires_at=%s refresh_at=%s",
	          (long long)(life / 1000), pobox_time_format(c->ims_expires_ms, exp, sizeof exp),
	          pobox_time_format(refresh_at(now, c->ims_expires_ms), ref, sizeof ref));
	return 0;
}

/* One Admin API call; a 401 with an IMS token we did not just mint gets
 * one new IMS token and one more try. */
static int admin_call(struct pobox_cred *c, enum pobox_http_method m, int fresh_ims, char **tok,
                      int64_t *life, long *status, char *err, size_t errlen)
{
	int rc = pobox_admin_token(c->http, &c->ims, c->ims_token, m, tok, life, status, err, errlen);
	if (rc && *status == 401 && !fresh_ims) {
		pobox_log(POBOX_LOG_WARN, "ims_token_refused", "reason=\"%s\"", err);
		if ((rc = ims_mint(c, err, errlen)) == 0)
			rc = pobox_admin_token(c->http, &c->ims, c->ims_token, m, tok, life, status, err,
			                       errlen);
	}
	return rc;
}

/* Step 3 (see the top): a profile token from the Admin API. */
static int ims_fetch(struct pobox_cred *c, const char *refused, const char *reason, char *err,
                     size_t errlen)
{
	char *tok = NULL;
	int64_t life = 0, now = now_ms(c);
	long status = 0;
	int rc, fresh_ims = 0;
	if (!c->http && (rc = pobox_http_new(&c->http, &c->hc, err, errlen)) != 0)
		return rc;
	c->last_fetch_ms = now;
	c->mints++;
	if (!c->ims_token || due(refresh_at(c->ims_obtained_ms, c->ims_expires_ms), now)) {
		if ((rc = ims_mint(c, err, errlen)) != 0)
			return rc;
		fresh_ims = 1;
	}
	const char *method = "GET";
	rc = admin_call(c, POBOX_HTTP_GET, fresh_ims, &tok, &life, &status, err, errlen);
	if (rc && status != 404)
		return rc;
	if (rc == 0 && (life <= margin_ms(life) || (refused && strcmp(tok, refused) == 0))) {
		/* the existing token is about to expire, or is the refused one */
		wipe_free(tok);
		tok = NULL;
		rc = 1;
	}
	if (rc) {
		method = "POST";
		if ((rc = admin_call(c, POBOX_HTTP_POST, 1, &tok, &life, &status, err, errlen)) != 0)
			return rc;
	}
	adopt(c, tok, method[0] == 'G' ? "admin_api GET" : "admin_api POST", now, now + life);
	log_token(c, "token_obtained", reason);
	return 0;
}

/* Writes what is in hand to the cache (a failure costs other processes a
 * mint, nothing more: logged). */
static void cache_store(struct pobox_cred *c)
{
	struct pobox_credcache_entry e = {c->ims_token, c->ims_obtained_ms, c->ims_expires_ms,
	                                  c->token, c->obtained_ms, c->expires_ms};
	char msg[ERRLEN];
	if (c->cache_path && pobox_credcache_write(c->cache_path, c->key, &e, msg, sizeof msg) != 0)
		pobox_log(POBOX_LOG_WARN, "token_cache_write_failed", "reason=\"%s\"", msg);
}

/* Steps 1-4.  refused: the token Target refused, or NULL. */
static int ims_get(struct pobox_cred *c, const char *refused, const char *reason, char *err,
                   size_t errlen)
{
	int lock = -1, rc;
	char msg[ERRLEN];
	if (from_cache(c, refused, now_ms(c)))
		return 0;
	if (c->cache_path) {
		int64_t wait = 3 * c->hc.timeout_ms + 10000;
		if ((rc = pobox_credcache_lock(c->cache_path, wait, &lock, msg, sizeof msg)) != 0)
			pobox_log(POBOX_LOG_WARN, "token_cache_lock_failed", "reason=\"%s\"; minting without it",
			          msg);
		else if (from_cache(c, refused, now_ms(c))) {
			pobox_credcache_unlock(lock);
			return 0;
		}
	}
	rc = ims_fetch(c, refused, reason, err, errlen);
	if (rc == 0)
		cache_store(c);
	pobox_credcache_unlock(lock);
	return rc;
}

/* ---- the API ----------------------------------------------------------- */

/* Gets a new token from the source (command or IMS). */
static int fetch(struct pobox_cred *c, const char *refused, const char *reason, char *err,
                 size_t errlen)
{
	if (c->source == POBOX_CRED_COMMAND)
		return run_command(c, reason, err, errlen);
	return ims_get(c, refused, reason, err, errlen);
}

int pobox_cred_token(struct pobox_cred *c, const char **token, uint64_t *gen, char *err,
                     size_t errlen)
{
	char msg[ERRLEN];
	int64_t now;
	int rc;
	*token = NULL;
	*gen = 0;
	if (!c || c->source == POBOX_CRED_NONE)
		return 0;
	now = now_ms(c);
	if (c->source == POBOX_CRED_FILE || (c->token && !due(c->refresh_ms, now)))
		goto have;
	if (c->token && c->last_fetch_ms >= 0 && now - c->last_fetch_ms < c->min_interval_ms) {
		if (c->expires_ms < 0 || now < c->expires_ms)
			goto have; /* due, but asked too recently: the current one still works */
		char exp[32];
		return pobox_errf(err, errlen, POBOX_EPERMANENT,
		                  "the %s token expired at %s and the last attempt to refresh it was %llds "
		                  "ago (token_min_interval)", pobox_cred_source_name(c->source),
		                  pobox_time_format(c->expires_ms, exp, sizeof exp),
		                  (long long)((now - c->last_fetch_ms) / 1000));
	}
	if (!c->token && c->last_fetch_ms >= 0 && now - c->last_fetch_ms < c->min_interval_ms &&
	    c->last_rc)
		/* the last attempt failed moments ago: not again yet */
		return pobox_errf(err, errlen, c->last_rc, "%s", c->last_err);
	/* an answer equal to the token in hand is no refresh: avoid it */
	rc = fetch(c, c->token, c->token ? "expiry" : "start", msg, sizeof msg);
	c->last_rc = rc;
	if (rc)
		snprintf(c->last_err, sizeof c->last_err, "%s", msg);
	if (rc) {
		if (c->token && (c->expires_ms < 0 || now < c->expires_ms)) {
			pobox_log(POBOX_LOG_WARN, "token_refresh_failed",
			          "source=%s reason=\"%s\" keeping_current=yes expires_in_s=%lld",
			          pobox_cred_source_name(c->source), msg,
			          (long long)((c->expires_ms - now) / 1000));
			goto have;
		}
		pobox_log(POBOX_LOG_ERROR, "token_failed", "source=%s reason=\"%s\"",
		          pobox_cred_source_name(c->source), msg);
		return pobox_errf(err, errlen, rc, "%s", msg);
	}
have:
	*token = c->token;
	*gen = c->gen;
	return 0;
}

int pobox_cred_refused(struct pobox_cred *c, uint64_t gen, char *err, size_t errlen)
{
	char msg[ERRLEN];
	int64_t now;
	int rc;
	if (!c || c->source == POBOX_CRED_NONE)
		return pobox_errf(err, errlen, POBOX_EPERMANENT,
		                  "no credentials are configured (token_file, token_command or "
		                  "ims_client_id)");
	if (c->token && gen != c->gen)
		return 0; /* already replaced since that call was made */
	now = now_ms(c);
	if (c->source == POBOX_CRED_FILE) {
		char *t = NULL;
		if ((rc = read_private(c->token_file, "token_file", &t, err, errlen)) != 0)
			return rc;
		if (strcmp(t, c->token) == 0) {
			wipe_free(t);
			return pobox_errf(err, errlen, POBOX_EPERMANENT,
			                  "Target refused the token in token_file %s", c->token_file);
		}
		adopt(c, t, "file", now, -1);
		log_token(c, "token_obtained", "refused");
		return 0;
	}
	char *refused = c->token ? pobox_strdup(c->token) : NULL;
	if (c->token && !refused)
		return pobox_errf(err, errlen, POBOX_ENOMEM, "out of memory");
	if (c->source == POBOX_CRED_IMS && from_cache(c, refused, now)) {
		rc = 0;
	} else if (c->last_fetch_ms >= 0 && now - c->last_fetch_ms < c->min_interval_ms) {
		rc = pobox_errf(err, errlen, POBOX_EPERMANENT,
		                "Target refused a %s token obtained %llds ago; not asking for another one "
		                "sooner than token_min_interval (%llds)", pobox_cred_source_name(c->source),
		                (long long)((now - c->last_fetch_ms) / 1000),
		                (long long)(c->min_interval_ms / 1000));
	} else if ((rc = fetch(c, refused, "refused", msg, sizeof msg)) != 0) {
		pobox_log(POBOX_LOG_ERROR, "token_failed", "source=%s reason=\"%s\"",
		          pobox_cred_source_name(c->source), msg);
		rc = pobox_errf(err, errlen, rc, "%s", msg);
	}
	wipe_free(refused);
	return rc;
}
