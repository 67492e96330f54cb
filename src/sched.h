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
};

void pobox_sched_opts_init(struct pobox_sched_opts *o);

struct pobox_cut_summary {
	int64_t batches, profiles, updates, superseded, carried, bytes, dead_profiles;
};

/* Cuts batches for every pending, due, unfenced profile, in one transaction
 * (rolled back on failure).  Sums into *sum. */
int pobox_sched_cut(struct pobox *pb, const struct pobox_sched_opts *o,
                    struct pobox_cut_summary *sum);

/* Builds the payload of `batch` from the profiles it holds (after a split
 * moved them there).  Inside the caller's transaction. */
int pobox_sched_build(struct pobox *pb, const struct pobox_sched_opts *o, int64_t batch);

#endif
