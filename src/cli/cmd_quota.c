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

void cli_quota_opts(const struct pobox_config *c, struct pobox_quota_opts *qo)
{
	*qo = (struct pobox_quota_opts){c->single_budget, c->fleet_share, c->urgent_reserve,
	                                c->fleet_url != NULL};
}

void cli_fleet_print(const struct pobox_quota *q, int64_t now_ms)
{
	const struct pobox_quota_fleet *f = &q->fleet;
	char a[32], b[32], c[32], d[32], e[32];
	printf("fleet       account %s, host %s: ", f->account[0] ? f->account : "(not joined yet)",
	       f->host[0] ? f->host : "-");
	if (!f->known)
		printf("the coordinator has not answered yet; single calls wait for it, bulk meanwhile\n");
	else if (f->reachable)
		printf("coordinator reachable at the last attempt, last answer %s ago\n",
		       cli_duration(a, sizeof a, now_ms - f->last_contact_ms));
	else
		printf("coordinator UNREACHABLE (last answer %s ago: %s); spending the rest of the "
		       "leases, then the reserve, then bulk only\n",
		       f->last_contact_ms ? cli_duration(a, sizeof a, now_ms - f->last_contact_ms) : "never",
		       f->last_error[0] ? f->last_error : "no answer");
	if (f->known)
		printf("            account budget %s per %s, margin %s; the fleet used %s in the window at "
		       "the last answer, %s free, %lld hosts%s\n",
		       cli_num(a, sizeof a, f->account_budget), cli_duration(b, sizeof b, f->window_ms),
		       cli_num(c, sizeof c, f->margin), cli_num(d, sizeof d, f->fleet_used),
		       cli_num(e, sizeof e, f->fleet_free), (long long)f->hosts,
		       f->learning ? "; LEARNING (the ledger was restored)" : "");
	printf("            this host holds %s in %lld lease(s)", cli_num(a, sizeof a, f->lease_left),
	       (long long)f->leases);
	if (f->lease_expires_in_ms >= 0)
		printf(" (%s left)", cli_duration(b, sizeof b, f->lease_expires_in_ms));
	printf(", reserve %s of %s", cli_num(c, sizeof c, f->reserve_left),
	       cli_num(d, sizeof d, f->reserve_granted));
	if (f->reserve_expires_in_ms >= 0)
		printf(" (%s left)", cli_duration(a, sizeof a, f->reserve_expires_in_ms));
	printf("; %lld round trips\n", (long long)f->requests);
}

void cli_fleet_json(const struct pobox_quota *q, int64_t now_ms)
{
	const struct pobox_quota_fleet *f = &q->fleet;
	printf("\"fleet\":{\"account\":\"");
	for (const char *p = f->account; *p; p++)
		printf(*p == '"' || *p == '\\' ? "\\%c" : "%c", *p);
	printf("\",\"host\":\"");
	for (const char *p = f->host; *p; p++)
		printf(*p == '"' || *p == '\\' ? "\\%c" : "%c", *p);
	printf("\",\"joined\":%s,\"reachable\":%s,\"learning\":%s,\"account_budget\":%lld,"
	       "\"margin\":%lld,\"window_s\":%lld,\"fleet_used\":%lld,\"fleet_free\":%lld,"
	       "\"hosts\":%lld,\"lease_left\":%lld,\"leases\":%lld,\"lease_expires_in_s\":%.1f,"
	       "\"reserve_left\":%lld,\"reserve\":%lld,\"reserve_expires_in_s\":%.1f,"
	       "\"last_contact_age_s\":%.1f,\"round_trips\":%lld}",
	       f->known ? "true" : "false", f->reachable ? "true" : "false", f->learning ? "true" : "false",
	       (long long)f->account_budget, (long long)f->margin, (long long)(f->window_ms / 1000),
	       (long long)f->fleet_used, (long long)f->fleet_free, (long long)f->hosts,
	       (long long)f->lease_left, (long long)f->leases,
	       f->lease_expires_in_ms >= 0 ? (double)f->lease_expires_in_ms / 1000.0 : -1.0,
	       (long long)f->reserve_left, (long long)f->reserve_granted,
	       f->reserve_expires_in_ms >= 0 ? (double)f->reserve_expires_in_ms / 1000.0 : -1.0,
	       f->last_contact_ms ? (double)(now_ms - f->last_contact_ms) / 1000.0 : -1.0,
	       (long long)f->requests);
}

int cmd_quota(struct cli *cli, int argc, char **argv)
{
	struct pobox_quota_opts qo;
	cli_quota_opts(&cli->cfg, &qo);
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
		       "\"urgent_reserve\":%lld,\"urgent_used\":%lld,\"exhaustion_eta_s\":%lld,",
		       (long long)q.budget, (long long)q.used, (long long)q.reserved,
		       (long long)q.remaining, (long long)q.reserve, (long long)q.urgent_used,
		       (long long)eta);
		if (cli->cfg.fleet_url) {
			cli_fleet_json(&q, now);
			putchar(',');
		}
		printf("\"hours\":[");
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
		if (cli->cfg.fleet_url) {
			printf("(this host's own calls; its budget is the fleet's)\n");
			cli_fleet_print(&q, now);
			pobox_close(pb);
			return EXIT_OK;
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
