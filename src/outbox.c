/*
 * outbox.c - the public producer API (pobox.h): open, put, transactions.
 *
 * Owns the handle and the order of operations for one put: validate, then
 * intern and append inside one transaction.  Validation rules live in
 * validate.c, SQL in store.c.
 */
#include "outbox.h"
#include "alloc.h"
#include "error.h"
#include "validate.h"

#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>

void pobox_options_init(struct pobox_options *o)
{
	memset(o, 0, sizeof *o);
	o->synchronous = POBOX_SYNC_FULL;
	o->busy_timeout_ms = 30000;
	o->max_value_chars = POBOX_DEFAULT_MAX_VALUE_CHARS;
	o->min_free_bytes = INT64_C(100) << 20;
}

int pobox_room_left(struct pobox *pb, int64_t *left)
{
	const char *path = pobox_store_path(pb->st);
	int64_t room = INT64_MAX, used = 0, unwritten = 0;
	if (pb->opts.max_outbox_bytes <= 0 && pb->opts.min_free_bytes <= 0)
		goto out;
	pobox_store_space(pb->st, &used, &unwritten);
	if (pb->opts.max_outbox_bytes > 0) {
		if (used >= pb->opts.max_outbox_bytes)
			return pobox_errf(pb->err, sizeof pb->err, POBOX_EFULL,
			                  "outbox %s is full: %lld bytes, max_outbox_size is %lld; new updates "
			                  "are refused until delivery and pruning make room (nothing already "
			                  "accepted is dropped)",
			                  path, (long long)used, (long long)pb->opts.max_outbox_bytes);
		room = pb->opts.max_outbox_bytes - used;
	}
	if (pb->opts.min_free_bytes > 0) {
		struct statvfs vs;
		char dir[4096];
		snprintf(dir, sizeof dir, "%s", path);
		char *slash = strrchr(dir, '/');
		if (slash)
			*(slash == dir ? slash + 1 : slash) = '\0';
		else
			snprintf(dir, sizeof dir, ".");
		if (statvfs(dir, &vs) == 0) {
			/* what SQLite holds in memory and will still write (dirty pages,
			 * the main file's growth at the next checkpoint) counts as used */
			int64_t avail = (int64_t)vs.f_bavail * (int64_t)vs.f_frsize - unwritten;
			if (avail < pb->opts.min_free_bytes)
				return pobox_errf(pb->err, sizeof pb->err, POBOX_EFULL,
				                  "disk of outbox %s has %lld bytes free, under min_free_disk "
				                  "(%lld); new updates are refused until there is room",
				                  path, (long long)(avail > 0 ? avail : 0),
				                  (long long)pb->opts.min_free_bytes);
			if (avail - pb->opts.min_free_bytes < room)
				room = avail - pb->opts.min_free_bytes;
		}
	}
out:
	if (left)
		*left = room;
	return 0;
}

int pobox_check_room(struct pobox *pb) { return pobox_room_left(pb, NULL); }

int pobox_open(struct pobox **out, const char *path, const struct pobox_options *opts,
               char *err, size_t errlen)
{
	struct pobox_open_ctl ctl = {.check_max_bytes = POBOX_DEFAULT_CHECK_ON_OPEN};
	return pobox_open_ctl(out, path, opts, &ctl, err, errlen);
}

/* A writer about to use the outbox: refuses one marked damaged, and checks
 * a small one first (SQLite finds damage only where a statement reads, and
 * an append reads little: without this, puts went on landing in a file
 * `pobox status` called malformed). */
static int writer_checks(struct pobox *pb, const struct pobox_open_ctl *ctl)
{
	int rc = 0;
	if (pobox_store_damaged(pb->st, NULL, 0))
		rc = pobox_store_refuse_damaged(pb->st);
	else if (ctl->check_max_bytes > 0 &&
	         pobox_store_file_bytes(pb->st) <= ctl->check_max_bytes)
		rc = pobox_store_quick_check(pb->st, NULL);
	return ctl->tolerate_damage && rc == POBOX_ECORRUPT ? 0 : rc;
}

int pobox_open_ctl(struct pobox **out, const char *path, const struct pobox_options *opts,
                   const struct pobox_open_ctl *ctl, char *err, size_t errlen)
{
	struct pobox *pb = NULL;
	struct pobox_options o;
	int rc;

	if (opts)
		o = *opts;
	else
		pobox_options_init(&o);
	if (o.max_value_chars <= 0)
		return pobox_errf(err, errlen, POBOX_ECONFIG, "max_value_chars must be positive, not %d",
		                  o.max_value_chars);
	if (o.busy_timeout_ms < 0)
		return pobox_errf(err, errlen, POBOX_ECONFIG, "busy_timeout_ms may not be negative");
	pb = pobox_calloc(1, sizeof *pb);
	if (!pb)
		return pobox_errf(err, errlen, POBOX_ENOMEM, "out of memory opening %s", path);
	pb->opts = o;
	pb->clock.now_ms = pobox_clock_real_ms;
	struct pobox_store_opts so = {
		.synchronous = o.synchronous,
		.busy_timeout_ms = o.busy_timeout_ms,
		.max_value_chars = o.max_value_chars,
		.must_exist = o.read_only,
		.reader = ctl->reader,
		.write_damaged = ctl->doctor,
	};
	rc = pobox_store_open(&pb->st, path, &so, pb->err, sizeof pb->err);
	if (rc == 0 && !ctl->reader && !ctl->doctor)
		rc = writer_checks(pb, ctl);
	if (rc != 0) {
		pobox_errf(err, errlen, rc, "%s", pb->err);
		goto out;
	}
	*out = pb;
	pb = NULL;
out:
	pobox_close(pb);
	return rc;
}

void pobox_close(struct pobox *pb)
{
	if (!pb)
		return;
	pobox_store_close(pb->st);
	pobox_free(pb->source_name);
	pobox_free(pb);
}

const char *pobox_errmsg(const struct pobox *pb) { return pb ? pb->err : "no handle"; }

void pobox_set_clock(struct pobox *pb, struct pobox_clock c) { pb->clock = c; }

int pobox_begin(struct pobox *pb)
{
	if (pobox_store_in_tx(pb->st))
		return pobox_errf(pb->err, sizeof pb->err, POBOX_EINVALID,
		                  "pobox_begin: a transaction is already open (they do not nest)");
	return pobox_store_begin(pb->st);
}

int pobox_commit(struct pobox *pb)
{
	if (!pobox_store_in_tx(pb->st))
		return pobox_errf(pb->err, sizeof pb->err, POBOX_EINVALID,
		                  "pobox_commit: no transaction is open");
	int rc = pobox_store_commit(pb->st);
	if (rc != 0)
		pb->source_id = 0; /* the failed commit rolled the source row back too */
	return rc;
}

int pobox_rollback(struct pobox *pb)
{
	pb->source_id = 0; /* the source row may have been rolled back */
	return pobox_store_rollback(pb->st);
}

int pobox_put_interned(struct pobox *pb, int64_t profile, int64_t attr, const char *value,
                       size_t len, int urgent, int64_t source)
{
	return pobox_store_append(pb->st, profile, attr, value, len, pobox_clock_now_ms(&pb->clock),
	                          source, urgent);
}

/* The interned id of the source name, cached while it stays the same. */
static int source_id(struct pobox *pb, const char *name, int64_t *out)
{
	if (!name) {
		*out = 0;
		return 0;
	}
	if (pb->source_id && pb->source_name && strcmp(pb->source_name, name) == 0) {
		*out = pb->source_id;
		return 0;
	}
	int rc = pobox_store_source(pb->st, name, out);
	if (rc != 0)
		return rc;
	char *copy = pobox_strdup(name);
	if (copy) {
		pobox_free(pb->source_name);
		pb->source_name = copy;
		pb->source_id = *out;
	}
	return 0;
}

int pobox_put(struct pobox *pb, const struct pobox_update *u)
{
	const char *name;
	size_t name_len, id_len, value_len;
	int64_t profile, attr, source;
	int rc, own_tx = 0;

	pb->err[0] = '\0';
	if (!u || !u->profile_id || !u->attr)
		return pobox_errf(pb->err, sizeof pb->err, POBOX_EINVALID,
		                  "pobox_put: profile_id and attr are required");
	id_len = strlen(u->profile_id);
	value_len = u->value ? strlen(u->value) : 0;
	if ((rc = pobox_validate_profile_id(u->id_type, u->profile_id, id_len, pb->err,
	                                    sizeof pb->err)) != 0)
		return rc;
	if ((rc = pobox_validate_attr(u->attr, strlen(u->attr), &name, &name_len, pb->err,
	                              sizeof pb->err)) != 0)
		return rc;
	if ((rc = pobox_validate_value(u->value, value_len, pb->opts.max_value_chars, pb->err,
	                               sizeof pb->err)) != 0)
		return rc; /* POBOX_SKIPPED for an empty value */
	if ((rc = pobox_check_room(pb)) != 0) {
		/* full: only an update replacing a value still pending may come in
		 * (one in a batch cannot be replaced: the batch's bytes are fixed) */
		int exists = 0;
		char keep[POBOX_ERRLEN];
		memcpy(keep, pb->err, sizeof keep);
		if (pobox_store_pending_exists(pb->st, u->id_type, u->profile_id, id_len, name, name_len,
		                               &exists) != 0 || !exists) {
			memcpy(pb->err, keep, sizeof keep);
			return rc;
		}
	}

	if (!pobox_store_in_tx(pb->st)) {
		if ((rc = pobox_store_begin(pb->st)) != 0)
			return rc;
		own_tx = 1;
	}
	if ((rc = pobox_store_profile(pb->st, u->id_type, u->profile_id, id_len, &profile)) != 0 ||
	    (rc = pobox_store_attr(pb->st, name, name_len, &attr)) != 0 ||
	    (rc = source_id(pb, u->source, &source)) != 0 ||
	    (rc = pobox_put_interned(pb, profile, attr, u->value, value_len, u->urgent, source)) != 0)
		goto out;
	if (own_tx) {
		own_tx = 0;
		if ((rc = pobox_store_commit(pb->st)) != 0)
			pb->source_id = 0;
	}
out:
	if (own_tx)
		pobox_rollback(pb);
	return rc;
}
