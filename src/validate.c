/*
 * validate.c - the update rules (see validate.h for the list).
 *
 * This module owns what makes an update acceptable; it does not know where
 * updates are stored.  Messages quote the offending input so an operator can
 * find it, shortened and with control characters escaped so a hostile value
 * cannot forge log lines.
 */
#include "validate.h"
#include "error.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

const char *const pobox_reserved_attributes[] = {
	/* Target's own profile data (names Target and its integrators list as
	 * colliding with built-in attributes) */
	"averageDaysBetweenVisits", "browserTime", "geolocation", "mobile",
	"parameter", "sessionCount", "user",
	/* profile id parameter names */
	"pcId", "thirdPartyId", "mbox3rdPartyId", "mboxPC", "tntId",
	"marketingCloudVisitorId",
	NULL,
};

/* Characters allowed in an attribute name.  Target documents no character
 * set; these are the ones that survive every path unchanged (a bulk header
 * cell, a profile.<name> query parameter, a JSON key in the fetch API) and
 * cover the names real exports use (camelCase, snake_case, kebab-case,
 * dotted namespaces).  Anything else is refused rather than mangled. */
static const unsigned char attr_char[256] = {
	['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1,
	['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
	['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1,
	['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1,
	['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,
	['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
	['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1,
	['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1,
	['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1,
	['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
	['_'] = 1, ['-'] = 1, ['.'] = 1,
};

const char *pobox_quote(char *buf, size_t buflen, const char *s, size_t len)
{
	const size_t max_shown = 48;
	size_t o = 0;
	if (buflen < 8) {
		if (buflen)
			buf[0] = '\0';
		return buf;
	}
	/* Valid UTF-8 is shown as is (readable names and values); in text that
	 * is not, every non-ASCII byte is escaped so the message itself stays
	 * valid UTF-8. */
	int escape_high = !pobox_utf8_valid(s, len, NULL, NULL);
	buf[o++] = '\'';
	for (size_t i = 0; i < len && i < max_shown && o + 6 < buflen; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f || c == '\'' || c == '\\' || (escape_high && c >= 0x80))
			o += (size_t)snprintf(buf + o, buflen - o, "\\x%02x", c);
		else
			buf[o++] = (char)c;
	}
	buf[o++] = '\'';
	if (len > max_shown && o + 4 < buflen) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
	return buf;
}

int pobox_utf8_valid(const char *s, size_t len, size_t *chars, size_t *bad_at)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, n = 0;
	while (i < len) {
		unsigned char c = p[i];
		size_t need;
		unsigned int cp, min;
		if (c < 0x80) {
			i++;
			n++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			need = 1, cp = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			need = 2, cp = c & 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			need = 3, cp = c & 0x07, min = 0x10000;
		} else {
			goto bad;
		}
		if (len - i <= need)
			goto bad;
		for (size_t k = 1; k <= need; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				goto bad;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			goto bad;
		i += need + 1;
		n++;
	}
	if (chars)
		*chars = n;
	return 1;
bad:
	if (bad_at)
		*bad_at = i;
	return 0;
}

int pobox_id_type_parse(const char *name, enum pobox_id_type *out, char *err, size_t errlen)
{
	static const struct {
		const char *name;
		enum pobox_id_type type;
	} names[] = {
		{"pcId", POBOX_ID_PCID},
		{"mboxPC", POBOX_ID_PCID},
		{"tntId", POBOX_ID_PCID},
		{"thirdPartyId", POBOX_ID_THIRDPARTY},
		{"mbox3rdPartyId", POBOX_ID_THIRDPARTY},
	};
	static const char *const ecid[] = {"ECID", "MCID", "MCVID", "marketingCloudVisitorId"};
	char q[80];

	if (!name || !*name)
		return pobox_errf(err, errlen, POBOX_EINVALID,
		                  "id type is missing: use thirdPartyId or pcId");
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		if (strcasecmp(name, names[i].name) == 0) {
			*out = names[i].type;
			return 0;
		}
	}
	for (size_t i = 0; i < sizeof ecid / sizeof ecid[0]; i++) {
		if (strcasecmp(name, ecid[i]) == 0)
			return pobox_errf(err, errlen, POBOX_EINVALID,
			                  "id type %s: ECID (marketingCloudVisitorId) is not supported by "
			                  "Target's profile update APIs; key updates by thirdPartyId or pcId",
			                  pobox_quote(q, sizeof q, name, strlen(name)));
	}
	return pobox_errf(err, errlen, POBOX_EINVALID,
	                  "unknown id type %s: use thirdPartyId (alias mbox3rdPartyId) "
	                  "or pcId (aliases mboxPC, tntId)",
	                  pobox_quote(q, sizeof q, name, strlen(name)));
}

const char *pobox_id_type_name(enum pobox_id_type t)
{
	return t == POBOX_ID_PCID ? "pcId" : t == POBOX_ID_THIRDPARTY ? "thirdPartyId" : "?";
}

int pobox_validate_profile_id(enum pobox_id_type t, const char *id, size_t len,
                              char *err, size_t errlen)
{
	char q[160];
	size_t bad;

	if (t != POBOX_ID_PCID && t != POBOX_ID_THIRDPARTY)
		return pobox_errf(err, errlen, POBOX_EINVALID, "id type is not pcId or thirdPartyId");
	if (!id || len == 0)
		return pobox_errf(err, errlen, POBOX_EINVALID, "profile id is empty");
	if (len > POBOX_MAX_ID_BYTES)
		return pobox_errf(err, errlen, POBOX_EINVALID,
		                  "profile id %s is %zu bytes; Target's limit is %d",
		                  pobox_quote(q, sizeof q, id, len), len, POBOX_MAX_ID_BYTES);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)id[i];
		if (c == 0)
			return pobox_errf(err, errlen, POBOX_EINVALID,
			                  "profile id %s contains a NUL byte at byte offset %zu",
			                  pobox_quote(q, sizeof q, id, len), i);
		if (c < 0x20 || c == 0x7f)
			return pobox_errf(err, errlen, POBOX_EINVALID,
			                  "profile id %s contains a control character at byte %zu",
			                  pobox_quote(q, sizeof q, id, len), i);
		if (t == POBOX_ID_THIRDPARTY && (c == '+' || c == '/'))
			return pobox_errf(err, errlen, POBOX_EINVALID,
			                  "thirdPartyId %s contains '%c'; Target refuses '+' and '/' in "
			                  "an mbox3rdPartyId",
			                  pobox_quote(q, sizeof q, id, len), c);
	}
	if (!pobox_utf8_valid(id, len, NULL, &bad))
		return pobox_errf(err, errlen, POBOX_EINVALID,
		                  "profile id %s is not valid UTF-8 (at byte %zu)",
		                  pobox_quote(q, sizeof q, id, len), bad);
	return 0;
}

int pobox_validate_attr(const char *attr, size_t len, const char **name, size_t *name_len,
                        char *err, size_t errlen)
{
	char q[160];
	const char *n = attr;
	size_t nl = len;

	if (nl >= 8 && memcmp(n, "profile.", 8) == 0) {
		n += 8;
		nl -= 8;
	}
	if (!attr || nl == 0)
		return pobox_errf(err, errlen, POBOX_EINVALID, "attribute name is empty");
	if (nl > POBOX_MAX_ATTR_BYTES)
		return pobox_errf(err, errlen, POBOX_EINVALID,
		                  "attribute name %s is %zu bytes; the limit is %d",
		                  pobox_quote(q, sizeof q, n, nl), nl, POBOX_MAX_ATTR_BYTES);
	for (size_t i = 0; i < nl; i++) {
		unsigned char c = (unsigned char)n[i];
		if (c == 0)
			return pobox_errf(err, errlen, POBOX_EINVALID,
			                  "attribute name %s contains a NUL byte at byte offset %zu",
			                  pobox_quote(q, sizeof q, n, nl), (size_t)(n - attr) + i);
		if (!attr_char[c])
			return pobox_errf(err, errlen, POBOX_EINVALID,
			                  "attribute name %s: character %zu is not allowed; names use "
			                  "letters, digits, '_', '-' and '.'",
			                  pobox_quote(q, sizeof q, n, nl), i + 1);
		if (c == '.' && (i == 0 || i == nl - 1 || n[i + 1] == '.'))
			return pobox_errf(err, errlen, POBOX_EINVALID,
			                  "attribute name %s: '.' may only separate parts of a name",
			                  pobox_quote(q, sizeof q, n, nl));
	}
	for (size_t i = 0; pobox_reserved_attributes[i]; i++) {
		if (strlen(pobox_reserved_attributes[i]) == nl &&
		    memcmp(pobox_reserved_attributes[i], n, nl) == 0)
			return pobox_errf(err, errlen, POBOX_EINVALID,
			                  "attribute name %s is reserved by Target or names a profile id; "
			                  "rename it",
			                  pobox_quote(q, sizeof q, n, nl));
	}
	if (name)
		*name = n;
	if (name_len)
		*name_len = nl;
	return 0;
}

int pobox_validate_value(const char *value, size_t len, int max_chars, char *err, size_t errlen)
{
	char q[160];
	size_t chars, bad;

	if (!value || len == 0)
		return POBOX_SKIPPED;
	/* UTF-8 allows U+0000, but Target's files and URLs cannot carry it
	 * (it would go out as %00) and C strings end at it */
	const char *nul = memchr(value, '\0', len);
	if (nul)
		return pobox_errf(err, errlen, POBOX_EINVALID,
		                  "value %s contains a NUL byte at byte offset %zu",
		                  pobox_quote(q, sizeof q, value, len), (size_t)(nul - value));
	if (!pobox_utf8_valid(value, len, &chars, &bad))
		return pobox_errf(err, errlen, POBOX_EINVALID,
		                  "value %s is not valid UTF-8 (at byte %zu)",
		                  pobox_quote(q, sizeof q, value, len), bad);
	if (max_chars > 0 && chars > (size_t)max_chars)
		return pobox_errf(err, errlen, POBOX_EINVALID,
		                  "value %s is %zu characters; the limit is %d (max_value_chars)",
		                  pobox_quote(q, sizeof q, value, len), chars, max_chars);
	return 0;
}
