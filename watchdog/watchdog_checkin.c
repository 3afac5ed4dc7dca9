/*
 * watchdog_checkin.c - the watchdog's database writes: service_checkins
 * upserts (at most one per instance per interval) and self_tests rows.
 * Owns the database handle and a write-behind cache drained by one writer
 * thread, so a slow or unreachable database never holds up supervision:
 * the main loop only fills the cache (under a mutex); rows wait there while
 * the database is down, and a dead server is retried only every retry_ms.
 * A row whose state changes (running, silent, hung, exited, ...) is written
 * at once; one whose counters change waits for its interval.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pp_log.h"
#include "pp_util.h"
#include "watchdog.h"

#define CHECKIN_ROWS_MAX 1024
#define CHECKIN_SELFTESTS_MAX 256
#define CHECKIN_WRITE_BATCH 64
#define CHECKIN_FINAL_WAIT_S 2 /* how long the exit waits for the last writes */

typedef struct {
	char stage[WD_STAGE_MAX + 1];
	char instance[WD_NAME_MAX + 1];
	char host[256];
	char state[33];
	int64_t pid, started_wall_ms, heartbeat_wall_ms, restarts;
	int64_t processed, failed, pending, uptime_s;
	int dirty;
	uint64_t version; /* bumped by every put; a write clears dirty only if unchanged */
	int64_t next_write_mono;
	int64_t touched_mono;
} checkin_entry_t;

struct wd_checkin {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	int stop;
	/* Shared with the main thread, under lock. */
	checkin_entry_t *rows;
	size_t nrows;
	pp_msg_selftest_t *tests;
	size_t ntests;
	char *conninfo; /* wanted; the writer reconnects when it changes */
	int64_t retry_ms;
	int64_t interval_ms;
	/* The writer's own. */
	pp_db_t *db;
	char *db_conninfo;
	char *appname;
	int64_t retry_at_mono;
	int failing; /* a write failed; logged once until one succeeds */
};

static const char checkin_upsert_sql[] =
    "INSERT INTO service_checkins (stage, instance, host, pid, state, started_at, "
    "last_heartbeat, checked_in_at, restarts, counters) VALUES ($1, $2, $3, $4::integer, $5, "
    "to_timestamp($6::bigint / 1000.0), "
    "CASE WHEN $7::bigint = 0 THEN NULL ELSE to_timestamp($7::bigint / 1000.0) END, now(), "
    "$8::integer, jsonb_build_object('processed', $9::bigint, 'failed', $10::bigint, "
    "'pending', $11::bigint, 'uptime_s', $12::bigint)) "
    "ON CONFLICT (host, stage, instance) DO UPDATE SET pid = EXCLUDED.pid, "
    "state = EXCLUDED.state, started_at = EXCLUDED.started_at, "
    "last_heartbeat = COALESCE(EXCLUDED.last_heartbeat, service_checkins.last_heartbeat), "
    "checked_in_at = now(), restarts = EXCLUDED.restarts, counters = EXCLUDED.counters";

static const char selftest_insert_sql[] =
    "INSERT INTO self_tests (stage, instance, check_name, ok, detail, at) "
    "VALUES ($1, $2, $3, $4::boolean, $5, now())";

static void *checkin_writer(void *arg);

wd_checkin_t *wd_checkin_new(const char *conninfo, const char *appname, int64_t retry_ms,
                             int64_t interval_ms)
{
	wd_checkin_t *ck = xcalloc(1, sizeof(*ck));
	pthread_condattr_t attr;
	sigset_t all, old;
	ck->appname = xstrdup(appname);
	ck->conninfo = xstrdup(conninfo);
	ck->retry_ms = retry_ms;
	ck->interval_ms = interval_ms;
	pthread_mutex_init(&ck->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&ck->cond, &attr);
	pthread_condattr_destroy(&attr);
	/* Signals belong to the main loop, not to the writer. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int rc = pthread_create(&ck->thread, NULL, checkin_writer, ck);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0)
		fatalx("cannot start the database writer thread: %s", strerror(rc));
	return ck;
}

void wd_checkin_configure(wd_checkin_t *ck, const char *conninfo, int64_t retry_ms,
                          int64_t interval_ms)
{
	pthread_mutex_lock(&ck->lock);
	free(ck->conninfo);
	ck->conninfo = xstrdup(conninfo);
	ck->retry_ms = retry_ms;
	ck->interval_ms = interval_ms;
	pthread_cond_signal(&ck->cond);
	pthread_mutex_unlock(&ck->lock);
}

void wd_checkin_free(wd_checkin_t **ckp)
{
	wd_checkin_t *ck = *ckp;
	if (ck == NULL)
		return;
	struct timespec deadline;
	pthread_mutex_lock(&ck->lock);
	ck->stop = 1;
	pthread_cond_signal(&ck->cond);
	pthread_mutex_unlock(&ck->lock);
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += CHECKIN_FINAL_WAIT_S;
	if (pthread_timedjoin_np(ck->thread, NULL, &deadline) != 0) {
		/* Stuck in a connect or a statement: do not hold up the exit. */
		log_warnx("database writes abandoned after %d s: %lld rows not written",
		          CHECKIN_FINAL_WAIT_S, (long long)wd_checkin_pending(ck));
		*ckp = NULL;
		return;
	}
	pthread_cond_destroy(&ck->cond);
	pthread_mutex_destroy(&ck->lock);
	pp_db_free(&ck->db);
	free(ck->db_conninfo);
	free(ck->conninfo);
	free(ck->appname);
	free(ck->rows);
	free(ck->tests);
	free(ck);
	*ckp = NULL;
}

/* checkin_slot - the entry for (stage, instance), made if new; when the
 * cache is full the least recently touched clean entry is reused. */
static checkin_entry_t *checkin_slot(wd_checkin_t *ck, const char *stage, const char *instance)
{
	checkin_entry_t *victim = NULL;
	for (size_t i = 0; i < ck->nrows; i++) {
		checkin_entry_t *e = &ck->rows[i];
		if (strcmp(e->stage, stage) == 0 && strcmp(e->instance, instance) == 0)
			return e;
		if (!e->dirty && (victim == NULL || e->touched_mono < victim->touched_mono))
			victim = e;
	}
	if (ck->nrows < CHECKIN_ROWS_MAX) {
		ck->rows = xrealloc(ck->rows, (ck->nrows + 1) * sizeof(*ck->rows));
		victim = &ck->rows[ck->nrows++];
	} else if (victim == NULL) {
		victim = &ck->rows[0];
		log_warnx("check-in cache full; instance=%s row dropped", victim->instance);
	}
	memset(victim, 0, sizeof(*victim));
	pp_strlcpy(victim->stage, stage, sizeof(victim->stage));
	pp_strlcpy(victim->instance, instance, sizeof(victim->instance));
	return victim;
}

void wd_checkin_put(wd_checkin_t *ck, const wd_checkin_row_t *row)
{
	pthread_mutex_lock(&ck->lock);
	checkin_entry_t *e = checkin_slot(ck, row->stage, row->instance);
	if (strcmp(e->state, row->state) != 0)
		e->next_write_mono = 0; /* a change of state is news: write it now */
	pp_strlcpy(e->host, row->host, sizeof(e->host));
	pp_strlcpy(e->state, row->state, sizeof(e->state));
	e->pid = row->pid;
	e->started_wall_ms = row->started_wall_ms;
	if (row->heartbeat_wall_ms != 0)
		e->heartbeat_wall_ms = row->heartbeat_wall_ms;
	e->restarts = row->restarts;
	e->processed = row->processed;
	e->failed = row->failed;
	e->pending = row->pending;
	e->uptime_s = row->uptime_s;
	e->dirty = 1;
	e->version++;
	e->touched_mono = pp_mono_ms();
	pthread_cond_signal(&ck->cond); /* the writer works out when it is due */
	pthread_mutex_unlock(&ck->lock);
}

void wd_checkin_selftest(wd_checkin_t *ck, const pp_msg_selftest_t *st)
{
	pthread_mutex_lock(&ck->lock);
	if (ck->ntests == CHECKIN_SELFTESTS_MAX) {
		log_warnx("instance=%s selftest=%s not recorded: %d self-tests wait for the "
		          "database",
		          ck->tests[0].instance, ck->tests[0].check, CHECKIN_SELFTESTS_MAX);
		memmove(ck->tests, ck->tests + 1, (ck->ntests - 1) * sizeof(*ck->tests));
		ck->ntests--;
	}
	ck->tests = xrealloc(ck->tests, (ck->ntests + 1) * sizeof(*ck->tests));
	ck->tests[ck->ntests++] = *st;
	pthread_cond_signal(&ck->cond);
	pthread_mutex_unlock(&ck->lock);
}

int64_t wd_checkin_pending(wd_checkin_t *ck)
{
	pthread_mutex_lock(&ck->lock);
	int64_t n = (int64_t)ck->ntests;
	for (size_t i = 0; i < ck->nrows; i++)
		n += ck->rows[i].dirty;
	pthread_mutex_unlock(&ck->lock);
	return n;
}

/* ---- the writer thread: everything below runs without the lock held
 * while it talks to the database. */

/* checkin_failed - the database went away (pp_db has logged it): keep
 * the rows and try again after retry_ms. */
static void checkin_failed(wd_checkin_t *ck, const char *what, int64_t retry_ms)
{
	ck->retry_at_mono = pp_mono_ms() + retry_ms;
	if (!ck->failing)
		log_info("%s postponed: retrying the database every %lld ms", what,
		         (long long)retry_ms);
	ck->failing = 1;
}

static int checkin_write_row(wd_checkin_t *ck, const checkin_entry_t *e)
{
	char pid[24], started[24], hb[24], restarts[24], processed[24], failed[24], pending[24],
	    uptime[24];
	pp_lltoa(pid, e->pid);
	pp_lltoa(started, e->started_wall_ms);
	pp_lltoa(hb, e->heartbeat_wall_ms);
	pp_lltoa(restarts, e->restarts);
	pp_lltoa(processed, e->processed);
	pp_lltoa(failed, e->failed);
	pp_lltoa(pending, e->pending);
	pp_lltoa(uptime, e->uptime_s);
	return pp_db_command(ck->db, checkin_upsert_sql,
	                     PP_DB_ARGS(e->stage, e->instance, e->host, pid, e->state, started, hb,
	                                restarts, processed, failed, pending, uptime));
}

static int checkin_write_selftest(wd_checkin_t *ck, const pp_msg_selftest_t *st)
{
	return pp_db_command(
	    ck->db, selftest_insert_sql,
	    PP_DB_ARGS(st->stage, st->instance, st->check, st->ok ? "true" : "false", st->detail));
}

/* A snapshot of what is due, taken under the lock and written without it. */
typedef struct {
	checkin_entry_t rows[CHECKIN_WRITE_BATCH];
	int row_done[CHECKIN_WRITE_BATCH]; /* written, or refused and dropped */
	size_t nrows;
	pp_msg_selftest_t tests[CHECKIN_WRITE_BATCH];
	size_t ntests;
	int64_t retry_ms;
} checkin_batch_t;

static void checkin_take(wd_checkin_t *ck, checkin_batch_t *b, int final, int64_t now)
{
	b->nrows = b->ntests = 0;
	b->retry_ms = ck->retry_ms;
	for (size_t i = 0; i < ck->nrows && b->nrows < CHECKIN_WRITE_BATCH; i++)
		if (ck->rows[i].dirty && (final || now >= ck->rows[i].next_write_mono)) {
			b->row_done[b->nrows] = 0;
			b->rows[b->nrows++] = ck->rows[i];
		}
	while (b->ntests < ck->ntests && b->ntests < CHECKIN_WRITE_BATCH) {
		b->tests[b->ntests] = ck->tests[b->ntests];
		b->ntests++;
	}
}

/* checkin_write - write the batch; returns 0 if all of it was handled, -1
 * if the database failed (the rest waits for the next try). A row or
 * self-test a live server refuses is dropped with a log line, so one bad
 * row never holds up the others. */
static int checkin_write(wd_checkin_t *ck, checkin_batch_t *b, size_t *tests_done)
{
	*tests_done = 0;
	if (!pp_db_is_up(ck->db) && pp_db_connect(ck->db) != 0) {
		checkin_failed(ck, "database writes", b->retry_ms);
		return -1;
	}
	for (size_t k = 0; k < b->nrows; k++) {
		if (checkin_write_row(ck, &b->rows[k]) != 0) {
			if (!pp_db_is_up(ck->db)) {
				checkin_failed(ck, "check-in write", b->retry_ms);
				return -1;
			}
			log_warnx("instance=%s check-in not recorded: %s", b->rows[k].instance,
			          pp_db_error(ck->db));
		}
		b->row_done[k] = 1;
	}
	for (; *tests_done < b->ntests; (*tests_done)++)
		if (checkin_write_selftest(ck, &b->tests[*tests_done]) != 0) {
			if (!pp_db_is_up(ck->db)) {
				checkin_failed(ck, "self-test write", b->retry_ms);
				return -1;
			}
			log_warnx("instance=%s selftest=%s not recorded: %s",
			          b->tests[*tests_done].instance, b->tests[*tests_done].check,
			          pp_db_error(ck->db));
		}
	if (ck->failing)
		log_info("database writes resumed");
	ck->failing = 0;
	return 0;
}

/* checkin_done - mark what was written (unless it changed meanwhile). */
static void checkin_done(wd_checkin_t *ck, const checkin_batch_t *b, size_t tests_done, int64_t now)
{
	for (size_t k = 0; k < b->nrows; k++) {
		if (!b->row_done[k])
			continue;
		for (size_t i = 0; i < ck->nrows; i++) {
			checkin_entry_t *e = &ck->rows[i];
			if (strcmp(e->stage, b->rows[k].stage) != 0 ||
			    strcmp(e->instance, b->rows[k].instance) != 0)
				continue;
			if (e->version == b->rows[k].version)
				e->dirty = 0;
			e->next_write_mono = now + ck->interval_ms;
			break;
		}
	}
	if (tests_done > 0) {
		memmove(ck->tests, ck->tests + tests_done,
		        (ck->ntests - tests_done) * sizeof(*ck->tests));
		ck->ntests -= tests_done;
	}
}

/* checkin_wait_ms - until the next row is due (or the retry time). */
static int64_t checkin_wait_ms(const wd_checkin_t *ck, int64_t now)
{
	int64_t next = 60000;
	int any = ck->ntests > 0;
	for (size_t i = 0; i < ck->nrows; i++)
		if (ck->rows[i].dirty) {
			any = 1;
			if (ck->rows[i].next_write_mono - now < next)
				next = ck->rows[i].next_write_mono - now;
		}
	if (ck->ntests > 0)
		next = 0;
	if (any && ck->retry_at_mono - now > next)
		next = ck->retry_at_mono - now;
	return next < 0 ? 0 : next;
}

static void checkin_sleep(wd_checkin_t *ck, int64_t ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_cond_timedwait(&ck->cond, &ck->lock, &ts);
}

static void *checkin_writer(void *arg)
{
	wd_checkin_t *ck = arg;
	checkin_batch_t *b = xmalloc(sizeof(*b));
	pthread_mutex_lock(&ck->lock);
	for (;;) {
		int final = ck->stop;
		int64_t now = pp_mono_ms();
		if (ck->db_conninfo == NULL || strcmp(ck->db_conninfo, ck->conninfo) != 0) {
			pp_db_free(&ck->db);
			free(ck->db_conninfo);
			ck->db_conninfo = xstrdup(ck->conninfo);
			ck->db = pp_db_new(ck->db_conninfo, ck->appname);
			/* Check-ins are status, rewritten all the time: they need not
			 * wait for the WAL flush (a crash can lose only the last ones),
			 * so a busy disk never delays a stage's death showing in status. */
			pp_db_set_async_commit(ck->db);
			ck->retry_at_mono = 0;
		}
		/* On the way out, one last try unless the database just failed. */
		if (now >= ck->retry_at_mono)
			checkin_take(ck, b, final, now);
		else
			b->nrows = b->ntests = 0;
		if (b->nrows + b->ntests > 0) {
			size_t tests_done;
			pthread_mutex_unlock(&ck->lock);
			int rc = checkin_write(ck, b, &tests_done);
			pthread_mutex_lock(&ck->lock);
			checkin_done(ck, b, tests_done, now);
			if (!final && rc == 0)
				continue; /* more may be due at once */
		}
		if (final)
			break;
		checkin_sleep(ck, checkin_wait_ms(ck, pp_mono_ms()));
	}
	pthread_mutex_unlock(&ck->lock);
	free(b);
	return NULL;
}
