/*
 * watchdog_multi.c - one service for several practice databases: when
 * [databases] asks for them, the watchdog runs as their supervisor. It
 * finds the databases to serve (pp_databases.h) at start, on SIGHUP and
 * every discover_interval_ms, and runs one ordinary watchdog per database
 * (this same program with PP_DATABASE=NAME: its own run directory, stages
 * and check-ins written to that database). A database that appears is
 * served without a restart; one that goes away (or is skipped now) has its
 * watchdog stopped; a watchdog that dies is started again after a growing
 * pause. SIGTERM stops them all. Owns the table of per-database watchdogs;
 * a database's slot in it is its index (PP_DATABASE_INDEX), which gives it
 * its own metrics and SMS callback ports.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pp_databases.h"
#include "pp_log.h"
#include "pp_util.h"
#include "watchdog.h"

#define MULTI_MAX 256
#define MULTI_BACKOFF_MAX_MS 30000

typedef struct {
	char name[64];
	pid_t pid;          /* 0: not running */
	int wanted;         /* in the last discovery */
	int64_t start_at;   /* pp_mono_ms() of the next start while not running */
	int64_t backoff_ms; /* pause before the next start after a death */
	int64_t started;    /* pp_mono_ms() of the last start */
} multi_db_t;

static volatile sig_atomic_t multi_stop, multi_hup;

static void multi_on_signal(int sig)
{
	if (sig == SIGHUP)
		multi_hup = 1;
	else
		multi_stop = 1;
}

static void multi_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = multi_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

/* multi_ports - the metrics and SMS callback ports database m gets (its
 * config view, as its watchdog and sms stage will read it), for the log. */
static void multi_ports(const multi_db_t *m, size_t index, const char *cfg_path, char *buf,
                        size_t len)
{
	char err[256], idx[32];
	snprintf(idx, sizeof(idx), "%zu", index);
	setenv("PP_DATABASE", m->name, 1);
	setenv("PP_DATABASE_INDEX", idx, 1);
	pp_config_t *cfg = pp_config_load(cfg_path, err, sizeof(err));
	unsetenv("PP_DATABASE");
	unsetenv("PP_DATABASE_INDEX");
	if (cfg == NULL) {
		snprintf(buf, len, "(%s)", err);
		return;
	}
	snprintf(buf, len, "metrics_port=%s callback_port=%s",
	         pp_config_get(cfg, "watchdog", "metrics_port", "0"),
	         pp_config_get(cfg, "sms", "callback_port", "0"));
	pp_config_free(&cfg);
}

/* multi_start - fork/exec this program for database number index (its
 * slot: the metrics and SMS callback ports of a discovered database are
 * the configured ones plus its index, see pp_config_load). */
static void multi_start(multi_db_t *m, size_t index, const char *self, const char *cfg_path,
                        int verbose)
{
	char ports[300], idx[32];
	multi_ports(m, index, cfg_path, ports, sizeof(ports));
	snprintf(idx, sizeof(idx), "%zu", index);
	pid_t pid = fork();
	if (pid == 0) {
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		setenv("PP_DATABASE", m->name, 1);
		setenv("PP_DATABASE_INDEX", idx, 1);
		char *argv[] = {(char *)self, "-c", (char *)cfg_path, verbose ? "-v" : NULL, NULL};
		execv(self, argv);
		_exit(127);
	}
	if (pid < 0) {
		log_warn("database=%s cannot start its watchdog", m->name);
		m->start_at = pp_mono_ms() + 1000;
		return;
	}
	m->pid = pid;
	m->started = pp_mono_ms();
	log_info("database=%s served: watchdog pid=%d index=%zu %s", m->name, (int)pid, index,
	         ports);
}

/* multi_discover - mark the databases to serve; new ones get a slot. */
static void multi_discover(const pp_config_t *cfg, multi_db_t *dbs, size_t *n)
{
	pp_databases_t found;
	char err[512];
	if (pp_databases_find(cfg, &found, err, sizeof(err)) != 0) {
		log_warnx("cannot list the practice databases (serving the same ones): %s", err);
		return;
	}
	for (size_t i = 0; i < *n; i++)
		dbs[i].wanted = 0;
	for (size_t k = 0; k < found.count; k++) {
		size_t i = 0;
		while (i < *n && strcmp(dbs[i].name, found.names[k]) != 0)
			i++;
		if (i == *n) {
			if (*n == MULTI_MAX) {
				log_warnx("database=%s not served: at most %d databases",
				          found.names[k], MULTI_MAX);
				continue;
			}
			memset(&dbs[i], 0, sizeof(dbs[i]));
			pp_strlcpy(dbs[i].name, found.names[k], sizeof(dbs[i].name));
			dbs[i].backoff_ms = 1000;
			(*n)++;
		}
		dbs[i].wanted = 1;
	}
	for (size_t k = 0; k < found.nskipped; k++)
		log_info("database=%s skipped: %s", found.skipped[k], found.why[k]);
	pp_databases_free(&found);
}

/* multi_reap - note watchdogs that exited; plan their restart. */
static void multi_reap(multi_db_t *dbs, size_t n)
{
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (size_t i = 0; i < n; i++) {
			if (dbs[i].pid != pid)
				continue;
			dbs[i].pid = 0;
			int64_t ran = pp_mono_ms() - dbs[i].started;
			dbs[i].backoff_ms = ran > 60000 ? 1000
			                    : dbs[i].backoff_ms * 2 > MULTI_BACKOFF_MAX_MS
			                        ? MULTI_BACKOFF_MAX_MS
			                        : dbs[i].backoff_ms * 2;
			dbs[i].start_at = pp_mono_ms() + (multi_stop ? 0 : dbs[i].backoff_ms);
			log_info("database=%s watchdog pid=%d ended (%s %d)%s", dbs[i].name,
			         (int)pid, WIFSIGNALED(status) ? "signal" : "exit",
			         WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status),
			         dbs[i].wanted && !multi_stop ? "; starting it again" : "");
		}
	}
}

/* multi_tend - start what is wanted and not running, stop what is not. */
static void multi_tend(multi_db_t *dbs, size_t n, const char *self, const char *cfg_path,
                       int verbose)
{
	int64_t now = pp_mono_ms();
	for (size_t i = 0; i < n; i++) {
		if (dbs[i].wanted && dbs[i].pid == 0 && now >= dbs[i].start_at)
			multi_start(&dbs[i], i, self, cfg_path, verbose);
		else if (!dbs[i].wanted && dbs[i].pid > 0 && kill(dbs[i].pid, SIGTERM) == 0)
			log_info("database=%s no longer served: stopping its watchdog pid=%d",
			         dbs[i].name, (int)dbs[i].pid);
	}
}

/* multi_shutdown - SIGTERM every watchdog, SIGKILL what outlives the wait. */
static void multi_shutdown(multi_db_t *dbs, size_t n, int64_t wait_ms)
{
	size_t running = 0;
	for (size_t i = 0; i < n; i++)
		if (dbs[i].pid > 0 && kill(dbs[i].pid, SIGTERM) == 0)
			running++;
	int64_t deadline = pp_mono_ms() + wait_ms;
	while (running > 0 && pp_mono_ms() < deadline) {
		usleep(50000);
		multi_reap(dbs, n);
		running = 0;
		for (size_t i = 0; i < n; i++)
			running += dbs[i].pid > 0;
	}
	for (size_t i = 0; i < n; i++)
		if (dbs[i].pid > 0) {
			log_warnx("database=%s watchdog pid=%d killed after %lld ms", dbs[i].name,
			          (int)dbs[i].pid, (long long)wait_ms);
			kill(dbs[i].pid, SIGKILL);
		}
	while (waitpid(-1, NULL, 0) > 0)
		;
}

int wd_multi_main(const char *self, const char *cfg_path, pp_config_t **cfg, int verbose)
{
	static multi_db_t dbs[MULTI_MAX];
	size_t n = 0;
	char err[512];
	int64_t interval = 60000, stop_ms = 30000, next_discovery = 0;
	multi_signals();
	log_info("instance=watchdog serving several practice databases ([databases])");
	while (!multi_stop) {
		if (multi_hup) {
			multi_hup = 0;
			pp_config_t *fresh = pp_config_load(cfg_path, err, sizeof(err));
			if (fresh == NULL) {
				log_warnx("reload refused, keeping the old configuration: %s", err);
			} else {
				pp_config_free(cfg);
				*cfg = fresh;
			}
			for (size_t i = 0; i < n; i++)
				if (dbs[i].pid > 0)
					kill(dbs[i].pid, SIGHUP);
			next_discovery = 0;
		}
		if (pp_mono_ms() >= next_discovery) {
			if (pp_config_get_int(*cfg, "databases", "discover_interval_ms", 60000,
			                      1000, 86400000, &interval, err, sizeof(err)) != 0)
				log_warnx("%s", err);
			multi_discover(*cfg, dbs, &n);
			next_discovery = pp_mono_ms() + interval;
		}
		multi_reap(dbs, n);
		multi_tend(dbs, n, self, cfg_path, verbose);
		usleep(100000);
	}
	if (pp_config_get_int(*cfg, "watchdog", "stop_timeout_ms", 30000, 100, 600000, &stop_ms,
	                      err, sizeof(err)) != 0)
		stop_ms = 30000;
	multi_shutdown(dbs, n, stop_ms + 5000);
	log_info("instance=watchdog stopped (every practice database)");
	return 0;
}
