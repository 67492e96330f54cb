/*
 * origin.h - where pobox may send its bearer token: the configured Target
 * origin family (DESIGN.md rule 9).
 *
 * Target's bulk answers name a batchStatus URL to poll, often on another
 * host than the one called (edge nodes such as mboxedge45.tt.omtrdc.net,
 * documented over http://).  pobox follows it, but only within the family
 * of the configured origin, because every request carries the token:
 *
 *   1. the base_url's origin: same scheme, host and port, where the
 *      loopback names 127.0.0.1, localhost and ::1 count as one host;
 *   2. when base_url's host is itself under tt.omtrdc.net (as the default
 *      https://<client>.tt.omtrdc.net is), any host under tt.omtrdc.net on
 *      the scheme's default port; an http:// one is asked over https://
 *      (same host, path and query) when base_url is https.
 *
 * Anything else is refused, and so is plain http to a host that is not a
 * loopback address unless base_url itself is plain http there (which the
 * CLI refuses when a token is configured).  This module only reads
 * strings: no DNS, no sockets.
 */
#ifndef POBOX_ORIGIN_H
#define POBOX_ORIGIN_H

#include <stddef.h>

#define POBOX_TARGET_EDGE_SUFFIX ".tt.omtrdc.net"

/* The origin of an absolute http(s) URL. */
struct pobox_origin {
	int https;          /* 1 https, 0 http */
	char host[256];     /* lower case, no trailing dot; an IPv6 literal
	                     * without its brackets */
	int port;           /* explicit, or the scheme's default */
	int explicit_port;
	int loopback;       /* 127.0.0.1, localhost or ::1 */
	int target_edge;    /* a host name under tt.omtrdc.net */
	size_t rest;        /* offset of what follows the authority ("/path?q") */
	size_t host_at, host_len; /* the host as written, brackets included */
};

/* Parses the scheme, host and port of url.  Refuses (POBOX_EINVALID, the
 * reason in err) anything but http:// or https://, user:password@, a host
 * with characters outside host names or IPv6 literals, a bad port, and
 * control characters or blanks anywhere.  0 on success. */
int pobox_origin_parse(struct pobox_origin *out, const char *url, char *err, size_t errlen);

/* Whether two origins are the same (scheme, host, port; the loopback
 * names as one host). */
int pobox_origin_same(const struct pobox_origin *a, const struct pobox_origin *b);

/* The URL to ask for status_url under base_url's family: *out (caller
 * frees with pobox_free) is status_url itself, or its https:// form for a
 * Target edge host named over http://.  Returns 0, POBOX_EINVALID when the
 * URL is outside the family (why in err, naming the host and port, never
 * the query), or POBOX_ENOMEM. */
int pobox_origin_status_url(const char *base_url, const char *status_url, char **out, char *err,
                            size_t errlen);

#endif
