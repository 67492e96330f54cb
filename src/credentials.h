/*
 * credentials.h - the profile API bearer token: where it comes from, how
 * long it lives, and getting a new one.
 *
 * Owns: the one token delivery sends, from one of three sources --
 *
 *   token_file     a static token in a mode-600 file (re-read after a 401/403,
 *                  in case the operator replaced it)
 *   token_command  the operator's command (tokencmd.h), run when a token is
 *                  first needed, again before the expiry it stated, and once
 *                  after Target refuses the token
 *   IMS OAuth      Adobe IMS client-credentials grant (OAuth Server-to-Server,
 *                  Developer Console), then Target's Admin API
 *                  GET (retrieve) or POST (create)
 *                  {admin}/{tenant}/target/authentication/token
 *                  ?authorizationScope=profile_api
 *                  with the IMS token and the client id as X-Api-Key
 *
 * -- its lifetime and refresh time, and for IMS a cache of both tokens
 * next to the outbox (mode 600, written crash-safely: temp file, fsync,
 * rename, fsync of the directory) shared by every process on the outbox: a
 * process that needs a token reads the cache; one that must mint takes
 * "<cache>.lock" first, and after getting it reads the cache again, so
 * several processes starting at once mint once.
 *
 * Refresh, per process:
 *
 *      none --first use--> current --now >= refresh_at--> refresh
 *                             |                              |ok: current'
 *                             |                              |failed, still valid:
 *                             |                              |  keep it (warn), retry
 *                             |                              |  after min_interval
 *                             |                              |failed, expired: error
 *                             |--Target refused it (401/403)--> refresh once
 *                                   (a token already replaced: use the new one;
 *                                    obtained less than min_interval ago: error)
 *
 * refresh_at = expiry - max(60 s, min(1 h, lifetime / 10)); a token without a
 * stated expiry is refreshed only when refused.  A token_command is never run
 * (and IMS never asked) more often than once per min_interval by one process.
 *
 * Secrets: tokens and the client secret are never logged, never put in an
 * error text, wiped from memory when replaced or freed; the cache is the
 * only file that holds them.  Log lines give the source, lifetime, expiry
 * and refresh time.
 *
 * Threads: a struct pobox_cred belongs to one thread (the delivery loop's).
 * It may run a command or make HTTP calls inside pobox_cred_token and
 * pobox_cred_refused: never call them inside an outbox transaction.
 * Ownership: reference-counted (pobox_cred_ref / pobox_cred_free), so a
 * deliverer can hold the credentials it was made with across a reload.
 */
#ifndef POBOX_CREDENTIALS_H
#define POBOX_CREDENTIALS_H

#include "clock.h"

#include <stddef.h>
#include <stdint.h>

#define POBOX_IMS_DEFAULT_BASE "https://ims-na1.adobelogin.com"
#define POBOX_ADMIN_DEFAULT_BASE "https://mc.adobe.io"

enum pobox_cred_source {
	POBOX_CRED_NONE = 0,   /* no Authorization header */
	POBOX_CRED_FILE,
	POBOX_CRED_COMMAND,
	POBOX_CRED_IMS,
};

/* Strings are copied.  At most one of token_file, token_command and
 * ims_client_id may be set. */
struct pobox_cred_opts {
	const char *token_file;
	const char *token_command;
	int64_t command_timeout_ms;       /* default 30 s */
	const char *ims_client_id;
	const char *ims_client_secret_file;
	const char *ims_scopes;           /* comma list, as the Developer Console shows it */
	const char *tenant;               /* the Admin API's {tenant} */
	const char *ims_base_url;         /* NULL: POBOX_IMS_DEFAULT_BASE */
	const char *admin_base_url;       /* NULL: POBOX_ADMIN_DEFAULT_BASE */
	const char *cache_path;           /* IMS only; NULL: no cache shared with other processes */
	int64_t min_interval_ms;          /* default 60 s */
	int64_t connect_timeout_ms, request_timeout_ms;
	int verify_tls;
	const char *ca_file;
	const struct pobox_clock *clock;  /* NULL: the real clock; borrowed */
};

struct pobox_cred;

/* Checks the options (POBOX_ECONFIG with the key to fix), reads token_file
 * or the client secret file (refused when others may read it), splits the
 * command.  Nothing is run or asked yet.  Returns 0 and *out (one
 * reference), or a negative code with the reason in err. */
int pobox_cred_new(struct pobox_cred **out, const struct pobox_cred_opts *o, char *err,
                   size_t errlen);
/* Another reference; returns c (NULL stays NULL). */
struct pobox_cred *pobox_cred_ref(struct pobox_cred *c);
/* Drops a reference; the last one frees and wipes everything.  NULL: no-op. */
void pobox_cred_free(struct pobox_cred *c);

enum pobox_cred_source pobox_cred_source(const struct pobox_cred *c);
/* "none", "token_file", "token_command", "ims". */
const char *pobox_cred_source_name(enum pobox_cred_source s);

/* The token to send now, getting or refreshing it when due (may block for
 * the command's timeout or a few HTTP calls).  *token is borrowed until the
 * next call (NULL for POBOX_CRED_NONE); *gen changes whenever the token does.
 * Returns 0, or a negative code with a one-line reason naming the step that
 * failed ("token_command exited with status 2", "IMS token: POST
 * https://.../ims/token/v3: HTTP 401 invalid_client: ...") when no usable
 * token could be had. */
int pobox_cred_token(struct pobox_cred *c, const char **token, uint64_t *gen, char *err,
                     size_t errlen);

/* Target refused the token of generation gen (401/403).  Returns 0 when a
 * different token is now current (the caller retries with it at once), or
 * a negative code with the reason (then pause: the refresh did not help). */
int pobox_cred_refused(struct pobox_cred *c, uint64_t gen, char *err, size_t errlen);

struct pobox_cred_info {
	enum pobox_cred_source source;
	int have;                  /* a token is in hand */
	const char *origin;        /* "file", "command", "cache", "admin_api GET", "admin_api POST" */
	int64_t obtained_at_ms;
	int64_t expires_at_ms;     /* -1: no stated expiry */
	int64_t refresh_at_ms;     /* -1: only when refused */
	int64_t ims_expires_at_ms; /* IMS: the IMS token's, -1 none */
	uint64_t mints;            /* commands run / IMS+Admin API round trips by this process */
};
void pobox_cred_info(const struct pobox_cred *c, struct pobox_cred_info *out);

#endif
