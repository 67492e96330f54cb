/*
 * progress.h - flush --wait's live progress line on a terminal.
 *
 * One line on stdout, redrawn in place at most five times a second:
 *
 *   flush 1m05s: batches 3 cut, 2 sent, 1 complete | 1,200/3,000 updates
 *   delivered | oldest on Target 42s | next poll 3s | quota bulk 12/45/min,
 *   single 0/1,000,000/24h
 *
 * (all on one line), cut to the terminal's width so it never wraps: parts
 * that do not fit are left out from the right.  It is wiped before anything
 * else is written to the terminal -- log lines and error lines on stderr
 * (through log.h's hook), the cut and final summary lines on stdout -- and
 * drawn again at the next round.  When stdout is not a terminal nothing
 * is drawn and nothing else changes.
 *
 * State: one progress line per process (module state), used by the thread
 * that runs the delivery loop, which is also the only one that logs.
 *
 *   off --start (stdout a tty)--> on --round: draw / clear: wipe--> on
 *                                  '--end: wipe, unhook--> off
 */
#ifndef POBOX_CLI_PROGRESS_H
#define POBOX_CLI_PROGRESS_H

#include "config.h"
#include "deliver.h"
#include "pobox.h"

#include <stdint.h>

/* Begins a progress line for a flush about to cut and wait, when stdout is
 * a terminal: remembers which batches and updates are the flush's.  cfg is
 * borrowed until cli_progress_end. */
void cli_progress_start(struct pobox *pb, const struct pobox_config *cfg);
/* After a round of the delivery loop: redraws the line (bulk: the bulk
 * lane's step, for the time of its next call; NULL when this process does
 * not deliver). */
void cli_progress_round(struct pobox *pb, const struct pobox_step *bulk);
/* Wipes the line before other output (it comes back at the next round). */
void cli_progress_clear(void);
/* Wipes it for good (before the final summary). */
void cli_progress_end(void);

#endif
