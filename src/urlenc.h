/*
 * urlenc.h - percent-encoding as Target's profile APIs want it: UTF-8 bytes,
 * everything but RFC 3986 unreserved characters (A-Z a-z 0-9 - . _ ~)
 * encoded as %XX, so '+', '&', '=', ',', '%' and newlines survive a
 * form-urlencoded body or a query string unchanged.
 */
#ifndef POBOX_URLENC_H
#define POBOX_URLENC_H

#include <stddef.h>

/* Bytes pobox_urlencode writes for s[0..len) (without a terminator). */
size_t pobox_urlencoded_len(const char *s, size_t len);

/* Encodes s[0..len) into out, which must hold pobox_urlencoded_len() + 1
 * bytes; returns the encoded length and NUL-terminates. */
size_t pobox_urlencode(char *out, const char *s, size_t len);

/* Decodes s[0..len) into out (at least len + 1 bytes), turning '+' into a
 * space as form decoding does.  Returns the decoded length, or (size_t)-1 on
 * a malformed escape ('%' not followed by two hex digits). */
size_t pobox_urldecode(char *out, const char *s, size_t len);

/* The value of hex digit c (0-9, a-f, A-F), or -1. */
int pobox_hexval(unsigned char c);

#endif
