/* Where a subcommand finds its configuration and key store: the -c FILE,
 * --state-dir DIR and --store SPEC options every store-using command takes. */
#include "cli/cli.h"

#include <stddef.h>

int sg_cli_where_opt(struct sg_cli_where *w, int c, const char *arg)
{
	switch (c) {
	case 'c': w->config = arg; return 1;
	case SG_CLI_OPT_STATE_DIR: w->state_dir = arg; return 1;
	case SG_CLI_OPT_STORE: w->store = arg; return 1;
	default: return 0;
	}
}

int sg_cli_where_config(const struct sg_cli_where *w, struct sg_config *cfg, struct sg_error *err)
{
	sg_config_defaults(cfg);
	if (w->config != NULL && sg_config_load(cfg, w->config, err) < 0)
		return -1;
	/* Command-line options override the file, as in serve's --set. */
	if ((w->state_dir != NULL && sg_config_set(cfg, "state_dir", w->state_dir, err) < 0) ||
	    (w->store != NULL && sg_config_set(cfg, "store", w->store, err) < 0)) {
		sg_error_prefix(err, "command line");
		return -1;
	}
	return 1;
}
