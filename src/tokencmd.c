/*
 * tokencmd.c - running token_command (see tokencmd.h).
 *
 * The child: its own process group (so a timeout kills `sh -c` and what it
 * started), stdin /dev/null, stdout and stderr to pipes, every other
 * descriptor closed, signals back to their defaults, the environment copied
 * before fork (nothing but async-signal-safe calls after it).  A fourth
 * pipe, close-on-exec, carries errno back when exec fails, so "no such
 * file" is told apart from a command that exits 127.
 *
 * The parent polls the pipes until both are closed and the child has
 * exited, or the deadline passes: then SIGTERM to the group, a grace of
 * KILL_GRACE_MS, SIGKILL, and the child is always reaped.
 */
#define _GNU_SOURCE
#include "tokencmd.h"
#include "alloc.h"
#include "error.h"
#include "json.h"
#include "pobox.h"
#include "timefmt.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define STDERR_KEEP 4096
#define STDERR_LINES 10
#define KILL_GRACE_MS 500

extern char **environ;

/* ---- splitting --------------------------------------------------------- */

void pobox_tokencmd_argv_free(char **argv)
{
	if (!argv)
		return;
	for (size_t i = 0; argv[i]; i++)
		pobox_free(argv[i]);
	pobox_free(argv);
}

int pobox_tokencmd_split(const char *cmdline, char ***out, char *err, size_t errlen)
{
	size_t n = strlen(cmdline), nargs = 0, cap = 8, w = 0;
	char **argv = pobox_calloc(cap, sizeof *argv);
	char *word = pobox_malloc(n + 1);
	int rc = 0, in_word = 0;
	if (!argv || !word) {
		rc = POBOX_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i <= n; i++) {
		char c = cmdline[i];
		if (c == '\0' || c == ' ' || c == '\t' || c == '\n') {
			if (!in_word)
				continue;
			if (nargs + 2 > cap) {
				char **na = pobox_realloc(argv, 2 * cap * sizeof *na);
				if (!na) {
					rc = POBOX_ENOMEM;
					goto out;
				}
				memset(na + cap, 0, cap * sizeof *na);
				argv = na;
				cap *= 2;
			}
			if (!(argv[nargs] = pobox_strndup(word, w))) {
				rc = POBOX_ENOMEM;
				goto out;
			}
			nargs++;
			w = 0;
			in_word = 0;
			continue;
		}
		in_word = 1;
		if (c == '\'') {
			const char *end = strchr(cmdline + i + 1, '\'');
			if (!end) {
				rc = pobox_errf(err, errlen, POBOX_ECONFIG,
				                "token_command: unterminated ' quote at character %zu", i + 1);
				goto out;
			}
			memcpy(word + w, cmdline + i + 1, (size_t)(end - cmdline - (long)i - 1));
			w += (size_t)(end - cmdline - (long)i - 1);
			i = (size_t)(end - cmdline);
		} else if (c == '"') {
			size_t j = i + 1;
			for (; j < n && cmdline[j] != '"'; j++) {
				if (cmdline[j] == '\\' && j + 1 < n && strchr("\"\\$`", cmdline[j + 1]))
					j++;
				word[w++] = cmdline[j];
			}
			if (j >= n) {
				rc = pobox_errf(err, errlen, POBOX_ECONFIG,
				                "token_command: unterminated \" quote at character %zu", i + 1);
				goto out;
			}
			i = j;
		} else if (c == '\\') {
			if (i + 1 < n)
				word[w++] = cmdline[++i];
		} else {
			word[w++] = c;
		}
	}
	if (nargs == 0)
		rc = pobox_errf(err, errlen, POBOX_ECONFIG, "token_command is empty");
out:
	pobox_free(word);
	if (rc) {
		if (rc == POBOX_ENOMEM)
			pobox_errf(err, errlen, rc, "out of memory splitting token_command");
		pobox_tokencmd_argv_free(argv);
		return rc;
	}
	*out = argv;
	return 0;
}

/* ---- judging the output ----------------------------------------------- */

int pobox_token_valid(const char *t, size_t len)
{
	if (len == 0 || len > 16384)
		return 0;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)t[i] < 0x21 || (unsigned char)t[i] > 0x7E)
			return 0;
	return 1;
}

static int expiry_of(const struct pobox_json *d, int64_t now_ms, int64_t *out, char *err,
                     size_t errlen)
{
	long at = pobox_json_get(d, 0, "expires_at"), in = pobox_json_get(d, 0, "expires_in");
	double v;
	*out = -1;
	if (at >= 0) {
		if (d->toks[at].type == POBOX_JSON_NUMBER && pobox_json_double(d, at, &v) == 0 &&
		    v > 0 && v < 1e11) {
			*out = (int64_t)(v * 1000);
			return 0;
		}
		if (d->toks[at].type == POBOX_JSON_STRING) {
			char *s = NULL;
			size_t n;
			int ok = pobox_json_string(d, at, &s, &n) == 0 && pobox_time_parse(s, n, out) == 0;
			pobox_free(s);
			if (ok)
				return 0;
		}
		return pobox_errf(err, errlen, POBOX_ECONFIG,
		                  "token_command: \"expires_at\" must be Unix seconds or an RFC 3339 time "
		                  "like \"2026-01-01T00:00:00Z\"");
	}
	if (in >= 0) {
		if (pobox_json_double(d, in, &v) == 0 && v >= 0 && v < 1e10) {
			*out = now_ms + (int64_t)(v * 1000);
			return 0;
		}
		return pobox_errf(err, errlen, POBOX_ECONFIG,
		                  "token_command: \"expires_in\" must be a number of seconds");
	}
	return 0;
}

int pobox_tokencmd_parse_output(const char *out, size_t len, int64_t now_ms,
                                struct pobox_tokencmd_result *res, char *err, size_t errlen)
{
	struct pobox_json d;
	char msg[200];
	int rc;
	res->token = NULL;
	res->expires_at_ms = -1;
	while (len && strchr(" \t\r\n", out[len - 1]))
		len--;
	while (len && strchr(" \t\r\n", out[0])) {
		out++;
		len--;
	}
	if (len == 0)
		return pobox_errf(err, errlen, POBOX_ECONFIG,
		                  "token_command printed nothing on stdout (it must print the token, or "
		                  "JSON {\"token\": ...})");
	if (out[0] != '{') {
		if (memchr(out, '\n', len))
			return pobox_errf(err, errlen, POBOX_ECONFIG,
			                  "token_command printed several lines on stdout (print only the "
			                  "token, or JSON {\"token\": ...})");
		if (!pobox_token_valid(out, len))
			return pobox_errf(err, errlen, POBOX_ECONFIG,
			                  "token_command printed a token with a space or control character "
			                  "in it (or over 16 KB)");
		if (!(res->token = pobox_strndup(out, len)))
			return pobox_errf(err, errlen, POBOX_ENOMEM, "out of memory");
		return 0;
	}
	if ((rc = pobox_json_parse(&d, out, len, 256, msg, sizeof msg)) != 0) {
		pobox_json_free(&d);
		return pobox_errf(err, errlen, rc == POBOX_ENOMEM ? rc : POBOX_ECONFIG,
		                  "token_command printed malformed JSON on stdout: %s", msg);
	}
	long t = pobox_json_get(&d, 0, "token");
	char *tok = NULL;
	size_t tlen = 0;
	if (t < 0 || d.toks[t].type != POBOX_JSON_STRING) {
		rc = pobox_errf(err, errlen, POBOX_ECONFIG,
		                "token_command printed JSON without a \"token\" string");
	} else if ((rc = pobox_json_string(&d, t, &tok, &tlen)) != 0) {
		rc = pobox_errf(err, errlen, rc, "out of memory");
	} else if (!pobox_token_valid(tok, tlen)) {
		rc = pobox_errf(err, errlen, POBOX_ECONFIG,
		                "token_command printed an empty \"token\", or one with a space or "
		                "control character in it");
	} else if ((rc = expiry_of(&d, now_ms, &res->expires_at_ms, err, errlen)) == 0 &&
	           res->expires_at_ms >= 0 && res->expires_at_ms <= now_ms) {
		char when[32];
		rc = pobox_errf(err, errlen, POBOX_ECONFIG,
		                "token_command printed a token that expired at %s (%llds ago)",
		                pobox_time_format(res->expires_at_ms, when, sizeof when),
		                (long long)((now_ms - res->expires_at_ms) / 1000));
	}
	if (rc == 0) {
		res->token = tok;
		tok = NULL;
	}
	if (tok) {
		explicit_bzero(tok, tlen);
		pobox_free(tok);
	}
	pobox_json_free(&d);
	return rc;
}

/* ---- running ------------------------------------------------------------ */

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The environment for the child, built before fork: ours with
 * POBOX_TOKEN_REASON replaced.  The strings are borrowed but the one we add. */
static char **child_env(const char *reason, char **added)
{
	size_t n = 0;
	while (environ && environ[n])
		n++;
	char **env = pobox_calloc(n + 2, sizeof *env);
	size_t len = strlen("POBOX_TOKEN_REASON=") + strlen(reason) + 1;
	*added = pobox_malloc(len);
	if (!env || !*added) {
		pobox_free(env);
		pobox_free(*added);
		*added = NULL;
		return NULL;
	}
	snprintf(*added, len, "POBOX_TOKEN_REASON=%s", reason);
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "POBOX_TOKEN_REASON=", 19) != 0)
			env[k++] = environ[i];
	env[k++] = *added;
	env[k] = NULL;
	return env;
}

/* In the child, after fork: async-signal-safe calls only. */
static void child(char *const *argv, char **env, int in, int out, int errfd, int report)
{
	struct sigaction dfl;
	sigset_t none;
	setpgid(0, 0);
	memset(&dfl, 0, sizeof dfl);
	dfl.sa_handler = SIG_DFL;
	for (int s = 1; s < 32; s++)
		if (s != SIGKILL && s != SIGSTOP)
			sigaction(s, &dfl, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(errfd, 2) < 0)
		goto fail;
	/* everything else but the report pipe, which exec closes */
	for (int fd = 3; fd < 1024; fd++)
		if (fd != report)
			close(fd);
	execvpe(argv[0], argv, env);
fail:;
	int e = errno;
	ssize_t w = write(report, &e, sizeof e);
	(void)w;
	_exit(127);
}

struct run {
	char out[POBOX_TOKENCMD_MAX_STDOUT + 1];
	size_t out_len;
	int out_overflow;
	char err[STDERR_KEEP];
	size_t err_len;
	int timed_out;
	int status;              /* waitpid's */
};

/* Reads what is there; returns 0 at EOF (fd closed), 1 otherwise. */
static int drain(int fd, char *buf, size_t cap, size_t *len, int *overflow)
{
	char tmp[4096];
	ssize_t n = read(fd, tmp, sizeof tmp);
	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 1 : 0;
	if (n == 0)
		return 0;
	size_t room = cap - *len, take = (size_t)n < room ? (size_t)n : room;
	memcpy(buf + *len, tmp, take);
	*len += take;
	if (take < (size_t)n && overflow)
		*overflow = 1;
	return 1;
}

static void report_stderr(const struct run *r, pobox_tokencmd_line_fn fn, void *ctx)
{
	size_t i = 0;
	int lines = 0;
	while (fn && i < r->err_len && lines < STDERR_LINES) {
		char line[301];
		size_t o = 0;
		for (; i < r->err_len && r->err[i] != '\n'; i++)
			if (o < sizeof line - 1)
				line[o++] = (unsigned char)r->err[i] < 0x20 || r->err[i] == '"' ? '\'' : r->err[i];
		i++;
		line[o] = '\0';
		if (o) {
			fn(ctx, line);
			lines++;
		}
	}
}

/* Waits for pid; kills its group first when kill_it. */
static int reap(pid_t pid, int kill_it)
{
	int st = 0;
	if (kill_it) {
		kill(-pid, SIGTERM);
		int64_t until = mono_ms() + KILL_GRACE_MS;
		while (waitpid(pid, &st, WNOHANG) == 0) {
			if (mono_ms() >= until) {
				kill(-pid, SIGKILL);
				while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
					;
				break;
			}
			struct timespec ts = {0, 10 * 1000000L};
			nanosleep(&ts, NULL);
		}
		kill(-pid, SIGKILL); /* whatever it left behind */
		return st;
	}
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return st;
}

/* Reads the command's output until both pipes close and it exits, or the
 * deadline: fills r (status, timed_out, overflow); the child is reaped
 * (killed first when it is late or printed too much). */
static void collect(struct run *r, pid_t pid, int out_fd, int err_fd, int64_t deadline)
{
	int open_out = 1, open_err = 1;
	while (open_out || open_err) {
		struct pollfd p[2] = {{open_out ? out_fd : -1, POLLIN, 0}, {open_err ? err_fd : -1, POLLIN, 0}};
		int64_t left = deadline - mono_ms();
		if (left <= 0) {
			r->timed_out = 1;
			break;
		}
		if (poll(p, 2, (int)(left > 1000 ? 1000 : left)) < 0 && errno != EINTR)
			break;
		if (open_out && p[0].revents)
			open_out = drain(out_fd, r->out, POBOX_TOKENCMD_MAX_STDOUT, &r->out_len, &r->out_overflow);
		if (open_err && p[1].revents)
			open_err = drain(err_fd, r->err, STDERR_KEEP, &r->err_len, NULL);
		if (r->out_overflow)
			break;
	}
	/* the pipes are closed: the command should be exiting now */
	while (!r->timed_out && !r->out_overflow) {
		if (waitpid(pid, &r->status, WNOHANG) == pid)
			return;
		if (mono_ms() >= deadline) {
			r->timed_out = 1;
			break;
		}
		struct timespec ts = {0, 10 * 1000000L};
		nanosleep(&ts, NULL);
	}
	r->status = reap(pid, 1);
}

/* What the finished run means. */
static int judge(const struct run *r, int64_t timeout_ms, int64_t now_ms,
                 struct pobox_tokencmd_result *res, char *err, size_t errlen)
{
	int st = r->status;
	if (r->timed_out)
		return pobox_errf(err, errlen, POBOX_ETRANSIENT,
		                  "token_command timed out after %lld%s and was killed "
		                  "(token_command_timeout)",
		                  (long long)(timeout_ms % 1000 ? timeout_ms : timeout_ms / 1000),
		                  timeout_ms % 1000 ? "ms" : "s");
	if (r->out_overflow)
		return pobox_errf(err, errlen, POBOX_ECONFIG,
		                  "token_command printed more than %d KB on stdout and was killed",
		                  POBOX_TOKENCMD_MAX_STDOUT / 1024);
	if (WIFSIGNALED(st))
		return pobox_errf(err, errlen, POBOX_ECONFIG, "token_command was killed by signal %d (%s)",
		                  WTERMSIG(st), strsignal(WTERMSIG(st)));
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return pobox_errf(err, errlen, POBOX_ECONFIG, "token_command exited with status %d%s",
		                  WEXITSTATUS(st),
		                  r->err_len ? " (its stderr is in the log: token_command_stderr)" : "");
	return pobox_tokencmd_parse_output(r->out, r->out_len, now_ms, res, err, errlen);
}

static void close_pair(int p[2])
{
	for (int i = 0; i < 2; i++)
		if (p[i] >= 0)
			close(p[i]);
	p[0] = p[1] = -1;
}

int pobox_tokencmd_run(char *const *argv, int64_t timeout_ms, const char *reason, int64_t now_ms,
                       pobox_tokencmd_line_fn on_stderr, void *ctx,
                       struct pobox_tokencmd_result *res, char *err, size_t errlen)
{
	int po[2] = {-1, -1}, pe[2] = {-1, -1}, pr[2] = {-1, -1}, devnull = -1, rc = 0;
	char *added = NULL, **env = NULL;
	struct run *r = pobox_calloc(1, sizeof *r);
	pid_t pid = -1;

	res->token = NULL;
	res->expires_at_ms = -1;
	if (!r || !(env = child_env(reason, &added))) {
		rc = pobox_errf(err, errlen, POBOX_ENOMEM, "out of memory running token_command");
		goto out;
	}
	if (pipe2(po, O_CLOEXEC) || pipe2(pe, O_CLOEXEC) || pipe2(pr, O_CLOEXEC) ||
	    (devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
		rc = pobox_errf(err, errlen, POBOX_EIO, "token_command: cannot make pipes: %s",
		                strerror(errno));
		goto out;
	}
	if ((pid = fork()) < 0) {
		rc = pobox_errf(err, errlen, POBOX_EIO, "token_command: cannot fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0)
		child(argv, env, devnull, po[1], pe[1], pr[1]);
	setpgid(pid, pid); /* also here: no race with the child's own call */
	close(po[1]);
	close(pe[1]);
	close(pr[1]);
	po[1] = pe[1] = pr[1] = -1;
	int exec_errno = 0;
	if (read(pr[0], &exec_errno, sizeof exec_errno) == (ssize_t)sizeof exec_errno) {
		reap(pid, 0);
		pid = -1;
		rc = pobox_errf(err, errlen, POBOX_ECONFIG, "token_command: cannot run '%s': %s", argv[0],
		                strerror(exec_errno));
		goto out;
	}
	collect(r, pid, po[0], pe[0], mono_ms() + timeout_ms);
	pid = -1;
	report_stderr(r, on_stderr, ctx);
	rc = judge(r, timeout_ms, now_ms, res, err, errlen);
out:
	if (pid > 0)
		reap(pid, 1);
	close_pair(po);
	close_pair(pe);
	close_pair(pr);
	if (devnull >= 0)
		close(devnull);
	if (r) {
		explicit_bzero(r->out, sizeof r->out); /* it held the token */
		pobox_free(r);
	}
	pobox_free(env);
	pobox_free(added);
	return rc;
}
