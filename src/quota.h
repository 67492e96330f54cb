/*
 * quota.h - the single-call budget: Target's 1,000,000 single profile
 * updates per rolling 24 hours per account, scaled by this installation's
 * fleet share, with a share kept back for urgent updates.
 *
 *   budget     = floor(single_budget * fleet_share)
 *   in use     = calls settled in the last 1440 minutes + calls reserved now
 *   remaining  = budget - in use
 *   urgent may use all of `remaining`; others only remaining - reserve,
 *   where reserve = floor(budget * urgent_reserve)
 *
 * With a fleet (fleet_url; opts.fleet), the budget is the account's, less
 * its margin, and what this host may spend comes from its leases (fleet.h):
 * `remaining` is what it holds plus, while the coordinator answers, what
 * the fleet had free at the last answer and what this host has been
 * granted per lease life lately (so routing sends single what the next
 * leases will likely cover, and the rest bulk); while it does not answer,
 * what it holds: the rest of its leases and its standing reserve.  The
 * figures are the outbox's (the last answer's), so status shows them with
 * the coordinator down and without asking it.
 *
 * Reservations name their owner (host:pid:start time).  A reservation whose
 * owner is gone (the process died, or it is older than 15 minutes) is
 * counted as used: its call may have reached Target, and counting it once
 * is the safe side.  pobox_quota_reap does that before every reservation.
 */
#ifndef POBOX_QUOTA_H
#define POBOX_QUOTA_H

#include "pobox.h"

#include <stdint.h>

struct pobox_quota_opts {
	int64_t single_budget;     /* calls per rolling 24 h for the account */
	double fleet_share;        /* this installation's share, 0 < x <= 1 */
	double urgent_reserve;     /* share of the budget kept for urgent updates */
	int fleet;                 /* fleet_url set: the budget is the fleet's */
};

/* This host's view of the fleet, from its outbox (pobox_quota.fleet). */
struct pobox_quota_fleet {
	int known;                         /* the coordinator has answered at least once */
	int reachable;                     /* ... and answered the last attempt */
	int learning;                      /* the ledger is re-learning after data loss */
	int64_t account_budget, margin;    /* per window */
	int64_t window_ms;
	int64_t fleet_used, fleet_free;    /* in the window, at the last answer */
	int64_t hosts;
	int64_t lease_left, leases;        /* units held in open leases */
	int64_t reserve_left, reserve_granted;
	int64_t lease_expires_in_ms, reserve_expires_in_ms;  /* -1: none held */
	int64_t last_contact_ms, last_attempt_ms;            /* wall clock, 0: never */
	int64_t requests;                  /* round trips answered */
	double grant_rate;                 /* units granted per second, recently */
	char account[128], host[256], last_error[300];
};

struct pobox_quota {
	int64_t budget, used, urgent_used, reserved, remaining, reserve;
	int64_t left_urgent, left_normal;  /* what a reservation may take now */
	int64_t exhausted_at_ms;           /* at the last hour's rate; -1: not in 24 h */
	int64_t frees_at_ms;               /* when the oldest used minute leaves the window */
	struct pobox_quota_fleet fleet;    /* when opts.fleet */
};

/* This process's owner name ("host:pid:start"), computed once. */
const char *pobox_quota_owner(void);

/* Counts the reservations of dead owners as used.  Inside a transaction. */
int pobox_quota_reap(struct pobox *pb, int64_t now_ms);

/* How many reservation units belong to processes that are gone (what
 * pobox_quota_reap would count as used). */
int pobox_quota_orphaned(struct pobox *pb, int64_t now_ms, int64_t *units);

/* Reads the budget's state at now_ms.  Inside a transaction for exact use. */
int pobox_quota_read(struct pobox *pb, const struct pobox_quota_opts *o, int64_t now_ms,
                     struct pobox_quota *q);

#endif
