/*
 * sim_buf -- growable byte buffer with a hard maximum.
 *
 * Owns: the bytes of every answer the simulator builds (XML, JSON) and the
 * small accumulators for request bodies.  It does not know about HTTP.  A
 * buffer refuses to grow past its `max` (so a hostile body cannot make the
 * simulator allocate without bound); after the first refusal it stays in
 * the failed state and later appends are no-ops, so callers check once at
 * the end instead of after every append.
 *
 * Ownership: the buffer owns `data`; sim_buf_steal() hands it to the caller
 * (who frees it with free()).
 */
#ifndef SIM_BUF_H
#define SIM_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct sim_buf {
	char *data;   /* always NUL-terminated when len > 0 or after any append */
	size_t len;
	size_t cap;
	size_t max;   /* hard limit on len; 0 = unlimited */
	int failed;   /* set when an append was refused or malloc failed */
};

void sim_buf_init(struct sim_buf *b, size_t max);
void sim_buf_free(struct sim_buf *b);
void sim_buf_clear(struct sim_buf *b);

/* Appends; all return 0 on success, -1 once the buffer has failed. */
int sim_buf_add(struct sim_buf *b, const void *p, size_t n);
int sim_buf_adds(struct sim_buf *b, const char *s);
int sim_buf_addc(struct sim_buf *b, char c);
int sim_buf_printf(struct sim_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Append `n` bytes of `s` escaped for XML character data. */
int sim_buf_add_xml(struct sim_buf *b, const char *s, size_t n);
/* Append `n` bytes of `s` as a JSON string, quotes included. */
int sim_buf_add_json(struct sim_buf *b, const char *s, size_t n);

/* Hand the bytes to the caller (never NULL on success; "" for empty). */
char *sim_buf_steal(struct sim_buf *b, size_t *len_out);

#endif
