/* Table-driven parser for sealgate.conf. */
#include "config/config.h"
#include "util/buf.h"
#include "util/hostport.h"
#include "util/log.h"
#include "util/mem.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

enum setting_type { T_STR, T_BOOL, T_UINT, T_SIZE, T_TIME, T_ENUM, T_HOSTPORT };

struct setting {
	const char *name;
	enum setting_type type;
	const char *def;         /* default, in file syntax; NULL: computed */
	unsigned long long min, max;
	size_t offset;
	const char *values;      /* T_ENUM: "a|b|c" */
	const char *help;        /* one line, for the sample file */
};

#define F(field) offsetof(struct sg_config, field)
#define MiB (1024ULL * 1024ULL)

static const struct setting settings[] = {
	{ "hostname", T_STR, NULL, 0, 0, F(hostname), NULL,
	  "name in greetings and Received: headers (default: the system's host name)" },
	{ "state_dir", T_STR, "./var", 0, 0, F(state_dir), NULL,
	  "where state lives: the database and the spool (tmp/)" },
	{ "user", T_STR, "", 0, 0, F(user), NULL,
	  "when started as root: bind, then run as this user (empty: stay)" },
	{ "listen", T_HOSTPORT, "127.0.0.1:10025", 0, 0, F(listen), NULL,
	  "SMTP filter listener ADDR:PORT (empty: off)" },
	{ "lmtp_listen", T_HOSTPORT, "", 0, 0, F(lmtp_listen), NULL,
	  "LMTP filter listener ADDR:PORT (empty: off); recommended with Postfix" },
	{ "submission_listen", T_HOSTPORT, "", 0, 0, F(submission_listen), NULL,
	  "LMTP listener for mail from authenticated submission (outbound role; empty: off)" },
	{ "deliver_listen", T_HOSTPORT, "", 0, 0, F(deliver_listen), NULL,
	  "LMTP listener for local delivery, sealing at rest (empty: off)" },
	{ "relay", T_HOSTPORT, "127.0.0.1:10026", 0, 0, F(relay), NULL,
	  "next hop HOST:PORT: Postfix's reinjection listener" },
	{ "relay_tls_only", T_HOSTPORT, "", 0, 0, F(relay_tls_only), NULL,
	  "next hop for the TLS-only treatment: a reinjection listener whose transport enforces TLS" },
	{ "deliver_lmtp", T_HOSTPORT, "", 0, 0, F(deliver_lmtp), NULL,
	  "the mailbox server's LMTP HOST:PORT (Dovecot) for sealed local delivery" },
	{ "relay_protocol", T_ENUM, "smtp", 0, 0, F(relay_protocol), "smtp|lmtp",
	  "protocol the next hop speaks" },
	{ "xforward", T_BOOL, "yes", 0, 0, F(xforward), NULL,
	  "accept XFORWARD from clients and pass it to the next hop" },
	{ "max_message_size", T_SIZE, "64M", 1024, 1024 * MiB, F(max_message_size), NULL,
	  "largest message accepted (SIZE and during DATA)" },
	{ "spool_memory_max", T_SIZE, "1M", 0, 1024 * MiB, F(spool_memory_max), NULL,
	  "messages larger than this are spooled to a 0600 temp file" },
	{ "max_recipients", T_UINT, "1000", 1, 100000, F(max_recipients), NULL,
	  "recipients per transaction" },
	{ "max_sessions", T_UINT, "100", 1, 100000, F(max_sessions), NULL,
	  "concurrent sessions; accepting pauses at the cap" },
	{ "max_line_length", T_SIZE, "64k", 1000, 16 * MiB, F(max_line_length), NULL,
	  "longest command or message line" },
	{ "max_errors", T_UINT, "10", 1, 1000, F(max_errors), NULL,
	  "bad commands before the session is closed" },
	{ "command_timeout", T_TIME, "300s", 1, 3600, F(command_timeout), NULL,
	  "idle time allowed between commands" },
	{ "data_timeout", T_TIME, "300s", 1, 3600, F(data_timeout), NULL,
	  "idle time allowed while receiving DATA" },
	{ "relay_connect_timeout", T_TIME, "30s", 1, 3600, F(relay_connect_timeout), NULL,
	  "connecting to the next hop" },
	{ "relay_command_timeout", T_TIME, "300s", 1, 3600, F(relay_command_timeout), NULL,
	  "waiting for each next-hop reply" },
	{ "relay_data_done_timeout", T_TIME, "500s", 1, 3600, F(relay_data_done_timeout), NULL,
	  "waiting for the next hop's answer to the end of DATA" },
	{ "transaction_time_budget", T_TIME, "550s", 1, 3600, F(transaction_time_budget), NULL,
	  "all post-DATA work; keep below Postfix's lmtp/smtp_data_done_timeout (600s)" },
	{ "relay_max_idle", T_UINT, "20", 0, 10000, F(relay_max_idle), NULL,
	  "idle next-hop connections kept for reuse" },
	{ "relay_idle_timeout", T_TIME, "60s", 1, 3600, F(relay_idle_timeout), NULL,
	  "an idle next-hop connection is closed after this" },
	{ "max_received", T_UINT, "50", 2, 1000, F(max_received), NULL,
	  "more Received: headers than this is a mail loop (5.4.6)" },
	{ "worker_threads", T_UINT, "2", 1, 256, F(worker_threads), NULL,
	  "threads for crypto, MIME and disk work" },
	{ "tls_cert_file", T_STR, "", 0, 0, F(tls_cert_file), NULL,
	  "PEM certificate chain for STARTTLS (empty: no STARTTLS)" },
	{ "tls_key_file", T_STR, "", 0, 0, F(tls_key_file), NULL,
	  "PEM private key for STARTTLS (must not be group/world readable)" },
	{ "log", T_ENUM, "stderr", 0, 0, F(log), "stderr|syslog", "where log lines go" },
	{ "syslog_facility", T_STR, "mail", 0, 0, F(syslog_facility), NULL,
	  "syslog facility when log = syslog" },
	{ "debug", T_BOOL, "no", 0, 0, F(debug), NULL, "log protocol details (never content)" },
	{ "store", T_STR, "", 0, 0, F(store), NULL,
	  "key store: sqlite:PATH or postgresql://... (empty: sqlite:STATE_DIR/sealgate.db)" },
	{ "master_key_file", T_STR, "", 0, 0, F(master_key_file), NULL,
	  "32-byte master key for private keys, 0600, outside state_dir (key init-master)" },
	{ "store_user_private_keys", T_BOOL, "no", 0, 0, F(store_user_private_keys), NULL,
	  "keep users' private keys (sealed) when imported; off: public parts only" },
	{ "wkd_listen", T_HOSTPORT, "", 0, 0, F(wkd_listen), NULL,
	  "Web Key Directory listener ADDR:PORT (empty: off)" },
	{ "wkd_domains", T_STR, "", 0, 0, F(wkd_domains), NULL,
	  "domains whose keys WKD serves, space separated (empty: all in the store)" },
	{ "wkd_submission_address", T_STR, "", 0, 0, F(wkd_submission_address), NULL,
	  "address published as WKD submission-address (empty: none)" },
	{ "wkd_tls_cert_file", T_STR, "", 0, 0, F(wkd_tls_cert_file), NULL,
	  "PEM certificate for HTTPS on wkd_listen (empty: plain HTTP, loopback only)" },
	{ "wkd_tls_key_file", T_STR, "", 0, 0, F(wkd_tls_key_file), NULL,
	  "PEM private key for wkd_tls_cert_file" },
	{ "policy_file", T_STR, "", 0, 0, F(policy_file), NULL,
	  "outbound policy rules, first match wins (doc/policy.md; empty: policy_default for all)" },
	{ "policy_default", T_ENUM, "pass", 0, 0, F(policy_default),
	  "e2e|domain|tls-only|portal|pass|reject", "treatment when no policy rule matches" },
	{ "policy_missing_key", T_ENUM, "reject", 0, 0, F(policy_missing_key), "reject|defer",
	  "policy needs a key that is missing/expired/revoked: reject (5.7.1) or defer (4.7.1)" },
	{ "policy_key_preference", T_ENUM, "pgp", 0, 0, F(policy_key_preference), "pgp|smime",
	  "the kind of key used when a recipient has both" },
	{ "policy_sign", T_BOOL, "no", 0, 0, F(policy_sign), NULL,
	  "sign outbound mail with the sender's key when the store holds it (rules: sign=)" },
	{ "authserv_id", T_STR, "", 0, 0, F(authserv_id), NULL,
	  "authserv-id of our Authentication-Results headers (empty: hostname)" },
	{ "smime_trust_anchors", T_STR, "", 0, 0, F(smime_trust_anchors), NULL,
	  "PEM CA certificate files trusted for S/MIME signatures, space separated" },
	{ "smime_revocation", T_ENUM, "off", 0, 0, F(smime_revocation), "off|crl|require",
	  "S/MIME signer revocation: off, crl (check the CRLs held), require (a CRL for every certificate)" },
	{ "smime_crl_files", T_STR, "", 0, 0, F(smime_crl_files), NULL,
	  "PEM or DER CRL files for smime_revocation, space separated" },
	{ "smime_crl_dir", T_STR, "", 0, 0, F(smime_crl_dir), NULL,
	  "directory whose files are read as CRLs for smime_revocation (empty: none)" },
	{ "inbound_verify", T_BOOL, "yes", 0, 0, F(inbound_verify), NULL,
	  "verify signed mail on the inbound listeners and add Authentication-Results" },
	{ "policy_key_cache_ttl", T_TIME, "60s", 0, 3600, F(policy_key_cache_ttl), NULL,
	  "outbound: seconds a recipient's or sender's key found in the store is reused (0: look up every time)" },
	{ "content_filter_cmd", T_STR, "", 0, 0, F(content_filter_cmd), NULL,
	  "outbound: command (sh -c) fed the plaintext on stdin; exit 0 accept, 1 reject 5.7.1, else 4.7.1 (empty: off)" },
	{ "content_filter_timeout", T_TIME, "60s", 1, 3600, F(content_filter_timeout), NULL,
	  "time budget of one content_filter_cmd run; past it 451 4.7.1" },
	{ "content_filter_rewrite", T_BOOL, "no", 0, 0, F(content_filter_rewrite), NULL,
	  "a filter that exits 0 with output replaces the message with that output" },
	{ "gateway_address", T_STR, "", 0, 0, F(gateway_address), NULL,
	  "address whose stored OpenPGP keys decrypt mail encrypted to the gateway on submission_listen (empty: off)" },
	{ "gateway_smime_key", T_STR, "", 0, 0, F(gateway_smime_key), NULL,
	  "PEM private key + certificate (0600) decrypting S/MIME mail encrypted to the gateway (empty: off)" },
	{ "submission_require_signature", T_BOOL, "yes", 0, 0, F(submission_require_signature), NULL,
	  "decrypt for the gateway only when signed inside by a key the store holds for the envelope sender" },
	{ "submission_allow_cbc", T_BOOL, "no", 0, 0, F(submission_allow_cbc), NULL,
	  "accept S/MIME EnvelopedData (AES-CBC, no integrity) encrypted to the gateway" },
	{ "deliver_maildir", T_STR, "", 0, 0, F(deliver_maildir), NULL,
	  "deliver_listen writes sealed mail into this Maildir itself (%u address, %n local part, %d domain); empty: hand it to deliver_lmtp" },
	{ "deliver_no_key", T_ENUM, "plain", 0, 0, F(deliver_no_key), "plain|refuse|defer",
	  "a recipient with no usable key: store in the clear, refuse (550 5.7.1) or defer (450 4.7.1)" },
	{ "deliver_format", T_ENUM, "auto", 0, 0, F(deliver_format), "auto|pgp|smime",
	  "format of sealed copies: auto follows the recipient's key (OpenPGP first)" },
	{ "deliver_user_formats", T_STR, "", 0, 0, F(deliver_user_formats), NULL,
	  "per-user format preference, space separated ADDR=pgp|smime (overrides deliver_format)" },
	{ "deliver_subject", T_STR, "...", 0, 0, F(deliver_subject), NULL,
	  "outer Subject of sealed copies (the real one is protected inside)" },
	{ "deliver_key_cache_ttl", T_TIME, "60s", 0, 3600, F(deliver_key_cache_ttl), NULL,
	  "reuse a recipient's key found in the store for this long (0: look it up for every message)" },
	{ "recovery_key", T_STR, "", 0, 0, F(recovery_key), NULL,
	  "OpenPGP public key file of the escrow: an extra recipient of every copy sealed at rest (doc/at-rest.md; empty: none)" },
	{ "rekey_resync_cmd", T_STR, "", 0, 0, F(rekey_resync_cmd), NULL,
	  "shell command run after rekey/seal-mailbox changed a Maildir, $1 = the user, $2 = the Maildir (e.g. doveadm force-resync -u \"$1\" '*')" },
	{ "lookup_order", T_STR, "", 0, 0, F(lookup_order), NULL,
	  "remote key sources asked when the store has no usable key, in order: wkd ldap dns "
	  "(empty: none; each look-up tells a directory who gets mail)" },
	{ "lookup_budget", T_TIME, "10s", 1, 600, F(lookup_budget), NULL,
	  "time allowed to find one address's key, all sources together" },
	{ "lookup_cache_ttl", T_TIME, "1d", 1, 30 * 86400, F(lookup_cache_ttl), NULL,
	  "how long a fetched key is used before it is fetched again" },
	{ "lookup_negative_ttl", T_TIME, "1h", 1, 7 * 86400, F(lookup_negative_ttl), NULL,
	  "how long \"no key found\" is remembered" },
	{ "key_change", T_ENUM, "accept", 0, 0, F(key_change), "accept|hold",
	  "a different key for a known address: use it (logged) or hold it for approval" },
	{ "autocrypt_authserv_id", T_STR, "", 0, 0, F(autocrypt_authserv_id), NULL,
	  "harvest Autocrypt keys from inbound mail whose DKIM pass this verifier's "
	  "Authentication-Results report (empty: off; never our own authserv-id)" },
	{ "smime_cert_days", T_UINT, "730", 1, 3650, F(smime_cert_days), NULL,
	  "validity of S/MIME certificates made by `sealgate key generate --smime`" },
	{ "wkd_allow_hosts", T_STR, "", 0, 0, F(wkd_allow_hosts), NULL,
	  "tests only: WKD hosts allowed on private addresses; HOST=IP:PORT fetches plain HTTP there" },
	{ "domain_names", T_STR, "", 0, 0, F(domain_names), NULL,
	  "domains whose mail this gateway signs and receives domain-sealed (doc/domain.md; empty: off)" },
	{ "domain_key_lifetime", T_TIME, "1d", 3600, 30 * 86400, F(domain_key_lifetime), NULL,
	  "validity window of each short-lived domain encryption key" },
	{ "domain_keys_ahead", T_UINT, "7", 1, 90, F(domain_keys_ahead), NULL,
	  "short-lived keys published ahead of time" },
	{ "domain_key_grace", T_TIME, "5d", 0, 365 * 86400, F(domain_key_grace), NULL,
	  "keep a short-lived private key this long after its window (>= the senders' queue lifetime, 5d min)" },
	{ "domain_peer_trust", T_ENUM, "pin-first-use", 0, 0, F(domain_peer_trust),
	  "pin-first-use|configured",
	  "trust in a peer domain's signing key: pinned at first use, or only domain_peers" },
	{ "domain_peers", T_STR, "", 0, 0, F(domain_peers), NULL,
	  "peer domains' signing-certificate fingerprints: DOMAIN=SHA256HEX ..." },
	{ "ldap_uri", T_STR, "", 0, 0, F(ldap_uri), NULL,
	  "directory for key look-ups, ldap://HOST:PORT or ldaps:// (empty: off)" },
	{ "ldap_base", T_STR, "", 0, 0, F(ldap_base), NULL, "search base DN" },
	{ "ldap_filter", T_STR, "(mail=%s)", 0, 0, F(ldap_filter), NULL,
	  "search filter; %s is the address (RFC 4515 escaped)" },
	{ "ldap_attributes", T_STR, "userCertificate;binary pgpKey", 0, 0, F(ldap_attributes), NULL,
	  "attributes holding certificates (DER) or OpenPGP keys" },
	{ "dns_trust_anchor_file", T_STR, "/usr/share/dns/root.key", 0, 0, F(dns_trust_anchor_file),
	  NULL, "DNSSEC root trust anchor for OPENPGPKEY/SMIMEA look-ups" },
	{ "dns_resolver", T_STR, "", 0, 0, F(dns_resolver), NULL,
	  "resolver to forward to (empty: /etc/resolv.conf); answers are validated here" },
};

#define N_SETTINGS (sizeof(settings) / sizeof(settings[0]))

static void *field(struct sg_config *cfg, const struct setting *s)
{
	return (char *)cfg + s->offset;
}

static const struct setting *find_setting(const char *name)
{
	for (size_t i = 0; i < N_SETTINGS; i++)
		if (strcmp(settings[i].name, name) == 0)
			return &settings[i];
	return NULL;
}

/* A number with an optional unit suffix from units[] ("64M", "5m"). */
struct unit {
	char suffix;
	unsigned long long mult;
	bool ci;          /* suffix matches in either case */
};

static const struct unit size_units[] = {
	{ 'k', 1024ULL, true }, { 'm', MiB, true }, { 'g', 1024ULL * MiB, true }, { 0, 0, false },
};
static const struct unit time_units[] = {
	{ 's', 1, false }, { 'm', 60, false }, { 'h', 3600, false }, { 'd', 86400, false }, { 0, 0, false },
};

static int parse_scaled(const char *v, const struct unit *units, bool allow_b, unsigned long long *r)
{
	char *end;
	errno = 0;
	if (!isdigit((unsigned char)v[0]))
		return -1;
	unsigned long long n = strtoull(v, &end, 10);
	if (errno != 0)
		return -1;
	unsigned long long mult = 1;
	if (*end != '\0') {
		const struct unit *u = units;
		for (; u->suffix != 0; u++)
			if (*end == u->suffix || (u->ci && tolower((unsigned char)*end) == u->suffix))
				break;
		if (u->suffix == 0)
			return -1;
		mult = u->mult;
		/* sizes may say "2MB" as well as "2M" */
		if (end[1] != '\0' && !(allow_b && toupper((unsigned char)end[1]) == 'B' && end[2] == '\0'))
			return -1;
	}
	if (n > ULLONG_MAX / mult)
		return -1;
	*r = n * mult;
	return 1;
}

/* "64M", "10k", "1048576" -> bytes. */
static int parse_size(const char *v, unsigned long long *r)
{
	return parse_scaled(v, size_units, true, r);
}

/* "300", "300s", "5m", "1h" -> seconds. */
static int parse_time(const char *v, unsigned long long *r)
{
	return parse_scaled(v, time_units, false, r);
}

static int parse_bool(const char *v, bool *r)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*r = true;
			return 1;
		}
		if (strcasecmp(v, no[i]) == 0) {
			*r = false;
			return 1;
		}
	}
	return -1;
}

static int enum_ok(const char *values, const char *v)
{
	size_t vlen = strlen(v);
	for (const char *p = values; *p != '\0';) {
		size_t n = strcspn(p, "|");
		if (n == vlen && strncmp(p, v, n) == 0)
			return 1;
		p += n + (p[n] == '|');
	}
	return 0;
}

static int set_value(struct sg_config *cfg, const struct setting *s, const char *v,
		     struct sg_error *err)
{
	unsigned long long n = 0;
	char *host = NULL, *port = NULL;

	switch (s->type) {
	case T_HOSTPORT:
		if (*v != '\0') {
			int r = sg_parse_hostport(v, &host, &port, err);
			free(host);
			free(port);
			if (r < 0) {
				sg_error_prefix(err, "%s", s->name);
				return -1;
			}
		}
		/* fall through */
	case T_STR:
	case T_ENUM:
		if (s->type == T_ENUM && !enum_ok(s->values, v)) {
			sg_error_set(err, "%s: '%s' is not one of %s", s->name, v, s->values);
			return -1;
		}
		free(*(char **)field(cfg, s));
		*(char **)field(cfg, s) = sg_strdup(v);
		return 1;
	case T_BOOL:
		if (parse_bool(v, (bool *)field(cfg, s)) < 0) {
			sg_error_set(err, "%s: '%s' is not yes or no", s->name, v);
			return -1;
		}
		return 1;
	case T_UINT:
	case T_SIZE:
	case T_TIME: {
		int r;
		if (s->type == T_SIZE)
			r = parse_size(v, &n);
		else if (s->type == T_TIME)
			r = parse_time(v, &n);
		else
			r = parse_size(v, &n) < 0 || strpbrk(v, "kKmMgG") != NULL ? -1 : 1;
		if (r < 0) {
			sg_error_set(err, "%s: '%s' is not a valid %s", s->name, v,
				     s->type == T_SIZE ? "size (e.g. 64M)" :
				     s->type == T_TIME ? "duration (e.g. 300s, 5m)" : "number");
			return -1;
		}
		if (n < s->min || n > s->max) {
			sg_error_set(err, "%s: %s is out of range (%llu..%llu)", s->name, v, s->min,
				     s->max);
			return -1;
		}
		if (s->type == T_SIZE)
			*(size_t *)field(cfg, s) = (size_t)n;
		else
			*(unsigned *)field(cfg, s) = (unsigned)n;
		return 1;
	}
	}
	sg_panic("config: unknown setting type %d", (int)s->type);
}

void sg_config_defaults(struct sg_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < N_SETTINGS; i++) {
		const struct setting *s = &settings[i];
		if (s->def == NULL)
			continue;
		struct sg_error err = SG_ERROR_INIT;
		if (set_value(cfg, s, s->def, &err) < 0)
			sg_panic("config default for %s: %s", s->name, sg_error_msg(&err));
	}
	char host[256];
	if (gethostname(host, sizeof(host)) != 0 || host[0] == '\0')
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	cfg->hostname = sg_strdup(host);
}

int sg_config_set(struct sg_config *cfg, const char *key, const char *value, struct sg_error *err)
{
	const struct setting *s = find_setting(key);
	if (s == NULL) {
		sg_error_set(err, "unknown setting '%s'", key);
		return -1;
	}
	return set_value(cfg, s, value, err);
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	char *e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

int sg_config_parse(struct sg_config *cfg, const char *name, const char *text, size_t len,
		    struct sg_error *err)
{
	unsigned char seen[N_SETTINGS] = { 0 };
	unsigned lineno = 0;
	int ret = -1;
	const char *p = text, *end = text + len;

	if (memchr(text, '\0', len) != NULL) {
		sg_error_set(err, "%s: contains a NUL byte", name);
		return -1;
	}
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		char *line = sg_strndup(p, n);
		/* A '#' at the start or after white space starts a comment, so
		 * "listen = 127.0.0.1:10025   # SMTP filter" works as admins
		 * expect; no value needs " #". */
		for (char *h = line; (h = strchr(h, '#')) != NULL; h++) {
			if (h == line || h[-1] == ' ' || h[-1] == '\t') {
				*h = '\0';
				break;
			}
		}
		char *l = trim(line);
		lineno++;
		p += n + (nl != NULL);
		if (*l == '\0' || *l == '#') {
			free(line);
			continue;
		}
		char *eq = strchr(l, '=');
		if (eq == NULL) {
			sg_error_set(err, "%s:%u: expected 'key = value'", name, lineno);
			free(line);
			goto out;
		}
		*eq = '\0';
		char *key = trim(l), *value = trim(eq + 1);
		const struct setting *s = find_setting(key);
		if (s == NULL) {
			sg_error_set(err, "%s:%u: unknown setting '%s'", name, lineno, key);
			free(line);
			goto out;
		}
		if (seen[s - settings]++) {
			sg_error_set(err, "%s:%u: '%s' is set twice", name, lineno, key);
			free(line);
			goto out;
		}
		if (set_value(cfg, s, value, err) < 0) {
			sg_error_prefix(err, "%s:%u", name, lineno);
			free(line);
			goto out;
		}
		free(line);
	}
	ret = 1;
out:
	return ret;
}

int sg_config_load(struct sg_config *cfg, const char *path, struct sg_error *err)
{
	FILE *f = fopen(path, "r");
	struct sg_buf b;
	char chunk[4096];
	size_t n;
	int ret = -1;

	if (f == NULL) {
		sg_error_set(err, "%s: %s", path, strerror(errno));
		return -1;
	}
	sg_buf_init(&b, 1 * MiB);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (!sg_buf_append(&b, chunk, n)) {
			sg_error_set(err, "%s: larger than 1 MiB", path);
			goto out;
		}
	}
	if (ferror(f)) {
		sg_error_set(err, "%s: read error", path);
		goto out;
	}
	ret = sg_config_parse(cfg, path, sg_buf_str(&b), b.len, err);
out:
	fclose(f);
	sg_buf_free(&b);
	return ret;
}

int sg_config_check(const struct sg_config *cfg, struct sg_error *err)
{
	if (cfg->listen[0] == '\0' && cfg->lmtp_listen[0] == '\0' &&
	    cfg->submission_listen[0] == '\0' && cfg->deliver_listen[0] == '\0') {
		sg_error_set(err, "no listener is set (listen, lmtp_listen, submission_listen, deliver_listen): nothing to serve");
		return -1;
	}
	if (cfg->relay[0] == '\0') {
		sg_error_set(err, "relay: a next hop is required");
		return -1;
	}
	if ((cfg->tls_cert_file[0] == '\0') != (cfg->tls_key_file[0] == '\0')) {
		sg_error_set(err, "tls_cert_file and tls_key_file must be set together");
		return -1;
	}
	if (cfg->transaction_time_budget <= cfg->relay_data_done_timeout) {
		sg_error_set(err, "transaction_time_budget (%us) must exceed relay_data_done_timeout (%us)",
			     cfg->transaction_time_budget, cfg->relay_data_done_timeout);
		return -1;
	}
	if (sg_config_check_domain(cfg, err) < 0)
		return -1;
	if (cfg->hostname[0] == '\0' || strpbrk(cfg->hostname, " \t<>()[];,") != NULL) {
		sg_error_set(err, "hostname: '%s' is not a valid host name", cfg->hostname);
		return -1;
	}
	return 1;
}

int sg_config_check_domain(const struct sg_config *cfg, struct sg_error *err)
{
	/* Postfix's maximal_queue_lifetime is 5d by default: mail a peer
	 * queued that long must still find our private key. */
	if (cfg->domain_key_grace < SG_DOMAIN_MIN_GRACE) {
		sg_error_set(err, "domain_key_grace: %us is shorter than %us (5d, Postfix's default "
			     "maximal_queue_lifetime): delayed mail would become unreadable",
			     cfg->domain_key_grace, SG_DOMAIN_MIN_GRACE);
		return -1;
	}
	return 1;
}

char *sg_config_dump(const struct sg_config *cfg)
{
	struct sg_buf b;
	sg_buf_init(&b, SIZE_MAX / 2);
	for (size_t i = 0; i < N_SETTINGS; i++) {
		const struct setting *s = &settings[i];
		const void *f = (const char *)cfg + s->offset;
		int ok = 1;
		ok &= sg_buf_printf(&b, "# %s\n", s->help);
		switch (s->type) {
		case T_STR: case T_ENUM: case T_HOSTPORT:
			ok &= sg_buf_printf(&b, "%s = %s\n\n", s->name, *(char *const *)f);
			break;
		case T_BOOL:
			ok &= sg_buf_printf(&b, "%s = %s\n\n", s->name, *(const bool *)f ? "yes" : "no");
			break;
		case T_SIZE:
			ok &= sg_buf_printf(&b, "%s = %zu\n\n", s->name, *(const size_t *)f);
			break;
		case T_TIME:
			ok &= sg_buf_printf(&b, "%s = %us\n\n", s->name, *(const unsigned *)f);
			break;
		case T_UINT:
			ok &= sg_buf_printf(&b, "%s = %u\n\n", s->name, *(const unsigned *)f);
			break;
		}
		if (!ok)
			sg_panic("config dump overflow");
	}
	return (char *)sg_buf_steal(&b, NULL);
}

void sg_config_clear(struct sg_config *cfg)
{
	for (size_t i = 0; i < N_SETTINGS; i++) {
		const struct setting *s = &settings[i];
		if (s->type == T_STR || s->type == T_ENUM || s->type == T_HOSTPORT) {
			free(*(char **)field(cfg, s));
			*(char **)field(cfg, s) = NULL;
		}
	}
	free(cfg->hostname);
	cfg->hostname = NULL;
}
