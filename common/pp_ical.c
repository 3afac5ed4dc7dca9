/*
 * pp_ical.c - the iCalendar writer: checks the values, builds the
 * VCALENDAR with libical (which escapes text and folds lines) and hands out
 * a copy. Owns the use of libical's zone cache (freed by pp_ical_shutdown).
 */
#include "pp_ical.h"

#include <libical/ical.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pp_merge.h"
#include "pp_mime.h"
#include "pp_util.h"

#define ICAL_PRODID "-//PracticePost//Composer//EN"
#define ICAL_TEXT_MAX (64 * 1024) /* any one text value */

static int ical_used;

void pp_ical_shutdown(void)
{
	if (ical_used) {
		icaltimezone_free_builtin_timezones();
		ical_used = 0;
	}
}

const char *pp_ical_method_name(pp_ical_method_t method)
{
	return method == PP_ICAL_REQUEST ? "REQUEST" : method == PP_ICAL_CANCEL ? "CANCEL" : NULL;
}

int pp_ical_method_parse(const char *text, pp_ical_method_t *out)
{
	static const char *const names[] = {"none", "request", "cancel"};
	for (int i = 0; text != NULL && i < 3; i++)
		if (strcmp(text, names[i]) == 0) {
			*out = (pp_ical_method_t)i;
			return 0;
		}
	return -1;
}

/* ical_check_text - valid UTF-8 of sane size; no control characters
 * except, where lines are allowed, LF, CR and TAB. */
static int ical_check_text(const char *what, const char *s, int lines, char *err, size_t errlen)
{
	if (strlen(s) > ICAL_TEXT_MAX) {
		snprintf(err, errlen, "%s is longer than %d bytes", what, ICAL_TEXT_MAX);
		return -1;
	}
	return pp_merge_check_text(what, s, lines, err, errlen);
}

static int ical_check_uid(const char *uid, char *err, size_t errlen)
{
	size_t len = uid ? strlen(uid) : 0;
	for (size_t i = 0; i < len; i++)
		if (uid[i] <= ' ' || uid[i] > '~')
			len = 0;
	if (len == 0 || len > 255) {
		snprintf(err, errlen, "the UID must be 1 to 255 printable ASCII characters");
		return -1;
	}
	return 0;
}

static int ical_check_spec(const pp_ical_spec_t *s, char *err, size_t errlen)
{
	if (s->method != PP_ICAL_REQUEST && s->method != PP_ICAL_CANCEL) {
		snprintf(err, errlen, "the method must be REQUEST or CANCEL");
		return -1;
	}
	if (ical_check_uid(s->uid, err, errlen) != 0)
		return -1;
	if (s->sequence < 0 || s->duration_minutes <= 0 || s->duration_minutes > 100000) {
		snprintf(err, errlen, "the sequence or the duration is out of range");
		return -1;
	}
	if (s->alarm_minutes != PP_ICAL_ALARM_NONE &&
	    (s->alarm_minutes < 0 || s->alarm_minutes > PP_ICAL_ALARM_MAX)) {
		snprintf(err, errlen, "the alarm must be 0 to %d minutes before",
		         PP_ICAL_ALARM_MAX);
		return -1;
	}
	if (s->summary == NULL || *s->summary == '\0') {
		snprintf(err, errlen, "the summary is empty");
		return -1;
	}
	if (!pp_mime_address_valid(s->organizer_addr) || !pp_mime_address_valid(s->attendee_addr)) {
		snprintf(err, errlen, "the organizer or attendee address is not a valid address");
		return -1;
	}
	const struct {
		const char *what, *value;
		int lines;
	} texts[] = {
	    {"the summary", s->summary, 0},
	    {"the description", s->description, 1},
	    {"the location", s->location, 0},
	    {"the organizer's name", s->organizer_name, 0},
	    {"the attendee's name", s->attendee_name, 0},
	    {"the alarm text", s->alarm_text, 0},
	};
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
		if (texts[i].value != NULL && ical_check_text(texts[i].what, texts[i].value,
		                                              texts[i].lines, err, errlen) != 0)
			return -1;
	return 0;
}

/* ical_zone - libical's zone for name (UTC for NULL, "UTC", "Etc/UTC"). */
static icaltimezone *ical_zone(const char *name)
{
	if (name == NULL || strcmp(name, "UTC") == 0 || strcmp(name, "Etc/UTC") == 0)
		return icaltimezone_get_utc_timezone();
	ical_used = 1;
	icaltimezone *zone = icaltimezone_get_builtin_timezone(name);
	if (zone != NULL && icaltimezone_get_component(zone) == NULL)
		return icaltimezone_get_utc_timezone(); /* another name for UTC */
	return zone;
}

/* ical_vtimezone - the zone's VTIMEZONE cut to the rules in force from
 * start on, with the plain IANA name as TZID (libical prefixes its own). */
static icalcomponent *ical_vtimezone(icaltimezone *zone, const char *name,
                                     struct icaltimetype start)
{
	icalcomponent *vtz = icalcomponent_new_clone(icaltimezone_get_component(zone));
	icaltimezone_truncate_vtimezone(vtz, start, icaltime_null_time(), 1);
	icalproperty *tzid = icalcomponent_get_first_property(vtz, ICAL_TZID_PROPERTY);
	if (tzid != NULL)
		icalproperty_set_tzid(tzid, name);
	else
		icalcomponent_add_property(vtz, icalproperty_new_tzid(name));
	return vtz;
}

/* ical_time - a DTSTART/DTEND property at t in zone (TZID parameter), or
 * in UTC ("Z") when the zone is UTC. */
static icalproperty *ical_time(icalproperty *(*make)(struct icaltimetype), int64_t t,
                               icaltimezone *zone, const char *name)
{
	icaltimezone *utc = icaltimezone_get_utc_timezone();
	struct icaltimetype tt = icaltime_from_timet_with_zone((time_t)t, 0, utc);
	if (zone == utc)
		return make(tt);
	tt = icaltime_convert_to_zone(tt, zone);
	tt.zone = NULL; /* printed as local time; the TZID parameter names the zone */
	icalproperty *p = make(tt);
	icalproperty_add_parameter(p, icalparameter_new_tzid(name));
	return p;
}

/* ical_person - ORGANIZER or ATTENDEE: mailto: address, CN when named. */
static icalproperty *ical_person(icalproperty *(*make)(const char *), const char *name,
                                 const char *addr)
{
	char *uri = xasprintf("mailto:%s", addr);
	icalproperty *p = make(uri);
	free(uri);
	if (name != NULL && *name != '\0')
		icalproperty_add_parameter(p, icalparameter_new_cn(name));
	return p;
}

/* ical_lf - text with CRLF and lone CR made LF (libical escapes LF as \n). */
static char *ical_lf(const char *text)
{
	pp_buf_t b;
	pp_buf_init(&b);
	for (const char *p = text; *p; p++) {
		if (*p == '\r' && p[1] == '\n')
			continue;
		pp_buf_append(&b, *p == '\r' ? "\n" : p, 1);
	}
	pp_buf_append(&b, "", 0);
	return pp_buf_steal(&b);
}

static icalcomponent *ical_alarm(const pp_ical_spec_t *s)
{
	struct icaltriggertype trigger;
	memset(&trigger, 0, sizeof(trigger));
	trigger.time = icaltime_null_time();
	trigger.duration = icaldurationtype_from_int(-60 * s->alarm_minutes);
	icalcomponent *alarm = icalcomponent_new(ICAL_VALARM_COMPONENT);
	icalcomponent_add_property(alarm, icalproperty_new_action(ICAL_ACTION_DISPLAY));
	icalcomponent_add_property(alarm, icalproperty_new_trigger(trigger));
	icalcomponent_add_property(
	    alarm, icalproperty_new_description(s->alarm_text ? s->alarm_text : s->summary));
	return alarm;
}

static icalcomponent *ical_event(const pp_ical_spec_t *s, icaltimezone *zone)
{
	int cancel = s->method == PP_ICAL_CANCEL;
	icaltimezone *utc = icaltimezone_get_utc_timezone();
	icalcomponent *ev = icalcomponent_new(ICAL_VEVENT_COMPONENT);
	icalcomponent_add_property(ev, icalproperty_new_uid(s->uid));
	icalcomponent_add_property(ev, icalproperty_new_sequence(s->sequence));
	icalcomponent_add_property(
	    ev, icalproperty_new_dtstamp(icaltime_from_timet_with_zone((time_t)s->stamp, 0, utc)));
	icalcomponent_add_property(
	    ev, ical_time(icalproperty_new_dtstart, s->starts_at, zone, s->time_zone));
	icalcomponent_add_property(ev, ical_time(icalproperty_new_dtend,
	                                         s->starts_at + 60 * (int64_t)s->duration_minutes,
	                                         zone, s->time_zone));
	icalcomponent_add_property(ev, icalproperty_new_summary(s->summary));
	if (s->location != NULL && *s->location != '\0')
		icalcomponent_add_property(ev, icalproperty_new_location(s->location));
	if (s->description != NULL && *s->description != '\0') {
		char *text = ical_lf(s->description);
		icalcomponent_add_property(ev, icalproperty_new_description(text));
		free(text);
	}
	icalcomponent_add_property(
	    ev, ical_person(icalproperty_new_organizer, s->organizer_name, s->organizer_addr));
	icalproperty *att =
	    ical_person(icalproperty_new_attendee, s->attendee_name, s->attendee_addr);
	icalproperty_add_parameter(att, icalparameter_new_role(ICAL_ROLE_REQPARTICIPANT));
	icalproperty_add_parameter(att, icalparameter_new_partstat(ICAL_PARTSTAT_NEEDSACTION));
	icalproperty_add_parameter(att, icalparameter_new_rsvp(ICAL_RSVP_FALSE));
	icalcomponent_add_property(ev, att);
	icalcomponent_add_property(
	    ev, icalproperty_new_status(cancel ? ICAL_STATUS_CANCELLED : ICAL_STATUS_CONFIRMED));
	icalcomponent_add_property(ev, icalproperty_new_transp(ICAL_TRANSP_OPAQUE));
	icalcomponent_add_property(ev, icalproperty_new_class(ICAL_CLASS_PRIVATE));
	if (!cancel && s->alarm_minutes != PP_ICAL_ALARM_NONE)
		icalcomponent_add_component(ev, ical_alarm(s));
	return ev;
}

char *pp_ical_build(const pp_ical_spec_t *spec, size_t *len, char *err, size_t errlen)
{
	if (ical_check_spec(spec, err, errlen) != 0)
		return NULL;
	icaltimezone *zone = ical_zone(spec->time_zone);
	if (zone == NULL) {
		snprintf(err, errlen, "unknown time zone \"%.64s\"", spec->time_zone);
		return NULL;
	}
	icalcomponent *cal = icalcomponent_new(ICAL_VCALENDAR_COMPONENT);
	icalcomponent_add_property(cal, icalproperty_new_prodid(ICAL_PRODID));
	icalcomponent_add_property(cal, icalproperty_new_version("2.0"));
	icalcomponent_add_property(cal, icalproperty_new_calscale("GREGORIAN"));
	icalcomponent_add_property(cal, icalproperty_new_method(spec->method == PP_ICAL_CANCEL
	                                                            ? ICAL_METHOD_CANCEL
	                                                            : ICAL_METHOD_REQUEST));
	if (zone != icaltimezone_get_utc_timezone()) {
		struct icaltimetype start = icaltime_from_timet_with_zone(
		    (time_t)spec->starts_at, 0, icaltimezone_get_utc_timezone());
		icalcomponent_add_component(cal, ical_vtimezone(zone, spec->time_zone, start));
	}
	icalcomponent_add_component(cal, ical_event(spec, zone));
	char *text = icalcomponent_as_ical_string_r(cal);
	icalcomponent_free(cal);
	if (text == NULL) {
		snprintf(err, errlen, "libical could not write the calendar");
		return NULL;
	}
	char *out = xstrdup(text);
	icalmemory_free_buffer(text);
	*len = strlen(out);
	return out;
}
