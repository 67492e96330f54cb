/*
 * outpath.h - the files pobox writes besides the outbox (the reject file of
 * `import`, the metrics file of `run`) may never be the outbox itself, a file
 * of its family, or one of the command's inputs: opening one of them for
 * writing would truncate or replace it (issue: `--reject-file o.db` emptied
 * the outbox, `metrics_file` equal to the outbox's path replaced it).
 *
 * The family of outbox PATH: PATH, PATH-wal, PATH-shm, PATH-journal (SQLite's
 * files), PATH-deliver.lock (the delivery lock) and PATH-corrupt (the damage
 * marker).  Files that exist are compared by device and inode, so hard links
 * and symbolic links are caught; a path that does not exist yet is compared
 * after resolving its directory (and any symbolic links on the way), so
 * "./o.db", "dir/../o.db" and a link to o.db are one file.
 *
 * Owns no state.  Callers check before opening anything for writing.
 */
#ifndef POBOX_OUTPATH_H
#define POBOX_OUTPATH_H

#include <stddef.h>

/* The suffixes of an outbox's family, NULL-terminated ("" is the outbox). */
extern const char *const pobox_outbox_family[];

/* Checks that `out` (what: "reject file", "metrics_file") is none of the
 * outbox's family (outbox may be NULL: not known yet) and none of
 * inputs[0..ninputs) (NULL entries skipped), nor
 * the file open as input_fd (-1: none; for stdin redirected from a file).
 * Returns 0, or POBOX_EINVALID with the reason in err. */
int pobox_outpath_check(const char *out, const char *what, const char *outbox,
                        const char *const *inputs, size_t ninputs, int input_fd, char *err,
                        size_t errlen);

#endif
