/*
 * ims.h - the two HTTP exchanges behind an IMS-minted profile token
 * (target-api.md section 5):
 *
 *   1. Adobe IMS, OAuth Server-to-Server: POST {ims}/ims/token/v3, a form
 *      body grant_type=client_credentials&client_id&client_secret&scope
 *      -> {"access_token", "token_type": "bearer", "expires_in": seconds};
 *      errors {"error", "error_description"}.
 *   2. Target Admin API: GET (retrieve the existing one) or POST (create a
 *      new one, which invalidates the old)
 *      {admin}/{tenant}/target/authentication/token?authorizationScope=profile_api
 *      with Authorization: Bearer <IMS token>, X-Api-Key: <client id> and
 *      Accept: application/vnd.adobe.target.v1+json
 *      -> {"accessToken", "tokenType", "scope", "expiresIn"}; errors the
 *      ErrorResponse {httpStatus, requestId, requestTime,
 *      errors: [{errorCode, message}]}.
 *
 * Owns: building these requests, reading the answers (json.h), and one-line
 * reasons naming the step ("IMS token: POST https://.../ims/token/v3: HTTP
 * 401 invalid_client: invalid client_secret parameter").  It does not
 * cache, decide when to ask, or log (credentials.c does).
 *
 * expiresIn: its unit is not documented.  It is read as seconds, as IMS's
 * expires_in is; a value over ten years' worth of seconds is taken to be
 * milliseconds.  A misreading shows as an early 401, after which the token
 * is fetched again, so it costs a call, never data.
 *
 * Secrets: the client secret and both tokens appear only in request bodies
 * and headers (which http.c wipes) and in the strings handed back.
 */
#ifndef POBOX_IMS_H
#define POBOX_IMS_H

#include "http.h"

#include <stddef.h>
#include <stdint.h>

struct pobox_ims_opts {
	const char *client_id;
	const char *client_secret;
	const char *scopes;
	const char *tenant;
	const char *ims_base_url;    /* no trailing slash needed */
	const char *admin_base_url;
};

/* Step 1.  On success *token (pobox_free after wiping) and *lifetime_ms.
 * Returns 0, POBOX_ETRANSIENT (no answer, 5xx, 429), POBOX_EPERMANENT
 * (refused, malformed), POBOX_ENOMEM; reason in err. */
int pobox_ims_token(struct pobox_http *h, const struct pobox_ims_opts *o, char **token,
                    int64_t *lifetime_ms, char *err, size_t errlen);

/* Step 2 with method GET or POST.  *http_status is the answer's status (0:
 * none), so the caller can tell "none exists" (404 to a GET) and "the IMS
 * token was refused" (401) from other failures.  Returns as above. */
int pobox_admin_token(struct pobox_http *h, const struct pobox_ims_opts *o, const char *ims_token,
                      enum pobox_http_method method, char **token, int64_t *lifetime_ms,
                      long *http_status, char *err, size_t errlen);

#endif
