/*
 * cmd_doctor.c - `pobox doctor [--repair]`: checks the outbox and pobox's
 * own invariants, says what is wrong and how to fix it, and with --repair
 * fixes what is safe to fix (nothing accepted is ever lost by a repair; at
 * worst an update is sent again).  All checks and repairs run in one
 * transaction; without --repair it is rolled back.
 */
#include "alloc.h"
#include "cli.h"
#include "outbox.h"
#include "quota.h"
#include "store.h"
#include "payload.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tally {
	int64_t problems, fixed;
};

static int report(void *ctx, const char *name, int64_t problems, int fixed, const char *advice)
{
	struct tally *t = ctx;
	if (!problems) {
		printf("ok      %s\n", name);
		return 0;
	}
	t->problems++;
	if (fixed)
		t->fixed++;
	printf("%-7s %s: %lld\n", fixed ? "FIXED" : "PROBLEM", name, (long long)problems);
	if (advice && *advice)
		printf("        %s\n", advice);
	return 0;
}

struct batch_ids {
	int64_t ids[4096];
	int n;
};

static int collect(void *ctx, int n, const char *const *names, const char *const *v)
{
	struct batch_ids *b = ctx;
	(void)n, (void)names;
	if (b->n < 4096 && v[0])
		b->ids[b->n++] = strtoll(v[0], NULL, 10);
	return 0;
}

int cmd_doctor(struct cli *cli, int argc, char **argv)
{
	struct tally t = {0, 0};
	struct pobox *pb;
	int repair = 0, code, rc;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--repair") == 0)
			repair = 1;
		else {
			cli_usage(cli_find("doctor"), stderr);
			return EXIT_USAGE;
		}
	}
	if (!(pb = cli_open(cli, CLI_DOCTOR, &code))) {
		fprintf(stderr, "pobox: doctor: the outbox cannot be opened, so pobox will not use it; it "
		        "was not changed. If SQLite calls it damaged: copy it aside and try `sqlite3 %s "
		        ".recover | sqlite3 recovered.db`, or restore a backup.\n",
		        cli->cfg.db ? cli->cfg.db : "OUTBOX");
		return code;
	}
	int64_t now = pobox_clock_now_ms(&pb->clock);
	char mark[600];
	int marked = pobox_store_damaged(pb->st, mark, sizeof mark), healthy = 0;
	if ((rc = pobox_begin(pb)) != 0)
		goto fail;
	if ((rc = pobox_store_doctor(pb->st, repair, now, report, &t, &healthy)) != 0)
		goto fail;
	if (!healthy && repair) {
		printf("note    nothing is repaired while SQLite reports damage: writing into a "
		       "damaged file can only spread it\n");
		repair = 0;
	}
	if (healthy && marked)
		printf("note    the outbox was marked damaged (%s); SQLite's integrity check passes "
		       "now, so the mark is removed and pobox writes to it again\n", mark);

	/* quota units held by processes that are gone */
	int64_t orphaned = 0;
	if ((rc = pobox_quota_orphaned(pb, now, &orphaned)) != 0)
		goto fail;
	if (orphaned && repair && (rc = pobox_quota_reap(pb, now)) != 0)
		goto fail;
	report(&t, "quota reservations left by processes that are gone", orphaned, repair,
	       "--repair counts them as used (their calls may have reached Target)");

	/* every unfinished bulk batch's stored bytes still match their checksum */
	struct batch_ids *ids = pobox_calloc(1, sizeof *ids);
	int64_t damaged = 0;
	if (!ids) {
		rc = POBOX_ENOMEM;
		goto fail;
	}
	rc = pobox_store_each_row(pb->st, "SELECT id FROM batches WHERE lane = 'bulk' AND state IN "
	                          "('ready', 'sending', 'submitted')", 0, 0, collect, ids);
	for (int i = 0; rc == 0 && i < ids->n; i++) {
		struct pobox_batch b;
		if ((rc = pobox_store_batch_get(pb->st, ids->ids[i], &b)) != 0)
			break;
		int check = pobox_payload_check(pb->st, &b, NULL, NULL);
		if (check != 0 && check != POBOX_ECORRUPT) {
			pobox_batch_free(&b);
			rc = check;
			break;
		}
		if (check != 0) {
			damaged++;
			if (repair) {
				b.state = POBOX_B_DEAD;
				b.finished_at_ms = now;
				pobox_free(b.last_error);
				b.last_error = pobox_strdup("payload failed its checksum; updates put back to pending by pobox doctor");
				if ((rc = pobox_store_batch_release(pb->st, b.id)) == 0)
					rc = pobox_store_batch_save(pb->st, &b);
			}
		}
		pobox_batch_free(&b);
	}
	pobox_free(ids);
	if (rc)
		goto fail;
	report(&t, "unfinished batches whose stored payload fails its checksum", damaged, repair,
	       "--repair closes them and puts their updates back to pending, to be cut again");

	/* information: paused lanes */
	for (int l = 0; l < 2; l++) {
		const char *lane = l ? "single" : "bulk";
		int64_t until = 0;
		char cls[16], why[256];
		if ((rc = pobox_store_lane_get(pb->st, lane, &until, cls, sizeof cls, why, sizeof why)) != 0)
			goto fail;
		if (until > now)
			printf("note    the %s lane is paused (%s) for %llds more: %s\n", lane, cls,
			       (long long)((until - now) / 1000), why);
	}
	rc = repair ? pobox_commit(pb) : pobox_rollback(pb);
	if (rc)
		goto fail;
	int64_t left = t.problems - t.fixed;
	if (!t.problems)
		printf("the outbox is healthy\n");
	else
		printf("%lld problems found, %lld fixed%s\n", (long long)t.problems, (long long)t.fixed,
		       left && !repair ? "; run `pobox doctor --repair` to fix the safe ones" : "");
	pobox_close(pb);
	return left ? EXIT_DATAERR : EXIT_OK;
fail:
	cli_error("doctor: %s", pobox_errmsg(pb));
	if (rc == POBOX_ECORRUPT)
		fprintf(stderr, "pobox: doctor: SQLite cannot read parts of the outbox; it was not "
		        "changed. Stop pobox, copy the outbox aside, and recover it with `sqlite3 %s "
		        ".recover | sqlite3 recovered.db`, or restore a backup.\n", cli->cfg.db);
	pobox_rollback(pb);
	pobox_close(pb);
	return cli_exit_code(rc);
}
