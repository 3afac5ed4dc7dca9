/*
 * fetcher_pipe.c - parsing and filing beside storing: while the store
 * writes one message to PostgreSQL, a worker thread parses the next (GMime,
 * HTML sanitising, classification) and runs the filing rules for it on a
 * database connection of its own (they only read people and outgoing
 * messages, which the store's open transaction does not change), so a poll
 * uses both cores and the store makes one round trip per message. One
 * message is in the worker at a time; results come back in the order they
 * went in, and the store still writes them one after another, so the order
 * of storing and the read position are as without the worker. When the
 * worker's filing fails (its connection is down), the store files in line.
 *
 * Ownership: fetcher_pipe_submit takes the raw bytes (a pp_buf_t's data,
 * NUL-terminated); fetcher_pipe_wait hands them back with the parse
 * result, and the caller frees both. When the raw message is valid UTF-8
 * the result's body is those bytes themselves and raw comes back NULL
 * (only a message whose body had to be cleaned needs its raw bytes
 * again).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fetcher.h"
#include "pp_config.h"
#include "pp_log.h"

typedef enum { PIPE_EMPTY = 0, PIPE_SUBMITTED, PIPE_DONE } pipe_state_t;

struct fetcher_pipe {
	pthread_t thread;
	pp_db_t *db; /* the worker's, for filing */
	pthread_mutex_t lock;
	pthread_cond_t changed;
	pipe_state_t state;
	int stop;
	fetcher_pipe_job_t job;
};

static void *pipe_main(void *arg)
{
	struct fetcher_pipe *p = arg;
	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (p->state != PIPE_SUBMITTED && !p->stop)
			pthread_cond_wait(&p->changed, &p->lock);
		if (p->state != PIPE_SUBMITTED)
			break;
		fetcher_pipe_job_t *job = &p->job;
		pthread_mutex_unlock(&p->lock);
		/* the job is the worker's alone until it says DONE */
		fetcher_parse_message(job->raw, job->len, &job->parsed);
		if (!job->parsed.body_lossy && job->raw != NULL) {
			/* body is the raw bytes as they are: keep one copy */
			free(job->parsed.body);
			job->parsed.body = job->raw;
			job->raw = NULL;
		}
		job->filed = job->practice_id > 0 &&
		             fetcher_file(p->db, job->practice_id, &job->parsed, &job->filing) == 0;
		pthread_mutex_lock(&p->lock);
		p->state = PIPE_DONE;
		pthread_cond_broadcast(&p->changed);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

fetcher_pipe_t *fetcher_pipe_new(pp_daemon_t *d)
{
	char name[160];
	struct fetcher_pipe *p = xcalloc(1, sizeof(*p));
	snprintf(name, sizeof(name), "%s/file", pp_daemon_instance(d));
	p->db = pp_db_new(pp_config_get(pp_daemon_config(d), "database", "conninfo", NULL), name);
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->changed, NULL);
	if (pthread_create(&p->thread, NULL, pipe_main, p) != 0) {
		log_warn("cannot start the parse thread; parsing in line");
		pthread_cond_destroy(&p->changed);
		pthread_mutex_destroy(&p->lock);
		pp_db_free(&p->db);
		free(p);
		return NULL;
	}
	return p;
}

int fetcher_pipe_busy(fetcher_pipe_t *p)
{
	pthread_mutex_lock(&p->lock);
	int busy = p->state != PIPE_EMPTY;
	pthread_mutex_unlock(&p->lock);
	return busy;
}

void fetcher_pipe_submit(fetcher_pipe_t *p, char *raw, size_t len, int64_t uid, int64_t practice_id)
{
	pthread_mutex_lock(&p->lock);
	if (p->state != PIPE_EMPTY)
		fatalx("fetcher_pipe_submit: the previous message was not taken back");
	memset(&p->job, 0, sizeof(p->job));
	p->job.raw = raw;
	p->job.len = len;
	p->job.uid = uid;
	p->job.practice_id = practice_id;
	p->state = PIPE_SUBMITTED;
	pthread_cond_broadcast(&p->changed);
	pthread_mutex_unlock(&p->lock);
}

void fetcher_pipe_wait(fetcher_pipe_t *p, fetcher_pipe_job_t *out)
{
	pthread_mutex_lock(&p->lock);
	if (p->state == PIPE_EMPTY)
		fatalx("fetcher_pipe_wait: nothing was submitted");
	while (p->state != PIPE_DONE)
		pthread_cond_wait(&p->changed, &p->lock);
	*out = p->job;
	memset(&p->job, 0, sizeof(p->job));
	p->state = PIPE_EMPTY;
	pthread_mutex_unlock(&p->lock);
}

void fetcher_pipe_job_clear(fetcher_pipe_job_t *job)
{
	free(job->raw);
	fetcher_parsed_clear(&job->parsed);
	fetcher_filing_clear(&job->filing);
	memset(job, 0, sizeof(*job));
}

void fetcher_pipe_free(fetcher_pipe_t **pp)
{
	struct fetcher_pipe *p = *pp;
	if (p == NULL)
		return;
	if (fetcher_pipe_busy(p)) {
		fetcher_pipe_job_t job;
		fetcher_pipe_wait(p, &job);
		fetcher_pipe_job_clear(&job);
	}
	pthread_mutex_lock(&p->lock);
	p->stop = 1;
	pthread_cond_broadcast(&p->changed);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->thread, NULL);
	pthread_cond_destroy(&p->changed);
	pthread_mutex_destroy(&p->lock);
	pp_db_free(&p->db);
	free(p);
	*pp = NULL;
}
