/*
 * pobox-bench-baseline: the yardstick for the import benchmark.
 *
 * It does the least work anyone would do to get a CRM export into SQLite
 * durably: stream the CSV through libcsv (the same parser pobox uses), and for
 * every non-empty attribute cell insert one (id, attr, value) row into a plain
 * table `t` with one index on `id`, through one prepared statement reused for
 * every row, committing every 100,000 rows, in WAL mode with the chosen
 * `PRAGMA synchronous` (FULL by default, as pobox).
 *
 * What it deliberately does not do is everything that makes pobox an outbox:
 * interning ids and attribute names, validating ids and UTF-8, sequence
 * numbers, states, the reject file.  pobox is asked to reach a share of this
 * rate (see tools/bench/README.md), not to match it.
 *
 * To keep the comparison honest in both directions the baseline neither skips
 * pobox's unavoidable work (parsing every byte of CSV, one index maintained
 * during the load, fsync at every commit) nor carries handicaps pobox does not
 * (no per-row transactions, no re-preparing, no journal_mode=DELETE).  Rows
 * whose field count differs from the header are skipped, as pobox rejects
 * them, so both sides insert the same cells.
 *
 * This program owns its database file and nothing else; it does not link
 * libpobox.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <csv.h>
#include <sqlite3.h>

#define DEFAULT_TXN_ROWS 100000
#define READ_CHUNK (64 * 1024)

struct field {
	size_t off, len;
};

/* One CSV record, as offsets into a growable byte buffer. */
struct record {
	char *bytes;
	size_t len, cap;
	struct field *f;
	size_t nfields, fcap;
};

struct loader {
	sqlite3 *db;
	sqlite3_stmt *insert;
	struct record rec;
	char **attr_names; /* header columns after the id, owned */
	size_t ncols;      /* header field count, 0 until the header is read */
	uint64_t txn_rows, in_txn;
	uint64_t inserted, records, skipped;
	int failed; /* set by a callback; parsing stops at the next chunk */
	char err[256];
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
	size_t ncap = *cap ? *cap : 16;
	void *np;

	if (need <= *cap)
		return 0;
	while (ncap < need)
		ncap *= 2;
	np = realloc(*p, ncap * elem);
	if (np == NULL)
		return -1;
	*p = np;
	*cap = ncap;
	return 0;
}

static void fail(struct loader *l, const char *what)
{
	if (!l->failed)
		snprintf(l->err, sizeof(l->err), "%s: %s", what,
			 l->db ? sqlite3_errmsg(l->db) : "out of memory");
	l->failed = 1;
}

static int exec(struct loader *l, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(l->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(l->err, sizeof(l->err), "%s: %s", sql,
			 msg ? msg : sqlite3_errmsg(l->db));
		sqlite3_free(msg);
		l->failed = 1;
		return -1;
	}
	return 0;
}

static void on_field(void *s, size_t len, void *data)
{
	struct loader *l = data;
	struct record *r = &l->rec;

	if (l->failed)
		return;
	if (grow((void **)&r->bytes, &r->cap, r->len + len + 1, 1) < 0 ||
	    grow((void **)&r->f, &r->fcap, r->nfields + 1,
		 sizeof(struct field)) < 0) {
		fail(l, "record buffer");
		return;
	}
	if (len)
		memcpy(r->bytes + r->len, s, len);
	r->f[r->nfields].off = r->len;
	r->f[r->nfields].len = len;
	r->len += len;
	r->nfields++;
}

static void take_header(struct loader *l)
{
	struct record *r = &l->rec;
	size_t i;

	l->ncols = r->nfields;
	if (l->ncols < 2) {
		snprintf(l->err, sizeof(l->err),
			 "header: need an id column and at least one attribute");
		l->failed = 1;
		return;
	}
	l->attr_names = calloc(l->ncols - 1, sizeof(char *));
	if (l->attr_names == NULL) {
		fail(l, "header");
		return;
	}
	for (i = 1; i < l->ncols; i++) {
		char *name = malloc(r->f[i].len + 1);
		if (name == NULL) {
			fail(l, "header");
			return;
		}
		memcpy(name, r->bytes + r->f[i].off, r->f[i].len);
		name[r->f[i].len] = '\0';
		l->attr_names[i - 1] = name;
	}
}

static void on_record(int term, void *data)
{
	struct loader *l = data;
	struct record *r = &l->rec;
	size_t i;

	if (l->failed)
		goto out;
	if (l->ncols == 0) {
		take_header(l);
		goto out;
	}
	l->records++;
	if (r->nfields != l->ncols || r->f[0].len == 0) {
		l->skipped++;
		goto out;
	}
	for (i = 1; i < l->ncols; i++) {
		if (r->f[i].len == 0)
			continue; /* Target ignores empty values; so does pobox */
		/* The record buffer outlives the step, so SQLITE_STATIC is safe. */
		if (sqlite3_bind_text(l->insert, 1, r->bytes + r->f[0].off,
				      (int)r->f[0].len, SQLITE_STATIC) != SQLITE_OK ||
		    sqlite3_bind_text(l->insert, 2, l->attr_names[i - 1], -1,
				      SQLITE_STATIC) != SQLITE_OK ||
		    sqlite3_bind_text(l->insert, 3, r->bytes + r->f[i].off,
				      (int)r->f[i].len, SQLITE_STATIC) != SQLITE_OK ||
		    sqlite3_step(l->insert) != SQLITE_DONE) {
			fail(l, "insert");
			sqlite3_reset(l->insert);
			goto out;
		}
		sqlite3_reset(l->insert);
		l->inserted++;
		if (++l->in_txn == l->txn_rows) {
			if (exec(l, "COMMIT") < 0 || exec(l, "BEGIN") < 0)
				goto out;
			l->in_txn = 0;
		}
	}
out:
	r->len = 0;
	r->nfields = 0;
	(void)term;
}

static int parse_sync(const char *s)
{
	static const char *const names[] = { "OFF", "NORMAL", "FULL", "EXTRA" };
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(s, names[i]) == 0)
			return (int)i;
	return -1;
}

static void usage(FILE *f)
{
	fputs("usage: pobox-bench-baseline [--synchronous OFF|NORMAL|FULL|EXTRA]\n"
	      "                            [--txn-rows N] [--cache-kb N] DB CSV|-\n"
	      "  --synchronous  PRAGMA synchronous (default FULL, as pobox)\n"
	      "  --txn-rows N   inserted rows per transaction (default 100000)\n"
	      "  --cache-kb N   PRAGMA cache_size=-N (default: SQLite's, 2 MB)\n"
	      "  Loads every non-empty attribute cell of CSV into table\n"
	      "  t(id, attr, value) of the new database DB and prints\n"
	      "  rows=N records=N skipped=N seconds=X rows_per_s=X\n",
	      f);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "synchronous", required_argument, NULL, 's' },
		{ "txn-rows", required_argument, NULL, 'n' },
		{ "cache-kb", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct loader l;
	struct csv_parser parser;
	int parser_ready = 0, sync = 2, c, rc = 1;
	long cache_kb = 0; /* 0: SQLite's default page cache */
	const char *db_path, *csv_path;
	char pragma[64], *chunk = NULL;
	FILE *in = NULL;
	double t0, secs;
	size_t i, n;

	memset(&l, 0, sizeof(l));
	l.txn_rows = DEFAULT_TXN_ROWS;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			sync = parse_sync(optarg);
			if (sync < 0) {
				fprintf(stderr, "pobox-bench-baseline: bad "
						"--synchronous '%s'\n", optarg);
				return 64;
			}
			break;
		case 'n': {
			char *end = NULL;
			errno = 0;
			l.txn_rows = strtoull(optarg, &end, 10);
			if (errno || end == optarg || *end || l.txn_rows == 0) {
				fprintf(stderr, "pobox-bench-baseline: bad "
						"--txn-rows '%s'\n", optarg);
				return 64;
			}
			break;
		}
		case 'c': {
			char *end = NULL;
			errno = 0;
			cache_kb = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || cache_kb <= 0) {
				fprintf(stderr, "pobox-bench-baseline: bad "
						"--cache-kb '%s'\n", optarg);
				return 64;
			}
			break;
		}
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 64;
		}
	}
	if (argc - optind != 2) {
		usage(stderr);
		return 64;
	}
	db_path = argv[optind];
	csv_path = argv[optind + 1];

	t0 = now_s();
	if (strcmp(csv_path, "-") == 0) {
		in = stdin;
	} else if ((in = fopen(csv_path, "rb")) == NULL) {
		snprintf(l.err, sizeof(l.err), "%s: %s", csv_path,
			 strerror(errno));
		goto out;
	}
	chunk = malloc(READ_CHUNK);
	if (chunk == NULL) {
		snprintf(l.err, sizeof(l.err), "out of memory");
		goto out;
	}
	if (csv_init(&parser, 0) != 0) {
		snprintf(l.err, sizeof(l.err), "csv_init failed");
		goto out;
	}
	parser_ready = 1;

	if (sqlite3_open_v2(db_path, &l.db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
			    NULL) != SQLITE_OK) {
		fail(&l, db_path);
		goto out;
	}
	snprintf(pragma, sizeof(pragma), "PRAGMA synchronous=%d", sync);
	/* CREATE without IF NOT EXISTS: a reused database would skew the run. */
	if (exec(&l, "PRAGMA journal_mode=WAL") < 0 || exec(&l, pragma) < 0)
		goto out;
	if (cache_kb > 0) {
		/* A negative cache_size is in KiB, not pages. */
		snprintf(pragma, sizeof(pragma), "PRAGMA cache_size=-%ld",
			 cache_kb);
		if (exec(&l, pragma) < 0)
			goto out;
	}
	if (
	    exec(&l, "CREATE TABLE t(id TEXT, attr TEXT, value TEXT)") < 0 ||
	    exec(&l, "CREATE INDEX t_id ON t(id)") < 0)
		goto out;
	if (sqlite3_prepare_v3(l.db, "INSERT INTO t(id, attr, value) "
				     "VALUES (?1, ?2, ?3)",
			       -1, SQLITE_PREPARE_PERSISTENT, &l.insert,
			       NULL) != SQLITE_OK) {
		fail(&l, "prepare");
		goto out;
	}
	if (exec(&l, "BEGIN") < 0)
		goto out;

	while (!l.failed && (n = fread(chunk, 1, READ_CHUNK, in)) > 0) {
		if (csv_parse(&parser, chunk, n, on_field, on_record, &l) != n) {
			snprintf(l.err, sizeof(l.err), "%s: %s", csv_path,
				 csv_strerror(csv_error(&parser)));
			goto out;
		}
	}
	if (ferror(in)) {
		snprintf(l.err, sizeof(l.err), "%s: read error", csv_path);
		goto out;
	}
	if (!l.failed)
		csv_fini(&parser, on_field, on_record, &l);
	if (l.failed || exec(&l, "COMMIT") < 0)
		goto out;
	secs = now_s() - t0;

	printf("rows=%" PRIu64 " records=%" PRIu64 " skipped=%" PRIu64
	       " seconds=%.3f rows_per_s=%.0f\n",
	       l.inserted, l.records, l.skipped, secs,
	       secs > 0 ? (double)l.inserted / secs : 0.0);
	rc = 0;
out:
	if (rc != 0)
		fprintf(stderr, "pobox-bench-baseline: %s\n", l.err);
	sqlite3_finalize(l.insert);
	sqlite3_close(l.db);
	if (parser_ready)
		csv_free(&parser);
	if (in != NULL && in != stdin)
		fclose(in);
	free(chunk);
	if (l.attr_names != NULL)
		for (i = 0; i + 1 < l.ncols; i++)
			free(l.attr_names[i]);
	free(l.attr_names);
	free(l.rec.bytes);
	free(l.rec.f);
	return rc;
}
