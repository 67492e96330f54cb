/*
 * testutil.h - helpers shared by the unit tests: temporary directories,
 * files, and independent checks of an outbox through SQLite directly (tests
 * verify the store with their own queries, not with the code under test).
 * Every returned string is malloc'd and freed by the caller.
 */
#ifndef POBOX_TESTUTIL_H
#define POBOX_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

/* A fresh directory under $POBOX_TEST_TMP (or /tmp). */
char *tu_tmpdir(void);
/* dir/name */
char *tu_path(const char *dir, const char *name);
void tu_write_file(const char *path, const char *content, size_t len);
/* Removes a directory tree made by tu_tmpdir. */
void tu_rm_rf(const char *dir);

struct pobox;
/* A fresh outbox "o.db" in a new temporary directory: 0 and the three out
 * values, or -1 when it cannot be opened.  tu_outbox_close undoes it all. */
int tu_outbox_open(char **dir, char **db, struct pobox **pb);
void tu_outbox_close(char *dir, char *db, struct pobox *pb);

/* First column of the first row of sql on the database at db; aborts the
 * test on an SQL error.  tu_query_text returns NULL for SQL NULL / no row. */
int64_t tu_query_int(const char *db, const char *sql);
char *tu_query_text(const char *db, const char *sql);
/* Runs sql; returns SQLite's result code and copies its message to msg. */
int tu_exec(const char *db, const char *sql, char *msg, size_t msglen);

#endif
