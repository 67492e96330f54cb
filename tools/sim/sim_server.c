/*
 * sim_server -- libmicrohttpd glue and the answers of every endpoint (see
 * sim_server.h).
 *
 * Life of a request (one struct req, created at the first call of the
 * handler from the raw request target that the URI-log callback copied, so
 * we see the query string before MHD decodes it; freed by the completion
 * callback, which also counts the call):
 *
 *   first call      begin():  route; for Target endpoints decide faults,
 *                             check auth, client code and the bulk limit;
 *                             pick where the body goes (batch parser,
 *                             small buffer, or nowhere)
 *   body calls      intake(): feed the body, bounded
 *   last call       finish(): build the answer (apply the update, submit
 *                             the batch...), mangle it if a fault says so
 *                   then, if a latency fault applies, suspend and let
 *                   sim_delay resume us; otherwise queue
 *   after resume    queue the prepared answer (or close: drop fault)
 *
 * Faults and auth never apply to /_sim/ (tests must always be able to see
 * and steer the simulator).  The body of a refused request is still read
 * (and thrown away) so the connection stays usable for keep-alive.
 */
#include "sim_server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "sim_auth.h"
#include "sim_batch_parse.h"
#include "sim_batches.h"
#include "sim_buf.h"
#include "sim_calllog.h"
#include "sim_clock.h"
#include "sim_counters.h"
#include "sim_delay.h"
#include "sim_faults.h"
#include "sim_fetchlog.h"
#include "sim_limits.h"
#include "sim_preload.h"
#include "sim_rng.h"
#include "sim_store.h"
#include "sim_url.h"

#define CT_XML "application/xml;charset=UTF-8"
#define CT_JSON "application/json;charset=UTF-8"
#define CT_TEXT "text/plain;charset=UTF-8"
#define CT_HTML "text/html;charset=UTF-8"
#define MAX_CONTROL_BODY (64 * 1024)
#define MAX_PARAMS 4096

enum route {
	R_UNKNOWN,
	R_BATCH_UPDATE,
	R_BATCH_STATUS,
	R_SINGLE,
	R_FETCH,
	R_CONTROL,
	R_IMS,          /* POST /ims/token/v3 */
	R_ADMIN_TOKEN,  /* /{tenant}/target/authentication/token */
};

/* Why begin() already knows the answer (checked in this order). */
enum verdict {
	V_GO,
	V_OUTAGE,
	V_DROP,
	V_FAULT_ERROR,
	V_FAULT_429,
	V_UNAUTHORIZED,
	V_EXPIRED,      /* an Admin API profile token past its expiry: 401 */
	V_FORBIDDEN,
	V_BAD_METHOD,
	V_BAD_CLIENT,
	V_RATE_LIMITED,
};

struct req {
	char *uri;               /* raw request target */
	size_t uri_len;
	size_t path_len;         /* bytes of uri before '?' */
	const char *query;       /* after '?', or "" */
	size_t query_len;
	int is_post;
	int is_get;
	enum route route;
	enum sim_endpoint ep;
	enum sim_outcome outcome;
	enum verdict verdict;
	int version;             /* batch API version */
	char client[64];         /* client code; the tenant for R_ADMIN_TOKEN */
	int64_t arrival_real_ms, arrival_sim_ms;
	char path_id[1024];      /* fetch: decoded id from the path */
	size_t path_id_len;
	enum sim_id_type path_id_type;
	const char *control;     /* control: path after "/_sim/" */
	const struct sim_config *cfg;
	struct sim_fault fault;
	int64_t next_ms;         /* rate limited: when the next call is admitted */
	size_t body_bytes;
	int body_overflow;       /* small body exceeded its buffer */
	struct sim_buf body;     /* small bodies (single update, control) */
	struct sim_batch_parse *parse;  /* batchUpdate bodies */
	struct MHD_Response *resp;
	unsigned status;
	int drop;                /* close instead of answering */
	int delayed;
	int reset_fd;            /* reset fault: socket to abort */
};

static struct MHD_Daemon *daemon4, *daemon6;
static int listen_port;
static struct sim_config startup_cfg;
static struct sim_window bulk_window, single_window;
static pthread_mutex_t plan_lock = PTHREAD_MUTEX_INITIALIZER;

/* ---- small helpers -------------------------------------------------- */

static const char *header(struct MHD_Connection *c, const char *name)
{
	return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

/* The XML error/refusal body shared by the Target endpoints. */
static void xml_message(struct sim_buf *b, int success, const char *extra_elem,
                        const char *msg, size_t msg_len)
{
	sim_buf_printf(b, "<response><success>%s</success>%s<message>",
	               success ? "true" : "false", extra_elem ? extra_elem : "");
	sim_buf_add_xml(b, msg, msg_len);
	sim_buf_adds(b, "</message></response>");
}

struct reset_body {
	char *data;
	size_t len;
};

static ssize_t reset_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct reset_body *rb = cls;
	size_t half = rb->len / 2, n;

	if (pos >= half)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	n = half - (size_t)pos < max ? half - (size_t)pos : max;
	memcpy(buf, rb->data + pos, n);
	return (ssize_t)n;
}

static void reset_free(void *cls)
{
	struct reset_body *rb = cls;

	free(rb->data);
	free(rb);
}

/*
 * Prepare the answer: takes the bytes of b.  Target answers pass through
 * the reset and malformed faults decided for this request.
 */
static void answer(struct req *r, unsigned status, const char *ctype, struct sim_buf *b,
                   enum sim_outcome outcome)
{
	size_t len = 0;
	char *data = sim_buf_steal(b, &len);

	r->outcome = outcome;
	if (!data) {
		static const char oom[] = "out of memory";

		status = MHD_HTTP_INTERNAL_SERVER_ERROR;
		ctype = CT_TEXT;
		data = strdup(oom);
		len = data ? strlen(data) : 0;
		r->outcome = SIM_OUT_REFUSED;
	}
	if (r->route != R_CONTROL && data && r->fault.reset && len >= 2) {
		struct reset_body *rb = malloc(sizeof(*rb));

		if (rb) {
			rb->data = data;
			rb->len = len;
			r->resp = MHD_create_response_from_callback(len, 4096, reset_reader, rb,
			                                            reset_free);
			if (r->resp) {
				r->outcome = SIM_OUT_FAULT_RESET;
				r->reset_fd = 1;
				goto headers;
			}
			free(rb);
		}
	}
	if (r->route != R_CONTROL && data && r->fault.malformed) {
		sim_faults_mangle(&r->fault, data, &len);
		r->outcome = SIM_OUT_FAULT_MALFORMED;
	}
	r->resp = MHD_create_response_from_buffer(len, data ? data : (char *)"",
	                                          data ? MHD_RESPMEM_MUST_FREE
	                                               : MHD_RESPMEM_PERSISTENT);
	if (!r->resp) {
		free(data);
		r->drop = 1;
		return;
	}
headers:
	r->status = status;
	MHD_add_response_header(r->resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
}

static void add_retry_after(struct req *r, int64_t seconds)
{
	char v[32];

	if (!r->resp)
		return;
	snprintf(v, sizeof(v), "%lld", (long long)seconds);
	MHD_add_response_header(r->resp, MHD_HTTP_HEADER_RETRY_AFTER, v);
}

static void answer_xml(struct req *r, unsigned status, int success, const char *extra,
                       const char *msg, enum sim_outcome outcome)
{
	struct sim_buf b;

	sim_buf_init(&b, 0);
	xml_message(&b, success, extra, msg, strlen(msg));
	answer(r, status, CT_XML, &b, outcome);
}

static void answer_json_text(struct req *r, unsigned status, const char *json,
                             enum sim_outcome outcome)
{
	struct sim_buf b;

	sim_buf_init(&b, 0);
	sim_buf_adds(&b, json);
	answer(r, status, CT_JSON, &b, outcome);
}

static void answer_json_error(struct req *r, unsigned status, const char *msg)
{
	struct sim_buf b;

	sim_buf_init(&b, 0);
	sim_buf_adds(&b, "{\"error\":");
	sim_buf_add_json(&b, msg, strlen(msg));
	sim_buf_adds(&b, "}");
	answer(r, status, CT_JSON, &b, SIM_OUT_REFUSED);
}

/* ---- routing -------------------------------------------------------- */

/* Copy and validate the client segment at s (len bytes). */
static void take_client(struct req *r, const char *s, size_t len)
{
	size_t n = len < sizeof(r->client) - 1 ? len : sizeof(r->client) - 1;

	n = sim_url_decode(r->client, s, n, 0);
	r->client[n] = '\0';
}

static void route(struct req *r, const char *method)
{
	const char *p = r->uri;
	size_t n = r->path_len;

	r->is_post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
	r->is_get = strcmp(method, MHD_HTTP_METHOD_GET) == 0;
	r->route = R_UNKNOWN;
	r->ep = SIM_EP_UNKNOWN;
	if (n >= 6 && memcmp(p, "/_sim/", 6) == 0) {
		r->route = R_CONTROL;
		r->ep = SIM_EP_CONTROL;
		return;
	}
	if (n > 4 && memcmp(p, "/m2/", 4) == 0) {
		const char *c = p + 4, *slash = memchr(c, '/', n - 4);
		const char *rest;
		size_t rest_len;

		if (!slash || slash == c)
			return;
		take_client(r, c, (size_t)(slash - c));
		rest = slash;
		rest_len = n - (size_t)(rest - p);
#define REST_IS(s) (rest_len == strlen(s) && memcmp(rest, s, rest_len) == 0)
		if (REST_IS("/profile/batchUpdate")) {
			r->route = R_BATCH_UPDATE;
			r->version = 1;
			r->ep = SIM_EP_BATCH_V1;
		} else if (REST_IS("/v2/profile/batchUpdate")) {
			r->route = R_BATCH_UPDATE;
			r->version = 2;
			r->ep = SIM_EP_BATCH_V2;
		} else if (REST_IS("/profile/batchStatus") || REST_IS("/v2/profile/batchStatus")) {
			r->route = R_BATCH_STATUS;
			r->ep = SIM_EP_BATCH_STATUS;
		} else if (REST_IS("/profile/update")) {
			r->route = R_SINGLE;
			r->ep = SIM_EP_SINGLE;
		}
#undef REST_IS
		return;
	}
	if (n == 13 && memcmp(p, "/ims/token/v3", 13) == 0) {
		r->route = R_IMS;
		r->ep = SIM_EP_IMS_TOKEN;
		return;
	}
	{
		static const char tail[] = "/target/authentication/token";
		size_t tl = sizeof(tail) - 1;

		if (n > tl + 1 && p[0] == '/' && memcmp(p + n - tl, tail, tl) == 0 &&
		    !memchr(p + 1, '/', n - tl - 1)) {
			take_client(r, p + 1, n - tl - 1);
			r->route = R_ADMIN_TOKEN;
			r->ep = SIM_EP_ADMIN_TOKEN;
			return;
		}
	}
	if (n > 18 && memcmp(p, "/rest/v1/profiles/", 18) == 0) {
		const char *id = p + 18;
		size_t id_len = n - 18;

		r->path_id_type = SIM_ID_PCID;
		if (id_len > 13 && memcmp(id, "thirdPartyId/", 13) == 0) {
			id += 13;
			id_len -= 13;
			r->path_id_type = SIM_ID_THIRDPARTY;
		}
		if (!id_len || memchr(id, '/', id_len) || id_len >= sizeof(r->path_id))
			return;
		r->path_id_len = sim_url_decode(r->path_id, id, id_len, 0);
		r->route = R_FETCH;
		r->ep = SIM_EP_FETCH;
	}
}

/* V_GO: authorised (or auth off), else V_UNAUTHORIZED / V_EXPIRED /
 * V_FORBIDDEN.  Auth is on with --token or --require-auth; the static
 * token and the Admin API's current profile token are accepted. */
static enum verdict check_auth(struct req *r, struct MHD_Connection *c)
{
	const char *h;

	if (!r->cfg->token[0] && !r->cfg->require_auth)
		return V_GO;
	h = header(c, MHD_HTTP_HEADER_AUTHORIZATION);
	if (!h || strncasecmp(h, "Bearer ", 7) != 0)
		return V_UNAUTHORIZED;
	h += 7;
	while (*h == ' ')
		h++;
	if (r->cfg->token[0] && strcmp(h, r->cfg->token) == 0)
		return V_GO;
	switch (sim_auth_profile_check(h, strlen(h), sim_clock_now_ms())) {
	case SIM_TOKEN_VALID:
		return V_GO;
	case SIM_TOKEN_EXPIRED:
		return V_EXPIRED;
	default:
		return V_FORBIDDEN;
	}
}

static void begin(struct req *r, struct MHD_Connection *c, const char *method)
{
	int is_get = strcmp(method, MHD_HTTP_METHOD_GET) == 0;

	route(r, method);
	r->cfg = sim_config_current();
	r->verdict = V_GO;
	r->arrival_real_ms = sim_clock_real_elapsed_ms();
	r->arrival_sim_ms = sim_clock_now_ms();
	if (r->route == R_CONTROL) {
		sim_buf_init(&r->body, MAX_CONTROL_BODY);
		r->control = r->uri + 6;
		return;
	}
	/* Every Target-facing request (even to an unknown path) meets the
	 * fault plan, as it would meet a real network. */
	sim_faults_decide(r->cfg, &r->fault);
	if (r->fault.outage)
		r->verdict = r->cfg->outage_drop ? V_DROP : V_OUTAGE;
	else if (r->fault.drop)
		r->verdict = V_DROP;
	else if (r->fault.error_code)
		r->verdict = V_FAULT_ERROR;
	else if (r->fault.too_many)
		r->verdict = V_FAULT_429;
	if (r->verdict != V_GO || r->route == R_UNKNOWN)
		return;
	if (r->route == R_IMS) {
		sim_buf_init(&r->body, MAX_CONTROL_BODY);
		return;
	}
	if (r->route == R_ADMIN_TOKEN) {
		/* Bulk, Admin and Reporting calls share the per-minute limit. */
		if (!sim_window_take(&bulk_window, sim_clock_now_ms(), &r->next_ms))
			r->verdict = V_RATE_LIMITED;
		return;
	}
	r->verdict = check_auth(r, c);
	if (r->verdict != V_GO)
		return;
	switch (r->route) {
	case R_BATCH_UPDATE:
		if (!r->is_post)
			r->verdict = V_BAD_METHOD;
		break;
	case R_BATCH_STATUS:
	case R_FETCH:
		if (!is_get)
			r->verdict = V_BAD_METHOD;
		break;
	case R_SINGLE:
		if (!is_get && !r->is_post)
			r->verdict = V_BAD_METHOD;
		break;
	default:
		break;
	}
	if (r->verdict != V_GO)
		return;
	if ((r->route == R_BATCH_UPDATE || r->route == R_BATCH_STATUS || r->route == R_SINGLE) &&
	    !sim_config_has_client(r->cfg, r->client, strlen(r->client))) {
		r->verdict = V_BAD_CLIENT;
		return;
	}
	if (r->route == R_BATCH_UPDATE || r->route == R_BATCH_STATUS) {
		int64_t now = sim_clock_now_ms();
		int ok = sim_window_take(&bulk_window, now, &r->next_ms);

		sim_calllog_add(now, "bulk", ok);
		if (!ok) {
			r->verdict = V_RATE_LIMITED;
			return;
		}
	}
	if (r->route == R_BATCH_UPDATE) {
		const char *cl = header(c, MHD_HTTP_HEADER_CONTENT_LENGTH);
		size_t hint = cl ? (size_t)strtoull(cl, NULL, 10) : 0;
		size_t max = (size_t)r->cfg->max_batch_bytes;

		r->parse = malloc(sizeof(*r->parse));
		if (r->parse)
			sim_batch_parse_init(r->parse, max, (size_t)r->cfg->max_batch_rows,
			                     hint < max ? hint : 0);
	} else if (r->route == R_SINGLE && r->is_post) {
		sim_buf_init(&r->body, (size_t)r->cfg->max_post_bytes + 1);
	}
}

static void intake(struct req *r, const char *data, size_t n)
{
	r->body_bytes += n;
	if (r->verdict != V_GO)
		return;  /* the answer is already decided: discard */
	if (r->parse) {
		sim_batch_parse_feed(r->parse, data, n);
	} else if (r->route == R_CONTROL || r->route == R_IMS || (r->route == R_SINGLE && r->is_post)) {
		if (!r->body_overflow && sim_buf_add(&r->body, data, n))
			r->body_overflow = 1;
	}
}

/* ---- Target endpoints ----------------------------------------------- */

static void finish_batch_update(struct req *r, struct MHD_Connection *c)
{
	char id[160], elem[1024];
	const char *host = header(c, MHD_HTTP_HEADER_HOST);
	const char *other;

	if (!r->parse) {
		answer_xml(r, MHD_HTTP_INTERNAL_SERVER_ERROR, 0, "<batchStatus></batchStatus>",
		           "out of memory", SIM_OUT_REFUSED);
		return;
	}
	if (sim_batch_parse_finish(r->parse)) {
		answer_xml(r, MHD_HTTP_BAD_REQUEST, 0, "<batchStatus></batchStatus>",
		           r->parse->message, SIM_OUT_REFUSED);
		return;
	}
	if (sim_batches_submit(r->parse, r->client, r->version, r->cfg, id, sizeof(id))) {
		answer_xml(r, MHD_HTTP_INTERNAL_SERVER_ERROR, 0, "<batchStatus></batchStatus>",
		           "out of memory", SIM_OUT_REFUSED);
		return;
	}
	/* The status URL names another host than the one called, like
	 * Target's mboxedgeNN nodes: a client must follow it, not rebuild. */
	other = host && strncasecmp(host, "localhost", 9) == 0 ? "127.0.0.1" : "localhost";
	if (r->cfg->status_base[0]) /* --status-base: somewhere else entirely */
		snprintf(elem, sizeof(elem),
		         "<batchStatus>%s/m2/%s/profile/batchStatus?batchId=%s</batchStatus>",
		         r->cfg->status_base, r->client, id);
	else
		snprintf(elem, sizeof(elem),
		         "<batchStatus>http://%s:%d/m2/%s/profile/batchStatus?batchId=%s</batchStatus>",
		         other, listen_port, r->client, id);
	answer_xml(r, MHD_HTTP_OK, 1, elem, "Batch submitted for processing", SIM_OUT_OK);
}

static void finish_batch_status(struct req *r)
{
	struct sim_params ps;
	const struct sim_param *id, *details;
	struct sim_buf b;
	int found;

	sim_buf_init(&b, 0);
	if (sim_params_parse(&ps, r->query, r->query_len, MAX_PARAMS)) {
		answer_xml(r, MHD_HTTP_INTERNAL_SERVER_ERROR, 0, NULL, "out of memory",
		           SIM_OUT_REFUSED);
		return;
	}
	id = sim_params_get(&ps, "batchId");
	details = sim_params_get(&ps, "showDetails");
	if (!id || !id->value_len) {
		answer_xml(r, MHD_HTTP_BAD_REQUEST, 0, NULL, "missing batchId", SIM_OUT_REFUSED);
		goto out;
	}
	found = sim_batches_status_xml(id->value, id->value_len,
	                               details && details->value_len == 4 &&
	                                   !memcmp(details->value, "true", 4),
	                               &b);
	if (found > 0) {
		answer(r, MHD_HTTP_OK, CT_XML, &b, SIM_OUT_OK);
	} else if (found == 0) {
		sim_buf_clear(&b);
		sim_buf_adds(&b, "batch not found: ");
		sim_buf_add(&b, id->value, id->value_len);
		{
			struct sim_buf x;

			sim_buf_init(&x, 0);
			xml_message(&x, 0, NULL, b.data, b.len);
			answer(r, MHD_HTTP_NOT_FOUND, CT_XML, &x, SIM_OUT_NOT_FOUND);
		}
	} else {
		answer_xml(r, MHD_HTTP_INTERNAL_SERVER_ERROR, 0, NULL, "out of memory",
		           SIM_OUT_REFUSED);
	}
out:
	sim_buf_free(&b);
	sim_params_free(&ps);
}

static const char pcid_elem[] = "<pcId></pcId>";

static void collect_profile_params(const struct sim_params *ps, struct sim_kv *kv, size_t *n,
                                   size_t max)
{
	size_t i;

	for (i = 0; i < ps->count && *n < max; i++) {
		const struct sim_param *p = &ps->items[i];
		uint32_t id;

		/* Empty values are ignored, never clearing anything. */
		if (p->name_len <= 8 || memcmp(p->name, "profile.", 8) != 0 || !p->value_len)
			continue;
		id = sim_store_intern(p->name + 8, p->name_len - 8);
		if (id == SIM_NAME_NONE)
			continue;
		kv[*n].name_id = id;
		kv[*n].value = p->value;
		kv[*n].value_len = p->value_len;
		(*n)++;
	}
}

static void finish_single(struct req *r)
{
	struct sim_params q, b;
	const struct sim_param *tp, *pc;
	struct sim_kv *kv = NULL;
	struct sim_apply_result res;
	size_t n = 0, max;
	char msg[256];
	int64_t now = sim_clock_now_ms(), next_ms = 0;
	int taken;
	enum sim_id_type type;
	const char *id;
	size_t id_len;

	memset(&b, 0, sizeof(b));
	if (sim_params_parse(&q, r->query, r->query_len, MAX_PARAMS)) {
		answer_xml(r, 500, 0, pcid_elem, "out of memory", SIM_OUT_REFUSED);
		return;
	}
	/* Size limits first: they are about the request, not its content. */
	if (!r->is_post && r->uri_len > (size_t)r->cfg->max_get_bytes) {
		snprintf(msg, sizeof(msg), "request too large: a GET may be at most %lld bytes",
		         (long long)r->cfg->max_get_bytes);
		answer_xml(r, MHD_HTTP_URI_TOO_LONG, 0, pcid_elem, msg, SIM_OUT_REFUSED);
		goto out;
	}
	if (r->is_post && (r->body_overflow ||
	                   r->uri_len + r->body_bytes > (size_t)r->cfg->max_post_bytes)) {
		snprintf(msg, sizeof(msg), "request too large: a POST may be at most %lld bytes",
		         (long long)r->cfg->max_post_bytes);
		answer_xml(r, MHD_HTTP_CONTENT_TOO_LARGE, 0, pcid_elem, msg, SIM_OUT_REFUSED);
		goto out;
	}
	if (r->is_post && sim_params_parse(&b, r->body.data ? r->body.data : "", r->body.len,
	                                   MAX_PARAMS)) {
		answer_xml(r, 500, 0, pcid_elem, "out of memory", SIM_OUT_REFUSED);
		goto out;
	}
	tp = sim_params_get(&q, "mbox3rdPartyId");
	if (!tp)
		tp = sim_params_get(&b, "mbox3rdPartyId");
	pc = sim_params_get(&q, "mboxPC");
	if (!pc)
		pc = sim_params_get(&b, "mboxPC");
	if (tp && tp->value_len) {
		type = SIM_ID_THIRDPARTY;
		id = tp->value;
		id_len = tp->value_len;
		if (memchr(id, '+', id_len) || memchr(id, '/', id_len) || id_len > 256) {
			answer_xml(r, MHD_HTTP_BAD_REQUEST, 0, pcid_elem,
			           "invalid mbox3rdPartyId: '+' and '/' are not allowed, "
			           "at most 256 characters", SIM_OUT_REFUSED);
			goto out;
		}
	} else if (pc && pc->value_len) {
		type = SIM_ID_PCID;
		id = pc->value;
		id_len = pc->value_len;
	} else {
		answer_xml(r, MHD_HTTP_BAD_REQUEST, 0, pcid_elem,
		           "missing mbox3rdPartyId or mboxPC", SIM_OUT_REFUSED);
		goto out;
	}
	/* Every accepted call spends one unit of the rolling 24 h budget,
	 * whether or not the profile exists. */
	taken = sim_window_take(&single_window, now, &next_ms);
	sim_calllog_add(now, "single", taken);
	if (!taken) {
		char ts[40], per[48];

		sim_clock_iso(next_ms, ts, sizeof(ts));
		if (startup_cfg.single_window_s == 86400)
			snprintf(per, sizeof(per), "24 hours");
		else
			snprintf(per, sizeof(per), "%lld seconds", (long long)startup_cfg.single_window_s);
		snprintf(msg, sizeof(msg),
		         "Limit of %lld profile update calls per %s reached; "
		         "next call allowed at %s", (long long)r->cfg->single_budget, per, ts);
		answer_xml(r, MHD_HTTP_TOO_MANY_REQUESTS, 0, pcid_elem, msg, SIM_OUT_BUDGET);
		add_retry_after(r, sim_clock_real_wait_s(next_ms - now));
		goto out;
	}
	max = q.count + b.count;
	kv = calloc(max ? max : 1, sizeof(*kv));
	if (!kv) {
		answer_xml(r, 500, 0, pcid_elem, "out of memory", SIM_OUT_REFUSED);
		goto out;
	}
	collect_profile_params(&q, kv, &n, max);
	collect_profile_params(&b, kv, &n, max);
	if (sim_store_apply(type, id, id_len, kv, n, SIM_APPLY_SINGLE, 0, 0, now, &res)) {
		answer_xml(r, 500, 0, pcid_elem, "out of memory", SIM_OUT_REFUSED);
		goto out;
	}
	if (!res.found) {
		/* Target never creates a profile here.  Silent mode is the
		 * worst case a client may meet: success, and nothing kept. */
		if (r->cfg->notfound_silent) {
			sim_counters_add(SIM_ST_SINGLE_DROPPED_SILENT, 1);
			answer_xml(r, MHD_HTTP_OK, 1, pcid_elem, "Request successfully submitted",
			           SIM_OUT_OK);
		} else {
			answer_xml(r, MHD_HTTP_OK, 0, pcid_elem, "Profile not found",
			           SIM_OUT_NOT_FOUND);
		}
		goto out;
	}
	sim_counters_add(SIM_ST_SINGLE_APPLIED, 1);
	answer_xml(r, MHD_HTTP_OK, 1, pcid_elem, "Request successfully submitted", SIM_OUT_OK);
out:
	free(kv);
	sim_params_free(&q);
	sim_params_free(&b);
}

static void finish_fetch(struct req *r)
{
	struct sim_params q;
	const struct sim_param *client;
	struct sim_buf b;
	char cl[64];
	int found;

	sim_buf_init(&b, 0);
	if (sim_params_parse(&q, r->query, r->query_len, MAX_PARAMS)) {
		answer_json_text(r, 500, "{\"status\":500,\"message\":\"out of memory\"}",
		                 SIM_OUT_REFUSED);
		return;
	}
	client = sim_params_get(&q, "client");
	if (!client || !sim_config_has_client(r->cfg, client->value, client->value_len) ||
	    client->value_len >= sizeof(cl)) {
		sim_buf_printf(&b, "{\"status\":400,\"message\":");
		sim_buf_add_json(&b, client ? "unknown client code" : "missing client parameter",
		                 strlen(client ? "unknown client code" : "missing client parameter"));
		sim_buf_adds(&b, "}");
		answer(r, MHD_HTTP_BAD_REQUEST, CT_JSON, &b, SIM_OUT_REFUSED);
		goto out;
	}
	memcpy(cl, client->value, client->value_len);
	cl[client->value_len] = '\0';
	sim_batches_process_due();
	found = sim_store_fetch_json(r->path_id_type, r->path_id, r->path_id_len, cl, &b);
	if (found > 0) {
		answer(r, MHD_HTTP_OK, CT_JSON, &b, SIM_OUT_OK);
	} else if (found == 0) {
		struct sim_buf m;

		sim_buf_init(&m, 0);
		sim_buf_printf(&m, "No profile found for client %s with %s", cl,
		               r->path_id_type == SIM_ID_THIRDPARTY ? "third party id=" : "mboxPC=");
		sim_buf_add(&m, r->path_id, r->path_id_len);
		sim_buf_clear(&b);
		sim_buf_adds(&b, "{\"status\" : 404, \"message\" : ");
		sim_buf_add_json(&b, m.data, m.len);
		sim_buf_adds(&b, "}");
		sim_buf_free(&m);
		answer(r, MHD_HTTP_NOT_FOUND, CT_JSON, &b, SIM_OUT_NOT_FOUND);
	} else {
		answer_json_text(r, 500, "{\"status\":500,\"message\":\"out of memory\"}",
		                 SIM_OUT_REFUSED);
	}
out:
	sim_buf_free(&b);
	sim_params_free(&q);
}

/* The IMS and Admin API token endpoints: sim_auth decides, we send. */
static void finish_auth(struct req *r, struct MHD_Connection *c)
{
	struct sim_auth_answer a;

	if (r->route == R_IMS && r->body_overflow) {
		answer_json_text(r, MHD_HTTP_CONTENT_TOO_LARGE,
		                 "{\"error\":\"invalid_request\",\"error_description\":\"body too large\"}",
		                 SIM_OUT_REFUSED);
		return;
	}
	if (r->route == R_IMS) {
		sim_auth_ims_request(r->cfg, r->is_post, r->query, r->query_len,
		                     r->body.data ? r->body.data : "", r->body.len, &a);
	} else {
		struct sim_admin_headers h = {
			header(c, MHD_HTTP_HEADER_AUTHORIZATION),
			header(c, "X-Api-Key"),
			header(c, MHD_HTTP_HEADER_ACCEPT),
		};
		int m = r->is_post ? 1 : r->is_get ? 0 : -1;

		sim_auth_admin_request(r->cfg, m, r->client, strlen(r->client), r->query,
		                       r->query_len, &h, &a);
	}
	answer(r, a.status, a.ctype, &a.body, a.outcome);
	if (a.www_auth && r->resp)
		MHD_add_response_header(r->resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, a.www_auth);
}

/* ---- control endpoints ---------------------------------------------- */

static void apply_limits(const struct sim_config *c)
{
	sim_window_set_limit(&bulk_window, (size_t)c->bulk_per_minute);
	sim_window_set_limit(&single_window, (size_t)c->single_budget);
}

static void control_faults(struct req *r)
{
	struct sim_config next;
	struct sim_buf b;
	char err[256];

	pthread_mutex_lock(&plan_lock);
	next = *sim_config_current();
	if (r->is_post) {
		if (r->body_overflow ||
		    sim_config_parse_form(&next, r->body.data ? r->body.data : "", r->body.len, err,
		                          sizeof(err)) ||
		    (r->query_len && sim_config_parse_form(&next, r->query, r->query_len, err,
		                                           sizeof(err)))) {
			pthread_mutex_unlock(&plan_lock);
			answer_json_error(r, MHD_HTTP_BAD_REQUEST,
			                  r->body_overflow ? "body too large" : err);
			return;
		}
		if (sim_config_publish(&next)) {
			pthread_mutex_unlock(&plan_lock);
			answer_json_error(r, 500, "out of memory");
			return;
		}
		apply_limits(&next);
	}
	pthread_mutex_unlock(&plan_lock);
	sim_buf_init(&b, 0);
	sim_config_json(sim_config_current(), &b);
	answer(r, MHD_HTTP_OK, CT_JSON, &b, SIM_OUT_OK);
}

static void control_visit(struct req *r)
{
	struct sim_params q;
	const struct sim_param *tp, *pc;
	int rc;

	if (sim_params_parse(&q, r->query, r->query_len, MAX_PARAMS)) {
		answer_json_error(r, 500, "out of memory");
		return;
	}
	tp = sim_params_get(&q, "thirdPartyId");
	pc = sim_params_get(&q, "pcId");
	if ((!tp || !tp->value_len) && (!pc || !pc->value_len)) {
		answer_json_error(r, MHD_HTTP_BAD_REQUEST, "need thirdPartyId=ID or pcId=ID");
		goto out;
	}
	if (tp && tp->value_len)
		rc = sim_store_visit(SIM_ID_THIRDPARTY, tp->value, tp->value_len,
		                     sim_clock_now_ms());
	else
		rc = sim_store_visit(SIM_ID_PCID, pc->value, pc->value_len, sim_clock_now_ms());
	if (rc) {
		answer_json_error(r, 500, "out of memory");
		goto out;
	}
	sim_counters_add(SIM_ST_VISITS, 1);
	answer_json_text(r, MHD_HTTP_OK, "{\"ok\":true}", SIM_OUT_OK);
out:
	sim_params_free(&q);
}

/* POST /_sim/set?thirdPartyId=ID&profile.a=v...: another writer (a page,
 * another tool) changes values behind the client's back.  Like a page
 * visit it merges a pending v2 overlay and creates a missing profile; the
 * values are committed with modifiedAt = now.  No budget, no faults. */
static void control_set(struct req *r)
{
	struct sim_params q;
	const struct sim_param *tp, *pc, *id;
	struct sim_kv *kv = NULL;
	struct sim_apply_result res;
	enum sim_id_type type;
	int64_t now = sim_clock_now_ms();
	size_t n = 0;

	if (sim_params_parse(&q, r->query, r->query_len, MAX_PARAMS)) {
		answer_json_error(r, 500, "out of memory");
		return;
	}
	tp = sim_params_get(&q, "thirdPartyId");
	pc = sim_params_get(&q, "pcId");
	id = tp && tp->value_len ? tp : pc;
	type = id == tp ? SIM_ID_THIRDPARTY : SIM_ID_PCID;
	if (!id || !id->value_len) {
		answer_json_error(r, MHD_HTTP_BAD_REQUEST,
		                  "need thirdPartyId=ID or pcId=ID and profile.NAME=VALUE");
		goto out;
	}
	kv = calloc(q.count ? q.count : 1, sizeof(*kv));
	if (!kv) {
		answer_json_error(r, 500, "out of memory");
		goto out;
	}
	collect_profile_params(&q, kv, &n, q.count);
	if (!n) {
		answer_json_error(r, MHD_HTTP_BAD_REQUEST, "need at least one profile.NAME=VALUE");
		goto out;
	}
	if (sim_store_visit(type, id->value, id->value_len, now) ||
	    sim_store_apply(type, id->value, id->value_len, kv, n, SIM_APPLY_SINGLE, 0, 0, now,
	                    &res)) {
		answer_json_error(r, 500, "out of memory");
		goto out;
	}
	sim_counters_add(SIM_ST_VALUES_SET, n);
	{
		struct sim_buf b;

		sim_buf_init(&b, 0);
		sim_buf_printf(&b, "{\"ok\":true,\"set\":%zu}", n);
		answer(r, MHD_HTTP_OK, CT_JSON, &b, SIM_OUT_OK);
	}
out:
	free(kv);
	sim_params_free(&q);
}

/* GET /_sim/auth: the tokens; POST /_sim/auth?expire=profile|revoke|ims. */
static void control_auth(struct req *r)
{
	struct sim_params q;
	const struct sim_param *ex;
	struct sim_buf b;

	if (sim_params_parse(&q, r->query, r->query_len, MAX_PARAMS)) {
		answer_json_error(r, 500, "out of memory");
		return;
	}
	ex = sim_params_get(&q, "expire");
	if (r->is_post && (!ex || sim_auth_control(ex->value, ex->value_len))) {
		answer_json_error(r, MHD_HTTP_BAD_REQUEST, "need expire=profile, expire=revoke or expire=ims");
		goto out;
	}
	sim_buf_init(&b, 0);
	sim_auth_json(&b);
	answer(r, MHD_HTTP_OK, CT_JSON, &b, SIM_OUT_OK);
out:
	sim_params_free(&q);
}

/* GET /_sim/fetches[?window_ms=1000][&list=0] */
static void control_fetches(struct req *r)
{
	struct sim_params q;
	const struct sim_param *w, *l;
	struct sim_buf b;
	int64_t window = 1000;

	if (sim_params_parse(&q, r->query, r->query_len, MAX_PARAMS)) {
		answer_json_error(r, 500, "out of memory");
		return;
	}
	w = sim_params_get(&q, "window_ms");
	l = sim_params_get(&q, "list");
	if (w) {
		char *end;
		long long x = strtoll(w->value, &end, 10);

		if (end == w->value || *end || x < 1 || x > 86400000) {
			answer_json_error(r, MHD_HTTP_BAD_REQUEST, "window_ms must be 1..86400000");
			goto out;
		}
		window = x;
	}
	sim_buf_init(&b, 0);
	sim_fetchlog_json(&b, window, !(l && l->value_len == 1 && l->value[0] == '0'));
	answer(r, MHD_HTTP_OK, CT_JSON, &b, SIM_OUT_OK);
out:
	sim_params_free(&q);
}

static int reset_all(char *err, size_t err_len)
{
	sim_batches_reset();
	sim_store_reset();
	sim_counters_reset();
	sim_auth_reset();
	sim_fetchlog_reset();
	sim_window_reset(&bulk_window);
	sim_window_reset(&single_window);
	sim_rng_seed(startup_cfg.seed);
	pthread_mutex_lock(&plan_lock);
	sim_config_publish(&startup_cfg);
	apply_limits(&startup_cfg);
	pthread_mutex_unlock(&plan_lock);
	if (startup_cfg.preload[0] && sim_preload_file(startup_cfg.preload, err, err_len) < 0)
		return -1;
	return 0;
}

static void control_counters(struct req *r)
{
	struct sim_buf b, extra;
	int64_t now = sim_clock_now_ms();
	char ts[40];

	sim_batches_process_due();
	sim_buf_init(&b, 0);
	sim_buf_init(&extra, 0);
	sim_clock_iso(now, ts, sizeof(ts));
	sim_buf_printf(&extra,
	               "\"profiles\":%zu,\"batches_pending\":%zu,"
	               "\"bulk_calls_last_minute\":%zu,\"single_calls_last_24h\":%zu,"
	               "\"seed\":%llu,\"clock\":\"%s\",\"clock_scale\":%g",
	               sim_store_count(), sim_batches_pending(), sim_window_used(&bulk_window, now),
	               sim_window_used(&single_window, now),
	               (unsigned long long)sim_rng_seed_value(), ts, sim_clock_scale());
	sim_counters_json(&b, extra.data ? extra.data : "");
	sim_buf_free(&extra);
	answer(r, MHD_HTTP_OK, CT_JSON, &b, SIM_OUT_OK);
}

static void control_clock(struct req *r)
{
	struct sim_params q;
	const struct sim_param *adv;
	struct sim_buf b;
	char ts[40];

	if (sim_params_parse(&q, r->query, r->query_len, MAX_PARAMS)) {
		answer_json_error(r, 500, "out of memory");
		return;
	}
	adv = sim_params_get(&q, "advance_s");
	if (r->is_post) {
		char *end;
		double s = adv ? strtod(adv->value, &end) : -1;

		if (!adv || end == adv->value || *end || !(s >= 0 && s <= 1e10)) {
			answer_json_error(r, MHD_HTTP_BAD_REQUEST, "need advance_s=SECONDS (>= 0)");
			goto out;
		}
		sim_clock_advance_ms((int64_t)(s * 1000));
	}
	sim_buf_init(&b, 0);
	sim_clock_iso(sim_clock_now_ms(), ts, sizeof(ts));
	sim_buf_printf(&b, "{\"now\":\"%s\",\"now_ms\":%lld,\"elapsed_ms\":%lld,\"scale\":%g}", ts,
	               (long long)sim_clock_now_ms(), (long long)sim_clock_elapsed_ms(),
	               sim_clock_scale());
	answer(r, MHD_HTTP_OK, CT_JSON, &b, SIM_OUT_OK);
out:
	sim_params_free(&q);
}

static void finish_control(struct req *r)
{
	const char *name = r->control;
	size_t len = r->path_len - 6;
	struct sim_buf b;
	char err[512];

#define IS(s) (len == strlen(s) && memcmp(name, s, len) == 0)
	if (IS("profiles") && !r->is_post) {
		sim_batches_process_due();
		sim_buf_init(&b, 0);
		sim_store_dump_json(&b);
		answer(r, MHD_HTTP_OK, CT_JSON, &b, SIM_OUT_OK);
	} else if (IS("counters") && !r->is_post) {
		control_counters(r);
	} else if (IS("faults")) {
		control_faults(r);
	} else if (IS("clock")) {
		control_clock(r);
	} else if (IS("visit") && r->is_post) {
		control_visit(r);
	} else if (IS("set") && r->is_post) {
		control_set(r);
	} else if (IS("auth")) {
		control_auth(r);
	} else if (IS("fetches") && !r->is_post) {
		control_fetches(r);
	} else if (IS("reset") && r->is_post) {
		if (reset_all(err, sizeof(err)))
			answer_json_error(r, 500, err);
		else
			answer_json_text(r, MHD_HTTP_OK, "{\"ok\":true}", SIM_OUT_OK);
	} else if (IS("process") && r->is_post) {
		sim_buf_init(&b, 0);
		sim_buf_printf(&b, "{\"processed\":%zu}", sim_batches_process_all());
		answer(r, MHD_HTTP_OK, CT_JSON, &b, SIM_OUT_OK);
	} else {
		answer_json_error(r, MHD_HTTP_NOT_FOUND,
		                  "unknown control endpoint or method (see tools/sim/README.md)");
	}
#undef IS
}

/* ---- request life --------------------------------------------------- */

static void finish(struct req *r, struct MHD_Connection *c)
{
	char msg[256];
	struct sim_buf b;

	switch (r->verdict) {
	case V_GO:
		break;
	case V_OUTAGE:
		sim_buf_init(&b, 0);
		sim_buf_adds(&b, "Service Unavailable (simulated outage)\n");
		answer(r, MHD_HTTP_SERVICE_UNAVAILABLE, CT_TEXT, &b, SIM_OUT_OUTAGE);
		return;
	case V_DROP:
		r->drop = 1;
		r->outcome = r->fault.outage ? SIM_OUT_OUTAGE : SIM_OUT_FAULT_DROP;
		return;
	case V_FAULT_ERROR:
		/* What a gateway in front of Target would send: HTML. */
		sim_buf_init(&b, 0);
		sim_buf_printf(&b, "<html><body><h1>%d %s</h1></body></html>\n", r->fault.error_code,
		               MHD_get_reason_phrase_for((unsigned)r->fault.error_code));
		r->fault.reset = r->fault.malformed = 0;
		answer(r, (unsigned)r->fault.error_code, CT_HTML, &b, SIM_OUT_FAULT_ERROR);
		if (r->fault.error_code == 503)
			add_retry_after(r, r->cfg->retry_after_s);
		return;
	case V_FAULT_429:
		answer_xml(r, MHD_HTTP_TOO_MANY_REQUESTS, 0, NULL, "Too many requests",
		           SIM_OUT_FAULT_429);
		add_retry_after(r, r->cfg->retry_after_s);
		return;
	case V_UNAUTHORIZED:
		answer_xml(r, MHD_HTTP_UNAUTHORIZED, 0, NULL,
		           "Unauthorized: this API requires Authorization: Bearer <token>",
		           SIM_OUT_UNAUTHORIZED);
		if (r->resp)
			MHD_add_response_header(r->resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
		return;
	case V_EXPIRED:
		sim_counters_add(SIM_ST_EXPIRED_TOKEN_REFUSALS, 1);
		answer_xml(r, MHD_HTTP_UNAUTHORIZED, 0, NULL, "Unauthorized: the token has expired",
		           SIM_OUT_UNAUTHORIZED);
		if (r->resp)
			MHD_add_response_header(r->resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
			                        "Bearer error=\"invalid_token\"");
		return;
	case V_FORBIDDEN:
		answer_xml(r, MHD_HTTP_FORBIDDEN, 0, NULL, "Forbidden: invalid token",
		           SIM_OUT_FORBIDDEN);
		return;
	case V_BAD_METHOD:
		answer_xml(r, MHD_HTTP_METHOD_NOT_ALLOWED, 0, NULL, "method not allowed",
		           SIM_OUT_REFUSED);
		return;
	case V_BAD_CLIENT:
		snprintf(msg, sizeof(msg), "unknown client code '%s'", r->client);
		answer_xml(r, MHD_HTTP_BAD_REQUEST, 0,
		           r->route == R_BATCH_UPDATE ? "<batchStatus></batchStatus>"
		           : r->route == R_SINGLE     ? pcid_elem
		                                      : NULL,
		           msg, SIM_OUT_REFUSED);
		return;
	case V_RATE_LIMITED: {
		int64_t wait = sim_clock_real_wait_s(r->next_ms - sim_clock_now_ms());

		snprintf(msg, sizeof(msg),
		         "Too many requests: the bulk profile APIs accept %lld calls per minute",
		         (long long)r->cfg->bulk_per_minute);
		if (r->route == R_ADMIN_TOKEN) {
			struct sim_auth_answer a;

			sim_auth_admin_error(&a, MHD_HTTP_SERVICE_UNAVAILABLE, "TooManyRequests", msg);
			answer(r, a.status, a.ctype, &a.body, SIM_OUT_RATE_LIMITED);
		} else {
			answer_xml(r, MHD_HTTP_SERVICE_UNAVAILABLE, 0, NULL, msg, SIM_OUT_RATE_LIMITED);
		}
		add_retry_after(r, wait);
		return;
	}
	}
	switch (r->route) {
	case R_BATCH_UPDATE:
		finish_batch_update(r, c);
		break;
	case R_BATCH_STATUS:
		finish_batch_status(r);
		break;
	case R_SINGLE:
		finish_single(r);
		break;
	case R_FETCH:
		finish_fetch(r);
		break;
	case R_CONTROL:
		finish_control(r);
		break;
	case R_IMS:
	case R_ADMIN_TOKEN:
		finish_auth(r, c);
		break;
	default:
		answer_xml(r, MHD_HTTP_NOT_FOUND, 0, NULL, "no such endpoint", SIM_OUT_REFUSED);
	}
}

static enum MHD_Result send_prepared(struct req *r, struct MHD_Connection *c)
{
	enum MHD_Result ret;

	if (r->drop || !r->resp)
		return MHD_NO;  /* MHD closes the connection without an answer */
	if (r->reset_fd) {
		const union MHD_ConnectionInfo *ci =
		    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);

		/* Linger 0: the close after half the body sends a TCP RST. */
		if (ci) {
			struct linger lg = { 1, 0 };

			setsockopt(ci->connect_fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		}
	}
	ret = MHD_queue_response(c, r->status, r->resp);
	MHD_destroy_response(r->resp);
	r->resp = NULL;
	return ret;
}

/* Per connection: the raw target of the request being read.  The URI-log
 * callback runs before MHD decodes the target in place, so we copy it
 * there; the access handler takes it over.  Keeping it on the connection
 * (not in a request object returned by the callback) means a request MHD
 * rejects before calling the handler leaks nothing: the copy is freed when
 * the next request replaces it or the connection closes. */
struct conn {
	char *uri;
};

static struct conn *conn_of(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return ci ? ci->socket_context : NULL;
}

static struct req *new_req(struct MHD_Connection *c)
{
	struct conn *cn = conn_of(c);
	struct req *r;
	const char *q;
	size_t len;

	if (!cn || !cn->uri)
		return NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->uri = cn->uri;
	cn->uri = NULL;
	len = strlen(r->uri);
	r->uri_len = len;
	q = memchr(r->uri, '?', len);
	r->path_len = q ? (size_t)(q - r->uri) : len;
	r->query = q ? q + 1 : r->uri + len;
	r->query_len = q ? len - r->path_len - 1 : 0;
	r->outcome = SIM_OUT_REFUSED;
	return r;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version,
                              const char *upload_data, size_t *upload_data_size,
                              void **con_cls)
{
	struct req *r = *con_cls;

	(void)cls;
	(void)url;
	(void)version;
	if (!r) {
		r = new_req(c);
		if (!r)
			return MHD_NO;
		*con_cls = r;
		begin(r, c, method);
		return MHD_YES;
	}
	if (*upload_data_size) {
		intake(r, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (r->delayed)
		return send_prepared(r, c);
	finish(r, c);
	if (r->route != R_CONTROL && r->fault.delay_ms > 0) {
		r->delayed = 1;
		MHD_suspend_connection(c);
		if (sim_delay_add(c, r->fault.delay_ms))
			MHD_resume_connection(c);
		return MHD_YES;
	}
	return send_prepared(r, c);
}

static void *uri_cb(void *cls, const char *uri, struct MHD_Connection *c)
{
	struct conn *cn = conn_of(c);

	(void)cls;
	if (cn) {
		free(cn->uri);
		cn->uri = strdup(uri);  /* NULL on failure: the handler refuses */
	}
	return NULL;
}

static void conn_cb(void *cls, struct MHD_Connection *c, void **socket_context,
                    enum MHD_ConnectionNotificationCode toe)
{
	struct conn *cn = *socket_context;

	(void)cls;
	(void)c;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		*socket_context = calloc(1, sizeof(struct conn));
	} else if (cn) {
		free(cn->uri);
		free(cn);
		*socket_context = NULL;
	}
}

static void completed_cb(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
	struct req *r = *con_cls;

	(void)cls;
	(void)c;
	(void)toe;
	if (!r)
		return;
	sim_counters_call(r->ep, r->outcome);
	if (r->route == R_FETCH)
		sim_fetchlog_add(r->arrival_real_ms, r->arrival_sim_ms, r->path_id_type, r->path_id,
		                 r->path_id_len, r->drop ? 0 : r->status);
	if (r->resp)
		MHD_destroy_response(r->resp);
	if (r->parse) {
		sim_batch_parse_free(r->parse);
		free(r->parse);
	}
	sim_buf_free(&r->body);
	free(r->uri);
	free(r);
	*con_cls = NULL;
}

/* ---- start / stop --------------------------------------------------- */

static struct MHD_Daemon *start_daemon(int v6, int port, int threads)
{
	struct sockaddr_in a4;
	struct sockaddr_in6 a6;
	const struct sockaddr *sa;
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
	                     MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO;

	memset(&a4, 0, sizeof(a4));
	memset(&a6, 0, sizeof(a6));
	if (v6) {
		a6.sin6_family = AF_INET6;
		a6.sin6_port = htons((uint16_t)port);
		a6.sin6_addr = in6addr_loopback;
		sa = (const struct sockaddr *)&a6;
		flags |= MHD_USE_IPv6;
	} else {
		a4.sin_family = AF_INET;
		a4.sin_port = htons((uint16_t)port);
		a4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sa = (const struct sockaddr *)&a4;
	}
	return MHD_start_daemon(
	    flags, (uint16_t)port, NULL, NULL, handle, NULL, MHD_OPTION_SOCK_ADDR, sa,
	    MHD_OPTION_URI_LOG_CALLBACK, uri_cb, NULL, MHD_OPTION_NOTIFY_COMPLETED, completed_cb,
	    NULL, MHD_OPTION_NOTIFY_CONNECTION, conn_cb, NULL, MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)threads,
	    /* Room for a request line well past the 8 KB GET limit, so the
	     * simulator (not MHD) answers an oversized GET. */
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(128 * 1024),
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)120, MHD_OPTION_LISTEN_BACKLOG_SIZE,
	    (unsigned int)1024, MHD_OPTION_END);
}

int sim_server_start(const struct sim_config *startup, int *port_out, char *err,
                     size_t err_len)
{
	const union MHD_DaemonInfo *info;
	int rc = -1;

	startup_cfg = *startup;
	if (startup->call_log[0] && sim_calllog_open(startup->call_log, err, err_len))
		goto out;
	if (sim_window_init(&bulk_window, (size_t)startup->bulk_per_minute, 60 * 1000) ||
	    sim_window_init(&single_window, (size_t)startup->single_budget,
	                    startup->single_window_s * 1000)) {
		snprintf(err, err_len, "out of memory for the limit windows");
		goto out;
	}
	if (sim_delay_start()) {
		snprintf(err, err_len, "cannot start the delay thread");
		goto out;
	}
	daemon4 = start_daemon(0, startup->port, startup->threads);
	if (!daemon4) {
		snprintf(err, err_len, "cannot listen on 127.0.0.1:%d (in use?)", startup->port);
		goto out;
	}
	info = MHD_get_daemon_info(daemon4, MHD_DAEMON_INFO_BIND_PORT);
	listen_port = info ? info->port : startup->port;
	/* Best effort: some hosts have no IPv6 loopback, and then `localhost`
	 * resolves to 127.0.0.1 anyway. */
	if (!startup->no_ipv6)
		daemon6 = start_daemon(1, listen_port, 1);
	*port_out = listen_port;
	rc = 0;
out:
	return rc;
}

void sim_server_stop(void)
{
	/* Held connections must be resumed before the daemons stop. */
	sim_delay_stop();
	if (daemon6)
		MHD_stop_daemon(daemon6);
	if (daemon4)
		MHD_stop_daemon(daemon4);
	daemon4 = daemon6 = NULL;
	sim_window_destroy(&bulk_window);
	sim_window_destroy(&single_window);
	sim_calllog_close();
}
