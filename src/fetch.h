/*
 * fetch.h - Target's Profile Fetch API (reference/target-api.md section 7):
 * one profile's attributes as Target holds them, each with its modifiedAt.
 *
 *   GET {base}/rest/v1/profiles/thirdPartyId/{id}?client={client}
 *   GET {base}/rest/v1/profiles/{pcId}?client={client}
 *
 *   200 {"client":..,"visitorId":..,"modifiedAt":"2017-08-18T17:53:39.003-04:00",
 *        "profileAttributes":{"param1":{"value":"value1","modifiedAt":"..."}}}
 *   404 {"status" : 404, "message" : "No profile found for client ... with third party id=..."}
 *
 * Owns: the URL (the id percent-encoded as one path segment), reading the
 * answer (json.h) and sorting the outcome into found, not found, refused
 * (401/403: the token), and failed (transient or not).  The call goes
 * through the caller's http.h handle, which carries the bearer token; this
 * module never sees it.  Knows nothing about what pobox sent (verify.h
 * compares).
 *
 * Ownership: a pobox_fetched owns its strings (pobox_fetched_free).
 */
#ifndef POBOX_FETCH_H
#define POBOX_FETCH_H

#include "pobox.h"

#include <stddef.h>
#include <stdint.h>

struct pobox_http;

#define POBOX_FETCH_MAX_BODY (4 * 1024 * 1024) /* a profile is at most 64 KB of data */

struct pobox_fetched_attr {
	char *name;                /* as Target names it; a leading "profile." kept */
	char *value;               /* a string value, or a non-string's JSON text */
	size_t value_len;
	int64_t modified_ms;       /* -1: absent or unreadable */
};

struct pobox_fetched {
	size_t n;
	struct pobox_fetched_attr *a;  /* sorted by name (bytes) */
	int64_t modified_ms;           /* the profile's; -1: absent or unreadable */
};
void pobox_fetched_free(struct pobox_fetched *f);

/* Its attribute `name`, or the same as "profile.<name>" (Target shows bulk
 * attributes under both spellings in its documents); NULL when absent. */
const struct pobox_fetched_attr *pobox_fetched_find(const struct pobox_fetched *f,
                                                    const char *name);

/* The fetch URL for a profile; base without trailing slashes is used as
 * given.  Caller frees (pobox_free); NULL when out of memory. */
char *pobox_fetch_url(const char *base, const char *client, enum pobox_id_type t, const char *id,
                      size_t id_len);

/* Reads a 200 answer's body.  Returns 0, or POBOX_EPERMANENT with
 * "<what is wrong> at byte N" / "no profileAttributes" in err (then *out is
 * empty), or POBOX_ENOMEM. */
int pobox_fetch_parse(const char *body, size_t len, struct pobox_fetched *out, char *err,
                      size_t errlen);

enum pobox_fetch_outcome {
	POBOX_FETCH_FOUND,        /* *out filled */
	POBOX_FETCH_NOT_FOUND,    /* 404 with the documented JSON body */
	POBOX_FETCH_REFUSED,      /* 401 or 403: the token (or its absence) */
	POBOX_FETCH_TRANSIENT,    /* no answer, timeout, 5xx, 429: try again later */
	POBOX_FETCH_FAILED,       /* anything else: 400 (client code), a 404 that is not
	                           * the API's, a malformed answer */
};

/* One fetch.  Returns 0 with *outcome (and err saying why for all but
 * FOUND and NOT_FOUND: the URL's path, the HTTP status, Target's message),
 * *status the HTTP status (0: no answer) and *retry_after_ms (-1: none);
 * or POBOX_ENOMEM. */
int pobox_fetch_profile(struct pobox_http *h, const char *url, struct pobox_fetched *out,
                        enum pobox_fetch_outcome *outcome, long *status, int64_t *retry_after_ms,
                        char *err, size_t errlen);

#endif
