/*
 * test_import.c - CSV import: the dialect's edge cases, rejects with exact
 * line numbers, header handling, limits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "import.h"
#include "outbox.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fx {
	char *dir, *db;
	struct pobox *pb;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	if (tu_outbox_open(&f->dir, &f->db, &f->pb) != 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	tu_outbox_close(f->dir, f->db, f->pb);
	free(f);
	return 0;
}

/* Imports csv (len bytes) with opts; returns the result, fills sum and, when
 * reject is non-NULL, the reject file's text. */
static int run(struct fx *f, const char *csv, size_t len, struct pobox_import_opts *o,
               struct pobox_import_summary *sum, char **reject)
{
	FILE *in = fmemopen((void *)csv, len, "rb");
	char *buf = NULL;
	size_t blen = 0;
	FILE *rej = reject ? open_memstream(&buf, &blen) : NULL;
	assert_non_null(in);
	o->reject = rej;
	o->source = "test";
	int rc = pobox_import(f->pb, in, "t.csv", o, sum);
	fclose(in);
	if (rej) {
		fclose(rej);
		*reject = buf;
	}
	return rc;
}

/* All stored updates as "id_type|id|attr|value;" in enqueue order. */
static char *stored(struct fx *f)
{
	char *s = tu_query_text(f->db, "SELECT group_concat(id_type||'|'||profile_id||'|'||attr||'|'||"
	                               "value, ';') FROM (SELECT * FROM v_updates ORDER BY seq)");
	return s ? s : strdup("");
}

static void test_dialect(void **state)
{
	struct fx *f = *state;
	struct pobox_import_opts o = {0};
	struct pobox_import_summary sum;
	static const char csv[] =
		"\xEF\xBB\xBF" "thirdPartyId,tier,note,city\r\n"          /* 1: BOM, CRLF */
		"c1,gold,\"hello, \"\"world\"\"\",Z\xC3\xBCrich\r\n"      /* 2: quotes, commas, UTF-8 */
		"c2,,\"two\r\nlines\",\r\n"                               /* 3-4: quoted CRLF, empties */
		"\r\n"                                                    /* 5: blank line */
		"c3,silver\n"                                             /* 6: short row, LF */
		"\"c4\",\" padded \",  spaced  ,x";                       /* 7: no final newline */
	assert_int_equal(run(f, csv, sizeof csv - 1, &o, &sum, NULL), 0);
	assert_int_equal(sum.rows, 4);
	assert_int_equal(sum.updates, 8);
	assert_int_equal(sum.empty, 4);
	assert_int_equal(sum.rejected, 0);
	char *s = stored(f);
	assert_string_equal(s, "thirdPartyId|c1|tier|gold;thirdPartyId|c1|note|hello, \"world\";"
	                       "thirdPartyId|c1|city|Z\xC3\xBCrich;thirdPartyId|c2|note|two\r\nlines;"
	                       "thirdPartyId|c3|tier|silver;thirdPartyId|c4|tier| padded ;"
	                       "thirdPartyId|c4|note|  spaced  ;thirdPartyId|c4|city|x");
	free(s);
	assert_int_equal(tu_query_int(f->db, "SELECT count(*) FROM v_updates WHERE source = 'test'"), 8);
}

static void test_rejects_with_line_numbers(void **state)
{
	struct fx *f = *state;
	struct pobox_import_opts o = {0};
	struct pobox_import_summary sum;
	char *rej = NULL;
	static const char csv[] =
		"mbox3rdPartyId,tier,note\n"      /* 1 */
		"ok1,gold,\"a\nb\nc\"\n"          /* 2-4 */
		"bad+1,gold,x\n"                  /* 5: + in thirdPartyId */
		"ok2,gold,x\n"                    /* 6 */
		"ok3,gold,x,extra\n"              /* 7: too many fields */
		",gold,x\n"                       /* 8: empty id */
		"\"bad\n/2\",gold,x\n"            /* 9-10: / and a control char; starts on 9 */
		"ok4,\xff,x\n"                    /* 11: bad UTF-8 in a value: whole row out */
		"ok5,,\n";                        /* 12: only empties: not a reject */
	assert_int_equal(run(f, csv, sizeof csv - 1, &o, &sum, &rej), 0);
	assert_int_equal(sum.rows, 8);
	assert_int_equal(sum.rejected, 5);
	assert_int_equal(sum.updates, 4);
	assert_int_equal(sum.empty, 2);
	assert_string_equal(rej,
		"\"line\",\"reason\",\"mbox3rdPartyId\",\"tier\",\"note\"\n"
		"\"5\",\"thirdPartyId 'bad+1' contains '+'; Target refuses '+' and '/' in an mbox3rdPartyId\",\"bad+1\",\"gold\",\"x\"\n"
		"\"7\",\"row has 4 fields; the header has 3\",\"ok3\",\"gold\",\"x\",\"extra\"\n"
		"\"8\",\"profile id (column 1) is empty\",\"\",\"gold\",\"x\"\n"
		"\"9\",\"profile id 'bad\\x0a/2' contains a control character at byte 3\",\"bad\n/2\",\"gold\",\"x\"\n"
		"\"11\",\"column 2 (tier): value '\\xff' is not valid UTF-8 (at byte 0)\",\"ok4\",\"\xff\",\"x\"\n");
	free(rej);
	char *s = stored(f);
	assert_string_equal(s, "thirdPartyId|ok1|tier|gold;thirdPartyId|ok1|note|a\nb\nc;"
	                       "thirdPartyId|ok2|tier|gold;thirdPartyId|ok2|note|x");
	free(s);
}

/* A file with CR line ends (old Mac exports): rows as usual, and the line
 * numbers are the file's lines, not all "1" (fuzz_import found this). */
static void test_cr_line_ends(void **state)
{
	struct fx *f = *state;
	struct pobox_import_opts o = {0};
	struct pobox_import_summary sum;
	char *rej = NULL;
	static const char csv[] = "thirdPartyId,tier\r"   /* 1 */
	                          "ok1,gold\r"            /* 2 */
	                          "bad/1,gold\r"          /* 3 */
	                          "\"ok2\",\"a\rb\"\r"     /* 4-5: a quoted CR */
	                          "bad+2,x\r";            /* 6 */
	assert_int_equal(run(f, csv, sizeof csv - 1, &o, &sum, &rej), 0);
	assert_int_equal(sum.rows, 4);
	assert_int_equal(sum.rejected, 2);
	assert_int_equal(sum.updates, 1 + 1);
	assert_non_null(strstr(rej, "\n\"3\",\"thirdPartyId 'bad/1'"));
	assert_non_null(strstr(rej, "\n\"6\",\"thirdPartyId 'bad+2'"));
	free(rej);
	char *s = stored(f);
	assert_string_equal(s, "thirdPartyId|ok1|tier|gold;thirdPartyId|ok2|tier|a\rb");
	free(s);

	/* CR and LF line ends mixed in one file: each row its own line. */
	static const char mixed[] = "thirdPartyId,a\rx,1\rd,1,2\n1234/5,2\ry,3\r";
	assert_int_equal(run(f, mixed, sizeof mixed - 1, &o, &sum, &rej), 0);
	assert_non_null(strstr(rej, "\n\"3\",\"row has 3 fields"));
	assert_non_null(strstr(rej, "\n\"4\",\"thirdPartyId '1234/5'"));
	free(rej);

	/* A CRLF cut by the reader's 64 KiB block is one line end, not two:
	 * the header (16 bytes), then a row whose CR is the block's last byte. */
	size_t len = 65536 + 9;
	char *big = malloc(len);
	memcpy(big, "thirdPartyId,a\r\nx,", 18);
	memset(big + 18, 'v', 65536 - 18 - 1);
	memcpy(big + 65535, "\r\nbad/1,2\n", 10);
	assert_int_equal(run(f, big, len, &o, &sum, &rej), 0);
	assert_int_equal(sum.rejected, 2);
	assert_non_null(strstr(rej, "\n\"2\",\"column 2 (a): value"));
	assert_non_null(strstr(rej, "\n\"3\",\"thirdPartyId 'bad/1'"));
	free(rej);
	free(big);
}

static void test_id_column_and_type(void **state)
{
	struct fx *f = *state;
	struct pobox_import_summary sum;
	static const char csv[] = "email,customer_id,tier\nx@y.z,77,gold\n";
	/* the first column is not an id type: a clear error, nothing imported */
	struct pobox_import_opts o = {0};
	assert_int_equal(run(f, csv, sizeof csv - 1, &o, &sum, NULL), POBOX_EINVALID);
	assert_non_null(strstr(pobox_errmsg(f->pb), "does not name an id type"));
	assert_non_null(strstr(pobox_errmsg(f->pb), "--id-type"));
	/* --id-column + --id-type: email becomes an attribute */
	o.id_column = "customer_id";
	o.have_id_type = 1;
	o.id_type = POBOX_ID_PCID;
	assert_int_equal(run(f, csv, sizeof csv - 1, &o, &sum, NULL), 0);
	char *s = stored(f);
	assert_string_equal(s, "pcId|77|email|x@y.z;pcId|77|tier|gold");
	free(s);
	/* an unknown --id-column */
	o.id_column = "nope";
	assert_int_equal(run(f, csv, sizeof csv - 1, &o, &sum, NULL), POBOX_EINVALID);
	assert_non_null(strstr(pobox_errmsg(f->pb), "no column named 'nope'"));
	/* the header's alias names the type; ECID is refused with the reason */
	struct pobox_import_opts o2 = {0};
	static const char alias[] = "tntId,tier\n555,bronze\n";
	assert_int_equal(run(f, alias, sizeof alias - 1, &o2, &sum, NULL), 0);
	assert_int_equal(tu_query_int(f->db, "SELECT count(*) FROM v_updates WHERE id_type='pcId' AND "
	                                     "profile_id='555'"), 1);
	static const char ecid[] = "marketingCloudVisitorId,tier\n1,x\n";
	assert_int_equal(run(f, ecid, sizeof ecid - 1, &o2, &sum, NULL), POBOX_EINVALID);
	assert_non_null(strstr(pobox_errmsg(f->pb), "not supported by Target's profile update APIs"));
}

static void test_batch_file_form(void **state)
{
	struct fx *f = *state;
	struct pobox_import_opts o = {0};
	struct pobox_import_summary sum;
	/* a Target batch file: names and values URL-encoded */
	static const char csv[] = "batch=thirdPartyId,tier,profile.note\n"
	                          "c%2D1,gold,a%2Cb%26c%3D%25\n"
	                          "c2,,Z%C3%BCrich+x\n"
	                          "c3,bad%zz,x\n";
	char *rej = NULL;
	assert_int_equal(run(f, csv, sizeof csv - 1, &o, &sum, &rej), 0);
	assert_int_equal(sum.updates, 3);
	assert_int_equal(sum.rejected, 1);
	assert_non_null(strstr(rej, "\"4\",\"column 2 (tier) has a malformed %-escape\""));
	free(rej);
	char *s = stored(f);
	assert_string_equal(s, "thirdPartyId|c-1|tier|gold;thirdPartyId|c-1|note|a,b&c=%;"
	                       "thirdPartyId|c2|note|Z\xC3\xBCrich x");
	free(s);
}

static void test_header_errors(void **state)
{
	struct fx *f = *state;
	struct pobox_import_opts o = {0};
	struct pobox_import_summary sum;
	static const struct {
		const char *csv, *want;
	} cases[] = {
		{"thirdPartyId,tier,profile.tier\nc1,a,b\n", "columns 2 and 3 both name attribute 'tier'"},
		{"thirdPartyId,tier,bad name\nc1,a,b\n", "header column 3: attribute name 'bad name'"},
		{"thirdPartyId,tier,\nc1,a,b\n", "header column 3: attribute name is empty"},
		{"thirdPartyId,user\nc1,a\n", "reserved"},
		{"thirdPartyId\nc1\n", "no attribute columns"},
		{"", "no header row"},
		{"thirdPartyId,tier\nc1,\"never closed\n", "ends inside a quoted field (opened on line 2)"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int rc = run(f, cases[i].csv, strlen(cases[i].csv), &o, &sum, NULL);
		if (rc != POBOX_EINVALID || !strstr(pobox_errmsg(f->pb), cases[i].want))
			fail_msg("case %zu: rc %d, message '%s', wanted '%s'", i, rc, pobox_errmsg(f->pb),
			         cases[i].want);
	}
	assert_int_equal(tu_query_int(f->db, "SELECT count(*) FROM v_updates"), 0);
}

static void test_long_field_stops_with_line(void **state)
{
	struct fx *f = *state;
	struct pobox_import_opts o = {0};
	struct pobox_import_summary sum;
	size_t n = (1u << 20) + 4096;
	char *csv = malloc(n + 64);
	int len = sprintf(csv, "thirdPartyId,tier\nc1,gold\nc2,\"");
	memset(csv + len, 'x', n);
	len += (int)n;
	csv[len] = '\0';
	assert_int_equal(run(f, csv, (size_t)len, &o, &sum, NULL), POBOX_EINVALID);
	assert_non_null(strstr(pobox_errmsg(f->pb), "t.csv:3: a field is longer than"));
	assert_non_null(strstr(pobox_errmsg(f->pb), "a quote opened on line 3"));
	/* rows before the stop are kept, and the summary says where it stopped */
	assert_int_equal(tu_query_int(f->db, "SELECT count(*) FROM v_updates"), 1);
	assert_int_equal(sum.rows, 1);
	assert_int_equal(sum.updates, 1);
	assert_int_equal(sum.stopped_line, 3);
	free(csv);
}

/* max_outbox_bytes is looked at inside a transaction: a limit of 300 KiB
 * is not overshot by a whole 10,000-row transaction (~2 MB); the summary
 * counts what is in and names the first line that is not. */
static void test_size_limit_inside_a_transaction(void **state)
{
	struct fx *f = *state;
	struct pobox_import_opts o = {0};
	struct pobox_import_summary sum;
	char *csv = malloc(4 << 20), *p = csv;
	p += sprintf(p, "thirdPartyId,a,b\n");
	for (int i = 0; i < 30000; i++)
		p += sprintf(p, "s%d,value-%d-abcdefghij,other-%d\n", i, i, i);
	f->pb->opts.max_outbox_bytes = 300 << 10;
	f->pb->opts.min_free_bytes = 0;
	assert_int_equal(run(f, csv, (size_t)(p - csv), &o, &sum, NULL), POBOX_EFULL);
	int64_t used = tu_query_int(f->db, "SELECT (page_count - freelist_count) * page_size FROM "
	                                    "pragma_page_count, pragma_freelist_count, pragma_page_size");
	assert_true(used >= 300 << 10);
	assert_true(used <= (300 << 10) + (256 << 10));
	int64_t rows = tu_query_int(f->db, "SELECT count(DISTINCT profile) FROM writes");
	assert_true(rows > 0 && rows < 30000);
	assert_int_equal(sum.rows, rows);
	assert_int_equal(sum.updates, 2 * rows);
	assert_int_equal(sum.stopped_line, rows + 2);
	free(csv);
}

static void test_value_limit_and_commit_batches(void **state)
{
	struct fx *f = *state;
	struct pobox_import_opts o = {.rows_per_tx = 3};
	struct pobox_import_summary sum;
	char *csv = malloc(200000), *p = csv;
	p += sprintf(p, "thirdPartyId,v\n");
	for (int i = 0; i < 1000; i++)
		p += sprintf(p, "id%d,%d\n", i, i);
	/* a 256-character value passes, 257 does not */
	p += sprintf(p, "long1,%0256d\nlong2,%0257d\n", 0, 0);
	assert_int_equal(run(f, csv, (size_t)(p - csv), &o, &sum, NULL), 0);
	assert_int_equal(sum.rows, 1002);
	assert_int_equal(sum.updates, 1001);
	assert_int_equal(sum.rejected, 1);
	assert_int_equal(tu_query_int(f->db, "SELECT count(DISTINCT profile) FROM writes"), 1001);
	free(csv);
}

int main(void)
{
#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_dialect),
		T(test_rejects_with_line_numbers),
		T(test_cr_line_ends),
		T(test_id_column_and_type),
		T(test_batch_file_form),
		T(test_header_errors),
		T(test_long_field_stops_with_line),
		T(test_size_limit_inside_a_transaction),
		T(test_value_limit_and_commit_batches),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
