/* The SMTP/LMTP session engine: listeners, sessions, a table-driven command
 * state machine (OpenSMTPD commands[], Postfix smtpd_cmd_table), DATA. */
#include "smtp/server.h"
#include "smtp/cmd.h"
#include "smtp/data.h"
#include "util/bevwrite.h"
#include "util/buf.h"
#include "util/hostport.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/spool.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

/* Session states; a command's allowed states are a mask of these. */
enum {
	ST_INIT = 1 << 0, /* greeted, no HELO/EHLO/LHLO yet (also after STARTTLS) */
	ST_HELO = 1 << 1, /* no transaction */
	ST_MAIL = 1 << 2, /* MAIL accepted */
	ST_RCPT = 1 << 3, /* at least one RCPT accepted */
	ST_DATA = 1 << 4, /* reading message data */
	ST_WAIT = 1 << 5, /* data() is working; pipelined input stays buffered */
	ST_TLS = 1 << 6,  /* TLS handshake in progress */
};
#define ST_CMD (ST_INIT | ST_HELO | ST_MAIL | ST_RCPT)

/* What a handler tells the dispatcher (for counting, as Postfix's
 * "rcpt=1/2" disconnect line does). */
enum { CMD_OK, CMD_REFUSED, CMD_ERROR };

#define N_CMDS 13
#define READ_SLACK (64 * 1024) /* pipelined input buffered beyond max_line */

struct session;

struct sg_smtp_txn {
	struct session *s;
	struct sg_envelope env;
	struct sg_spool *spool;
	bool handed;   /* data() was called */
	bool io_error; /* spool append failed */
};

struct session {
	struct sg_smtp_server *srv;
	struct session *prev, *next;
	struct bufferevent *bev;
	struct event *close_timer;
	unsigned close_polls;
	int state;
	bool tls, closing, skipping, in_loop, quit;
	bool holding; /* replies being queued as one batch: flush after */
	char *helo, *addr, *port;
	struct sg_xforward xf;
	struct sg_smtp_txn *txn;
	unsigned errors;
	unsigned n_ok[N_CMDS + 1], n_all[N_CMDS + 1]; /* last: unknown */
	struct sg_data_parser data;
};

struct listener {
	struct evconnlistener *l;
};

struct sg_smtp_server {
	struct event_base *base;
	struct sg_smtp_settings set;
	struct sg_smtp_callbacks cb;
	void *ctx;
	struct listener *listeners;
	size_t n_listeners;
	struct session *sessions;
	unsigned n_sessions;
	bool paused, shutting_down, drained_called;
	struct event *drain_ev;
};

typedef int cmd_fn(struct session *s, const char *args);

struct cmd {
	const char *verb;
	int states;            /* where the command is allowed */
	cmd_fn *fn;
	unsigned flags;
	const char *bad_state; /* the reply outside those states (after HELO) */
};

enum {
	F_SMTP = 1 << 0,     /* SMTP only */
	F_LMTP = 1 << 1,     /* LMTP only */
	F_XFORWARD = 1 << 2, /* only when settings.xforward */
};

static void process_input(struct session *s);
static void session_close(struct session *s);
static void close_check(struct session *s);
static void session_free(struct session *s);

/* ---- replies ---- */

/* Write the queued replies straight to the socket, once per batch (a
 * pipelined group's replies go out in one write, RFC 2920 3.2), and let
 * libevent's write event handle only what the kernel does not take: that
 * saves arming and disarming the write event (two epoll_ctl and a loop
 * pass) per reply. TLS sessions keep libevent's own path. */
static void flush_output(struct session *s)
{
	if (s->bev != NULL && bufferevent_get_underlying(s->bev) == NULL)
		(void)sg_bev_write_now(s->bev);
}

/* After a reply was queued: inside process_input() (or a batch) the
 * flush comes at its end. */
static void replied(struct session *s)
{
	if (!s->in_loop && !s->holding)
		flush_output(s);
}

static void replyf(struct session *s, const char *fmt, ...) SG_PRINTF(2, 3);
static void replyf(struct session *s, const char *fmt, ...)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);
	va_list ap;

	va_start(ap, fmt);
	evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	evbuffer_add(out, "\r\n", 2);
	replied(s);
}

/* A caller's reply: text lines joined with '\n' become a multi-line reply
 * (RFC 5321 4.2.1). A CR in the text cannot end a line early. */
static void send_reply(struct session *s, const struct sg_reply *r)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);
	const char *text = r->text != NULL ? r->text : "";
	int code = r->code;

	if (code < 200 || code > 599) {
		sg_log_warn("smtp: callback gave an invalid reply code %d", code);
		code = 451;
		text = "4.3.0 Error: internal error";
	}
	for (;;) {
		size_t n = strcspn(text, "\n");
		bool last = text[n] == '\0';
		evbuffer_add_printf(out, "%03d%c", code, last ? ' ' : '-');
		for (size_t i = 0; i < n; i++)
			if (text[i] != '\r')
				evbuffer_add(out, text + i, 1);
		evbuffer_add(out, "\r\n", 2);
		if (last)
			break;
		text += n + 1;
	}
	replied(s);
}

/* ---- timeouts ---- */

static void set_timeouts(struct session *s, unsigned read_s)
{
	struct timeval rt = { (time_t)read_s, 0 };
	struct timeval wt = { (time_t)s->srv->set.command_timeout_s, 0 };

	bufferevent_set_timeouts(s->bev, read_s > 0 ? &rt : NULL,
				 s->srv->set.command_timeout_s > 0 ? &wt : NULL);
}

/* ---- queue IDs ---- */

/* Postfix-style short IDs: 12 uppercase hex digits from the low bits of the
 * time (seconds and microseconds) and a per-process counter that starts at
 * a random value, so two processes started at once rarely collide, and
 * one process never repeats an ID within the 16 bits of seconds (~18 h). */
static unsigned qid_counter; /* seeded once by sg_smtp_server_new(); atomic */

static void seed_queue_ids(void)
{
	unsigned seed;

	if (RAND_bytes((unsigned char *)&seed, sizeof(seed)) != 1)
		seed = (unsigned)getpid();
	__atomic_store_n(&qid_counter, seed, __ATOMIC_RELAXED);
}

static char *new_queue_id(void)
{
	struct timeval tv;
	unsigned n = __atomic_add_fetch(&qid_counter, 1, __ATOMIC_RELAXED);

	gettimeofday(&tv, NULL);
	return sg_asprintf("%04lX%05lX%03X", (unsigned long)tv.tv_sec & 0xFFFF,
			   (unsigned long)tv.tv_usec & 0xFFFFF, n & 0xFFF);
}

/* ---- transactions ---- */

static void txn_free(struct sg_smtp_txn **tp)
{
	struct sg_smtp_txn *t = *tp;

	if (t == NULL)
		return;
	sg_envelope_clear(&t->env);
	sg_spool_free(&t->spool);
	free(t);
	*tp = NULL;
}

/* The end of a transaction (DATA answered, RSET, HELO, abort): Postfix
 * forgets XFORWARD attributes here too. */
static void end_txn(struct session *s)
{
	txn_free(&s->txn);
	sg_xforward_clear(&s->xf);
	if (s->state & (ST_MAIL | ST_RCPT | ST_DATA | ST_WAIT))
		s->state = ST_HELO;
	if (s->bev != NULL)
		set_timeouts(s, s->srv->set.command_timeout_s);
}

/* ---- commands ---- */

static const char *proto_name(const struct session *s)
{
	return s->srv->set.proto == SG_PROTO_LMTP ? "LMTP" : "ESMTP";
}

static bool has_control(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

static int cmd_helo_common(struct session *s, const char *args, const char *verb, bool ext)
{
	const struct sg_smtp_settings *set = &s->srv->set;

	if (*args == '\0' || has_control(args)) {
		/* The name ends up in a Received: header: no control bytes. */
		replyf(s, "501 5.5.4 Syntax: %s hostname", verb);
		return CMD_ERROR;
	}
	/* RFC 5321 4.1.4: EHLO in a transaction resets it. */
	end_txn(s);
	free(s->helo);
	s->helo = sg_strdup(args);
	s->state = ST_HELO;
	if (!ext) {
		replyf(s, "250 %s", set->hostname);
		return CMD_OK;
	}
	replyf(s, "250-%s", set->hostname);
	replyf(s, "250-PIPELINING");
	replyf(s, "250-SIZE %zu", set->max_message_size);
	replyf(s, "250-8BITMIME");
	replyf(s, "250-ENHANCEDSTATUSCODES");
	replyf(s, "250-SMTPUTF8");
	if (set->tls_ctx != NULL && !s->tls)
		replyf(s, "250-STARTTLS");
	if (set->xforward)
		replyf(s, "250-XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE");
	replyf(s, "250 DSN");
	return CMD_OK;
}

static int cmd_helo(struct session *s, const char *args)
{
	return cmd_helo_common(s, args, "HELO", false);
}

static int cmd_ehlo(struct session *s, const char *args)
{
	return cmd_helo_common(s, args, "EHLO", true);
}

static int cmd_lhlo(struct session *s, const char *args)
{
	return cmd_helo_common(s, args, "LHLO", true);
}

static void log_client(struct session *s, const struct sg_envelope *env)
{
	/* The upstream queue ID (XFORWARD IDENT) and original client tie this
	 * line to the Postfix log lines before us. */
	if (env->xf.addr != NULL || env->xf.name != NULL || env->xf.ident != NULL)
		sg_log_info("%s: client=unknown[%s], orig_client=%s[%s]%s%s", env->queue_id, s->addr,
			    env->xf.name != NULL ? env->xf.name : "unknown",
			    env->xf.addr != NULL ? env->xf.addr : "unknown",
			    env->xf.ident != NULL ? ", orig_queue_id=" : "",
			    env->xf.ident != NULL ? env->xf.ident : "");
	else
		sg_log_info("%s: client=unknown[%s]", env->queue_id, s->addr);
}

static char *dup_or_null(const char *v)
{
	return v != NULL ? sg_strdup(v) : NULL;
}

static void xf_copy(struct sg_xforward *dst, const struct sg_xforward *src)
{
	dst->name = dup_or_null(src->name);
	dst->addr = dup_or_null(src->addr);
	dst->port = dup_or_null(src->port);
	dst->proto = dup_or_null(src->proto);
	dst->helo = dup_or_null(src->helo);
	dst->ident = dup_or_null(src->ident);
	dst->source = dup_or_null(src->source);
}

static int cmd_mail(struct session *s, const char *args)
{
	struct sg_smtp_path path;
	struct sg_mail_opts opts;
	struct sg_reply r = { 0, NULL };
	int ret = CMD_REFUSED;
	int pr = sg_smtp_parse_path(args, "FROM", true, false, &path);

	if (pr == 0) {
		replyf(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
		return CMD_ERROR;
	}
	if (pr == -1 || pr == -2) {
		replyf(s, pr == -1 ? "501 5.1.7 Bad sender address syntax"
				   : "501 5.5.4 Bad MAIL parameter syntax");
		return CMD_ERROR;
	}
	if (!sg_smtp_mail_params(path.params, s->srv->set.max_message_size, &opts, &r)) {
		send_reply(s, &r);
		goto out;
	}
	if (path.addr_8bit && !opts.smtputf8) {
		/* RFC 6531 3.7.4.1 */
		replyf(s, "553 5.6.7 Error: non-ASCII sender address needs SMTPUTF8");
		goto out;
	}
	struct sg_smtp_txn *t = sg_calloc(1, sizeof(*t));
	t->s = s;
	t->env.mail_from = path.addr;
	t->env.mail_params = path.params;
	path.addr = path.params = NULL;
	t->env.body_8bit = opts.body_8bit;
	t->env.smtputf8 = opts.smtputf8;
	t->env.helo = sg_strdup(s->helo);
	t->env.client_addr = sg_strdup(s->addr);
	t->env.client_port = sg_strdup(s->port);
	t->env.tls = s->tls;
	t->env.lmtp = s->srv->set.proto == SG_PROTO_LMTP;
	t->env.queue_id = new_queue_id();
	xf_copy(&t->env.xf, &s->xf);
	s->txn = t;
	s->state = ST_MAIL;
	log_client(s, &t->env);
	replyf(s, "250 2.1.0 Ok");
	ret = CMD_OK;
out:
	sg_reply_clear(&r);
	sg_smtp_path_clear(&path);
	return ret;
}

/* 1 accepted, 0 refused (reply sent). */
static int rcpt_policy(struct session *s, const char *addr)
{
	struct sg_reply r = { 0, NULL };
	int ok;

	if (s->srv->cb.rcpt == NULL)
		return 1;
	ok = s->srv->cb.rcpt(s->srv->ctx, &s->txn->env, addr, &r);
	if (ok != 1) {
		if (sg_reply_class(&r) != 4 && sg_reply_class(&r) != 5)
			sg_reply_set(&r, 451, "4.3.0 Error: recipient check failed");
		send_reply(s, &r);
	}
	sg_reply_clear(&r);
	return ok == 1;
}

static int cmd_rcpt(struct session *s, const char *args)
{
	const struct sg_smtp_settings *set = &s->srv->set;
	struct sg_envelope *env = &s->txn->env;
	struct sg_smtp_path path;
	struct sg_reply r = { 0, NULL };
	int ret = CMD_REFUSED;
	int pr = sg_smtp_parse_path(args, "TO", false, true, &path);

	if (pr == 0) {
		replyf(s, "501 5.5.4 Syntax: RCPT TO:<address>");
		return CMD_ERROR;
	}
	if (pr < 0) {
		replyf(s, pr == -1 ? "501 5.1.3 Bad recipient address syntax"
				   : "501 5.5.4 Bad RCPT parameter syntax");
		return CMD_ERROR;
	}
	if (!sg_smtp_rcpt_params(path.params, &r)) {
		send_reply(s, &r);
		goto out;
	}
	if (path.addr_8bit && !env->smtputf8) {
		replyf(s, "553 5.6.7 Error: non-ASCII recipient address needs SMTPUTF8");
		goto out;
	}
	if (set->max_recipients > 0 && env->n_rcpts >= set->max_recipients) {
		replyf(s, "452 4.5.3 Error: too many recipients");
		goto out;
	}
	if (!rcpt_policy(s, path.addr))
		goto out;
	sg_envelope_add_rcpt(env, path.addr, path.params);
	s->state = ST_RCPT;
	replyf(s, "250 2.1.5 Ok");
	ret = CMD_OK;
out:
	sg_reply_clear(&r);
	sg_smtp_path_clear(&path);
	return ret;
}

static int spool_out(void *ctx, const unsigned char *p, size_t n)
{
	struct sg_smtp_txn *t = ctx;
	struct sg_error err = SG_ERROR_INIT;
	int r = sg_spool_append(t->spool, p, n, &err);

	if (r < 0) {
		sg_log_warn("%s: %s", t->env.queue_id, sg_error_msg(&err));
		t->io_error = true;
	}
	sg_error_clear(&err);
	return r < 0 ? -1 : 1;
}

static int cmd_data(struct session *s, const char *args)
{
	const struct sg_smtp_settings *set = &s->srv->set;
	struct sg_smtp_txn *t = s->txn;

	if (*args != '\0') {
		replyf(s, "501 5.5.4 Syntax: DATA");
		return CMD_ERROR;
	}
	t->spool = sg_spool_new(set->spool_dir != NULL ? set->spool_dir : "/tmp",
				set->spool_mem_max, set->max_message_size);
	sg_data_init(&s->data, set->max_line, set->max_message_size, spool_out, t);
	s->state = ST_DATA;
	set_timeouts(s, set->data_timeout_s);
	replyf(s, "354 End data with <CR><LF>.<CR><LF>");
	return CMD_OK;
}

static int cmd_rset(struct session *s, const char *args)
{
	if (*args != '\0') {
		replyf(s, "501 5.5.4 Syntax: RSET");
		return CMD_ERROR;
	}
	end_txn(s);
	replyf(s, "250 2.0.0 Ok");
	return CMD_OK;
}

static int cmd_noop(struct session *s, const char *args)
{
	replyf(s, "250 2.0.0 Ok");
	return CMD_OK;
}

static int cmd_quit(struct session *s, const char *args)
{
	replyf(s, "221 2.0.0 Bye");
	s->quit = true;
	session_close(s);
	return CMD_OK;
}

static int cmd_vrfy(struct session *s, const char *args)
{
	if (*args == '\0') {
		replyf(s, "501 5.5.4 Syntax: VRFY address");
		return CMD_ERROR;
	}
	/* RFC 5321 3.5.3: we will not tell whether an address exists. */
	replyf(s, "252 2.5.2 Cannot VRFY user, but will accept message and attempt delivery");
	return CMD_OK;
}

static int cmd_help(struct session *s, const char *args)
{
	replyf(s, "214 2.0.0 Commands: %s MAIL RCPT DATA RSET NOOP QUIT VRFY HELP%s%s",
	       s->srv->set.proto == SG_PROTO_LMTP ? "LHLO" : "HELO EHLO",
	       s->srv->set.tls_ctx != NULL ? " STARTTLS" : "",
	       s->srv->set.xforward ? " XFORWARD" : "");
	return CMD_OK;
}

static void session_event_cb(struct bufferevent *bev, short what, void *arg);
static void session_read_cb(struct bufferevent *bev, void *arg);
static void session_write_cb(struct bufferevent *bev, void *arg);

static void setup_bev(struct session *s)
{
	size_t hw = s->srv->set.max_line + READ_SLACK;

	bufferevent_setcb(s->bev, session_read_cb, session_write_cb, session_event_cb, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, hw);
	bufferevent_enable(s->bev, EV_READ);
	/* A plain socket's writes start in flush_output(); a TLS filter's
	 * are libevent's. */
	if (bufferevent_get_underlying(s->bev) != NULL)
		bufferevent_enable(s->bev, EV_WRITE);
	else
		bufferevent_disable(s->bev, EV_WRITE);
	set_timeouts(s, s->srv->set.command_timeout_s);
}

static int cmd_starttls(struct session *s, const char *args)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	SSL *ssl;

	if (*args != '\0') {
		replyf(s, "501 5.5.4 Syntax: STARTTLS");
		return CMD_ERROR;
	}
	if (s->tls) {
		replyf(s, "554 5.5.1 Error: TLS already active");
		return CMD_ERROR;
	}
	if (s->srv->set.tls_ctx == NULL || (ssl = SSL_new(s->srv->set.tls_ctx)) == NULL) {
		replyf(s, "454 4.7.0 TLS not available");
		return CMD_REFUSED;
	}
	replyf(s, "220 2.0.0 Ready to start TLS");
	/* RFC 3207 and CVE-2011-0411: whatever the client sent after STARTTLS
	 * before the handshake is plaintext an attacker may have injected; it
	 * must never be read as commands of the TLS session. */
	size_t junk = evbuffer_get_length(in);
	if (junk > 0) {
		sg_log_warn("discarding %zu bytes pipelined after STARTTLS from unknown[%s]", junk,
			    s->addr);
		evbuffer_drain(in, junk);
	}
	bufferevent_set_timeouts(s->bev, NULL, NULL); /* the filter's apply now */
	/* The socket's output (this 220, then the handshake) is written by
	 * libevent under the filter. */
	bufferevent_enable(s->bev, EV_WRITE);
	struct bufferevent *f = bufferevent_openssl_filter_new(
		s->srv->base, s->bev, ssl, BUFFEREVENT_SSL_ACCEPTING,
		BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (f == NULL) {
		SSL_free(ssl);
		sg_log_warn("TLS filter setup failed for unknown[%s]", s->addr);
		session_close(s);
		return CMD_OK;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(f, 1);
	s->bev = f;
	setup_bev(s);
	free(s->helo);
	s->helo = NULL;
	sg_xforward_clear(&s->xf);
	s->state = ST_TLS;
	return CMD_OK;
}

static int cmd_xforward(struct session *s, const char *args)
{
	struct sg_reply r = { 0, NULL };
	int ret = CMD_OK;

	if (sg_smtp_parse_xforward(args, &s->xf, &r))
		replyf(s, "250 2.0.0 Ok");
	else {
		send_reply(s, &r);
		ret = CMD_ERROR;
	}
	sg_reply_clear(&r);
	return ret;
}

static const struct cmd commands[N_CMDS] = {
	{ "HELO", ST_CMD, cmd_helo, F_SMTP, NULL },
	{ "EHLO", ST_CMD, cmd_ehlo, F_SMTP, NULL },
	{ "LHLO", ST_CMD, cmd_lhlo, F_LMTP, NULL },
	{ "STARTTLS", ST_HELO, cmd_starttls, 0, "503 5.5.1 Error: MAIL transaction in progress" },
	{ "XFORWARD", ST_HELO, cmd_xforward, F_XFORWARD,
	  "503 5.5.1 Error: MAIL transaction in progress" },
	{ "MAIL", ST_HELO, cmd_mail, 0, "503 5.5.1 Error: nested MAIL command" },
	{ "RCPT", ST_MAIL | ST_RCPT, cmd_rcpt, 0, "503 5.5.1 Error: need MAIL command" },
	{ "DATA", ST_RCPT, cmd_data, 0, "503 5.5.1 Error: need RCPT command" },
	{ "RSET", ST_CMD, cmd_rset, 0, NULL },
	{ "NOOP", ST_CMD, cmd_noop, 0, NULL },
	{ "QUIT", ST_CMD, cmd_quit, 0, NULL },
	{ "VRFY", ST_CMD, cmd_vrfy, 0, NULL },
	{ "HELP", ST_CMD, cmd_help, 0, NULL },
};

static const struct cmd *find_cmd(struct session *s, const char *verb, size_t n)
{
	bool lmtp = s->srv->set.proto == SG_PROTO_LMTP;

	for (size_t i = 0; i < N_CMDS; i++) {
		const struct cmd *c = &commands[i];
		if (strlen(c->verb) != n || strncasecmp(c->verb, verb, n) != 0)
			continue;
		/* RFC 2033 4.1: HELO/EHLO are not LMTP commands. */
		if ((c->flags & F_SMTP && lmtp) || (c->flags & F_LMTP && !lmtp))
			return NULL;
		return c;
	}
	return NULL;
}

static void too_many_errors(struct session *s)
{
	sg_log_info("too many errors from unknown[%s]", s->addr);
	replyf(s, "421 4.7.0 %s Error: too many errors", s->srv->set.hostname);
	session_close(s);
}

static void dispatch(struct session *s, const char *line, bool bad_bytes)
{
	struct sg_smtp_server *srv = s->srv;
	const struct cmd *c = NULL;
	const char *args = "";
	size_t vlen = 0, idx = N_CMDS;
	int r;

	if (!bad_bytes && sg_smtp_split(line, &vlen, &args))
		c = find_cmd(s, line, vlen);
	if (c != NULL)
		idx = (size_t)(c - commands);
	s->n_all[idx]++;
	if (srv->shutting_down && (s->state & (ST_INIT | ST_HELO))) {
		/* A transaction that was under way at shutdown is finished; the
		 * next command ends the session. */
		replyf(s, "421 4.3.2 %s Service shutting down", srv->set.hostname);
		session_close(s);
		return;
	}
	if (c == NULL) {
		replyf(s, bad_bytes || vlen == 0 ? "500 5.5.2 Error: bad syntax"
						  : "500 5.5.1 Error: command not recognized");
		r = CMD_ERROR;
	} else if ((c->flags & F_XFORWARD) && !srv->set.xforward) {
		replyf(s, "502 5.5.1 Error: command not implemented");
		r = CMD_ERROR;
	} else if (!(c->states & s->state)) {
		if (s->state == ST_INIT)
			replyf(s, "503 5.5.1 Error: send %s first",
			       srv->set.proto == SG_PROTO_LMTP ? "LHLO" : "HELO/EHLO");
		else
			replyf(s, "%s", c->bad_state);
		r = CMD_ERROR;
	} else {
		r = c->fn(s, args);
	}
	if (r == CMD_OK)
		s->n_ok[idx]++;
	if (r == CMD_ERROR && srv->set.max_errors > 0 && ++s->errors >= srv->set.max_errors &&
	    !s->closing)
		too_many_errors(s);
}

/* ---- reading ---- */

/* RFC 5321 4.5.3.1.4 and 4.2.2: the whole over-long line was read and
 * is answered once, as one bad command. */
static void line_too_long(struct session *s)
{
	replyf(s, "500 5.5.2 Error: line too long");
	s->n_all[N_CMDS]++;
	if (s->srv->set.max_errors > 0 && ++s->errors >= s->srv->set.max_errors)
		too_many_errors(s);
}

/* One command line. 1 if one was handled, 0 if more input is needed. */
static int read_command(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	size_t max = s->srv->set.max_line;
	size_t n;
	char *line;

	if (s->skipping) {
		struct evbuffer_ptr eol = evbuffer_search_eol(in, NULL, NULL, EVBUFFER_EOL_LF);
		if (eol.pos < 0) {
			evbuffer_drain(in, evbuffer_get_length(in));
			return 0;
		}
		evbuffer_drain(in, (size_t)eol.pos + 1);
		s->skipping = false;
		line_too_long(s);
		return 1;
	}
	line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF);
	if (line == NULL) {
		if (max > 0 && evbuffer_get_length(in) >= max)
			s->skipping = true;
		return s->skipping;
	}
	bool bad = memchr(line, '\0', n) != NULL;
	if (max > 0 && n + 1 > max) {
		/* The line with its CRLF is longer than allowed. */
		free(line);
		line_too_long(s);
		return 1;
	}
	if (n > 0 && line[n - 1] == '\r')
		line[--n] = '\0';
	dispatch(s, line, bad);
	free(line);
	return 1;
}

/* Why a complete message is refused, or NULL. */
static const char *data_refusal(struct session *s)
{
	struct sg_smtp_txn *t = s->txn;
	unsigned e = s->data.errors;

	if (t->io_error || (e & SG_DATA_ERR_OUTPUT))
		return "452 4.3.1 Insufficient system storage";
	/* RFC 1870 6.2 / RFC 3463 X.3.4: over the size limit. */
	if ((e & SG_DATA_ERR_TOO_BIG) || sg_spool_oversize(t->spool))
		return "552 5.3.4 Message size exceeds fixed limit";
	/* RFC 5321 4.5.3.1.6 line limit. 500 "line too long" is for command
	 * lines (4.2.2); after the data a 5xx that clients take as a
	 * permanent refusal of this message is right, and the limit is one of
	 * this system's (X.3.4). */
	if (e & SG_DATA_ERR_LONG_LINE)
		return "552 5.3.4 Error: message line too long";
	/* RFC 5321 2.3.8: CR only as part of CRLF; X.6.0 media error. */
	if (e & SG_DATA_ERR_BARE_CR)
		return "554 5.6.0 Error: bare <CR> received in message data";
	return NULL;
}

static void data_done(struct session *s)
{
	struct sg_smtp_txn *t = s->txn;
	struct sg_error err = SG_ERROR_INIT;
	const char *refusal = data_refusal(s);

	if (refusal == NULL && sg_spool_finish(t->spool, &err) < 0) {
		sg_log_warn("%s: %s", t->env.queue_id, sg_error_msg(&err));
		refusal = "452 4.3.1 Insufficient system storage";
	}
	sg_error_clear(&err);
	if (refusal != NULL) {
		sg_log_info("%s: reject: DATA from unknown[%s]: %s", t->env.queue_id, s->addr,
			    refusal);
		/* RFC 2033 4.2: LMTP answers once per accepted recipient. */
		size_t n = s->srv->set.proto == SG_PROTO_LMTP ? t->env.n_rcpts : 1;
		for (size_t i = 0; i < n; i++)
			replyf(s, "%s", refusal);
		end_txn(s);
		return;
	}
	sg_log_info("%s: from=<%s>, size=%zu, nrcpt=%zu", t->env.queue_id, t->env.mail_from,
		    sg_spool_size(t->spool), t->env.n_rcpts);
	s->state = ST_WAIT;
	/* Our callee's time is not the client's idleness. */
	set_timeouts(s, 0);
	t->handed = true;
	s->srv->cb.data(s->srv->ctx, t);
}

/* Feed buffered input to the DATA parser. 1 if the end was reached. */
static int read_data(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct evbuffer_iovec v;
	bool done = false;

	while (!done && evbuffer_peek(in, -1, NULL, &v, 1) > 0 && v.iov_len > 0) {
		size_t used = sg_data_push(&s->data, v.iov_base, v.iov_len, &done);
		evbuffer_drain(in, used);
	}
	if (!done)
		return 0;
	data_done(s);
	return 1;
}

static void process_input(struct session *s)
{
	if (s->in_loop)
		return;
	s->in_loop = true;
	while (!s->closing) {
		if (s->state & (ST_WAIT | ST_TLS))
			break;
		if (s->state == ST_DATA ? !read_data(s) : !read_command(s))
			break;
	}
	s->in_loop = false;
	flush_output(s);
}

/* ---- session life ---- */

static void log_disconnect(struct session *s)
{
	struct sg_buf b;
	unsigned ok = 0, all = 0;

	sg_buf_init(&b, 4096);
	for (size_t i = 0; i <= N_CMDS; i++) {
		if (s->n_all[i] == 0)
			continue;
		char *name = sg_strdup(i < N_CMDS ? commands[i].verb : "unknown");
		for (char *p = name; *p != '\0'; p++)
			*p = (char)tolower((unsigned char)*p);
		int fit = s->n_ok[i] == s->n_all[i]
				  ? sg_buf_printf(&b, " %s=%u", name, s->n_ok[i])
				  : sg_buf_printf(&b, " %s=%u/%u", name, s->n_ok[i], s->n_all[i]);
		(void)fit; /* 14 counters always fit in 4 KiB */
		free(name);
		ok += s->n_ok[i];
		all += s->n_all[i];
	}
	if (ok == all)
		sg_log_info("disconnect from unknown[%s]%s commands=%u", s->addr, sg_buf_str(&b), ok);
	else
		sg_log_info("disconnect from unknown[%s]%s commands=%u/%u", s->addr, sg_buf_str(&b),
			    ok, all);
	sg_buf_free(&b);
}

static void session_free(struct session *s)
{
	struct sg_smtp_server *srv = s->srv;

	if (s->txn != NULL && s->txn->handed && srv->cb.abort != NULL)
		srv->cb.abort(srv->ctx, s->txn);
	txn_free(&s->txn);
	log_disconnect(s);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		srv->sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	if (s->bev != NULL)
		bufferevent_free(s->bev);
	if (s->close_timer != NULL)
		event_free(s->close_timer);
	sg_xforward_clear(&s->xf);
	free(s->helo);
	free(s->addr);
	free(s->port);
	free(s);
	srv->n_sessions--;
	if (srv->paused && !srv->shutting_down) {
		for (size_t i = 0; i < srv->n_listeners; i++)
			evconnlistener_enable(srv->listeners[i].l);
		srv->paused = false;
	}
	if (srv->shutting_down && srv->n_sessions == 0 && srv->drain_ev != NULL)
		event_active(srv->drain_ev, EV_TIMEOUT, 0);
}

static size_t pending_output(struct session *s)
{
	size_t n = evbuffer_get_length(bufferevent_get_output(s->bev));
	struct bufferevent *under = bufferevent_get_underlying(s->bev);

	if (under != NULL)
		n += evbuffer_get_length(bufferevent_get_output(under));
	return n;
}

static void close_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	close_check(arg);
}

/* Free the session once its last reply has reached the socket. Through
 * TLS, the filter's buffer empties before the socket's, so poll that. */
static void close_check(struct session *s)
{
	if (!s->closing || s->in_loop)
		return;
	if (pending_output(s) == 0) {
		session_free(s);
		return;
	}
	if (bufferevent_get_underlying(s->bev) != NULL) {
		struct timeval tv = { 0, 20000 };
		unsigned limit = (s->srv->set.command_timeout_s > 0 ? s->srv->set.command_timeout_s
								       : 60) * 50;
		if (++s->close_polls > limit) {
			/* A peer that stopped reading does not keep us. */
			session_free(s);
			return;
		}
		if (s->close_timer == NULL)
			s->close_timer = evtimer_new(s->srv->base, close_timer_cb, s);
		evtimer_add(s->close_timer, &tv);
	}
}

/* Stop reading; the session is freed once the output is flushed (or on a
 * write error or timeout). */
static void session_close(struct session *s)
{
	s->closing = true;
	bufferevent_disable(s->bev, EV_READ);
}

static void session_read_cb(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;

	process_input(s);
	close_check(s);
}

static void session_write_cb(struct bufferevent *bev, void *arg)
{
	/* All written: a plain socket's write event waits for flush_output(). */
	if (bufferevent_get_underlying(bev) == NULL &&
	    evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		bufferevent_disable(bev, EV_WRITE);
	close_check(arg);
}

static void session_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct session *s = arg;

	if (what & BEV_EVENT_CONNECTED) {
		/* RFC 3207 4.2: after the handshake, forget what we knew and
		 * wait for a new EHLO. */
		SSL *ssl = bufferevent_openssl_get_ssl(bev);
		s->tls = true;
		s->state = ST_INIT;
		sg_log_info("TLS connection established from unknown[%s]: %s with cipher %s", s->addr,
			    SSL_get_version(ssl), SSL_get_cipher_name(ssl));
		process_input(s);
		close_check(s);
		return;
	}
	if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING) && !s->closing &&
	    s->state != ST_TLS) {
		sg_log_info("timeout after %s from unknown[%s]",
			    s->state == ST_DATA ? "DATA" : "command", s->addr);
		replyf(s, "421 4.4.2 %s Error: timeout exceeded", s->srv->set.hostname);
		session_close(s);
		close_check(s);
		return;
	}
	if ((what & BEV_EVENT_EOF) && s->state != ST_WAIT && !s->closing && pending_output(s) > 0) {
		/* A client that half-closed after its last command (QUIT, or a
		 * pipelined batch) still gets the replies. */
		session_close(s);
		close_check(s);
		return;
	}
	if (s->state == ST_TLS) {
		/* No reply can be sent in the middle of a handshake. */
		unsigned long e = bufferevent_get_openssl_error(bev);
		const char *why = e != 0 ? ERR_reason_error_string(e)
			: (what & BEV_EVENT_TIMEOUT) ? "timeout" : NULL;
		sg_log_info("TLS handshake failed from unknown[%s]: %s", s->addr,
			    why != NULL ? why : "connection closed");
	} else if (!s->quit && !s->closing)
		sg_log_info("lost connection from unknown[%s]%s", s->addr,
			    s->state == ST_WAIT ? " while the message was processed" : "");
	session_free(s);
}

static void greet(struct session *s)
{
	replyf(s, "220 %s %s sealgate", s->srv->set.hostname, proto_name(s));
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
		      int salen, void *arg)
{
	struct sg_smtp_server *srv = arg;
	char host[NI_MAXHOST], serv[NI_MAXSERV];
	struct session *s;

	if (getnameinfo(sa, (socklen_t)salen, host, sizeof(host), serv, sizeof(serv),
			NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		close(fd);
		return;
	}
	s = sg_calloc(1, sizeof(*s));
	s->srv = srv;
	s->addr = sg_strdup(host);
	s->port = sg_strdup(serv);
	s->state = ST_INIT;
	s->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (s->bev == NULL) {
		close(fd);
		free(s->addr);
		free(s->port);
		free(s);
		return;
	}
	/* libevent reads and writes 4 KiB per call by default: a 1 MiB DATA
	 * would cost 256 wake-ups. Larger single reads cost no memory while
	 * idle (buffers grow only with data). */
	bufferevent_set_max_single_read(s->bev, 64 * 1024);
	bufferevent_set_max_single_write(s->bev, 64 * 1024);
	s->next = srv->sessions;
	if (s->next != NULL)
		s->next->prev = s;
	srv->sessions = s;
	srv->n_sessions++;
	if (srv->set.max_sessions > 0 && srv->n_sessions >= srv->set.max_sessions && !srv->paused) {
		/* Leave further clients in the kernel's backlog until one ends. */
		for (size_t i = 0; i < srv->n_listeners; i++)
			evconnlistener_disable(srv->listeners[i].l);
		srv->paused = true;
	}
	sg_log_info("connect from unknown[%s]", s->addr);
	setup_bev(s);
	greet(s);
}

/* ---- server ---- */

static void drain_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sg_smtp_server *srv = arg;

	if (srv->drained_called || srv->n_sessions > 0)
		return;
	srv->drained_called = true;
	if (srv->cb.drained != NULL)
		srv->cb.drained(srv->ctx);
}

struct sg_smtp_server *sg_smtp_server_new(struct event_base *base,
					  const struct sg_smtp_settings *set,
					  const struct sg_smtp_callbacks *cb, void *ctx)
{
	struct sg_smtp_server *srv = sg_calloc(1, sizeof(*srv));

	if (cb->data == NULL || set->hostname == NULL)
		sg_panic("smtp: data callback and hostname are required");
	srv->base = base;
	srv->set = *set;
	if (srv->set.max_line == 0)
		srv->set.max_line = 1000;
	srv->cb = *cb;
	srv->ctx = ctx;
	srv->drain_ev = event_new(base, -1, 0, drain_cb, srv);
	static pthread_once_t seeded = PTHREAD_ONCE_INIT;
	pthread_once(&seeded, seed_queue_ids);
	return srv;
}

static void listener_error_cb(struct evconnlistener *l, void *arg)
{
	/* EMFILE and friends: libevent keeps the listener; log and go on. */
	sg_log_warn("smtp: accept: %s", strerror(errno));
}

int sg_smtp_server_listen_fd(struct sg_smtp_server *srv, int fd, struct sg_error *err)
{
	struct evconnlistener *l;
	int flags = fcntl(fd, F_GETFL);

	/* Backlog SOMAXCONN (the kernel caps it at net.core.somaxconn): with
	 * 128, a burst of a few hundred clients (bench/load.sh) overflowed the
	 * accept queue; their SYNs were dropped and retried a second later. */
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 || listen(fd, SOMAXCONN) < 0) {
		sg_error_set(err, "listen: %s", strerror(errno));
		return -1;
	}
	l = evconnlistener_new(srv->base, accept_cb, srv,
			       LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
	if (l == NULL) {
		sg_error_set(err, "evconnlistener_new failed");
		return -1;
	}
	evconnlistener_set_error_cb(l, listener_error_cb);
	if (srv->paused || srv->shutting_down)
		evconnlistener_disable(l);
	srv->listeners = sg_reallocarray(srv->listeners, srv->n_listeners + 1,
					 sizeof(*srv->listeners));
	srv->listeners[srv->n_listeners++].l = l;
	return 1;
}

int sg_smtp_server_listen(struct sg_smtp_server *srv, const char *addr_port, struct sg_error *err)
{
	struct addrinfo hints, *ai = NULL;
	char *host = NULL, *port = NULL;
	int fd = -1, ret = -1, one = 1, gai;

	if (sg_parse_hostport(addr_port, &host, &port, err) < 0)
		goto out;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((gai = getaddrinfo(host, port, &hints, &ai)) != 0) {
		sg_error_set(err, "%s", gai_strerror(gai));
		goto out;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		sg_error_set(err, "%s", strerror(errno));
		goto out;
	}
	if (sg_smtp_server_listen_fd(srv, fd, err) < 0)
		goto out;
	fd = -1;
	ret = 1;
out:
	if (ret < 0)
		sg_error_prefix(err, "smtp: listen on %s", addr_port);
	if (fd >= 0)
		close(fd);
	if (ai != NULL)
		freeaddrinfo(ai);
	free(host);
	free(port);
	return ret;
}

void sg_smtp_server_shutdown(struct sg_smtp_server *srv)
{
	struct session *s, *next;

	if (srv->shutting_down)
		return;
	srv->shutting_down = true;
	for (size_t i = 0; i < srv->n_listeners; i++)
		evconnlistener_free(srv->listeners[i].l);
	free(srv->listeners);
	srv->listeners = NULL;
	srv->n_listeners = 0;
	for (s = srv->sessions; s != NULL; s = next) {
		next = s->next;
		if (s->closing || s->in_loop)
			continue;
		if (s->state & (ST_INIT | ST_HELO)) {
			replyf(s, "421 4.3.2 %s Service shutting down", srv->set.hostname);
			session_close(s);
			close_check(s);
		} else if (s->state == ST_TLS) {
			session_free(s);
		}
	}
	if (srv->n_sessions == 0)
		event_active(srv->drain_ev, EV_TIMEOUT, 0);
}

unsigned sg_smtp_server_sessions(const struct sg_smtp_server *srv)
{
	return srv->n_sessions;
}

void sg_smtp_server_free(struct sg_smtp_server **srvp)
{
	struct sg_smtp_server *srv = *srvp;

	if (srv == NULL)
		return;
	srv->shutting_down = true; /* no listener re-enabling, no drained() */
	for (size_t i = 0; i < srv->n_listeners; i++)
		evconnlistener_free(srv->listeners[i].l);
	free(srv->listeners);
	event_free(srv->drain_ev);
	srv->drain_ev = NULL;
	while (srv->sessions != NULL)
		session_free(srv->sessions);
	free(srv);
	*srvp = NULL;
}

const struct sg_envelope *sg_smtp_txn_envelope(const struct sg_smtp_txn *txn)
{
	return &txn->env;
}

struct sg_spool *sg_smtp_txn_spool(struct sg_smtp_txn *txn)
{
	return txn->spool;
}

struct sg_spool *sg_smtp_txn_take_spool(struct sg_smtp_txn *txn)
{
	struct sg_spool *sp = txn->spool;
	txn->spool = NULL;
	return sp;
}

void sg_smtp_txn_finish(struct sg_smtp_txn *txn, const struct sg_reply *replies, size_t n)
{
	struct session *s = txn->s;
	size_t want = s->srv->set.proto == SG_PROTO_LMTP ? txn->env.n_rcpts : 1;

	if (s->state != ST_WAIT || s->txn != txn || n != want)
		sg_panic("smtp: sg_smtp_txn_finish with %zu replies, want %zu", n, want);
	s->holding = true;
	for (size_t i = 0; i < n; i++) {
		send_reply(s, &replies[i]);
		/* The per-recipient outcome line is the caller's (it knows the
		 * treatment and the next hop); the reply itself is debug detail. */
		if (txn->env.lmtp)
			sg_log_debug("%s: to=<%s>, reply=%d %s", txn->env.queue_id,
				    txn->env.rcpts[i].addr, replies[i].code,
				    replies[i].text != NULL ? replies[i].text : "");
		else
			sg_log_debug("%s: reply=%d %s", txn->env.queue_id, replies[i].code,
				    replies[i].text != NULL ? replies[i].text : "");
	}
	s->holding = false;
	end_txn(s);
	if (!s->in_loop) {
		process_input(s); /* flushes the replies */
		close_check(s);
	}
}
