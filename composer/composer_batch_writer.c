/*
 * composer_batch_writer.c - the fast path's writer thread: while it
 * stores, marks and commits one chunk (PostgreSQL's work), the composer's
 * main thread locks and builds the next chunk (the composer's own work:
 * merging and MIME) on a second database connection, so a large batch
 * keeps both cores busy. One chunk is in the writer at a time, so writes
 * follow each other in the order the chunks were taken, as without the
 * thread; each chunk is still one transaction on one connection. Owns the
 * thread and that second connection.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "composer_batch.h"
#include "pp_config.h"
#include "pp_log.h"
#include "pp_util.h"

typedef enum { WRITER_IDLE = 0, WRITER_SUBMITTED, WRITER_DONE } writer_state_t;

struct composer_writer {
	pthread_t thread;
	pp_db_t *db; /* the second connection, for every other chunk */
	pthread_mutex_t lock;
	pthread_cond_t changed;
	writer_state_t state;
	int stop;
	int (*fn)(void *arg);
	void *arg;
	int rc;
};

static void *writer_main(void *arg)
{
	composer_writer_t *w = arg;
	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (w->state != WRITER_SUBMITTED && !w->stop)
			pthread_cond_wait(&w->changed, &w->lock);
		if (w->state != WRITER_SUBMITTED)
			break;
		pthread_mutex_unlock(&w->lock);
		/* the chunk and its connection are the thread's alone until DONE */
		int rc = w->fn(w->arg);
		pthread_mutex_lock(&w->lock);
		w->rc = rc;
		w->state = WRITER_DONE;
		pthread_cond_broadcast(&w->changed);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

composer_writer_t *composer_writer_new(pp_daemon_t *d)
{
	char name[160];
	composer_writer_t *w = xcalloc(1, sizeof(*w));
	snprintf(name, sizeof(name), "%s/bulk", pp_daemon_instance(d));
	w->db = pp_db_new(pp_config_get(pp_daemon_config(d), "database", "conninfo", NULL), name);
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->changed, NULL);
	if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
		log_warn("cannot start the bulk writer thread; chunks are written in line");
		pthread_cond_destroy(&w->changed);
		pthread_mutex_destroy(&w->lock);
		pp_db_free(&w->db);
		free(w);
		return NULL;
	}
	return w;
}

pp_db_t *composer_writer_db(composer_writer_t *w)
{
	return w->db;
}

void composer_writer_submit(composer_writer_t *w, int (*fn)(void *arg), void *arg)
{
	pthread_mutex_lock(&w->lock);
	if (w->state != WRITER_IDLE)
		fatalx("composer_writer_submit: the previous chunk was not taken back");
	w->fn = fn;
	w->arg = arg;
	w->state = WRITER_SUBMITTED;
	pthread_cond_broadcast(&w->changed);
	pthread_mutex_unlock(&w->lock);
}

int composer_writer_wait(composer_writer_t *w)
{
	pthread_mutex_lock(&w->lock);
	if (w->state == WRITER_IDLE)
		fatalx("composer_writer_wait: nothing was submitted");
	while (w->state != WRITER_DONE)
		pthread_cond_wait(&w->changed, &w->lock);
	int rc = w->rc;
	w->state = WRITER_IDLE;
	w->fn = NULL;
	w->arg = NULL;
	pthread_mutex_unlock(&w->lock);
	return rc;
}

void composer_writer_free(composer_writer_t **pw)
{
	composer_writer_t *w = *pw;
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->lock);
	while (w->state == WRITER_SUBMITTED)
		pthread_cond_wait(&w->changed, &w->lock);
	w->stop = 1;
	pthread_cond_broadcast(&w->changed);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	pthread_cond_destroy(&w->changed);
	pthread_mutex_destroy(&w->lock);
	pp_db_free(&w->db);
	free(w);
	*pw = NULL;
}
