/*
 * sms_record.h - the sms stage's outcomes recorded on a thread of its own
 * (with its own database connection and outbox), so that the delivery
 * loop keeps its other request slots busy while an outcome commits. The
 * loop hands outcomes over in order and takes back, in the same order,
 * whether each was recorded; an sms_recorder_t owns the thread, its
 * connection and the outcomes between the two.
 */
#ifndef SMS_RECORD_H
#define SMS_RECORD_H

#include <stddef.h>

#include "pp_daemon.h"
#include "pp_outbox.h"

typedef struct sms_recorder sms_recorder_t;

/* Called on the recording thread after outcomes were recorded (or failed),
 * to wake the delivery loop's wait. */
typedef void sms_recorder_wake_fn(void *arg);

/* sms_recorder_new - start the thread; desc is borrowed (a static). NULL
 * after a log line if the thread cannot start. */
sms_recorder_t *sms_recorder_new(pp_daemon_t *d, const pp_outbox_desc_t *desc,
                                 sms_recorder_wake_fn *wake, void *wake_arg);
/* sms_recorder_set_options - the outbox options (retry base) and the most
 * outcomes one statement records. */
void sms_recorder_set_options(sms_recorder_t *r, const pp_outbox_opts_t *opts, int record_max);

/* sms_recorder_submit - hand over n outcomes (the items are copied: the
 * caller's are not touched; their strings must live until taken back). */
void sms_recorder_submit(sms_recorder_t *r, pp_outbox_item_t *const *items,
                         const pp_outbox_result_t *res, size_t n);
/* sms_recorder_take - up to max results of the oldest outcomes handed over
 * and not yet taken back, in order: ok[i] 1 if recorded, 0 if the database
 * failed (hand it over again later). Returns how many. */
size_t sms_recorder_take(sms_recorder_t *r, unsigned char *ok, size_t max);
/* sms_recorder_wait - wait until everything handed over has a result. */
void sms_recorder_wait(sms_recorder_t *r);

/* sms_recorder_free - finish what was handed over, stop the thread. */
void sms_recorder_free(sms_recorder_t **r);

#endif
