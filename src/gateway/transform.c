/* The transform stage's data types, and the pass-through transform. */
#include "gateway/transform.h"
#include "util/mem.h"
#include "util/spool.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

const char *sg_role_name(enum sg_role role)
{
	static const char *const names[SG_ROLE_COUNT] = { "inbound", "outbound", "deliver" };
	return role < SG_ROLE_COUNT ? names[role] : "?";
}

const char *sg_route_name(enum sg_route route)
{
	static const char *const names[SG_ROUTE_COUNT] = { "relay", "relay_tls_only", "deliver_lmtp" };
	return route < SG_ROUTE_COUNT ? names[route] : "?";
}

struct sg_transform_group *sg_transform_add_group(struct sg_transform_out *out,
						  const char *treatment, struct sg_spool *msg)
{
	out->groups = sg_reallocarray(out->groups, out->n_groups + 1, sizeof(*out->groups));
	struct sg_transform_group *g = &out->groups[out->n_groups++];
	memset(g, 0, sizeof(*g));
	g->treatment = sg_strdup(treatment);
	g->msg = msg;
	return g;
}

void sg_transform_group_add_rcpt(struct sg_transform_group *g, size_t idx)
{
	g->rcpts = sg_reallocarray(g->rcpts, g->n_rcpts + 1, sizeof(*g->rcpts));
	g->rcpts[g->n_rcpts++] = idx;
}

void sg_transform_answer(struct sg_transform_out *out, size_t n_rcpts, size_t idx, int code,
			 const char *fmt, ...)
{
	va_list ap;
	if (out->answered == NULL)
		out->answered = sg_calloc(n_rcpts, sizeof(*out->answered));
	free(out->answered[idx].text);
	out->answered[idx].code = code;
	va_start(ap, fmt);
	out->answered[idx].text = sg_vasprintf(fmt, ap);
	va_end(ap);
}

void sg_transform_out_clear(struct sg_transform_out *out, size_t n_rcpts)
{
	for (size_t i = 0; i < out->n_groups; i++) {
		free(out->groups[i].rcpts);
		free(out->groups[i].treatment);
		sg_spool_free(&out->groups[i].msg);
	}
	free(out->groups);
	if (out->answered != NULL)
		for (size_t i = 0; i < n_rcpts; i++)
			sg_reply_clear(&out->answered[i]);
	free(out->answered);
	memset(out, 0, sizeof(*out));
}

static int pass_run(void *ctx, const struct sg_envelope *env, struct sg_spool *msg,
		    struct sg_transform_out *out, struct sg_error *err)
{
	(void)ctx;
	(void)msg;
	(void)err;
	struct sg_transform_group *g = sg_transform_add_group(out, "pass", NULL);
	for (size_t i = 0; i < env->n_rcpts; i++)
		sg_transform_group_add_rcpt(g, i);
	return 1;
}

const struct sg_transform sg_transform_pass = { .name = "pass", .run = pass_run, .cheap = true };
