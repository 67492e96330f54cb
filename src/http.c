/*
 * http.c - the libcurl wrapper (see http.h).
 *
 * This module owns every libcurl call in pobox: option setting, connection
 * reuse, the bounded body buffer, the Retry-After header and the mapping of
 * CURLcode to a few failure categories.  It knows nothing of Target.
 *
 * One transfer is a struct xfer: an easy handle that is reset and reused
 * (curl_easy_reset keeps its live connections, DNS and TLS session caches),
 * the request's header list, and the answer being built.  The sequential
 * client owns one xfer; the multi client keeps a queue of waiting xfers, the
 * ones running inside the curl multi handle, and a pool of idle ones so
 * easy handles are reused too.
 *
 * Bounded bodies: the write callback refuses the byte that would pass the
 * maximum, which makes curl abort the transfer (CURLE_WRITE_ERROR); the
 * xfer remembers why, so the caller gets POBOX_HTTP_FAIL_TOOBIG rather
 * than a generic write error.  The limit counts decoded bytes, so a small
 * gzip bomb cannot get past it either.
 */
#include "http.h"
#include "alloc.h"
#include "error.h"
#include "pobox.h"

#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

const char *pobox_http_fail_name(enum pobox_http_fail f)
{
	switch (f) {
	case POBOX_HTTP_FAIL_NONE: return "none";
	case POBOX_HTTP_FAIL_RESOLVE: return "resolve";
	case POBOX_HTTP_FAIL_CONNECT: return "connect";
	case POBOX_HTTP_FAIL_TIMEOUT: return "timeout";
	case POBOX_HTTP_FAIL_SENDRECV: return "send/recv";
	case POBOX_HTTP_FAIL_TLS: return "tls";
	case POBOX_HTTP_FAIL_TOOBIG: return "too big";
	case POBOX_HTTP_FAIL_OTHER: return "other";
	case POBOX_HTTP_FAIL_ABORTED: return "aborted";
	}
	return "other";
}

static int global_done;

int pobox_http_global_init(char *err, size_t errlen)
{
	if (global_done)
		return 0;
	CURLcode cc = curl_global_init(CURL_GLOBAL_DEFAULT);
	if (cc != CURLE_OK)
		return pobox_errf(err, errlen, POBOX_EIO, "cannot initialise libcurl: %s",
		                  curl_easy_strerror(cc));
	global_done = 1;
	return 0;
}

void pobox_http_config_init(struct pobox_http_config *c)
{
	memset(c, 0, sizeof *c);
	c->connect_timeout_ms = 10000;
	c->timeout_ms = 60000;
	c->verify_tls = 1;
	c->max_body_bytes = POBOX_HTTP_DEFAULT_MAX_BODY;
	c->compressed_answers = 1;
}

static const struct pobox_clock real_clock = {pobox_clock_real_ms, NULL};

/* The configuration as the handles keep it (strings copied). */
struct settings {
	int64_t connect_timeout_ms;
	int64_t timeout_ms;
	int verify_tls;
	char *auth_header;  /* "Authorization: Bearer <token>", wiped on free */
	size_t max_body;
	const struct pobox_clock *clock;
	char *ca_file;
	int compressed;
	int (*abort_fn)(void *ctx);
	void *abort_ctx;
	/* the header lists of most requests, built once: GET, and POST of a
	 * form (curl keeps a pointer, so they live as long as the handle) */
	struct curl_slist *hdr_get, *hdr_form;
};

#define FORM_TYPE "application/x-www-form-urlencoded"
/* in the header lists rather than CURLOPT_USERAGENT, which curl formats
 * into a new string for every request */
#define USER_AGENT "User-Agent: pobox/" POBOX_VERSION

static void wipe(char *s)
{
	if (!s)
		return;
	volatile char *p = s;
	while (*p)
		*p++ = '\0';
}

static void slist_wipe_free(struct curl_slist *l)
{
	for (struct curl_slist *i = l; i; i = i->next)
		wipe(i->data);
	curl_slist_free_all(l);
}

/* Appends line to *l: 0, or POBOX_ENOMEM with *l unchanged. */
static int append(struct curl_slist **l, const char *line)
{
	struct curl_slist *n = curl_slist_append(*l, line);
	if (!n)
		return POBOX_ENOMEM;
	*l = n;
	return 0;
}

/* The headers of a request: the user agent, the bearer token (if any), the
 * request's own lines (extra, NULL-terminated, may be NULL), and for a POST
 * the content type and no "Expect: 100-continue" round trip before the
 * body.  0 or POBOX_ENOMEM (*out then holds what was built, for the caller
 * to free). */
static int build_headers(const char *auth_header, int post, const char *content_type,
                         const char *const *extra, struct curl_slist **out)
{
	char ct[256];
	*out = NULL;
	if (append(out, USER_AGENT) || (auth_header && append(out, auth_header)))
		return POBOX_ENOMEM;
	for (size_t i = 0; extra && extra[i]; i++)
		if (append(out, extra[i]))
			return POBOX_ENOMEM;
	if (!post)
		return 0;
	snprintf(ct, sizeof ct, "Content-Type: %s", content_type);
	if (append(out, ct) || append(out, "Expect:"))
		return POBOX_ENOMEM;
	return 0;
}

static int post_headers(const char *auth_header, const char *content_type, struct curl_slist **out)
{
	return build_headers(auth_header, 1, content_type, NULL, out);
}

static void settings_free(struct settings *s)
{
	slist_wipe_free(s->hdr_get);
	slist_wipe_free(s->hdr_form);
	wipe(s->auth_header);
	pobox_free(s->auth_header);
	pobox_free(s->ca_file);
	memset(s, 0, sizeof *s);
}

/* (Re)builds the bearer header and the header lists that carry it; on
 * failure s keeps what it had. */
static int settings_set_bearer(struct settings *s, const char *token, char *err, size_t errlen)
{
	char *auth = NULL;
	struct curl_slist *get = NULL, *form = NULL;
	if (token && token[0]) {
		/* A token with a line break would inject headers. */
		if (strpbrk(token, "\r\n"))
			return pobox_errf(err, errlen, POBOX_ECONFIG, "bearer token contains a line break");
		size_t n = strlen("Authorization: Bearer ") + strlen(token) + 1;
		if (!(auth = pobox_malloc(n)))
			goto nomem;
		snprintf(auth, n, "Authorization: Bearer %s", token);
	}
	if (build_headers(auth, 0, NULL, NULL, &get) != 0 || post_headers(auth, FORM_TYPE, &form) != 0)
		goto nomem;
	slist_wipe_free(s->hdr_get);
	slist_wipe_free(s->hdr_form);
	wipe(s->auth_header);
	pobox_free(s->auth_header);
	s->auth_header = auth;
	s->hdr_get = get;
	s->hdr_form = form;
	return 0;
nomem:
	slist_wipe_free(get);
	slist_wipe_free(form);
	wipe(auth);
	pobox_free(auth);
	return pobox_errf(err, errlen, POBOX_ENOMEM, "out of memory setting up the HTTP client");
}

static int settings_init(struct settings *s, const struct pobox_http_config *cfg, char *err,
                         size_t errlen)
{
	struct pobox_http_config defaults;
	int rc = 0;
	memset(s, 0, sizeof *s);
	if (!cfg) {
		pobox_http_config_init(&defaults);
		cfg = &defaults;
	}
	s->connect_timeout_ms = cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : 10000;
	s->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 60000;
	s->verify_tls = cfg->verify_tls != 0;
	s->max_body = cfg->max_body_bytes ? cfg->max_body_bytes : POBOX_HTTP_DEFAULT_MAX_BODY;
	s->clock = cfg->clock ? cfg->clock : &real_clock;
	s->compressed = cfg->compressed_answers != 0;
	s->abort_fn = cfg->abort_fn;
	s->abort_ctx = cfg->abort_ctx;
	if (cfg->ca_file) {
		s->ca_file = pobox_strdup(cfg->ca_file);
		if (!s->ca_file) {
			rc = pobox_errf(err, errlen, POBOX_ENOMEM, "out of memory setting up the HTTP client");
			goto out;
		}
	}
	rc = settings_set_bearer(s, cfg->bearer_token, err, errlen);
out:
	if (rc)
		settings_free(s);
	return rc;
}

struct xfer {
	CURL *easy;
	int shape;                        /* multi: the options on easy are for
	                                   * SHAPE_GET / SHAPE_FORM requests (0: unknown) */
	struct curl_slist *headers;       /* only for a POST of another content type */
	struct pobox_http_resp *resp;
	struct pobox_http_resp own_resp;  /* multi: the answer lives here */
	const struct settings *s;
	enum pobox_http_method method;
	size_t max_body;
	size_t body_cap;
	pobox_http_body_fn on_body;
	void *on_body_ctx;
	const struct pobox_http_source *source;
	int toobig, nomem, consumer_rc, source_rc, aborted;
	int done_rc;                      /* multi: finish()'s result, for the callback */
	char errbuf[CURL_ERROR_SIZE];
	/* multi only: copies of the request, and the caller's pointer */
	char *url;
	char *body;
	size_t body_len;
	char *content_type;
	void *user;
	struct xfer *next;
};

static void resp_init(struct pobox_http_resp *r)
{
	memset(r, 0, sizeof *r);
	r->retry_after_ms = -1;
}

void pobox_http_resp_free(struct pobox_http_resp *resp)
{
	if (!resp)
		return;
	pobox_free(resp->body);
	resp_init(resp);
}

/* Retry-After: delay-seconds or an HTTP-date (RFC 9110 10.2.3). */
static int64_t parse_retry_after(const char *v, int64_t now_ms)
{
	int64_t ms;
	size_t n = strspn(v, "0123456789");
	if (n > 0 && v[n] == '\0') {
		if (n > 9)
			return POBOX_HTTP_RETRY_AFTER_MAX_MS;
		ms = 0;
		for (size_t i = 0; i < n; i++)
			ms = ms * 10 + (v[i] - '0');
		ms *= 1000;
	} else {
		time_t t = curl_getdate(v, NULL);
		if (t == (time_t)-1)
			return -1;
		ms = (int64_t)t * 1000 - now_ms;
		if (ms < 0)
			ms = 0;
	}
	return ms > POBOX_HTTP_RETRY_AFTER_MAX_MS ? POBOX_HTTP_RETRY_AFTER_MAX_MS : ms;
}

static size_t on_header(char *data, size_t size, size_t nitems, void *ud)
{
	struct xfer *x = ud;
	size_t n = size * nitems;
	static const char name[] = "retry-after:";
	if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
		x->resp->retry_after_ms = -1; /* a new answer (after 100 Continue) */
	} else if (n > sizeof name - 1 && strncasecmp(data, name, sizeof name - 1) == 0) {
		char v[128];
		size_t i = sizeof name - 1, o = 0;
		while (i < n && (data[i] == ' ' || data[i] == '\t'))
			i++;
		while (i < n && data[i] != '\r' && data[i] != '\n' && o < sizeof v - 1)
			v[o++] = data[i++];
		while (o > 0 && (v[o - 1] == ' ' || v[o - 1] == '\t'))
			o--;
		v[o] = '\0';
		x->resp->retry_after_ms = parse_retry_after(v, pobox_clock_now_ms(x->s->clock));
	}
	return n;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *ud)
{
	struct xfer *x = ud;
	struct pobox_http_resp *r = x->resp;
	size_t n = size * nmemb;
	if (n > x->max_body - r->body_len) {
		x->toobig = 1;
		return 0;
	}
	if (x->on_body) {
		int rc = x->on_body(x->on_body_ctx, data, n);
		if (rc) {
			x->consumer_rc = rc < 0 ? rc : POBOX_EINVALID;
			return 0;
		}
		r->body_len += n;
		return n;
	}
	if (r->body_len + n + 1 > x->body_cap) {
		size_t cap = x->body_cap ? x->body_cap : 4096;
		while (cap < r->body_len + n + 1)
			cap *= 2;
		if (cap > x->max_body + 1)
			cap = x->max_body + 1;
		char *b = pobox_realloc(r->body, cap);
		if (!b) {
			x->nomem = 1;
			return 0;
		}
		r->body = b;
		x->body_cap = cap;
	}
	memcpy(r->body + r->body_len, data, n);
	r->body_len += n;
	r->body[r->body_len] = '\0';
	return n;
}

/* Whether the caller wants transfers to end now (a stop, a deadline). */
static int abort_wanted(const struct settings *s)
{
	return s->abort_fn && s->abort_fn(s->abort_ctx);
}

/* CURLOPT_XFERINFOFUNCTION: curl calls it often while data moves and about
 * once a second while a transfer waits, which bounds how long a stop
 * waits for a server that never answers. */
static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
	struct xfer *x = ud;
	(void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
	if (!abort_wanted(x->s))
		return 0;
	x->aborted = 1;
	return 1;
}

static enum pobox_http_fail fail_of(CURLcode cc)
{
	switch (cc) {
	case CURLE_OK:
		return POBOX_HTTP_FAIL_NONE;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return POBOX_HTTP_FAIL_RESOLVE;
	case CURLE_COULDNT_CONNECT:
		return POBOX_HTTP_FAIL_CONNECT;
	case CURLE_OPERATION_TIMEDOUT:
		return POBOX_HTTP_FAIL_TIMEOUT;
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_BAD_CONTENT_ENCODING:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_SSL_CONNECT_ERROR: /* handshake cut short: a network problem */
		return POBOX_HTTP_FAIL_SENDRECV;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_ENGINE_INITFAILED:
		return POBOX_HTTP_FAIL_TLS;
	default:
		return POBOX_HTTP_FAIL_OTHER;
	}
}

/* "https://host/path" of a URL for messages: no query (profile data), no
 * user:password. */
static void url_for_msg(char *buf, size_t buflen, const char *url)
{
	const char *start = url, *scheme_end = strstr(url, "://");
	size_t pre = 0;
	if (scheme_end) {
		const char *host = scheme_end + 3;
		const char *at = strchr(host, '@');
		const char *slash = strchr(host, '/');
		pre = (size_t)(host - url);
		if (at && (!slash || at < slash))
			start = at + 1;
		else
			start = host;
	}
	size_t n = strcspn(start, "?#");
	snprintf(buf, buflen, "%.*s%.*s", (int)pre, url, (int)n, start);
}

enum { SHAPE_OTHER = 0, SHAPE_GET, SHAPE_FORM };

/* Requests of one shape differ only in URL and body, so an easy handle
 * set up for one needs no reset and no full setup for the next. */
static int shape_of(const struct pobox_http_req *req)
{
	if (req->headers || req->source)
		return SHAPE_OTHER;
	if (req->method != POBOX_HTTP_POST)
		return SHAPE_GET;
	if (!req->content_type || strcmp(req->content_type, FORM_TYPE) == 0)
		return SHAPE_FORM;
	return SHAPE_OTHER;
}

static void setup_fields(struct xfer *x, const struct settings *s, const struct pobox_http_req *req,
                         struct pobox_http_resp *resp)
{
	x->s = s;
	x->resp = resp;
	x->method = req->method;
	x->max_body = req->max_body_bytes ? req->max_body_bytes : s->max_body;
	x->body_cap = 0;
	x->on_body = req->on_body;
	x->on_body_ctx = req->on_body_ctx;
	x->source = req->source;
	x->toobig = x->nomem = x->consumer_rc = x->source_rc = x->aborted = 0;
	x->errbuf[0] = '\0';
	x->headers = NULL;
}

/* CURLOPT_READFUNCTION: the next piece of a source's body. */
static size_t on_read(char *buf, size_t size, size_t nitems, void *ud)
{
	struct xfer *x = ud;
	long n = x->source->read(x->source->ctx, buf, size * nitems);
	if (n >= 0 && (size_t)n <= size * nitems)
		return (size_t)n;
	x->source_rc = n < 0 ? (int)n : POBOX_EINVALID;
	return CURL_READFUNC_ABORT;
}

/* CURLOPT_SEEKFUNCTION: curl resends a body only from its start. */
static int on_seek(void *ud, curl_off_t offset, int origin)
{
	struct xfer *x = ud;
	if (offset != 0 || origin != SEEK_SET || !x->source->rewind)
		return CURL_SEEKFUNC_CANTSEEK;
	int rc = x->source->rewind(x->source->ctx);
	if (rc == 0)
		return CURL_SEEKFUNC_OK;
	x->source_rc = rc;
	return CURL_SEEKFUNC_FAIL;
}

/* The options that change from request to request of one shape. */
static CURLcode setup_target(CURL *e, const struct pobox_http_req *req)
{
	CURLcode cc = curl_easy_setopt(e, CURLOPT_URL, req->url);
	if (cc == CURLE_OK && req->method == POBOX_HTTP_POST && req->source) {
		cc = curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
		/* POSTFIELDS stays NULL (the handle was reset): curl reads */
	} else if (cc == CURLE_OK && req->method == POBOX_HTTP_POST) {
		cc = curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
		                      (curl_off_t)(req->body ? req->body_len : 0));
		if (cc == CURLE_OK)
			cc = curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body ? req->body : "");
	}
	return cc;
}

static int curl_rc(CURLcode cc)
{
	if (cc == CURLE_OUT_OF_MEMORY)
		return POBOX_ENOMEM;
	return cc == CURLE_OK ? 0 : POBOX_EINVALID;
}

/* The next request of the shape x->easy is already set up for. */
static int setup_again(struct xfer *x, const struct settings *s, const struct pobox_http_req *req,
                       struct pobox_http_resp *resp)
{
	setup_fields(x, s, req, resp);
	return curl_rc(setup_target(x->easy, req));
}

/* Sets every option for one request on x->easy (already reset). */
static int setup(struct xfer *x, const struct settings *s, const struct pobox_http_req *req,
                 struct pobox_http_resp *resp)
{
	CURL *e = x->easy;
	const struct curl_slist *hl = req->method == POBOX_HTTP_POST ? s->hdr_form : s->hdr_get;
	setup_fields(x, s, req, resp);
	if (shape_of(req) == SHAPE_OTHER) {
		if (build_headers(s->auth_header, req->method == POBOX_HTTP_POST,
		                  req->content_type ? req->content_type : FORM_TYPE, req->headers,
		                  &x->headers) != 0)
			return POBOX_ENOMEM;
		hl = x->headers;
	}

	CURLcode cc = curl_easy_setopt(e, req->method == POBOX_HTTP_POST ? CURLOPT_POST : CURLOPT_HTTPGET, 1L);
	if (cc == CURLE_OK)
		cc = setup_target(e, req);
#define SET(opt, val)                                   \
	do {                                            \
		if (cc == CURLE_OK)                     \
			cc = curl_easy_setopt(e, opt, val); \
	} while (0)
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_CONNECTTIMEOUT_MS, (long)s->connect_timeout_ms);
	SET(CURLOPT_TIMEOUT_MS, (long)s->timeout_ms);
	SET(CURLOPT_SSL_VERIFYPEER, s->verify_tls ? 1L : 0L);
	SET(CURLOPT_SSL_VERIFYHOST, s->verify_tls ? 2L : 0L);
	if (s->ca_file)
		SET(CURLOPT_CAINFO, s->ca_file);
	if (s->compressed)
		SET(CURLOPT_ACCEPT_ENCODING, "");
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_TCP_KEEPALIVE, 1L);
	SET(CURLOPT_ERRORBUFFER, x->errbuf);
	SET(CURLOPT_WRITEFUNCTION, on_write);
	SET(CURLOPT_WRITEDATA, x);
	SET(CURLOPT_HEADERFUNCTION, on_header);
	SET(CURLOPT_HEADERDATA, x);
	SET(CURLOPT_PRIVATE, x);
	if (req->source) {
		SET(CURLOPT_READFUNCTION, on_read);
		SET(CURLOPT_READDATA, x);
		SET(CURLOPT_SEEKFUNCTION, on_seek);
		SET(CURLOPT_SEEKDATA, x);
	}
	if (s->abort_fn) {
		SET(CURLOPT_XFERINFOFUNCTION, on_progress);
		SET(CURLOPT_XFERINFODATA, x);
		SET(CURLOPT_NOPROGRESS, 0L);
	}
	/* curl does not change the list; the option just lacks const */
	SET(CURLOPT_HTTPHEADER, (struct curl_slist *)(uintptr_t)hl);
#undef SET
	return curl_rc(cc);
}

/* Turns the end of a transfer into our result; fills resp and err. */
static int finish(struct xfer *x, CURLcode cc, const char *url, char *err, size_t errlen)
{
	struct pobox_http_resp *r = x->resp;
	long status = 0;
	char where[300];
	int rc = 0;
	const char *method = x->method == POBOX_HTTP_POST ? "POST" : "GET";

	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	r->status = status;
	if (cc == CURLE_OK)
		goto out;
	url_for_msg(where, sizeof where, url);
	if (x->aborted) {
		r->fail = POBOX_HTTP_FAIL_ABORTED;
		snprintf(r->errmsg, sizeof r->errmsg, "aborted (stopping, or out of time)");
		rc = POBOX_ETRANSIENT;
	} else if (x->nomem) {
		r->fail = POBOX_HTTP_FAIL_OTHER;
		snprintf(r->errmsg, sizeof r->errmsg, "out of memory for the answer body");
		rc = POBOX_ENOMEM;
	} else if (x->source_rc) {
		r->fail = POBOX_HTTP_FAIL_OTHER;
		snprintf(r->errmsg, sizeof r->errmsg, "the body could not be read (%s)",
		         pobox_strerror(x->source_rc));
		rc = x->source_rc;
	} else if (x->consumer_rc) {
		r->fail = POBOX_HTTP_FAIL_OTHER;
		snprintf(r->errmsg, sizeof r->errmsg, "stopped by the body reader (%s)",
		         pobox_strerror(x->consumer_rc));
		rc = x->consumer_rc;
	} else if (x->toobig) {
		r->fail = POBOX_HTTP_FAIL_TOOBIG;
		snprintf(r->errmsg, sizeof r->errmsg, "answer body larger than %zu bytes: aborted",
		         x->max_body);
		rc = POBOX_ETRANSIENT;
	} else if (cc == CURLE_OUT_OF_MEMORY) {
		r->fail = POBOX_HTTP_FAIL_OTHER;
		snprintf(r->errmsg, sizeof r->errmsg, "%s", curl_easy_strerror(cc));
		rc = POBOX_ENOMEM;
	} else {
		r->fail = fail_of(cc);
		if (r->fail == POBOX_HTTP_FAIL_NONE)
			r->fail = POBOX_HTTP_FAIL_OTHER;
		snprintf(r->errmsg, sizeof r->errmsg, "%s",
		         x->errbuf[0] ? x->errbuf : curl_easy_strerror(cc));
		size_t n = strlen(r->errmsg);
		while (n > 0 && (r->errmsg[n - 1] == '\n' || r->errmsg[n - 1] == ' '))
			r->errmsg[--n] = '\0';
		rc = POBOX_ETRANSIENT;
	}
	pobox_errf(err, errlen, rc, "%s %s: %s: %s", method, where, pobox_http_fail_name(r->fail),
	           r->errmsg);
out:
	slist_wipe_free(x->headers); /* a request's own lines may hold a secret */
	x->headers = NULL;
	x->on_body = NULL;
	x->source = NULL;
	return rc;
}

/* ---- sequential client ---- */

struct pobox_http {
	struct settings s;
	struct xfer x;
};

int pobox_http_new(struct pobox_http **out, const struct pobox_http_config *cfg, char *err,
                   size_t errlen)
{
	struct pobox_http *h = NULL;
	int rc = pobox_http_global_init(err, errlen);
	if (rc)
		goto out;
	h = pobox_calloc(1, sizeof *h);
	if (!h) {
		rc = pobox_errf(err, errlen, POBOX_ENOMEM, "out of memory creating an HTTP client");
		goto out;
	}
	rc = settings_init(&h->s, cfg, err, errlen);
	if (rc)
		goto out;
	h->x.easy = curl_easy_init();
	if (!h->x.easy) {
		rc = pobox_errf(err, errlen, POBOX_ENOMEM, "cannot create a curl handle");
		goto out;
	}
out:
	if (rc) {
		pobox_http_free(h);
		return rc;
	}
	*out = h;
	return 0;
}

void pobox_http_free(struct pobox_http *h)
{
	if (!h)
		return;
	if (h->x.easy)
		curl_easy_cleanup(h->x.easy);
	settings_free(&h->s);
	pobox_free(h);
}

int pobox_http_request(struct pobox_http *h, const struct pobox_http_req *req,
                       struct pobox_http_resp *resp, char *err, size_t errlen)
{
	int rc;
	resp_init(resp);
	if (!req || !req->url || !req->url[0])
		return pobox_errf(err, errlen, POBOX_EINVALID, "HTTP request without a URL");
	if (abort_wanted(&h->s)) { /* not even started */
		resp->fail = POBOX_HTTP_FAIL_ABORTED;
		snprintf(resp->errmsg, sizeof resp->errmsg, "aborted before it started");
		return pobox_errf(err, errlen, POBOX_ETRANSIENT, "request not made: %s", resp->errmsg);
	}
	curl_easy_reset(h->x.easy);
	rc = setup(&h->x, &h->s, req, resp);
	if (rc) {
		slist_wipe_free(h->x.headers);
		h->x.headers = NULL;
		return pobox_errf(err, errlen, rc, "cannot set up the HTTP request: %s",
		                  pobox_strerror(rc));
	}
	CURLcode cc = curl_easy_perform(h->x.easy);
	return finish(&h->x, cc, req->url, err, errlen);
}

int pobox_http_set_bearer(struct pobox_http *h, const char *token, char *err, size_t errlen)
{
	return settings_set_bearer(&h->s, token, err, errlen);
}

/* ---- multi client ---- */

struct pobox_http_multi {
	CURLM *cm;
	/* the sockets curl wants watched, as its socket callback says: kept
	 * here in user space, so a change of interest costs no system call;
	 * one poll() watches them all */
	struct pollfd *pfds;
	size_t npfds, cappfds;
	struct pollfd *ready;                 /* a copy of the ready ones, cappfds */
	int sock_nomem;                       /* the socket callback could not grow pfds */
	int64_t timer_at;                     /* curl's timeout (monotonic ms), -1 none */
	struct settings s;
	int max_concurrent;
	pobox_http_done_fn on_done;
	pobox_http_gate_fn gate;              /* may queued requests start? */
	void *ctx;
	struct xfer *queue_head, *queue_tail; /* waiting to start */
	struct xfer *running;                 /* inside cm */
	struct xfer *idle;                    /* reusable */
	size_t queued, active;
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* CURLMOPT_SOCKETFUNCTION: what curl wants to know about socket fd. */
static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct pobox_http_multi *m = userp;
	size_t i;
	(void)easy;
	(void)socketp;
	for (i = 0; i < m->npfds && m->pfds[i].fd != fd; i++)
		;
	if (what == CURL_POLL_REMOVE) {
		if (i < m->npfds)
			m->pfds[i] = m->pfds[--m->npfds];
		return 0;
	}
	if (i == m->npfds) {
		if (m->npfds == m->cappfds) {
			size_t n = m->cappfds ? 2 * m->cappfds : 16;
			struct pollfd *p = pobox_realloc(m->pfds, n * sizeof *p), *r;
			if (p)
				m->pfds = p;
			r = p ? pobox_realloc(m->ready, n * sizeof *r) : NULL;
			if (!r) {
				m->sock_nomem = 1;
				return -1;
			}
			m->ready = r;
			m->cappfds = n;
		}
		m->pfds[m->npfds++].fd = fd;
	}
	m->pfds[i].events = (short)((what & CURL_POLL_IN ? POLLIN : 0) | (what & CURL_POLL_OUT ? POLLOUT : 0));
	m->pfds[i].revents = 0;
	return 0;
}

/* CURLMOPT_TIMERFUNCTION: when curl wants CURL_SOCKET_TIMEOUT next. */
static int on_timer(CURLM *cm, long timeout_ms, void *userp)
{
	struct pobox_http_multi *m = userp;
	(void)cm;
	/* a millisecond later than asked: mono_ms truncates, and a timeout
	 * acted on before curl's own clock says it is due does nothing */
	m->timer_at = timeout_ms < 0 ? -1 : mono_ms() + timeout_ms + (timeout_ms > 0);
	return 0;
}

static void xfer_clear(struct xfer *x)
{
	pobox_free(x->url);
	pobox_free(x->body);
	pobox_free(x->content_type);
	x->url = x->body = x->content_type = NULL;
	curl_slist_free_all(x->headers);
	x->headers = NULL;
	pobox_http_resp_free(&x->own_resp);
}

static void xfer_destroy(struct xfer *x)
{
	xfer_clear(x);
	if (x->easy)
		curl_easy_cleanup(x->easy);
	pobox_free(x);
}

int pobox_http_multi_new(struct pobox_http_multi **out, const struct pobox_http_config *cfg,
                         int max_concurrent, pobox_http_done_fn on_done, void *ctx, char *err,
                         size_t errlen)
{
	struct pobox_http_multi *m = NULL;
	int rc = pobox_http_global_init(err, errlen);
	if (rc)
		goto out;
	m = pobox_calloc(1, sizeof *m);
	if (!m) {
		rc = pobox_errf(err, errlen, POBOX_ENOMEM, "out of memory creating an HTTP client");
		goto out;
	}
	rc = settings_init(&m->s, cfg, err, errlen);
	if (rc)
		goto out;
	m->max_concurrent = max_concurrent < 1 ? 1 : max_concurrent;
	m->on_done = on_done;
	m->ctx = ctx;
	m->cm = curl_multi_init();
	if (!m->cm) {
		rc = pobox_errf(err, errlen, POBOX_ENOMEM, "cannot create a curl multi handle");
		goto out;
	}
	curl_multi_setopt(m->cm, CURLMOPT_MAX_HOST_CONNECTIONS, (long)m->max_concurrent);
	curl_multi_setopt(m->cm, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)m->max_concurrent);
	curl_multi_setopt(m->cm, CURLMOPT_MAXCONNECTS, (long)m->max_concurrent);
	m->timer_at = -1;
	/* room for every connection and as many closing or opening: the
	 * socket callback then hardly ever allocates */
	m->cappfds = 2 * (size_t)m->max_concurrent + 4;
	m->pfds = pobox_calloc(m->cappfds, sizeof *m->pfds);
	m->ready = pobox_calloc(m->cappfds, sizeof *m->ready);
	if (!m->pfds || !m->ready) {
		rc = pobox_errf(err, errlen, POBOX_ENOMEM, "out of memory creating an HTTP client");
		goto out;
	}
	curl_multi_setopt(m->cm, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(m->cm, CURLMOPT_SOCKETDATA, m);
	curl_multi_setopt(m->cm, CURLMOPT_TIMERFUNCTION, on_timer);
	curl_multi_setopt(m->cm, CURLMOPT_TIMERDATA, m);
out:
	if (rc) {
		pobox_http_multi_free(m);
		return rc;
	}
	*out = m;
	return 0;
}

static void free_list(struct pobox_http_multi *m, struct xfer *x, int in_multi)
{
	while (x) {
		struct xfer *next = x->next;
		if (in_multi)
			curl_multi_remove_handle(m->cm, x->easy);
		xfer_destroy(x);
		x = next;
	}
}

void pobox_http_multi_free(struct pobox_http_multi *m)
{
	if (!m)
		return;
	free_list(m, m->running, 1);
	free_list(m, m->queue_head, 0);
	free_list(m, m->idle, 0);
	if (m->cm)
		curl_multi_cleanup(m->cm);
	pobox_free(m->pfds);
	pobox_free(m->ready);
	settings_free(&m->s);
	pobox_free(m);
}

int pobox_http_multi_set_bearer(struct pobox_http_multi *m, const char *token, char *err,
                                size_t errlen)
{
	if (m->queued || m->active)
		return pobox_errf(err, errlen, POBOX_EBUSY, "requests are in flight");
	int rc = settings_set_bearer(&m->s, token, err, errlen);
	/* idle handles point at the old lists: a full setup next time */
	for (struct xfer *x = m->idle; rc == 0 && x; x = x->next)
		x->shape = SHAPE_OTHER;
	return rc;
}

size_t pobox_http_multi_pending(const struct pobox_http_multi *m)
{
	return m->queued + m->active;
}

void pobox_http_multi_set_gate(struct pobox_http_multi *m, pobox_http_gate_fn gate)
{
	m->gate = gate;
}

size_t pobox_http_multi_cancel_queued(struct pobox_http_multi *m, pobox_http_cancel_fn fn)
{
	size_t n = 0;
	while (m->queue_head) {
		struct xfer *x = m->queue_head;
		m->queue_head = x->next;
		m->queued--;
		void *user = x->user;
		xfer_clear(x);
		x->next = m->idle;
		m->idle = x;
		if (fn)
			fn(m->ctx, user);
		n++;
	}
	m->queue_tail = NULL;
	return n;
}

int pobox_http_multi_add(struct pobox_http_multi *m, const struct pobox_http_req *req, void *user,
                         char *err, size_t errlen)
{
	struct xfer *x = NULL;
	int rc = 0;
	if (!req || !req->url || !req->url[0])
		return pobox_errf(err, errlen, POBOX_EINVALID, "HTTP request without a URL");
	if (req->headers || req->source)
		return pobox_errf(err, errlen, POBOX_EINVALID, "extra request headers and bodies "
		                  "read from a source are for the sequential client only");
	if (m->idle) {
		x = m->idle;
		m->idle = x->next;
	} else {
		x = pobox_calloc(1, sizeof *x);
		if (!x)
			goto nomem;
		x->easy = curl_easy_init();
		if (!x->easy)
			goto nomem;
	}
	x->next = NULL;
	resp_init(&x->own_resp);
	x->method = req->method;
	x->user = user;
	x->max_body = req->max_body_bytes;
	x->on_body = req->on_body;
	x->on_body_ctx = req->on_body_ctx;
	x->url = pobox_strdup(req->url);
	if (!x->url)
		goto nomem;
	x->body_len = req->body ? req->body_len : 0;
	if (req->body && !(x->body = pobox_strndup(req->body, req->body_len)))
		goto nomem;
	if (req->content_type && !(x->content_type = pobox_strdup(req->content_type)))
		goto nomem;
	if (m->queue_tail)
		m->queue_tail->next = x;
	else
		m->queue_head = x;
	m->queue_tail = x;
	m->queued++;
	goto out;
nomem:
	rc = pobox_errf(err, errlen, POBOX_ENOMEM, "out of memory queueing an HTTP request");
	if (x)
		xfer_destroy(x);
out:
	return rc;
}

/* Hands a finished transfer to the callback and parks it as idle. */
static void complete(struct pobox_http_multi *m, struct xfer *x, int rc)
{
	void *user = x->user;
	if (m->on_done)
		m->on_done(m->ctx, user, rc, &x->own_resp);
	xfer_clear(x);
	x->next = m->idle;
	m->idle = x;
}

static void unlink_running(struct pobox_http_multi *m, struct xfer *x)
{
	for (struct xfer **pp = &m->running; *pp; pp = &(*pp)->next)
		if (*pp == x) {
			*pp = x->next;
			break;
		}
	x->next = NULL;
	m->active--;
}

/* Ends every transfer in flight as aborted (the caller stops or is out of
 * time): curl drops its connection, the done callback hears
 * POBOX_HTTP_FAIL_ABORTED. */
static void abort_running(struct pobox_http_multi *m)
{
	while (m->running) {
		struct xfer *x = m->running;
		curl_multi_remove_handle(m->cm, x->easy);
		unlink_running(m, x);
		x->aborted = 1;
		x->done_rc = finish(x, CURLE_ABORTED_BY_CALLBACK, x->url, NULL, 0);
		complete(m, x, x->done_rc);
	}
}

/* Whether the gate holds queued requests back. */
static int held(struct pobox_http_multi *m)
{
	return m->gate && m->queue_head && !m->gate(m->ctx);
}

/* Moves queued requests into curl while there are free slots and the gate
 * lets them. */
static void start_queued(struct pobox_http_multi *m)
{
	if (held(m))
		return;
	while (m->queue_head && m->active < (size_t)m->max_concurrent) {
		struct xfer *x = m->queue_head;
		m->queue_head = x->next;
		if (!m->queue_head)
			m->queue_tail = NULL;
		m->queued--;
		x->next = NULL;

		struct pobox_http_req req = {
			.method = x->method,
			.url = x->url,
			.body = x->body,
			.body_len = x->body_len,
			.content_type = x->content_type,
			.max_body_bytes = x->max_body,
			.on_body = x->on_body,
			.on_body_ctx = x->on_body_ctx,
		};
		int shape = shape_of(&req), rc;
		if (shape != SHAPE_OTHER && x->shape == shape) {
			rc = setup_again(x, &m->s, &req, &x->own_resp);
		} else {
			curl_easy_reset(x->easy);
			x->shape = SHAPE_OTHER;
			rc = setup(x, &m->s, &req, &x->own_resp);
			if (rc == 0)
				x->shape = shape;
		}
		if (rc == 0 && curl_multi_add_handle(m->cm, x->easy) != CURLM_OK)
			rc = POBOX_ENOMEM;
		if (rc) {
			char where[300];
			url_for_msg(where, sizeof where, x->url);
			x->own_resp.fail = POBOX_HTTP_FAIL_OTHER;
			snprintf(x->own_resp.errmsg, sizeof x->own_resp.errmsg,
			         "cannot start the request to %.150s: %s", where, pobox_strerror(rc));
			complete(m, x, rc);
			continue;
		}
		x->next = m->running;
		m->running = x;
		m->active++;
	}
}

/* Lets curl act on the nready sockets poll() found ready (in m->ready),
 * then on its timeout if that is due.  0, or POBOX_ENOMEM / POBOX_EIO. */
static int act(struct pobox_http_multi *m, size_t nready, char *err, size_t errlen)
{
	CURLMcode mc = CURLM_OK;
	int still;
	for (size_t i = 0; i < nready && mc == CURLM_OK; i++) {
		short r = m->ready[i].revents;
		int bits = (r & (POLLIN | POLLHUP) ? CURL_CSELECT_IN : 0) | (r & POLLOUT ? CURL_CSELECT_OUT : 0) |
		           (r & (POLLERR | POLLNVAL) ? CURL_CSELECT_ERR : 0);
		mc = curl_multi_socket_action(m->cm, m->ready[i].fd, bits, &still);
	}
	/* not reset here: curl calls on_timer again only when its next timeout
	 * changes, and one due a moment later than we thought is still due */
	if (mc == CURLM_OK && m->timer_at >= 0 && mono_ms() >= m->timer_at)
		mc = curl_multi_socket_action(m->cm, CURL_SOCKET_TIMEOUT, 0, &still);
	if (m->sock_nomem || mc == CURLM_OUT_OF_MEMORY)
		return pobox_errf(err, errlen, POBOX_ENOMEM, "out of memory in the HTTP client");
	if (mc != CURLM_OK)
		return pobox_errf(err, errlen, POBOX_EIO, "curl multi: %s", curl_multi_strerror(mc));
	return 0;
}

/* Waits up to wait_ms for curl's sockets, then lets curl act on the ready
 * ones.  A socket that is no longer open is dropped from the set. */
static int wait_and_act(struct pobox_http_multi *m, int64_t wait_ms, char *err, size_t errlen)
{
	int n = poll(m->pfds, (nfds_t)m->npfds, (int)wait_ms);
	size_t nready = 0;
	if (n < 0 && errno != EINTR)
		return pobox_errf(err, errlen, POBOX_EIO, "poll: %s", strerror(errno));
	for (size_t i = 0; n > 0 && i < m->npfds; i++) {
		if (!m->pfds[i].revents)
			continue;
		m->ready[nready++] = m->pfds[i];
		if (m->pfds[i].revents & POLLNVAL)
			m->pfds[i--] = m->pfds[--m->npfds];
		else
			m->pfds[i].revents = 0;
	}
	return act(m, nready, err, errlen);
}

/* The event loop.  curl says which sockets it waits on (on_socket) and
 * when it next needs the time (on_timer); one poll() watches the sockets,
 * and curl_multi_socket_action runs only the transfers whose socket is
 * ready, told what is ready - curl_multi_perform would look at every
 * transfer and ask the kernel about each socket.  Per call that is a send,
 * a receive, curl's liveness check of the reused connection and a share of
 * one poll. */
int pobox_http_multi_run(struct pobox_http_multi *m, int64_t timeout_ms, char *err, size_t errlen)
{
	int rc = 0;
	int64_t deadline = mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	for (;;) {
		if (abort_wanted(&m->s)) {
			abort_running(m);
			break;
		}
		start_queued(m);
		if ((rc = act(m, 0, err, errlen)) != 0)
			goto out;
		/* The slots of finished transfers go to queued requests first, sent
		 * at once; the done callbacks (which read and judge the answers)
		 * run after.  A free connection then never waits for the answers
		 * of the others to be handled.  Not when an answer is other than
		 * 2xx: the callback may close the gate (a 429 says "no more
		 * calls"), and what it holds back must not be on the wire already. */
		int finished = 0, all_2xx = 1;
		struct xfer *fin = NULL, **tail = &fin;
		CURLMsg *msg;
		int left;
		while ((msg = curl_multi_info_read(m->cm, &left))) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			struct xfer *x = NULL;
			CURLcode cc = msg->data.result;
			CURL *easy = msg->easy_handle;
			curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
			curl_multi_remove_handle(m->cm, easy);
			unlink_running(m, x);
			x->done_rc = finish(x, cc, x->url, NULL, 0);
			if (x->done_rc || x->own_resp.status < 200 || x->own_resp.status > 299)
				all_2xx = 0;
			*tail = x;
			tail = &x->next;
			finished++;
		}
		if (finished && m->queued && all_2xx) {
			start_queued(m);
			rc = act(m, 0, err, errlen);
		}
		while (fin) {
			struct xfer *x = fin;
			fin = x->next;
			complete(m, x, x->done_rc);
		}
		if (rc)
			goto out;
		if (!m->active && (!m->queued || held(m)))
			break;
		if (finished && m->queued && !held(m))
			continue; /* free slots: start more before waiting */
		int64_t now = mono_ms(), wait = deadline - now;
		if (wait <= 0)
			break;
		if (wait > 1000)
			wait = 1000;
		if (m->timer_at >= 0 && m->timer_at - now < wait)
			wait = m->timer_at > now ? m->timer_at - now : 0;
		if ((rc = wait_and_act(m, wait, err, errlen)) != 0)
			goto out;
	}
out:
	return rc;
}
