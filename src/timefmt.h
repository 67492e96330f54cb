/*
 * timefmt.h - RFC 3339 date-times, read and written, without the C
 * library's time zone machinery (no TZ, no timegm).
 *
 * Owns: turning "2017-08-18T17:53:39.003-04:00" into Unix milliseconds
 * (token expiries from a token_command, Target's modifiedAt) and Unix
 * milliseconds into "2026-11-23T16:40:01Z" for log lines.
 */
#ifndef POBOX_TIMEFMT_H
#define POBOX_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

/* Parses exactly the n bytes at s: YYYY-MM-DD('T'|'t'|' ')HH:MM:SS[.frac]
 * then 'Z', 'z' or +HH:MM / -HH:MM.  Returns 0 and *ms, or POBOX_EINVALID. */
int pobox_time_parse(const char *s, size_t n, int64_t *ms);

/* Formats ms as UTC "YYYY-MM-DDTHH:MM:SSZ" into buf (at least 24 bytes);
 * returns buf. */
char *pobox_time_format(int64_t ms, char *buf, size_t len);

#endif
