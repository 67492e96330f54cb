/*
 * fuzz_urlenc - libFuzzer harness for the percent-encoder and decoder
 * (src/urlenc.c).  Properties checked on every input:
 *   1. pobox_urlencoded_len() is exactly what pobox_urlencode() writes, and
 *      the output is NUL-terminated;
 *   2. the encoded text holds only RFC 3986 unreserved characters and %XX
 *      escapes with upper-case hex digits;
 *   3. decode(encode(x)) == x, byte for byte (NULs and '+' included);
 *   4. decoding arbitrary text either refuses it ((size_t)-1, and then the
 *      text really has a '%' without two hex digits after it) or returns at
 *      most len bytes, NUL-terminated, whose re-encoding decodes back to it.
 */
#include "fuzz_check.h"
#include "urlenc.h"

#include <stdint.h>
#include <string.h>

static int unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

static int hex_upper(unsigned char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); }

static int hex_any(unsigned char c)
{
	return hex_upper(c) || (c >= 'a' && c <= 'f');
}

/* A reference answer to "is this a well-formed escape sequence text". */
static int escapes_ok(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (s[i] != '%')
			continue;
		if (i + 2 >= len || !hex_any((unsigned char)s[i + 1]) || !hex_any((unsigned char)s[i + 2]))
			return 0;
		i += 2;
	}
	return 1;
}

/* Encodes s and checks properties 1-3; returns the encoding (malloc'd). */
static char *encode_checked(const char *s, size_t len)
{
	size_t want = pobox_urlencoded_len(s, len);
	FUZZ_CHECK(want >= len && want <= 3 * len);
	char *enc = malloc(want + 1);
	FUZZ_CHECK(enc != NULL);
	memset(enc, 'X', want + 1);
	size_t got = pobox_urlencode(enc, s, len);
	FUZZ_CHECK(got == want);
	FUZZ_CHECK(enc[got] == '\0');
	for (size_t i = 0; i < got; i++) {
		unsigned char c = (unsigned char)enc[i];
		if (c == '%') {
			FUZZ_CHECK(i + 2 < got);
			FUZZ_CHECK(hex_upper((unsigned char)enc[i + 1]) && hex_upper((unsigned char)enc[i + 2]));
			i += 2;
		} else {
			FUZZ_CHECK(unreserved(c));
		}
	}
	char *dec = malloc(got + 1);
	FUZZ_CHECK(dec != NULL);
	size_t n = pobox_urldecode(dec, enc, got);
	FUZZ_CHECK(n == len);
	FUZZ_CHECK(dec[n] == '\0');
	FUZZ_CHECK(len == 0 || memcmp(dec, s, len) == 0);
	free(dec);
	return enc;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	const char *s = (const char *)data;

	free(encode_checked(s, size));

	/* Decoding text from the outside (a batch file's header and cells). */
	char *dec = malloc(size + 1);
	FUZZ_CHECK(dec != NULL);
	size_t n = pobox_urldecode(dec, s, size);
	if (n == (size_t)-1) {
		FUZZ_CHECK(!escapes_ok(s, size));
	} else {
		FUZZ_CHECK(escapes_ok(s, size));
		FUZZ_CHECK(n <= size);
		FUZZ_CHECK(dec[n] == '\0');
		free(encode_checked(dec, n));
	}
	free(dec);
	return 0;
}
