/*
 * cmd_put.c - `pobox put ID_TYPE:ID ATTR=VALUE... [--urgent] [--source NAME]`
 */
#include "cli.h"
#include "outbox.h"

#include <getopt.h>
#include <string.h>

int cmd_put(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{"urgent", no_argument, NULL, 'u'},
		{"source", required_argument, NULL, 's'},
		{NULL, 0, NULL, 0},
	};
	const struct command *self = cli_find("put");
	const char *source = "cli";
	int urgent = 0, c, rc, code = EXIT_OK, stored = 0, skipped = 0;
	struct pobox *pb = NULL;
	enum pobox_id_type type;
	char err[256];

	/* GNU getopt permutes: options may come before or after the pairs. */
	optind = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'u': urgent = 1; break;
		case 's': source = optarg; break;
		default: cli_usage(self, stderr); return EXIT_USAGE;
		}
	}
	char **pos = argv + optind;
	int npos = argc - optind;
	if (npos < 2) {
		cli_error("put: needs ID_TYPE:ID and at least one ATTR=VALUE, e.g. "
		          "pobox put thirdPartyId:crm-42 loyaltyTier=gold");
		return EXIT_USAGE;
	}
	char *colon = strchr(pos[0], ':');
	if (!colon) {
		cli_error("put: '%s' is not ID_TYPE:ID; write e.g. thirdPartyId:crm-42 or pcId:%s",
		          pos[0], pos[0]);
		return EXIT_USAGE;
	}
	*colon = '\0';
	if (pobox_id_type_parse(pos[0], &type, err, sizeof err) != 0) {
		cli_error("put: %s", err);
		return EXIT_DATAERR;
	}
	for (int i = 1; i < npos; i++) {
		if (!strchr(pos[i], '=')) {
			cli_error("put: '%s' is not ATTR=VALUE", pos[i]);
			return EXIT_USAGE;
		}
	}
	if (npos - 1 > POBOX_ROW_MAX) {
		cli_error("put: at most %d ATTR=VALUE per put", POBOX_ROW_MAX);
		return EXIT_USAGE;
	}
	static const char *attrs[POBOX_ROW_MAX], *values[POBOX_ROW_MAX];
	static int empty[POBOX_ROW_MAX];
	for (int i = 1; i < npos; i++) {
		char *eq = strchr(pos[i], '=');
		*eq = '\0';
		attrs[i - 1] = pos[i];
		values[i - 1] = eq + 1;
	}
	if (!(pb = cli_open(cli, 0, &code)))
		return code;
	/* one write: all its attributes or none */
	struct pobox_row row = {type, colon + 1, attrs, values, (size_t)(npos - 1), urgent, source};
	rc = pobox_put_row(pb, &row, empty);
	if (rc != 0 && rc != POBOX_SKIPPED)
		goto fail;
	for (int i = 0; i < npos - 1; i++) {
		if (empty[i]) {
			fprintf(stderr, "pobox: put: %s: empty value skipped (Target ignores empty "
			        "values; it cannot clear an attribute)\n", attrs[i]);
			skipped++;
		} else {
			stored++;
		}
	}
	if (stored == 0 && skipped)
		fprintf(stderr, "pobox: put: nothing stored: every value was empty\n");
	pobox_close(pb);
	return EXIT_OK;
fail:
	cli_error("put: %s%s", pobox_errmsg(pb),
	          rc == POBOX_EINVALID ? " (nothing was stored)" : "");
	pobox_rollback(pb);
	pobox_close(pb);
	return cli_exit_code(rc);
}
