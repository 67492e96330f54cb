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

/* Opens the configured outbox (must_exist for read-only commands); on
 * failure prints the reason and returns the exit code in *exit_code. */
struct pobox *cli_open(struct cli *cli, int must_exist, int *exit_code);

/* Prints the command's usage to fp. */
void cli_usage(const struct command *cmd, FILE *fp);

/* Formats n with thousands separators into buf. */
const char *cli_num(char *buf, size_t len, int64_t n);
/* Formats a duration in ms as "3m12s" / "2h05m" / "1d04h". */
const char *cli_duration(char *buf, size_t len, int64_t ms);
/* Formats bytes as "12.3 MB". */
const char *cli_bytes(char *buf, size_t len, int64_t bytes);

struct pobox_deliver_opts;
/* Fills delivery options from the config; reads the token file into
 * *token (free with cli_token_free).  Returns EXIT_OK or an exit code after
 * printing why. */
int cli_deliver_opts(struct cli *cli, struct pobox_deliver_opts *o, char **token);
void cli_token_free(char *token);

struct pobox_fleet_opts;
/* Fills fleet options from the config (fleet_url set) for a delivery with
 * options d; reads fleet_password_file into *password (free with
 * cli_token_free).  Returns EXIT_OK or an exit code after printing why. */
int cli_fleet_opts(struct cli *cli, const struct pobox_deliver_opts *d, struct pobox_fleet_opts *fo,
                   char **password);

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

extern const struct command cli_commands[];

/* Standard per-command option handling: returns -1 to continue, or an exit
 * code (after printing help for --help or an error for a bad option). */
const struct command *cli_find(const char *name);

#endif
