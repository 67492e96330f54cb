/*
 * watch.c - figures for the views a person watches on a terminal: flush
 * --wait's progress line and status --watch (cli/progress.c,
 * cli/cmd_status.c).  Part of the store; see store.h ("terminal views").
 * Reads only, and only what is small or indexed: the batches a flush
 * waits for (a range of ids), the counts the triggers keep (batch_counts),
 * the per-minute ledger (a minute of rows), the tallies row.
 */
#include "error.h"
#include "internal.h"

#include <string.h>

int pobox_store_batch_tally(struct pobox_store *st, int64_t after_id, int64_t since_ms,
                            struct pobox_batch_tally *out)
{
	static const char sql[] =
		"SELECT count(*), count(submitted_at_ms), coalesce(sum(state = 'done'), 0),"
		" coalesce(sum(state = 'dead'), 0), coalesce(sum(state = 'submitted'), 0),"
		" coalesce(min(CASE WHEN state = 'submitted' THEN submitted_at_ms END), 0)"
		" FROM batches WHERE id > ?1 AND lane = 'bulk'"
		" AND (finished_at_ms IS NULL OR finished_at_ms >= ?2)";
	sqlite3_stmt *s = pobox_store_prep(st, sql);
	memset(out, 0, sizeof *out);
	if (!s)
		return POBOX_EIO;
	sqlite3_bind_int64(s, 1, after_id);
	sqlite3_bind_int64(s, 2, since_ms);
	int r = sqlite3_step(s);
	if (r == SQLITE_ROW) {
		int64_t *f[] = {&out->cut, &out->sent, &out->done, &out->dead, &out->waiting,
		                &out->oldest_waiting_ms};
		for (int i = 0; i < 6; i++)
			*f[i] = sqlite3_column_int64(s, i);
	}
	sqlite3_reset(s);
	return r == SQLITE_ROW ? 0 : pobox_store_fail(st, r, "counting a flush's batches");
}

int pobox_store_batch_floor(struct pobox_store *st, int64_t *after_id)
{
	static const char sql[] =
		"SELECT coalesce((SELECT min(id) - 1 FROM batches"
		"                 WHERE state IN ('ready', 'sending', 'submitted')),"
		"                (SELECT coalesce(max(id), 0) FROM batches))";
	*after_id = 0;
	return pobox_store_one(st, sql, "reading the batches", 0, NULL, after_id, NULL);
}

static int lane_index(const char *lane) { return strcmp(lane, "single") == 0; }

static int state_index(const char *state)
{
	for (int i = 0; i < POBOX_B_COUNT; i++)
		if (strcmp(pobox_batch_state_names[i], state) == 0)
			return i;
	return -1;
}

int pobox_store_watch(struct pobox_store *st, int64_t now_ms, struct pobox_watch *out)
{
	static const char counts[] = "SELECT lane, state, n FROM batch_counts";
	static const char seq[] = "SELECT next_seq - 1 FROM tallies";
	static const char calls[] = "SELECT count(*) FROM bulk_calls WHERE at_ms > ?1";
	static const char oldest[] =
		"SELECT coalesce(min(submitted_at_ms), 0) FROM batches"
		" WHERE state = 'submitted' AND lane = 'bulk'";
	int64_t minute_ago = now_ms - 60000;
	memset(out, 0, sizeof *out);
	int rc = pobox_store_one(st, seq, "reading the tallies", 0, NULL, &out->enqueued, NULL);
	if (rc == 0)
		rc = pobox_store_one(st, calls, "reading the bulk ledger", 1, &minute_ago,
		                     &out->bulk_calls_last_minute, NULL);
	if (rc == 0)
		rc = pobox_store_one(st, oldest, "reading the batches", 0, NULL, &out->oldest_waiting_ms,
		                     NULL);
	sqlite3_stmt *s = rc == 0 ? pobox_store_prep(st, counts) : NULL;
	if (rc || !s)
		return rc ? rc : POBOX_EIO;
	int r;
	while ((r = sqlite3_step(s)) == SQLITE_ROW) {
		int l = lane_index((const char *)sqlite3_column_text(s, 0));
		int k = state_index((const char *)sqlite3_column_text(s, 1));
		if (k >= 0)
			out->batches[l][k] = sqlite3_column_int64(s, 2);
	}
	sqlite3_reset(s);
	return r == SQLITE_DONE ? 0 : pobox_store_fail(st, r, "reading batch counts");
}
