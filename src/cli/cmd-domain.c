/* sealgate domain init|rotate|rekey|status|export|key: the gateway's domain keys
 * for gateway-to-gateway sealing with forward secrecy (doc/domain.md). */
#include "cli/cli.h"
#include "config/config.h"
#include "domain/domain.h"
#include "keys/master.h"
#include "util/buf.h"
#include "util/mem.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_text[] =
	"usage: sealgate domain [-c FILE] [--state-dir DIR] [--store SPEC] COMMAND\n"
	"\n"
	"  init         create the long-term domain signing key (once), then rotate\n"
	"  rotate       generate short-lived keys ahead (domain_keys_ahead windows of\n"
	"               domain_key_lifetime) and destroy the private keys whose window\n"
	"               ended more than domain_key_grace ago (crypto-erasure)\n"
	"  rekey        after domain_names changed: a new long-term signing key naming\n"
	"               the new set (the old one is destroyed; its short-lived keys stay\n"
	"               readable until window + grace, unpublished); peers must pin the\n"
	"               new key (its fingerprint in their domain_peers)\n"
	"  unpin DOMAIN forget a peer domain's stored signing key (after its `domain\n"
	"               rekey`): the next message trusts its current key again per\n"
	"               domain_peer_trust (pinned on first use, or domain_peers)\n"
	"  status       published keys, their windows, which private keys still exist,\n"
	"               and the peer domains' trusted signing keys\n"
	"  export DIR   write DIR/.well-known/sealgate/domain-keys (the PEM bundle peers fetch)\n"
	"  key FPR      print one short-lived certificate, its epoch key and its\n"
	"               encrypted private key (interoperability checks with openssl)\n"
	"\n"
	"Needs domain_names and master_key_file. `sealgate serve` rotates hourly by\n"
	"itself. Test only: SEALGATE_NOW=UNIX-SECONDS replaces the clock.\n"
	"Exit: 0 ok; 2 no such key (key); 64 usage; 78 configuration; 1 failure.\n";

struct domain_ctx {
	struct sg_config cfg;
	struct sg_master_key *mk;
	struct sg_domain *d;
	struct sg_error err;
};

static int parse(int argc, char **argv, struct domain_ctx *c, int *cmd_idx)
{
	static const struct option longopts[] = {
		SG_CLI_WHERE_OPTIONS,
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct sg_cli_where where = { 0 };
	int ch;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "+c:h", longopts, NULL)) != -1) {
		if (sg_cli_where_opt(&where, ch, optarg))
			continue;
		switch (ch) {
		case 'h': fputs(usage_text, stdout); return 0;
		default: return -SG_EXIT_USAGE;
		}
	}
	if (optind >= argc)
		return -SG_EXIT_USAGE;
	*cmd_idx = optind;
	if (sg_cli_where_config(&where, &c->cfg, &c->err) < 0)
		return -SG_EXIT_CONFIG;
	if (!sg_domain_configured(&c->cfg)) {
		sg_error_set(&c->err, "domain_names is not set");
		return -SG_EXIT_CONFIG;
	}
	if (c->cfg.master_key_file[0] == '\0') {
		sg_error_set(&c->err, "master_key_file is not set (domain keys are sealed under it)");
		return -SG_EXIT_CONFIG;
	}
	if (sg_master_key_load_file(c->cfg.master_key_file, &c->mk, &c->err) < 0) {
		sg_error_prefix(&c->err, "master_key_file");
		return -SG_EXIT_CONFIG;
	}
	if (sg_domain_new(&c->cfg, c->mk, &c->d, &c->err) < 0)
		return -SG_EXIT_CONFIG;
	return 1;
}

static int do_rotate(struct domain_ctx *c, time_t now)
{
	struct sg_domain_rotation r;
	if (sg_domain_rotate(c->d, now, &r, &c->err) < 0)
		return SG_EXIT_FAIL;
	printf("rotated: %u generated, %u destroyed\n", r.generated, r.destroyed);
	return SG_EXIT_OK;
}

static int do_rekey(struct domain_ctx *c, time_t now)
{
	struct sg_domain_rotation r;
	if (sg_domain_rekey(c->d, now, &r, &c->err) < 0)
		return SG_EXIT_FAIL;
	printf("new signing key for %s; rotated: %u generated, %u destroyed\n", c->cfg.domain_names,
	       r.generated, r.destroyed);
	return SG_EXIT_OK;
}

static int do_unpin(struct domain_ctx *c, const char *domain)
{
	char *fpr = NULL;
	int r = sg_domain_peer_forget(c->d, domain, &fpr, &c->err);
	if (r < 0)
		return SG_EXIT_FAIL;
	if (r == 0) {
		sg_error_set(&c->err, "no signing key of %s is stored", domain);
		return SG_EXIT_NO_KEY;
	}
	printf("forgot %s's signing key %s; restart serve (or wait for its hourly rotation)\n",
	       domain, fpr);
	free(fpr);
	return SG_EXIT_OK;
}

static int do_print(struct domain_ctx *c, int r, struct sg_buf *b)
{
	if (r < 0)
		return SG_EXIT_FAIL;
	if (r == 0)
		return SG_EXIT_NO_KEY;
	return sg_cli_write_out(b->data, b->len, "domain") < 0 ? SG_EXIT_FAIL : SG_EXIT_OK;
}

static int run(struct domain_ctx *c, int argc, char **argv)
{
	const char *cmd = argv[0];
	time_t now = sg_domain_now();
	struct sg_buf b;
	int ret = SG_EXIT_USAGE, r;

	sg_buf_init(&b, 16 * 1024 * 1024);
	if (strcmp(cmd, "init") == 0 && argc == 1) {
		r = sg_domain_init(c->d, now, &c->err);
		if (r < 0) {
			ret = SG_EXIT_FAIL;
			goto out;
		}
		printf("%s\n", r > 0 ? "signing key created" : "signing key exists");
		ret = do_rotate(c, now);
	} else if (strcmp(cmd, "rotate") == 0 && argc == 1) {
		ret = do_rotate(c, now);
	} else if (strcmp(cmd, "rekey") == 0 && argc == 1) {
		ret = do_rekey(c, now);
	} else if (strcmp(cmd, "unpin") == 0 && argc == 2) {
		ret = do_unpin(c, argv[1]);
	} else if (strcmp(cmd, "status") == 0 && argc == 1) {
		ret = do_print(c, sg_domain_status(c->d, now, &b, &c->err), &b);
	} else if (strcmp(cmd, "export") == 0 && argc == 2) {
		ret = sg_domain_export(c->d, argv[1], now, &c->err) < 0 ? SG_EXIT_FAIL : SG_EXIT_OK;
	} else if (strcmp(cmd, "key") == 0 && argc == 2) {
		ret = do_print(c, sg_domain_key_pem(c->d, argv[1], &b, &c->err), &b);
	} else {
		fputs(usage_text, stderr);
	}
out:
	sg_buf_free_secret(&b);
	return ret;
}

int cmd_domain(int argc, char **argv)
{
	struct domain_ctx c;
	int idx = 0, ret;

	memset(&c, 0, sizeof(c));
	ret = parse(argc, argv, &c, &idx);
	if (ret == 0) {
		ret = SG_EXIT_OK;
		goto out;
	}
	if (ret < 0) {
		ret = -ret;
		if (ret == SG_EXIT_USAGE)
			fputs(usage_text, stderr);
		goto out;
	}
	ret = run(&c, argc - idx, argv + idx);
out:
	if (c.err.msg != NULL && ret != SG_EXIT_OK)
		fprintf(stderr, "sealgate domain: %s\n", sg_error_msg(&c.err));
	sg_domain_free(&c.d);
	sg_master_key_free(&c.mk);
	sg_config_clear(&c.cfg);
	sg_error_clear(&c.err);
	return ret;
}
