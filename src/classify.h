/*
 * classify.h - what an outcome of a call to Target means for delivery
 * (DESIGN.md rule 6), decided in one function.
 *
 * This module owns the mapping from (which call, transport failure, HTTP
 * status, parsed answer, Retry-After) to a class and a wait.  It does not
 * retry, sleep, count attempts, touch the outbox or read the clock: the
 * uploader does those, from the verdict.  Keeping every rule in one table
 * means a new status code is one row here, not a hunt through the uploader.
 *
 * Classes and what the caller does
 *   OK         the call did what was asked.
 *   RETRY      a passing failure of this call: retry it after
 *              max(backoff, retry_after_ms).  charge_attempt says whether it
 *              counts toward the item's attempt cap (not when nothing reached
 *              Target: a store offline for days must not dead-letter).
 *   THROTTLE   bulk lane over Target's per-minute limit: pause the whole
 *              bulk lane (submits and polls) for retry_after_ms (the server's
 *              Retry-After, or 60 s when it gave none).  No attempt charged.
 *   BUDGET     single lane's rolling 24 h budget is spent: park the single
 *              lane until retry_after_ms from now (a time named in the
 *              message, or Retry-After; -1 when neither: use the quota
 *              ledger's own estimate), routing urgent work to bulk meanwhile.
 *              No attempt charged.
 *   AUTH       401/403 or an answer about the token: pause all delivery and
 *              report loudly until the token is fixed.  No attempt charged.
 *   CONFIG     the configuration is wrong (unknown client code, wrong base
 *              URL, redirect, TLS verification failure): pause all delivery
 *              and report loudly.  No attempt charged.
 *   NOTFOUND   single update: the profile does not exist (the single API
 *              never creates one): reroute the update to the bulk v2 lane,
 *              which creates it.  Status poll: the status resource is gone
 *              (Target keeps it about 24 h): the batch's outcome is unknown;
 *              re-send it (updates are idempotent sets).  No attempt charged.
 *   REJECT     bulk submit: Target refused the file's content: bisect the
 *              batch to isolate the bad rows (charge an attempt).
 *   PERMANENT  a single update that can never succeed as sent: dead-letter
 *              it with the reason.
 *
 * The table, first matching row wins.  "2xx ok" is a 2xx whose answer
 * parsed; "msg ~ x" means the answer's message contains x (ignoring case);
 * bulk = submit and poll.
 *
 *   call    input                                      class      attempt
 *   ------  -----------------------------------------  ---------  -------
 *   any     transport: resolve, connect, aborted       RETRY      no
 *   any     transport: tls (verification)              CONFIG     no
 *   any     transport: timeout, send/recv, too big,    RETRY      yes
 *           other
 *   any     2xx, answer malformed (answer_rc != 0)     RETRY      yes
 *   poll    2xx ok                                     OK         no
 *   submit, 2xx ok, success true                       OK         no
 *   single
 *   any     1xx, 3xx (redirects are not followed)      CONFIG     no
 *   any     401, 403                                   AUTH       no
 *   single  429, or msg ~ SINGLE_BUDGET words          BUDGET     no
 *   bulk    429, 503, or msg ~ BULK_THROTTLE words     THROTTLE   no
 *   any     408, 5xx (single: 503 too)                 RETRY      yes
 *   any     msg ~ client code / invalid client /       CONFIG     no
 *           unknown client / client not found
 *   any     msg ~ unauthorized / forbidden /           AUTH       no
 *           authentication / invalid or expired token
 *   single  msg ~ not found / no profile               NOTFOUND   no
 *   any     2xx ok, success absent (not an answer)     RETRY      yes
 *   submit  2xx ok, success false                      REJECT     yes
 *   single  2xx ok, success false                      PERMANENT  yes
 *   submit  404 (the endpoint path: client code)       CONFIG     no
 *   submit  other 4xx (400, 413, 422, ...)             REJECT     yes
 *   poll    404, 410                                   NOTFOUND   no
 *   poll    other 4xx                                  RETRY      yes
 *   single  404                                        CONFIG     no
 *   single  other 4xx (400, 413, 414, ...)             PERMANENT  yes
 *   any     anything else (e.g. status 0)              RETRY      yes
 *
 *   SINGLE_BUDGET: quota, too many, rate limit, budget, next call,
 *                  daily limit, 24 hours, throttl
 *   BULK_THROTTLE: too many requests, rate limit, per minute, throttl
 *   Words like "exceeded" alone are not enough: "maximum rows exceeded" is
 *   a rejected file, and misreading it as a throttle would retry it
 *   forever without charging attempts.
 *
 * retry_after_ms in the verdict: the server's Retry-After (already parsed
 * by http.c), raised for BUDGET to a time named in the message (ISO 8601,
 * e.g. "next call allowed at 2026-11-23T17:00:00Z"), defaulted to 60 s for
 * THROTTLE, and -1 when nobody said anything.  It is a minimum wait, never
 * a reason to retry sooner than the backoff says.
 */
#ifndef POBOX_CLASSIFY_H
#define POBOX_CLASSIFY_H

#include "http.h"

#include <stdint.h>

#define POBOX_THROTTLE_DEFAULT_MS 60000

enum pobox_call {
	POBOX_CALL_BULK_SUBMIT = 1,
	POBOX_CALL_BULK_STATUS = 2,
	POBOX_CALL_SINGLE = 3,
};

enum pobox_class {
	POBOX_CLASS_OK = 0,
	POBOX_CLASS_RETRY,
	POBOX_CLASS_THROTTLE,
	POBOX_CLASS_BUDGET,
	POBOX_CLASS_AUTH,
	POBOX_CLASS_CONFIG,
	POBOX_CLASS_NOTFOUND,
	POBOX_CLASS_REJECT,
	POBOX_CLASS_PERMANENT,
};

/* "ok", "retry", "throttle", "budget", "auth", "config", "notfound",
 * "reject", "permanent". */
const char *pobox_class_name(enum pobox_class c);

/* What happened.  All fields borrowed. */
struct pobox_outcome {
	enum pobox_call call;
	enum pobox_http_fail fail;  /* resp.fail */
	long http_status;           /* resp.status; 0 when no answer */
	int answer_rc;              /* 0, or what reading the answer returned
	                             * (POBOX_ETRANSIENT: garbled) */
	int success;                /* answer.success: 1, 0, -1 absent/unparsed */
	const char *message;        /* answer.message or the error text, may be NULL */
	int64_t retry_after_ms;     /* resp.retry_after_ms, -1 absent */
	int64_t now_ms;             /* from the caller's clock, to read times in messages */
};

struct pobox_verdict {
	enum pobox_class cls;
	int64_t retry_after_ms;     /* minimum wait, -1 when nobody said */
	int charge_attempt;         /* 1: count toward the item's attempt cap */
	const char *reason;         /* static, short, for the error text */
};

/* Classifies one outcome per the table above.  Never fails. */
void pobox_classify(struct pobox_verdict *out, const struct pobox_outcome *in);

/* Finds the first ISO 8601 date-time in text ("2026-11-23T17:00:00Z",
 * "2026-11-23 17:00:00+01:00", fractions allowed, no zone = UTC) and sets
 * *out_ms to it as Unix ms.  Returns 1 when found, 0 when not. */
int pobox_classify_find_time(const char *text, int64_t *out_ms);

#endif
