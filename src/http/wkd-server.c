/* WKD server on libmicrohttpd: GET/HEAD only, strict paths (keys/wkd.c),
 * binary key bodies, 404 for everything unknown. */
#include "http/wkd-server.h"
#include "domain/domain.h"
#include "keys/wkd.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/hostport.h"
#include "util/log.h"
#include "util/mem.h"
#include "util/secret.h"

#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define MAX_BODY (4 * 1024 * 1024)   /* all keys for one hash */
#define MAX_PEM (1024 * 1024)

struct sg_wkd_server {
	struct MHD_Daemon *mhd;
	struct sg_store *store;
	pthread_mutex_t lock;        /* the store connection is not shared */
	char *domains;
	char *submission;
	char *tls_cert;
	char *tls_key;
	unsigned port;
};

/* Is domain one of the space/comma separated names in list? */
static bool domain_served(const char *list, const char *domain)
{
	size_t dlen = strlen(domain);
	if (list == NULL || *list == '\0')
		return true;
	for (const char *p = list; *p != '\0';) {
		p += strspn(p, " ,\t");
		size_t n = strcspn(p, " ,\t");
		if (n == dlen && strncasecmp(p, domain, n) == 0)
			return true;
		p += n;
	}
	return false;
}

/* All keys under the hash, concatenated (§3.1 allows several). The direct
 * layout names no domain: it serves the keys of the served domains. */
static int key_body(struct sg_store *store, const char *domains, const struct sg_wkd_req *req,
		    struct sg_buf *body, struct sg_error *err)
{
	struct sg_store_key *keys = NULL;
	size_t n = 0;
	int found = 0;
	int r = sg_store_key_by_wkd(store, req->domain, req->hash, &keys, &n, err);
	for (size_t i = 0; r > 0 && i < n; i++) {
		if (!domain_served(domains, keys[i].domain))
			continue;
		if (!sg_buf_append(body, keys[i].data, keys[i].len)) {
			sg_error_set(err, "WKD response over %d bytes", MAX_BODY);
			r = -1;
		}
		found = 1;
	}
	sg_store_keys_free(&keys, n);
	return r < 0 ? -1 : found;
}

int sg_wkd_respond(struct sg_store *store, const char *domains, const char *submission,
		   const char *method, const char *path, size_t path_len, unsigned *status_r,
		   unsigned char **body_r, size_t *len_r, const char **type_r, struct sg_error *err)
{
	struct sg_wkd_req req;
	struct sg_buf body;
	int ret = 1;

	*status_r = 404;
	*body_r = NULL;
	*len_r = 0;
	*type_r = "text/plain";
	sg_buf_init(&body, MAX_BODY);
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		*status_r = 405;
		return 1;
	}
	/* the domain-key bundle ([domain], doc/domain.md) */
	int dr = sg_domain_respond(store, path, path_len, status_r, body_r, len_r, err);
	if (dr != 0) {
		*type_r = "application/pem-certificate-chain"; /* RFC 8555 s9.1 */
		return dr;
	}
	if (sg_wkd_parse_path(path, path_len, &req) <= 0)
		return 1;
	if (req.domain != NULL && !domain_served(domains, req.domain))
		goto out;
	switch (req.type) {
	case SG_WKD_REQ_POLICY:
		*status_r = 200;
		break;
	case SG_WKD_REQ_SUBMISSION_ADDRESS:
		if (submission == NULL || *submission == '\0')
			goto out;
		if (!sg_buf_printf(&body, "%s\n", submission))
			goto out;
		*status_r = 200;
		break;
	case SG_WKD_REQ_KEY:
		ret = key_body(store, domains, &req, &body, err);
		if (ret < 0)
			goto out;
		if (ret > 0) {
			*status_r = 200;
			*type_r = "application/octet-stream";
		}
		ret = 1;
		break;
	}
out:
	sg_wkd_req_clear(&req);
	if (*status_r == 200)
		*body_r = sg_buf_steal(&body, len_r);
	sg_buf_free(&body);
	return ret;
}

/* Leave the URL as it came: WKD paths need no escapes, so a '%' is
 * refused by the parser instead of being decoded into "..", "/" or NUL. */
static size_t no_unescape(void *cls, struct MHD_Connection *c, char *s)
{
	return strlen(s);
}

static enum MHD_Result queue(struct MHD_Connection *conn, unsigned status, unsigned char *body,
			     size_t len, const char *type)
{
	static const char *const reasons[] = { [0] = "not found\n", [1] = "method not allowed\n",
					       [2] = "internal error\n" };
	struct MHD_Response *resp;
	if (status == 200) {
		resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
		body = NULL;
	} else {
		const char *text = reasons[status == 405 ? 1 : status == 500 ? 2 : 0];
		resp = MHD_create_response_from_buffer(strlen(text), (void *)text,
						       MHD_RESPMEM_PERSISTENT);
	}
	free(body);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	/* draft §3.1: allow browser-based clients */
	MHD_add_response_header(resp, "Access-Control-Allow-Origin", "*");
	if (status == 405)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	enum MHD_Result r = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return r;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
			      const char *method, const char *version, const char *upload_data,
			      size_t *upload_data_size, void **con_cls)
{
	struct sg_wkd_server *srv = cls;
	struct sg_error err = SG_ERROR_INIT;
	unsigned status;
	unsigned char *body = NULL;
	size_t len = 0;
	const char *type;

	/* A request body is never wanted: answer on the first call. */
	if (*upload_data_size != 0) {
		*upload_data_size = 0;
		return MHD_YES;
	}
	pthread_mutex_lock(&srv->lock);
	int r = sg_wkd_respond(srv->store, srv->domains, srv->submission, method, url,
			       strlen(url), &status, &body, &len, &type, &err);
	pthread_mutex_unlock(&srv->lock);
	if (r < 0) {
		sg_log_error("wkd: %s: %s", url, sg_error_msg(&err));
		status = 500;
	}
	sg_error_clear(&err);
	return queue(conn, status, body, len, type);
}

static char *read_pem(const char *path, struct sg_error *err)
{
	FILE *f = fopen(path, "re");
	struct sg_buf b;
	char chunk[4096];
	size_t n;

	if (f == NULL) {
		sg_error_set(err, "%s: %s", path, strerror(errno));
		return NULL;
	}
	sg_buf_init(&b, MAX_PEM);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (!sg_buf_append(&b, chunk, n)) {
			sg_error_set(err, "%s: larger than %d bytes", path, MAX_PEM);
			fclose(f);
			sg_buf_free_secret(&b);
			return NULL;
		}
	fclose(f);
	size_t len;
	return (char *)sg_buf_steal(&b, &len);
}

static int resolve(const char *listen, struct sockaddr_storage *ss, struct sg_error *err)
{
	char *host = NULL, *port = NULL;
	struct addrinfo hints = { .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
				  .ai_socktype = SOCK_STREAM };
	struct addrinfo *ai = NULL;
	int ret = -1;

	if (sg_parse_hostport(listen, &host, &port, err) < 0)
		goto out;
	int rc = getaddrinfo(host, port, &hints, &ai);
	if (rc != 0) {
		sg_error_set(err, "%s: %s (a numeric address is needed)", listen, gai_strerror(rc));
		goto out;
	}
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	ret = 1;
out:
	if (ai != NULL)
		freeaddrinfo(ai);
	free(host);
	free(port);
	return ret;
}

int sg_wkd_server_start(const struct sg_wkd_server_config *cfg, struct sg_store *store,
			struct sg_wkd_server **srv_r, struct sg_error *err)
{
	struct sg_wkd_server *srv = sg_calloc(1, sizeof(*srv));
	struct sockaddr_storage ss = { 0 };
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
	bool tls = cfg->tls_cert_file != NULL && *cfg->tls_cert_file != '\0';

	*srv_r = NULL;
	pthread_mutex_init(&srv->lock, NULL);
	srv->store = store;
	srv->domains = sg_strdup(cfg->domains != NULL ? cfg->domains : "");
	srv->submission = sg_strdup(cfg->submission_address != NULL ? cfg->submission_address : "");
	if (resolve(cfg->listen, &ss, err) < 0)
		goto fail;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	if (tls) {
		/* Debian's libmicrohttpd does TLS with GnuTLS; ask, don't assume. */
		if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
			sg_error_set(err, "this libmicrohttpd has no TLS support");
			goto fail;
		}
		if ((srv->tls_cert = read_pem(cfg->tls_cert_file, err)) == NULL ||
		    (srv->tls_key = read_pem(cfg->tls_key_file != NULL ? cfg->tls_key_file : "",
					     err)) == NULL)
			goto fail;
		flags |= MHD_USE_TLS;
	}
	srv->mhd = MHD_start_daemon(
		flags, 0, NULL, NULL, handle, srv, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
		MHD_OPTION_UNESCAPE_CALLBACK, no_unescape, NULL, MHD_OPTION_CONNECTION_LIMIT,
		(unsigned)256, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(32 * 1024),
		tls ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, srv->tls_key,
		MHD_OPTION_HTTPS_MEM_CERT, srv->tls_cert, MHD_OPTION_END);
	if (srv->mhd == NULL) {
		sg_error_set(err, "cannot listen on %s%s", cfg->listen,
			     tls ? " (or bad TLS certificate/key)" : "");
		goto fail;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_BIND_PORT);
	srv->port = info != NULL ? info->port : 0;
	*srv_r = srv;
	return 1;
fail:
	sg_error_prefix(err, "wkd server");
	sg_wkd_server_stop(&srv);
	return -1;
}

unsigned sg_wkd_server_port(const struct sg_wkd_server *srv)
{
	return srv->port;
}

void sg_wkd_server_stop(struct sg_wkd_server **srvp)
{
	struct sg_wkd_server *srv = *srvp;
	if (srv == NULL)
		return;
	if (srv->mhd != NULL)
		MHD_stop_daemon(srv->mhd);
	pthread_mutex_destroy(&srv->lock);
	free(srv->domains);
	free(srv->submission);
	free(srv->tls_cert);
	if (srv->tls_key != NULL) {
		size_t n = strlen(srv->tls_key);
		sg_memwipe(srv->tls_key, n);
		free(srv->tls_key);
	}
	free(srv);
	*srvp = NULL;
}
