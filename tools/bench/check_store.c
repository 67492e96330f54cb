/*
 * pobox-bench-check-store: compares the simulator's whole profile store
 * (GET /_sim/profiles, JSON) with a CSV export, cell by cell, streaming.
 *
 *     curl -sf $BASE/_sim/profiles | pobox-bench-check-store SORTED.csv
 *
 * The store must hold exactly the export: one profile per CSV row that has
 * at least one non-empty attribute cell (none for a row whose cells are all
 * empty: Target creates nothing for it), with the row's id type, and for
 * each such profile exactly the row's non-empty cells, byte for byte (the
 * store shows URL-decoded values, the CSV holds them raw: both are the
 * value).  Nothing more, nothing less.
 *
 * Memory does not depend on the size of either input: the simulator lists
 * profiles sorted by id (bytes), so the CSV must be sorted the same way
 * (header first, then `LC_ALL=C sort -t, -k1,1`; ids contain no comma or
 * quote).  Both are then read once, side by side, one profile at a time.
 * A CSV whose ids are not strictly increasing is refused (exit 2), so an
 * unsorted file can never pass by accident.
 *
 * The CSV reader is its own (RFC 4180, one record per line: a sorted file
 * cannot keep a record that spans lines together anyway), not libcsv, so
 * the check does not share a parser with pobox.
 *
 * Prints one line on stdout:
 *   profiles=N cells=N empty_rows=N missing_profiles=N extra_profiles=N
 *   missing_cells=N extra_cells=N wrong_values=N result=same|DIFFERENT
 * and the first few differences on stderr.  Exit 0 same, 1 different,
 * 2 usage, I/O or parse error.
 *
 * This program owns nothing but its inputs; it does not link libpobox.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_REPORTED 10

struct str {
	char *p;
	size_t len, cap;
};

/* One CSV row (or the header): fields as offsets into bytes. */
struct row {
	struct str line;   /* the raw line */
	struct str bytes;  /* unquoted fields, back to back */
	size_t *off, *len; /* per field */
	size_t n, cap;
};

/* One profile of the store: id type, id and its attributes. */
struct profile {
	struct str type, id;
	struct str bytes;          /* names and values, back to back */
	size_t *noff, *nlen, *voff, *vlen;
	unsigned char *used;
	size_t n, cap;
};

struct counts {
	uint64_t profiles, cells, empty_rows, missing_profiles, extra_profiles;
	uint64_t missing_cells, extra_cells, wrong_values, reported;
};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "pobox-bench-check-store: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static void grow(void **p, size_t *cap, size_t need, size_t elem)
{
	size_t ncap = *cap ? *cap : 64;
	void *np;

	if (need <= *cap)
		return;
	while (ncap < need)
		ncap *= 2;
	np = realloc(*p, ncap * elem);
	if (np == NULL)
		die("out of memory (%" PRIu64 ")", (uint64_t)need);
	*p = np;
	*cap = ncap;
}

static void str_addc(struct str *s, char c)
{
	grow((void **)&s->p, &s->cap, s->len + 2, 1);
	s->p[s->len++] = c;
	s->p[s->len] = '\0';
}

/* ---- CSV ------------------------------------------------------------- */

static void row_field(struct row *r, size_t start)
{
	size_t need = r->n + 1;
	size_t cap = r->cap;

	grow((void **)&r->off, &cap, need, sizeof(size_t));
	cap = r->cap;
	grow((void **)&r->len, &cap, need, sizeof(size_t));
	r->cap = cap;
	r->off[r->n] = start;
	r->len[r->n] = r->bytes.len - start;
	r->n++;
}

/* Reads the next line into r; 0 at end of file. */
static int csv_next(FILE *f, struct row *r, uint64_t *lineno)
{
	ssize_t got;
	size_t i, start;
	int quoted = 0, in_field_quote = 0;
	const char *p;

	got = getline(&r->line.p, &r->line.cap, f);
	if (got < 0) {
		if (ferror(f))
			die("reading the CSV: %s (line %" PRIu64 ")", strerror(errno), *lineno);
		return 0;
	}
	(*lineno)++;
	r->line.len = (size_t)got;
	while (r->line.len && (r->line.p[r->line.len - 1] == '\n' || r->line.p[r->line.len - 1] == '\r'))
		r->line.len--;
	r->bytes.len = 0;
	r->n = 0;
	p = r->line.p;
	start = 0;
	for (i = 0; i <= r->line.len; i++) {
		char c = i < r->line.len ? p[i] : ',';

		if (in_field_quote) {
			if (c == '"' && i + 1 < r->line.len && p[i + 1] == '"') {
				str_addc(&r->bytes, '"');
				i++;
			} else if (c == '"') {
				in_field_quote = 0;
			} else if (i == r->line.len) {
				die("an unterminated quoted field on line %" PRIu64
				    " (records must not span lines)", *lineno);
			} else {
				str_addc(&r->bytes, c);
			}
		} else if (c == ',') {
			row_field(r, start);
			start = r->bytes.len;
			quoted = 0;
		} else if (c == '"' && r->bytes.len == start && !quoted) {
			in_field_quote = quoted = 1;
		} else if (quoted) {
			die("text after a closing quote on line %" PRIu64, *lineno);
		} else {
			str_addc(&r->bytes, c);
		}
	}
	if (r->bytes.p == NULL)
		str_addc(&r->bytes, '\0'), r->bytes.len = 0;
	return 1;
}

static const char *field(const struct row *r, size_t i, size_t *len)
{
	*len = r->len[i];
	return r->bytes.p + r->off[i];
}

/* ---- JSON (only what /_sim/profiles writes, strictly) ---------------------- */

struct json {
	FILE *f;
	uint64_t at; /* bytes read, for messages */
};

static int jgetc(struct json *j)
{
	int c = getc_unlocked(j->f);

	if (c != EOF)
		j->at++;
	return c;
}

static int jpeek_nonws(struct json *j)
{
	int c;

	do
		c = jgetc(j);
	while (c == ' ' || c == '\n' || c == '\r' || c == '\t');
	return c;
}

static void jexpect(struct json *j, int want)
{
	int c = jpeek_nonws(j);

	if (c != want) {
		char what[2] = { (char)want, '\0' };

		die("the store's JSON: expected '%s' at byte %" PRIu64, what, j->at);
	}
}

static void put_utf8(struct str *s, uint32_t cp)
{
	if (cp < 0x80) {
		str_addc(s, (char)cp);
	} else if (cp < 0x800) {
		str_addc(s, (char)(0xC0 | (cp >> 6)));
		str_addc(s, (char)(0x80 | (cp & 0x3F)));
	} else if (cp < 0x10000) {
		str_addc(s, (char)(0xE0 | (cp >> 12)));
		str_addc(s, (char)(0x80 | ((cp >> 6) & 0x3F)));
		str_addc(s, (char)(0x80 | (cp & 0x3F)));
	} else {
		str_addc(s, (char)(0xF0 | (cp >> 18)));
		str_addc(s, (char)(0x80 | ((cp >> 12) & 0x3F)));
		str_addc(s, (char)(0x80 | ((cp >> 6) & 0x3F)));
		str_addc(s, (char)(0x80 | (cp & 0x3F)));
	}
}

static uint32_t hex4(struct json *j)
{
	uint32_t v = 0;
	int i, c;

	for (i = 0; i < 4; i++) {
		c = jgetc(j);
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (uint32_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (uint32_t)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (uint32_t)(c - 'A' + 10);
		else
			die("the store's JSON: bad \\u escape at byte %" PRIu64, j->at);
	}
	return v;
}

/* Appends the string that starts here (after whitespace) to s, decoded. */
static void jstring(struct json *j, struct str *s)
{
	int c;

	jexpect(j, '"');
	for (;;) {
		c = jgetc(j);
		if (c == EOF)
			die("the store's JSON ends inside a string (byte %" PRIu64 ")", j->at);
		if (c == '"')
			break;
		if (c != '\\') {
			str_addc(s, (char)c);
			continue;
		}
		c = jgetc(j);
		switch (c) {
		case '"': case '\\': case '/': str_addc(s, (char)c); break;
		case 'b': str_addc(s, '\b'); break;
		case 'f': str_addc(s, '\f'); break;
		case 'n': str_addc(s, '\n'); break;
		case 'r': str_addc(s, '\r'); break;
		case 't': str_addc(s, '\t'); break;
		case 'u': {
			uint32_t cp = hex4(j);

			if (cp >= 0xD800 && cp < 0xDC00) {
				uint32_t lo;

				if (jgetc(j) != '\\' || jgetc(j) != 'u')
					die("the store's JSON: lone surrogate at byte %" PRIu64, j->at);
				lo = hex4(j);
				cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
			}
			put_utf8(s, cp);
			break;
		}
		default:
			die("the store's JSON: bad escape at byte %" PRIu64, j->at);
		}
	}
	if (s->p == NULL)
		str_addc(s, '\0'), s->len = 0;
}

static int key_is(const struct str *k, const char *name)
{
	return k->len == strlen(name) && memcmp(k->p, name, k->len) == 0;
}

static void prof_attr(struct profile *p, size_t noff, size_t voff)
{
	size_t cap = p->cap, need = p->n + 1;

	grow((void **)&p->noff, &cap, need, sizeof(size_t));
	cap = p->cap;
	grow((void **)&p->nlen, &cap, need, sizeof(size_t));
	cap = p->cap;
	grow((void **)&p->voff, &cap, need, sizeof(size_t));
	cap = p->cap;
	grow((void **)&p->vlen, &cap, need, sizeof(size_t));
	cap = p->cap;
	grow((void **)&p->used, &cap, need, 1);
	p->cap = cap;
	p->noff[p->n] = noff;
	p->nlen[p->n] = voff - noff;
	p->voff[p->n] = voff;
	p->vlen[p->n] = p->bytes.len - voff;
	p->used[p->n] = 0;
	p->n++;
}

static void jattributes(struct json *j, struct profile *p)
{
	int c;

	jexpect(j, '{');
	c = jpeek_nonws(j);
	if (c == '}')
		return;
	ungetc(c, j->f);
	j->at--;
	for (;;) {
		size_t noff = p->bytes.len, voff;

		jstring(j, &p->bytes);
		voff = p->bytes.len;
		jexpect(j, ':');
		jstring(j, &p->bytes);
		prof_attr(p, noff, voff);
		c = jpeek_nonws(j);
		if (c == '}')
			return;
		if (c != ',')
			die("the store's JSON: expected ',' or '}' at byte %" PRIu64, j->at);
	}
}

/* Reads the next profile of the list; 0 after the last. */
static int json_next(struct json *j, struct profile *p, int first)
{
	struct str key = { 0 };
	int c = jpeek_nonws(j);

	if (c == ']')
		return 0;
	if (!first) {
		if (c != ',')
			die("the store's JSON: expected ',' or ']' at byte %" PRIu64, j->at);
		c = jpeek_nonws(j);
	}
	if (c != '{')
		die("the store's JSON: expected a profile object at byte %" PRIu64, j->at);
	p->type.len = p->id.len = p->bytes.len = 0;
	p->n = 0;
	for (;;) {
		key.len = 0;
		jstring(j, &key);
		jexpect(j, ':');
		if (key_is(&key, "idType"))
			jstring(j, &p->type);
		else if (key_is(&key, "id"))
			jstring(j, &p->id);
		else if (key_is(&key, "attributes"))
			jattributes(j, p);
		else
			die("the store's JSON: unexpected member '%s' (byte %" PRIu64 ")", key.p, j->at);
		c = jpeek_nonws(j);
		if (c == '}')
			break;
		if (c != ',')
			die("the store's JSON: expected ',' or '}' at byte %" PRIu64, j->at);
	}
	free(key.p);
	return 1;
}

static void json_open(struct json *j)
{
	struct str key = { 0 };

	jexpect(j, '{');
	jstring(j, &key);
	if (!key_is(&key, "profiles"))
		die("the store's JSON does not begin with \"profiles\" (byte %" PRIu64 ")", j->at);
	free(key.p);
	jexpect(j, ':');
	jexpect(j, '[');
}

/* ---- comparison -------------------------------------------------------- */

static int cmp_bytes(const char *a, size_t an, const char *b, size_t bn)
{
	int c = memcmp(a, b, an < bn ? an : bn);

	if (c)
		return c;
	return (an > bn) - (an < bn);
}

static void report(struct counts *k, const char *what, const char *id, size_t idlen,
                   const char *attr, size_t alen, const char *detail)
{
	if (k->reported++ >= MAX_REPORTED)
		return;
	fprintf(stderr, "  %s: %.*s", what, (int)idlen, id);
	if (attr)
		fprintf(stderr, " %.*s", (int)alen, attr);
	if (detail)
		fprintf(stderr, " %s", detail);
	fputc('\n', stderr);
}

static uint64_t nonempty_cells(const struct row *r)
{
	uint64_t n = 0;
	size_t i;

	for (i = 1; i < r->n; i++)
		n += r->len[i] > 0;
	return n;
}

/* A CSV row against the store's profile with the same id. */
static void compare(const struct row *hdr, const struct row *r, struct profile *p,
                    struct counts *k)
{
	size_t i, a, idlen, nlen, vlen;
	const char *id = field(r, 0, &idlen);

	for (i = 1; i < r->n; i++) {
		const char *name = field(hdr, i, &nlen), *v = field(r, i, &vlen);

		if (vlen == 0)
			continue;
		for (a = 0; a < p->n; a++)
			if (!p->used[a] && cmp_bytes(p->bytes.p + p->noff[a], p->nlen[a], name, nlen) == 0)
				break;
		if (a == p->n) {
			k->missing_cells++;
			report(k, "missing cell", id, idlen, name, nlen, NULL);
			continue;
		}
		p->used[a] = 1;
		if (cmp_bytes(p->bytes.p + p->voff[a], p->vlen[a], v, vlen) != 0) {
			k->wrong_values++;
			report(k, "wrong value", id, idlen, name, nlen, "(store differs from the CSV)");
		} else {
			k->cells++;
		}
	}
	for (a = 0; a < p->n; a++)
		if (!p->used[a]) {
			k->extra_cells++;
			report(k, "extra cell", id, idlen, p->bytes.p + p->noff[a], p->nlen[a], NULL);
		}
}

int main(int argc, char **argv)
{
	struct row hdr = { 0 }, r = { 0 };
	struct profile p = { 0 };
	struct counts k = { 0 };
	struct json j = { 0 };
	struct str prev = { 0 };
	uint64_t lineno = 0, prev_line = 0;
	FILE *csv;
	int have_row, have_prof, first = 1;

	if (argc < 2 || argc > 3 || argv[1][0] == '-') {
		fprintf(stderr, "usage: pobox-bench-check-store SORTED.csv [STORE.json|-]\n");
		return 2;
	}
	csv = fopen(argv[1], "r");
	if (csv == NULL)
		die("%s: %s", argv[1], strerror(errno));
	j.f = stdin;
	if (argc == 3 && strcmp(argv[2], "-") != 0 && (j.f = fopen(argv[2], "r")) == NULL)
		die("%s: %s", argv[2], strerror(errno));
	setvbuf(j.f, NULL, _IOFBF, 1 << 20);
	setvbuf(csv, NULL, _IOFBF, 1 << 20);
	if (!csv_next(csv, &hdr, &lineno) || hdr.n < 2)
		die("%s: no header with an id and an attribute column (line %" PRIu64 ")", argv[1], lineno);
	json_open(&j);

	have_row = csv_next(csv, &r, &lineno);
	have_prof = json_next(&j, &p, first);
	first = 0;
	while (have_row || have_prof) {
		int c;
		size_t idlen, tlen;
		const char *id = NULL, *type = field(&hdr, 0, &tlen);

		if (have_row) {
			if (r.n != hdr.n)
				die("%s: a row with another field count than the header (line %" PRIu64 ")",
				    argv[1], lineno);
			id = field(&r, 0, &idlen);
			if (lineno != prev_line) {
				if (prev.p && cmp_bytes(prev.p, prev.len, id, idlen) >= 0)
					die("%s is not sorted by id (LC_ALL=C sort -t, -k1,1): line %" PRIu64,
					    argv[1], lineno);
				prev.len = 0;
				for (size_t i = 0; i < idlen; i++)
					str_addc(&prev, id[i]);
				prev_line = lineno;
			}
			if (nonempty_cells(&r) == 0) {
				k.empty_rows++;
				/* Target creates nothing for it: it must not be in the store. */
				if (have_prof && cmp_bytes(id, idlen, p.id.p, p.id.len) == 0) {
					k.extra_profiles++;
					k.extra_cells += p.n;
					report(&k, "profile of an all-empty row", id, idlen, NULL, 0, NULL);
					have_prof = json_next(&j, &p, first);
				}
				have_row = csv_next(csv, &r, &lineno);
				continue;
			}
		}
		c = !have_row ? 1 : !have_prof ? -1 : cmp_bytes(id, idlen, p.id.p, p.id.len);
		if (c == 0 && cmp_bytes(type, tlen, p.type.p, p.type.len) != 0)
			c = -1; /* same id, other type: a different profile */
		if (c < 0) {
			k.missing_profiles++;
			k.missing_cells += nonempty_cells(&r);
			report(&k, "missing profile", id, idlen, NULL, 0, NULL);
			have_row = csv_next(csv, &r, &lineno);
		} else if (c > 0) {
			k.extra_profiles++;
			k.extra_cells += p.n;
			report(&k, "extra profile", p.id.p, p.id.len, NULL, 0, NULL);
			have_prof = json_next(&j, &p, first);
		} else {
			k.profiles++;
			compare(&hdr, &r, &p, &k);
			have_row = csv_next(csv, &r, &lineno);
			have_prof = json_next(&j, &p, first);
		}
	}
	jexpect(&j, '}');
	if (jpeek_nonws(&j) != EOF)
		die("the store's JSON has bytes after its end (byte %" PRIu64 ")", j.at);
	if (ferror(j.f))
		die("reading the store's JSON: %s (byte %" PRIu64 ")", strerror(errno), j.at);

	{
		int same = k.missing_profiles == 0 && k.extra_profiles == 0 && k.missing_cells == 0 &&
		           k.extra_cells == 0 && k.wrong_values == 0;

		if (k.reported > MAX_REPORTED)
			fprintf(stderr, "  (%" PRIu64 " more differences)\n", k.reported - MAX_REPORTED);
		printf("profiles=%" PRIu64 " cells=%" PRIu64 " empty_rows=%" PRIu64
		       " missing_profiles=%" PRIu64 " extra_profiles=%" PRIu64 " missing_cells=%" PRIu64
		       " extra_cells=%" PRIu64 " wrong_values=%" PRIu64 " result=%s\n",
		       k.profiles, k.cells, k.empty_rows, k.missing_profiles, k.extra_profiles,
		       k.missing_cells, k.extra_cells, k.wrong_values, same ? "same" : "DIFFERENT");
		return same ? 0 : 1;
	}
}
