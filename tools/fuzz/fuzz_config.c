/*
 * fuzz_config - libFuzzer harness for the configuration loader
 * (src/config.c, on inih).  The input is INI text, optionally followed by a
 * NUL byte and environment-like lines `NAME=VALUE`:
 *   - the INI text is loaded as a config file (from a memfd, through the
 *     loader's own fopen), with each NAME set as POBOX_<NAME upper-cased> in
 *     the environment during the load;
 *   - each NAME=VALUE is also handed to pobox_config_set() as it is (any
 *     bytes as a key);
 *   - each VALUE is parsed as a duration.
 * Properties: the result is 0 or POBOX_ECONFIG with a message that names the
 * file (or the environment variable) and a line the file has; a loaded
 * config holds every value inside its documented range (shares in [0, 1],
 * not NaN; durations and sizes not negative; enumerations one of their
 * values); nothing leaks.
 */
#define _GNU_SOURCE
#include "config.h"
#include "fuzz_check.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAX_ENV 16

static void check_loaded(const struct pobox_config *c)
{
	FUZZ_CHECK(c->max_value_chars >= 1 && c->max_value_chars <= 1 << 20);
	FUZZ_CHECK(c->synchronous >= POBOX_SYNC_FULL && c->synchronous <= POBOX_SYNC_OFF);
	FUZZ_CHECK(c->busy_timeout_ms >= 0 && c->busy_timeout_ms <= 3600000);
	FUZZ_CHECK(c->bulk_api_thirdpartyid == 1 || c->bulk_api_thirdpartyid == 2);
	FUZZ_CHECK(c->bulk_api_pcid == 1 || c->bulk_api_pcid == 2);
	FUZZ_CHECK(c->max_batch_rows >= 1 && c->max_batch_rows <= 500000);
	FUZZ_CHECK(c->max_batch_bytes >= 1024 && c->max_batch_bytes <= 49999999);
	FUZZ_CHECK(c->flush_max_delay_ms >= 0 && c->v2_carry_window_ms >= 0);
	FUZZ_CHECK(c->max_age_ms >= 1000 && c->backoff_base_ms >= 1 && c->backoff_cap_ms >= 1);
	FUZZ_CHECK(c->poll_initial_ms >= 1 && c->poll_cap_ms >= 1 && c->stuck_wait_ms >= 0);
	FUZZ_CHECK(c->connect_timeout_ms >= 1 && c->request_timeout_ms >= 1);
	FUZZ_CHECK(c->retention_ms >= 0 && c->recovery_ramp_ms >= 0);
	FUZZ_CHECK(c->metrics_interval_ms >= 1000 && c->metrics_interval_ms <= 3600000);
	FUZZ_CHECK(c->verify_tls == 0 || c->verify_tls == 1);
	FUZZ_CHECK(c->single_lane == 0 || c->single_lane == 1);
	FUZZ_CHECK(c->assume_profiles_exist == 0 || c->assume_profiles_exist == 1);
	/* written so that NaN fails */
	FUZZ_CHECK(c->fleet_share >= 0 && c->fleet_share <= 1);
	FUZZ_CHECK(c->urgent_reserve >= 0 && c->urgent_reserve <= 1);
	FUZZ_CHECK(c->single_min_budget_share >= 0 && c->single_min_budget_share <= 1);
	FUZZ_CHECK(c->max_outbox_bytes >= 0 && c->min_free_disk_bytes >= 0);
	FUZZ_CHECK(c->seed >= 0);
	struct pobox_options o;
	pobox_config_options(c, &o);
	FUZZ_CHECK(o.max_value_chars == c->max_value_chars);
}

/* The message of a failed load names the file and one of its lines, or the
 * environment variable. */
static void check_message(const char *err, const char *path, size_t lines)
{
	size_t pl = strlen(path);
	FUZZ_CHECK(err[0] != '\0');
	if (strncmp(err, "environment POBOX_", 18) == 0)
		return;
	FUZZ_CHECK(strncmp(err, path, pl) == 0 && err[pl] == ':');
	char *end;
	long line = strtol(err + pl + 1, &end, 10);
	FUZZ_CHECK(end != err + pl + 1 && *end == ':');
	FUZZ_CHECK(line >= 1 && (size_t)line <= lines);
}

/* Whether NAME (upper-cased) is already among the variables set. */
static int getenv_set(char *const *kv, int n, const char *name)
{
	size_t nl = strlen(name);
	for (int i = 0; i < n; i++) {
		if (strncasecmp(kv[i] + 6, name, nl) == 0 && kv[i][6 + nl] == '=')
			return 1;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	static int fd = -1;
	static char path[64];
	const char *nul = memchr(data, '\0', size);
	size_t ini_len = nul ? (size_t)(nul - (const char *)data) : size;
	char *names[MAX_ENV];
	int nenv = 0;
	char err[512];

	if (fd < 0) {
		fd = memfd_create("pobox.conf", 0);
		FUZZ_CHECK(fd >= 0);
		snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	}
	FUZZ_CHECK(ftruncate(fd, 0) == 0);
	FUZZ_CHECK(pwrite(fd, data, ini_len, 0) == (ssize_t)ini_len);
	size_t lines = 1;
	for (size_t i = 0; i < ini_len; i++)
		lines += data[i] == '\n';

	/* NAME=VALUE lines after the NUL. */
	char *rest = nul ? strndup(nul + 1, size - ini_len - 1) : strdup("");
	FUZZ_CHECK(rest != NULL);
	for (char *save = NULL, *line = strtok_r(rest, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char *eq = strchr(line, '=');
		if (!eq)
			continue;
		*eq = '\0';
		const char *value = eq + 1;
		struct pobox_config direct;
		int64_t ms;
		pobox_config_init(&direct);
		int rc = pobox_config_set(&direct, line, value, err, sizeof err);
		FUZZ_CHECK(rc == 0 || rc == POBOX_ECONFIG);
		FUZZ_CHECK(rc == 0 || err[0] != '\0');
		if (rc == 0)
			check_loaded(&direct);
		pobox_config_free(&direct);
		if (pobox_parse_duration_ms(value, &ms) == 0)
			FUZZ_CHECK(ms >= 0);
		/* putenv with our own "POBOX_NAME=VALUE" (not setenv, which
		 * keeps a copy of every value it was ever given) */
		size_t nl = strlen(line);
		if (nenv < MAX_ENV && nl && nl < 64 && !getenv_set(names, nenv, line)) {
			char *kv = malloc(nl + strlen(value) + 8);
			FUZZ_CHECK(kv != NULL);
			strcpy(kv, "POBOX_");
			for (size_t i = 0; i < nl; i++)
				kv[6 + i] = (char)(line[i] >= 'a' && line[i] <= 'z' ? line[i] - 32 : line[i]);
			kv[6 + nl] = '=';
			strcpy(kv + 7 + nl, value);
			if (putenv(kv) == 0)
				names[nenv++] = kv;
			else
				free(kv);
		}
	}

	struct pobox_config c;
	pobox_config_init(&c);
	int rc = pobox_config_load(&c, path, 1, err, sizeof err);
	FUZZ_CHECK(rc == 0 || rc == POBOX_ECONFIG);
	if (rc == 0)
		check_loaded(&c);
	else
		check_message(err, path, lines);
	pobox_config_free(&c);

	for (int i = 0; i < nenv; i++) {
		/* the name alone, in a copy: the string itself is in environ */
		char name[80];
		snprintf(name, sizeof name, "%.*s", (int)(strchr(names[i], '=') - names[i]), names[i]);
		unsetenv(name);
		FUZZ_CHECK(getenv(name) == NULL);
		free(names[i]);
	}
	free(rest);
	return 0;
}
