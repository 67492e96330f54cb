/*
 * fleet_load - demand for the fleet tests and the fleet benchmark: puts
 * updates into many outboxes at given rates, through libpobox's C API, as
 * the store servers' point-of-sale processes would.
 *
 *   fleet_load [--seconds S] [--urgent-every N] OUTBOX:RATE...
 *
 * Every update is for a profile of its own (thirdPartyId "<i>-<n>", where
 * i is the outbox's position), so each is one single call: nothing
 * coalesces.  Each outbox gets RATE updates per second, put 10 times a
 * second in one transaction each.  With --urgent-every N every Nth update
 * is urgent.  Prints, at the end, "OUTBOX put N" per outbox.  A failed put
 * is reported and the run goes on (it is what a producer would do); the
 * exit status is 1 if any failed.
 */
#include "pobox.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAXO 256

static volatile sig_atomic_t stop;
static void on_sig(int s) { (void)s; stop = 1; }

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	struct pobox *pb[MAXO];
	char *path[MAXO];
	double rate[MAXO], due[MAXO];
	long put[MAXO];
	int n = 0, urgent_every = 0, failed = 0;
	double seconds = 10;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
			seconds = atof(argv[++i]);
		} else if (strcmp(argv[i], "--urgent-every") == 0 && i + 1 < argc) {
			urgent_every = atoi(argv[++i]);
		} else if (n < MAXO) {
			char *c = strrchr(argv[i], ':');
			if (!c) {
				fprintf(stderr, "fleet_load: '%s' is not OUTBOX:RATE\n", argv[i]);
				return 64;
			}
			*c = '\0';
			path[n] = argv[i];
			rate[n] = atof(c + 1);
			due[n] = 0;
			put[n] = 0;
			n++;
		}
	}
	signal(SIGTERM, on_sig);
	signal(SIGINT, on_sig);
	struct pobox_options o;
	pobox_options_init(&o);
	o.synchronous = POBOX_SYNC_NORMAL;
	o.busy_timeout_ms = 60000;
	for (int i = 0; i < n; i++) {
		char err[512];
		if (pobox_open(&pb[i], path[i], &o, err, sizeof err) != 0) {
			fprintf(stderr, "fleet_load: %s: %s\n", path[i], err);
			return 1;
		}
	}
	double t0 = now_s();
	while (!stop && now_s() - t0 < seconds) {
		double t = now_s() - t0;
		for (int i = 0; i < n; i++) {
			due[i] = rate[i] * (t + 0.1);
			if ((double)put[i] >= due[i])
				continue;
			if (pobox_begin(pb[i]) != 0)
				continue;
			while ((double)put[i] < due[i]) {
				char id[64], val[32];
				snprintf(id, sizeof id, "%d-%ld", i, put[i]);
				snprintf(val, sizeof val, "%ld", put[i]);
				struct pobox_update u = {POBOX_ID_THIRDPARTY, id, "v", val,
				                         urgent_every > 0 && put[i] % urgent_every == 0, "fleet_load"};
				if (pobox_put(pb[i], &u) != 0) {
					fprintf(stderr, "fleet_load: %s: %s\n", path[i], pobox_errmsg(pb[i]));
					failed = 1;
				}
				put[i]++;
			}
			if (pobox_commit(pb[i]) != 0) {
				fprintf(stderr, "fleet_load: %s: commit: %s\n", path[i], pobox_errmsg(pb[i]));
				failed = 1;
			}
		}
		struct timespec ts = {0, 100000000L};
		nanosleep(&ts, NULL);
	}
	for (int i = 0; i < n; i++) {
		printf("%s put %ld\n", path[i], put[i]);
		pobox_close(pb[i]);
	}
	return failed;
}
