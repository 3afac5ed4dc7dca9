/*
 * watchdog_main.c - practicepost-watchdog, the supervisor (like Postfix's
 * master): arguments, configuration, signals (a self-pipe polled with the
 * ZeroMQ sockets), the sockets, the main loop and shutdown.
 * Owns the watchdog_t (and its lock: held except while the loop waits),
 * the sockets and the signal pipe.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "pp_databases.h"
#include "pp_log.h"
#include "pp_secret.h"
#include "pp_util.h"
#include "watchdog.h"

static int signal_pipe[2] = {-1, -1};
static volatile sig_atomic_t got_stop, got_reload, got_child;

static void on_signal(int sig)
{
	int saved = errno;
	unsigned char b = (unsigned char)sig;
	if (sig == SIGCHLD)
		got_child = 1;
	else if (sig == SIGHUP)
		got_reload = 1;
	else
		got_stop = 1;
	ssize_t w = write(signal_pipe[1], &b, 1);
	(void)w;
	errno = saved;
}

static void wd_signals_install(void)
{
	struct sigaction sa;
	if (pipe2(signal_pipe, O_NONBLOCK | O_CLOEXEC) != 0)
		fatal("pipe2");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGCHLD, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static void wd_signals_drain(void)
{
	unsigned char buf[64];
	while (read(signal_pipe[0], buf, sizeof(buf)) > 0)
		;
}

/* wd_default_bin_dir - the directory of our own executable. */
static void wd_default_bin_dir(char *out, size_t outlen)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0) {
		pp_strlcpy(out, "/usr/local/bin", outlen);
		return;
	}
	exe[n] = '\0';
	pp_strlcpy(out, dirname(exe), outlen);
}

/* wd_settings - read [watchdog] into wd from cfg; -1 with err if bad. */
static int wd_settings(watchdog_t *wd, const pp_config_t *cfg, char *err, size_t errlen)
{
	int64_t interval, timeout, stop, silent, stall;
	if (pp_config_get_int(cfg, "watchdog", "heartbeat_interval_ms", 1000, 50, 600000, &interval,
	                      err, errlen) != 0 ||
	    pp_config_get_int(cfg, "watchdog", "silent_restart_ms", 0, 0, 86400000, &silent, err,
	                      errlen) != 0 ||
	    pp_config_get_int(cfg, "watchdog", "stall_timeout_ms", 0, 0, 86400000, &stall, err,
	                      errlen) != 0 ||
	    pp_config_get_int(cfg, "watchdog", "heartbeat_timeout_ms", 5000, 100, 3600000, &timeout,
	                      err, errlen) != 0 ||
	    pp_config_get_int(cfg, "watchdog", "stop_timeout_ms", 10000, 100, 600000, &stop, err,
	                      errlen) != 0)
		return -1;
	if (timeout <= interval) {
		snprintf(err, errlen,
		         "[watchdog] heartbeat_timeout_ms (%lld) must exceed "
		         "heartbeat_interval_ms (%lld)",
		         (long long)timeout, (long long)interval);
		return -1;
	}
	if (silent == 0)
		silent = 3 * timeout;
	if (silent < timeout) {
		snprintf(err, errlen,
		         "[watchdog] silent_restart_ms (%lld) must be at least "
		         "heartbeat_timeout_ms (%lld)",
		         (long long)silent, (long long)timeout);
		return -1;
	}
	const char *bin = pp_config_get(cfg, "watchdog", "bin_dir", NULL);
	if (bin != NULL && *bin)
		pp_strlcpy(wd->bin_dir, bin, sizeof(wd->bin_dir));
	else
		wd_default_bin_dir(wd->bin_dir, sizeof(wd->bin_dir));
	wd->hb_interval_ms = interval;
	wd->hb_timeout_ms = timeout;
	wd->stop_timeout_ms = stop;
	wd->silent_restart_ms = silent;
	wd->stall_ms = stall;
	return 0;
}

static int wd_checkin_settings(const pp_config_t *cfg, const char **conninfo, int64_t *retry,
                               int64_t *interval, char *err, size_t errlen)
{
	*conninfo = pp_config_get(cfg, "database", "conninfo", NULL);
	if (*conninfo == NULL) {
		snprintf(err, errlen, "%s: [database] conninfo is not set", pp_config_path(cfg));
		return -1;
	}
	if (pp_config_get_int(cfg, "watchdog", "db_retry_ms", 5000, 100, 600000, retry, err,
	                      errlen) != 0 ||
	    pp_config_get_int(cfg, "watchdog", "checkin_interval_ms", 1000, 1000, 600000, interval,
	                      err, errlen) != 0)
		return -1;
	return 0;
}

void wd_reload(watchdog_t *wd)
{
	char err[512];
	const char *conninfo;
	int64_t retry, interval;
	pp_config_t *cfg = pp_config_load(pp_config_path(wd->cfg), err, sizeof(err));
	got_reload = 0;
	if (cfg == NULL || wd_settings(wd, cfg, err, sizeof(err)) != 0 ||
	    wd_checkin_settings(cfg, &conninfo, &retry, &interval, err, sizeof(err)) != 0) {
		log_warnx("reload refused, keeping the old configuration: %s", err);
		pp_config_free(&cfg);
		return;
	}
	pp_config_t *old = wd->cfg;
	wd->cfg = cfg;
	if (wd_stage_configure(wd, err, sizeof(err)) != 0) {
		log_warnx("reload refused, keeping the old configuration: %s", err);
		wd->cfg = old;
		pp_config_free(&cfg);
		return;
	}
	const char *keys[] = {"control", "events", "metrics_address", "metrics_port"};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const char *a = pp_config_get(old, "watchdog", keys[i], "");
		const char *b = pp_config_get(cfg, "watchdog", keys[i], "");
		if (strcmp(a, b) != 0)
			log_warnx("[watchdog] %s changed; the new endpoint takes effect after a "
			          "restart of the watchdog",
			          keys[i]);
	}
	pp_config_free(&old);
	wd_checkin_configure(wd->checkin, conninfo, retry, interval);
	wd_metrics_configure(wd);
	wd_stage_signal(wd, SIGHUP);
	log_info("configuration reloaded from %s", pp_config_path(wd->cfg));
}

/* wd_prepare_ipc - create the directory an ipc:// endpoint lives in. */
static void wd_prepare_ipc(const char *endpoint)
{
	if (strncmp(endpoint, "ipc://", 6) != 0)
		return;
	char *path = xstrdup(endpoint + 6);
	char *dir = dirname(path);
	for (char *p = dir + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			mkdir(dir, 0755);
			*p = '/';
		}
	if (mkdir(dir, 0750) != 0 && errno != EEXIST)
		log_warn("cannot create %s for %s", dir, endpoint);
	free(path);
}

/* wd_lock_run_dir - one watchdog per run directory: a second one would take
 * the ipc sockets over silently. Returns the lock fd (kept open) or -1. */
static int wd_lock_run_dir(const pp_config_t *cfg)
{
	const char *run_dir = pp_config_get(cfg, "paths", "run_dir", "/run/practicepost");
	char *probe = xasprintf("ipc://%s/watchdog.lock", run_dir);
	wd_prepare_ipc(probe);
	char *path = probe + 6;
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0) {
		log_warn("%s: cannot open the lock file", path);
	} else if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		fatalx("%s is locked: another watchdog runs with run_dir %s", path, run_dir);
	} else {
		char pid[24];
		int n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
		if (ftruncate(fd, 0) != 0 || write(fd, pid, (size_t)n) != n)
			log_warn("%s: cannot write the pid", path);
	}
	free(probe);
	return fd;
}

static void wd_open_sockets(watchdog_t *wd)
{
	char control[512], events[512];
	int handover = 1;
	pp_config_endpoint(wd->cfg, "control", control, sizeof(control));
	pp_config_endpoint(wd->cfg, "events", events, sizeof(events));
	wd_prepare_ipc(control);
	wd->control = pp_zmq_socket(ZMQ_ROUTER, control, 1, wd->instance);
	if (wd->control == NULL)
		fatalx("cannot bind the control socket %s", control);
	/* A restarted stage reconnects with the same routing id: let it in. */
	zmq_setsockopt(wd->control, ZMQ_ROUTER_HANDOVER, &handover, sizeof(handover));
	wd_prepare_ipc(events);
	wd->events = pp_zmq_socket(ZMQ_PUB, events, 1, NULL);
	if (wd->events == NULL)
		fatalx("cannot bind the event socket %s", events);
}

static void usage(void)
{
	fprintf(stderr,
	        "usage: practicepost-watchdog [-c CONFIG] [--instance NAME] [-v]\n"
	        "  -c CONFIG        configuration file (default $PRACTICEPOST_CONFIG or\n"
	        "                   /etc/practicepost/practicepost.conf)\n"
	        "  --instance NAME  name of the watchdog's check-in row (default watchdog)\n"
	        "  -v               debug logging, passed on to the stages\n");
	exit(2);
}

static const char *wd_parse_args(watchdog_t *wd, int argc, char **argv)
{
	static const struct option opts[] = {{"instance", required_argument, NULL, 'i'},
	                                     {"config", required_argument, NULL, 'c'},
	                                     {"help", no_argument, NULL, 'h'},
	                                     {NULL, 0, NULL, 0}};
	const char *cfg_path = pp_config_default_path();
	int ch;
	pp_strlcpy(wd->instance, "watchdog", sizeof(wd->instance));
	while ((ch = getopt_long(argc, argv, "c:vh", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			cfg_path = optarg;
			break;
		case 'i':
			PP_MSG_SET(wd->instance, optarg);
			break;
		case 'v':
			wd->verbose = 1;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	return cfg_path;
}

static void wd_own_checkin(watchdog_t *wd, const char *state)
{
	int64_t now = pp_mono_ms();
	wd_checkin_row_t row = {
	    .stage = "watchdog",
	    .instance = wd->instance,
	    .host = pp_hostname(),
	    .pid = getpid(),
	    .state = state,
	    .started_wall_ms = wd->started_wall,
	    .heartbeat_wall_ms = pp_now_ms(),
	    .restarts = 0,
	    .processed = wd->handled,
	    .failed = wd->rejected,
	    .pending = wd_checkin_pending(wd->checkin),
	    .uptime_s = (now - wd->started_mono) / 1000,
	};
	wd_checkin_put(wd->checkin, &row);
	wd->next_own_checkin = now + wd->hb_interval_ms;
}

static int64_t wd_next_timeout(watchdog_t *wd)
{
	int64_t t = wd_stage_next_ms(wd);
	int64_t o = wd->next_own_checkin - pp_mono_ms();
	if (o < t)
		t = o;
	return t < 0 ? 0 : t;
}

/* wd_loop - until SIGTERM/SIGINT and every stage has exited. */
static void wd_loop(watchdog_t *wd)
{
	for (;;) {
		zmq_pollitem_t items[2] = {{wd->control, 0, ZMQ_POLLIN, 0},
		                           {NULL, signal_pipe[0], ZMQ_POLLIN, 0}};
		long timeout = (long)wd_next_timeout(wd);
		pthread_mutex_unlock(&wd->lock); /* the metrics endpoint may read now */
		int rc = zmq_poll(items, 2, timeout);
		int poll_errno = errno;
		pthread_mutex_lock(&wd->lock);
		if (rc < 0 && poll_errno != EINTR)
			log_warnx("zmq_poll: %s", zmq_strerror(poll_errno));
		wd_signals_drain();
		if (got_child) {
			got_child = 0;
			wd_stage_reap(wd);
		}
		if (got_stop && !wd->stopping) {
			log_info("stopping: %zu stages running", wd_stage_running(wd));
			wd->stopping = 1;
			wd_control_cancel(wd, "the watchdog is stopping");
			wd_stage_stop_all(wd);
		}
		if (got_reload && !wd->stopping)
			wd_reload(wd);
		wd_stage_tick(wd);
		wd_control_recv(wd);
		wd_control_tick(wd);
		if (wd->stopping) {
			wd_control_cancel(wd, "the watchdog is stopping");
			if (wd_stage_running(wd) == 0)
				return;
			continue;
		}
		if (pp_mono_ms() >= wd->next_own_checkin) {
			wd_own_checkin(wd, "running");
			wd_metrics_tick(wd);
		}
	}
}

static void wd_shutdown(watchdog_t *wd, int lock_fd)
{
	int linger = 500;
	wd_own_checkin(wd, "stopped");
	wd_checkin_free(&wd->checkin); /* writes what is left */
	/* Give subscribers the last events before the socket goes. */
	if (wd->events != NULL)
		zmq_setsockopt(wd->events, ZMQ_LINGER, &linger, sizeof(linger));
	pp_zmq_close(&wd->events);
	pp_zmq_close(&wd->control);
	pp_zmq_shutdown();
	free(wd->inst);
	free(wd->peers);
	free(wd->pending);
	free(wd->tests);
	pp_config_free(&wd->cfg);
	if (lock_fd >= 0)
		close(lock_fd);
	close(signal_pipe[0]);
	close(signal_pipe[1]);
	pthread_mutex_destroy(&wd->lock);
}

/* wd_multi_run - supervise one watchdog per practice database. */
static int wd_multi_run(watchdog_t *wd, const char *cfg_path)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		fatal("cannot find this program's own path");
	self[n] = '\0';
	int lock_fd = wd_lock_run_dir(wd->cfg);
	int rc = wd_multi_main(self, cfg_path, &wd->cfg, wd->verbose);
	if (lock_fd >= 0)
		close(lock_fd);
	pp_config_free(&wd->cfg);
	return rc;
}

int main(int argc, char **argv)
{
	static watchdog_t watchdog;
	watchdog_t *wd = &watchdog;
	char err[512];
	const char *conninfo;
	int64_t retry, interval;

	const char *cfg_path = wd_parse_args(wd, argc, argv);
	log_init("practicepost-watchdog", wd->verbose);
	if (pp_secret_no_core_dumps(err, sizeof(err)) != 0)
		fatalx("%s", err);
	wd_signals_install();
	wd->cfg = pp_config_load(cfg_path, err, sizeof(err));
	if (wd->cfg == NULL)
		fatalx("%s", err);
	if (getenv("PP_DATABASE") == NULL && pp_databases_configured(wd->cfg))
		return wd_multi_run(wd, cfg_path);
	if (wd_settings(wd, wd->cfg, err, sizeof(err)) != 0 ||
	    wd_checkin_settings(wd->cfg, &conninfo, &retry, &interval, err, sizeof(err)) != 0)
		fatalx("%s", err);
	wd->started_mono = pp_mono_ms();
	wd->started_wall = pp_now_ms();
	pthread_mutex_init(&wd->lock, NULL);
	pthread_mutex_lock(&wd->lock);
	int lock_fd = wd_lock_run_dir(wd->cfg);
	wd_open_sockets(wd);
	wd->checkin = wd_checkin_new(conninfo, wd->instance, retry, interval);
	if (wd_stage_configure(wd, err, sizeof(err)) != 0)
		fatalx("%s", err);
	log_info("instance=%s started bin_dir=%s stages=%zu", wd->instance, wd->bin_dir, wd->ninst);
	wd->metrics = wd_metrics_start(wd);
	wd_stage_tick(wd);
	wd_own_checkin(wd, "running");
	wd_loop(wd);
	pthread_mutex_unlock(&wd->lock);
	wd_metrics_stop(&wd->metrics);
	log_info("instance=%s stopped", wd->instance);
	wd_shutdown(wd, lock_fd);
	return 0;
}
