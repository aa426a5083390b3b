/* Test driver for relay/: sends a file with a given envelope to HOST:PORT
 * through sg_relay_send() and prints the per-recipient replies. */
#include "mail/envelope.h"
#include "util/buf.h"
#include "relay/relay.h"
#include "util/error.h"
#include "util/hostport.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/spool.h"

#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct opts {
	struct sg_relay_settings set;
	unsigned copies, rounds, cancel_ms, linger_s;
	bool free_in_cb; /* sg_relay_free() from inside the last callback */
	const char *prepend_file;
};

struct driver;

struct slot {
	struct driver *d;
	unsigned idx;
};

struct driver {
	struct event_base *base;
	struct sg_relay *relay;
	struct sg_envelope env;
	struct sg_spool *msg;
	char *prepend;
	struct opts o;
	struct sg_relay_req **reqs;
	struct slot *slots;
	unsigned round, outstanding, seq;
	struct event *cancel_ev;
};

static void usage(void)
{
	fprintf(stderr,
		"usage: relay-send [-l] [-x] [-v] [-F (free the relay in the last callback)] [-n COPIES] [-r ROUNDS] [-c CANCEL_MS]\n"
		"  [-w LINGER_S (keep the loop running after the last reply)]\n"
		"  [-C CONNECT_S] [-T COMMAND_S] [-D DATA_DONE_S] [-i MAX_IDLE] [-I IDLE_S]\n"
		"  [-p PREPEND_FILE] [-P MAIL_PARAMS] [-8] [-u] [-a CLIENT_ADDR] [-A CLIENT_PORT]\n"
		"  [-H CLIENT_HELO] [-q QUEUE_ID] [-X ATTR=VALUE]... -f FROM -t RCPT[ PARAMS]...\n"
		"  HOST:PORT FILE\n");
	exit(2);
}

static char *read_file(const char *path, size_t *len_r)
{
	struct sg_buf b;
	unsigned char chunk[65536];
	ssize_t n;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		sg_fatal("%s: cannot open", path);
	sg_buf_init(&b, (size_t)1 << 30);
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		if (!sg_buf_append(&b, chunk, (size_t)n))
			sg_fatal("%s: too big", path);
	close(fd);
	return (char *)sg_buf_steal(&b, len_r);
}

/* The message goes into a spool the way the SMTP server's would: a file
 * beyond 1 MiB, so a big message is an mmap()ed view, as in production. */
static struct sg_spool *spool_file(const char *path)
{
	struct sg_error err = SG_ERROR_INIT;
	struct sg_spool *sp = sg_spool_new(getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
					   1 << 20, (size_t)1 << 31);
	unsigned char chunk[65536];
	ssize_t n;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		sg_fatal("%s: cannot open", path);
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		if (sg_spool_append(sp, chunk, (size_t)n, &err) != 1)
			sg_fatal("spool: %s", sg_error_msg(&err));
	close(fd);
	if (sg_spool_finish(sp, &err) != 1)
		sg_fatal("spool: %s", sg_error_msg(&err));
	return sp;
}

static void print_escaped(const char *s)
{
	for (; s != NULL && *s != '\0'; s++) {
		if (*s == '\n')
			fputs("\\n", stdout);
		else
			putchar(*s);
	}
}

static void start_round(struct driver *d);

static void on_done(void *ctx, const struct sg_relay_result *res)
{
	struct slot *slot = ctx;
	struct driver *d = slot->d;
	unsigned id = d->seq++;

	for (size_t i = 0; i < res->n; i++) {
		printf("reply %u %s %d ", id, d->env.rcpts[i].addr, res->replies[i].code);
		print_escaped(res->replies[i].text);
		putchar('\n');
	}
	printf("queued_as %u %s\n", id, res->queued_as != NULL ? res->queued_as : "-");
	printf("detail %u ", id);
	print_escaped(res->detail);
	putchar('\n');
	fflush(stdout);
	d->reqs[slot->idx] = NULL; /* the relay frees it after this call */
	if (--d->outstanding > 0)
		return;
	if (++d->round < d->o.rounds) {
		start_round(d);
		return;
	}
	if (d->o.free_in_cb)
		sg_relay_free(&d->relay);
	event_base_loopexit(d->base, &(struct timeval){ d->o.linger_s, 0 });
}

static void on_cancel(evutil_socket_t fd, short what, void *arg)
{
	struct driver *d = arg;
	unsigned n = 0;

	for (unsigned i = 0; i < d->o.copies; i++) {
		if (d->reqs[i] == NULL)
			continue;
		sg_relay_cancel(d->reqs[i]);
		d->reqs[i] = NULL;
		n++;
	}
	printf("cancelled %u\n", n);
	fflush(stdout);
	event_base_loopexit(d->base, NULL);
}

static void start_round(struct driver *d)
{
	d->outstanding = d->o.copies;
	for (unsigned i = 0; i < d->o.copies; i++)
		d->reqs[i] = sg_relay_send(d->relay, &d->env, d->prepend, d->msg, on_done,
					   &d->slots[i]);
}

static void set_xf(struct sg_xforward *xf, const char *arg)
{
	static const struct {
		const char *name;
		size_t off;
	} attrs[] = {
		{ "NAME", offsetof(struct sg_xforward, name) },
		{ "ADDR", offsetof(struct sg_xforward, addr) },
		{ "PORT", offsetof(struct sg_xforward, port) },
		{ "PROTO", offsetof(struct sg_xforward, proto) },
		{ "HELO", offsetof(struct sg_xforward, helo) },
		{ "IDENT", offsetof(struct sg_xforward, ident) },
		{ "SOURCE", offsetof(struct sg_xforward, source) },
	};
	const char *eq = strchr(arg, '=');

	for (size_t i = 0; eq != NULL && i < sizeof(attrs) / sizeof(attrs[0]); i++) {
		if (strlen(attrs[i].name) == (size_t)(eq - arg) &&
		    strncmp(arg, attrs[i].name, (size_t)(eq - arg)) == 0) {
			char **f = (char **)((char *)xf + attrs[i].off);
			free(*f);
			*f = sg_strdup(eq + 1);
			return;
		}
	}
	usage();
}

static void add_rcpt(struct sg_envelope *env, const char *arg)
{
	const char *sp = strchr(arg, ' ');
	char *addr = sp != NULL ? sg_strndup(arg, (size_t)(sp - arg)) : sg_strdup(arg);

	sg_envelope_add_rcpt(env, addr, sp != NULL ? sp + 1 : NULL);
	free(addr);
}

static void parse_args(struct driver *d, int argc, char **argv)
{
	struct opts *o = &d->o;
	int ch;

	o->set = (struct sg_relay_settings){
		.proto = SG_PROTO_SMTP, .helo_name = "relay-send.test", .connect_timeout_s = 5,
		.command_timeout_s = 10, .data_done_timeout_s = 20, .max_idle = 4,
		.idle_timeout_s = 30, .xforward = false,
	};
	o->copies = o->rounds = 1;
	while ((ch = getopt(argc, argv, "lxvFn:r:c:C:T:D:i:I:p:P:8ua:A:H:q:X:f:t:w:")) != -1) {
		switch (ch) {
		case 'l': o->set.proto = SG_PROTO_LMTP; break;
		case 'x': o->set.xforward = true; break;
		case 'v': sg_log_set_debug(1); break;
		case 'n': o->copies = (unsigned)atoi(optarg); break;
		case 'r': o->rounds = (unsigned)atoi(optarg); break;
		case 'c': o->cancel_ms = (unsigned)atoi(optarg); break;
		case 'C': o->set.connect_timeout_s = (unsigned)atoi(optarg); break;
		case 'T': o->set.command_timeout_s = (unsigned)atoi(optarg); break;
		case 'D': o->set.data_done_timeout_s = (unsigned)atoi(optarg); break;
		case 'i': o->set.max_idle = (unsigned)atoi(optarg); break;
		case 'I': o->set.idle_timeout_s = (unsigned)atoi(optarg); break;
		case 'F': o->free_in_cb = true; break;
		case 'w': o->linger_s = (unsigned)atoi(optarg); break;
		case 'p': o->prepend_file = optarg; break;
		case 'P': d->env.mail_params = sg_strdup(optarg); break;
		case '8': d->env.body_8bit = true; break;
		case 'u': d->env.smtputf8 = true; break;
		case 'a': d->env.client_addr = sg_strdup(optarg); break;
		case 'A': d->env.client_port = sg_strdup(optarg); break;
		case 'H': d->env.helo = sg_strdup(optarg); break;
		case 'q': d->env.queue_id = sg_strdup(optarg); break;
		case 'X': set_xf(&d->env.xf, optarg); break;
		case 'f': d->env.mail_from = sg_strdup(optarg); break;
		case 't': add_rcpt(&d->env, optarg); break;
		default: usage();
		}
	}
	if (argc - optind != 2 || d->env.mail_from == NULL || o->copies == 0)
		usage();
}

int main(int argc, char **argv)
{
	struct driver d;
	struct sg_error err = SG_ERROR_INIT;
	char *host = NULL, *port = NULL;

	memset(&d, 0, sizeof(d));
	signal(SIGPIPE, SIG_IGN);
	sg_log_open("relay-send", SG_LOG_STDERR, NULL);
	parse_args(&d, argc, argv);
	if (sg_parse_hostport(argv[optind], &host, &port, &err) < 0)
		sg_fatal("%s", sg_error_msg(&err));
	d.o.set.host = host;
	d.o.set.port = port;
	d.msg = spool_file(argv[optind + 1]);
	if (d.o.prepend_file != NULL)
		d.prepend = read_file(d.o.prepend_file, NULL);
	d.base = event_base_new();
	d.relay = sg_relay_new(d.base, &d.o.set);
	d.reqs = sg_calloc(d.o.copies, sizeof(*d.reqs));
	d.slots = sg_calloc(d.o.copies, sizeof(*d.slots));
	for (unsigned i = 0; i < d.o.copies; i++)
		d.slots[i] = (struct slot){ &d, i };
	start_round(&d);
	if (d.o.cancel_ms > 0) {
		struct timeval tv = { d.o.cancel_ms / 1000, (d.o.cancel_ms % 1000) * 1000 };
		d.cancel_ev = evtimer_new(d.base, on_cancel, &d);
		evtimer_add(d.cancel_ev, &tv);
	}
	event_base_dispatch(d.base);
	sg_relay_free(&d.relay);
	if (d.cancel_ev != NULL)
		event_free(d.cancel_ev);
	event_base_free(d.base);
	sg_spool_free(&d.msg);
	sg_envelope_clear(&d.env);
	free(d.reqs);
	free(d.slots);
	free(d.prepend);
	free(host);
	free(port);
	return 0;
}
