/*
 * pp_daemon.h - the skeleton every stage daemon runs in: arguments
 * (-c CONFIG, --once, --instance NAME, -v), signals (SIGTERM/SIGINT stop,
 * SIGHUP reload), the database connection, the DEALER socket to the
 * watchdog, heartbeats, wake-ups and the poll timer.
 *
 * A stage supplies pp_stage_ops_t. work() does one round and returns the
 * number of items it handled (> 0: call again at once), 0 when idle, or -1
 * on a temporary failure (logged by the stage; retried after the poll
 * interval). With --once the daemon runs work() until it returns 0 and
 * exits 0, or exits 1 on -1.
 */
#ifndef PP_DAEMON_H
#define PP_DAEMON_H

#include <stdint.h>

#include "pp_config.h"
#include "pp_db.h"
#include "pp_msg.h"
#include "pp_secret.h"

typedef struct pp_daemon pp_daemon_t;

typedef struct {
	const char *stage; /* "sender", "composer", ... */
	/* init - after the database is reachable; -1 aborts start-up. */
	int (*init)(pp_daemon_t *d, void **state);
	int (*work)(pp_daemon_t *d, void *state);
	/* reload - after SIGHUP, with the new configuration in place. */
	void (*reload)(pp_daemon_t *d, void *state);
	/* fini - on the way out: release what is held, free state. */
	void (*fini)(pp_daemon_t *d, void *state);
	/* pending - optional: how much work waits (for heartbeats). */
	int64_t (*pending)(pp_daemon_t *d, void *state);
	/* message - optional: a message from the watchdog of a type the
	 * skeleton does not handle itself (account_test); 0 if it was taken,
	 * -1 if the stage does not take that type (logged, ignored). */
	int (*message)(pp_daemon_t *d, void *state, const pp_msg_t *msg);
	/* selftest - optional: called after every round of work; stages run
	 * their timed self-tests there (pp_selftest_tick). */
	void (*selftest)(pp_daemon_t *d, void *state);
} pp_stage_ops_t;

int pp_daemon_main(int argc, char **argv, const pp_stage_ops_t *ops);

const pp_config_t *pp_daemon_config(const pp_daemon_t *d);
pp_db_t *pp_daemon_db(pp_daemon_t *d);
const char *pp_daemon_stage(const pp_daemon_t *d);
/* Name of this instance as the watchdog knows it ("sender.1"), or
 * "sender@host:1234" when run alone. */
const char *pp_daemon_instance(const pp_daemon_t *d);
/* pp_daemon_lease_id - the name this instance claims work under: unique
 * across hosts ("sender.1@host"), as every watchdog names its first sender
 * "sender.1". */
const char *pp_daemon_lease_id(const pp_daemon_t *d);
int pp_daemon_once(const pp_daemon_t *d);
/* pp_daemon_stopping - true once SIGTERM arrived: finish the item in hand. */
int pp_daemon_stopping(const pp_daemon_t *d);
/* pp_daemon_key - the secret key (loaded on first use); NULL with a log
 * line if the key file is missing or bad. */
const pp_secret_key_t *pp_daemon_key(pp_daemon_t *d);

/* pp_daemon_tick - send a heartbeat now if one is due; call it between
 * items of a long round so the watchdog does not think the stage hung. */
void pp_daemon_tick(pp_daemon_t *d);

/* Counters reported in heartbeats. */
void pp_daemon_count(pp_daemon_t *d, int64_t processed, int64_t failed);

/* Kinds of failure counted for the watchdog's metrics (PP_MSG failures). */
typedef enum {
	PP_FAILURE_TEMPORARY, /* retried later: 4xx, network, timeout */
	PP_FAILURE_PERMANENT, /* the item failed for good: 5xx, a bad request */
	PP_FAILURE_ACCOUNT,   /* account-wide: login refused, account paused */
	PP_FAILURE_KINDS
} pp_failure_kind_t;
/* pp_daemon_count_failure - n failures of kind, reported after each
 * heartbeat (in addition to pp_daemon_count's total). */
void pp_daemon_count_failure(pp_daemon_t *d, pp_failure_kind_t kind, int64_t n);
/* pp_daemon_wake - ask another stage (through the watchdog) to look now. */
void pp_daemon_wake(pp_daemon_t *d, const char *stage, int64_t message_id);
/* pp_daemon_wake_self - end the current wait and run work() again; safe
 * to call from any thread (a stage's helper thread that saw new work). */
void pp_daemon_wake_self(pp_daemon_t *d);
/* pp_daemon_selftest - report one self-test result to the watchdog. */
void pp_daemon_selftest(pp_daemon_t *d, const char *check, int ok, const char *detail);

/* pp_daemon_int - a config integer of this stage's section, with bounds;
 * a bad value is fatal at start-up and logged (old value kept) on reload. */
int64_t pp_daemon_int(pp_daemon_t *d, const char *key, int64_t def, int64_t min, int64_t max);

/* pp_diag_raise - record a diagnostic row (and log it). Account ids may be
 * 0 for none. Returns 0 / -1. */
int pp_diag_raise(pp_db_t *db, const char *stage, const char *severity, const char *code,
                  int64_t practice_id, int64_t email_account_id, int64_t sms_account_id,
                  const char *text);

#endif
