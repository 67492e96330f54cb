/*
 * sim_calllog -- an optional record of every call that reached a limit
 * check, with its time, for tests that judge a client fleet by what Target
 * would have counted (--call-log FILE).
 *
 * Owns: the log file and its lock.  One line per call, written when the
 * call's limit is checked (the moment Target counts it):
 *
 *   <simulated epoch ms> TAB single|bulk TAB admitted|refused
 *
 * "single" is a single-update call that got as far as the 24-hour budget
 * (valid client and id); "bulk" is a batchUpdate or batchStatus call at the
 * per-minute check.  Lines are flushed as they are written, so the file is
 * complete whenever the simulator is stopped, however it is stopped.
 */
#ifndef SIM_CALLLOG_H
#define SIM_CALLLOG_H

#include <stddef.h>
#include <stdint.h>

/* Opens path for appending.  0, or -1 with err set. */
int sim_calllog_open(const char *path, char *err, size_t err_len);
/* Records one call; does nothing when no log is open. */
void sim_calllog_add(int64_t now_ms, const char *lane, int admitted);
void sim_calllog_close(void);

#endif
