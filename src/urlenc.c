/*
 * urlenc.c - percent-encoding and decoding (see urlenc.h).
 */
#include "urlenc.h"

/* 1 for the characters RFC 3986 calls unreserved (sent as they are),
 * 3 for the others (%XX): a table, as every cell of a batch goes through */
static const unsigned char width[256] = {
#define R3(x) 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3
	R3(0x00), R3(0x10),
	/* 0x20: space ! " # $ % & ' ( ) * + , - . / */
	3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 1, 1, 3,
	/* 0x30: 0-9 : ; < = > ? */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3,
	/* 0x40: @ A-O */
	3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	/* 0x50: P-Z [ \ ] ^ _ */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 1,
	/* 0x60: ` a-o */
	3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	/* 0x70: p-z { | } ~ DEL */
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 1, 3,
	R3(0x80), R3(0x90), R3(0xa0), R3(0xb0), R3(0xc0), R3(0xd0), R3(0xe0), R3(0xf0),
#undef R3
};

static int unreserved(unsigned char c) { return width[c] == 1; }

size_t pobox_urlencoded_len(const char *s, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++)
		n += width[(unsigned char)s[i]];
	return n;
}

size_t pobox_urlencode(char *out, const char *s, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (unreserved(c)) {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
	return o;
}

int pobox_hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

size_t pobox_urldecode(char *out, const char *s, size_t len)
{
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '%') {
			int hi, lo;
			if (i + 2 >= len || (hi = pobox_hexval((unsigned char)s[i + 1])) < 0 ||
			    (lo = pobox_hexval((unsigned char)s[i + 2])) < 0)
				return (size_t)-1;
			out[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else if (c == '+') {
			out[o++] = ' ';
		} else {
			out[o++] = (char)c;
		}
	}
	out[o] = '\0';
	return o;
}
