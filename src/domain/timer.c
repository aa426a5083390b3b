/* Rotation inside `sealgate serve`: once at start, then hourly, on the
 * event loop (a rotation takes milliseconds: a few P-256 keys). */
#include "domain/timer.h"
#include "util/log.h"
#include "util/mem.h"

#include <event2/event.h>
#include <stdlib.h>

#define ROTATE_EVERY_S 3600

struct sg_domain_timer {
	struct event *ev;
	struct sg_domain *d;
};

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct sg_domain_timer *t = arg;
	struct sg_domain_rotation r;
	struct sg_error err = SG_ERROR_INIT;

	if (sg_domain_rotate(t->d, sg_domain_now(), &r, &err) < 0)
		sg_log_error("%s", sg_error_msg(&err));
	else if (r.generated > 0 || r.destroyed > 0)
		sg_log_info("domain: rotation: %u keys generated, %u destroyed", r.generated, r.destroyed);
	sg_error_clear(&err);
}

struct sg_domain_timer *sg_domain_timer_start(struct event_base *base, struct sg_domain *d)
{
	struct sg_domain_timer *t;
	struct timeval every = { ROTATE_EVERY_S, 0 };

	if (d == NULL)
		return NULL;
	t = sg_calloc(1, sizeof(*t));
	t->d = d;
	t->ev = event_new(base, -1, EV_PERSIST, on_timer, t);
	if (t->ev == NULL)
		sg_fatal("domain: cannot create the rotation timer");
	on_timer(-1, 0, t);
	event_add(t->ev, &every);
	return t;
}

void sg_domain_timer_stop(struct sg_domain_timer **tp)
{
	if (*tp == NULL)
		return;
	event_free((*tp)->ev);
	free(*tp);
	*tp = NULL;
}
