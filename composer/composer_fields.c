/*
 * composer_fields.c - reads what one compose request needs, inside its
 * transaction: the template (or the free text), the merge values of every
 * group (one query; appointment times formatted by PostgreSQL in the
 * practice's time zone; the person's bounce flag; the opt-out type of the
 * category) and the sending account. Owns the checks that keep one
 * patient's data out of another patient's message, and the test-only
 * PP_TEST_FIXED_TIME (seconds since the epoch) that stands for now().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "composer.h"
#include "pp_log.h"
#include "pp_util.h"

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
	                        "SELECT t.body, t.format FROM practices p JOIN templates t "
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
	t->sig_html = strcmp(pp_db_value(t->sig_res, 0, 1), "html") == 0;
	return COMPOSER_OK;
}

/* composer_template_load - the template named by the request (by practice
 * and code), or the request's own free text; decides the channel. */
composer_rc_t composer_template_load(pp_db_t *db, composer_job_t *job)
{
	const composer_request_t *r = &job->req;
	composer_template_t *t = &job->tpl;
	char practice[24];
	pp_lltoa(practice, r->practice_id);
	t->alarm_minutes = 60;
	if (r->template_code == NULL) {
		t->subject = r->subject;
		t->body = r->body;
		if (channel_parse(r->channel, &job->channel) != 0 || t->body == NULL)
			return composer_refuse(job,
			                       "a free-text request needs a channel and a body");
	} else {
		t->res = pp_db_exec(db,
		                    "SELECT id, channel, subject, body, format, attach_ics, "
		                    "coalesce(ics_alarm_minutes, -1), ics_summary FROM templates "
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
		pp_ical_method_parse(pp_db_value(t->res, 0, 5), &t->attach_ics);
		t->alarm_minutes = (int)pp_db_value_ll(t->res, 0, 6, PP_ICAL_ALARM_NONE);
		t->ics_summary = pp_db_value(t->res, 0, 7);
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
	F_PE_KIND,
	F_PE_FAMILY,
	F_PE_TITLE,
	F_PE_FIRST,
	F_PE_LAST,
	F_PE_EMAIL,
	F_PE_MOBILE,
	F_AP_ID,
	F_AP_PRACTICE,
	F_AP_PATIENT,
	F_AP_FAMILY,
	F_AP_DATE,
	F_AP_TIME,
	F_AP_WEEKDAY,
	F_AP_DURATION,
	F_AP_DESCRIPTION,
	F_AP_BOOKING_LINK,
	F_AP_EPOCH,
	F_AP_SEQUENCE,
	F_AP_CANCELLED,
	F_PV_ID,
	F_PV_PRACTICE,
	F_PV_KIND,
	F_PV_TITLE,
	F_PV_FIRST,
	F_PV_LAST,
	F_SP_ID,
	F_SP_PRACTICE,
	F_SP_KIND,
	F_SP_TITLE,
	F_SP_FIRST,
	F_SP_LAST,
	F_SP_EMAIL,
	F_LO_NAME,
	F_LO_ADDRESS,
	F_LO_PHONE,
	F_PL_NAME,
	F_PL_ADDRESS,
	F_PL_PHONE,
	F_NOW,
	F_PE_BOUNCED_ON,
	F_PE_BOUNCE_STATUS,
	F_OPTOUT_KIND,
	F_PR_COUNTRY,
	F_PR_SMS_MAX_SEGMENTS,
	F_LO_FROM_ADDR,
	F_LO_FROM_NAME,
	F_LO_SMS_SENDER_ID
};

/* The person's bounce flag, in the practice's zone. */
#define FIELDS_BOUNCED_ON COMPOSER_BOUNCED_ON("pe", "pr.time_zone")

static const char fields_sql[] =
    "SELECT pr.name, pr.site, pr.phone, pr.address, pr.time_zone, pr.mail_domain, "
    "pe.practice_id, pe.kind, pe.family_id, pe.title, pe.first_name, pe.last_name, pe.email, "
    "pe.mobile, a.id, a.practice_id, a.patient_id, ap.family_id, "
    "to_char(a.starts_at AT TIME ZONE pr.time_zone, 'FMDD FMMonth YYYY'), "
    "to_char(a.starts_at AT TIME ZONE pr.time_zone, 'HH24:MI'), "
    "to_char(a.starts_at AT TIME ZONE pr.time_zone, 'FMDay'), "
    "a.duration_minutes, a.description, a.booking_link, "
    "floor(extract(epoch FROM a.starts_at))::bigint, a.sequence, a.status = 'cancelled', "
    "pv.id, pv.practice_id, pv.kind, pv.title, pv.first_name, pv.last_name, "
    "sp.id, sp.practice_id, sp.kind, sp.title, sp.first_name, sp.last_name, sp.email, "
    "l.name, l.address, l.phone, pl.name, pl.address, pl.phone, "
    "floor(extract(epoch FROM now()))::bigint, " FIELDS_BOUNCED_ON ", "
    "pe.email_bounce_status, pp_optout_kind($6::text), pr.country, pr.sms_max_segments, "
    "l.email_from_address, l.email_from_name, l.sms_sender_id "
    "FROM practices pr "
    "JOIN people pe ON pe.id = $2::bigint "
    "LEFT JOIN appointments a ON a.id = $3::bigint "
    "LEFT JOIN people ap ON ap.id = a.patient_id "
    "LEFT JOIN people pv ON pv.id = coalesce($4::bigint, a.provider_id) "
    "LEFT JOIN people sp ON sp.id = $5::bigint "
    "LEFT JOIN locations l ON l.id = coalesce(a.location_id, pe.preferred_location_id) "
    "LEFT JOIN locations pl ON pl.id = pe.preferred_location_id "
    "WHERE pr.id = $1::bigint";

/* Which column holds each merge field (family.appointments comes from
 * the request, not from this query). */
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
    [PP_FIELD_APPOINTMENT_BOOKING_LINK] = F_AP_BOOKING_LINK,
    [PP_FIELD_PROVIDER_FIRST_NAME] = F_PV_FIRST,
    [PP_FIELD_PROVIDER_LAST_NAME] = F_PV_LAST,
    [PP_FIELD_PROVIDER_TITLE] = F_PV_TITLE,
    [PP_FIELD_SPECIALIST_FIRST_NAME] = F_SP_FIRST,
    [PP_FIELD_SPECIALIST_LAST_NAME] = F_SP_LAST,
    [PP_FIELD_SPECIALIST_TITLE] = F_SP_TITLE,
    [PP_FIELD_SPECIALIST_EMAIL] = F_SP_EMAIL,
    [PP_FIELD_LOCATION_NAME] = F_LO_NAME,
    [PP_FIELD_LOCATION_ADDRESS] = F_LO_ADDRESS,
    [PP_FIELD_LOCATION_PHONE] = F_LO_PHONE,
    [PP_FIELD_PREFERRED_LOCATION_NAME] = F_PL_NAME,
    [PP_FIELD_PREFERRED_LOCATION_ADDRESS] = F_PL_ADDRESS,
    [PP_FIELD_PREFERRED_LOCATION_PHONE] = F_PL_PHONE,
};

static int same_text(const char *a, const char *b)
{
	return a != NULL && b != NULL && strcmp(a, b) == 0;
}

/* fields_check_person - a provider or specialist named on the request (or
 * the appointment's provider) is one of the practice's, of the right kind. */
static composer_rc_t fields_check_person(composer_job_t *job, const PGresult *res, int col_id,
                                         const char *kind)
{
	const char *id = pp_db_value(res, 0, col_id);
	const char *is = pp_db_value(res, 0, col_id + 2);
	if (id == NULL)
		return COMPOSER_OK;
	if (pp_db_value_ll(res, 0, col_id + 1, 0) != job->req.practice_id)
		return composer_refuse(job, "%s %s does not belong to practice %lld", kind, id,
		                       LL(job->req.practice_id));
	if (strcmp(is, kind) != 0 && !(strcmp(kind, "provider") == 0 && strcmp(is, "staff") == 0))
		return composer_refuse(job, "person %s is a %s, not a %s", id, is, kind);
	return COMPOSER_OK;
}

/* fields_check - the person is a patient of the request's practice, the
 * appointment is theirs or their family's, the provider and specialist
 * belong to the practice. */
static composer_rc_t fields_check(composer_job_t *job, const PGresult *res)
{
	const composer_request_t *r = &job->req;
	composer_rc_t rc;
	if (pp_db_value_ll(res, 0, F_PE_PRACTICE, 0) != r->practice_id)
		return composer_refuse(job, "person %lld is not a patient of practice %lld",
		                       LL(r->person_id), LL(r->practice_id));
	/* A reply or forward goes from the person its original is filed to
	 * (a specialist too); its addresses are checked in
	 * composer_recipients.c. */
	if (strcmp(pp_db_value(res, 0, F_PE_KIND), "patient") != 0 && r->reply_to == NULL &&
	    r->forward_of == NULL)
		return composer_refuse(job,
		                       "refused: person %lld is a %s; a message goes to a patient "
		                       "(copy others with Cc)",
		                       LL(r->person_id), pp_db_value(res, 0, F_PE_KIND));
	if (r->appointment_id != NULL &&
	    (pp_db_value(res, 0, F_AP_ID) == NULL ||
	     pp_db_value_ll(res, 0, F_AP_PRACTICE, 0) != r->practice_id ||
	     (pp_db_value_ll(res, 0, F_AP_PATIENT, 0) != r->person_id &&
	      !same_text(pp_db_value(res, 0, F_AP_FAMILY), pp_db_value(res, 0, F_PE_FAMILY)))))
		return composer_refuse(job,
		                       "appointment %s is not an appointment of person %lld (or of "
		                       "their family) at practice %lld",
		                       r->appointment_id, LL(r->person_id), LL(r->practice_id));
	if ((rc = fields_check_person(job, res, F_PV_ID, "provider")) != COMPOSER_OK ||
	    (rc = fields_check_person(job, res, F_SP_ID, "specialist")) != COMPOSER_OK)
		return rc;
	if (r->copy_specialist && r->specialist_id == NULL)
		return composer_refuse(job, "the specialist is to be copied but none is named");
	return COMPOSER_OK;
}

/* fields_now - the transaction's now(), or PP_TEST_FIXED_TIME when set
 * (test runs only: fixed Date headers and DTSTAMPs for golden files). */
static int64_t fields_now(int64_t now)
{
	static int loaded;
	static int64_t fixed = -1;
	if (!loaded) {
		const char *text = getenv("PP_TEST_FIXED_TIME");
		int64_t v;
		if (text != NULL && pp_parse_int64(text, &v) == 0 && v >= 0) {
			fixed = v;
			log_warnx("PP_TEST_FIXED_TIME is set: every message is dated %lld",
			          (long long)v);
		}
		loaded = 1;
	}
	return fixed >= 0 ? fixed : now;
}

/* composer_fields_load - every merge value this request can offer. */
composer_rc_t composer_fields_load(pp_db_t *db, composer_job_t *job)
{
	const composer_request_t *r = &job->req;
	composer_fields_t *f = &job->fields;
	char practice[24], person[24];
	pp_lltoa(practice, r->practice_id);
	pp_lltoa(person, r->person_id);
	f->res = pp_db_exec(db, fields_sql,
	                    PP_DB_ARGS(practice, person, r->appointment_id, r->provider_id,
	                               r->specialist_id, r->category));
	if (f->res == NULL)
		return COMPOSER_DB_ERROR;
	if (PQntuples(f->res) != 1)
		return composer_refuse(job, "practice %s or person %s not found", practice, person);
	composer_rc_t rc = fields_check(job, f->res);
	if (rc != COMPOSER_OK)
		return rc;
	for (int i = 0; i < PP_FIELD_COUNT; i++)
		f->values[i] = pp_db_value(f->res, 0, field_columns[i]);
	f->values[PP_FIELD_FAMILY_APPOINTMENTS] = r->family_appointments;
	f->time_zone = pp_db_value(f->res, 0, F_PR_TZ);
	f->mail_domain = pp_db_value(f->res, 0, F_PR_DOMAIN);
	f->patient_family = pp_db_value(f->res, 0, F_PE_FAMILY);
	f->appointment_id = pp_db_value(f->res, 0, F_AP_ID);
	f->appointment_starts = pp_db_value_ll(f->res, 0, F_AP_EPOCH, 0);
	f->appointment_duration = (int)pp_db_value_ll(f->res, 0, F_AP_DURATION, 0);
	f->appointment_sequence = (int)pp_db_value_ll(f->res, 0, F_AP_SEQUENCE, 0);
	f->appointment_cancelled = same_text(pp_db_value(f->res, 0, F_AP_CANCELLED), "t");
	f->provider_id = pp_db_value(f->res, 0, F_PV_ID);
	f->specialist_id = pp_db_value(f->res, 0, F_SP_ID);
	f->now_epoch = fields_now(pp_db_value_ll(f->res, 0, F_NOW, 0));
	f->person_kind = pp_db_value(f->res, 0, F_PE_KIND);
	f->bounced_on = pp_db_value(f->res, 0, F_PE_BOUNCED_ON);
	f->bounce_status = pp_db_value(f->res, 0, F_PE_BOUNCE_STATUS);
	f->optout_kind = pp_db_value(f->res, 0, F_OPTOUT_KIND);
	f->country = pp_db_value(f->res, 0, F_PR_COUNTRY);
	f->sms_max_segments = (int)pp_db_value_ll(f->res, 0, F_PR_SMS_MAX_SEGMENTS, 3);
	f->loc_from_addr = pp_db_value(f->res, 0, F_LO_FROM_ADDR);
	f->loc_from_name = pp_db_value(f->res, 0, F_LO_FROM_NAME);
	f->loc_sms_sender_id = pp_db_value(f->res, 0, F_LO_SMS_SENDER_ID);
	return COMPOSER_OK;
}

/* The SMS account: one row for an existing practice, the account's
 * columns NULL when it has none to use; the last column says why SMS
 * cannot be sent (pp_sms_off), NULL when it can. */
static const char account_sms_sql[] =
    "SELECT a.id, '', a.sender_id, 0, CASE WHEN p.sms_provider = 'none' THEN "
    "pp_sms_off(p.id) END FROM practices p LEFT JOIN LATERAL (SELECT id, sender_id FROM "
    "sms_accounts WHERE practice_id = p.id AND enabled AND ($2::bigint IS NULL OR id = "
    "$2::bigint) ORDER BY id LIMIT 1) a ON true WHERE p.id = $1";

static const char account_email_sql[] =
    "SELECT id, from_name, from_address, max_message_bytes, NULL FROM email_accounts "
    "WHERE practice_id = $1 AND enabled AND ($2::bigint IS NULL OR id = $2::bigint) "
    "ORDER BY id LIMIT 1";

/* composer_account_load - the request's account, else the practice's
 * enabled account with the lowest id, for the job's channel. No SMS
 * account is used while the practice's SMS provider is "none". The From
 * and sender id are the account's until composer_identity_apply(). */
composer_rc_t composer_account_load(pp_db_t *db, composer_job_t *job)
{
	const composer_request_t *r = &job->req;
	composer_account_t *a = &job->account;
	int email = job->channel == COMPOSER_EMAIL;
	const char *wanted = email ? r->email_account_id : r->sms_account_id;
	char practice[24];
	pp_lltoa(practice, r->practice_id);
	a->res = pp_db_exec(db, email ? account_email_sql : account_sms_sql,
	                    PP_DB_ARGS(practice, wanted));
	if (a->res == NULL)
		return COMPOSER_DB_ERROR;
	if (PQntuples(a->res) == 1 && pp_db_value(a->res, 0, 4) != NULL)
		return composer_refuse(job, "%s: no SMS is queued", pp_db_value(a->res, 0, 4));
	if (PQntuples(a->res) != 1 || pp_db_value(a->res, 0, 0) == NULL) {
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
	a->own_addr = a->from_addr;
	a->sms_sender_id = NULL;
	a->max_bytes = pp_db_value_ll(a->res, 0, 3, 0);
	return COMPOSER_OK;
}
