/*
 * sim_auth -- the simulated Adobe credentials: the IMS token endpoint, the
 * Target Admin API's profile-token endpoint, and the profile tokens the
 * profile endpoints accept.
 *
 * Owns: the IMS access tokens issued (the last SIM_AUTH_IMS_KEEP, each with
 * its expiry), the profile_api token the Admin API retrieves or creates
 * (one current token; creating a new one supersedes it, as regenerating it
 * in the Target UI does), and the exact bytes of both endpoints' answers
 * (target-api.md section 5: IMS `{access_token, token_type, expires_in}`
 * and `{error, error_description}`; Admin API `{accessToken, tokenType,
 * scope, expiresIn}` and the ErrorResponse `{httpStatus, requestId,
 * requestTime, errors:[{errorCode, message}]}`).  Every lifetime runs on
 * the simulated clock (sim_clock), so with --clock-scale a token expires
 * sooner in real time than its expires_in says.
 *
 * It does not route, fault or count requests (sim_server does) and decides
 * nothing about the static --token; sim_server asks sim_auth_profile_check
 * only for a bearer that is not the static token.
 *
 * Threads: every function may be called from any server thread; the state
 * is behind one mutex.
 */
#ifndef SIM_AUTH_H
#define SIM_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "sim_buf.h"
#include "sim_config.h"
#include "sim_counters.h"

#define SIM_AUTH_IMS_KEEP 64
#define SIM_AUTH_PROFILE_KEEP 16

/* An answer for sim_server to send.  body is owned by the struct (the
 * server steals it); www_auth is a static string or NULL. */
struct sim_auth_answer {
	unsigned status;
	const char *ctype;
	struct sim_buf body;
	const char *www_auth;
	enum sim_outcome outcome;
};

/* POST /ims/token/v3: the form parameters from the query and the body (the
 * body wins).  is_post 0: 405. */
void sim_auth_ims_request(const struct sim_config *cfg, int is_post, const char *query,
                          size_t query_len, const char *body, size_t body_len,
                          struct sim_auth_answer *a);

/* The request headers the Admin API looks at (NULL when absent). */
struct sim_admin_headers {
	const char *authorization;
	const char *api_key;
	const char *accept;
};

/* GET (retrieve) / POST (create) /{tenant}/target/authentication/token
 * ?authorizationScope=profile_api.  method: 0 GET, 1 POST, -1 other. */
void sim_auth_admin_request(const struct sim_config *cfg, int method, const char *tenant,
                            size_t tenant_len, const char *query, size_t query_len,
                            const struct sim_admin_headers *h, struct sim_auth_answer *a);

/* An Admin API ErrorResponse (for answers sim_server decides, e.g. the
 * shared per-minute limit). */
void sim_auth_admin_error(struct sim_auth_answer *a, unsigned status, const char *code,
                          const char *msg);

enum sim_token_state {
	SIM_TOKEN_UNKNOWN,   /* never issued, or superseded by a newer one: 403 */
	SIM_TOKEN_VALID,
	SIM_TOKEN_EXPIRED,   /* issued, past its expiry: 401 */
};

/* Whether a bearer token is a profile_api token the Admin API issued. */
enum sim_token_state sim_auth_profile_check(const char *token, size_t len, int64_t now_ms);

/* Control: `what` is "profile" (the current profile token expires now),
 * "revoke" (it is superseded: 403 from now on; the Admin API has none until
 * one is created), "ims" (every IMS token expires now).  0, or -1 for an
 * unknown word. */
int sim_auth_control(const char *what, size_t len);
/* The state for tests (GET /_sim/auth): tokens, expiries, counts. */
int sim_auth_json(struct sim_buf *out);
void sim_auth_reset(void);

#endif
