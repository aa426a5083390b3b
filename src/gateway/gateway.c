/* The message path: receive, transform, relay, answer. */
#include "gateway/gateway.h"
#include "gateway/trace.h"
#include "relay/relay.h"
#include "smtp/server.h"
#include "smtp/tls.h"
#include "util/hostport.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/spool.h"
#include "util/workpool.h"

#include <event2/event.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

struct listener {
	struct sg_gateway *gw;
	struct sg_smtp_server *srv;
	char *spool_dir;
	bool lmtp;
	bool drained;
};

struct sg_gateway {
	const struct sg_config *cfg;
	const struct sg_transform *transform;
	struct event_base *base;
	struct sg_workpool *pool;
	struct sg_relay *relay;
	char *relay_host, *relay_port;
	SSL_CTX *tls;
	struct listener listeners[2];
	size_t n_listeners;
	bool shutting_down;
	struct job *jobs;              /* in flight, to find a job by its txn */
};

/* One message's trip through the gateway. */
struct job {
	struct job *prev, *next;
	struct sg_gateway *gw;
	struct listener *lst;
	struct sg_smtp_txn *txn;     /* NULL once the client is gone */
	const struct sg_envelope *env; /* borrowed from txn: NULL once answered */
	size_t n_rcpts;                /* env->n_rcpts, for after the answer */
	struct sg_spool *msg;          /* borrowed from txn */
	struct timespec start;
	struct event *budget;          /* the post-DATA time budget */
	bool in_worker;                /* a worker owns the job until its done() runs */
	bool answered;                 /* replies given (or the client is gone) */
	bool budget_expired;
	/* transform result */
	int transform_ret;
	struct sg_error transform_err;
	struct sg_transform_out out;
	char *received;                /* our Received: header */
	/* relay of each group */
	struct group_send {
		struct job *job;
		size_t group;
		struct sg_envelope env;    /* subset of recipients */
		struct sg_relay_req *req;
	} *sends;
	size_t n_sends, sends_pending;
	struct sg_reply *replies;      /* per envelope recipient */
	char **queued_as;              /* per recipient, for the log */
};

static double elapsed(const struct job *job)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - job->start.tv_sec) +
	       (double)(now.tv_nsec - job->start.tv_nsec) / 1e9;
}

static void job_free(struct job *job)
{
	size_t n = job->n_rcpts;

	if (job->prev != NULL)
		job->prev->next = job->next;
	else
		job->gw->jobs = job->next;
	if (job->next != NULL)
		job->next->prev = job->prev;
	if (job->budget != NULL)
		event_free(job->budget);
	for (size_t i = 0; i < job->n_sends; i++) {
		if (job->sends[i].req != NULL)
			sg_relay_cancel(job->sends[i].req);
		sg_envelope_clear(&job->sends[i].env);
	}
	free(job->sends);
	if (job->replies != NULL) {
		for (size_t i = 0; i < n; i++) {
			sg_reply_clear(&job->replies[i]);
			free(job->queued_as[i]);
		}
	}
	free(job->replies);
	free(job->queued_as);
	sg_transform_out_clear(&job->out, n);
	sg_error_clear(&job->transform_err);
	free(job->received);
	free(job);
}

static const char *status_word(const struct sg_reply *r)
{
	switch (sg_reply_class(r)) {
	case 2: return "sent";
	case 4: return "deferred";
	default: return "bounced";
	}
}

/* Give the client its answer and log one line per recipient. */
static void job_answer(struct job *job)
{
	const struct sg_envelope *env = job->env;
	double delay = elapsed(job);

	job->answered = true;
	for (size_t i = 0; i < env->n_rcpts; i++) {
		const struct sg_reply *r = &job->replies[i];
		const char *treatment = "-";
		for (size_t g = 0; g < job->out.n_groups; g++)
			for (size_t k = 0; k < job->out.groups[g].n_rcpts; k++)
				if (job->out.groups[g].rcpts[k] == i)
					treatment = job->out.groups[g].treatment;
		sg_log_info("%s: to=<%s>, treatment=%s, relay=%s:%s, delay=%.2f, status=%s (%d %s)%s%s",
			    env->queue_id, env->rcpts[i].addr, treatment, job->gw->relay_host,
			    job->gw->relay_port, delay, status_word(r), r->code, r->text,
			    job->queued_as[i] != NULL ? ", queued_as=" : "",
			    job->queued_as[i] != NULL ? job->queued_as[i] : "");
	}
	if (job->lst->lmtp) {
		sg_smtp_txn_finish(job->txn, job->replies, env->n_rcpts);
	} else {
		/* SMTP has one reply for the whole message. Never acknowledge a
		 * message some of whose copies failed: any failure wins, a
		 * permanent one over a temporary one. Mixed outcomes are why the
		 * README asks for a recipient limit of 1 with SMTP. */
		const struct sg_reply *worst = &job->replies[0];
		bool mixed = false;
		for (size_t i = 1; i < env->n_rcpts; i++) {
			const struct sg_reply *r = &job->replies[i];
			if (sg_reply_class(r) != sg_reply_class(worst))
				mixed = true;
			if (sg_reply_class(r) > sg_reply_class(worst))
				worst = r;
		}
		if (mixed && sg_reply_class(worst) != 2)
			sg_log_warn("%s: recipients had different outcomes over SMTP; answering %d for all "
				    "(use a recipient limit of 1, or LMTP)", env->queue_id, worst->code);
		sg_smtp_txn_finish(job->txn, worst, 1);
	}
	/* finish freed the transaction, and the envelope with it */
	job->txn = NULL;
	job->env = NULL;
}

static void job_done(struct job *job)
{
	if (!job->answered)
		job_answer(job);
	job_free(job);
}

static void fail_all(struct job *job, int code, const char *text)
{
	for (size_t i = 0; i < job->env->n_rcpts; i++)
		if (job->replies[i].code == 0)
			sg_reply_set(&job->replies[i], code, "%s", text);
}

static void on_relay_done(void *ctx, const struct sg_relay_result *res)
{
	struct group_send *gs = ctx;
	struct job *job = gs->job;
	const struct sg_transform_group *g = &job->out.groups[gs->group];

	gs->req = NULL;
	for (size_t k = 0; k < g->n_rcpts && k < res->n; k++) {
		size_t i = g->rcpts[k];
		sg_reply_copy(&job->replies[i], &res->replies[k]);
		if (res->queued_as != NULL && sg_reply_class(&res->replies[k]) == 2)
			job->queued_as[i] = sg_strdup(res->queued_as);
	}
	if (res->detail != NULL)
		sg_log_debug("%s: relay: %s", job->env->queue_id, res->detail);
	if (--job->sends_pending == 0)
		job_done(job);
}

/* Every recipient gets 451: the post-DATA time budget ran out. */
static void budget_fail(struct job *job)
{
	for (size_t i = 0; i < job->n_rcpts; i++)
		sg_reply_clear(&job->replies[i]);
	fail_all(job, 451, "4.4.7 Error: processing time budget exceeded, try again later");
	job_done(job);
}

/* Back on the loop after the transform: relay each group. */
static void after_transform(void *arg)
{
	struct job *job = arg;
	const struct sg_envelope *env = job->env;

	job->in_worker = false;
	if (job->answered) {
		/* The client left meanwhile. */
		job_free(job);
		return;
	}
	if (job->budget_expired) {
		budget_fail(job);
		return;
	}
	if (job->transform_ret < 0) {
		sg_log_error("%s: transform %s: %s", env->queue_id, job->gw->transform->name,
			     sg_error_msg(&job->transform_err));
		char *t = sg_asprintf("4.3.0 Error: message processing failed: %s",
				      sg_error_msg(&job->transform_err));
		fail_all(job, 451, t);
		free(t);
		job_done(job);
		return;
	}
	if (job->out.refused != NULL)
		for (size_t i = 0; i < env->n_rcpts; i++)
			if (job->out.refused[i].code != 0)
				sg_reply_copy(&job->replies[i], &job->out.refused[i]);
	job->sends = sg_calloc(job->out.n_groups, sizeof(*job->sends));
	for (size_t g = 0; g < job->out.n_groups; g++) {
		struct sg_transform_group *grp = &job->out.groups[g];
		if (grp->n_rcpts == 0)
			continue;
		struct group_send *gs = &job->sends[job->n_sends++];
		gs->job = job;
		gs->group = g;
		/* The envelope for this group: the same sender, its recipients. */
		sg_envelope_copy(&gs->env, env);
		for (size_t i = 0; i < gs->env.n_rcpts; i++) {
			free(gs->env.rcpts[i].addr);
			free(gs->env.rcpts[i].params);
		}
		gs->env.n_rcpts = 0;
		for (size_t k = 0; k < grp->n_rcpts; k++)
			sg_envelope_add_rcpt(&gs->env, env->rcpts[grp->rcpts[k]].addr,
					     env->rcpts[grp->rcpts[k]].params);
	}
	job->sends_pending = job->n_sends;
	for (size_t s = 0; s < job->n_sends; s++) {
		struct group_send *gs = &job->sends[s];
		struct sg_spool *msg = job->out.groups[gs->group].msg;
		gs->req = sg_relay_send(job->gw->relay, &gs->env, job->received,
					msg != NULL ? msg : job->msg, on_relay_done, gs);
	}
	/* Any recipient in no group and not refused is a transform bug: fail
	 * closed rather than drop it silently. */
	for (size_t i = 0; i < env->n_rcpts; i++) {
		bool placed = job->replies[i].code != 0;
		for (size_t g = 0; g < job->out.n_groups && !placed; g++)
			for (size_t k = 0; k < job->out.groups[g].n_rcpts; k++)
				placed |= job->out.groups[g].rcpts[k] == i;
		if (!placed)
			sg_reply_set(&job->replies[i], 451, "4.3.0 Error: internal: recipient not processed");
	}
	if (job->n_sends == 0)
		job_done(job);
}

/* On a worker: loop check, Received header, transform. */
static void run_transform(void *arg)
{
	struct job *job = arg;
	const struct sg_envelope *env = job->env;
	const struct sg_config *cfg = job->gw->cfg;
	struct sg_trace_count tc;

	sg_trace_count(sg_spool_data(job->msg), sg_spool_size(job->msg), cfg->hostname, &tc);
	if (tc.received > cfg->max_received || tc.ours >= 2) {
		for (size_t i = 0; i < env->n_rcpts; i++)
			sg_reply_set(&job->replies[i], 554, "5.4.6 Error: mail forwarding loop (%u Received: headers, %u by %s)",
				     tc.received, tc.ours, cfg->hostname);
		job->transform_ret = 1; /* every recipient refused; nothing to relay */
		return;
	}
	job->received = sg_trace_received(env, cfg->hostname, time(NULL));
	job->transform_ret = job->gw->transform->run(job->gw->transform->ctx, env, job->msg,
						     &job->out, &job->transform_err);
}

static void on_budget(evutil_socket_t fd, short what, void *arg)
{
	struct job *job = arg;
	(void)fd;
	(void)what;

	if (job->answered)
		return;
	sg_log_warn("%s: time budget of %us exceeded; answering 451", job->env->queue_id,
		    job->gw->cfg->transaction_time_budget);
	job->budget_expired = true;
	if (job->in_worker)
		return; /* the worker reads the message: after_transform() answers */
	/* Drop the next-hop connections before their DATA completes, so the
	 * next hop does not keep a message we answer 4xx for. */
	for (size_t i = 0; i < job->n_sends; i++) {
		if (job->sends[i].req != NULL) {
			sg_relay_cancel(job->sends[i].req);
			job->sends[i].req = NULL;
		}
	}
	budget_fail(job);
}

static void on_data(void *ctx, struct sg_smtp_txn *txn)
{
	struct listener *lst = ctx;
	struct sg_gateway *gw = lst->gw;
	struct job *job = sg_calloc(1, sizeof(*job));
	const struct sg_envelope *env = sg_smtp_txn_envelope(txn);

	job->gw = gw;
	job->lst = lst;
	job->txn = txn;
	job->env = env;
	job->n_rcpts = env->n_rcpts;
	job->msg = sg_smtp_txn_spool(txn);
	clock_gettime(CLOCK_MONOTONIC, &job->start);
	job->replies = sg_calloc(env->n_rcpts, sizeof(*job->replies));
	job->queued_as = sg_calloc(env->n_rcpts, sizeof(*job->queued_as));
	sg_log_info("%s: from=<%s>, size=%zu, nrcpt=%zu%s%s%s%s", env->queue_id, env->mail_from,
		    sg_spool_size(job->msg), env->n_rcpts,
		    env->xf.ident != NULL ? ", orig_queue_id=" : "",
		    env->xf.ident != NULL ? env->xf.ident : "",
		    env->xf.addr != NULL ? ", orig_client=" : "",
		    env->xf.addr != NULL ? env->xf.addr : "");
	struct timeval tv = { (time_t)gw->cfg->transaction_time_budget, 0 };
	job->budget = evtimer_new(gw->base, on_budget, job);
	evtimer_add(job->budget, &tv);
	job->next = gw->jobs;
	if (gw->jobs != NULL)
		gw->jobs->prev = job;
	gw->jobs = job;
	job->in_worker = true;
	sg_workpool_submit(gw->pool, run_transform, after_transform, job);
}

static void on_abort(void *ctx, struct sg_smtp_txn *txn)
{
	struct listener *lst = ctx;
	struct job *job = lst->gw->jobs;
	while (job != NULL && job->txn != txn)
		job = job->next;
	if (job == NULL)
		return;
	sg_log_info("%s: client disconnected before the answer; next-hop transfer abandoned",
		    job->env->queue_id);
	job->txn = NULL;
	job->answered = true;
	evtimer_del(job->budget);
	if (job->in_worker)
		return; /* after_transform() frees it */
	job_free(job);
}

static void on_drained(void *ctx)
{
	struct listener *lst = ctx;
	struct sg_gateway *gw = lst->gw;
	lst->drained = true;
	for (size_t i = 0; i < gw->n_listeners; i++)
		if (!gw->listeners[i].drained)
			return;
	sg_log_info("all sessions ended; stopping");
	event_base_loopexit(gw->base, NULL);
}

static int tls_setup(struct sg_gateway *gw, struct sg_error *err)
{
	const struct sg_config *cfg = gw->cfg;
	struct stat st;

	if (cfg->tls_cert_file[0] == '\0')
		return 1;
	if (stat(cfg->tls_key_file, &st) < 0) {
		sg_error_set(err, "tls_key_file %s: cannot stat", cfg->tls_key_file);
		return -1;
	}
	/* A private key others can read is already compromised: refuse it. */
	if ((st.st_mode & 077) != 0) {
		sg_error_set(err, "tls_key_file %s: mode %03o is group/world accessible; chmod 600 it",
			     cfg->tls_key_file, (unsigned)(st.st_mode & 0777));
		return -1;
	}
	gw->tls = sg_smtp_tls_ctx_new(cfg->tls_cert_file, cfg->tls_key_file, err);
	return gw->tls != NULL ? 1 : -1;
}

static int add_listener(struct sg_gateway *gw, const char *addr, bool lmtp, struct sg_error *err)
{
	const struct sg_config *cfg = gw->cfg;
	struct listener *lst = &gw->listeners[gw->n_listeners];
	struct sg_smtp_settings set = {
		.proto = lmtp ? SG_PROTO_LMTP : SG_PROTO_SMTP,
		.hostname = cfg->hostname,
		.max_line = cfg->max_line_length,
		.max_message_size = cfg->max_message_size,
		.max_recipients = cfg->max_recipients,
		.max_sessions = cfg->max_sessions,
		.max_errors = cfg->max_errors,
		.command_timeout_s = cfg->command_timeout,
		.data_timeout_s = cfg->data_timeout,
		.spool_dir = NULL,
		.spool_mem_max = cfg->spool_memory_max,
		.tls_ctx = gw->tls,
		.xforward = cfg->xforward,
	};
	static const struct sg_smtp_callbacks cb = {
		.data = on_data,
		.abort = on_abort,
		.drained = on_drained,
	};

	/* The server borrows spool_dir: keep it for the gateway's lifetime. */
	lst->spool_dir = sg_asprintf("%s/tmp", cfg->state_dir);
	set.spool_dir = lst->spool_dir;
	lst->gw = gw;
	lst->lmtp = lmtp;
	lst->srv = sg_smtp_server_new(gw->base, &set, &cb, lst);
	gw->n_listeners++;
	if (sg_smtp_server_listen(lst->srv, addr, err) < 0) {
		sg_error_prefix(err, "%s listener %s", lmtp ? "LMTP" : "SMTP", addr);
		return -1;
	}
	sg_log_info("listening for %s on %s", lmtp ? "LMTP" : "SMTP", addr);
	return 1;
}

struct sg_gateway *sg_gateway_new(struct event_base *base, const struct sg_config *cfg,
				  const struct sg_transform *transform, struct sg_error *err)
{
	struct sg_gateway *gw = sg_calloc(1, sizeof(*gw));

	gw->cfg = cfg;
	gw->transform = transform;
	gw->base = base;
	if (sg_parse_hostport(cfg->relay, &gw->relay_host, &gw->relay_port, err) < 0) {
		sg_error_prefix(err, "relay");
		goto fail;
	}
	if (tls_setup(gw, err) < 0)
		goto fail;
	if (cfg->listen[0] != '\0' && add_listener(gw, cfg->listen, false, err) < 0)
		goto fail;
	if (cfg->lmtp_listen[0] != '\0' && add_listener(gw, cfg->lmtp_listen, true, err) < 0)
		goto fail;
	struct sg_relay_settings rs = {
		.proto = strcmp(cfg->relay_protocol, "lmtp") == 0 ? SG_PROTO_LMTP : SG_PROTO_SMTP,
		.host = gw->relay_host,
		.port = gw->relay_port,
		.helo_name = cfg->hostname,
		.connect_timeout_s = cfg->relay_connect_timeout,
		.command_timeout_s = cfg->relay_command_timeout,
		.data_done_timeout_s = cfg->relay_data_done_timeout,
		.max_idle = cfg->relay_max_idle,
		.idle_timeout_s = cfg->relay_idle_timeout,
		.xforward = cfg->xforward,
	};
	gw->relay = sg_relay_new(base, &rs);
	gw->pool = sg_workpool_new(base, cfg->worker_threads);
	return gw;
fail:
	sg_gateway_free(&gw);
	return NULL;
}

void sg_gateway_shutdown(struct sg_gateway *gw)
{
	if (gw->shutting_down)
		return;
	gw->shutting_down = true;
	sg_log_info("shutting down: no new sessions; finishing transactions in flight");
	if (gw->n_listeners == 0) {
		event_base_loopexit(gw->base, NULL);
		return;
	}
	for (size_t i = 0; i < gw->n_listeners; i++)
		sg_smtp_server_shutdown(gw->listeners[i].srv);
}

void sg_gateway_free(struct sg_gateway **gwp)
{
	struct sg_gateway *gw = *gwp;
	if (gw == NULL)
		return;
	/* Servers first: aborting their transactions releases the jobs. The
	 * pool goes next (it waits for running workers), then the relay. */
	for (size_t i = 0; i < gw->n_listeners; i++) {
		sg_smtp_server_free(&gw->listeners[i].srv);
		free(gw->listeners[i].spool_dir);
	}
	sg_workpool_free(&gw->pool);
	sg_relay_free(&gw->relay);
	if (gw->tls != NULL)
		SSL_CTX_free(gw->tls);
	free(gw->relay_host);
	free(gw->relay_port);
	free(gw);
	*gwp = NULL;
}
