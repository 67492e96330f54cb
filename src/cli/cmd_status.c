/*
 * cmd_status.c - `pobox status [--json]`
 */
#include "alloc.h"
#include "cli.h"
#include "outbox.h"

#include <getopt.h>
#include <string.h>

int cmd_status(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{NULL, 0, NULL, 0},
	};
	struct pobox_status s;
	struct pobox *pb;
	int json = 0, c, rc, code;
	char a[32], b[32];

	optind = 0;
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		if (c == 'j')
			json = 1;
		else {
			cli_usage(cli_find("status"), stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		cli_error("status: unexpected argument '%s'", argv[optind]);
		return EXIT_USAGE;
	}
	if (!(pb = cli_open(cli, 1, &code)))
		return code;
	if ((rc = pobox_store_status(pb->st, &s)) != 0)
		goto fail;
	int64_t now = pobox_clock_now_ms(&pb->clock);
	if (json) {
		char *j = NULL;
		if ((rc = pobox_store_status_json(pb->st, &s, now, &j)) != 0)
			goto fail;
		puts(j);
		pobox_free(j);
	} else {
		printf("outbox      %s (%s, schema %d)\n", pobox_store_path(pb->st),
		       cli_bytes(a, sizeof a, s.file_bytes), s.schema_version);
		for (int i = 0; i < POBOX_ST_COUNT; i++) {
			printf("%-11s %s", pobox_update_state_names[i], cli_num(a, sizeof a, s.updates[i]));
			if (i == POBOX_ST_PENDING && s.oldest_pending_ms >= 0)
				printf("   oldest waiting %s", cli_duration(b, sizeof b, now - s.oldest_pending_ms));
			putchar('\n');
		}
		printf("profiles    %s   attributes %s\n", cli_num(a, sizeof a, s.profiles),
		       cli_num(b, sizeof b, s.attributes));
	}
	pobox_close(pb);
	return EXIT_OK;
fail:
	cli_error("status: %s", pobox_errmsg(pb));
	pobox_close(pb);
	return cli_exit_code(rc);
}
