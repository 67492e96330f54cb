/*
 * alloc.h - the one allocation wrapper every libpobox module uses.
 *
 * All heap memory in libpobox goes through these functions so that tests can
 * make the Nth allocation fail (pobox_alloc_fail_after) and check that every
 * caller turns it into POBOX_ENOMEM without leaking or crashing.  Memory from
 * pobox_malloc/realloc/strdup is released with pobox_free.
 */
#ifndef POBOX_ALLOC_H
#define POBOX_ALLOC_H

#include <stddef.h>

void *pobox_malloc(size_t n);
void *pobox_calloc(size_t count, size_t size);
void *pobox_realloc(void *p, size_t n);
char *pobox_strdup(const char *s);
char *pobox_strndup(const char *s, size_t n);
void pobox_free(void *p);

/* Test hook: the allocation after the next n succeeds fails (n = 0 fails the
 * next one); a negative n turns failure injection off. */
void pobox_alloc_fail_after(long n);

#endif
