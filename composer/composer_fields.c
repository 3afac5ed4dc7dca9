/*
 * composer_fields.c - reads what one compose request needs, inside its
 * transaction: the template (or the free text), the merge values of every
 * group (one query; appointment times formatted by PostgreSQL in the
 * practice's time zone) and the sending account. Owns the checks that keep
 * one patient's data out of another patient's message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "composer.h"
#include "pp_log.h"
#include "pp_util.h"

#define LL(x) ((long long)(x))

static int channel_parse(const char *text, composer_channel_t *out)
{
	if (text != NULL && strcmp(text, "email") == 0)
		*out = COMPOSER_EMAIL;
	else if (text != NULL && strcmp(text, "sms") == 0)
		*out = COMPOSER_SMS;
	else
		return -1;
	return 0;
}

/* template_signature - the practice's signature template body, when the
 * request asks for it. */
static composer_rc_t template_signature(pp_db_t *db, composer_job_t *job, const char *practice)
{
	composer_template_t *t = &job->tpl;
	t->sig_res = pp_db_exec(db,
	                        "SELECT t.body FROM practices p JOIN templates t "
	                        "ON t.id = p.signature_template_id WHERE p.id = $1",
	                        PP_DB_ARGS(practice));
	if (t->sig_res == NULL)
		return COMPOSER_DB_ERROR;
	if (PQntuples(t->sig_res) != 1)
		return composer_refuse(job,
		                       "a signature was requested but practice %s has no signature "
		                       "template",
		                       practice);
	t->signature = pp_db_value(t->sig_res, 0, 0);
	return COMPOSER_OK;
}

/* composer_template_load - the template named by the request (by practice
 * and code), or the request's own free text; decides the channel. */
composer_rc_t composer_template_load(pp_db_t *db, composer_job_t *job)
{
	const composer_request_t *r = &job->req;
	composer_template_t *t = &job->tpl;
	char practice[24];
	snprintf(practice, sizeof(practice), "%lld", LL(r->practice_id));
	if (r->template_code == NULL) {
		t->subject = r->subject;
		t->body = r->body;
		if (channel_parse(r->channel, &job->channel) != 0 || t->body == NULL)
			return composer_refuse(job,
			                       "a free-text request needs a channel and a body");
	} else {
		t->res = pp_db_exec(db,
		                    "SELECT id, channel, subject, body, format FROM templates "
		                    "WHERE practice_id = $1 AND code = $2",
		                    PP_DB_ARGS(practice, r->template_code));
		if (t->res == NULL)
			return COMPOSER_DB_ERROR;
		if (PQntuples(t->res) != 1)
			return composer_refuse(job, "unknown template \"%s\" for practice %s",
			                       r->template_code, practice);
		t->id = pp_db_value(t->res, 0, 0);
		const char *channel = pp_db_value(t->res, 0, 1);
		t->subject = pp_db_value(t->res, 0, 2);
		t->body = pp_db_value(t->res, 0, 3);
		t->html = strcmp(pp_db_value(t->res, 0, 4), "html") == 0;
		if (r->channel != NULL && strcmp(r->channel, channel) != 0)
			return composer_refuse(job,
			                       "template \"%s\" is for %s, the request asks for %s",
			                       r->template_code, channel, r->channel);
		channel_parse(channel, &job->channel);
	}
	if (r->add_signature)
		return template_signature(db, job, practice);
	return COMPOSER_OK;
}

/* Columns of the fields query, in order. */
enum {
	F_PR_NAME,
	F_PR_SITE,
	F_PR_PHONE,
	F_PR_ADDRESS,
	F_PR_TZ,
	F_PR_DOMAIN,
	F_PE_PRACTICE,
	F_PE_TITLE,
	F_PE_FIRST,
	F_PE_LAST,
	F_PE_EMAIL,
	F_PE_MOBILE,
	F_AP_ID,
	F_AP_PRACTICE,
	F_AP_PATIENT,
	F_AP_DATE,
	F_AP_TIME,
	F_AP_WEEKDAY,
	F_AP_DURATION,
	F_AP_DESCRIPTION,
	F_PV_ID,
	F_PV_PRACTICE,
	F_PV_TITLE,
	F_PV_FIRST,
	F_PV_LAST,
	F_LO_NAME,
	F_LO_ADDRESS,
	F_LO_PHONE,
	F_NOW
};

static const char fields_sql[] =
    "SELECT pr.name, pr.site, pr.phone, pr.address, pr.time_zone, pr.mail_domain, "
    "pe.practice_id, pe.title, pe.first_name, pe.last_name, pe.email, pe.mobile, "
    "a.id, a.practice_id, a.patient_id, "
    "to_char(a.starts_at AT TIME ZONE pr.time_zone, 'FMDD FMMonth YYYY'), "
    "to_char(a.starts_at AT TIME ZONE pr.time_zone, 'HH24:MI'), "
    "to_char(a.starts_at AT TIME ZONE pr.time_zone, 'FMDay'), "
    "a.duration_minutes, a.description, "
    "pv.id, pv.practice_id, pv.title, pv.first_name, pv.last_name, "
    "l.name, l.address, l.phone, "
    "floor(extract(epoch FROM now()))::bigint "
    "FROM practices pr "
    "JOIN people pe ON pe.id = $2::bigint "
    "LEFT JOIN appointments a ON a.id = $3::bigint "
    "LEFT JOIN people pv ON pv.id = coalesce($4::bigint, a.provider_id) "
    "LEFT JOIN locations l ON l.id = coalesce(a.location_id, pe.preferred_location_id) "
    "WHERE pr.id = $1::bigint";

/* Which column holds each merge field. */
static const int field_columns[PP_FIELD_COUNT] = {
    [PP_FIELD_PATIENT_FIRST_NAME] = F_PE_FIRST,
    [PP_FIELD_PATIENT_LAST_NAME] = F_PE_LAST,
    [PP_FIELD_PATIENT_TITLE] = F_PE_TITLE,
    [PP_FIELD_PATIENT_EMAIL] = F_PE_EMAIL,
    [PP_FIELD_PATIENT_MOBILE] = F_PE_MOBILE,
    [PP_FIELD_PRACTICE_NAME] = F_PR_NAME,
    [PP_FIELD_PRACTICE_SITE] = F_PR_SITE,
    [PP_FIELD_PRACTICE_PHONE] = F_PR_PHONE,
    [PP_FIELD_PRACTICE_ADDRESS] = F_PR_ADDRESS,
    [PP_FIELD_APPOINTMENT_DATE] = F_AP_DATE,
    [PP_FIELD_APPOINTMENT_TIME] = F_AP_TIME,
    [PP_FIELD_APPOINTMENT_WEEKDAY] = F_AP_WEEKDAY,
    [PP_FIELD_APPOINTMENT_DURATION] = F_AP_DURATION,
    [PP_FIELD_APPOINTMENT_DESCRIPTION] = F_AP_DESCRIPTION,
    [PP_FIELD_PROVIDER_FIRST_NAME] = F_PV_FIRST,
    [PP_FIELD_PROVIDER_LAST_NAME] = F_PV_LAST,
    [PP_FIELD_PROVIDER_TITLE] = F_PV_TITLE,
    [PP_FIELD_LOCATION_NAME] = F_LO_NAME,
    [PP_FIELD_LOCATION_ADDRESS] = F_LO_ADDRESS,
    [PP_FIELD_LOCATION_PHONE] = F_LO_PHONE,
};

/* fields_check - the person, appointment and provider all belong to the
 * request's practice, and the appointment is the person's own. */
static composer_rc_t fields_check(composer_job_t *job, const PGresult *res)
{
	const composer_request_t *r = &job->req;
	if (pp_db_value_ll(res, 0, F_PE_PRACTICE, 0) != r->practice_id)
		return composer_refuse(job, "person %lld is not a patient of practice %lld",
		                       LL(r->person_id), LL(r->practice_id));
	if (r->appointment_id != NULL &&
	    (pp_db_value(res, 0, F_AP_ID) == NULL ||
	     pp_db_value_ll(res, 0, F_AP_PRACTICE, 0) != r->practice_id ||
	     pp_db_value_ll(res, 0, F_AP_PATIENT, 0) != r->person_id))
		return composer_refuse(job,
		                       "appointment %s is not an appointment of person %lld at "
		                       "practice %lld",
		                       r->appointment_id, LL(r->person_id), LL(r->practice_id));
	if (pp_db_value(res, 0, F_PV_ID) != NULL &&
	    pp_db_value_ll(res, 0, F_PV_PRACTICE, 0) != r->practice_id)
		return composer_refuse(job, "provider %s does not belong to practice %lld",
		                       pp_db_value(res, 0, F_PV_ID), LL(r->practice_id));
	return COMPOSER_OK;
}

/* composer_fields_load - every merge value this request can offer. */
composer_rc_t composer_fields_load(pp_db_t *db, composer_job_t *job)
{
	const composer_request_t *r = &job->req;
	composer_fields_t *f = &job->fields;
	char practice[24], person[24];
	snprintf(practice, sizeof(practice), "%lld", LL(r->practice_id));
	snprintf(person, sizeof(person), "%lld", LL(r->person_id));
	f->res = pp_db_exec(db, fields_sql,
	                    PP_DB_ARGS(practice, person, r->appointment_id, r->provider_id));
	if (f->res == NULL)
		return COMPOSER_DB_ERROR;
	if (PQntuples(f->res) != 1)
		return composer_refuse(job, "practice %s or person %s not found", practice, person);
	composer_rc_t rc = fields_check(job, f->res);
	if (rc != COMPOSER_OK)
		return rc;
	for (int i = 0; i < PP_FIELD_COUNT; i++)
		f->values[i] = pp_db_value(f->res, 0, field_columns[i]);
	f->time_zone = pp_db_value(f->res, 0, F_PR_TZ);
	f->mail_domain = pp_db_value(f->res, 0, F_PR_DOMAIN);
	f->appointment_id = pp_db_value(f->res, 0, F_AP_ID);
	f->now_epoch = pp_db_value_ll(f->res, 0, F_NOW, 0);
	return COMPOSER_OK;
}

/* composer_account_load - the request's account, else the practice's
 * enabled account with the lowest id, for the job's channel. */
composer_rc_t composer_account_load(pp_db_t *db, composer_job_t *job)
{
	const composer_request_t *r = &job->req;
	composer_account_t *a = &job->account;
	int email = job->channel == COMPOSER_EMAIL;
	const char *wanted = email ? r->email_account_id : r->sms_account_id;
	char practice[24];
	snprintf(practice, sizeof(practice), "%lld", LL(r->practice_id));
	a->res =
	    pp_db_exec(db,
	               email ? "SELECT id, from_name, from_address, max_message_bytes "
	                       "FROM email_accounts WHERE practice_id = $1 AND enabled "
	                       "AND ($2::bigint IS NULL OR id = $2::bigint) ORDER BY id LIMIT 1"
	                     : "SELECT id, '', sender_id, 0 FROM sms_accounts "
	                       "WHERE practice_id = $1 AND enabled "
	                       "AND ($2::bigint IS NULL OR id = $2::bigint) ORDER BY id LIMIT 1",
	               PP_DB_ARGS(practice, wanted));
	if (a->res == NULL)
		return COMPOSER_DB_ERROR;
	if (PQntuples(a->res) != 1) {
		if (wanted != NULL)
			return composer_refuse(
			    job, "%s account %s is not an enabled account of practice %s",
			    email ? "email" : "SMS", wanted, practice);
		return composer_refuse(job, "practice %s has no enabled %s account", practice,
		                       email ? "email" : "SMS");
	}
	a->id = pp_db_value(a->res, 0, 0);
	a->from_name = pp_db_value(a->res, 0, 1);
	a->from_addr = pp_db_value(a->res, 0, 2);
	a->max_bytes = pp_db_value_ll(a->res, 0, 3, 0);
	return COMPOSER_OK;
}
