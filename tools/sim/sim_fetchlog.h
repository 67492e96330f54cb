/*
 * sim_fetchlog -- when each profile fetch arrived, for tests that check a
 * client's fetch rate (a verifier must be polite to Target).
 *
 * Owns: a ring of the last SIM_FETCHLOG_KEEP fetches (real and simulated
 * arrival time, id type, id, answer status) and its JSON (GET /_sim/fetches),
 * including the most fetches seen within any window of N real ms.  Real
 * time, because a client's rate is set in real seconds whatever the clock
 * scale.  It does not answer fetches (sim_server does).
 *
 * Threads: any server thread; one mutex.
 */
#ifndef SIM_FETCHLOG_H
#define SIM_FETCHLOG_H

#include <stddef.h>
#include <stdint.h>

#include "sim_buf.h"
#include "sim_store.h"

#define SIM_FETCHLOG_KEEP 10000

/* One fetch: real_ms / sim_ms are its arrival (sim_clock_real_elapsed_ms,
 * sim_clock_now_ms), status the answer's (0: none, the connection was
 * dropped).  Entries may be added out of arrival order (answers with
 * latency finish later). */
void sim_fetchlog_add(int64_t real_ms, int64_t sim_ms, enum sim_id_type type, const char *id,
                      size_t id_len, unsigned status);
/* {"count":N,"kept":K,"window_ms":W,"max_in_window":M,"first_real_ms":..,
 *  "last_real_ms":..,"fetches":[{"real_ms":..,"at":"ISO","id_type":..,
 *  "id":..,"status":..},...]} in the order they were added; list=0
 * leaves "fetches" out. */
int sim_fetchlog_json(struct sim_buf *out, int64_t window_ms, int list);
void sim_fetchlog_reset(void);

#endif
