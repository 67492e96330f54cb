/*
 * sim_preload -- profiles that exist before the first request.
 *
 * Owns: reading the --preload CSV (header `thirdPartyId,attr,...` or
 * `pcId,attr,...`, cells URL-encoded exactly as in a batch file) into the
 * store, so v1 batches and single updates have profiles to update.  It
 * reuses the batch parser, so the CSV dialect is the batch dialect.
 */
#ifndef SIM_PRELOAD_H
#define SIM_PRELOAD_H

#include <stddef.h>

/* Returns the number of profiles loaded, or -1 with a message in err. */
long sim_preload_file(const char *path, char *err, size_t err_len);

#endif
