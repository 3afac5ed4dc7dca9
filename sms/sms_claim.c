/*
 * sms_claim.c - the claiming thread of the sms stage (see sms_claim.h):
 * waits for a request, claims one batch through its own outbox and
 * database connection, reads the batch's accounts, and leaves the result
 * for the delivery loop to take. Owns the thread, the connection, the
 * outbox and a result not yet taken.
 */
#include "sms_claim.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pp_log.h"
#include "pp_util.h"

struct sms_claimer {
	pp_daemon_t *d;
	pp_db_t *db;
	pp_outbox_t *outbox;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* a request, a result, or the stop */
	/* Under lock. */
	pp_outbox_opts_t opts;
	int requested, busy, ready, stop;
	sms_hold_t *result;
	int result_n;
};

void sms_hold_free(sms_hold_t *h)
{
	if (h == NULL)
		return;
	pp_outbox_batch_free(&h->batch);
	sms_account_set_free(&h->accounts);
	free(h);
}

/* claimer_claim - one claim on the thread's connection: n claimed (hold
 * filled), 0, or -1. */
static int claimer_claim(sms_claimer_t *c, sms_hold_t **hold)
{
	pp_outbox_batch_t b;
	sms_account_set_t accounts;
	*hold = NULL;
	int n = pp_outbox_claim(c->outbox, &b);
	if (n <= 0) {
		pp_outbox_batch_free(&b);
		return n;
	}
	if (sms_account_load(c->db, &b, &accounts) != 0) {
		pp_outbox_release(c->outbox, &b, 0);
		pp_outbox_batch_free(&b);
		return -1;
	}
	*hold = xcalloc(1, sizeof(**hold));
	(*hold)->batch = b;
	(*hold)->accounts = accounts;
	return n;
}

static void *claimer_main(void *arg)
{
	sms_claimer_t *c = arg;
	pthread_mutex_lock(&c->lock);
	for (;;) {
		while (!c->stop && !c->requested)
			pthread_cond_wait(&c->cond, &c->lock);
		if (c->stop)
			break;
		c->requested = 0;
		c->busy = 1;
		pp_outbox_set_options(c->outbox, &c->opts);
		pthread_mutex_unlock(&c->lock);
		sms_hold_t *hold;
		int n = claimer_claim(c, &hold);
		pthread_mutex_lock(&c->lock);
		c->result = hold;
		c->result_n = n;
		c->busy = 0;
		c->ready = 1;
		pthread_cond_broadcast(&c->cond);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

sms_claimer_t *sms_claimer_new(pp_daemon_t *d, const pp_outbox_desc_t *desc)
{
	const char *conninfo = pp_config_get(pp_daemon_config(d), "database", "conninfo", NULL);
	char name[160];
	snprintf(name, sizeof(name), "%s/claim", pp_daemon_instance(d));
	sms_claimer_t *c = xcalloc(1, sizeof(*c));
	c->d = d;
	c->db = pp_db_new(conninfo, name);
	/* Same instance name: the delivery loop records what this claims. */
	c->outbox = pp_outbox_new(c->db, desc, pp_daemon_lease_id(d));
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	int rc = pthread_create(&c->thread, NULL, claimer_main, c);
	if (rc != 0) {
		log_warnx("cannot start the claiming thread: %s", strerror(rc));
		pthread_cond_destroy(&c->cond);
		pthread_mutex_destroy(&c->lock);
		pp_outbox_free(&c->outbox);
		pp_db_free(&c->db);
		free(c);
		return NULL;
	}
	return c;
}

void sms_claimer_set_options(sms_claimer_t *c, const pp_outbox_opts_t *opts)
{
	pthread_mutex_lock(&c->lock);
	c->opts = *opts;
	pthread_mutex_unlock(&c->lock);
}

void sms_claimer_request(sms_claimer_t *c)
{
	pthread_mutex_lock(&c->lock);
	if (!c->busy && !c->ready && !c->requested) {
		c->requested = 1;
		pthread_cond_broadcast(&c->cond);
	}
	pthread_mutex_unlock(&c->lock);
}

int sms_claimer_idle(sms_claimer_t *c)
{
	pthread_mutex_lock(&c->lock);
	int idle = !c->busy && !c->ready && !c->requested;
	pthread_mutex_unlock(&c->lock);
	return idle;
}

int sms_claimer_take(sms_claimer_t *c, int wait_ms, sms_hold_t **hold, int *n)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += wait_ms / 1000;
	until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&c->lock);
	while (wait_ms > 0 && !c->ready && (c->busy || c->requested))
		if (pthread_cond_timedwait(&c->cond, &c->lock, &until) == ETIMEDOUT)
			break;
	int got = c->ready;
	*hold = got ? c->result : NULL;
	*n = got ? c->result_n : 0;
	c->ready = 0;
	c->result = NULL;
	pthread_mutex_unlock(&c->lock);
	return got;
}

void sms_claimer_free(sms_claimer_t **cp, pp_outbox_t *outbox)
{
	sms_claimer_t *c = *cp;
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->lock);
	c->stop = 1;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	pthread_join(c->thread, NULL);
	if (c->result != NULL) {
		pp_outbox_release(outbox, &c->result->batch, 0);
		sms_hold_free(c->result);
	}
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	pp_outbox_free(&c->outbox);
	pp_db_free(&c->db);
	free(c);
	*cp = NULL;
}
