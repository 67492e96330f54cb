/*
 * cmd_auth.c - `pobox auth [--json]`: obtain the profile API token as
 * delivery would and say where it came from and how long it lives.
 *
 * For an operator setting up credentials (does the IMS configuration work
 * before the first nightly run?) and for scripts.  It never prints a token.
 * With IMS it uses and fills the shared cache beside the outbox, exactly as
 * `run` and `flush` do.
 */
#include "cli.h"
#include "credentials.h"
#include "deliver.h"
#include "timefmt.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *when(int64_t ms, char *buf, size_t len)
{
	if (ms < 0)
		return "none";
	return pobox_time_format(ms, buf, len);
}

static int64_t real_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void print_human(const struct pobox_cred_info *in)
{
	char a[32], b[32], d[32];
	int64_t now = real_now_ms();
	printf("credentials: %s\n", pobox_cred_source_name(in->source));
	if (!in->have) {
		printf("token: none (requests go without an Authorization header)\n");
		return;
	}
	printf("token: from %s at %s\n", in->origin, when(in->obtained_at_ms, a, sizeof a));
	if (in->expires_at_ms >= 0)
		printf("expires: %s (in %s); refreshed from %s\n", when(in->expires_at_ms, a, sizeof a),
		       cli_duration(d, sizeof d, in->expires_at_ms - now),
		       when(in->refresh_at_ms, b, sizeof b));
	else
		printf("expires: not stated; fetched again only when Target refuses it\n");
	if (in->ims_expires_at_ms >= 0)
		printf("IMS access token expires: %s (in %s)\n", when(in->ims_expires_at_ms, a, sizeof a),
		       cli_duration(d, sizeof d, in->ims_expires_at_ms - now));
	printf("fetched by this run: %llu\n", (unsigned long long)in->mints);
}

static void print_json(const struct pobox_cred_info *in)
{
	char a[32], b[32], c[32], d[32];
	printf("{\"source\":\"%s\",\"have_token\":%s,\"origin\":%s%s%s,\"obtained_at\":%s%s%s,"
	       "\"expires_at\":%s%s%s,\"refresh_at\":%s%s%s,\"ims_expires_at\":%s%s%s,\"fetched\":%llu}\n",
	       pobox_cred_source_name(in->source), in->have ? "true" : "false",
	       in->origin ? "\"" : "", in->origin ? in->origin : "null", in->origin ? "\"" : "",
	       in->have ? "\"" : "", in->have ? when(in->obtained_at_ms, a, sizeof a) : "null",
	       in->have ? "\"" : "",
	       in->expires_at_ms >= 0 ? "\"" : "", in->expires_at_ms >= 0 ? when(in->expires_at_ms, b, sizeof b) : "null",
	       in->expires_at_ms >= 0 ? "\"" : "",
	       in->refresh_at_ms >= 0 ? "\"" : "", in->refresh_at_ms >= 0 ? when(in->refresh_at_ms, c, sizeof c) : "null",
	       in->refresh_at_ms >= 0 ? "\"" : "",
	       in->ims_expires_at_ms >= 0 ? "\"" : "",
	       in->ims_expires_at_ms >= 0 ? when(in->ims_expires_at_ms, d, sizeof d) : "null",
	       in->ims_expires_at_ms >= 0 ? "\"" : "", (unsigned long long)in->mints);
}

int cmd_auth(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, 'j'},
		{NULL, 0, NULL, 0},
	};
	struct pobox_deliver_opts o;
	struct pobox_cred *cred = NULL;
	struct pobox_cred_info in;
	const char *tok;
	uint64_t gen;
	char err[600];
	int json = 0, c, code;

	optind = 0;
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		if (c == 'j')
			json = 1;
		else {
			cli_usage(cli_find("auth"), stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		cli_error("auth: unexpected argument '%s'", argv[optind]);
		return EXIT_USAGE;
	}
	if ((code = cli_deliver_opts(cli, &o, &cred)) != EXIT_OK)
		return code;
	if (pobox_cred_token(cred, &tok, &gen, err, sizeof err) != 0) {
		cli_error("auth: no profile API token: %s", err);
		pobox_cred_free(cred);
		return EXIT_UNAVAILABLE;
	}
	pobox_cred_info(cred, &in);
	if (json)
		print_json(&in);
	else
		print_human(&in);
	pobox_cred_free(cred);
	return EXIT_OK;
}
