/*
 * status_watch.c - `pobox status --watch [INTERVAL]`: the status redrawn
 * every INTERVAL (2s) until SIGINT or SIGTERM, which end it with exit 0.
 *
 * One frame:
 *
 *   pobox status --watch  /var/lib/pobox/outbox.db  01:09:21Z, every 2s (Ctrl-C ends)
 *   updates   pending 1,200 (oldest 3s) | batched 300 | delivered 9,000 | superseded 4 | dead 0
 *   rates     enqueued 600/min | delivered 580/min | dead 0/min (over the last 1m00s)
 *   bulk      ready 1 | submitted 2 (oldest on Target 42s) | done 17
 *   single    done 3
 *   lanes     bulk running | single paused 4m10s more (throttle: HTTP 429)
 *   quota     bulk 12/45 calls in the last minute | single 30/1,000,000 in 24 h, 999,970 left
 *
 * On a terminal each frame is drawn over the last one from the top left
 * corner, every line cut to the width so that none wraps, and the rest of
 * the screen cleared; elsewhere the frames follow one another, a blank
 * line between, with no escape sequences.  The rates come from what this
 * process saw while watching (at most the last minute; "measuring" until
 * a second frame), except bulk calls, which the outbox's per-minute
 * ledger counts for every process.
 *
 * Owns only the drawing and the samples; the figures are the store's
 * (store.h status, terminal views, lanes) and quota.h's.
 */
#include "cli.h"
#include "outbox.h"
#include "quota.h"
#include "store.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define SAMPLES 64        /* a minute of frames at one a second, and then some */
#define WINDOW_MS 60000

static volatile sig_atomic_t watch_stop;

static void on_stop(int sig) { watch_stop = sig; }

struct sample {
	int64_t at_ms, enqueued, delivered, dead;
};

struct frame {
	int tty;
	size_t width;             /* bytes a line may take on the terminal */
	char line[1024];          /* the line being built */
};

struct watch {
	struct cli *cli;
	struct pobox *pb;
	int64_t interval_ms;
	struct sample s[SAMPLES];
	size_t n, next;           /* samples kept, slot of the next one */
	struct frame f;
};

/* Appends to the line being built. */
static void add(struct frame *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(struct frame *f, const char *fmt, ...)
{
	size_t n = strlen(f->line);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(f->line + n, sizeof f->line - n, fmt, ap);
	va_end(ap);
}

/* Writes the line built (cut to the width on a terminal, not inside a
 * UTF-8 sequence) and starts the next. */
static void emit(struct frame *f)
{
	size_t n = strlen(f->line);
	if (f->tty && n > f->width) {
		n = f->width;
		while (n > 0 && ((unsigned char)f->line[n] & 0xC0) == 0x80)
			n--;
	}
	fwrite(f->line, 1, n, stdout);
	fputs(f->tty ? "\033[K\n" : "\n", stdout);
	f->line[0] = '\0';
}

static size_t width(void)
{
	struct winsize w;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &w) == 0 && w.ws_col > 1)
		return (size_t)w.ws_col - 1; /* the last column would wrap on some terminals */
	return 79;
}

static void header_line(struct watch *w, int64_t now)
{
	char iv[32], hms[16];
	time_t t = (time_t)(now / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(hms, sizeof hms, "%H:%M:%SZ", &tm);
	add(&w->f, "pobox status --watch  %s  %s, every %s (Ctrl-C ends)", pobox_store_path(w->pb->st),
	    hms, cli_duration(iv, sizeof iv, w->interval_ms));
	emit(&w->f);
}

static void updates_line(struct frame *f, const struct pobox_status *s, int64_t now)
{
	char a[32], b[32];
	add(f, "updates  ");
	for (int i = 0; i < POBOX_ST_COUNT; i++) {
		add(f, "%s %s %s", i ? " |" : "", pobox_update_state_names[i],
		    cli_num(a, sizeof a, s->updates[i]));
		if (i == POBOX_ST_PENDING && s->oldest_pending_ms >= 0)
			add(f, " (oldest %s)", cli_duration(b, sizeof b, now - s->oldest_pending_ms));
	}
	emit(f);
}

/* Keeps this frame's figures; *old = the oldest sample kept at most a
 * minute before this one.  Returns 0 when there is none yet. */
static int sample(struct watch *w, const struct pobox_status *s, const struct pobox_watch *v,
                  int64_t now, struct sample *old)
{
	struct sample cur = {now, v->enqueued, s->updates[POBOX_ST_DELIVERED], s->updates[POBOX_ST_DEAD]};
	int found = 0;
	for (size_t i = 0; i < w->n; i++) {
		const struct sample *c = &w->s[i];
		if (now - c->at_ms <= WINDOW_MS && c->at_ms < now && (!found || c->at_ms < old->at_ms)) {
			*old = *c;
			found = 1;
		}
	}
	w->s[w->next] = cur;
	w->next = (w->next + 1) % SAMPLES;
	if (w->n < SAMPLES)
		w->n++;
	return found;
}

static double per_minute(int64_t from, int64_t to, int64_t ms)
{
	return to > from ? (double)(to - from) * 60000.0 / (double)ms : 0.0;
}

static void rates_line(struct frame *f, const struct sample *old, const struct pobox_status *s,
                       const struct pobox_watch *v, int64_t now)
{
	char d[32];
	add(f, "rates     ");
	if (!old) {
		add(f, "measuring (the next frame has them)");
		emit(f);
		return;
	}
	int64_t ms = now - old->at_ms;
	add(f, "enqueued %.0f/min | delivered %.0f/min | dead %.0f/min (over the last %s)",
	    per_minute(old->enqueued, v->enqueued, ms),
	    per_minute(old->delivered, s->updates[POBOX_ST_DELIVERED], ms),
	    per_minute(old->dead, s->updates[POBOX_ST_DEAD], ms), cli_duration(d, sizeof d, ms));
	emit(f);
}

static void batches_line(struct frame *f, const struct pobox_watch *v, int lane, int64_t now)
{
	char a[32], b[32];
	int any = 0;
	add(f, "%-9s", lane ? "single" : "bulk");
	for (int k = 0; k < POBOX_B_COUNT; k++) {
		if (!v->batches[lane][k])
			continue;
		add(f, "%s %s %s", any++ ? " |" : "", pobox_batch_state_names[k],
		    cli_num(a, sizeof a, v->batches[lane][k]));
		if (lane == 0 && k == POBOX_B_SUBMITTED && v->oldest_waiting_ms > 0)
			add(f, " (oldest on Target %s)", cli_duration(b, sizeof b, now - v->oldest_waiting_ms));
	}
	add(f, "%s", any ? "" : " no batches");
	emit(f);
}

static int lanes_line(struct watch *w, int64_t now)
{
	char cls[32], reason[256], d[32];
	add(&w->f, "lanes    ");
	for (int l = 0; l < 2; l++) {
		const char *lane = l ? "single" : "bulk";
		int64_t until = 0;
		int rc = pobox_store_lane_get(w->pb->st, lane, &until, cls, sizeof cls, reason, sizeof reason);
		if (rc)
			return rc;
		add(&w->f, "%s %s", l ? " |" : "", lane);
		if (l && !w->cli->cfg.single_lane)
			add(&w->f, " off (single_lane = no)");
		else if (until > now)
			add(&w->f, " paused %s more (%s: %s)", cli_duration(d, sizeof d, until - now), cls,
			    reason);
		else
			add(&w->f, " running");
	}
	emit(&w->f);
	return 0;
}

static int quota_line(struct watch *w, const struct pobox_watch *v, int64_t now)
{
	const struct pobox_config *c = &w->cli->cfg;
	struct pobox_quota_opts qo;
	cli_quota_opts(c, &qo);
	struct pobox_quota q;
	char a[32], b[32], r[32];
	int rc = pobox_quota_read(w->pb, &qo, now, &q);
	if (rc)
		return rc;
	add(&w->f, "quota     bulk %lld/%lld calls in the last minute | single %s/%s in 24 h, %s left",
	    (long long)v->bulk_calls_last_minute, (long long)c->bulk_calls_per_minute,
	    cli_num(a, sizeof a, q.used + q.reserved), cli_num(b, sizeof b, q.budget),
	    cli_num(r, sizeof r, q.remaining));
	emit(&w->f);
	return 0;
}

/* Reads the figures and draws one frame. */
static int draw(struct watch *w, int first)
{
	struct pobox_status s;
	struct pobox_watch v;
	int64_t now = pobox_clock_now_ms(&w->pb->clock);
	int rc;
	if ((rc = pobox_store_status(w->pb->st, &s)) != 0 ||
	    (rc = pobox_store_watch(w->pb->st, now, &v)) != 0)
		return rc;
	struct sample old = {0};
	int have_old = sample(w, &s, &v, now, &old);
	w->f.width = width();
	if (w->f.tty)
		fputs("\033[H", stdout); /* over the last frame, from the top */
	else if (!first)
		putchar('\n');
	header_line(w, now);
	updates_line(&w->f, &s, now);
	rates_line(&w->f, have_old ? &old : NULL, &s, &v, now);
	batches_line(&w->f, &v, 0, now);
	batches_line(&w->f, &v, 1, now);
	if ((rc = lanes_line(w, now)) != 0 || (rc = quota_line(w, &v, now)) != 0)
		return rc;
	if (w->f.tty)
		fputs("\033[J", stdout); /* what the last frame had below */
	fflush(stdout);
	return 0;
}

/* Sleeps the interval, in slices, waking for a stop. */
static void pause_interval(int64_t ms)
{
	while (ms > 0 && !watch_stop) {
		int64_t slice = ms < 100 ? ms : 100;
		struct timespec ts = {0, (long)slice * 1000000L};
		nanosleep(&ts, NULL);
		ms -= slice;
	}
}

static void catch_stop(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_stop; /* no SA_RESTART: a sleep ends at once */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

int cli_status_watch(struct cli *cli, struct pobox *pb, int64_t interval_ms)
{
	struct watch w = {.cli = cli, .pb = pb, .interval_ms = interval_ms};
	int rc = 0;
	w.f.tty = isatty(STDOUT_FILENO);
	catch_stop();
	if (w.f.tty)
		fputs("\033[H\033[2J", stdout); /* a clean screen to draw on */
	for (int first = 1; !watch_stop; first = 0) {
		if ((rc = draw(&w, first)) != 0)
			break;
		pause_interval(interval_ms);
	}
	if (rc) {
		cli_error("status --watch: %s", pobox_errmsg(pb));
		return cli_exit_code(rc);
	}
	return EXIT_OK;
}
