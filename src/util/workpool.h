/* A small pool of worker threads for the work that must not stall the event
 * loop: crypto, MIME, key look-ups, disk. A job's work() runs on a worker;
 * its done() then runs on the event loop's thread, where it may touch
 * sessions again. Needs evthread_use_pthreads() before the base is made. */
#ifndef SG_UTIL_WORKPOOL_H
#define SG_UTIL_WORKPOOL_H

struct event_base;
struct sg_workpool;

typedef void sg_work_fn(void *arg);

struct sg_workpool *sg_workpool_new(struct event_base *base, unsigned nthreads);
/* arg is borrowed by both callbacks; done may be NULL. */
void sg_workpool_submit(struct sg_workpool *wp, sg_work_fn *work, sg_work_fn *done, void *arg);
/* Jobs queued or running. */
unsigned sg_workpool_pending(const struct sg_workpool *wp);
/* Waits for queued and running jobs; runs no further done() callbacks. */
void sg_workpool_free(struct sg_workpool **wp);

#endif
