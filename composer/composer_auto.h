/*
 * composer_auto.h - the composer's automatic messages: when a welcome,
 * confirmation, cancellation or reminder is made and from which template
 * (auto_messages), the online-booking link wait (pending_sync), and the
 * recall batches (composer_batch.h). Entry points for composer_main.c;
 * the rest is shared by composer_auto.c, composer_auto_remind.c and
 * composer_auto_sync.c only.
 *
 * Decisions:
 *  - Triggers (common/sql/004_automation.sql) record appointment events
 *    (booked, moved = start/length/place changed, cancelled; sequence is
 *    raised on each) and new patients. All unprocessed events of one
 *    appointment are handled together under an advisory lock; the
 *    appointment's state now decides: booked -> confirmation, cancelled ->
 *    cancellation, deliver_after = the last event + delay_minutes.
 *  - Superseding: the automatic messages about the appointment that have
 *    not gone out (queued, pending_sync or sync_failed, never attempted)
 *    are deleted, with their auto_sent rows, in the transaction that makes
 *    the new message, and each is logged ("msg=N state=superseded"). A
 *    deleted message was never seen by anyone; marking it failed would put
 *    it in front of "reset failed messages", which must never send a stale
 *    confirmation. One already sending or sent stays; the new message
 *    follows it with the higher SEQUENCE.
 *  - No cancellation for an appointment booked and cancelled before any
 *    confirmation went out; nothing for appointments already in the past.
 *  - Channel: the patient's preferred one (sms needs an SMS template, a
 *    mobile number and a practice that can send SMS), else the other one
 *    that can be sent; "none" sends nothing. While the practice cannot
 *    send SMS (pp_sms_off) a patient who prefers SMS gets email only if
 *    the practice's sms_fallback is 'email'. The choice, the reminders
 *    due and their family grouping are SQL functions (pp_auto_channel,
 *    pp_reminders_due, pp_reminder_group, pp_family_reminder in
 *    common/sql/013_plan.sql) that `practicepost plan` reads as well.
 *  - A template that merges {{appointment.booking_link}} while the link is
 *    not set gives a pending_sync row without a body; the message is made
 *    into that row (same id) when the link arrives.
 *  - The automatic message itself is composed by composer_job_compose()
 *    (composer_request.c), so templates, fields, .ics and MIME are the
 *    same as for a request.
 *
 * Settings ([composer]):
 *   auto_batch            events, reminders or waiting messages looked at
 *                         per round (default 100)
 *   sync_timeout_minutes  a message waiting for its booking link longer
 *                         than this goes sync_failed (default 60; 0 never)
 *   event_retention_days  processed appointment and patient events are
 *                         deleted after this many days (default 30)
 *   bulk_chunk            messages composed per transaction on the fast
 *                         path: recall items, plain requests (500)
 */
#ifndef COMPOSER_AUTO_H
#define COMPOSER_AUTO_H

#include <stddef.h>
#include <stdint.h>

#include "composer.h"

/* ---- composer_main.c hooks ---- */

void composer_auto_init(pp_daemon_t *d);
void composer_auto_reload(pp_daemon_t *d);
/* composer_auto_work - one round of every automatic duty: items handled,
 * 0 when idle, -1 on a database problem (retried next round). */
int composer_auto_work(pp_daemon_t *d);

/* ---- shared by the composer_auto*.c files ---- */

typedef struct {
	int batch;             /* auto_batch */
	int sync_timeout;      /* minutes, 0: never */
	int retention_days;    /* event_retention_days */
	int bulk_chunk;        /* bulk_chunk */
	int64_t next_purge_ms; /* pp_mono_ms() of the next purge of old events */
} composer_auto_settings_t;

const composer_auto_settings_t *composer_auto_settings(void);

/* One automatic message to make, inside the caller's open transaction. */
typedef struct {
	const char *kind; /* "welcome", "confirmation", ... */
	int64_t rule_id;  /* auto_messages.id */
	int64_t practice_id;
	int64_t person_id;                         /* the recipient */
	const char *appointment;                   /* appointment id (text) merged, or NULL */
	const char *email_template, *sms_template; /* either may be NULL */
	const char *deliver_after;                 /* timestamptz text, or NULL for now */
	const char *family_text; /* {{family.appointments}} of a family reminder */
	const int64_t *sent_ids; /* auto_sent rows to point at the message */
	size_t nsent;
	int64_t reuse_id; /* the pending_sync message being completed, or 0 */
} composer_auto_msg_t;

typedef enum {
	AUTO_MADE,    /* queued (or pending_sync, waiting for its link) */
	AUTO_SKIPPED, /* nothing to send: the patient wants no messages */
	AUTO_REFUSED, /* cannot be composed; the reason is in err (recorded) */
	AUTO_DB_ERROR /* roll back, retry later */
} composer_auto_rc_t;

/* composer_auto_make - choose the channel by the patient's preference,
 * compose and insert the message (or park it pending_sync when its template
 * needs a booking link that is not set), and fill in the auto_sent rows
 * (message_id, or error). *msg_id is the new message (0 if none); what
 * happened is also written to outcome (for the events' log). */
composer_auto_rc_t composer_auto_make(pp_daemon_t *d, const composer_auto_msg_t *m, int64_t *msg_id,
                                      char *outcome, size_t outlen);

/* composer_auto_compose - compose and insert the message of template code
 * for m, in a savepoint so a refusal (err) leaves nothing behind. */
composer_auto_rc_t composer_auto_compose(pp_db_t *db, const composer_auto_msg_t *m,
                                         const char *code, int64_t *msg_id, char *err,
                                         size_t errlen);
/* composer_auto_mark_sent - point m's auto_sent rows at the message, or
 * record the error that kept it from being made (msg_id 0). */
int composer_auto_mark_sent(pp_db_t *db, const composer_auto_msg_t *m, int64_t msg_id,
                            const char *error);

/* composer_auto_record - insert auto_sent rows for appointments (or one
 * row without an appointment when n == 0); their ids go to *ids (owned).
 * Returns how many rows were inserted, -1 on a database error. A reminder
 * row that exists already is skipped (at most once per rule and
 * appointment). */
int composer_auto_record(pp_db_t *db, const char *kind, int64_t rule_id, int64_t practice_id,
                         const int64_t *persons, const int64_t *appointments, size_t n,
                         int64_t **ids, int64_t **kept_appointments);

/* composer_auto_sql_ids - "{1,2,3}" for a bigint[] parameter (owned). */
char *composer_auto_sql_ids(const int64_t *ids, size_t n);

/* composer_auto_wake - the sender (email) or sms stage has new work once
 * the caller's transaction commits; the wake-up goes at the end of the
 * round. */
void composer_auto_wake(composer_channel_t channel);

/* composer_auto_each - run sql ($1 the round's limit, $2 extra unless
 * NULL) and hand each row to one(), which handles it in its own
 * transaction (1 done, 0 nothing to do, -1 database error); stops at the
 * first error or at SIGTERM. Rows handled, or -1. */
int composer_auto_each(pp_daemon_t *d, const char *sql, const char *extra,
                       int (*one)(pp_daemon_t *d, const PGresult *res, int row));

/* composer_auto_try_lock - a transaction-scoped advisory lock on one
 * appointment: 1 taken, 0 held by another instance, -1 database error. */
int composer_auto_try_lock(pp_db_t *db, int64_t appointment_id);

/* composer_auto_remind.c - reminders due, grouped by family. */
int composer_auto_remind(pp_daemon_t *d);
/* composer_auto_family - for a family reminder over the appointments:
 * one row (recipient person id, appointment id merged, the list text). */
PGresult *composer_auto_family(pp_db_t *db, const int64_t *appointments, size_t n);

/* composer_auto_needs_link - true if the subject or body template merges
 * {{appointment.booking_link}}. */
int composer_auto_needs_link(const char *subject, const char *body);

/* composer_auto_sync.c - messages waiting for their booking link. */
int composer_auto_sync(pp_daemon_t *d);
/* composer_auto_park - insert the pending_sync (or sync_failed) message
 * that stands for m until the booking link is set; *msg_id is its id. */
composer_auto_rc_t composer_auto_park(pp_db_t *db, const composer_auto_msg_t *m,
                                      const char *template_code, const char *link_error,
                                      int64_t *msg_id, char *err, size_t errlen);

#endif
