/*
 * watchdog.h - state shared by the watchdog's files: the process table of
 * supervised stage instances, the peers seen on the control socket, the
 * operator restarts waiting for their reply, and the settings from [watchdog].
 * The watchdog_t is owned by watchdog_main.c; the other files borrow it.
 *
 * Events (EVENT on the PUB socket, topic "event.<kind>"): stage_started
 * (status 0), stage_exited (status = exit code, or the signal number when
 * detail says "killed by signal"), stage_restarted (status = restart count),
 * heartbeat_missed, selftest_failed, account_test (status 0 passed, else
 * the step that failed; detail names the account and the outcome),
 * stage_hung (the watchdog kills an instance that is silent for
 * silent_restart_ms, or that beats but has processed nothing for
 * stall_timeout_ms with work pending; status = ms without progress).
 *
 * Locking: the main loop holds wd->lock except while it waits in zmq_poll;
 * the metrics endpoint's threads take it to read the table.
 */
#ifndef WATCHDOG_H
#define WATCHDOG_H

#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include "pp_config.h"
#include "pp_db.h"
#include "pp_msg.h"
#include "pp_zmq.h"

#define WD_STAGE_MAX 32
#define WD_NAME_MAX PP_MSG_FROM_MAX
#define WD_INSTANCES_MAX 64
#define WD_QUICK_DEATH_MS 10000   /* dying sooner than this raises the backoff */
#define WD_BACKOFF_RESET_MS 60000 /* running this long clears it */
#define WD_BACKOFF_MAX_MS 30000
#define WD_SELFTESTS_MAX 8 /* self-test names remembered per instance */
#define WD_EVENT_KINDS_MAX 16
#define WD_FAILURE_KINDS 3 /* temporary, permanent, account (pp_failure_kind_t) */

/* The last result of one self-test of the current process. */
typedef struct {
	char check[65];
	int ok;
} wd_selftest_t;

typedef struct wd_checkin wd_checkin_t;

/* One supervised process: "<stage>.<n>", started with fork/exec. */
typedef struct {
	char stage[WD_STAGE_MAX + 1];
	char name[WD_NAME_MAX + 1];
	int index;            /* n of "<stage>.<n>", from 1 */
	pid_t pid;            /* 0 while not running */
	pid_t last_pid;       /* for check-ins and status after an exit */
	int64_t started_mono; /* start of the current (or last) process */
	int64_t started_wall;
	int64_t heartbeat_mono; /* last heartbeat of the current pid, 0 = none */
	int64_t heartbeat_wall; /* last heartbeat ever, for check-ins */
	pp_msg_heartbeat_t last_hb;
	int hb_missed; /* heartbeat_missed published for this silence */
	int restarts;  /* starts after the first */
	int ever_started;
	int quick_deaths;    /* consecutive deaths soon after starting */
	int start_scheduled; /* start at start_at_mono */
	int64_t start_at_mono;
	int64_t kill_at_mono; /* SIGKILL deadline after a SIGTERM; 0 = none */
	int restart_now;      /* when it exits, start again without backoff */
	int operator_restart; /* a CONTROL restart waits for this instance */
	int retired;          /* no longer configured: never start again */
	int hup_pending;      /* reload arrived before its first heartbeat */
	char exit_text[64];   /* "exit 1", "killed by signal 9" */
	/* Counters of earlier processes of this instance (the metrics add the
	 * current process's heartbeat to them, so they never go back). */
	int64_t prior_processed, prior_failed;
	int64_t prior_failures[WD_FAILURE_KINDS];
	int64_t failures[WD_FAILURE_KINDS]; /* the current process's, by kind */
	int64_t stall_ms;                   /* 0 = no stall detection */
	int64_t progress_mono;              /* processed last moved, or nothing was pending */
	int hung;                           /* stage_hung published; being killed */
	char kill_why[48];                  /* why the watchdog killed it, for stage_exited */
	wd_selftest_t selftests[WD_SELFTESTS_MAX];
	int nselftests;
} wd_instance_t;

/* A DEALER seen on the control socket that sent a heartbeat. */
typedef struct {
	char id[PP_ZMQ_ID_MAX];
	size_t idlen;
	char stage[WD_STAGE_MAX + 1];
	char instance[WD_NAME_MAX + 1];
	int64_t pid;
	int64_t seen_mono;
	int supervised; /* one of our own instances (events come from the table) */
	int hb_missed;
} wd_peer_t;

/* A CONTROL restart that is answered once its instances run again. */
typedef struct {
	char id[PP_ZMQ_ID_MAX];
	size_t idlen;
	char stage[WD_STAGE_MAX + 1];
	int64_t deadline_mono;
} wd_pending_t;

/* A credential test (account_test) in progress: its steps go back to the
 * CLI that asked for it. */
typedef struct {
	char request[PP_MSG_FROM_MAX + 1];
	char id[PP_ZMQ_ID_MAX]; /* the CLI */
	size_t idlen;
	char target[PP_ZMQ_ID_MAX]; /* the routing id of the instance running it */
	size_t targetlen;
	char instance[WD_NAME_MAX + 1];
	int64_t account_id;
	int step; /* the step in progress */
	int64_t deadline_mono;
} wd_test_t;

typedef struct wd_metrics wd_metrics_t;

typedef struct {
	char kind[33];
	int64_t count;
} wd_event_count_t;

typedef struct {
	pthread_mutex_t lock; /* see Locking above */
	pp_config_t *cfg;
	char instance[WD_NAME_MAX + 1]; /* our own name: "watchdog" */
	int verbose;
	char bin_dir[PATH_MAX];
	int64_t hb_interval_ms;
	int64_t hb_timeout_ms;
	int64_t stop_timeout_ms;
	int64_t silent_restart_ms; /* silent this long: killed and restarted */
	int64_t stall_ms;          /* [watchdog] stall_timeout_ms, 0 = off */
	void *control;             /* ROUTER */
	void *events;              /* PUB, NULL if [watchdog] events is unset */
	wd_instance_t *inst;
	size_t ninst;
	wd_peer_t *peers;
	size_t npeers;
	wd_pending_t *pending;
	size_t npending;
	wd_test_t *tests;
	size_t ntests;
	wd_checkin_t *checkin;
	int stopping;
	int64_t started_mono;
	int64_t started_wall;
	int64_t next_own_checkin;
	int64_t handled;  /* control messages handled */
	int64_t rejected; /* frames rejected */
	wd_metrics_t *metrics;
	wd_event_count_t event_counts[WD_EVENT_KINDS_MAX];
	size_t nevent_counts;
} watchdog_t;

/* watchdog_event.c */
/* wd_event - log the event and publish it on the PUB socket. */
void wd_event(watchdog_t *wd, const char *kind, const char *stage, const char *instance,
              int64_t pid, int64_t status, const char *detail);

/* watchdog_main.c */
/* wd_reload - reread the config file, apply it, forward SIGHUP to stages. */
void wd_reload(watchdog_t *wd);

/* watchdog_stage.c */
/* wd_stage_configure - make the table match [watchdog] stages and
 * <stage>_instances: add instances (started at once), retire the rest. */
int wd_stage_configure(watchdog_t *wd, char *err, size_t errlen);
void wd_stage_reap(watchdog_t *wd);
/* wd_stage_tick - starts due, SIGKILLs overdue, checks heartbeats. */
void wd_stage_tick(watchdog_t *wd);
/* wd_stage_next_ms - how long the loop may sleep (0..1000). */
int64_t wd_stage_next_ms(const watchdog_t *wd);
/* wd_stage_restart - operator restart: stop, then start without backoff. */
void wd_stage_restart(watchdog_t *wd, wd_instance_t *inst);
void wd_stage_stop_all(watchdog_t *wd);
/* wd_stage_signal - send sig to every running instance. One that has not
 * sent a heartbeat yet may not have its handlers installed: a SIGHUP for it
 * waits for that heartbeat (wd_stage_heartbeat). */
void wd_stage_signal(watchdog_t *wd, int sig);
size_t wd_stage_running(const watchdog_t *wd);
/* wd_stage_heartbeat - a heartbeat from the current process of inst. */
void wd_stage_heartbeat(watchdog_t *wd, wd_instance_t *inst, const pp_msg_heartbeat_t *hb);
wd_instance_t *wd_stage_find(watchdog_t *wd, const char *name);
/* wd_stage_known - 1 if stage is one we supervise (now or before reload). */
int wd_stage_known(const watchdog_t *wd, const char *stage);
/* wd_stage_note_checkin - queue this instance's check-in row. */
void wd_stage_note_checkin(watchdog_t *wd, const wd_instance_t *inst, const char *state);
/* wd_stage_health - NULL if inst is up, heartbeating, making progress and
 * passing its self-tests; else why not (in buf). */
const char *wd_stage_health(const watchdog_t *wd, const wd_instance_t *inst, int64_t now, char *buf,
                            size_t len);
/* wd_stage_failures - a failures message from the current process of inst. */
void wd_stage_failures(wd_instance_t *inst, const pp_msg_failures_t *f);
/* wd_stage_selftest - remember the result of a self-test of inst. */
void wd_stage_selftest(wd_instance_t *inst, const pp_msg_selftest_t *st);

/* watchdog_control.c */
/* wd_control_recv - handle what waits on the ROUTER (bounded per call). */
void wd_control_recv(watchdog_t *wd);
/* wd_control_tick - answer finished restarts, forget silent peers. */
void wd_control_tick(watchdog_t *wd);
/* wd_control_cancel - answer every waiting request with ok=0 and text. */
void wd_control_cancel(watchdog_t *wd, const char *text);

/* watchdog_test.c */
/* wd_test_request - an account_test from the CLI: answer the "service
 * running" step and forward the test to a sender instance (REPLY ok=1),
 * or report step 2 failed. */
void wd_test_request(watchdog_t *wd, const char *id, size_t idlen, const pp_msg_t *msg);
/* wd_test_step - an account_step from a stage, passed on to its CLI;
 * -1 with err if it is malformed. */
int wd_test_step(watchdog_t *wd, const pp_msg_t *msg, char *err, size_t errlen);
/* wd_test_tick - fail the tests whose instance went away or fell silent. */
void wd_test_tick(watchdog_t *wd);
/* wd_test_cancel - fail every test in progress with text. */
void wd_test_cancel(watchdog_t *wd, const char *text);

/* watchdog_metrics.c - the HTTP endpoint ([watchdog] metrics_address,
 * metrics_port): GET /metrics (Prometheus text) and GET /healthz. */
/* wd_metrics_start - NULL if metrics_port is 0; fatal if it cannot listen. */
wd_metrics_t *wd_metrics_start(watchdog_t *wd);
/* wd_metrics_stop - call without wd->lock held (the handlers take it). */
void wd_metrics_stop(wd_metrics_t **m);
/* wd_metrics_tick - sample the send counters (for sends per second). */
void wd_metrics_tick(watchdog_t *wd);
/* wd_metrics_configure - new conninfo / cache settings after a reload. */
void wd_metrics_configure(watchdog_t *wd);

/* watchdog_checkin.c */
typedef struct {
	const char *stage;
	const char *instance;
	const char *host;
	int64_t pid;
	const char *state;
	int64_t started_wall_ms;
	int64_t heartbeat_wall_ms; /* 0 = none yet (NULL) */
	int64_t restarts;
	int64_t processed, failed, pending, uptime_s;
} wd_checkin_row_t;

/* wd_checkin_new - start the writer thread; rows for one instance are
 * written at most once per interval_ms, a dead database retried every
 * retry_ms. wd_checkin_free writes what is left (once, waiting at most a
 * few seconds for a stuck database) and joins the thread. */
wd_checkin_t *wd_checkin_new(const char *conninfo, const char *appname, int64_t retry_ms,
                             int64_t interval_ms);
void wd_checkin_free(wd_checkin_t **ck);
/* wd_checkin_configure - new conninfo/intervals after a reload. */
void wd_checkin_configure(wd_checkin_t *ck, const char *conninfo, int64_t retry_ms,
                          int64_t interval_ms);
/* wd_checkin_put - remember the newest row for (stage, instance). */
void wd_checkin_put(wd_checkin_t *ck, const wd_checkin_row_t *row);
/* wd_checkin_selftest - queue a self_tests row. */
void wd_checkin_selftest(wd_checkin_t *ck, const pp_msg_selftest_t *st);
/* wd_checkin_pending - rows and self-tests not yet written. */
int64_t wd_checkin_pending(wd_checkin_t *ck);

/* watchdog_multi.c: one watchdog per practice database ([databases]);
 * returns the exit code once SIGTERM has stopped them all. */
int wd_multi_main(const char *self, const char *cfg_path, pp_config_t **cfg, int verbose);

#endif
