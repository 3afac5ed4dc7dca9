/*
 * pp_merge.h - the merge engine: the catalogue of merge fields by group,
 * template parsing ({{group.field}}), validation that names an unknown
 * field, and rendering with a lookup callback. Pure: no database, no I/O.
 *
 * Rules every caller relies on:
 *  - a field that is not in the catalogue is refused when the text is
 *    parsed, and the error names it;
 *  - a value that is missing (NULL or empty) at render time is an error
 *    naming the field, never a blank in the output;
 *  - values are copied into the output once and never scanned for fields
 *    again ("{{...}}" inside a value stays literal text);
 *  - in PP_MERGE_HTML mode values are HTML-escaped; in PP_MERGE_HEADER mode
 *    a value (or template text) with CR, LF or another control character is
 *    refused; every value must be valid UTF-8.
 */
#ifndef PP_MERGE_H
#define PP_MERGE_H

#include <stddef.h>
#include <stdint.h>

#include "pp_util.h"

/* X(ENUM, "name", "what the group is") */
#define PP_MERGE_GROUPS(X)                                                                         \
	X(PATIENT, "patient", "the patient the message is for")                                    \
	X(PRACTICE, "practice", "the practice (site) sending the message")                         \
	X(APPOINTMENT, "appointment", "the appointment, in the practice's time zone")              \
	X(FAMILY, "family", "the patient's family, in a grouped family message")                   \
	X(PROVIDER, "provider", "the provider of the appointment (or chosen on the request)")      \
	X(SPECIALIST, "specialist", "the specialist chosen on the request")                        \
	X(LOCATION, "location", "the appointment's location, else the patient's preferred one")    \
	X(PREFERRED_LOCATION, "preferred_location", "the patient's preferred site")

/* X(GROUP, FIELD, "name", "description, with an example") */
#define PP_MERGE_FIELDS(X)                                                                         \
	X(PATIENT, FIRST_NAME, "first_name", "first name, e.g. Anna")                              \
	X(PATIENT, LAST_NAME, "last_name", "last name, e.g. Meyer")                                \
	X(PATIENT, TITLE, "title", "title, e.g. Mrs")                                              \
	X(PATIENT, EMAIL, "email", "email address")                                                \
	X(PATIENT, MOBILE, "mobile", "mobile number")                                              \
	X(PRACTICE, NAME, "name", "practice name")                                                 \
	X(PRACTICE, SITE, "site", "site name, e.g. North")                                         \
	X(PRACTICE, PHONE, "phone", "practice phone number")                                       \
	X(PRACTICE, ADDRESS, "address", "practice postal address")                                 \
	X(APPOINTMENT, DATE, "date", "date, e.g. 3 December 2024")                                 \
	X(APPOINTMENT, TIME, "time", "start time (24 hour), e.g. 14:30")                           \
	X(APPOINTMENT, WEEKDAY, "weekday", "day of the week, e.g. Tuesday")                        \
	X(APPOINTMENT, DURATION, "duration", "length in minutes, e.g. 30")                         \
	X(APPOINTMENT, DESCRIPTION, "description", "what the appointment is for")                  \
	X(APPOINTMENT, BOOKING_LINK, "booking_link", "the online-booking link of the appointment") \
	X(FAMILY, APPOINTMENTS, "appointments", "the family's appointments, one per line")         \
	X(PROVIDER, FIRST_NAME, "first_name", "provider's first name")                             \
	X(PROVIDER, LAST_NAME, "last_name", "provider's last name")                                \
	X(PROVIDER, TITLE, "title", "provider's title, e.g. Dr")                                   \
	X(SPECIALIST, FIRST_NAME, "first_name", "specialist's first name")                         \
	X(SPECIALIST, LAST_NAME, "last_name", "specialist's last name")                            \
	X(SPECIALIST, TITLE, "title", "specialist's title, e.g. Prof")                             \
	X(SPECIALIST, EMAIL, "email", "specialist's email address")                                \
	X(LOCATION, NAME, "name", "location name")                                                 \
	X(LOCATION, ADDRESS, "address", "location address")                                        \
	X(LOCATION, PHONE, "phone", "location phone number")                                       \
	X(PREFERRED_LOCATION, NAME, "name", "name of the patient's preferred site")                \
	X(PREFERRED_LOCATION, ADDRESS, "address", "address of the patient's preferred site")       \
	X(PREFERRED_LOCATION, PHONE, "phone", "phone number of the patient's preferred site")

typedef enum {
#define PP_MERGE_GROUP_ENUM(ENUM, name, text) PP_MERGE_GROUP_##ENUM,
	PP_MERGE_GROUPS(PP_MERGE_GROUP_ENUM)
#undef PP_MERGE_GROUP_ENUM
	    PP_MERGE_GROUP_COUNT
} pp_merge_group_t;

typedef enum {
#define PP_MERGE_FIELD_ENUM(GROUP, FIELD, name, text) PP_FIELD_##GROUP##_##FIELD,
	PP_MERGE_FIELDS(PP_MERGE_FIELD_ENUM)
#undef PP_MERGE_FIELD_ENUM
	    PP_FIELD_COUNT
} pp_merge_field_t;

typedef struct {
	pp_merge_field_t field;
	pp_merge_group_t group;
	const char *group_name; /* "patient" */
	const char *name;       /* "first_name" */
	const char *full_name;  /* "patient.first_name" */
	const char *description;
} pp_merge_field_info_t;

const char *pp_merge_group_name(pp_merge_group_t group);
const char *pp_merge_group_description(pp_merge_group_t group);
/* pp_merge_field_info - NULL if field is out of range. The catalogue is in
 * group order, so iterating 0..PP_FIELD_COUNT-1 lists the fields by group. */
const pp_merge_field_info_t *pp_merge_field_info(pp_merge_field_t field);
/* pp_merge_field_find - "group.field" (len bytes, no braces) -> 0, or -1. */
int pp_merge_field_find(const char *name, size_t len, pp_merge_field_t *out);

/* A parsed template: literal text and field references. Owned by the
 * caller; free with pp_merge_template_free(). */
typedef struct pp_merge_template pp_merge_template_t;

/* pp_merge_parse - NULL with err filled on an unknown field ("unknown merge
 * field {{patient.shoe_size}}") or an unterminated "{{". */
pp_merge_template_t *pp_merge_parse(const char *text, char *err, size_t errlen);
void pp_merge_template_free(pp_merge_template_t **tpl);
/* pp_merge_validate - parse and discard: 0, or -1 with err (for "template save"). */
int pp_merge_validate(const char *text, char *err, size_t errlen);
/* pp_merge_uses - true if the template references field. */
int pp_merge_uses(const pp_merge_template_t *tpl, pp_merge_field_t field);
/* pp_merge_uses_group - true if the template references any field of group. */
int pp_merge_uses_group(const pp_merge_template_t *tpl, pp_merge_group_t group);

typedef enum {
	PP_MERGE_TEXT,  /* plain text body or SMS: values as they are */
	PP_MERGE_HTML,  /* HTML body: values HTML-escaped */
	PP_MERGE_HEADER /* a header such as Subject: no CR, LF or control characters */
} pp_merge_mode_t;

/* pp_merge_lookup_t - the value of field (borrowed until the render call
 * returns), or NULL when it has none. */
typedef const char *(*pp_merge_lookup_t)(void *ctx, pp_merge_field_t field);

/* pp_merge_render - append the merged text to out. 0, or -1 with err naming
 * the field (the value itself is never copied into err). On -1, what was
 * appended to out must be discarded by the caller. */
int pp_merge_render(const pp_merge_template_t *tpl, pp_merge_mode_t mode, pp_merge_lookup_t lookup,
                    void *ctx, pp_buf_t *out, char *err, size_t errlen);

/* pp_merge_utf8_valid - true if s[0..len) is well-formed UTF-8 (no
 * overlongs, no surrogates, nothing above U+10FFFF). */
int pp_merge_utf8_valid(const char *s, size_t len);

/* pp_merge_check_text - 0 if s is valid UTF-8 without control characters
 * (TAB allowed; CR and LF too when lines is set); else -1 with err "<what>
 * contains a line break (CR or LF)", "... a control character" or "<what>
 * is not valid UTF-8" (the value itself is never copied into err). */
int pp_merge_check_text(const char *what, const char *s, int lines, char *err, size_t errlen);

/* pp_merge_html_to_text - the plain-text reading of an HTML template (for
 * the text/plain alternative of an HTML message), converted before the
 * merge so values are never parsed as HTML: tags dropped (script, style,
 * head and title with their content), block tags and <br> become line
 * breaks, <li> a "- " item, <a href="X">t</a> "t <X>", entities decoded
 * (never into "{" or "}", so no merge field appears that the HTML does not
 * hold), white space collapsed. Owned result, ends with one newline. */
char *pp_merge_html_to_text(const char *html);

/* pp_merge_text_to_html - append text HTML-escaped, line breaks as <br>. */
void pp_merge_text_to_html(pp_buf_t *out, const char *text);

#endif
