/*
 * cmd_import.c - `pobox import FILE|- [...]`: the CLI face of import.c.
 *
 * Adds what only a terminal user needs: progress on stderr when stderr is a
 * terminal (rows/s, percent when the size is known), the first rejects shown
 * on stderr, and the summary line.
 */
#include "cli.h"
#include "import.h"

#include <errno.h>
#include <getopt.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SHOW_REJECTS 10

struct ui {
	const char *name;
	int64_t shown;
	int progress_drawn;
};

static void progress(void *ctx, int64_t rows, int64_t bytes, int64_t total, int64_t elapsed_ms)
{
	struct ui *ui = ctx;
	char r[32], rate[32];
	if (bytes < 0) { /* finished: clear the line */
		if (ui->progress_drawn)
			fputs("\r\033[K", stderr);
		return;
	}
	cli_num(r, sizeof r, rows);
	cli_num(rate, sizeof rate, elapsed_ms > 0 ? rows * 1000 / elapsed_ms : 0);
	if (total > 0)
		fprintf(stderr, "\r\033[Kimport %s: %s rows (%d%%), %s rows/s", ui->name, r,
		        (int)(bytes * 100 / total), rate);
	else
		fprintf(stderr, "\r\033[Kimport %s: %s rows, %s rows/s", ui->name, r, rate);
	ui->progress_drawn = 1;
}

static void on_reject(void *ctx, int64_t line, const char *reason)
{
	struct ui *ui = ctx;
	if (ui->shown++ < SHOW_REJECTS) {
		if (ui->progress_drawn)
			fputs("\r\033[K", stderr);
		fprintf(stderr, "pobox: %s:%lld: rejected: %s\n", ui->name, (long long)line, reason);
	}
}

/* The summary line (what was committed, where it stopped) and how to resume. */
static void summarize(const struct ui *ui, const struct pobox_import_opts *o,
                      const struct pobox_import_summary *sum, int rc, const char *path,
                      const char *reject_path, int from_stdin)
{
	char n1[32], n2[32], n3[32], n4[32];

	if (ui->shown > SHOW_REJECTS)
		fprintf(stderr, "pobox: %s: %lld more rejected rows not shown\n", ui->name,
		        (long long)(ui->shown - SHOW_REJECTS));
	printf("import %s: %s rows read, %s updates enqueued, %s empty cells skipped, %s rows "
	       "rejected",
	       ui->name, cli_num(n1, sizeof n1, sum->rows), cli_num(n2, sizeof n2, sum->updates),
	       cli_num(n3, sizeof n3, sum->empty), cli_num(n4, sizeof n4, sum->rejected));
	if (o->changed_only)
		printf(", %s unchanged values skipped", cli_num(n1, sizeof n1, sum->unchanged));
	if (sum->rejected && reject_path)
		printf(" (written to %s)", reject_path);
	else if (sum->rejected)
		printf(" (pass --reject-file PATH to keep them)");
	if (rc != 0 && sum->stopped_line)
		printf("; stopped at line %s: the rows before it are in the outbox, none from it on",
		       cli_num(n1, sizeof n1, sum->stopped_line));
	else if (rc != 0)
		printf("; nothing imported");
	putchar('\n');
	if (rc != 0 && sum->stopped_line > 2 && !from_stdin)
		fprintf(stderr, "pobox: import: to go on from line %lld once the cause is fixed: "
		        "(head -n 1 %s; tail -n +%lld %s) | pobox import - (importing the whole file "
		        "again is harmless too)\n",
		        (long long)sum->stopped_line, path, (long long)sum->stopped_line, path);
}

int cmd_import(struct cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{"id-column", required_argument, NULL, 'c'},
		{"id-type", required_argument, NULL, 't'},
		{"reject-file", required_argument, NULL, 'r'},
		{"source", required_argument, NULL, 's'},
		{"urgent", no_argument, NULL, 'u'},
		{"changed-only", no_argument, NULL, 'C'},
		{NULL, 0, NULL, 0},
	};
	struct pobox_import_opts o = {0};
	struct pobox_import_summary sum = {0};
	const char *reject_path = NULL, *path;
	char source[512], err[256];
	struct ui ui = {0};
	FILE *in = NULL, *rej = NULL;
	struct pobox *pb = NULL;
	int c, rc, code = EXIT_OK;

	optind = 0;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'c': o.id_column = optarg; break;
		case 't':
			if (pobox_id_type_parse(optarg, &o.id_type, err, sizeof err) != 0) {
				cli_error("import: --id-type: %s", err);
				return EXIT_USAGE;
			}
			o.have_id_type = 1;
			break;
		case 'r': reject_path = optarg; break;
		case 's': o.source = optarg; break;
		case 'u': o.urgent = 1; break;
		case 'C': o.changed_only = 1; break;
		default: cli_usage(cli_find("import"), stderr); return EXIT_USAGE;
		}
	}
	if (argc - optind != 1) {
		cli_error("import: give exactly one FILE (or - for standard input)");
		return EXIT_USAGE;
	}
	path = argv[optind];
	if (strcmp(path, "-") == 0) {
		in = stdin;
		ui.name = "stdin";
	} else {
		struct stat sb;
		if (!(in = fopen(path, "rb"))) {
			cli_error("import: cannot open %s: %s", path, strerror(errno));
			return errno == ENOENT ? EXIT_NOINPUT : EXIT_IOERR;
		}
		if (fstat(fileno(in), &sb) == 0 && S_ISREG(sb.st_mode))
			o.total_bytes = sb.st_size;
		ui.name = path;
	}
	if (!o.source) {
		snprintf(source, sizeof source, "import:%s", ui.name);
		o.source = source;
	}
	if (reject_path) {
		if ((code = cli_check_output(cli, reject_path, "import: --reject-file",
		                             in == stdin ? NULL : path, fileno(in))) != EXIT_OK)
			goto out;
		if (!(rej = fopen(reject_path, "w"))) {
			cli_error("import: cannot create reject file %s: %s", reject_path, strerror(errno));
			code = EXIT_CANTCREAT;
			goto out;
		}
		o.reject = rej;
	}
	if (isatty(STDERR_FILENO)) {
		o.progress = progress;
		o.progress_ctx = &ui;
	}
	o.on_reject = on_reject;
	o.reject_ctx = &ui;
	if (!(pb = cli_open(cli, 0, &code)))
		goto out;
	rc = pobox_import(pb, in, ui.name, &o, &sum);
	if (rc != 0) {
		cli_error("import: %s", pobox_errmsg(pb));
		/* refused before reading (full, busy): as for put; stopped part-way:
		 * its own code, so no script mistakes it for "some rows rejected" */
		code = sum.stopped_line ? EXIT_IMPORT_STOPPED : cli_exit_code(rc);
	}
	summarize(&ui, &o, &sum, rc, path, reject_path, in == stdin);
	if (rc == 0 && sum.rejected)
		code = EXIT_DATAERR;
out:
	if (rej && fclose(rej) != 0) {
		cli_error("import: writing reject file %s: %s", reject_path, strerror(errno));
		if (code == EXIT_OK || code == EXIT_DATAERR)
			code = EXIT_IOERR;
	}
	if (in && in != stdin)
		fclose(in);
	pobox_close(pb);
	return code;
}
