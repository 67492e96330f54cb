/*
 * cmd_put.c - `pobox put ID_TYPE:ID ATTR=VALUE... [--urgent] [--source NAME]`
 */
#include "cli.h"

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
	if (!(pb = cli_open(cli, 0, &code)))
		return code;
	if ((rc = pobox_begin(pb)) != 0)
		goto fail;
	for (int i = 1; i < npos; i++) {
		char *eq = strchr(pos[i], '=');
		*eq = '\0';
		struct pobox_update u = {
			.id_type = type,
			.profile_id = colon + 1,
			.attr = pos[i],
			.value = eq + 1,
			.urgent = urgent,
			.source = source,
		};
		rc = pobox_put(pb, &u);
		if (rc == POBOX_SKIPPED) {
			fprintf(stderr, "pobox: put: %s: empty value skipped (Target ignores empty "
			        "values; it cannot clear an attribute)\n", pos[i]);
			skipped++;
			continue;
		}
		if (rc != 0)
			goto fail;
		stored++;
	}
	if ((rc = pobox_commit(pb)) != 0)
		goto fail;
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
