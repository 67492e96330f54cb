/*
 * http.h - the small HTTP client pobox talks to Target with (libcurl).
 *
 * This module owns the wire: connections and their reuse, timeouts, TLS
 * verification, the bearer token header, bounded response bodies, the
 * Retry-After header, and sorting transport failures into a few categories.
 * It does not know Target's URLs or answers (response.h reads them) and does
 * not decide what a failure means (classify.h does).  curl/curl.h is
 * included by http.c only.
 *
 * Threads: call pobox_http_global_init() once, before any other thread
 * exists or at least before any other thread uses libcurl (curl_global_init
 * is not thread-safe on every build).  After that, each struct pobox_http
 * and struct pobox_http_multi belongs to one thread at a time; different
 * handles may be used from different threads at once.  Signals are never
 * used (CURLOPT_NOSIGNAL), so timeouts are safe in threaded programs.
 *
 * Secrets: the bearer token is copied into the handle, sent only as
 * `Authorization: Bearer <token>`, never put in an error text, never logged
 * (curl's verbose mode is never turned on), and wiped when the handle is
 * freed.  Redirects are not followed, so the header goes only to the URLs
 * the caller asks for; which URLs those may be (the Target origin family)
 * is origin.h's rule, applied by the uploader before it asks.
 */
#ifndef POBOX_HTTP_H
#define POBOX_HTTP_H

#include "clock.h"

#include <stddef.h>
#include <stdint.h>

#define POBOX_HTTP_DEFAULT_MAX_BODY (1024 * 1024)
#define POBOX_HTTP_RETRY_AFTER_MAX_MS (7LL * 24 * 3600 * 1000) /* longer is clamped */

/* Why a request got no complete HTTP answer. */
enum pobox_http_fail {
	POBOX_HTTP_FAIL_NONE = 0,  /* an answer arrived (any HTTP status) */
	POBOX_HTTP_FAIL_RESOLVE,   /* host name did not resolve */
	POBOX_HTTP_FAIL_CONNECT,   /* connection refused / unreachable */
	POBOX_HTTP_FAIL_TIMEOUT,   /* connect or total timeout ran out */
	POBOX_HTTP_FAIL_SENDRECV,  /* reset, empty reply, cut-short or garbled answer,
	                            * TLS handshake interrupted */
	POBOX_HTTP_FAIL_TLS,       /* certificate / TLS verification failed */
	POBOX_HTTP_FAIL_TOOBIG,    /* answer body over the maximum: transfer aborted */
	POBOX_HTTP_FAIL_OTHER,     /* anything else (bad URL, consumer stopped, ...) */
	POBOX_HTTP_FAIL_ABORTED,   /* the abort callback stopped it (a stop or a
	                            * deadline): it may or may not have reached
	                            * the server, and its answer was never read */
};

/* "resolve", "connect", "timeout", "send/recv", "tls", "too big", "other",
 * "aborted", "none". */
const char *pobox_http_fail_name(enum pobox_http_fail f);

/* Initialises libcurl once per process (later calls do nothing).  Returns 0
 * or POBOX_EIO with the reason in err.  Not thread-safe: see above. */
int pobox_http_global_init(char *err, size_t errlen);

struct pobox_http_config {
	int64_t connect_timeout_ms;  /* default 10000 */
	int64_t timeout_ms;          /* whole request; default 60000 */
	int verify_tls;              /* default 1; 0 only when explicitly configured */
	const char *bearer_token;    /* NULL: no Authorization header; copied */
	size_t max_body_bytes;       /* default POBOX_HTTP_DEFAULT_MAX_BODY */
	const struct pobox_clock *clock; /* for HTTP-date Retry-After; NULL: real clock.
	                                  * Borrowed: must outlive the handle. */
	const char *ca_file;         /* extra CA bundle (tests, private CAs); NULL: system */
	int compressed_answers;      /* default 1: offer gzip/deflate (Accept-Encoding);
	                              * 0 for small answers, where it only costs */
	/* Optional: asked before a request starts and while it runs (about
	 * once a second at least, from the thread running it); nonzero ends it
	 * at once with POBOX_HTTP_FAIL_ABORTED.  For a stop signal or a
	 * deadline, so nobody waits out request_timeout.  Must be cheap and
	 * thread-safe; ctx is borrowed. */
	int (*abort_fn)(void *ctx);
	void *abort_ctx;
};

/* Fills c with the defaults above. */
void pobox_http_config_init(struct pobox_http_config *c);

enum pobox_http_method {
	POBOX_HTTP_GET = 0,
	POBOX_HTTP_POST = 1,
};

/* Called with each piece of the answer body instead of collecting it into
 * resp->body.  Return 0 to go on, a negative POBOX_E* code to abort the
 * transfer: the request then returns that code. */
typedef int (*pobox_http_body_fn)(void *ctx, const char *data, size_t len);

/* A POST body read piece by piece, for bodies too big to hold (a 49 MB
 * batch is inflated while it is sent).  read copies up to cap bytes into
 * buf and returns how many, 0 only after exactly the request's body_len
 * bytes, or a negative POBOX_E* code to abort the transfer before the rest
 * is sent (the request then returns that code).  rewind starts again from
 * the first byte: curl asks when it must resend the body, as on a kept-alive
 * connection the server closed; 0 or a negative code. */
struct pobox_http_source {
	long (*read)(void *ctx, char *buf, size_t cap);
	int (*rewind)(void *ctx);
	void *ctx;
};

/* One request.  Everything is borrowed for the duration of the call (the
 * multi API copies what it needs in _add). */
struct pobox_http_req {
	enum pobox_http_method method;
	const char *url;
	const char *body;          /* POST body (may hold NULs), NULL for none */
	size_t body_len;           /* also the length of a source's body */
	const struct pobox_http_source *source; /* instead of body: sequential client
	                                         * only */
	const char *content_type;  /* POST only; NULL: application/x-www-form-urlencoded */
	size_t max_body_bytes;     /* 0: the handle's maximum */
	pobox_http_body_fn on_body; /* NULL: collect the body into resp->body */
	void *on_body_ctx;
	const char *const *headers; /* extra "Name: value" lines, NULL-terminated, or
	                             * NULL; sequential client only.  Wiped from the
	                             * client's copy after the request, so they may
	                             * carry a secret (another Authorization) */
};

/* One answer.  Owned by the caller's struct; pobox_http_resp_free releases
 * what the request allocated into it. */
struct pobox_http_resp {
	long status;               /* HTTP status, 0 when no answer arrived */
	int64_t retry_after_ms;    /* from Retry-After (seconds or HTTP-date), -1 absent */
	char *body;                /* NUL-terminated (the NUL is not counted), NULL when
	                            * streamed to on_body or empty */
	size_t body_len;           /* bytes received (also when streamed) */
	enum pobox_http_fail fail;
	char errmsg[256];          /* curl's message for a failure, "" otherwise */
};

void pobox_http_resp_free(struct pobox_http_resp *resp);

/* A client with one reusable connection (keep-alive) for sequential calls. */
struct pobox_http;

/* Creates a client.  cfg may be NULL for defaults.  Returns 0 and sets *out,
 * or POBOX_ENOMEM / POBOX_EIO with err set. */
int pobox_http_new(struct pobox_http **out, const struct pobox_http_config *cfg, char *err,
                   size_t errlen);
/* NULL is a no-op. */
void pobox_http_free(struct pobox_http *h);

/* Performs one request.  *resp is always (re)initialised, even on failure,
 * and must be released with pobox_http_resp_free.  Returns:
 *   0                  an HTTP answer arrived; resp->status says which
 *   POBOX_ETRANSIENT   no complete answer: resp->fail says why and
 *                      resp->errmsg has curl's text (also in err)
 *   POBOX_EINVALID     the request itself is unusable (no URL)
 *   POBOX_ENOMEM       out of memory
 *   other negative     the code an on_body callback returned
 * err (errlen bytes, may be NULL) names the URL's host and path, never the
 * token. */
int pobox_http_request(struct pobox_http *h, const struct pobox_http_req *req,
                       struct pobox_http_resp *resp, char *err, size_t errlen);

/* Replaces the bearer token (NULL or "": no Authorization header) for the
 * requests that follow; the old one is wiped.  0, POBOX_ECONFIG (a line
 * break in the token), POBOX_ENOMEM (the old token stays). */
int pobox_http_set_bearer(struct pobox_http *h, const char *token, char *err, size_t errlen);

/*
 * Many requests at once over a pool of reused connections (the single-update
 * lane keeps N calls in flight).  Requests are queued by _add and started by
 * _run in order, at most max_concurrent at a time (also the limit of
 * connections to one host); each finished request is handed to the done
 * callback, in completion order.
 */
struct pobox_http_multi;

/* Called once per finished request with the user pointer given to _add and
 * the outcome: rc as pobox_http_request would return it, and resp (borrowed:
 * freed after the callback returns; to keep the body, take resp->body and
 * set it to NULL). */
typedef void (*pobox_http_done_fn)(void *ctx, void *user, int rc, struct pobox_http_resp *resp);

/* max_concurrent < 1 is taken as 1. */
int pobox_http_multi_new(struct pobox_http_multi **out, const struct pobox_http_config *cfg,
                         int max_concurrent, pobox_http_done_fn on_done, void *ctx, char *err,
                         size_t errlen);
/* Frees the handle; requests still queued or in flight are dropped without
 * a callback.  NULL is a no-op. */
void pobox_http_multi_free(struct pobox_http_multi *m);

/* Queues a request.  The URL and body are copied; on_body, if set, must
 * stay valid until the request is done.  Returns 0, POBOX_EINVALID (no URL)
 * or POBOX_ENOMEM. */
int pobox_http_multi_add(struct pobox_http_multi *m, const struct pobox_http_req *req, void *user,
                         char *err, size_t errlen);

/* Runs transfers until nothing is queued or in flight, or timeout_ms has
 * passed (transfers then continue at the next call; 0 means one
 * non-blocking round).  Calls the done callback for each finished request.
 * Returns 0, or POBOX_EIO / POBOX_ENOMEM when the multi interface itself
 * failed.  When the configuration's abort_fn says so, the transfers in
 * flight end at once (done callback, POBOX_HTTP_FAIL_ABORTED) and _run
 * returns; queued ones stay queued (see the gate and _cancel_queued). */
int pobox_http_multi_run(struct pobox_http_multi *m, int64_t timeout_ms, char *err, size_t errlen);

/* Requests queued or in flight. */
size_t pobox_http_multi_pending(const struct pobox_http_multi *m);

/* As pobox_http_set_bearer, only while nothing is queued or in flight
 * (else POBOX_EBUSY). */
int pobox_http_multi_set_bearer(struct pobox_http_multi *m, const char *token, char *err,
                                size_t errlen);

/* Optional gate, asked (with the multi's ctx) before queued requests start:
 * while it answers 0 none starts, those in flight go on, and _run returns
 * once nothing is in flight.  The done callback may close it: after an
 * answer other than 2xx no queued request starts before the callback has
 * run.  It may be called from _run at any time, so it must be cheap. */
typedef int (*pobox_http_gate_fn)(void *ctx);
void pobox_http_multi_set_gate(struct pobox_http_multi *m, pobox_http_gate_fn gate);

/* Takes back every request queued but not started (never sent), in queue
 * order, calling fn (if not NULL) with the multi's ctx and each one's user
 * pointer.  Returns how many. */
typedef void (*pobox_http_cancel_fn)(void *ctx, void *user);
size_t pobox_http_multi_cancel_queued(struct pobox_http_multi *m, pobox_http_cancel_fn fn);

#endif
