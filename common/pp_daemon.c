/*
 * pp_daemon.c - the main loop shared by all stages. Owns the config, the
 * database handle, the control socket and the signal flags.
 */
#include "pp_daemon.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <zmq.h>

#include "pp_audit.h"
#include "pp_log.h"
#include "pp_migrate.h"
#include "pp_msg.h"
#include "pp_state.h"
#include "pp_util.h"
#include "pp_zmq.h"

struct pp_daemon {
	const pp_stage_ops_t *ops;
	pp_config_t *cfg;
	pp_db_t *db;
	void *control;
	char instance[PP_MSG_FROM_MAX + 1];
	char lease_id[PP_MSG_FROM_MAX + 1];
	int once;
	int verbose;
	pp_secret_key_t key;
	int key_loaded;
	int64_t started_ms;
	int64_t processed;
	int64_t failed;
	int64_t failures[PP_FAILURE_KINDS]; /* by pp_failure_kind_t */
	int64_t poll_ms;
	int64_t heartbeat_ms;
	int64_t next_heartbeat;
	int wake_pending;
	int wake_fd; /* eventfd: pp_daemon_wake_self from any thread */
	int reloading;
	int initialised; /* ops->init succeeded: state is valid */
	void *state;
};

static volatile sig_atomic_t got_stop;
static volatile sig_atomic_t got_reload;

static void on_signal(int sig)
{
	if (sig == SIGHUP)
		got_reload = 1;
	else
		got_stop = 1;
}

static void install_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

const pp_config_t *pp_daemon_config(const pp_daemon_t *d)
{
	return d->cfg;
}
pp_db_t *pp_daemon_db(pp_daemon_t *d)
{
	return d->db;
}
const char *pp_daemon_stage(const pp_daemon_t *d)
{
	return d->ops->stage;
}
const char *pp_daemon_lease_id(const pp_daemon_t *d)
{
	return d->lease_id;
}

const char *pp_daemon_instance(const pp_daemon_t *d)
{
	return d->instance;
}
int pp_daemon_once(const pp_daemon_t *d)
{
	return d->once;
}
int pp_daemon_stopping(const pp_daemon_t *d)
{
	(void)d;
	return got_stop != 0;
}

void pp_daemon_count(pp_daemon_t *d, int64_t processed, int64_t failed)
{
	d->processed += processed;
	d->failed += failed;
}

void pp_daemon_count_failure(pp_daemon_t *d, pp_failure_kind_t kind, int64_t n)
{
	if (kind >= 0 && kind < PP_FAILURE_KINDS)
		d->failures[kind] += n;
}

const pp_secret_key_t *pp_daemon_key(pp_daemon_t *d)
{
	char err[256];
	if (d->key_loaded)
		return &d->key;
	const char *path =
	    pp_config_get(d->cfg, "paths", "key_file", "/etc/practicepost/secret.key");
	if (pp_secret_key_load(path, &d->key, err, sizeof(err)) != 0) {
		log_warnx("%s", err);
		return NULL;
	}
	d->key_loaded = 1;
	return &d->key;
}

int64_t pp_daemon_int(pp_daemon_t *d, const char *key, int64_t def, int64_t min, int64_t max)
{
	char err[512];
	int64_t v;
	if (pp_config_get_int(d->cfg, d->ops->stage, key, def, min, max, &v, err, sizeof(err)) == 0)
		return v;
	if (!d->reloading)
		fatalx("%s", err);
	/* On reload a bad value must not take the stage down. */
	log_warnx("%s; using %lld", err, (long long)def);
	return def;
}

static void daemon_send(pp_daemon_t *d, const pp_msg_t *msg)
{
	if (d->control != NULL && pp_zmq_send(d->control, msg) != 0)
		log_debug("control socket busy: %s dropped", pp_msg_type_name(msg->type));
}

void pp_daemon_wake(pp_daemon_t *d, const char *stage, int64_t message_id)
{
	pp_msg_t msg;
	pp_msg_init(&msg, PP_MSG_WAKE, d->instance);
	PP_MSG_SET(msg.u.wake.stage, stage);
	msg.u.wake.message_id = message_id;
	daemon_send(d, &msg);
}

void pp_daemon_selftest(pp_daemon_t *d, const char *check, int ok, const char *detail)
{
	pp_msg_t msg;
	pp_msg_init(&msg, PP_MSG_SELFTEST, d->instance);
	PP_MSG_SET(msg.u.selftest.stage, d->ops->stage);
	PP_MSG_SET(msg.u.selftest.instance, d->instance);
	PP_MSG_SET(msg.u.selftest.check, check);
	PP_MSG_SET(msg.u.selftest.detail, detail);
	msg.u.selftest.ok = ok;
	daemon_send(d, &msg);
	log_info("selftest=%s ok=%d %s", check, ok, detail);
}

/* daemon_failures - the failures by kind, once any was counted. */
static void daemon_failures(pp_daemon_t *d)
{
	pp_msg_t msg;
	if (d->failures[PP_FAILURE_TEMPORARY] == 0 && d->failures[PP_FAILURE_PERMANENT] == 0 &&
	    d->failures[PP_FAILURE_ACCOUNT] == 0)
		return;
	pp_msg_init(&msg, PP_MSG_FAILURES, d->instance);
	PP_MSG_SET(msg.u.failures.stage, d->ops->stage);
	PP_MSG_SET(msg.u.failures.instance, d->instance);
	msg.u.failures.pid = getpid();
	msg.u.failures.temporary = d->failures[PP_FAILURE_TEMPORARY];
	msg.u.failures.permanent = d->failures[PP_FAILURE_PERMANENT];
	msg.u.failures.account = d->failures[PP_FAILURE_ACCOUNT];
	daemon_send(d, &msg);
}

static void daemon_heartbeat(pp_daemon_t *d, const char *state)
{
	pp_msg_t msg;
	pp_msg_init(&msg, PP_MSG_HEARTBEAT, d->instance);
	pp_msg_heartbeat_t *hb = &msg.u.heartbeat;
	PP_MSG_SET(hb->stage, d->ops->stage);
	PP_MSG_SET(hb->instance, d->instance);
	PP_MSG_SET(hb->state, state);
	hb->pid = getpid();
	hb->uptime_s = (pp_mono_ms() - d->started_ms) / 1000;
	hb->processed = d->processed;
	hb->failed = d->failed;
	hb->pending = -1;
	if (d->ops->pending != NULL && d->initialised && strcmp(state, "running") == 0)
		hb->pending = d->ops->pending(d, d->state);
	daemon_send(d, &msg);
	d->next_heartbeat = pp_mono_ms() + d->heartbeat_ms;
	daemon_failures(d);
}

void pp_daemon_tick(pp_daemon_t *d)
{
	if (pp_mono_ms() >= d->next_heartbeat)
		daemon_heartbeat(d, "running");
}

static void daemon_handle(pp_daemon_t *d, const pp_msg_t *msg)
{
	switch (msg->type) {
	case PP_MSG_WAKE:
		d->wake_pending = 1;
		log_debug("wake from=%s message=%lld", msg->from,
		          (long long)msg->u.wake.message_id);
		break;
	case PP_MSG_CONTROL:
		if (strcmp(msg->u.control.command, "reload") == 0)
			got_reload = 1;
		else if (strcmp(msg->u.control.command, "stop") == 0)
			got_stop = 1;
		else
			log_warnx("control command=%s unknown; ignored", msg->u.control.command);
		break;
	default:
		if (d->ops->message != NULL && d->initialised &&
		    d->ops->message(d, d->state, msg) == 0)
			break;
		log_warnx("message type=%s from=%s not expected by a stage; ignored",
		          pp_msg_type_name(msg->type), msg->from);
	}
}

/* daemon_wait - sleep until a wake-up, the timeout, or a signal. */
static void daemon_wait(pp_daemon_t *d, int64_t timeout_ms)
{
	int64_t until = pp_mono_ms() + timeout_ms;
	do {
		int64_t now = pp_mono_ms();
		int64_t t = until - now;
		if (d->next_heartbeat - now < t)
			t = d->next_heartbeat - now;
		if (t < 0)
			t = 0;
		if (d->control != NULL) {
			zmq_pollitem_t items[2] = {{d->control, 0, ZMQ_POLLIN, 0},
			                           {NULL, d->wake_fd, ZMQ_POLLIN, 0}};
			if (zmq_poll(items, d->wake_fd >= 0 ? 2 : 1, (long)t) < 0 && errno != EINTR)
				log_warnx("zmq_poll: %s", zmq_strerror(errno));
			uint64_t wakes;
			if (d->wake_fd >= 0 && (items[1].revents & ZMQ_POLLIN) &&
			    read(d->wake_fd, &wakes, sizeof(wakes)) == sizeof(wakes))
				d->wake_pending = 1;
			for (;;) {
				pp_msg_t msg;
				char err[256];
				int rc =
				    pp_zmq_recv(d->control, &msg, NULL, NULL, err, sizeof(err));
				if (rc == 0)
					break;
				if (rc < 0)
					log_warnx("rejected frame on control socket: %s", err);
				else
					daemon_handle(d, &msg);
			}
		} else if (t > 0) {
			usleep((useconds_t)(t > 200 ? 200 : t) * 1000);
		}
		if (pp_mono_ms() >= d->next_heartbeat)
			daemon_heartbeat(d, "running");
	} while (!got_stop && !got_reload && !d->wake_pending && pp_mono_ms() < until);
}

static void daemon_reload(pp_daemon_t *d)
{
	char err[512];
	got_reload = 0;
	pp_config_t *cfg = pp_config_load(pp_config_path(d->cfg), err, sizeof(err));
	if (cfg == NULL) {
		log_warnx("reload refused, keeping the old configuration: %s", err);
		return;
	}
	pp_config_free(&d->cfg);
	d->cfg = cfg;
	d->key_loaded = 0;
	d->reloading = 1;
	if (d->ops->reload && d->initialised)
		d->ops->reload(d, d->state);
	d->reloading = 0;
	log_info("configuration reloaded from %s", pp_config_path(cfg));
}

static void usage(const char *stage)
{
	fprintf(stderr,
	        "usage: practicepost-%s [-c CONFIG] [--once] [--instance NAME] [-v]\n"
	        "  -c CONFIG        configuration file (default $PRACTICEPOST_CONFIG or\n"
	        "                   /etc/practicepost/practicepost.conf)\n"
	        "  --once           do the work that is waiting, then exit\n"
	        "  --instance NAME  name of this instance (default %s@HOST:PID)\n"
	        "  -v               debug logging\n",
	        stage, stage);
	exit(2);
}

static void daemon_parse_args(pp_daemon_t *d, int argc, char **argv, const char **cfg_path,
                              const char **instance)
{
	static const struct option opts[] = {{"once", no_argument, NULL, 'o'},
	                                     {"instance", required_argument, NULL, 'i'},
	                                     {"config", required_argument, NULL, 'c'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	int ch;
	while ((ch = getopt_long(argc, argv, "c:vh", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			*cfg_path = optarg;
			break;
		case 'o':
			d->once = 1;
			break;
		case 'i':
			*instance = optarg;
			break;
		case 'v':
			d->verbose = 1;
			break;
		default:
			usage(d->ops->stage);
		}
	}
	if (optind != argc)
		usage(d->ops->stage);
}

/* daemon_connect_db - wait for the database (forever unless --once) and
 * check that its schema is the one this build speaks. */
static void daemon_connect_db(pp_daemon_t *d)
{
	char err[512];
	const char *conninfo = pp_config_get(d->cfg, "database", "conninfo", NULL);
	if (conninfo == NULL)
		fatalx("%s: [database] conninfo is not set", pp_config_path(d->cfg));
	d->db = pp_db_new(conninfo, d->instance);
	while (pp_db_connect(d->db) != 0) {
		if (d->once || got_stop)
			fatalx("database unavailable: %s", pp_db_error(d->db));
		daemon_wait(d, 1000);
	}
	if (pp_migrate_check(d->db, err, sizeof(err)) != 0 ||
	    pp_state_check(d->db, err, sizeof(err)) != 0)
		fatalx("%s", err);
}

static void daemon_run(pp_daemon_t *d, void *state, int *exit_code)
{
	while (!got_stop) {
		if (got_reload)
			daemon_reload(d);
		d->wake_pending = 0;
		int n = d->ops->work(d, state);
		pp_daemon_tick(d);
		if (d->ops->selftest != NULL)
			d->ops->selftest(d, state);
		if (d->once) {
			if (n < 0)
				*exit_code = 1;
			if (n <= 0)
				break;
			continue;
		}
		if (n > 0)
			daemon_wait(d, 0);
		else
			daemon_wait(d, d->poll_ms);
	}
}

int pp_daemon_main(int argc, char **argv, const pp_stage_ops_t *ops)
{
	static pp_daemon_t daemon;
	pp_daemon_t *d = &daemon;
	const char *cfg_path = pp_config_default_path(), *instance = getenv("PP_INSTANCE");
	char err[512], logname[64];
	void *state = NULL;
	int exit_code = 0;

	d->ops = ops;
	daemon_parse_args(d, argc, argv, &cfg_path, &instance);
	snprintf(logname, sizeof(logname), "practicepost-%s", ops->stage);
	log_init(logname, d->verbose);
	if (pp_secret_no_core_dumps(err, sizeof(err)) != 0)
		fatalx("%s", err);
	install_signals();
	d->cfg = pp_config_load(cfg_path, err, sizeof(err));
	if (d->cfg == NULL)
		fatalx("%s", err);
	if (instance != NULL && *instance)
		PP_MSG_SET(d->instance, instance);
	else
		snprintf(d->instance, sizeof(d->instance), "%s@%s:%d", ops->stage, pp_hostname(),
		         (int)getpid());
	if (strchr(d->instance, '@') != NULL)
		PP_MSG_SET(d->lease_id, d->instance);
	else {
		char *id = xasprintf("%s@%s", d->instance, pp_hostname());
		if (pp_strlcpy(d->lease_id, id, sizeof(d->lease_id)) != 0)
			fatalx("instance name %s is too long", id);
		free(id);
	}
	pp_audit_name_stage(ops->stage, d->lease_id);
	d->started_ms = pp_mono_ms();
	d->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (d->wake_fd < 0)
		fatal("eventfd");
	d->poll_ms = pp_daemon_int(d, "poll_interval_ms", 1000, 10, 3600000);
	char hb_err[256];
	if (pp_config_get_int(d->cfg, "watchdog", "heartbeat_interval_ms", 1000, 50, 600000,
	                      &d->heartbeat_ms, hb_err, sizeof(hb_err)) != 0)
		fatalx("%s", hb_err);
	char control[512];
	pp_config_endpoint(d->cfg, "control", control, sizeof(control));
	d->control = pp_zmq_socket(ZMQ_DEALER, control, 0, d->instance);
	if (d->control == NULL)
		fatalx("cannot connect to the watchdog control socket %s", control);
	d->next_heartbeat = pp_mono_ms();
	daemon_connect_db(d);
	if (ops->init(d, &state) != 0)
		fatalx("start-up failed");
	d->state = state;
	d->initialised = 1;
	log_info("instance=%s started once=%d", d->instance, d->once);
	daemon_heartbeat(d, "running");
	daemon_run(d, state, &exit_code);
	log_info("instance=%s stopping processed=%lld failed=%lld", d->instance,
	         (long long)d->processed, (long long)d->failed);
	if (ops->fini)
		ops->fini(d, state);
	daemon_heartbeat(d, "stopped");
	pp_zmq_close(&d->control);
	pp_zmq_shutdown();
	close(d->wake_fd);
	pp_db_free(&d->db);
	pp_config_free(&d->cfg);
	return exit_code;
}

void pp_daemon_wake_self(pp_daemon_t *d)
{
	uint64_t one = 1;
	if (write(d->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("eventfd write");
}

int pp_diag_raise(pp_db_t *db, const char *stage, const char *severity, const char *code,
                  int64_t practice_id, int64_t email_account_id, int64_t sms_account_id,
                  const char *text)
{
	char p[24], e[24], s[24];
	pp_lltoa(p, practice_id);
	pp_lltoa(e, email_account_id);
	pp_lltoa(s, sms_account_id);
	log_warnx("diagnostic code=%s severity=%s practice=%s email_account=%s sms_account=%s %s",
	          code, severity, p, e, s, text);
	return pp_db_command(
	    db,
	    "INSERT INTO diagnostics (stage, severity, code, practice_id, "
	    "email_account_id, sms_account_id, text) VALUES ($1, $2, $3, "
	    "nullif($4::bigint, 0), nullif($5::bigint, 0), nullif($6::bigint, 0), $7)",
	    PP_DB_ARGS(stage, severity, code, p, e, s, text));
}
