/*
 * cmd_batches.c - `pobox batches [--state S] [--json]` and
 * `pobox show BATCH [--payload]`: the delivery history, read from the
 * v_batches view.
 */
#include "alloc.h"
#include "cli.h"
#include "outbox.h"
#include "payload.h"
#include "store.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int print_json_row(void *ctx, int n, const char *const *names, const char *const *v)
{
	(void)ctx, (void)n, (void)names;
	puts(v[0] ? v[0] : "[]");
	return 0;
}

struct table {
	int header_done;
};

static int print_row(void *ctx, int n, const char *const *names, const char *const *v)
{
	struct table *t = ctx;
	static const int width[] = {6, 5, 4, 13, 10, 6, 9, 9, 10, 9, 25, 0};
	if (!t->header_done) {
		for (int i = 0; i < n; i++)
			printf("%-*s ", width[i], names[i]);
		putchar('\n');
		t->header_done = 1;
	}
	for (int i = 0; i < n; i++)
		printf("%-*s ", width[i], v[i] ? v[i] : "-");
	putchar('\n');
	return 0;
}

int cmd_batches(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{"state", required_argument, NULL, 's'},
		{"json", no_argument, NULL, 'j'},
		{NULL, 0, NULL, 0},
	};
	const char *state = NULL;
	int json = 0, c, code, rc;
	struct pobox *pb;
	char sql[1024];

	optind = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 's')
			state = optarg;
		else if (c == 'j')
			json = 1;
		else {
			cli_usage(cli_find("batches"), stderr);
			return EXIT_USAGE;
		}
	}
	int state_idx = -1;
	if (state) {
		for (int i = 0; i < POBOX_B_COUNT; i++)
			if (strcmp(state, pobox_batch_state_names[i]) == 0)
				state_idx = i;
		if (state_idx < 0) {
			cli_error("batches: unknown state '%s' (ready, sending, submitted, done, dead, split, "
			          "replaced)", state);
			return EXIT_USAGE;
		}
	}
	if (!(pb = cli_open(cli, CLI_READER, &code)))
		return code;
	char where[96] = "";
	if (state_idx >= 0)
		snprintf(where, sizeof where, "WHERE state = '%s'", pobox_batch_state_names[state_idx]);
	if (json) {
		snprintf(sql, sizeof sql,
		         "SELECT json_group_array(json_object('id', id, 'api', api, 'id_type', id_type,"
		         " 'state', state, 'reason', reason, 'parent', parent, 'profiles', profiles,"
		         " 'updates', updates, 'carried', carried, 'bytes', bytes, 'attempts', attempts,"
		         " 'polls', polls, 'remote_status', remote_status, 'last_http_status', last_http_status,"
		         " 'last_error', last_error, 'status_url', status_url, 'created_at', created_at,"
		         " 'submitted_at', submitted_at, 'finished_at', finished_at,"
		         " 'successful_updates', successful_updates, 'profiles_not_found', profiles_not_found,"
		         " 'failed_updates', failed_updates)) FROM (SELECT * FROM v_batches %s ORDER BY id)",
		         where);
		rc = pobox_store_each_row(pb->st, sql, 0, 0, print_json_row, NULL);
	} else {
		struct table t = {0};
		snprintf(sql, sizeof sql,
		         "SELECT id, api, id_type AS type, state, reason, profiles, updates, bytes,"
		         " attempts, coalesce(remote_status, '') AS remote, coalesce(finished_at, submitted_at,"
		         " created_at) AS at, coalesce(last_error, '') AS last_error "
		         "FROM v_batches %s ORDER BY id", where);
		rc = pobox_store_each_row(pb->st, sql, 0, 0, print_row, &t);
		if (rc == 0 && !t.header_done)
			printf("no batches%s%s\n", state ? " in state " : "", state ? state : "");
	}
	if (rc != 0)
		cli_error("batches: %s", pobox_errmsg(pb));
	pobox_close(pb);
	return cli_exit_code(rc);
}

static int write_out(void *ctx, const char *data, size_t n)
{
	return fwrite(data, 1, n, ctx) == n ? 0 : POBOX_EIO;
}

/* lane, and whether any part of the payload is still stored */
struct body_info {
	char lane[16];
	int parts;
};

static int read_body_info(void *ctx, int n, const char *const *names, const char *const *v)
{
	struct body_info *bi = ctx;
	(void)names;
	if (n == 2 && v[0] && v[1]) {
		snprintf(bi->lane, sizeof bi->lane, "%s", v[0]);
		bi->parts = atoi(v[1]);
	}
	return 0;
}

/* show --payload: the exact bytes sent, checked whole before any is
 * printed (a damaged payload prints nothing). */
static int show_payload(struct pobox *pb, const struct pobox_batch *b)
{
	struct body_info bi = {"", 0};
	int rc = pobox_store_each_row(pb->st, "SELECT lane, (SELECT count(*) FROM batch_payloads "
	                              "WHERE batch = ?1) FROM batches WHERE id = ?1", 1, b->id,
	                              read_body_info, &bi);
	if (rc == 0 && strcmp(bi.lane, "single") == 0) {
		cli_error("show: batch %lld went by single calls: it has no batch file",
		          (long long)b->id);
		return POBOX_ENOTFOUND;
	}
	if (rc == 0 && bi.parts == 0 && b->finished_at_ms > 0) {
		cli_error("show: batch %lld finished longer ago than the retention: its payload was "
		          "pruned (`retention` in pobox.conf)", (long long)b->id);
		return POBOX_ENOTFOUND;
	}
	if (rc == 0)
		rc = pobox_payload_check(pb->st, b, NULL, NULL);
	if (rc == 0)
		rc = pobox_payload_check(pb->st, b, write_out, stdout);
	if (rc == POBOX_ECORRUPT)
		cli_error("show: batch %lld: the stored payload is damaged (checksum mismatch); "
		          "run `pobox doctor`", (long long)b->id);
	else if (rc)
		cli_error("show: batch %lld: %s", (long long)b->id, pobox_errmsg(pb));
	return rc;
}

static int print_kv(void *ctx, int n, const char *const *names, const char *const *v)
{
	(void)ctx;
	for (int i = 0; i < n; i++)
		if (v[i])
			printf("%-19s %s\n", names[i], v[i]);
	return 0;
}

int cmd_show(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{"payload", no_argument, NULL, 'p'},
		{NULL, 0, NULL, 0},
	};
	int payload = 0, c, code, rc;
	struct pobox *pb;

	optind = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'p')
			payload = 1;
		else {
			cli_usage(cli_find("show"), stderr);
			return EXIT_USAGE;
		}
	}
	char *end;
	if (argc - optind != 1 || (strtoll(argv[optind], &end, 10), *end) || argv[optind][0] == '\0') {
		cli_error("show: give one batch number (see pobox batches)");
		return EXIT_USAGE;
	}
	int64_t id = strtoll(argv[optind], NULL, 10);
	if (!(pb = cli_open(cli, CLI_READER, &code)))
		return code;
	struct pobox_batch b;
	if ((rc = pobox_store_batch_get(pb->st, id, &b)) != 0) {
		cli_error("show: %s", pobox_errmsg(pb));
		pobox_close(pb);
		return cli_exit_code(rc);
	}
	if (payload) {
		rc = show_payload(pb, &b);
	} else {
		rc = pobox_store_each_row(pb->st, "SELECT * FROM v_batches WHERE id = ?1", 1, id,
		                          print_kv, NULL);
	}
	pobox_batch_free(&b);
	pobox_close(pb);
	return cli_exit_code(rc);
}
