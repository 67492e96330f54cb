/*
 * test_enqueue_sql.c - the sqlite3 producer path.  One corpus of updates goes
 * through the C API, through `pobox import` (a one-row CSV) and through
 * `INSERT INTO enqueue` (as an operator would type it); all three must
 * accept, skip or refuse the same ones and store the same rows.  Also: the
 * trigger's messages are readable, and its reserved-name table equals
 * validate.c's.
 *
 * Strings with NUL bytes cannot reach pobox_put (a C string ends at the
 * first NUL), so for those the C verdict is the validators' given the full
 * length; import and SQL see every byte.
 *
 * Not covered by the trigger, by design: UTF-8 well-formedness (SQL cannot
 * see it); that case is tested on the C side only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "csvio.h"
#include "import.h"
#include "outbox.h"
#include "testutil.h"
#include "validate.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const id_types[] = {
	"thirdPartyId", "mbox3rdPartyId", "pcId", "mboxPC", "tntId", "THIRDPARTYID",
	"ECID", "marketingCloudVisitorId", "email", "",
};
static const char *const ids[] = {
	"crm-1", "a+b", "a/b", "a b", "a\tb", "a\x7f", "", "Zürich", "123-456.01_00",
	"x:y@z", NULL, /* NULL: 256 and 257 bytes, filled in below */
};
static const char *const attrs[] = {
	"tier", "profile.tier", "profile.", "", "a b", "a.b", ".a", "a.", "a..b", "user",
	"profile.user", "User", "a-b_c", "ä", "a=b", "pcId", "x.y.z", NULL,
};
static const char *const values[] = {
	"gold", "", " ", "a,b\"c\nd", "€€€", NULL, /* NULL: 256 and 257 characters */
};

struct verdict {
	int rc;            /* 0 stored, POBOX_SKIPPED, or an error */
	char row[1024];    /* the stored row when rc == 0 */
};

/* A corpus string with its length: NUL bytes inside are part of it. */
struct str {
	const char *s;
	size_t len;
};
#define S(lit) ((struct str){(lit), sizeof(lit) - 1})
static struct str str_of(const char *s) { return (struct str){s, strlen(s)}; }

static sqlite3 *db;
static struct pobox *pb;
static char *dir, *path;

static void last_row(char *out, size_t len)
{
	sqlite3_stmt *s;
	out[0] = '\0';
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT id_type||'|'||profile_id||'|'||attr||'|'||"
	                                        "value||'|'||urgent FROM v_updates ORDER BY seq DESC "
	                                        "LIMIT 1", -1, &s, NULL), SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW)
		snprintf(out, len, "%s", sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
}

static int64_t count_updates(void)
{
	sqlite3_stmt *s;
	int64_t n = -1;
	sqlite3_prepare_v2(db, "SELECT count(*) FROM v_updates", -1, &s, NULL);
	if (sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return n;
}

static struct verdict via_c(const char *type, const char *id, const char *attr, const char *value)
{
	struct verdict v = {0};
	enum pobox_id_type t;
	char err[256];
	if (pobox_id_type_parse(type, &t, err, sizeof err) != 0) {
		v.rc = POBOX_EINVALID;
		return v;
	}
	struct pobox_update u = {t, id, attr, value, 0, "c"};
	v.rc = pobox_put(pb, &u);
	if (v.rc == 0)
		last_row(v.row, sizeof v.row);
	return v;
}

static struct verdict via_sql(struct str type, struct str id, struct str attr, struct str value,
                              char *msg, size_t msglen)
{
	struct verdict v = {0};
	sqlite3_stmt *s;
	int64_t before = count_updates();
	assert_int_equal(sqlite3_prepare_v2(db, "INSERT INTO enqueue (id_type, profile_id, attr, value) "
	                                        "VALUES (?1, ?2, ?3, ?4)", -1, &s, NULL), SQLITE_OK);
	sqlite3_bind_text(s, 1, type.s, (int)type.len, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, id.s, (int)id.len, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, attr.s, (int)attr.len, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, value.s, (int)value.len, SQLITE_STATIC);
	int rc = sqlite3_step(s);
	snprintf(msg, msglen, "%s", sqlite3_errmsg(db));
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
		v.rc = POBOX_EINVALID;
	} else if (count_updates() == before) {
		v.rc = POBOX_SKIPPED;
	} else {
		v.rc = 0;
		last_row(v.row, sizeof v.row);
	}
	return v;
}

/* The validators' verdict given every byte (what pobox_put decides for the
 * part of a string before its first NUL). */
static struct verdict via_validate(struct str type, struct str id, struct str attr,
                                   struct str value)
{
	struct verdict v = {0};
	enum pobox_id_type t;
	char err[256];
	if (memchr(type.s, '\0', type.len) || pobox_id_type_parse(type.s, &t, err, sizeof err) != 0 ||
	    pobox_validate_profile_id(t, id.s, id.len, err, sizeof err) != 0 ||
	    pobox_validate_attr(attr.s, attr.len, NULL, NULL, err, sizeof err) != 0) {
		v.rc = POBOX_EINVALID;
		return v;
	}
	v.rc = pobox_validate_value(value.s, value.len, POBOX_DEFAULT_MAX_VALUE_CHARS, err, sizeof err);
	return v;
}

/* A one-row CSV, `TYPE,ATTR` then `ID,VALUE`, through pobox_import. */
static struct verdict via_import(struct str type, struct str id, struct str attr, struct str value)
{
	struct verdict v = {0};
	char *csv = NULL;
	size_t len = 0;
	FILE *w = open_memstream(&csv, &len);
	const char *h[2] = {type.s, attr.s}, *r[2] = {id.s, value.s};
	size_t hl[2] = {type.len, attr.len}, rl[2] = {id.len, value.len};
	assert_non_null(w);
	assert_int_equal(pobox_csv_write_row(w, 2, h, hl), 0);
	assert_int_equal(pobox_csv_write_row(w, 2, r, rl), 0);
	assert_int_equal(fclose(w), 0);
	FILE *in = fmemopen(csv, len, "rb");
	assert_non_null(in);
	struct pobox_import_opts o = {.source = "import"};
	struct pobox_import_summary sum;
	int rc = pobox_import(pb, in, "corpus.csv", &o, &sum);
	fclose(in);
	free(csv);
	if (rc != 0 || sum.rejected) {
		v.rc = POBOX_EINVALID;
	} else if (sum.updates == 0) {
		assert_int_equal(sum.empty, 1);
		v.rc = POBOX_SKIPPED;
	} else {
		last_row(v.row, sizeof v.row);
	}
	return v;
}

static int checked;

static void show(const char *name, struct str x)
{
	fprintf(stderr, " %s='", name);
	for (size_t i = 0; i < x.len && i < 24; i++)
		fprintf(stderr, x.s[i] >= 0x20 ? "%c" : "\\x%02x", (unsigned char)x.s[i]);
	fprintf(stderr, "'");
}

static void compare_str(struct str type, struct str id, struct str attr, struct str value)
{
	char msg[512];
	int has_nul = memchr(type.s, '\0', type.len) || memchr(id.s, '\0', id.len) ||
	              memchr(attr.s, '\0', attr.len) || memchr(value.s, '\0', value.len);
	struct verdict c = has_nul ? via_validate(type, id, attr, value)
	                           : via_c(type.s, id.s, attr.s, value.s);
	struct verdict i = via_import(type, id, attr, value);
	struct verdict q = via_sql(type, id, attr, value, msg, sizeof msg);
	if (c.rc != q.rc || strcmp(c.row, q.row) != 0 || i.rc != q.rc || strcmp(i.row, q.row) != 0) {
		fprintf(stderr, "mismatch for");
		show("type", type), show("id", id), show("attr", attr), show("value", value);
		fprintf(stderr, ": C %d '%s', import %d '%s', SQL %d '%s' (%s)\n", c.rc, c.row, i.rc,
		        i.row, q.rc, q.row, msg);
		fail();
	}
	if (q.rc == POBOX_EINVALID)
		assert_non_null(strstr(msg, "enqueue: "));
	if (has_nul) /* NUL is refused on every path, whatever else is wrong */
		assert_int_equal(q.rc, POBOX_EINVALID);
	checked++;
}

static void compare(const char *type, const char *id, const char *attr, const char *value)
{
	compare_str(str_of(type), str_of(id), str_of(attr), str_of(value));
}

/* NUL bytes in every field, alone and together with other faults; an empty
 * value must not hide a NUL elsewhere (the trigger would skip the row). */
static void test_nul_bytes(void **state)
{
	static const struct {
		struct str type, id, attr, value;
	} cases[] = {
		{S("thirdPartyId"), S("crm\0x"), S("tier"), S("gold")},
		{S("thirdPartyId"), S("\0"), S("tier"), S("gold")},
		{S("pcId"), S("crm-1\0"), S("tier"), S("gold")},
		{S("thirdPartyId"), S("a+b\0"), S("tier"), S("gold")},
		{S("thirdPartyId"), S("crm-1"), S("a\0b"), S("gold")},
		{S("thirdPartyId"), S("crm-1"), S("profile.a\0"), S("gold")},
		{S("thirdPartyId"), S("crm-1"), S("\0"), S("gold")},
		{S("thirdPartyId"), S("crm-1"), S("tier"), S("v\0x")},
		{S("thirdPartyId"), S("crm-1"), S("tier"), S("\0")},
		{S("thirdPartyId"), S("crm-1"), S("tier"), S("gold\0")},
		{S("pcId"), S("p-1"), S("tier"), S("\xe2\x82\xac\0\xe2\x82\xac")},
		{S("thirdPartyId"), S("crm\0x"), S("tier"), S("")},
		{S("thirdPartyId"), S("crm-1"), S("a\0b"), S("")},
		{S("thirdPartyId\0x"), S("crm-1"), S("tier"), S("gold")},
		{S("pcId\0"), S("crm-1"), S("tier"), S("")},
	};
	(void)state;
	int64_t before = count_updates();
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		compare_str(cases[i].type, cases[i].id, cases[i].attr, cases[i].value);
	assert_int_equal(count_updates(), before);
}

static void test_same_verdicts(void **state)
{
	char id256[257], id257[258], a128[129], a129[130], v256[257], v257[258];
	(void)state;
	memset(id256, 'i', 256), id256[256] = '\0';
	memset(id257, 'i', 257), id257[257] = '\0';
	memset(a128, 'a', 128), a128[128] = '\0';
	memset(a129, 'a', 129), a129[129] = '\0';
	memset(v256, 'v', 256), v256[256] = '\0';
	memset(v257, 'v', 257), v257[257] = '\0';

	for (size_t t = 0; t < sizeof id_types / sizeof *id_types; t++)
		for (size_t i = 0; i < sizeof ids / sizeof *ids; i++) {
			if (ids[i]) {
				compare(id_types[t], ids[i], "tier", "gold");
			} else {
				compare(id_types[t], id256, "tier", "gold");
				compare(id_types[t], id257, "tier", "gold");
			}
		}
	for (size_t a = 0; a < sizeof attrs / sizeof *attrs; a++) {
		if (attrs[a]) {
			compare("thirdPartyId", "crm-2", attrs[a], "v");
		} else {
			compare("thirdPartyId", "crm-2", a128, "v");
			compare("thirdPartyId", "crm-2", a129, "v");
		}
	}
	for (size_t r = 0; pobox_reserved_attributes[r]; r++)
		compare("pcId", "p-9", pobox_reserved_attributes[r], "v");
	for (size_t v = 0; v < sizeof values / sizeof *values; v++) {
		if (values[v]) {
			compare("mboxPC", "p-3", "note", values[v]);
		} else {
			compare("mboxPC", "p-3", "note", v256);
			compare("mboxPC", "p-3", "note", v257);
		}
	}
	assert_true(checked > 150);
	/* all paths stored: C, import and SQL rows are triplets */
	assert_int_equal(count_updates() % 3, 0);
}

static void test_reserved_tables_equal(void **state)
{
	(void)state;
	size_t n = 0;
	for (; pobox_reserved_attributes[n]; n++) {
		char sql[256];
		snprintf(sql, sizeof sql, "SELECT count(*) FROM reserved_attributes WHERE name = '%s'",
		         pobox_reserved_attributes[n]);
		assert_int_equal(tu_query_int(path, sql), 1);
	}
	assert_int_equal(tu_query_int(path, "SELECT count(*) FROM reserved_attributes"), (int64_t)n);
}

static void test_messages_and_defaults(void **state)
{
	char msg[512];
	(void)state;
	/* what an operator sees in the sqlite3 shell */
	assert_int_not_equal(tu_exec(path, "INSERT INTO enqueue(id_type, profile_id, attr, value) "
	                                   "VALUES ('ECID', '1', 'a', 'b')", msg, sizeof msg), 0);
	assert_string_equal(msg, "enqueue: id_type ECID (marketingCloudVisitorId) is not supported by "
	                         "Target's profile update APIs: use thirdPartyId or pcId");
	assert_int_not_equal(tu_exec(path, "INSERT INTO enqueue(id_type, profile_id, attr, value) "
	                                   "VALUES ('thirdPartyId', 'a+b', 'a', 'b')", msg, sizeof msg), 0);
	assert_string_equal(msg, "enqueue: a thirdPartyId may not contain '+' or '/' (Target refuses them)");
	/* numbers typed without quotes are stored as text; source defaults to sqlite3; urgent */
	assert_int_equal(tu_exec(path, "INSERT INTO enqueue(id_type, profile_id, attr, value, urgent) "
	                               "VALUES ('pcId', 12345, 'points', 1200, 1)", msg, sizeof msg), 0);
	char *row = tu_query_text(path, "SELECT profile_id||'|'||value||'|'||urgent||'|'||source||'|'||"
	                                "typeof(value) FROM v_updates ORDER BY seq DESC LIMIT 1");
	assert_string_equal(row, "12345|1200|1|sqlite3|text");
	free(row);
	assert_int_not_equal(tu_exec(path, "INSERT INTO enqueue(id_type, profile_id, attr, value, urgent) "
	                                   "VALUES ('pcId', '1', 'a', 'b', 2)", msg, sizeof msg), 0);
	assert_non_null(strstr(msg, "urgent"));
	/* several rows in one statement: all or nothing */
	int64_t before = tu_query_int(path, "SELECT count(*) FROM v_updates");
	assert_int_not_equal(tu_exec(path, "INSERT INTO enqueue(id_type, profile_id, attr, value) VALUES "
	                                   "('pcId','m1','a','1'), ('pcId','m2','bad name','2')",
	                             msg, sizeof msg), 0);
	assert_int_equal(tu_query_int(path, "SELECT count(*) FROM v_updates"), before);
	/* the configured value limit applies to sqlite3 producers too */
	assert_int_equal(tu_exec(path, "UPDATE settings SET value = 3 WHERE key = 'max_value_chars'",
	                         msg, sizeof msg), 0);
	assert_int_not_equal(tu_exec(path, "INSERT INTO enqueue(id_type, profile_id, attr, value) "
	                                   "VALUES ('pcId', '1', 'a', 'abcd')", msg, sizeof msg), 0);
	assert_non_null(strstr(msg, "max_value_chars"));
	assert_int_equal(tu_exec(path, "INSERT INTO enqueue(id_type, profile_id, attr, value) "
	                               "VALUES ('pcId', '1', 'a', 'abc')", msg, sizeof msg), 0);
	/* and the operator views read back */
	assert_int_equal(tu_query_int(path, "SELECT updates FROM v_status WHERE state = 'pending'"),
	                 tu_query_int(path, "SELECT count(*) FROM v_pending"));
	assert_int_equal(tu_query_int(path, "SELECT count(*) FROM v_status"), 5);
}

static int setup(void **state)
{
	char err[512];
	(void)state;
	dir = tu_tmpdir();
	path = tu_path(dir, "o.db");
	if (pobox_open(&pb, path, NULL, err, sizeof err) != 0)
		return -1;
	return sqlite3_open(path, &db) == SQLITE_OK ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	sqlite3_close(db);
	pobox_close(pb);
	tu_rm_rf(dir);
	free(path);
	free(dir);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_same_verdicts),
		cmocka_unit_test(test_nul_bytes),
		cmocka_unit_test(test_reserved_tables_equal),
		cmocka_unit_test(test_messages_and_defaults),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
