/*
 * cmd_dead.c - dead letters: `pobox dead`, `pobox requeue`, `pobox purge`.
 *
 * All three select dead updates the same way (--id, --reason, --since,
 * --all).  requeue and purge change the outbox in one transaction; with
 * --dry-run the same transaction runs and is rolled back, so what it prints
 * is exactly what would happen.  purge deletes, so without a terminal to
 * ask on it wants --yes.
 */
#include "cli.h"
#include "config.h"
#include "outbox.h"
#include "store.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

struct sel {
	struct pobox_dead_filter f;
	int json, dry_run, yes, delivered;
	int64_t before_ms;
	char ids[4096];
};

/* Parses the shared options; returns -1 to go on, or an exit code. */
static int parse(const char *cmd, int argc, char **argv, struct sel *s, int allow_json,
                 int allow_delivered, int need_selection)
{
	int dead_flag = 0;
	static const struct option opts[] = {
		{"id", required_argument, NULL, 'i'},
		{"reason", required_argument, NULL, 'r'},
		{"since", required_argument, NULL, 's'},
		{"all", no_argument, NULL, 'a'},
		{"json", no_argument, NULL, 'j'},
		{"dry-run", no_argument, NULL, 'n'},
		{"yes", no_argument, NULL, 'y'},
		{"delivered", no_argument, NULL, 'D'},
		{"dead", no_argument, NULL, 'd'},
		{"before", required_argument, NULL, 'b'},
		{NULL, 0, NULL, 0},
	};
	int c;
	int64_t ms;
	memset(s, 0, sizeof *s);
	optind = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'i': {
			size_t l = strlen(s->ids);
			for (const char *p = optarg; *p; p++)
				if (!(*p >= '0' && *p <= '9') && *p != ',') {
					cli_error("%s: --id takes update numbers (seq), e.g. --id 12,15", cmd);
					return EXIT_USAGE;
				}
			snprintf(s->ids + l, sizeof s->ids - l, "%s%s", l ? "," : "", optarg);
			s->f.ids = s->ids;
			break;
		}
		case 'r': s->f.reason = optarg; break;
		case 's':
			if (pobox_parse_duration_ms(optarg, &ms) != 0) {
				cli_error("%s: --since '%s' is not a duration like 30m, 24h, 7d", cmd, optarg);
				return EXIT_USAGE;
			}
			s->f.since_ms = ms ? ms : 1; /* resolved against the clock later */
			break;
		case 'a': s->f.all = 1; break;
		case 'j':
			if (!allow_json)
				goto usage;
			s->json = 1;
			break;
		case 'n': s->dry_run = 1; break;
		case 'y': s->yes = 1; break;
		case 'D':
			if (!allow_delivered)
				goto usage;
			s->delivered = 1;
			break;
		case 'd':
			if (!allow_delivered)
				goto usage;
			dead_flag = 1;
			break;
		case 'b':
			if (!allow_delivered || pobox_parse_duration_ms(optarg, &s->before_ms) != 0) {
				cli_error("%s: --before takes a duration like 7d", cmd);
				return EXIT_USAGE;
			}
			break;
		default:
			goto usage;
		}
	}
	if (optind < argc) {
		cli_error("%s: unexpected argument '%s'", cmd, argv[optind]);
		return EXIT_USAGE;
	}
	int selected = s->f.ids || s->f.reason || s->f.since_ms || s->f.all;
	if (s->delivered && (selected || dead_flag)) {
		cli_error("%s: --delivered takes only --before (and --dry-run, --yes); "
		          "--id, --reason, --since, --all and --dead select dead updates", cmd);
		return EXIT_USAGE;
	}
	if (s->before_ms && !s->delivered) {
		cli_error("%s: --before goes with --delivered", cmd);
		return EXIT_USAGE;
	}
	if (need_selection && !s->delivered && !selected) {
		cli_error("%s: no selection: say which dead updates with --id SEQ,..., --reason TEXT, --since DURATION "
		          "or --all", cmd);
		return EXIT_USAGE;
	}
	return -1;
usage:
	cli_usage(cli_find(cmd), stderr);
	return EXIT_USAGE;
}

static int print_json(void *ctx, int n, const char *const *names, const char *const *v)
{
	(void)ctx, (void)n, (void)names;
	puts(v[0] ? v[0] : "[]");
	return 0;
}

static int print_dead(void *ctx, int n, const char *const *names, const char *const *v)
{
	int *rows = ctx;
	static const int w[] = {7, 13, 22, 18, 20, 4, 5, 9, 0};
	if ((*rows)++ == 0) {
		for (int i = 0; i < n; i++)
			printf("%-*s ", w[i], names[i]);
		putchar('\n');
	}
	for (int i = 0; i < n; i++)
		printf("%-*.*s ", w[i], w[i] ? w[i] : 300, v[i] ? v[i] : "-");
	putchar('\n');
	return 0;
}

static void resolve_since(struct sel *s, struct pobox *pb)
{
	if (s->f.since_ms)
		s->f.since_ms = pobox_clock_now_ms(&pb->clock) - s->f.since_ms;
}

int cmd_dead(struct cli *cli, int argc, char **argv)
{
	struct sel s;
	struct pobox *pb;
	int code, rc, rows = 0;
	char sql[1200];
	if ((code = parse("dead", argc, argv, &s, 1, 0, 0)) >= 0)
		return code;
	if (!(pb = cli_open(cli, CLI_READER, &code)))
		return code;
	resolve_since(&s, pb);
	s.f.all = 1; /* listing: no criterion means all */
	int64_t n = 0;
	if ((rc = pobox_store_begin_read(pb->st)) != 0 || (rc = pobox_store_dead_select(pb->st, &s.f, &n)) != 0)
		goto fail;
	const char *cols =
		"d.seq, d.id_type, d.profile_id, d.attr, d.value, d.attempts, d.last_http_status AS http,"
		" CAST((julianday('now') - julianday(coalesce(d.dead_at, d.enqueued_at))) * 86400 AS INTEGER) AS age_s,"
		" d.reason";
	if (s.json)
		snprintf(sql, sizeof sql,
		         "SELECT json_group_array(json_object('seq', seq, 'id_type', id_type, 'profile_id', profile_id,"
		         " 'attr', attr, 'value', value, 'attempts', attempts, 'last_http_status', http,"
		         " 'age_s', age_s, 'reason', reason)) FROM (SELECT %s FROM v_dead d"
		         " WHERE d.seq IN (SELECT seq FROM temp.dead_sel) ORDER BY d.seq)", cols);
	else
		snprintf(sql, sizeof sql,
		         "SELECT %s FROM v_dead d WHERE d.seq IN (SELECT seq FROM temp.dead_sel) ORDER BY d.seq",
		         cols);
	rc = pobox_store_each_row(pb->st, sql, 0, 0, s.json ? print_json : print_dead, &rows);
	pobox_rollback(pb);
	if (rc)
		goto fail;
	if (!s.json)
		printf("%lld dead updates%s\n", (long long)n, n ? "; see `pobox requeue --help`" : "");
	pobox_close(pb);
	return EXIT_OK;
fail:
	cli_error("dead: %s", pobox_errmsg(pb));
	pobox_rollback(pb);
	pobox_close(pb);
	return cli_exit_code(rc);
}

int cmd_requeue(struct cli *cli, int argc, char **argv)
{
	struct sel s;
	struct pobox *pb;
	int code, rc;
	int64_t n = 0, requeued = 0;
	if ((code = parse("requeue", argc, argv, &s, 0, 0, 1)) >= 0)
		return code;
	if (!(pb = cli_open(cli, 1, &code)))
		return code;
	resolve_since(&s, pb);
	if ((rc = pobox_begin(pb)) != 0 || (rc = pobox_store_dead_select(pb->st, &s.f, &n)) != 0 ||
	    (rc = pobox_store_dead_requeue(pb->st, pobox_clock_now_ms(&pb->clock), &requeued)) != 0)
		goto fail;
	if (s.dry_run)
		rc = pobox_rollback(pb);
	else
		rc = pobox_commit(pb);
	if (rc)
		goto fail;
	printf("%s%lld dead updates selected: %lld requeued as pending, %lld superseded by newer "
	       "values%s\n", s.dry_run ? "dry run: " : "", (long long)n, (long long)requeued,
	       (long long)(n - requeued), s.dry_run ? " (nothing was changed)" : "");
	pobox_close(pb);
	return EXIT_OK;
fail:
	cli_error("requeue: %s", pobox_errmsg(pb));
	pobox_rollback(pb);
	pobox_close(pb);
	return cli_exit_code(rc);
}

int cmd_purge(struct cli *cli, int argc, char **argv)
{
	struct sel s;
	struct pobox *pb;
	int code, rc;
	int64_t n = 0;
	if ((code = parse("purge", argc, argv, &s, 0, 1, 1)) >= 0)
		return code;
	if (!s.dry_run && !s.yes) {
		if (!isatty(STDIN_FILENO)) {
			cli_error("purge deletes history for good: add --yes (or try --dry-run first)");
			return EXIT_USAGE;
		}
	}
	if (!(pb = cli_open(cli, 1, &code)))
		return code;
	resolve_since(&s, pb);
	if ((rc = pobox_begin(pb)) != 0)
		goto fail;
	const char *what;
	if (s.delivered) {
		/* delivered and superseded history older than --before (default:
		 * all); the last value sent per attribute is kept (profiles.sent) */
		int64_t cutoff = pobox_clock_now_ms(&pb->clock) - s.before_ms + (s.before_ms ? 0 : 1);
		int64_t cursor = 0;
		do {
			int64_t k = 0;
			if ((rc = pobox_store_prune(pb->st, cutoff, 100000, &cursor, &k)) != 0)
				goto fail;
			n += k;
		} while (cursor);
		what = "delivered or superseded updates";
	} else {
		if ((rc = pobox_store_dead_select(pb->st, &s.f, &n)) != 0)
			goto fail;
		what = "dead updates";
	}
	if (!s.dry_run && !s.yes) {
		fprintf(stderr, "delete %lld %s for good? [y/N] ", (long long)n, what);
		char answer[16] = "";
		if (!fgets(answer, sizeof answer, stdin) || (answer[0] != 'y' && answer[0] != 'Y')) {
			pobox_rollback(pb);
			printf("nothing deleted\n");
			pobox_close(pb);
			return EXIT_OK;
		}
	}
	if (!s.delivered && (rc = pobox_store_dead_purge(pb->st, &n)) != 0)
		goto fail;
	rc = s.dry_run ? pobox_rollback(pb) : pobox_commit(pb);
	if (rc)
		goto fail;
	printf("%s%lld %s %s\n", s.dry_run ? "dry run: " : "", (long long)n, what,
	       s.dry_run ? "would be deleted (nothing was changed)" : "deleted");
	pobox_close(pb);
	return EXIT_OK;
fail:
	cli_error("purge: %s", pobox_errmsg(pb));
	pobox_rollback(pb);
	pobox_close(pb);
	return cli_exit_code(rc);
}
