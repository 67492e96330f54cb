/*
 * cmd_quota.c - `pobox quota [--json]`: the single-call budget at a glance.
 * The last 24 hours in 24 hourly buckets (the oldest first, the current
 * hour last) as a bar chart, then budget, remaining, urgent reserve and the
 * projected exhaustion time at the last hour's rate.
 */
#include "cli.h"
#include "outbox.h"
#include "quota.h"
#include "store.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define BAR 50

struct hours {
	int64_t now_min;
	int64_t used[24], urgent[24];
};

static int bucket(void *ctx, int64_t minute, int64_t used, int64_t urgent)
{
	struct hours *h = ctx;
	/* bucket 23 holds the last 60 minutes, bucket 0 the oldest hour */
	int64_t age = h->now_min - minute;
	if (age < 0 || age >= 1440)
		return 0;
	int i = 23 - (int)(age / 60);
	h->used[i] += used;
	h->urgent[i] += urgent;
	return 0;
}

static const char *hour_label(char *buf, size_t len, int64_t now_min, int i)
{
	time_t t = (time_t)((now_min - (int64_t)(23 - i) * 60) * 60);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, len, "%H:%M", &tm);
	return buf;
}

int cmd_quota(struct cli *cli, int argc, char **argv)
{
	struct pobox_quota_opts qo = {cli->cfg.single_budget, cli->cfg.fleet_share, cli->cfg.urgent_reserve};
	struct pobox_quota q;
	struct hours h;
	struct pobox *pb;
	int json = 0, code, rc;
	char a[32], b[32], c[32];

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else {
			cli_usage(cli_find("quota"), stderr);
			return EXIT_USAGE;
		}
	}
	if (!(pb = cli_open(cli, CLI_READER, &code)))
		return code;
	int64_t now = pobox_clock_now_ms(&pb->clock);
	memset(&h, 0, sizeof h);
	h.now_min = now / 60000;
	if ((rc = pobox_quota_read(pb, &qo, now, &q)) != 0 ||
	    (rc = pobox_store_quota_minutes(pb->st, now, bucket, &h)) != 0) {
		cli_error("quota: %s", pobox_errmsg(pb));
		pobox_close(pb);
		return cli_exit_code(rc);
	}
	int64_t eta = q.exhausted_at_ms >= 0 ? (q.exhausted_at_ms - now) / 1000 : -1;
	if (json) {
		printf("{\"budget\":%lld,\"used\":%lld,\"reserved\":%lld,\"remaining\":%lld,"
		       "\"urgent_reserve\":%lld,\"urgent_used\":%lld,\"exhaustion_eta_s\":%lld,\"hours\":[",
		       (long long)q.budget, (long long)q.used, (long long)q.reserved,
		       (long long)q.remaining, (long long)q.reserve, (long long)q.urgent_used,
		       (long long)eta);
		for (int i = 0; i < 24; i++) {
			char lbl[8];
			printf("%s{\"ending\":\"%s\",\"used\":%lld,\"urgent\":%lld}", i ? "," : "",
			       hour_label(lbl, sizeof lbl, h.now_min, i), (long long)h.used[i],
			       (long long)h.urgent[i]);
		}
		printf("]}\n");
	} else {
		int64_t max = 1;
		for (int i = 0; i < 24; i++)
			if (h.used[i] > max)
				max = h.used[i];
		printf("single calls per hour, last 24 hours (UTC, hour ending at):\n");
		for (int i = 0; i < 24; i++) {
			char lbl[8];
			int w = (int)((h.used[i] * BAR + max - 1) / max);
			printf("  %s %10s |", hour_label(lbl, sizeof lbl, h.now_min, i),
			       cli_num(a, sizeof a, h.used[i]));
			for (int k = 0; k < w; k++)
				fputs("\u2588", stdout);
			if (h.urgent[i])
				printf(" (%s urgent)", cli_num(b, sizeof b, h.urgent[i]));
			putchar('\n');
		}
		printf("budget      %s per rolling 24 hours", cli_num(a, sizeof a, q.budget));
		if (cli->cfg.fleet_share < 1)
			printf(" (fleet_share %.2f of %s)", cli->cfg.fleet_share,
			       cli_num(b, sizeof b, cli->cfg.single_budget));
		printf("\nused        %s (%s in flight)\n", cli_num(a, sizeof a, q.used + q.reserved),
		       cli_num(b, sizeof b, q.reserved));
		printf("remaining   %s, of which %s kept for urgent updates\n",
		       cli_num(a, sizeof a, q.remaining), cli_num(c, sizeof c, q.reserve));
		if (eta >= 0)
			printf("at the last hour's rate the budget runs out in %s\n",
			       cli_duration(a, sizeof a, eta * 1000));
		else
			printf("at the last hour's rate the budget lasts beyond 24 hours\n");
	}
	pobox_close(pb);
	return EXIT_OK;
}
