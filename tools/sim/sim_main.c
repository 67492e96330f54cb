/*
 * pobox-target-sim -- entry point of the Target simulator.
 *
 * Owns: start-up order and shutdown.  Flags are parsed (sim_config), the
 * clock, generator and store are set up, the --preload CSV is loaded, the
 * server starts, and only then is "listening on 127.0.0.1:PORT" printed, so
 * a test that reads that line can connect at once.  SIGTERM and SIGINT are
 * blocked in every thread and taken with sigwait() here, so shutdown runs
 * in ordinary code (stop serving, free everything) and exits 0.
 */
#include <signal.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdio.h>
#include <stdlib.h>

#include "sim_batches.h"
#include "sim_clock.h"
#include "sim_config.h"
#include "sim_preload.h"
#include "sim_rng.h"
#include "sim_server.h"
#include "sim_store.h"

#define EXIT_USAGE 64
#define EXIT_SOFTWARE 70
#define EXIT_OSERR 71

int main(int argc, char **argv)
{
	struct sim_config cfg;
	char err[512];
	sigset_t set;
	int port = 0, sig = 0, rc, status = EXIT_SOFTWARE;
	long loaded = 0;

#ifdef __GLIBC__
	/* One malloc arena: batches are applied on whichever thread received
	 * or processed them, and with per-thread arenas a profile freed on one
	 * thread and rebuilt on another doubles the heap (measured: +56 MB on
	 * a repeated 50 MB batch).  The hot path allocates little, so the
	 * shared arena costs no measurable throughput. */
	mallopt(M_ARENA_MAX, 1);
#endif
	sim_config_defaults(&cfg);
	rc = sim_config_parse_args(&cfg, argc, argv, err, sizeof(err));
	if (rc > 0)
		return 0;
	if (rc < 0) {
		fprintf(stderr, "pobox-target-sim: %s\n", err);
		return EXIT_USAGE;
	}

	/* Block before any thread exists so every thread inherits it. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	sim_clock_init(cfg.clock_scale);
	sim_rng_seed(cfg.seed);
	if (sim_store_init() || sim_config_publish(&cfg)) {
		fprintf(stderr, "pobox-target-sim: out of memory\n");
		goto out;
	}
	if (cfg.preload[0]) {
		loaded = sim_preload_file(cfg.preload, err, sizeof(err));
		if (loaded < 0) {
			fprintf(stderr, "pobox-target-sim: %s\n", err);
			status = EXIT_USAGE;
			goto out;
		}
	}
	if (sim_batches_start()) {
		fprintf(stderr, "pobox-target-sim: cannot start the batch processor\n");
		goto out;
	}
	if (sim_server_start(&cfg, &port, err, sizeof(err))) {
		fprintf(stderr, "pobox-target-sim: %s\n", err);
		status = EXIT_OSERR;
		sim_batches_stop();
		goto out;
	}
	fprintf(stderr, "pobox-target-sim: clients");
	for (size_t i = 0; i < cfg.n_clients; i++)
		fprintf(stderr, " %s", cfg.clients[i]);
	fprintf(stderr, ", %ld preloaded profiles, seed %llu, clock x%g\n", loaded,
	        (unsigned long long)cfg.seed, cfg.clock_scale);
	printf("listening on 127.0.0.1:%d\n", port);
	fflush(stdout);

	while (sigwait(&set, &sig) != 0 || (sig != SIGTERM && sig != SIGINT))
		;
	sim_server_stop();
	sim_batches_stop();
	status = 0;
out:
	sim_store_destroy();
	sim_config_shutdown();
	return status;
}
