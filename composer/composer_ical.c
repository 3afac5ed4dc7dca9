/*
 * composer_ical.c - the appointment as an iCalendar attachment: decides the
 * method (the request's attach_ics, else the template's), fills the
 * pp_ical spec from the job (UID appt-{id}@{mail domain}, SEQUENCE from
 * appointments.sequence, the practice's zone, the template's alarm and
 * summary) and makes the .ics.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "composer.h"
#include "pp_util.h"

#define ICAL_DEFAULT_SUMMARY "Appointment at {{practice.name}}"

const char *composer_ical_filename(pp_ical_method_t method)
{
	return method == PP_ICAL_CANCEL ? "cancellation.ics" : "appointment.ics";
}

const char *composer_ical_content_type(pp_ical_method_t method)
{
	return method == PP_ICAL_CANCEL ? "text/calendar; charset=UTF-8; method=CANCEL"
	                                : "text/calendar; charset=UTF-8; method=REQUEST";
}

/* ical_method - what the request asks for, else what the template says. */
static pp_ical_method_t ical_method(const composer_job_t *job)
{
	pp_ical_method_t m = job->tpl.attach_ics;
	if (job->req.attach_ics != NULL)
		pp_ical_method_parse(job->req.attach_ics, &m);
	return m;
}

/* ical_join - "a, b" of the non-empty parts (owned). */
static char *ical_join(const char *a, const char *b)
{
	int has_a = a != NULL && *a != '\0', has_b = b != NULL && *b != '\0';
	return xasprintf("%s%s%s", has_a ? a : "", has_a && has_b ? ", " : "", has_b ? b : "");
}

static char *ical_patient_name(const composer_fields_t *f)
{
	const char *first = f->values[PP_FIELD_PATIENT_FIRST_NAME];
	const char *last = f->values[PP_FIELD_PATIENT_LAST_NAME];
	int has_first = first && *first, has_last = last && *last;
	return xasprintf("%s%s%s", has_first ? first : "", has_first && has_last ? " " : "",
	                 has_last ? last : "");
}

/* ical_what - how errors name where the .ics was asked for. */
static const char *ical_what(const composer_job_t *job, char *buf, size_t len)
{
	if (job->req.attach_ics != NULL || job->req.template_code == NULL)
		snprintf(buf, len, "the request");
	else
		snprintf(buf, len, "template \"%s\"", job->req.template_code);
	return buf;
}

composer_rc_t composer_ical_build(composer_job_t *job)
{
	const composer_fields_t *f = &job->fields;
	pp_ical_method_t method = ical_method(job);
	char what[160], uid[320], err[COMPOSER_ERR_MAX - 64];
	pp_buf_t summary;
	if (method == PP_ICAL_NONE || job->channel != COMPOSER_EMAIL)
		return COMPOSER_OK;
	if (f->appointment_id == NULL)
		return composer_refuse(job,
		                       "%s attaches the appointment as an iCalendar file, but no "
		                       "appointment is named",
		                       ical_what(job, what, sizeof(what)));
	if (method == PP_ICAL_REQUEST && f->appointment_cancelled)
		return composer_refuse(job,
		                       "appointment %s is cancelled: it cannot be sent as a "
		                       "calendar request (send a cancellation)",
		                       f->appointment_id);
	pp_buf_init(&summary);
	composer_rc_t rc =
	    composer_merge(job, "the calendar summary",
	                   job->tpl.ics_summary ? job->tpl.ics_summary : ICAL_DEFAULT_SUMMARY,
	                   PP_MERGE_HEADER, &summary);
	if (rc != COMPOSER_OK) {
		pp_buf_free(&summary);
		return rc;
	}
	snprintf(uid, sizeof(uid), "appt-%s@%s", f->appointment_id, f->mail_domain);
	char *location =
	    ical_join(f->values[PP_FIELD_LOCATION_NAME], f->values[PP_FIELD_LOCATION_ADDRESS]);
	char *attendee = ical_patient_name(f);
	pp_ical_spec_t spec = {
	    .method = method,
	    .uid = uid,
	    .sequence = f->appointment_sequence,
	    .starts_at = f->appointment_starts,
	    .duration_minutes = f->appointment_duration,
	    .time_zone = f->time_zone,
	    .stamp = f->now_epoch,
	    .summary = summary.data ? summary.data : "",
	    .description = f->values[PP_FIELD_APPOINTMENT_DESCRIPTION],
	    .location = location,
	    .organizer_name = job->account.from_name,
	    .organizer_addr = job->account.from_addr,
	    .attendee_name = attendee,
	    .attendee_addr = f->values[PP_FIELD_PATIENT_EMAIL],
	    .alarm_minutes = job->tpl.alarm_minutes,
	};
	job->msg.ics = pp_ical_build(&spec, &job->msg.ics_len, err, sizeof(err));
	job->msg.ics_method = method;
	free(location);
	free(attendee);
	pp_buf_free(&summary);
	if (job->msg.ics == NULL)
		return composer_refuse(job, "the calendar file cannot be made: %s", err);
	return COMPOSER_OK;
}
