/* The SMTP engine's API in one process: a client socket and the event loop
 * stepped by hand. Covers what the driver-based integration tests cannot
 * see: listen errors, abort() on server free, drained(), session counts. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "smtp/server.h"
#include "util/buf.h"
#include "util/spool.h"

struct fixture {
	struct event_base *base;
	struct sg_smtp_server *srv;
	int port;
	unsigned n_data, n_abort, n_drained;
	bool finish_now;
	struct sg_smtp_txn *txn;
	struct sg_buf last_body;
};

static void on_data(void *ctx, struct sg_smtp_txn *txn)
{
	struct fixture *f = ctx;
	struct sg_spool *sp = sg_smtp_txn_spool(txn);

	f->n_data++;
	f->txn = txn;
	sg_buf_reset(&f->last_body);
	assert_true(sg_buf_append(&f->last_body, sg_spool_data(sp), sg_spool_size(sp)));
	if (f->finish_now) {
		struct sg_reply r = { 250, (char *)"2.0.0 Ok: queued" };
		f->txn = NULL;
		sg_smtp_txn_finish(txn, &r, 1);
	}
}

static void on_abort(void *ctx, struct sg_smtp_txn *txn)
{
	struct fixture *f = ctx;

	assert_ptr_equal(txn, f->txn);
	f->n_abort++;
	f->txn = NULL;
}

static void on_drained(void *ctx)
{
	((struct fixture *)ctx)->n_drained++;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct sg_smtp_settings set = {
		.proto = SG_PROTO_SMTP, .hostname = "mx.test", .max_line = 1000,
		.max_message_size = 100000, .max_recipients = 10, .max_sessions = 10,
		.max_errors = 5, .command_timeout_s = 10, .data_timeout_s = 10,
		.spool_dir = "/tmp", .spool_mem_max = 1000,
	};
	struct sg_smtp_callbacks cb = { on_data, on_abort, NULL, on_drained };
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	struct sg_error err = SG_ERROR_INIT;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	f->port = ntohs(sin.sin_port);
	f->base = event_base_new();
	sg_buf_init(&f->last_body, 1 << 20);
	f->srv = sg_smtp_server_new(f->base, &set, &cb, f);
	assert_int_equal(sg_smtp_server_listen_fd(f->srv, fd, &err), 1);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	sg_smtp_server_free(&f->srv);
	assert_null(f->srv);
	event_base_free(f->base);
	sg_buf_free(&f->last_body);
	free(f);
	return 0;
}

static int client(struct fixture *f)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)f->port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);

	assert_true(fd >= 0);
	assert_true(connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 || errno == EINPROGRESS);
	return fd;
}

/* Step the loop until the client has received text containing want
 * (consumed from *acc), or 3 s passed. */
static void expect(struct fixture *f, int fd, struct sg_buf *acc, const char *want)
{
	struct timespec t0, now;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		const char *hit = strstr(sg_buf_str(acc), want);
		if (hit != NULL) {
			sg_buf_consume(acc, (size_t)(hit - sg_buf_str(acc)) + strlen(want));
			return;
		}
		event_base_loop(f->base, EVLOOP_NONBLOCK);
		struct pollfd p = { fd, POLLIN, 0 };
		if (poll(&p, 1, 10) > 0) {
			char buf[4096];
			ssize_t n = read(fd, buf, sizeof(buf));
			if (n > 0)
				assert_true(sg_buf_append(acc, buf, (size_t)n));
			else if (n == 0 && strstr(sg_buf_str(acc), want) == NULL)
				fail_msg("EOF while waiting for \"%s\"; got \"%s\"", want, sg_buf_str(acc));
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - t0.tv_sec > 3)
			fail_msg("timeout waiting for \"%s\"; got \"%s\"", want, sg_buf_str(acc));
	}
}

static void say(int fd, const char *s)
{
	assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
}

static void test_listen_errors(void **state)
{
	struct fixture *f = *state;
	static const char *const bad[] = { "garbage", "127.0.0.1:99999", "[::1", "::1:25",
					   "999.1.1.1:25", "" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct sg_error err = SG_ERROR_INIT;
		if (sg_smtp_server_listen(f->srv, bad[i], &err) != -1)
			fail_msg("listen \"%s\" succeeded", bad[i]);
		if (strncmp(sg_error_msg(&err), "smtp: listen on ", 16) != 0)
			fail_msg("listen \"%s\": %s", bad[i], sg_error_msg(&err));
		sg_error_clear(&err);
	}
}

static void test_sync_finish_and_pipelining(void **state)
{
	struct fixture *f = *state;
	struct sg_buf acc;
	int fd = client(f);

	sg_buf_init(&acc, 1 << 16);
	f->finish_now = true;
	expect(f, fd, &acc, "220 mx.test ESMTP sealgate\r\n");
	assert_int_equal(sg_smtp_server_sessions(f->srv), 1);
	/* Two whole transactions in one write; data() answers at once. */
	say(fd, "EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n..one\r\n.\r\n"
		"MAIL FROM:<>\r\nRCPT TO:<e@f>\r\nDATA\r\ntwo\r\n.\r\nQUIT\r\n");
	expect(f, fd, &acc, "250 DSN\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 ");
	expect(f, fd, &acc, "250 2.0.0 Ok: queued\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 ");
	expect(f, fd, &acc, "250 2.0.0 Ok: queued\r\n221 2.0.0 Bye\r\n");
	assert_int_equal(f->n_data, 2);
	assert_string_equal(sg_buf_str(&f->last_body), "two\r\n");
	for (int i = 0; i < 50 && sg_smtp_server_sessions(f->srv) > 0; i++)
		event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_int_equal(sg_smtp_server_sessions(f->srv), 0);
	close(fd);
	sg_buf_free(&acc);
}

static void test_free_aborts_pending(void **state)
{
	struct fixture *f = *state;
	struct sg_buf acc;
	int fd = client(f);

	sg_buf_init(&acc, 1 << 16);
	expect(f, fd, &acc, "220 ");
	say(fd, "HELO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nx\r\n.\r\nNOOP\r\n");
	expect(f, fd, &acc, "354 End data with <CR><LF>.<CR><LF>\r\n");
	for (int i = 0; i < 20; i++)
		event_base_loop(f->base, EVLOOP_NONBLOCK);
	/* Waiting for data(): the pipelined NOOP is not answered. */
	assert_int_equal(f->n_data, 1);
	assert_non_null(f->txn);
	assert_string_equal(sg_smtp_txn_envelope(f->txn)->mail_from, "a@b");
	assert_null(strstr(sg_buf_str(&acc), "250"));
	sg_smtp_server_free(&f->srv);
	assert_int_equal(f->n_abort, 1);
	assert_int_equal(f->n_drained, 0);
	close(fd);
	sg_buf_free(&acc);
}

static void test_shutdown_drains(void **state)
{
	struct fixture *f = *state;
	struct sg_buf acc;
	int fd = client(f);

	sg_buf_init(&acc, 1 << 16);
	expect(f, fd, &acc, "220 ");
	say(fd, "LHLO c\r\n"); /* not LMTP here */
	expect(f, fd, &acc, "500 5.5.1 Error: command not recognized\r\n");
	sg_smtp_server_shutdown(f->srv);
	expect(f, fd, &acc, "421 4.3.2 mx.test Service shutting down\r\n");
	for (int i = 0; i < 50 && f->n_drained == 0; i++)
		event_base_loop(f->base, EVLOOP_NONBLOCK);
	assert_int_equal(f->n_drained, 1);
	assert_int_equal(sg_smtp_server_sessions(f->srv), 0);
	close(fd);
	sg_buf_free(&acc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_listen_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sync_finish_and_pipelining, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_aborts_pending, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shutdown_drains, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
