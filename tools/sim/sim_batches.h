/*
 * sim_batches -- accepted bulk uploads, their processing and their status.
 *
 * Owns: the life of a batch after its body was accepted --
 *
 *   submit --> pending --(processing delay, shuffle window)--> complete
 *                 |                                             (rows applied)
 *                 +--(stuck share, decided at submit)--------> stuck
 *                                                              (never applied)
 *
 * and the status records clients poll: only the most recent `status_keep`
 * per client, each for `status_ttl_s` simulated seconds; an evicted or
 * expired status answers like an unknown id, although a pending batch is
 * still processed.  Processing happens at submit when there is no delay and
 * no shuffle window, else on a background ticker (every 20 ms), before any
 * read of state (status, fetch, /_sim/ views), or at once via
 * sim_batches_process_all().  Batches that
 * become due together and were submitted within the shuffle window of the
 * first of them are applied in a seeded random order.
 *
 * It applies rows through sim_store and counts them in sim_counters; it
 * knows nothing about HTTP.  Ownership: sim_batches_submit() takes over the
 * parser's buffers; XML goes into a caller-owned sim_buf.
 */
#ifndef SIM_BATCHES_H
#define SIM_BATCHES_H

#include <stddef.h>

#include "sim_batch_parse.h"
#include "sim_buf.h"
#include "sim_config.h"

int sim_batches_start(void);
void sim_batches_stop(void);

/*
 * Register an accepted batch (parse finished successfully).  The parser's
 * contents move into the batch; *parse is left empty.  Writes the batch id
 * into id_out.  Returns 0, or -1 on allocation failure.
 */
int sim_batches_submit(struct sim_batch_parse *parse, const char *client, int version,
                       const struct sim_config *cfg, char *id_out, size_t id_len);

/* Status XML of batch `id`: 1 if known, 0 if unknown or expired, -1 on
 * allocation failure. */
int sim_batches_status_xml(const char *id, size_t id_len, int details, struct sim_buf *out);

/* Apply the batches that are due (waits for a run in progress, so what a
 * reader sees next includes every due batch). */
void sim_batches_process_due(void);
/* Apply every pending batch now, whatever its delay.  Returns how many. */
size_t sim_batches_process_all(void);
size_t sim_batches_pending(void);
/* Forget every batch (pending ones are dropped unapplied). */
void sim_batches_reset(void);

#endif
