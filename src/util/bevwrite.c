/* Writing a socket bufferevent's output straight away (see bevwrite.h):
 * what libevent's own write callback does, done before the loop's pass. */
#include "util/bevwrite.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

size_t sg_bev_write_now(struct bufferevent *bev)
{
	struct evbuffer *out = bufferevent_get_output(bev);
	evutil_socket_t fd = bufferevent_getfd(bev);

	if (evbuffer_get_length(out) == 0)
		return 0;
	if (fd >= 0) {
		/* A bufferevent keeps its output's front frozen: only its own
		 * write path drains it, and it unfreezes around the write the
		 * same way. An error leaves the data queued: EV_WRITE then
		 * meets the error again and reports it. */
		evbuffer_unfreeze(out, 1);
		(void)evbuffer_write(out, fd);
		evbuffer_freeze(out, 1);
	}
	if (evbuffer_get_length(out) > 0)
		bufferevent_enable(bev, EV_WRITE);
	return evbuffer_get_length(out);
}
