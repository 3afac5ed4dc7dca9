/*
 * sms_claim.h - claims for the sms stage's delivery loop, made ahead on a
 * thread of their own (with their own database connection and outbox), so
 * that requests keep going out while the next batch is claimed. A claim
 * is asked for, runs, and its result waits to be taken; whoever takes a
 * hold owns it (free with sms_hold_free()). An sms_claimer_t owns the
 * thread, its connection and a result not yet taken.
 */
#ifndef SMS_CLAIM_H
#define SMS_CLAIM_H

#include "pp_daemon.h"
#include "pp_outbox.h"
#include "sms_account.h"

/* One claimed batch and the settings of its accounts. */
typedef struct sms_hold {
	pp_outbox_batch_t batch;
	sms_account_set_t accounts;
	struct sms_hold *next; /* the delivery loop's list */
} sms_hold_t;

void sms_hold_free(sms_hold_t *h);

typedef struct sms_claimer sms_claimer_t;

/* sms_claimer_new - start the thread; desc is borrowed (a static). NULL
 * after a log line if the thread cannot start. */
sms_claimer_t *sms_claimer_new(pp_daemon_t *d, const pp_outbox_desc_t *desc);
void sms_claimer_set_options(sms_claimer_t *c, const pp_outbox_opts_t *opts);

/* sms_claimer_request - ask for a claim; nothing if one is under way or
 * its result has not been taken. */
void sms_claimer_request(sms_claimer_t *c);
/* sms_claimer_idle - no claim asked for, under way or waiting to be taken. */
int sms_claimer_idle(sms_claimer_t *c);

/* sms_claimer_take - the result of the last claim, waiting at most wait_ms
 * for it: 1 with *n claimed (-1: a database error) and *hold (NULL when
 * nothing was claimed), 0 if there is none yet. */
int sms_claimer_take(sms_claimer_t *c, int wait_ms, sms_hold_t **hold, int *n);

/* sms_claimer_free - stop the thread; a result not taken is given back
 * through outbox (the caller's connection). */
void sms_claimer_free(sms_claimer_t **c, pp_outbox_t *outbox);

#endif
