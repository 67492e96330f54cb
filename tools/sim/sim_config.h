/*
 * sim_config -- every knob of the simulator, as one declarative table.
 *
 * Owns: the option table (name, type, default, range, whether it may change
 * at run time, help), parsing of command-line flags and of the
 * `name=value&...` bodies POSTed to /_sim/faults (the same names, with '_'
 * for '-'), and publication of the current settings.  Settings are an
 * immutable struct swapped atomically: a request reads sim_config_current()
 * once, without a lock, and sees one consistent plan.  Superseded plans are
 * kept until exit (changes are rare and tiny), so a request never reads
 * freed memory.
 *
 * It does not act on any setting; the modules that own each behaviour do.
 */
#ifndef SIM_CONFIG_H
#define SIM_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define SIM_MAX_CLIENTS 16
#define SIM_MAX_CODES 16

struct sim_config {
	/* start-up only */
	int port;
	char clients[SIM_MAX_CLIENTS][64];
	size_t n_clients;
	int threads;
	uint64_t seed;
	double clock_scale;
	char preload[4096];
	int no_ipv6;
	int64_t single_window_s;   /* the single budget's rolling window, simulated s */
	char call_log[4096];       /* one line per budget-counted call; "" = none */
	/* batches */
	int64_t process_delay_ms;
	double stuck_rate;
	int64_t status_keep;
	int64_t status_ttl_s;
	int64_t shuffle_window_ms;
	int override;
	int64_t max_batch_bytes;
	int64_t max_batch_rows;
	/* limits */
	int64_t bulk_per_minute;
	int64_t single_budget;
	int64_t max_get_bytes;
	int64_t max_post_bytes;
	int notfound_silent;
	/* faults */
	double error_rate;
	int error_codes[SIM_MAX_CODES];
	size_t n_error_codes;
	double rate_429;
	int64_t retry_after_s;
	int64_t latency_ms;
	int64_t latency_jitter_ms;
	double drop_rate;
	double reset_rate;
	double malformed_rate;
	char token[512];
	int64_t outage_start_s;
	int64_t outage_len_s;
	int outage_drop;
	/* credentials (sim_auth) */
	int require_auth;              /* profile endpoints need a token even without --token */
	char ims_client_id[256];
	char ims_client_secret[256];
	char ims_scopes[1024];         /* scopes a client may ask for; empty: any */
	char tenant[64];               /* the Admin API's {tenant} */
	int64_t ims_token_lifetime_s;      /* simulated */
	int64_t profile_token_lifetime_s;  /* simulated */
	int64_t ims_fail;              /* 0, or the status every IMS call answers */
	int64_t admin_fail;            /* 0, or the status every Admin API call answers */
	/* batchStatus URLs name this scheme://host[:port] instead of the other
	 * loopback name ("" = off): a Target, or an impostor, that sends the
	 * client elsewhere */
	char status_base[256];
	/* when this plan was published, simulated ms since start: the outage
	 * window is relative to it */
	int64_t published_ms;
};

/* Defaults from the docs. */
void sim_config_defaults(struct sim_config *c);

/*
 * Parse argv into c.  Returns 0 on success, 1 if --help was printed, or -1
 * with a one-line message in err (exit 64).
 */
int sim_config_parse_args(struct sim_config *c, int argc, char **argv, char *err,
                          size_t err_len);

/*
 * Apply a form body of run-time settings (`error_rate=0.2&error_codes=500`)
 * to c.  Only run-time options are accepted.  Returns 0, or -1 with err.
 */
int sim_config_parse_form(struct sim_config *c, const char *body, size_t len, char *err,
                          size_t err_len);

/* Install c (copied) as the current plan.  0, or -1 on allocation failure. */
int sim_config_publish(const struct sim_config *c);
/* The current plan (borrowed; valid until sim_config_shutdown()). */
const struct sim_config *sim_config_current(void);
void sim_config_shutdown(void);

/* The plan as JSON (token shown only as set / not set). */
struct sim_buf;
int sim_config_json(const struct sim_config *c, struct sim_buf *out);

void sim_config_usage(FILE *f);

/* Is `client` one of the accepted client codes? */
int sim_config_has_client(const struct sim_config *c, const char *client, size_t len);

#endif
