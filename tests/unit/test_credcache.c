/*
 * test_credcache.c - the token cache beside the outbox: round trip, mode
 * 600, refusing a cache others can read, another configuration's cache,
 * damage, a failed write leaving the old cache whole, and the lock.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "credcache.h"
#include "pobox.h"
#include "testutil.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static struct pobox_credcache_entry entry(const char *ims, const char *tok)
{
	struct pobox_credcache_entry e = {(char *)ims, 1000, 2000, (char *)tok, 1500, 9000};
	return e;
}

/* Files in dir other than . and .. */
static int files_in(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;
	while (d && (de = readdir(d)))
		n += de->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

static void test_round_trip(void **state)
{
	(void)state;
	char *dir = tu_tmpdir(), *path = tu_path(dir, "o.db-token.cache"), err[300];
	struct pobox_credcache_entry w = entry("ims-\"tok\\1", "ptk-2"), r;
	struct stat sb;
	assert_int_equal(pobox_credcache_read(path, "k1", &r, err, sizeof err), POBOX_ENOTFOUND);
	assert_int_equal(pobox_credcache_write(path, "k1", &w, err, sizeof err), 0);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_int_equal(files_in(dir), 1); /* no temporary file left */
	assert_int_equal(pobox_credcache_read(path, "k1", &r, err, sizeof err), 0);
	assert_string_equal(r.ims_token, "ims-\"tok\\1");
	assert_string_equal(r.token, "ptk-2");
	assert_int_equal(r.ims_obtained_ms, 1000);
	assert_int_equal(r.ims_expires_ms, 2000);
	assert_int_equal(r.obtained_ms, 1500);
	assert_int_equal(r.expires_ms, 9000);
	pobox_credcache_entry_free(&r);
	/* another configuration's cache is not ours */
	assert_int_equal(pobox_credcache_read(path, "k2", &r, err, sizeof err), POBOX_ENOTFOUND);
	/* replaced whole */
	w = entry(NULL, "ptk-3");
	assert_int_equal(pobox_credcache_write(path, "k1", &w, err, sizeof err), 0);
	assert_int_equal(pobox_credcache_read(path, "k1", &r, err, sizeof err), 0);
	assert_null(r.ims_token);
	assert_string_equal(r.token, "ptk-3");
	pobox_credcache_entry_free(&r);
	tu_rm_rf(dir);
	free(dir);
	free(path);
}

static void test_refused_files(void **state)
{
	(void)state;
	char *dir = tu_tmpdir(), *path = tu_path(dir, "c"), err[300];
	struct pobox_credcache_entry w = entry("i", "t"), r;
	assert_int_equal(pobox_credcache_write(path, "k", &w, err, sizeof err), 0);
	chmod(path, 0644);
	assert_int_equal(pobox_credcache_read(path, "k", &r, err, sizeof err), POBOX_EINVALID);
	assert_non_null(strstr(err, "is not a private file of this user (mode 0644); not using it"));
	/* the next write makes it private again */
	assert_int_equal(pobox_credcache_write(path, "k", &w, err, sizeof err), 0);
	assert_int_equal(pobox_credcache_read(path, "k", &r, err, sizeof err), 0);
	pobox_credcache_entry_free(&r);

	tu_write_file(path, "{\"version\":1,\"key\":", 19);
	chmod(path, 0600);
	assert_int_equal(pobox_credcache_read(path, "k", &r, err, sizeof err), POBOX_EINVALID);
	assert_non_null(strstr(err, "is damaged (value expected at byte 19); not using it"));
	tu_write_file(path, "{\"version\":2,\"key\":\"k\"}", 23);
	chmod(path, 0600);
	assert_int_equal(pobox_credcache_read(path, "k", &r, err, sizeof err), POBOX_EINVALID);
	assert_non_null(strstr(err, "not a version 1 cache"));
	/* a symlink is not followed */
	char *link = tu_path(dir, "l");
	assert_int_equal(symlink(path, link), 0);
	assert_int_equal(pobox_credcache_read(link, "k", &r, err, sizeof err), POBOX_EIO);
	tu_rm_rf(dir);
	free(dir);
	free(path);
	free(link);
}

static void test_failed_write_keeps_the_old(void **state)
{
	(void)state;
	char *dir = tu_tmpdir(), *path = tu_path(dir, "c"), err[300];
	struct pobox_credcache_entry w = entry("i1", "t1"), r;
	assert_int_equal(pobox_credcache_write(path, "k", &w, err, sizeof err), 0);
	/* a leftover temporary file of a crashed writer with our pid */
	char tmp[600];
	snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
	tu_write_file(tmp, "junk", 4);
	w = entry("i2", "t2");
	assert_int_equal(pobox_credcache_write(path, "k", &w, err, sizeof err), 0);
	assert_int_equal(access(tmp, F_OK), -1);
	/* a directory we may not write to: the write fails, the old cache stays */
	if (geteuid() != 0) {
		chmod(dir, 0500);
		w = entry("i3", "t3");
		assert_int_equal(pobox_credcache_write(path, "k", &w, err, sizeof err), POBOX_EIO);
		chmod(dir, 0700);
	}
	/* a path whose directory is gone: an error, nothing written */
	char *gone = tu_path(dir, "no/such/dir/c");
	assert_int_equal(pobox_credcache_write(gone, "k", &w, err, sizeof err), POBOX_EIO);
	assert_int_equal(pobox_credcache_read(path, "k", &r, err, sizeof err), 0);
	assert_string_equal(r.token, "t2");
	pobox_credcache_entry_free(&r);
	tu_rm_rf(dir);
	free(dir);
	free(path);
	free(gone);
}

static void test_lock(void **state)
{
	(void)state;
	char *dir = tu_tmpdir(), *path = tu_path(dir, "c"), err[300];
	int a = -1, b = -1;
	assert_int_equal(pobox_credcache_lock(path, 0, &a, err, sizeof err), 0);
	/* flock locks belong to the open file: a second open waits, then gives up */
	assert_int_equal(pobox_credcache_lock(path, 100, &b, err, sizeof err), POBOX_EBUSY);
	assert_string_equal(err, "another process held the token cache lock for 0s");
	pobox_credcache_unlock(a);
	assert_int_equal(pobox_credcache_lock(path, 0, &b, err, sizeof err), 0);
	pobox_credcache_unlock(b);
	tu_rm_rf(dir);
	free(dir);
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_refused_files),
		cmocka_unit_test(test_failed_write_keeps_the_old),
		cmocka_unit_test(test_lock),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
