/*
 * sched.h - the scheduler: turns pending updates into bulk batch files.
 *
 * One cut is one transaction (DESIGN.md rule 2): it coalesces each ready
 * profile's pending updates (newest value per attribute wins, older ones
 * become superseded with a pointer to the winner), fences the profile into
 * a batch (rule 3), carries forward earlier attributes into v2 rows (rule 4),
 * dead-letters profiles over Target's 64 KB cap, and stores each batch's
 * exact bytes compressed with a CRC-32.
 *
 * Batch files are dense: a profile joins an open batch of its id type only
 * if its row then has no more empty cells than values (so empty cells cost
 * at most one byte per value sent); otherwise it starts another batch (at
 * most four open per id type; the fullest is closed to make room).  Rows are
 * written with the columns known so far; later columns are appended to the
 * header and earlier rows end short, which Target reads as empty.
 */
#ifndef POBOX_SCHED_H
#define POBOX_SCHED_H

#include "pobox.h"

#include <stdint.h>

#define POBOX_PROFILE_CAP_BYTES 65536 /* Target's external profile data limit */

struct pobox_sched_opts {
	int api_thirdparty;        /* 1 or 2 */
	int api_pcid;              /* 1 or 2 */
	int64_t max_rows;
	int64_t max_bytes;         /* encoded payload, header included */
	int64_t carry_window_ms;   /* 0: no carry-forward */
	int64_t profile_cap_bytes; /* names + values of one profile */

	/* Routing to the single-call lane (single_enabled = 0: all bulk).  A
	 * profile goes single when Target can take it there (it exists: pcId,
	 * delivered before, or assume_profiles_exist; no 'not found' yet), its
	 * call fits in max_post_bytes, and the budget allows: urgent updates
	 * while single_left_urgent lasts, others while single_left_normal lasts
	 * and at most single_max_pending profiles are pending. */
	int single_enabled;
	int assume_profiles_exist;
	int64_t single_left_urgent;
	int64_t single_left_normal;
	int64_t single_max_pending;
	int64_t pending_estimate;
	int64_t single_group;      /* profiles per single-lane batch row */
	int64_t single_url_base;   /* bytes before the query: scheme, host, path, '?' */
	int64_t max_get_bytes, max_post_bytes;
	/* The single lane is offline (outage.h): a profile that would go single
	 * is left pending, uncut, and keeps coalescing until Target is back
	 * (counted in single_held). */
	int single_hold;

	/* Dry run (`pobox plan`): before the cut's transaction is rolled back,
	 * plan_fn sees the batches it made (same connection, uncommitted). */
	int dry_run;
	int (*plan_fn)(void *ctx, struct pobox *pb, int64_t first_batch);
	void *plan_ctx;
};

void pobox_sched_opts_init(struct pobox_sched_opts *o);

struct pobox_cut_summary {
	int64_t batches, profiles, updates, superseded, carried, bytes, dead_profiles;
	int64_t single_profiles, single_urgent;  /* routed to the single lane */
	int64_t single_refused, single_refused_urgent; /* could have, but the budget was short */
	int64_t single_held;                      /* left pending: the lane is offline */
};

/* The length of a profile's single-call query string (mbox3rdPartyId= or
 * mboxPC=, then &profile.<name>=<value>, all percent-encoded). */
int64_t pobox_single_query_len(enum pobox_id_type t, const char *id, size_t id_len,
                               const char *const *names, const char *const *values,
                               const size_t *value_lens, size_t n);

/* Cuts batches for every pending, due, unfenced profile, in one transaction
 * (rolled back on failure).  Sums into *sum. */
int pobox_sched_cut(struct pobox *pb, const struct pobox_sched_opts *o,
                    struct pobox_cut_summary *sum);

/* Builds the payload of `batch` from the profiles it holds (after a split
 * moved them there).  Inside the caller's transaction. */
int pobox_sched_build(struct pobox *pb, const struct pobox_sched_opts *o, int64_t batch);

#endif
