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
};

struct pobox_quota {
	int64_t budget, used, urgent_used, reserved, remaining, reserve;
	int64_t left_urgent, left_normal;  /* what a reservation may take now */
	int64_t exhausted_at_ms;           /* at the last hour's rate; -1: not in 24 h */
	int64_t frees_at_ms;               /* when the oldest used minute leaves the window */
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
