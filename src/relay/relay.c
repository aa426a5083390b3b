/* The next-hop client on libevent: one connection per transaction in flight,
 * idle connections pooled for reuse, PIPELINING (RFC 2920) when offered. */
#include "relay/relay.h"
#include "relay/proto.h"
#include "util/bevwrite.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/spool.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/util.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>

/* Message bytes queued on a socket at a time: refilled below LOW, so a
 * big message is never copied, only referenced from the spool's view. */
#define OUT_LOW (64 * 1024)
#define OUT_HIGH (512 * 1024)
#define CHUNK (128 * 1024)

enum conn_state {
	C_CONNECTING, C_GREETING, C_EHLO, C_HELO, C_TXN, C_RSET, C_IDLE, C_QUIT,
};

/* What a reply we wait for answers. */
enum pend_kind { P_XFORWARD, P_MAIL, P_RCPT, P_DATA, P_DOT };

static const char *const pend_name[] = {
	[P_XFORWARD] = "XFORWARD", [P_MAIL] = "MAIL FROM", [P_RCPT] = "RCPT TO",
	[P_DATA] = "DATA", [P_DOT] = "end of DATA",
};

struct pend {
	enum pend_kind kind;
	size_t idx; /* recipient for P_RCPT */
};

struct conn {
	struct sg_relay *relay;
	struct bufferevent *bev;
	struct event *timer;
	enum conn_state st;
	struct sg_relay_caps caps;
	struct sg_relay_reply_parser rp;
	struct sg_relay_req *req;
	bool reused; /* a transaction was completed on it before */
	bool in_read, dead; /* freeing is deferred while its read callback runs */
	bool batch;         /* commands being queued as one group: flush after */
	struct pend *pend;
	size_t npend, pend_head, pend_cap;
	TAILQ_ENTRY(conn) link;
};
TAILQ_HEAD(conn_list, conn);

struct sg_relay_req {
	struct sg_relay *relay;
	const struct sg_envelope *env;
	char *prepend;
	size_t prepend_len;
	struct sg_spool *msg;
	sg_relay_done_cb *cb;
	void *ctx;
	struct conn *conn;
	struct event *ev; /* start, then report */
	struct sg_reply *replies;
	bool *accepted;
	size_t n; /* recipients: env may be gone once cb returned */
	size_t n_accepted, lmtp_next;
	bool mail_replied, mail_failed, streaming, dot_sent, retried, done;
	char *queued_as, *detail;
	char *xf[2]; /* XFORWARD commands for this transaction */
	size_t nxf;
	/* Streaming the message: part 0 the prepend, 1 the spool. */
	int part;
	size_t off;
	struct sg_dotstuff ds;
	TAILQ_ENTRY(sg_relay_req) link;
};
TAILQ_HEAD(req_list, sg_relay_req);

struct sg_relay {
	struct event_base *base;
	struct sg_relay_settings set;
	char *host, *port, *helo, *hostport;
	struct conn_list conns; /* all, busy or idle */
	struct req_list reqs;
	unsigned n_idle;
};

static void conn_read_cb(struct bufferevent *bev, void *arg);
static void conn_write_cb(struct bufferevent *bev, void *arg);
static void conn_event_cb(struct bufferevent *bev, short what, void *arg);
static void conn_timer_cb(evutil_socket_t fd, short what, void *arg);
static void req_start(struct sg_relay_req *req);
static void txn_begin(struct conn *c);

/* ---- small helpers ---- */

static bool is_lmtp(const struct sg_relay *r)
{
	return r->set.proto == SG_PROTO_LMTP;
}

static void arm(struct conn *c, unsigned secs)
{
	struct timeval tv = { .tv_sec = secs > 0 ? secs : 1, .tv_usec = 0 };
	evtimer_add(c->timer, &tv);
}

/* Write what is queued straight to the socket; libevent's write event only
 * for what the kernel does not take (saves two epoll_ctl and a loop pass
 * per command group). Inside conn_read_cb() this waits for its end, so
 * that the commands a batch of replies produces go out in one write. */
static void conn_flush(struct conn *c)
{
	if (c->in_read || c->batch || c->dead || c->bev == NULL || c->st == C_CONNECTING)
		return;
	/* A message larger than one fill is refilled from the write
	 * callback (below OUT_LOW): libevent's write path drives that. */
	if (c->req != NULL && c->req->streaming)
		bufferevent_enable(c->bev, EV_WRITE);
	else
		(void)sg_bev_write_now(c->bev);
}

static void conn_send(struct conn *c, const char *fmt, ...) SG_PRINTF(2, 3);
static void conn_send(struct conn *c, const char *fmt, ...)
{
	va_list ap;
	char *line;

	va_start(ap, fmt);
	line = sg_vasprintf(fmt, ap);
	va_end(ap);
	sg_log_debug("relay %s: > %.*s", c->relay->hostport, (int)strcspn(line, "\r"), line);
	evbuffer_add(bufferevent_get_output(c->bev), line, strlen(line));
	free(line);
	conn_flush(c);
}

static void pend_push(struct conn *c, enum pend_kind kind, size_t idx)
{
	if (c->pend_head + c->npend == c->pend_cap) {
		c->pend_cap = c->pend_cap * 2 + 8;
		c->pend = sg_reallocarray(c->pend, c->pend_cap, sizeof(*c->pend));
	}
	c->pend[c->pend_head + c->npend] = (struct pend){ kind, idx };
	c->npend++;
}

static bool pend_pop(struct conn *c, struct pend *p_r)
{
	if (c->npend == 0)
		return false;
	*p_r = c->pend[c->pend_head++];
	if (--c->npend == 0)
		c->pend_head = 0;
	return true;
}

static void conn_destroy(struct conn *c)
{
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	event_free(c->timer);
	sg_relay_reply_parser_free(&c->rp);
	free(c->pend);
	free(c);
}

static void conn_free(struct conn *c)
{
	struct sg_relay *r = c->relay;

	if (c->dead)
		return;
	if (c->st == C_IDLE)
		r->n_idle--;
	TAILQ_REMOVE(&r->conns, c, link);
	if (c->in_read) {
		/* conn_read_cb still holds it: close now, free there. */
		c->dead = true;
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
		evutil_closesocket(bufferevent_getfd(c->bev));
		bufferevent_setfd(c->bev, -1);
		evtimer_del(c->timer);
		return;
	}
	conn_destroy(c);
}

/* Best effort goodbye when we cannot wait for the answer. */
static void conn_quit_now(struct conn *c)
{
	evutil_socket_t fd = c->bev != NULL ? bufferevent_getfd(c->bev) : -1;

	if (fd >= 0 && c->st != C_CONNECTING) {
		/* Commands still queued (an RSET) go first; never a
		 * request's message data: those connections are cancelled. */
		if (c->req == NULL)
			(void)sg_bev_write_now(c->bev);
		if (c->st != C_QUIT)
			(void)send(fd, "QUIT\r\n", 6, MSG_NOSIGNAL | MSG_DONTWAIT);
	}
	conn_free(c);
}

static void conn_quit(struct conn *c)
{
	if (c->st == C_IDLE)
		c->relay->n_idle--;
	c->st = C_QUIT;
	conn_send(c, "QUIT\r\n");
	arm(c, c->relay->set.command_timeout_s);
}

/* ---- results ---- */

static void req_free(struct sg_relay_req *req)
{
	size_t n = req->n;

	if (req->ev != NULL)
		event_free(req->ev);
	for (size_t i = 0; i < n; i++)
		sg_reply_clear(&req->replies[i]);
	free(req->replies);
	free(req->accepted);
	free(req->prepend);
	free(req->queued_as);
	free(req->detail);
	free(req->xf[0]);
	free(req->xf[1]);
	free(req);
}

static void req_report_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sg_relay_req *req = arg;
	struct sg_relay_result res = {
		.replies = req->replies, .n = req->n,
		.queued_as = req->queued_as, .detail = req->detail,
	};

	/* Out of the relay's list first: cb may free the relay. */
	TAILQ_REMOVE(&req->relay->reqs, req, link);
	req->cb(req->ctx, &res);
	req_free(req);
}

/* Fill every recipient still without an answer with code/text, detach the
 * request from its connection and report from the loop. The caller decides
 * what happens to the connection. */
static void req_finish(struct sg_relay_req *req, int code, const char *text, const char *detail)
{
	size_t n = req->n;
	struct timeval zero = { 0, 0 };

	/* The next hop's replies are passed on verbatim (code and text). */
	for (size_t i = 0; i < n; i++)
		if (req->replies[i].code == 0)
			sg_reply_set(&req->replies[i], code, "%s", text);
	free(req->detail);
	req->detail = sg_asprintf("%s: %s", req->relay->hostport, detail);
	if (req->conn != NULL)
		req->conn->req = NULL;
	req->conn = NULL;
	req->done = true;
	evtimer_assign(req->ev, req->relay->base, req_report_cb, req);
	evtimer_add(req->ev, &zero);
}

static void req_finish_reply(struct sg_relay_req *req, const struct sg_reply *rep, const char *what)
{
	char *d = sg_asprintf("said: %d %s (in reply to %s)", rep->code, rep->text, what);
	req_finish(req, rep->code, rep->text, d);
	free(d);
}

static void req_fail(struct sg_relay_req *req, const char *status, const char *fmt, ...)
	SG_PRINTF(3, 4);
static void req_fail(struct sg_relay_req *req, const char *status, const char *fmt, ...)
{
	va_list ap;
	char *why, *text;

	va_start(ap, fmt);
	why = sg_vasprintf(fmt, ap);
	va_end(ap);
	text = sg_asprintf("%s %s", status, why);
	req_finish(req, 451, text, why);
	free(text);
	free(why);
}

/* ---- connections ---- */

static struct conn *conn_alloc(struct sg_relay *r)
{
	struct conn *c = sg_calloc(1, sizeof(*c));

	c->relay = r;
	c->timer = evtimer_new(r->base, conn_timer_cb, c);
	sg_relay_reply_parser_init(&c->rp);
	TAILQ_INSERT_TAIL(&r->conns, c, link);
	return c;
}

static int resolve(struct sg_relay *r, struct addrinfo **ai_r, struct sg_error *err)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV };
	int e = getaddrinfo(r->host, r->port, &hints, ai_r);

	/* A name instead of an address: resolved synchronously (normally
	 * /etc/hosts for a local next hop); see relay.h. */
	if (e == EAI_NONAME) {
		hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
		e = getaddrinfo(r->host, r->port, &hints, ai_r);
	}
	if (e != 0) {
		sg_error_set(err, "%s", gai_strerror(e));
		return -1;
	}
	return 1;
}

/* Open a fresh connection for req; on failure req is finished. */
static void conn_open(struct sg_relay *r, struct sg_relay_req *req)
{
	struct sg_error err = SG_ERROR_INIT;
	struct addrinfo *ai = NULL;
	struct conn *c;

	if (resolve(r, &ai, &err) < 0) {
		sg_log_info("relay %s: %s", r->hostport, sg_error_msg(&err));
		req_fail(req, "4.4.1", "next hop %s unreachable: %s", r->hostport,
			 sg_error_msg(&err));
		goto out;
	}
	c = conn_alloc(r);
	c->req = req;
	req->conn = c;
	c->st = C_CONNECTING;
	c->bev = bufferevent_socket_new(r->base, -1, BEV_OPT_CLOSE_ON_FREE);
	/* 64 KiB per write call instead of libevent's 4 KiB default. */
	bufferevent_set_max_single_write(c->bev, 64 * 1024);
	bufferevent_set_max_single_read(c->bev, 64 * 1024);
	bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb, c);
	bufferevent_enable(c->bev, EV_READ);
	bufferevent_disable(c->bev, EV_WRITE); /* writes start in conn_flush() */
	arm(c, r->set.connect_timeout_s);
	sg_log_debug("relay %s: connecting", r->hostport);
	if (bufferevent_socket_connect(c->bev, ai->ai_addr, (int)ai->ai_addrlen) < 0) {
		const char *why = evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR());
		sg_log_info("relay %s: connect: %s", r->hostport, why);
		req_fail(req, "4.4.1", "next hop %s unreachable: %s", r->hostport, why);
		conn_free(c);
	}
out:
	if (ai != NULL)
		freeaddrinfo(ai);
	sg_error_clear(&err);
}

/* The connection is done with a transaction: keep it for the next one. */
static void conn_idle(struct conn *c)
{
	struct sg_relay *r = c->relay;

	c->reused = true;
	c->npend = c->pend_head = 0;
	if (r->n_idle >= r->set.max_idle) {
		conn_quit(c);
		return;
	}
	c->st = C_IDLE;
	r->n_idle++;
	/* Newest first: the most recently used connection is the least
	 * likely to have been closed by the next hop. */
	TAILQ_REMOVE(&r->conns, c, link);
	TAILQ_INSERT_HEAD(&r->conns, c, link);
	arm(c, r->set.idle_timeout_s);
}

/* After a transaction that did not end with DATA: RSET (RFC 5321 4.1.1.5)
 * before the connection can be reused. */
static void conn_rset(struct conn *c)
{
	c->st = C_RSET;
	c->npend = c->pend_head = 0;
	conn_send(c, "RSET\r\n");
	arm(c, c->relay->set.command_timeout_s);
}

static bool retry_allowed(const struct conn *c, const struct sg_relay_req *req)
{
	/* A reused connection may have been closed by the next hop while
	 * idle; retry once, but only while nothing of the transaction has
	 * been accepted (never after the end of DATA was sent). */
	return c->reused && !req->retried && !req->mail_replied && !req->dot_sent;
}

static void conn_retry(struct conn *c)
{
	struct sg_relay_req *req = c->req;

	sg_log_debug("relay %s: reused connection is dead, retrying on a new one",
		     c->relay->hostport);
	req->retried = true;
	req->conn = NULL;
	c->req = NULL;
	conn_free(c);
	conn_open(req->relay, req);
}

/* The connection broke (EOF, error, timeout) with what as the reason. */
static void conn_lost(struct conn *c, const char *what, bool timeout)
{
	struct sg_relay *r = c->relay;
	struct sg_relay_req *req = c->req;
	const char *stage;

	if (req == NULL) {
		conn_free(c);
		return;
	}
	/* No usable greeting (closed, garbage) counts as unreachable. */
	if (c->st == C_CONNECTING || (c->st == C_GREETING && !timeout)) {
		sg_log_info("relay %s: connect: %s", r->hostport, what);
		req_fail(req, "4.4.1", "next hop %s unreachable: %s", r->hostport, what);
		conn_free(c);
		return;
	}
	if (!timeout && retry_allowed(c, req)) {
		conn_retry(c);
		return;
	}
	sg_log_info("relay %s: %s", r->hostport, what);
	stage = c->st == C_GREETING ? "greeting" : c->st == C_EHLO ? "EHLO"
		: c->st == C_HELO ? "HELO"
		: c->npend > 0 ? pend_name[c->pend[c->pend_head].kind] : "message content";
	if (timeout && req->streaming)
		req_fail(req, "4.4.2", "timeout from next hop %s while sending the message",
			 r->hostport);
	else if (timeout)
		req_fail(req, "4.4.2", "timeout from next hop %s waiting for reply to %s",
			 r->hostport, stage);
	else
		req_fail(req, "4.4.2", "connection to next hop %s lost (%s) before reply to %s",
			 r->hostport, what, stage);
	conn_free(c);
}

/* ---- the transaction ---- */

static void send_rcpt(struct conn *c, size_t i)
{
	const struct sg_rcpt *rc = &c->req->env->rcpts[i];
	char *params = sg_relay_rcpt_params(rc->params, &c->caps);

	conn_send(c, "RCPT TO:<%s>%s\r\n", rc->addr, params);
	pend_push(c, P_RCPT, i);
	free(params);
}

static size_t message_size(const struct sg_relay_req *req)
{
	return req->prepend_len + sg_spool_size(req->msg);
}

static void send_mail(struct conn *c)
{
	struct sg_relay_req *req = c->req;
	const struct sg_envelope *env = req->env;
	char *params = sg_relay_mail_params(env, &c->caps, message_size(req));

	conn_send(c, "MAIL FROM:<%s>%s\r\n", env->mail_from, params);
	free(params);
	pend_push(c, P_MAIL, 0);
	/* RFC 2920 3.1: MAIL, the RCPTs and DATA in one group. */
	if (c->caps.pipelining) {
		for (size_t i = 0; i < env->n_rcpts; i++)
			send_rcpt(c, i);
		conn_send(c, "DATA\r\n");
		pend_push(c, P_DATA, 0);
	}
}

static void send_xforward(struct conn *c, size_t i)
{
	conn_send(c, "%s", c->req->xf[i]);
	pend_push(c, P_XFORWARD, i);
}

static void txn_begin(struct conn *c)
{
	struct sg_relay_req *req = c->req;
	const struct sg_envelope *env = req->env;

	c->st = C_TXN;
	/* RFC 6531 3.4: no downgrade of a message that needs SMTPUTF8. */
	if (sg_relay_needs_smtputf8(env) && !c->caps.smtputf8) {
		req_finish(req, 550, "5.6.7 next hop does not support SMTPUTF8",
			   "next hop lacks SMTPUTF8");
		conn_idle(c);
		return;
	}
	/* RFC 1870 6.1: the next hop told us its limit; do not even try. */
	if (c->caps.size_max > 0 && message_size(req) > c->caps.size_max) {
		req_finish(req, 552, "5.3.4 message size exceeds the next hop's limit",
			   "message larger than the next hop's SIZE");
		conn_idle(c);
		return;
	}
	/* XFORWARD goes before MAIL, once per transaction (a retry on a
	 * new connection may see other attributes offered). */
	free(req->xf[0]);
	free(req->xf[1]);
	req->nxf = c->relay->set.xforward ? sg_relay_xforward_lines(env, &c->caps, req->xf) : 0;
	c->batch = true; /* RFC 2920 3.1: the group goes out in one write */
	if (c->caps.pipelining) {
		for (size_t i = 0; i < req->nxf; i++)
			send_xforward(c, i);
		send_mail(c);
	} else if (req->nxf > 0) {
		send_xforward(c, 0);
	} else {
		send_mail(c);
	}
	c->batch = false;
	conn_flush(c);
	arm(c, c->relay->set.command_timeout_s);
}

/* Queue more of the message (dot-stuffed) until OUT_HIGH is buffered. */
static void stream_fill(struct conn *c)
{
	struct sg_relay_req *req = c->req;
	struct evbuffer *out = bufferevent_get_output(c->bev);

	while (req->part < 2 && evbuffer_get_length(out) < OUT_HIGH) {
		const unsigned char *src = req->part == 0 ? (const unsigned char *)req->prepend
							  : sg_spool_data(req->msg);
		size_t len = req->part == 0 ? req->prepend_len : sg_spool_size(req->msg);
		if (len == 0) {
			req->part++;
			continue;
		}
		size_t stop = req->off + CHUNK < len ? req->off + CHUNK : len;

		while (req->off < stop) {
			bool dot;
			size_t n = sg_dotstuff_span(&req->ds, src + req->off, stop - req->off, &dot);
			if (dot)
				evbuffer_add(out, ".", 1);
			/* The spool's view outlives the connection's use of it:
			 * the request is only freed after the final reply or
			 * together with the connection. */
			evbuffer_add_reference(out, src + req->off, n, NULL, NULL);
			req->off += n;
		}
		if (req->off == len) {
			req->part++;
			req->off = 0;
		}
	}
	if (req->part == 2 && !req->dot_sent) {
		const char *end = sg_dotstuff_end(&req->ds);
		evbuffer_add(out, end, strlen(end));
		req->dot_sent = true;
		req->streaming = false;
		pend_push(c, P_DOT, 0);
		sg_log_debug("relay %s: > (%zu bytes) .", c->relay->hostport, req->ds.total);
		arm(c, c->relay->set.data_done_timeout_s);
	}
}

static void stream_start(struct conn *c)
{
	struct sg_relay_req *req = c->req;

	sg_dotstuff_init(&req->ds);
	req->part = req->prepend_len > 0 ? 0 : 1;
	req->off = 0;
	req->streaming = true;
	evtimer_del(c->timer);
	bufferevent_setwatermark(c->bev, EV_WRITE, OUT_LOW, 0);
	stream_fill(c);
}

static void conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	if (c->req != NULL && c->req->streaming)
		stream_fill(c);
	/* All written: the write event waits for conn_flush() again. */
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		bufferevent_disable(bev, EV_WRITE);
}

/* After the MAIL/RCPT/DATA phase ended without a message: report the
 * replies we have and make the connection reusable. */
static void txn_abort(struct conn *c, const struct sg_reply *rep, const char *what,
		      bool got_354)
{
	struct sg_relay_req *req = c->req;

	if (rep != NULL)
		req_finish_reply(req, rep, what);
	else
		req_finish(req, 554, "5.5.0 no recipients accepted", "no recipients accepted");
	/* A 354 we cannot use: leaving without "." makes the next hop drop it. */
	if (got_354)
		conn_free(c);
	else
		conn_rset(c);
}

static void on_mail(struct conn *c, const struct sg_reply *rep)
{
	struct sg_relay_req *req = c->req;

	if (rep->code == 421 && retry_allowed(c, req)) {
		conn_retry(c);
		return;
	}
	req->mail_replied = true;
	if (sg_reply_class(rep) != 2) {
		req->mail_failed = true;
		for (size_t i = 0; i < req->n; i++)
			sg_reply_copy(&req->replies[i], rep);
		if (!c->caps.pipelining)
			txn_abort(c, rep, "MAIL FROM", false);
		return;
	}
	if (!c->caps.pipelining)
		send_rcpt(c, 0);
}

/* Recipient i's RCPT reply: a refusal is that recipient's final answer;
 * an acceptance waits for DATA's (or, for LMTP, its own) reply. */
static void on_rcpt(struct conn *c, const struct sg_reply *rep, size_t i)
{
	struct sg_relay_req *req = c->req;

	if (!req->mail_failed) {
		if (sg_reply_class(rep) == 2) {
			req->accepted[i] = true;
			req->n_accepted++;
		} else {
			sg_reply_copy(&req->replies[i], rep);
		}
	}
	if (c->caps.pipelining)
		return;
	if (i + 1 < req->n) {
		send_rcpt(c, i + 1);
	} else if (req->n_accepted == 0) {
		txn_abort(c, NULL, "RCPT TO", false);
	} else {
		conn_send(c, "DATA\r\n");
		pend_push(c, P_DATA, 0);
	}
}

static void on_data(struct conn *c, const struct sg_reply *rep)
{
	struct sg_relay_req *req = c->req;
	bool got_354 = rep->code == 354;

	if (req->mail_failed) {
		txn_abort(c, &req->replies[0], "MAIL FROM", got_354);
		return;
	}
	if (req->n_accepted == 0) {
		txn_abort(c, NULL, "RCPT TO", got_354);
		return;
	}
	if (!got_354) {
		for (size_t i = 0; i < req->n; i++)
			if (req->accepted[i])
				sg_reply_copy(&req->replies[i], rep);
		txn_abort(c, rep, "DATA", false);
		return;
	}
	stream_start(c);
}

static void on_dot(struct conn *c, const struct sg_reply *rep)
{
	struct sg_relay_req *req = c->req;
	size_t n = req->n;
	bool lmtp = is_lmtp(c->relay);

	if (req->queued_as == NULL && sg_reply_class(rep) == 2)
		req->queued_as = sg_relay_queued_as(rep->text, lmtp);
	/* RFC 2033 4.2: LMTP answers "." once per accepted recipient, in
	 * RCPT order; SMTP's one reply covers them all. */
	while (req->lmtp_next < n && !req->accepted[req->lmtp_next])
		req->lmtp_next++;
	if (lmtp && req->lmtp_next < n) {
		sg_reply_copy(&req->replies[req->lmtp_next++], rep);
		while (req->lmtp_next < n && !req->accepted[req->lmtp_next])
			req->lmtp_next++;
		if (req->lmtp_next < n) {
			pend_push(c, P_DOT, 0);
			arm(c, c->relay->set.data_done_timeout_s);
			return;
		}
	} else {
		for (size_t i = 0; i < n; i++)
			if (req->accepted[i])
				sg_reply_copy(&req->replies[i], rep);
	}
	req_finish_reply(req, rep, "end of DATA");
	if (rep->code == 421)
		conn_free(c);
	else
		conn_idle(c);
}

static void on_txn_reply(struct conn *c, const struct sg_reply *rep)
{
	struct pend p;

	if (!pend_pop(c, &p)) {
		/* Unsolicited (e.g. a reply while we stream the message):
		 * the dialogue is out of step; take it as final and close. */
		req_finish_reply(c->req, rep, "message content");
		conn_free(c);
		return;
	}
	if (c->npend > 0 || p.kind != P_DOT)
		arm(c, c->relay->set.command_timeout_s);
	switch (p.kind) {
	case P_XFORWARD:
		if (sg_reply_class(rep) != 2)
			sg_log_info("relay %s: XFORWARD rejected: %d %s", c->relay->hostport,
				    rep->code, rep->text);
		if (rep->code == 421 && retry_allowed(c, c->req))
			conn_retry(c);
		else if (!c->caps.pipelining && p.idx + 1 < c->req->nxf)
			send_xforward(c, p.idx + 1);
		else if (!c->caps.pipelining)
			send_mail(c);
		break;
	case P_MAIL:
		on_mail(c, rep);
		break;
	case P_RCPT:
		on_rcpt(c, rep, p.idx);
		break;
	case P_DATA:
		on_data(c, rep);
		break;
	case P_DOT:
		on_dot(c, rep);
		break;
	}
}

static void on_greeting(struct conn *c, const struct sg_reply *rep)
{
	struct sg_relay *r = c->relay;

	if (rep->code != 220) {
		sg_log_info("relay %s: greeting: %d %s", r->hostport, rep->code, rep->text);
		if (sg_reply_class(rep) == 4 || sg_reply_class(rep) == 5)
			req_finish_reply(c->req, rep, "initial greeting");
		else
			req_fail(c->req, "4.4.1", "next hop %s unreachable: greeting %d",
				 r->hostport, rep->code);
		conn_free(c);
		return;
	}
	c->st = C_EHLO;
	conn_send(c, "%s %s\r\n", is_lmtp(r) ? "LHLO" : "EHLO", r->helo);
	arm(c, r->set.command_timeout_s);
}

static void on_ehlo(struct conn *c, const struct sg_reply *rep)
{
	/* RFC 5321 4.1.4: an SMTP server that does not know EHLO gets HELO
	 * (and then no extensions are used). LMTP has only LHLO. */
	if (c->st == C_EHLO && sg_reply_class(rep) == 5 && !is_lmtp(c->relay)) {
		c->st = C_HELO;
		conn_send(c, "HELO %s\r\n", c->relay->helo);
		arm(c, c->relay->set.command_timeout_s);
		return;
	}
	if (sg_reply_class(rep) != 2) {
		req_finish_reply(c->req, rep, is_lmtp(c->relay) ? "LHLO"
					      : c->st == C_HELO ? "HELO" : "EHLO");
		conn_quit(c);
		return;
	}
	if (c->st == C_EHLO)
		sg_relay_parse_caps(rep->text, &c->caps);
	else
		memset(&c->caps, 0, sizeof(c->caps));
	txn_begin(c);
}

static void conn_on_reply(struct conn *c, const struct sg_reply *rep)
{
	sg_log_debug("relay %s: < %d %s", c->relay->hostport, rep->code, rep->text);
	switch (c->st) {
	case C_GREETING:
		on_greeting(c, rep);
		break;
	case C_EHLO:
	case C_HELO:
		on_ehlo(c, rep);
		break;
	case C_TXN:
		on_txn_reply(c, rep);
		break;
	case C_RSET:
		if (sg_reply_class(rep) == 2)
			conn_idle(c);
		else
			conn_quit(c);
		break;
	case C_IDLE: /* e.g. 421 on shutdown of the next hop */
	case C_QUIT:
	case C_CONNECTING:
		conn_free(c);
		break;
	}
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct sg_error err = SG_ERROR_INIT;
	char *line;
	size_t len;

	/* Handling a reply may free the connection: conn_free() defers. */
	c->in_read = true;
	while (!c->dead && (line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF)) != NULL) {
		struct sg_reply rep = { 0, NULL };
		int r = sg_relay_reply_feed(&c->rp, line, len, &rep, &err);
		free(line);
		if (r < 0) {
			conn_lost(c, sg_error_msg(&err), false);
			break;
		}
		if (r == 1)
			conn_on_reply(c, &rep);
		sg_reply_clear(&rep);
	}
	if (!c->dead && evbuffer_get_length(in) > SG_RELAY_MAX_REPLY)
		conn_lost(c, "reply line too long", false);
	c->in_read = false;
	if (c->dead)
		conn_destroy(c);
	else
		conn_flush(c); /* what the replies made us send */
	sg_error_clear(&err);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	const char *why;

	if (what & BEV_EVENT_CONNECTED) {
		sg_log_debug("relay %s: connected", c->relay->hostport);
		c->st = C_GREETING;
		bufferevent_set_timeouts(bev, NULL, &(struct timeval){ c->relay->set.command_timeout_s, 0 });
		arm(c, c->relay->set.command_timeout_s);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		conn_lost(c, "write timeout", true);
		return;
	}
	if (what & BEV_EVENT_EOF)
		why = "connection closed";
	else
		why = evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR());
	conn_lost(c, why, false);
}

static void conn_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	switch (c->st) {
	case C_IDLE:
		sg_log_debug("relay %s: idle timeout", c->relay->hostport);
		conn_quit(c);
		break;
	case C_QUIT:
	case C_RSET:
		conn_free(c);
		break;
	case C_CONNECTING:
		conn_lost(c, "connect timeout", false);
		break;
	default:
		conn_lost(c, "timeout", true);
		break;
	}
}

/* ---- requests ---- */

static struct conn *take_idle(struct sg_relay *r)
{
	struct conn *c;

	TAILQ_FOREACH(c, &r->conns, link) {
		if (c->st == C_IDLE) {
			r->n_idle--;
			evtimer_del(c->timer);
			return c;
		}
	}
	return NULL;
}

static void req_start(struct sg_relay_req *req)
{
	struct sg_relay *r = req->relay;
	struct conn *c = take_idle(r);

	if (req->env->n_rcpts == 0) {
		req_finish(req, 554, "5.5.1 no recipients", "no recipients");
		return;
	}
	if (c == NULL) {
		conn_open(r, req);
		return;
	}
	sg_log_debug("relay %s: reusing connection", r->hostport);
	c->req = req;
	req->conn = c;
	txn_begin(c);
}

static void req_start_cb(evutil_socket_t fd, short what, void *arg)
{
	req_start(arg);
}

struct sg_relay *sg_relay_new(struct event_base *base, const struct sg_relay_settings *set)
{
	struct sg_relay *r = sg_calloc(1, sizeof(*r));

	r->base = base;
	r->set = *set;
	r->host = sg_strdup(set->host);
	r->port = sg_strdup(set->port);
	r->helo = sg_strdup(set->helo_name != NULL ? set->helo_name : "localhost");
	r->set.host = r->host;
	r->set.port = r->port;
	r->set.helo_name = r->helo;
	r->hostport = strchr(r->host, ':') != NULL ? sg_asprintf("[%s]:%s", r->host, r->port)
						   : sg_asprintf("%s:%s", r->host, r->port);
	TAILQ_INIT(&r->conns);
	TAILQ_INIT(&r->reqs);
	return r;
}

struct sg_relay_req *sg_relay_send(struct sg_relay *relay, const struct sg_envelope *env,
				   const char *prepend, struct sg_spool *msg,
				   sg_relay_done_cb *cb, void *ctx)
{
	struct sg_relay_req *req = sg_calloc(1, sizeof(*req));
	struct timeval zero = { 0, 0 };

	req->relay = relay;
	req->env = env;
	req->msg = msg;
	req->cb = cb;
	req->ctx = ctx;
	req->prepend = sg_strdup(prepend != NULL ? prepend : "");
	req->prepend_len = strlen(req->prepend);
	req->n = env->n_rcpts;
	req->replies = sg_calloc(env->n_rcpts + 1, sizeof(*req->replies));
	req->accepted = sg_calloc(env->n_rcpts + 1, sizeof(*req->accepted));
	TAILQ_INSERT_TAIL(&relay->reqs, req, link);
	/* Start from the loop: cb must never run inside this call. */
	req->ev = evtimer_new(relay->base, req_start_cb, req);
	evtimer_add(req->ev, &zero);
	return req;
}

void sg_relay_cancel(struct sg_relay_req *req)
{
	struct conn *c = req->conn;

	if (c != NULL) {
		/* Close without the final "." so the next hop discards the
		 * message (RFC 5321 4.1.1.4: no "." means no transaction). */
		sg_log_debug("relay %s: cancelled, closing", req->relay->hostport);
		c->req = NULL;
		conn_free(c);
	}
	TAILQ_REMOVE(&req->relay->reqs, req, link);
	req_free(req);
}

void sg_relay_free(struct sg_relay **relay)
{
	struct sg_relay *r = *relay;
	struct sg_relay_req *req;
	struct conn *c;

	if (r == NULL)
		return;
	while ((req = TAILQ_FIRST(&r->reqs)) != NULL)
		sg_relay_cancel(req);
	while ((c = TAILQ_FIRST(&r->conns)) != NULL)
		conn_quit_now(c);
	free(r->host);
	free(r->port);
	free(r->helo);
	free(r->hostport);
	free(r);
	*relay = NULL;
}
