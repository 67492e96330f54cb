/*
 * test_sched.c - cutting batches: exact batch-file bytes, coalescing with
 * superseded pointers, the fence, the density bound, size and row limits,
 * v2 carry-forward, the 64 KB per-profile cap, api and id type per batch.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "alloc.h"
#include "import.h"
#include "outbox.h"
#include "sched.h"
#include "store.h"
#include "testutil.h"
#include "payload.h"
#include "zpayload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fx {
	char *dir, *db;
	struct pobox *pb;
	int64_t now;
	struct pobox_sched_opts o;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	if (tu_outbox_open(&f->dir, &f->db, &f->pb) != 0)
		return -1;
	f->now = 1790000000000;
	pobox_set_clock(f->pb, (struct pobox_clock){pobox_clock_manual_ms, &f->now});
	pobox_sched_opts_init(&f->o);
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

static void put(struct fx *f, enum pobox_id_type t, const char *id, const char *attr, const char *v)
{
	struct pobox_update u = {t, id, attr, v, 0, "t"};
	assert_int_equal(pobox_put(f->pb, &u), 0);
	f->now += 1;
}

static struct pobox_cut_summary cut(struct fx *f)
{
	struct pobox_cut_summary s = {0};
	assert_int_equal(pobox_sched_cut(f->pb, &f->o, &s), 0);
	return s;
}

struct text {
	char *s;
	size_t len;
};

static int collect(void *ctx, const char *data, size_t n)
{
	struct text *t = ctx;
	t->s = realloc(t->s, t->len + n + 1);
	assert_non_null(t->s);
	memcpy(t->s + t->len, data, n);
	t->len += n;
	t->s[t->len] = '\0';
	return 0;
}

/* The exact bytes batch id would send; checks the stored length and
 * checksum. */
static char *payload(struct fx *f, int64_t id)
{
	struct pobox_batch b;
	struct text t = {strdup(""), 0};
	assert_int_equal(pobox_store_batch_get(f->pb->st, id, &b), 0);
	assert_int_equal(pobox_payload_check(f->pb->st, &b, collect, &t), 0);
	assert_int_equal((int64_t)t.len, b.bytes);
	assert_int_equal(pobox_crc32(0, t.s, t.len), b.payload_crc32);
	pobox_batch_free(&b);
	return t.s;
}

static void deliver(struct fx *f, int64_t batch, int v2)
{
	assert_int_equal(pobox_begin(f->pb), 0);
	assert_int_equal(pobox_store_batch_delivered(f->pb->st, batch, v2, f->now), 0);
	assert_int_equal(tu_exec(f->db, "SELECT 1", NULL, 0), 0);
	assert_int_equal(pobox_commit(f->pb), 0);
}

static void test_coalesce_and_encode(void **state)
{
	struct fx *f = *state;
	put(f, POBOX_ID_THIRDPARTY, "c-1", "tier", "silver");
	put(f, POBOX_ID_THIRDPARTY, "c-1", "note", "a,b&c=d+e%f \"q\"\nz");
	put(f, POBOX_ID_THIRDPARTY, "c-1", "tier", "gold");
	put(f, POBOX_ID_THIRDPARTY, "Zürich 1", "tier", "bronze");
	put(f, POBOX_ID_THIRDPARTY, "Zürich 1", "city", "São Paulo");
	put(f, POBOX_ID_THIRDPARTY, "c-1", "tier", "platinum");
	struct pobox_cut_summary s = cut(f);
	assert_int_equal(s.batches, 1);
	assert_int_equal(s.profiles, 2);
	assert_int_equal(s.updates, 4);
	assert_int_equal(s.superseded, 2);
	char *p = payload(f, 1);
	assert_string_equal(p, "batch=thirdPartyId,tier,note,city\n"
	                       "c-1,platinum,a%2Cb%26c%3Dd%2Be%25f%20%22q%22%0Az\n"
	                       "Z%C3%BCrich%201,bronze,,S%C3%A3o%20Paulo\n");
	free(p);
	/* older values point at the winner */
	char *sup = tu_query_text(f->db, "SELECT group_concat(seq || '->' || superseded_by) FROM "
	                                 "(SELECT * FROM v_updates WHERE state = 'superseded' ORDER BY seq)");
	assert_string_equal(sup, "1->6,3->6");
	free(sup);
	/* derived states: batched for the winners, superseded for the rest */
	assert_int_equal(tu_query_int(f->db, "SELECT count(*) FROM v_updates WHERE state = 'batched' AND batch = 1"), 4);
	assert_int_equal(tu_query_int(f->db, "SELECT count(*) FROM v_updates WHERE state = 'pending'"), 0);
	assert_int_equal(tu_query_int(f->db, "SELECT updates FROM batches WHERE id = 1"), 4);
	assert_int_equal(tu_query_int(f->db, "SELECT api = 'v2' AND state = 'ready' FROM batches WHERE id = 1"), 1);
}

static void test_fence(void **state)
{
	struct fx *f = *state;
	put(f, POBOX_ID_THIRDPARTY, "p", "a", "1");
	assert_int_equal(cut(f).batches, 1);
	/* newer values wait while the batch is unfinished, and keep coalescing */
	put(f, POBOX_ID_THIRDPARTY, "p", "a", "2");
	put(f, POBOX_ID_THIRDPARTY, "p", "a", "3");
	put(f, POBOX_ID_THIRDPARTY, "q", "a", "9");
	struct pobox_cut_summary s = cut(f);
	assert_int_equal(s.batches, 1);
	assert_int_equal(s.profiles, 1); /* only q */
	char *p = payload(f, 2);
	assert_string_equal(p, "batch=thirdPartyId,a\nq,9\n");
	free(p);
	assert_int_equal(tu_query_int(f->db, "SELECT count(*) FROM v_updates WHERE profile_id = 'p' AND state = 'pending'"), 2);
	/* once the first batch is final, p's newest value goes, and only it */
	deliver(f, 1, 1);
	s = cut(f);
	assert_int_equal(s.batches, 1);
	assert_int_equal(s.superseded, 1);
	p = payload(f, 3);
	assert_string_equal(p, "batch=thirdPartyId,a\np,3\n");
	free(p);
	assert_int_equal(tu_query_int(f->db, "SELECT count(*) FROM v_updates WHERE profile_id = 'p' AND state = 'delivered' AND value = '1'"), 1);
}

/* The single lane offline (single_hold): profiles that would go single
 * stay pending, uncut, even between two bulk profiles of one run (whose
 * fence covers a range of profile ids), and go single once it is back. */
static void test_single_hold(void **state)
{
	struct fx *f = *state;
	put(f, POBOX_ID_THIRDPARTY, "tp-1", "a", "1"); /* never delivered: bulk v2 */
	put(f, POBOX_ID_PCID, "pc-1", "a", "2");       /* pcId: single */
	put(f, POBOX_ID_THIRDPARTY, "tp-2", "a", "3");
	put(f, POBOX_ID_PCID, "pc-2", "a", "4");
	put(f, POBOX_ID_PCID, "pc-2", "a", "5");
	f->o.single_enabled = 1;
	f->o.single_left_urgent = f->o.single_left_normal = 100;
	f->o.single_max_pending = 100;
	f->o.pending_estimate = 4;
	f->o.max_get_bytes = 8192;
	f->o.max_post_bytes = 61440;
	f->o.single_url_base = 60;
	f->o.single_hold = 1;
	struct pobox_cut_summary s = cut(f);
	assert_int_equal(s.single_held, 2);
	assert_int_equal(s.single_profiles, 0);
	assert_int_equal(s.batches, 1);
	assert_int_equal(s.profiles, 2);
	char *p = payload(f, 1);
	assert_string_equal(p, "batch=thirdPartyId,a\ntp-1,1\ntp-2,3\n");
	free(p);
	assert_int_equal(tu_query_int(f->db, "SELECT count(*) FROM v_updates WHERE id_type = 'pcId' AND state = 'pending'"), 2);
	assert_int_equal(tu_query_int(f->db, "SELECT count(*) FROM batches WHERE lane = 'single'"), 0);
	/* held again by another cut: still nothing new */
	s = cut(f);
	assert_int_equal(s.single_held, 2);
	assert_int_equal(s.batches, 0);
	/* back online: both go single, pc-2 with its newest value only */
	f->o.single_hold = 0;
	s = cut(f);
	assert_int_equal(s.single_held, 0);
	assert_int_equal(s.single_profiles, 2);
	assert_int_equal(tu_query_int(f->db, "SELECT count(*) FROM v_updates WHERE state = 'pending'"), 0);
	assert_int_equal(tu_query_int(f->db, "SELECT count(*) FROM v_updates WHERE profile_id = 'pc-2' AND state = 'batched' AND value = '5'"), 1);
}

static void test_density_bound(void **state)
{
	struct fx *f = *state;
	static const char *const wide[] = {"a", "b", "c", "d"};
	for (int i = 0; i < 4; i++)
		put(f, POBOX_ID_THIRDPARTY, "p1", wide[i], "1");
	put(f, POBOX_ID_THIRDPARTY, "p2", "e", "2");               /* disjoint: 4 empties, 1 value */
	put(f, POBOX_ID_THIRDPARTY, "p3", "a", "3");               /* joins p1's batch */
	put(f, POBOX_ID_THIRDPARTY, "p3", "b", "3");
	put(f, POBOX_ID_THIRDPARTY, "p3", "c", "3");
	put(f, POBOX_ID_THIRDPARTY, "p3", "e", "3");               /* e appended: one empty (d) */
	put(f, POBOX_ID_THIRDPARTY, "p4", "e", "4");               /* joins p2's batch */
	struct pobox_cut_summary s = cut(f);
	assert_int_equal(s.batches, 2);
	char *p = payload(f, 1);
	assert_string_equal(p, "batch=thirdPartyId,a,b,c,d,e\np1,1,1,1,1\np3,3,3,3,,3\n");
	free(p);
	p = payload(f, 2);
	assert_string_equal(p, "batch=thirdPartyId,e\np2,2\np4,4\n");
	free(p);
}

static void test_row_and_byte_limits(void **state)
{
	struct fx *f = *state;
	char id[16];
	for (int i = 0; i < 7; i++) {
		snprintf(id, sizeof id, "p%d", i);
		put(f, POBOX_ID_THIRDPARTY, id, "attr", "0123456789");
	}
	f->o.max_rows = 3;
	struct pobox_cut_summary s = cut(f);
	assert_int_equal(s.batches, 3);
	assert_int_equal(tu_query_int(f->db, "SELECT max(profiles) FROM batches"), 3);
	assert_int_equal(tu_query_int(f->db, "SELECT sum(profiles) FROM batches"), 7);

	/* bytes: header "batch=thirdPartyId,attr\n" is 24; each row "pN,0123456789\n" 14 */
	for (int i = 0; i < 5; i++) {
		snprintf(id, sizeof id, "q%d", i);
		put(f, POBOX_ID_THIRDPARTY, id, "attr", "0123456789");
	}
	f->o.max_rows = 500000;
	f->o.max_bytes = 24 + 2 * 14; /* exactly two rows */
	s = cut(f);
	assert_int_equal(s.batches, 3);
	assert_int_equal(tu_query_int(f->db, "SELECT max(bytes) FROM batches WHERE id > 3"), 52);
	assert_int_equal(tu_query_int(f->db, "SELECT count(*) FROM batches WHERE id > 3 AND bytes > 52"), 0);
	/* a profile that cannot fit even alone is dead-lettered, with the reason */
	f->o.max_bytes = 30;
	put(f, POBOX_ID_THIRDPARTY, "big", "attr", "this value does not fit in thirty bytes");
	s = cut(f);
	assert_int_equal(s.batches, 0);
	assert_int_equal(s.dead_profiles, 1);
	char *e = tu_query_text(f->db, "SELECT last_error FROM v_updates WHERE profile_id = 'big'");
	assert_non_null(strstr(e, "max_batch_bytes"));
	free(e);
}

static void test_carry_forward(void **state)
{
	struct fx *f = *state;
	put(f, POBOX_ID_THIRDPARTY, "p", "a", "1");
	put(f, POBOX_ID_THIRDPARTY, "p", "b", "2");
	put(f, POBOX_ID_THIRDPARTY, "q", "a", "5");
	cut(f);
	deliver(f, 1, 1);
	/* an hour later, only c changes: a and b ride along so a v2 override
	 * cannot erase them */
	f->now += 3600000;
	put(f, POBOX_ID_THIRDPARTY, "p", "c", "3");
	put(f, POBOX_ID_THIRDPARTY, "p", "a", "1b");
	struct pobox_cut_summary s = cut(f);
	assert_int_equal(s.carried, 1);
	assert_int_equal(s.updates, 2);
	char *p = payload(f, 2);
	assert_string_equal(p, "batch=thirdPartyId,a,c,b\np,1b,3,2\n");
	free(p);
	assert_int_equal(tu_query_int(f->db, "SELECT carried FROM batches WHERE id = 2"), 1);
	deliver(f, 2, 1);
	/* outside the window: no carry */
	f->now += 25 * 3600000LL;
	put(f, POBOX_ID_THIRDPARTY, "p", "d", "4");
	s = cut(f);
	assert_int_equal(s.carried, 0);
	p = payload(f, 3);
	assert_string_equal(p, "batch=thirdPartyId,d\np,4\n");
	free(p);
	deliver(f, 3, 1);
	/* window 0 turns it off */
	f->o.carry_window_ms = 0;
	put(f, POBOX_ID_THIRDPARTY, "p", "e", "5");
	assert_int_equal(cut(f).carried, 0);
	/* carried values come from profile_state after housekeeping pruned the rows */
	deliver(f, 4, 1);
	f->o.carry_window_ms = 24 * 3600000LL;
	int64_t pruned = 0, cursor = 0;
	assert_int_equal(pobox_begin(f->pb), 0);
	assert_int_equal(pobox_store_prune(f->pb->st, f->now + 1, 1000, &cursor, &pruned), 0);
	assert_int_equal(cursor, 0);
	assert_int_equal(pobox_commit(f->pb), 0);
	assert_true(pruned >= 5);
	assert_int_equal(tu_query_int(f->db, "SELECT count(*) FROM writes WHERE profile = 1"), 0);
	put(f, POBOX_ID_THIRDPARTY, "p", "f", "6");
	s = cut(f);
	p = payload(f, 5);
	/* every last delivered value of p: a=1b, b=2, c=3, d=4, e=5 */
	assert_string_equal(p, "batch=thirdPartyId,f,a,b,c,d,e\np,6,1b,2,3,4,5\n");
	free(p);
	char *v = tu_query_text(f->db, "SELECT group_concat(attr || '=' || value) FROM "
	                               "(SELECT * FROM v_profile_state WHERE profile_id = 'p' ORDER BY attr)");
	assert_string_equal(v, "a=1b,b=2,c=3,d=4,e=5");
	free(v);
}

static void test_v1_pcid_and_types(void **state)
{
	struct fx *f = *state;
	put(f, POBOX_ID_PCID, "123-456.01_00", "a", "1");
	put(f, POBOX_ID_THIRDPARTY, "t1", "a", "2");
	struct pobox_cut_summary s = cut(f);
	assert_int_equal(s.batches, 2);
	char *p = payload(f, 1);
	assert_string_equal(p, "batch=pcId,a\n123-456.01_00,1\n");
	free(p);
	assert_int_equal(tu_query_int(f->db, "SELECT count(*) FROM batches WHERE id_type = 'pcId' AND api = 'v1'"), 1);
	assert_int_equal(tu_query_int(f->db, "SELECT count(*) FROM batches WHERE id_type = 'thirdPartyId' AND api = 'v2'"), 1);
	/* v1 never carries forward, even right after a delivery */
	deliver(f, 1, 0);
	put(f, POBOX_ID_PCID, "123-456.01_00", "b", "3");
	assert_int_equal(cut(f).carried, 0);
}

static void test_profile_cap(void **state)
{
	struct fx *f = *state;
	char attr[32], value[257];
	memset(value, 'x', 256);
	value[256] = '\0';
	assert_int_equal(pobox_begin(f->pb), 0);
	for (int i = 0; i < 260; i++) { /* 260 x (256 + ~6) > 64 KB */
		snprintf(attr, sizeof attr, "attr%d", i);
		put(f, POBOX_ID_THIRDPARTY, "huge", attr, value);
	}
	assert_int_equal(pobox_commit(f->pb), 0);
	put(f, POBOX_ID_THIRDPARTY, "small", "a", "1");
	struct pobox_cut_summary s = cut(f);
	assert_int_equal(s.dead_profiles, 1);
	assert_int_equal(s.profiles, 1);
	assert_int_equal(tu_query_int(f->db, "SELECT count(*) FROM v_updates WHERE profile_id = 'huge' AND state = 'dead'"), 260);
	char *e = tu_query_text(f->db, "SELECT last_error FROM v_updates WHERE profile_id = 'huge' LIMIT 1");
	assert_non_null(strstr(e, "per-profile cap"));
	free(e);
	/* 250 such attributes (just under 64 KB) are fine */
	assert_int_equal(pobox_begin(f->pb), 0);
	for (int i = 0; i < 240; i++) {
		snprintf(attr, sizeof attr, "k%d", i);
		put(f, POBOX_ID_THIRDPARTY, "big-ok", attr, value);
	}
	assert_int_equal(pobox_commit(f->pb), 0);
	s = cut(f);
	assert_int_equal(s.dead_profiles, 0);
	assert_int_equal(s.profiles, 1);
}

static void test_rebuild_split(void **state)
{
	struct fx *f = *state;
	char id[16];
	for (int i = 0; i < 4; i++) {
		snprintf(id, sizeof id, "s%d", i);
		put(f, POBOX_ID_THIRDPARTY, id, i % 2 ? "b" : "a", "v");
	}
	cut(f);
	/* what the uploader does on a refused file: move half, rebuild both */
	int64_t median = 0, a = 0, c = 0;
	assert_int_equal(pobox_begin(f->pb), 0);
	assert_int_equal(pobox_store_batch_median(f->pb->st, 1, &median), 0);
	assert_int_equal(pobox_store_batch_new(f->pb->st, 2, POBOX_ID_THIRDPARTY, "split", 1, 0, f->now, &a), 0);
	assert_int_equal(pobox_store_batch_new(f->pb->st, 2, POBOX_ID_THIRDPARTY, "split", 1, 0, f->now, &c), 0);
	assert_int_equal(pobox_store_batch_move(f->pb->st, 1, a, median), 0);
	assert_int_equal(pobox_store_batch_move(f->pb->st, 1, c, -1), 0);
	assert_int_equal(pobox_sched_build(f->pb, &f->o, a), 0);
	assert_int_equal(pobox_sched_build(f->pb, &f->o, c), 0);
	assert_int_equal(pobox_commit(f->pb), 0);
	char *p = payload(f, a);
	assert_string_equal(p, "batch=thirdPartyId,a,b\ns0,v\ns1,,v\n");
	free(p);
	p = payload(f, c);
	assert_string_equal(p, "batch=thirdPartyId,a,b\ns2,v\ns3,,v\n");
	free(p);
	assert_int_equal(tu_query_int(f->db, "SELECT count(*) FROM v_in_batch WHERE batch = 1"), 0);
}

static int import_text(struct fx *f, const char *csv, int changed_only,
                       struct pobox_import_summary *sum)
{
	struct pobox_import_opts o = {.changed_only = changed_only, .source = "nightly"};
	FILE *in = fmemopen((void *)csv, strlen(csv), "rb");
	int rc = pobox_import(f->pb, in, "x.csv", &o, sum);
	fclose(in);
	return rc;
}

static void test_changed_only(void **state)
{
	struct fx *f = *state;
	struct pobox_import_summary sum;
	assert_int_equal(import_text(f, "thirdPartyId,tier,city\nc1,gold,Oslo\nc2,silver,Rome\n", 1, &sum), 0);
	assert_int_equal(sum.updates, 4); /* nothing delivered yet: all new */
	assert_int_equal(sum.unchanged, 0);
	cut(f);
	deliver(f, 1, 1);
	/* the same export the next night, with one change and one new profile */
	assert_int_equal(import_text(f, "thirdPartyId,tier,city\nc1,gold,Bergen\nc2,silver,Rome\nc3,gold,Pisa\n",
	                             1, &sum), 0);
	assert_int_equal(sum.updates, 3);
	assert_int_equal(sum.unchanged, 3);
	char *v = tu_query_text(f->db, "SELECT group_concat(profile_id || '.' || attr || '=' || value) FROM "
	                               "(SELECT * FROM v_updates WHERE state = 'pending' ORDER BY seq)");
	assert_string_equal(v, "c1.city=Bergen,c3.tier=gold,c3.city=Pisa");
	free(v);
	/* without the flag everything goes in again */
	assert_int_equal(import_text(f, "thirdPartyId,tier\nc2,silver\n", 0, &sum), 0);
	assert_int_equal(sum.updates, 1);
}

int main(void)
{
#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_coalesce_and_encode),
		T(test_fence),
		T(test_single_hold),
		T(test_density_bound),
		T(test_row_and_byte_limits),
		T(test_carry_forward),
		T(test_v1_pcid_and_types),
		T(test_profile_cap),
		T(test_rebuild_split),
		T(test_changed_only),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
