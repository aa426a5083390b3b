/* The domain state shared by keys.c, publish.c and seal.c; not for use
 * outside src/domain/. */
#ifndef SG_DOMAIN_INTERNAL_H
#define SG_DOMAIN_INTERNAL_H

#include <pthread.h>

#include "domain/domain.h"

/* A short-lived private key loaded from the store. */
struct sg_domain_cached {
	char *fpr;
	struct sg_key *key;
};

/* A peer's chosen encryption certificate, checked (chain, trust) when it
 * was cached: reused until its window or the bundle's cache TTL ends. */
struct sg_domain_peer_cached {
	char *domain;
	unsigned char *der;
	size_t len;
	time_t until;
	struct sg_key *signer;   /* its trusted signing certificate, once looked up */
};

struct sg_domain {
	const struct sg_config *cfg;
	const struct sg_master_key *mk;
	struct sg_store *store;          /* own connection */
	pthread_mutex_t lock;            /* store and caches */
	char **domains;                  /* domain_names, lower-case */
	size_t n_domains;
	struct sg_key *signer;           /* long-term key with its private part, or NULL */
	struct sg_domain_cached *keys;   /* short-lived private keys */
	size_t n_keys;
	struct sg_key **key_array;       /* keys[i].key, for sg_domain_decrypt_keys */
	struct sg_domain_peer_cached *peers;
	size_t n_peers;
};

/* The trusted signing key of a peer domain, cached in memory until the
 * next rotation (borrowed; lock held). *r_r as sg_domain_peer_signer. */
const struct sg_key *sg_domain_peer_signer_cached(struct sg_domain *d, const char *domain,
						  time_t now, int *r_r, struct sg_error *err);
/* Forget the cached peer keys. Lock held. */
void sg_domain_drop_peers(struct sg_domain *d);
/* Drop every cached private key (wiped by sg_key_free). Lock held. */
void sg_domain_drop_cache(struct sg_domain *d);
/* 1 if s is a plausible DNS name (letters, digits, '-', '.'), else 0. */
int sg_domain_name_ok(const char *s);

#endif
