/*
 * cli.h - shared pieces of the `pobox` command line: the command table
 * entry, the context every command gets, exit codes and helpers.
 *
 * The CLI is thin: it parses arguments, opens the outbox, calls libpobox and
 * prints.  Each command is one entry in the table in main.c and one
 * cmd_<name>.c file.
 */
#ifndef POBOX_CLI_H
#define POBOX_CLI_H

#include "config.h"
#include "pobox.h"

#include <stdint.h>
#include <stdio.h>

/* sysexits.h values, named here so the mapping is in one place. */
enum {
	EXIT_OK = 0,
	EXIT_USAGE = 64,
	EXIT_DATAERR = 65,
	EXIT_NOINPUT = 66,
	EXIT_UNAVAILABLE = 69,
	EXIT_SOFTWARE = 70,
	EXIT_OSERR = 71,
	EXIT_CANTCREAT = 73,
	EXIT_IOERR = 74,
	EXIT_TEMPFAIL = 75,
	EXIT_CONFIG = 78,
	/* pobox's own: sysexits has no code for "stopped part-way".  `import`
	 * read some of its input and stopped (bad header or CSV, outbox full
	 * or busy, I/O error): the rows before the line it names are in, none
	 * after.  Distinct from 65, where the whole input was read. */
	EXIT_IMPORT_STOPPED = 79,
};

struct cli {
	const char *prog;
	struct pobox_config cfg;
	const char *config_path;
};

struct command {
	const char *name;
	int (*run)(struct cli *cli, int argc, char **argv);
	const char *summary;
	const char *usage;    /* full help text for `pobox CMD --help` */
};

/* The exit status for a libpobox result code. */
int cli_exit_code(int rc);

/* Prints "pobox: <message>" to stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* How a command uses the outbox (cli_open's mode). */
enum {
	CLI_CREATE = 0,    /* writes; creates the outbox when missing */
	CLI_EXISTING = 1,  /* writes; the outbox must exist */
	CLI_READER = 2,    /* only reads: works on a damaged outbox and in a
	                    * read-only directory */
	CLI_DOCTOR = 3,    /* pobox doctor */
	CLI_RUN = 4,       /* pobox run: creates; opens a damaged outbox (and pauses) */
};

/* Opens the configured outbox for a command of that mode; on failure prints
 * the reason and returns the exit code in *exit_code. */
struct pobox *cli_open(struct cli *cli, int mode, int *exit_code);

/* Refuses an output file (what: "reject file", "metrics_file") that is the
 * outbox, a file of its family, the config or token file, `input` (may be
 * NULL) or the file open as input_fd (-1: none).  Returns EXIT_OK, or
 * EXIT_USAGE after printing why; call it before opening anything for
 * writing. */
int cli_check_output(const struct cli *cli, const char *path, const char *what, const char *input,
                     int input_fd);

/* Prints the command's usage to fp. */
void cli_usage(const struct command *cmd, FILE *fp);

/* Formats n with thousands separators into buf. */
const char *cli_num(char *buf, size_t len, int64_t n);
/* Formats a duration in ms as "3m12s" / "2h05m" / "1d04h". */
const char *cli_duration(char *buf, size_t len, int64_t ms);
/* Formats bytes as "12.3 MB". */
const char *cli_bytes(char *buf, size_t len, int64_t bytes);

struct pobox_deliver_opts;
struct pobox_cred;
/* Fills delivery options from the config, with the credentials it names in
 * *cred (o->cred; NULL when none are configured; free with
 * pobox_cred_free).  Returns EXIT_OK or an exit code after printing why. */
int cli_deliver_opts(struct cli *cli, struct pobox_deliver_opts *o, struct pobox_cred **cred);

/* pobox run's watch over the outbox (health.c). */
struct cli_health {
	int64_t last_check_ms;   /* last incremental check */
	int64_t cursor;          /* the table checked last (schema rowid) */
	int64_t paused_since_ms; /* 0: not paused */
	int64_t last_remind_ms;
};
/* Every check_interval, PRAGMA quick_check of the next table in turn; a
 * failure marks the outbox damaged. */
void cli_health_check(struct cli *cli, struct pobox *pb, struct cli_health *h, int64_t now_ms);
/* 1 (after logging, and sleeping a second) while the outbox is marked
 * damaged; 0 when delivery may go on. */
int cli_health_paused(struct pobox *pb, struct cli_health *h, int64_t now_ms);

struct pobox_fleet_opts;
/* Fills fleet options from the config (fleet_url set) for a delivery with
 * options d; reads fleet_password_file into *password (free with
 * cli_fleet_password_free).  Returns EXIT_OK or an exit code after
 * printing why. */
int cli_fleet_opts(struct cli *cli, const struct pobox_deliver_opts *d, struct pobox_fleet_opts *fo,
                   char **password);
/* Wipes and frees what cli_fleet_opts read.  NULL: no-op. */
void cli_fleet_password_free(char *password);

struct pobox_quota_opts;
/* The quota options the configuration gives (budget, share, reserve, fleet). */
void cli_quota_opts(const struct pobox_config *c, struct pobox_quota_opts *qo);

struct pobox_quota;
/* The fleet part of `pobox quota` and `status`: lines of text, or the
 * "fleet":{...} member (no trailing comma). */
void cli_fleet_print(const struct pobox_quota *q, int64_t now_ms);
void cli_fleet_json(const struct pobox_quota *q, int64_t now_ms);

int cmd_put(struct cli *cli, int argc, char **argv);
int cmd_flush(struct cli *cli, int argc, char **argv);
int cmd_run(struct cli *cli, int argc, char **argv);
int cmd_plan(struct cli *cli, int argc, char **argv);
int cmd_dead(struct cli *cli, int argc, char **argv);
int cmd_requeue(struct cli *cli, int argc, char **argv);
int cmd_purge(struct cli *cli, int argc, char **argv);
int cmd_doctor(struct cli *cli, int argc, char **argv);
int cmd_quota(struct cli *cli, int argc, char **argv);
int cmd_batches(struct cli *cli, int argc, char **argv);
int cmd_show(struct cli *cli, int argc, char **argv);
int cmd_import(struct cli *cli, int argc, char **argv);
int cmd_status(struct cli *cli, int argc, char **argv);
int cmd_fleet(struct cli *cli, int argc, char **argv);
int cmd_auth(struct cli *cli, int argc, char **argv);
int cmd_verify(struct cli *cli, int argc, char **argv);

/* status --watch (status_watch.c): redraws the status every interval_ms
 * until SIGINT or SIGTERM (then EXIT_OK); an error reading the outbox
 * ends it with its exit code after saying why. */
int cli_status_watch(struct cli *cli, struct pobox *pb, int64_t interval_ms);

extern const struct command cli_commands[];

/* Standard per-command option handling: returns -1 to continue, or an exit
 * code (after printing help for --help or an error for a bad option). */
const struct command *cli_find(const char *name);

#endif
