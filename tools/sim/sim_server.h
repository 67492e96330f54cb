/*
 * sim_server -- the HTTP face of the simulator (libmicrohttpd glue).
 *
 * Owns: the listening daemons (127.0.0.1, and [::1] on the same port when
 * available, so `localhost` reaches us whichever address a client tries
 * first), the life of each request (route, fault decision, auth, limits,
 * body intake, answer, delay), and the exact bytes of every answer of the
 * Target endpoints and of the /_sim/ control endpoints.  What an answer
 * *means* comes from sim_store, sim_batches, sim_limits and sim_faults.
 * microhttpd.h is included here and in sim_delay.c only.
 */
#ifndef SIM_SERVER_H
#define SIM_SERVER_H

#include <stddef.h>

#include "sim_config.h"

/*
 * Start serving with the published plan.  `startup` is kept (copied) as the
 * plan POST /_sim/reset returns to.  On success writes the bound port.
 * Returns 0, or -1 with a message in err.
 */
int sim_server_start(const struct sim_config *startup, int *port_out, char *err,
                     size_t err_len);
void sim_server_stop(void);

#endif
