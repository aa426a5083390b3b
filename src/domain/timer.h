/* The domain key rotation timer of `sealgate serve`. */
#ifndef SG_DOMAIN_TIMER_H
#define SG_DOMAIN_TIMER_H

#include "domain/domain.h"

struct event_base;
struct sg_domain_timer;

/* Rotate now and then hourly on base; d (borrowed) NULL: no timer (NULL). */
struct sg_domain_timer *sg_domain_timer_start(struct event_base *base, struct sg_domain *d);
void sg_domain_timer_stop(struct sg_domain_timer **t);

#endif
