/*
 * config.c - the configuration table and its loaders (see config.h).
 *
 * Owns: every key's name, type, default and where it lands in struct
 * pobox_config.  A key is added by adding one row to `keys`; the loader, the
 * environment override and error messages all come from the table.
 */
#include "config.h"
#include "alloc.h"
#include "error.h"
#include "origin.h"
#include "validate.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

enum key_type {
	K_STRING, K_INT, K_INT64, K_DURATION, K_SYNC, K_API, K_BOOL, K_SHARE, K_SIZE, K_LOG_LEVEL,
	K_RATE, K_CLIENT, K_URL
};

struct key {
	const char *name;
	enum key_type type;
	size_t offset;
	int64_t min, max;   /* for K_INT / K_DURATION; K_RATE: hundredths */
	const char *doc;
};

#define OFF(f) offsetof(struct pobox_config, f)

static const struct key keys[] = {
	{"db", K_STRING, OFF(db), 0, 0, "path of the outbox file"},
	{"client", K_CLIENT, OFF(client), 0, 0, "Target client code"},
	{"base_url", K_URL, OFF(base_url), 0, 0, "Target edge URL (default https://<client>.tt.omtrdc.net)"},
	{"token_file", K_STRING, OFF(token_file), 0, 0, "file holding the profile API bearer token"},
	{"token_command", K_STRING, OFF(token_command), 0, 0, "command that prints the profile API token (or JSON with token and expires_at)"},
	{"token_command_timeout", K_DURATION, OFF(token_command_timeout_ms), 1000, 3600000, "how long token_command may run before it is killed"},
	{"token_min_interval", K_DURATION, OFF(token_min_interval_ms), 1000, 86400000, "shortest time between two token fetches (token_command runs, IMS mints) by one process"},
	{"ims_client_id", K_STRING, OFF(ims_client_id), 0, 0, "Adobe IMS OAuth server-to-server client id (also the Admin API key)"},
	{"ims_client_secret_file", K_STRING, OFF(ims_client_secret_file), 0, 0, "file holding the IMS client secret (mode 600)"},
	{"ims_scopes", K_STRING, OFF(ims_scopes), 0, 0, "comma list of scopes of the OAuth server-to-server credential"},
	{"target_tenant", K_STRING, OFF(target_tenant), 0, 0, "Target tenant name for the Admin API"},
	{"ims_base_url", K_STRING, OFF(ims_base_url), 0, 0, "Adobe IMS (default https://ims-na1.adobelogin.com)"},
	{"admin_base_url", K_STRING, OFF(admin_base_url), 0, 0, "Target Admin API (default https://mc.adobe.io)"},
	{"max_value_chars", K_INT, OFF(max_value_chars), 1, 1 << 20, "longest attribute value, in characters"},
	{"synchronous", K_SYNC, OFF(synchronous), 0, 0, "FULL (default), NORMAL or OFF"},
	{"busy_timeout", K_DURATION, OFF(busy_timeout_ms), 0, 3600000, "how long a writer waits for the outbox lock"},
	{"bulk_api_thirdpartyid", K_API, OFF(bulk_api_thirdpartyid), 1, 2, "bulk API for thirdPartyId profiles: v1 or v2"},
	{"bulk_api_pcid", K_API, OFF(bulk_api_pcid), 1, 2, "bulk API for pcId profiles: v1 or v2"},
	{"max_batch_rows", K_INT64, OFF(max_batch_rows), 1, 500000, "most profiles (rows) in one batch file"},
	{"max_batch_bytes", K_INT64, OFF(max_batch_bytes), 1024, 49999999, "largest batch file, as encoded"},
	{"flush_rows", K_INT64, OFF(flush_rows), 1, INT64_C(1) << 40, "run: cut when this many profiles (batch rows) are pending"},
	{"flush_max_delay", K_DURATION, OFF(flush_max_delay_ms), 0, INT64_C(86400000) * 30, "run: cut when the oldest pending update has waited this long"},
	{"v2_carry_window", K_DURATION, OFF(v2_carry_window_ms), 0, INT64_C(86400000) * 365, "carry earlier attributes into a v2 row this long after a v2 delivery"},
	{"max_attempts", K_INT64, OFF(max_attempts), 1, 1000000, "tries before an update is dead-lettered"},
	{"max_age", K_DURATION, OFF(max_age_ms), 1000, INT64_C(86400000) * 365, "age after which an undeliverable update is dead-lettered"},
	{"backoff_base", K_DURATION, OFF(backoff_base_ms), 1, 3600000, "first retry delay (ceiling; full jitter)"},
	{"backoff_cap", K_DURATION, OFF(backoff_cap_ms), 1, INT64_C(86400000), "longest retry delay"},
	{"poll_initial", K_DURATION, OFF(poll_initial_ms), 1, 3600000, "first batchStatus poll after submitting"},
	{"poll_cap", K_DURATION, OFF(poll_cap_ms), 1, INT64_C(86400000), "longest interval between polls"},
	{"stuck_wait", K_DURATION, OFF(stuck_wait_ms), 0, INT64_C(86400000) * 7, "wait before resubmitting a stuck batch"},
	{"stuck_resubmits", K_INT64, OFF(stuck_resubmits), 0, 1000, "resubmissions of a batch whose status Target lost before its rows are dead-lettered"},
	{"bulk_calls_per_minute", K_INT64, OFF(bulk_calls_per_minute), 1, 10000, "bulk calls (submit and poll) per minute, all processes together"},
	{"bulk_max_in_flight", K_INT64, OFF(bulk_max_in_flight), 1, 1000, "bulk batches submitted and not yet complete at once (Target keeps only the last 10 statuses)"},
	{"connect_timeout", K_DURATION, OFF(connect_timeout_ms), 1, 600000, "HTTP connect timeout"},
	{"request_timeout", K_DURATION, OFF(request_timeout_ms), 1, 3600000, "HTTP whole-request timeout"},
	{"retention", K_DURATION, OFF(retention_ms), 0, INT64_C(86400000) * 3650, "keep delivered and superseded updates this long"},
	{"verify_tls", K_BOOL, OFF(verify_tls), 0, 1, "verify the server's TLS certificate (leave on)"},
	{"seed", K_INT64, OFF(seed), 0, INT64_MAX, "seed for retry jitter (0: random)"},
	{"single_lane", K_BOOL, OFF(single_lane), 0, 1, "deliver through single profile update calls where they fit"},
	{"single_budget", K_INT64, OFF(single_budget), 0, INT64_C(1000000000), "single calls per rolling 24 hours for the whole account"},
	{"fleet_share", K_SHARE, OFF(fleet_share), 0, 0, "this installation's share of the single-call budget"},
	{"urgent_reserve", K_SHARE, OFF(urgent_reserve), 0, 0, "share of the budget kept for urgent updates"},
	{"single_max_pending", K_INT64, OFF(single_max_pending), 0, INT64_C(1) << 40, "non-urgent updates go single only when at most this many profiles are pending"},
	{"single_min_budget_share", K_SHARE, OFF(single_min_budget_share), 0, 0, "non-urgent updates go single only while this share of the budget remains"},
	{"assume_profiles_exist", K_BOOL, OFF(assume_profiles_exist), 0, 1, "send never-delivered thirdPartyId profiles by single calls too"},
	{"single_concurrency", K_INT64, OFF(single_concurrency), 1, 1024, "single calls in flight at once"},
	{"single_threads", K_INT64, OFF(single_threads), 1, 16, "threads sending single calls"},
	{"single_group", K_INT64, OFF(single_group), 1, 100000, "profiles per single-lane batch (one transaction of outcomes)"},
	{"max_get_bytes", K_INT64, OFF(max_get_bytes), 256, 8192, "longest single-call URL sent as GET"},
	{"max_post_bytes", K_INT64, OFF(max_post_bytes), 256, 61440, "largest single call sent as POST; larger profiles go bulk"},
	{"recovery_ramp", K_DURATION, OFF(recovery_ramp_ms), 0, 3600000, "after an outage, ramp single calls in flight up over this long"},
	{"fleet_url", K_STRING, OFF(fleet_url), 0, 0, "the fleet coordinator: a PostgreSQL connection string or URI (no password in it)"},
	{"fleet_account", K_STRING, OFF(fleet_account), 0, 0, "which account's budgets this host draws from"},
	{"fleet_host", K_STRING, OFF(fleet_host), 0, 0, "this host's name in the fleet (default: the host name)"},
	{"fleet_password_file", K_STRING, OFF(fleet_password_file), 0, 0, "file holding the coordinator password (else libpq's passfile)"},
	{"fleet_margin", K_SHARE, OFF(fleet_margin), 0, 0, "share of single_budget the fleet never uses"},
	{"fleet_reserve_share", K_SHARE, OFF(fleet_reserve_share), 0, 0, "share of the budget held as standing reserves for hosts cut off from the coordinator"},
	{"fleet_size", K_INT64, OFF(fleet_size), 0, 1000000, "hosts the reserve is spread over (0: the hosts seen in the window)"},
	{"fleet_lease", K_DURATION, OFF(fleet_lease_ms), 100, 3600000, "life of a lease of single calls"},
	{"fleet_reserve_life", K_DURATION, OFF(fleet_reserve_life_ms), 100, INT64_C(86400000), "life of a standing reserve (renewed at half of it)"},
	{"fleet_permit_life", K_DURATION, OFF(fleet_permit_life_ms), 100, 600000, "life of a bulk call's permit"},
	{"fleet_window", K_DURATION, OFF(fleet_window_ms), 1440, INT64_C(86400000) * 7, "the single budget's rolling window (Target: 24h)"},
	{"fleet_bulk_window", K_DURATION, OFF(fleet_bulk_window_ms), 60, 3600000, "the bulk limit's rolling window (Target: 1m)"},
	{"fleet_timeout", K_DURATION, OFF(fleet_timeout_ms), 100, 120000, "longest wait for the coordinator (connect, each round trip)"},
	{"fleet_offline_bulk_per_minute", K_INT64, OFF(fleet_offline_bulk_per_minute), 0, 10000, "bulk calls per minute a host cut off from the coordinator may make (not reserved; 0: none)"},
	{"max_outbox_size", K_SIZE, OFF(max_outbox_bytes), 0, INT64_MAX, "refuse new updates past this outbox size (0: no limit)"},
	{"min_free_disk", K_SIZE, OFF(min_free_disk_bytes), 0, INT64_MAX, "refuse new updates when the disk has less free space"},
	{"check_on_open", K_SIZE, OFF(check_on_open_bytes), 0, INT64_MAX, "writers run SQLite's quick check at open on an outbox up to this size (0: never)"},
	{"check_interval", K_DURATION, OFF(check_interval_ms), 0, INT64_C(86400000), "run checks the next table of the outbox this often (0: never)"},
	{"verify_grace", K_DURATION, OFF(verify_grace_ms), 0, INT64_C(86400000) * 30, "verify: Target may take this long to apply an update (not yet applied, not different)"},
	{"verify_rate", K_RATE, OFF(verify_rate), 1, 100000, "verify: profile fetches per second, at most"},
	{"verify_sample", K_INT64, OFF(verify_sample), 1, INT64_C(1000000000), "verify: profiles fetched, chosen at random, unless told otherwise"},
	{"log_level", K_LOG_LEVEL, OFF(log_level), 0, 0, "error, warn, info (default) or debug"},
	{"metrics_file", K_STRING, OFF(metrics_file), 0, 0, "run writes Prometheus metrics here (node_exporter textfile)"},
	{"metrics_interval", K_DURATION, OFF(metrics_interval_ms), 1000, 3600000, "how often run rewrites metrics_file"},
};

void pobox_config_init(struct pobox_config *c)
{
	memset(c, 0, sizeof *c);
	c->max_value_chars = POBOX_DEFAULT_MAX_VALUE_CHARS;
	c->synchronous = POBOX_SYNC_FULL;
	c->busy_timeout_ms = 30000;
	c->token_command_timeout_ms = 30000;
	c->token_min_interval_ms = 60000;
	c->bulk_api_thirdpartyid = 2;
	c->bulk_api_pcid = 1;
	c->max_batch_rows = 500000;
	c->max_batch_bytes = 49000000;
	c->flush_rows = 100000;
	c->flush_max_delay_ms = 5 * 60000;
	c->v2_carry_window_ms = 24 * 3600000;
	c->max_attempts = 10;
	c->max_age_ms = INT64_C(3) * 86400000;
	c->backoff_base_ms = 1000;
	c->backoff_cap_ms = 5 * 60000;
	c->poll_initial_ms = 1000;
	c->poll_cap_ms = 60000;
	c->stuck_wait_ms = 5 * 60000;
	c->stuck_resubmits = 3;
	c->bulk_calls_per_minute = 45;
	c->bulk_max_in_flight = 5;
	c->connect_timeout_ms = 10000;
	c->request_timeout_ms = 120000;
	c->retention_ms = INT64_C(7) * 86400000;
	c->verify_tls = 1;
	c->single_lane = 1;
	c->single_budget = 1000000;
	c->fleet_share = 1.0;
	c->urgent_reserve = 0.1;
	c->single_max_pending = 1000;
	c->single_min_budget_share = 0.5;
	c->single_concurrency = 16;
	c->single_threads = 4;
	c->single_group = 2000;
	c->max_get_bytes = 8192;
	c->max_post_bytes = 61440;
	c->recovery_ramp_ms = 60000;
	c->fleet_margin = 0.005;
	c->fleet_reserve_share = 0.05;
	c->fleet_lease_ms = 120000;
	c->fleet_reserve_life_ms = 3600000;
	c->fleet_permit_life_ms = 10000;
	c->fleet_window_ms = 86400000;
	c->fleet_bulk_window_ms = 60000;
	c->fleet_timeout_ms = 5000;
	c->max_outbox_bytes = 0;
	c->min_free_disk_bytes = INT64_C(100) << 20;
	c->check_on_open_bytes = INT64_C(8) << 20;
	c->check_interval_ms = 60000;
	c->metrics_interval_ms = 30000;
	c->verify_grace_ms = 24 * 3600000;
	c->verify_rate = 5;
	c->verify_sample = 100;
}

void pobox_config_free(struct pobox_config *c)
{
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		if (keys[i].type == K_STRING || keys[i].type == K_LOG_LEVEL || keys[i].type == K_CLIENT ||
		    keys[i].type == K_URL) {
			char **p = (char **)((char *)c + keys[i].offset);
			pobox_free(*p);
			*p = NULL;
		}
	}
}

int pobox_parse_duration_ms(const char *s, int64_t *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	/* strtod takes "nan" and "inf": neither is a duration, and converting
	 * them to an integer is undefined */
	if (errno || end == s || !isfinite(v) || v < 0)
		return POBOX_EINVALID;
	double mult = 1000;
	if (*end) {
		if (strcmp(end, "ms") == 0)
			mult = 1;
		else if (strcmp(end, "s") == 0)
			mult = 1000;
		else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
			mult = 60000;
		else if (strcmp(end, "h") == 0)
			mult = 3600000;
		else if (strcmp(end, "d") == 0)
			mult = 86400000;
		else
			return POBOX_EINVALID;
	}
	if (v * mult > 9.2e18)
		return POBOX_EINVALID;
	*out = (int64_t)(v * mult + 0.5);
	return 0;
}

static const struct key *find_key(const char *name)
{
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

/* A client code goes into every URL's path (and the default host name):
 * Target's are letters, digits, '-' and '_', and nothing else may change
 * where a request goes. */
static int check_client(const char *key, const char *v, char *err, size_t errlen)
{
	size_t n = strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_");
	if (v[n] || n > 64)
		return pobox_errf(err, errlen, POBOX_ECONFIG,
		                  "%s = '%.80s': a Target client code is at most 64 letters, digits, "
		                  "'-' and '_'", key, v);
	return 0;
}

/* base_url: empty (the default), or an http(s) URL whose host pobox can
 * check status URLs against (origin.h). */
static int check_url(const char *key, const char *v, char *err, size_t errlen)
{
	struct pobox_origin o;
	char why[200];
	if (*v && pobox_origin_parse(&o, v, why, sizeof why) != 0)
		return pobox_errf(err, errlen, POBOX_ECONFIG, "%s = '%.200s': %s", key, v, why);
	return 0;
}

int pobox_config_set(struct pobox_config *c, const char *key, const char *value, char *err,
                     size_t errlen)
{
	const struct key *k = find_key(key);
	void *field;
	if (!k)
		return pobox_errf(err, errlen, POBOX_ECONFIG, "unknown key '%s' (see pobox.conf(5))", key);
	field = (char *)c + k->offset;
	if (k->type == K_LOG_LEVEL && strcmp(value, "error") != 0 && strcmp(value, "warn") != 0 &&
	    strcmp(value, "info") != 0 && strcmp(value, "debug") != 0)
		return pobox_errf(err, errlen, POBOX_ECONFIG,
		                  "%s = '%s': expected error, warn, info or debug", key, value);
	switch (k->type) {
	case K_CLIENT:
	case K_URL:
		if ((k->type == K_CLIENT ? check_client : check_url)(key, value, err, errlen) != 0)
			return POBOX_ECONFIG;
		/* fall through */
	case K_LOG_LEVEL: /* checked above, kept as text */
	case K_STRING: {
		char *dup = pobox_strdup(value);
		if (!dup)
			return pobox_errf(err, errlen, POBOX_ENOMEM, "out of memory");
		pobox_free(*(char **)field);
		*(char **)field = dup;
		return 0;
	}
	case K_INT:
	case K_INT64: {
		char *end;
		errno = 0;
		long long v = strtoll(value, &end, 10);
		if (errno || end == value || *end || v < k->min || v > k->max)
			return pobox_errf(err, errlen, POBOX_ECONFIG,
			                  "%s = '%s': expected a whole number from %lld to %lld", key, value,
			                  (long long)k->min, (long long)k->max);
		if (k->type == K_INT)
			*(int *)field = (int)v;
		else
			*(int64_t *)field = v;
		return 0;
	}
	case K_SHARE: {
		char *end;
		errno = 0;
		double v = strtod(value, &end);
		if (errno || end == value || *end || !isfinite(v) || v < 0 || v > 1)
			return pobox_errf(err, errlen, POBOX_ECONFIG,
			                  "%s = '%s': expected a share from 0 to 1, like 0.25", key, value);
		*(double *)field = v;
		return 0;
	}
	case K_RATE: {
		char *end;
		errno = 0;
		double v = strtod(value, &end);
		if (errno || end == value || *end || !isfinite(v) || v * 100 < (double)k->min ||
		    v * 100 > (double)k->max)
			return pobox_errf(err, errlen, POBOX_ECONFIG,
			                  "%s = '%s': expected a rate per second from %g to %g, like 5 or 0.5",
			                  key, value, (double)k->min / 100, (double)k->max / 100);
		*(double *)field = v;
		return 0;
	}
	case K_SIZE: {
		char *end;
		errno = 0;
		double v = strtod(value, &end);
		double mult = 1;
		if (*end == 'k' || *end == 'K')
			mult = 1024, end++;
		else if (*end == 'M')
			mult = 1024.0 * 1024, end++;
		else if (*end == 'G')
			mult = 1024.0 * 1024 * 1024, end++;
		if (*end == 'B' || *end == 'b')
			end++;
		if (errno || end == value || *end || !isfinite(v) || v < 0 || v * mult > 9e18)
			return pobox_errf(err, errlen, POBOX_ECONFIG,
			                  "%s = '%s': expected a size like 500M, 2G or 0", key, value);
		*(int64_t *)field = (int64_t)(v * mult);
		return 0;
	}
	case K_API:
		if (strcmp(value, "v1") == 0 || strcmp(value, "1") == 0)
			*(int *)field = 1;
		else if (strcmp(value, "v2") == 0 || strcmp(value, "2") == 0)
			*(int *)field = 2;
		else
			return pobox_errf(err, errlen, POBOX_ECONFIG, "%s = '%s': expected v1 or v2", key,
			                  value);
		return 0;
	case K_BOOL:
		if (!strcasecmp(value, "yes") || !strcasecmp(value, "true") || !strcmp(value, "1") ||
		    !strcasecmp(value, "on"))
			*(int *)field = 1;
		else if (!strcasecmp(value, "no") || !strcasecmp(value, "false") || !strcmp(value, "0") ||
		         !strcasecmp(value, "off"))
			*(int *)field = 0;
		else
			return pobox_errf(err, errlen, POBOX_ECONFIG, "%s = '%s': expected yes or no", key,
			                  value);
		return 0;
	case K_DURATION: {
		int64_t ms;
		if (pobox_parse_duration_ms(value, &ms) != 0 || ms < k->min || ms > k->max)
			return pobox_errf(err, errlen, POBOX_ECONFIG,
			                  "%s = '%s': expected a duration like 500ms, 30s, 5m, 1h (at most "
			                  "%llds)",
			                  key, value, (long long)(k->max / 1000));
		*(int64_t *)field = ms;
		return 0;
	}
	case K_SYNC:
		if (strcasecmp(value, "full") == 0)
			*(enum pobox_sync *)field = POBOX_SYNC_FULL;
		else if (strcasecmp(value, "normal") == 0)
			*(enum pobox_sync *)field = POBOX_SYNC_NORMAL;
		else if (strcasecmp(value, "off") == 0)
			*(enum pobox_sync *)field = POBOX_SYNC_OFF;
		else
			return pobox_errf(err, errlen, POBOX_ECONFIG,
			                  "%s = '%s': expected FULL, NORMAL or OFF", key, value);
		return 0;
	}
	return POBOX_ECONFIG;
}

struct load_ctx {
	struct pobox_config *c;
	const char *path;
	FILE *fp;
	int lineno;   /* lines read so far: inih calls the handler right after */
	char *err;
	size_t errlen;
	int rc;
};

/* Debian's inih is built without line numbers in the handler, so the reader
 * counts lines itself.  inih reads into a fixed buffer (INI_MAX_LINE, 200
 * bytes) and would take the rest of a longer line for the next line: the
 * value cut short, the message naming the wrong line.  A longer line is
 * refused here instead (returning NULL ends the parse). */
static char *read_line(char *str, int num, void *stream)
{
	struct load_ctx *l = stream;
	if (l->rc)
		return NULL;
	char *r = fgets(str, num, l->fp);
	if (!r)
		return NULL;
	l->lineno++;
	size_t n = strlen(r);
	if (n + 1 == (size_t)num && r[n - 1] != '\n') {
		int c = getc(l->fp);
		if (c != EOF && c != '\n') {
			l->rc = pobox_errf(l->err, l->errlen, POBOX_ECONFIG,
			                   "%s:%d: line longer than %d bytes; shorten it (a long "
			                   "token_command can live in a script)", l->path, l->lineno, num - 1);
			return NULL;
		}
	}
	return r;
}

static int on_ini(void *user, const char *section, const char *name, const char *value)
{
	struct load_ctx *l = user;
	int lineno = l->lineno;
	char msg[400];
	if (l->rc)
		return 1;
	/* Keys live at top level or in [pobox]; other sections are refused so a
	 * typo cannot silently hide a setting. */
	if (section[0] && strcmp(section, "pobox") != 0) {
		l->rc = pobox_errf(l->err, l->errlen, POBOX_ECONFIG,
		                   "%s:%d: unknown section [%s]; put keys at the top or under [pobox]",
		                   l->path, lineno, section);
		return 1;
	}
	if (pobox_config_set(l->c, name, value, msg, sizeof msg) != 0) {
		l->rc = pobox_errf(l->err, l->errlen, POBOX_ECONFIG, "%s:%d: %s", l->path, lineno, msg);
		return 1;
	}
	return 1;
}

int pobox_config_load(struct pobox_config *c, const char *path, int explicit_path, char *err,
                      size_t errlen)
{
	if (path) {
		FILE *fp = fopen(path, "r");
		if (!fp) {
			if (explicit_path || errno != ENOENT)
				return pobox_errf(err, errlen, POBOX_ECONFIG, "config %s: %s", path,
				                  strerror(errno));
		} else {
			struct load_ctx l = {c, path, fp, 0, err, errlen, 0};
			int r = ini_parse_stream(read_line, &l, on_ini, &l);
			fclose(fp);
			if (l.rc)
				return l.rc;
			if (r != 0)
				return pobox_errf(err, errlen, POBOX_ECONFIG,
				                  "%s:%d: not a key = value line", path, r);
		}
	}
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		char env[64], msg[400];
		size_t n = (size_t)snprintf(env, sizeof env, "POBOX_%s", keys[i].name);
		for (size_t j = 6; j < n; j++)
			env[j] = (char)toupper((unsigned char)env[j]);
		const char *v = getenv(env);
		if (v && pobox_config_set(c, keys[i].name, v, msg, sizeof msg) != 0)
			return pobox_errf(err, errlen, POBOX_ECONFIG, "environment %s: %s", env, msg);
	}
	return 0;
}

void pobox_config_options(const struct pobox_config *c, struct pobox_options *o)
{
	pobox_options_init(o);
	o->synchronous = c->synchronous;
	o->busy_timeout_ms = (int)c->busy_timeout_ms;
	o->max_value_chars = c->max_value_chars;
	o->max_outbox_bytes = c->max_outbox_bytes;
	o->min_free_bytes = c->min_free_disk_bytes;
}
