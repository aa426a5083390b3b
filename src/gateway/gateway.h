/* The gateway: the SMTP/LMTP listeners, the transform stage on the worker
 * pool, and the relay, wired into one message path:
 *   smtp/ receives -> loop check -> transform (worker) -> relay/ per group
 *   -> the next hop's answers become the replies to our client.
 * Nothing is acknowledged that the next hop did not take. */
#ifndef SG_GATEWAY_GATEWAY_H
#define SG_GATEWAY_GATEWAY_H

#include "config/config.h"
#include "gateway/transform.h"
#include "util/error.h"

struct event_base;
struct sg_gateway;

/* The transform of each listener role; a NULL entry is sg_transform_pass. */
struct sg_gateway_transforms {
	const struct sg_transform *role[SG_ROLE_COUNT];
};

/* cfg and transforms are borrowed for the gateway's lifetime. Binds the
 * listeners (so that privileges can be dropped afterwards):
 *   listen (SMTP) and lmtp_listen (LMTP): role inbound,
 *   submission_listen (LMTP): role outbound,
 *   deliver_listen (LMTP): role deliver.
 * Routes: relay, relay_tls_only, deliver_lmtp (unset routes fail closed). */
struct sg_gateway *sg_gateway_new(struct event_base *base, const struct sg_config *cfg,
				  const struct sg_gateway_transforms *transforms,
				  struct sg_error *err);
/* Stop accepting, finish transactions in flight; the event loop exits
 * when the last session has ended. */
void sg_gateway_shutdown(struct sg_gateway *gw);
void sg_gateway_free(struct sg_gateway **gw);

#endif
