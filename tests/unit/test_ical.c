/*
 * test_ical.c - the iCalendar writer (common/pp_ical.c), table-driven:
 * REQUEST and CANCEL objects, TZID and VTIMEZONE, UTC, alarms, text
 * escaping (no property can be injected), folding at 75 octets, refused
 * values, and byte-identical output for the same input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pp_ical.h"
#include "pp_util.h"

/* 2030-12-03 23:30:00 UTC: Wednesday 4 December 2030, 00:30 in Berlin. */
#define T_START 1922571000
#define T_STAMP 1922000000 /* 2030-11-27 08:53:20 UTC */

static pp_ical_spec_t spec_base(void)
{
	pp_ical_spec_t s;
	memset(&s, 0, sizeof(s));
	s.method = PP_ICAL_REQUEST;
	s.uid = "appt-7@smile.example";
	s.sequence = 2;
	s.starts_at = T_START;
	s.duration_minutes = 45;
	s.time_zone = "Europe/Berlin";
	s.stamp = T_STAMP;
	s.summary = "Appointment at Smile Dental";
	s.description = "check-up";
	s.location = "North Surgery, 2 Mill Lane";
	s.organizer_name = "Smile Dental";
	s.organizer_addr = "info@smile.example";
	s.attendee_name = "Zo\xc3\xab Meyer";
	s.attendee_addr = "anna@example.net";
	s.alarm_minutes = 60;
	return s;
}

static char *build_ok(const pp_ical_spec_t *s, size_t *len)
{
	char err[256] = "";
	char *out = pp_ical_build(s, len, err, sizeof(err));
	if (out == NULL)
		fail_msg("pp_ical_build refused: %s", err);
	assert_int_equal(strlen(out), *len);
	return out;
}

/* has_line - text holds exactly this (unfolded) line. */
static int has_line(const char *text, const char *line)
{
	size_t n = strlen(line);
	for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
		if ((p == text || p[-1] == '\n') && strncmp(p + n, "\r\n", 2) == 0)
			return 1;
	return 0;
}

/* unfold - RFC 5545 3.1: CRLF followed by one blank is removed. */
static char *unfold(const char *text)
{
	pp_buf_t b;
	pp_buf_init(&b);
	for (const char *p = text; *p; p++) {
		if (p[0] == '\r' && p[1] == '\n' && (p[2] == ' ' || p[2] == '\t')) {
			p += 2;
			continue;
		}
		pp_buf_append(&b, p, 1);
	}
	return pp_buf_steal(&b);
}

/* check_wire - CRLF only, no line over 75 octets, no control bytes. */
static void check_wire(const char *text, size_t len)
{
	size_t col = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];
		if (c == '\r') {
			assert_true(i + 1 < len && text[i + 1] == '\n');
			i++;
			col = 0;
			continue;
		}
		assert_true(c != '\n' && (c >= 0x20 || c == '\t') && c != 0x7F);
		col++;
		assert_true(col <= 75);
	}
	assert_true(len >= 2 && text[len - 2] == '\r' && text[len - 1] == '\n');
}

static void test_request(void **state)
{
	(void)state;
	pp_ical_spec_t s = spec_base();
	size_t len;
	char *out = build_ok(&s, &len);
	check_wire(out, len);
	char *u = unfold(out);
	const char *lines[] = {
	    "BEGIN:VCALENDAR",
	    "VERSION:2.0",
	    "METHOD:REQUEST",
	    "BEGIN:VTIMEZONE",
	    "TZID:Europe/Berlin",
	    "UID:appt-7@smile.example",
	    "SEQUENCE:2",
	    "DTSTAMP:20301127T085320Z",
	    "DTSTART;TZID=Europe/Berlin:20301204T003000",
	    "DTEND;TZID=Europe/Berlin:20301204T011500",
	    "SUMMARY:Appointment at Smile Dental",
	    "LOCATION:North Surgery\\, 2 Mill Lane",
	    "DESCRIPTION:check-up",
	    "ORGANIZER;CN=Smile Dental:mailto:info@smile.example",
	    "ATTENDEE;CN=Zo\xc3\xab Meyer;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=FALSE:"
	    "mailto:anna@example.net",
	    "STATUS:CONFIRMED",
	    "BEGIN:VALARM",
	    "ACTION:DISPLAY",
	    "TRIGGER:-PT1H",
	    "END:VCALENDAR",
	};
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		if (!has_line(u, lines[i]))
			fail_msg("missing line \"%s\" in:\n%s", lines[i], u);
	/* The zone's rules in force at the start: CET (+0100) in December. */
	assert_true(has_line(u, "TZOFFSETTO:+0100"));
	assert_null(strstr(u, "freeassociation"));
	/* The same input gives the same bytes. */
	size_t len2;
	char *again = build_ok(&s, &len2);
	assert_int_equal(len, len2);
	assert_memory_equal(out, again, len);
	free(again);
	free(u);
	free(out);
}

static void test_cancel_utc_and_alarms(void **state)
{
	(void)state;
	static const struct {
		pp_ical_method_t method;
		const char *zone;
		int alarm;
		const char *has[3];
		const char *lacks[2];
	} cases[] = {
	    {PP_ICAL_CANCEL,
	     "Europe/Berlin",
	     60,
	     {"METHOD:CANCEL", "STATUS:CANCELLED", "SEQUENCE:2"},
	     {"BEGIN:VALARM", "CONFIRMED"}},
	    {PP_ICAL_REQUEST,
	     "UTC",
	     30,
	     {"DTSTART:20301203T233000Z", "DTEND:20301204T001500Z", "TRIGGER:-PT30M"},
	     {"BEGIN:VTIMEZONE", "TZID"}},
	    {PP_ICAL_REQUEST,
	     NULL,
	     0,
	     {"DTSTART:20301203T233000Z", "TRIGGER:PT0S", NULL},
	     {"BEGIN:VTIMEZONE", NULL}},
	    {PP_ICAL_REQUEST,
	     "America/New_York",
	     PP_ICAL_ALARM_NONE,
	     {"DTSTART;TZID=America/New_York:20301203T183000", "TZOFFSETTO:-0500", NULL},
	     {"BEGIN:VALARM", NULL}},
	    {PP_ICAL_REQUEST,
	     "Asia/Kolkata",
	     1440,
	     {"DTSTART;TZID=Asia/Kolkata:20301204T050000", "TRIGGER:-P1D", NULL},
	     {"freeassociation", NULL}},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		pp_ical_spec_t s = spec_base();
		s.method = cases[i].method;
		s.time_zone = cases[i].zone;
		s.alarm_minutes = cases[i].alarm;
		size_t len;
		char *out = build_ok(&s, &len);
		check_wire(out, len);
		char *u = unfold(out);
		for (int k = 0; k < 3 && cases[i].has[k]; k++)
			if (!has_line(u, cases[i].has[k]))
				fail_msg("case %zu: missing \"%s\" in:\n%s", i, cases[i].has[k], u);
		for (int k = 0; k < 2 && cases[i].lacks[k]; k++)
			if (strstr(u, cases[i].lacks[k]) != NULL)
				fail_msg("case %zu: unexpected \"%s\" in:\n%s", i,
				         cases[i].lacks[k], u);
		free(u);
		free(out);
	}
}

static void test_text_is_escaped(void **state)
{
	(void)state;
	pp_ical_spec_t s = spec_base();
	s.summary =
	    "Cleaning; bring card, \\ thanks <script>alert(1)</script> {{patient.first_name}}";
	s.description = "line one\r\nATTENDEE:mailto:evil@example.org\rEND:VEVENT\nthree";
	size_t len;
	char *out = build_ok(&s, &len);
	check_wire(out, len);
	char *u = unfold(out);
	assert_true(has_line(u, "SUMMARY:Cleaning\\; bring card\\, \\\\ thanks "
	                        "<script>alert(1)</script> {{patient.first_name}}"));
	assert_true(has_line(u, "DESCRIPTION:line one\\nATTENDEE:mailto:evil@example.org\\nEND:"
	                        "VEVENT\\nthree"));
	/* No line of its own came from the values. */
	assert_null(strstr(u, "\r\nATTENDEE:mailto:evil"));
	const char *p = strstr(u, "END:VEVENT\r\n");
	assert_non_null(p);
	assert_null(strstr(p + 1, "END:VEVENT\r\n"));
	free(u);
	free(out);
}

static void test_long_name_is_folded(void **state)
{
	(void)state;
	char *name = xmalloc(10001 * 2);
	size_t n = 0;
	for (int i = 0; i < 5000; i++) {
		memcpy(name + n, "\xc3\xab", 2); /* e-diaeresis: 10 000 octets */
		n += 2;
	}
	name[n] = '\0';
	pp_ical_spec_t s = spec_base();
	s.attendee_name = name;
	size_t len;
	char *out = build_ok(&s, &len);
	check_wire(out, len); /* no line over 75 octets, no split character */
	char *u = unfold(out);
	char *want = xasprintf("ATTENDEE;CN=%s;ROLE=", name);
	assert_non_null(strstr(u, want));
	free(want);
	free(u);
	free(out);
	free(name);
}

static void test_refused(void **state)
{
	(void)state;
	static const struct {
		int field;
		const char *value;
		const char *err_has;
	} cases[] = {
	    {0, "Cleaning\r\nATTENDEE:mailto:evil@example.org", "summary contains a line break"},
	    {0, "bad \x01 char", "summary contains a control character"},
	    {0, "bad \xc3\x28 utf8", "summary is not valid UTF-8"},
	    {0, "", "summary is empty"},
	    {1, "a\xff", "description is not valid UTF-8"},
	    {2, "North\nSurgery", "location contains a line break"},
	    {3, "Anna\r\nX: y", "attendee's name contains a line break"},
	    {4, "Mars/Olympus", "unknown time zone \"Mars/Olympus\""},
	    {5, "appt 7@smile.example", "UID"},
	    {6, "anna@example.net\r\nBCC", "attendee address"},
	    {7, NULL, "sequence or the duration"},
	    {8, NULL, "alarm"},
	    {9, NULL, "method"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		pp_ical_spec_t s = spec_base();
		char err[256] = "";
		size_t len = 0;
		switch (cases[i].field) {
		case 0:
			s.summary = cases[i].value;
			break;
		case 1:
			s.description = cases[i].value;
			break;
		case 2:
			s.location = cases[i].value;
			break;
		case 3:
			s.attendee_name = cases[i].value;
			break;
		case 4:
			s.time_zone = cases[i].value;
			break;
		case 5:
			s.uid = cases[i].value;
			break;
		case 6:
			s.attendee_addr = cases[i].value;
			break;
		case 7:
			s.duration_minutes = 0;
			break;
		case 8:
			s.alarm_minutes = PP_ICAL_ALARM_MAX + 1;
			break;
		default:
			s.method = PP_ICAL_NONE;
		}
		char *out = pp_ical_build(&s, &len, err, sizeof(err));
		if (out != NULL)
			fail_msg("case %zu was not refused", i);
		if (strstr(err, cases[i].err_has) == NULL)
			fail_msg("case %zu: error \"%s\" lacks \"%s\"", i, err, cases[i].err_has);
	}
}

static void test_method_names(void **state)
{
	(void)state;
	pp_ical_method_t m;
	assert_int_equal(pp_ical_method_parse("request", &m), 0);
	assert_int_equal(m, PP_ICAL_REQUEST);
	assert_int_equal(pp_ical_method_parse("cancel", &m), 0);
	assert_int_equal(m, PP_ICAL_CANCEL);
	assert_int_equal(pp_ical_method_parse("none", &m), 0);
	assert_int_equal(m, PP_ICAL_NONE);
	assert_int_equal(pp_ical_method_parse("REQUEST", &m), -1);
	assert_int_equal(pp_ical_method_parse(NULL, &m), -1);
	assert_string_equal(pp_ical_method_name(PP_ICAL_REQUEST), "REQUEST");
	assert_string_equal(pp_ical_method_name(PP_ICAL_CANCEL), "CANCEL");
	assert_null(pp_ical_method_name(PP_ICAL_NONE));
}

static int teardown(void **state)
{
	(void)state;
	pp_ical_shutdown();
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_request),         cmocka_unit_test(test_cancel_utc_and_alarms),
	    cmocka_unit_test(test_text_is_escaped), cmocka_unit_test(test_long_name_is_folded),
	    cmocka_unit_test(test_refused),         cmocka_unit_test(test_method_names),
	};
	return cmocka_run_group_tests(tests, NULL, teardown);
}
