/* sealgate policy test: which rule matches each recipient, its treatment,
 * and what the gateway would do given the key store's keys. */
#include "cli/cli.h"
#include "config/config.h"
#include "keys/master.h"
#include "mime/message.h"
#include "keys/keycache.h"
#include "policy/policy.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/log.h"
#include "util/mem.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define MAX_ARGS 256

static const char usage_text[] =
	"usage: sealgate policy test [-c FILE] [--state-dir DIR] [--store SPEC] [--rules FILE]\n"
	"                            --from ADDR --to ADDR [--to ADDR...] [--subject TEXT]\n"
	"                            [--header 'Name: value'...]\n"
	"\n"
	"For each --to: the rule that matches (file:line), the treatment, and the\n"
	"outcome given the key store (key fingerprint, or the reply a missing key\n"
	"gets). --from \"\" is the null sender.\n"
	"Exit: 0 every recipient would be relayed; 2 at least one would be refused;\n"
	"      64 usage; 78 bad configuration or rules; 1 other failure.\n";

struct policy_opts {
	struct sg_cli_where where;
	const char *rules, *from, *subject;
	const char *to[MAX_ARGS];
	size_t n_to;
	const char *headers[MAX_ARGS];
	size_t n_headers;
};

static int parse(int argc, char **argv, struct policy_opts *o)
{
	static const struct option longopts[] = {
		SG_CLI_WHERE_OPTIONS,
		{ "rules", required_argument, NULL, 'r' },
		{ "from", required_argument, NULL, 'f' },
		{ "to", required_argument, NULL, 't' },
		{ "subject", required_argument, NULL, 's' },
		{ "header", required_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		if (sg_cli_where_opt(&o->where, c, optarg))
			continue;
		switch (c) {
		case 'r': o->rules = optarg; break;
		case 'f': o->from = optarg; break;
		case 's': o->subject = optarg; break;
		case 't':
			if (o->n_to == MAX_ARGS)
				return -1;
			o->to[o->n_to++] = optarg;
			break;
		case 'H':
			if (o->n_headers == MAX_ARGS || strchr(optarg, ':') == NULL)
				return -1;
			o->headers[o->n_headers++] = optarg;
			break;
		case 'h': fputs(usage_text, stdout); return 0;
		default: return -1;
		}
	}
	if (optind != argc || o->from == NULL || o->n_to == 0)
		return -1;
	return 1;
}

/* The header block the rules see: From, Subject and the --header fields. */
static int make_header(const struct policy_opts *o, struct sg_buf *b)
{
	int ok = sg_buf_printf(b, "From: <%s>\r\n", o->from);
	if (o->subject != NULL)
		ok &= sg_buf_printf(b, "Subject: %s\r\n", o->subject);
	for (size_t i = 0; i < o->n_headers; i++)
		ok &= sg_buf_printf(b, "%s\r\n", o->headers[i]);
	ok &= sg_buf_append_str(b, "\r\n");
	for (size_t i = 0; i < b->len; i++)
		if (b->data[i] == '\n' && (i == 0 || b->data[i - 1] != '\r'))
			return -1;
	return ok ? 1 : -1;
}

static const char *kind_name(const struct sg_key *k)
{
	return sg_key_kind(k) == SG_KEY_X509 ? "S/MIME" : "OpenPGP";
}

/* One recipient: print it; 1 relayed, 0 refused. */
static int show(const struct sg_policy_decision *d, const char *to)
{
	printf("to=<%s>\n", to);
	if (d->rule != NULL)
		printf("  rule: %s:%u\n", d->rules_name, d->rule->line);
	else
		printf("  rule: none matched (policy_default)\n");
	printf("  treatment: %s", sg_treatment_name(d->asked));
	if (d->treatment != d->asked && d->code == 0)
		printf(" -> %s (missing key)", sg_treatment_name(d->treatment));
	printf("\n");
	if (d->note != NULL)
		printf("  reason: %s\n", d->note);
	if (d->code != 0) {
		printf("  outcome: refused: %d %s\n", d->code, d->reply);
		return 0;
	}
	if (d->key != NULL)
		printf("  outcome: encrypt (%s) to key %s, relay\n", kind_name(d->key),
		       sg_key_fingerprint(d->key));
	else
		printf("  outcome: %s, unchanged\n",
		       d->route == SG_ROUTE_TLS_ONLY ? "relay_tls_only (TLS enforced)" : "relay");
	return 1;
}

static int policy_test(const struct policy_opts *o)
{
	struct sg_config cfg;
	struct sg_error err = SG_ERROR_INIT;
	struct sg_store *store = NULL;
	struct sg_master_key *mk = NULL;
	struct sg_policy *p = NULL;
	struct sg_buf hdr;
	struct sg_msg_view v;
	int ret = SG_EXIT_CONFIG, refused = 0;
	bool want_sign = false;

	sg_buf_init(&hdr, 1024 * 1024);
	if (sg_cli_where_config(&o->where, &cfg, &err) < 0 ||
	    (o->rules != NULL && sg_config_set(&cfg, "policy_file", o->rules, &err) < 0))
		goto out;
	if (make_header(o, &hdr) < 0 || sg_msg_split(hdr.data, hdr.len, &v, &err) < 0) {
		sg_error_set(&err, "--from/--subject/--header: not a valid header block");
		ret = SG_EXIT_USAGE;
		goto out;
	}
	ret = SG_EXIT_FAIL;
	if (sg_store_open_config(&cfg, NULL, &store, &err) < 0)
		goto out;
	ret = SG_EXIT_CONFIG;
	if (cfg.master_key_file[0] != '\0' && sg_master_key_load_file(cfg.master_key_file, &mk, &err) < 0)
		goto out;
	if (sg_policy_new(&cfg, store, mk, &p, &err) < 0)
		goto out;
	ret = SG_EXIT_FAIL;
	for (size_t i = 0; i < o->n_to; i++) {
		struct sg_policy_decision d;
		if (sg_policy_decide(p, o->from, o->to[i], &v, time(NULL), &d, &err) < 0)
			goto out;
		refused += show(&d, o->to[i]) == 0;
		want_sign |= d.sign && d.code == 0;
		sg_policy_decision_clear(&d);
	}
	if (want_sign) {
		struct sg_keycache_entry *signer = NULL;
		int r = sg_policy_find_signer(p, o->from, time(NULL), &signer, &err);
		if (r < 0)
			goto out;
		if (r > 0)
			printf("sign: with %s key %s\n", kind_name(sg_keycache_key(signer)),
			       sg_key_fingerprint(sg_keycache_key(signer)));
		else
			printf("sign: no (%s)\n", sg_error_msg(&err));
		sg_keycache_release(&signer);
		sg_error_clear(&err);
	}
	ret = refused > 0 ? SG_EXIT_NO_KEY : SG_EXIT_OK;
out:
	if (ret != SG_EXIT_OK && ret != SG_EXIT_NO_KEY)
		fprintf(stderr, "sealgate policy: %s\n", sg_error_msg(&err));
	sg_policy_free(&p);
	sg_master_key_free(&mk);
	sg_store_close(&store);
	sg_buf_free(&hdr);
	sg_config_clear(&cfg);
	sg_error_clear(&err);
	return ret;
}

int cmd_policy(int argc, char **argv)
{
	struct policy_opts o;

	memset(&o, 0, sizeof(o));
	if (argc < 2 || strcmp(argv[1], "test") != 0) {
		if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
			fputs(usage_text, stdout);
			return SG_EXIT_OK;
		}
		fputs(usage_text, stderr);
		return SG_EXIT_USAGE;
	}
	int r = parse(argc - 1, argv + 1, &o);
	if (r <= 0) {
		if (r < 0)
			fputs(usage_text, stderr);
		return r == 0 ? SG_EXIT_OK : SG_EXIT_USAGE;
	}
	sg_log_open("sealgate/policy", SG_LOG_STDERR, NULL);
	return policy_test(&o);
}
