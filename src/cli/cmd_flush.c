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
#include "fleet.h"
#include "metrics.h"
#include "quota.h"
#include "single.h"
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

static volatile sig_atomic_t stop_signal, reload_signal;

static void on_signal(int sig)
{
	if (sig == SIGHUP)
		reload_signal = 1;
	else
		stop_signal = sig;
}

static void catch_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal; /* no SA_RESTART: sleeps end at once */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

static void single_opts(const struct pobox_config *c, struct pobox_single_opts *so)
{
	memset(so, 0, sizeof *so);
	so->quota.single_budget = c->single_budget;
	so->quota.fleet_share = c->fleet_share;
	so->quota.urgent_reserve = c->urgent_reserve;
	so->quota.fleet = c->fleet_url != NULL;
	so->concurrency = c->single_concurrency;
	so->threads = c->single_threads;
	so->max_get_bytes = c->max_get_bytes;
	so->max_post_bytes = c->max_post_bytes;
	so->recovery_ramp_ms = c->recovery_ramp_ms;
}

/* Decides, from the budget now, how many profiles the next cut may route
 * to the single lane. */
static void routing(const struct cli *cli, struct pobox *pb, struct pobox_deliver_opts *o,
                    int64_t pending_estimate)
{
	const struct pobox_config *c = &cli->cfg;
	struct pobox_single_opts so;
	struct pobox_quota q;
	o->sched.single_enabled = 0;
	if (!c->single_lane)
		return;
	single_opts(c, &so);
	int64_t now = pobox_clock_now_ms(&pb->clock), until = 0;
	if (pobox_quota_read(pb, &so.quota, now, &q) != 0)
		return;
	/* a parked single lane (budget spent, auth) takes nothing new */
	if (pobox_store_lane_get(pb->st, "single", &until, NULL, 0, NULL, 0) != 0 || until > now)
		return;
	o->sched.single_enabled = 1;
	o->sched.assume_profiles_exist = c->assume_profiles_exist;
	o->sched.single_left_urgent = q.left_urgent;
	o->sched.single_left_normal =
		q.budget > 0 && (double)q.remaining >= c->single_min_budget_share * (double)q.budget
			? q.left_normal : 0;
	o->sched.single_max_pending = c->single_max_pending;
	o->sched.pending_estimate = pending_estimate;
	o->sched.single_group = c->single_group;
	o->sched.max_get_bytes = c->max_get_bytes;
	o->sched.max_post_bytes = c->max_post_bytes;
	o->sched.single_url_base = (int64_t)(c->base_url && *c->base_url ? strlen(c->base_url)
	                                     : strlen(c->client) + 24) + (int64_t)strlen(c->client) + 20;
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

static int cut(struct pobox *pb, const struct pobox_sched_opts *so, int quiet, struct pobox_fleet *fleet)
{
	struct pobox_cut_summary sum = {0};
	char a[32], b[32], c[32], d[32];
	int rc = pobox_sched_cut(pb, so, &sum);
	if (rc != 0) {
		cli_error("cutting batches: %s", pobox_errmsg(pb));
		return rc;
	}
	if (fleet) /* demand the leases did not cover: ask the fleet for it */
		pobox_fleet_short(fleet, sum.single_refused, sum.single_refused_urgent > 0);
	/* quiet 0: always print; 1: only when batches were cut; 2: never (run
	 * reports through its log) */
	if (quiet < 2 && (sum.batches || !quiet)) {
		printf("flush: cut %s batches (%s profiles, %s updates, %s bytes)", cli_num(a, sizeof a, sum.batches),
		       cli_num(b, sizeof b, sum.profiles), cli_num(c, sizeof c, sum.updates),
		       cli_num(d, sizeof d, sum.bytes));
		if (sum.superseded)
			printf("; %lld older values superseded", (long long)sum.superseded);
		if (sum.single_profiles)
			printf("; %lld profiles by single calls (%lld urgent)", (long long)sum.single_profiles,
			       (long long)sum.single_urgent);
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

static int lane_blocked(const struct pobox_step *st)
{
	return st->paused && (strcmp(st->pause_class, "auth") == 0 || strcmp(st->pause_class, "config") == 0);
}

/* Reloads the configuration file (SIGHUP).  Keeps the old one on error. */
static void reload(struct cli *cli, struct pobox_deliver_opts *o, char **token)
{
	struct pobox_config fresh;
	char err[POBOX_ERRLEN];
	pobox_config_init(&fresh);
	if (pobox_config_load(&fresh, cli->config_path, 0, err, sizeof err) != 0) {
		pobox_log(POBOX_LOG_ERROR, "reload_failed", "reason=\"%s\"", err);
		pobox_config_free(&fresh);
		return;
	}
	/* the outbox stays the one this process opened */
	pobox_config_set(&fresh, "db", cli->cfg.db, err, sizeof err);
	struct pobox_config old = cli->cfg;
	cli->cfg = fresh;
	struct pobox_deliver_opts no;
	char *nt = NULL;
	if (cli_deliver_opts(cli, &no, &nt) != EXIT_OK) {
		pobox_log(POBOX_LOG_ERROR, "reload_failed", "reason=\"invalid delivery settings\"");
		cli->cfg = old;
		pobox_config_free(&fresh);
		return;
	}
	pobox_config_free(&old);
	cli_token_free(*token);
	*token = nt;
	*o = no;
	pobox_log(POBOX_LOG_INFO, "reloaded", "config=%s", cli->config_path);
}

/* The fleet ledger, for the process that holds the delivery lock. */
static int open_fleet(struct cli *cli, struct pobox *pb, const struct pobox_deliver_opts *o,
                      struct pobox_fleet **fleet, char **password)
{
	struct pobox_fleet_opts fo;
	char err[POBOX_ERRLEN];
	int code = cli_fleet_opts(cli, o, &fo, password);
	if (code != EXIT_OK)
		return code;
	int rc = pobox_fleet_open(fleet, pb, &fo, err, sizeof err);
	if (rc) {
		cli_error("fleet: %s", err);
		cli_token_free(*password);
		*password = NULL;
		return cli_exit_code(rc);
	}
	return EXIT_OK;
}

/* The delivery loop shared by flush --wait and run. */
static int loop(struct cli *cli, struct pobox *pb, struct pobox_deliver_opts *o, char **token,
                enum mode mode, int64_t deadline_ms, int once)
{
	struct pobox_deliverer *d = NULL;
	struct pobox_singler *sg = NULL;
	struct pobox_fleet *fleet = NULL;
	struct pobox_single_opts so;
	char err[POBOX_ERRLEN], *fleet_pw = NULL;
	int rc, code = EXIT_OK, lock = -1;
	int64_t last_prune = 0, last_cut_seq = -1, checked_seq = -1, last_full = 0, last_metrics = 0;
	int64_t due = 0, later = 0, next_due = -1, oldest = -1;

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
	single_opts(&cli->cfg, &so);
	if (mode == RUN) /* only once the lock is ours: a refused second run starts nothing */
		pobox_log(POBOX_LOG_INFO, "started", "outbox=%s client=%s", cli->cfg.db, o->client);
	if (lock >= 0 && cli->cfg.fleet_url && (code = open_fleet(cli, pb, o, &fleet, &fleet_pw)) != EXIT_OK) {
		close(lock);
		return code;
	}
	o->fleet = so.fleet = fleet;
	if (lock >= 0 && ((rc = pobox_deliverer_new(&d, pb, o, err, sizeof err)) != 0 ||
	                  (rc = pobox_singler_new(&sg, pb, o, &so, err, sizeof err)) != 0)) {
		cli_error("%s", err);
		pobox_deliverer_free(d);
		pobox_fleet_close(fleet);
		cli_token_free(fleet_pw);
		close(lock);
		return cli_exit_code(rc);
	}
	catch_signals();
	/* a pause for a bad token or client code is for the process that saw it:
	 * this one may have been started with the fix */
	if (d && pobox_store_lane_unpause_auth(pb->st) != 0)
		pobox_log(POBOX_LOG_WARN, "unpause_failed", "reason=\"%s\"", pobox_errmsg(pb));
	for (;;) {
		struct pobox_step st = {.next_due_ms = -1}, ss = {.next_due_ms = -1};
		int64_t now = pobox_clock_now_ms(&pb->clock), max_seq = 0, oldest_new = -1;
		int urgent_new = 0;
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
		if (reload_signal) {
			reload_signal = 0;
			reload(cli, o, token);
			if (d) {
				struct pobox_deliverer *nd = NULL;
				struct pobox_singler *ns = NULL;
				single_opts(&cli->cfg, &so);
				o->fleet = so.fleet = fleet; /* fleet_* changes need a restart */
				if (pobox_deliverer_new(&nd, pb, o, err, sizeof err) == 0 &&
				    pobox_singler_new(&ns, pb, o, &so, err, sizeof err) == 0) {
					pobox_deliverer_free(d);
					pobox_singler_free(sg);
					d = nd;
					sg = ns;
				} else {
					pobox_deliverer_free(nd);
					pobox_log(POBOX_LOG_ERROR, "reload_failed", "reason=\"%s\"", err);
				}
			}
		}
		if (fleet && pobox_fleet_refused(fleet, err, sizeof err)) {
			cli_error("fleet: the coordinator refused this host: %s", err);
			code = EXIT_CONFIG;
			break;
		}
		if (d && ((rc = pobox_deliver_step(d, &st)) != 0 || (rc = pobox_single_step(sg, &ss)) != 0)) {
			cli_error("delivering: %s", pobox_errmsg(pb));
			code = cli_exit_code(rc);
			break;
		}
		/* the bulk step counted unfinished batches before the single step
		 * ended its groups: count again, or flush --wait would sleep a
		 * whole round after its last call */
		if ((!d || ss.actions) && (rc = pobox_store_unfinished(pb->st, &st.unfinished)) != 0) {
			cli_error("%s", pobox_errmsg(pb));
			code = cli_exit_code(rc);
			break;
		}
		const struct pobox_step *blocked = lane_blocked(&st) ? &st : lane_blocked(&ss) ? &ss : NULL;
		if (blocked) {
			cli_error("delivery paused: %s. Nothing was marked dead; fix the %s and run again "
			          "(token_file, client, base_url)",
			          blocked->pause_reason,
			          strcmp(blocked->pause_class, "auth") == 0 ? "token" : "configuration");
			if (mode == FLUSH_WAIT) {
				/* a human is waiting: say it now instead of retrying for hours;
				 * the pause stays recorded, and the next run lifts it */
				print_left(pb, "flush: left");
				code = EXIT_UNAVAILABLE;
				break;
			}
		}
		/* cheap: anything new since the last cut? (no scan) */
		if ((rc = pobox_store_newest(pb->st, last_cut_seq < 0 ? 0 : last_cut_seq, &max_seq,
		                             &urgent_new, &oldest_new)) != 0) {
			cli_error("%s", pobox_errmsg(pb));
			code = cli_exit_code(rc);
			break;
		}
		/* the full count of pending profiles, only when it may have changed */
		if (max_seq != checked_seq || st.actions || ss.actions || (next_due >= 0 && now >= next_due) ||
		    now - last_full >= 30000) {
			if ((rc = pobox_store_pending(pb->st, now, &due, &later, &next_due, &oldest)) != 0) {
				cli_error("%s", pobox_errmsg(pb));
				code = cli_exit_code(rc);
				break;
			}
			checked_seq = max_seq;
			last_full = now;
		}
		int want_cut = due > 0;
		if (mode == RUN)
			want_cut = due > 0 && (urgent_new || due >= cli->cfg.flush_rows ||
			                       (fleet && pobox_fleet_fresh(fleet)) ||
			                       (oldest >= 0 && now - oldest >= cli->cfg.flush_max_delay_ms) ||
			                       (due <= cli->cfg.single_max_pending && cli->cfg.single_lane &&
			                        oldest >= 0 && now - oldest >= 1000));
		if (want_cut) {
			routing(cli, pb, o, due);
			if ((rc = cut(pb, &o->sched, mode == RUN ? 2 : 1, fleet)) != 0) {
				code = cli_exit_code(rc);
				break;
			}
			last_cut_seq = max_seq;
			due = 0;
			checked_seq = -1; /* recount next time */
		}
		int64_t unfinished = st.unfinished;
		if (mode == FLUSH_WAIT && !want_cut && unfinished == 0 && due == 0 && later == 0) {
			print_left(pb, "flush: done");
			break;
		}
		if (mode == RUN && cli->cfg.metrics_file && now - last_metrics >= cli->cfg.metrics_interval_ms) {
			if (pobox_metrics_file(pb, &so.quota, cli->cfg.metrics_file) != 0)
				pobox_log(POBOX_LOG_WARN, "metrics_failed", "reason=\"%s\"", pobox_errmsg(pb));
			last_metrics = now;
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
		/* sleep until something is due; run looks for new updates 4 times a
		 * second (an indexed max(seq), no scan) so urgent ones go out fast */
		int64_t wake = now + (mode == RUN ? 250 : 1000);
		if (st.next_due_ms >= 0 && st.next_due_ms < wake)
			wake = st.next_due_ms;
		if (ss.next_due_ms >= 0 && ss.next_due_ms < wake)
			wake = ss.next_due_ms;
		if (next_due >= 0 && next_due < wake)
			wake = next_due;
		if (deadline_ms > 0 && deadline_ms < wake)
			wake = deadline_ms;
		/* measured again: the steps above may have taken a while, and
		 * sleeping from the iteration's start time would add that again */
		int64_t after = pobox_clock_now_ms(&pb->clock);
		if (wake > after)
			sleep_ms(wake - after < 5 ? 5 : wake - after);
	}
	pobox_deliverer_free(d);
	pobox_singler_free(sg);
	pobox_fleet_close(fleet); /* after the lanes: nothing is taken from it any more */
	cli_token_free(fleet_pw);
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
	{
		int64_t due = 0, later = 0, next_due, oldest;
		pobox_store_pending(pb->st, pobox_clock_now_ms(&pb->clock), &due, &later, &next_due, &oldest);
		routing(cli, pb, &o, due);
	}
	if (cut(pb, &o.sched, 0, NULL) != 0) {
		code = EXIT_IOERR;
		goto out;
	}
	code = EXIT_OK;
	if (wait)
		code = loop(cli, pb, &o, &token, FLUSH_WAIT,
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
	code = loop(cli, pb, &o, &token, RUN, 0, once);
out:
	pobox_close(pb);
	cli_token_free(token);
	return code;
}

static int plan_row(void *ctx, int n, const char *const *names, const char *const *v)
{
	int *rows = ctx;
	if ((*rows)++ == 0) {
		for (int i = 0; i < n; i++)
			printf("%-13s", names[i]);
		putchar('\n');
	}
	for (int i = 0; i < n; i++)
		printf("%-13s", v[i] ? v[i] : "-");
	putchar('\n');
	return 0;
}

static int print_plan(void *ctx, struct pobox *pb, int64_t first)
{
	(void)ctx;
	int rows = 0;
	int rc = pobox_store_each_row(pb->st,
	                              "SELECT lane, api, id_type, profiles, updates, bytes, "
	                              "CASE lane WHEN 'single' THEN profiles ELSE 0 END AS quota_units "
	                              "FROM batches WHERE id >= ?1 ORDER BY id",
	                              1, first, plan_row, &rows);
	if (rc == 0 && rows == 0)
		printf("nothing would be sent: no pending update is due\n");
	return rc;
}

int cmd_plan(struct cli *cli, int argc, char **argv)
{
	struct pobox_deliver_opts o;
	struct pobox_single_opts so;
	struct pobox_cut_summary sum = {0};
	struct pobox_quota q;
	struct pobox *pb = NULL;
	char *token = NULL, a[32], b[32], c[32], d[32];
	int code, rc;
	int64_t due = 0, later = 0, next_due, oldest;

	(void)argv;
	if (argc > 1) {
		cli_error("plan: takes no arguments");
		return EXIT_USAGE;
	}
	if ((code = cli_deliver_opts(cli, &o, &token)) != EXIT_OK)
		return code;
	if (!(pb = cli_open(cli, 1, &code)))
		goto out;
	int64_t now = pobox_clock_now_ms(&pb->clock);
	if ((rc = pobox_store_pending(pb->st, now, &due, &later, &next_due, &oldest)) != 0)
		goto fail;
	routing(cli, pb, &o, due);
	o.sched.dry_run = 1;
	o.sched.plan_fn = print_plan;
	if ((rc = pobox_sched_cut(pb, &o.sched, &sum)) != 0)
		goto fail;
	printf("\n%s profiles in %s batches; %s by single calls (%s urgent), the rest bulk\n",
	       cli_num(a, sizeof a, sum.profiles), cli_num(b, sizeof b, sum.batches),
	       cli_num(c, sizeof c, sum.single_profiles), cli_num(d, sizeof d, sum.single_urgent));
	if (later)
		printf("%lld more profiles wait for a retry time\n", (long long)later);
	single_opts(&cli->cfg, &so);
	if ((rc = pobox_quota_read(pb, &so.quota, now, &q)) != 0)
		goto fail;
	printf("single-call budget: %s remaining of %s; this plan would use %lld, leaving %lld\n",
	       cli_num(a, sizeof a, q.remaining), cli_num(b, sizeof b, q.budget),
	       (long long)sum.single_profiles, (long long)(q.remaining - sum.single_profiles));
	printf("(nothing was sent or changed)\n");
	code = EXIT_OK;
	goto out;
fail:
	cli_error("plan: %s", pobox_errmsg(pb));
	code = cli_exit_code(rc);
out:
	pobox_close(pb);
	cli_token_free(token);
	return code;
}
