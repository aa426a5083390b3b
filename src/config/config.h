/* sealgate's configuration: one file of "key = value" lines, parsed
 * against a declarative table of settings (Postfix's CONFIG_*_TABLE,
 * Dovecot's SETTING_DEFINE). Unknown keys, bad values and duplicates are
 * errors reported as "file:line: message"; the parsed result is a const
 * struct passed down, never a global. */
#ifndef SG_CONFIG_CONFIG_H
#define SG_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "util/error.h"

struct sg_config {
	char *hostname;
	char *state_dir;
	char *user;
	char *listen;           /* SMTP filter listener, "" = off */
	char *lmtp_listen;      /* LMTP filter listener, "" = off */
	char *submission_listen; /* LMTP listener for authenticated submission, "" = off */
	char *deliver_listen;   /* LMTP listener for local delivery (at rest), "" = off */
	char *relay;            /* next hop */
	char *relay_tls_only;   /* next hop that enforces TLS, "" = none */
	char *deliver_lmtp;     /* the mailbox server's LMTP (Dovecot), "" = none */
	char *relay_protocol;   /* "smtp" or "lmtp" */
	bool xforward;
	size_t max_message_size;
	size_t spool_memory_max;
	unsigned max_recipients;
	unsigned max_sessions;
	size_t max_line_length;
	unsigned max_errors;
	unsigned command_timeout;      /* seconds */
	unsigned data_timeout;
	unsigned relay_connect_timeout;
	unsigned relay_command_timeout;
	unsigned relay_data_done_timeout;
	unsigned transaction_time_budget;
	unsigned relay_max_idle;
	unsigned relay_idle_timeout;
	unsigned max_received;
	unsigned worker_threads;
	char *tls_cert_file;
	char *tls_key_file;
	char *log;               /* "stderr" or "syslog" */
	char *syslog_facility;
	bool debug;
	char *store;             /* "sqlite:PATH" or "postgresql://..."; "" = sqlite:STATE_DIR/sealgate.db */
	char *master_key_file;   /* 32-byte key outside state_dir; "" = none */
	bool store_user_private_keys; /* users' private keys only when asked */
	char *wkd_listen;        /* WKD HTTP(S) listener, "" = off */
	char *wkd_domains;       /* domains served (space separated), "" = all */
	char *wkd_submission_address;
	char *wkd_tls_cert_file;
	char *wkd_tls_key_file;
	char *policy_file;       /* outbound policy rules (doc/policy.md), "" = none: every recipient pass */
	char *policy_default;    /* treatment when no rule matches */
	char *policy_missing_key; /* "reject" (5.7.1) or "defer" (4.7.1) when a key is missing */
	char *policy_key_preference; /* "pgp" or "smime" when a recipient has both */
	bool policy_sign;        /* sign outbound with the sender's stored private key */
	char *authserv_id;       /* Authentication-Results authserv-id; "" = hostname */
	char *smime_trust_anchors; /* PEM CA certificate files, space separated */
	char *smime_revocation;    /* "off", "crl" or "require" (crypto/smime.h) */
	char *smime_crl_files;     /* PEM/DER CRL files, space separated */
	char *smime_crl_dir;       /* directory of CRL files, "" = none */
	bool inbound_verify;     /* verify signatures on the inbound listeners */
	/* Outbound: the content filter and encrypted submission (doc/policy.md). */
	unsigned policy_key_cache_ttl; /* seconds a loaded key is reused, 0 = never */
	char *content_filter_cmd;  /* "" = off */
	unsigned content_filter_timeout; /* seconds */
	bool content_filter_rewrite;
	char *gateway_address;     /* owner of the gateway's OpenPGP keys in the store, "" = off */
	char *gateway_smime_key;   /* PEM key + certificate file, "" = off */
	bool submission_require_signature;
	bool submission_allow_cbc;
	/* Delivery (deliver_listen): sealing at rest. */
	char *deliver_maildir;     /* Maildir path template (%u %n %d); "" = hand to deliver_lmtp */
	char *deliver_no_key;      /* "plain", "refuse" (550 5.7.1) or "defer" (450 4.7.1) */
	char *deliver_format;      /* "auto" (the key's kind), "pgp" or "smime" */
	char *deliver_user_formats; /* "addr=pgp addr=smime ..." per-user preference */
	char *deliver_subject;     /* outer Subject of sealed copies */
	unsigned deliver_key_cache_ttl; /* seconds a found key is reused; 0 = look up every time */
	char *recovery_key;        /* escrow OpenPGP public key file, extra recipient at rest; "" = none */
	char *rekey_resync_cmd;    /* sh -c command after a Maildir changed ($1 user, $2 dir); "" = none */
	/* Finding other people's keys (keys/remote.h) */
	char *lookup_order;      /* "wkd ldap dns" (space separated), "" = no remote look-ups */
	unsigned lookup_budget;  /* seconds for one address, all sources */
	unsigned lookup_cache_ttl;
	unsigned lookup_negative_ttl;
	char *autocrypt_authserv_id; /* trusted DKIM verifier for Autocrypt harvest, "" = off */
	unsigned smime_cert_days; /* key generate --smime validity */
	char *key_change;        /* "accept" or "hold" */
	char *wkd_allow_hosts;   /* test allow-list: "HOST" or "HOST=IP:PORT" (plain HTTP) */
	/* Gateway-to-gateway domain security (src/domain/, doc/domain.md) */
	char *domain_names;      /* our domains, space separated; "" = off */
	unsigned domain_key_lifetime; /* seconds per short-lived key */
	unsigned domain_keys_ahead;
	unsigned domain_key_grace;    /* >= SG_DOMAIN_MIN_GRACE */
	char *domain_peer_trust; /* "pin-first-use" or "configured" */
	char *domain_peers;      /* "domain=FPR ..." */
	char *ldap_uri;          /* "" = LDAP source off */
	char *ldap_base;
	char *ldap_filter;       /* "%s" is the (escaped) address */
	char *ldap_attributes;   /* space separated */
	char *dns_trust_anchor_file;
	char *dns_resolver;      /* forwarder IP, "" = /etc/resolv.conf */
};

/* The shortest domain_key_grace allowed: 5 days. */
#define SG_DOMAIN_MIN_GRACE (5u * 86400u)
/* The domain_* rules sg_config_check applies (also used by `sealgate domain`). */
int sg_config_check_domain(const struct sg_config *cfg, struct sg_error *err) SG_WARN_UNUSED;
/* Defaults for everything (no file). */
void sg_config_defaults(struct sg_config *cfg);
/* Parse path over the defaults already in cfg. 1, or -1 with
 * "path:line: message" in err. */
int sg_config_load(struct sg_config *cfg, const char *path, struct sg_error *err) SG_WARN_UNUSED;
/* Parse text (name is used in messages). */
int sg_config_parse(struct sg_config *cfg, const char *name, const char *text, size_t len,
		    struct sg_error *err) SG_WARN_UNUSED;
/* Set one key from the command line ("--relay" etc.); 1 or -1. */
int sg_config_set(struct sg_config *cfg, const char *key, const char *value,
		  struct sg_error *err) SG_WARN_UNUSED;
/* Cross-field checks after all sources are applied. 1 or -1. */
int sg_config_check(const struct sg_config *cfg, struct sg_error *err) SG_WARN_UNUSED;
/* Write the effective configuration in file syntax (for --check -v and the
 * sample file). */
char *sg_config_dump(const struct sg_config *cfg);
void sg_config_clear(struct sg_config *cfg);

#endif
