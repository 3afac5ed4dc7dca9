/*
 * composer.h - the composer stage's own declarations: the stage settings,
 * one compose job (the request and everything loaded for it) and the steps
 * that turn a compose request into one queued message.
 *
 * A job borrows its strings from the PGresults it holds; composer_job_free()
 * clears them all. Steps return composer_rc_t so the caller can tell a
 * request that cannot be composed (refused: marked failed with the reason)
 * from a database problem (temporary: the request is retried).
 */
#ifndef COMPOSER_H
#define COMPOSER_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "pp_daemon.h"
#include "pp_merge.h"

#define COMPOSER_ERR_MAX 512
#define COMPOSER_MSGID_MAX 300

typedef struct {
	int batch_size;    /* requests claimed at once */
	int lease_seconds; /* how long a claim holds them */
} composer_state_t;

typedef enum {
	COMPOSER_OK = 0,
	COMPOSER_REFUSED,  /* the request cannot be composed: err says why */
	COMPOSER_DB_ERROR, /* temporary: roll back, retry later */
	COMPOSER_LOST      /* the request is no longer ours (lease taken over) */
} composer_rc_t;

typedef enum { COMPOSER_EMAIL, COMPOSER_SMS } composer_channel_t;

/* The compose request row (columns borrowed from res). */
typedef struct {
	PGresult *res;
	int64_t id;
	int64_t practice_id;
	int64_t person_id;
	const char *template_code;                                /* NULL: free text */
	const char *channel;                                      /* NULL: the template's */
	const char *appointment_id, *provider_id, *specialist_id; /* text or NULL */
	const char *email_account_id, *sms_account_id;
	const char *subject, *body;
	const char *category, *description;
	const char *deliver_after; /* NULL: now */
	int add_signature, draft, send_now;
} composer_request_t;

/* Merge values and practice facts (borrowed from res). */
typedef struct {
	PGresult *res;
	const char *values[PP_FIELD_COUNT];
	const char *time_zone;
	const char *mail_domain;
	const char *appointment_id; /* text, or NULL when there is none */
	int64_t now_epoch;          /* the transaction's now(), for Date */
} composer_fields_t;

typedef struct {
	PGresult *res;
	PGresult *sig_res;
	const char *id; /* text, or NULL for free text */
	const char *subject, *body;
	const char *signature; /* the practice's signature template, when asked for */
	int html;
} composer_template_t;

typedef struct {
	PGresult *res;
	const char *id;
	const char *from_name; /* email only; may be "" */
	const char *from_addr; /* email address, or the SMS sender id */
	int64_t max_bytes;     /* 0: no limit */
} composer_account_t;

/* The finished message, ready for the messages row. */
typedef struct {
	int64_t id; /* messages.id, taken before the MIME is built */
	composer_channel_t channel;
	char message_id[COMPOSER_MSGID_MAX];
	char *from_addr; /* "Name <addr>" or addr; SMS: sender id */
	char *to_addr;
	char *subject;
	char *body; /* the complete MIME message, or the SMS text */
	size_t size;
} composer_message_t;

typedef struct {
	composer_request_t req;
	composer_channel_t channel;
	composer_fields_t fields;
	composer_template_t tpl;
	composer_account_t account;
	composer_message_t msg;
	char err[COMPOSER_ERR_MAX];
} composer_job_t;

void composer_job_free(composer_job_t *job);
/* composer_refuse - fill job->err; returns COMPOSER_REFUSED. */
composer_rc_t composer_refuse(composer_job_t *job, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* composer_request.c - claim, one transaction per request, outcomes. */
int composer_request_claim(pp_daemon_t *d, const composer_state_t *st, int64_t **ids);
composer_rc_t composer_request_run(pp_daemon_t *d, int64_t id);
void composer_request_release(pp_daemon_t *d);

/* composer_fields.c - everything the merge needs, read in the transaction. */
composer_rc_t composer_fields_load(pp_db_t *db, composer_job_t *job);
composer_rc_t composer_template_load(pp_db_t *db, composer_job_t *job);
composer_rc_t composer_account_load(pp_db_t *db, composer_job_t *job);

/* composer_message.c - merge and build the message (no database). */
composer_rc_t composer_message_build(composer_job_t *job);

#endif
