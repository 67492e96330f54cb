/*
 * error.h - setting one-line error texts in caller-supplied buffers.
 *
 * STYLE.md: no global error state; the text goes on the handle or into a
 * buffer the caller passes.  pobox_errf is the single place that formats it,
 * so every message is truncated safely and never ends in a newline.
 */
#ifndef POBOX_ERROR_H
#define POBOX_ERROR_H

#include <stddef.h>

/* Formats into err (errlen bytes; err may be NULL) and returns code, so a
 * caller can write `return pobox_errf(err, len, POBOX_EINVALID, "...")`. */
int pobox_errf(char *err, size_t errlen, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
