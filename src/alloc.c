/*
 * alloc.c - allocation wrapper with failure injection for tests.
 *
 * The counter is process-wide and not thread-safe on purpose: failure
 * injection is used only by single-threaded unit tests.
 */
#include "alloc.h"

#include <stdlib.h>
#include <string.h>

static long fail_countdown = -1;

void pobox_alloc_fail_after(long n) { fail_countdown = n; }

static int should_fail(void)
{
	if (fail_countdown < 0)
		return 0;
	if (fail_countdown == 0) {
		fail_countdown = -1;
		return 1;
	}
	fail_countdown--;
	return 0;
}

void *pobox_malloc(size_t n)
{
	if (should_fail())
		return NULL;
	return malloc(n ? n : 1);
}

void *pobox_calloc(size_t count, size_t size)
{
	if (should_fail())
		return NULL;
	return calloc(count ? count : 1, size ? size : 1);
}

void *pobox_realloc(void *p, size_t n)
{
	if (should_fail())
		return NULL;
	return realloc(p, n ? n : 1);
}

char *pobox_strndup(const char *s, size_t n)
{
	char *d = pobox_malloc(n + 1);
	if (!d)
		return NULL;
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

char *pobox_strdup(const char *s) { return pobox_strndup(s, strlen(s)); }

void pobox_free(void *p) { free(p); }
