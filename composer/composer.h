/*
 * composer.h - the composer stage's own declarations: the stage settings,
 * one compose job (the request and everything loaded for it) and the steps
 * that turn a compose request into one queued message.
 *
 * A job borrows its strings from the PGresults it holds (or, for a request
 * made in memory, from the caller); composer_job_free() clears them all.
 * Steps return composer_rc_t so the caller can tell a request that cannot
 * be composed (refused: marked failed with the reason) from a database
 * problem (temporary: the request is retried).
 *
 * A request may answer or forward an incoming message (reply_to_message_id,
 * forward_of_message_id: composer_reply.c) and may go to an address
 * instead of the person's own (to_address); every address passes the same
 * confidentiality rule (composer_recipients.c).
 *
 * Entry point for other parts of the composer (automatic messages):
 * composer_job_compose() composes and inserts one message inside the
 * caller's open transaction; with req.attach_ics "request" or "cancel" (or
 * a template that says so) it carries the appointment's confirmation or
 * cancellation as an .ics.
 */
#ifndef COMPOSER_H
#define COMPOSER_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "pp_daemon.h"
#include "pp_ical.h"
#include "pp_merge.h"
#include "pp_mime.h"

#define COMPOSER_ERR_MAX 512
#define COMPOSER_MSGID_MAX 300

/* LL - the printf argument for a 64-bit id with %lld. */
#define LL(x) ((long long)(x))

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

/* The compose request: a compose_requests row (columns borrowed from res),
 * or one filled in by the caller of composer_job_compose() (id 0). */
typedef struct {
	PGresult *res;
	int64_t id; /* compose_requests.id; 0: not from a row */
	int64_t practice_id;
	int64_t person_id;
	const char *template_code;                                /* NULL: free text */
	const char *channel;                                      /* NULL: the template's */
	const char *appointment_id, *provider_id, *specialist_id; /* text or NULL */
	const char *email_account_id, *sms_account_id;
	const char *subject, *body;
	const char *category, *description;
	const char *deliver_after;         /* NULL: now */
	const char *attach_ics;            /* "none"/"request"/"cancel"; NULL: the template's */
	const char *state;                 /* messages.state; NULL: draft or queued by the flag */
	const char *family_appointments;   /* {{family.appointments}}; NULL: no value */
	const char *reply_to, *forward_of; /* incoming messages.id (text), or NULL */
	const char *to_address;            /* send here instead of the person's address */
	int add_signature, draft, send_now, copy_specialist;
	int quote; /* a reply quotes the original */
} composer_request_t;

/* Merge values and the facts about the patient, practice and appointment
 * (borrowed from res). */
typedef struct {
	PGresult *res;
	const char *values[PP_FIELD_COUNT];
	const char *time_zone;
	const char *mail_domain;
	const char *patient_family; /* the patient's family_id, or NULL */
	const char *appointment_id; /* text, or NULL when there is none */
	int64_t appointment_starts; /* seconds since the epoch */
	int appointment_duration;   /* minutes */
	int appointment_sequence;
	int appointment_cancelled;
	const char *provider_id; /* the provider whose fields are merged, or NULL */
	const char *specialist_id;
	int64_t now_epoch;       /* the transaction's now() (PP_TEST_FIXED_TIME in tests) */
	const char *person_kind; /* "patient", or for a reply "specialist", ... */
	const char *bounced_on;  /* the person's current address bounced then (see
	                            COMPOSER_BOUNCED_ON), or NULL */
	const char *bounce_status;
	const char *optout_kind; /* pp_optout_kind(category); "general": no List-Unsubscribe */
	const char *country;     /* the practice's ISO country (mobile numbers), or NULL */
	int sms_max_segments;    /* the practice's longest SMS, in segments */
	/* The identity of the message's location (the appointment's, else the
	 * patient's preferred one); NULL where it has none. */
	const char *loc_from_addr, *loc_from_name, *loc_sms_sender_id;
} composer_fields_t;

/* COMPOSER_BOUNCED_ON(p, tz) - SQL: when person p's current address was
 * flagged as bounced, as text in zone tz; NULL when it is not (or the flag
 * is for an address p no longer has). */
#define COMPOSER_BOUNCED_ON(p, tz)                                                                 \
	"CASE WHEN " p ".email_bounced_at IS NOT NULL AND lower(" p ".email_bounce_address) = "    \
	"lower(" p ".email) THEN to_char(" p ".email_bounced_at AT TIME ZONE " tz                  \
	", 'YYYY-MM-DD HH24:MI') END"

typedef struct {
	PGresult *res;
	PGresult *sig_res;
	const char *id; /* text, or NULL for free text */
	const char *subject, *body;
	const char *signature; /* the practice's signature template, when asked for */
	int html, sig_html;
	pp_ical_method_t attach_ics; /* the template's (PP_ICAL_NONE for free text) */
	int alarm_minutes;           /* PP_ICAL_ALARM_NONE: no alarm */
	const char *ics_summary;     /* merge template, NULL: the default */
} composer_template_t;

typedef struct {
	PGresult *res;
	const char *id;
	const char *from_name;     /* email only; may be "" */
	const char *from_addr;     /* email address, or the SMS sender id: the
	                            * location's when it has one (composer_identity.c) */
	const char *own_addr;      /* the account's own address: List-Unsubscribe goes
	                            * to the mailbox the fetcher reads */
	const char *sms_sender_id; /* SMS: the location's sender id, NULL: the account's */
	int64_t max_bytes;         /* 0: no limit */
} composer_account_t;

/* Cc and Bcc (composer_recipients.c); names and addresses borrowed. */
typedef struct {
	int64_t person_id;
	int bcc;
	char *name; /* owned display name ("Dr Paul Hahn"), may be "" */
	const char *addr;
	const char *family_id; /* patients: their family, else NULL */
	int patient;
} composer_recipient_t;

typedef struct {
	PGresult *res;
	composer_recipient_t *list;
	size_t n;
} composer_recipients_t;

/* Files to attach (composer_attach.c): data unescaped from res. */
typedef struct {
	PGresult *res;
	pp_mime_attachment_t *list;
	size_t n;
	int64_t bytes;
} composer_attachments_t;

/* The finished message, ready for the messages row. */
typedef struct {
	int64_t id; /* messages.id, taken before the MIME is built; set by the
	               caller of composer_job_compose to reuse an id */
	composer_channel_t channel;
	char message_id[COMPOSER_MSGID_MAX];
	char *from_addr; /* "Name <addr>" or addr; SMS: sender id */
	char *to_addr;
	char *cc_addrs, *bcc_addrs; /* "a@x, b@y" or "" */
	char *subject;
	char *body; /* the complete MIME message, or the SMS text */
	size_t size;
	char *ics; /* the .ics attached, or NULL */
	size_t ics_len;
	pp_ical_method_t ics_method;
	char unsubscribe_token[PP_MIME_TOKEN_LEN + 1]; /* "" for none */
	int sms_segments;                              /* SMS: how many segments the text takes */
	int sms_unicode;                               /* SMS: sent as UCS-2 */
} composer_message_t;

typedef enum { COMPOSER_NEW = 0, COMPOSER_REPLY, COMPOSER_FORWARD } composer_kind_t;

/* A reply or forward (composer_reply.c): the incoming message (borrowed
 * from res) and what it adds to the message (owned). */
typedef struct {
	composer_kind_t kind;
	PGresult *res;       /* the original */
	PGresult *files_res; /* forward: the original's attachments */
	char *subject;       /* "Re: ..." / "Fwd: ..." */
	char *quote;         /* text after the operator's (and the signature), or NULL */
	const char *in_reply_to;
	char *references;            /* "<a@b> <c@d>", or NULL */
	pp_mime_attachment_t *files; /* forward: after the request's files */
	const char **file_ids;       /* attachments.id of each (text) */
	char **names;                /* the file name of each (owned) */
	size_t nfiles;
} composer_reply_t;

typedef struct {
	composer_request_t req;
	composer_channel_t channel;
	composer_fields_t fields;
	composer_template_t tpl;
	composer_account_t account;
	composer_recipients_t rcpt;
	composer_attachments_t files;
	composer_reply_t reply;
	composer_message_t msg;
	int parked; /* waits as pending_sync/sync_failed for its booking link */
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
/* composer_job_compose - load, merge, build and insert the message of
 * job->req (filled in by the caller, or locked from a row) inside the
 * caller's open transaction; a request row (id != 0) is marked done. The
 * message gets job->msg.id if the caller set it (a free id), else a new
 * one. On
 * COMPOSER_OK job->msg.id is the new message; on COMPOSER_REFUSED job->err
 * says why. The caller commits or rolls back, wakes the sender or sms
 * stage, and frees the job with composer_job_free(). */
composer_rc_t composer_job_compose(pp_db_t *db, composer_job_t *job);

/* composer_fields.c - everything the merge needs, read in the transaction. */
composer_rc_t composer_fields_load(pp_db_t *db, composer_job_t *job);
composer_rc_t composer_template_load(pp_db_t *db, composer_job_t *job);
composer_rc_t composer_account_load(pp_db_t *db, composer_job_t *job);

/* composer_identity.c - who the message comes from. */
/* composer_identity_apply - the From (address, name) and SMS sender id of
 * the message's location where it has them, else the account's
 * (job->fields.loc_* over job->account). */
void composer_identity_apply(composer_job_t *job);

/* composer_recipients.c - Cc/Bcc loaded and checked against the rules. */
composer_rc_t composer_recipients_load(pp_db_t *db, composer_job_t *job);
/* composer_to_address - where the message goes: the request's to_address,
 * else the person's address (may be NULL). Borrowed. */
const char *composer_to_address(const composer_job_t *job);
/* composer_refuse_bounced - the refusal for an address flagged as bounced
 * (who: "patient", "person"...). */
composer_rc_t composer_refuse_bounced(composer_job_t *job, const char *who, long long id,
                                      const char *addr, const char *on, const char *status);
/* composer_check_address - who ("patient", "person") id has a usable
 * address, else refused saying how to set it. */
composer_rc_t composer_check_address(composer_job_t *job, const char *who, long long id,
                                     const char *addr);
/* composer_recipients_check - the rules that need the finished message
 * (patient attachments: recipients of one family). */
composer_rc_t composer_recipients_check(composer_job_t *job);

/* composer_attach.c - the request's files; copies onto the message. */
composer_rc_t composer_attach_load(pp_db_t *db, composer_job_t *job);
composer_rc_t composer_attach_store(pp_db_t *db, composer_job_t *job);

/* composer_reply.c - replies and forwards of incoming messages. */
/* composer_reply_load - for a request that answers or forwards a message:
 * the original (incoming, of the request's practice, filed to the
 * request's person), the subject, the quoted or forwarded text, the
 * threading headers and (forward) the original's attachments. Nothing to
 * do for other requests. */
composer_rc_t composer_reply_load(pp_db_t *db, composer_job_t *job);
/* composer_reply_store - the forwarded attachments onto the message. */
composer_rc_t composer_reply_store(pp_db_t *db, composer_job_t *job);
void composer_reply_free(composer_reply_t *reply);

/* composer_message.c - merge and build the message (no database). */
composer_rc_t composer_message_build(composer_job_t *job);
/* composer_merge - merge text in mode, appending to out; refuses naming
 * what (e.g. "template \"x\" body") and the field. */
composer_rc_t composer_merge(composer_job_t *job, const char *what, const char *text,
                             pp_merge_mode_t mode, pp_buf_t *out);

/* composer_ical.c - the appointment as an .ics attachment. */
/* composer_ical_build - job->msg.ics for the method the request or
 * template asks for (nothing for PP_ICAL_NONE or SMS). */
composer_rc_t composer_ical_build(composer_job_t *job);
/* The attachment's file name and Content-Type for a method. */
const char *composer_ical_filename(pp_ical_method_t method);
const char *composer_ical_content_type(pp_ical_method_t method);

#endif
