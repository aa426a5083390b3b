/* Key source: Web Key Directory look-ups (draft-koch-openpgp-webkey-service
 * 3.1: advanced, then direct method) over libcurl, HTTPS to public addresses only. */
#include "keys/remote.h"
#include "config/config.h"
#include "keys/cache.h"
#include "keys/wkd.h"
#include "util/buf.h"
#include "util/mem.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct wkd_ctx {
	char *allow;             /* wkd_allow_hosts, copied */
};

/* One request's state for the callbacks. */
struct wkd_req {
	struct sg_buf body;
	bool allow_private;      /* host on the test allow-list */
	bool refused_addr;       /* a connection was refused by the address check */
};

/* --- Address classes (RFC 6890 special-purpose registries) --- */

static int v4_public(const unsigned char *a)
{
	uint32_t x = ((uint32_t)a[0] << 24) | ((uint32_t)a[1] << 16) | ((uint32_t)a[2] << 8) | a[3];
	static const struct { uint32_t net, mask; } blocked[] = {
		{ 0x00000000, 0xff000000 },  /* 0/8 "this network" */
		{ 0x0a000000, 0xff000000 },  /* 10/8 private */
		{ 0x64400000, 0xffc00000 },  /* 100.64/10 CGNAT */
		{ 0x7f000000, 0xff000000 },  /* 127/8 loopback */
		{ 0xa9fe0000, 0xffff0000 },  /* 169.254/16 link-local (cloud metadata) */
		{ 0xac100000, 0xfff00000 },  /* 172.16/12 private */
		{ 0xc0000000, 0xffffff00 },  /* 192.0.0/24 protocol assignments */
		{ 0xc0a80000, 0xffff0000 },  /* 192.168/16 private */
		{ 0xc6120000, 0xfffe0000 },  /* 198.18/15 benchmarking */
		{ 0xe0000000, 0xe0000000 },  /* 224/3 multicast, reserved, broadcast */
	};
	for (size_t i = 0; i < sizeof(blocked) / sizeof(blocked[0]); i++)
		if ((x & blocked[i].mask) == blocked[i].net)
			return 0;
	return 1;
}

static int v6_public(const unsigned char *a)
{
	static const unsigned char v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	static const unsigned char zero[16] = { 0 };
	if (memcmp(a, v4mapped, 12) == 0)
		return v4_public(a + 12);
	if (memcmp(a, zero, 15) == 0)
		return 0;                            /* :: and ::1 */
	if ((a[0] & 0xfe) == 0xfc)                   /* fc00::/7 unique local */
		return 0;
	if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)   /* fe80::/10 link-local */
		return 0;
	if (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0)   /* fec0::/10 site-local */
		return 0;
	if (a[0] == 0xff)                            /* multicast */
		return 0;
	if (a[0] == 0x00 && a[1] == 0x64 && a[2] == 0xff && a[3] == 0x9b)
		return v4_public(a + 12);            /* 64:ff9b::/96 NAT64 */
	if (a[0] == 0x20 && a[1] == 0x02)            /* 2002::/16 6to4 */
		return v4_public(a + 2);
	return 1;
}

int sg_keys_addr_is_public(const char *ip)
{
	unsigned char a[16];
	if (inet_pton(AF_INET, ip, a) == 1)
		return v4_public(a);
	if (inet_pton(AF_INET6, ip, a) == 1)
		return v6_public(a);
	return 0;
}

static int sockaddr_public(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return v4_public((const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr);
	if (sa->sa_family == AF_INET6)
		return v6_public(((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr);
	return 0;
}

int sg_keys_allow_lookup(const char *list, const char *host, char **target_r)
{
	char *copy = sg_strdup(list != NULL ? list : ""), *save = NULL;
	size_t hl = strlen(host);
	int r = 0;

	*target_r = NULL;
	for (char *t = strtok_r(copy, " \t,", &save); t != NULL; t = strtok_r(NULL, " \t,", &save)) {
		if (strncasecmp(t, host, hl) != 0 || (t[hl] != '\0' && t[hl] != '='))
			continue;
		if (t[hl] == '=' && t[hl + 1] != '\0')
			*target_r = sg_strdup(t + hl + 1);
		r = 1;
		break;
	}
	free(copy);
	return r;
}

/* --- libcurl plumbing --- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct wkd_req *req = arg;
	/* Past the cap the transfer is aborted (size cap against flooding). */
	return sg_buf_append(&req->body, data, size * nmemb) ? size * nmemb : 0;
}

/* The address check sits where the socket is opened, on the very address
 * curl is about to connect to: resolving first and connecting later could
 * be raced by DNS rebinding. */
static curl_socket_t on_open(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct wkd_req *req = arg;
	if (!req->allow_private && !sockaddr_public(&a->addr)) {
		req->refused_addr = true;
		return CURL_SOCKET_BAD;
	}
	return socket(a->family, a->socktype, a->protocol);
}

/* GET one URL. 1 body (200), 0 not there (404, 410), -1 error. host_missing_r
 * is set when the host name did not resolve (the advanced method's signal
 * to fall back, draft 3.1). */
static int get(struct wkd_ctx *ctx, const char *host, const char *path, unsigned budget_ms,
	       struct sg_buf *out, bool *host_missing_r, struct sg_error *err)
{
	struct wkd_req req = { .allow_private = false };
	struct curl_slist *connect_to = NULL;
	char *target = NULL, *url = NULL, *ct = NULL;
	long status = 0;
	int r = -1;
	CURL *h = curl_easy_init();

	*host_missing_r = false;
	sg_buf_init(&req.body, SG_KEYS_MAX_RESPONSE);
	if (h == NULL) {
		sg_error_set(err, "curl_easy_init failed");
		goto out;
	}
	req.allow_private = sg_keys_allow_lookup(ctx->allow, host, &target) == 1;
	if (target != NULL) {
		/* Test allow-list: plain HTTP to a fixed loopback address. */
		url = sg_asprintf("http://%s%s", host, path);
		ct = sg_asprintf("%s:80:%s", host, target);
		connect_to = curl_slist_append(NULL, ct);
		curl_easy_setopt(h, CURLOPT_CONNECT_TO, connect_to);
		curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http");
	} else {
		url = sg_asprintf("https://%s%s", host, path);
		curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(h, CURLOPT_MAXREDIRS, 3L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROXY, "");          /* never an environment proxy */
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)budget_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)budget_ms);
	curl_easy_setopt(h, CURLOPT_MAXFILESIZE, (long)SG_KEYS_MAX_RESPONSE);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &req);
	curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, on_open);
	curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, &req);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "sealgate-wkd");
	CURLcode c = curl_easy_perform(h);
	if (c == CURLE_COULDNT_RESOLVE_HOST) {
		*host_missing_r = true;
		sg_error_set(err, "%s: host not found", host);
		goto out;
	}
	if (req.refused_addr) {
		sg_error_set(err, "%s: refused: resolves to a private, loopback or link-local address",
			     host);
		goto out;
	}
	if (c == CURLE_WRITE_ERROR || c == CURLE_FILESIZE_EXCEEDED) {
		sg_error_set(err, "%s: answer larger than %d bytes", url, SG_KEYS_MAX_RESPONSE);
		goto out;
	}
	if (c != CURLE_OK) {
		sg_error_set(err, "%s: %s", url, curl_easy_strerror(c));
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	if (status == 404 || status == 410) {
		r = 0;
		goto out;
	}
	if (status != 200) {
		sg_error_set(err, "%s: HTTP status %ld", url, status);
		goto out;
	}
	*out = req.body;
	sg_buf_init(&req.body, SG_KEYS_MAX_RESPONSE);
	r = 1;
out:
	sg_buf_free(&req.body);
	curl_slist_free_all(connect_to);
	if (h != NULL)
		curl_easy_cleanup(h);
	free(target);
	free(url);
	free(ct);
	return r;
}

int sg_keys_https_get(const char *allow, const char *host, const char *path, unsigned budget_ms,
		      struct sg_buf *out, struct sg_error *err)
{
	struct wkd_ctx ctx = { .allow = (char *)(allow != NULL ? allow : "") };
	bool missing = false;

	pthread_once(&curl_once, curl_init_once);
	return get(&ctx, host, path, budget_ms, out, &missing, err);
}

static int wkd_fetch(void *arg, const char *addr, unsigned budget_ms, struct sg_keys_found **blobs_r,
		     size_t *n_r, struct sg_error *err)
{
	struct wkd_ctx *ctx = arg;
	char *hash = NULL, *domain = NULL, *local = NULL, *esc = NULL, *host = NULL, *path = NULL;
	struct sg_buf body;
	bool missing = false;
	int r = -1;
	CURL *h = curl_easy_init();

	sg_buf_init(&body, SG_KEYS_MAX_RESPONSE);
	if (h == NULL || sg_wkd_hash(addr, &hash, &domain, err) < 0)
		goto out;
	local = sg_strndup(addr, (size_t)(strrchr(addr, '@') - addr));
	esc = curl_easy_escape(h, local, 0);
	if (esc == NULL) {
		sg_error_set(err, "cannot escape local part");
		goto out;
	}
	/* Advanced method first (draft 3.1); the direct one only when the
	 * openpgpkey sub-domain does not exist. */
	int64_t deadline = sg_keys_now_ms() + budget_ms;
	host = sg_asprintf("openpgpkey.%s", domain);
	path = sg_asprintf("/.well-known/openpgpkey/%s/hu/%s?l=%s", domain, hash, esc);
	r = get(ctx, host, path, budget_ms, &body, &missing, err);
	if (r < 0 && missing) {
		int64_t left = deadline - sg_keys_now_ms();
		free(path);
		path = sg_asprintf("/.well-known/openpgpkey/hu/%s?l=%s", hash, esc);
		sg_error_clear(err);
		r = left > 0 ? get(ctx, domain, path, (unsigned)left, &body, &missing, err) : -1;
		if (left <= 0)
			sg_error_set(err, "time budget spent");
	}
	if (r == 1) {
		struct sg_keys_found *b = sg_calloc(1, sizeof(*b));
		b->kind = sg_strdup("pgp");
		b->data = sg_buf_steal(&body, &b->len);
		*blobs_r = b;
		*n_r = 1;
	}
out:
	if (esc != NULL)
		curl_free(esc);
	if (h != NULL)
		curl_easy_cleanup(h);
	sg_buf_free(&body);
	free(hash);
	free(domain);
	free(local);
	free(host);
	free(path);
	return r;
}

static void wkd_free(void *arg)
{
	struct wkd_ctx *ctx = arg;
	free(ctx->allow);
	free(ctx);
}

int sg_keys_source_wkd(const struct sg_config *cfg, struct sg_keys_source *src_r,
		       struct sg_error *err)
{
	struct wkd_ctx *ctx = sg_calloc(1, sizeof(*ctx));

	pthread_once(&curl_once, curl_init_once);
	ctx->allow = sg_strdup(cfg->wkd_allow_hosts != NULL ? cfg->wkd_allow_hosts : "");
	*src_r = (struct sg_keys_source){
		.name = "wkd", .trust = "wkd", .fetch = wkd_fetch, .free = wkd_free, .ctx = ctx,
	};
	return 1;
}
