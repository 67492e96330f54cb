/*
 * fleet_proxy - a loopback TCP proxy that misbehaves on request, for the
 * fleet tests: it stands between pobox hosts and the coordinator
 * (PostgreSQL) and can cut any subset of them off in the ways a network
 * does.
 *
 *   fleet_proxy --target PORT --ports N --ctl DIR
 *
 * Listens on N ports on 127.0.0.1 (printed on stdout, one per line, once
 * all accept connections) and forwards each connection to 127.0.0.1:PORT.
 * Port i (0-based) behaves as the file DIR/i says (re-read every 50 ms; no
 * file means pass):
 *
 *   pass        forward both ways
 *   delay MS    forward each piece MS milliseconds late (both ways)
 *   blackhole   accept, read and drop everything, answer nothing (also on
 *               connections already open): the peer sees a silent server
 *   reset       reset every connection (RST), open or new
 *   refuse      stop listening (connect() is refused) and reset what is open
 *
 * Single-threaded (poll).  Exits on SIGTERM or SIGINT.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXL 256
#define MAXC 1024
#define BUF 65536

enum mode { M_PASS, M_DELAY, M_BLACKHOLE, M_RESET, M_REFUSE };

struct listener {
	int fd, port;
	enum mode mode;
	int delay_ms;
};

struct dir {            /* one direction of a connection: from -> to */
	char buf[BUF];
	size_t len, off;
	int64_t due;        /* when buf may be written (delay) */
};

struct conn {
	int a, b;           /* client side, target side; -1: free slot */
	int l;
	struct dir ab, ba;
};

static struct listener ls[MAXL];
static struct conn cs[MAXC];
static int nl, target_port;
static const char *ctl;
static volatile sig_atomic_t stop;

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_sig(int s) { (void)s; stop = 1; }

static void nonblock(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

static void rst(int fd)
{
	struct linger lg = {1, 0};
	if (fd < 0)
		return;
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	close(fd);
}

static int listen_on(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 128) != 0) {
		close(fd);
		return -1;
	}
	nonblock(fd);
	return fd;
}

static void drop(struct conn *c, int hard)
{
	if (hard) {
		rst(c->a);
		rst(c->b);
	} else {
		if (c->a >= 0)
			close(c->a);
		if (c->b >= 0)
			close(c->b);
	}
	c->a = c->b = -1;
	c->ab.len = c->ab.off = c->ba.len = c->ba.off = 0;
}

static void read_modes(void)
{
	for (int i = 0; i < nl; i++) {
		char path[4096], word[32] = "pass";
		int ms = 0;
		snprintf(path, sizeof path, "%s/%d", ctl, i);
		FILE *fp = fopen(path, "r");
		if (fp) {
			if (fscanf(fp, "%31s %d", word, &ms) < 1)
				snprintf(word, sizeof word, "pass");
			fclose(fp);
		}
		enum mode m = strcmp(word, "delay") == 0 ? M_DELAY : strcmp(word, "blackhole") == 0 ? M_BLACKHOLE
		              : strcmp(word, "reset") == 0 ? M_RESET : strcmp(word, "refuse") == 0 ? M_REFUSE
		              : M_PASS;
		struct listener *l = &ls[i];
		l->delay_ms = ms;
		if (m == l->mode)
			continue;
		l->mode = m;
		if (m == M_RESET || m == M_REFUSE)
			for (int k = 0; k < MAXC; k++)
				if (cs[k].a >= 0 && cs[k].l == i)
					drop(&cs[k], 1);
		if (m == M_REFUSE && l->fd >= 0) {
			close(l->fd);
			l->fd = -1;
		} else if (m != M_REFUSE && l->fd < 0) {
			l->fd = listen_on(l->port);
		}
	}
}

static void accept_one(int i)
{
	struct listener *l = &ls[i];
	int fd = accept(l->fd, NULL, NULL);
	if (fd < 0)
		return;
	if (l->mode == M_RESET) {
		rst(fd);
		return;
	}
	int k;
	for (k = 0; k < MAXC && cs[k].a >= 0; k++)
		;
	if (k == MAXC) {
		close(fd);
		return;
	}
	int t = -1;
	if (l->mode != M_BLACKHOLE) {
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)target_port),
		                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		t = socket(AF_INET, SOCK_STREAM, 0);
		if (t < 0 || connect(t, (struct sockaddr *)&a, sizeof a) != 0) {
			if (t >= 0)
				close(t);
			rst(fd); /* the target is down: as it would look without us */
			return;
		}
		nonblock(t);
		int one = 1;
		setsockopt(t, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	}
	nonblock(fd);
	cs[k].a = fd;
	cs[k].b = t;
	cs[k].l = i;
	cs[k].ab.len = cs[k].ab.off = cs[k].ba.len = cs[k].ba.off = 0;
}

/* Moves data from `from` into d (when d is empty); 0 ok, -1 the side closed. */
static int pull(int from, struct dir *d, const struct listener *l)
{
	if (d->len)
		return 0;
	ssize_t n = read(from, d->buf, sizeof d->buf);
	if (n == 0)
		return -1;
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	if (l->mode == M_BLACKHOLE)
		return 0; /* swallowed */
	d->len = (size_t)n;
	d->off = 0;
	d->due = now_ms() + (l->mode == M_DELAY ? l->delay_ms : 0);
	return 0;
}

static int push(int to, struct dir *d)
{
	if (!d->len || now_ms() < d->due || to < 0)
		return 0;
	ssize_t n = send(to, d->buf + d->off, d->len - d->off, MSG_NOSIGNAL);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	d->off += (size_t)n;
	if (d->off == d->len)
		d->len = d->off = 0;
	return 0;
}

int main(int argc, char **argv)
{
	int n = 0;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--target") == 0)
			target_port = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--ports") == 0)
			n = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--ctl") == 0)
			ctl = argv[i + 1];
	}
	if (!target_port || n < 1 || n > MAXL || !ctl) {
		fprintf(stderr, "usage: fleet_proxy --target PORT --ports N --ctl DIR\n");
		return 64;
	}
	signal(SIGTERM, on_sig);
	signal(SIGINT, on_sig);
	signal(SIGPIPE, SIG_IGN);
	for (int k = 0; k < MAXC; k++)
		cs[k].a = cs[k].b = -1;
	for (nl = 0; nl < n; nl++) {
		struct sockaddr_in a;
		socklen_t al = sizeof a;
		ls[nl].fd = listen_on(0);
		if (ls[nl].fd < 0 || getsockname(ls[nl].fd, (struct sockaddr *)&a, &al) != 0) {
			perror("fleet_proxy: listen");
			return 71;
		}
		ls[nl].port = ntohs(a.sin_port);
	}
	for (int i = 0; i < nl; i++)
		printf("%d\n", ls[i].port);
	fflush(stdout);
	int64_t last_ctl = 0;
	while (!stop) {
		struct pollfd p[MAXL + 2 * MAXC];
		int who[MAXL + 2 * MAXC], np = 0;
		if (now_ms() - last_ctl >= 50) {
			read_modes();
			last_ctl = now_ms();
		}
		for (int i = 0; i < nl; i++)
			if (ls[i].fd >= 0) {
				p[np] = (struct pollfd){ls[i].fd, POLLIN, 0};
				who[np++] = -1 - i;
			}
		int64_t now = now_ms();
		for (int k = 0; k < MAXC; k++) {
			struct conn *c = &cs[k];
			if (c->a < 0)
				continue;
			/* write interest only once a delayed piece is due: no busy loop */
			int wa = c->ba.len && c->ba.due <= now, wb = c->ab.len && c->ab.due <= now;
			p[np] = (struct pollfd){c->a, (short)((c->ab.len ? 0 : POLLIN) | (wa ? POLLOUT : 0)), 0};
			who[np++] = 2 * k;
			if (c->b >= 0) {
				p[np] = (struct pollfd){c->b, (short)((c->ba.len ? 0 : POLLIN) | (wb ? POLLOUT : 0)), 0};
				who[np++] = 2 * k + 1;
			}
		}
		if (poll(p, (nfds_t)np, 10) < 0 && errno != EINTR)
			break;
		for (int i = 0; i < np; i++) {
			if (who[i] < 0) {
				if (p[i].revents & POLLIN)
					accept_one(-1 - who[i]);
				continue;
			}
			struct conn *c = &cs[who[i] / 2];
			if (c->a < 0)
				continue;
			const struct listener *l = &ls[c->l];
			int side_b = who[i] & 1, bad = 0;
			if (p[i].revents & (POLLIN | POLLHUP | POLLERR))
				bad |= side_b ? pull(c->b, &c->ba, l) : pull(c->a, &c->ab, l);
			if (bad)
				drop(c, 0);
		}
		for (int k = 0; k < MAXC; k++) {
			struct conn *c = &cs[k];
			if (c->a >= 0 && (push(c->b, &c->ab) || push(c->a, &c->ba)))
				drop(c, 0);
		}
	}
	for (int k = 0; k < MAXC; k++)
		if (cs[k].a >= 0)
			drop(&cs[k], 0);
	return 0;
}
