/*
 * fuzz_import - libFuzzer harness for `pobox import` (src/import.c over
 * src/csvio.c): arbitrary bytes as the input file, into a fresh outbox.
 *
 * The first two input bytes choose the options (reject file, id type
 * override, --id-column id, --changed-only, urgent, rows per transaction,
 * max_value_chars, a max_outbox_size that fills up part way); the rest is the
 * CSV file, read through a FILE like any other.  Each input gets a fresh
 * outbox: a copy of a template made once on tmpfs ($TMPDIR or /dev/shm),
 * opened with synchronous=OFF, so an execution costs an open, not a schema
 * migration.  The template holds a little delivered history (profiles x,
 * c1, y and pcId 1234-5678.28_0) for --changed-only to compare with.
 *
 * Properties: the result is 0 or a documented stop (bad input, full outbox)
 * with a message; the summary is consistent (rejects <= rows); what the
 * outbox holds afterwards is exactly summary.updates new updates, none empty;
 * the reject file, read back with the project's own CSV reader, is a header
 * plus one row per rejected row, each naming a line the input has; nothing
 * leaks.
 */
#include "csvio.h"
#include "fuzz_check.h"
#include "import.h"
#include "outbox.h"
#include "pobox.h"
#include "store.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256], db_path[300], wal_path[310], shm_path[310];
static char *template_bytes;
static size_t template_len;

static void remove_dir(void)
{
	unlink(db_path);
	unlink(wal_path);
	unlink(shm_path);
	rmdir(dir);
	free(template_bytes);
}

static int64_t template_updates; /* updates already in the template */
static int64_t template_waiting; /* ... of them not delivered (a full outbox may prune the rest) */

/* Delivered history for --changed-only to compare with: values the seeds
 * use, put and then marked delivered the way a batch's completion does
 * (done_seq), plus one pruned value kept only in profile_state. */
static void deliver_some(struct pobox *pb)
{
	static const struct {
		enum pobox_id_type t;
		const char *id, *attr, *value;
	} ups[] = {
		{POBOX_ID_THIRDPARTY, "x", "a", "1"},
		{POBOX_ID_THIRDPARTY, "c1", "tier", "gold"},
		{POBOX_ID_THIRDPARTY, "c1", "points", "10"},
		{POBOX_ID_PCID, "1234-5678.28_0", "level", "3"},
		{POBOX_ID_THIRDPARTY, "y", "a", "2"},
	};
	for (size_t i = 0; i < sizeof ups / sizeof ups[0]; i++) {
		struct pobox_update u = {ups[i].t, ups[i].id, ups[i].attr, ups[i].value, 0, NULL};
		FUZZ_CHECK(pobox_put(pb, &u) == 0);
	}
	/* everything delivered (counts kept true: tallies), then y's history
	 * pruned into its folded last values */
	FUZZ_CHECK(pobox_store_exec(pb->st,
	                            "UPDATE profiles SET done_seq = (SELECT next_seq - 1 FROM tallies);"
	                            "UPDATE tallies SET delivered = pending, pending = 0,"
	                            " cut_seq = next_seq - 1, oldest_pending_ms = NULL;"
	                            "INSERT INTO sent (profile, cells) SELECT c.profile,"
	                            " json_group_array(json_array(c.attr, c.value, c.seq, 0)) FROM v_cells c"
	                            " JOIN profiles p ON p.id = c.profile WHERE p.profile_id = 'y'"
	                            " GROUP BY c.profile;"
	                            "UPDATE profiles SET sent_seq = done_seq WHERE profile_id = 'y';"
	                            "UPDATE tallies SET delivered = delivered - (SELECT count(*) FROM v_cells c"
	                            " JOIN profiles p ON p.id = c.profile WHERE p.profile_id = 'y');"
	                            "DELETE FROM writes WHERE profile = (SELECT id FROM profiles"
	                            " WHERE profile_id = 'y')") == 0);
	FUZZ_CHECK(pobox_store_query_int64(pb->st, "SELECT count(*) FROM v_updates", &template_updates) == 0);
	FUZZ_CHECK(pobox_store_query_int64(pb->st, "SELECT count(*) FROM v_updates WHERE state <> 'delivered'",
	                                   &template_waiting) == 0);
}

/* Makes the template outbox once and keeps its bytes. */
static void setup(void)
{
	const char *tmp = getenv("TMPDIR");
	struct stat st;
	if (!tmp || !*tmp)
		tmp = stat("/dev/shm", &st) == 0 ? "/dev/shm" : "/tmp";
	snprintf(dir, sizeof dir, "%s/pobox-fuzz-import-XXXXXX", tmp);
	FUZZ_CHECK(mkdtemp(dir) != NULL);
	snprintf(db_path, sizeof db_path, "%s/o.db", dir);
	snprintf(wal_path, sizeof wal_path, "%s-wal", db_path);
	snprintf(shm_path, sizeof shm_path, "%s-shm", db_path);
	atexit(remove_dir);

	struct pobox *pb = NULL;
	struct pobox_options o;
	char err[512];
	pobox_options_init(&o);
	o.synchronous = POBOX_SYNC_OFF;
	FUZZ_CHECK(pobox_open(&pb, db_path, &o, err, sizeof err) == 0);
	deliver_some(pb);
	pobox_close(pb);
	FILE *f = fopen(db_path, "rb");
	FUZZ_CHECK(f && fseek(f, 0, SEEK_END) == 0);
	template_len = (size_t)ftell(f);
	rewind(f);
	template_bytes = malloc(template_len);
	FUZZ_CHECK(template_bytes && fread(template_bytes, 1, template_len, f) == template_len);
	fclose(f);
	unlink(wal_path);
	unlink(shm_path);
}

static void fresh_outbox(void)
{
	unlink(wal_path);
	unlink(shm_path);
	int fd = open(db_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	FUZZ_CHECK(fd >= 0);
	FUZZ_CHECK(write(fd, template_bytes, template_len) == (ssize_t)template_len);
	close(fd);
}

static int64_t query_int(struct pobox *pb, const char *sql)
{
	int64_t v = -1;
	FUZZ_CHECK(pobox_store_query_int64(pb->st, sql, &v) == 0);
	return v;
}

/* What the outbox holds, by SQL of our own (through the handle's
 * connection: a second one would parse the whole schema again, doubling
 * the cost of an execution). */
static void check_stored(struct pobox *pb, const struct pobox_import_summary *sum)
{
	/* nothing accepted is lost; delivered history may go to make room
	 * (max_outbox_size), the last value sent stays in `sent` */
	FUZZ_CHECK(query_int(pb, "SELECT count(*) FROM v_updates WHERE state <> 'delivered'") ==
	           template_waiting + sum->updates);
	FUZZ_CHECK(query_int(pb, "SELECT count(*) FROM v_updates") <= template_updates + sum->updates);
	FUZZ_CHECK(query_int(pb, "SELECT count(*) FROM v_profile_state") >= 1);
	FUZZ_CHECK(query_int(pb, "SELECT count(*) FROM v_updates WHERE length(CAST(value AS BLOB)) = 0 "
	                         "OR length(CAST(profile_id AS BLOB)) = 0") == 0);
}

struct rejects {
	int64_t rows;
	int64_t max_line;
};

static int on_reject_row(void *ctx, const struct pobox_csv_row *row)
{
	struct rejects *r = ctx;
	FUZZ_CHECK(row->nfields >= 3);
	if (r->rows++ == 0) {
		FUZZ_CHECK(strcmp(row->fields[0], "line") == 0 && strcmp(row->fields[1], "reason") == 0);
		return 0;
	}
	char *end;
	long long line = strtoll(row->fields[0], &end, 10);
	FUZZ_CHECK(*end == '\0' && line >= 2 && line <= r->max_line);
	FUZZ_CHECK(row->lens[1] > 0);
	return 0;
}

static void check_rejects(const char *buf, size_t len, const struct pobox_import_summary *sum,
                          int64_t lines)
{
	struct rejects r = {0, lines};
	char err[512];
	if (len == 0) {
		FUZZ_CHECK(sum->rejected == 0);
		return;
	}
	FILE *f = fmemopen((void *)buf, len, "rb");
	FUZZ_CHECK(f != NULL);
	int rc = pobox_csv_read(f, "rejects", on_reject_row, &r, err, sizeof err);
	fclose(f);
	/* The one known exception: a row (or header) within 2 fields of the
	 * reader's field limit is more than the limit with line and reason in
	 * front of it. */
	if (rc == POBOX_EINVALID && strstr(err, "fields in one row"))
		return;
	if (rc != 0)
		fprintf(stderr, "reading the reject file back: %s\n", err);
	FUZZ_CHECK(rc == 0);
	FUZZ_CHECK(r.rows == 1 + sum->rejected);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	if (size < 2)
		return 0;
	if (!template_bytes)
		setup();
	unsigned char b0 = data[0], b1 = data[1];
	const unsigned char *csv = data + 2;
	size_t len = size - 2;
	/* lines the file has, ending in LF, CRLF or a lone CR */
	int64_t lines = 1;
	for (size_t i = 0; i < len; i++)
		lines += csv[i] == '\n' || (csv[i] == '\r' && (i + 1 == len || csv[i + 1] != '\n'));

	fresh_outbox();
	struct pobox *pb = NULL;
	struct pobox_options po;
	char err[512];
	pobox_options_init(&po);
	po.synchronous = POBOX_SYNC_OFF;
	po.min_free_bytes = 0;
	if (b1 & 0x80)
		po.max_value_chars = 1 + (b1 & 7);
	if (b1 & 0x40)
		po.max_outbox_bytes = (int64_t)template_len + (int64_t)((b1 >> 3) & 7) * 4096;
	FUZZ_CHECK(pobox_open(&pb, db_path, &po, err, sizeof err) == 0);

	char *rej_buf = NULL;
	size_t rej_len = 0;
	struct pobox_import_opts o = {0};
	o.reject = (b0 & 1) ? open_memstream(&rej_buf, &rej_len) : NULL;
	o.have_id_type = (b0 >> 1) & 1;
	o.id_type = (b0 & 4) ? POBOX_ID_PCID : POBOX_ID_THIRDPARTY;
	o.changed_only = (b0 >> 3) & 1;
	o.urgent = (b0 >> 4) & 1;
	o.id_column = (b0 & 0x20) ? "id" : NULL;
	o.rows_per_tx = (b0 >> 6) & 3;
	o.source = (b1 & 1) ? "fuzz" : NULL;
	o.total_bytes = (int64_t)len;

	/* fmemopen refuses a zero-length buffer; an empty file it is then. */
	FILE *in = len ? fmemopen((void *)csv, len, "rb") : fopen("/dev/null", "rb");
	FUZZ_CHECK(in != NULL);
	struct pobox_import_summary sum;
	memset(&sum, 0xa5, sizeof sum);
	int rc = pobox_import(pb, in, "fuzz.csv", &o, &sum);
	fclose(in);
	if (rc != 0) {
		FUZZ_CHECK(rc == POBOX_EINVALID || rc == POBOX_EFULL);
		FUZZ_CHECK(pobox_errmsg(pb)[0] != '\0');
	}
	FUZZ_CHECK(sum.rows >= 0 && sum.updates >= 0 && sum.empty >= 0 && sum.unchanged >= 0);
	FUZZ_CHECK(sum.rejected >= 0 && sum.rejected <= sum.rows);
	FUZZ_CHECK(sum.rows <= lines);
	FUZZ_CHECK(o.changed_only || sum.unchanged == 0);
	if (getenv("POBOX_FUZZ_VERBOSE"))
		fprintf(stderr, "import: rc %d, rows %lld, updates %lld, empty %lld, rejected %lld, "
		        "unchanged %lld: %s\n", rc, (long long)sum.rows, (long long)sum.updates,
		        (long long)sum.empty, (long long)sum.rejected, (long long)sum.unchanged,
		        pobox_errmsg(pb));
	check_stored(pb, &sum);
	pobox_close(pb);
	if (o.reject) {
		fclose(o.reject);
		check_rejects(rej_buf, rej_len, &sum, lines);
		free(rej_buf);
	}
	return 0;
}
