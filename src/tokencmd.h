/*
 * tokencmd.h - running the operator's token_command: the general escape
 * hatch for credentials (as git's credential helpers and AWS's
 * credential_process are), so a vault, a secrets manager or a script can
 * hand pobox its profile API token.
 *
 * Owns: splitting the command line into argv (no shell: words, quotes and
 * backslashes only; an operator who wants a shell writes `sh -c '...'`),
 * running it (stdin from /dev/null, its own process group, a timeout after
 * which the whole group is killed), reading what it prints, and judging it:
 *
 *   stdout  the token alone on one line, or a JSON object
 *           {"token": "...", "expires_at": 1767225600 | "2026-01-01T00:00:00Z",
 *            "expires_in": 3600}   (expires_* optional; expires_at wins)
 *   stderr  handed back line by line for the log; never the token's place
 *   exit    0, or the run failed
 *
 * Every failure is one line naming token_command and what went wrong (exit
 * status, signal, timeout, nothing printed, malformed JSON, no "token").
 * No message ever quotes stdout, which holds the secret.  It does not
 * decide when to run the command (credentials.c does).
 *
 * Threads: pobox_tokencmd_run forks; call it from the thread that owns the
 * delivery loop, with no other thread of the program forking at once.
 */
#ifndef POBOX_TOKENCMD_H
#define POBOX_TOKENCMD_H

#include <stddef.h>
#include <stdint.h>

#define POBOX_TOKENCMD_MAX_STDOUT (64 * 1024)

/* Splits a command line into a NULL-terminated argv (caller frees with
 * pobox_tokencmd_argv_free).  Words are separated by blanks; '...' is
 * literal; "..." is literal but for \" \\ \$ \`; a backslash outside quotes
 * takes the next character literally.  No $VAR, ~ or globs.  Returns 0,
 * POBOX_ECONFIG (empty, unterminated quote: reason in err), POBOX_ENOMEM. */
int pobox_tokencmd_split(const char *cmdline, char ***argv, char *err, size_t errlen);
void pobox_tokencmd_argv_free(char **argv);

/* Called with each stderr line of the command (without its newline, at most
 * 300 bytes, control characters replaced), at most 10 lines. */
typedef void (*pobox_tokencmd_line_fn)(void *ctx, const char *line);

struct pobox_tokencmd_result {
	char *token;            /* pobox_free, after wiping */
	int64_t expires_at_ms;  /* -1: the command named no expiry */
};

/* Runs argv with POBOX_TOKEN_REASON=<reason> added to the environment,
 * waiting at most timeout_ms.  now_ms dates expires_in.  On success fills
 * *out and returns 0; otherwise a negative code (POBOX_ETRANSIENT for a
 * timeout, POBOX_ECONFIG for everything the command did wrong, POBOX_EIO /
 * POBOX_ENOMEM for our own failures) with the reason in err. */
int pobox_tokencmd_run(char *const *argv, int64_t timeout_ms, const char *reason, int64_t now_ms,
                       pobox_tokencmd_line_fn on_stderr, void *ctx,
                       struct pobox_tokencmd_result *out, char *err, size_t errlen);

/* Judges what a command printed on stdout (exposed for the unit tests). */
int pobox_tokencmd_parse_output(const char *out, size_t len, int64_t now_ms,
                                struct pobox_tokencmd_result *res, char *err, size_t errlen);

/* Whether t is usable as a bearer token: 1 to 16 KB of printable ASCII
 * without spaces. */
int pobox_token_valid(const char *t, size_t len);

#endif
