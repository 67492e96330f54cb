/*
 * sim_config -- the option table and plan publication (see sim_config.h).
 *
 * One row per option.  The same row serves `--name-with-dashes VALUE`,
 * `--name-with-dashes=VALUE` and the run-time form `name_with_dashes=VALUE`
 * (underscores or dashes both accepted), so a flag and its run-time twin can
 * never drift apart.
 */
#include "sim_config.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "sim_buf.h"
#include "sim_clock.h"
#include "sim_url.h"

enum opt_type { T_INT, T_RATE, T_DOUBLE, T_BOOL, T_STR, T_CODES, T_CLIENTS, T_FILE, T_SEED };

struct opt {
	const char *name;        /* with dashes */
	enum opt_type type;
	size_t off;
	int runtime;             /* may be changed by POST /_sim/faults */
	double min, max;
	const char *help;
};

#define OFF(f) offsetof(struct sim_config, f)
#define BIG 9.0e15

static const struct opt opts[] = {
	{ "port", T_INT, OFF(port), 0, 0, 65535,
	  "TCP port on 127.0.0.1; 0 picks a free one (default 0)" },
	{ "client", T_CLIENTS, OFF(clients), 0, 0, 0,
	  "accepted client code; repeat or comma-separate for several (default demo)" },
	{ "threads", T_INT, OFF(threads), 0, 1, 256,
	  "server threads, each an epoll loop (default 4)" },
	{ "seed", T_SEED, OFF(seed), 0, 0, 0,
	  "seed of every random choice, for replay (default 1)" },
	{ "clock-scale", T_DOUBLE, OFF(clock_scale), 0, 0.001, 1.0e7,
	  "simulated seconds per real second, e.g. 3600 (default 1)" },
	{ "preload", T_STR, OFF(preload), 0, 0, 0,
	  "CSV of existing profiles: header thirdPartyId|pcId,attr,... (URL-encoded cells)" },
	{ "no-ipv6", T_BOOL, OFF(no_ipv6), 0, 0, 1,
	  "do not also listen on [::1] (default: try, ignore failure)" },
	{ "single-window-s", T_INT, OFF(single_window_s), 0, 1, BIG,
	  "length of the single-update budget's rolling window, simulated s (default 86400)" },
	{ "call-log", T_STR, OFF(call_log), 0, 0, 0,
	  "append one line per single-update and bulk call that reaches its limit check: "
	  "simulated ms, lane, admitted|refused" },
	{ "process-delay-ms", T_INT, OFF(process_delay_ms), 1, 0, BIG,
	  "simulated ms before a batch is applied; status incomplete until then (default 0)" },
	{ "stuck-rate", T_RATE, OFF(stuck_rate), 1, 0, 1,
	  "share of batches that end 'stuck' and are never applied (default 0)" },
	{ "status-keep", T_INT, OFF(status_keep), 1, 1, 1000000,
	  "batch statuses kept per client (default 10)" },
	{ "status-ttl-s", T_INT, OFF(status_ttl_s), 1, 1, BIG,
	  "simulated seconds a batch status is kept (default 86400)" },
	{ "shuffle-window-ms", T_INT, OFF(shuffle_window_ms), 1, 0, BIG,
	  "batches submitted within this simulated window are applied in random order (default 0)" },
	{ "override", T_BOOL, OFF(override), 1, 0, 1,
	  "v2 override rule; --no-override or --override=0 turns it off (default on)" },
	{ "max-batch-bytes", T_INT, OFF(max_batch_bytes), 1, 16, BIG,
	  "a batch body of this many bytes or more is refused (default 50000000)" },
	{ "max-batch-rows", T_INT, OFF(max_batch_rows), 1, 1, BIG,
	  "a batch with more rows is refused (default 500000)" },
	{ "bulk-per-minute", T_INT, OFF(bulk_per_minute), 1, 0, 100000000,
	  "batchUpdate+batchStatus calls per rolling simulated minute; 0 = unlimited (default 50)" },
	{ "single-budget", T_INT, OFF(single_budget), 1, 0, 100000000,
	  "single-update calls per rolling simulated 24 h; 0 = unlimited (default 1000000)" },
	{ "max-get-bytes", T_INT, OFF(max_get_bytes), 1, 64, 100000,
	  "longest single-update GET request target (default 8192)" },
	{ "max-post-bytes", T_INT, OFF(max_post_bytes), 1, 64, 10000000,
	  "largest single-update POST, query + body (default 61440)" },
	{ "notfound-silent", T_BOOL, OFF(notfound_silent), 1, 0, 1,
	  "single update of an unknown profile answers success=true and drops it" },
	{ "error-rate", T_RATE, OFF(error_rate), 1, 0, 1,
	  "share of requests answered with a code from --error-codes (default 0)" },
	{ "error-codes", T_CODES, OFF(error_codes), 1, 0, 0,
	  "comma list of 5xx codes for --error-rate (default 500,502,503,504)" },
	{ "rate-429", T_RATE, OFF(rate_429), 1, 0, 1,
	  "share of requests answered 429 with Retry-After (default 0)" },
	{ "retry-after-s", T_INT, OFF(retry_after_s), 1, 0, 86400,
	  "Retry-After of injected 429/503 answers, real seconds (default 1)" },
	{ "latency-ms", T_INT, OFF(latency_ms), 1, 0, 600000,
	  "fixed delay before every answer, real ms (default 0)" },
	{ "latency-jitter-ms", T_INT, OFF(latency_jitter_ms), 1, 0, 600000,
	  "extra random delay in [0, N) real ms (default 0)" },
	{ "drop-rate", T_RATE, OFF(drop_rate), 1, 0, 1,
	  "share of requests read, then the connection closed without an answer" },
	{ "reset-rate", T_RATE, OFF(reset_rate), 1, 0, 1,
	  "share of answers cut off by a TCP reset half-way through the body" },
	{ "malformed-rate", T_RATE, OFF(malformed_rate), 1, 0, 1,
	  "share of XML answers truncated or garbled (HTTP framing stays valid)" },
	{ "token", T_STR, OFF(token), 1, 0, 0,
	  "require Authorization: Bearer TOKEN (401 without, 403 wrong); empty = off" },
	{ "token-file", T_FILE, OFF(token), 0, 0, 0,
	  "read the token from a file (first line)" },
	{ "outage-start-s", T_INT, OFF(outage_start_s), 1, 0, BIG,
	  "outage begins this many simulated s after start (or after the plan is set)" },
	{ "outage-len-s", T_INT, OFF(outage_len_s), 1, 0, BIG,
	  "outage length in simulated s; 0 = no outage (default 0)" },
	{ "outage-drop", T_BOOL, OFF(outage_drop), 1, 0, 1,
	  "during an outage close connections instead of answering 503" },
	{ "require-auth", T_BOOL, OFF(require_auth), 1, 0, 1,
	  "profile endpoints need a bearer token (the Admin API's) even without --token" },
	{ "ims-client-id", T_STR, OFF(ims_client_id), 1, 0, 0,
	  "client_id the IMS token endpoint accepts (also the Admin API's X-Api-Key)" },
	{ "ims-client-secret", T_STR, OFF(ims_client_secret), 1, 0, 0,
	  "client_secret the IMS token endpoint accepts" },
	{ "ims-scopes", T_STR, OFF(ims_scopes), 1, 0, 0,
	  "comma list of scopes a client may request; empty = any (default empty)" },
	{ "tenant", T_STR, OFF(tenant), 1, 0, 0,
	  "the Admin API's {tenant} path segment (default demo)" },
	{ "ims-token-lifetime-s", T_INT, OFF(ims_token_lifetime_s), 1, 1, BIG,
	  "expires_in of IMS access tokens, simulated s (default 86399)" },
	{ "profile-token-lifetime-s", T_INT, OFF(profile_token_lifetime_s), 1, 1, BIG,
	  "expiresIn of profile_api tokens the Admin API creates, simulated s (default 86400)" },
	{ "ims-fail", T_INT, OFF(ims_fail), 1, 0, 599,
	  "0, or an HTTP status (400-599) every IMS token call answers (default 0)" },
	{ "admin-fail", T_INT, OFF(admin_fail), 1, 0, 599,
	  "0, or an HTTP status (400-599) every Admin API token call answers (default 0)" },
	{ "status-base", T_STR, OFF(status_base), 1, 0, 0,
	  "batchStatus URLs name this http(s)://host[:port] instead of the other loopback name" },
};
#define N_OPTS (sizeof(opts) / sizeof(opts[0]))

void sim_config_defaults(struct sim_config *c)
{
	memset(c, 0, sizeof(*c));
	c->threads = 4;
	c->seed = 1;
	c->clock_scale = 1.0;
	c->status_keep = 10;
	c->status_ttl_s = 86400;
	c->override = 1;
	c->max_batch_bytes = 50000000;
	c->max_batch_rows = 500000;
	c->bulk_per_minute = 50;
	c->single_budget = 1000000;
	c->single_window_s = 86400;
	c->max_get_bytes = 8192;
	c->max_post_bytes = 60 * 1024;
	c->error_codes[0] = 500;
	c->error_codes[1] = 502;
	c->error_codes[2] = 503;
	c->error_codes[3] = 504;
	c->n_error_codes = 4;
	c->retry_after_s = 1;
	strcpy(c->tenant, "demo");
	c->ims_token_lifetime_s = 86399;
	c->profile_token_lifetime_s = 86400;
}

/* Capacity of a T_STR field. */
static size_t str_cap(size_t off)
{
	if (off == OFF(token))
		return sizeof(((struct sim_config *)0)->token);
	if (off == OFF(ims_client_id))
		return sizeof(((struct sim_config *)0)->ims_client_id);
	if (off == OFF(ims_client_secret))
		return sizeof(((struct sim_config *)0)->ims_client_secret);
	if (off == OFF(ims_scopes))
		return sizeof(((struct sim_config *)0)->ims_scopes);
	if (off == OFF(tenant))
		return sizeof(((struct sim_config *)0)->tenant);
	if (off == OFF(status_base))
		return sizeof(((struct sim_config *)0)->status_base);
	if (off == OFF(call_log))
		return sizeof(((struct sim_config *)0)->call_log);
	return sizeof(((struct sim_config *)0)->preload);
}

/* Secrets are shown only as set / not set. */
static int str_secret(size_t off)
{
	return off == OFF(token) || off == OFF(ims_client_secret);
}

static void set_err(char *err, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

static const struct opt *find_opt(const char *name, size_t len)
{
	size_t i, k;

	for (i = 0; i < N_OPTS; i++) {
		const char *o = opts[i].name;

		if (strlen(o) != len)
			continue;
		for (k = 0; k < len; k++) {
			char c = name[k] == '_' ? '-' : name[k];

			if (c != o[k])
				break;
		}
		if (k == len)
			return &opts[i];
	}
	return NULL;
}

static int parse_bool(const char *v, int *out)
{
	if (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "on") || !strcmp(v, "yes")) {
		*out = 1;
		return 0;
	}
	if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "off") || !strcmp(v, "no")) {
		*out = 0;
		return 0;
	}
	return -1;
}

/* A status base is empty, or http(s):// and a host[:port] of plain
 * characters (it goes into XML and a URL unescaped). */
static int bad_base(const char *v)
{
	size_t n = strncmp(v, "http://", 7) == 0 ? 7 : strncmp(v, "https://", 8) == 0 ? 8 : 0;

	if (!*v)
		return 0;
	if (!n || !v[n])
		return 1;
	return v[n + strspn(v + n, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                           "0123456789.-:[]")] != '\0';
}

static int add_client(struct sim_config *c, const char *v, char *err, size_t err_len)
{
	const char *p = v;

	while (*p) {
		size_t n = strcspn(p, ",");
		size_t k;

		if (n == 0 || n >= sizeof(c->clients[0])) {
			set_err(err, err_len, "--client: empty or too long client code in '%s'", v);
			return -1;
		}
		for (k = 0; k < n; k++) {
			char ch = p[k];

			if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			      (ch >= '0' && ch <= '9') || ch == '-' || ch == '_')) {
				set_err(err, err_len, "--client: '%.*s' is not a client code "
				        "(letters, digits, '-', '_')", (int)n, p);
				return -1;
			}
		}
		if (!sim_config_has_client(c, p, n)) {
			if (c->n_clients == SIM_MAX_CLIENTS) {
				set_err(err, err_len, "--client: at most %d client codes",
				        SIM_MAX_CLIENTS);
				return -1;
			}
			memcpy(c->clients[c->n_clients], p, n);
			c->clients[c->n_clients][n] = '\0';
			c->n_clients++;
		}
		p += n;
		if (*p == ',')
			p++;
	}
	return 0;
}

static int read_token_file(const char *path, char *out, size_t out_len, char *err,
                           size_t err_len)
{
	FILE *f = fopen(path, "r");
	size_t n;
	int rc = -1;

	if (!f) {
		set_err(err, err_len, "--token-file: cannot open %s: %s", path, strerror(errno));
		goto out;
	}
	if (!fgets(out, (int)out_len, f)) {
		set_err(err, err_len, "--token-file: %s is empty", path);
		goto out;
	}
	n = strlen(out);
	while (n && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' ' ||
	             out[n - 1] == '\t'))
		out[--n] = '\0';
	if (!n) {
		set_err(err, err_len, "--token-file: %s holds no token", path);
		goto out;
	}
	rc = 0;
out:
	if (f)
		fclose(f);
	return rc;
}

/* Set one option from its text value.  `flag` decorates messages. */
static int set_opt(struct sim_config *c, const struct opt *o, const char *v, const char *flag,
                   char *err, size_t err_len)
{
	char *field = (char *)c + o->off;
	char *end;
	int rc = -1;

	errno = 0;
	switch (o->type) {
	case T_INT: {
		long long x = strtoll(v, &end, 10);

		if (errno || end == v || *end || (double)x < o->min || (double)x > o->max) {
			set_err(err, err_len, "%s: '%s' is not an integer in [%.0f, %.0f]", flag, v,
			        o->min, o->max);
			goto out;
		}
		if ((o->off == OFF(ims_fail) || o->off == OFF(admin_fail)) && x != 0 && x < 400) {
			set_err(err, err_len, "%s: '%s' is not 0 or an HTTP error status (400-599)",
			        flag, v);
			goto out;
		}
		if (o->off == OFF(port) || o->off == OFF(threads))
			*(int *)(void *)field = (int)x;
		else
			*(int64_t *)(void *)field = (int64_t)x;
		break;
	}
	case T_RATE:
	case T_DOUBLE: {
		double x = strtod(v, &end);

		if (errno || end == v || *end || !(x >= o->min && x <= o->max)) {
			set_err(err, err_len, "%s: '%s' is not a number in [%g, %g]", flag, v, o->min,
			        o->max);
			goto out;
		}
		*(double *)(void *)field = x;
		break;
	}
	case T_SEED: {
		unsigned long long x = strtoull(v, &end, 0);

		if (errno || end == v || *end) {
			set_err(err, err_len, "%s: '%s' is not an unsigned integer", flag, v);
			goto out;
		}
		*(uint64_t *)(void *)field = x;
		break;
	}
	case T_BOOL:
		if (parse_bool(v, (int *)(void *)field)) {
			set_err(err, err_len, "%s: '%s' is not a boolean (1/0, on/off, true/false)",
			        flag, v);
			goto out;
		}
		break;
	case T_STR: {
		size_t cap = str_cap(o->off);

		if (strlen(v) >= cap) {
			set_err(err, err_len, "%s: value too long (max %zu bytes)", flag, cap - 1);
			goto out;
		}
		if (o->off == OFF(status_base) && bad_base(v)) {
			set_err(err, err_len, "%s: '%s' is not http://HOST[:PORT] or https://HOST[:PORT]",
			        flag, v);
			goto out;
		}
		strcpy(field, v);
		break;
	}
	case T_FILE:
		if (read_token_file(v, c->token, sizeof(c->token), err, err_len))
			goto out;
		break;
	case T_CLIENTS:
		if (add_client(c, v, err, err_len))
			goto out;
		break;
	case T_CODES: {
		const char *p = v;
		size_t n = 0;
		int codes[SIM_MAX_CODES];

		while (*p) {
			long x = strtol(p, &end, 10);

			if (end == p || x < 400 || x > 599 || (*end && *end != ',') ||
			    n == SIM_MAX_CODES) {
				set_err(err, err_len, "%s: '%s' is not a comma list of at most %d "
				        "HTTP error codes (400-599)", flag, v, SIM_MAX_CODES);
				goto out;
			}
			codes[n++] = (int)x;
			p = *end ? end + 1 : end;
		}
		if (!n) {
			set_err(err, err_len, "%s: needs at least one code", flag);
			goto out;
		}
		memcpy(c->error_codes, codes, sizeof(codes));
		c->n_error_codes = n;
		break;
	}
	}
	rc = 0;
out:
	return rc;
}

int sim_config_parse_args(struct sim_config *c, int argc, char **argv, char *err,
                          size_t err_len)
{
	int i, had_client = 0;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *name, *eq, *v;
		const struct opt *o;
		size_t nlen;
		int negate = 0;

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			sim_config_usage(stdout);
			return 1;
		}
		if (strncmp(a, "--", 2) != 0) {
			set_err(err, err_len, "unexpected argument '%s' (try --help)", a);
			return -1;
		}
		name = a + 2;
		eq = strchr(name, '=');
		nlen = eq ? (size_t)(eq - name) : strlen(name);
		o = find_opt(name, nlen);
		if (!o && nlen > 3 && !strncmp(name, "no-", 3)) {
			o = find_opt(name + 3, nlen - 3);
			if (o && o->type != T_BOOL)
				o = NULL;
			negate = 1;
		}
		if (!o || memchr(name, '_', nlen)) {
			set_err(err, err_len, "unknown flag '--%.*s' (try --help)", (int)nlen, name);
			return -1;
		}
		if (o->type == T_BOOL && !eq) {
			v = negate ? "0" : "1";
		} else if (negate) {
			set_err(err, err_len, "--%.*s takes no value", (int)nlen, name);
			return -1;
		} else if (eq) {
			v = eq + 1;
		} else if (i + 1 < argc) {
			v = argv[++i];
		} else {
			set_err(err, err_len, "--%s needs a value", o->name);
			return -1;
		}
		{
			char flag[80];

			snprintf(flag, sizeof(flag), "--%s", o->name);
			if (o->type == T_CLIENTS && !had_client) {
				c->n_clients = 0;  /* the first --client replaces the default */
				had_client = 1;
			}
			if (set_opt(c, o, v, flag, err, err_len))
				return -1;
		}
	}
	if (!c->n_clients)
		add_client(c, "demo", err, err_len);
	return 0;
}

int sim_config_parse_form(struct sim_config *c, const char *body, size_t len, char *err,
                          size_t err_len)
{
	struct sim_params ps;
	struct sim_config tmp = *c;
	size_t i;
	int rc = -1;

	if (sim_params_parse(&ps, body, len, 256)) {
		set_err(err, err_len, "out of memory");
		goto out;
	}
	for (i = 0; i < ps.count; i++) {
		const struct sim_param *p = &ps.items[i];
		const struct opt *o = find_opt(p->name, p->name_len);

		if (!o || !o->runtime || memchr(p->name, '\0', p->name_len) ||
		    memchr(p->value, '\0', p->value_len)) {
			set_err(err, err_len, "'%.*s' is not a run-time setting", (int)p->name_len,
			        p->name);
			goto out;
		}
		if (set_opt(&tmp, o, p->value, o->name, err, err_len))
			goto out;
	}
	*c = tmp;
	rc = 0;
out:
	sim_params_free(&ps);
	return rc;
}

/* ---- publication ---------------------------------------------------- */

static _Atomic(struct sim_config *) current;
static pthread_mutex_t retired_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sim_config **retired;
static size_t n_retired;

int sim_config_publish(const struct sim_config *c)
{
	struct sim_config *nc = malloc(sizeof(*nc)), *old;
	struct sim_config **r;
	int rc = -1;

	if (!nc)
		return -1;
	*nc = *c;
	nc->published_ms = sim_clock_elapsed_ms();
	pthread_mutex_lock(&retired_lock);
	r = realloc(retired, (n_retired + 1) * sizeof(*r));
	if (!r) {
		free(nc);
		goto out;
	}
	retired = r;
	old = atomic_exchange(&current, nc);
	if (old)
		retired[n_retired++] = old;
	rc = 0;
out:
	pthread_mutex_unlock(&retired_lock);
	return rc;
}

const struct sim_config *sim_config_current(void)
{
	return atomic_load_explicit(&current, memory_order_acquire);
}

void sim_config_shutdown(void)
{
	size_t i;

	for (i = 0; i < n_retired; i++)
		free(retired[i]);
	free(retired);
	retired = NULL;
	n_retired = 0;
	free(atomic_exchange(&current, NULL));
}

int sim_config_has_client(const struct sim_config *c, const char *client, size_t len)
{
	size_t i;

	for (i = 0; i < c->n_clients; i++)
		if (strlen(c->clients[i]) == len && memcmp(c->clients[i], client, len) == 0)
			return 1;
	return 0;
}

int sim_config_json(const struct sim_config *c, struct sim_buf *out)
{
	size_t i;

	sim_buf_addc(out, '{');
	for (i = 0; i < N_OPTS; i++) {
		const struct opt *o = &opts[i];
		const char *field = (const char *)c + o->off;
		size_t k;

		if (!o->runtime)
			continue;
		if (out->len > 1)
			sim_buf_addc(out, ',');
		sim_buf_addc(out, '"');
		for (k = 0; o->name[k]; k++)
			sim_buf_addc(out, o->name[k] == '-' ? '_' : o->name[k]);
		sim_buf_adds(out, "\":");
		switch (o->type) {
		case T_INT:
			sim_buf_printf(out, "%lld", (long long)*(const int64_t *)(const void *)field);
			break;
		case T_RATE:
		case T_DOUBLE:
			sim_buf_printf(out, "%g", *(const double *)(const void *)field);
			break;
		case T_BOOL:
			sim_buf_adds(out, *(const int *)(const void *)field ? "true" : "false");
			break;
		case T_STR: /* never show a secret; the status base is checked (bad_base) */
			if (str_secret(o->off))
				sim_buf_adds(out, *field ? "\"(set)\"" : "\"\"");
			else
				sim_buf_add_json(out, field, strlen(field));
			break;
		case T_CODES:
			sim_buf_addc(out, '[');
			for (k = 0; k < c->n_error_codes; k++)
				sim_buf_printf(out, "%s%d", k ? "," : "", c->error_codes[k]);
			sim_buf_addc(out, ']');
			break;
		default:
			sim_buf_adds(out, "null");
		}
	}
	return sim_buf_addc(out, '}');
}

void sim_config_usage(FILE *f)
{
	size_t i;

	fprintf(f, "usage: pobox-target-sim [--port N] [--client CODE] [flags]\n"
	           "A local stand-in for Adobe Target's profile APIs (see tools/sim/README.md).\n"
	           "Prints 'listening on 127.0.0.1:PORT' when ready; SIGTERM/SIGINT stop it.\n\n");
	for (i = 0; i < N_OPTS; i++) {
		const struct opt *o = &opts[i];
		const char *arg = o->type == T_BOOL ? "" : o->type == T_RATE ? " R" :
		                  o->type == T_STR || o->type == T_FILE ? " S" :
		                  o->type == T_CODES ? " LIST" : o->type == T_CLIENTS ? " CODE" : " N";
		char left[64];

		snprintf(left, sizeof(left), "--%s%s", o->name, arg);
		fprintf(f, "  %-26s %s%s\n", left, o->help, o->runtime ? " [run-time]" : "");
	}
}
