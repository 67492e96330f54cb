/*
 * log.h - one line per meaningful event, on stderr:
 *
 *   2026-11-23T16:40:01.123Z info batch_sent batch=3 profiles=120 bytes=40213
 *
 * key=value fields after the event name, values with spaces quoted.  Under
 * systemd (JOURNAL_STREAM set) the timestamp is left out (the journal has
 * its own) and the line starts with a "<N>" syslog priority, which journald
 * records as the entry's priority (journalctl -p warning works).  Never
 * pass a token or other secret to these functions.
 */
#ifndef POBOX_LOG_H
#define POBOX_LOG_H

enum pobox_log_level { POBOX_LOG_ERROR, POBOX_LOG_WARN, POBOX_LOG_INFO, POBOX_LOG_DEBUG };

void pobox_log_set_level(enum pobox_log_level l);
int pobox_log_enabled(enum pobox_log_level l);
/* Something the CLI draws on the terminal in place (flush's progress
 * line) that must be wiped before a line is written to stderr: fn is
 * called first, every time.  NULL: nothing.  One per process. */
void pobox_log_set_before(void (*fn)(void));
/* Calls it: for other writers of stderr lines (the CLI's error lines). */
void pobox_log_before(void);
/* fmt continues the line after the event name: "batch=%lld bytes=%lld" */
void pobox_log(enum pobox_log_level l, const char *event, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
