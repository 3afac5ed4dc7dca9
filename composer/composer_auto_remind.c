/*
 * composer_auto_remind.c - appointment reminders. Each enabled reminder
 * rule reaches each booked appointment once, offset_minutes before it
 * starts (the auto_sent row is taken in the transaction that makes the
 * message, so restarts and other instances never repeat it). Family
 * members' appointments on the same local day within the rule's family
 * window share one message to the guarantor (else the member seen first),
 * listing every appointment as {{family.appointments}}.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "composer_auto.h"
#include "pp_log.h"
#include "pp_util.h"

/* Columns of the due query. */
enum {
	R_RULE,
	R_PRACTICE,
	R_APPOINTMENT,
	R_PATIENT,
	R_FAMILY,
	R_STARTS,
	R_WINDOW,
	R_TEMPLATE,
	R_SMS,
	R_FAMILY_TEMPLATE,
	R_FAMILY_SMS
};

/* The selection is pp_reminders_due (common/sql/013_plan.sql), which
 * `practicepost plan` reads too. */
static const char due_sql[] =
    "SELECT rule_id, practice_id, appointment_id, patient_id, family_id, starts_at::text, "
    "family_window_minutes, template_code, sms_template_code, family_template_code, "
    "family_sms_template_code FROM pp_reminders_due(NULL, now()) "
    "ORDER BY starts_at, appointment_id LIMIT $1";

/* The family's appointments that join this one (pp_reminder_group): same
 * practice and local day, starting within the window after it, not yet
 * reminded by the rule. */
static const char group_sql[] =
    "SELECT appointment_id, patient_id FROM pp_reminder_group($5, $1::bigint, $2, "
    "$3::timestamptz, $4::int)";

/* The grouped message (pp_family_reminder): its recipient (the guarantor
 * when one of the members names a guarantor in the family, else the first
 * member), the appointment merged (the recipient's own, else the first)
 * and the list. */
static const char family_sql[] = "SELECT person_id, appointment_id::text, appointments_text "
                                 "FROM pp_family_reminder($1::bigint[])";

PGresult *composer_auto_family(pp_db_t *db, const int64_t *appointments, size_t n)
{
	char *ids = composer_auto_sql_ids(appointments, n);
	PGresult *res = pp_db_exec(db, family_sql, PP_DB_ARGS(ids));
	free(ids);
	return res;
}

/* remind_group - the appointments this reminder covers (at least the due
 * one, unless another instance took it); owned arrays, count or -1. */
static int remind_group(pp_db_t *db, const PGresult *due, int row, int64_t **appts,
                        int64_t **persons)
{
	int grouped = pp_db_value(due, row, R_FAMILY) != NULL &&
	              pp_db_value(due, row, R_FAMILY_TEMPLATE) != NULL;
	if (!grouped) {
		*appts = xcalloc(2, sizeof(**appts));
		*persons = xcalloc(2, sizeof(**persons));
		(*appts)[0] = pp_db_value_ll(due, row, R_APPOINTMENT, 0);
		(*persons)[0] = pp_db_value_ll(due, row, R_PATIENT, 0);
		return 1;
	}
	PGresult *res = pp_db_exec(
	    db, group_sql,
	    PP_DB_ARGS(pp_db_value(due, row, R_FAMILY), pp_db_value(due, row, R_PRACTICE),
	               pp_db_value(due, row, R_STARTS), pp_db_value(due, row, R_WINDOW),
	               pp_db_value(due, row, R_RULE)));
	if (res == NULL)
		return -1;
	int n = PQntuples(res);
	*appts = xcalloc((size_t)n + 1, sizeof(**appts));
	*persons = xcalloc((size_t)n + 1, sizeof(**persons));
	for (int i = 0; i < n; i++) {
		(*appts)[i] = pp_db_value_ll(res, i, 0, 0);
		(*persons)[i] = pp_db_value_ll(res, i, 1, 0);
	}
	PQclear(res);
	return n;
}

/* remind_make - the reminder for the kept appointments (one: a plain
 * reminder to its patient; several: the family message). */
static composer_auto_rc_t remind_make(pp_daemon_t *d, const PGresult *due, int row,
                                      const int64_t *kept, const int64_t *persons,
                                      const int64_t *sent, size_t n, char *outcome, size_t outlen)
{
	char appt[24];
	int64_t msg = 0;
	composer_auto_msg_t m = {
	    .kind = "reminder",
	    .rule_id = pp_db_value_ll(due, row, R_RULE, 0),
	    .practice_id = pp_db_value_ll(due, row, R_PRACTICE, 0),
	    .person_id = persons[0],
	    .appointment = appt,
	    .email_template = pp_db_value(due, row, R_TEMPLATE),
	    .sms_template = pp_db_value(due, row, R_SMS),
	    .sent_ids = sent,
	    .nsent = n,
	};
	pp_lltoa(appt, kept[0]);
	if (n == 1)
		return composer_auto_make(d, &m, &msg, outcome, outlen);
	PGresult *res = composer_auto_family(pp_daemon_db(d), kept, n);
	if (res == NULL)
		return AUTO_DB_ERROR;
	m.person_id = pp_db_value_ll(res, 0, 0, 0);
	m.appointment = pp_db_value(res, 0, 1);
	m.family_text = pp_db_value(res, 0, 2);
	m.email_template = pp_db_value(due, row, R_FAMILY_TEMPLATE);
	m.sms_template = pp_db_value(due, row, R_FAMILY_SMS);
	composer_auto_rc_t rc = composer_auto_make(d, &m, &msg, outcome, outlen);
	if (rc == AUTO_MADE)
		log_info("msg=%lld family reminder covers %zu appointments", LL(msg), n);
	PQclear(res);
	return rc;
}

/* remind_one - one due reminder in its own transaction: 1 made (or
 * recorded as refused), 0 nothing to do, -1 database error. */
static int remind_one(pp_daemon_t *d, const PGresult *due, int row)
{
	pp_db_t *db = pp_daemon_db(d);
	int64_t *appts = NULL, *persons = NULL, *sent = NULL, *kept = NULL, *who = NULL;
	char outcome[COMPOSER_ERR_MAX + 64] = "";
	int rc = -1, n = 0, group = 0;
	if (pp_db_begin(db) != 0)
		return -1;
	rc = composer_auto_try_lock(db, pp_db_value_ll(due, row, R_APPOINTMENT, 0));
	if (rc <= 0 || (rc = group = remind_group(db, due, row, &appts, &persons)) <= 0)
		goto fail;
	n = composer_auto_record(db, "reminder", pp_db_value_ll(due, row, R_RULE, 0),
	                         pp_db_value_ll(due, row, R_PRACTICE, 0), persons, appts,
	                         (size_t)group, &sent, &kept);
	if (n <= 0) {
		rc = n;
		goto fail;
	}
	/* kept may be a subset of appts (another instance took some): the
	 * patients of the kept appointments. */
	who = xcalloc((size_t)n, sizeof(*who));
	for (int i = 0; i < n; i++)
		for (int j = 0; j < group; j++)
			if (appts[j] == kept[i])
				who[i] = persons[j];
	if (remind_make(d, due, row, kept, who, sent, (size_t)n, outcome, sizeof(outcome)) ==
	        AUTO_DB_ERROR ||
	    pp_db_commit(db) != 0) {
		rc = -1;
		goto fail;
	}
	log_info("rule=%s appointment=%s reminder: %s", pp_db_value(due, row, R_RULE),
	         pp_db_value(due, row, R_APPOINTMENT), outcome);
	rc = 1;
	goto done;
fail:
	pp_db_rollback(db);
done:
	free(appts);
	free(persons);
	free(sent);
	free(kept);
	free(who);
	return rc;
}

int composer_auto_remind(pp_daemon_t *d)
{
	return composer_auto_each(d, due_sql, NULL, remind_one);
}
