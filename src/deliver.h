/*
 * deliver.h - the bulk uploader: sends ready batches, follows their status
 * URLs to a final state, and records every outcome.
 *
 * Each action is: reserve a call in the per-minute ledger and mark the
 * batch (one transaction), make the HTTP call, classify the answer
 * (classify.c, DESIGN.md rule 6), record the outcome (one transaction).  A
 * crash between the two leaves a batch `sending` (re-sent: Target's updates
 * are idempotent sets) or `submitted` (polled by its stored URL, never
 * re-sent).
 *
 *   ready/sending --POST ok--> submitted --complete+details--> done
 *        |  retry (backoff), throttle (lane pause), auth/config (lane pause, loud)
 *        |  Target unreachable: the lane goes offline (outage.h), b unchanged
 *        |  our stop or deadline (abort_fn): nothing recorded, b stays sending
 *        |  rejected file -> split into halves; one row left -> its updates dead
 *        |  attempts or age used up -> dead (its updates dead, with the reason)
 *   submitted --stuck (after stuck_wait)--> replaced: its rows back to pending
 *        with an attempt counted (dead only after max_attempts or max_age)
 *   submitted --status gone (lost)--> replaced by a new batch with the same
 *        bytes (at most stuck_resubmits times)
 *   submitted, its status URL outside the Target origin family (origin.h):
 *        not asked (the token goes nowhere else), counted as a failed poll
 *   complete: v2 failed rows go back to pending with an attempt counted.
 */
#ifndef POBOX_DELIVER_H
#define POBOX_DELIVER_H

#include "pobox.h"
#include "sched.h"

struct pobox_cred;

#include <stdint.h>

struct pobox_deliver_opts {
	const char *client;
	const char *base_url;        /* no trailing slash needed */
	const char *token;           /* a static bearer token or NULL; never logged */
	struct pobox_cred *cred;     /* or credentials (credentials.h): asked for the token
	                              * before calls, told of 401/403; borrowed (the
	                              * deliverer and singler take a reference) */
	struct pobox_sched_opts sched;
	int64_t max_attempts, max_age_ms;
	int64_t backoff_base_ms, backoff_cap_ms;
	int64_t poll_initial_ms, poll_cap_ms;
	int64_t stuck_wait_ms, stuck_resubmits;
	int64_t calls_per_minute;
	int64_t max_in_flight;       /* submitted, unfinished bulk batches at most */
	int64_t connect_timeout_ms, request_timeout_ms;
	int verify_tls;
	uint64_t seed;
	struct pobox_fleet *fleet;   /* fleet_url: bulk calls need the fleet's permit (fleet.h) */
	/* Optional (http.h): nonzero ends calls in flight and starts no more; a
	 * call ended so is recorded as never answered, like a crash (a batch
	 * stays sending, to be re-sent; a poll is asked again).  Borrowed. */
	int (*abort_fn)(void *ctx);
	void *abort_ctx;
};

struct pobox_deliverer;

/* The Target edge URL the options name: base_url without trailing slashes,
 * or https://<client>.tt.omtrdc.net.  Caller frees (pobox_free); NULL when
 * out of memory. */
char *pobox_deliver_base_url(const struct pobox_deliver_opts *o);

/* Whether the options may be used to talk to Target: a client code, and
 * never the token over plain http except to a loopback address (origin.h).
 * 0, or POBOX_ECONFIG / POBOX_ENOMEM with the reason in err. */
int pobox_deliver_check(const struct pobox_deliver_opts *o, char *err, size_t errlen);

int pobox_deliverer_new(struct pobox_deliverer **out, struct pobox *pb,
                        const struct pobox_deliver_opts *o, char *err, size_t errlen);
void pobox_deliverer_free(struct pobox_deliverer *d);

struct pobox_step {
	int64_t actions;        /* calls made */
	int64_t next_due_ms;    /* when the next batch action is due, -1: none */
	int64_t unfinished;     /* batches not yet final */
	int paused;             /* the bulk lane is paused */
	char pause_class[16];   /* throttle, auth, config */
	char pause_reason[600];
	int64_t paused_until_ms;
};

/* Does every batch action that is due now.  Returns 0, or a storage error
 * (network failures are outcomes, not errors). */
int pobox_deliver_step(struct pobox_deliverer *d, struct pobox_step *out);

#endif
