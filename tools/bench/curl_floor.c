/*
 * curl_floor.c - the single-call rate of bare libcurl against the simulator:
 * the floor under pobox's own cost, for single_bench.sh.
 *
 * It does what pobox's sender does on the wire and nothing else: one GET
 * per profile (/m2/<client>/profile/update?mboxPC=b<i>&profile.a=v<i>),
 * C transfers in flight through one curl multi handle, easy handles and
 * connections reused, answers read into a buffer and dropped.  No
 * database, no XML, no quota.  The difference between this rate and wrk's
 * is libcurl's (and the workload's: distinct profiles, new values); the
 * difference between this rate and pobox's is pobox's.
 *
 * usage: curl_floor BASE_URL CLIENT N C
 * prints: calls=N seconds=S rate=R ok=K
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct slot {
	CURL *easy;
	char url[512];
	long n;
};

/* Points s at the update call for profile b<n>. */
static void aim(struct slot *s, const char *base, const char *client, long n)
{
	snprintf(s->url, sizeof s->url, "%s/m2/%s/profile/update?mboxPC=b%ld&profile.a=v%ld", base, client,
	         n, n);
	curl_easy_setopt(s->easy, CURLOPT_URL, s->url);
}

static size_t drop(char *data, size_t size, size_t nmemb, void *ud)
{
	(void)data;
	(void)ud;
	return size * nmemb;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: curl_floor BASE_URL CLIENT N C\n");
		return 64;
	}
	const char *base = argv[1], *client = argv[2];
	long n = atol(argv[3]), c = atol(argv[4]), next = 1, done = 0, ok = 0;
	if (n < 1 || c < 1) {
		fprintf(stderr, "curl_floor: N and C must be positive\n");
		return 64;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	CURLM *m = curl_multi_init();
	curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, c);
	curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, c);
	struct slot *sl = calloc((size_t)c, sizeof *sl);
	if (!m || !sl)
		return 70;
	double t0 = now_s();
	for (long i = 0; i < c && next <= n; i++) {
		sl[i].easy = curl_easy_init();
		curl_easy_setopt(sl[i].easy, CURLOPT_WRITEFUNCTION, drop);
		curl_easy_setopt(sl[i].easy, CURLOPT_PRIVATE, &sl[i]);
		curl_easy_setopt(sl[i].easy, CURLOPT_NOSIGNAL, 1L);
		aim(&sl[i], base, client, next++);
		curl_multi_add_handle(m, sl[i].easy);
	}
	while (done < n) {
		int still = 0, left;
		if (curl_multi_perform(m, &still) != CURLM_OK)
			return 70;
		CURLMsg *msg;
		while ((msg = curl_multi_info_read(m, &left))) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			struct slot *s = NULL;
			long code = 0;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
			curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &code);
			ok += msg->data.result == CURLE_OK && code == 200;
			done++;
			curl_multi_remove_handle(m, s->easy);
			if (next <= n) {
				aim(s, base, client, next++);
				curl_multi_add_handle(m, s->easy);
			}
		}
		if (done < n && curl_multi_poll(m, NULL, 0, 1000, NULL) != CURLM_OK)
			return 70;
	}
	double t = now_s() - t0;
	printf("calls=%ld seconds=%.3f rate=%.1f ok=%ld\n", n, t, (double)n / t, ok);
	for (long i = 0; i < c; i++)
		if (sl[i].easy)
			curl_easy_cleanup(sl[i].easy);
	free(sl);
	curl_multi_cleanup(m);
	curl_global_cleanup();
	return ok == n ? 0 : 1;
}
