/*
 * metrics.h - the Prometheus text exposition format: `pobox status
 * --prometheus`, and the file `pobox run` keeps current for
 * node_exporter's textfile collector (metrics_file).
 *
 * Metric names follow Prometheus conventions: pobox_ prefix, units in the
 * name, _total for counters.
 */
#ifndef POBOX_METRICS_H
#define POBOX_METRICS_H

#include "pobox.h"
#include "quota.h"

#include <stdio.h>

/* Writes every metric to out. */
int pobox_metrics_write(struct pobox *pb, const struct pobox_quota_opts *qo, FILE *out);

/* Writes them to path atomically: a temporary file in the same directory,
 * fsync, rename over path, fsync of the directory. */
int pobox_metrics_file(struct pobox *pb, const struct pobox_quota_opts *qo, const char *path);

#endif
