/* The domain state shared by keys.c, publish.c and seal.c; not for use
 * outside src/domain/. */
#ifndef SG_DOMAIN_INTERNAL_H
#define SG_DOMAIN_INTERNAL_H

#include <pthread.h>

#include "domain/domain.h"

/* Keys used by threads without the lock (our short-lived private keys; a
 * peer's signing certificate): counted references taken and given back
 * under d->lock. The last reference frees them (private keys wiped). */
struct sg_domain_keyset {
	unsigned refs;
	size_t n;
	struct sg_key **keys;
	struct sg_x509_key **x509;   /* the same keys, for sg_cms_* */
	time_t *dead;                /* per key: never used from then on (window + grace) */
	time_t loaded;               /* CLOCK_MONOTONIC seconds when read from the store */
	struct sg_domcert_cert *anchor; /* a peer's signing certificate (n 1), or NULL */
	bool tracked;                /* our private keys: in sg_domain.live until freed */
	bool retired;                /* a rotation waits for it to be freed */
};

/* A peer's chosen encryption certificate, checked (chain, trust) when it
 * was cached: reused until its window or the bundle's cache TTL ends. */
struct sg_domain_peer_cached {
	char *domain;
	unsigned char *der;
	size_t len;
	time_t until;
	struct sg_domain_keyset *signer; /* its trusted signing certificate (one key), once looked up */
};

struct sg_domain {
	const struct sg_config *cfg;
	const struct sg_master_key *mk;
	struct sg_store *store;          /* own connection */
	pthread_mutex_t lock;            /* store and caches */
	char **domains;                  /* domain_names, lower-case */
	size_t n_domains;
	pthread_cond_t released;         /* a keyset reference was given back */
	struct sg_domcert_signer *signer;/* long-term key with its private part, or NULL */
	struct sg_domain_keyset *keyset; /* short-lived private keys (one reference), or NULL */
	struct sg_domain_keyset **live;  /* every snapshot of private keys not yet freed */
	size_t n_live;
	struct sg_domain_peer_cached *peers;
	size_t n_peers;
};

/* The trusted signing key of a peer domain, cached in memory until the
 * next rotation: a referenced keyset of one key (give it back with
 * sg_domain_keyset_release). Takes the lock. *r_r as sg_domain_peer_signer. */
struct sg_domain_keyset *sg_domain_peer_signer_ref(struct sg_domain *d, const char *domain,
						   time_t now, int *r_r, struct sg_error *err);
/* The long-term signing key with its private part, loaded once (borrowed
 * until sg_domain_free). Lock held. 1, 0 none (init), -1. */
int sg_domain_signer(struct sg_domain *d, const struct sg_domcert_signer **s_r,
		     struct sg_error *err) SG_WARN_UNUSED;
/* The "peer ..." lines of sg_domain_status. Lock held. 1 or -1. */
int sg_domain_status_peers(struct sg_domain *d, struct sg_buf *out, struct sg_error *err);
/* Forget the cached peer keys (users keep theirs). Lock held. */
void sg_domain_drop_peers(struct sg_domain *d);
/* A keyset of n keys (taken), one reference. */
struct sg_domain_keyset *sg_domain_keyset_new(struct sg_key **keys, size_t n);
/* Drop one reference, lock held; the last frees. Sets *ks NULL. */
void sg_domain_keyset_unref(struct sg_domain *d, struct sg_domain_keyset **ks);
/* 1 if s is a plausible DNS name (letters, digits, '-', '.'), else 0. */
int sg_domain_name_ok(const char *s);

#endif
