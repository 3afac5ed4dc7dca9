/*
 * pp_selftest.c - the self-tests every stage runs on a timer, between
 * rounds of work: the database takes a write, the host's clock agrees with
 * the database's, the log's file system has room, no account of the stage
 * has an open problem, and the stage's queue moves (the stage's own query,
 * pp_stage_ops_t.selftest_queue_sql). Each result goes to the watchdog
 * (recorded in self_tests, a failure published as selftest_failed); a
 * check is reported when it starts failing (again every 5 minutes while
 * it fails) and when it recovers. When a check starts
 * failing, the stage's last log lines are written to selftest_logs, so the
 * diagnostic survives a journal that has rotated. Owns the per-process
 * state of the checks (one daemon per process).
 */
#include "pp_selftest.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <unistd.h>

#include "pp_log.h"
#include "pp_util.h"

#define SELFTEST_CHECKS 8
#define SELFTEST_LOG_LINES 40
#define SELFTEST_REPEAT_MS (5 * 60 * 1000)

typedef struct {
	char name[32];
	int failing;         /* last reported result was a failure */
	int known;           /* reported at least once */
	int64_t reported_ms; /* pp_mono_ms() of the last report */
} selftest_check_t;

typedef struct {
	int64_t next_ms; /* pp_mono_ms() of the next run */
	selftest_check_t checks[SELFTEST_CHECKS];
	int nchecks;
	char queue_head[64];      /* the oldest due item the queue query saw */
	int64_t queue_head_since; /* pp_mono_ms() since it has been the oldest */
} selftest_state_t;

static selftest_state_t selftest;

static selftest_check_t *selftest_slot(const char *name)
{
	for (int i = 0; i < selftest.nchecks; i++)
		if (strcmp(selftest.checks[i].name, name) == 0)
			return &selftest.checks[i];
	if (selftest.nchecks == SELFTEST_CHECKS)
		return NULL;
	selftest_check_t *c = &selftest.checks[selftest.nchecks++];
	memset(c, 0, sizeof(*c));
	pp_strlcpy(c->name, name, sizeof(c->name));
	return c;
}

/* selftest_store_log - the log lines that led up to a failure. */
static void selftest_store_log(pp_daemon_t *d, const char *check, const char *detail)
{
	char host[256] = "";
	char *lines = log_recent(SELFTEST_LOG_LINES);
	gethostname(host, sizeof(host) - 1);
	if (pp_db_command(pp_daemon_db(d),
	                  "INSERT INTO selftest_logs (host, stage, instance, check_name, detail, "
	                  "lines) VALUES ($1, $2, $3, $4, $5, $6)",
	                  PP_DB_ARGS(host, pp_daemon_stage(d), pp_daemon_instance(d), check, detail,
	                             lines ? lines : "")) != 0)
		log_warnx("selftest=%s log lines not stored: %s", check,
		          pp_db_error(pp_daemon_db(d)));
	free(lines);
}

void pp_selftest_report(pp_daemon_t *d, const char *check, int ok, const char *detail)
{
	selftest_check_t *c = selftest_slot(check);
	int64_t now = pp_mono_ms();
	int changed = c == NULL || !c->known || c->failing != !ok;
	/* A lasting failure is told again every SELFTEST_REPEAT_MS. */
	if (!changed && (ok || now - c->reported_ms < SELFTEST_REPEAT_MS))
		return;
	if (!ok && (c == NULL || !c->failing) && strcmp(check, "database_writable") != 0)
		selftest_store_log(d, check, detail);
	if (c != NULL) {
		c->known = 1;
		c->failing = !ok;
		c->reported_ms = now;
	}
	pp_daemon_selftest(d, check, ok, detail);
}

/* selftest_database - a write the database must take, and its clock. */
static void selftest_database(pp_daemon_t *d, int64_t tolerance_ms)
{
	char host[256] = "", detail[256];
	struct timeval before, after;
	gethostname(host, sizeof(host) - 1);
	gettimeofday(&before, NULL);
	PGresult *res = pp_db_exec(
	    pp_daemon_db(d),
	    "INSERT INTO stage_probes (host, instance, stage) VALUES ($1, $2, $3) ON CONFLICT "
	    "(host, instance) DO UPDATE SET at = now() RETURNING extract(epoch FROM "
	    "clock_timestamp())",
	    PP_DB_ARGS(host, pp_daemon_instance(d), pp_daemon_stage(d)));
	gettimeofday(&after, NULL);
	if (res == NULL) {
		snprintf(detail, sizeof(detail), "the database refused a write: %s",
		         pp_db_error(pp_daemon_db(d)));
		pp_selftest_report(d, "database_writable", 0, detail);
		return;
	}
	double db_s = strtod(PQgetvalue(res, 0, 0), NULL);
	PQclear(res);
	pp_selftest_report(d, "database_writable", 1, "a write was taken");
	double local_s = ((double)before.tv_sec + (double)after.tv_sec) / 2 +
	                 ((double)before.tv_usec + (double)after.tv_usec) / 2e6;
	double skew_ms = (local_s - db_s) * 1000;
	snprintf(detail, sizeof(detail),
	         "this host's clock is %+.0f ms from the database's "
	         "(tolerance %lld ms)%s",
	         skew_ms, (long long)tolerance_ms,
	         fabs(skew_ms) > (double)tolerance_ms ? ": set up NTP (chrony) on both" : "");
	pp_selftest_report(d, "clock", fabs(skew_ms) <= (double)tolerance_ms, detail);
}

/* selftest_disk - room for the log where it is written. */
static void selftest_disk(pp_daemon_t *d, int64_t min_free_mb)
{
	const pp_config_t *cfg = pp_daemon_config(d);
	const char *dir = pp_config_get(cfg, "paths", "log_dir", NULL);
	char detail[512];
	struct statvfs sv;
	if (dir == NULL)
		dir = pp_config_get(cfg, "paths", "run_dir", "/run/practicepost");
	if (statvfs(dir, &sv) != 0) {
		snprintf(detail, sizeof(detail), "cannot look at %s", dir);
		pp_selftest_report(d, "disk_space", 0, detail);
		return;
	}
	double free_mb = (double)sv.f_bavail * (double)sv.f_frsize / (1024.0 * 1024.0);
	snprintf(detail, sizeof(detail), "%.0f MB free for the log at %s (at least %lld MB)%s",
	         free_mb, dir, (long long)min_free_mb,
	         free_mb < (double)min_free_mb ? ": free some space" : "");
	pp_selftest_report(d, "disk_space", free_mb >= (double)min_free_mb, detail);
}

/* selftest_accounts - no open account problem for this stage. */
static void selftest_accounts(pp_daemon_t *d)
{
	PGresult *res = pp_db_exec(
	    pp_daemon_db(d),
	    "SELECT count(*), string_agg(code || ' (' || coalesce('email account ' || "
	    "email_account_id, 'sms account ' || sms_account_id, 'no account') || '): ' || text, "
	    "'; ' ORDER BY id) FROM (SELECT * FROM diagnostics WHERE stage = $1 AND resolved_at IS "
	    "NULL AND (email_account_id IS NOT NULL OR sms_account_id IS NOT NULL) ORDER BY id "
	    "LIMIT 5) x",
	    PP_DB_ARGS(pp_daemon_stage(d)));
	if (res == NULL)
		return;
	int n = (int)pp_db_value_ll(res, 0, 0, 0);
	pp_selftest_report(d, "accounts", n == 0,
	                   n == 0 ? "no account has an open problem" : PQgetvalue(res, 0, 1));
	PQclear(res);
}

/* selftest_queue - the oldest due item the stage's query names has been
 * the oldest for stuck_ms: the queue does not move. */
static void selftest_queue(pp_daemon_t *d, const char *sql, int64_t stuck_ms)
{
	char detail[512];
	PGresult *res = pp_db_exec(pp_daemon_db(d), sql, 0, NULL);
	if (res == NULL)
		return;
	int64_t now = pp_mono_ms();
	if (PQntuples(res) == 0) {
		selftest.queue_head[0] = '\0';
		pp_selftest_report(d, "queue", 1, "nothing due is waiting");
	} else if (strcmp(selftest.queue_head, PQgetvalue(res, 0, 0)) != 0) {
		pp_strlcpy(selftest.queue_head, PQgetvalue(res, 0, 0), sizeof(selftest.queue_head));
		selftest.queue_head_since = now;
		pp_selftest_report(d, "queue", 1, "the queue moves");
	} else if (now - selftest.queue_head_since >= stuck_ms) {
		snprintf(detail, sizeof(detail),
		         "stuck: %s has been the oldest due item for %lld s", PQgetvalue(res, 0, 1),
		         (long long)((now - selftest.queue_head_since) / 1000));
		pp_selftest_report(d, "queue", 0, detail);
	}
	PQclear(res);
}

void pp_selftest_tick(pp_daemon_t *d, const char *queue_sql)
{
	int64_t now = pp_mono_ms();
	if (now < selftest.next_ms || pp_daemon_once(d))
		return;
	int64_t interval = pp_daemon_int(d, "selftest_interval_ms", 30000, 200, 3600000);
	selftest.next_ms = now + interval;
	selftest_database(d, pp_daemon_int(d, "clock_tolerance_ms", 2000, 10, 3600000));
	selftest_disk(d, pp_daemon_int(d, "min_free_mb", 100, 0, 10000000));
	selftest_accounts(d);
	if (queue_sql != NULL)
		selftest_queue(d, queue_sql, pp_daemon_int(d, "stuck_ms", 900000, 1000, 86400000));
}
