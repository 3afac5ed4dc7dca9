/*
 * watchdog_stage.c - the process table: starting stage instances with
 * fork/exec, reaping them, restarting with backoff, stopping with SIGTERM
 * then SIGKILL, and the heartbeat deadlines. Owns wd->inst.
 *
 * Backoff: the first death restarts at once; each further death within
 * WD_QUICK_DEATH_MS of starting doubles the delay (1 s, 2 s, ... up to
 * WD_BACKOFF_MAX_MS); an instance that has run WD_BACKOFF_RESET_MS starts
 * over. An operator restart skips the backoff.
 *
 * Hangs: an instance silent for heartbeat_timeout_ms gets heartbeat_missed;
 * silent for silent_restart_ms it is stopped (SIGKILL at once when the
 * kernel says it is stopped, as after SIGSTOP: SIGTERM would wait). One
 * that beats but whose processed counter has not moved for its stall
 * timeout while it reports work pending is hung: stage_hung, SIGKILL.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pp_log.h"
#include "pp_util.h"
#include "watchdog.h"

wd_instance_t *wd_stage_find(watchdog_t *wd, const char *name)
{
	for (size_t i = 0; i < wd->ninst; i++)
		if (strcmp(wd->inst[i].name, name) == 0)
			return &wd->inst[i];
	return NULL;
}

int wd_stage_known(const watchdog_t *wd, const char *stage)
{
	for (size_t i = 0; i < wd->ninst; i++)
		if (strcmp(wd->inst[i].stage, stage) == 0)
			return 1;
	return 0;
}

size_t wd_stage_running(const watchdog_t *wd)
{
	size_t n = 0;
	for (size_t i = 0; i < wd->ninst; i++)
		n += wd->inst[i].pid > 0;
	return n;
}

void wd_stage_note_checkin(watchdog_t *wd, const wd_instance_t *inst, const char *state)
{
	wd_checkin_row_t row = {
	    .stage = inst->stage,
	    .instance = inst->name,
	    .host = pp_hostname(),
	    .pid = inst->pid > 0 ? inst->pid : inst->last_pid,
	    .state = state,
	    .started_wall_ms = inst->started_wall,
	    .heartbeat_wall_ms = inst->heartbeat_wall,
	    .restarts = inst->restarts,
	    .processed = inst->last_hb.processed,
	    .failed = inst->last_hb.failed,
	    .pending = inst->last_hb.pending,
	    .uptime_s = inst->pid > 0 ? (pp_mono_ms() - inst->started_mono) / 1000 : 0,
	};
	wd_checkin_put(wd->checkin, &row);
}

/* stage_exec - in the child: default signals, no inherited descriptors,
 * die with the watchdog, then exec. Only async-signal-safe calls; the
 * failure text was prepared before fork. */
static void stage_exec(char *const argv[], const sigset_t *mask, const char *fail_msg)
{
	static const int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGCHLD, SIGPIPE};
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		signal(sigs[i], SIG_DFL);
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (close_range(3, ~0U, 0) != 0)
		for (int fd = 3; fd < 1024; fd++)
			close(fd);
	sigprocmask(SIG_SETMASK, mask, NULL);
	execv(argv[0], argv);
	ssize_t w = write(STDERR_FILENO, fail_msg, strlen(fail_msg));
	(void)w;
	_exit(127);
}

/* stage_carry_counters - keep the last process's counters before a new
 * one starts from zero. */
static void stage_carry_counters(wd_instance_t *inst)
{
	inst->prior_processed += inst->last_hb.processed > 0 ? inst->last_hb.processed : 0;
	inst->prior_failed += inst->last_hb.failed > 0 ? inst->last_hb.failed : 0;
	for (int k = 0; k < WD_FAILURE_KINDS; k++) {
		inst->prior_failures[k] += inst->failures[k];
		inst->failures[k] = 0;
	}
	memset(&inst->last_hb, 0, sizeof(inst->last_hb));
	inst->hung = 0;
	inst->kill_why[0] = '\0';
	inst->nselftests = 0;
}

/* stage_start - fork/exec one instance; on failure retry in a second. */
static int stage_start(watchdog_t *wd, wd_instance_t *inst)
{
	char path[PATH_MAX + 64], fail_msg[PATH_MAX + 256];
	char *argv[8];
	int argc = 0;
	sigset_t all, old;

	snprintf(path, sizeof(path), "%s/practicepost-%s", wd->bin_dir, inst->stage);
	argv[argc++] = path;
	argv[argc++] = "-c";
	argv[argc++] = (char *)pp_config_path(wd->cfg);
	argv[argc++] = "--instance";
	argv[argc++] = inst->name;
	if (wd->verbose)
		argv[argc++] = "-v";
	argv[argc] = NULL;

	if (access(path, X_OK) != 0)
		log_warn("%s cannot run %s", inst->name, path); /* the exec fails: backoff */
	snprintf(fail_msg, sizeof(fail_msg), "%s: fatal: %s: cannot execute %s\n", log_progname(),
	         inst->name, path);

	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	pid_t pid = fork();
	if (pid == 0)
		stage_exec(argv, &old, fail_msg);
	int fork_errno = errno;
	sigprocmask(SIG_SETMASK, &old, NULL);
	const char *why = inst->operator_restart ? "an operator restart" : inst->exit_text;
	inst->start_scheduled = 0;
	inst->operator_restart = 0;
	if (pid < 0) {
		errno = fork_errno;
		log_warn("%s start failed: fork", inst->name);
		inst->start_scheduled = 1;
		inst->start_at_mono = pp_mono_ms() + 1000;
		return -1;
	}
	stage_carry_counters(inst);
	inst->pid = pid;
	inst->last_pid = pid;
	inst->started_mono = pp_mono_ms();
	inst->progress_mono = inst->started_mono;
	inst->started_wall = pp_now_ms();
	inst->heartbeat_mono = 0;
	inst->hb_missed = 0;
	inst->hup_pending = 0;
	inst->kill_at_mono = 0;
	memset(&inst->last_hb, 0, sizeof(inst->last_hb));
	if (inst->ever_started)
		inst->restarts++;
	wd_event(wd, "stage_started", inst->stage, inst->name, pid, 0, path);
	if (inst->ever_started) {
		char detail[128];
		snprintf(detail, sizeof(detail), "restart %d after %s", inst->restarts, why);
		wd_event(wd, "stage_restarted", inst->stage, inst->name, pid, inst->restarts,
		         detail);
	}
	inst->ever_started = 1;
	wd_stage_note_checkin(wd, inst, "starting");
	return 0;
}

/* stage_terminate - SIGTERM now, SIGKILL after stop_timeout_ms. */
static void stage_terminate(watchdog_t *wd, wd_instance_t *inst)
{
	if (inst->pid <= 0 || inst->kill_at_mono != 0)
		return;
	log_info("%s pid=%d stopping (SIGTERM)", inst->name, (int)inst->pid);
	kill(inst->pid, SIGTERM);
	inst->kill_at_mono = pp_mono_ms() + wd->stop_timeout_ms;
}

static int64_t stage_backoff_ms(int quick_deaths)
{
	if (quick_deaths <= 1)
		return 0;
	int shift = quick_deaths - 2;
	if (shift > 15)
		return WD_BACKOFF_MAX_MS;
	int64_t ms = (int64_t)1000 << shift;
	return ms > WD_BACKOFF_MAX_MS ? WD_BACKOFF_MAX_MS : ms;
}

/* stage_exited - one of ours was reaped: record it and plan its restart. */
static void stage_exited(watchdog_t *wd, wd_instance_t *inst, int status)
{
	int64_t now = pp_mono_ms(), ran = now - inst->started_mono;
	int code;
	if (WIFSIGNALED(status)) {
		code = WTERMSIG(status);
		snprintf(inst->exit_text, sizeof(inst->exit_text), "killed by signal %d (%s)", code,
		         strsignal(code));
	} else {
		code = WEXITSTATUS(status);
		snprintf(inst->exit_text, sizeof(inst->exit_text), "exit %d", code);
	}
	char detail[200];
	snprintf(detail, sizeof(detail), "%s after %lld ms%s%s", inst->exit_text, (long long)ran,
	         inst->kill_why[0] ? "; " : "", inst->kill_why);
	wd_event(wd, "stage_exited", inst->stage, inst->name, inst->pid, code, detail);
	inst->pid = 0;
	inst->kill_at_mono = 0;
	inst->heartbeat_mono = 0;
	if (wd->stopping || inst->retired) {
		wd_stage_note_checkin(wd, inst, "stopped");
		return;
	}
	wd_stage_note_checkin(wd, inst, "exited");
	int64_t delay = 0;
	if (inst->restart_now) {
		inst->quick_deaths = 0;
	} else {
		if (ran >= WD_BACKOFF_RESET_MS)
			inst->quick_deaths = 0;
		if (ran < WD_QUICK_DEATH_MS || inst->quick_deaths == 0)
			inst->quick_deaths++;
		delay = stage_backoff_ms(inst->quick_deaths);
	}
	inst->restart_now = 0;
	inst->start_scheduled = 1;
	inst->start_at_mono = now + delay;
	if (delay > 0)
		log_warnx("%s died %d times soon after starting; restart in %lld ms", inst->name,
		          inst->quick_deaths, (long long)delay);
}

static void stage_remove(watchdog_t *wd, wd_instance_t *inst)
{
	size_t i = (size_t)(inst - wd->inst);
	log_info("%s retired", inst->name);
	memmove(&wd->inst[i], &wd->inst[i + 1], (wd->ninst - i - 1) * sizeof(*inst));
	wd->ninst--;
}

void wd_stage_reap(watchdog_t *wd)
{
	pid_t pid;
	int status;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		wd_instance_t *inst = NULL;
		for (size_t i = 0; i < wd->ninst && inst == NULL; i++)
			if (wd->inst[i].pid == pid)
				inst = &wd->inst[i];
		if (inst == NULL) {
			log_debug("pid=%d reaped (not a stage)", (int)pid);
			continue;
		}
		stage_exited(wd, inst, status);
		if (inst->retired)
			stage_remove(wd, inst);
	}
	if (pid < 0 && errno != ECHILD)
		log_warn("waitpid");
}

/* stage_stopped - 1 if the kernel says pid is stopped (SIGSTOP, ptrace). */
static int stage_stopped(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	const char *paren = strrchr(buf, ')'); /* the name may hold anything */
	return paren != NULL && (paren[1] == ' ' && (paren[2] == 'T' || paren[2] == 't'));
}

/* stage_kill_hung - stage_hung, then SIGKILL now (the restart follows the
 * exit as for any death). */
static void stage_kill_hung(watchdog_t *wd, wd_instance_t *inst, int64_t now, int64_t idle_ms,
                            const char *detail, const char *why)
{
	inst->hung = 1;
	pp_strlcpy(inst->kill_why, why, sizeof(inst->kill_why));
	wd_event(wd, "stage_hung", inst->stage, inst->name, inst->pid, idle_ms, detail);
	wd_stage_note_checkin(wd, inst, "hung");
	kill(inst->pid, SIGKILL);
	inst->kill_at_mono = now + wd->stop_timeout_ms;
}

/* stage_check_heartbeat - heartbeat_missed once per silence; after
 * silent_restart_ms the instance is killed (a stopped process) or stopped
 * (SIGTERM, then SIGKILL), and restarted when it has exited. */
static void stage_check_heartbeat(watchdog_t *wd, wd_instance_t *inst, int64_t now)
{
	int64_t since = inst->heartbeat_mono ? inst->heartbeat_mono : inst->started_mono;
	int64_t silent = now - since;
	char detail[128];
	if (inst->pid <= 0 || inst->kill_at_mono != 0 || silent < wd->hb_timeout_ms)
		return;
	if (!inst->hb_missed) {
		inst->hb_missed = 1;
		snprintf(detail, sizeof(detail), "no heartbeat for %lld ms", (long long)silent);
		wd_event(wd, "heartbeat_missed", inst->stage, inst->name, inst->pid, 0, detail);
		wd_stage_note_checkin(wd, inst, "silent");
	}
	if (silent < wd->silent_restart_ms)
		return;
	int stopped = stage_stopped(inst->pid);
	snprintf(detail, sizeof(detail), "no heartbeat for %lld ms%s", (long long)silent,
	         stopped ? " (process stopped)" : "");
	if (stopped) {
		stage_kill_hung(wd, inst, now, silent, detail, "silent and stopped: SIGKILL");
		return;
	}
	log_warnx("%s pid=%d %s; restarting it", inst->name, (int)inst->pid, detail);
	wd_event(wd, "stage_hung", inst->stage, inst->name, inst->pid, silent, detail);
	pp_strlcpy(inst->kill_why, "silent: stopped by the watchdog", sizeof(inst->kill_why));
	inst->hung = 1;
	stage_terminate(wd, inst);
}

/* stage_check_progress - heartbeats come, work is pending, but processed
 * has not moved for the stall timeout: hung (a stuck worker thread). */
static void stage_check_progress(watchdog_t *wd, wd_instance_t *inst, int64_t now)
{
	char detail[160];
	int64_t idle = now - inst->progress_mono;
	if (inst->stall_ms <= 0 || inst->pid <= 0 || inst->kill_at_mono != 0 || inst->hung ||
	    inst->hb_missed || inst->heartbeat_mono == 0 || inst->last_hb.pending <= 0 ||
	    idle < inst->stall_ms)
		return;
	snprintf(detail, sizeof(detail),
	         "processed=%lld unchanged for %lld ms with pending=%lld; SIGKILL",
	         (long long)inst->last_hb.processed, (long long)idle,
	         (long long)inst->last_hb.pending);
	log_warnx("%s pid=%d hung: %s", inst->name, (int)inst->pid, detail);
	stage_kill_hung(wd, inst, now, idle, detail, "hung: no progress with work pending");
}

void wd_stage_tick(watchdog_t *wd)
{
	int64_t now = pp_mono_ms();
	for (size_t i = 0; i < wd->ninst; i++) {
		wd_instance_t *inst = &wd->inst[i];
		if (inst->pid > 0 && inst->kill_at_mono != 0 && now >= inst->kill_at_mono) {
			log_warnx("%s pid=%d did not stop in %lld ms; SIGKILL", inst->name,
			          (int)inst->pid, (long long)wd->stop_timeout_ms);
			kill(inst->pid, SIGKILL);
			inst->kill_at_mono = now + wd->stop_timeout_ms;
		}
		if (inst->pid > 0 && now - inst->started_mono >= WD_BACKOFF_RESET_MS)
			inst->quick_deaths = 0;
		if (inst->pid > 0) {
			stage_check_heartbeat(wd, inst, now);
			stage_check_progress(wd, inst, now);
		}
		if (inst->pid == 0 && inst->start_scheduled && !inst->retired && !wd->stopping &&
		    now >= inst->start_at_mono)
			stage_start(wd, inst);
	}
}

int64_t wd_stage_next_ms(const watchdog_t *wd)
{
	int64_t now = pp_mono_ms(), next = 1000;
	for (size_t i = 0; i < wd->ninst; i++) {
		const wd_instance_t *inst = &wd->inst[i];
		int64_t at = -1;
		if (inst->pid == 0 && inst->start_scheduled && !wd->stopping)
			at = inst->start_at_mono;
		else if (inst->pid > 0 && inst->kill_at_mono != 0)
			at = inst->kill_at_mono;
		else if (inst->pid > 0)
			at = (inst->heartbeat_mono ? inst->heartbeat_mono : inst->started_mono) +
			     (inst->hb_missed ? wd->silent_restart_ms : wd->hb_timeout_ms);
		if (at >= 0 && at - now < next)
			next = at - now;
		if (inst->pid > 0 && inst->stall_ms > 0 && inst->last_hb.pending > 0 &&
		    inst->progress_mono + inst->stall_ms - now < next)
			next = inst->progress_mono + inst->stall_ms - now;
	}
	return next < 0 ? 0 : next;
}

void wd_stage_restart(watchdog_t *wd, wd_instance_t *inst)
{
	inst->operator_restart = 1;
	inst->quick_deaths = 0;
	if (inst->pid > 0) {
		inst->restart_now = 1;
		stage_terminate(wd, inst);
	} else {
		inst->start_scheduled = 1;
		inst->start_at_mono = pp_mono_ms();
	}
}

void wd_stage_stop_all(watchdog_t *wd)
{
	for (size_t i = 0; i < wd->ninst; i++) {
		wd->inst[i].start_scheduled = 0;
		stage_terminate(wd, &wd->inst[i]);
	}
}

void wd_stage_signal(watchdog_t *wd, int sig)
{
	for (size_t i = 0; i < wd->ninst; i++) {
		wd_instance_t *inst = &wd->inst[i];
		if (inst->pid <= 0 || inst->kill_at_mono != 0)
			continue;
		if (inst->heartbeat_mono == 0 && sig == SIGHUP) {
			log_debug("%s pid=%d still starting; SIGHUP after its first heartbeat",
			          inst->name, (int)inst->pid);
			inst->hup_pending = 1;
			continue;
		}
		kill(inst->pid, sig);
	}
}

void wd_stage_heartbeat(watchdog_t *wd, wd_instance_t *inst, const pp_msg_heartbeat_t *hb)
{
	if (inst->hb_missed)
		log_info("%s pid=%d heartbeats again", inst->name, (int)inst->pid);
	int64_t now = pp_mono_ms();
	if (inst->heartbeat_mono == 0 || hb->processed != inst->last_hb.processed ||
	    hb->pending <= 0)
		inst->progress_mono = now;
	inst->heartbeat_mono = now;
	inst->heartbeat_wall = pp_now_ms();
	inst->hb_missed = 0;
	inst->last_hb = *hb;
	if (inst->hup_pending) {
		inst->hup_pending = 0;
		kill(inst->pid, SIGHUP);
	}
	wd_stage_note_checkin(wd, inst, hb->state);
}

const char *wd_stage_health(const watchdog_t *wd, const wd_instance_t *inst, int64_t now, char *buf,
                            size_t len)
{
	if (inst->pid <= 0) {
		snprintf(buf, len, "%s is not running%s%s", inst->name,
		         inst->exit_text[0] ? ": " : "", inst->exit_text);
		return buf;
	}
	if (inst->hung)
		snprintf(buf, len, "%s pid=%d is hung (%s)", inst->name, (int)inst->pid,
		         inst->kill_why);
	else if (inst->kill_at_mono != 0)
		snprintf(buf, len, "%s pid=%d is stopping", inst->name, (int)inst->pid);
	else if (inst->heartbeat_mono == 0)
		snprintf(buf, len, "%s pid=%d is starting (no heartbeat yet)", inst->name,
		         (int)inst->pid);
	else if (inst->hb_missed || now - inst->heartbeat_mono >= wd->hb_timeout_ms)
		snprintf(buf, len, "%s pid=%d sent no heartbeat for %lld ms", inst->name,
		         (int)inst->pid, (long long)(now - inst->heartbeat_mono));
	else {
		for (int i = 0; i < inst->nselftests; i++)
			if (!inst->selftests[i].ok) {
				snprintf(buf, len, "%s pid=%d fails its self-test %s", inst->name,
				         (int)inst->pid, inst->selftests[i].check);
				return buf;
			}
		return NULL;
	}
	return buf;
}

void wd_stage_failures(wd_instance_t *inst, const pp_msg_failures_t *f)
{
	const int64_t v[WD_FAILURE_KINDS] = {f->temporary, f->permanent, f->account};
	for (int k = 0; k < WD_FAILURE_KINDS; k++)
		if (v[k] >= inst->failures[k]) /* counters of one process only grow */
			inst->failures[k] = v[k];
}

void wd_stage_selftest(wd_instance_t *inst, const pp_msg_selftest_t *st)
{
	int i;
	for (i = 0; i < inst->nselftests; i++)
		if (strcmp(inst->selftests[i].check, st->check) == 0)
			break;
	if (i == inst->nselftests) {
		if (i == WD_SELFTESTS_MAX) {
			log_warnx("%s selftest=%s not tracked for /healthz: more than %d checks",
			          inst->name, st->check, WD_SELFTESTS_MAX);
			return;
		}
		inst->nselftests++;
		pp_strlcpy(inst->selftests[i].check, st->check, sizeof(inst->selftests[i].check));
	}
	inst->selftests[i].ok = st->ok != 0;
}

static int stage_name_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > WD_STAGE_MAX)
		return 0;
	for (; *s; s++)
		if (!islower((unsigned char)*s) && !isdigit((unsigned char)*s) && *s != '_' &&
		    *s != '-')
			return 0;
	return 1;
}

/* stage_stall_ms - <stage>_stall_timeout_ms, else [watchdog] stall_timeout_ms. */
static int stage_stall_ms(watchdog_t *wd, const char *stage, int64_t *ms, char *err, size_t errlen)
{
	char key[WD_STAGE_MAX + 24];
	snprintf(key, sizeof(key), "%.32s_stall_timeout_ms", stage);
	return pp_config_get_int(wd->cfg, "watchdog", key, wd->stall_ms, 0, 86400000, ms, err,
	                         errlen);
}

/* stage_add - a new instance of stage, to be started at once. */
static void stage_add(watchdog_t *wd, const char *stage, int n)
{
	wd->inst = xrealloc(wd->inst, (wd->ninst + 1) * sizeof(*wd->inst));
	wd_instance_t *inst = &wd->inst[wd->ninst++];
	memset(inst, 0, sizeof(*inst));
	pp_strlcpy(inst->stage, stage, sizeof(inst->stage));
	snprintf(inst->name, sizeof(inst->name), "%.32s.%d", stage, n);
	inst->index = n;
	char err[256];
	if (stage_stall_ms(wd, stage, &inst->stall_ms, err, sizeof(err)) != 0)
		inst->stall_ms = wd->stall_ms; /* checked before: cannot happen */
	inst->start_scheduled = 1;
	inst->start_at_mono = pp_mono_ms();
}

/* stage_parse_counts - [watchdog] stages and <stage>_instances into
 * parallel arrays; -1 with err on a bad value. */
static int stage_parse_counts(watchdog_t *wd, char (*names)[WD_STAGE_MAX + 1], int *counts,
                              size_t *n, char *err, size_t errlen)
{
	const char *list =
	    pp_config_get(wd->cfg, "watchdog", "stages", "composer sender sms fetcher");
	char *copy = xstrdup(list), *save = NULL;
	int rc = -1;
	*n = 0;
	for (char *tok = strtok_r(copy, " \t,", &save); tok; tok = strtok_r(NULL, " \t,", &save)) {
		char key[WD_STAGE_MAX + 16];
		int64_t count;
		if (!stage_name_valid(tok) || strcmp(tok, "watchdog") == 0) {
			snprintf(err, errlen, "[watchdog] stages: \"%s\" is not a stage name", tok);
			goto fail;
		}
		if (*n == WD_INSTANCES_MAX) {
			snprintf(err, errlen, "[watchdog] stages: more than %d stages",
			         WD_INSTANCES_MAX);
			goto fail;
		}
		snprintf(key, sizeof(key), "%s_instances", tok);
		if (pp_config_get_int(wd->cfg, "watchdog", key, 1, 0, WD_INSTANCES_MAX, &count, err,
		                      errlen) != 0)
			goto fail;
		pp_strlcpy(names[*n], tok, sizeof(names[*n]));
		counts[(*n)++] = (int)count;
	}
	rc = 0;
fail:
	free(copy);
	return rc;
}

/* stage_stall_settings - check the stall timeouts of every configured
 * stage, then apply them to the table. */
static int stage_stall_settings(watchdog_t *wd, char (*names)[WD_STAGE_MAX + 1], size_t n,
                                char *err, size_t errlen)
{
	int64_t ms;
	for (size_t s = 0; s < n; s++)
		if (stage_stall_ms(wd, names[s], &ms, err, errlen) != 0)
			return -1;
	for (size_t i = 0; i < wd->ninst; i++)
		if (stage_stall_ms(wd, wd->inst[i].stage, &ms, err, errlen) == 0)
			wd->inst[i].stall_ms = ms;
	return 0;
}

int wd_stage_configure(watchdog_t *wd, char *err, size_t errlen)
{
	char names[WD_INSTANCES_MAX][WD_STAGE_MAX + 1];
	int counts[WD_INSTANCES_MAX];
	size_t n;
	if (stage_parse_counts(wd, names, counts, &n, err, errlen) != 0 ||
	    stage_stall_settings(wd, names, n, err, errlen) != 0)
		return -1;
	/* Retire what is no longer configured. */
	for (size_t i = 0; i < wd->ninst; i++) {
		wd_instance_t *inst = &wd->inst[i];
		int keep = 0;
		for (size_t s = 0; s < n && !keep; s++)
			keep = strcmp(inst->stage, names[s]) == 0 && inst->index <= counts[s];
		if (keep || inst->retired)
			continue;
		inst->retired = 1;
		inst->start_scheduled = 0;
		if (inst->pid > 0) {
			stage_terminate(wd, inst);
		} else {
			log_info("%s retired", inst->name);
			memmove(inst, inst + 1, (wd->ninst - i - 1) * sizeof(*inst));
			wd->ninst--;
			i--;
		}
	}
	for (size_t s = 0; s < n; s++)
		for (int k = 1; k <= counts[s]; k++) {
			char name[WD_NAME_MAX + 1];
			snprintf(name, sizeof(name), "%.32s.%d", names[s], k);
			wd_instance_t *inst = wd_stage_find(wd, name);
			if (inst == NULL)
				stage_add(wd, names[s], k);
			else if (inst->retired) {
				/* Still stopping: start it again once it has exited. */
				inst->retired = 0;
				inst->restart_now = 1;
			}
		}
	return 0;
}
