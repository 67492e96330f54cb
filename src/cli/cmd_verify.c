/*
 * cmd_verify.c - `pobox verify [--sample N | --all] [--batch ID] [--id TYPE:ID]
 *                [--since DUR] [--rate R] [--grace DUR] [--json]`
 *
 * The CLI face of verify.h: options, the summary and the list of what
 * differs, the exit code, and the record of the run in the outbox (which
 * `status --prometheus` and the metrics file show: when metrics_file is
 * set, verify rewrites it at once, so that a nightly job without `pobox
 * run` still exports its figures).  On a terminal it shows how far it has
 * got on stderr.
 */
#include "alloc.h"
#include "cli.h"
#include "credentials.h"
#include "deliver.h"
#include "metrics.h"
#include "outbox.h"
#include "quota.h"
#include "verify.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SHOW_FINDINGS 50

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) { stop_signal = sig; }

static int stop_wanted(void *ctx)
{
	(void)ctx;
	return stop_signal != 0;
}

struct ui {
	int tty;
	int drawn;
};

static void progress(void *ctx, int64_t done, int64_t total)
{
	struct ui *ui = ctx;
	if (!ui->tty)
		return;
	fprintf(stderr, "\r\033[Kverify: %lld of %lld profiles fetched", (long long)done,
	        (long long)total);
	ui->drawn = 1;
}

struct args {
	struct pobox_verify_sel sel;
	const char *id_arg;       /* TYPE:ID */
	enum pobox_id_type id_type;
	const char *profile_id;
	int all, json, sample_given;
	char selection[256];
};

/* Appends one option to the run's selection text. */
static void note(struct args *a, const char *opt, const char *val)
{
	size_t n = strlen(a->selection);
	snprintf(a->selection + n, sizeof a->selection - n, "%s%s%s%s", n ? " " : "", opt,
	         val ? " " : "", val ? val : "");
}

static int parse_int(const char *s, int64_t *out)
{
	char *end;
	long long v = strtoll(s, &end, 10);
	if (end == s || *end || v < 0)
		return -1;
	*out = v;
	return 0;
}

/* The options; EXIT_OK or the exit code after saying what is wrong. */
static int parse(struct cli *cli, int argc, char **argv, struct args *a)
{
	static const struct option opts[] = {
		{"sample", required_argument, NULL, 'n'}, {"all", no_argument, NULL, 'a'},
		{"batch", required_argument, NULL, 'b'},  {"id", required_argument, NULL, 'i'},
		{"since", required_argument, NULL, 's'},  {"rate", required_argument, NULL, 'r'},
		{"grace", required_argument, NULL, 'g'},  {"json", no_argument, NULL, 'j'},
		{NULL, 0, NULL, 0},
	};
	char err[POBOX_ERRLEN];
	int c;
	optind = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			if (parse_int(optarg, &a->sel.sample) != 0 || a->sel.sample < 1) {
				cli_error("verify: --sample '%s': give how many profiles to fetch, 1 or more "
				          "(or --all for every one selected)", optarg);
				return EXIT_USAGE;
			}
			a->sample_given = 1;
			note(a, "--sample", optarg);
			break;
		case 'a': a->all = 1; note(a, "--all", NULL); break;
		case 'b':
			if (parse_int(optarg, &a->sel.batch) != 0 || a->sel.batch < 1) {
				cli_error("verify: --batch '%s' is not a batch id (pobox batches lists them)",
				          optarg);
				return EXIT_USAGE;
			}
			note(a, "--batch", optarg);
			break;
		case 'i': a->id_arg = optarg; note(a, "--id", optarg); break;
		case 's':
			if (pobox_parse_duration_ms(optarg, &a->sel.since_ms) != 0 || a->sel.since_ms <= 0) {
				cli_error("verify: --since '%s' is not a duration like 30m, 24h, 7d", optarg);
				return EXIT_USAGE;
			}
			note(a, "--since", optarg);
			break;
		case 'r':
		case 'g':
			if (pobox_config_set(&cli->cfg, c == 'r' ? "verify_rate" : "verify_grace", optarg, err,
			                     sizeof err) != 0) {
				cli_error("verify: --%s: %s", c == 'r' ? "rate" : "grace", err);
				return EXIT_USAGE;
			}
			note(a, c == 'r' ? "--rate" : "--grace", optarg);
			break;
		case 'j': a->json = 1; break;
		default: cli_usage(cli_find("verify"), stderr); return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		cli_error("verify: unexpected argument '%s'", argv[optind]);
		return EXIT_USAGE;
	}
	if (a->all && a->sample_given) {
		cli_error("verify: --sample and --all exclude each other");
		return EXIT_USAGE;
	}
	if (a->id_arg && (a->sel.batch || a->sel.since_ms || a->all || a->sample_given)) {
		cli_error("verify: --id names one profile: it goes with none of --batch, --since, "
		          "--sample, --all");
		return EXIT_USAGE;
	}
	if (a->id_arg) {
		char *colon = strchr(a->id_arg, ':');
		if (!colon || colon == a->id_arg || !colon[1]) {
			cli_error("verify: --id '%s' is not TYPE:ID; write e.g. thirdPartyId:crm-42",
			          a->id_arg);
			return EXIT_USAGE;
		}
		*colon = '\0';
		if (pobox_id_type_parse(a->id_arg, &a->id_type, err, sizeof err) != 0) {
			cli_error("verify: --id: %s", err);
			return EXIT_USAGE;
		}
		a->profile_id = colon + 1;
	}
	if (!a->all && !a->sample_given && !a->id_arg)
		a->sel.sample = cli->cfg.verify_sample;
	if (a->all || a->id_arg)
		a->sel.sample = 0;
	if (!a->selection[0])
		snprintf(a->selection, sizeof a->selection, "--sample %lld (verify_sample)",
		         (long long)a->sel.sample);
	return EXIT_OK;
}

static const char *const class_label[POBOX_VC_COUNT] = {
	"matching", "not yet applied", "different", "missing",
};

static void print_quoted(const char *s, size_t len)
{
	putchar('"');
	for (size_t i = 0; i < len && i < 80; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			printf("\\x%02x", ch);
		else
			putchar(ch);
	}
	fputs(len > 80 ? "\"..." : "\"", stdout);
}

static void print_finding(const struct pobox_verify_finding *f, int64_t now)
{
	char a[32], b[32];
	printf("  %s:%s %s: sent ", f->id_type == POBOX_ID_PCID ? "pcId" : "thirdPartyId",
	       f->profile_id, f->attr);
	print_quoted(f->sent, f->sent_len);
	printf(" %s ago%s; ", cli_duration(a, sizeof a, now - f->sent_at_ms),
	       f->in_flight ? " (batch not complete yet)" : "");
	if (strcmp(f->why, "no_profile") == 0) {
		printf("Target has no such profile\n");
		return;
	}
	if (!f->target) {
		printf("Target has no such attribute\n");
		return;
	}
	printf("Target has ");
	print_quoted(f->target, f->target_len);
	if (f->target_modified_at_ms >= 0)
		printf(", modified %s ago", cli_duration(b, sizeof b, now - f->target_modified_at_ms));
	if (strcmp(f->why, "another_writer") == 0)
		printf(": another writer, after pobox's delivery\n");
	else
		printf(": still an older value past the grace (a lost v2 override, or never applied)\n");
}

static void print_summary(const struct args *a, const struct pobox_verify_result *r, double rate)
{
	const struct pobox_verify_record *rec = &r->rec;
	int64_t total = 0, now = rec->finished_at_ms;
	char x[32], y[32], z[32];
	for (int c = 0; c < POBOX_VC_COUNT; c++)
		total += rec->count[c];
	printf("verify: %s profiles compared", cli_num(x, sizeof x, rec->profiles));
	if (a->sel.sample > 0 && rec->population > a->sel.sample)
		printf(" (a sample of %lld among %s sent to Target)", (long long)a->sel.sample,
		       cli_num(y, sizeof y, rec->population));
	else
		printf(" (of %s selected)", cli_num(y, sizeof y, rec->population));
	printf(", %s attributes, in %s at %g fetches/s\n", cli_num(z, sizeof z, total),
	       cli_duration(x, sizeof x, rec->finished_at_ms - rec->started_at_ms), rate);
	for (int c = 0; c < POBOX_VC_COUNT; c++) {
		printf("  %-16s %8s %6.1f%%", class_label[c], cli_num(x, sizeof x, rec->count[c]),
		       total ? 100.0 * (double)rec->count[c] / (double)total : 0.0);
		if (rec->count[c]) {
			cli_duration(y, sizeof y, rec->min_age_ms[c]);
			cli_duration(z, sizeof z, rec->max_age_ms[c]);
			if (strcmp(y, z) == 0)
				printf("   sent %s ago", y);
			else
				printf("   sent %s to %s ago", y, z);
		}
		if (c == POBOX_VC_NOT_YET_APPLIED)
			printf("%s(grace %s)", rec->count[c] ? " " : "   ",
			       cli_duration(x, sizeof x, rec->grace_ms));
		putchar('\n');
	}
	int64_t shown = 0, listed = rec->count[POBOX_VC_DIFFERENT] + rec->count[POBOX_VC_MISSING];
	if (listed)
		printf("what differs (%s):\n", cli_num(x, sizeof x, listed));
	for (size_t i = 0; i < r->nf && shown < SHOW_FINDINGS; i++) {
		if (r->f[i].cls == POBOX_VC_DIFFERENT || r->f[i].cls == POBOX_VC_MISSING) {
			print_finding(&r->f[i], now);
			shown++;
		}
	}
	if (listed > shown)
		printf("  ... and %s more: pobox verify --json, or sqlite3 the outbox: SELECT * FROM "
		       "v_verify_findings WHERE verification = %lld\n",
		       cli_num(x, sizeof x, listed - shown), (long long)rec->id);
}

/* The verdict: 65 when anything differs past the grace, else 69 when
 * Target refused us, 75 when the run is incomplete, 0. */
static int verdict(const struct pobox_verify_result *r)
{
	const struct pobox_verify_record *rec = &r->rec;
	if (rec->count[POBOX_VC_DIFFERENT] || rec->count[POBOX_VC_MISSING])
		return EXIT_DATAERR;
	if (r->refused || r->unusable)
		return EXIT_UNAVAILABLE;
	if (r->unreachable || rec->interrupted || rec->fetch_errors)
		return EXIT_TEMPFAIL;
	return EXIT_OK;
}

/* The closing lines: on stderr what went wrong, on stdout (unless --json,
 * whose stdout is the JSON alone) the verdict. */
static void print_verdict(const struct pobox_verify_result *r, int code, int json)
{
	const struct pobox_verify_record *rec = &r->rec;
	char x[32], y[32];
	int64_t total = 0;
	for (int c = 0; c < POBOX_VC_COUNT; c++)
		total += rec->count[c];
	if (r->error[0] && (r->refused || r->unusable || r->unreachable || rec->fetch_errors))
		cli_error("verify: %s", r->error);
	if (json)
		return;
	if (rec->fetch_errors)
		printf("verify: %s profiles could not be fetched (not counted above)\n",
		       cli_num(x, sizeof x, rec->fetch_errors));
	if (rec->interrupted)
		printf("verify: interrupted; the figures above are for the profiles compared so far\n");
	if (code == EXIT_DATAERR)
		printf("verify: %s of %s attributes differ past the grace\n",
		       cli_num(x, sizeof x, rec->count[POBOX_VC_DIFFERENT] + rec->count[POBOX_VC_MISSING]),
		       cli_num(y, sizeof y, total));
	else if (code == EXIT_OK)
		printf("verify: nothing differs past the grace\n");
}

/* Looks the --id profile up: its id in *out (0: pobox does not know it). */
static int find_profile(struct pobox *pb, const struct args *a, int64_t *out)
{
	struct pobox_profile_ref ref = {0};
	int rc = pobox_store_profile_find(pb->st, a->id_type, a->profile_id, strlen(a->profile_id), &ref);
	*out = ref.id;
	return rc;
}

/* The metrics file, with this run's figures (pobox run rewrites it too,
 * every metrics_interval; the write is atomic). */
static void write_metrics(struct cli *cli, struct pobox *pb)
{
	const struct pobox_config *c = &cli->cfg;
	struct pobox_quota_opts qo;
	cli_quota_opts(c, &qo);
	if (c->metrics_file && pobox_metrics_file(pb, &qo, c->metrics_file) != 0)
		cli_error("verify: metrics_file %s: %s", c->metrics_file, pobox_errmsg(pb));
}

/* Records the run and prints it; returns the exit code. */
static int report(struct cli *cli, struct pobox *pb, struct args *a, struct pobox_verify_result *r, double rate)
{
	int code = verdict(r);
	snprintf(r->rec.selection, sizeof r->rec.selection, "%s", a->selection);
	r->rec.exit_code = code;
	int saved = pobox_store_verify_save(pb->st, &r->rec, r->f, r->nf);
	if (saved != 0)
		cli_error("verify: could not record this verification in the outbox: %s", pobox_errmsg(pb));
	else
		write_metrics(cli, pb);
	if (a->json && saved == 0) {
		char *j = NULL;
		if (pobox_store_verify_json(pb->st, r->rec.id, &j) == 0)
			printf("%s\n", j);
		else
			cli_error("verify: %s", pobox_errmsg(pb));
		pobox_free(j);
	} else if (!a->json && (r->rec.profiles > 0 || !r->error[0])) {
		/* a run Target stopped at once has nothing to sum up: the error says it */
		print_summary(a, r, rate);
	}
	print_verdict(r, code, a->json);
	return code == EXIT_OK && saved != 0 ? EXIT_IOERR : code;
}

static void catch_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal; /* no SA_RESTART: a sleep ends at once */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
}

int cmd_verify(struct cli *cli, int argc, char **argv)
{
	struct args a = {0};
	struct pobox_deliver_opts d;
	struct pobox_cred *cred = NULL;
	struct pobox_verify_result r = {0};
	struct pobox *pb = NULL;
	struct ui ui = {.tty = isatty(STDERR_FILENO)};
	char *base = NULL;
	int code, rc;

	if ((code = parse(cli, argc, argv, &a)) != EXIT_OK)
		return code;
	/* before anything is opened: the file is replaced by rename */
	if (cli->cfg.metrics_file &&
	    (code = cli_check_output(cli, cli->cfg.metrics_file, "metrics_file", NULL, -1)) != EXIT_OK)
		return code;
	if ((code = cli_deliver_opts(cli, &d, &cred)) != EXIT_OK)
		return code;
	if (!(base = pobox_deliver_base_url(&d))) {
		code = EXIT_OSERR;
		goto out;
	}
	if (!(pb = cli_open(cli, CLI_EXISTING, &code)))
		goto out;
	if (a.profile_id) {
		if ((rc = find_profile(pb, &a, &a.sel.profile)) != 0)
			goto fail;
		if (!a.sel.profile) {
			cli_error("verify: %s:%s is not in the outbox: pobox never had an update of it",
			          a.id_type == POBOX_ID_PCID ? "pcId" : "thirdPartyId", a.profile_id);
			code = EXIT_NOINPUT;
			goto out;
		}
	}
	struct pobox_verify_opts o = {
		.sel = a.sel, .grace_ms = cli->cfg.verify_grace_ms, .rate = cli->cfg.verify_rate,
		.base_url = base, .client = d.client, .cred = cred,
		.connect_timeout_ms = d.connect_timeout_ms, .request_timeout_ms = d.request_timeout_ms,
		.verify_tls = d.verify_tls, .stop = stop_wanted, .progress = progress, .ctx = &ui,
	};
	o.sel.seed = cli->cfg.seed ? (uint64_t)cli->cfg.seed
	                           : (uint64_t)pobox_clock_now_ms(&pb->clock) ^ ((uint64_t)getpid() << 32);
	catch_signals();
	rc = pobox_verify_run(pb, &o, &r);
	if (ui.drawn)
		fputs("\r\033[K", stderr);
	if (rc != 0)
		goto fail;
	if (r.rec.population == 0) {
		if (a.profile_id) {
			cli_error("verify: nothing of %s:%s has reached Target yet",
			          a.id_type == POBOX_ID_PCID ? "pcId" : "thirdPartyId", a.profile_id);
			code = EXIT_NOINPUT;
		} else {
			printf("verify: nothing to verify: no profile %s\n",
			       a.sel.batch ? "of that batch has reached Target"
			       : a.sel.since_ms ? "was sent to Target in that time"
			                        : "has been sent to Target yet");
			code = EXIT_OK;
		}
		goto out;
	}
	code = report(cli, pb, &a, &r, cli->cfg.verify_rate);
	goto out;
fail:
	cli_error("verify: %s", pobox_errmsg(pb));
	/* 65 is the verdict "differs": a selection that cannot be verified
	 * (a batch Target never took) is a usage error */
	code = rc == POBOX_EINVALID ? EXIT_USAGE : cli_exit_code(rc);
out:
	pobox_verify_result_free(&r);
	pobox_close(pb);
	pobox_cred_free(cred);
	pobox_free(base);
	return code;
}
