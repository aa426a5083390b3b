/* load-gen: the SMTP load of bench/load.sh. Holds N sessions open and idle
 * after EHLO, then runs M active sessions that each send K messages, and
 * reports the reply latency from the end of DATA (the final "." written)
 * to the 250, plus its own CPU time.
 *
 * usage: load-gen --port P [--idle N] [--active M] [--messages K]
 *                 [--size BYTES] [--hook CMD] [--timeout S] [--lat-file FILE]
 * --hook CMD runs `CMD baseline` before the first connection and
 * `CMD idle` once all N idle sessions have had their EHLO answered (the
 * event loop waits meanwhile: the idle sessions are idle). Results go to
 * stdout as key=value lines; exit 1 if any session failed. */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

/* What the session waits for. */
enum st { S_GREET, S_EHLO, S_IDLE, S_MAIL, S_RCPT, S_DATA, S_BODY, S_QUIT, S_DONE };

struct gen;

struct sess {
	struct gen *g;
	struct bufferevent *bev;
	enum st st;
	bool active, draining;
	int sent;
	struct timespec t_dot;
};

struct gen {
	struct event_base *base;
	struct sockaddr_in addr;
	int n_idle, n_active, per_session;
	const char *hook;
	struct sess *idle, *act;
	int idle_started, idle_ready, active_done, connecting;
	int errors;
	unsigned char *msg;
	size_t msg_len;
	double *lat; /* ms, one per message */
	size_t n_lat;
	double *warm; /* the same, less each session's first message */
	size_t n_warm;
	FILE *lat_file; /* --lat-file: "seconds-since-start latency-ms round" per message */
	struct timespec t_active;
	double active_s;
};

#define MAX_CONNECTING 50 /* connects in progress at once: no backlog overflow */

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double diff_ms(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) * 1e3 + (double)(b->tv_nsec - a->tv_nsec) / 1e6;
}

static void fail(struct sess *s, const char *what, const char *line)
{
	struct gen *g = s->g;
	if (g->errors++ < 5)
		fprintf(stderr, "load-gen: %s session: %s%s%s\n", s->active ? "active" : "idle", what,
			line != NULL ? ": " : "", line != NULL ? line : "");
	if (s->bev != NULL) {
		bufferevent_free(s->bev);
		s->bev = NULL;
	}
	if (s->st < S_IDLE && !s->active)
		g->connecting--;
	s->st = S_DONE;
	if (s->active)
		g->active_done++;
	event_base_loopexit(g->base, NULL); /* main() decides what next */
}

static void send_line(struct sess *s, const char *line)
{
	evbuffer_add_printf(bufferevent_get_output(s->bev), "%s\r\n", line);
}

static void next_message(struct sess *s)
{
	if (s->sent == s->g->per_session) {
		s->st = S_QUIT;
		send_line(s, "QUIT");
		return;
	}
	s->st = S_MAIL;
	send_line(s, "MAIL FROM:<load@gen.test>");
}

static void start_idle(struct gen *g);
static void start_active(struct gen *g);

/* The steps that only check the code and send the next command. */
static const struct step {
	enum st st;
	int code;
	const char *what, *cmd;
	enum st next;
} steps[] = {
	{ S_GREET, 220, "greeting", "EHLO load-gen.test", S_EHLO },
	{ S_MAIL, 250, "MAIL", "RCPT TO:<sink@sink.test>", S_RCPT },
	{ S_RCPT, 250, "RCPT", "DATA", S_DATA },
};

/* One complete reply (the last line of a multi-line one): act on it. */
static void on_reply(struct sess *s, int code, const char *line)
{
	struct gen *g = s->g;
	struct timespec t;

	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		if (steps[i].st != s->st)
			continue;
		if (code != steps[i].code)
			return fail(s, steps[i].what, line);
		s->st = steps[i].next;
		send_line(s, steps[i].cmd);
		return;
	}
	switch (s->st) {
	case S_EHLO:
		if (code != 250)
			return fail(s, "EHLO", line);
		if (s->active) {
			next_message(s);
			return;
		}
		s->st = S_IDLE;
		g->connecting--;
		g->idle_ready++;
		if (g->idle_ready == g->n_idle)
			event_base_loopexit(g->base, NULL);
		else
			start_idle(g);
		return;
	case S_DATA:
		if (code != 354)
			return fail(s, "DATA", line);
		s->st = S_BODY;
		s->draining = true;
		evbuffer_add_reference(bufferevent_get_output(s->bev), g->msg, g->msg_len, NULL, NULL);
		return;
	case S_BODY:
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (code != 250)
			return fail(s, "end of DATA", line);
		if (s->draining) /* the write callback has not run yet: from now */
			s->t_dot = t;
		s->draining = false;
		g->lat[g->n_lat++] = diff_ms(&s->t_dot, &t);
		/* The first message of a session also waits for the server's
		 * next-hop connection set-up; the rest show the steady state. */
		if (s->sent > 0)
			g->warm[g->n_warm++] = g->lat[g->n_lat - 1];
		if (g->lat_file != NULL)
			fprintf(g->lat_file, "%.4f %.3f %d\n", diff_ms(&g->t_active, &t) / 1e3,
				g->lat[g->n_lat - 1], s->sent);
		s->sent++;
		next_message(s);
		return;
	case S_QUIT:
		s->st = S_DONE;
		bufferevent_free(s->bev);
		s->bev = NULL;
		if (++g->active_done == g->n_active)
			event_base_loopexit(g->base, NULL);
		return;
	default:
		return fail(s, "unexpected reply", line);
	}
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct sess *s = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char *line;
	size_t n;

	while (s->bev != NULL && (line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF)) != NULL) {
		/* RFC 5321 4.2.1: "NNN-" continues, "NNN " (or "NNN") ends. */
		if (n < 3 || (n > 3 && line[3] == '-')) {
			bool bad = n < 3;
			if (bad)
				fail(s, "short reply line", line);
			free(line);
			if (bad)
				return;
			continue;
		}
		on_reply(s, atoi(line), line);
		free(line);
	}
}

static void write_cb(struct bufferevent *bev, void *arg)
{
	struct sess *s = arg;

	/* The whole message, final "." included, is in the kernel now. */
	if (s->draining) {
		clock_gettime(CLOCK_MONOTONIC, &s->t_dot);
		s->draining = false;
	}
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct sess *s = arg;

	if (what & BEV_EVENT_CONNECTED)
		return;
	if (what & BEV_EVENT_EOF)
		fail(s, "connection closed by the server", NULL);
	else
		fail(s, "connection error", evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

static int open_session(struct gen *g, struct sess *s, bool active)
{
	s->g = g;
	s->active = active;
	s->st = S_GREET;
	s->bev = bufferevent_socket_new(g->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (s->bev == NULL)
		return -1;
	bufferevent_setcb(s->bev, read_cb, write_cb, event_cb, s);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	if (bufferevent_socket_connect(s->bev, (struct sockaddr *)&g->addr, sizeof(g->addr)) < 0) {
		fail(s, "connect", strerror(errno));
		return -1;
	}
	return 0;
}

static void start_idle(struct gen *g)
{
	while (g->idle_started < g->n_idle && g->connecting < MAX_CONNECTING) {
		g->connecting++;
		if (open_session(g, &g->idle[g->idle_started++], false) < 0)
			return;
	}
}

static void start_active(struct gen *g)
{
	clock_gettime(CLOCK_MONOTONIC, &g->t_active);
	for (int i = 0; i < g->n_active; i++)
		if (open_session(g, &g->act[i], true) < 0)
			return;
}

static void run_hook(const struct gen *g, const char *phase)
{
	if (g->hook == NULL)
		return;
	char *cmd = NULL;
	if (asprintf(&cmd, "%s %s", g->hook, phase) < 0) {
		fprintf(stderr, "load-gen: out of memory\n");
		exit(2);
	}
	int rc = system(cmd);
	if (rc != 0)
		fprintf(stderr, "load-gen: hook '%s' exited %d\n", cmd, rc);
	free(cmd);
}

static void build_message(struct gen *g, size_t size)
{
	static const char head[] = "From: <load@gen.test>\r\nTo: <sink@sink.test>\r\n"
				   "Subject: load\r\nMessage-ID: <load@gen.test>\r\n\r\n";
	static const char tail[] = ".\r\n";
	size_t body = size > sizeof(head) ? size - (sizeof(head) - 1) : 78;

	body -= body % 78; /* lines of 76 'x' + CRLF */
	g->msg_len = sizeof(head) - 1 + body + sizeof(tail) - 1;
	g->msg = malloc(g->msg_len);
	if (g->msg == NULL) {
		fprintf(stderr, "load-gen: out of memory\n");
		exit(2);
	}
	memcpy(g->msg, head, sizeof(head) - 1);
	for (size_t off = 0; off < body; off += 78) {
		memset(g->msg + sizeof(head) - 1 + off, 'x', 76);
		memcpy(g->msg + sizeof(head) - 1 + off + 76, "\r\n", 2);
	}
	memcpy(g->msg + g->msg_len - (sizeof(tail) - 1), tail, sizeof(tail) - 1);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(const double *v, size_t n, double p)
{
	if (n == 0)
		return 0;
	size_t i = (size_t)(p / 100.0 * (double)n + 0.999999);
	return v[i == 0 ? 0 : (i > n ? n - 1 : i - 1)];
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(arg);
}

static double cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void usage(void)
{
	fprintf(stderr, "usage: load-gen --port P [--idle N] [--active M] [--messages K]\n"
			"                [--size BYTES] [--hook CMD] [--timeout S] [--lat-file FILE]\n");
	exit(64);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "port", required_argument, NULL, 'p' },  { "idle", required_argument, NULL, 'i' },
		{ "active", required_argument, NULL, 'a' }, { "messages", required_argument, NULL, 'm' },
		{ "size", required_argument, NULL, 's' },  { "hook", required_argument, NULL, 'h' },
		{ "timeout", required_argument, NULL, 't' }, { "lat-file", required_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 },
	};
	struct gen g = { .n_idle = 1000, .n_active = 200, .per_session = 10 };
	long port = 0, size = 10240, timeout = 300;
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'p': port = strtol(optarg, NULL, 10); break;
		case 'i': g.n_idle = atoi(optarg); break;
		case 'a': g.n_active = atoi(optarg); break;
		case 'm': g.per_session = atoi(optarg); break;
		case 's': size = strtol(optarg, NULL, 10); break;
		case 'h': g.hook = optarg; break;
		case 't': timeout = strtol(optarg, NULL, 10); break;
		case 'l':
			g.lat_file = fopen(optarg, "w");
			if (g.lat_file == NULL) {
				fprintf(stderr, "load-gen: %s: %s\n", optarg, strerror(errno));
				return 2;
			}
			break;
		default: usage();
		}
	}
	if (port <= 0 || port > 65535 || g.n_idle < 0 || g.n_active <= 0 || g.per_session <= 0 ||
	    size <= 0)
		usage();
	g.addr.sin_family = AF_INET;
	g.addr.sin_port = htons((uint16_t)port);
	g.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	g.base = event_base_new();
	g.idle = calloc((size_t)g.n_idle + 1, sizeof(*g.idle));
	g.act = calloc((size_t)g.n_active, sizeof(*g.act));
	g.lat = calloc((size_t)g.n_active * (size_t)g.per_session, sizeof(*g.lat));
	g.warm = calloc((size_t)g.n_active * (size_t)g.per_session, sizeof(*g.warm));
	if (g.base == NULL || g.idle == NULL || g.act == NULL || g.lat == NULL || g.warm == NULL) {
		fprintf(stderr, "load-gen: out of memory\n");
		return 2;
	}
	build_message(&g, (size_t)size);
	/* A bound on the whole run: the loop ends even if a server hangs. */
	struct timeval tv = { timeout, 0 };
	struct event *deadline = evtimer_new(g.base, deadline_cb, g.base);
	evtimer_add(deadline, &tv);

	run_hook(&g, "baseline");
	double t0 = now_s();
	if (g.n_idle > 0) {
		start_idle(&g);
		event_base_dispatch(g.base);
	}
	double idle_s = now_s() - t0;
	printf("idle_sessions=%d\nidle_open_s=%.3f\n", g.idle_ready, idle_s);
	fflush(stdout);
	if (g.errors == 0 && g.idle_ready == g.n_idle) {
		run_hook(&g, "idle");
		double c0 = cpu_s();
		start_active(&g);
		while (g.errors == 0 && g.active_done < g.n_active)
			if (event_base_dispatch(g.base) != 0 || event_base_got_break(g.base))
				break;
		double cpu = cpu_s() - c0;
		struct timespec t1;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		g.active_s = diff_ms(&g.t_active, &t1) / 1e3;
		qsort(g.lat, g.n_lat, sizeof(*g.lat), cmp_double);
		qsort(g.warm, g.n_warm, sizeof(*g.warm), cmp_double);
		printf("active_sessions=%d\nmessages=%zu\nmessage_bytes=%zu\nactive_s=%.3f\n"
		       "msgs_per_s=%.1f\nlat_p50_ms=%.2f\nlat_p99_ms=%.2f\nlat_max_ms=%.2f\n"
		       "gen_cpu_us_per_msg=%.1f\nlat_warm_p50_ms=%.2f\nlat_warm_p99_ms=%.2f\n",
		       g.n_active, g.n_lat, g.msg_len - 3, g.active_s,
		       g.active_s > 0 ? (double)g.n_lat / g.active_s : 0.0, pct(g.lat, g.n_lat, 50),
		       pct(g.lat, g.n_lat, 99), g.n_lat > 0 ? g.lat[g.n_lat - 1] : 0.0,
		       g.n_lat > 0 ? cpu * 1e6 / (double)g.n_lat : 0.0, pct(g.warm, g.n_warm, 50),
		       pct(g.warm, g.n_warm, 99));
	}
	if (event_base_got_break(g.base)) {
		int n[S_DONE + 1] = { 0 };
		for (int i = 0; i < g.n_active; i++)
			n[g.act[i].st]++;
		fprintf(stderr, "load-gen: timed out after %lds; active sessions waiting for: "
				"greeting %d, EHLO %d, MAIL %d, RCPT %d, DATA %d, end of DATA %d, QUIT %d\n",
			timeout, n[S_GREET], n[S_EHLO], n[S_MAIL], n[S_RCPT], n[S_DATA], n[S_BODY],
			n[S_QUIT]);
		g.errors++;
	}
	printf("errors=%d\n", g.errors);
	for (int i = 0; i < g.n_idle; i++)
		if (g.idle[i].bev != NULL)
			bufferevent_free(g.idle[i].bev);
	for (int i = 0; i < g.n_active; i++)
		if (g.act[i].bev != NULL)
			bufferevent_free(g.act[i].bev);
	event_free(deadline);
	event_base_free(g.base);
	free(g.idle);
	free(g.act);
	free(g.lat);
	free(g.warm);
	free(g.msg);
	if (g.lat_file != NULL)
		fclose(g.lat_file);
	return g.errors == 0 ? 0 : 1;
}
