/*
 * deliveropts.c - turns the configuration into delivery options for the
 * commands that talk to Target (flush, run), including reading the bearer
 * token file, which must not be readable by other users.
 */
#include "alloc.h"
#include "cli.h"
#include "deliver.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

int cli_deliver_opts(struct cli *cli, struct pobox_deliver_opts *o, char **token)
{
	const struct pobox_config *c = &cli->cfg;
	*token = NULL;
	memset(o, 0, sizeof *o);
	if (!c->client || !*c->client) {
		cli_error("no Target client code: set `client` in %s or POBOX_CLIENT (it is the code "
		          "under Administration > Implementation in Target)",
		          cli->config_path ? cli->config_path : POBOX_DEFAULT_CONFIG);
		return EXIT_CONFIG;
	}
	if (c->token_file && *c->token_file) {
		struct stat sb;
		FILE *fp = fopen(c->token_file, "r");
		if (!fp) {
			cli_error("token_file %s: %s", c->token_file, strerror(errno));
			return EXIT_CONFIG;
		}
		if (fstat(fileno(fp), &sb) == 0 && (sb.st_mode & 077)) {
			cli_error("token_file %s is readable by other users (mode %04o); run chmod 600 %s",
			          c->token_file, (unsigned)(sb.st_mode & 07777), c->token_file);
			fclose(fp);
			return EXIT_CONFIG;
		}
		char buf[4096];
		size_t n = fread(buf, 1, sizeof buf - 1, fp);
		fclose(fp);
		buf[n] = '\0';
		buf[strcspn(buf, "\r\n")] = '\0';
		if (!buf[0]) {
			cli_error("token_file %s is empty", c->token_file);
			return EXIT_CONFIG;
		}
		if (!(*token = pobox_strdup(buf)))
			return EXIT_OSERR;
		memset(buf, 0, sizeof buf);
	}
	o->client = c->client;
	o->base_url = c->base_url;
	o->token = *token;
	o->sched.api_thirdparty = c->bulk_api_thirdpartyid;
	o->sched.api_pcid = c->bulk_api_pcid;
	o->sched.max_rows = c->max_batch_rows;
	o->sched.max_bytes = c->max_batch_bytes;
	o->sched.carry_window_ms = c->v2_carry_window_ms;
	o->sched.profile_cap_bytes = 65536;
	o->max_attempts = c->max_attempts;
	o->max_age_ms = c->max_age_ms;
	o->backoff_base_ms = c->backoff_base_ms;
	o->backoff_cap_ms = c->backoff_cap_ms;
	o->poll_initial_ms = c->poll_initial_ms;
	o->poll_cap_ms = c->poll_cap_ms;
	o->stuck_wait_ms = c->stuck_wait_ms;
	o->stuck_resubmits = c->stuck_resubmits;
	o->calls_per_minute = c->bulk_calls_per_minute;
	o->max_in_flight = c->bulk_max_in_flight;
	o->connect_timeout_ms = c->connect_timeout_ms;
	o->request_timeout_ms = c->request_timeout_ms;
	o->verify_tls = c->verify_tls;
	o->seed = (uint64_t)c->seed;
	char err[512];
	if (pobox_deliver_check(o, err, sizeof err) != 0) {
		cli_error("%s", err);
		cli_token_free(*token);
		*token = NULL;
		return EXIT_CONFIG;
	}
	return EXIT_OK;
}

void cli_token_free(char *token)
{
	if (token) {
		memset(token, 0, strlen(token));
		pobox_free(token);
	}
}
