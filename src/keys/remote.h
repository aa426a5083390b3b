/* Finding other people's keys: the remote look-up chain (cache, WKD, LDAP,
 * DNS OPENPGPKEY/SMIMEA) behind one call, with the checks every fetched key passes. */
#ifndef SG_KEYS_REMOTE_H
#define SG_KEYS_REMOTE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

struct sg_store;
struct sg_config;
struct sg_keys_remote;

/* Hard caps against key flooding (a key with 10,000 third-party
 * signatures, CVE-2019-13050 style) and oversized answers. */
#define SG_KEYS_MAX_RESPONSE (256 * 1024)
#define SG_KEYS_MAX_PACKETS 512
#define SG_KEYS_MAX_KEYS 8          /* blobs kept per address and source */

/* One piece of key material. All strings and data owned. */
struct sg_keys_found {
	char *kind;              /* "pgp" or "x509" */
	char *source;            /* "wkd", "ldap", "dns", ... */
	char *trust;             /* "wkd", "directory", "dnssec" */
	unsigned char *data;     /* binary OpenPGP key or DER certificate */
	size_t len;
};
void sg_keys_found_free(struct sg_keys_found **keys, size_t n);

/* A key source (the driver table shared by WKD, LDAP and DNS). fetch
 * returns raw, unchecked blobs (kind, data; source/trust are filled in by
 * the chain): 1 some, 0 none here (negative), -1 the source failed. It must
 * return within budget_ms and may be called from several threads at once. */
struct sg_keys_source {
	const char *name;
	const char *trust;
	int (*fetch)(void *ctx, const char *addr, unsigned budget_ms, struct sg_keys_found **blobs_r,
		     size_t *n_r, struct sg_error *err);
	void (*free)(void *ctx);
	void *ctx;
};

/* The chain: sources in cfg->lookup_order, the cache over store. store
 * (may be NULL: in-process cache only) is borrowed for the chain's
 * lifetime, and used only under store_lock (NULL: the chain's own lock;
 * never held during a fetch); cfg is read here only. NULL with err set on
 * a bad configuration. */
struct sg_keys_remote *sg_keys_remote_new(struct sg_store *store, pthread_mutex_t *store_lock,
					  const struct sg_config *cfg, struct sg_error *err);
void sg_keys_remote_free(struct sg_keys_remote **r);

/* Key material for addr, from the cache or by fetching, within budget_ms.
 * 1 found (*keys_r: owned array of *n_r checked blobs with source and
 * trust), 0 none (negative result, cached), -1 error (err says why; a
 * policy input, never a crash or a hang). Thread-safe; single-flight per
 * address: concurrent calls for one address share one fetch. */
int sg_keys_remote_find(struct sg_keys_remote *r, const char *addr, unsigned budget_ms,
			struct sg_keys_found **keys_r, size_t *n_r, struct sg_error *err) SG_WARN_UNUSED;

/* Tuning and test hooks. only: fetch from this source alone (NULL: all),
 * bypassing the cache both ways (a partial answer is never cached);
 * no_cache: skip the cache (the result is still stored). */
void sg_keys_remote_set_only(struct sg_keys_remote *r, const char *only);
void sg_keys_remote_set_no_cache(struct sg_keys_remote *r, bool no_cache);
/* Append a source after the configured ones (copied; ctx owned by the chain). */
void sg_keys_remote_add_source(struct sg_keys_remote *r, const struct sg_keys_source *src);
/* Fetches actually made (not served from the cache). */
uint64_t sg_keys_remote_fetch_count(struct sg_keys_remote *r);
/* Current time source for the cache (tests move time); NULL: time(). */
void sg_keys_remote_set_clock(struct sg_keys_remote *r, int64_t (*now)(void));

/* --- Checks every fetched blob passes (remote.c) --- */
/* 1 acceptable (*out: kind and a binary copy of the key), 0 refused with
 * the reason in err (too big, too many packets, no user ID / e-mail equal
 * to addr, not a key). Never crashes on arbitrary bytes. */
int sg_keys_check_blob(const char *addr, const void *data, size_t len, struct sg_keys_found *out,
		       struct sg_error *err) SG_WARN_UNUSED;
/* OpenPGP packets in a binary stream (RFC 4880 4.2, old and new format
 * headers): count, or -1 when malformed or past max. */
long sg_keys_pgp_count_packets(const void *data, size_t len, long max);

/* --- Connection hardening (source-wkd.c) --- */
/* 1 if a numeric address (v4 or v6) is public; 0 for private, loopback,
 * link-local, multicast, unspecified, CGNAT, unique-local, mapped forms. */
int sg_keys_addr_is_public(const char *ip);
/* Allow-list entry for host in list ("HOST" or "HOST=IP:PORT", space
 * separated): 1 listed (*target_r owned "IP:PORT" or NULL), 0 not. */
int sg_keys_allow_lookup(const char *list, const char *host, char **target_r);

/* --- Sources (constructors; 1 ok, -1 bad configuration) --- */
int sg_keys_source_wkd(const struct sg_config *cfg, struct sg_keys_source *src_r,
		       struct sg_error *err);
int sg_keys_source_ldap(const struct sg_config *cfg, struct sg_keys_source *src_r,
			struct sg_error *err);
int sg_keys_source_dns(const struct sg_config *cfg, struct sg_keys_source *src_r,
		       struct sg_error *err);

/* --- DNS record handling (source-dns.c), testable offline --- */
/* RFC 7929 3: owner name SHA2-256(local-part) truncated to 28 octets, hex,
 * "._openpgpkey." domain; RFC 8162 3: the same with "._smimecert.". */
char *sg_keys_dns_owner(const char *addr, const char *label, struct sg_error *err);
/* Trust decision for a resolver answer (RFC 7929 7: unvalidated answers
 * are not used): 1 use, 0 refused (insecure/bogus) with err. */
int sg_keys_dns_trusted(int secure, int bogus, int havedata, struct sg_error *err);
/* SMIMEA RDATA (RFC 8162 2, TLSA layout): usage, selector, matching type,
 * data. Only full certificates (selector 0, matching 0) are key material:
 * 1 with *cert_r and *len_r borrowed into rdata, 0 other forms, -1 malformed. */
int sg_keys_smimea_parse(const unsigned char *rdata, size_t len, const unsigned char **cert_r,
			 size_t *len_r);

#endif
