/*
 * config.c - the configuration table and its loaders (see config.h).
 *
 * Owns: every key's name, type, default and where it lands in struct
 * pobox_config.  A key is added by adding one row to `keys`; the loader, the
 * environment override and error messages all come from the table.
 */
#include "config.h"
#include "alloc.h"
#include "error.h"
#include "validate.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

enum key_type { K_STRING, K_INT, K_DURATION, K_SYNC };

struct key {
	const char *name;
	enum key_type type;
	size_t offset;
	int64_t min, max;   /* for K_INT / K_DURATION */
	const char *doc;
};

#define OFF(f) offsetof(struct pobox_config, f)

static const struct key keys[] = {
	{"db", K_STRING, OFF(db), 0, 0, "path of the outbox file"},
	{"client", K_STRING, OFF(client), 0, 0, "Target client code"},
	{"base_url", K_STRING, OFF(base_url), 0, 0, "Target edge URL (default https://<client>.tt.omtrdc.net)"},
	{"token_file", K_STRING, OFF(token_file), 0, 0, "file holding the profile API bearer token"},
	{"max_value_chars", K_INT, OFF(max_value_chars), 1, 1 << 20, "longest attribute value, in characters"},
	{"synchronous", K_SYNC, OFF(synchronous), 0, 0, "FULL (default), NORMAL or OFF"},
	{"busy_timeout", K_DURATION, OFF(busy_timeout_ms), 0, 3600000, "how long a writer waits for the outbox lock"},
};

void pobox_config_init(struct pobox_config *c)
{
	memset(c, 0, sizeof *c);
	c->max_value_chars = POBOX_DEFAULT_MAX_VALUE_CHARS;
	c->synchronous = POBOX_SYNC_FULL;
	c->busy_timeout_ms = 30000;
}

void pobox_config_free(struct pobox_config *c)
{
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		if (keys[i].type == K_STRING) {
			char **p = (char **)((char *)c + keys[i].offset);
			pobox_free(*p);
			*p = NULL;
		}
	}
}

int pobox_parse_duration_ms(const char *s, int64_t *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || v < 0)
		return POBOX_EINVALID;
	double mult = 1000;
	if (*end) {
		if (strcmp(end, "ms") == 0)
			mult = 1;
		else if (strcmp(end, "s") == 0)
			mult = 1000;
		else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
			mult = 60000;
		else if (strcmp(end, "h") == 0)
			mult = 3600000;
		else if (strcmp(end, "d") == 0)
			mult = 86400000;
		else
			return POBOX_EINVALID;
	}
	if (v * mult > 9.2e18)
		return POBOX_EINVALID;
	*out = (int64_t)(v * mult + 0.5);
	return 0;
}

static const struct key *find_key(const char *name)
{
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

int pobox_config_set(struct pobox_config *c, const char *key, const char *value, char *err,
                     size_t errlen)
{
	const struct key *k = find_key(key);
	void *field;
	if (!k)
		return pobox_errf(err, errlen, POBOX_ECONFIG, "unknown key '%s' (see pobox.conf(5))", key);
	field = (char *)c + k->offset;
	switch (k->type) {
	case K_STRING: {
		char *dup = pobox_strdup(value);
		if (!dup)
			return pobox_errf(err, errlen, POBOX_ENOMEM, "out of memory");
		pobox_free(*(char **)field);
		*(char **)field = dup;
		return 0;
	}
	case K_INT: {
		char *end;
		errno = 0;
		long long v = strtoll(value, &end, 10);
		if (errno || end == value || *end || v < k->min || v > k->max)
			return pobox_errf(err, errlen, POBOX_ECONFIG,
			                  "%s = '%s': expected a whole number from %lld to %lld", key, value,
			                  (long long)k->min, (long long)k->max);
		*(int *)field = (int)v;
		return 0;
	}
	case K_DURATION: {
		int64_t ms;
		if (pobox_parse_duration_ms(value, &ms) != 0 || ms < k->min || ms > k->max)
			return pobox_errf(err, errlen, POBOX_ECONFIG,
			                  "%s = '%s': expected a duration like 500ms, 30s, 5m, 1h (at most "
			                  "%llds)",
			                  key, value, (long long)(k->max / 1000));
		*(int64_t *)field = ms;
		return 0;
	}
	case K_SYNC:
		if (strcasecmp(value, "full") == 0)
			*(enum pobox_sync *)field = POBOX_SYNC_FULL;
		else if (strcasecmp(value, "normal") == 0)
			*(enum pobox_sync *)field = POBOX_SYNC_NORMAL;
		else if (strcasecmp(value, "off") == 0)
			*(enum pobox_sync *)field = POBOX_SYNC_OFF;
		else
			return pobox_errf(err, errlen, POBOX_ECONFIG,
			                  "%s = '%s': expected FULL, NORMAL or OFF", key, value);
		return 0;
	}
	return POBOX_ECONFIG;
}

struct load_ctx {
	struct pobox_config *c;
	const char *path;
	FILE *fp;
	int lineno;   /* lines read so far: inih calls the handler right after */
	char *err;
	size_t errlen;
	int rc;
};

/* Debian's inih is built without line numbers in the handler, so the reader
 * counts lines itself. */
static char *read_line(char *str, int num, void *stream)
{
	struct load_ctx *l = stream;
	char *r = fgets(str, num, l->fp);
	if (r)
		l->lineno++;
	return r;
}

static int on_ini(void *user, const char *section, const char *name, const char *value)
{
	struct load_ctx *l = user;
	int lineno = l->lineno;
	char msg[400];
	if (l->rc)
		return 1;
	/* Keys live at top level or in [pobox]; other sections are refused so a
	 * typo cannot silently hide a setting. */
	if (section[0] && strcmp(section, "pobox") != 0) {
		l->rc = pobox_errf(l->err, l->errlen, POBOX_ECONFIG,
		                   "%s:%d: unknown section [%s]; put keys at the top or under [pobox]",
		                   l->path, lineno, section);
		return 1;
	}
	if (pobox_config_set(l->c, name, value, msg, sizeof msg) != 0) {
		l->rc = pobox_errf(l->err, l->errlen, POBOX_ECONFIG, "%s:%d: %s", l->path, lineno, msg);
		return 1;
	}
	return 1;
}

int pobox_config_load(struct pobox_config *c, const char *path, int explicit_path, char *err,
                      size_t errlen)
{
	if (path) {
		FILE *fp = fopen(path, "r");
		if (!fp) {
			if (explicit_path || errno != ENOENT)
				return pobox_errf(err, errlen, POBOX_ECONFIG, "config %s: %s", path,
				                  strerror(errno));
		} else {
			struct load_ctx l = {c, path, fp, 0, err, errlen, 0};
			int r = ini_parse_stream(read_line, &l, on_ini, &l);
			fclose(fp);
			if (l.rc)
				return l.rc;
			if (r != 0)
				return pobox_errf(err, errlen, POBOX_ECONFIG,
				                  "%s:%d: not a key = value line", path, r);
		}
	}
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		char env[64], msg[400];
		size_t n = (size_t)snprintf(env, sizeof env, "POBOX_%s", keys[i].name);
		for (size_t j = 6; j < n; j++)
			env[j] = (char)toupper((unsigned char)env[j]);
		const char *v = getenv(env);
		if (v && pobox_config_set(c, keys[i].name, v, msg, sizeof msg) != 0)
			return pobox_errf(err, errlen, POBOX_ECONFIG, "environment %s: %s", env, msg);
	}
	return 0;
}

void pobox_config_options(const struct pobox_config *c, struct pobox_options *o)
{
	pobox_options_init(o);
	o->synchronous = c->synchronous;
	o->busy_timeout_ms = (int)c->busy_timeout_ms;
	o->max_value_chars = c->max_value_chars;
}
