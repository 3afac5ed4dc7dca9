/*
 * composer_auto.c - the automatic-message engine: every round it turns
 * appointment events (booked, moved, cancelled) into delayed confirmations
 * and cancellations, new patients into welcome messages, and then runs the
 * reminders (composer_auto_remind.c), the booking-link wait
 * (composer_auto_sync.c) and the recall batches (composer_batch.c).
 * Owns the choice of channel and template, superseding an unsent message
 * when its appointment changes, and the auto_sent record.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "composer_auto.h"
#include "composer_batch.h"
#include "pp_log.h"
#include "pp_util.h"

#define AUTO_LOCK_CLASS "7428160" /* advisory lock class of appointments */

static composer_auto_settings_t settings;
static int wake_email, wake_sms;

void composer_auto_init(pp_daemon_t *d)
{
	composer_auto_reload(d);
}

void composer_auto_reload(pp_daemon_t *d)
{
	settings.batch = (int)pp_daemon_int(d, "auto_batch", 100, 1, 10000);
	settings.sync_timeout = (int)pp_daemon_int(d, "sync_timeout_minutes", 60, 0, 525600);
	settings.retention_days = (int)pp_daemon_int(d, "event_retention_days", 30, 1, 3650);
	settings.bulk_chunk = (int)pp_daemon_int(d, "bulk_chunk", 500, 1, 10000);
}

const composer_auto_settings_t *composer_auto_settings(void)
{
	return &settings;
}

char *composer_auto_sql_ids(const int64_t *ids, size_t n)
{
	pp_buf_t buf;
	pp_buf_init(&buf);
	pp_buf_puts(&buf, "{");
	for (size_t i = 0; i < n; i++) {
		if (ids[i] > 0)
			composer_batch_array_ll(&buf, ids[i]);
		else
			composer_batch_array_add(&buf, NULL);
	}
	pp_buf_puts(&buf, "}");
	return pp_buf_steal(&buf);
}

int composer_auto_each(pp_daemon_t *d, const char *sql, const char *extra,
                       int (*one)(pp_daemon_t *d, const PGresult *res, int row))
{
	char limit[16];
	snprintf(limit, sizeof(limit), "%d", settings.batch);
	PGresult *res =
	    pp_db_exec(pp_daemon_db(d), sql, extra ? 2 : 1, (const char *const[]){limit, extra});
	if (res == NULL)
		return -1;
	int handled = 0;
	for (int i = 0; i < PQntuples(res) && !pp_daemon_stopping(d); i++) {
		int rc = one(d, res, i);
		if (rc < 0) {
			handled = -1;
			break;
		}
		handled += rc;
	}
	PQclear(res);
	return handled;
}

int composer_auto_try_lock(pp_db_t *db, int64_t appointment_id)
{
	char id[24];
	pp_lltoa(id, appointment_id % 2147483647);
	PGresult *res = pp_db_exec(
	    db, "SELECT pg_try_advisory_xact_lock(" AUTO_LOCK_CLASS ", $1::int)", PP_DB_ARGS(id));
	if (res == NULL)
		return -1;
	int got = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	return got;
}

int composer_auto_record(pp_db_t *db, const char *kind, int64_t rule_id, int64_t practice_id,
                         const int64_t *persons, const int64_t *appointments, size_t n,
                         int64_t **ids, int64_t **kept_appointments)
{
	int64_t none = 0;
	char rule[24], practice[24];
	size_t rows = n ? n : 1;
	char *p = composer_auto_sql_ids(persons, rows);
	char *a = composer_auto_sql_ids(n ? appointments : &none, rows);
	pp_lltoa(rule, rule_id);
	pp_lltoa(practice, practice_id);
	PGresult *res = pp_db_exec(
	    db,
	    "INSERT INTO auto_sent (auto_message_id, kind, practice_id, person_id, appointment_id) "
	    "SELECT $1, $2, $3, u.p, u.a FROM unnest($4::bigint[], $5::bigint[]) u(p, a) "
	    "ON CONFLICT (auto_message_id, appointment_id) WHERE kind = 'reminder' DO NOTHING "
	    "RETURNING id, coalesce(appointment_id, 0)",
	    PP_DB_ARGS(rule, kind, practice, p, a));
	free(p);
	free(a);
	if (res == NULL)
		return -1;
	int got = PQntuples(res);
	*ids = xcalloc((size_t)got + 1, sizeof(**ids));
	if (kept_appointments != NULL)
		*kept_appointments = xcalloc((size_t)got + 1, sizeof(**kept_appointments));
	for (int i = 0; i < got; i++) {
		(*ids)[i] = pp_db_value_ll(res, i, 0, 0);
		if (kept_appointments != NULL)
			(*kept_appointments)[i] = pp_db_value_ll(res, i, 1, 0);
	}
	PQclear(res);
	return got;
}

int composer_auto_mark_sent(pp_db_t *db, const composer_auto_msg_t *m, int64_t msg_id,
                            const char *error)
{
	char id[24];
	char *ids = composer_auto_sql_ids(m->sent_ids, m->nsent);
	pp_lltoa(id, msg_id);
	int rc =
	    pp_db_command(db,
	                  "UPDATE auto_sent SET message_id = nullif($2::bigint, 0), error = $3 "
	                  "WHERE id = ANY($1::bigint[])",
	                  PP_DB_ARGS(ids, id, error));
	free(ids);
	return rc;
}

/* The channel and template pp_auto_channel (common/sql/013_plan.sql)
 * chooses, the chosen template's texts and the appointment's link. The
 * same function answers `practicepost plan`. */
typedef struct {
	PGresult *res;
	const char *subject, *body; /* of the template chosen */
	int has_appointment, link_set;
	const char *link_error;
} auto_choice_t;

enum { C_CHANNEL, C_SKIP, C_REFUSAL, C_SUBJECT, C_BODY, C_HAS_APPT, C_LINK_SET, C_LINK_ERROR };

static const char choice_sql[] =
    "SELECT ch.channel, ch.skip, ch.refusal, t.subject, t.body, a.id IS NOT NULL, "
    "a.booking_link IS NOT NULL, a.booking_link_error "
    "FROM pp_auto_channel($1, $2, $3, $4) ch "
    "LEFT JOIN templates t ON t.practice_id = $1 AND t.code = ch.template_code "
    "LEFT JOIN appointments a ON a.id = $5::bigint";

/* auto_choose - the template code to use (borrowed from m), NULL when
 * nothing is sent: skip says why (the patient's or the practice's
 * choice), or the refusal is in err. */
static const char *auto_choose(const composer_auto_msg_t *m, auto_choice_t *c, char *skip,
                               size_t skiplen, char *err, size_t errlen)
{
	const PGresult *r = c->res;
	const char *channel = pp_db_value(r, 0, C_CHANNEL);
	c->subject = pp_db_value(r, 0, C_SUBJECT);
	c->body = pp_db_value(r, 0, C_BODY);
	c->has_appointment = strcmp(pp_db_value(r, 0, C_HAS_APPT), "t") == 0;
	c->link_set = strcmp(pp_db_value(r, 0, C_LINK_SET), "t") == 0;
	c->link_error = pp_db_value(r, 0, C_LINK_ERROR);
	if (pp_db_value(r, 0, C_SKIP) != NULL)
		pp_strlcpy(skip, pp_db_value(r, 0, C_SKIP), skiplen);
	if (pp_db_value(r, 0, C_REFUSAL) != NULL)
		pp_strlcpy(err, pp_db_value(r, 0, C_REFUSAL), errlen);
	if (channel == NULL)
		return NULL;
	return strcmp(channel, "sms") == 0 ? m->sms_template : m->email_template;
}

/* auto_needs_link - the template merges {{appointment.booking_link}}. */
static int auto_needs_link(const auto_choice_t *c)
{
	return composer_auto_needs_link(c->subject, c->body);
}

int composer_auto_needs_link(const char *subject, const char *body)
{
	const char *texts[2] = {subject, body};
	int uses = 0;
	for (int i = 0; i < 2 && !uses; i++) {
		char err[64];
		pp_merge_template_t *t =
		    texts[i] ? pp_merge_parse(texts[i], err, sizeof(err)) : NULL;
		uses = t != NULL && pp_merge_uses(t, PP_FIELD_APPOINTMENT_BOOKING_LINK);
		pp_merge_template_free(&t);
	}
	return uses;
}

composer_auto_rc_t composer_auto_compose(pp_db_t *db, const composer_auto_msg_t *m,
                                         const char *code, int64_t *msg_id, char *err,
                                         size_t errlen)
{
	composer_job_t job;
	char description[64];
	memset(&job, 0, sizeof(job));
	snprintf(description, sizeof(description), "automatic %s (rule %lld)", m->kind,
	         LL(m->rule_id));
	job.req.practice_id = m->practice_id;
	job.req.person_id = m->person_id;
	job.req.template_code = code;
	job.req.appointment_id = m->appointment;
	job.req.deliver_after = m->deliver_after;
	job.req.category = m->kind;
	job.req.description = description;
	job.req.family_appointments = m->family_text;
	job.msg.id = m->reuse_id;
	if (pp_db_command(db, "SAVEPOINT auto_compose", 0, NULL) != 0)
		return AUTO_DB_ERROR;
	composer_rc_t rc = composer_job_compose(db, &job);
	composer_auto_rc_t out = AUTO_MADE;
	if (rc == COMPOSER_OK) {
		*msg_id = job.msg.id;
		composer_auto_wake(job.msg.channel);
		out = pp_db_command(db, "RELEASE SAVEPOINT auto_compose", 0, NULL) ? AUTO_DB_ERROR
		                                                                   : AUTO_MADE;
	} else if (rc == COMPOSER_REFUSED) {
		pp_strlcpy(err, job.err, errlen);
		out = pp_db_command(db, "ROLLBACK TO SAVEPOINT auto_compose", 0, NULL)
		          ? AUTO_DB_ERROR
		          : AUTO_REFUSED;
	} else {
		out = AUTO_DB_ERROR;
	}
	composer_job_free(&job);
	return out;
}

composer_auto_rc_t composer_auto_make(pp_daemon_t *d, const composer_auto_msg_t *m, int64_t *msg_id,
                                      char *outcome, size_t outlen)
{
	pp_db_t *db = pp_daemon_db(d);
	auto_choice_t c;
	char practice[24], person[24], err[COMPOSER_ERR_MAX] = "";
	composer_auto_rc_t rc;
	memset(&c, 0, sizeof(c));
	*msg_id = 0;
	pp_lltoa(practice, m->practice_id);
	pp_lltoa(person, m->person_id);
	c.res = pp_db_exec(
	    db, choice_sql,
	    PP_DB_ARGS(practice, person, m->email_template, m->sms_template, m->appointment));
	if (c.res == NULL)
		return AUTO_DB_ERROR;
	const char *code = NULL;
	if (PQntuples(c.res) != 1)
		snprintf(err, sizeof(err), "person %lld not found", LL(m->person_id));
	else
		code = auto_choose(m, &c, outcome, outlen, err, sizeof(err));
	if (code == NULL && err[0] == '\0') {
		rc = composer_auto_mark_sent(db, m, 0, outcome) ? AUTO_DB_ERROR : AUTO_SKIPPED;
		goto done;
	}
	if (code == NULL)
		rc = AUTO_REFUSED;
	else if (m->appointment && c.has_appointment && !c.link_set && auto_needs_link(&c))
		rc = composer_auto_park(db, m, code, c.link_error, msg_id, err, sizeof(err));
	else
		rc = composer_auto_compose(db, m, code, msg_id, err, sizeof(err));
	if (rc == AUTO_DB_ERROR)
		goto done;
	if (rc == AUTO_REFUSED) {
		snprintf(outcome, outlen, "%s refused: %s", m->kind, err);
		log_warnx("rule=%lld %s for person=%lld appointment=%s refused: %s", LL(m->rule_id),
		          m->kind, LL(m->person_id), m->appointment ? m->appointment : "-", err);
		if (composer_auto_mark_sent(db, m, 0, err) != 0 ||
		    pp_diag_raise(db, "composer", "warning", "auto_message_refused", m->practice_id,
		                  0, 0, outcome) != 0)
			rc = AUTO_DB_ERROR;
		goto done;
	}
	snprintf(outcome, outlen, "msg=%lld %s", LL(*msg_id), m->kind);
	log_info("msg=%lld rule=%lld kind=%s person=%lld appointment=%s template=%s "
	         "deliver_after=%s",
	         LL(*msg_id), LL(m->rule_id), m->kind, LL(m->person_id),
	         m->appointment ? m->appointment : "-", code,
	         m->deliver_after ? m->deliver_after : "now");
	if (composer_auto_mark_sent(db, m, *msg_id, NULL) != 0)
		rc = AUTO_DB_ERROR;
done:
	PQclear(c.res);
	return rc;
}

/* ---- appointment events: confirmation and cancellation ---- */

/* auto_supersede - delete the automatic messages about the appointment
 * that have not gone out (queued or waiting for their link, never
 * attempted), with their auto_sent rows: the appointment's new state
 * replaces them (a reminder deleted here is due again). Sets
 * *confirmation when an unsent confirmation was among them. */
static int auto_supersede(pp_db_t *db, const char *appointment, int *confirmation)
{
	PGresult *res = pp_db_exec(
	    db,
	    "SELECT array_agg(m.id)::text FROM (SELECT m.id FROM messages m WHERE m.id IN "
	    "(SELECT s.message_id FROM auto_sent s WHERE s.appointment_id = $1) AND m.state IN "
	    "('queued', 'pending_sync', 'sync_failed') AND m.attempts = 0 FOR UPDATE) m",
	    PP_DB_ARGS(appointment));
	PGresult *kinds = NULL;
	int rc = -1;
	*confirmation = 0;
	if (res == NULL)
		return -1;
	const char *ids = pp_db_value(res, 0, 0);
	if (ids == NULL) {
		PQclear(res);
		return 0;
	}
	kinds = pp_db_exec(db,
	                   "DELETE FROM auto_sent WHERE message_id = ANY($1::bigint[]) "
	                   "RETURNING message_id, kind",
	                   PP_DB_ARGS(ids));
	if (kinds == NULL || pp_db_command(db, "DELETE FROM messages WHERE id = ANY($1::bigint[])",
	                                   PP_DB_ARGS(ids)) != 0)
		goto done;
	for (int i = 0; i < PQntuples(kinds); i++) {
		log_info("msg=%s state=superseded appointment=%s kind=%s", pp_db_value(kinds, i, 0),
		         appointment, pp_db_value(kinds, i, 1));
		*confirmation |= strcmp(pp_db_value(kinds, i, 1), "confirmation") == 0;
	}
	rc = 0;
done:
	PQclear(kinds);
	PQclear(res);
	return rc;
}

/* Columns of the appointment query. */
enum { A_PRACTICE, A_PATIENT, A_STATUS, A_FUTURE, A_TOLD, A_RULE, A_TEMPLATE, A_SMS, A_AFTER };

static const char appointment_sql[] =
    "SELECT a.practice_id, a.patient_id, a.status, a.starts_at > now(), "
    "EXISTS (SELECT 1 FROM auto_sent s WHERE s.appointment_id = a.id "
    "AND s.kind = 'confirmation' AND s.message_id IS NOT NULL), "
    "r.id, r.template_code, r.sms_template_code, "
    "($2::timestamptz + make_interval(mins => r.delay_minutes))::text "
    "FROM appointments a LEFT JOIN auto_messages r ON r.practice_id = a.practice_id "
    "AND r.enabled AND r.kind = CASE WHEN a.status = 'booked' THEN 'confirmation' "
    "ELSE 'cancellation' END WHERE a.id = $1";

/* auto_appointment_decide - make the confirmation or cancellation the
 * appointment's current state calls for; outcome says what happened. */
static composer_auto_rc_t auto_appointment_decide(pp_daemon_t *d, const char *appt,
                                                  const char *last_at, int fresh, char *outcome,
                                                  size_t outlen)
{
	pp_db_t *db = pp_daemon_db(d);
	int removed = 0, n;
	composer_auto_rc_t rc = AUTO_SKIPPED;
	int64_t *sent = NULL, msg = 0, person, id = strtoll(appt, NULL, 10);
	if (auto_supersede(db, appt, &removed) != 0)
		return AUTO_DB_ERROR;
	PGresult *res = pp_db_exec(db, appointment_sql, PP_DB_ARGS(appt, last_at));
	if (res == NULL)
		return AUTO_DB_ERROR;
	int booked = PQntuples(res) == 1 && strcmp(pp_db_value(res, 0, A_STATUS), "booked") == 0;
	const char *kind = booked ? "confirmation" : "cancellation";
	if (PQntuples(res) != 1)
		snprintf(outcome, outlen, "appointment gone");
	else if (strcmp(pp_db_value(res, 0, A_FUTURE), "t") != 0)
		snprintf(outcome, outlen, "appointment is in the past; no %s", kind);
	else if (pp_db_value(res, 0, A_RULE) == NULL)
		snprintf(outcome, outlen, "no %s message enabled", kind);
	else if (!booked && strcmp(pp_db_value(res, 0, A_TOLD), "t") != 0 && (removed || fresh))
		snprintf(outcome, outlen, "cancelled before any confirmation went out");
	else {
		composer_auto_msg_t m = {
		    .kind = kind,
		    .rule_id = pp_db_value_ll(res, 0, A_RULE, 0),
		    .practice_id = pp_db_value_ll(res, 0, A_PRACTICE, 0),
		    .person_id = pp_db_value_ll(res, 0, A_PATIENT, 0),
		    .appointment = appt,
		    .email_template = pp_db_value(res, 0, A_TEMPLATE),
		    .sms_template = pp_db_value(res, 0, A_SMS),
		    .deliver_after = pp_db_value(res, 0, A_AFTER),
		};
		person = m.person_id;
		n = composer_auto_record(db, kind, m.rule_id, m.practice_id, &person, &id, 1, &sent,
		                         NULL);
		m.sent_ids = sent;
		m.nsent = n > 0 ? (size_t)n : 0;
		rc = n < 0 ? AUTO_DB_ERROR : composer_auto_make(d, &m, &msg, outcome, outlen);
	}
	if (removed && rc != AUTO_DB_ERROR) {
		size_t len = strlen(outcome);
		snprintf(outcome + len, outlen - len, "; an unsent confirmation was superseded");
	}
	free(sent);
	PQclear(res);
	return rc;
}

/* auto_appointment_one - all unprocessed events of one appointment, in
 * one transaction under the appointment's advisory lock. 1 handled, 0
 * skipped (another instance has it), -1 database error. */
static int auto_appointment_one(pp_daemon_t *d, const PGresult *todo, int row)
{
	pp_db_t *db = pp_daemon_db(d);
	const char *appt = pp_db_value(todo, row, 0);
	char outcome[COMPOSER_ERR_MAX + 64] = "";
	PGresult *res = NULL;
	if (pp_db_begin(db) != 0)
		return -1;
	int got = composer_auto_try_lock(db, strtoll(appt, NULL, 10));
	if (got <= 0)
		goto fail;
	res = pp_db_exec(db,
	                 "SELECT array_agg(id ORDER BY id)::text, max(at)::text, "
	                 "bool_or(kind = 'booked') FROM appointment_events "
	                 "WHERE appointment_id = $1 AND NOT processed",
	                 PP_DB_ARGS(appt));
	if (res == NULL || pp_db_value(res, 0, 0) == NULL) {
		got = res == NULL ? -1 : 0;
		goto fail;
	}
	int fresh = strcmp(pp_db_value(res, 0, 2), "t") == 0;
	if (auto_appointment_decide(d, appt, pp_db_value(res, 0, 1), fresh, outcome,
	                            sizeof(outcome)) == AUTO_DB_ERROR ||
	    pp_db_command(db,
	                  "UPDATE appointment_events SET processed = true, processed_at = now(), "
	                  "outcome = $2 WHERE id = ANY($1::bigint[])",
	                  PP_DB_ARGS(pp_db_value(res, 0, 0), outcome)) != 0 ||
	    pp_db_commit(db) != 0) {
		got = -1;
		goto fail;
	}
	log_info("appointment=%s events=%s %s", appt, pp_db_value(res, 0, 0), outcome);
	PQclear(res);
	return 1;
fail:
	PQclear(res);
	pp_db_rollback(db);
	return got;
}

/* auto_skip_events - events no rule can act on are closed in bulk: no
 * enabled confirmation/cancellation (or welcome) message in the practice
 * and no automatic message about the appointment to supersede. */
static int auto_skip_events(pp_db_t *db)
{
	return pp_db_command(
	           db,
	           "UPDATE appointment_events e SET processed = true, processed_at = now(), "
	           "outcome = 'no confirmation or cancellation message enabled' "
	           "WHERE NOT e.processed AND NOT EXISTS (SELECT 1 FROM appointments a JOIN "
	           "auto_messages r ON r.practice_id = a.practice_id AND r.enabled AND r.kind IN "
	           "('confirmation', 'cancellation') WHERE a.id = e.appointment_id) "
	           "AND NOT EXISTS (SELECT 1 FROM auto_sent s WHERE s.appointment_id = "
	           "e.appointment_id)",
	           0, NULL) ||
	       pp_db_command(db,
	                     "UPDATE patient_events e SET processed = true, processed_at = now(), "
	                     "outcome = 'no welcome message enabled' WHERE NOT e.processed AND "
	                     "NOT EXISTS (SELECT 1 FROM people pe JOIN auto_messages r ON "
	                     "r.practice_id = pe.practice_id AND r.enabled AND r.kind = 'welcome' "
	                     "WHERE pe.id = e.person_id)",
	                     0, NULL);
}

static int auto_appointment_events(pp_daemon_t *d)
{
	return composer_auto_each(d,
	                          "SELECT appointment_id FROM appointment_events WHERE NOT "
	                          "processed GROUP BY appointment_id ORDER BY min(id) LIMIT $1",
	                          NULL, auto_appointment_one);
}

/* ---- patient events: welcome ---- */

/* auto_welcome_one - one new patient's welcome, in one transaction. */
static int auto_welcome_one(pp_daemon_t *d, const PGresult *todo, int row)
{
	pp_db_t *db = pp_daemon_db(d);
	const char *event = pp_db_value(todo, row, 0);
	char outcome[COMPOSER_ERR_MAX + 64] = "no welcome message enabled";
	int64_t *sent = NULL, msg = 0;
	if (pp_db_begin(db) != 0)
		return -1;
	PGresult *res = pp_db_exec(
	    db,
	    "SELECT e.person_id, pe.practice_id, r.id, r.template_code, r.sms_template_code, "
	    "(e.at + make_interval(mins => r.delay_minutes))::text FROM patient_events e "
	    "JOIN people pe ON pe.id = e.person_id LEFT JOIN auto_messages r ON r.practice_id = "
	    "pe.practice_id AND r.kind = 'welcome' AND r.enabled "
	    "WHERE e.id = $1 AND NOT e.processed FOR UPDATE OF e SKIP LOCKED",
	    PP_DB_ARGS(event));
	int rc = res == NULL ? -1 : PQntuples(res);
	if (rc <= 0)
		goto fail;
	if (pp_db_value(res, 0, 2) != NULL) {
		composer_auto_msg_t m = {
		    .kind = "welcome",
		    .rule_id = pp_db_value_ll(res, 0, 2, 0),
		    .practice_id = pp_db_value_ll(res, 0, 1, 0),
		    .person_id = pp_db_value_ll(res, 0, 0, 0),
		    .email_template = pp_db_value(res, 0, 3),
		    .sms_template = pp_db_value(res, 0, 4),
		    .deliver_after = pp_db_value(res, 0, 5),
		};
		int n = composer_auto_record(db, "welcome", m.rule_id, m.practice_id, &m.person_id,
		                             NULL, 0, &sent, NULL);
		m.sent_ids = sent;
		m.nsent = n > 0 ? (size_t)n : 0;
		if (n < 0 ||
		    composer_auto_make(d, &m, &msg, outcome, sizeof(outcome)) == AUTO_DB_ERROR) {
			rc = -1;
			goto fail;
		}
	}
	if (pp_db_command(db,
	                  "UPDATE patient_events SET processed = true, processed_at = now(), "
	                  "outcome = $2 WHERE id = $1",
	                  PP_DB_ARGS(event, outcome)) != 0 ||
	    pp_db_commit(db) != 0) {
		rc = -1;
		goto fail;
	}
	log_info("patient_event=%s person=%s %s", event, pp_db_value(res, 0, 0), outcome);
	free(sent);
	PQclear(res);
	return 1;
fail:
	free(sent);
	PQclear(res);
	pp_db_rollback(db);
	return rc;
}

static int auto_patient_events(pp_daemon_t *d)
{
	return composer_auto_each(d,
	                          "SELECT id FROM patient_events WHERE NOT processed "
	                          "ORDER BY id LIMIT $1",
	                          NULL, auto_welcome_one);
}

/* auto_purge - processed events older than the retention, once an hour. */
static void auto_purge(pp_db_t *db)
{
	char days[16];
	if (pp_mono_ms() < settings.next_purge_ms)
		return;
	settings.next_purge_ms = pp_mono_ms() + 3600 * 1000;
	snprintf(days, sizeof(days), "%d", settings.retention_days);
	if (pp_db_command(db,
	                  "DELETE FROM appointment_events WHERE processed AND processed_at < now() "
	                  "- make_interval(days => $1::int)",
	                  PP_DB_ARGS(days)) != 0 ||
	    pp_db_command(db,
	                  "DELETE FROM patient_events WHERE processed AND processed_at < now() - "
	                  "make_interval(days => $1::int)",
	                  PP_DB_ARGS(days)) != 0)
		log_warnx("purging old events failed: %s", pp_db_error(db));
}

int composer_auto_work(pp_daemon_t *d)
{
	pp_db_t *db = pp_daemon_db(d);
	int parts[5] = {0}, total = 0;
	if (auto_skip_events(db) != 0) {
		log_warnx("closing events without a rule failed: %s", pp_db_error(db));
		return -1;
	}
	parts[0] = auto_appointment_events(d);
	parts[1] = parts[0] < 0 ? -1 : auto_patient_events(d);
	parts[2] = parts[1] < 0 ? -1 : composer_auto_remind(d);
	parts[3] = parts[2] < 0 ? -1 : composer_auto_sync(d);
	parts[4] = parts[3] < 0 ? -1 : composer_batch_work(d, settings.bulk_chunk);
	if (wake_email)
		pp_daemon_wake(d, "sender", 0);
	if (wake_sms)
		pp_daemon_wake(d, "sms", 0);
	wake_email = wake_sms = 0;
	for (int i = 0; i < 5; i++) {
		if (parts[i] < 0) {
			log_warnx("automatic messages: database problem, will retry: %s",
			          pp_db_error(db));
			return -1;
		}
		total += parts[i];
	}
	auto_purge(db);
	return total;
}

/* composer_auto_wake - the sender or sms stage has new work once the
 * caller commits (used by composer_batch.c). */
void composer_auto_wake(composer_channel_t channel)
{
	if (channel == COMPOSER_EMAIL)
		wake_email = 1;
	else
		wake_sms = 1;
}
