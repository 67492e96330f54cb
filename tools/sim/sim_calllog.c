/*
 * sim_calllog -- the per-call record (see sim_calllog.h).
 */
#include "sim_calllog.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

static FILE *log_fp;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

int sim_calllog_open(const char *path, char *err, size_t err_len)
{
	log_fp = fopen(path, "a");
	if (!log_fp) {
		snprintf(err, err_len, "--call-log %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

void sim_calllog_add(int64_t now_ms, const char *lane, int admitted)
{
	if (!log_fp)
		return;
	pthread_mutex_lock(&lock);
	fprintf(log_fp, "%lld\t%s\t%s\n", (long long)now_ms, lane, admitted ? "admitted" : "refused");
	fflush(log_fp);
	pthread_mutex_unlock(&lock);
}

void sim_calllog_close(void)
{
	pthread_mutex_lock(&lock);
	if (log_fp)
		fclose(log_fp);
	log_fp = NULL;
	pthread_mutex_unlock(&lock);
}
