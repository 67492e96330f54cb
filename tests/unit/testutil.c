/*
 * testutil.c - see testutil.h.
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include "testutil.h"
#include "pobox.h"

#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *tu_tmpdir(void)
{
	const char *base = getenv("POBOX_TEST_TMP");
	char tmpl[4096];
	if (base && *base)
		mkdir(base, 0777); /* may exist already */
	snprintf(tmpl, sizeof tmpl, "%s/pobox-test-XXXXXX", base && *base ? base : "/tmp");
	char *d = mkdtemp(tmpl);
	if (!d) {
		perror("mkdtemp");
		abort();
	}
	return strdup(d);
}

char *tu_path(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);
	snprintf(p, n, "%s/%s", dir, name);
	return p;
}

void tu_write_file(const char *path, const char *content, size_t len)
{
	FILE *fp = fopen(path, "wb");
	if (!fp || fwrite(content, 1, len, fp) != len || fclose(fp) != 0) {
		perror(path);
		abort();
	}
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(path);
}

void tu_rm_rf(const char *dir) { nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS); }

static sqlite3 *open_db(const char *db)
{
	sqlite3 *h = NULL;
	if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
		fprintf(stderr, "testutil: cannot open %s\n", db);
		abort();
	}
	sqlite3_busy_timeout(h, 30000);
	return h;
}

int64_t tu_query_int(const char *db, const char *sql)
{
	sqlite3 *h = open_db(db);
	sqlite3_stmt *s = NULL;
	int64_t v = 0;
	if (sqlite3_prepare_v2(h, sql, -1, &s, NULL) != SQLITE_OK) {
		fprintf(stderr, "testutil: %s: %s\n", sql, sqlite3_errmsg(h));
		abort();
	}
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	else if (rc != SQLITE_DONE) {
		fprintf(stderr, "testutil: %s: %s\n", sql, sqlite3_errmsg(h));
		abort();
	}
	sqlite3_finalize(s);
	sqlite3_close(h);
	return v;
}

char *tu_query_text(const char *db, const char *sql)
{
	sqlite3 *h = open_db(db);
	sqlite3_stmt *s = NULL;
	char *v = NULL;
	if (sqlite3_prepare_v2(h, sql, -1, &s, NULL) != SQLITE_OK) {
		fprintf(stderr, "testutil: %s: %s\n", sql, sqlite3_errmsg(h));
		abort();
	}
	if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
		v = strdup((const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	sqlite3_close(h);
	return v;
}

int tu_exec(const char *db, const char *sql, char *msg, size_t msglen)
{
	sqlite3 *h = open_db(db);
	char *m = NULL;
	int rc = sqlite3_exec(h, sql, NULL, NULL, &m);
	if (msg && msglen)
		snprintf(msg, msglen, "%s", m ? m : "");
	sqlite3_free(m);
	sqlite3_close(h);
	return rc;
}

int tu_outbox_open(char **dir, char **db, struct pobox **pb)
{
	char err[512];
	*dir = tu_tmpdir();
	*db = tu_path(*dir, "o.db");
	if (pobox_open(pb, *db, NULL, err, sizeof err) != 0) {
		fprintf(stderr, "testutil: %s\n", err);
		return -1;
	}
	return 0;
}

void tu_outbox_close(char *dir, char *db, struct pobox *pb)
{
	pobox_close(pb);
	tu_rm_rf(dir);
	free(db);
	free(dir);
}
