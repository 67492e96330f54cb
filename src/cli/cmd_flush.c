/*
 * cmd_flush.c - `pobox flush [--wait] [--timeout DUR]` and `pobox run [--once]`.
 *
 * Both cut batches (sched.c) and drive the uploader (deliver.c).  Only one
 * process delivers from an outbox at a time: it holds an exclusive lock on
 * "<outbox>-deliver.lock".  A `flush --wait` that finds `pobox run` holding
 * it cuts its batches and waits for run to deliver them instead of racing it.
 */
#include "cli.h"
#include "deliver.h"
#include "log.h"
#include "outbox.h"
#include "sched.h"
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) { stop_signal = sig; }

static void catch_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal; /* no SA_RESTART: sleeps end at once */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
}

static void sleep_ms(int64_t ms)
{
	if (ms <= 0)
		return;
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* Takes the delivery lock; returns its fd, -1 when another process holds
 * it, -2 on error (printed). */
static int delivery_lock(const char *db)
{
	char path[4096];
	snprintf(path, sizeof path, "%s-deliver.lock", db);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		cli_error("cannot open lock file %s: %s", path, strerror(errno));
		return -2;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void print_left(struct pobox *pb, const char *prefix)
{
	struct pobox_status s;
	char a[32], b[32], c[32], d[32];
	if (pobox_store_status(pb->st, &s) != 0)
		return;
	printf("%s: %s pending, %s in batches, %s delivered, %s dead\n", prefix,
	       cli_num(a, sizeof a, s.updates[POBOX_ST_PENDING]),
	       cli_num(b, sizeof b, s.updates[POBOX_ST_BATCHED]),
	       cli_num(c, sizeof c, s.updates[POBOX_ST_DELIVERED]),
	       cli_num(d, sizeof d, s.updates[POBOX_ST_DEAD]));
}

static int cut(struct pobox *pb, const struct pobox_sched_opts *so, int quiet)
{
	struct pobox_cut_summary sum = {0};
	char a[32], b[32], c[32], d[32];
	int rc = pobox_sched_cut(pb, so, &sum);
	if (rc != 0) {
		cli_error("cutting batches: %s", pobox_errmsg(pb));
		return rc;
	}
	if (sum.batches || !quiet) {
		printf("flush: cut %s batches (%s profiles, %s updates, %s bytes)", cli_num(a, sizeof a, sum.batches),
		       cli_num(b, sizeof b, sum.profiles), cli_num(c, sizeof c, sum.updates),
		       cli_num(d, sizeof d, sum.bytes));
		if (sum.superseded)
			printf("; %lld older values superseded", (long long)sum.superseded);
		if (sum.dead_profiles)
			printf("; %lld profiles dead-lettered (over Target's limits)",
			       (long long)sum.dead_profiles);
		putchar('\n');
		fflush(stdout);
	}
	if (sum.batches)
		pobox_log(POBOX_LOG_INFO, "batches_cut", "batches=%lld profiles=%lld updates=%lld bytes=%lld",
		          (long long)sum.batches, (long long)sum.profiles, (long long)sum.updates,
		          (long long)sum.bytes);
	return 0;
}

enum mode { FLUSH_WAIT, RUN };

/* The delivery loop shared by flush --wait and run. */
static int loop(struct cli *cli, struct pobox *pb, const struct pobox_deliver_opts *o,
                enum mode mode, int64_t deadline_ms, int once)
{
	struct pobox_deliverer *d = NULL;
	char err[POBOX_ERRLEN];
	int rc, code = EXIT_OK, lock = -1;
	int64_t last_prune = 0;

	lock = delivery_lock(cli->cfg.db);
	if (lock == -2)
		return EXIT_CANTCREAT;
	if (lock == -1 && mode == RUN) {
		cli_error("another pobox process is delivering from %s (it holds %s-deliver.lock); "
		          "run only one `pobox run` per outbox", cli->cfg.db, cli->cfg.db);
		return EXIT_TEMPFAIL;
	}
	if (lock == -1)
		fprintf(stderr, "pobox: flush: another process (pobox run) is delivering; waiting for "
		        "it to deliver these updates\n");
	if (lock >= 0 && (rc = pobox_deliverer_new(&d, pb, o, err, sizeof err)) != 0) {
		cli_error("%s", err);
		close(lock);
		return cli_exit_code(rc);
	}
	catch_signals();
	for (;;) {
		struct pobox_step st = {.next_due_ms = -1};
		int64_t now = pobox_clock_now_ms(&pb->clock), due = 0, later = 0, next_due = -1,
		        oldest = -1;
		if (stop_signal) {
			if (mode == RUN) {
				pobox_log(POBOX_LOG_INFO, "stopping", "signal=%d", (int)stop_signal);
				code = EXIT_OK;
			} else {
				print_left(pb, "flush: interrupted");
				code = EXIT_TEMPFAIL;
			}
			break;
		}
		if (d && (rc = pobox_deliver_step(d, &st)) != 0) {
			cli_error("delivering: %s", pobox_errmsg(pb));
			code = cli_exit_code(rc);
			break;
		}
		if (!d && (rc = pobox_store_unfinished(pb->st, &st.unfinished)) != 0) {
			cli_error("%s", pobox_errmsg(pb));
			code = cli_exit_code(rc);
			break;
		}
		if (st.paused && (strcmp(st.pause_class, "auth") == 0 || strcmp(st.pause_class, "config") == 0)) {
			cli_error("delivery paused: %s. Nothing was marked dead; fix the %s and run again "
			          "(token_file, client, base_url)",
			          st.pause_reason, strcmp(st.pause_class, "auth") == 0 ? "token" : "configuration");
			if (mode == FLUSH_WAIT) {
				/* a human is waiting: say it now instead of retrying for hours */
				pobox_store_lane_pause(pb->st, "bulk", 0, NULL, NULL);
				print_left(pb, "flush: left");
				code = EXIT_UNAVAILABLE;
				break;
			}
		}
		if ((rc = pobox_store_pending(pb->st, now, &due, &later, &next_due, &oldest)) != 0) {
			cli_error("%s", pobox_errmsg(pb));
			code = cli_exit_code(rc);
			break;
		}
		int want_cut = due > 0;
		if (mode == RUN)
			want_cut = due > 0 && (due >= cli->cfg.flush_rows ||
			                       (oldest >= 0 && now - oldest >= cli->cfg.flush_max_delay_ms));
		if (want_cut && (rc = cut(pb, &o->sched, 1)) != 0) {
			code = cli_exit_code(rc);
			break;
		}
		if (mode == FLUSH_WAIT && !want_cut && st.unfinished == 0 && due == 0 && later == 0) {
			print_left(pb, "flush: done");
			break;
		}
		if (mode == RUN && now - last_prune > 600000) {
			int64_t pruned = 0;
			if (pobox_begin(pb) == 0) {
				int r = pobox_store_prune(pb->st, now - cli->cfg.retention_ms, 50000, &pruned);
				if ((r == 0 ? pobox_commit(pb) : pobox_rollback(pb)) == 0 && r == 0 && pruned)
					pobox_log(POBOX_LOG_INFO, "pruned", "updates=%lld", (long long)pruned);
			}
			last_prune = now;
		}
		if (once)
			break;
		if (deadline_ms > 0 && now >= deadline_ms) {
			print_left(pb, "flush: timed out");
			code = EXIT_TEMPFAIL;
			break;
		}
		if (want_cut)
			continue; /* new batches are due now */
		int64_t wake = now + 1000;
		if (st.next_due_ms >= 0 && st.next_due_ms < wake)
			wake = st.next_due_ms;
		if (next_due >= 0 && next_due < wake)
			wake = next_due;
		if (deadline_ms > 0 && deadline_ms < wake)
			wake = deadline_ms;
		sleep_ms(wake - now < 5 ? 5 : wake - now);
	}
	pobox_deliverer_free(d);
	if (lock >= 0)
		close(lock);
	return code;
}

int cmd_flush(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{"wait", no_argument, NULL, 'w'},
		{"timeout", required_argument, NULL, 't'},
		{NULL, 0, NULL, 0},
	};
	struct pobox_deliver_opts o;
	struct pobox *pb = NULL;
	char *token = NULL;
	int wait = 0, c, code;
	int64_t timeout_ms = 0;

	optind = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'w': wait = 1; break;
		case 't':
			if (pobox_parse_duration_ms(optarg, &timeout_ms) != 0 || timeout_ms <= 0) {
				cli_error("flush: --timeout '%s' is not a duration like 30s, 10m, 2h", optarg);
				return EXIT_USAGE;
			}
			break;
		default: cli_usage(cli_find("flush"), stderr); return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		cli_error("flush: unexpected argument '%s'", argv[optind]);
		return EXIT_USAGE;
	}
	if (timeout_ms && !wait) {
		cli_error("flush: --timeout needs --wait");
		return EXIT_USAGE;
	}
	if ((code = cli_deliver_opts(cli, &o, &token)) != EXIT_OK)
		return code;
	if (!(pb = cli_open(cli, 0, &code)))
		goto out;
	if (cut(pb, &o.sched, 0) != 0) {
		code = EXIT_IOERR;
		goto out;
	}
	code = EXIT_OK;
	if (wait)
		code = loop(cli, pb, &o, FLUSH_WAIT,
		            timeout_ms ? pobox_clock_now_ms(&pb->clock) + timeout_ms : 0, 0);
out:
	pobox_close(pb);
	cli_token_free(token);
	return code;
}

int cmd_run(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{"once", no_argument, NULL, 'o'},
		{NULL, 0, NULL, 0},
	};
	struct pobox_deliver_opts o;
	struct pobox *pb = NULL;
	char *token = NULL;
	int once = 0, c, code;

	optind = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'o')
			once = 1;
		else {
			cli_usage(cli_find("run"), stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		cli_error("run: unexpected argument '%s'", argv[optind]);
		return EXIT_USAGE;
	}
	if ((code = cli_deliver_opts(cli, &o, &token)) != EXIT_OK)
		return code;
	if (!(pb = cli_open(cli, 0, &code)))
		goto out;
	pobox_log(POBOX_LOG_INFO, "started", "outbox=%s client=%s", cli->cfg.db, o.client);
	code = loop(cli, pb, &o, RUN, 0, once);
out:
	pobox_close(pb);
	cli_token_free(token);
	return code;
}
