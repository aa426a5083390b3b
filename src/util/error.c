/* Error messages with layered context. */
#include "util/error.h"
#include "util/mem.h"

#include <stdio.h>
#include <stdlib.h>

void sg_error_set(struct sg_error *err, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return;
	free(err->msg);
	va_start(ap, fmt);
	err->msg = sg_vasprintf(fmt, ap);
	va_end(ap);
}

void sg_error_prefix(struct sg_error *err, const char *fmt, ...)
{
	va_list ap;
	char *ctx;

	if (err == NULL)
		return;
	va_start(ap, fmt);
	ctx = sg_vasprintf(fmt, ap);
	va_end(ap);
	if (err->msg == NULL) {
		err->msg = ctx;
		return;
	}
	char *joined = sg_asprintf("%s: %s", ctx, err->msg);
	free(ctx);
	free(err->msg);
	err->msg = joined;
}

const char *sg_error_msg(const struct sg_error *err)
{
	return err != NULL && err->msg != NULL ? err->msg : "unknown error";
}

void sg_error_clear(struct sg_error *err)
{
	if (err == NULL)
		return;
	free(err->msg);
	err->msg = NULL;
}
