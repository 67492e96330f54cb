/*
 * cmd_status.c - `pobox status [--json | --prometheus | --watch [INTERVAL]]`
 */
#include "alloc.h"
#include "cli.h"
#include "outbox.h"
#include "metrics.h"
#include "quota.h"

#include <getopt.h>
#include <string.h>

int cmd_status(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{"prometheus", no_argument, NULL, 'p'},
		{"watch", optional_argument, NULL, 'w'},
		{NULL, 0, NULL, 0},
	};
	struct pobox_status s;
	struct pobox *pb;
	int json = 0, prom = 0, watch = 0, c, rc, code;
	int64_t interval_ms = 2000;
	const char *iv = NULL;
	char a[32], b[32];

	optind = 0;
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		if (c == 'j')
			json = 1;
		else if (c == 'p')
			prom = 1;
		else if (c == 'w') {
			watch = 1;
			iv = optarg;
		} else {
			cli_usage(cli_find("status"), stderr);
			return EXIT_USAGE;
		}
	}
	/* `--watch 5s` as well as `--watch=5s` */
	if (watch && !iv && optind < argc)
		iv = argv[optind++];
	if (optind < argc) {
		cli_error("status: unexpected argument '%s'", argv[optind]);
		return EXIT_USAGE;
	}
	if (watch && (json || prom)) {
		cli_error("status: --watch draws the text status; it goes with neither --json nor "
		          "--prometheus");
		return EXIT_USAGE;
	}
	if (iv && (pobox_parse_duration_ms(iv, &interval_ms) != 0 || interval_ms < 100)) {
		cli_error("status: --watch '%s': give an interval like 1s, 500ms, 1m (at least 100ms)",
		          iv);
		return EXIT_USAGE;
	}
	if (!(pb = cli_open(cli, CLI_READER, &code)))
		return code;
	if (watch) {
		code = cli_status_watch(cli, pb, interval_ms);
		pobox_close(pb);
		return code;
	}
	if (prom) {
		struct pobox_quota_opts po;
		cli_quota_opts(&cli->cfg, &po);
		if ((rc = pobox_metrics_write(pb, &po, stdout)) != 0)
			goto fail;
		pobox_close(pb);
		return EXIT_OK;
	}
	if ((rc = pobox_store_status(pb->st, &s)) != 0)
		goto fail;
	int64_t now = pobox_clock_now_ms(&pb->clock);
	struct pobox_quota_opts qo;
	cli_quota_opts(&cli->cfg, &qo);
	struct pobox_quota q;
	if ((rc = pobox_quota_read(pb, &qo, now, &q)) != 0)
		goto fail;
	if (json) {
		char *j = NULL;
		if ((rc = pobox_store_status_json(pb->st, &s, now, &j)) != 0)
			goto fail;
		size_t l = strlen(j);
		if (l && j[l - 1] == '}')
			j[l - 1] = '\0';
		printf("%s,\"quota\":{\"budget\":%lld,\"used_24h\":%lld,\"urgent_used_24h\":%lld,"
		       "\"reserved\":%lld,\"remaining\":%lld,\"urgent_reserve\":%lld,"
		       "\"exhaustion_eta_s\":%lld}",
		       j, (long long)q.budget, (long long)q.used, (long long)q.urgent_used,
		       (long long)q.reserved, (long long)q.remaining, (long long)q.reserve,
		       (long long)(q.exhausted_at_ms >= 0 ? (q.exhausted_at_ms - now) / 1000 : -1));
		if (cli->cfg.fleet_url) {
			putchar(',');
			cli_fleet_json(&q, now);
		}
		printf("}\n");
		pobox_free(j);
	} else {
		int64_t stored = 0;
		for (int i = 0; i < POBOX_ST_COUNT; i++)
			stored += s.updates[i];
		printf("outbox      %s (%s, ", pobox_store_path(pb->st), cli_bytes(a, sizeof a, s.file_bytes));
		if (stored > 0) /* pages in use, over every update it holds */
			printf("%.1f B per stored update, ", (double)s.used_bytes / (double)stored);
		printf("schema %d)\n", s.schema_version);
		for (int i = 0; i < POBOX_ST_COUNT; i++) {
			printf("%-11s %s", pobox_update_state_names[i], cli_num(a, sizeof a, s.updates[i]));
			if (i == POBOX_ST_PENDING && s.oldest_pending_ms >= 0)
				printf("   oldest waiting %s", cli_duration(b, sizeof b, now - s.oldest_pending_ms));
			putchar('\n');
		}
		printf("profiles    %s   attributes %s\n", cli_num(a, sizeof a, s.profiles),
		       cli_num(b, sizeof b, s.attributes));
		if (cli->cfg.fleet_url) {
			printf("single calls in the last 24 h: %s by this host (%s in flight); the budget is the "
			       "fleet's:\n", cli_num(a, sizeof a, q.used + q.reserved), cli_num(b, sizeof b, q.reserved));
			cli_fleet_print(&q, now);
			pobox_close(pb);
			return EXIT_OK;
		}
		printf("single calls in the last 24 h: %s used", cli_num(a, sizeof a, q.used + q.reserved));
		char c3[32];
		printf(" of %s, %s", cli_num(b, sizeof b, q.budget), cli_num(a, sizeof a, q.remaining));
		printf(" remaining (%s kept for urgent updates)", cli_num(c3, sizeof c3, q.reserve));
		if (q.remaining == 0)
			printf("; spent: single calls resume as the oldest leave the 24-hour window");
		else if (q.exhausted_at_ms >= 0)
			printf("; at the last hour's rate the budget runs out in %s",
			       cli_duration(a, sizeof a, q.exhausted_at_ms - now));
		putchar('\n');
	}
	pobox_close(pb);
	return EXIT_OK;
fail:
	cli_error("status: %s", pobox_errmsg(pb));
	pobox_close(pb);
	return cli_exit_code(rc);
}
