/*
 * fleet.h - this host's share of a fleet-wide budget: leases from the
 * coordinator (fleet_pg.h), spent one single call at a time.
 *
 * With fleet_url set, the delivering process (`pobox run`, `flush --wait`)
 * opens one struct pobox_fleet.  It owns a background thread that talks to
 * the coordinator - joins the account, asks for leases ahead of need, keeps
 * a standing reserve, fetches bulk permits, reports what each closed grant
 * was used for - and an in-memory ledger of what the host holds, which the
 * lanes draw on without any network wait:
 *
 *   single lane, inside its own outbox transactions:
 *     pobox_fleet_limits   how many calls the leases cover now
 *     pobox_fleet_take     one unit for one call (its lease and deadline)
 *     pobox_fleet_settle   the call's outcome: used (with when its answer
 *                          came) or not sent
 *     pobox_fleet_write    writes what take/settle staged, in the caller's
 *                          transaction; then pobox_fleet_done(committed)
 *     pobox_fleet_short    calls the leases did not cover: ask for more now
 *   bulk lane, around each call:
 *     pobox_fleet_bulk_take / _untake / _done
 *
 * Invariants (the budget's safety rests on them; see schema/fleet/0001):
 *   1. A unit is spent only from a lease whose row is committed in the
 *      outbox, and only by a call that starts before the lease's
 *      start_by on this machine's monotonic clock (the sender checks).
 *   2. The outbox records every unit taken (fleet_leases.reserved) in the
 *      transaction that reserves the call; a process that dies leaves them
 *      there, and the next one counts them as used at the lease's charge.
 *   3. A lease is reported (and its unused part given back) only when it
 *      is closed - its deadline passed, or closed on purpose - and nothing
 *      taken from it is unsettled (in memory: inflight == 0, decremented
 *      only after the settling transaction committed).
 *   4. Each call's use is placed at a coordinator time no earlier than its
 *      answer could have arrived: grant time + (answer - request sent) x
 *      (1 + drift), measured on the monotonic clock.
 *   5. Coordinator requests carry a sequence number persisted with their
 *      answer; a retry of an unanswered request reuses it, so a grant is
 *      never received twice.
 *
 * States of the coordinator link (what the lanes may spend):
 *
 *   (start) --first answer--> ONLINE --request fails--> OFFLINE
 *      |                        ^  \--refused (settings, rights)--> REFUSED
 *      +--request fails--> OFFLINE --an answer--+
 *
 *   ONLINE   leases; calls they do not cover wait briefly for the next one
 *            (or go bulk when the fleet's budget is spent)
 *   OFFLINE  what is left of the leases, then the standing reserve (urgent
 *            updates may use all of it, others all but urgent_share of
 *            it), then bulk only - bulk calls within
 *            fleet_offline_bulk_per_minute (0: none)
 *   REFUSED  as OFFLINE, and pobox_fleet_refused() says why; the service
 *            stops with a configuration error
 *
 * Threads: every function here is for the thread that owns the outbox
 * handle given to pobox_fleet_open (the delivery loop's), except that the
 * background thread is internal.  Shared state is under one mutex.
 */
#ifndef POBOX_FLEET_H
#define POBOX_FLEET_H

#include "pobox.h"

#include <stddef.h>
#include <stdint.h>

struct pobox_fleet_opts {
	const char *url;             /* libpq connection string or URI */
	const char *password;        /* from fleet_password_file, or NULL (passfile) */
	const char *account, *host;
	const char *db_path;         /* the outbox (the thread opens its own handle) */
	struct pobox_options open;   /* ... with these options */
	int64_t budget;              /* single_budget: single calls per window */
	int64_t bulk_limit;          /* bulk_calls_per_minute */
	double margin_share, reserve_share, urgent_share;
	int64_t window_ms, bulk_window_ms, lease_ms, reserve_ms, permit_ms, fleet_size;
	int64_t timeout_ms;          /* each round trip to the coordinator */
	int64_t horizon_ms;          /* a single call started may still be arriving this long */
	int64_t bulk_horizon_ms;     /* the same for a bulk call */
	int64_t offline_bulk_per_minute;
};

struct pobox_fleet;

/* Opens this host's fleet state in the outbox (creating it on first use),
 * counts units left taken by a process that died as used, and starts the
 * background thread.  pb must hold the delivery lock.  Never waits for the
 * coordinator.  Returns 0, or an error with err set. */
int pobox_fleet_open(struct pobox_fleet **out, struct pobox *pb, const struct pobox_fleet_opts *o,
                     char *err, size_t errlen);

/* Stops the thread after one last round trip (bounded by the timeout)
 * that reports and gives back the leases; the standing reserve is kept for
 * the next process.  NULL is a no-op. */
void pobox_fleet_close(struct pobox_fleet *f);

/* 1 when the coordinator refused this host (settings that differ from the
 * account's, no rights, no schema), with the reason in msg. */
int pobox_fleet_refused(struct pobox_fleet *f, char *msg, size_t len);

/* ---- the single lane ---------------------------------------------------- */

struct pobox_fleet_limits {
	int64_t left_urgent, left_normal;  /* calls the held grants cover now */
	int64_t wait_ms;                   /* >= 0: more is expected soon, hold the rest
	                                    * back this long; -1: none is, route bulk */
};

void pobox_fleet_limits(struct pobox_fleet *f, struct pobox_fleet_limits *l);

/* Takes one unit for a call: 0 with the lease's id and the monotonic time
 * after which the call must not start, or POBOX_EBUSY when nothing is
 * held.  Staged until pobox_fleet_write + pobox_fleet_done. */
int pobox_fleet_take(struct pobox_fleet *f, int urgent, int64_t *lease, int64_t *start_by_mono_ms);

/* A taken unit's end: used (the call may have reached Target) with the
 * monotonic time its answer arrived (-1: no answer, so as late as the
 * lease allows), or given back (never sent). */
void pobox_fleet_settle(struct pobox_fleet *f, int64_t lease, int used, int64_t answered_mono_ms);

/* Writes what was staged, inside the caller's transaction. */
int pobox_fleet_write(struct pobox_fleet *f, struct pobox *pb);

/* After the caller's transaction: committed (1) or rolled back (0). */
void pobox_fleet_done(struct pobox_fleet *f, int committed);

/* n calls (urgent: some of them urgent) found no unit: ask for more now. */
void pobox_fleet_short(struct pobox_fleet *f, int64_t n, int urgent);

/* 1 (once) when a lease has come in since calls last went short: the
 * service loop routes what is pending again at once instead of waiting. */
int pobox_fleet_fresh(struct pobox_fleet *f);

/* ---- the bulk lane ------------------------------------------------------ */

/* Before a bulk call: 0 to go (with *limit the per-minute limit the local
 * call ledger must still apply: the account's online, the offline share
 * otherwise), or 1 with *retry_at_ms (wall clock) when no permit is to be
 * had now.  Waits for a permit at most a short, bounded time. */
int pobox_fleet_bulk_take(struct pobox_fleet *f, int64_t now_ms, int64_t *limit,
                          int64_t *retry_at_ms);
/* The call was not made after all (the local ledger said no). */
void pobox_fleet_bulk_untake(struct pobox_fleet *f);
/* The call was made; answered: an HTTP answer arrived. */
void pobox_fleet_bulk_done(struct pobox_fleet *f, int answered);

/* ---- clocks ------------------------------------------------------------- */

/* CLOCK_MONOTONIC in milliseconds. */
int64_t pobox_fleet_mono_ms(void);
/* This boot's id (/proc/sys/kernel/random/boot_id): monotonic times of
 * another boot mean nothing. */
const char *pobox_fleet_boot_id(void);

#endif
