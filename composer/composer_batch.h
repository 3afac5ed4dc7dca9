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
 * never sinks the others.
 */
#ifndef COMPOSER_BATCH_H
#define COMPOSER_BATCH_H

#include "composer.h"

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

#endif
