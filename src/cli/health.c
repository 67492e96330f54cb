/*
 * health.c - `pobox run` watching over the outbox it delivers from: the
 * incremental check (one table with its indexes every check_interval, in
 * turn, with PRAGMA quick_check: a full pass costs what one check of the
 * whole file costs, spread out, and the loop is never blocked for long) and
 * the pause while the outbox is marked damaged (store.h, "damage").
 *
 *   delivering --(a check fails, or any step meets SQLITE_CORRUPT: marked)-->
 *   paused     (one error line, then a reminder every 10 minutes; nothing
 *               is written)
 *   paused     --(pobox doctor finds the file healthy: mark removed)--> delivering
 *
 * Pausing instead of exiting keeps systemd from restarting run into the
 * same refusal every 10 seconds, and delivery resumes by itself once the
 * operator has repaired the file.
 */
#include "cli.h"
#include "log.h"
#include "outbox.h"
#include "store.h"

#include <time.h>

#define REMIND_MS (10 * 60000)

void cli_health_check(struct cli *cli, struct pobox *pb, struct cli_health *h, int64_t now_ms)
{
	char table[256];
	if (cli->cfg.check_interval_ms <= 0 || now_ms - h->last_check_ms < cli->cfg.check_interval_ms)
		return;
	h->last_check_ms = now_ms;
	if (pobox_store_next_table(pb->st, &h->cursor, table, sizeof table) != 0)
		return; /* the failure was recorded as damage if it was */
	if (pobox_store_quick_check(pb->st, table) == 0)
		pobox_log(POBOX_LOG_DEBUG, "outbox_checked", "table=%s", table);
}

int cli_health_paused(struct pobox *pb, struct cli_health *h, int64_t now_ms)
{
	char why[600];
	if (!pobox_store_damaged(pb->st, why, sizeof why)) {
		if (h->paused_since_ms)
			pobox_log(POBOX_LOG_INFO, "outbox_healthy",
			          "paused_s=%lld delivery resumes (the damage mark was removed)",
			          (long long)((now_ms - h->paused_since_ms) / 1000));
		h->paused_since_ms = 0;
		return 0;
	}
	if (!h->paused_since_ms || now_ms - h->last_remind_ms >= REMIND_MS) {
		pobox_log(POBOX_LOG_ERROR, "outbox_damaged",
		          "outbox=%s reason=\"%s\" delivery is paused and nothing is written until "
		          "`pobox doctor` finds the outbox healthy; stop pobox, copy the outbox aside and "
		          "see pobox(1), DAMAGED OUTBOX",
		          pobox_store_path(pb->st), why);
		if (!h->paused_since_ms)
			h->paused_since_ms = now_ms;
		h->last_remind_ms = now_ms;
	}
	struct timespec ts = {1, 0}; /* a signal ends it at once */
	nanosleep(&ts, NULL);
	return 1;
}
