/*
 * composer_batch.h - the composer's fast path for many messages from few
 * templates: recall and contact-list batches (recall_batches, recall_items,
 * made by `practicepost recall`) and plain template compose requests (a
 * template for a patient of the practice, no appointment, provider,
 * specialist, signature, copies, files or calendar; the others go one by
 * one through composer_request.c). A chunk of items is composed in one
 * transaction: items locked and their merge values read in one query, each
 * template with the practice's values and the account loaded once, message
 * ids reserved in one statement, every message built in memory and
 * inserted with one multi-row INSERT, and the items marked in two
 * statements. A refused item is marked failed with its reason; a row the
 * database refuses is retried alone inside a savepoint, so one bad item
 * never sinks the others. While one chunk is written (inserted, marked and
 * committed by the writer thread, composer_batch_writer.c), the next is
 * locked and built on a second connection.
 *
 * Settings ([composer]):
 *   bulk_pipeline   1 (default): write each chunk on the writer thread while
 *                   the next is built (two database connections); 0: one
 *                   chunk after the other on the stage's own connection
 */
#ifndef COMPOSER_BATCH_H
#define COMPOSER_BATCH_H

#include "composer.h"

/* Columns every chunk query returns, in this order. */
enum {
	BATCH_COL_ITEM,
	BATCH_COL_PERSON,
	BATCH_COL_PRACTICE_OF_PERSON,
	BATCH_COL_KIND,
	BATCH_COL_PREFERRED,
	BATCH_COL_FAMILY,
	BATCH_COL_TITLE,
	BATCH_COL_FIRST,
	BATCH_COL_LAST,
	BATCH_COL_EMAIL,
	BATCH_COL_MOBILE,
	BATCH_COL_LOC_NAME,
	BATCH_COL_LOC_ADDRESS,
	BATCH_COL_LOC_PHONE,
	BATCH_COL_LOC_FROM_ADDR,
	BATCH_COL_LOC_FROM_NAME,
	BATCH_COL_LOC_SMS_SENDER_ID,
	BATCH_COL_SMS_OFF,
	BATCH_COL_SMS_FALLBACK,
	BATCH_COL_PRACTICE,
	BATCH_COL_TEMPLATE,
	BATCH_COL_SMS_TEMPLATE,
	BATCH_COL_CHANNEL,
	BATCH_COL_EMAIL_ACCOUNT,
	BATCH_COL_SMS_ACCOUNT,
	BATCH_COL_CATEGORY,
	BATCH_COL_DESCRIPTION,
	BATCH_COL_DELIVER_AFTER,
	BATCH_COL_SEND_NOW,
	BATCH_COL_DRAFT,
	BATCH_COL_OPTOUT_KIND,
	BATCH_COL_BOUNCED_ON,
	BATCH_COL_BOUNCE_STATUS
};

/* Where a chunk comes from and where its outcome goes. */
typedef struct {
	const char *name;       /* for logs: "recall_item", "request" */
	const char *chunk_sql;  /* $1 the chunk size (claimed_source: $2, $3) */
	const char *done_sql;   /* $1 item ids, $2 message ids */
	const char *failed_sql; /* $1 item ids, $2 errors */
	int by_preference;      /* channel by the patient's preference (recall) */
} composer_batch_source_t;

/* composer_recall.c - the recall items of the oldest batch with items
 * left. */
extern const composer_batch_source_t composer_recall_source;

/* composer_batch_work - compose chunks of up to `chunk` items (requests
 * first, then recall items) until none wait or a round's time is up:
 * items handled, 0 when none wait, -1 on a database problem (the chunk in
 * hand is rolled back and tried again). */
int composer_batch_work(pp_daemon_t *d, int chunk);

/* composer_batch_claimed - the plain requests among the n ids this
 * instance has just claimed, composed the same way; each id handled (done
 * or failed) is set to 0 in ids for the one-by-one path to pass over.
 * Requests handled, or -1 (the ids are then left as they were). */
int composer_batch_claimed(pp_daemon_t *d, int64_t *ids, int n);

/* ---- composer_batch_store.c ---- */

/* composer_batch_store - insert the messages of jobs[i] that are built
 * (msg.body set) and not refused (errors[i] NULL), all at once; a row the
 * database refuses (class 22 or 23) gets errors[i] (owned) with its
 * reason and the others are kept. 0, or -1 on any other database error
 * (the caller rolls back). */
int composer_batch_store(pp_db_t *db, const composer_job_t *jobs, char **errors, int n);
/* composer_batch_array_add - append s (NULL: NULL) as the next element of
 * the PostgreSQL array literal being built in a (which starts with "{"). */
void composer_batch_array_add(pp_buf_t *a, const char *s);
void composer_batch_array_ll(pp_buf_t *a, long long v);

/* ---- composer_batch_writer.c ---- */

/* The writer thread: runs one chunk's write (fn) at a time beside the
 * main thread, and holds the second connection the chunks alternate on.
 * composer_writer_new gives NULL when the thread cannot start (the caller
 * then writes in line). After submit, fn's argument and the connection it
 * writes on belong to the thread until composer_writer_wait returns fn's
 * result. */
typedef struct composer_writer composer_writer_t;
composer_writer_t *composer_writer_new(pp_daemon_t *d);
pp_db_t *composer_writer_db(composer_writer_t *w);
void composer_writer_submit(composer_writer_t *w, int (*fn)(void *arg), void *arg);
int composer_writer_wait(composer_writer_t *w);
/* composer_writer_free - waits for a chunk in hand, stops the thread. */
void composer_writer_free(composer_writer_t **w);

#endif
