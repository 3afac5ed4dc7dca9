/*
 * composer_auto_sync.c - messages that wait for an appointment's
 * online-booking link. A message whose template merges
 * {{appointment.booking_link}} while the link is not set is parked as a
 * pending_sync row (no body yet). Each round: a link that has arrived
 * composes the message into that row (same id) and queues it; an error
 * the practice software wrote after the message began waiting, or a wait
 * past sync_timeout_minutes, makes it sync_failed. `practicepost
 * reset-failed` puts it back to pending_sync, which starts a new wait.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "composer_auto.h"
#include "pp_log.h"
#include "pp_util.h"

#define SYNC_ERROR_MAX 400

composer_auto_rc_t composer_auto_park(pp_db_t *db, const composer_auto_msg_t *m,
                                      const char *template_code, const char *link_error,
                                      int64_t *msg_id, char *err, size_t errlen)
{
	char practice[24], person[24], why[SYNC_ERROR_MAX + 64];
	pp_lltoa(practice, m->practice_id);
	pp_lltoa(person, m->person_id);
	if (link_error != NULL)
		snprintf(why, sizeof(why), "the online-booking link could not be set: %.*s",
		         SYNC_ERROR_MAX, link_error);
	else
		snprintf(why, sizeof(why), "waiting for the online-booking link of appointment %s",
		         m->appointment);
	PGresult *res = pp_db_exec(
	    db,
	    "INSERT INTO messages (practice_id, direction, channel, state, email_account_id, "
	    "sms_account_id, person_id, appointment_id, template_id, category, description, "
	    "to_addr, deliver_after, last_error) "
	    "SELECT $1, 'out', t.channel, $5::message_state, e.id, s.id, pe.id, $3, t.id, $6, "
	    "'automatic ' || $6, coalesce(CASE WHEN t.channel = 'email' THEN pe.email ELSE "
	    "pe.mobile END, ''), coalesce($7::timestamptz, now()), $8 "
	    "FROM templates t JOIN people pe ON pe.id = $2 "
	    "LEFT JOIN LATERAL (SELECT id FROM email_accounts WHERE practice_id = $1 AND enabled "
	    "AND t.channel = 'email' ORDER BY id LIMIT 1) e ON true "
	    "LEFT JOIN LATERAL (SELECT id FROM sms_accounts WHERE practice_id = $1 AND enabled "
	    "AND t.channel = 'sms' ORDER BY id LIMIT 1) s ON true "
	    "WHERE t.practice_id = $1 AND t.code = $4 AND coalesce(e.id, s.id) IS NOT NULL "
	    "RETURNING id, channel::text",
	    PP_DB_ARGS(practice, person, m->appointment, template_code,
	               link_error ? "sync_failed" : "pending_sync", m->kind, m->deliver_after,
	               why));
	if (res == NULL)
		return AUTO_DB_ERROR;
	if (PQntuples(res) != 1) {
		PQclear(res);
		snprintf(err, errlen, "practice %lld has no enabled account for template \"%s\"",
		         LL(m->practice_id), template_code);
		return AUTO_REFUSED;
	}
	*msg_id = pp_db_value_ll(res, 0, 0, 0);
	log_info("msg=%lld state=%s channel=%s appointment=%s waiting for the booking link",
	         LL(*msg_id), link_error ? "sync_failed" : "pending_sync", pp_db_value(res, 0, 1),
	         m->appointment);
	PQclear(res);
	return AUTO_MADE;
}

/* Columns of the waiting message. */
enum {
	W_PRACTICE,
	W_PERSON,
	W_APPOINTMENT,
	W_CODE,
	W_AFTER,
	W_CATEGORY,
	W_LINK,
	W_ERROR,
	W_ERROR_NEW,
	W_TIMED_OUT,
	W_RULE,
	W_SENT,
	W_APPOINTMENTS
};

static const char waiting_sql[] =
    "SELECT m.practice_id, m.person_id, m.appointment_id::text, t.code, m.deliver_after::text, "
    "m.category, a.booking_link IS NOT NULL, a.booking_link_error, "
    "a.booking_link_error IS NOT NULL AND a.booking_link_error_at >= m.updated_at, "
    "$2::int > 0 AND m.updated_at < now() - make_interval(mins => $2::int), "
    "(SELECT min(auto_message_id) FROM auto_sent WHERE message_id = m.id), "
    "(SELECT array_agg(id ORDER BY id)::text FROM auto_sent WHERE message_id = m.id), "
    "(SELECT array_agg(appointment_id ORDER BY id)::text FROM auto_sent WHERE message_id = "
    "m.id) "
    "FROM messages m JOIN appointments a ON a.id = m.appointment_id "
    "LEFT JOIN templates t ON t.id = m.template_id "
    "WHERE m.id = $1 AND m.state = 'pending_sync' FOR UPDATE OF m SKIP LOCKED";

/* sync_ids - parse "{1,2,3}" into *out (owned); count. */
static size_t sync_ids(const char *text, int64_t **out)
{
	size_t n = 0, cap = 4;
	*out = xcalloc(cap, sizeof(**out));
	for (const char *p = text ? text + 1 : ""; *p && *p != '}';) {
		char *end;
		long long v = strtoll(p, &end, 10);
		if (end == p)
			break;
		if (n == cap)
			*out = xrealloc(*out, (cap *= 2) * sizeof(**out));
		(*out)[n++] = v;
		p = *end == ',' ? end + 1 : end;
	}
	return n;
}

/* sync_fail - the message cannot be completed: sync_failed with the
 * reason (never failed: the row has no body yet, and "reset failed
 * messages" must send it back to pending_sync, not to the queue). */
static int sync_fail(pp_db_t *db, const char *id, const char *why)
{
	if (pp_db_command(db,
	                  "UPDATE messages SET state = 'sync_failed', last_error = $2, "
	                  "updated_at = now() WHERE id = $1",
	                  PP_DB_ARGS(id, why)) != 0)
		return -1;
	log_warnx("msg=%s state=sync_failed error=\"%s\"", id, why);
	return 0;
}

/* sync_complete - the link is there: compose the message into the same
 * row (the placeholder is deleted and the message inserted with its id,
 * in a savepoint; a refusal restores it as sync_failed with the reason). */
static int sync_complete(pp_db_t *db, const char *id, const PGresult *w)
{
	char err[COMPOSER_ERR_MAX] = "";
	int64_t *sent = NULL, *appts = NULL, msg = 0;
	size_t nsent = sync_ids(pp_db_value(w, 0, W_SENT), &sent);
	size_t nappts = sync_ids(pp_db_value(w, 0, W_APPOINTMENTS), &appts);
	PGresult *family = NULL;
	int rc = -1;
	composer_auto_msg_t m = {
	    .kind = pp_db_value(w, 0, W_CATEGORY),
	    .rule_id = pp_db_value_ll(w, 0, W_RULE, 0),
	    .practice_id = pp_db_value_ll(w, 0, W_PRACTICE, 0),
	    .person_id = pp_db_value_ll(w, 0, W_PERSON, 0),
	    .appointment = pp_db_value(w, 0, W_APPOINTMENT),
	    .deliver_after = pp_db_value(w, 0, W_AFTER),
	    .sent_ids = sent,
	    .nsent = nsent,
	    .reuse_id = strtoll(id, NULL, 10),
	};
	if (nappts > 1) {
		if ((family = composer_auto_family(db, appts, nappts)) == NULL)
			goto done;
		m.family_text = pp_db_value(family, 0, 2);
	}
	if (pp_db_command(db, "SAVEPOINT sync_complete", 0, NULL) != 0 ||
	    pp_db_command(db, "DELETE FROM messages WHERE id = $1", PP_DB_ARGS(id)) != 0)
		goto done;
	composer_auto_rc_t r =
	    pp_db_value(w, 0, W_CODE) == NULL
	        ? AUTO_REFUSED
	        : composer_auto_compose(db, &m, pp_db_value(w, 0, W_CODE), &msg, err, sizeof(err));
	if (r == AUTO_DB_ERROR)
		goto done;
	if (r == AUTO_REFUSED) {
		if (err[0] == '\0')
			snprintf(err, sizeof(err), "the message's template no longer exists");
		rc = pp_db_command(db, "ROLLBACK TO SAVEPOINT sync_complete", 0, NULL) == 0 &&
		             sync_fail(db, id, err) == 0
		         ? 0
		         : -1;
		goto done;
	}
	if (pp_db_command(db, "RELEASE SAVEPOINT sync_complete", 0, NULL) != 0 ||
	    composer_auto_mark_sent(db, &m, msg, NULL) != 0)
		goto done;
	log_info("msg=%lld state=queued booking link set (was msg=%s)", LL(msg), id);
	rc = 0;
done:
	PQclear(family);
	free(sent);
	free(appts);
	return rc;
}

/* sync_one - one waiting message in its own transaction: 1 changed, 0
 * still waiting (or another instance has it), -1 database error. */
static int sync_one(pp_daemon_t *d, const PGresult *todo, int row)
{
	pp_db_t *db = pp_daemon_db(d);
	const char *id = pp_db_value(todo, row, 0);
	char timeout[16], why[SYNC_ERROR_MAX + 64];
	int rc = -1;
	snprintf(timeout, sizeof(timeout), "%d", composer_auto_settings()->sync_timeout);
	if (pp_db_begin(db) != 0)
		return -1;
	PGresult *w = pp_db_exec(db, waiting_sql, PP_DB_ARGS(id, timeout));
	if (w == NULL || PQntuples(w) != 1) {
		rc = w == NULL ? -1 : 0;
		goto fail;
	}
	if (strcmp(pp_db_value(w, 0, W_LINK), "t") == 0) {
		rc = sync_complete(db, id, w);
	} else if (strcmp(pp_db_value(w, 0, W_ERROR_NEW), "t") == 0) {
		snprintf(why, sizeof(why), "the online-booking link could not be set: %.*s",
		         SYNC_ERROR_MAX, pp_db_value(w, 0, W_ERROR));
		rc = sync_fail(db, id, why);
	} else if (strcmp(pp_db_value(w, 0, W_TIMED_OUT), "t") == 0) {
		snprintf(why, sizeof(why), "the online-booking link was not set within %s minutes",
		         timeout);
		rc = sync_fail(db, id, why);
	} else {
		rc = 1; /* still waiting: nothing to commit */
		goto fail;
	}
	if (rc != 0 || pp_db_commit(db) != 0) {
		rc = -1;
		goto fail;
	}
	PQclear(w);
	return 1;
fail:
	PQclear(w);
	pp_db_rollback(db);
	return rc > 0 ? 0 : rc;
}

int composer_auto_sync(pp_daemon_t *d)
{
	char timeout[16];
	snprintf(timeout, sizeof(timeout), "%d", composer_auto_settings()->sync_timeout);
	return composer_auto_each(
	    d,
	    "SELECT m.id FROM messages m JOIN appointments a ON a.id = m.appointment_id "
	    "WHERE m.state = 'pending_sync' AND (a.booking_link IS NOT NULL OR "
	    "(a.booking_link_error IS NOT NULL AND a.booking_link_error_at >= m.updated_at) OR "
	    "($2::int > 0 AND m.updated_at < now() - make_interval(mins => $2::int))) "
	    "ORDER BY m.id LIMIT $1",
	    timeout, sync_one);
}
