/*
 * progress.c - flush --wait's progress line (see progress.h).
 */
#include "progress.h"
#include "cli.h"
#include "log.h"
#include "outbox.h"
#include "quota.h"
#include "store.h"

#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define REDRAW_MS 200
#define SEP " | "

static struct {
	int on, drawn;
	const struct pobox_config *cfg;
	int64_t started_ms, last_draw_ms;
	int64_t batch_floor;          /* the flush's batches have ids above this */
	int64_t delivered0, dead0;    /* tallies when it started */
} P;

static int64_t now_ms(struct pobox *pb) { return pobox_clock_now_ms(&pb->clock); }

/* The terminal's width, 80 when it cannot be had. */
static int columns(void)
{
	struct winsize w;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &w) == 0 && w.ws_col > 0)
		return w.ws_col;
	return 80;
}

void cli_progress_clear(void)
{
	if (!P.drawn)
		return;
	fputs("\r\033[K", stdout);
	fflush(stdout);
	P.drawn = 0;
}

void cli_progress_start(struct pobox *pb, const struct pobox_config *cfg)
{
	struct pobox_status s;
	if (!isatty(STDOUT_FILENO) || pobox_store_status(pb->st, &s) != 0 ||
	    pobox_store_batch_floor(pb->st, &P.batch_floor) != 0)
		return;
	P.on = 1;
	P.drawn = 0;
	P.cfg = cfg;
	P.started_ms = now_ms(pb);
	P.last_draw_ms = 0;
	P.delivered0 = s.updates[POBOX_ST_DELIVERED];
	P.dead0 = s.updates[POBOX_ST_DEAD];
	pobox_log_set_before(cli_progress_clear);
}

void cli_progress_end(void)
{
	if (!P.on)
		return;
	cli_progress_clear();
	pobox_log_set_before(NULL);
	P.on = 0;
}

/* Appends one part when the line still has room for it; the first part is
 * cut to fit instead. */
static void add(char *line, size_t max, const char *part)
{
	size_t n = strlen(line), p = strlen(part), sep = n ? strlen(SEP) : 0;
	if (n == 0 && p > max) {
		snprintf(line, max + 1, "%s", part);
		return;
	}
	if (n + sep + p > max)
		return;
	snprintf(line + n, max + 1 - n, "%s%s", n ? SEP : "", part);
}

static void batches_part(char *buf, size_t len, const struct pobox_batch_tally *t, int64_t elapsed)
{
	char e[32];
	int n = snprintf(buf, len, "flush %s: batches %lld cut, %lld sent, %lld complete",
	                 cli_duration(e, sizeof e, elapsed), (long long)t->cut, (long long)t->sent,
	                 (long long)t->done);
	if (t->dead && n > 0 && (size_t)n < len)
		snprintf(buf + n, len - (size_t)n, ", %lld dead", (long long)t->dead);
}

static void updates_part(char *buf, size_t len, const struct pobox_status *s)
{
	char a[32], b[32];
	int64_t delivered = s->updates[POBOX_ST_DELIVERED] - P.delivered0;
	int64_t dead = s->updates[POBOX_ST_DEAD] - P.dead0;
	if (delivered < 0) /* history pruned meanwhile */
		delivered = 0;
	int64_t all = delivered + (dead > 0 ? dead : 0) + s->updates[POBOX_ST_PENDING] +
	              s->updates[POBOX_ST_BATCHED];
	snprintf(buf, len, "%s/%s updates delivered", cli_num(a, sizeof a, delivered),
	         cli_num(b, sizeof b, all));
}

static void quota_part(struct pobox *pb, char *buf, size_t len, int64_t now)
{
	const struct pobox_config *c = P.cfg;
	struct pobox_watch w;
	struct pobox_quota q;
	struct pobox_quota_opts qo;
	cli_quota_opts(c, &qo);
	char a[32], b[32];
	buf[0] = '\0';
	if (pobox_store_watch(pb->st, now, &w) != 0)
		return;
	int n = snprintf(buf, len, "quota bulk %lld/%lld/min", (long long)w.bulk_calls_last_minute,
	                 (long long)c->bulk_calls_per_minute);
	if (c->single_lane && n > 0 && (size_t)n < len && pobox_quota_read(pb, &qo, now, &q) == 0)
		snprintf(buf + n, len - (size_t)n, ", single %s/%s/24h",
		         cli_num(a, sizeof a, q.used + q.reserved), cli_num(b, sizeof b, q.budget));
}

/* When the bulk lane's next call is due: a poll while batches wait on
 * Target, else a submit.  0 when there is nothing to say. */
static int next_part(char *buf, size_t len, const struct pobox_step *bulk,
                     const struct pobox_batch_tally *t, int64_t now)
{
	char d[32];
	if (!bulk || bulk->next_due_ms < 0 || t->waiting + (t->cut - t->sent) <= 0)
		return 0;
	snprintf(buf, len, "next %s %s", t->waiting ? "poll" : "call",
	         bulk->next_due_ms > now ? cli_duration(d, sizeof d, bulk->next_due_ms - now + 999)
	                                 : "now");
	return 1;
}

void cli_progress_round(struct pobox *pb, const struct pobox_step *bulk)
{
	struct pobox_status s;
	struct pobox_batch_tally t;
	char line[512] = "", part[256], d[32];
	if (!P.on)
		return;
	int64_t now = now_ms(pb);
	if (P.drawn && now - P.last_draw_ms < REDRAW_MS)
		return;
	if (pobox_store_status(pb->st, &s) != 0 ||
	    pobox_store_batch_tally(pb->st, P.batch_floor, P.started_ms, &t) != 0)
		return; /* a figure missing for a moment is no reason to stop */
	int cols = columns();
	size_t max = cols > 1 ? (size_t)cols - 1 : 1; /* the last column would wrap */
	if (max > sizeof line - 1)
		max = sizeof line - 1;
	batches_part(part, sizeof part, &t, now - P.started_ms);
	add(line, max, part);
	updates_part(part, sizeof part, &s);
	add(line, max, part);
	if (t.waiting && t.oldest_waiting_ms > 0) {
		snprintf(part, sizeof part, "oldest on Target %s",
		         cli_duration(d, sizeof d, now - t.oldest_waiting_ms));
		add(line, max, part);
	}
	if (next_part(part, sizeof part, bulk, &t, now))
		add(line, max, part);
	quota_part(pb, part, sizeof part, now);
	if (part[0])
		add(line, max, part);
	fprintf(stdout, "\r%s\033[K", line);
	fflush(stdout);
	P.drawn = 1;
	P.last_draw_ms = now;
}
