/*
 * metrics.c - Prometheus text format (see metrics.h).
 */
#include "metrics.h"
#include "error.h"
#include "outbox.h"
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void head(FILE *out, const char *name, const char *type, const char *help)
{
	fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

struct rows_ctx {
	FILE *out;
	const char *metric;
	int label_cols;        /* leading columns that are labels */
	const char *labels[3];
};

/* Label values here are lane and state names or numbers: no escaping needed,
 * but quote-and-backslash safety costs nothing. */
static void label_value(FILE *out, const char *v)
{
	for (; v && *v; v++) {
		if (*v == '"' || *v == '\\')
			fputc('\\', out);
		if (*v == '\n')
			fputs("\\n", out);
		else
			fputc(*v, out);
	}
}

static int print_row(void *ctx, int n, const char *const *names, const char *const *v)
{
	struct rows_ctx *r = ctx;
	(void)names;
	fprintf(r->out, "%s{", r->metric);
	for (int i = 0; i < r->label_cols && i < n; i++) {
		fprintf(r->out, "%s%s=\"", i ? "," : "", r->labels[i]);
		label_value(r->out, v[i]);
		fputc('"', r->out);
	}
	fprintf(r->out, "} %s\n", v[r->label_cols] ? v[r->label_cols] : "0");
	return 0;
}

/* The last `pobox verify` (its record in the outbox; all zero before the
 * first). */
static int verify_metrics(struct pobox *pb, FILE *out)
{
	struct pobox_verify_record v;
	int found = 0, rc;
	if ((rc = pobox_store_verify_last(pb->st, &v, &found)) != 0)
		return rc;
	head(out, "pobox_verify_last_timestamp_seconds", "gauge",
	     "Unix time the last pobox verify finished (0: never).");
	fprintf(out, "pobox_verify_last_timestamp_seconds %.3f\n", found ? (double)v.finished_at_ms / 1000.0 : 0.0);
	head(out, "pobox_verify_profiles", "gauge", "Profiles the last pobox verify fetched and compared.");
	fprintf(out, "pobox_verify_profiles %lld\n", (long long)v.profiles);
	head(out, "pobox_verify_fetch_errors", "gauge", "Profiles the last pobox verify could not fetch.");
	fprintf(out, "pobox_verify_fetch_errors %lld\n", (long long)v.fetch_errors);
	head(out, "pobox_verify_attributes", "gauge",
	     "Attributes the last pobox verify found in each class.");
	for (int c = 0; c < POBOX_VC_COUNT; c++)
		fprintf(out, "pobox_verify_attributes{class=\"%s\"} %lld\n", pobox_verify_class_names[c],
		        (long long)v.count[c]);
	head(out, "pobox_verify_oldest_not_yet_applied_age_seconds", "gauge",
	     "In the last pobox verify, how long before it the oldest value Target had not applied yet was sent (0: none).");
	fprintf(out, "pobox_verify_oldest_not_yet_applied_age_seconds %.3f\n",
	        v.max_age_ms[POBOX_VC_NOT_YET_APPLIED] > 0 ? (double)v.max_age_ms[POBOX_VC_NOT_YET_APPLIED] / 1000.0 : 0.0);
	head(out, "pobox_verify_failed", "gauge",
	     "1 when the last pobox verify found attributes that differ past the grace period.");
	fprintf(out, "pobox_verify_failed %d\n",
	        v.count[POBOX_VC_DIFFERENT] + v.count[POBOX_VC_MISSING] > 0);
	return 0;
}

int pobox_metrics_write(struct pobox *pb, const struct pobox_quota_opts *qo, FILE *out)
{
	struct pobox_status s;
	struct pobox_quota q;
	int64_t now = pobox_clock_now_ms(&pb->clock), last = 0;
	int rc;
	if ((rc = pobox_store_status(pb->st, &s)) != 0 || (rc = pobox_quota_read(pb, qo, now, &q)) != 0)
		return rc;

	head(out, "pobox_updates", "gauge", "Updates in the outbox by state (batched = in flight).");
	for (int i = 0; i < POBOX_ST_COUNT; i++)
		fprintf(out, "pobox_updates{state=\"%s\"} %lld\n", pobox_update_state_names[i],
		        (long long)s.updates[i]);
	head(out, "pobox_oldest_pending_age_seconds", "gauge",
	     "Age of the oldest pending update (0 when none is pending).");
	fprintf(out, "pobox_oldest_pending_age_seconds %.3f\n",
	        s.oldest_pending_ms >= 0 ? (double)(now - s.oldest_pending_ms) / 1000.0 : 0.0);

	struct rows_ctx r = {out, "pobox_batches", 2, {"lane", "state", NULL}};
	head(out, "pobox_batches", "gauge", "Batches by lane and state.");
	if ((rc = pobox_store_each_row(pb->st,
	                               "WITH l(lane) AS (VALUES ('bulk'), ('single')),"
	                               " st(state) AS (VALUES ('ready'), ('sending'), ('submitted'), ('done'),"
	                               " ('dead'), ('split'), ('replaced')) "
	                               /* kept by triggers on batches: no scan of history */
	                               "SELECT l.lane, st.state, coalesce((SELECT n FROM batch_counts b"
	                               " WHERE b.lane = l.lane AND b.state = st.state), 0) FROM l, st ORDER BY 1, 2",
	                               0, 0, print_row, &r)) != 0)
		return rc;
	head(out, "pobox_calls_total", "counter",
	     "Calls made to Target, by lane and HTTP status (0: no answer).");
	r.metric = "pobox_calls_total";
	r.labels[1] = "status";
	if ((rc = pobox_store_each_row(pb->st, "SELECT lane, http_status, calls FROM call_counts ORDER BY 1, 2",
	                               0, 0, print_row, &r)) != 0)
		return rc;
	head(out, "pobox_call_errors_total", "counter",
	     "Calls whose outcome was not a success, by lane and HTTP status (0: no answer).");
	r.metric = "pobox_call_errors_total";
	if ((rc = pobox_store_each_row(pb->st, "SELECT lane, http_status, errors FROM call_counts ORDER BY 1, 2",
	                               0, 0, print_row, &r)) != 0)
		return rc;

	head(out, "pobox_quota_budget_calls", "gauge", "Single-call budget per rolling 24 hours (after fleet_share).");
	fprintf(out, "pobox_quota_budget_calls %lld\n", (long long)q.budget);
	head(out, "pobox_quota_used_calls", "gauge", "Single calls in the last 24 hours, settled and reserved.");
	fprintf(out, "pobox_quota_used_calls %lld\n", (long long)(q.used + q.reserved));
	head(out, "pobox_quota_remaining_calls", "gauge", "Single calls left in the rolling 24-hour budget.");
	fprintf(out, "pobox_quota_remaining_calls %lld\n", (long long)q.remaining);
	head(out, "pobox_quota_urgent_reserve_calls", "gauge", "Part of the budget kept for urgent updates.");
	fprintf(out, "pobox_quota_urgent_reserve_calls %lld\n", (long long)q.reserve);

	if (qo->fleet) {
		const struct pobox_quota_fleet *f = &q.fleet;
		head(out, "pobox_fleet_reachable", "gauge", "1 when the fleet coordinator answered the last attempt.");
		fprintf(out, "pobox_fleet_reachable %d\n", f->reachable);
		head(out, "pobox_fleet_budget_calls", "gauge", "The fleet account's single-call budget per window, margin not taken off.");
		fprintf(out, "pobox_fleet_budget_calls %lld\n", (long long)f->account_budget);
		head(out, "pobox_fleet_margin_calls", "gauge", "The part of the account's budget the fleet never uses.");
		fprintf(out, "pobox_fleet_margin_calls %lld\n", (long long)f->margin);
		head(out, "pobox_fleet_used_calls", "gauge", "Single calls the whole fleet had used in the window, at the last answer.");
		fprintf(out, "pobox_fleet_used_calls %lld\n", (long long)f->fleet_used);
		head(out, "pobox_fleet_hosts", "gauge", "Hosts the coordinator has seen in the window.");
		fprintf(out, "pobox_fleet_hosts %lld\n", (long long)f->hosts);
		head(out, "pobox_fleet_lease_left_calls", "gauge", "Single calls this host holds in open leases.");
		fprintf(out, "pobox_fleet_lease_left_calls %lld\n", (long long)f->lease_left);
		head(out, "pobox_fleet_reserve_left_calls", "gauge", "Single calls left in this host's standing reserve.");
		fprintf(out, "pobox_fleet_reserve_left_calls %lld\n", (long long)f->reserve_left);
		head(out, "pobox_fleet_learning", "gauge", "1 while the coordinator re-learns after losing data.");
		fprintf(out, "pobox_fleet_learning %d\n", f->learning);
		head(out, "pobox_fleet_last_contact_timestamp_seconds", "gauge", "Unix time of the coordinator's last answer (0: never).");
		fprintf(out, "pobox_fleet_last_contact_timestamp_seconds %.3f\n", (double)f->last_contact_ms / 1000.0);
		head(out, "pobox_fleet_round_trips_total", "counter", "Round trips to the coordinator that got an answer.");
		fprintf(out, "pobox_fleet_round_trips_total %lld\n", (long long)f->requests);
	}
	last = s.last_delivery_ms;
	head(out, "pobox_last_delivery_timestamp_seconds", "gauge",
	     "Unix time of the last confirmed delivery (0: never).");
	fprintf(out, "pobox_last_delivery_timestamp_seconds %.3f\n", (double)last / 1000.0);
	head(out, "pobox_outbox_size_bytes", "gauge", "Size of the outbox file and its write-ahead log.");
	fprintf(out, "pobox_outbox_size_bytes %lld\n", (long long)s.file_bytes);

	head(out, "pobox_lane_paused", "gauge", "1 while a lane is paused (throttled, budget, auth, config).");
	for (int l = 0; l < 2; l++) {
		const char *lane = l ? "single" : "bulk";
		int64_t until = 0;
		if ((rc = pobox_store_lane_get(pb->st, lane, &until, NULL, 0, NULL, 0)) != 0)
			return rc;
		fprintf(out, "pobox_lane_paused{lane=\"%s\"} %d\n", lane, until > now);
	}
	if ((rc = verify_metrics(pb, out)) != 0)
		return rc;
	return ferror(out) ? POBOX_EIO : 0;
}

int pobox_metrics_file(struct pobox *pb, const struct pobox_quota_opts *qo, const char *path)
{
	char tmp[4096], dir[4096];
	int fd = -1, rc;
	FILE *fp = NULL;
	snprintf(tmp, sizeof tmp, "%s.XXXXXX", path);
	if ((fd = mkstemp(tmp)) < 0)
		return pobox_errf(pb->err, sizeof pb->err, POBOX_EIO, "metrics file %s: %s", path, strerror(errno));
	fchmod(fd, 0644);
	if (!(fp = fdopen(fd, "w"))) {
		close(fd);
		unlink(tmp);
		return pobox_errf(pb->err, sizeof pb->err, POBOX_EIO, "metrics file %s: %s", path, strerror(errno));
	}
	rc = pobox_metrics_write(pb, qo, fp);
	if (rc == 0 && (fflush(fp) != 0 || fsync(fileno(fp)) != 0))
		rc = pobox_errf(pb->err, sizeof pb->err, POBOX_EIO, "metrics file %s: %s", tmp, strerror(errno));
	if (fclose(fp) != 0 && rc == 0)
		rc = pobox_errf(pb->err, sizeof pb->err, POBOX_EIO, "metrics file %s: %s", tmp, strerror(errno));
	if (rc == 0 && rename(tmp, path) != 0)
		rc = pobox_errf(pb->err, sizeof pb->err, POBOX_EIO, "metrics file %s: %s", path, strerror(errno));
	if (rc != 0) {
		unlink(tmp);
		return rc;
	}
	/* the rename itself survives a crash once the directory is synced */
	snprintf(dir, sizeof dir, "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash)
		*(slash == dir ? slash + 1 : slash) = '\0';
	else
		snprintf(dir, sizeof dir, ".");
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}
