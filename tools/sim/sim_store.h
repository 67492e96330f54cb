/*
 * sim_store -- the simulated Target profile store.
 *
 * Owns: every profile (keyed by id type and id), its attribute values with a
 * modification time each, and the v2 override rule.  It applies one update
 * at a time -- a single-update call, one batch row, a page visit, a preload
 * row -- under the lock of the one shard the profile hashes to, so updates
 * to different profiles never contend.  It does not parse requests, count
 * calls or decide what a batch row means; sim_batches and sim_server do.
 *
 * The override rule (target-api.md §1.5): what a v2 batch sets is held as an
 * *overlay* on the profile, tagged with the batch.  The overlay is merged
 * into the profile by anything else that touches it -- a page visit, a
 * single update, a v1 row.  If instead the next change is another v2 batch,
 * the earlier overlay is discarded first: the attributes only the earlier
 * batch set are lost (reverting to their value before that batch, if any),
 * as the docs warn.  Readers always see committed values with the overlay
 * on top.  With the rule off, v2 rows are committed at once.
 *
 * Attribute names are interned once (sim_store_intern()) so each stored value
 * costs its bytes plus 16; values live in one packed record per profile.
 *
 * Ownership: the store copies everything it is given.  JSON output goes into
 * a caller-owned sim_buf.
 */
#ifndef SIM_STORE_H
#define SIM_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "sim_batch_parse.h"
#include "sim_buf.h"

#define SIM_NAME_NONE UINT32_MAX

struct sim_kv {
	uint32_t name_id;
	const char *value;
	size_t value_len;
};

enum sim_apply_mode {
	SIM_APPLY_SINGLE,   /* existing profiles only, commits */
	SIM_APPLY_V1,       /* existing profiles only, commits */
	SIM_APPLY_V2,       /* creates; overlay when override is on */
	SIM_APPLY_PRELOAD,  /* creates, commits */
};

struct sim_apply_result {
	int found;          /* the profile existed before */
	int created;
	size_t attrs_lost;  /* attributes lost to the override rule */
};

int sim_store_init(void);
void sim_store_destroy(void);
/* Forget every profile (names stay interned). */
void sim_store_reset(void);

/* Interned id of an attribute name, SIM_NAME_NONE on allocation failure. */
uint32_t sim_store_intern(const char *name, size_t len);

/* Returns 0, or -1 on allocation failure (nothing changed then). */
int sim_store_apply(enum sim_id_type type, const char *id, size_t id_len,
                    const struct sim_kv *kv, size_t n, enum sim_apply_mode mode,
                    uint64_t batch_seq, int override_on, int64_t now_ms,
                    struct sim_apply_result *res);
/* A page visit: merges any pending v2 overlay; creates the profile if
 * missing (pages are what create profiles in real Target).  0 or -1. */
int sim_store_visit(enum sim_id_type type, const char *id, size_t id_len, int64_t now_ms);

/* The documented fetch JSON for one profile.  Returns 1 if found (out
 * filled), 0 if not, -1 on allocation failure. */
int sim_store_fetch_json(enum sim_id_type type, const char *id, size_t id_len,
                         const char *client, struct sim_buf *out);
/* {"profiles":[...]} sorted by id type, then id; attribute keys sorted. */
int sim_store_dump_json(struct sim_buf *out);
size_t sim_store_count(void);

const char *sim_id_type_name(enum sim_id_type t);

#endif
