/*
 * outbox.h - libpobox's internal view of the public handle.
 *
 * struct pobox is opaque to API users; library modules (import, status, the
 * CLI's commands) reach the store and the clock through it.
 */
#ifndef POBOX_OUTBOX_H
#define POBOX_OUTBOX_H

#include "clock.h"
#include "pobox.h"
#include "store.h"

#define POBOX_ERRLEN 512

struct pobox {
	struct pobox_store *st;
	struct pobox_options opts;
	struct pobox_clock clock;
	int64_t source_id;           /* interned `source` of the last put, 0 = none */
	char *source_name;
	char err[POBOX_ERRLEN];
};

/* Outboxes at most this big are checked with PRAGMA quick_check when a
 * writer opens them (pobox_open; the CLI's check_on_open). */
#define POBOX_DEFAULT_CHECK_ON_OPEN (INT64_C(8) << 20)

/* How the opener means to use the outbox.  pobox_open() is a writer with
 * the default check; the CLI picks per command. */
struct pobox_open_ctl {
	int reader;              /* only reads: no check at open, a damage marker
	                          * is no obstacle, read-only fallback (store.h) */
	int doctor;              /* pobox doctor: no check at open (it runs the full
	                          * one), may write although marked damaged */
	int tolerate_damage;     /* pobox run: opens a damaged outbox (and pauses) */
	int64_t check_max_bytes; /* quick_check at open up to this size; 0: never */
};

/* pobox_open with an explicit ctl.  A writer (neither reader nor doctor) is
 * refused, POBOX_ECORRUPT, an outbox marked damaged or failing the check at
 * open, unless tolerate_damage. */
int pobox_open_ctl(struct pobox **out, const char *path, const struct pobox_options *opts,
                   const struct pobox_open_ctl *ctl, char *err, size_t errlen);

/* 0 when there is room for new updates, else POBOX_EFULL with the reason
 * on the handle.  Inside a transaction it counts what the transaction has
 * written so far, including what SQLite has not put on disk yet. */
int pobox_check_room(struct pobox *pb);
/* The same, with the bytes that may still be written before a limit is
 * reached in *left (INT64_MAX when no limit applies). */
int pobox_room_left(struct pobox *pb, int64_t *left);

/* Replaces the handle's clock (tests). */
void pobox_set_clock(struct pobox *pb, struct pobox_clock c);

/* One profile's updates as one write (`pobox put ID a=1 b=2`): every
 * attribute and value is validated first (all or nothing); empty values are
 * skipped (skipped[i] = 1, may be NULL); POBOX_SKIPPED when all were empty.
 * Otherwise as pobox_put. */
#define POBOX_ROW_MAX 4096 /* attributes in one write */
struct pobox_row {
	enum pobox_id_type id_type;
	const char *profile_id;
	const char *const *attrs;
	const char *const *values;
	size_t n;
	int urgent;
	const char *source;
};
int pobox_put_row(struct pobox *pb, const struct pobox_row *r, int *skipped);

#endif
