/*
 * fleet_pg.c - the coordinator client (see fleet_pg.h).
 *
 * Every call takes a deadline on the monotonic clock and never blocks past
 * it: the connection is non-blocking, and each wait is a poll() on libpq's
 * socket with the time left.  When time runs out the connection is closed
 * (a query may still complete on the server; the protocol's sequence
 * numbers make the retry harmless) and the call returns POBOX_ETRANSIENT.
 * libpq's own connect_timeout does not apply to PQconnectPoll, and
 * statement_timeout is the server's: neither can bound a server that stops
 * answering, so neither is relied on (both are still set, as a second
 * line).  tcp_user_timeout and keepalives let the kernel notice a dead
 * peer on an idle connection.
 */
#include "fleet_pg.h"
#include "alloc.h"
#include "error.h"
#include "migrations.h"
#include "pobox.h"

#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

extern const struct pobox_migration pobox_fleet_migrations[];

struct pobox_fleet_conn {
	PGconn *pg;
	char where[160];
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* libpq's messages end in newlines and may hold several lines: one line. */
static void one_line(char *dst, size_t len, const char *src)
{
	size_t o = 0;
	for (; src && *src && o + 1 < len; src++) {
		char ch = *src == '\n' || *src == '\r' || *src == '\t' ? ' ' : *src;
		if (ch == ' ' && (o == 0 || dst[o - 1] == ' '))
			continue;
		dst[o++] = ch;
	}
	while (o && dst[o - 1] == ' ')
		o--;
	dst[o] = '\0';
}

int pobox_fleet_pg_check_url(const char *url, char *err, size_t errlen)
{
	char *msg = NULL, line[300];
	PQconninfoOption *opts = PQconninfoParse(url ? url : "", &msg);
	int rc = 0;
	if (!opts) {
		one_line(line, sizeof line, msg ? msg : "out of memory");
		PQfreemem(msg);
		return pobox_errf(err, errlen, POBOX_ECONFIG, "fleet_url is not a PostgreSQL connection "
		                  "string or URI: %s", line);
	}
	for (PQconninfoOption *o = opts; o->keyword; o++)
		if (strcmp(o->keyword, "password") == 0 && o->val && *o->val)
			rc = pobox_errf(err, errlen, POBOX_ECONFIG,
			                "fleet_url holds a password: put it in a passfile (passfile=..., "
			                "~/.pgpass) or in the file named by fleet_password_file instead");
	PQconninfoFree(opts);
	return rc;
}

void pobox_fleet_pg_describe(const char *url, char *buf, size_t len)
{
	const char *host = NULL, *port = NULL, *db = NULL;
	PQconninfoOption *opts = PQconninfoParse(url ? url : "", NULL);
	for (PQconninfoOption *o = opts; o && o->keyword; o++) {
		if (!o->val || !*o->val)
			continue;
		if (strcmp(o->keyword, "host") == 0 || (strcmp(o->keyword, "hostaddr") == 0 && !host))
			host = o->val;
		else if (strcmp(o->keyword, "port") == 0)
			port = o->val;
		else if (strcmp(o->keyword, "dbname") == 0)
			db = o->val;
	}
	snprintf(buf, len, "%s:%s/%s", host ? host : "(local)", port ? port : "5432", db ? db : "(default)");
	PQconninfoFree(opts);
}

/* Waits until the socket is ready (for writing when write, else reading)
 * or the deadline passes: 1 ready, 0 timed out, -1 error. */
static int wait_sock(PGconn *pg, int write, int64_t deadline)
{
	int fd = PQsocket(pg);
	if (fd < 0)
		return -1;
	for (;;) {
		int64_t left = deadline - mono_ms();
		if (left <= 0)
			return 0;
		struct pollfd p = {.fd = fd, .events = (short)(write ? POLLOUT : POLLIN)};
		int r = poll(&p, 1, (int)(left > 1000000 ? 1000000 : left));
		if (r > 0)
			return 1;
		if (r == 0)
			continue;
		if (errno != EINTR)
			return -1;
	}
}

static void ignore_notice(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

int pobox_fleet_pg_connect(struct pobox_fleet_conn **out, const char *url, const char *password,
                           const char *name, int64_t timeout_ms, char *err, size_t errlen)
{
	char secs[32], ms[32], opts[80], app[80], line[400];
	struct pobox_fleet_conn *c;
	int64_t deadline = mono_ms() + timeout_ms;
	int rc;

	if ((rc = pobox_fleet_pg_check_url(url, err, errlen)) != 0)
		return rc;
	if (!(c = pobox_calloc(1, sizeof *c)))
		return pobox_errf(err, errlen, POBOX_ENOMEM, "out of memory");
	pobox_fleet_pg_describe(url, c->where, sizeof c->where);
	snprintf(secs, sizeof secs, "%lld", (long long)(timeout_ms < 2000 ? 2 : (timeout_ms + 999) / 1000));
	snprintf(ms, sizeof ms, "%lld", (long long)timeout_ms);
	snprintf(opts, sizeof opts, "-c statement_timeout=%lld", (long long)timeout_ms);
	snprintf(app, sizeof app, "pobox %.60s", name ? name : "");
	/* in order: what the URL may override, the URL, what it may not */
	const char *kw[] = {"connect_timeout", "tcp_user_timeout", "keepalives", "keepalives_idle",
	                    "keepalives_interval", "keepalives_count", "application_name", "options",
	                    "dbname", password ? "password" : NULL, NULL};
	const char *val[] = {secs, ms, "1", "10", "5", "3", app, opts, url, password, NULL};
	c->pg = PQconnectStartParams(kw, val, 1);
	if (!c->pg) {
		pobox_free(c);
		return pobox_errf(err, errlen, POBOX_ENOMEM, "out of memory");
	}
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	while (PQstatus(c->pg) != CONNECTION_BAD && st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
		int w = wait_sock(c->pg, st == PGRES_POLLING_WRITING, deadline);
		if (w <= 0) {
			rc = pobox_errf(err, errlen, POBOX_ETRANSIENT, "fleet coordinator %s: no connection "
			                "within %lld ms", c->where, (long long)timeout_ms);
			goto fail;
		}
		st = PQconnectPoll(c->pg);
	}
	if (PQstatus(c->pg) != CONNECTION_OK) {
		const char *m = PQerrorMessage(c->pg);
		one_line(line, sizeof line, m);
		/* refused credentials or names are for the operator, not retries */
		int cfg = PQconnectionNeedsPassword(c->pg) || strstr(m, "authentication failed") ||
		          strstr(m, "does not exist") || strstr(m, "no password supplied") ||
		          strstr(m, "pg_hba.conf") || strstr(m, "certificate");
		rc = pobox_errf(err, errlen, cfg ? POBOX_ECONFIG : POBOX_ETRANSIENT,
		                "fleet coordinator %s: %s", c->where, line);
		goto fail;
	}
	/* the server's notices (a new epoch, ...) are the host's to log, in
	 * its own words: not libpq's raw lines on stderr */
	PQsetNoticeProcessor(c->pg, ignore_notice, NULL);
	if (PQsetnonblocking(c->pg, 1) != 0) {
		rc = pobox_errf(err, errlen, POBOX_EIO, "fleet coordinator %s: cannot make the connection "
		                "non-blocking", c->where);
		goto fail;
	}
	*out = c;
	return 0;
fail:
	pobox_fleet_pg_close(c);
	return rc;
}

void pobox_fleet_pg_close(struct pobox_fleet_conn *c)
{
	if (!c)
		return;
	if (c->pg)
		PQfinish(c->pg);
	pobox_free(c);
}

/* The verdict on a failed statement. */
static int sql_error(struct pobox_fleet_conn *c, const PGresult *res, char *err, size_t errlen)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	const char *prim = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	const char *hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
	char m[400], h[300];
	int rc = POBOX_EIO;
	one_line(m, sizeof m, prim ? prim : PQresultErrorMessage(res));
	one_line(h, sizeof h, hint);
	if (state) {
		if (strcmp(state, "PBX01") == 0 || strcmp(state, "PBX02") == 0 ||
		    strcmp(state, "42883") == 0 || strcmp(state, "3F000") == 0 ||
		    strcmp(state, "42P01") == 0 || strncmp(state, "42501", 5) == 0 ||
		    strncmp(state, "28", 2) == 0)
			rc = POBOX_ECONFIG;
		else if (strncmp(state, "08", 2) == 0 || strncmp(state, "57", 2) == 0 ||
		         strncmp(state, "53", 2) == 0 || strcmp(state, "40001") == 0 ||
		         strcmp(state, "40P01") == 0 || strcmp(state, "55P03") == 0)
			rc = POBOX_ETRANSIENT;
	}
	if (strcmp(state ? state : "", "42883") == 0 || strcmp(state ? state : "", "3F000") == 0)
		snprintf(h, sizeof h, "is the coordinator's schema there? run pobox fleet init");
	if (h[0])
		return pobox_errf(err, errlen, rc, "fleet coordinator %s: %s (%s)", c->where, m, h);
	return pobox_errf(err, errlen, rc, "fleet coordinator %s: %s", c->where, m);
}

/* Sends one statement (params as text; NULL for SQL NULL) and collects its
 * result by the deadline.  simple: no parameters, several statements
 * allowed (their last result is returned).  *out: the result of a
 * successful statement (PQclear it). */
static int run(struct pobox_fleet_conn *c, const char *sql, int n, const char *const *vals,
               int simple, int64_t deadline, PGresult **out, char *err, size_t errlen)
{
	PGconn *pg = c->pg;
	PGresult *keep = NULL, *bad = NULL, *r;
	char line[300];
	int rc = 0, f;

	*out = NULL;
	if (!pg || PQstatus(pg) != CONNECTION_OK)
		return pobox_errf(err, errlen, POBOX_ETRANSIENT, "fleet coordinator %s: not connected",
		                  c->where);
	int sent = simple ? PQsendQuery(pg, sql) : PQsendQueryParams(pg, sql, n, NULL, vals, NULL, NULL, 0);
	if (!sent)
		goto broken;
	while ((f = PQflush(pg)) == 1) {
		int w = wait_sock(pg, 1, deadline);
		if (w == 0)
			goto late;
		if (w < 0 || !PQconsumeInput(pg))
			goto broken;
	}
	if (f < 0)
		goto broken;
	for (;;) {
		while (PQisBusy(pg)) {
			int w = wait_sock(pg, 0, deadline);
			if (w == 0)
				goto late;
			if (w < 0 || !PQconsumeInput(pg))
				goto broken;
		}
		if (!(r = PQgetResult(pg)))
			break;
		ExecStatusType st = PQresultStatus(r);
		if (st == PGRES_FATAL_ERROR && !bad) {
			bad = r;
		} else if (!bad && (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)) {
			PQclear(keep);
			keep = r;
		} else {
			PQclear(r);
		}
	}
	if (bad) {
		rc = sql_error(c, bad, err, errlen);
		PQclear(bad);
		PQclear(keep);
		return rc;
	}
	if (!keep)
		goto broken;
	*out = keep;
	return 0;
late:
	PQclear(keep);
	PQclear(bad);
	PQfinish(c->pg); /* the server may still run it: the protocol allows for that */
	c->pg = NULL;
	return pobox_errf(err, errlen, POBOX_ETRANSIENT, "fleet coordinator %s: no answer in time",
	                  c->where);
broken:
	one_line(line, sizeof line, PQerrorMessage(pg));
	PQclear(keep);
	PQclear(bad);
	PQfinish(c->pg);
	c->pg = NULL;
	return pobox_errf(err, errlen, POBOX_ETRANSIENT, "fleet coordinator %s: %s", c->where,
	                  line[0] ? line : "connection lost");
}

/* ---- text helpers ------------------------------------------------------ */

static int64_t col64(const PGresult *r, const char *name, int64_t dflt)
{
	int i = PQfnumber(r, name);
	if (i < 0 || PQgetisnull(r, 0, i))
		return dflt;
	return strtoll(PQgetvalue(r, 0, i), NULL, 10);
}

static double coldbl(const PGresult *r, const char *name)
{
	int i = PQfnumber(r, name);
	return i < 0 || PQgetisnull(r, 0, i) ? 0 : strtod(PQgetvalue(r, 0, i), NULL);
}

static void coltext(const PGresult *r, int row, const char *name, char *buf, size_t len)
{
	int i = PQfnumber(r, name);
	snprintf(buf, len, "%s", i < 0 || PQgetisnull(r, row, i) ? "" : PQgetvalue(r, row, i));
}

static int colbool(const PGresult *r, int row, const char *name)
{
	int i = PQfnumber(r, name);
	return i >= 0 && !PQgetisnull(r, row, i) && PQgetvalue(r, row, i)[0] == 't';
}

/* A growable text buffer for array literals. */
struct tbuf {
	char *p;
	size_t n, cap;
	int oom;
};

static void tb_add(struct tbuf *b, const char *s)
{
	size_t l = strlen(s);
	if (b->oom)
		return;
	if (b->n + l + 1 > b->cap) {
		size_t cap = (b->cap ? b->cap * 2 : 64) + l;
		char *np = pobox_realloc(b->p, cap);
		if (!np) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->n, s, l + 1);
	b->n += l;
}

/* "{a,b,c}" of n values picked by get(i). */
static char *array_lit(size_t n, int64_t (*get)(const void *, size_t), const void *src)
{
	struct tbuf b = {0};
	char num[32];
	tb_add(&b, "{");
	for (size_t i = 0; i < n; i++) {
		snprintf(num, sizeof num, "%s%lld", i ? "," : "", (long long)get(src, i));
		tb_add(&b, num);
	}
	tb_add(&b, "}");
	if (b.oom) {
		pobox_free(b.p);
		return NULL;
	}
	return b.p;
}

static int64_t get_id(const void *s, size_t i) { return ((const int64_t *)s)[i]; }
static int64_t get_lease(const void *s, size_t i) { return ((const struct pobox_fleet_use *)s)[i].lease; }
static int64_t get_k(const void *s, size_t i) { return ((const struct pobox_fleet_use *)s)[i].k; }
static int64_t get_n(const void *s, size_t i) { return ((const struct pobox_fleet_use *)s)[i].n; }

static char *lanes_lit(const struct pobox_fleet_use *u, size_t n)
{
	struct tbuf b = {0};
	tb_add(&b, "{");
	for (size_t i = 0; i < n; i++) {
		tb_add(&b, i ? "," : "");
		tb_add(&b, u[i].bulk ? "bulk" : "single");
	}
	tb_add(&b, "}");
	if (b.oom) {
		pobox_free(b.p);
		return NULL;
	}
	return b.p;
}

/* Parses "{1,2,3}" (bigint[] as text). */
static int parse_ids(const char *s, int64_t **out, size_t *n)
{
	size_t cap = 0;
	*out = NULL;
	*n = 0;
	if (!s || *s != '{')
		return 0;
	for (const char *p = s + 1; *p && *p != '}';) {
		char *end;
		long long v = strtoll(p, &end, 10);
		if (end == p)
			break;
		if (*n == cap) {
			size_t nc = cap ? cap * 2 : 8;
			int64_t *ni = pobox_realloc(*out, nc * sizeof *ni);
			if (!ni)
				return POBOX_ENOMEM;
			*out = ni;
			cap = nc;
		}
		(*out)[(*n)++] = v;
		p = *end == ',' ? end + 1 : end;
	}
	return 0;
}

/* ---- the protocol ------------------------------------------------------ */

static void fmt64(char *buf, size_t len, int64_t v) { snprintf(buf, len, "%lld", (long long)v); }
static void fmtd(char *buf, size_t len, double v) { snprintf(buf, len, "%.17g", v); }

static const char JOIN_SQL[] =
	"SELECT * FROM pobox_fleet.join($1, $2, $3::bigint, $4::integer, $5::float8, $6::bigint,"
	" $7::bigint, $8::bigint, $9::bigint, $10::bigint, $11::float8, $12::float8, $13::integer)";

static int call_join(struct pobox_fleet_conn *c, const struct pobox_fleet_proposal *p,
                     struct pobox_fleet_account *a, int64_t deadline, char *err, size_t errlen)
{
	char v[13][40];
	const char *vals[13];
	PGresult *r;
	int rc;
	fmt64(v[2], 40, p->budget);
	fmt64(v[3], 40, p->bulk_limit);
	fmtd(v[4], 40, p->margin_share);
	fmt64(v[5], 40, p->window_ms);
	fmt64(v[6], 40, p->bulk_window_ms);
	fmt64(v[7], 40, p->lease_ms);
	fmt64(v[8], 40, p->reserve_ms);
	fmt64(v[9], 40, p->permit_ms);
	fmtd(v[10], 40, p->reserve_share);
	fmtd(v[11], 40, p->urgent_share);
	fmt64(v[12], 40, p->fleet_size);
	vals[0] = p->account;
	vals[1] = p->host;
	for (int i = 2; i < 13; i++)
		vals[i] = v[i];
	if ((rc = run(c, JOIN_SQL, 13, vals, 0, deadline, &r, err, errlen)) != 0)
		return rc;
	if (PQntuples(r) != 1) {
		PQclear(r);
		return pobox_errf(err, errlen, POBOX_EIO, "fleet coordinator %s: join returned %d rows",
		                  c->where, PQntuples(r));
	}
	memset(a, 0, sizeof *a);
	a->schema_version = (int)col64(r, "schema_version", 0);
	coltext(r, 0, "epoch", a->epoch, sizeof a->epoch);
	a->serial = col64(r, "serial", 0);
	a->now_ms = col64(r, "now_ms", 0);
	a->budget = col64(r, "budget", 0);
	a->margin = col64(r, "margin", 0);
	a->window_ms = col64(r, "window_ms", 0);
	a->bucket_ms = col64(r, "bucket_ms", 1);
	a->bulk_limit = col64(r, "bulk_limit", 0);
	a->bulk_window_ms = col64(r, "bulk_window_ms", 60000);
	a->bulk_bucket_ms = col64(r, "bulk_bucket_ms", 1000);
	a->lease_ms = col64(r, "lease_ms", 0);
	a->reserve_ms = col64(r, "reserve_ms", 0);
	a->permit_ms = col64(r, "permit_ms", 0);
	a->fleet_size = col64(r, "fleet_size", 0);
	a->reserve_share = coldbl(r, "reserve_share");
	a->urgent_share = coldbl(r, "urgent_share");
	PQclear(r);
	return 0;
}

int pobox_fleet_pg_join(struct pobox_fleet_conn *c, const struct pobox_fleet_proposal *p,
                        struct pobox_fleet_account *a, int64_t timeout_ms, char *err,
                        size_t errlen)
{
	int rc = call_join(c, p, a, mono_ms() + timeout_ms, err, errlen);
	if (rc == 0 && a->schema_version < POBOX_FLEET_SCHEMA_VERSION)
		rc = pobox_errf(err, errlen, POBOX_ECONFIG, "fleet coordinator %s: its schema is version "
		                "%d, this pobox needs %d: run pobox fleet init", c->where,
		                a->schema_version, POBOX_FLEET_SCHEMA_VERSION);
	return rc;
}

static const char GRANT_SQL[] =
	"SELECT * FROM pobox_fleet.grant($1, $2, $3, $4::bigint, $5, $6::bigint, $7::bigint,"
	" $8::boolean, $9::boolean, $10::bigint, $11::integer, $12::bigint, $13::bigint, $14::bigint[],"
	" $15::bigint[], $16::bigint[], $17::bigint[], $18::text[], $19::bigint[], $20::bigint[])";

static void grant_part(const PGresult *r, const char *id, const char *n, const char *k,
                       const char *ms, struct pobox_fleet_grant *g)
{
	g->id = col64(r, id, 0);
	g->n = col64(r, n, 0);
	g->k = col64(r, k, 0);
	g->life_ms = col64(r, ms, 0);
	if (g->n <= 0)
		g->id = 0;
}

int pobox_fleet_pg_grant(struct pobox_fleet_conn *c, const struct pobox_fleet_request *q,
                         struct pobox_fleet_response *o, int64_t timeout_ms, char *err,
                         size_t errlen)
{
	char v[12][40], st[40];
	const char *vals[20];
	char *arr[7] = {0};
	PGresult *r = NULL;
	int rc;

	memset(o, 0, sizeof *o);
	fmt64(v[0], 40, q->seq);
	fmt64(v[1], 40, q->serial);
	fmt64(v[2], 40, q->want);
	fmt64(v[3], 40, q->permits);
	fmt64(v[4], 40, q->horizon_ms);
	fmt64(v[5], 40, q->bulk_horizon_ms);
	fmt64(v[6], 40, q->extend);
	arr[0] = array_lit(q->nclose, get_id, q->close);
	arr[1] = array_lit(q->nuses, get_lease, q->uses);
	arr[2] = array_lit(q->nuses, get_k, q->uses);
	arr[3] = array_lit(q->nuses, get_n, q->uses);
	int hist = q->send_hist || q->nhist;
	if (hist) {
		arr[4] = lanes_lit(q->hist, q->nhist);
		arr[5] = array_lit(q->nhist, get_k, q->hist);
		arr[6] = array_lit(q->nhist, get_n, q->hist);
	}
	for (int i = 0; i < 7; i++)
		if ((i < 4 || hist) && !arr[i]) {
			rc = pobox_errf(err, errlen, POBOX_ENOMEM, "out of memory");
			goto out;
		}
	const char *tmp[20] = {q->account, q->host, q->incarnation, v[0], q->epoch, v[1], v[2],
	                       q->urgent ? "t" : "f", q->reserve ? "t" : "f", q->extend ? v[6] : NULL,
	                       v[3], v[4], v[5], arr[0], arr[1], arr[2], arr[3], arr[4], arr[5], arr[6]};
	memcpy(vals, tmp, sizeof vals);
	if ((rc = run(c, GRANT_SQL, 20, vals, 0, mono_ms() + timeout_ms, &r, err, errlen)) != 0)
		goto out;
	if (PQntuples(r) != 1) {
		rc = pobox_errf(err, errlen, POBOX_EIO, "fleet coordinator %s: grant returned %d rows",
		                c->where, PQntuples(r));
		goto out;
	}
	coltext(r, 0, "status", st, sizeof st);
	o->status = strcmp(st, "ok") == 0 ? POBOX_FLEET_OK : strcmp(st, "replay") == 0 ? POBOX_FLEET_REPLAY
	            : strcmp(st, "epoch") == 0 ? POBOX_FLEET_EPOCH : POBOX_FLEET_STALE;
	coltext(r, 0, "epoch", o->epoch, sizeof o->epoch);
	o->serial = col64(r, "serial", 0);
	o->now_ms = col64(r, "now_ms", 0);
	o->grant_ms = col64(r, "grant_ms", o->now_ms);
	o->next_seq = col64(r, "next_seq", q->seq + 1);
	grant_part(r, "lease", "lease_n", "lease_k", "lease_ms", &o->lease);
	grant_part(r, "reserve", "reserve_n", "reserve_k", "reserve_ms", &o->reserve);
	grant_part(r, "permit", "permit_n", "permit_k", "permit_ms", &o->permit);
	o->spent = col64(r, "spent", 0);
	o->free = col64(r, "free", 0);
	o->refill = col64(r, "refill", 0);
	o->active = col64(r, "active", 1);
	o->single_free_ms = col64(r, "single_free_ms", -1);
	o->bulk_used = col64(r, "bulk_used", 0);
	o->bulk_free_ms = col64(r, "bulk_free_ms", -1);
	o->learning = colbool(r, 0, "learning");
	o->hosts = col64(r, "hosts", 0);
	int ci = PQfnumber(r, "closed");
	if (ci >= 0 && !PQgetisnull(r, 0, ci) &&
	    (rc = parse_ids(PQgetvalue(r, 0, ci), &o->closed, &o->nclosed)) != 0)
		rc = pobox_errf(err, errlen, rc, "out of memory");
out:
	PQclear(r);
	for (int i = 0; i < 7; i++)
		pobox_free(arr[i]);
	if (rc)
		pobox_fleet_pg_response_free(o);
	return rc;
}

void pobox_fleet_pg_response_free(struct pobox_fleet_response *r)
{
	pobox_free(r->closed);
	r->closed = NULL;
	r->nclosed = 0;
}

/* ---- operators --------------------------------------------------------- */

static int simple(struct pobox_fleet_conn *c, const char *sql, int64_t deadline, char *err,
                  size_t errlen)
{
	PGresult *r;
	int rc = run(c, sql, 0, NULL, 1, deadline, &r, err, errlen);
	PQclear(r);
	return rc;
}

static const char UPDATE_ACCOUNT_SQL[] =
	"UPDATE pobox_fleet.accounts SET budget = $2::bigint, bulk_limit = $3::integer,"
	" margin = ceil($2::bigint * $4::float8)::bigint, window_ms = $5::bigint,"
	" bucket_ms = greatest($5::bigint / 1440, 1), bulk_window_ms = $6::bigint,"
	" bulk_bucket_ms = greatest($6::bigint / 60, 1), lease_ms = $7::bigint, reserve_ms = $8::bigint,"
	" permit_ms = $9::bigint, reserve_share = $10::float8, urgent_share = $11::float8,"
	" fleet_size = $12::integer WHERE account = $1";

static int update_account(struct pobox_fleet_conn *c, const struct pobox_fleet_proposal *p,
                          int64_t deadline, int *updated, char *err, size_t errlen)
{
	char v[12][40];
	const char *vals[12];
	PGresult *r;
	fmt64(v[1], 40, p->budget);
	fmt64(v[2], 40, p->bulk_limit);
	fmtd(v[3], 40, p->margin_share);
	fmt64(v[4], 40, p->window_ms);
	fmt64(v[5], 40, p->bulk_window_ms);
	fmt64(v[6], 40, p->lease_ms);
	fmt64(v[7], 40, p->reserve_ms);
	fmt64(v[8], 40, p->permit_ms);
	fmtd(v[9], 40, p->reserve_share);
	fmtd(v[10], 40, p->urgent_share);
	fmt64(v[11], 40, p->fleet_size);
	vals[0] = p->account;
	for (int i = 1; i < 12; i++)
		vals[i] = v[i];
	int rc = run(c, UPDATE_ACCOUNT_SQL, 12, vals, 0, deadline, &r, err, errlen);
	if (rc == 0)
		*updated = atoi(PQcmdTuples(r)) > 0;
	PQclear(r);
	return rc;
}

static int apply_migrations(struct pobox_fleet_conn *c, struct pobox_fleet_init *o,
                            int64_t deadline, char *err, size_t errlen)
{
	static const char setup[] =
		"SELECT pg_advisory_xact_lock(7310411977);"
		"CREATE SCHEMA IF NOT EXISTS pobox_fleet;"
		"CREATE TABLE IF NOT EXISTS pobox_fleet.schema_version ("
		" version integer PRIMARY KEY, name text NOT NULL,"
		" applied_at timestamptz NOT NULL DEFAULT now())";
	PGresult *r;
	int rc;
	if ((rc = simple(c, setup, deadline, err, errlen)) != 0 ||
	    (rc = run(c, "SELECT coalesce(max(version), 0) FROM pobox_fleet.schema_version", 0, NULL, 0,
	              deadline, &r, err, errlen)) != 0)
		return rc;
	o->from_version = atoi(PQgetvalue(r, 0, 0));
	PQclear(r);
	o->to_version = o->from_version;
	if (o->from_version > POBOX_FLEET_SCHEMA_VERSION)
		return pobox_errf(err, errlen, POBOX_ECONFIG, "fleet coordinator %s: its schema is "
		                  "version %d, newer than this pobox knows (%d): use the newer pobox",
		                  c->where, o->from_version, POBOX_FLEET_SCHEMA_VERSION);
	for (const struct pobox_migration *m = pobox_fleet_migrations; m->version; m++) {
		char ver[16];
		const char *vals[2] = {ver, m->name};
		if (m->version <= o->from_version)
			continue;
		snprintf(ver, sizeof ver, "%d", m->version);
		if ((rc = simple(c, m->sql, deadline, err, errlen)) != 0) {
			char keep[512];
			snprintf(keep, sizeof keep, "%s", err);
			return pobox_errf(err, errlen, rc, "%s: %s", m->name, keep);
		}
		if ((rc = run(c, "INSERT INTO pobox_fleet.schema_version (version, name) VALUES ($1::integer, $2)",
		              2, vals, 0, deadline, &r, err, errlen)) != 0)
			return rc;
		PQclear(r);
		o->to_version = m->version;
	}
	return 0;
}

static int grant_role(struct pobox_fleet_conn *c, const char *role, int64_t deadline, char *err,
                      size_t errlen)
{
	char *id = PQescapeIdentifier(c->pg, role, strlen(role));
	char sql[1024];
	if (!id)
		return pobox_errf(err, errlen, POBOX_ENOMEM, "out of memory");
	/* only the four entry points: the helpers they use must stay out of reach */
	snprintf(sql, sizeof sql,
	         "GRANT USAGE ON SCHEMA pobox_fleet TO %s;"
	         "GRANT EXECUTE ON FUNCTION pobox_fleet.join, pobox_fleet.grant,"
	         " pobox_fleet.account_status, pobox_fleet.host_status TO %s", id, id);
	PQfreemem(id);
	return simple(c, sql, deadline, err, errlen);
}

int pobox_fleet_pg_init(struct pobox_fleet_conn *c, const char *role,
                        const struct pobox_fleet_proposal *p, int update,
                        struct pobox_fleet_init *o, int64_t timeout_ms, char *err,
                        size_t errlen)
{
	int64_t deadline = mono_ms() + timeout_ms;
	struct pobox_fleet_account a;
	PGresult *r;
	int rc;
	memset(o, 0, sizeof *o);
	if ((rc = simple(c, "BEGIN", deadline, err, errlen)) != 0)
		return rc;
	if ((rc = apply_migrations(c, o, deadline, err, errlen)) != 0 ||
	    (role && *role && (rc = grant_role(c, role, deadline, err, errlen)) != 0))
		goto fail;
	if (p) {
		const char *acct[1] = {p->account};
		if ((rc = run(c, "SELECT 1 FROM pobox_fleet.accounts WHERE account = $1", 1, acct, 0,
		              deadline, &r, err, errlen)) != 0)
			goto fail;
		int exists = PQntuples(r) > 0;
		PQclear(r);
		if (exists && update && (rc = update_account(c, p, deadline, &o->account_updated, err, errlen)) != 0)
			goto fail;
		if ((rc = call_join(c, p, &a, deadline, err, errlen)) != 0)
			goto fail;
		o->account_created = !exists;
	}
	if ((rc = simple(c, "COMMIT", deadline, err, errlen)) == 0)
		return 0;
fail:
	if (c->pg) {
		char keep[512];
		snprintf(keep, sizeof keep, "%s", err);
		simple(c, "ROLLBACK", deadline, err, errlen);
		snprintf(err, errlen, "%s", keep);
	}
	return rc;
}

int pobox_fleet_pg_account_status(struct pobox_fleet_conn *c, const char *account,
                                  struct pobox_fleet_account_status *o, int64_t timeout_ms,
                                  char *err, size_t errlen)
{
	const char *vals[1] = {account};
	PGresult *r;
	int rc = run(c, "SELECT * FROM pobox_fleet.account_status($1)", 1, vals, 0,
	             mono_ms() + timeout_ms, &r, err, errlen);
	if (rc)
		return rc;
	memset(o, 0, sizeof *o);
	if (PQntuples(r) == 1) {
		o->schema_version = (int)col64(r, "schema_version", 0);
		coltext(r, 0, "epoch", o->epoch, sizeof o->epoch);
		o->serial = col64(r, "serial", 0);
		o->now_ms = col64(r, "now_ms", 0);
		o->budget = col64(r, "budget", 0);
		o->margin = col64(r, "margin", 0);
		o->window_ms = col64(r, "window_ms", 0);
		o->spent = col64(r, "spent", 0);
		o->bulk_limit = col64(r, "bulk_limit", 0);
		o->bulk_window_ms = col64(r, "bulk_window_ms", 0);
	o->bulk_used = col64(r, "bulk_used", 0);
		o->reserves = col64(r, "reserves", 0);
		o->hosts = col64(r, "hosts", 0);
		o->learning = colbool(r, 0, "learning");
	}
	PQclear(r);
	return 0;
}

static int64_t cell64(const PGresult *r, int row, const char *name)
{
	int i = PQfnumber(r, name);
	return i < 0 || PQgetisnull(r, row, i) ? 0 : strtoll(PQgetvalue(r, row, i), NULL, 10);
}

int pobox_fleet_pg_host_status(struct pobox_fleet_conn *c, const char *account,
                               int (*fn)(void *ctx, const struct pobox_fleet_host_status *h),
                               void *ctx, int64_t timeout_ms, char *err, size_t errlen)
{
	const char *vals[1] = {account};
	PGresult *r;
	int rc = run(c, "SELECT * FROM pobox_fleet.host_status($1)", 1, vals, 0,
	             mono_ms() + timeout_ms, &r, err, errlen);
	if (rc)
		return rc;
	for (int i = 0; i < PQntuples(r) && rc == 0; i++) {
		struct pobox_fleet_host_status h;
		memset(&h, 0, sizeof h);
		coltext(r, i, "host", h.host, sizeof h.host);
		h.used = cell64(r, i, "used");
		h.leased = cell64(r, i, "leased");
		h.reserve = cell64(r, i, "reserve");
		h.permits = cell64(r, i, "permits");
		h.last_seen_ms = cell64(r, i, "last_seen_ms");
		h.age_ms = cell64(r, i, "age_ms");
		h.requests = cell64(r, i, "requests");
		h.want = cell64(r, i, "want");
		h.heard = colbool(r, i, "heard");
		rc = fn(ctx, &h);
	}
	PQclear(r);
	return rc;
}
