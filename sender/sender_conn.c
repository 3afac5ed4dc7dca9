/*
 * sender_conn.c - connection threads. Each SMTP connection of an account
 * is driven by its own thread with its own libcurl handle, so an
 * account's parallel connections (and different accounts) deliver at the
 * same time while the engine's thread does the database work. The pool
 * owns the lock and the list of finished jobs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pp_log.h"
#include "pp_util.h"
#include "sender.h"

void sender_pool_init(sender_pool_t *p)
{
	pthread_condattr_t attr;
	memset(p, 0, sizeof(*p));
	pthread_mutex_init(&p->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&p->done_cv, &attr);
	pthread_condattr_destroy(&attr);
}

void sender_pool_destroy(sender_pool_t *p)
{
	pthread_cond_destroy(&p->done_cv);
	pthread_mutex_destroy(&p->lock);
}

/* conn_done - post a job to the pool's done list (under the lock). */
static void conn_done(sender_pool_t *p, sender_job_t *job)
{
	job->next = NULL;
	if (p->done_tail != NULL)
		p->done_tail->next = job;
	else
		p->done_head = job;
	p->done_tail = job;
}

/* conn_skip_queue - hand back every queued job as skipped (under the lock). */
static void conn_skip_queue(sender_conn_t *c)
{
	while (c->queue_head != NULL) {
		sender_job_t *job = c->queue_head;
		c->queue_head = job->next;
		job->skipped = 1;
		conn_done(c->pool, job);
	}
	c->queue_tail = NULL;
}

/* conn_gate_arg - what the gate of a running job looks at. */
typedef struct {
	sender_conn_t *conn;
	uint64_t seq;
} conn_gate_arg_t;

/* conn_gate - hold the end of data until the job before this one on the
 * connection is recorded (the engine calls sender_conn_recorded); -1
 * after SENDER_GATE_WAIT_MS (the database is away: give the message up
 * rather than risk a second unrecorded delivery). */
static int conn_gate(void *arg)
{
	const conn_gate_arg_t *g = arg;
	sender_conn_t *c = g->conn;
	int rc = 0;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += SENDER_GATE_WAIT_MS / 1000;
	pthread_mutex_lock(&c->pool->lock);
	while (c->recorded + 1 < g->seq && !c->quit && rc == 0) {
		int w = pthread_cond_timedwait(&c->cv, &c->pool->lock, &ts);
		if (w == ETIMEDOUT)
			rc = -1;
	}
	pthread_mutex_unlock(&c->pool->lock);
	if (rc != 0)
		log_warnx("connection held a message's end of data %d s waiting for the previous "
		          "outcome to be recorded; giving the transaction up",
		          SENDER_GATE_WAIT_MS / 1000);
	return rc;
}

/* conn_main - run the queued jobs in order, posting each when done. */
static void *conn_main(void *arg)
{
	sender_conn_t *c = arg;
	sender_pool_t *p = c->pool;
	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (c->queue_head == NULL && !c->quit)
			pthread_cond_wait(&c->cv, &p->lock);
		if (c->queue_head == NULL)
			break;
		sender_job_t *job = c->queue_head;
		c->queue_head = job->next;
		if (c->queue_head == NULL)
			c->queue_tail = NULL;
		pthread_mutex_unlock(&p->lock);
		conn_gate_arg_t gate = {.conn = c, .seq = job->seq};
		sender_smtp_set_gate(c->smtp, conn_gate, &gate);
		sender_smtp_send(c->smtp, job->acct->from_address, job->rcpts, job->body, job->len,
		                 &job->res, &job->diag);
		pthread_mutex_lock(&p->lock);
		conn_done(p, job);
		/* The account is broken: the rest would fail the same way. */
		if (job->res.outcome == PP_OUTCOME_ACCOUNT)
			conn_skip_queue(c);
		pthread_cond_signal(&p->done_cv);
	}
	pthread_mutex_unlock(&p->lock);
	sender_smtp_free(&c->smtp); /* QUIT, from this thread */
	return NULL;
}

sender_conn_t *sender_conn_start(sender_pool_t *p, sender_smtp_t *smtp, char *err, size_t errlen)
{
	sender_conn_t *c = xcalloc(1, sizeof(*c));
	c->pool = p;
	c->smtp = smtp;
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cv, &attr);
	pthread_condattr_destroy(&attr);
	int rc = pthread_create(&c->thread, NULL, conn_main, c);
	if (rc != 0) {
		snprintf(err, errlen, "cannot start a connection thread: %s", strerror(rc));
		pthread_cond_destroy(&c->cv);
		sender_smtp_free(&c->smtp);
		free(c);
		return NULL;
	}
	c->used_ms = pp_mono_ms();
	return c;
}

void sender_conn_submit(sender_conn_t *c, sender_job_t *job)
{
	job->conn = c;
	job->next = NULL;
	job->seq = ++c->submitted;
	c->jobs++;
	c->used_ms = pp_mono_ms();
	pthread_mutex_lock(&c->pool->lock);
	if (c->queue_tail != NULL)
		c->queue_tail->next = job;
	else
		c->queue_head = job;
	c->queue_tail = job;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->pool->lock);
}

void sender_conn_cancel(sender_conn_t *c)
{
	pthread_mutex_lock(&c->pool->lock);
	if (c->queue_head != NULL) {
		conn_skip_queue(c);
		pthread_cond_signal(&c->pool->done_cv);
	}
	pthread_mutex_unlock(&c->pool->lock);
}

void sender_conn_recorded(sender_conn_t *c, uint64_t seq)
{
	pthread_mutex_lock(&c->pool->lock);
	if (seq > c->recorded) {
		c->recorded = seq;
		pthread_cond_signal(&c->cv);
	}
	pthread_mutex_unlock(&c->pool->lock);
}

void sender_conn_stop(sender_conn_t **cp)
{
	sender_conn_t *c = *cp;
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->pool->lock);
	c->quit = 1;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->pool->lock);
	pthread_join(c->thread, NULL);
	pthread_cond_destroy(&c->cv);
	free(c);
	*cp = NULL;
}

sender_job_t *sender_pool_take(sender_pool_t *p, int64_t deadline_us)
{
	sender_job_t *list;
	pthread_mutex_lock(&p->lock);
	while (p->done_head == NULL) {
		int64_t now = pp_outbox_now_us();
		if (deadline_us <= now)
			break;
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		int64_t ns = (int64_t)ts.tv_nsec + (deadline_us - now) * 1000;
		ts.tv_sec += (time_t)(ns / 1000000000);
		ts.tv_nsec = (long)(ns % 1000000000);
		int rc = pthread_cond_timedwait(&p->done_cv, &p->lock, &ts);
		if (rc != 0 && rc != ETIMEDOUT && rc != EINTR)
			break;
	}
	list = p->done_head;
	p->done_head = p->done_tail = NULL;
	pthread_mutex_unlock(&p->lock);
	return list;
}
