/*
 * outbox.c - the public producer API (pobox.h): open, put, transactions.
 *
 * Owns the handle and the order of operations for one put: validate, then
 * intern and append one write inside one transaction.  Validation rules
 * live in validate.c, SQL in the store.
 */
#include "outbox.h"
#include "alloc.h"
#include "cells.h"
#include "error.h"
#include "log.h"
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

/* Full for size: delivered history goes first, whatever its age (with what
 * it superseded; `sent` keeps the last value sent of each attribute, so
 * changed-only and carry-forward lose nothing; dead letters and what is
 * still waiting, superseded values of it included, stay), down to
 * ROOM_AFTER_PRUNE of the limit so that the next writes do not prune again.
 * Once per change of the history's size in this handle: history that cannot
 * go (a write with a dead letter or a live update in it) is not scanned
 * again at every refused write.  *used is updated. */
#define ROOM_AFTER_PRUNE(limit) ((limit) / 10 * 9)
#define PRUNE_SLICE 20000

static int prune_for_room(struct pobox *pb, int64_t *used)
{
	struct pobox_status s;
	int64_t unwritten, cursor = 0, pruned = 0, k;
	int rc = pobox_store_status(pb->st, &s), own_tx = 0;
	if (rc != 0)
		return rc;
	int64_t history = s.updates[POBOX_ST_DELIVERED] + s.updates[POBOX_ST_SUPERSEDED];
	if (history == 0 || history == pb->room_history)
		return 0;
	if (!pobox_store_in_tx(pb->st)) {
		if ((rc = pobox_store_begin(pb->st)) != 0)
			return rc;
		own_tx = 1;
	}
	do {
		if ((rc = pobox_store_prune_delivered(pb->st, PRUNE_SLICE, &cursor, &k)) != 0)
			break;
		pruned += k;
		pobox_store_space(pb->st, used, &unwritten);
	} while (cursor && *used > ROOM_AFTER_PRUNE(pb->opts.max_outbox_bytes));
	if (own_tx)
		rc = rc == 0 ? pobox_store_commit(pb->st) : (pobox_store_rollback(pb->st), rc);
	if (rc != 0)
		return rc;
	/* what the next look will read: inside the caller's transaction the
	 * tallies change only at its commit */
	pb->room_history = own_tx ? history - pruned : history;
	pobox_store_space(pb->st, used, &unwritten);
	pobox_log(POBOX_LOG_INFO, "pruned_for_room",
	          "updates=%lld used_bytes=%lld max_outbox_size=%lld", (long long)pruned,
	          (long long)*used, (long long)pb->opts.max_outbox_bytes);
	return 0;
}

/* The refusal for size: what fills the outbox, and what would make room. */
static int full(struct pobox *pb, int64_t used)
{
	struct pobox_status s = {0};
	pobox_store_status(pb->st, &s);
	const int64_t *u = s.updates;
	return pobox_errf(pb->err, sizeof pb->err, POBOX_EFULL,
	                  "outbox %s is full: %lld bytes in use, max_outbox_size is %lld; it holds "
	                  "%lld pending and %lld batched updates (not delivered yet), %lld dead "
	                  "letters, %lld delivered or superseded updates of history that cannot "
	                  "be pruned yet (delivered history is pruned first when full) and %lld "
	                  "profiles with the last values sent to them (kept for changed-only); new "
	                  "updates are refused until delivery makes room (nothing already accepted "
	                  "is dropped)",
	                  pobox_store_path(pb->st), (long long)used,
	                  (long long)pb->opts.max_outbox_bytes, (long long)u[POBOX_ST_PENDING],
	                  (long long)u[POBOX_ST_BATCHED], (long long)u[POBOX_ST_DEAD],
	                  (long long)(u[POBOX_ST_DELIVERED] + u[POBOX_ST_SUPERSEDED]),
	                  (long long)s.profiles);
}

int pobox_room_left(struct pobox *pb, int64_t *left)
{
	const char *path = pobox_store_path(pb->st);
	int64_t room = INT64_MAX, used = 0, unwritten = 0;
	int rc;
	if (pb->opts.max_outbox_bytes <= 0 && pb->opts.min_free_bytes <= 0)
		goto out;
	pobox_store_space(pb->st, &used, &unwritten);
	if (pb->opts.max_outbox_bytes > 0) {
		if (used >= pb->opts.max_outbox_bytes && (rc = prune_for_room(pb, &used)) != 0)
			return rc;
		if (used >= pb->opts.max_outbox_bytes)
			return full(pb, used);
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

/* Full: only an update replacing a value still pending may come in (one
 * in a batch cannot be replaced: the batch's bytes are fixed). */
static int room_for(struct pobox *pb, enum pobox_id_type t, const char *id, size_t id_len,
                    const char *const *names, const size_t *name_lens, size_t n)
{
	int rc = pobox_check_room(pb);
	if (rc == 0)
		return 0;
	char keep[POBOX_ERRLEN];
	memcpy(keep, pb->err, sizeof keep);
	for (size_t i = 0; i < n; i++) {
		int exists = 0;
		if (!names[i])
			continue; /* an empty value: not an update */
		if (pobox_store_pending_exists(pb->st, t, id, id_len, names[i], name_lens[i], &exists) != 0 ||
		    !exists) {
			memcpy(pb->err, keep, sizeof keep);
			return rc;
		}
	}
	return 0;
}

/* Interns the names and appends one write. */
static int append_row(struct pobox *pb, const struct pobox_row *r, const char *const *names,
                      const size_t *name_lens, size_t id_len, int64_t *stored)
{
	int64_t *attrs = pobox_malloc(r->n * sizeof *attrs), shape, source;
	struct pobox_cells_buf b = {0};
	struct pobox_profile_ref ref;
	size_t width = 0;
	int rc = attrs ? 0 : pobox_errf(pb->err, sizeof pb->err, POBOX_ENOMEM, "out of memory");
	pobox_cells_open(&b);
	for (size_t i = 0; i < r->n && rc == 0; i++) {
		if (!names[i])
			continue; /* empty value */
		rc = pobox_store_attr(pb->st, names[i], name_lens[i], &attrs[width++]);
		pobox_cells_str(&b, r->values[i], strlen(r->values[i]));
	}
	pobox_cells_close(&b);
	if (rc == 0 && b.nomem)
		rc = pobox_errf(pb->err, sizeof pb->err, POBOX_ENOMEM, "out of memory");
	if (rc == 0 && width &&
	    (rc = pobox_store_shape_id(pb->st, attrs, width, &shape)) == 0 &&
	    (rc = source_id(pb, r->source, &source)) == 0 &&
	    (rc = pobox_store_profile_find(pb->st, r->id_type, r->profile_id, id_len, &ref)) == 0)
		rc = pobox_store_write(pb->st, r->id_type, r->profile_id, id_len, &ref, shape, width,
		                       b.s, b.len, (int64_t)width, pobox_clock_now_ms(&pb->clock), source,
		                       r->urgent, NULL);
	pobox_cells_buf_free(&b);
	pobox_free(attrs);
	if (rc == 0)
		*stored = (int64_t)width;
	return rc;
}

int pobox_put_row(struct pobox *pb, const struct pobox_row *r, int *skipped)
{
	const char **names = NULL;
	size_t *name_lens = NULL, id_len;
	int64_t stored = 0;
	int rc, own_tx = 0;

	pb->err[0] = '\0';
	if (!r || !r->profile_id || r->n == 0 || r->n > POBOX_ROW_MAX)
		return pobox_errf(pb->err, sizeof pb->err, POBOX_EINVALID,
		                  "pobox_put: a profile id and 1 to %d attributes are required",
		                  POBOX_ROW_MAX);
	names = pobox_malloc(r->n * sizeof *names);
	name_lens = pobox_malloc(r->n * sizeof *name_lens);
	if (!names || !name_lens) {
		rc = pobox_errf(pb->err, sizeof pb->err, POBOX_ENOMEM, "out of memory");
		goto done;
	}
	id_len = strlen(r->profile_id);
	if ((rc = pobox_validate_profile_id(r->id_type, r->profile_id, id_len, pb->err,
	                                    sizeof pb->err)) != 0)
		goto done;
	/* every attribute and value first: the row is all or nothing */
	size_t live = 0;
	for (size_t i = 0; i < r->n; i++) {
		if (!r->attrs[i]) {
			rc = pobox_errf(pb->err, sizeof pb->err, POBOX_EINVALID, "pobox_put: attr is required");
			goto done;
		}
		if ((rc = pobox_validate_attr(r->attrs[i], strlen(r->attrs[i]), &names[i], &name_lens[i],
		                              pb->err, sizeof pb->err)) != 0)
			goto done;
		const char *v = r->values[i] ? r->values[i] : "";
		rc = pobox_validate_value(v, strlen(v), pb->opts.max_value_chars, pb->err, sizeof pb->err);
		if (skipped)
			skipped[i] = rc == POBOX_SKIPPED;
		if (rc == POBOX_SKIPPED) {
			names[i] = NULL;
			continue;
		}
		if (rc != 0)
			goto done;
		live++;
	}
	rc = POBOX_SKIPPED;
	if (live == 0 ||
	    (rc = room_for(pb, r->id_type, r->profile_id, id_len, names, name_lens, r->n)) != 0)
		goto done;
	if (!pobox_store_in_tx(pb->st)) {
		if ((rc = pobox_store_begin(pb->st)) != 0)
			goto done;
		own_tx = 1;
	}
	if ((rc = append_row(pb, r, names, name_lens, id_len, &stored)) != 0)
		goto out;
	if (own_tx) {
		own_tx = 0;
		if ((rc = pobox_store_commit(pb->st)) != 0)
			pb->source_id = 0;
	}
out:
	if (own_tx)
		pobox_rollback(pb);
done:
	pobox_free(names);
	pobox_free(name_lens);
	return rc;
}

int pobox_put(struct pobox *pb, const struct pobox_update *u)
{
	if (!u || !u->profile_id || !u->attr)
		return pobox_errf(pb->err, sizeof pb->err, POBOX_EINVALID,
		                  "pobox_put: profile_id and attr are required");
	const char *attrs[1] = {u->attr}, *values[1] = {u->value ? u->value : ""};
	struct pobox_row r = {u->id_type, u->profile_id, attrs, values, 1, u->urgent, u->source};
	return pobox_put_row(pb, &r, NULL);
}
