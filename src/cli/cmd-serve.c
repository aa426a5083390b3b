/* sealgate serve: load the configuration, bind, drop privileges, run the
 * gateway until SIGTERM. */
#include "cli/cli.h"
#include "config/config.h"
#include "deliver/deliver.h"
#include "gateway/gateway.h"
#include "keys/lookup.h"
#include "domain/timer.h"
#include "policy/service.h"
#include "store/store.h"
#include "util/heap.h"
#include "util/log.h"
#include "util/mem.h"
#include "version.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static const char usage[] =
	"usage: sealgate serve [-c FILE] [--state-dir DIR] [--listen ADDR:PORT]\n"
	"                      [--lmtp ADDR:PORT] [--relay HOST:PORT] [--debug]\n"
	"                      [--check] [--print-config]\n"
	"\n"
	"Run the gateway in the foreground: an SMTP (--listen) and/or LMTP (--lmtp)\n"
	"filter listener whose mail goes, transformed, to the next hop (--relay).\n"
	"  -c FILE          configuration file (default: built-in defaults)\n"
	"  --state-dir DIR  where state and the spool live (default ./var)\n"
	"  --check          validate the configuration and exit (0 valid, 78 invalid)\n"
	"  --print-config   print the effective configuration and exit\n"
	"Signals: TERM/INT finish transactions in flight and exit; HUP reloads the\n"
	"log settings (everything else needs a restart).\n";

struct serve_state {
	struct sg_config cfg;
	const char *config_path;
	struct sg_gateway *gw;
	struct event_base *base;
	struct sg_gateway_transforms transforms;
	/* SG_ROLE_DELIVER: the key store, its look-up, the deliver transform. */
	struct sg_store *deliver_store;
	struct sg_keys_lookup *deliver_lookup;
	struct sg_deliver *deliver;
};

static void on_term(evutil_socket_t sig, short what, void *arg)
{
	struct serve_state *st = arg;
	(void)what;
	static int count;
	if (++count > 1) {
		sg_log_warn("second signal %d: exiting now; unanswered messages stay queued upstream",
			    (int)sig);
		event_base_loopbreak(st->base);
		return;
	}
	sg_log_info("signal %d received", (int)sig);
	sg_gateway_shutdown(st->gw);
}

static void apply_log(const struct sg_config *cfg)
{
	enum sg_log_target t = strcmp(cfg->log, "syslog") == 0 ? SG_LOG_SYSLOG : SG_LOG_STDERR;
	if (sg_log_open("sealgate/serve", t, cfg->syslog_facility) < 0)
		sg_log_open("sealgate/serve", SG_LOG_STDERR, "mail");
	sg_log_set_debug(cfg->debug);
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
	struct serve_state *st = arg;
	struct sg_config fresh;
	struct sg_error err = SG_ERROR_INIT;
	(void)sig;
	(void)what;

	if (st->config_path == NULL) {
		sg_log_info("SIGHUP: no configuration file; nothing to reload");
		return;
	}
	sg_config_defaults(&fresh);
	if (sg_config_load(&fresh, st->config_path, &err) < 0) {
		sg_log_error("SIGHUP: %s; keeping the running configuration", sg_error_msg(&err));
		sg_error_clear(&err);
	} else {
		/* Only the log settings change at run time; the listeners, relay
		 * and limits are bound into live objects and need a restart. */
		free(st->cfg.log);
		st->cfg.log = sg_strdup(fresh.log);
		free(st->cfg.syslog_facility);
		st->cfg.syslog_facility = sg_strdup(fresh.syslog_facility);
		st->cfg.debug = fresh.debug;
		apply_log(&st->cfg);
		sg_log_info("SIGHUP: log settings reloaded from %s", st->config_path);
	}
	sg_config_clear(&fresh);
}

static int make_dir(const char *path, struct sg_error *err)
{
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		sg_error_set(err, "cannot create %s: %s", path, strerror(errno));
		return -1;
	}
	return 1;
}

/* Started as root: switch to cfg->user after the listeners are bound. */
static int drop_privileges(const struct sg_config *cfg, const char *spool, struct sg_error *err)
{
	if (geteuid() != 0)
		return 1;
	if (cfg->user[0] == '\0') {
		sg_log_warn("running as root: set 'user' to drop privileges after binding");
		return 1;
	}
	struct passwd *pw = getpwnam(cfg->user);
	if (pw == NULL) {
		sg_error_set(err, "user '%s' does not exist", cfg->user);
		return -1;
	}
	if (chown(cfg->state_dir, pw->pw_uid, pw->pw_gid) < 0 ||
	    chown(spool, pw->pw_uid, pw->pw_gid) < 0) {
		sg_error_set(err, "cannot give %s to %s: %s", cfg->state_dir, cfg->user, strerror(errno));
		return -1;
	}
	/* The default SQLite store was opened (and maybe created) as root:
	 * its files must be the user's too, or WAL writes fail later. */
	static const char *const db_files[] = { "sealgate.db", "sealgate.db-wal", "sealgate.db-shm" };
	for (size_t i = 0; i < sizeof(db_files) / sizeof(db_files[0]); i++) {
		char *path = sg_asprintf("%s/%s", cfg->state_dir, db_files[i]);
		int r = chown(path, pw->pw_uid, pw->pw_gid);
		int e = errno;
		free(path);
		if (r < 0 && e != ENOENT) {
			sg_error_set(err, "cannot give %s/%s to %s: %s", cfg->state_dir, db_files[i],
				     cfg->user, strerror(e));
			return -1;
		}
	}
	if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0) {
		sg_error_set(err, "cannot switch to user %s: %s", cfg->user, strerror(errno));
		return -1;
	}
	if (setuid(0) == 0) {
		sg_error_set(err, "privileges could be regained after dropping them");
		return -1;
	}
	sg_log_info("running as user %s (uid %ld)", cfg->user, (long)pw->pw_uid);
	return 1;
}

/* SG_ROLE_DELIVER (sealing at rest): needs the key store; only when
 * deliver_listen is set. Opened before privileges are dropped. */
static int setup_deliver(struct serve_state *st, struct sg_error *err)
{
	if (st->cfg.deliver_listen[0] == '\0')
		return 1;
	if (sg_store_open_config(&st->cfg, NULL, &st->deliver_store, err) < 0) {
		sg_error_prefix(err, "deliver: key store");
		return -1;
	}
	st->deliver_lookup = sg_keys_lookup_new(st->deliver_store, NULL, NULL, SG_LOOKUP_LOCAL);
	st->deliver = sg_deliver_new(&st->cfg, st->deliver_lookup, err);
	if (st->deliver == NULL)
		return -1;
	st->transforms.role[SG_ROLE_DELIVER] = sg_deliver_transform(st->deliver);
	return 1;
}

static void free_deliver(struct serve_state *st)
{
	sg_deliver_free(&st->deliver);
	sg_keys_lookup_free(&st->deliver_lookup);
	sg_store_close(&st->deliver_store);
}

static void limits(struct sg_config *cfg)
{
	struct rlimit rl = { 0, 0 };

	/* No core dumps: they would hold message plaintext and keys. */
	setrlimit(RLIMIT_CORE, &rl);
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	sg_heap_tune_server(); /* per-message buffers stay mapped (util/heap.h) */
	/* Each session needs its socket and maybe a next-hop socket and a
	 * spool file: raise the descriptor limit, or lower the session cap. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
		rlim_t need = (rlim_t)cfg->max_sessions * 3 + 64;
		if (rl.rlim_cur != RLIM_INFINITY && need > rl.rlim_cur) {
			unsigned cap = rl.rlim_cur > 64 ? (unsigned)((rl.rlim_cur - 64) / 3) : 1;
			sg_log_warn("max_sessions %u needs %lu descriptors, the limit is %lu: capping at %u",
				    cfg->max_sessions, (unsigned long)need, (unsigned long)rl.rlim_cur, cap);
			cfg->max_sessions = cap;
		}
	}
}

int cmd_serve(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "state-dir", required_argument, NULL, 'S' },
		{ "listen", required_argument, NULL, 'L' },
		{ "lmtp", required_argument, NULL, 'M' },
		{ "relay", required_argument, NULL, 'R' },
		{ "check", no_argument, NULL, 'k' },
		{ "print-config", no_argument, NULL, 'p' },
		{ "debug", no_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct serve_state st;
	struct sg_error err = SG_ERROR_INIT;
	const char *over_keys[8];
	const char *over_vals[8];
	size_t n_over = 0;
	bool check = false, print = false, debug = false;
	int ret = SG_EXIT_FAIL, c;
	char *spool = NULL;
	struct event *ev_term = NULL, *ev_int = NULL, *ev_hup = NULL;
	struct sg_policy_service *policy = NULL;
	struct sg_domain_timer *domain_timer = NULL;

	memset(&st, 0, sizeof(st));
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:dh", opts, NULL)) != -1) {
		switch (c) {
		case 'c': st.config_path = optarg; break;
		case 'S': over_keys[n_over] = "state_dir"; over_vals[n_over++] = optarg; break;
		case 'L': over_keys[n_over] = "listen"; over_vals[n_over++] = optarg; break;
		case 'M': over_keys[n_over] = "lmtp_listen"; over_vals[n_over++] = optarg; break;
		case 'R': over_keys[n_over] = "relay"; over_vals[n_over++] = optarg; break;
		case 'k': check = true; break;
		case 'p': print = true; break;
		case 'd': debug = true; break;
		case 'h': fputs(usage, stdout); return SG_EXIT_OK;
		default: fputs(usage, stderr); return SG_EXIT_USAGE;
		}
		if (n_over == sizeof(over_keys) / sizeof(over_keys[0])) {
			fputs("sealgate serve: too many overrides\n", stderr);
			return SG_EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "sealgate serve: unexpected argument '%s'\n%s", argv[optind], usage);
		return SG_EXIT_USAGE;
	}
	sg_config_defaults(&st.cfg);
	if (st.config_path != NULL && sg_config_load(&st.cfg, st.config_path, &err) < 0)
		goto config_error;
	for (size_t i = 0; i < n_over; i++) {
		if (sg_config_set(&st.cfg, over_keys[i], over_vals[i], &err) < 0) {
			sg_error_prefix(&err, "command line");
			goto config_error;
		}
	}
	if (debug)
		st.cfg.debug = true;
	if (sg_config_check(&st.cfg, &err) < 0)
		goto config_error;
	if (print) {
		char *dump = sg_config_dump(&st.cfg);
		fputs(dump, stdout);
		free(dump);
		ret = SG_EXIT_OK;
		goto out;
	}
	if (check) {
		printf("sealgate serve: configuration %s is valid\n",
		       st.config_path != NULL ? st.config_path : "(built-in defaults)");
		ret = SG_EXIT_OK;
		goto out;
	}

	apply_log(&st.cfg);
	limits(&st.cfg);
	spool = sg_asprintf("%s/tmp", st.cfg.state_dir);
	if (make_dir(st.cfg.state_dir, &err) < 0 || make_dir(spool, &err) < 0)
		goto fail;
	signal(SIGPIPE, SIG_IGN);
	if (evthread_use_pthreads() < 0) {
		sg_error_set(&err, "libevent without thread support");
		goto fail;
	}
	{
		/* The changelist folds the many enable/disable pairs bufferevents
		 * make within one loop iteration into one epoll_ctl each. */
		struct event_config *ec = event_config_new();
		if (ec != NULL)
			event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
		st.base = ec != NULL ? event_base_new_with_config(ec) : NULL;
		if (ec != NULL)
			event_config_free(ec);
	}
	if (st.base == NULL) {
		sg_error_set(&err, "cannot create the event loop");
		goto fail;
	}
	/* Policy (outbound) and verification (inbound): src/policy/;
	 * sealing at rest (deliver): src/deliver/. */
	if (sg_policy_service_open(&st.cfg, &policy, &err) < 0)
		goto fail;
	sg_policy_service_install(policy, &st.transforms);
	domain_timer = sg_domain_timer_start(st.base, sg_policy_service_domain(policy));
	if (setup_deliver(&st, &err) < 0)
		goto fail;
	st.gw = sg_gateway_new(st.base, &st.cfg, &st.transforms, &err);
	if (st.gw == NULL)
		goto fail;
	if (drop_privileges(&st.cfg, spool, &err) < 0)
		goto fail;
	ev_term = evsignal_new(st.base, SIGTERM, on_term, &st);
	ev_int = evsignal_new(st.base, SIGINT, on_term, &st);
	ev_hup = evsignal_new(st.base, SIGHUP, on_hup, &st);
	evsignal_add(ev_term, NULL);
	evsignal_add(ev_int, NULL);
	evsignal_add(ev_hup, NULL);
	sg_log_info("sealgate %s started: relay=%s (%s), hostname=%s", SG_VERSION, st.cfg.relay,
		    st.cfg.relay_protocol, st.cfg.hostname);
	event_base_dispatch(st.base);
	sg_log_info("stopped");
	ret = SG_EXIT_OK;
	goto out;

config_error:
	fprintf(stderr, "sealgate serve: %s\n", sg_error_msg(&err));
	ret = SG_EXIT_CONFIG;
	goto out;
fail:
	sg_log_error("%s", sg_error_msg(&err));
	ret = SG_EXIT_FAIL;
out:
	if (ev_term != NULL)
		event_free(ev_term);
	if (ev_int != NULL)
		event_free(ev_int);
	if (ev_hup != NULL)
		event_free(ev_hup);
	sg_gateway_free(&st.gw);
	sg_domain_timer_stop(&domain_timer);
	sg_policy_service_close(&policy);
	free_deliver(&st);
	if (st.base != NULL)
		event_base_free(st.base);
	free(spool);
	sg_config_clear(&st.cfg);
	sg_error_clear(&err);
	return ret;
}
