/* smtp-test-server: the SMTP/LMTP engine alone, for the integration tests.
 * Each message and its envelope are written to --outdir; magic recipients
 * choose the reply (fail4@, fail5@, delay@, hang@; refuse@ at RCPT time). */
#include "smtp/server.h"
#include "smtp/tls.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/spool.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>
#include <openssl/ssl.h>

struct app;

struct pending {
	struct app *app;
	struct sg_smtp_txn *txn;
	struct event *timer; /* NULL: hangs until the client goes away */
	struct pending *next;
};

struct app {
	struct event_base *base;
	struct sg_smtp_server *srv;
	const char *outdir;
	bool lmtp;
	struct pending *pending;
};

static bool has_prefix(const char *addr, const char *prefix)
{
	return strncasecmp(addr, prefix, strlen(prefix)) == 0;
}

/* Percent-encode bytes outside 0x21..0x7e so that one line is one value. */
static void put_value(FILE *f, const char *key, const char *v)
{
	fprintf(f, "%s ", key);
	if (v == NULL) {
		fputs("-\n", f);
		return;
	}
	for (const unsigned char *p = (const unsigned char *)v; *p != '\0'; p++) {
		if (*p < 0x21 || *p > 0x7e || *p == '%')
			fprintf(f, "%%%02X", *p);
		else
			fputc(*p, f);
	}
	fputc('\n', f);
}

static int write_files(struct app *app, struct sg_smtp_txn *txn)
{
	const struct sg_envelope *env = sg_smtp_txn_envelope(txn);
	struct sg_spool *sp = sg_smtp_txn_spool(txn);
	char *path = sg_asprintf("%s/%s.eml", app->outdir, env->queue_id);
	FILE *f = fopen(path, "wb");
	int ret = -1;

	if (f == NULL)
		goto out;
	fwrite(sg_spool_data(sp), 1, sg_spool_size(sp), f);
	fclose(f);
	free(path);
	path = sg_asprintf("%s/%s.env", app->outdir, env->queue_id);
	if ((f = fopen(path, "w")) == NULL)
		goto out;
	put_value(f, "queue_id", env->queue_id);
	put_value(f, "mail_from", env->mail_from);
	put_value(f, "mail_params", env->mail_params);
	for (size_t i = 0; i < env->n_rcpts; i++) {
		put_value(f, "rcpt", env->rcpts[i].addr);
		put_value(f, "rcpt_params", env->rcpts[i].params);
	}
	fprintf(f, "body_8bit %d\nsmtputf8 %d\ntls %d\nlmtp %d\n", env->body_8bit,
		env->smtputf8, env->tls, env->lmtp);
	put_value(f, "helo", env->helo);
	put_value(f, "client_addr", env->client_addr);
	put_value(f, "client_port", env->client_port);
	put_value(f, "xf_name", env->xf.name);
	put_value(f, "xf_addr", env->xf.addr);
	put_value(f, "xf_port", env->xf.port);
	put_value(f, "xf_proto", env->xf.proto);
	put_value(f, "xf_helo", env->xf.helo);
	put_value(f, "xf_ident", env->xf.ident);
	put_value(f, "xf_source", env->xf.source);
	fclose(f);
	ret = 1;
out:
	free(path);
	return ret;
}

static void reply_for(struct sg_reply *r, const char *addr, const char *qid)
{
	if (has_prefix(addr, "fail4"))
		sg_reply_set(r, 451, "4.3.0 <%s> temporary failure", addr);
	else if (has_prefix(addr, "fail5"))
		sg_reply_set(r, 550, "5.1.1 <%s> rejected", addr);
	else
		sg_reply_set(r, 250, "2.0.0 <%s> Ok: queued as %s", addr, qid);
}

static void finish(struct sg_smtp_txn *txn)
{
	const struct sg_envelope *env = sg_smtp_txn_envelope(txn);
	size_t n = env->lmtp ? env->n_rcpts : 1;
	struct sg_reply *r = sg_calloc(n, sizeof(*r));

	if (env->lmtp) {
		for (size_t i = 0; i < n; i++)
			reply_for(&r[0 + i], env->rcpts[i].addr, env->queue_id);
	} else {
		/* SMTP: the worst recipient decides the one reply. */
		sg_reply_set(&r[0], 250, "2.0.0 Ok: queued as %s", env->queue_id);
		for (size_t i = 0; i < env->n_rcpts; i++) {
			if (has_prefix(env->rcpts[i].addr, "fail5"))
				sg_reply_set(&r[0], 554, "5.0.0 rejected");
			else if (has_prefix(env->rcpts[i].addr, "fail4") && r[0].code == 250)
				sg_reply_set(&r[0], 451, "4.3.0 temporary failure");
		}
	}
	sg_smtp_txn_finish(txn, r, n);
	for (size_t i = 0; i < n; i++)
		sg_reply_clear(&r[i]);
	free(r);
}

static void unlink_pending(struct app *app, struct pending *p)
{
	for (struct pending **pp = &app->pending; *pp != NULL; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	if (p->timer != NULL)
		event_free(p->timer);
	free(p);
}

static void delay_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pending *p = arg;

	finish(p->txn);
	unlink_pending(p->app, p);
}

static void on_data(void *ctx, struct sg_smtp_txn *txn)
{
	struct app *app = ctx;
	const struct sg_envelope *env = sg_smtp_txn_envelope(txn);
	bool delay = false, hang = false;

	if (write_files(app, txn) < 0) {
		struct sg_reply r = { 0, NULL };
		sg_reply_set(&r, 451, "4.3.0 cannot write the message");
		size_t n = env->lmtp ? env->n_rcpts : 1;
		struct sg_reply *rs = sg_calloc(n, sizeof(*rs));
		for (size_t i = 0; i < n; i++)
			rs[i] = r;
		sg_smtp_txn_finish(txn, rs, n);
		free(rs);
		sg_reply_clear(&r);
		return;
	}
	for (size_t i = 0; i < env->n_rcpts; i++) {
		delay |= has_prefix(env->rcpts[i].addr, "delay");
		hang |= has_prefix(env->rcpts[i].addr, "hang");
	}
	if (!delay && !hang) {
		finish(txn);
		return;
	}
	struct pending *p = sg_calloc(1, sizeof(*p));
	p->app = app;
	p->txn = txn;
	p->next = app->pending;
	app->pending = p;
	if (delay) {
		struct timeval tv = { 0, 500000 };
		p->timer = evtimer_new(app->base, delay_cb, p);
		evtimer_add(p->timer, &tv);
	}
}

static struct pending *find_pending(struct app *app, struct sg_smtp_txn *txn)
{
	for (struct pending *p = app->pending; p != NULL; p = p->next)
		if (p->txn == txn)
			return p;
	return NULL;
}

static void on_abort(void *ctx, struct sg_smtp_txn *txn)
{
	struct app *app = ctx;
	struct pending *p = find_pending(app, txn);

	printf("abort %s\n", sg_smtp_txn_envelope(txn)->queue_id);
	fflush(stdout);
	if (p != NULL)
		unlink_pending(app, p);
}

static int on_rcpt(void *ctx, const struct sg_envelope *env, const char *addr,
		   struct sg_reply *reply_r)
{
	if (has_prefix(addr, "refuse")) {
		sg_reply_set(reply_r, 550, "5.1.1 <%s>: Recipient address rejected", addr);
		return 0;
	}
	return 1;
}

static void on_drained(void *ctx)
{
	struct app *app = ctx;

	sg_log_info("drained");
	event_base_loopexit(app->base, NULL);
}

static void on_sigterm(evutil_socket_t sig, short what, void *arg)
{
	struct app *app = arg;

	sg_log_info("SIGTERM: shutting down");
	sg_smtp_server_shutdown(app->srv);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "lmtp", no_argument, NULL, 'L' },
		{ "outdir", required_argument, NULL, 'o' },
		{ "spool-dir", required_argument, NULL, 'S' },
		{ "spool-mem", required_argument, NULL, 'M' },
		{ "hostname", required_argument, NULL, 'H' },
		{ "max-line", required_argument, NULL, 'n' },
		{ "max-size", required_argument, NULL, 's' },
		{ "max-rcpt", required_argument, NULL, 'r' },
		{ "max-sessions", required_argument, NULL, 'c' },
		{ "max-errors", required_argument, NULL, 'e' },
		{ "timeout", required_argument, NULL, 't' },
		{ "data-timeout", required_argument, NULL, 'd' },
		{ "cert", required_argument, NULL, 'C' },
		{ "key", required_argument, NULL, 'K' },
		{ "xforward", no_argument, NULL, 'x' },
		{ NULL, 0, NULL, 0 },
	};
	struct sg_smtp_settings set = {
		.proto = SG_PROTO_SMTP, .hostname = "mx.test", .max_line = 1000,
		.max_message_size = 10 * 1024 * 1024, .max_recipients = 100, .max_sessions = 200,
		.max_errors = 10, .command_timeout_s = 60, .data_timeout_s = 60,
		.spool_dir = "/tmp", .spool_mem_max = 64 * 1024,
	};
	struct sg_smtp_callbacks cb = { on_data, on_abort, on_rcpt, on_drained };
	struct app app = { 0 };
	struct sg_error err = SG_ERROR_INIT;
	const char *listen = NULL, *cert = NULL, *key = NULL;
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'l': listen = optarg; break;
		case 'L': set.proto = SG_PROTO_LMTP; break;
		case 'o': app.outdir = optarg; break;
		case 'S': set.spool_dir = optarg; break;
		case 'M': set.spool_mem_max = strtoul(optarg, NULL, 10); break;
		case 'H': set.hostname = optarg; break;
		case 'n': set.max_line = strtoul(optarg, NULL, 10); break;
		case 's': set.max_message_size = strtoul(optarg, NULL, 10); break;
		case 'r': set.max_recipients = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'c': set.max_sessions = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'e': set.max_errors = (unsigned)strtoul(optarg, NULL, 10); break;
		case 't': set.command_timeout_s = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'd': set.data_timeout_s = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'C': cert = optarg; break;
		case 'K': key = optarg; break;
		case 'x': set.xforward = true; break;
		default:
			fprintf(stderr, "usage: smtp-test-server --listen ADDR:PORT --outdir DIR [...]\n");
			return 2;
		}
	}
	if (listen == NULL || app.outdir == NULL)
		sg_fatal("--listen and --outdir are required");
	sg_log_open("smtp-test-server", SG_LOG_STDERR, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (cert != NULL && (set.tls_ctx = sg_smtp_tls_ctx_new(cert, key, &err)) == NULL)
		sg_fatal("%s", sg_error_msg(&err));
	app.base = event_base_new();
	app.lmtp = set.proto == SG_PROTO_LMTP;
	app.srv = sg_smtp_server_new(app.base, &set, &cb, &app);
	if (sg_smtp_server_listen(app.srv, listen, &err) < 0)
		sg_fatal("%s", sg_error_msg(&err));
	struct event *sigev = evsignal_new(app.base, SIGTERM, on_sigterm, &app);
	event_add(sigev, NULL);
	sg_log_info("listening on %s", listen);
	event_base_dispatch(app.base);
	sg_smtp_server_free(&app.srv);
	while (app.pending != NULL)
		unlink_pending(&app, app.pending);
	event_free(sigev);
	event_base_free(app.base);
	if (set.tls_ctx != NULL)
		SSL_CTX_free(set.tls_ctx);
	return 0;
}
