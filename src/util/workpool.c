/* Worker threads that hand results back to the event loop. */
#include "util/workpool.h"
#include "util/log.h"
#include "util/mem.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdlib.h>

struct job {
	sg_work_fn *work, *done;
	void *arg;
	struct job *next;
};

struct sg_workpool {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job *todo_head, *todo_tail;
	struct job *done_head, *done_tail;
	unsigned pending;
	int stopping;
	unsigned nthreads;
	pthread_t *threads;
	struct event *done_ev; /* activated by workers, runs on the loop */
};

static void push(struct job **head, struct job **tail, struct job *j)
{
	j->next = NULL;
	if (*tail != NULL)
		(*tail)->next = j;
	else
		*head = j;
	*tail = j;
}

static struct job *pop(struct job **head, struct job **tail)
{
	struct job *j = *head;
	if (j != NULL) {
		*head = j->next;
		if (*head == NULL)
			*tail = NULL;
	}
	return j;
}

static void *worker(void *p)
{
	struct sg_workpool *wp = p;

	pthread_mutex_lock(&wp->lock);
	for (;;) {
		struct job *j = pop(&wp->todo_head, &wp->todo_tail);
		if (j == NULL) {
			if (wp->stopping)
				break;
			pthread_cond_wait(&wp->cond, &wp->lock);
			continue;
		}
		pthread_mutex_unlock(&wp->lock);
		j->work(j->arg);
		pthread_mutex_lock(&wp->lock);
		push(&wp->done_head, &wp->done_tail, j);
		event_active(wp->done_ev, EV_READ, 0);
	}
	pthread_mutex_unlock(&wp->lock);
	return NULL;
}

static void on_done(evutil_socket_t fd, short what, void *p)
{
	struct sg_workpool *wp = p;
	(void)fd;
	(void)what;

	pthread_mutex_lock(&wp->lock);
	struct job *list = wp->done_head;
	wp->done_head = wp->done_tail = NULL;
	pthread_mutex_unlock(&wp->lock);
	while (list != NULL) {
		struct job *j = list;
		list = j->next;
		pthread_mutex_lock(&wp->lock);
		wp->pending--;
		pthread_mutex_unlock(&wp->lock);
		if (j->done != NULL)
			j->done(j->arg);
		free(j);
	}
}

struct sg_workpool *sg_workpool_new(struct event_base *base, unsigned nthreads)
{
	struct sg_workpool *wp = sg_calloc(1, sizeof(*wp));

	if (nthreads == 0)
		nthreads = 1;
	pthread_mutex_init(&wp->lock, NULL);
	pthread_cond_init(&wp->cond, NULL);
	wp->done_ev = event_new(base, -1, 0, on_done, wp);
	if (wp->done_ev == NULL)
		sg_fatal("workpool: event_new failed");
	wp->nthreads = nthreads;
	wp->threads = sg_calloc(nthreads, sizeof(*wp->threads));
	for (unsigned i = 0; i < nthreads; i++)
		if (pthread_create(&wp->threads[i], NULL, worker, wp) != 0)
			sg_fatal("workpool: cannot start worker thread");
	return wp;
}

void sg_workpool_submit(struct sg_workpool *wp, sg_work_fn *work, sg_work_fn *done, void *arg)
{
	struct job *j = sg_calloc(1, sizeof(*j));
	j->work = work;
	j->done = done;
	j->arg = arg;
	pthread_mutex_lock(&wp->lock);
	sg_assert(!wp->stopping);
	push(&wp->todo_head, &wp->todo_tail, j);
	wp->pending++;
	pthread_cond_signal(&wp->cond);
	pthread_mutex_unlock(&wp->lock);
}

unsigned sg_workpool_pending(const struct sg_workpool *wp)
{
	return wp->pending;
}

void sg_workpool_free(struct sg_workpool **wpp)
{
	struct sg_workpool *wp = *wpp;
	if (wp == NULL)
		return;
	pthread_mutex_lock(&wp->lock);
	wp->stopping = 1;
	pthread_cond_broadcast(&wp->cond);
	pthread_mutex_unlock(&wp->lock);
	for (unsigned i = 0; i < wp->nthreads; i++)
		pthread_join(wp->threads[i], NULL);
	for (struct job *j; (j = pop(&wp->done_head, &wp->done_tail)) != NULL;)
		free(j);
	event_free(wp->done_ev);
	pthread_mutex_destroy(&wp->lock);
	pthread_cond_destroy(&wp->cond);
	free(wp->threads);
	free(wp);
	*wpp = NULL;
}
