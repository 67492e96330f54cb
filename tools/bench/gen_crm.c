/*
 * pobox-gen-crm: writes a synthetic CRM export (CSV) for benchmarks and demos.
 *
 * The output looks like what a nightly CRM job hands to `pobox import`: one
 * profile per row, the id in the first column (header `thirdPartyId` or
 * `pcId`), then K attribute columns with realistic names and values: dates,
 * amounts, short words, a few values that need RFC 4180 quoting (commas,
 * double quotes), some non-ASCII UTF-8 (Zürich, São Paulo) and about 3% empty
 * cells.  Every row is valid input for pobox: ids are unique, contain neither
 * `+` nor `/`, and every row has exactly as many fields as the header.
 *
 * Output depends only on the options, so a seed reproduces a file byte for
 * byte on any platform (the generator is splitmix64, not rand()).
 *
 * This program owns nothing but its output stream; it does not link libpobox
 * and knows nothing about the outbox.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ATTRS 1000
#define MAX_ROWS 1000000000ULL /* ids are unique up to 10^9 rows */
#define EMPTY_PER_MILLE 30     /* ~3% of attribute cells are empty */
#define VALUE_MAX 128

enum value_kind {
	KIND_TIER,
	KIND_MONEY,
	KIND_DATE,
	KIND_STORE,
	KIND_BOOL,
	KIND_CITY,
	KIND_SEGMENT,
	KIND_POINTS,
	KIND_CATEGORY,
	KIND_MONTH,
	KIND_SMALL_INT,
	KIND_CHANNEL,
	KIND_POSTCODE,
	KIND_COUNTRY,
	KIND_LANGUAGE,
	KIND_STATUS,
	KIND_CODE,
	KIND_COUNT /* number of kinds; used to cycle for generic columns */
};

struct attr_def {
	const char *name;
	enum value_kind kind;
};

/* The first ten are the columns named in the benchmark brief, in order. */
static const struct attr_def named_attrs[] = {
	{ "loyaltyTier", KIND_TIER },
	{ "lifetimeValue", KIND_MONEY },
	{ "lastPurchaseDate", KIND_DATE },
	{ "preferredStore", KIND_STORE },
	{ "email_opt_in", KIND_BOOL },
	{ "city", KIND_CITY },
	{ "segment", KIND_SEGMENT },
	{ "points", KIND_POINTS },
	{ "favoriteCategory", KIND_CATEGORY },
	{ "birthMonth", KIND_MONTH },
	{ "householdSize", KIND_SMALL_INT },
	{ "preferredChannel", KIND_CHANNEL },
	{ "memberSince", KIND_DATE },
	{ "avgBasketValue", KIND_MONEY },
	{ "postalCode", KIND_POSTCODE },
	{ "country", KIND_COUNTRY },
	{ "language", KIND_LANGUAGE },
	{ "lastLoginDate", KIND_DATE },
	{ "accountStatus", KIND_STATUS },
	{ "referralCode", KIND_CODE },
};
#define N_NAMED (sizeof(named_attrs) / sizeof(named_attrs[0]))

static const char *const tiers[] = { "bronze", "bronze", "bronze", "silver",
				     "silver", "gold", "platinum" };

/* Mostly plain store codes; a few free-text names, some with commas. */
static const char *const store_names[] = {
	"Downtown Flagship",      "Westfield Mall, Unit 12",
	"Airport T2",             "Main Street",
	"Outlet Center, Gate B",  "Harbour Front",
	"Königsallee",            "Online",
};

/*
 * Most customers live in a handful of big cities; the rarer ones carry the
 * non-ASCII names and the one city that needs quoting.
 */
static const char *const cities_common[] = {
	"London",  "New York", "Chicago", "Berlin",    "Paris",
	"Madrid",  "Toronto",  "Sydney",  "Amsterdam", "Austin",
	"Seattle", "Dublin",   "Milano",  "Boston",    "Manchester",
};
static const char *const cities_rare[] = {
	"Zürich",    "São Paulo", "München", "Kraków",           "Malmö",
	"Montréal",  "Düsseldorf", "Bogotá", "Washington, D.C.", "Reykjavík",
	"東京",
};

static const char *const segments[] = {
	"new",          "active",          "lapsed",    "at-risk",
	"high-value",   "bargain-hunter",  "seasonal",  "win-back",
	"\"VIP\" early access", /* needs quoting: embedded double quotes */
};

static const char *const categories_common[] = {
	"Electronics", "Home & Garden", "Books",  "Fashion",     "Sports",
	"Beauty",      "Grocery",       "Outdoor", "Pet Supplies", "Kids' Clothing",
};
/* Rare, and each needs quoting: a comma, or embedded double quotes. */
static const char *const categories_quoted[] = {
	"Toys, Games & Hobbies",
	"Garden \"Pro\" Tools",
};

static const char *const channels[] = { "email", "sms", "push", "mail",
					"none" };
static const char *const countries[] = {
	"United States", "United Kingdom", "Deutschland", "Schweiz", "France",
	"Brasil",        "España",         "Canada",      "日本",    "Côte d'Ivoire",
};
static const char *const languages[] = { "en-US", "en-GB", "de-DE", "de-CH",
					  "fr-FR", "pt-BR", "es-ES", "ja-JP" };
static const char *const statuses[] = { "active", "active", "active",
					"pending", "suspended", "closed" };

#define PICK(rng, arr) ((arr)[rand_below((rng), sizeof(arr) / sizeof((arr)[0]))])

/* splitmix64: tiny, fast, and the same everywhere. */
static uint64_t rand_next(uint64_t *state)
{
	uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

/* Modulo bias is irrelevant for synthetic data. */
static uint64_t rand_below(uint64_t *state, uint64_t n)
{
	return rand_next(state) % n;
}

static void format_date(uint64_t *rng, char *buf, size_t size,
			unsigned first_year, unsigned years)
{
	static const unsigned days_in[] = { 31, 28, 31, 30, 31, 30,
					    31, 31, 30, 31, 30, 31 };
	unsigned year = first_year + (unsigned)rand_below(rng, years);
	unsigned month = 1 + (unsigned)rand_below(rng, 12);
	unsigned day = 1 + (unsigned)rand_below(rng, days_in[month - 1]);

	snprintf(buf, size, "%04u-%02u-%02u", year, month, day);
}

/* Writes one value of the given kind into buf (always NUL-terminated). */
static void make_value(uint64_t *rng, enum value_kind kind, char *buf,
		       size_t size)
{
	switch (kind) {
	case KIND_TIER:
		snprintf(buf, size, "%s", PICK(rng, tiers));
		break;
	case KIND_MONEY: {
		/* Skewed towards small amounts, as real spend is. */
		uint64_t cents = rand_below(rng, 100000);
		if (rand_below(rng, 10) == 0)
			cents *= 25;
		snprintf(buf, size, "%" PRIu64 ".%02u", cents / 100,
			 (unsigned)(cents % 100));
		break;
	}
	case KIND_DATE:
		format_date(rng, buf, size, 2019, 7);
		break;
	case KIND_STORE:
		if (rand_below(rng, 100) < 5)
			snprintf(buf, size, "%s", PICK(rng, store_names));
		else
			snprintf(buf, size, "store-%04u",
				 (unsigned)rand_below(rng, 2500));
		break;
	case KIND_BOOL:
		snprintf(buf, size, "%s",
			 rand_below(rng, 10) < 6 ? "true" : "false");
		break;
	case KIND_CITY:
		if (rand_below(rng, 100) < 15)
			snprintf(buf, size, "%s", PICK(rng, cities_rare));
		else
			snprintf(buf, size, "%s", PICK(rng, cities_common));
		break;
	case KIND_SEGMENT:
		/* The quoted segment is rarer than the others. */
		if (rand_below(rng, 100) < 2)
			snprintf(buf, size, "%s",
				 segments[sizeof(segments) / sizeof(segments[0]) - 1]);
		else
			snprintf(buf, size, "%s",
				 segments[rand_below(rng, sizeof(segments) /
							 sizeof(segments[0]) - 1)]);
		break;
	case KIND_POINTS:
		snprintf(buf, size, "%u", (unsigned)rand_below(rng, 250000));
		break;
	case KIND_CATEGORY:
		if (rand_below(rng, 100) < 2)
			snprintf(buf, size, "%s", PICK(rng, categories_quoted));
		else
			snprintf(buf, size, "%s", PICK(rng, categories_common));
		break;
	case KIND_MONTH:
		snprintf(buf, size, "%u", 1 + (unsigned)rand_below(rng, 12));
		break;
	case KIND_SMALL_INT:
		snprintf(buf, size, "%u", 1 + (unsigned)rand_below(rng, 6));
		break;
	case KIND_CHANNEL:
		snprintf(buf, size, "%s", PICK(rng, channels));
		break;
	case KIND_POSTCODE:
		snprintf(buf, size, "%05u", (unsigned)rand_below(rng, 100000));
		break;
	case KIND_COUNTRY:
		snprintf(buf, size, "%s", PICK(rng, countries));
		break;
	case KIND_LANGUAGE:
		snprintf(buf, size, "%s", PICK(rng, languages));
		break;
	case KIND_STATUS:
		snprintf(buf, size, "%s", PICK(rng, statuses));
		break;
	case KIND_CODE:
	case KIND_COUNT:
	default: {
		static const char alnum[] = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
		size_t i, n = 8;
		if (n >= size)
			n = size - 1;
		for (i = 0; i < n; i++)
			buf[i] = alnum[rand_below(rng, sizeof(alnum) - 1)];
		buf[n] = '\0';
		break;
	}
	}
}

/* RFC 4180: quote a field that holds a comma, quote, CR or LF; double quotes. */
static void write_cell(FILE *out, const char *s)
{
	if (strpbrk(s, ",\"\r\n") == NULL) {
		fputs(s, out);
		return;
	}
	putc('"', out);
	for (; *s; s++) {
		if (*s == '"')
			putc('"', out);
		putc(*s, out);
	}
	putc('"', out);
}

/*
 * The night after: one attribute of the row gets a new value, never empty
 * and never the one it had (an empty cell is filled).  Every kind has more
 * than one value, so the loop ends.
 */
static void change_one(uint64_t *rng, const enum value_kind *kinds,
		       size_t attrs, char (*values)[VALUE_MAX])
{
	size_t a = (size_t)rand_below(rng, attrs);
	char fresh[VALUE_MAX];

	do
		make_value(rng, kinds[a], fresh, sizeof(fresh));
	while (fresh[0] == '\0' || strcmp(fresh, values[a]) == 0);
	memcpy(values[a], fresh, sizeof(fresh));
}

static void usage(FILE *f)
{
	fputs("usage: pobox-gen-crm [--rows N] [--attrs K] [--seed S]\n"
	      "                     [--id-type thirdPartyId|pcId] [-o FILE]\n"
	      "                     [--changed PERCENT [--change-seed S]]\n"
	      "  --rows N     profiles (data rows) to write (default 1000)\n"
	      "  --attrs K    attribute columns after the id (default 10)\n"
	      "  --seed S     generator seed; same options => same bytes (default 1)\n"
	      "  --id-type T  header of the id column (default thirdPartyId)\n"
	      "  --changed P  the next night's export: P percent of the rows (0..100,\n"
	      "               e.g. 2 or 0.5) have one attribute changed; the rest is\n"
	      "               byte for byte the export without --changed\n"
	      "  --change-seed S  which rows and attributes change (default 2)\n"
	      "  -o FILE      write to FILE instead of stdout\n",
	      f);
}

static int parse_u64(const char *opt, const char *s, uint64_t max,
		     uint64_t *out)
{
	char *end = NULL;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v > max) {
		fprintf(stderr, "pobox-gen-crm: %s: bad value '%s' (0..%" PRIu64
				")\n", opt, s, max);
		return -1;
	}
	*out = v;
	return 0;
}

/* A percentage 0..100 with up to four decimals, as parts per million. */
static int parse_percent(const char *s, uint64_t *ppm)
{
	char *end = NULL;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(v >= 0.0 && v <= 100.0)) {
		fprintf(stderr, "pobox-gen-crm: --changed: bad percentage '%s' "
				"(0..100)\n", s);
		return -1;
	}
	*ppm = (uint64_t)(v * 10000.0 + 0.5);
	return 0;
}

/*
 * Writes the id and attribute names; generic names past the named list are
 * `customAttrNN`, cycling through the value kinds so they still vary.
 */
static void attr_at(size_t i, char *name, size_t size, enum value_kind *kind)
{
	if (i < N_NAMED) {
		snprintf(name, size, "%s", named_attrs[i].name);
		*kind = named_attrs[i].kind;
	} else {
		snprintf(name, size, "customAttr%zu", i + 1);
		*kind = (enum value_kind)(i % KIND_COUNT);
	}
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "rows", required_argument, NULL, 'r' },
		{ "attrs", required_argument, NULL, 'a' },
		{ "seed", required_argument, NULL, 's' },
		{ "id-type", required_argument, NULL, 't' },
		{ "output", required_argument, NULL, 'o' },
		{ "changed", required_argument, NULL, 'c' },
		{ "change-seed", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t rows = 1000, attrs = 10, seed = 1, row, rng, id_offset;
	uint64_t change_ppm = 0, change_seed = 2, change_rng, changed = 0;
	static char values[MAX_ATTRS][VALUE_MAX];
	const char *id_type = "thirdPartyId", *path = NULL;
	enum value_kind kinds[MAX_ATTRS];
	char name[64];
	FILE *out = stdout;
	int c, rc = 1;
	size_t a;

	while ((c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'r':
			if (parse_u64("--rows", optarg, MAX_ROWS, &rows) < 0)
				return 64;
			break;
		case 'a':
			if (parse_u64("--attrs", optarg, MAX_ATTRS, &attrs) < 0)
				return 64;
			break;
		case 's':
			if (parse_u64("--seed", optarg, UINT64_MAX, &seed) < 0)
				return 64;
			break;
		case 't':
			if (strcmp(optarg, "thirdPartyId") != 0 &&
			    strcmp(optarg, "pcId") != 0) {
				fprintf(stderr, "pobox-gen-crm: --id-type must be "
						"thirdPartyId or pcId\n");
				return 64;
			}
			id_type = optarg;
			break;
		case 'o':
			path = optarg;
			break;
		case 'c':
			if (parse_percent(optarg, &change_ppm) < 0)
				return 64;
			break;
		case 'S':
			if (parse_u64("--change-seed", optarg, UINT64_MAX, &change_seed) < 0)
				return 64;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 64;
		}
	}
	if (optind != argc || attrs == 0) {
		usage(stderr);
		return 64;
	}

	if (path != NULL) {
		out = fopen(path, "w");
		if (out == NULL) {
			fprintf(stderr, "pobox-gen-crm: %s: %s\n", path,
				strerror(errno));
			return 1;
		}
	}
	/* Full buffering: the generator should never be the bottleneck. */
	setvbuf(out, NULL, _IOFBF, 1 << 20);

	rng = seed;
	change_rng = change_seed;
	id_offset = rand_below(&rng, 1000000000ULL);

	fputs(id_type, out);
	for (a = 0; a < attrs; a++) {
		attr_at(a, name, sizeof(name), &kinds[a]);
		putc(',', out);
		write_cell(out, name);
	}
	putc('\n', out);

	for (row = 0; row < rows; row++) {
		/*
		 * 3^18 is coprime with 10^9, so row -> row * 3^18 + offset
		 * (mod 10^9) is a bijection: ids are unique but not sorted,
		 * as in a real export.  The hex suffix is decoration.
		 */
		uint64_t num = (row * 387420489ULL + id_offset) % 1000000000ULL;
		fprintf(out, "crm-%09" PRIu64 "-%04x", num,
			(unsigned)rand_below(&rng, 0x10000));
		for (a = 0; a < attrs; a++) {
			if (rand_below(&rng, 1000) < EMPTY_PER_MILLE)
				values[a][0] = '\0';
			else
				make_value(&rng, kinds[a], values[a], VALUE_MAX);
		}
		/* The change draws from its own generator, so every row keeps
		 * the bytes it has without --changed. */
		if (change_ppm > 0 && rand_below(&change_rng, 1000000) < change_ppm) {
			change_one(&change_rng, kinds, attrs, values);
			changed++;
		}
		for (a = 0; a < attrs; a++) {
			putc(',', out);
			write_cell(out, values[a]);
		}
		putc('\n', out);
	}
	if (change_ppm > 0)
		fprintf(stderr, "pobox-gen-crm: changed=%" PRIu64 " rows\n", changed);

	if (ferror(out)) {
		fprintf(stderr, "pobox-gen-crm: write error\n");
		goto out;
	}
	rc = 0;
out:
	if (out != stdout) {
		if (fclose(out) != 0 && rc == 0) {
			fprintf(stderr, "pobox-gen-crm: %s: %s\n", path,
				strerror(errno));
			rc = 1;
		}
	} else if (fflush(stdout) != 0 && rc == 0) {
		fprintf(stderr, "pobox-gen-crm: stdout: %s\n", strerror(errno));
		rc = 1;
	}
	return rc;
}
