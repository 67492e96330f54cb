/*
 * credcache.h - the token cache beside the outbox, shared by every pobox
 * process on it (IMS-minted tokens only).
 *
 * Owns: the file "<outbox>-token.cache" -- one JSON object
 *
 *   {"version":1,"key":"<16 hex>","ims_token":"...","ims_obtained_at_ms":N,
 *    "ims_expires_at_ms":N,"token":"...","obtained_at_ms":N,"expires_at_ms":N}
 *
 * where key fingerprints the client id, tenant, scopes and URLs (never the
 * secret), so a changed configuration does not use another one's tokens --
 * and its lock, "<cache>.lock" (flock), held by the one process minting.
 *
 * Invariants:
 *  1. The file is only ever replaced whole: written to "<cache>.tmp.<pid>"
 *     (O_EXCL, mode 600), fsync'd, renamed over the cache, and the directory
 *     fsync'd.  A reader sees the old file or the new one, never a part;
 *     after a crash at any point the old one (or none) is there.
 *  2. A cache not owned by us, not a regular file, or readable by group or
 *     others is not read (and is replaced by the next write).
 *  3. Nothing but the writer's tokens and times is in it.
 */
#ifndef POBOX_CREDCACHE_H
#define POBOX_CREDCACHE_H

#include <stddef.h>
#include <stdint.h>

struct pobox_credcache_entry {
	char *ims_token;              /* may be NULL */
	int64_t ims_obtained_ms, ims_expires_ms;
	char *token;                  /* the profile token; may be NULL */
	int64_t obtained_ms, expires_ms;
};

/* Reads the cache.  Returns 0 (e filled; free with _entry_free),
 * POBOX_ENOTFOUND (no file, or one for another key), or POBOX_EINVALID /
 * POBOX_EIO / POBOX_ENOMEM with the reason in err (to be logged; the cache
 * is then treated as empty). */
int pobox_credcache_read(const char *path, const char *key, struct pobox_credcache_entry *e,
                         char *err, size_t errlen);

/* Replaces the cache (invariant 1).  0, or POBOX_EIO / POBOX_ENOMEM with err. */
int pobox_credcache_write(const char *path, const char *key, const struct pobox_credcache_entry *e,
                          char *err, size_t errlen);

/* Wipes and frees the tokens. */
void pobox_credcache_entry_free(struct pobox_credcache_entry *e);

/* Takes "<path>.lock", waiting up to wait_ms.  Returns 0 and *fd,
 * POBOX_EBUSY when the wait ran out, POBOX_EIO with err. */
int pobox_credcache_lock(const char *path, int64_t wait_ms, int *fd, char *err, size_t errlen);
void pobox_credcache_unlock(int fd);

#endif
