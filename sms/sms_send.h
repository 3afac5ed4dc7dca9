/*
 * sms_send.h - the sms stage's delivery loop: claimed SMS go to their
 * account's sendsms interface with several requests in flight per account,
 * never before their rate slot, and their outcomes are recorded in groups
 * (one statement each). An sms_send_t owns its claimed batches, requests
 * and unrecorded outcomes; the outbox is borrowed. Free it with
 * sms_send_free(), which finishes the requests in flight, records them and
 * gives back the rest.
 */
#ifndef SMS_SEND_H
#define SMS_SEND_H

#include "pp_daemon.h"
#include "pp_outbox.h"

/* The claim's extra columns (sms_main.c's outbox descriptor), in order:
 * the number, the text, and the message's own sender id (its location's;
 * NULL: the account's). */
enum { SMS_COL_TO, SMS_COL_TEXT, SMS_COL_SENDER };

typedef struct {
	int parallel;          /* requests in flight per account at most */
	int record_max;        /* outcomes recorded in one statement at most */
	int batch_size;        /* the outbox's: a full claim means more is waiting */
	int claim_interval_ms; /* while work is held, look for more this often */
	long timeout_s;
	long connect_timeout_s;
	const char *callback_url; /* copied; NULL: no delivery reports asked for */
} sms_send_opts_t;

typedef struct sms_send sms_send_t;

/* sms_send_new - outbox is borrowed; desc (a static) is the outbox's, for
 * the claiming thread's own. NULL if libcurl cannot make a multi handle or
 * the thread cannot start. */
sms_send_t *sms_send_new(pp_daemon_t *d, pp_outbox_t *outbox, const pp_outbox_desc_t *desc);
void sms_send_set_options(sms_send_t *s, const sms_send_opts_t *opts,
                          const pp_outbox_opts_t *outbox_opts);

/* sms_send_step - one round: > 0 while work is held or was done, 0 when
 * idle, -1 after a database error or without the secret key. */
int sms_send_step(sms_send_t *s);

/* sms_send_drain - finish and record what is in flight, give back the rest. */
void sms_send_drain(sms_send_t *s);
void sms_send_free(sms_send_t **s);

#endif
