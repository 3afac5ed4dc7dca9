/*
 * pp_ical.h - writes the iCalendar object (RFC 5545, iTIP RFC 5546) of one
 * appointment with libical: METHOD:REQUEST (STATUS:CONFIRMED) or
 * METHOD:CANCEL (STATUS:CANCELLED), a stable UID, SEQUENCE, DTSTART/DTEND
 * with TZID in the practice's zone and its VTIMEZONE (libical's zone data,
 * cut to the rules in force from the appointment on), ORGANIZER and
 * ATTENDEE, and an optional display alarm. Pure: no database.
 *
 * Every object it returns has CRLF line endings, lines folded at 75 octets
 * and valid UTF-8 text; values are checked first (one-line texts without
 * control characters, plain addresses).
 */
#ifndef PP_ICAL_H
#define PP_ICAL_H

#include <stddef.h>
#include <stdint.h>

typedef enum { PP_ICAL_NONE = 0, PP_ICAL_REQUEST, PP_ICAL_CANCEL } pp_ical_method_t;

#define PP_ICAL_ALARM_NONE (-1)
#define PP_ICAL_ALARM_MAX (4 * 7 * 24 * 60) /* four weeks, in minutes */

typedef struct {
	pp_ical_method_t method; /* REQUEST or CANCEL */
	const char *uid;         /* printable ASCII, e.g. "appt-42@smile.example" */
	int sequence;            /* >= 0 */
	int64_t starts_at;       /* seconds since the epoch */
	int duration_minutes;    /* > 0 */
	const char *time_zone;   /* IANA name; NULL or "UTC": times in UTC */
	int64_t stamp;           /* DTSTAMP: when the object is made */
	const char *summary;     /* one line, UTF-8 */
	const char *description; /* UTF-8, may hold line breaks; NULL or "" for none */
	const char *location;    /* one line; NULL or "" for none */
	const char *organizer_name, *organizer_addr; /* name may be NULL */
	const char *attendee_name, *attendee_addr;
	int alarm_minutes;      /* before the start; PP_ICAL_ALARM_NONE for no alarm */
	const char *alarm_text; /* NULL: the summary */
} pp_ical_spec_t;

/* pp_ical_build - the object, owned (free()), NUL-terminated, length in
 * *len. NULL with err naming the problem ("summary contains a line break",
 * "unknown time zone \"Mars/Base\"", ...). */
char *pp_ical_build(const pp_ical_spec_t *spec, size_t *len, char *err, size_t errlen);

/* pp_ical_method_name - "REQUEST", "CANCEL" (NULL for PP_ICAL_NONE). */
const char *pp_ical_method_name(pp_ical_method_t method);
/* pp_ical_method_parse - "none", "request", "cancel" -> 0, or -1. */
int pp_ical_method_parse(const char *text, pp_ical_method_t *out);

/* pp_ical_shutdown - release libical's zone cache (at exit; optional). */
void pp_ical_shutdown(void);

#endif
