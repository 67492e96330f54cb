/*
 * main.c - `pobox`: global options, the command table, exit codes.
 *
 *   pobox [-c CONFIG] [--db PATH] COMMAND [ARGS]
 *
 * Global options come before the command.  Each command parses its own
 * options and answers --help.
 */
#include "cli.h"
#include "error.h"
#include "log.h"
#include "outbox.h"
#include "outpath.h"

#include <errno.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct command cli_commands[] = {
	{"put", cmd_put, "enqueue one profile update",
	 "usage: pobox put ID_TYPE:ID ATTR=VALUE... [--urgent] [--source NAME]\n"
	 "\n"
	 "Enqueues updates of one profile.  All ATTR=VALUE pairs go in together, or\n"
	 "none does.\n"
	 "\n"
	 "  ID_TYPE        thirdPartyId (alias mbox3rdPartyId) or pcId (aliases mboxPC,\n"
	 "                 tntId); ECID is not supported by Target's profile APIs\n"
	 "  ID             the profile id: 1-256 bytes; a thirdPartyId may not contain\n"
	 "                 '+' or '/'\n"
	 "  ATTR=VALUE     attribute name (a leading 'profile.' is dropped; letters,\n"
	 "                 digits, '_', '-', '.') and value (UTF-8, at most\n"
	 "                 max_value_chars characters).  An empty VALUE is skipped:\n"
	 "                 Target ignores empty values.\n"
	 "  --urgent       deliver as soon as possible\n"
	 "  --source NAME  record who produced the update (default: cli)\n"
	 "\n"
	 "example: pobox put thirdPartyId:crm-42 loyaltyTier=gold points=1200\n"
	 "exit: 0 stored, 64 usage error, 65 invalid update (nothing stored),\n"
	 "      74 outbox damaged or not writable, 75 outbox busy or full (try again)\n"},
	{"import", cmd_import, "enqueue a CSV export",
	 "usage: pobox import FILE|- [--id-column NAME] [--id-type pcId|thirdPartyId]\n"
	 "                    [--changed-only] [--reject-file PATH] [--source NAME] [--urgent]\n"
	 "\n"
	 "Streams a CSV export into the outbox.  The header row is required: the id\n"
	 "column is the first column unless --id-column names another; its type comes\n"
	 "from --id-type or from the column's name (thirdPartyId, pcId, their aliases,\n"
	 "or a Target batch file's 'batch=thirdPartyId' form, whose cells are then\n"
	 "URL-decoded).  Every other column is an attribute.\n"
	 "\n"
	 "Handles a UTF-8 byte-order mark, CRLF line ends, quoted fields with commas,\n"
	 "quotes and newlines, and short rows (missing cells are empty); refuses\n"
	 "UTF-16 and UTF-32 files.  Empty cells are skipped.  A row with any invalid\n"
	 "cell is rejected whole; with --reject-file each rejected row is written\n"
	 "there as CSV: line,reason,<the original columns>, ready to fix and import\n"
	 "again (PATH may not be the outbox, one of its files or the input).\n"
	 "\n"
	 "When it stops before the end (a bad line, outbox or disk full, busy), the\n"
	 "summary counts what is in the outbox and names the line it stopped at:\n"
	 "the rows before it are in, none from it on.\n"
	 "\n"
	 "--changed-only skips every value equal to the last one delivered to Target\n"
	 "for that profile and attribute, so a nightly full export sends only what\n"
	 "changed.\n"
	 "\n"
	 "On a terminal, progress is shown on stderr.\n"
	 "exit: 0 all rows imported, 65 the whole file was read and some rows were\n"
	 "      rejected (the rest are in), 79 stopped part-way at the line named,\n"
	 "      64 usage, 66 FILE not found, 74 outbox damaged, 75 outbox busy or full\n"
	 "      before anything was read\n"},
	{"status", cmd_status, "show counts by state, the oldest pending update, the file size",
	 "usage: pobox status [--json | --prometheus | --watch [INTERVAL]]\n"
	 "\n"
	 "Shows how many updates are in each state (pending, batched, delivered,\n"
	 "superseded, dead), the age of the oldest pending update, and the outbox's\n"
	 "size on disk (including its write-ahead log), and the single-call budget:\n"
	 "used and remaining in the last 24 hours, the urgent reserve, and when it\n"
	 "would run out at the last hour's rate.  --json prints one JSON object;\n"
	 "--prometheus prints the Prometheus text format (the same metrics `pobox run`\n"
	 "writes to metrics_file).\n"
	 "\n"
	 "--watch [INTERVAL] redraws the status every INTERVAL (2s; e.g. 500ms, 10s)\n"
	 "until Ctrl-C: counts by state, rates over the last minute, batches by lane\n"
	 "and state, the lanes (running or paused, and why) and the quota.  It only\n"
	 "reads the outbox.  SIGINT or SIGTERM end it with exit 0.\n"},
	{"flush", cmd_flush, "cut batches now; with --wait, deliver them and wait",
	 "usage: pobox flush [--wait [--timeout DURATION]]\n"
	 "\n"
	 "Cuts bulk batches for everything pending: per profile the newest value of\n"
	 "each attribute wins (older ones become superseded), profiles already in an\n"
	 "unfinished batch wait for it, and each batch file is stored, compressed, as\n"
	 "the exact bytes to send.  Without --wait that is all (`pobox run` delivers).\n"
	 "\n"
	 "  --wait          then deliver: submit, follow each batch's status URL to\n"
	 "                  completion, retry, split refused files, cut stuck batches'\n"
	 "                  updates again, resubmit lost ones; updates arriving\n"
	 "                  meanwhile are delivered too\n"
	 "  --timeout DUR   give up waiting after DUR (30s, 10m, 2h), ending a call in\n"
	 "                  flight unanswered (its batch is sent again later)\n"
	 "\n"
	 "exit: 0 everything delivered, 65 done but some updates ended dead (see\n"
	 "      pobox dead), 69 Target refused the token or the client code, or no\n"
	 "      token could be had (nothing was dead-lettered),\n"
	 "      75 timed out or interrupted with work left (a summary is printed),\n"
	 "      78 configuration error (client, base_url, the credentials)\n"},
	{"run", cmd_run, "the delivery service loop",
	 "usage: pobox run [--once]\n"
	 "\n"
	 "Delivers continuously: cuts a batch when flush_rows profiles are pending or\n"
	 "the oldest pending update has waited flush_max_delay, sends, tracks and\n"
	 "retries, and prunes delivered history after `retention`.  One line per\n"
	 "event on stderr.  While the outbox is marked damaged it pauses (see pobox\n"
	 "doctor).  SIGTERM or SIGINT stops it within a second or two, ending calls\n"
	 "in flight unanswered: their batches stay sending and the next run sends\n"
	 "them again.  SIGHUP re-reads the configuration and lifts a pause for the\n"
	 "credentials or client code.  Only one run may deliver from an outbox at a\n"
	 "time.\n"
	 "\n"
	 "  --once   one pass, then exit\n"},
	{"plan", cmd_plan, "show what the next flush would send, by which lane, at what quota cost",
	 "usage: pobox plan\n"
	 "\n"
	 "Does everything a flush would - coalescing, routing each profile to the\n"
	 "single-call or the bulk lane, packing batch files - inside a transaction\n"
	 "that is then rolled back, and prints the batches it would make, their\n"
	 "sizes, and the single-call quota they would use.  Sends and changes nothing.\n"},
	{"batches", cmd_batches, "list delivery batches",
	 "usage: pobox batches [--state STATE] [--json]\n"
	 "\n"
	 "Lists batches, oldest first: api, id type, state (ready, sending, submitted,\n"
	 "done, dead, split, replaced), why it was made (cut, split, stuck, lost),\n"
	 "rows, updates, bytes, attempts, Target's last status and the last error.\n"},
	{"show", cmd_show, "show one batch, or the exact bytes it sends",
	 "usage: pobox show BATCH [--payload]\n"
	 "\n"
	 "Shows every recorded field of a batch.  --payload prints the batch file\n"
	 "exactly as it is (or was) sent, after checking its stored checksum.\n"},
	{"auth", cmd_auth, "obtain the profile API token as delivery would; show its source and expiry",
	 "usage: pobox auth [--json]\n"
	 "\n"
	 "Gets the profile API token the way `run` and `flush` do -- from token_file,\n"
	 "by running token_command, or from Adobe IMS and Target's Admin API (using\n"
	 "the token cache beside the outbox when it holds a fresh one) -- and shows\n"
	 "where it came from, when it expires and when it will be refreshed.  The\n"
	 "token itself is never shown.  Use it to check new credentials before the\n"
	 "first delivery.\n"
	 "exit: 0 a token is in hand (or no credentials are configured), 69 it could\n"
	 "      not be obtained (the message names the step that failed), 78\n"
	 "      configuration error\n"},
	{"verify", cmd_verify, "check that Target holds what pobox sent (Profile Fetch API)",
	 "usage: pobox verify [--sample N | --all] [--batch ID] [--id TYPE:ID] [--since DUR]\n"
	 "                    [--rate R] [--grace DUR] [--json]\n"
	 "\n"
	 "Fetches profiles pobox has sent from Target's Profile Fetch API and compares,\n"
	 "attribute by attribute, the last value pobox sent with what Target holds:\n"
	 "  matching         Target holds it\n"
	 "  not yet applied  Target holds an older value (modified before pobox's\n"
	 "                   delivery), not this attribute, or not the profile, and pobox\n"
	 "                   sent it less than the grace period ago (Target applies\n"
	 "                   updates within an hour, at worst 24 hours)\n"
	 "  different        Target holds another value modified after pobox's delivery\n"
	 "                   (another writer); or past the grace still an older one (a\n"
	 "                   lost v2 override, or never applied)\n"
	 "  missing          past the grace, no such attribute or profile at Target\n"
	 "A batch Target has taken but not reported complete counts as sent.\n"
	 "\n"
	 "  --sample N     N profiles chosen at random (default verify_sample, 100)\n"
	 "  --all          every selected profile\n"
	 "  --batch ID     the profiles of batch ID (submitted or done)\n"
	 "  --id TYPE:ID   one profile, e.g. thirdPartyId:crm-42\n"
	 "  --since DUR    profiles sent in the last DUR (30m, 24h, 7d)\n"
	 "  --rate R       at most R fetches per second (default verify_rate, 5)\n"
	 "  --grace DUR    how long Target may take (default verify_grace, 24h)\n"
	 "  --json         the result as one JSON object\n"
	 "\n"
	 "Prints the share of attributes in each class with how long ago they were\n"
	 "sent, and lists those that differ.  Each run is recorded in the outbox\n"
	 "(v_verifications, v_verify_findings); status --prometheus and the metrics\n"
	 "file show the last one.\n"
	 "exit: 0 nothing differs past the grace, 65 something does, 64 usage (also a\n"
	 "      batch Target never took), 66 --id or --batch names nothing pobox has,\n"
	 "      69 Target refused the token or the request (client, base_url), 75 some\n"
	 "      profiles could not be fetched or interrupted, 78 configuration error\n"},
	{"quota", cmd_quota, "the single-call budget: last 24 hours per hour, remaining, reserve",
	 "usage: pobox quota [--json]\n"
	 "\n"
	 "Shows single calls per hour over the last 24 hours as a chart, the budget\n"
	 "(single_budget x fleet_share), what is used and remaining, the urgent\n"
	 "reserve, and when the budget would run out at the last hour's rate.\n"
	 "--json gives the same numbers.\n"},
	{"dead", cmd_dead, "list dead updates with their reason",
	 "usage: pobox dead [--json] [--id SEQ,...] [--reason TEXT] [--since DURATION]\n"
	 "\n"
	 "Lists dead updates (given up on: attempts or age used up, refused by\n"
	 "Target, over a limit) with the reason, the last HTTP status, the attempts\n"
	 "made and how long ago they died.  --reason matches a part of the reason;\n"
	 "--since 24h keeps those that died in the last 24 hours.\n"},
	{"requeue", cmd_requeue, "move dead updates back to pending",
	 "usage: pobox requeue (--id SEQ,... | --reason TEXT | --since DURATION | --all)\n"
	 "                     [--dry-run]\n"
	 "\n"
	 "Moves the selected dead updates back to pending, respecting coalescing: a\n"
	 "dead value that a newer value of the same profile and attribute has\n"
	 "replaced (pending or delivered) is marked superseded instead of sent\n"
	 "again.  The criteria combine (all must hold).  --dry-run shows what would\n"
	 "move and changes nothing.\n"},
	{"purge", cmd_purge, "delete dead updates or delivered history",
	 "usage: pobox purge [--dead] (--id SEQ,... | --reason TEXT | --since DURATION | --all)\n"
	 "                   [--dry-run] [--yes]\n"
	 "       pobox purge --delivered [--before DURATION] [--dry-run] [--yes]\n"
	 "\n"
	 "Deletes the selected dead updates, or (--delivered) delivered and\n"
	 "superseded history older than --before (default: all of it; the last\n"
	 "value sent per profile attribute is kept for --changed-only and\n"
	 "carry-forward).  Asks for confirmation on a terminal; otherwise needs\n"
	 "--yes.  --dry-run counts and changes nothing.\n"},
	{"doctor", cmd_doctor, "check the outbox and pobox's invariants; --repair fixes the safe ones",
	 "usage: pobox doctor [--repair]\n"
	 "\n"
	 "Runs SQLite's integrity check and checks pobox's own invariants: every\n"
	 "update in a batch belongs to a live batch, no unfinished batch is empty,\n"
	 "delivery watermarks are sane, every update names an existing profile and\n"
	 "attribute, the quota ledger's counts are possible, no quota reservation is\n"
	 "left by a process that is gone, every unfinished batch's stored bytes match\n"
	 "their checksum.  Each problem is reported with how to fix it; --repair\n"
	 "fixes those that are safe (nothing accepted is lost; at worst an update is\n"
	 "sent again), but nothing while SQLite reports damage.  A damaged outbox is\n"
	 "never deleted or recreated; it is marked, and writes are refused, until\n"
	 "SQLite's integrity check passes here again (doctor then removes the mark).\n"
	 "exit: 0 healthy (or everything repaired), 65 problems remain, 74 cannot be read\n"},
	{"fleet", cmd_fleet, "a fleet sharing one account: set up the coordinator, list its hosts",
	 "usage: pobox fleet init [--grant ROLE] [--update]\n"
	 "       pobox fleet status [--json]\n"
	 "\n"
	 "With fleet_url and fleet_account set, hosts share the account's budgets\n"
	 "through leases from a PostgreSQL coordinator (see pobox.conf(5), FLEET).\n"
	 "\n"
	 "init     creates or upgrades the coordinator's schema (pobox_fleet), in one\n"
	 "         transaction; safe to run again.  Records the account with this\n"
	 "         config's single_budget, bulk_calls_per_minute and fleet_* settings\n"
	 "         when it has none; --update changes an existing account's to them.\n"
	 "         --grant ROLE lets ROLE (the hosts' login) call the four functions\n"
	 "         hosts use, and nothing else.  Run it as the role that is to own\n"
	 "         the schema.\n"
	 "status   the account's use in its window, its reserves, the bulk window,\n"
	 "         and every host: its use, what it holds, when it was last heard.\n"
	 "         --json prints one object.\n"
	 "\n"
	 "exit: 0 done, 69 the coordinator cannot be reached, 78 refused (rights,\n"
	 "      a mismatched account, no schema) or a configuration error\n"},
	{NULL, NULL, NULL, NULL},
};

static const char main_usage[] =
	"usage: pobox [-c CONFIG] [--db PATH] COMMAND [ARGS]\n"
	"\n"
	"pobox keeps a durable outbox of visitor-profile updates for Adobe Target.\n"
	"\n"
	"options:\n"
	"  -c, --config CONFIG  configuration file (default " POBOX_DEFAULT_CONFIG ", if present)\n"
	"  --db PATH            the outbox file (overrides the config's db key and $POBOX_DB)\n"
	"  -h, --help           this help; `pobox COMMAND --help` for a command's\n"
	"  --version            print the version\n"
	"\n"
	"commands:\n";

const struct command *cli_find(const char *name)
{
	for (const struct command *c = cli_commands; c->name; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

void cli_usage(const struct command *cmd, FILE *fp) { fputs(cmd->usage, fp); }

void cli_error(const char *fmt, ...)
{
	va_list ap;
	pobox_log_before(); /* a progress line on the terminal goes first */
	fputs("pobox: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int cli_exit_code(int rc)
{
	switch (rc) {
	case POBOX_OK:
	case POBOX_SKIPPED: return EXIT_OK;
	case POBOX_EINVALID: return EXIT_DATAERR;
	case POBOX_ENOTFOUND: return EXIT_NOINPUT;
	case POBOX_EBUSY:
	case POBOX_ETRANSIENT:
	case POBOX_EFULL: return EXIT_TEMPFAIL;
	case POBOX_EPERMANENT: return EXIT_UNAVAILABLE;
	case POBOX_ECONFIG: return EXIT_CONFIG;
	case POBOX_ENOMEM: return EXIT_OSERR;
	case POBOX_EIO:
	case POBOX_ECORRUPT: return EXIT_IOERR;
	}
	return EXIT_SOFTWARE;
}

struct pobox *cli_open(struct cli *cli, int mode, int *exit_code)
{
	struct pobox_options o;
	struct pobox *pb = NULL;
	char err[POBOX_ERRLEN];
	struct pobox_open_ctl ctl = {
		.reader = mode == CLI_READER,
		.doctor = mode == CLI_DOCTOR,
		.tolerate_damage = mode == CLI_RUN,
		.check_max_bytes = cli->cfg.check_on_open_bytes,
	};
	pobox_config_options(&cli->cfg, &o);
	o.read_only = mode == CLI_EXISTING || mode == CLI_READER || mode == CLI_DOCTOR;
	if (!cli->cfg.db) {
		cli_error("no outbox given: pass --db PATH, set db in %s, or set POBOX_DB",
		          cli->config_path ? cli->config_path : POBOX_DEFAULT_CONFIG);
		*exit_code = EXIT_CONFIG;
		return NULL;
	}
	int rc = pobox_open_ctl(&pb, cli->cfg.db, &o, &ctl, err, sizeof err);
	if (rc != 0) {
		cli_error("%s", err);
		*exit_code = cli_exit_code(rc);
		return NULL;
	}
	return pb;
}

int cli_check_output(const struct cli *cli, const char *path, const char *what, const char *input,
                     int input_fd)
{
	const char *inputs[] = {input, cli->config_path, cli->cfg.token_file};
	char err[POBOX_ERRLEN];
	if (pobox_outpath_check(path, what, cli->cfg.db, inputs,
	                        sizeof inputs / sizeof inputs[0], input_fd, err, sizeof err) == 0)
		return EXIT_OK;
	cli_error("%s (nothing was written)", err);
	return EXIT_USAGE;
}

const char *cli_num(char *buf, size_t len, int64_t n)
{
	char tmp[32];
	int neg = n < 0;
	unsigned long long u = neg ? (unsigned long long)(-(n + 1)) + 1 : (unsigned long long)n;
	int l = snprintf(tmp, sizeof tmp, "%llu", u);
	size_t o = 0;
	if (neg && o + 1 < len)
		buf[o++] = '-';
	for (int i = 0; i < l && o + 1 < len; i++) {
		if (i && (l - i) % 3 == 0 && o + 1 < len)
			buf[o++] = ',';
		buf[o++] = tmp[i];
	}
	buf[o] = '\0';
	return buf;
}

const char *cli_duration(char *buf, size_t len, int64_t ms)
{
	int64_t s = ms / 1000;
	if (s < 60)
		snprintf(buf, len, "%llds", (long long)s);
	else if (s < 3600)
		snprintf(buf, len, "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
	else if (s < 86400)
		snprintf(buf, len, "%lldh%02lldm", (long long)(s / 3600), (long long)(s % 3600 / 60));
	else
		snprintf(buf, len, "%lldd%02lldh", (long long)(s / 86400), (long long)(s % 86400 / 3600));
	return buf;
}

const char *cli_bytes(char *buf, size_t len, int64_t b)
{
	if (b < 1024)
		snprintf(buf, len, "%lld B", (long long)b);
	else if (b < 1024 * 1024)
		snprintf(buf, len, "%.1f KiB", b / 1024.0);
	else if (b < 1024LL * 1024 * 1024)
		snprintf(buf, len, "%.1f MiB", b / (1024.0 * 1024));
	else
		snprintf(buf, len, "%.2f GiB", b / (1024.0 * 1024 * 1024));
	return buf;
}

static void print_main_usage(FILE *fp)
{
	fputs(main_usage, fp);
	for (const struct command *c = cli_commands; c->name; c++)
		fprintf(fp, "  %-10s %s\n", c->name, c->summary);
	fputs("\nexit codes follow sysexits(3): 0 ok, 64 usage, 65 bad input, 66 no input,\n"
	      "69 unavailable, 74 I/O error or outbox damaged, 75 temporary failure,\n"
	      "78 configuration error; and 79 import stopped part-way.\n",
	      fp);
}

int main(int argc, char **argv)
{
	struct cli cli = {.prog = "pobox"};
	const char *db = NULL;
	int explicit_config = 0, i, rc;
	char err[POBOX_ERRLEN];

	/* glibc hands the top of the heap back to the kernel whenever 128 KB
	 * of it is free, and SQLite's B-tree balancing and the single lane's
	 * groups free that much many times a second: 50,000 single calls cost
	 * ~3,000 brk calls and ~5,000 page faults refilling the same pages -
	 * on a VM, where both are dear, 14% of pobox's CPU (single_bench).
	 * Keep up to 8 MB of free heap instead; blocks over 1 MB still get
	 * their own mapping and go back at once.  Only the CLI decides this:
	 * the library leaves its host's allocator alone. */
	mallopt(M_TRIM_THRESHOLD, 8 << 20);
	mallopt(M_TOP_PAD, 1 << 20);
	mallopt(M_MMAP_THRESHOLD, 1 << 20);
	pobox_config_init(&cli.cfg);
	cli.config_path = POBOX_DEFAULT_CONFIG;
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			print_main_usage(stdout);
			return EXIT_OK;
		} else if (strcmp(a, "--version") == 0) {
			printf("pobox %s\n", POBOX_VERSION);
			return EXIT_OK;
		} else if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
			if (++i == argc) {
				cli_error("%s needs a file name", a);
				return EXIT_USAGE;
			}
			cli.config_path = argv[i];
			explicit_config = 1;
		} else if (strncmp(a, "--config=", 9) == 0) {
			cli.config_path = a + 9;
			explicit_config = 1;
		} else if (strcmp(a, "--db") == 0) {
			if (++i == argc) {
				cli_error("--db needs a path");
				return EXIT_USAGE;
			}
			db = argv[i];
		} else if (strncmp(a, "--db=", 5) == 0) {
			db = a + 5;
		} else {
			cli_error("unknown option '%s' (global options come before the command; see "
			          "pobox --help)", a);
			return EXIT_USAGE;
		}
	}
	if (i == argc) {
		print_main_usage(stderr);
		return EXIT_USAGE;
	}
	const struct command *cmd = cli_find(argv[i]);
	if (!cmd && strcmp(argv[i], "help") == 0) {
		if (i + 1 < argc && (cmd = cli_find(argv[i + 1])) != NULL) {
			cli_usage(cmd, stdout);
			return EXIT_OK;
		}
		print_main_usage(stdout);
		return EXIT_OK;
	}
	if (!cmd) {
		cli_error("unknown command '%s'; commands are listed by pobox --help", argv[i]);
		return EXIT_USAGE;
	}
	/* `pobox CMD --help` works without a config or an outbox. */
	for (int j = i + 1; j < argc; j++) {
		if (strcmp(argv[j], "--") == 0)
			break;
		if (strcmp(argv[j], "--help") == 0 || strcmp(argv[j], "-h") == 0) {
			cli_usage(cmd, stdout);
			return EXIT_OK;
		}
	}
	if ((rc = pobox_config_load(&cli.cfg, cli.config_path, explicit_config, err, sizeof err)) != 0) {
		cli_error("%s", err);
		pobox_config_free(&cli.cfg);
		return EXIT_CONFIG;
	}
	if (db && pobox_config_set(&cli.cfg, "db", db, err, sizeof err) != 0) {
		cli_error("%s", err);
		pobox_config_free(&cli.cfg);
		return EXIT_CONFIG;
	}
	if (cli.cfg.log_level) {
		static const char *const levels[] = {"error", "warn", "info", "debug"};
		int l = -1;
		for (int k = 0; k < 4; k++)
			if (strcmp(cli.cfg.log_level, levels[k]) == 0)
				l = k;
		if (l < 0) {
			cli_error("log_level = '%s': expected error, warn, info or debug", cli.cfg.log_level);
			pobox_config_free(&cli.cfg);
			return EXIT_CONFIG;
		}
		pobox_log_set_level((enum pobox_log_level)l);
	}
	rc = cmd->run(&cli, argc - i, argv + i);
	pobox_config_free(&cli.cfg);
	return rc;
}
