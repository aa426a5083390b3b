/* The Web Key Directory over HTTP(S) (libmicrohttpd): serves the same
 * paths as `key export-wkd`, straight from the key store. */
#ifndef SG_HTTP_WKD_SERVER_H
#define SG_HTTP_WKD_SERVER_H

#include <stddef.h>

#include "util/error.h"

struct sg_store;
struct sg_wkd_server;

struct sg_wkd_server_config {
	const char *listen;              /* "ADDR:PORT" (port 0: any) */
	const char *tls_cert_file;       /* PEM; NULL or "": plain HTTP */
	const char *tls_key_file;
	const char *submission_address;  /* NULL or "": 404 for submission-address */
	const char *domains;             /* "a.org b.org" served; NULL or "": any */
};

/* Start serving in libmicrohttpd's own thread. The config strings are
 * copied; store is borrowed and must outlive the server. */
int sg_wkd_server_start(const struct sg_wkd_server_config *cfg, struct sg_store *store,
			struct sg_wkd_server **srv_r, struct sg_error *err) SG_WARN_UNUSED;
/* The bound port (useful with port 0). */
unsigned sg_wkd_server_port(const struct sg_wkd_server *srv);
void sg_wkd_server_stop(struct sg_wkd_server **srv);

/* The response to one request, without the HTTP layer (also what the
 * fuzz target drives). *status_r is the HTTP status; *body_r (owned)
 * and *type_r (static) are set for 200. -1 only on a store error. */
int sg_wkd_respond(struct sg_store *store, const char *domains, const char *submission_address,
		   const char *method, const char *path, size_t path_len, unsigned *status_r,
		   unsigned char **body_r, size_t *len_r, const char **type_r, struct sg_error *err);

#endif
