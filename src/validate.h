/*
 * validate.h - the rules every update must pass, in one place (DESIGN.md rule
 * 8).  The C API, `pobox put` and `pobox import` all call these; the sqlite3
 * `enqueue` view's trigger mirrors them in SQL and a test checks both give
 * the same verdicts.
 *
 * Rules
 *   id type    pcId | thirdPartyId, aliases mboxPC, tntId -> pcId and
 *              mbox3rdPartyId -> thirdPartyId (names compared without case);
 *              ECID / marketingCloudVisitorId refused: Target's profile
 *              update APIs do not accept it.
 *   profile id 1..256 bytes of valid UTF-8, no control characters (< 0x20,
 *              0x7f, NUL included); a thirdPartyId may not contain '+' or '/'.
 *   attribute  a leading "profile." is stripped; then 1..128 bytes from the
 *              character table in validate.c (ASCII letters, digits, '_',
 *              '-', '.'), not starting or ending with '.', no "..", and not
 *              a reserved name (pobox_reserved_attributes).
 *   value      valid UTF-8 without NUL bytes, at most max_chars characters
 *              (code points); empty is not an update: POBOX_SKIPPED.
 *
 * A NUL byte is refused everywhere (id, name, value, CSV header) with its
 * byte offset: Target's files and URLs cannot carry it, and C strings would
 * silently end at it.
 *
 * Every function returns 0, POBOX_SKIPPED (values only) or POBOX_EINVALID
 * with a one-line reason in err (errlen bytes, may be NULL) naming the
 * offending input.
 */
#ifndef POBOX_VALIDATE_H
#define POBOX_VALIDATE_H

#include "pobox.h"

#include <stddef.h>

#define POBOX_MAX_ID_BYTES 256
#define POBOX_MAX_ATTR_BYTES 128
#define POBOX_DEFAULT_MAX_VALUE_CHARS 256

int pobox_validate_profile_id(enum pobox_id_type t, const char *id, size_t len,
                              char *err, size_t errlen);

/* On success *name and *name_len are set to the attribute name without its
 * "profile." prefix (pointing into attr). */
int pobox_validate_attr(const char *attr, size_t len, const char **name, size_t *name_len,
                        char *err, size_t errlen);

int pobox_validate_value(const char *value, size_t len, int max_chars, char *err, size_t errlen);

/* Checks UTF-8 well-formedness (no overlongs, no surrogates, <= U+10FFFF).
 * Returns 1 when valid and sets *chars (may be NULL) to the number of code
 * points, 0 when not and sets *bad_at (may be NULL) to the offending offset. */
int pobox_utf8_valid(const char *s, size_t len, size_t *chars, size_t *bad_at);

/* The reserved attribute names, NULL-terminated. */
extern const char *const pobox_reserved_attributes[];

/* Writes a printable, quoted, shortened form of s into buf for messages. */
const char *pobox_quote(char *buf, size_t buflen, const char *s, size_t len);

#endif
