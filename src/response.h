/*
 * response.h - reading Target's XML answers (target-api.md sections 2-4, 6).
 *
 * This module owns turning the bytes of an answer into fields: the batch
 * submit answer (success, batchStatus URL, message), the batch status answer
 * (status, counts, and the per-row <profile> elements), the single update
 * answer (success, pcId, message), and a short readable text for error
 * bodies.  It does not decide what an answer means for delivery (classify.h
 * does) and does not do HTTP (http.h does).
 *
 * expat is included by this module only.  The parser is streaming and
 * bounded: element text is capped at POBOX_RESPONSE_TEXT_MAX bytes, nesting
 * at POBOX_RESPONSE_DEPTH_MAX, and a DOCTYPE is refused outright (Target
 * never sends one, and refusing it rules out entity expansion attacks), so
 * memory does not depend on what the server sends.  A status answer's
 * <profile> rows (up to 500,000) are handed to a callback one at a time,
 * never collected.  All memory, expat's included, comes from pobox_malloc,
 * so allocation failures are testable and come back as POBOX_ENOMEM.
 *
 * Errors: a malformed, truncated or unexpected answer (bad XML, a DOCTYPE,
 * nesting too deep, root element not <response>, a count that is not a
 * number, "success" without a batchStatus URL, a status answer without a
 * <status>) is POBOX_ETRANSIENT with a one-line message such as
 * "malformed XML from batch status: unclosed token at line 3": a garbled
 * answer is treated as a passing failure by the caller.  Out of memory is
 * POBOX_ENOMEM.
 */
#ifndef POBOX_RESPONSE_H
#define POBOX_RESPONSE_H

#include <stddef.h>
#include <stdint.h>

#define POBOX_RESPONSE_TEXT_MAX 8192  /* bytes of text kept per element */
#define POBOX_RESPONSE_DEPTH_MAX 32   /* element nesting */
#define POBOX_RESPONSE_ERRTEXT_MAX 200 /* bytes of an error body shown to people */

/* Which answer is expected; sets the checks done at the end and the name
 * used in messages ("batch submit", "batch status", "single update"). */
enum pobox_answer_kind {
	POBOX_ANSWER_ANY = 0,     /* any XML, e.g. an error body: no checks */
	POBOX_ANSWER_SUBMIT = 1,  /* bulk batchUpdate */
	POBOX_ANSWER_STATUS = 2,  /* batchStatus poll */
	POBOX_ANSWER_SINGLE = 3,  /* single profile/update */
};

/* The batch-level status of a status answer. */
enum pobox_batch_status {
	POBOX_BATCH_UNKNOWN = 0,     /* absent or a value not documented; see status_text */
	POBOX_BATCH_COMPLETE = 1,
	POBOX_BATCH_INCOMPLETE = 2,
	POBOX_BATCH_STUCK = 3,
};

/* What was read.  Strings are NUL-terminated, owned by the struct, NULL when
 * the element was absent; release with pobox_answer_free.  Text is trimmed
 * of surrounding whitespace, otherwise verbatim (status_url is never
 * rebuilt: Target's status host is an edge node, follow it as given).
 * Counts are -1 when absent. */
struct pobox_answer {
	int success;             /* <success>: 1 true, 0 false, -1 absent/other */
	char *message;           /* <message>, else the text of an <error> element
	                          * (any depth, first one); truncated to TEXT_MAX */
	/* batch submit */
	char *status_url;        /* <batchStatus> */
	/* single update */
	char *pc_id;             /* <pcId> */
	/* batch status */
	char *batch_id;          /* <batchId> */
	enum pobox_batch_status status;
	char *status_text;       /* <status> as sent, e.g. "complete" */
	int64_t batch_size;      /* <batchSize> */
	int64_t consumed_count;  /* <consumedCount> (showDetails=true) */
	int64_t successful_updates;
	int64_t profiles_not_found;
	int64_t failed_updates;
	int64_t profile_rows;    /* <profile> elements handed to the callback */
};

/* Called once per <profile> row of a status answer with its <id> text and
 * its <status> text ("failed" since 2020; "success", "error", "pending" in
 * the 2023 wording; "" when absent).  Both strings are borrowed for the call.
 * Return 0 to go on, or a negative POBOX_E* code to stop parsing: the parse
 * then returns that code. */
typedef int (*pobox_profile_row_fn)(void *ctx, const char *id, const char *status);

/* Parses a whole answer held in memory.  On success returns 0 and fills
 * *out (which the caller then frees with pobox_answer_free); on failure
 * returns a negative POBOX_E* code with the reason in err (errlen bytes, may
 * be NULL) and leaves *out untouched.  on_row may be NULL (rows are then
 * only counted); it is called only for POBOX_ANSWER_STATUS.  Rows already
 * handed to on_row stay handed even if the answer later turns out
 * malformed: callers apply them only after a 0 return. */
int pobox_response_parse(enum pobox_answer_kind kind, struct pobox_answer *out,
                         const char *body, size_t len, pobox_profile_row_fn on_row, void *ctx,
                         char *err, size_t errlen);

/* The same as a stream, for answers too big to hold (a status answer with
 * hundreds of thousands of rows): create, feed chunks as they arrive, then
 * finish.  Feed and finish return 0 or a negative POBOX_E* code; after an
 * error, every later call returns the same code.  Finish fills *out on
 * success exactly like pobox_response_parse.  The parser is freed with
 * pobox_response_parser_free (NULL is a no-op) whatever happened. */
struct pobox_response_parser;

int pobox_response_parser_new(struct pobox_response_parser **out, enum pobox_answer_kind kind,
                              pobox_profile_row_fn on_row, void *ctx, char *err, size_t errlen);
int pobox_response_parser_feed(struct pobox_response_parser *p, const char *data, size_t len,
                               char *err, size_t errlen);
int pobox_response_parser_finish(struct pobox_response_parser *p, struct pobox_answer *out,
                                 char *err, size_t errlen);
void pobox_response_parser_free(struct pobox_response_parser *p);

/* Makes p a fresh parser of `kind` again, keeping its buffers (expat's and
 * its own): for a caller that parses many small answers one after another.
 * Returns 0, or POBOX_ENOMEM (p is then only good for _free). */
int pobox_response_parser_reset(struct pobox_response_parser *p, enum pobox_answer_kind kind,
                                pobox_profile_row_fn on_row, void *ctx, char *err, size_t errlen);
/* pobox_response_parse with a parser kept from call to call (reset first,
 * rows not reported). */
int pobox_response_parse_again(struct pobox_response_parser *p, enum pobox_answer_kind kind,
                               struct pobox_answer *out, const char *body, size_t len, char *err,
                               size_t errlen);

/* Releases the strings of a filled answer and resets it.  NULL is a no-op. */
void pobox_answer_free(struct pobox_answer *a);

/* A short readable text for an error body, for error messages and logs:
 * the text of its <message> (or <error>) element when the body is XML with
 * one, otherwise the body itself with markup tags removed.  Control
 * characters become spaces, runs of whitespace one space, and the result is
 * at most POBOX_RESPONSE_ERRTEXT_MAX bytes (cut on a UTF-8 boundary, "..."
 * appended when cut) and always NUL-terminated in buf (buflen > 0).  An
 * empty body gives "(empty body)".  Never fails: without memory it falls
 * back to the raw text. */
void pobox_response_error_text(char *buf, size_t buflen, const char *body, size_t len);

#endif
