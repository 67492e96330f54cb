/*
 * cmd_fleet.c - `pobox fleet init` and `pobox fleet status`, and the fleet
 * options the delivery commands use (cli_fleet_opts).
 *
 *   pobox fleet init [--grant ROLE] [--update]
 *       creates or upgrades the coordinator's schema (schema/fleet), grants
 *       ROLE what hosts need, and records the account with this config's
 *       budgets (--update: changes an existing account's to them)
 *   pobox fleet status [--json]
 *       the account and every host as the coordinator sees them now
 *
 * The password, when the config names fleet_password_file, is read from
 * that file (which must not be readable by other users); it is never taken
 * from the command line and never printed.
 */
#include "alloc.h"
#include "cli.h"
#include "deliver.h"
#include "fleet.h"
#include "fleet_pg.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The host's fleet name: fleet_host, else the host name. */
static const char *host_name(const struct pobox_config *c, char *buf, size_t len)
{
	if (c->fleet_host && *c->fleet_host)
		return c->fleet_host;
	if (gethostname(buf, len) != 0)
		snprintf(buf, len, "unknown");
	buf[len - 1] = '\0';
	return buf;
}

void cli_fleet_password_free(char *password)
{
	if (password) {
		memset(password, 0, strlen(password));
		pobox_free(password);
	}
}

/* Reads the password file into *password (free with cli_fleet_password_free). */
static int read_password(const char *path, char **password)
{
	struct stat sb;
	char buf[1024];
	FILE *fp = fopen(path, "r");
	*password = NULL;
	if (!fp) {
		cli_error("fleet_password_file %s: %s", path, strerror(errno));
		return EXIT_CONFIG;
	}
	if (fstat(fileno(fp), &sb) == 0 && (sb.st_mode & 077)) {
		cli_error("fleet_password_file %s is readable by other users (mode %04o); run chmod 600 %s",
		          path, (unsigned)(sb.st_mode & 07777), path);
		fclose(fp);
		return EXIT_CONFIG;
	}
	size_t n = fread(buf, 1, sizeof buf - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	if (!buf[0]) {
		cli_error("fleet_password_file %s is empty", path);
		return EXIT_CONFIG;
	}
	*password = pobox_strdup(buf);
	memset(buf, 0, sizeof buf);
	return *password ? EXIT_OK : EXIT_OSERR;
}

static void proposal(const struct pobox_config *c, const char *host, struct pobox_fleet_proposal *p)
{
	memset(p, 0, sizeof *p);
	p->account = c->fleet_account;
	p->host = host;
	p->budget = c->single_budget;
	p->bulk_limit = c->bulk_calls_per_minute;
	p->margin_share = c->fleet_margin;
	p->reserve_share = c->fleet_reserve_share;
	p->urgent_share = c->urgent_reserve;
	p->window_ms = c->fleet_window_ms;
	p->bulk_window_ms = c->fleet_bulk_window_ms;
	p->lease_ms = c->fleet_lease_ms;
	p->reserve_ms = c->fleet_reserve_life_ms;
	p->permit_ms = c->fleet_permit_life_ms;
	p->fleet_size = c->fleet_size;
}

/* Checks the fleet keys that every fleet command needs. */
static int check_keys(const struct pobox_config *c)
{
	char err[512];
	if (!c->fleet_url || !*c->fleet_url) {
		cli_error("fleet: no fleet_url in the configuration (the coordinator's PostgreSQL "
		          "connection string, e.g. host=db.example port=5432 dbname=pobox user=pobox_host)");
		return EXIT_CONFIG;
	}
	if (pobox_fleet_pg_check_url(c->fleet_url, err, sizeof err) != 0) {
		cli_error("%s", err);
		return EXIT_CONFIG;
	}
	if (!c->fleet_account || !*c->fleet_account) {
		cli_error("fleet: fleet_url is set but fleet_account is not (the account whose budgets "
		          "this host shares)");
		return EXIT_CONFIG;
	}
	return EXIT_OK;
}

int cli_fleet_opts(struct cli *cli, const struct pobox_deliver_opts *d, struct pobox_fleet_opts *fo,
                   char **password)
{
	const struct pobox_config *c = &cli->cfg;
	static char host[256];
	int code;
	*password = NULL;
	memset(fo, 0, sizeof *fo);
	if ((code = check_keys(c)) != EXIT_OK)
		return code;
	if (c->fleet_password_file && *c->fleet_password_file &&
	    (code = read_password(c->fleet_password_file, password)) != EXIT_OK)
		return code;
	fo->url = c->fleet_url;
	fo->password = *password;
	fo->account = c->fleet_account;
	fo->host = host_name(c, host, sizeof host);
	fo->db_path = c->db;
	pobox_config_options(c, &fo->open);
	fo->budget = c->single_budget;
	fo->bulk_limit = c->bulk_calls_per_minute;
	fo->margin_share = c->fleet_margin;
	fo->reserve_share = c->fleet_reserve_share;
	fo->urgent_share = c->urgent_reserve;
	fo->window_ms = c->fleet_window_ms;
	fo->bulk_window_ms = c->fleet_bulk_window_ms;
	fo->lease_ms = c->fleet_lease_ms;
	fo->reserve_ms = c->fleet_reserve_life_ms;
	fo->permit_ms = c->fleet_permit_life_ms;
	fo->fleet_size = c->fleet_size;
	fo->timeout_ms = c->fleet_timeout_ms;
	/* a single call sits in the queue of its connection behind at most two
	 * rounds of others, then takes its own timeout */
	fo->horizon_ms = 3 * d->request_timeout_ms;
	fo->bulk_horizon_ms = d->request_timeout_ms;
	fo->offline_bulk_per_minute = c->fleet_offline_bulk_per_minute;
	return EXIT_OK;
}

static int connect_cfg(struct cli *cli, struct pobox_fleet_conn **conn, char **password)
{
	const struct pobox_config *c = &cli->cfg;
	char err[512], host[256];
	int code;
	*password = NULL;
	if ((code = check_keys(c)) != EXIT_OK)
		return code;
	if (c->fleet_password_file && *c->fleet_password_file &&
	    (code = read_password(c->fleet_password_file, password)) != EXIT_OK)
		return code;
	int rc = pobox_fleet_pg_connect(conn, c->fleet_url, *password, host_name(c, host, sizeof host),
	                                c->fleet_timeout_ms, err, sizeof err);
	if (rc) {
		cli_error("%s", err);
		return rc == POBOX_ETRANSIENT ? EXIT_UNAVAILABLE : cli_exit_code(rc);
	}
	return EXIT_OK;
}

static int fleet_init(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{"grant", required_argument, NULL, 'g'},
		{"update", no_argument, NULL, 'u'},
		{NULL, 0, NULL, 0},
	};
	const char *role = NULL;
	int update = 0, c, code;
	optind = 0;
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		if (c == 'g')
			role = optarg;
		else if (c == 'u')
			update = 1;
		else {
			cli_usage(cli_find("fleet"), stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		cli_error("fleet init: unexpected argument '%s'", argv[optind]);
		return EXIT_USAGE;
	}
	struct pobox_fleet_conn *conn = NULL;
	struct pobox_fleet_proposal p;
	struct pobox_fleet_init out;
	char *password = NULL, err[512], host[256], where[200];
	if ((code = connect_cfg(cli, &conn, &password)) != EXIT_OK)
		goto done;
	proposal(&cli->cfg, host_name(&cli->cfg, host, sizeof host), &p);
	/* a migration may take longer than a grant: give it room */
	int64_t timeout = cli->cfg.fleet_timeout_ms < 60000 ? 60000 : cli->cfg.fleet_timeout_ms;
	int rc = pobox_fleet_pg_init(conn, role, &p, update, &out, timeout, err, sizeof err);
	if (rc) {
		cli_error("fleet init: %s", err);
		code = rc == POBOX_ETRANSIENT ? EXIT_UNAVAILABLE : cli_exit_code(rc);
		goto done;
	}
	pobox_fleet_pg_describe(cli->cfg.fleet_url, where, sizeof where);
	if (out.to_version > out.from_version)
		printf("fleet: coordinator %s: schema version %d -> %d\n", where, out.from_version, out.to_version);
	else
		printf("fleet: coordinator %s: schema version %d, up to date\n", where, out.to_version);
	if (role)
		printf("fleet: role %s may call pobox_fleet.join, grant, account_status, host_status\n", role);
	printf("fleet: account %s %s: single_budget %lld per %llds, bulk %lld per %llds\n",
	       cli->cfg.fleet_account, out.account_created ? "created" : out.account_updated ? "updated"
	                                                                  : "exists, unchanged",
	       (long long)p.budget, (long long)(p.window_ms / 1000), (long long)p.bulk_limit,
	       (long long)(p.bulk_window_ms / 1000));
	code = EXIT_OK;
done:
	pobox_fleet_pg_close(conn);
	cli_fleet_password_free(password);
	return code;
}

struct hosts_ctx {
	int json, n;
	int64_t window_ms;
};

static int print_host(void *ctx, const struct pobox_fleet_host_status *h)
{
	struct hosts_ctx *hc = ctx;
	char a[32], b[32], c[32], d[32], e[32];
	if (hc->json) {
		printf("%s{\"host\":\"", hc->n ? "," : "");
		for (const char *p = h->host; *p; p++) {
			if (*p == '"' || *p == '\\')
				putchar('\\');
			if ((unsigned char)*p >= 0x20)
				putchar(*p);
		}
		printf("\",\"used\":%lld,\"leased\":%lld,\"reserve\":%lld,\"permits\":%lld,"
		       "\"last_seen_ms\":%lld,\"age_s\":%.1f,\"heard\":%s,\"requests\":%lld,\"want\":%lld}",
		       (long long)h->used, (long long)h->leased, (long long)h->reserve, (long long)h->permits,
		       (long long)h->last_seen_ms, (double)h->age_ms / 1000.0, h->heard ? "true" : "false",
		       (long long)h->requests, (long long)h->want);
	} else {
		if (hc->n == 0)
			printf("%-24s %12s %10s %9s %10s %10s\n", "host", "used", "leased", "reserve",
			       "last seen", "requests");
		printf("%-24.24s %12s %10s %9s %10s %10s%s\n", h->host, cli_num(a, sizeof a, h->used),
		       cli_num(b, sizeof b, h->leased), cli_num(c, sizeof c, h->reserve),
		       cli_duration(d, sizeof d, h->age_ms), cli_num(e, sizeof e, h->requests),
		       h->heard ? "" : "  (not heard since the ledger's epoch began)");
	}
	hc->n++;
	return 0;
}

static int fleet_status(struct cli *cli, int argc, char **argv)
{
	int json = 0, code;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else {
			cli_usage(cli_find("fleet"), stderr);
			return EXIT_USAGE;
		}
	}
	struct pobox_fleet_conn *conn = NULL;
	struct pobox_fleet_account_status a;
	char *password = NULL, err[512], x[32], y[32], z[32], m[32], r[32], where[200];
	if ((code = connect_cfg(cli, &conn, &password)) != EXIT_OK)
		goto done;
	int rc = pobox_fleet_pg_account_status(conn, cli->cfg.fleet_account, &a, cli->cfg.fleet_timeout_ms,
	                                       err, sizeof err);
	struct hosts_ctx hc = {json, 0, a.window_ms};
	if (rc == 0 && json)
		printf("{\"account\":\"%s\",\"schema_version\":%d,\"epoch\":\"%s\",\"budget\":%lld,"
		       "\"margin\":%lld,\"window_s\":%lld,\"used\":%lld,\"free\":%lld,\"reserves\":%lld,"
		       "\"bulk_limit\":%lld,\"bulk_window_s\":%lld,\"bulk_used\":%lld,\"hosts_seen\":%lld,"
		       "\"learning\":%s,\"hosts\":[",
		       cli->cfg.fleet_account, a.schema_version, a.epoch, (long long)a.budget,
		       (long long)a.margin, (long long)(a.window_ms / 1000), (long long)a.spent,
		       (long long)(a.budget - a.margin - a.spent), (long long)a.reserves,
		       (long long)a.bulk_limit, (long long)(a.bulk_window_ms / 1000), (long long)a.bulk_used,
		       (long long)a.hosts, a.learning ? "true" : "false");
	else if (rc == 0) {
		pobox_fleet_pg_describe(cli->cfg.fleet_url, where, sizeof where);
		printf("account     %s at %s (schema %d, epoch %s)\n", cli->cfg.fleet_account, where,
		       a.schema_version, a.epoch);
		printf("single      %s used of %s per %s (margin %s), %s in standing reserves\n",
		       cli_num(x, sizeof x, a.spent), cli_num(y, sizeof y, a.budget),
		       cli_duration(z, sizeof z, a.window_ms), cli_num(m, sizeof m, a.margin),
		       cli_num(r, sizeof r, a.reserves));
		printf("bulk        %s of %s calls in the last %s\n", cli_num(x, sizeof x, a.bulk_used),
		       cli_num(y, sizeof y, a.bulk_limit), cli_duration(z, sizeof z, a.bulk_window_ms));
		printf("hosts       %s seen in the window%s\n\n", cli_num(x, sizeof x, a.hosts),
		       a.learning ? "; LEARNING: the ledger was restored or re-created, and not every host "
		                    "has re-reported its calls yet" : "");
	}
	if (rc == 0)
		rc = pobox_fleet_pg_host_status(conn, cli->cfg.fleet_account, print_host, &hc,
		                                cli->cfg.fleet_timeout_ms, err, sizeof err);
	if (rc) {
		if (json && hc.n == 0)
			fflush(stdout);
		cli_error("fleet status: %s", err);
		code = rc == POBOX_ETRANSIENT ? EXIT_UNAVAILABLE : cli_exit_code(rc);
		goto done;
	}
	if (json)
		printf("]}\n");
	code = EXIT_OK;
done:
	pobox_fleet_pg_close(conn);
	cli_fleet_password_free(password);
	return code;
}

int cmd_fleet(struct cli *cli, int argc, char **argv)
{
	if (argc < 2) {
		cli_usage(cli_find("fleet"), stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "init") == 0)
		return fleet_init(cli, argc - 1, argv + 1);
	if (strcmp(argv[1], "status") == 0)
		return fleet_status(cli, argc - 1, argv + 1);
	cli_error("fleet: unknown subcommand '%s' (init or status)", argv[1]);
	return EXIT_USAGE;
}
