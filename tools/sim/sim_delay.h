/*
 * sim_delay -- slow answers without blocking a server thread.
 *
 * Owns: the connections held back by the latency fault.  The handler
 * suspends the connection (MHD_suspend_connection) and hands it here with a
 * real-time deadline; one timer thread resumes each at its deadline, and MHD
 * then calls the handler again, which queues the answer it prepared.  A
 * sleeping handler would instead stall every other connection served by the
 * same epoll thread.  On shutdown every held connection is resumed at once,
 * as MHD requires before MHD_stop_daemon().
 */
#ifndef SIM_DELAY_H
#define SIM_DELAY_H

#include <stdint.h>

struct MHD_Connection;

int sim_delay_start(void);
/* Resume `conn` after delay_ms real milliseconds.  The caller has already
 * suspended it.  Returns 0, or -1 (then the caller must resume it). */
int sim_delay_add(struct MHD_Connection *conn, int64_t delay_ms);
/* Resume everything now and stop the timer thread. */
void sim_delay_stop(void);

#endif
