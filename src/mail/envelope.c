/* Envelope and reply helpers. */
#include "mail/envelope.h"
#include "util/mem.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void sg_reply_set(struct sg_reply *r, int code, const char *fmt, ...)
{
	va_list ap;
	free(r->text);
	r->code = code;
	va_start(ap, fmt);
	r->text = sg_vasprintf(fmt, ap);
	va_end(ap);
}

void sg_reply_copy(struct sg_reply *dst, const struct sg_reply *src)
{
	free(dst->text);
	dst->code = src->code;
	dst->text = src->text != NULL ? sg_strdup(src->text) : NULL;
}

void sg_reply_clear(struct sg_reply *r)
{
	free(r->text);
	r->text = NULL;
	r->code = 0;
}

int sg_reply_class(const struct sg_reply *r)
{
	return r->code >= 200 && r->code < 600 ? r->code / 100 : 0;
}

static char *dup_or_null(const char *s)
{
	return s != NULL ? sg_strdup(s) : NULL;
}

void sg_envelope_add_rcpt(struct sg_envelope *env, const char *addr, const char *params)
{
	env->rcpts = sg_reallocarray(env->rcpts, env->n_rcpts + 1, sizeof(*env->rcpts));
	env->rcpts[env->n_rcpts].addr = sg_strdup(addr);
	env->rcpts[env->n_rcpts].params = dup_or_null(params);
	env->n_rcpts++;
}

void sg_xforward_clear(struct sg_xforward *xf)
{
	free(xf->name);
	free(xf->addr);
	free(xf->port);
	free(xf->proto);
	free(xf->helo);
	free(xf->ident);
	free(xf->source);
	memset(xf, 0, sizeof(*xf));
}

void sg_envelope_clear(struct sg_envelope *env)
{
	free(env->mail_from);
	free(env->mail_params);
	for (size_t i = 0; i < env->n_rcpts; i++) {
		free(env->rcpts[i].addr);
		free(env->rcpts[i].params);
	}
	free(env->rcpts);
	free(env->helo);
	free(env->client_addr);
	free(env->client_port);
	free(env->queue_id);
	sg_xforward_clear(&env->xf);
	memset(env, 0, sizeof(*env));
}

void sg_envelope_copy(struct sg_envelope *dst, const struct sg_envelope *src)
{
	dst->mail_from = dup_or_null(src->mail_from);
	dst->mail_params = dup_or_null(src->mail_params);
	dst->rcpts = NULL;
	dst->n_rcpts = 0;
	for (size_t i = 0; i < src->n_rcpts; i++)
		sg_envelope_add_rcpt(dst, src->rcpts[i].addr, src->rcpts[i].params);
	dst->body_8bit = src->body_8bit;
	dst->smtputf8 = src->smtputf8;
	dst->helo = dup_or_null(src->helo);
	dst->client_addr = dup_or_null(src->client_addr);
	dst->client_port = dup_or_null(src->client_port);
	dst->tls = src->tls;
	dst->lmtp = src->lmtp;
	dst->xf.name = dup_or_null(src->xf.name);
	dst->xf.addr = dup_or_null(src->xf.addr);
	dst->xf.port = dup_or_null(src->xf.port);
	dst->xf.proto = dup_or_null(src->xf.proto);
	dst->xf.helo = dup_or_null(src->xf.helo);
	dst->xf.ident = dup_or_null(src->xf.ident);
	dst->xf.source = dup_or_null(src->xf.source);
	dst->queue_id = dup_or_null(src->queue_id);
}

int sg_esmtp_param(const char *params, const char *keyword, char **value_r)
{
	size_t klen = strlen(keyword);
	const char *p = params;

	if (p == NULL)
		return 0;
	while (*p != '\0') {
		while (*p == ' ')
			p++;
		const char *end = p + strcspn(p, " ");
		if (end > p && strncasecmp(p, keyword, klen) == 0 &&
		    (p[klen] == '=' || p + klen == end)) {
			if (value_r != NULL)
				*value_r = p[klen] == '=' ? sg_strndup(p + klen + 1, (size_t)(end - p - klen - 1))
							  : sg_strdup("");
			return 1;
		}
		p = end;
	}
	return 0;
}
