/*
 * pobox-peakrss: runs a command and reports its peak resident set size and
 * wall-clock time, for the benchmarks in this folder.
 *
 *   pobox-peakrss [-o FILE] -- CMD [ARGS...]
 *
 * prints `peak_rss_kb=N wall_s=X user_s=X sys_s=X` on stderr (and, with -o, writes the same
 * line to FILE so a script need not pick it out of the child's own stderr),
 * then exits with the child's exit status, or 128+signal if it was killed.
 *
 * Peak RSS and CPU times come from the rusage that wait4() returns for the
 * child, so they cover the child and any descendants it waited for, and
 * nothing of this wrapper.  /usr/bin/time -f %M would do the same, but is not installed
 * everywhere and its output format differs between implementations.
 *
 * This program owns only the child process it starts.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(void)
{
	fputs("usage: pobox-peakrss [-o FILE] -- CMD [ARGS...]\n", stderr);
}

int main(int argc, char **argv)
{
	const char *report_path = NULL;
	struct rusage ru;
	int argi = 1, status = 0, rc;
	double t0, wall;
	char line[192];
	pid_t pid, got;

	while (argi < argc && strcmp(argv[argi], "--") != 0) {
		if (strcmp(argv[argi], "-o") == 0 && argi + 1 < argc) {
			report_path = argv[argi + 1];
			argi += 2;
		} else {
			usage();
			return 64;
		}
	}
	if (argi >= argc || argi + 1 >= argc) {
		usage();
		return 64;
	}
	argi++; /* skip "--" */

	t0 = now_s();
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "pobox-peakrss: fork: %s\n", strerror(errno));
		return 71;
	}
	if (pid == 0) {
		execvp(argv[argi], &argv[argi]);
		fprintf(stderr, "pobox-peakrss: %s: %s\n", argv[argi],
			strerror(errno));
		_exit(errno == ENOENT ? 127 : 126);
	}

	/*
	 * Let the child take ^C and decide what to do with it; the wrapper
	 * stays to report and to pass the status on.
	 */
	signal(SIGINT, SIG_IGN);
	signal(SIGQUIT, SIG_IGN);
	do {
		got = wait4(pid, &status, 0, &ru);
	} while (got < 0 && errno == EINTR);
	wall = now_s() - t0;
	if (got < 0) {
		fprintf(stderr, "pobox-peakrss: wait4: %s\n", strerror(errno));
		return 71;
	}

	/* On Linux ru_maxrss is in kilobytes. */
	snprintf(line, sizeof(line),
		 "peak_rss_kb=%ld wall_s=%.3f user_s=%.3f sys_s=%.3f\n",
		 ru.ru_maxrss, wall,
		 (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6,
		 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6);
	fputs(line, stderr);
	if (report_path != NULL) {
		FILE *f = fopen(report_path, "w");
		int bad = f == NULL;

		if (f != NULL) {
			bad = fputs(line, f) == EOF;
			bad |= fclose(f) != 0;
		}
		if (bad)
			fprintf(stderr, "pobox-peakrss: %s: %s\n", report_path,
				strerror(errno));
	}

	if (WIFEXITED(status))
		rc = WEXITSTATUS(status);
	else if (WIFSIGNALED(status))
		rc = 128 + WTERMSIG(status);
	else
		rc = 1;
	return rc;
}
