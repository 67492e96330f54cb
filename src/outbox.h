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

/* 0 when there is room for new updates, else POBOX_EFULL with the reason
 * on the handle. */
int pobox_check_room(struct pobox *pb);

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
