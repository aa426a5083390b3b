/* libFuzzer target: WKD request handling on arbitrary request lines.
 * Input: "METHOD PATH" (the path may hold any byte, NUL included); the
 * parser and the responder over an empty in-memory store must never crash,
 * and anything accepted must be a well-formed WKD request. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/wkd-server.h"
#include "keys/wkd.h"
#include "store/store.h"
#include "util/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct sg_store *store;

static void check_req(const struct sg_wkd_req *req)
{
	if (req->domain != NULL && (strstr(req->domain, "..") != NULL || strchr(req->domain, '/')))
		sg_panic("accepted domain '%s'", req->domain);
	if (req->type == SG_WKD_REQ_KEY && (req->hash == NULL || strlen(req->hash) != SG_WKD_HASH_LEN))
		sg_panic("accepted a bad hash");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sg_error err = SG_ERROR_INIT;
	const uint8_t *sp = memchr(data, ' ', size);
	const char *method = "GET";
	char *m = NULL;
	const char *path = (const char *)data;
	size_t len = size;

	if (store == NULL && sg_store_open("sqlite::memory:", &store, &err) < 0)
		sg_panic("store: %s", sg_error_msg(&err));
	if (sp != NULL) {
		m = strndup((const char *)data, (size_t)(sp - data));
		method = m;
		path = (const char *)sp + 1;
		len = size - (size_t)(sp - data) - 1;
	}
	struct sg_wkd_req req;
	if (sg_wkd_parse_path(path, len, &req) > 0)
		check_req(&req);
	sg_wkd_req_clear(&req);
	/* The responder sees what libmicrohttpd passes: a C string. */
	char *cpath = strndup(path, len);
	unsigned status;
	unsigned char *body = NULL;
	size_t blen;
	const char *type;
	if (sg_wkd_respond(store, "", "", method, cpath, strlen(cpath), &status, &body, &blen, &type,
			   &err) > 0 && status != 200 && status != 404 && status != 405)
		sg_panic("status %u", status);
	free(body);
	free(cpath);
	free(m);
	sg_error_clear(&err);
	return 0;
}
