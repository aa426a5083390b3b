/* Writing a socket bufferevent's output straight away, from the code that
 * queued it, instead of arming libevent's write event for the next pass. */
#ifndef SG_UTIL_BEVWRITE_H
#define SG_UTIL_BEVWRITE_H

#include <stddef.h>

struct bufferevent;

/* For a plain socket bufferevent whose EV_WRITE is normally disabled: write
 * what its output holds now, and enable EV_WRITE only for what the kernel
 * did not take (libevent then writes the rest, and reports a write error
 * or timeout through the event callback as usual). Saves, per reply or
 * command group, arming and disarming the write event (two epoll_ctl) and
 * a loop pass. Returns the bytes left queued. Not for filters (TLS). */
size_t sg_bev_write_now(struct bufferevent *bev);

#endif
