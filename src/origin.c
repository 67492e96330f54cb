/*
 * origin.c - the Target origin family (see origin.h).
 *
 * Owns: parsing the authority of an http(s) URL strictly enough that what
 * is checked here is what libcurl will connect to (no user:password@, no
 * percent-encoded or exotic host characters, no blanks that a URL parser
 * might trim), and the rule of which status URLs may be asked with the
 * token.  It does not fetch anything and knows nothing of batches.
 */
#include "origin.h"
#include "alloc.h"
#include "error.h"
#include "pobox.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static int is_host_char(int c)
{
	return isalnum(c) || c == '-' || c == '.';
}

/* The loopback names of the one machine. */
static int loopback_name(const char *h)
{
	return strcmp(h, "127.0.0.1") == 0 || strcmp(h, "localhost") == 0 || strcmp(h, "::1") == 0;
}

/* host is a DNS name under tt.omtrdc.net with a non-empty first part. */
static int target_edge(const char *h)
{
	size_t n = strlen(h), sn = strlen(POBOX_TARGET_EDGE_SUFFIX);
	return n > sn && strcmp(h + n - sn, POBOX_TARGET_EDGE_SUFFIX) == 0 && h[n - sn - 1] != '.' &&
	       h[0] != '.' && !strstr(h, "..");
}

/* The host of the authority at a[0..n): a name or an IPv6 literal. */
static int parse_host(struct pobox_origin *o, const char *a, size_t n, size_t *used, char *err,
                      size_t errlen)
{
	size_t i = 0, h = 0;
	if (n && a[0] == '[') {
		for (i = 1; i < n && a[i] != ']'; i++)
			if (!isxdigit((unsigned char)a[i]) && a[i] != ':' && a[i] != '.')
				return pobox_errf(err, errlen, POBOX_EINVALID, "bad IPv6 address in the URL");
		if (i == n || i == 1 || i - 1 >= sizeof o->host)
			return pobox_errf(err, errlen, POBOX_EINVALID, "bad IPv6 address in the URL");
		memcpy(o->host, a + 1, i - 1);
		h = i - 1;
		i++;
	} else {
		while (i < n && is_host_char((unsigned char)a[i]))
			i++;
		if (i == 0 || i >= sizeof o->host)
			return pobox_errf(err, errlen, POBOX_EINVALID, "no host name in the URL");
		for (h = 0; h < i; h++)
			o->host[h] = (char)tolower((unsigned char)a[h]);
		if (h > 1 && o->host[h - 1] == '.')
			h--; /* "host." is the same name as "host" */
	}
	o->host[h] = '\0';
	*used = i;
	return 0;
}

/* ":port" (or nothing) at a[0..n). */
static int parse_port(struct pobox_origin *o, const char *a, size_t n, char *err, size_t errlen)
{
	long port = 0;
	o->port = o->https ? 443 : 80;
	if (n == 0)
		return 0;
	if (a[0] != ':' || n == 1 || n > 6)
		return pobox_errf(err, errlen, POBOX_EINVALID, "bad port in the URL");
	for (size_t i = 1; i < n; i++) {
		if (!isdigit((unsigned char)a[i]))
			return pobox_errf(err, errlen, POBOX_EINVALID, "bad port in the URL");
		port = port * 10 + (a[i] - '0');
	}
	if (port < 1 || port > 65535)
		return pobox_errf(err, errlen, POBOX_EINVALID, "bad port in the URL");
	o->port = (int)port;
	o->explicit_port = 1;
	return 0;
}

int pobox_origin_parse(struct pobox_origin *o, const char *url, char *err, size_t errlen)
{
	size_t start, n, used = 0;
	int rc;
	memset(o, 0, sizeof *o);
	for (const char *p = url; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f || *p == '\\')
			return pobox_errf(err, errlen, POBOX_EINVALID,
			                  "the URL contains a blank, a backslash or a control character");
	if (strncasecmp(url, "https://", 8) == 0) {
		o->https = 1;
		start = 8;
	} else if (strncasecmp(url, "http://", 7) == 0) {
		start = 7;
	} else {
		return pobox_errf(err, errlen, POBOX_EINVALID, "not an http:// or https:// URL");
	}
	n = strcspn(url + start, "/?#");
	if (memchr(url + start, '@', n))
		return pobox_errf(err, errlen, POBOX_EINVALID, "the URL names a user or password");
	if ((rc = parse_host(o, url + start, n, &used, err, errlen)) != 0 ||
	    (rc = parse_port(o, url + start + used, n - used, err, errlen)) != 0)
		return rc;
	o->host_at = start;
	o->host_len = used;
	o->rest = start + n;
	o->loopback = loopback_name(o->host);
	o->target_edge = target_edge(o->host);
	return 0;
}

int pobox_origin_same(const struct pobox_origin *a, const struct pobox_origin *b)
{
	return a->https == b->https && a->port == b->port &&
	       (strcmp(a->host, b->host) == 0 || (a->loopback && b->loopback));
}

/* "host:port" for messages. */
static void where(char *buf, size_t len, const struct pobox_origin *o)
{
	int v6 = strchr(o->host, ':') != NULL;
	snprintf(buf, len, "%s://%s%s%s:%d", o->https ? "https" : "http", v6 ? "[" : "", o->host,
	         v6 ? "]" : "", o->port);
}

int pobox_origin_status_url(const char *base_url, const char *status_url, char **out, char *err,
                            size_t errlen)
{
	struct pobox_origin b, s;
	char why[200], bw[300], sw[300];
	*out = NULL;
	if (pobox_origin_parse(&b, base_url, why, sizeof why) != 0)
		return pobox_errf(err, errlen, POBOX_EINVALID, "base_url: %s", why);
	if (pobox_origin_parse(&s, status_url, why, sizeof why) != 0)
		return pobox_errf(err, errlen, POBOX_EINVALID, "status URL refused: %s", why);
	where(bw, sizeof bw, &b);
	where(sw, sizeof sw, &s);
	if (pobox_origin_same(&b, &s)) {
		*out = pobox_strdup(status_url);
	} else if (b.target_edge && s.target_edge && s.port == (s.https ? 443 : 80)) {
		/* the documented edge URLs are http://: ask them like base_url */
		if (b.https && !s.https) {
			size_t n = strlen("https://") + s.host_len + strlen(status_url + s.rest) + 1;
			if ((*out = pobox_malloc(n)) != NULL)
				snprintf(*out, n, "https://%.*s%s", (int)s.host_len, status_url + s.host_at,
				         status_url + s.rest);
		} else {
			*out = pobox_strdup(status_url);
		}
	} else {
		return pobox_errf(err, errlen, POBOX_EINVALID,
		                  "status URL refused: it names %s, outside the configured Target "
		                  "origin (%s%s), so the token is not sent there",
		                  sw, bw, b.target_edge ? " or hosts under tt.omtrdc.net" : "");
	}
	return *out ? 0 : pobox_errf(err, errlen, POBOX_ENOMEM, "out of memory");
}
