/* load-sink: the next hop of bench/load.sh. An SMTP sink that accepts in
 * parallel, as a real MTA does: N worker processes share one listening
 * socket (Postfix runs one smtpd per connection; here each worker serves
 * many), and each worker accepts every pending connection per pass of its
 * event loop and greets it at once. smtp-sink, by contrast, accept()s one
 * connection per pass, so a burst of 200 connects is greeted ~2 ms apart.
 *
 * usage: load-sink --port P [--procs N]
 * Answers 250 to everything (PIPELINING, 8BITMIME, ENHANCEDSTATUSCODES),
 * 354 to DATA, and "250 2.0.0 Ok: queued" at the end of DATA (RFC 5321
 * 4.1.1.4: CRLF.CRLF, also right after the 354); discards the message.
 * Runs until SIGTERM or SIGINT, which it passes on to its workers. */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#define MAX_PROCS 64
#define MAX_LINE 4096

/* Where the session is in "\r\n.\r\n" while in DATA (KMP states). */
enum dot { D_NONE, D_CR, D_CRLF, D_DOT, D_DOTCR, D_END };

struct sess {
	bool data;
	enum dot dot;
};

static const char greeting[] = "220 load-sink.test ESMTP\r\n";
static const char ehlo_reply[] = "250-load-sink.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
				 "250-SIZE 0\r\n250 ENHANCEDSTATUSCODES\r\n";

static enum dot dot_step(enum dot d, unsigned char ch)
{
	switch (ch) {
	case '\r': return d == D_DOT ? D_DOTCR : D_CR;
	case '\n': return d == D_CR ? D_CRLF : d == D_DOTCR ? D_END : D_NONE;
	case '.': return d == D_CRLF ? D_DOT : D_NONE;
	default: return D_NONE;
	}
}

/* Consume message bytes up to and including the final ".": true at the end. */
static bool eat_data(struct sess *s, struct evbuffer *in)
{
	struct evbuffer_iovec v[8];
	int n;

	do {
		size_t used = 0;
		n = evbuffer_peek(in, -1, NULL, v, 8);
		for (int i = 0; i < n && i < 8; i++) {
			const unsigned char *p = v[i].iov_base, *end = p + v[i].iov_len;
			while (p < end) {
				if (s->dot == D_NONE) { /* the common case: skip to the next CR */
					const unsigned char *cr = memchr(p, '\r', (size_t)(end - p));
					if (cr == NULL)
						break;
					p = cr;
				}
				s->dot = dot_step(s->dot, *p++);
				if (s->dot == D_END) {
					evbuffer_drain(in, used + (size_t)(p - (const unsigned char *)v[i].iov_base));
					return true;
				}
			}
			used += v[i].iov_len;
		}
		evbuffer_drain(in, used);
	} while (n > 8);
	return false;
}

static void reply(struct bufferevent *bev, const char *text)
{
	evbuffer_add(bufferevent_get_output(bev), text, strlen(text));
}

static void close_after_write(struct bufferevent *bev, void *arg)
{
	(void)arg;
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		bufferevent_free(bev);
}

/* One command line; false when the session ends (QUIT). */
static bool command(struct bufferevent *bev, struct sess *s, const char *line)
{
	if (strncasecmp(line, "EHLO", 4) == 0) {
		reply(bev, ehlo_reply);
	} else if (strncasecmp(line, "DATA", 4) == 0) {
		reply(bev, "354 End data with <CR><LF>.<CR><LF>\r\n");
		s->data = true;
		s->dot = D_CRLF; /* an empty message: "." straight after the 354 */
	} else if (strncasecmp(line, "QUIT", 4) == 0) {
		reply(bev, "221 2.0.0 Bye\r\n");
		bufferevent_disable(bev, EV_READ);
		bufferevent_setcb(bev, NULL, close_after_write, NULL, s);
		return false;
	} else {
		reply(bev, "250 2.0.0 Ok\r\n"); /* HELO, MAIL, RCPT, RSET, NOOP, ... */
	}
	return true;
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct sess *s = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char *line;
	size_t len;

	for (;;) {
		if (s->data) {
			if (!eat_data(s, in))
				return;
			s->data = false;
			reply(bev, "250 2.0.0 Ok: queued as LOADSINK\r\n");
			continue;
		}
		line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);
		if (line == NULL) {
			if (evbuffer_get_length(in) > MAX_LINE)
				goto drop;
			return;
		}
		bool go_on = command(bev, s, line);
		free(line);
		if (!go_on)
			return;
	}
drop:
	free(s);
	bufferevent_free(bev);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)what;
	free(arg);
	bufferevent_free(bev);
}

/* libevent's listener accept()s until EAGAIN on every readable event. */
static void accept_cb(struct evconnlistener *lis, evutil_socket_t fd, struct sockaddr *sa,
		      int salen, void *arg)
{
	struct event_base *base = arg;
	struct bufferevent *bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	struct sess *s = calloc(1, sizeof(*s));

	(void)lis;
	(void)sa;
	(void)salen;
	if (bev == NULL || s == NULL) {
		fprintf(stderr, "load-sink: out of memory\n");
		exit(2);
	}
	bufferevent_set_max_single_read(bev, 64 * 1024);
	bufferevent_setcb(bev, read_cb, NULL, event_cb, s);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	reply(bev, greeting);
}

static void stop_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	event_base_loopexit(arg, NULL);
}

static int worker(int lfd)
{
	struct event_base *base = event_base_new();
	struct evconnlistener *lis;
	struct event *term;

	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (base == NULL)
		return 2;
	lis = evconnlistener_new(base, accept_cb, base, LEV_OPT_CLOSE_ON_FREE, -1, lfd);
	term = evsignal_new(base, SIGTERM, stop_cb, base);
	if (lis == NULL || term == NULL)
		return 2;
	evsignal_add(term, NULL);
	event_base_dispatch(base);
	return 0;
}

static int listen_on(long port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(fd, SOMAXCONN) < 0) {
		fprintf(stderr, "load-sink: 127.0.0.1:%ld: %s\n", port, strerror(errno));
		return -1;
	}
	return fd;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "port", required_argument, NULL, 'p' }, { "procs", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	long port = 0, procs = 2;
	pid_t kids[MAX_PROCS];
	sigset_t set;
	int c, sig, lfd;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'p': port = strtol(optarg, NULL, 10); break;
		case 'n': procs = strtol(optarg, NULL, 10); break;
		default: port = -1; break;
		}
	}
	if (port <= 0 || port > 65535 || procs < 1 || procs > MAX_PROCS) {
		fprintf(stderr, "usage: load-sink --port P [--procs N (1-%d)]\n", MAX_PROCS);
		return 64;
	}
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	lfd = listen_on(port);
	if (lfd < 0)
		return 1;
	for (long i = 0; i < procs; i++) {
		kids[i] = fork();
		if (kids[i] < 0) {
			perror("load-sink: fork");
			procs = i;
			break;
		}
		if (kids[i] == 0) {
			sigprocmask(SIG_UNBLOCK, &set, NULL);
			return worker(lfd);
		}
	}
	close(lfd);
	sigwait(&set, &sig);
	for (long i = 0; i < procs; i++)
		kill(kids[i], SIGTERM);
	for (long i = 0; i < procs; i++)
		waitpid(kids[i], NULL, 0);
	return 0;
}
