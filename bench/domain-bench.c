/* In-process domain sealing rate ([domain]): a seals for b.test (sign +
 * encrypt), b opens (decrypt + verify + binding), 10 KiB messages, with
 * keys made in a temp dir. Prints "seal N/s open N/s both N/s".
 * usage: domain-bench DIR SECS */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "domain/domain.h"
#include "keys/master.h"
#include "store/store.h"
#include "util/mem.h"

#define T ((time_t)1900000000)

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void check(int ok, const struct sg_error *err, const char *what)
{
	if (!ok) {
		fprintf(stderr, "domain-bench: %s: %s\n", what, sg_error_msg(err));
		exit(1);
	}
}

static struct sg_domain *instance(const char *dir, const char *name, struct sg_config *cfg,
				  struct sg_master_key *mk, struct sg_buf *bundle)
{
	struct sg_error err = SG_ERROR_INIT;
	struct sg_domain *d = NULL;
	struct sg_store *st = NULL;
	struct sg_domain_rotation r;
	char *state = sg_asprintf("%s/%s", dir, name), *dom = sg_asprintf("%s.test", name);

	sg_config_defaults(cfg);
	check(sg_config_set(cfg, "state_dir", state, &err) == 1 &&
	      sg_config_set(cfg, "domain_names", dom, &err) == 1, &err, "config");
	check(sg_domain_new(cfg, mk, &d, &err) == 1 && sg_domain_init(d, T, &err) >= 0 &&
	      sg_domain_rotate(d, T, &r, &err) == 1, &err, "keys");
	sg_buf_init(bundle, 1 << 20);
	check(sg_store_open_config(cfg, NULL, &st, &err) == 1 &&
	      sg_domain_bundle_build(st, T, bundle, &err) == 1, &err, "bundle");
	sg_store_close(&st);
	free(state);
	free(dom);
	return d;
}

int main(int argc, char **argv)
{
	struct sg_error err = SG_ERROR_INIT;
	struct sg_config ca, cb;
	struct sg_master_key *mk = NULL;
	struct sg_buf ab, bb, msg, sealed, opened;
	struct sg_domain_bundle abun, bbun;
	struct sg_key *peer = NULL;
	struct sg_store *bs = NULL;
	enum sg_crypto_status st;
	struct sg_domain_opened res;

	if (argc != 3)
		return 64;
	double secs = atof(argv[2]);
	char *mkp = sg_asprintf("%s/mk", argv[1]);
	check(sg_master_key_create_file(mkp, &err) == 1 && sg_master_key_load_file(mkp, &mk, &err) == 1,
	      &err, "master key");
	struct sg_domain *a = instance(argv[1], "a", &ca, mk, &ab);
	struct sg_domain *b = instance(argv[1], "b", &cb, mk, &bb);
	check(sg_domain_bundle_parse(bb.data, bb.len, "b.test", &bbun, &err) == 1 &&
	      sg_domain_bundle_parse(ab.data, ab.len, "a.test", &abun, &err) == 1, &err, "parse");
	long k = sg_domain_bundle_pick(&bbun, T);
	check(k >= 0 && sg_key_load_mem(bbun.enc[k].der, bbun.enc[k].der_len, NULL, &peer, &st, &err) == 1,
	      &err, "peer key");
	struct sg_store_domain_peer pin = {
		.domain = "a.test", .fingerprint = abun.signing.fpr, .trust = "configured",
		.pinned_at = T, .cert = abun.signing.der, .len = abun.signing.der_len,
	};
	check(sg_store_open_config(&cb, NULL, &bs, &err) == 1 && sg_store_domain_peer_put(bs, &pin, &err) == 1,
	      &err, "pin");
	sg_buf_init(&msg, 1 << 20);
	check(sg_buf_append_str(&msg, "From: <a@a.test>\r\nSubject: bench\r\n\r\n"), &err, "msg");
	while (msg.len < 10240)
		check(sg_buf_append_str(&msg, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n"),
		      &err, "msg");
	sg_buf_init(&sealed, 1 << 22);
	sg_buf_init(&opened, 1 << 22);
	double t_seal = 0, t_open = 0, t0 = now_s();
	long n = 0;
	while (n < 3 || now_s() - t0 < secs) {
		double s0 = now_s();
		sg_buf_reset(&sealed);
		check(sg_domain_seal(a, msg.data, msg.len, "a.test", "b.test", peer, &sealed, &st, &err) == 1,
		      &err, "seal");
		double s1 = now_s();
		sg_buf_reset(&opened);
		check(sg_domain_open(b, sealed.data, sealed.len, "b.test", T, &opened, &res, &err) == 1 &&
		      res.verdict == SG_DOMAIN_OK, &err, "open");
		sg_domain_opened_clear(&res);
		t_seal += s1 - s0;
		t_open += now_s() - s1;
		n++;
	}
	printf("seal %.1f/s open %.1f/s both %.1f/s\n", n / t_seal, n / t_open, n / (t_seal + t_open));
	sg_store_close(&bs);
	sg_key_free(&peer);
	sg_domain_bundle_clear(&abun);
	sg_domain_bundle_clear(&bbun);
	sg_domain_free(&a);
	sg_domain_free(&b);
	sg_master_key_free(&mk);
	sg_config_clear(&ca);
	sg_config_clear(&cb);
	sg_buf_free(&ab);
	sg_buf_free(&bb);
	sg_buf_free(&msg);
	sg_buf_free(&sealed);
	sg_buf_free(&opened);
	free(mkp);
	return 0;
}
