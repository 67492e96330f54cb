/*
 * error.c - result-code descriptions and error-text formatting.
 */
#include "error.h"
#include "pobox.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *pobox_strerror(int code)
{
	switch (code) {
	case POBOX_OK: return "ok";
	case POBOX_SKIPPED: return "skipped (empty value)";
	case POBOX_ENOTFOUND: return "not found";
	case POBOX_EBUSY: return "outbox busy";
	case POBOX_ETRANSIENT: return "temporary failure";
	case POBOX_EPERMANENT: return "permanent failure";
	case POBOX_EINVALID: return "invalid input";
	case POBOX_ECONFIG: return "configuration error";
	case POBOX_ENOMEM: return "out of memory";
	case POBOX_EIO: return "I/O error";
	case POBOX_ECORRUPT: return "outbox damaged";
	case POBOX_EFULL: return "outbox full";
	}
	return "unknown error";
}

int pobox_errf(char *err, size_t errlen, int code, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
		/* One line: fold newlines that came from embedded messages. */
		for (char *p = err; *p; p++)
			if (*p == '\n' || *p == '\r')
				*p = ' ';
	}
	return code;
}
