/*
 * deliveropts.c - turns the configuration into delivery options for the
 * commands that talk to Target (flush, run, plan, auth), including the
 * credentials (token_file, token_command or IMS; credentials.h), whose
 * files must not be readable by other users.
 */
#include "alloc.h"
#include "cli.h"
#include "credentials.h"
#include "deliver.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* The credentials the configuration names (credentials.h); the IMS token
 * cache lives beside the outbox. */
static int make_cred(struct cli *cli, struct pobox_cred **cred)
{
	const struct pobox_config *c = &cli->cfg;
	struct pobox_cred_opts co;
	char err[512], *cache = NULL;
	int rc;
	memset(&co, 0, sizeof co);
	if (c->db && *c->db && (cache = pobox_malloc(strlen(c->db) + 16)))
		sprintf(cache, "%s-token.cache", c->db);
	co.token_file = c->token_file;
	co.token_command = c->token_command;
	co.command_timeout_ms = c->token_command_timeout_ms;
	co.ims_client_id = c->ims_client_id;
	co.ims_client_secret_file = c->ims_client_secret_file;
	co.ims_scopes = c->ims_scopes;
	co.tenant = c->target_tenant;
	co.ims_base_url = c->ims_base_url;
	co.admin_base_url = c->admin_base_url;
	co.cache_path = cache;
	co.min_interval_ms = c->token_min_interval_ms;
	co.connect_timeout_ms = c->connect_timeout_ms;
	co.request_timeout_ms = c->request_timeout_ms;
	co.verify_tls = c->verify_tls;
	rc = pobox_cred_new(cred, &co, err, sizeof err);
	pobox_free(cache);
	if (rc) {
		cli_error("%s", err);
		return rc == POBOX_ENOMEM ? EXIT_OSERR : EXIT_CONFIG;
	}
	return EXIT_OK;
}

int cli_deliver_opts(struct cli *cli, struct pobox_deliver_opts *o, struct pobox_cred **cred)
{
	const struct pobox_config *c = &cli->cfg;
	int code;
	*cred = NULL;
	memset(o, 0, sizeof *o);
	if (!c->client || !*c->client) {
		cli_error("no Target client code: set `client` in %s or POBOX_CLIENT (it is the code "
		          "under Administration > Implementation in Target)",
		          cli->config_path ? cli->config_path : POBOX_DEFAULT_CONFIG);
		return EXIT_CONFIG;
	}
	if ((code = make_cred(cli, cred)) != EXIT_OK)
		return code;
	o->cred = *cred;
	o->client = c->client;
	o->base_url = c->base_url;
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
		pobox_cred_free(*cred);
		*cred = NULL;
		return EXIT_CONFIG;
	}
	return EXIT_OK;
}
