/*
 * fleet_pg.h - the fleet coordinator's client: PostgreSQL through libpq.
 *
 * This is the only file that includes libpq-fe.h.  It owns connections to
 * the coordinator, every wait on them (each bounded by a deadline: connect,
 * send and answer are polled with the time left, and a connection that
 * overruns is dropped, never waited on), and the SQL of the protocol: the
 * functions of schema/fleet/NNNN_*.sql (join, grant, account_status,
 * host_status) and `pobox fleet init`, which applies those migrations.  It
 * does not decide what to ask for or what a grant means (fleet.c does).
 *
 * Secrets: the password comes from a libpq passfile or from the file named
 * by fleet_password_file (read by the caller and passed here); a password
 * inside fleet_url is refused, so it never sits in a config file, the
 * environment or a process listing.  Error texts name the coordinator by
 * host, port and database only (pobox_fleet_pg_describe), never by URL.
 *
 * Threads: a connection belongs to one thread at a time.  libpq is
 * thread-safe for distinct connections.
 *
 * Errors: POBOX_ETRANSIENT when the coordinator could not be reached or did
 * not answer in time (the caller goes on offline); POBOX_ECONFIG when it
 * refused: bad credentials, no such function (schema not created), no
 * rights, an account whose budgets differ (SQLSTATE PBX01); POBOX_EIO for
 * other SQL errors.
 */
#ifndef POBOX_FLEET_PG_H
#define POBOX_FLEET_PG_H

#include <stddef.h>
#include <stdint.h>

#define POBOX_FLEET_SCHEMA_VERSION 1  /* the newest schema/fleet migration this build knows */

struct pobox_fleet_conn;

/* Checks fleet_url (a libpq connection string or URI) without connecting:
 * it must parse and must not carry a password.  0 or POBOX_ECONFIG. */
int pobox_fleet_pg_check_url(const char *url, char *err, size_t errlen);

/* "host:port/dbname" of a connection string, for messages (never the
 * password or other options). */
void pobox_fleet_pg_describe(const char *url, char *buf, size_t len);

/* Connects within timeout_ms.  password may be NULL (libpq's passfile and
 * its other defaults apply).  application_name is set to "pobox <name>"
 * unless the URL sets one.  Every statement on the connection is bounded
 * server-side by statement_timeout = timeout_ms too. */
int pobox_fleet_pg_connect(struct pobox_fleet_conn **out, const char *url, const char *password,
                           const char *name, int64_t timeout_ms, char *err, size_t errlen);
void pobox_fleet_pg_close(struct pobox_fleet_conn *c);

/* The account settings a host proposes (join creates the account from
 * them when there is none; only budget and bulk_limit must match an
 * existing one). */
struct pobox_fleet_proposal {
	const char *account, *host;
	int64_t budget, bulk_limit;
	double margin_share, reserve_share, urgent_share;
	int64_t window_ms, bulk_window_ms, lease_ms, reserve_ms, permit_ms, fleet_size;
};

/* The account as the coordinator keeps it. */
struct pobox_fleet_account {
	int schema_version;
	char epoch[64];
	int64_t serial, now_ms;
	int64_t budget, margin, window_ms, bucket_ms;
	int64_t bulk_limit, bulk_window_ms, bulk_bucket_ms;
	int64_t lease_ms, reserve_ms, permit_ms, fleet_size;
	double reserve_share, urgent_share;
};

int pobox_fleet_pg_join(struct pobox_fleet_conn *c, const struct pobox_fleet_proposal *p,
                        struct pobox_fleet_account *a, int64_t timeout_ms, char *err,
                        size_t errlen);

/* One use of a grant: n calls whose answers were seen by bucket end k. */
struct pobox_fleet_use {
	int64_t lease, k, n;
	int bulk;               /* for history entries: the lane */
};

struct pobox_fleet_request {
	const char *account, *host, *incarnation;
	int64_t seq;
	const char *epoch;      /* NULL: none known yet */
	int64_t serial;
	int64_t want;
	int urgent, reserve;
	int64_t extend;         /* the unused reserve to give a new life (0: none) */
	int64_t permits;
	int64_t horizon_ms, bulk_horizon_ms;
	const int64_t *close;   /* grants closed by the host, reported by `uses` */
	size_t nclose;
	const struct pobox_fleet_use *uses;
	size_t nuses;
	const struct pobox_fleet_use *hist;  /* calls no open grant covers (lease unused) */
	size_t nhist;
	int send_hist;          /* 1: send hist even when empty (the epoch's re-report) */
};

enum pobox_fleet_status {
	POBOX_FLEET_OK, POBOX_FLEET_REPLAY, POBOX_FLEET_EPOCH, POBOX_FLEET_STALE,
};

struct pobox_fleet_grant {
	int64_t id, n, k, life_ms;   /* id 0: none */
};

struct pobox_fleet_response {
	enum pobox_fleet_status status;
	char epoch[64];
	int64_t serial, now_ms, grant_ms, next_seq;
	struct pobox_fleet_grant lease, reserve, permit;
	int64_t spent, free;       /* the account's single calls in the window, what is left */
	int64_t refill;            /* what leaves the window within a lease's life */
	int64_t active;            /* hosts asking for leases lately (this one included) */
	int64_t single_free_ms;    /* when asked for more than granted: when the oldest
	                            * charge leaves the window (-1: unknown) */
	int64_t bulk_used, bulk_free_ms;  /* bulk_free_ms -1: unknown */
	int learning;
	int64_t hosts;
	int64_t *closed;   /* acknowledged closes (owned: pobox_fleet_pg_response_free) */
	size_t nclosed;
};

int pobox_fleet_pg_grant(struct pobox_fleet_conn *c, const struct pobox_fleet_request *r,
                         struct pobox_fleet_response *out, int64_t timeout_ms, char *err,
                         size_t errlen);
void pobox_fleet_pg_response_free(struct pobox_fleet_response *r);

/* ---- operators: `pobox fleet init` and `pobox fleet status` ---------- */

struct pobox_fleet_init {
	int from_version, to_version;     /* out: what init found and left */
	int account_created, account_updated;
};

/* Creates or upgrades the coordinator's schema in one transaction (an
 * advisory lock keeps two inits apart), then, when grant_role is set,
 * grants it what hosts need, and, when p is set, creates p's account or
 * (update) sets its budgets and settings to p's.  Refuses a coordinator
 * whose schema is newer than this build (POBOX_ECONFIG). */
int pobox_fleet_pg_init(struct pobox_fleet_conn *c, const char *grant_role,
                        const struct pobox_fleet_proposal *p, int update,
                        struct pobox_fleet_init *out, int64_t timeout_ms, char *err,
                        size_t errlen);

struct pobox_fleet_account_status {
	int schema_version;
	char epoch[64];
	int64_t serial, now_ms, budget, margin, window_ms, spent;
	int64_t bulk_limit, bulk_window_ms, bulk_used, reserves, hosts;
	int learning;
};

struct pobox_fleet_host_status {
	char host[256];
	int64_t used, leased, reserve, permits, last_seen_ms, age_ms, requests, want;
	int heard;
};

int pobox_fleet_pg_account_status(struct pobox_fleet_conn *c, const char *account,
                                  struct pobox_fleet_account_status *out, int64_t timeout_ms,
                                  char *err, size_t errlen);

/* Calls fn for each host of the account (most recently seen first). */
int pobox_fleet_pg_host_status(struct pobox_fleet_conn *c, const char *account,
                               int (*fn)(void *ctx, const struct pobox_fleet_host_status *h),
                               void *ctx, int64_t timeout_ms, char *err, size_t errlen);

#endif
