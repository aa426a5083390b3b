/* The key store as seal and unseal use it: opened on first need from
 * -c FILE / --state-dir DIR, with the master key for stored secret keys. */
#include "cli/cli.h"
#include "keys/master.h"
#include "keys/secret.h"
#include "store/store.h"
#include "util/secret.h"

#include <string.h>

static int load_cfg(struct sg_cli_store *s, struct sg_error *err)
{
	if (s->cfg_loaded)
		return 1;
	s->cfg_loaded = true;
	return sg_cli_where_config(&s->where, &s->cfg, err);
}

int sg_cli_store_open(struct sg_cli_store *s, struct sg_error *err)
{
	if (s->store != NULL)
		return 1;
	if (load_cfg(s, err) < 0 || sg_store_open_config(&s->cfg, NULL, &s->store, err) < 0)
		return -1;
	return 1;
}

int sg_cli_store_master(struct sg_cli_store *s, struct sg_error *err)
{
	char *pass = NULL;

	if (s->mk != NULL)
		return sg_cli_store_open(s, err);
	/* The master key first: without one, no store is created. */
	if (load_cfg(s, err) < 0)
		return -1;
	if (s->master_pass_file != NULL && (pass = sg_cli_read_passphrase(s->master_pass_file, err)) == NULL)
		return -1;
	int r = sg_keys_master_load(s->master_key != NULL ? s->master_key : s->cfg.master_key_file, pass,
				    s->cfg.state_dir, &s->mk, err);
	if (pass != NULL)
		sg_secret_free(&pass, strlen(pass));
	return r < 0 ? -1 : sg_cli_store_open(s, err);
}

void sg_cli_store_close(struct sg_cli_store *s)
{
	sg_master_key_free(&s->mk);
	sg_store_close(&s->store);
	if (s->cfg_loaded)
		sg_config_clear(&s->cfg);
	s->cfg_loaded = false;
}
