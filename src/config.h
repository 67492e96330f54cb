/*
 * config.h - pobox's configuration: one INI file, overridable from the
 * environment (POBOX_<KEY>, e.g. POBOX_CLIENT, POBOX_BASE_URL) and, for a few
 * keys, the command line.  Every key is one row of the table in config.c,
 * with its type, default and documentation; packaging/pobox.conf is the
 * commented sample.
 *
 * Precedence, lowest first: built-in default, config file, environment,
 * command line.
 */
#ifndef POBOX_CONFIG_H
#define POBOX_CONFIG_H

#include "pobox.h"

#include <stddef.h>
#include <stdint.h>

#define POBOX_DEFAULT_CONFIG "/etc/pobox/pobox.conf"

struct pobox_config {
	char *db;                 /* outbox path */
	char *client;             /* Target client code */
	char *base_url;           /* default https://<client>.tt.omtrdc.net */
	char *token_file;         /* bearer token file, or NULL */
	/* or a command that prints the token (credentials.h) */
	char *token_command;
	int64_t token_command_timeout_ms;
	int64_t token_min_interval_ms; /* between two token fetches by one process */
	/* or Adobe IMS OAuth server-to-server + the Admin API */
	char *ims_client_id;
	char *ims_client_secret_file;
	char *ims_scopes;
	char *target_tenant;
	char *ims_base_url;       /* NULL: Adobe's */
	char *admin_base_url;     /* NULL: Adobe's */
	int max_value_chars;
	enum pobox_sync synchronous;
	int64_t busy_timeout_ms;

	/* bulk delivery */
	int bulk_api_thirdpartyid;   /* 1 or 2 */
	int bulk_api_pcid;           /* 1 or 2 */
	int64_t max_batch_rows;
	int64_t max_batch_bytes;
	int64_t flush_rows;          /* `run` cuts when this many updates are pending */
	int64_t flush_max_delay_ms;  /* ... or when the oldest has waited this long */
	int64_t v2_carry_window_ms;  /* 0: no carry-forward */
	int64_t max_attempts;
	int64_t max_age_ms;
	int64_t backoff_base_ms, backoff_cap_ms;
	int64_t poll_initial_ms, poll_cap_ms;
	int64_t stuck_wait_ms;
	int64_t stuck_resubmits;
	int64_t bulk_calls_per_minute;
	int64_t bulk_max_in_flight;
	int64_t connect_timeout_ms, request_timeout_ms;
	int64_t retention_ms;
	int verify_tls;
	int64_t seed;                /* backoff jitter; 0: from time and pid */

	/* single-call lane and quota */
	int single_lane;             /* route to single calls at all */
	int64_t single_budget;       /* calls per rolling 24 h for the account */
	double fleet_share;
	double urgent_reserve;
	int64_t single_max_pending;
	double single_min_budget_share;
	int assume_profiles_exist;
	int64_t single_concurrency;
	int64_t single_threads;
	int64_t single_group;
	int64_t max_get_bytes, max_post_bytes;
	int64_t recovery_ramp_ms;
	/* a fleet sharing one account (fleet.h); fleet_url NULL: this host alone */
	char *fleet_url;             /* libpq connection string or URI, no password */
	char *fleet_account;
	char *fleet_host;            /* default: the host name */
	char *fleet_password_file;
	double fleet_margin;         /* share of single_budget never granted */
	double fleet_reserve_share;  /* share of the budget held as standing reserves */
	int64_t fleet_size;          /* hosts the reserve is spread over; 0: those seen */
	int64_t fleet_lease_ms, fleet_reserve_life_ms, fleet_permit_life_ms;
	int64_t fleet_window_ms, fleet_bulk_window_ms;
	int64_t fleet_timeout_ms;
	int64_t fleet_offline_bulk_per_minute;
	/* bounded disk */
	int64_t max_outbox_bytes;    /* 0: no limit */
	int64_t min_free_disk_bytes;
	/* damage */
	int64_t check_on_open_bytes; /* writers quick_check outboxes up to this size */
	int64_t check_interval_ms;   /* run checks one table this often; 0: never */
	/* pobox verify */
	int64_t verify_grace_ms;     /* Target may take this long to apply an update */
	double verify_rate;          /* profile fetches per second */
	int64_t verify_sample;       /* profiles fetched when no selection is given */
	/* service */
	char *log_level;
	char *metrics_file;          /* run keeps Prometheus metrics here */
	int64_t metrics_interval_ms;
};

/* Fills c with defaults. */
void pobox_config_init(struct pobox_config *c);
void pobox_config_free(struct pobox_config *c);

/* Loads path (required when `explicit`, else skipped if absent), then the
 * environment.  Returns 0 or POBOX_ECONFIG with "file:line: key: problem" in
 * err. */
int pobox_config_load(struct pobox_config *c, const char *path, int explicit_path, char *err,
                      size_t errlen);

/* Sets one key from text (file, environment or command line). */
int pobox_config_set(struct pobox_config *c, const char *key, const char *value, char *err,
                     size_t errlen);

/* Converts the config to open options. */
void pobox_config_options(const struct pobox_config *c, struct pobox_options *o);

/* Parses "250ms", "30s", "5m", "2h", "1d" (a bare number is seconds) into
 * milliseconds.  Returns 0 or POBOX_EINVALID. */
int pobox_parse_duration_ms(const char *s, int64_t *out);

#endif
