/*
 * test_http.c - the HTTP client against a tiny loopback server written here
 * with plain POSIX sockets: answers, Retry-After, bounded bodies, every
 * transport failure category, the bearer header, exact POST bytes,
 * connection reuse, and the multi client.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "alloc.h"
#include "clock.h"
#include "http.h"
#include "pobox.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* strcasestr is a GNU extension; the build is plain POSIX. */
static char *ci_find(const char *hay, const char *needle)
{
	size_t n = strlen(needle);
	for (; *hay; hay++)
		if (strncasecmp(hay, needle, n) == 0)
			return (char *)hay;
	return NULL;
}

/* ---- the loopback server ---- */

enum mode {
	M_CANNED,  /* read a request, write `canned`, keep the connection */
	M_CLOSE,   /* read a request, close without a word */
	M_SLEEP,   /* read a request, sleep delay_ms, write `canned` */
	M_ECHO,    /* answer 200 with the request path as body, after delay_ms;
	            * a path /status/NNN is answered with status NNN */
};

#define MAX_CONN_THREADS 64

struct srv {
	int fd;
	int port;
	pthread_t accept_thr;
	pthread_t conn_thr[MAX_CONN_THREADS];
	int nthr;
	volatile int stop;
	enum mode mode;
	const char *canned;
	size_t canned_len;
	int delay_ms;

	pthread_mutex_t mu;
	char last_req[65536];
	size_t last_req_len;
	int conns, requests, inflight, max_inflight;
};

struct conn {
	struct srv *s;
	int fd;
};

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

/* Reads one request (headers and a Content-Length body) into buf.  Returns
 * its length, 0 on EOF or stop. */
static size_t read_request(struct srv *s, int fd, char *buf, size_t cap)
{
	size_t len = 0;
	for (;;) {
		buf[len] = '\0';
		char *hend = strstr(buf, "\r\n\r\n");
		if (hend) {
			size_t hlen = (size_t)(hend - buf) + 4;
			size_t clen = 0;
			char *cl = ci_find(buf, "\r\nContent-Length:");
			if (cl && cl < hend)
				clen = (size_t)strtoul(cl + 17, NULL, 10);
			if (len >= hlen + clen)
				return len;
		}
		if (len + 1 >= cap)
			return len;
		struct pollfd p = {fd, POLLIN, 0};
		int r = poll(&p, 1, 50);
		if (s->stop)
			return 0;
		if (r <= 0)
			continue;
		ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
		if (n <= 0)
			return 0;
		len += (size_t)n;
	}
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	struct srv *s = c->s;
	char *buf = malloc(1 << 20);
	for (;;) {
		size_t n = read_request(s, c->fd, buf, 1 << 20);
		if (n == 0)
			break;
		pthread_mutex_lock(&s->mu);
		s->last_req_len = n < sizeof s->last_req - 1 ? n : sizeof s->last_req - 1;
		memcpy(s->last_req, buf, s->last_req_len);
		s->last_req[s->last_req_len] = '\0';
		s->requests++;
		if (++s->inflight > s->max_inflight)
			s->max_inflight = s->inflight;
		pthread_mutex_unlock(&s->mu);

		int keep = 1;
		if (s->mode == M_CLOSE) {
			keep = 0;
		} else if (s->mode == M_SLEEP) {
			for (int t = 0; t < s->delay_ms && !s->stop; t += 10)
				sleep_ms(10);
			write_all(c->fd, s->canned, s->canned_len);
			keep = 0;
		} else if (s->mode == M_ECHO) {
			if (s->delay_ms)
				sleep_ms(s->delay_ms);
			char path[256] = "";
			sscanf(buf, "%*s %255s", path);
			int status = 200;
			if (strncmp(path, "/status/", 8) == 0)
				status = atoi(path + 8);
			char out[512];
			int k = snprintf(out, sizeof out,
			                 "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n"
			                 "Content-Type: text/plain\r\n\r\n%s",
			                 status, strlen(path), path);
			write_all(c->fd, out, (size_t)k);
		} else {
			write_all(c->fd, s->canned, s->canned_len);
			keep = strstr(s->canned, "Connection: close") == NULL;
		}
		pthread_mutex_lock(&s->mu);
		s->inflight--;
		pthread_mutex_unlock(&s->mu);
		if (!keep)
			break;
	}
	close(c->fd);
	free(buf);
	free(c);
	return NULL;
}

static void *accept_main(void *arg)
{
	struct srv *s = arg;
	while (!s->stop) {
		struct pollfd p = {s->fd, POLLIN, 0};
		if (poll(&p, 1, 50) <= 0)
			continue;
		int fd = accept(s->fd, NULL, NULL);
		if (fd < 0)
			continue;
		pthread_mutex_lock(&s->mu);
		s->conns++;
		int slot = s->nthr < MAX_CONN_THREADS ? s->nthr++ : -1;
		pthread_mutex_unlock(&s->mu);
		if (slot < 0) {
			close(fd);
			continue;
		}
		struct conn *c = malloc(sizeof *c);
		c->s = s;
		c->fd = fd;
		pthread_create(&s->conn_thr[slot], NULL, conn_main, c);
	}
	return NULL;
}

static struct srv *srv_start(enum mode mode, const char *canned, int delay_ms)
{
	struct srv *s = calloc(1, sizeof *s);
	s->mode = mode;
	s->canned = canned;
	s->canned_len = canned ? strlen(canned) : 0;
	s->delay_ms = delay_ms;
	pthread_mutex_init(&s->mu, NULL);
	s->fd = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in a = {0};
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(s->fd, 64), 0);
	socklen_t al = sizeof a;
	getsockname(s->fd, (struct sockaddr *)&a, &al);
	s->port = ntohs(a.sin_port);
	pthread_create(&s->accept_thr, NULL, accept_main, s);
	return s;
}

static void srv_stop(struct srv *s)
{
	s->stop = 1;
	pthread_join(s->accept_thr, NULL);
	for (int i = 0; i < s->nthr; i++)
		pthread_join(s->conn_thr[i], NULL);
	close(s->fd);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

static void url(char *buf, size_t n, struct srv *s, const char *path)
{
	snprintf(buf, n, "http://127.0.0.1:%d%s", s->port, path);
}

/* ---- tests ---- */

static int setup_global(void **state)
{
	(void)state;
	return pobox_http_global_init(NULL, 0) == 0 ? 0 : -1;
}

static struct pobox_http *client(const char *token, int64_t timeout_ms,
                                 const struct pobox_clock *clk)
{
	struct pobox_http_config cfg;
	struct pobox_http *h = NULL;
	char err[256];
	pobox_http_config_init(&cfg);
	cfg.bearer_token = token;
	if (timeout_ms)
		cfg.timeout_ms = timeout_ms;
	cfg.clock = clk;
	assert_int_equal(pobox_http_new(&h, &cfg, err, sizeof err), 0);
	return h;
}

static void test_200_with_body_and_reuse(void **state)
{
	(void)state;
	struct srv *s = srv_start(M_CANNED,
	                          "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 44\r\n\r\n"
	                          "<response><success>true</success></response>",
	                          0);
	struct pobox_http *h = client(NULL, 0, NULL);
	char u[128], err[256] = "";
	url(u, sizeof u, s, "/m2/demo/profile/update?mbox3rdPartyId=a&profile.x=1");
	struct pobox_http_req req = {.method = POBOX_HTTP_GET, .url = u};
	struct pobox_http_resp resp;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(pobox_http_request(h, &req, &resp, err, sizeof err), 0);
		assert_int_equal(resp.status, 200);
		assert_int_equal(resp.fail, POBOX_HTTP_FAIL_NONE);
		assert_int_equal(resp.retry_after_ms, -1);
		assert_int_equal(resp.body_len, 44);
		assert_string_equal(resp.body, "<response><success>true</success></response>");
		assert_string_equal(resp.errmsg, "");
		pobox_http_resp_free(&resp);
		assert_null(resp.body);
	}
	/* One connection for three requests: kept alive and reused. */
	assert_int_equal(s->conns, 1);
	assert_int_equal(s->requests, 3);
	/* What went on the wire. */
	assert_non_null(strstr(s->last_req, "GET /m2/demo/profile/update?mbox3rdPartyId=a&profile.x=1 "
	                                    "HTTP/1.1\r\n"));
	assert_non_null(strstr(s->last_req, "\r\nUser-Agent: pobox/" POBOX_VERSION "\r\n"));
	assert_non_null(strstr(s->last_req, "\r\nAccept-Encoding: "));
	assert_null(ci_find(s->last_req, "Authorization"));
	pobox_http_free(h);
	srv_stop(s);
}

static void test_gzip_answer(void **state)
{
	(void)state;
	static const char gz[] =
		"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 50\r\n\r\n"
		"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff\xb3\x29\x4a\x2d\x2e\xc8\xcf\x2b\x4e\xb5\xb3"
		"\x29\x2e\x4d\x4e\x4e\x2d\x2e\xb6\x2b\x29\x2a\x4d\xb5\xd1\x87\xf1\x6c\xf4\xe1\x2a\x00"
		"\xdd\x73\xcc\x52\x2c\x00\x00\x00";
	struct srv *s = srv_start(M_CANNED, NULL, 0);
	s->canned = gz;
	s->canned_len = sizeof gz - 1;
	struct pobox_http *h = client(NULL, 0, NULL);
	char u[128], err[256] = "";
	url(u, sizeof u, s, "/x");
	struct pobox_http_req req = {.url = u};
	struct pobox_http_resp resp;
	assert_int_equal(pobox_http_request(h, &req, &resp, err, sizeof err), 0);
	assert_int_equal(resp.status, 200);
	assert_string_equal(resp.body, "<response><success>true</success></response>");
	pobox_http_resp_free(&resp);
	pobox_http_free(h);
	srv_stop(s);
}

static void test_503_retry_after_seconds(void **state)
{
	(void)state;
	struct srv *s = srv_start(M_CANNED,
	                          "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\n"
	                          "Content-Length: 4\r\n\r\nbusy",
	                          0);
	struct pobox_http *h = client(NULL, 0, NULL);
	char u[128], err[256] = "";
	url(u, sizeof u, s, "/m2/demo/v2/profile/batchUpdate");
	struct pobox_http_req req = {.method = POBOX_HTTP_POST, .url = u, .body = "batch=x", .body_len = 7};
	struct pobox_http_resp resp;
	assert_int_equal(pobox_http_request(h, &req, &resp, err, sizeof err), 0);
	assert_int_equal(resp.status, 503);
	assert_int_equal(resp.retry_after_ms, 7000);
	assert_string_equal(resp.body, "busy");
	pobox_http_resp_free(&resp);
	pobox_http_free(h);
	srv_stop(s);
}

static void test_retry_after_http_date(void **state)
{
	(void)state;
	/* Wed, 21 Oct 2026 07:28:00 GMT = 1792567680 */
	struct srv *s = srv_start(M_CANNED,
	                          "HTTP/1.1 429 Too Many Requests\r\n"
	                          "Retry-After:   Wed, 21 Oct 2026 07:28:00 GMT  \r\n"
	                          "Content-Length: 0\r\n\r\n",
	                          0);
	int64_t now = INT64_C(1792567680000) - 90500;
	struct pobox_clock clk = {pobox_clock_manual_ms, &now};
	struct pobox_http *h = client(NULL, 0, &clk);
	char u[128], err[256] = "";
	url(u, sizeof u, s, "/p");
	struct pobox_http_req req = {.url = u};
	struct pobox_http_resp resp;
	assert_int_equal(pobox_http_request(h, &req, &resp, err, sizeof err), 0);
	assert_int_equal(resp.status, 429);
	assert_int_equal(resp.retry_after_ms, 90500);
	assert_int_equal(resp.body_len, 0);
	pobox_http_resp_free(&resp);
	/* A date in the past: 0, not negative. */
	now = INT64_C(1792567680000) + 5000;
	assert_int_equal(pobox_http_request(h, &req, &resp, err, sizeof err), 0);
	assert_int_equal(resp.retry_after_ms, 0);
	pobox_http_resp_free(&resp);
	pobox_http_free(h);
	srv_stop(s);

	/* Garbage: absent.  Huge: clamped. */
	s = srv_start(M_CANNED, "HTTP/1.1 503 X\r\nRetry-After: soon\r\nContent-Length: 0\r\n\r\n", 0);
	h = client(NULL, 0, NULL);
	url(u, sizeof u, s, "/p");
	assert_int_equal(pobox_http_request(h, &req, &resp, err, sizeof err), 0);
	assert_int_equal(resp.retry_after_ms, -1);
	pobox_http_resp_free(&resp);
	pobox_http_free(h);
	srv_stop(s);
	s = srv_start(M_CANNED,
	              "HTTP/1.1 503 X\r\nretry-after: 99999999999999\r\nContent-Length: 0\r\n\r\n", 0);
	h = client(NULL, 0, NULL);
	url(u, sizeof u, s, "/p");
	assert_int_equal(pobox_http_request(h, &req, &resp, err, sizeof err), 0);
	assert_int_equal(resp.retry_after_ms, POBOX_HTTP_RETRY_AFTER_MAX_MS);
	pobox_http_resp_free(&resp);
	pobox_http_free(h);
	srv_stop(s);
}

static char big_answer[6000];

static int count_chunks(void *ctx, const char *data, size_t len)
{
	size_t *n = ctx;
	(void)data;
	*n += len;
	return 0;
}

static int stop_reading(void *ctx, const char *data, size_t len)
{
	(void)ctx, (void)data, (void)len;
	return POBOX_ETRANSIENT;
}

static void test_body_limit(void **state)
{
	(void)state;
	int k = snprintf(big_answer, sizeof big_answer,
	                 "HTTP/1.1 200 OK\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n");
	memset(big_answer + k, 'b', 5000);
	big_answer[k + 5000] = '\0';
	struct srv *s = srv_start(M_CANNED, big_answer, 0);
	struct pobox_http_config cfg;
	struct pobox_http *h = NULL;
	char u[128], err[256] = "";
	pobox_http_config_init(&cfg);
	cfg.max_body_bytes = 1000;
	assert_int_equal(pobox_http_new(&h, &cfg, err, sizeof err), 0);
	url(u, sizeof u, s, "/big");
	struct pobox_http_req req = {.url = u};
	struct pobox_http_resp resp;
	assert_int_equal(pobox_http_request(h, &req, &resp, err, sizeof err), POBOX_ETRANSIENT);
	assert_int_equal(resp.fail, POBOX_HTTP_FAIL_TOOBIG);
	assert_true(resp.body_len <= 1000);
	assert_non_null(strstr(err, "GET http://127.0.0.1:"));
	assert_non_null(strstr(err, "/big: too big: answer body larger than 1000 bytes"));
	pobox_http_resp_free(&resp);

	/* Exactly at the limit is fine; a per-request maximum overrides. */
	req.max_body_bytes = 5000;
	assert_int_equal(pobox_http_request(h, &req, &resp, err, sizeof err), 0);
	assert_int_equal(resp.body_len, 5000);
	assert_int_equal(resp.body[4999], 'b');
	pobox_http_resp_free(&resp);
	req.max_body_bytes = 4999;
	assert_int_equal(pobox_http_request(h, &req, &resp, err, sizeof err), POBOX_ETRANSIENT);
	assert_int_equal(resp.fail, POBOX_HTTP_FAIL_TOOBIG);
	pobox_http_resp_free(&resp);

	/* Streaming: chunks go to the callback, nothing is collected. */
	size_t seen = 0;
	req.max_body_bytes = 0;
	req.on_body = count_chunks;
	req.on_body_ctx = &seen;
	assert_int_equal(pobox_http_request(h, &req, &resp, err, sizeof err), POBOX_ETRANSIENT);
	assert_int_equal(resp.fail, POBOX_HTTP_FAIL_TOOBIG);
	req.max_body_bytes = 10000;
	seen = 0;
	pobox_http_resp_free(&resp);
	assert_int_equal(pobox_http_request(h, &req, &resp, err, sizeof err), 0);
	assert_int_equal(seen, 5000);
	assert_int_equal(resp.body_len, 5000);
	assert_null(resp.body);
	pobox_http_resp_free(&resp);
	/* The reader can stop the transfer; its code comes back. */
	req.on_body = stop_reading;
	assert_int_equal(pobox_http_request(h, &req, &resp, err, sizeof err), POBOX_ETRANSIENT);
	assert_int_equal(resp.fail, POBOX_HTTP_FAIL_OTHER);
	assert_non_null(strstr(resp.errmsg, "stopped by the body reader"));
	pobox_http_resp_free(&resp);
	pobox_http_free(h);
	srv_stop(s);
}

static void test_closed_without_answer(void **state)
{
	(void)state;
	struct srv *s = srv_start(M_CLOSE, NULL, 0);
	struct pobox_http *h = client("sekrit-token-123", 0, NULL);
	char u[128], err[512] = "";
	url(u, sizeof u, s, "/m2/demo/profile/update?mbox3rdPartyId=x");
	struct pobox_http_req req = {.url = u};
	struct pobox_http_resp resp;
	assert_int_equal(pobox_http_request(h, &req, &resp, err, sizeof err), POBOX_ETRANSIENT);
	assert_int_equal(resp.fail, POBOX_HTTP_FAIL_SENDRECV);
	assert_int_equal(resp.status, 0);
	assert_true(resp.errmsg[0] != '\0');
	assert_non_null(strstr(err, "send/recv"));
	/* The URL is named without its query; the token appears nowhere. */
	assert_non_null(strstr(err, "/m2/demo/profile/update: "));
	assert_null(strstr(err, "mbox3rdPartyId"));
	assert_null(strstr(err, "sekrit"));
	assert_null(strstr(resp.errmsg, "sekrit"));
	/* but it was sent */
	assert_non_null(strstr(s->last_req, "\r\nAuthorization: Bearer sekrit-token-123\r\n"));
	pobox_http_resp_free(&resp);
	pobox_http_free(h);
	srv_stop(s);
}

static void test_connect_refused(void **state)
{
	(void)state;
	/* A port that was free a moment ago: nothing listens there. */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {0};
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	socklen_t al = sizeof a;
	getsockname(fd, (struct sockaddr *)&a, &al);
	close(fd);
	char u[128], err[256] = "";
	snprintf(u, sizeof u, "http://127.0.0.1:%d/x", ntohs(a.sin_port));
	struct pobox_http *h = client("tok", 0, NULL);
	struct pobox_http_req req = {.url = u};
	struct pobox_http_resp resp;
	assert_int_equal(pobox_http_request(h, &req, &resp, err, sizeof err), POBOX_ETRANSIENT);
	assert_int_equal(resp.fail, POBOX_HTTP_FAIL_CONNECT);
	assert_non_null(strstr(err, ": connect: "));
	pobox_http_resp_free(&resp);

	/* A name that cannot resolve (.invalid is reserved, RFC 2606). */
	struct pobox_http_req bad = {.url = "http://pobox-test.invalid/x"};
	assert_int_equal(pobox_http_request(h, &bad, &resp, err, sizeof err), POBOX_ETRANSIENT);
	assert_int_equal(resp.fail, POBOX_HTTP_FAIL_RESOLVE);
	pobox_http_resp_free(&resp);

	/* Not a URL we will fetch. */
	struct pobox_http_req ftp = {.url = "ftp://127.0.0.1/x"};
	assert_int_equal(pobox_http_request(h, &ftp, &resp, err, sizeof err), POBOX_ETRANSIENT);
	assert_int_equal(resp.fail, POBOX_HTTP_FAIL_OTHER);
	pobox_http_resp_free(&resp);
	struct pobox_http_req none = {.url = NULL};
	assert_int_equal(pobox_http_request(h, &none, &resp, err, sizeof err), POBOX_EINVALID);
	pobox_http_resp_free(&resp);
	pobox_http_free(h);
}

static void test_timeout(void **state)
{
	(void)state;
	struct srv *s = srv_start(M_SLEEP,
	                          "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
	                          3000);
	struct pobox_http *h = client(NULL, 300, NULL);
	char u[128], err[256] = "";
	url(u, sizeof u, s, "/slow");
	struct pobox_http_req req = {.url = u};
	struct pobox_http_resp resp;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(pobox_http_request(h, &req, &resp, err, sizeof err), POBOX_ETRANSIENT);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_int_equal(resp.fail, POBOX_HTTP_FAIL_TIMEOUT);
	assert_non_null(strstr(err, "timeout"));
	double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	assert_true(took < 2.5);
	pobox_http_resp_free(&resp);
	pobox_http_free(h);
	srv_stop(s);
}

static void test_post_exact_bytes(void **state)
{
	(void)state;
	struct srv *s = srv_start(M_CANNED,
	                          "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 0);
	struct pobox_http *h = client("tok", 0, NULL);
	char u[128], err[256] = "";
	url(u, sizeof u, s, "/m2/demo/v2/profile/batchUpdate");
	/* Over 1024 bytes (curl would otherwise wait for 100-continue), with
	 * NUL, CR, LF and form-special bytes. */
	static char body[3000];
	for (size_t i = 0; i < sizeof body; i++)
		body[i] = (char)("batch=thirdPartyId,a\n%2B+&=\r\0\xc3\xa9"[i % 29]);
	struct pobox_http_req req = {
		.method = POBOX_HTTP_POST, .url = u, .body = body, .body_len = sizeof body};
	struct pobox_http_resp resp;
	assert_int_equal(pobox_http_request(h, &req, &resp, err, sizeof err), 0);
	assert_int_equal(resp.status, 200);
	pobox_http_resp_free(&resp);
	assert_non_null(strstr(s->last_req, "POST /m2/demo/v2/profile/batchUpdate HTTP/1.1\r\n"));
	assert_non_null(strstr(s->last_req, "\r\nContent-Type: application/x-www-form-urlencoded\r\n"));
	assert_non_null(strstr(s->last_req, "\r\nContent-Length: 3000\r\n"));
	assert_non_null(strstr(s->last_req, "\r\nAuthorization: Bearer tok\r\n"));
	assert_null(ci_find(s->last_req, "Expect:"));
	char *hend = strstr(s->last_req, "\r\n\r\n");
	assert_non_null(hend);
	size_t hlen = (size_t)(hend - s->last_req) + 4;
	assert_int_equal(s->last_req_len - hlen, sizeof body);
	assert_memory_equal(s->last_req + hlen, body, sizeof body);

	/* Another content type, and an empty POST. */
	req.content_type = "text/csv";
	req.body = NULL;
	assert_int_equal(pobox_http_request(h, &req, &resp, err, sizeof err), 0);
	pobox_http_resp_free(&resp);
	assert_non_null(strstr(s->last_req, "\r\nContent-Type: text/csv\r\n"));
	assert_non_null(strstr(s->last_req, "\r\nContent-Length: 0\r\n"));
	pobox_http_free(h);
	srv_stop(s);
}

/* Per-request header lines (the Admin API's Authorization, X-Api-Key and
 * Accept) and replacing the bearer token between requests. */
static void test_headers_and_bearer(void **state)
{
	(void)state;
	struct srv *s = srv_start(M_ECHO, NULL, 0);
	struct pobox_http *h = client(NULL, 0, NULL);
	struct pobox_http_resp resp;
	char u[128], err[256] = "";
	const char *lines[] = {"Authorization: Bearer ims-1", "X-Api-Key: cid",
	                       "Accept: application/vnd.adobe.target.v1+json", NULL};
	url(u, sizeof u, s, "/acme/target/authentication/token");
	struct pobox_http_req req = {.method = POBOX_HTTP_GET, .url = u, .headers = lines};
	assert_int_equal(pobox_http_request(h, &req, &resp, err, sizeof err), 0);
	pobox_http_resp_free(&resp);
	assert_non_null(strstr(s->last_req, "\r\nAuthorization: Bearer ims-1\r\n"));
	assert_non_null(strstr(s->last_req, "\r\nX-Api-Key: cid\r\n"));
	assert_non_null(strstr(s->last_req, "\r\nAccept: application/vnd.adobe.target.v1+json\r\n"));
	assert_null(ci_find(s->last_req, "\r\nAccept: */*"));
	/* a POST with them: the lines, then its content type */
	req.method = POBOX_HTTP_POST;
	req.content_type = "application/vnd.adobe.target.v1+json";
	assert_int_equal(pobox_http_request(h, &req, &resp, err, sizeof err), 0);
	pobox_http_resp_free(&resp);
	assert_non_null(strstr(s->last_req, "\r\nX-Api-Key: cid\r\n"));
	assert_non_null(strstr(s->last_req, "\r\nContent-Type: application/vnd.adobe.target.v1+json\r\n"));
	/* the next request without them has none of them */
	req = (struct pobox_http_req){.method = POBOX_HTTP_GET, .url = u};
	assert_int_equal(pobox_http_request(h, &req, &resp, err, sizeof err), 0);
	pobox_http_resp_free(&resp);
	assert_null(ci_find(s->last_req, "Authorization:"));
	assert_null(ci_find(s->last_req, "X-Api-Key:"));
	/* a bearer set later, replaced, removed */
	assert_int_equal(pobox_http_set_bearer(h, "tok-1", err, sizeof err), 0);
	assert_int_equal(pobox_http_request(h, &req, &resp, err, sizeof err), 0);
	pobox_http_resp_free(&resp);
	assert_non_null(strstr(s->last_req, "\r\nAuthorization: Bearer tok-1\r\n"));
	assert_int_equal(pobox_http_set_bearer(h, "tok-2", err, sizeof err), 0);
	req.method = POBOX_HTTP_POST;
	assert_int_equal(pobox_http_request(h, &req, &resp, err, sizeof err), 0);
	pobox_http_resp_free(&resp);
	assert_non_null(strstr(s->last_req, "\r\nAuthorization: Bearer tok-2\r\n"));
	assert_null(strstr(s->last_req, "tok-1"));
	/* a token with a line break is refused; the old one stays */
	assert_int_equal(pobox_http_set_bearer(h, "x\r\nX-Evil: 1", err, sizeof err), POBOX_ECONFIG);
	assert_int_equal(pobox_http_request(h, &req, &resp, err, sizeof err), 0);
	pobox_http_resp_free(&resp);
	assert_non_null(strstr(s->last_req, "\r\nAuthorization: Bearer tok-2\r\n"));
	assert_null(strstr(s->last_req, "Evil"));
	assert_int_equal(pobox_http_set_bearer(h, NULL, err, sizeof err), 0);
	assert_int_equal(pobox_http_request(h, &req, &resp, err, sizeof err), 0);
	pobox_http_resp_free(&resp);
	assert_null(ci_find(s->last_req, "Authorization:"));
	pobox_http_free(h);
	srv_stop(s);
}

static void test_config(void **state)
{
	(void)state;
	struct pobox_http_config cfg;
	pobox_http_config_init(&cfg);
	assert_int_equal(cfg.verify_tls, 1);
	assert_int_equal(cfg.max_body_bytes, 1024 * 1024);
	assert_null(cfg.bearer_token);
	struct pobox_http *h = NULL;
	char err[256] = "";
	cfg.bearer_token = "a\r\nX-Evil: 1";
	assert_int_equal(pobox_http_new(&h, &cfg, err, sizeof err), POBOX_ECONFIG);
	assert_null(h);
	assert_null(strstr(err, "Evil"));
	/* Allocation failures while creating a client. */
	cfg.bearer_token = "tok";
	cfg.ca_file = "/nonexistent/ca.pem";
	int ok = 0;
	for (long n = 0; n < 20 && !ok; n++) {
		pobox_alloc_fail_after(n);
		int rc = pobox_http_new(&h, &cfg, err, sizeof err);
		pobox_alloc_fail_after(-1);
		if (rc == 0)
			ok = 1;
		else
			assert_int_equal(rc, POBOX_ENOMEM);
	}
	assert_true(ok);
	pobox_http_free(h);
	pobox_http_free(NULL);
	assert_string_equal(pobox_http_fail_name(POBOX_HTTP_FAIL_SENDRECV), "send/recv");
	assert_string_equal(pobox_http_fail_name(POBOX_HTTP_FAIL_TOOBIG), "too big");
}

/* ---- multi ---- */

struct done_log {
	int n;
	int ok[64];
	int rc[64];
	long status[64];
	enum pobox_http_fail fail[64];
	char body[64][32];
	char *kept;  /* one body taken over by the callback */
};

static void on_done(void *ctx, void *user, int rc, struct pobox_http_resp *resp)
{
	struct done_log *d = ctx;
	intptr_t i = (intptr_t)user;
	d->n++;
	d->ok[i]++;
	d->rc[i] = rc;
	d->status[i] = resp->status;
	d->fail[i] = resp->fail;
	snprintf(d->body[i], sizeof d->body[i], "%s", resp->body ? resp->body : "");
	if (i == 7 && !d->kept) {
		d->kept = resp->body;
		resp->body = NULL;
	}
}

static void test_multi(void **state)
{
	(void)state;
	struct srv *s = srv_start(M_ECHO, NULL, 20);
	struct pobox_http_multi *m = NULL;
	struct pobox_http_config cfg;
	struct done_log d;
	char u[128], err[256] = "";
	memset(&d, 0, sizeof d);
	pobox_http_config_init(&cfg);
	cfg.bearer_token = "tok";
	assert_int_equal(pobox_http_multi_new(&m, &cfg, 4, on_done, &d, err, sizeof err), 0);
	for (intptr_t i = 0; i < 20; i++) {
		char path[32];
		snprintf(path, sizeof path, "/u/%d", (int)i);
		url(u, sizeof u, s, path);
		struct pobox_http_req req = {.method = i % 2 ? POBOX_HTTP_POST : POBOX_HTTP_GET,
		                             .url = u, .body = "a=1", .body_len = 3};
		assert_int_equal(pobox_http_multi_add(m, &req, (void *)i, err, sizeof err), 0);
	}
	/* u was reused for every add: the multi copied it. */
	memset(u, 'z', sizeof u - 1);
	assert_int_equal(pobox_http_multi_pending(m), 20);
	/* A non-blocking round leaves work in flight. */
	assert_int_equal(pobox_http_multi_run(m, 0, err, sizeof err), 0);
	assert_true(pobox_http_multi_pending(m) > 0);
	assert_int_equal(pobox_http_multi_run(m, 10000, err, sizeof err), 0);
	assert_int_equal(pobox_http_multi_pending(m), 0);
	assert_int_equal(d.n, 20);
	for (int i = 0; i < 20; i++) {
		char want[32];
		snprintf(want, sizeof want, "/u/%d", i);
		assert_int_equal(d.ok[i], 1);
		assert_int_equal(d.rc[i], 0);
		assert_int_equal(d.status[i], 200);
		assert_string_equal(d.body[i], want);
	}
	assert_string_equal(d.kept, "/u/7");
	pobox_free(d.kept);
	d.kept = (char *)1; /* keep no more */
	/* At most 4 connections and 4 requests at once; more than one used. */
	assert_true(s->conns <= 4);
	assert_true(s->max_inflight <= 4);
	assert_true(s->max_inflight >= 2);
	int conns_before = s->conns;

	/* A second round reuses the kept-alive connections. */
	memset(&d, 0, sizeof d);
	d.kept = (char *)1;
	for (intptr_t i = 0; i < 8; i++) {
		url(u, sizeof u, s, "/again");
		struct pobox_http_req req = {.url = u};
		assert_int_equal(pobox_http_multi_add(m, &req, (void *)i, err, sizeof err), 0);
	}
	assert_int_equal(pobox_http_multi_run(m, 10000, err, sizeof err), 0);
	assert_int_equal(d.n, 8);
	assert_int_equal(s->conns, conns_before);
	assert_non_null(strstr(s->last_req, "\r\nAuthorization: Bearer tok\r\n"));

	/* A failing request among good ones is reported, not fatal. */
	memset(&d, 0, sizeof d);
	d.kept = (char *)1;
	url(u, sizeof u, s, "/ok");
	struct pobox_http_req good = {.url = u};
	struct pobox_http_req bad = {.url = "http://pobox-test.invalid/x"};
	assert_int_equal(pobox_http_multi_add(m, &good, (void *)0, err, sizeof err), 0);
	assert_int_equal(pobox_http_multi_add(m, &bad, (void *)1, err, sizeof err), 0);
	struct pobox_http_req none = {.url = ""};
	assert_int_equal(pobox_http_multi_add(m, &none, (void *)2, err, sizeof err), POBOX_EINVALID);
	assert_int_equal(pobox_http_multi_run(m, 10000, err, sizeof err), 0);
	assert_int_equal(d.n, 2);
	assert_int_equal(d.rc[0], 0);
	assert_int_equal(d.rc[1], POBOX_ETRANSIENT);
	assert_int_equal(d.fail[1], POBOX_HTTP_FAIL_RESOLVE);

	/* Freeing with work queued drops it cleanly. */
	assert_int_equal(pobox_http_multi_add(m, &good, (void *)0, err, sizeof err), 0);
	pobox_http_multi_free(m);
	pobox_http_multi_free(NULL);
	srv_stop(s);
}

/* One connection, one easy handle, reused across requests of different
 * shapes (GET, form POST, POST of another type): each request must go out
 * exactly as asked, whatever the handle was set up for before. */
static void test_multi_shapes(void **state)
{
	(void)state;
	struct srv *s = srv_start(M_ECHO, NULL, 0);
	struct pobox_http_multi *m = NULL;
	struct pobox_http_config cfg;
	struct done_log d;
	char u[128], err[256] = "";
	static const struct {
		enum pobox_http_method method;
		const char *path, *body, *type;
	} seq[] = {
		{POBOX_HTTP_GET, "/g1", NULL, NULL},
		{POBOX_HTTP_GET, "/g2?x=1", NULL, NULL},
		{POBOX_HTTP_POST, "/p1", "a=1", NULL},
		{POBOX_HTTP_POST, "/p2", "bb=22", NULL},
		{POBOX_HTTP_GET, "/g3", NULL, NULL},
		{POBOX_HTTP_POST, "/p3", "plain words", "text/plain"},
		{POBOX_HTTP_POST, "/p4", "c=333", "application/x-www-form-urlencoded"},
		{POBOX_HTTP_POST, "/p5", "d=4", NULL},
		{POBOX_HTTP_GET, "/g4", NULL, NULL},
	};
	pobox_http_config_init(&cfg);
	cfg.bearer_token = "tok";
	cfg.compressed_answers = 0;
	assert_int_equal(pobox_http_multi_new(&m, &cfg, 1, on_done, &d, err, sizeof err), 0);
	for (size_t i = 0; i < sizeof seq / sizeof seq[0]; i++) {
		memset(&d, 0, sizeof d);
		d.kept = (char *)1;
		url(u, sizeof u, s, seq[i].path);
		struct pobox_http_req req = {.method = seq[i].method, .url = u, .body = seq[i].body,
		                             .body_len = seq[i].body ? strlen(seq[i].body) : 0,
		                             .content_type = seq[i].type};
		assert_int_equal(pobox_http_multi_add(m, &req, (void *)0, err, sizeof err), 0);
		assert_int_equal(pobox_http_multi_run(m, 10000, err, sizeof err), 0);
		assert_int_equal(d.n, 1);
		assert_int_equal(d.status[0], 200);
		assert_string_equal(d.body[0], seq[i].path);
		char line[160];
		snprintf(line, sizeof line, "%s %s HTTP/1.1\r\n",
		         seq[i].method == POBOX_HTTP_POST ? "POST" : "GET", seq[i].path);
		assert_memory_equal(s->last_req, line, strlen(line));
		assert_non_null(strstr(s->last_req, "\r\nAuthorization: Bearer tok\r\n"));
		assert_non_null(strstr(s->last_req, "\r\nUser-Agent: pobox/" POBOX_VERSION "\r\n"));
		/* compressed_answers = 0: nothing offered */
		assert_null(ci_find(s->last_req, "\r\nAccept-Encoding:"));
		const char *end = strstr(s->last_req, "\r\n\r\n");
		assert_non_null(end);
		if (seq[i].method == POBOX_HTTP_POST) {
			char ct[160];
			snprintf(ct, sizeof ct, "\r\nContent-Type: %s\r\n",
			         seq[i].type ? seq[i].type : "application/x-www-form-urlencoded");
			assert_non_null(strstr(s->last_req, ct));
			assert_string_equal(end + 4, seq[i].body);
		} else {
			assert_null(ci_find(s->last_req, "\r\nContent-Type:"));
			assert_null(ci_find(s->last_req, "\r\nContent-Length:"));
			assert_string_equal(end + 4, "");
		}
	}
	assert_int_equal(s->conns, 1);
	pobox_http_multi_free(m);
	srv_stop(s);
}

/* A new bearer on a multi handle reaches requests of a shape an easy
 * handle was already set up for; not while requests are queued. */
static void test_multi_set_bearer(void **state)
{
	(void)state;
	struct srv *s = srv_start(M_ECHO, NULL, 0);
	struct pobox_http_multi *m = NULL;
	struct pobox_http_config cfg;
	struct done_log d;
	char u[128], err[256] = "";
	pobox_http_config_init(&cfg);
	cfg.bearer_token = "old-token";
	assert_int_equal(pobox_http_multi_new(&m, &cfg, 2, on_done, &d, err, sizeof err), 0);
	url(u, sizeof u, s, "/g");
	/* GET, then (new token) GET again -- the same shape, so the easy
	 * handle would be reused as it was set up -- then a POST */
	for (int round = 0; round < 3; round++) {
		struct pobox_http_req req = {.method = round == 2 ? POBOX_HTTP_POST : POBOX_HTTP_GET,
		                             .url = u, .body = "a=1", .body_len = round == 2 ? 3 : 0};
		memset(&d, 0, sizeof d);
		d.kept = (char *)1;
		assert_int_equal(pobox_http_multi_add(m, &req, (void *)0, err, sizeof err), 0);
		if (round == 2)
			assert_int_equal(pobox_http_multi_set_bearer(m, "x", err, sizeof err), POBOX_EBUSY);
		assert_int_equal(pobox_http_multi_run(m, 10000, err, sizeof err), 0);
		assert_int_equal(d.n, 1);
		assert_non_null(strstr(s->last_req, round == 0 ? "\r\nAuthorization: Bearer old-token\r\n"
		                                                : "\r\nAuthorization: Bearer new-token\r\n"));
		if (round == 0)
			assert_int_equal(pobox_http_multi_set_bearer(m, "new-token", err, sizeof err), 0);
	}
	assert_null(strstr(s->last_req, "old-token"));
	/* extra header lines are for the sequential client */
	const char *lines[] = {"X-Api-Key: k", NULL};
	struct pobox_http_req req = {.method = POBOX_HTTP_GET, .url = u, .headers = lines};
	assert_int_equal(pobox_http_multi_add(m, &req, (void *)0, err, sizeof err), POBOX_EINVALID);
	pobox_http_multi_free(m);
	srv_stop(s);
}

static void test_multi_concurrency_one(void **state)
{
	(void)state;
	struct srv *s = srv_start(M_ECHO, NULL, 5);
	struct pobox_http_multi *m = NULL;
	struct done_log d;
	char u[128], err[256] = "";
	memset(&d, 0, sizeof d);
	d.kept = (char *)1;
	assert_int_equal(pobox_http_multi_new(&m, NULL, 0, on_done, &d, err, sizeof err), 0);
	for (intptr_t i = 0; i < 6; i++) {
		url(u, sizeof u, s, "/one");
		struct pobox_http_req req = {.url = u};
		assert_int_equal(pobox_http_multi_add(m, &req, (void *)i, err, sizeof err), 0);
	}
	assert_int_equal(pobox_http_multi_run(m, 10000, err, sizeof err), 0);
	assert_int_equal(d.n, 6);
	assert_int_equal(s->max_inflight, 1);
	assert_int_equal(s->conns, 1);
	pobox_http_multi_free(m);
	srv_stop(s);
}

/* The gate: a done callback that closes it on a 429 holds back every
 * queued request - none may be on the wire already (the slot freed by the
 * 429 is not refilled before the callback has judged it) - and the held
 * ones are taken back, never sent, in order. */
struct gated {
	struct done_log d;
	int open;
	intptr_t cancelled[16];
	int ncancelled;
};

static void gated_done(void *ctx, void *user, int rc, struct pobox_http_resp *resp)
{
	struct gated *g = ctx;
	on_done(&g->d, user, rc, resp);
	if (resp->status == 429)
		g->open = 0;
}

static int gated_gate(void *ctx)
{
	return ((struct gated *)ctx)->open;
}

static void gated_cancel(void *ctx, void *user)
{
	struct gated *g = ctx;
	g->cancelled[g->ncancelled++] = (intptr_t)user;
}

static void test_multi_gate(void **state)
{
	(void)state;
	static const char *paths[] = {"/status/200", "/status/200", "/status/429", "/a", "/b", "/c"};
	{
		struct srv *s = srv_start(M_ECHO, NULL, 0);
		struct pobox_http_multi *m = NULL;
		struct gated g;
		char u[128], err[256] = "";
		memset(&g, 0, sizeof g);
		g.d.kept = (char *)1;
		g.open = 1;
		/* one connection: the old code started /a when the 429 came back,
		 * before the callback saw it */
		assert_int_equal(pobox_http_multi_new(&m, NULL, 1, gated_done, &g, err, sizeof err), 0);
		pobox_http_multi_set_gate(m, gated_gate);
		for (intptr_t i = 0; i < 6; i++) {
			url(u, sizeof u, s, paths[i]);
			struct pobox_http_req req = {.url = u};
			assert_int_equal(pobox_http_multi_add(m, &req, (void *)i, err, sizeof err), 0);
		}
		assert_int_equal(pobox_http_multi_run(m, 10000, err, sizeof err), 0);
		/* _run returned with nothing in flight, though requests wait */
		assert_int_equal(g.d.n, 3);
		assert_int_equal(g.d.status[2], 429);
		assert_int_equal(pobox_http_multi_pending(m), 3);
		pthread_mutex_lock(&s->mu);
		int seen = s->requests;
		pthread_mutex_unlock(&s->mu);
		assert_int_equal(seen, 3);
		/* still held on a second run */
		assert_int_equal(pobox_http_multi_run(m, 100, err, sizeof err), 0);
		assert_int_equal(g.d.n, 3);
		assert_int_equal(pobox_http_multi_cancel_queued(m, gated_cancel), 3);
		assert_int_equal(g.ncancelled, 3);
		for (int i = 0; i < 3; i++)
			assert_int_equal(g.cancelled[i], 3 + i);
		assert_int_equal(pobox_http_multi_pending(m), 0);
		assert_int_equal(pobox_http_multi_cancel_queued(m, gated_cancel), 0);
		/* open again: the handle (and its reused easy handles) still works */
		g.open = 1;
		url(u, sizeof u, s, "/again");
		struct pobox_http_req req = {.url = u};
		assert_int_equal(pobox_http_multi_add(m, &req, (void *)9, err, sizeof err), 0);
		assert_int_equal(pobox_http_multi_run(m, 10000, err, sizeof err), 0);
		assert_int_equal(g.d.n, 4);
		assert_string_equal(g.d.body[9], "/again");
		pthread_mutex_lock(&s->mu);
		seen = s->requests;
		pthread_mutex_unlock(&s->mu);
		assert_int_equal(seen, 4);
		pobox_http_multi_free(m);
		srv_stop(s);
	}
}

static void test_multi_alloc_failures(void **state)
{
	(void)state;
	struct srv *s = srv_start(M_ECHO, NULL, 0);
	char u[128], err[256] = "";
	url(u, sizeof u, s, "/m");
	int ok = 0;
	for (long n = 0; n < 40 && !ok; n++) {
		struct pobox_http_multi *m = NULL;
		struct done_log d;
		memset(&d, 0, sizeof d);
		d.kept = (char *)1;
		struct pobox_http_req req = {.method = POBOX_HTTP_POST, .url = u, .body = "x=1",
		                             .body_len = 3, .content_type = "text/plain"};
		pobox_alloc_fail_after(n);
		int rc = pobox_http_multi_new(&m, NULL, 2, on_done, &d, err, sizeof err);
		if (rc == 0)
			rc = pobox_http_multi_add(m, &req, (void *)0, err, sizeof err);
		if (rc == 0)
			rc = pobox_http_multi_run(m, 5000, err, sizeof err);
		pobox_alloc_fail_after(-1);
		if (rc == 0 && d.n == 1 && d.rc[0] == 0) {
			ok = 1;
			assert_string_equal(d.body[0], "/m");
		} else if (rc == 0) {
			assert_int_equal(d.rc[0], POBOX_ENOMEM); /* the body buffer */
		} else {
			assert_int_equal(rc, POBOX_ENOMEM);
		}
		pobox_http_multi_free(m);
	}
	assert_true(ok);
	srv_stop(s);
}

/* The abort hook: "stop" once the monotonic clock passes at_ms. */
struct abort_at {
	int64_t at_ms;
	int calls;
};

static int64_t mono_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int abort_after(void *ctx)
{
	struct abort_at *a = ctx;
	a->calls++;
	return mono_now_ms() >= a->at_ms;
}

/* A server that takes 8 s to answer; the hook says stop after 300 ms:
 * both clients end the transfer within a second or two, as aborted, and
 * a request asked while the hook says stop is not even started. */
static void test_abort(void **state)
{
	(void)state;
	struct srv *s = srv_start(M_SLEEP,
	                          "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
	                          8000);
	struct pobox_http_config cfg;
	struct pobox_http *h = NULL;
	struct pobox_http_multi *m = NULL;
	struct abort_at a = {mono_now_ms() + 300, 0};
	struct done_log d;
	char u[128], err[256] = "";
	url(u, sizeof u, s, "/slow");
	pobox_http_config_init(&cfg);
	cfg.timeout_ms = 30000;
	cfg.abort_fn = abort_after;
	cfg.abort_ctx = &a;
	assert_int_equal(pobox_http_new(&h, &cfg, err, sizeof err), 0);
	struct pobox_http_req req = {.url = u};
	struct pobox_http_resp resp;
	int64_t t0 = mono_now_ms();
	assert_int_equal(pobox_http_request(h, &req, &resp, err, sizeof err), POBOX_ETRANSIENT);
	int64_t took = mono_now_ms() - t0;
	assert_int_equal(resp.fail, POBOX_HTTP_FAIL_ABORTED);
	assert_int_equal(resp.status, 0);
	assert_true(took >= 250 && took < 2500);
	assert_true(a.calls > 0);
	pobox_http_resp_free(&resp);
	/* the hook says stop already: nothing goes out */
	int before = s->requests;
	assert_int_equal(pobox_http_request(h, &req, &resp, err, sizeof err), POBOX_ETRANSIENT);
	assert_int_equal(resp.fail, POBOX_HTTP_FAIL_ABORTED);
	pobox_http_resp_free(&resp);
	sleep_ms(100);
	assert_int_equal(s->requests, before);
	pobox_http_free(h);

	/* the multi client: both transfers in flight end, reported aborted */
	memset(&d, 0, sizeof d);
	d.kept = (char *)1;
	a.at_ms = mono_now_ms() + 300;
	assert_int_equal(pobox_http_multi_new(&m, &cfg, 4, on_done, &d, err, sizeof err), 0);
	for (intptr_t i = 0; i < 2; i++)
		assert_int_equal(pobox_http_multi_add(m, &req, (void *)i, err, sizeof err), 0);
	t0 = mono_now_ms();
	while (pobox_http_multi_pending(m) && mono_now_ms() - t0 < 10000)
		assert_int_equal(pobox_http_multi_run(m, 50, err, sizeof err), 0);
	took = mono_now_ms() - t0;
	assert_true(took >= 250 && took < 2500);
	assert_int_equal(d.n, 2);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(d.rc[i], POBOX_ETRANSIENT);
		assert_int_equal(d.fail[i], POBOX_HTTP_FAIL_ABORTED);
	}
	pobox_http_multi_free(m);
	srv_stop(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_200_with_body_and_reuse),
		cmocka_unit_test(test_gzip_answer),
		cmocka_unit_test(test_503_retry_after_seconds),
		cmocka_unit_test(test_retry_after_http_date),
		cmocka_unit_test(test_body_limit),
		cmocka_unit_test(test_closed_without_answer),
		cmocka_unit_test(test_connect_refused),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_post_exact_bytes),
		cmocka_unit_test(test_headers_and_bearer),
		cmocka_unit_test(test_config),
		cmocka_unit_test(test_multi),
		cmocka_unit_test(test_multi_shapes),
		cmocka_unit_test(test_multi_set_bearer),
		cmocka_unit_test(test_multi_concurrency_one),
		cmocka_unit_test(test_multi_gate),
		cmocka_unit_test(test_multi_alloc_failures),
		cmocka_unit_test(test_abort),
	};
	return cmocka_run_group_tests(tests, setup_global, NULL);
}
