/* A small time-bounded table of key handles with reference counts: the
 * table holds one reference, each user one more; the last one frees. */
#include "keys/keycache.h"
#include "util/mem.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct sg_keycache_entry {
	char *addr;
	int tag;
	struct sg_key *key;
	time_t until;              /* CLOCK_MONOTONIC seconds */
	unsigned refs;             /* atomic: the table's reference + users' */
};

struct sg_keycache {
	pthread_mutex_t lock;      /* the table; an entry in it holds a reference */
	unsigned ttl;
	size_t max, n;
	struct sg_keycache_entry **e;
};

static time_t now_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static void unref(struct sg_keycache_entry *e)
{
	if (__atomic_sub_fetch(&e->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	sg_key_free(&e->key);
	free(e->addr);
	free(e);
}

struct sg_keycache *sg_keycache_new(unsigned ttl, size_t max)
{
	struct sg_keycache *c = sg_calloc(1, sizeof(*c));
	pthread_mutex_init(&c->lock, NULL);
	c->ttl = ttl;
	c->max = max > 0 ? max : 1;
	c->e = sg_calloc(c->max, sizeof(*c->e));
	return c;
}

void sg_keycache_free(struct sg_keycache **cp)
{
	struct sg_keycache *c = *cp;
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n; i++)
		unref(c->e[i]);
	free(c->e);
	pthread_mutex_destroy(&c->lock);
	free(c);
	*cp = NULL;
}

static void drop_at(struct sg_keycache *c, size_t i)
{
	struct sg_keycache_entry *e = c->e[i];
	c->e[i] = c->e[--c->n];
	unref(e); /* users still holding it keep it alive */
}

struct sg_keycache_entry *sg_keycache_get(struct sg_keycache *c, const char *addr, int tag)
{
	struct sg_keycache_entry *hit = NULL;
	time_t now = now_mono();

	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < c->n; i++) {
		if (c->e[i]->until <= now) {
			drop_at(c, i--);
			continue;
		}
		if (hit == NULL && c->e[i]->tag == tag && strcmp(c->e[i]->addr, addr) == 0)
			hit = c->e[i];
	}
	if (hit != NULL)
		__atomic_add_fetch(&hit->refs, 1, __ATOMIC_ACQ_REL);
	pthread_mutex_unlock(&c->lock);
	return hit;
}

struct sg_keycache_entry *sg_keycache_put(struct sg_keycache *c, const char *addr, int tag,
					  struct sg_key *key)
{
	struct sg_keycache_entry *e = sg_calloc(1, sizeof(*e));
	e->addr = sg_strdup(addr);
	e->tag = tag;
	e->key = key;
	e->refs = 1;
	if (c->ttl == 0)
		return e;
	pthread_mutex_lock(&c->lock);
	if (c->n == c->max)
		drop_at(c, 0);
	e->until = now_mono() + (time_t)c->ttl;
	e->refs++; /* not yet shared */
	c->e[c->n++] = e;
	pthread_mutex_unlock(&c->lock);
	return e;
}

struct sg_key *sg_keycache_key(const struct sg_keycache_entry *e)
{
	return e->key;
}

void sg_keycache_release(struct sg_keycache_entry **ep)
{
	if (*ep == NULL)
		return;
	unref(*ep);
	*ep = NULL;
}
