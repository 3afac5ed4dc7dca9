/*
 * sms_record.c - the recording thread of the sms stage (see sms_record.h):
 * takes every outcome handed over since its last statement and records
 * them, record_max per statement (group commit), on its own connection
 * whose commits do not wait for the WAL flush. Owns the thread, the
 * connection, the outbox, the copies handed over and their results.
 */
#include "sms_record.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pp_config.h"
#include "pp_log.h"
#include "pp_util.h"

typedef struct {
	pp_outbox_item_t item; /* a copy */
	pp_outbox_result_t res;
} rec_t;

struct sms_recorder {
	pp_db_t *db;
	pp_outbox_t *outbox;
	sms_recorder_wake_fn *wake;
	void *wake_arg;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* something handed over, a result, or the stop */
	/* Under lock. */
	pp_outbox_opts_t opts;
	int record_max, opts_changed, busy, stop;
	rec_t *queue; /* handed over, not yet taken by the thread */
	size_t nqueue, queue_cap;
	unsigned char *results; /* in order, not yet taken back */
	size_t nresults, results_cap;
};

/* recorder_run - record n outcomes; ok[i] says which were. */
static void recorder_run(sms_recorder_t *r, rec_t *recs, size_t n, int record_max,
                         unsigned char *ok)
{
	pp_outbox_item_t **items = xcalloc(n, sizeof(*items));
	pp_outbox_result_t *res = xcalloc(n, sizeof(*res));
	size_t done = 0;
	for (size_t i = 0; i < n; i++) {
		items[i] = &recs[i].item;
		res[i] = recs[i].res;
		ok[i] = 0;
	}
	while (done < n) {
		size_t k = n - done < (size_t)record_max ? n - done : (size_t)record_max;
		if (pp_outbox_record_many(r->outbox, items + done, res + done, k) != 0)
			break; /* this and the rest: handed over again */
		memset(ok + done, 1, k);
		done += k;
	}
	free(items);
	free(res);
}

static void *recorder_main(void *arg)
{
	sms_recorder_t *r = arg;
	pthread_mutex_lock(&r->lock);
	for (;;) {
		while (!r->stop && r->nqueue == 0)
			pthread_cond_wait(&r->cond, &r->lock);
		if (r->nqueue == 0)
			break; /* stopping, and nothing left */
		rec_t *recs = r->queue;
		size_t n = r->nqueue;
		r->queue = NULL;
		r->nqueue = r->queue_cap = 0;
		r->busy = 1;
		int record_max = r->record_max;
		if (r->opts_changed)
			pp_outbox_set_options(r->outbox, &r->opts);
		r->opts_changed = 0;
		pthread_mutex_unlock(&r->lock);

		unsigned char *ok = xcalloc(n, 1);
		recorder_run(r, recs, n, record_max, ok);
		free(recs);

		pthread_mutex_lock(&r->lock);
		if (r->nresults + n > r->results_cap) {
			r->results_cap = (r->nresults + n) * 2;
			r->results = xrealloc(r->results, r->results_cap);
		}
		memcpy(r->results + r->nresults, ok, n);
		r->nresults += n;
		r->busy = 0;
		free(ok);
		pthread_cond_broadcast(&r->cond);
		if (r->wake)
			r->wake(r->wake_arg);
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

sms_recorder_t *sms_recorder_new(pp_daemon_t *d, const pp_outbox_desc_t *desc,
                                 sms_recorder_wake_fn *wake, void *wake_arg)
{
	const char *conninfo = pp_config_get(pp_daemon_config(d), "database", "conninfo", NULL);
	char name[160];
	snprintf(name, sizeof(name), "%s/record", pp_daemon_instance(d));
	sms_recorder_t *r = xcalloc(1, sizeof(*r));
	r->db = pp_db_new(conninfo, name);
	/* An outcome is recorded before its slot takes the next SMS (at most
	 * one accepted, unrecorded SMS per slot when the stage dies), so its
	 * commit must not wait for the WAL flush: a stage's death loses
	 * nothing committed; a PostgreSQL crash may lose the last outcomes,
	 * and their SMS go again (a repeat, never a loss). The claim, which
	 * counts the attempt before the request, waits for it. */
	pp_db_set_async_commit(r->db);
	/* A handful of outcomes per statement: a custom plan for each would
	 * cost more than recording them. */
	pp_db_set_generic_plans(r->db);
	/* Same instance name: the leases the claim took are this outbox's. */
	r->outbox = pp_outbox_new(r->db, desc, pp_daemon_lease_id(d));
	r->wake = wake;
	r->wake_arg = wake_arg;
	r->record_max = 1;
	pthread_mutex_init(&r->lock, NULL);
	pthread_cond_init(&r->cond, NULL);
	int rc = pthread_create(&r->thread, NULL, recorder_main, r);
	if (rc != 0) {
		log_warnx("cannot start the recording thread: %s", strerror(rc));
		pthread_cond_destroy(&r->cond);
		pthread_mutex_destroy(&r->lock);
		pp_outbox_free(&r->outbox);
		pp_db_free(&r->db);
		free(r);
		return NULL;
	}
	return r;
}

void sms_recorder_set_options(sms_recorder_t *r, const pp_outbox_opts_t *opts, int record_max)
{
	pthread_mutex_lock(&r->lock);
	r->opts = *opts;
	r->opts_changed = 1;
	r->record_max = record_max > 0 ? record_max : 1;
	pthread_mutex_unlock(&r->lock);
}

void sms_recorder_submit(sms_recorder_t *r, pp_outbox_item_t *const *items,
                         const pp_outbox_result_t *res, size_t n)
{
	if (n == 0)
		return;
	pthread_mutex_lock(&r->lock);
	if (r->nqueue + n > r->queue_cap) {
		r->queue_cap = (r->nqueue + n) * 2;
		r->queue = xrealloc(r->queue, r->queue_cap * sizeof(*r->queue));
	}
	for (size_t i = 0; i < n; i++) {
		r->queue[r->nqueue].item = *items[i];
		r->queue[r->nqueue].res = res[i];
		r->nqueue++;
	}
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
}

size_t sms_recorder_take(sms_recorder_t *r, unsigned char *ok, size_t max)
{
	pthread_mutex_lock(&r->lock);
	size_t n = r->nresults < max ? r->nresults : max;
	if (n > 0) {
		memcpy(ok, r->results, n);
		memmove(r->results, r->results + n, r->nresults - n);
		r->nresults -= n;
	}
	pthread_mutex_unlock(&r->lock);
	return n;
}

void sms_recorder_wait(sms_recorder_t *r)
{
	pthread_mutex_lock(&r->lock);
	while (r->nqueue > 0 || r->busy)
		pthread_cond_wait(&r->cond, &r->lock);
	pthread_mutex_unlock(&r->lock);
}

void sms_recorder_free(sms_recorder_t **rp)
{
	sms_recorder_t *r = *rp;
	if (r == NULL)
		return;
	pthread_mutex_lock(&r->lock);
	r->stop = 1;
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	pthread_join(r->thread, NULL);
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->lock);
	pp_outbox_free(&r->outbox);
	pp_db_free(&r->db);
	free(r->queue);
	free(r->results);
	free(r);
	*rp = NULL;
}
