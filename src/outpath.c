/*
 * outpath.c - refusing output files that are the outbox or an input (see
 * outpath.h).
 */
#include "outpath.h"
#include "error.h"
#include "pobox.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *const pobox_outbox_family[] = {
	"", "-wal", "-shm", "-journal", "-deliver.lock", "-corrupt", NULL,
};

enum { PATHLEN = 4096 };

/* The absolute path `p` names once symbolic links in its last component
 * and its directory are followed; for a path whose directory does not exist
 * the text itself (it cannot be opened either).  Writes at most PATHLEN. */
static void resolve(const char *p, char *out)
{
	char cur[PATHLEN], link[PATHLEN], dir[PATHLEN];
	struct stat sb;
	snprintf(cur, sizeof cur, "%s", p);
	/* a dangling link is followed by hand: opening it for writing would
	 * create its target */
	for (int hops = 0; hops < 40 && lstat(cur, &sb) == 0 && S_ISLNK(sb.st_mode); hops++) {
		ssize_t n = readlink(cur, link, sizeof link - 1);
		if (n <= 0)
			break;
		link[n] = '\0';
		if (link[0] == '/') {
			snprintf(cur, sizeof cur, "%s", link);
		} else {
			char *slash = strrchr(cur, '/');
			if (slash) {
				slash[1] = '\0';
				if (strlen(cur) + (size_t)n >= sizeof cur)
					break;
				strcat(cur, link);
			} else {
				snprintf(cur, sizeof cur, "%s", link);
			}
		}
	}
	const char *slash = strrchr(cur, '/');
	const char *base = slash ? slash + 1 : cur;
	if (!slash)
		snprintf(dir, sizeof dir, ".");
	else if (slash == cur)
		snprintf(dir, sizeof dir, "/");
	else
		snprintf(dir, sizeof dir, "%.*s", (int)(slash - cur), cur);
	char real[PATH_MAX];
	size_t rl;
	if (realpath(dir, real) && (rl = strlen(real)) + strlen(base) + 2 <= PATHLEN) {
		memcpy(out, real, rl);
		if (rl > 1)
			out[rl++] = '/';
		strcpy(out + rl, base);
	} else {
		snprintf(out, PATHLEN, "%s", cur);
	}
}

/* 1 when a and b are one file: the same inode, or the same resolved path. */
static int same_file(const char *a, const char *b)
{
	struct stat sa, sb;
	char ra[PATHLEN], rb[PATHLEN];
	if (stat(a, &sa) == 0 && stat(b, &sb) == 0)
		return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
	resolve(a, ra);
	resolve(b, rb);
	return strcmp(ra, rb) == 0;
}

int pobox_outpath_check(const char *out, const char *what, const char *outbox,
                        const char *const *inputs, size_t ninputs, int input_fd, char *err,
                        size_t errlen)
{
	char member[PATHLEN], resolved[PATHLEN];
	struct stat so, si;
	if (outbox)
		resolve(outbox, resolved);
	for (const char *const *suffix = pobox_outbox_family; outbox && *suffix; suffix++) {
		/* the outbox's files as SQLite names them: after its path as
		 * given, and after the file it resolves to */
		for (int pass = 0; pass < 2; pass++) {
			snprintf(member, sizeof member, "%s%s", pass ? resolved : outbox, *suffix);
			if (same_file(out, member))
				return pobox_errf(err, errlen, POBOX_EINVALID,
				                  "%s %s is %s of outbox %s; writing it would destroy the "
				                  "outbox: choose another path",
				                  what, out, **suffix ? "a file" : "the file", outbox);
		}
	}
	for (size_t i = 0; i < ninputs; i++) {
		if (inputs[i] && same_file(out, inputs[i]))
			return pobox_errf(err, errlen, POBOX_EINVALID,
			                  "%s %s is the input %s; writing it would destroy what is being "
			                  "read: choose another path",
			                  what, out, inputs[i]);
	}
	if (input_fd >= 0 && fstat(input_fd, &si) == 0 && S_ISREG(si.st_mode) && stat(out, &so) == 0 &&
	    si.st_dev == so.st_dev && si.st_ino == so.st_ino)
		return pobox_errf(err, errlen, POBOX_EINVALID,
		                  "%s %s is the file being read as input; writing it would destroy it: "
		                  "choose another path",
		                  what, out);
	return 0;
}
