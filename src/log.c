/*
 * log.c - event lines on stderr (see log.h).
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static enum pobox_log_level level = POBOX_LOG_INFO;
static void (*before)(void);

void pobox_log_set_before(void (*fn)(void)) { before = fn; }

void pobox_log_before(void)
{
	if (before)
		before();
}

void pobox_log_set_level(enum pobox_log_level l) { level = l; }

int pobox_log_enabled(enum pobox_log_level l) { return l <= level; }

void pobox_log(enum pobox_log_level l, const char *event, const char *fmt, ...)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};
	char line[1024];
	size_t o = 0;
	va_list ap;
	if (l > level)
		return;
	if (getenv("JOURNAL_STREAM")) {
		/* journald reads a "<N>" syslog priority prefix (sd-daemon(3)) and
		 * stamps the time itself */
		static const char prio[] = {'3', '4', '6', '7'};
		line[o++] = '<';
		line[o++] = prio[l];
		line[o++] = '>';
	} else {
		struct timespec ts;
		struct tm tm;
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		o += strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
		o += (size_t)snprintf(line + o, sizeof line - o, ".%03ldZ ", ts.tv_nsec / 1000000);
	}
	o += (size_t)snprintf(line + o, sizeof line - o, "%s %s ", names[l], event);
	if (o < sizeof line) {
		va_start(ap, fmt);
		vsnprintf(line + o, sizeof line - o, fmt, ap);
		va_end(ap);
	}
	/* one event, one line, whatever the message held */
	for (char *p = line; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	pobox_log_before();
	fprintf(stderr, "%s\n", line);
}
