/*
 * verify.h - `pobox verify`: proof that Target holds what pobox sent.
 *
 * Owns the comparison: for a selection of profiles pobox has sent (the
 * store chooses them, store.h "verification"), fetch each one from Target
 * (fetch.h) at a polite rate, and put every attribute pobox last sent in
 * one class:
 *
 *   Target holds ...                         sent < grace ago   sent longer ago
 *   the same value                           matching           matching
 *   another value, modifiedAt after pobox's  different          different
 *     delivery (another writer)
 *   another value, modified before it        not_yet_applied    different
 *     (not applied yet; or a lost v2 override)
 *   no such attribute                        not_yet_applied    missing
 *   no such profile (404)                    not_yet_applied    missing
 *
 * "pobox's delivery" is when Target confirmed the value (its batch
 * complete, its single call answered), or, for a batch Target has taken
 * and not yet reported complete, when it took it.  Target applies updates
 * "typically within an hour, up to 24 hours" after that: the grace.
 *
 * It does not choose the profiles (the store), make HTTP calls itself
 * (fetch.h over http.h), record the run (the caller saves the result with
 * pobox_store_verify_save) or print anything.
 *
 * Ownership: a pobox_verify_result owns its findings and their strings
 * (pobox_verify_result_free).  The options are borrowed for the run.
 */
#ifndef POBOX_VERIFY_H
#define POBOX_VERIFY_H

#include "fetch.h"
#include "pobox.h"
#include "store.h"

#include <stddef.h>
#include <stdint.h>

struct pobox_cred;

/* Puts one attribute in its class; *why (for the classes but matching):
 * another_writer, older_value, no_attribute, no_profile.  target is NULL
 * when Target does not have it; profile_found 0 when Target has no such
 * profile. */
enum pobox_verify_class pobox_verify_classify(const struct pobox_sent_value *sent,
                                              int profile_found,
                                              const struct pobox_fetched_attr *target,
                                              int64_t now_ms, int64_t grace_ms, const char **why);

struct pobox_verify_opts {
	struct pobox_verify_sel sel;
	int64_t grace_ms;
	double rate;                 /* fetches started per second, at most */
	const char *base_url;        /* the Target edge (deliver.h's) */
	const char *client;
	struct pobox_cred *cred;     /* the bearer token; NULL: none */
	int64_t connect_timeout_ms, request_timeout_ms;
	int verify_tls;
	/* polled before every fetch and while waiting: 1 ends the run early */
	int (*stop)(void *ctx);
	/* after each profile is compared (progress); may be NULL */
	void (*progress)(void *ctx, int64_t done, int64_t total);
	void *ctx;
};

struct pobox_verify_result {
	struct pobox_verify_record rec;      /* the figures (count[], ages, ...) */
	struct pobox_verify_finding *f;      /* the first POBOX_VERIFY_KEEP_FINDINGS not matching */
	size_t nf;
	int64_t findings;                    /* all of them */
	/* why the run stopped early, or the last fetch that failed: one line */
	char error[1200];
	int refused;                         /* stopped: Target refused the token (401/403) */
	int unusable;                        /* stopped: an answer that is not the API's (400,
	                                      * a foreign 404, malformed): client or base_url */
	int unreachable;                     /* stopped: too many fetches in a row failed */
};
void pobox_verify_result_free(struct pobox_verify_result *r);

/* Chooses the profiles, fetches each and compares.  Returns 0 (the
 * outcome, including a run stopped by Target, is in *out) or a storage
 * or memory error (reason on the handle). */
int pobox_verify_run(struct pobox *pb, const struct pobox_verify_opts *o,
                     struct pobox_verify_result *out);

#endif
