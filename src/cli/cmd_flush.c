/*
 * cmd_flush.c - `pobox flush [--wait] [--timeout DUR]` and `pobox run [--once]`.
 *
 * Both cut batches (sched.c) and drive the uploader (deliver.c).  Only one
 * process delivers from an outbox at a time: it holds an exclusive lock on
 * "<outbox>-deliver.lock".  A `flush --wait` that finds `pobox run` holding
 * it cuts its batches and waits for run to deliver them instead of racing it.
 */
#include "cli.h"
#include "credentials.h"
#include "deliver.h"
#include "fleet.h"
#include "metrics.h"
#include "quota.h"
#include "single.h"
#include "log.h"
#include "outbox.h"
#include "progress.h"
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
	o->sched.single_hold = 0;
	if (!c->single_lane)
		return;
	single_opts(c, &so);
	int64_t now = pobox_clock_now_ms(&pb->clock), until = 0;
	if (pobox_quota_read(pb, &so.quota, now, &q) != 0)
		return;
	/* a parked single lane (budget spent, auth) takes nothing new; while
	 * it is offline (until a probe gets an answer, whatever `until` says)
	 * its updates stay pending, uncut, coalescing, and go first when
	 * Target is back */
	char cls[16] = "";
	if (pobox_store_lane_get(pb->st, "single", &until, cls, sizeof cls, NULL, 0) != 0)
		return;
	o->sched.single_hold = strcmp(cls, "offline") == 0;
	if (until > now && !o->sched.single_hold)
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
 * it, -2 on error (printed).  The holder writes who it is into the file
 * ("run 1234" or "flush 1234"); when the lock is taken, `holder` gets that
 * text ("" when it says nothing: an older pobox). */
static int delivery_lock(const char *db, int run, char *holder, size_t holder_len)
{
	char path[4096];
	snprintf(path, sizeof path, "%s-deliver.lock", db);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		cli_error("cannot open lock file %s: %s", path, strerror(errno));
		return -2;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		ssize_t n = pread(fd, holder, holder_len - 1, 0);
		holder[n > 0 ? n : 0] = '\0';
		holder[strcspn(holder, "\n")] = '\0';
		close(fd);
		return -1;
	}
	char me[64];
	int n = snprintf(me, sizeof me, "%s %ld\n", run ? "run" : "flush", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, me, (size_t)n, 0) != n)
		pobox_log(POBOX_LOG_WARN, "lock_note_failed", "path=%s reason=\"%s\"", path,
		          strerror(errno));
	return fd;
}

/* `pobox run` finding a `flush --wait` delivering waits for it to finish
 * (a nightly flush may take an hour; the service should not fail and be
 * restarted every RestartSec meanwhile).  Another run, or a holder that
 * does not say who it is, is refused: one service per outbox.  Returns
 * the lock's fd, or -1 (stopped by a signal or refused: *code set). */
static int run_lock(const char *db, int *code)
{
	char holder[64] = "";
	int fd = delivery_lock(db, 1, holder, sizeof holder), said = 0;
	while (fd == -1 && strncmp(holder, "flush ", 6) == 0) {
		if (!said++)
			pobox_log(POBOX_LOG_INFO, "waiting_for_flush",
			          "outbox=%s holder=\"%s\" (a flush is delivering; run starts when it ends)",
			          db, holder);
		if (stop_signal) {
			*code = EXIT_OK;
			return -1;
		}
		sleep_ms(250);
		fd = delivery_lock(db, 1, holder, sizeof holder);
	}
	if (fd == -2)
		*code = EXIT_CANTCREAT;
	if (fd == -1) {
		cli_error("another pobox process (%s) is delivering from %s (it holds %s-deliver.lock); "
		          "run only one `pobox run` per outbox", holder[0] ? holder : "it does not say which",
		          db, db);
		*code = EXIT_TEMPFAIL;
	}
	return fd < 0 ? -1 : fd;
}

static void print_left(struct pobox *pb, const char *prefix)
{
	struct pobox_status s;
	char a[32], b[32], c[32], d[32];
	cli_progress_end(); /* the summary takes the progress line's place */
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
		cli_progress_clear();
		printf("flush: cut %s batches (%s profiles, %s updates, %s bytes)", cli_num(a, sizeof a, sum.batches),
		       cli_num(b, sizeof b, sum.profiles), cli_num(c, sizeof c, sum.updates),
		       cli_num(d, sizeof d, sum.bytes));
		if (sum.superseded)
			printf("; %lld older values superseded", (long long)sum.superseded);
		if (sum.single_profiles)
			printf("; %lld profiles by single calls (%lld urgent)", (long long)sum.single_profiles,
			       (long long)sum.single_urgent);
		if (sum.single_held)
			printf("; %lld profiles wait for the single lane (Target unreachable)",
			       (long long)sum.single_held);
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
static void reload(struct cli *cli, struct pobox_deliver_opts *o, struct pobox_cred **cred)
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
	struct pobox_cred *nc = NULL;
	if ((cli->cfg.metrics_file &&
	     cli_check_output(cli, cli->cfg.metrics_file, "metrics_file", NULL, -1) != EXIT_OK) ||
	    cli_deliver_opts(cli, &no, &nc) != EXIT_OK) {
		pobox_log(POBOX_LOG_ERROR, "reload_failed", "reason=\"invalid delivery settings\"");
		cli->cfg = old;
		pobox_config_free(&fresh);
		return;
	}
	pobox_config_free(&old);
	pobox_cred_free(*cred); /* a deliverer still using it holds its own reference */
	*cred = nc;
	*o = no;
	pobox_log(POBOX_LOG_INFO, "reloaded", "config=%s", cli->config_path);
}

/* What the delivery loop keeps from one round to the next. */
struct loop {
	struct cli *cli;
	struct pobox *pb;
	struct pobox_deliver_opts *o;
	struct pobox_cred **cred;
	enum mode mode;
	int64_t deadline_ms;
	int lock;                       /* the delivery lock's fd, -1: another process delivers */
	struct pobox_deliverer *d;      /* NULL while another process delivers */
	struct pobox_singler *sg;
	struct pobox_single_opts so;
	struct pobox_fleet *fleet;      /* fleet_url: the leases (fleet.h), NULL: none */
	char *fleet_pw;                 /* fleet_password_file's contents, or NULL */
	int64_t last_prune, prune_cursor, last_cut_seq, checked_seq, last_full, last_metrics;
	/* the last full count of pending profiles (pobox_store_pending) */
	int64_t due, later, next_due, oldest;
	struct cli_health health;       /* run's checks of the outbox (health.c) */
};

/* One round: what the lanes did, and what is pending now. */
struct round {
	struct pobox_step st, ss;       /* bulk lane, single lane */
	int64_t now, max_seq;
	int urgent_new, want_cut;
};

/* The deliverers' abort hook (called from any thread): a stop signal, or
 * flush --wait's deadline, ends calls in flight at once instead of
 * waiting out request_timeout for a server that does not answer. */
static int abort_wanted(void *ctx)
{
	const struct loop *l = ctx;
	return stop_signal ||
	       (l->deadline_ms > 0 && pobox_clock_now_ms(&l->pb->clock) >= l->deadline_ms);
}

/* The fleet ledger, for the process that holds the delivery lock; the
 * lanes draw on it (o->fleet, so.fleet).  EXIT_OK, or the exit code after
 * saying why. */
static int open_fleet(struct loop *l)
{
	struct pobox_fleet_opts fo;
	char err[POBOX_ERRLEN];
	int code = cli_fleet_opts(l->cli, l->o, &fo, &l->fleet_pw);
	if (code != EXIT_OK)
		return code;
	int rc = pobox_fleet_open(&l->fleet, l->pb, &fo, err, sizeof err);
	if (rc) {
		cli_error("fleet: %s", err);
		cli_fleet_password_free(l->fleet_pw);
		l->fleet_pw = NULL;
		return cli_exit_code(rc);
	}
	return EXIT_OK;
}

static void close_fleet(struct loop *l)
{
	pobox_fleet_close(l->fleet); /* after the lanes: nothing is taken from it any more */
	cli_fleet_password_free(l->fleet_pw);
	l->fleet = NULL;
	l->fleet_pw = NULL;
	l->o->fleet = l->so.fleet = NULL;
}

/* loop_open: stopped by a signal before it began (run waiting for a
 * flush's lock): exit 0, nothing opened. */
#define LOOP_STOPPED (-1)

/* Takes the delivery lock and makes the deliverers.  EXIT_OK, LOOP_STOPPED,
 * or the exit code after saying why. */
static int loop_open(struct loop *l)
{
	struct cli *cli = l->cli;
	char err[POBOX_ERRLEN];
	int rc, code = EXIT_OK;

	l->o->abort_fn = abort_wanted;
	l->o->abort_ctx = l;
	if (l->mode == RUN) {
		catch_signals(); /* a stop ends the wait for a flush's lock */
		if ((l->lock = run_lock(cli->cfg.db, &code)) < 0 && code == EXIT_OK) {
			pobox_log(POBOX_LOG_INFO, "stopping", "signal=%d (while waiting for the flush)",
			          (int)stop_signal);
			return LOOP_STOPPED;
		}
		if (l->lock < 0)
			return code;
	} else {
		char holder[64] = "";
		if ((l->lock = delivery_lock(cli->cfg.db, 0, holder, sizeof holder)) == -2)
			return EXIT_CANTCREAT;
		if (l->lock == -1)
			fprintf(stderr, "pobox: flush: another process (%s) is delivering; waiting for "
			        "it to deliver these updates\n", holder[0] ? holder : "pobox run");
	}
	single_opts(&cli->cfg, &l->so);
	if (l->mode == RUN) /* only once the lock is ours: a refused second run starts nothing */
		pobox_log(POBOX_LOG_INFO, "started", "outbox=%s client=%s", cli->cfg.db, l->o->client);
	if (l->lock >= 0 && cli->cfg.fleet_url && (rc = open_fleet(l)) != EXIT_OK) {
		close(l->lock);
		l->lock = -1;
		return rc;
	}
	l->o->fleet = l->so.fleet = l->fleet;
	if (l->lock >= 0 && ((rc = pobox_deliverer_new(&l->d, l->pb, l->o, err, sizeof err)) != 0 ||
	                     (rc = pobox_singler_new(&l->sg, l->pb, l->o, &l->so, err, sizeof err)) != 0)) {
		cli_error("%s", err);
		pobox_deliverer_free(l->d);
		l->d = NULL;
		close_fleet(l);
		close(l->lock);
		l->lock = -1;
		return cli_exit_code(rc);
	}
	catch_signals();
	/* a pause for a bad token or client code is for the process that saw it:
	 * this one may have been started with the fix */
	if (l->d && pobox_store_lane_unpause_auth(l->pb->st) != 0)
		pobox_log(POBOX_LOG_WARN, "unpause_failed", "reason=\"%s\"", pobox_errmsg(l->pb));
	return EXIT_OK;
}

static void loop_close(struct loop *l)
{
	pobox_deliverer_free(l->d);
	pobox_singler_free(l->sg);
	close_fleet(l);
	if (l->lock >= 0)
		close(l->lock);
	l->o->abort_fn = NULL;
	l->o->abort_ctx = NULL;
}

/* SIGHUP: the configuration again, and deliverers made from it (the old
 * ones stay when the new ones cannot be made).  A pause for the token or
 * the client code ends: the reload may be the fix, and if it is not, the
 * next call says so again. */
static void reload_deliverers(struct loop *l)
{
	struct pobox_deliverer *nd = NULL;
	struct pobox_singler *ns = NULL;
	char err[POBOX_ERRLEN];

	reload(l->cli, l->o, l->cred);
	l->o->abort_fn = abort_wanted;
	l->o->abort_ctx = l;
	l->o->fleet = l->fleet; /* fleet_* changes need a restart */
	if (!l->d)
		return;
	single_opts(&l->cli->cfg, &l->so);
	l->so.fleet = l->fleet;
	if (pobox_deliverer_new(&nd, l->pb, l->o, err, sizeof err) == 0 &&
	    pobox_singler_new(&ns, l->pb, l->o, &l->so, err, sizeof err) == 0) {
		pobox_deliverer_free(l->d);
		pobox_singler_free(l->sg);
		l->d = nd;
		l->sg = ns;
		/* perhaps reloaded with fixed credentials: try them now */
		if (pobox_store_lane_unpause_auth(l->pb->st) != 0)
			pobox_log(POBOX_LOG_WARN, "unpause_failed", "reason=\"%s\"", pobox_errmsg(l->pb));
	} else {
		pobox_deliverer_free(nd);
		pobox_log(POBOX_LOG_ERROR, "reload_failed", "reason=\"%s\"", err);
	}
}

/* A storage error ends the loop: says so and sets *code.  Returns 1. */
static int loop_failed(struct loop *l, int rc, const char *what, int *code)
{
	if (what)
		cli_error("%s: %s", what, pobox_errmsg(l->pb));
	else
		cli_error("%s", pobox_errmsg(l->pb));
	*code = cli_exit_code(rc);
	return 1;
}

/* A damaged outbox does not end run: the next round pauses (health.c). */
static int damage_pauses(const struct loop *l, int rc)
{
	return l->mode == RUN && rc == POBOX_ECORRUPT;
}

/* Runs both lanes once.  Returns 1 when the loop ends (*code set), -1 when
 * only this round does (run, a damaged outbox), 0 to go on. */
static int deliver_round(struct loop *l, struct round *r, int *code)
{
	char err[POBOX_ERRLEN];
	int rc;
	if (l->fleet && pobox_fleet_refused(l->fleet, err, sizeof err)) {
		cli_error("fleet: the coordinator refused this host: %s", err);
		*code = EXIT_CONFIG;
		return 1;
	}
	if (l->d && ((rc = pobox_deliver_step(l->d, &r->st)) != 0 ||
	             (rc = pobox_single_step(l->sg, &r->ss)) != 0)) {
		if (!damage_pauses(l, rc))
			return loop_failed(l, rc, "delivering", code);
		cli_error("delivering: %s", pobox_errmsg(l->pb));
		return -1;
	}
	/* the bulk step counted unfinished batches before the single step
	 * ended its groups: count again, or flush --wait would sleep a
	 * whole round after its last call */
	if ((!l->d || r->ss.actions) && (rc = pobox_store_unfinished(l->pb->st, &r->st.unfinished)) != 0)
		return loop_failed(l, rc, NULL, code);
	const struct pobox_step *blocked = lane_blocked(&r->st) ? &r->st
	                                   : lane_blocked(&r->ss) ? &r->ss : NULL;
	if (!blocked)
		return 0;
	cli_error("delivery paused: %s. Nothing was marked dead; fix the %s and run again "
	          "(token_file, token_command or ims_*; client, base_url)",
	          blocked->pause_reason,
	          strcmp(blocked->pause_class, "auth") == 0 ? "credentials" : "configuration");
	if (l->mode != FLUSH_WAIT)
		return 0;
	/* a human is waiting: say it now instead of retrying for hours;
	 * the pause stays recorded, and the next run lifts it */
	print_left(l->pb, "flush: left");
	*code = EXIT_UNAVAILABLE;
	return 1;
}

/* What is pending: a cheap look for new updates every round (no scan),
 * the full count only when it may have changed.  1 on error (*code set). */
static int count_pending(struct loop *l, struct round *r, int *code)
{
	int64_t oldest_new = -1, now = r->now;
	int rc;
	if ((rc = pobox_store_newest(l->pb->st, l->last_cut_seq < 0 ? 0 : l->last_cut_seq,
	                             &r->max_seq, &r->urgent_new, &oldest_new)) != 0)
		return loop_failed(l, rc, NULL, code);
	if (r->max_seq != l->checked_seq || r->st.actions || r->ss.actions ||
	    (l->next_due >= 0 && now >= l->next_due) || now - l->last_full >= 30000) {
		if ((rc = pobox_store_pending(l->pb->st, now, &l->due, &l->later, &l->next_due,
		                              &l->oldest)) != 0)
			return loop_failed(l, rc, NULL, code);
		l->checked_seq = r->max_seq;
		l->last_full = now;
	}
	return 0;
}

/* Whether the single lane is offline (outage.h): until a probe gets an
 * answer, whatever the pause's time says. */
static int single_offline(struct pobox *pb)
{
	char cls[16] = "";
	int64_t until = 0;
	return pobox_store_lane_get(pb->st, "single", &until, cls, sizeof cls, NULL, 0) == 0 &&
	       strcmp(cls, "offline") == 0;
}

/* flush --wait cuts whatever is due; run waits for a reason to.  While the
 * single lane is offline, what is due for it stays pending (routing), so
 * only new updates are a reason to cut again: the pending ones are not
 * re-cut round after round. */
static int cut_wanted(const struct loop *l, const struct round *r)
{
	const struct pobox_config *c = &l->cli->cfg;
	if (l->due > 0 && r->max_seq == l->last_cut_seq && single_offline(l->pb))
		return 0;
	if (l->mode != RUN)
		return l->due > 0;
	return l->due > 0 && (r->urgent_new || l->due >= c->flush_rows ||
	                      (l->fleet && pobox_fleet_fresh(l->fleet)) ||
	                      (l->oldest >= 0 && r->now - l->oldest >= c->flush_max_delay_ms) ||
	                      (l->due <= c->single_max_pending && c->single_lane && l->oldest >= 0 &&
	                       r->now - l->oldest >= 1000));
}

/* Cuts the due profiles into batches.  1 on error (*code set), -1 when
 * the round ends instead (run, a damaged outbox). */
static int cut_round(struct loop *l, struct round *r, int *code)
{
	int rc;
	routing(l->cli, l->pb, l->o, l->due);
	if ((rc = cut(l->pb, &l->o->sched, l->mode == RUN ? 2 : 1, l->fleet)) != 0) {
		if (damage_pauses(l, rc))
			return -1;
		*code = cli_exit_code(rc);
		return 1;
	}
	l->last_cut_seq = r->max_seq;
	l->due = 0;
	l->checked_seq = -1; /* recount next time */
	return 0;
}

/* run's chores: the metrics file, the outbox's incremental check and
 * pruning delivered history. */
static void housekeeping(struct loop *l, int64_t now)
{
	const struct pobox_config *c = &l->cli->cfg;
	if (c->metrics_file && now - l->last_metrics >= c->metrics_interval_ms) {
		if (pobox_metrics_file(l->pb, &l->so.quota, c->metrics_file) != 0)
			pobox_log(POBOX_LOG_WARN, "metrics_failed", "reason=\"%s\"", pobox_errmsg(l->pb));
		l->last_metrics = now;
	}
	cli_health_check(l->cli, l->pb, &l->health, now);
	if (now - l->last_prune > 600000 || l->prune_cursor) {
		/* a slice at a time, so producers never wait long */
		int64_t pruned = 0;
		if (pobox_begin(l->pb) == 0) {
			int r = pobox_store_prune(l->pb->st, now - c->retention_ms, 5000, &l->prune_cursor,
			                          &pruned);
			if ((r == 0 ? pobox_commit(l->pb) : pobox_rollback(l->pb)) == 0 && r == 0 && pruned)
				pobox_log(POBOX_LOG_INFO, "pruned", "updates=%lld", (long long)pruned);
			if (r)
				l->prune_cursor = 0;
		}
		l->last_prune = now;
	}
}

/* Sleeps until something is due; run looks for new updates 4 times a
 * second (an indexed max(seq), no scan) so urgent ones go out fast. */
static void sleep_until_due(const struct loop *l, const struct round *r)
{
	int64_t wake = r->now + (l->mode == RUN ? 250 : 1000);
	if (r->st.next_due_ms >= 0 && r->st.next_due_ms < wake)
		wake = r->st.next_due_ms;
	if (r->ss.next_due_ms >= 0 && r->ss.next_due_ms < wake)
		wake = r->ss.next_due_ms;
	if (l->next_due >= 0 && l->next_due < wake)
		wake = l->next_due;
	if (l->deadline_ms > 0 && l->deadline_ms < wake)
		wake = l->deadline_ms;
	/* measured again: the steps above may have taken a while, and
	 * sleeping from the round's start time would add that again */
	int64_t after = pobox_clock_now_ms(&l->pb->clock);
	if (wake > after)
		sleep_ms(wake - after < 5 ? 5 : wake - after);
}

/* A stop signal ends the loop: run exits 0, flush --wait 75.  Returns 1
 * when one came (*code set). */
static int stop_requested(const struct loop *l, int *code)
{
	if (!stop_signal)
		return 0;
	if (l->mode == RUN) {
		pobox_log(POBOX_LOG_INFO, "stopping", "signal=%d", (int)stop_signal);
		*code = EXIT_OK;
	} else {
		print_left(l->pb, "flush: interrupted");
		*code = EXIT_TEMPFAIL;
	}
	return 1;
}

/* One round of the loop.  Returns 1 when the loop ends (*code set), 0 to
 * go on. */
static int one_round(struct loop *l, int once, int *code)
{
	struct round r = {.st = {.next_due_ms = -1}, .ss = {.next_due_ms = -1}};
	r.now = pobox_clock_now_ms(&l->pb->clock);
	if (stop_requested(l, code))
		return 1;
	if (reload_signal) {
		reload_signal = 0;
		reload_deliverers(l);
	}
	/* a damaged outbox: run waits for the repair, flush --wait gives up */
	if (l->mode == RUN && cli_health_paused(l->pb, &l->health, r.now))
		return 0;
	int k = deliver_round(l, &r, code);
	if (k)
		return k > 0;
	if (count_pending(l, &r, code))
		return 1;
	r.want_cut = cut_wanted(l, &r);
	if (r.want_cut && (k = cut_round(l, &r, code)) != 0)
		return k > 0;
	if (l->mode == FLUSH_WAIT && !r.want_cut && r.st.unfinished == 0 && l->due == 0 &&
	    l->later == 0) {
		print_left(l->pb, "flush: done");
		return 1;
	}
	if (l->mode == RUN)
		housekeeping(l, r.now);
	if (once)
		return 1;
	if (l->deadline_ms > 0 && r.now >= l->deadline_ms) {
		print_left(l->pb, "flush: timed out");
		*code = EXIT_TEMPFAIL;
		return 1;
	}
	cli_progress_round(l->pb, l->d ? &r.st : NULL);
	if (!r.want_cut) /* else new batches are due now */
		sleep_until_due(l, &r);
	return 0;
}

/* The delivery loop shared by flush --wait and run. */
static int loop(struct cli *cli, struct pobox *pb, struct pobox_deliver_opts *o,
                struct pobox_cred **cred, enum mode mode, int64_t deadline_ms, int once)
{
	struct loop l = {
		.cli = cli, .pb = pb, .o = o, .cred = cred, .mode = mode,
		.deadline_ms = deadline_ms, .lock = -1,
		.last_cut_seq = -1, .checked_seq = -1, .next_due = -1, .oldest = -1,
	};
	int code = loop_open(&l);
	if (code == LOOP_STOPPED)
		return EXIT_OK;
	if (code != EXIT_OK)
		return code;
	while (!one_round(&l, once, &code))
		;
	loop_close(&l);
	return code;
}

/* Dead updates in the outbox now (-1 when they cannot be counted). */
static int64_t dead_count(struct pobox *pb)
{
	struct pobox_status s;
	return pobox_store_status(pb->st, &s) == 0 ? s.updates[POBOX_ST_DEAD] : -1;
}

/* flush --wait exits 0 only when everything it waited for was delivered:
 * when updates died meanwhile it says so, and a flush that otherwise
 * succeeded exits 65. */
static int dead_verdict(struct pobox *pb, int64_t dead_before, int code)
{
	int64_t now = dead_count(pb);
	char n[32];
	if (dead_before < 0 || now <= dead_before)
		return code;
	printf("flush: %s updates ended dead instead of delivered; see `pobox dead`\n",
	       cli_num(n, sizeof n, now - dead_before));
	fflush(stdout);
	cli_error("flush: %s updates ended dead (reasons: pobox dead)", n);
	return code == EXIT_OK ? EXIT_DATAERR : code;
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
	struct pobox_cred *cred = NULL;
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
	if ((code = cli_deliver_opts(cli, &o, &cred)) != EXIT_OK)
		return code;
	if (!(pb = cli_open(cli, 0, &code)))
		goto out;
	int64_t dead_before = dead_count(pb);
	if (wait) /* before the cut: the batches it cuts are the flush's */
		cli_progress_start(pb, &cli->cfg);
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
	if (wait) {
		code = loop(cli, pb, &o, &cred, FLUSH_WAIT,
		            timeout_ms ? pobox_clock_now_ms(&pb->clock) + timeout_ms : 0, 0);
		code = dead_verdict(pb, dead_before, code);
	}
out:
	cli_progress_end();
	pobox_close(pb);
	pobox_cred_free(cred);
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
	struct pobox_cred *cred = NULL;
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
	/* before anything is opened for writing: the metrics file is replaced
	 * by rename, so naming the outbox would destroy it */
	if (cli->cfg.metrics_file &&
	    (code = cli_check_output(cli, cli->cfg.metrics_file, "metrics_file", NULL, -1)) != EXIT_OK)
		return code;
	if ((code = cli_deliver_opts(cli, &o, &cred)) != EXIT_OK)
		return code;
	if (!(pb = cli_open(cli, CLI_RUN, &code)))
		goto out;
	code = loop(cli, pb, &o, &cred, RUN, 0, once);
out:
	pobox_close(pb);
	pobox_cred_free(cred);
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
	struct pobox_cred *cred = NULL;
	char a[32], b[32], c[32], d[32];
	int code, rc;
	int64_t due = 0, later = 0, next_due, oldest;

	(void)argv;
	if (argc > 1) {
		cli_error("plan: takes no arguments");
		return EXIT_USAGE;
	}
	if ((code = cli_deliver_opts(cli, &o, &cred)) != EXIT_OK)
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
	if (sum.single_held)
		printf("%lld profiles wait for the single lane, offline until Target answers again\n",
		       (long long)sum.single_held);
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
	pobox_cred_free(cred);
	return code;
}
