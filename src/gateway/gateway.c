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
#include <stddef.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

struct listener {
	struct sg_gateway *gw;
	struct sg_smtp_server *srv;
	char *spool_dir;
	enum sg_role role;
	bool lmtp;
	bool drained;
};

/* The listeners a configuration can have: which setting, which protocol,
 * which role. */
static const struct listener_def {
	size_t cfg_offset;
	bool lmtp;
	enum sg_role role;
} listener_defs[] = {
	{ offsetof(struct sg_config, listen), false, SG_ROLE_INBOUND },
	{ offsetof(struct sg_config, lmtp_listen), true, SG_ROLE_INBOUND },
	{ offsetof(struct sg_config, submission_listen), true, SG_ROLE_OUTBOUND },
	{ offsetof(struct sg_config, deliver_listen), true, SG_ROLE_DELIVER },
};
#define N_LISTENERS (sizeof(listener_defs) / sizeof(listener_defs[0]))

/* A next hop per route; NULL where the route is not configured. */
struct route {
	struct sg_relay *relay;
	const char *addr;     /* "HOST:PORT", borrowed from the config */
	char *host, *port;
};

struct sg_gateway {
	const struct sg_config *cfg;
	const struct sg_transform *transforms[SG_ROLE_COUNT];
	struct event_base *base;
	struct sg_workpool *pool;
	struct route routes[SG_ROUTE_COUNT];
	SSL_CTX *tls;
	struct listener listeners[N_LISTENERS];
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
	/* The job's own copies: a worker may still read them after the
	 * client was answered (time budget) or has gone. */
	struct sg_envelope env_copy;
	const struct sg_envelope *env; /* &env_copy */
	size_t n_rcpts;
	struct sg_spool *msg;          /* taken over from txn; owned */
	struct timespec start;
	struct event *budget;          /* the post-DATA time budget */
	bool in_worker;                /* a worker owns the job until its done() runs */
	bool answered;                 /* replies given (or the client is gone) */
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
	sg_envelope_clear(&job->env_copy);
	sg_spool_free(&job->msg);
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
		const char *treatment = "-", *relay = "none";
		for (size_t g = 0; g < job->out.n_groups; g++) {
			const struct sg_transform_group *grp = &job->out.groups[g];
			for (size_t k = 0; k < grp->n_rcpts; k++) {
				if (grp->rcpts[k] != i)
					continue;
				treatment = grp->treatment;
				relay = grp->route < SG_ROUTE_COUNT ? job->gw->routes[grp->route].addr : NULL;
				relay = relay != NULL ? relay : "none";
			}
		}
		sg_log_info("%s: to=<%s>, treatment=%s, relay=%s, delay=%.2f, status=%s (%d %s)%s%s",
			    env->queue_id, env->rcpts[i].addr, treatment, relay, delay,
			    status_word(r), r->code, r->text,
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
	job->txn = NULL;
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

/* Back on the loop after the transform: relay each group. */
static void after_transform(void *arg)
{
	struct job *job = arg;
	const struct sg_envelope *env = job->env;

	job->in_worker = false;
	if (job->answered) {
		/* The client left, or the time budget ran out, meanwhile. */
		job_free(job);
		return;
	}
	if (job->transform_ret < 0) {
		sg_log_error("%s: transform %s: %s", env->queue_id,
			     job->gw->transforms[job->lst->role]->name,
			     sg_error_msg(&job->transform_err));
		char *t = sg_asprintf("4.3.0 Error: message processing failed: %s",
				      sg_error_msg(&job->transform_err));
		fail_all(job, 451, t);
		free(t);
		job_done(job);
		return;
	}
	if (job->out.answered != NULL)
		for (size_t i = 0; i < env->n_rcpts; i++)
			if (job->out.answered[i].code != 0)
				sg_reply_copy(&job->replies[i], &job->out.answered[i]);
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
		const struct sg_transform_group *grp = &job->out.groups[gs->group];
		struct sg_relay *relay = grp->route < SG_ROUTE_COUNT ? job->gw->routes[grp->route].relay : NULL;
		if (relay == NULL) {
			/* The transform chose a route this configuration lacks: fail
			 * closed for those recipients, never fall back to another. */
			for (size_t k = 0; k < grp->n_rcpts; k++)
				sg_reply_set(&job->replies[grp->rcpts[k]], 451,
					     "4.3.5 Error: treatment %s needs %s, which is not configured",
					     grp->treatment, sg_route_name(grp->route));
			job->sends_pending--;
			continue;
		}
		gs->req = sg_relay_send(relay, &gs->env, job->received,
					grp->msg != NULL ? grp->msg : job->msg, on_relay_done, gs);
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
	if (job->sends_pending == 0)
		job_done(job);
}

/* On a worker: loop check, Received header, transform. */
static void run_transform(void *arg)
{
	struct job *job = arg;
	const struct sg_envelope *env = job->env;
	const struct sg_config *cfg = job->gw->cfg;
	const struct sg_transform *tf = job->gw->transforms[job->lst->role];
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
	job->transform_ret = tf->run(tf->ctx, env, job->msg, &job->out, &job->transform_err);
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
	/* Drop the next-hop connections before their DATA completes, so the
	 * next hop does not keep a message we answer 4xx for. */
	for (size_t i = 0; i < job->n_sends; i++) {
		if (job->sends[i].req != NULL) {
			sg_relay_cancel(job->sends[i].req);
			job->sends[i].req = NULL;
		}
	}
	for (size_t i = 0; i < job->n_rcpts; i++)
		sg_reply_clear(&job->replies[i]);
	fail_all(job, 451, "4.4.7 Error: processing time budget exceeded, try again later");
	if (job->in_worker)
		job_answer(job); /* the worker has its own copies; after_transform() frees */
	else
		job_done(job);
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
	sg_envelope_copy(&job->env_copy, env);
	job->env = &job->env_copy;
	job->n_rcpts = env->n_rcpts;
	job->msg = sg_smtp_txn_take_spool(txn);
	clock_gettime(CLOCK_MONOTONIC, &job->start);
	job->replies = sg_calloc(env->n_rcpts, sizeof(*job->replies));
	job->queued_as = sg_calloc(env->n_rcpts, sizeof(*job->queued_as));
	struct timeval tv = { (time_t)gw->cfg->transaction_time_budget, 0 };
	job->budget = evtimer_new(gw->base, on_budget, job);
	evtimer_add(job->budget, &tv);
	job->next = gw->jobs;
	if (gw->jobs != NULL)
		gw->jobs->prev = job;
	gw->jobs = job;
	const struct sg_transform *tf = gw->transforms[lst->role];
	if (tf->cheap || (tf->cheap_for != NULL && tf->cheap_for(tf->ctx, job->env, job->msg))) {
		/* Nothing to wait for: the loop check reads only the header
		 * section, and the pass-through touches nothing. */
		run_transform(job);
		after_transform(job);
		return;
	}
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

static int add_listener(struct sg_gateway *gw, const char *addr, bool lmtp, enum sg_role role,
			struct sg_error *err)
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
	lst->role = role;
	lst->srv = sg_smtp_server_new(gw->base, &set, &cb, lst);
	gw->n_listeners++;
	if (sg_smtp_server_listen(lst->srv, addr, err) < 0) {
		sg_error_prefix(err, "%s listener %s", lmtp ? "LMTP" : "SMTP", addr);
		return -1;
	}
	sg_log_info("listening for %s on %s (%s)", lmtp ? "LMTP" : "SMTP", addr, sg_role_name(role));
	return 1;
}

static int add_route(struct sg_gateway *gw, enum sg_route route, const char *hostport,
		     const char *proto, struct sg_error *err)
{
	const struct sg_config *cfg = gw->cfg;
	struct route *r = &gw->routes[route];

	if (hostport[0] == '\0')
		return 0;
	if (sg_parse_hostport(hostport, &r->host, &r->port, err) < 0) {
		sg_error_prefix(err, "%s", sg_route_name(route));
		return -1;
	}
	r->addr = hostport;
	struct sg_relay_settings rs = {
		.proto = strcmp(proto, "lmtp") == 0 ? SG_PROTO_LMTP : SG_PROTO_SMTP,
		.host = r->host,
		.port = r->port,
		.helo_name = cfg->hostname,
		.connect_timeout_s = cfg->relay_connect_timeout,
		.command_timeout_s = cfg->relay_command_timeout,
		.data_done_timeout_s = cfg->relay_data_done_timeout,
		.max_idle = cfg->relay_max_idle,
		.idle_timeout_s = cfg->relay_idle_timeout,
		.xforward = cfg->xforward,
	};
	r->relay = sg_relay_new(gw->base, &rs);
	return 1;
}

struct sg_gateway *sg_gateway_new(struct event_base *base, const struct sg_config *cfg,
				  const struct sg_gateway_transforms *transforms,
				  struct sg_error *err)
{
	struct sg_gateway *gw = sg_calloc(1, sizeof(*gw));

	gw->cfg = cfg;
	gw->base = base;
	for (size_t i = 0; i < SG_ROLE_COUNT; i++)
		gw->transforms[i] = transforms != NULL && transforms->role[i] != NULL
					    ? transforms->role[i] : &sg_transform_pass;
	if (add_route(gw, SG_ROUTE_RELAY, cfg->relay, cfg->relay_protocol, err) < 0 ||
	    add_route(gw, SG_ROUTE_TLS_ONLY, cfg->relay_tls_only, cfg->relay_protocol, err) < 0 ||
	    add_route(gw, SG_ROUTE_DELIVER, cfg->deliver_lmtp, "lmtp", err) < 0)
		goto fail;
	if (tls_setup(gw, err) < 0)
		goto fail;
	for (size_t i = 0; i < N_LISTENERS; i++) {
		const char *addr = *(char *const *)((const char *)cfg + listener_defs[i].cfg_offset);
		if (addr[0] != '\0' &&
		    add_listener(gw, addr, listener_defs[i].lmtp, listener_defs[i].role, err) < 0)
			goto fail;
	}
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
	for (size_t i = 0; i < SG_ROUTE_COUNT; i++) {
		sg_relay_free(&gw->routes[i].relay);
		free(gw->routes[i].host);
		free(gw->routes[i].port);
	}
	if (gw->tls != NULL)
		SSL_CTX_free(gw->tls);
	free(gw);
	*gwp = NULL;
}
