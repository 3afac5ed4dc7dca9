/*
 * test_merge.c - the merge engine (common/pp_merge.c), table-driven:
 * catalogue, parse errors naming the field, missing values, values never
 * re-expanded, HTML escaping, header safety and UTF-8 checks, and the text
 * reading of HTML templates (and HTML of plain text).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pp_merge.h"
#include "pp_util.h"

/* A value table standing in for the database: NULL = no value. */
typedef struct {
	const char *values[PP_FIELD_COUNT];
} fake_values_t;

static const char *fake_lookup(void *ctx, pp_merge_field_t field)
{
	return ((fake_values_t *)ctx)->values[field];
}

static void fake_fill(fake_values_t *v)
{
	memset(v, 0, sizeof(*v));
	v->values[PP_FIELD_PATIENT_FIRST_NAME] = "Anna";
	v->values[PP_FIELD_PATIENT_LAST_NAME] = "Meyer";
	v->values[PP_FIELD_PRACTICE_NAME] = "Smile Dental";
	v->values[PP_FIELD_APPOINTMENT_TIME] = "14:30";
	v->values[PP_FIELD_APPOINTMENT_DATE] = "3 December 2024";
	v->values[PP_FIELD_LOCATION_PHONE] = "01 234";
}

static void test_catalogue(void **state)
{
	(void)state;
	pp_merge_field_t f;
	assert_int_equal(pp_merge_field_find("patient.first_name", 18, &f), 0);
	assert_int_equal(f, PP_FIELD_PATIENT_FIRST_NAME);
	assert_int_equal(pp_merge_field_find("location.phone", 14, &f), 0);
	assert_int_equal(f, PP_FIELD_LOCATION_PHONE);
	assert_int_equal(pp_merge_field_find("patient.first_nam", 17, &f), -1);
	assert_int_equal(pp_merge_field_find("patient", 7, &f), -1);
	assert_int_equal(pp_merge_field_find("first_name", 10, &f), -1);
	/* Listed by group, each with a full name and a description. */
	int last_group = -1;
	for (int i = 0; i < PP_FIELD_COUNT; i++) {
		const pp_merge_field_info_t *info = pp_merge_field_info((pp_merge_field_t)i);
		assert_non_null(info);
		assert_true((int)info->group >= last_group);
		last_group = (int)info->group;
		assert_string_equal(info->group_name, pp_merge_group_name(info->group));
		char full[96];
		snprintf(full, sizeof(full), "%s.%s", info->group_name, info->name);
		assert_string_equal(info->full_name, full);
		assert_true(strlen(info->description) > 0);
		assert_int_equal(pp_merge_field_find(full, strlen(full), &f), 0);
		assert_int_equal(f, i);
	}
	assert_null(pp_merge_field_info(PP_FIELD_COUNT));
	assert_null(pp_merge_group_name(PP_MERGE_GROUP_COUNT));
	/* Every group of the "merge fields" window, each with its fields. */
	static const char *const names[] = {
	    "specialist.first_name",    "specialist.last_name",     "specialist.title",
	    "specialist.email",         "preferred_location.name",  "preferred_location.address",
	    "preferred_location.phone", "appointment.booking_link", "provider.title",
	    "location.address",         "family.appointments",
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (pp_merge_field_find(names[i], strlen(names[i]), &f) != 0)
			fail_msg("%s is not in the catalogue", names[i]);
	int seen[PP_MERGE_GROUP_COUNT] = {0};
	for (int i = 0; i < PP_FIELD_COUNT; i++)
		seen[pp_merge_field_info((pp_merge_field_t)i)->group]++;
	for (int g = 0; g < PP_MERGE_GROUP_COUNT; g++)
		assert_true(seen[g] >= 1);
	assert_string_equal(pp_merge_group_name(PP_MERGE_GROUP_PREFERRED_LOCATION),
	                    "preferred_location");
}

static const struct {
	const char *text;
	const char *err_has; /* NULL: must parse */
} parse_cases[] = {
    {"Hello {{patient.first_name}}", NULL},
    {"{{ patient.first_name }} and {{practice.name}}", NULL},
    {"no fields at all { } }} {", NULL},
    {"", NULL},
    {"Dear {{patient.shoe_size}},", "{{patient.shoe_size}}"},
    {"{{patient}}", "{{patient}}"},
    {"{{dentist.name}}", "{{dentist.name}}"},
    {"line 1\nline 2 {{practice.nmae}}", "line 2"},
    {"Hello {{patient.first_name", "unterminated"},
    {"Hello {{patient.first_name}} {{", "unterminated"},
    {"{{}}", "unknown merge field {{}}"},
};

static void test_parse(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
		char err[256] = "";
		pp_merge_template_t *t = pp_merge_parse(parse_cases[i].text, err, sizeof(err));
		if (parse_cases[i].err_has == NULL) {
			assert_non_null(t);
			assert_int_equal(pp_merge_validate(parse_cases[i].text, err, sizeof(err)),
			                 0);
		} else {
			assert_null(t);
			if (strstr(err, parse_cases[i].err_has) == NULL)
				fail_msg("case %zu: error \"%s\" lacks \"%s\"", i, err,
				         parse_cases[i].err_has);
			assert_int_equal(pp_merge_validate(parse_cases[i].text, err, sizeof(err)),
			                 -1);
		}
		pp_merge_template_free(&t);
		assert_null(t);
	}
}

static void test_uses(void **state)
{
	(void)state;
	char err[256];
	pp_merge_template_t *t =
	    pp_merge_parse("{{appointment.time}} at {{location.name}}", err, sizeof(err));
	assert_non_null(t);
	assert_true(pp_merge_uses(t, PP_FIELD_APPOINTMENT_TIME));
	assert_false(pp_merge_uses(t, PP_FIELD_APPOINTMENT_DATE));
	assert_true(pp_merge_uses_group(t, PP_MERGE_GROUP_APPOINTMENT));
	assert_true(pp_merge_uses_group(t, PP_MERGE_GROUP_LOCATION));
	assert_false(pp_merge_uses_group(t, PP_MERGE_GROUP_PATIENT));
	pp_merge_template_free(&t);
}

static const struct {
	const char *text;
	pp_merge_mode_t mode;
	pp_merge_field_t field; /* value to override, PP_FIELD_COUNT for none */
	const char *value;
	const char *expect;  /* rendered text, or NULL for an error */
	const char *err_has; /* part of the error */
} render_cases[] = {
    /* Plain merges. */
    {"Hello {{patient.first_name}}, see you at {{appointment.time}}.", PP_MERGE_TEXT,
     PP_FIELD_COUNT, NULL, "Hello Anna, see you at 14:30.", NULL},
    {"{{ practice.name }}", PP_MERGE_HEADER, PP_FIELD_COUNT, NULL, "Smile Dental", NULL},
    /* A missing value is an error naming the field, never a blank. */
    {"Dear {{patient.title}} {{patient.last_name}}", PP_MERGE_TEXT, PP_FIELD_COUNT, NULL, NULL,
     "{{patient.title}} has no value"},
    {"Dear {{patient.last_name}}", PP_MERGE_TEXT, PP_FIELD_PATIENT_LAST_NAME, "", NULL,
     "{{patient.last_name}} has no value"},
    {"On {{appointment.weekday}}", PP_MERGE_HTML, PP_FIELD_COUNT, NULL, NULL,
     "{{appointment.weekday}}"},
    /* Merged text is never expanded again. */
    {"Hi {{patient.first_name}}", PP_MERGE_TEXT, PP_FIELD_PATIENT_FIRST_NAME, "{{practice.name}}",
     "Hi {{practice.name}}", NULL},
    {"Hi {{patient.first_name}}", PP_MERGE_TEXT, PP_FIELD_PATIENT_FIRST_NAME,
     "{{patient.first_name}}", "Hi {{patient.first_name}}", NULL},
    {"Hi {{patient.first_name}}", PP_MERGE_TEXT, PP_FIELD_PATIENT_FIRST_NAME, "{{nope.x}}",
     "Hi {{nope.x}}", NULL},
    /* HTML escaping applies to values only, not to the template's own markup. */
    {"<p>Hi {{patient.first_name}}</p>", PP_MERGE_HTML, PP_FIELD_PATIENT_FIRST_NAME,
     "<script>alert('x')</script> & \"co\"",
     "<p>Hi &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;co&quot;</p>", NULL},
    {"Hi {{patient.first_name}}", PP_MERGE_TEXT, PP_FIELD_PATIENT_FIRST_NAME, "<b>&", "Hi <b>&",
     NULL},
    /* CR/LF never reach a header; the body may carry them. */
    {"Reminder {{patient.first_name}}", PP_MERGE_HEADER, PP_FIELD_PATIENT_FIRST_NAME,
     "Anna\r\nBcc: victim@example.org", NULL, "{{patient.first_name}} contains a line break"},
    {"Reminder {{patient.first_name}}", PP_MERGE_HEADER, PP_FIELD_PATIENT_FIRST_NAME, "Anna\nX",
     NULL, "line break"},
    {"Reminder {{patient.first_name}}", PP_MERGE_HEADER, PP_FIELD_PATIENT_FIRST_NAME, "Anna\rX",
     NULL, "line break"},
    {"Reminder {{patient.first_name}}", PP_MERGE_HEADER, PP_FIELD_PATIENT_FIRST_NAME, "Anna\x1bX",
     NULL, "control character"},
    {"Reminder\r\nBcc: x@y {{patient.first_name}}", PP_MERGE_HEADER, PP_FIELD_COUNT, NULL, NULL,
     "template text contains a line break"},
    {"Address: {{location.phone}}", PP_MERGE_TEXT, PP_FIELD_LOCATION_PHONE, "01\r\n234",
     "Address: 01\r\n234", NULL},
    /* Values must be valid UTF-8. */
    {"Hi {{patient.first_name}}", PP_MERGE_TEXT, PP_FIELD_PATIENT_FIRST_NAME, "J\xc3\xbcrgen",
     "Hi J\xc3\xbcrgen", NULL},
    {"Hi {{patient.first_name}}", PP_MERGE_TEXT, PP_FIELD_PATIENT_FIRST_NAME, "J\xc3(rgen", NULL,
     "not valid UTF-8"},
    {"Hi {{patient.first_name}}", PP_MERGE_TEXT, PP_FIELD_PATIENT_FIRST_NAME, "\xed\xa0\x80", NULL,
     "not valid UTF-8"},
    {"Hi {{patient.first_name}}", PP_MERGE_TEXT, PP_FIELD_PATIENT_FIRST_NAME, "\xc0\xaf", NULL,
     "not valid UTF-8"},
};

static void test_render(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(render_cases) / sizeof(render_cases[0]); i++) {
		fake_values_t v;
		char err[256] = "";
		pp_buf_t out;
		fake_fill(&v);
		if (render_cases[i].field != PP_FIELD_COUNT)
			v.values[render_cases[i].field] = render_cases[i].value;
		pp_merge_template_t *t = pp_merge_parse(render_cases[i].text, err, sizeof(err));
		if (t == NULL)
			fail_msg("case %zu: parse failed: %s", i, err);
		pp_buf_init(&out);
		int rc = pp_merge_render(t, render_cases[i].mode, fake_lookup, &v, &out, err,
		                         sizeof(err));
		if (render_cases[i].expect != NULL) {
			if (rc != 0)
				fail_msg("case %zu: render failed: %s", i, err);
			assert_string_equal(out.data ? out.data : "", render_cases[i].expect);
		} else {
			assert_int_equal(rc, -1);
			if (strstr(err, render_cases[i].err_has) == NULL)
				fail_msg("case %zu: error \"%s\" lacks \"%s\"", i, err,
				         render_cases[i].err_has);
			/* The error names the field, never repeats the hostile value. */
			if (render_cases[i].value != NULL && *render_cases[i].value)
				assert_null(strstr(err, render_cases[i].value));
		}
		pp_buf_free(&out);
		pp_merge_template_free(&t);
	}
}

static void test_render_long_value(void **state)
{
	(void)state;
	fake_values_t v;
	char err[256];
	pp_buf_t out;
	size_t n = 10000;
	char *big = xmalloc(n + 1);
	memset(big, 'x', n);
	big[n] = '\0';
	fake_fill(&v);
	v.values[PP_FIELD_PATIENT_FIRST_NAME] = big;
	pp_merge_template_t *t = pp_merge_parse("[{{patient.first_name}}]", err, sizeof(err));
	assert_non_null(t);
	pp_buf_init(&out);
	assert_int_equal(pp_merge_render(t, PP_MERGE_TEXT, fake_lookup, &v, &out, err, sizeof(err)),
	                 0);
	assert_int_equal(out.len, n + 2);
	pp_buf_free(&out);
	pp_merge_template_free(&t);
	free(big);
}

/* The text/plain reading of HTML templates: merge fields survive, markup
 * goes, entities never make a field the HTML does not hold. */
static const struct {
	const char *html, *text;
} html_cases[] = {
    {"<p>Dear {{patient.first_name}},</p><p>see you at {{appointment.time}}.</p>",
     "Dear {{patient.first_name}},\n\nsee you at {{appointment.time}}.\n"},
    {"<html><head><title>T</title><style>p {color: red}</style></head><body>Hi<br>there"
     "</body></html>",
     "Hi\nthere\n"},
    {"<ul><li>One</li><li> Two </li></ul>After", "- One\n- Two\n\nAfter\n"},
    {"Book: <a href=\"{{appointment.booking_link}}\">online</a>.",
     "Book: online <{{appointment.booking_link}}>.\n"},
    {"<a href='https://x.example/'>https://x.example/</a>", "https://x.example/\n"},
    {"A &amp; B &lt;tag&gt; &quot;q&quot; &#39;s&#39; caf&#233; &#x263A; &nbsp;x",
     "A & B <tag> \"q\" 's' caf\xc3\xa9 \xe2\x98\xba x\n"},
    {"&#123;&#123;patient.email&#125;&#125; &unknown; & a", "&#123;&#123;patient.email&#125;&#125; "
                                                            "&unknown; & a\n"},
    {"<script>document.write('{{patient.first_name}}')</script>Text<!-- {{x}} -->", "Text\n"},
    {"a   b\n\n  c\t<b>d</b>e", "a b c de\n"},
    {"x < y and y > z", "x < y and y > z\n"},
    {"<table><tr><td>A</td><td>B</td></tr><tr><td>C</td></tr></table>", "A B\nC\n"},
    {"Unterminated <b", "Unterminated\n"},
    {"", "\n"},
};

static void test_html_to_text(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(html_cases) / sizeof(html_cases[0]); i++) {
		char *text = pp_merge_html_to_text(html_cases[i].html);
		if (strcmp(text, html_cases[i].text) != 0)
			fail_msg("case %zu: got \"%s\", want \"%s\"", i, text, html_cases[i].text);
		char err[256];
		/* A template that parsed as HTML still parses as text. */
		if (pp_merge_validate(html_cases[i].html, err, sizeof(err)) == 0)
			assert_int_equal(pp_merge_validate(text, err, sizeof(err)), 0);
		free(text);
	}
}

static void test_text_to_html(void **state)
{
	(void)state;
	pp_buf_t out;
	pp_buf_init(&out);
	pp_merge_text_to_html(&out, "Dear <Anna> & \"co\",\r\nline 2\nline 3\n");
	assert_string_equal(
	    out.data, "Dear &lt;Anna&gt; &amp; &quot;co&quot;,<br>\nline 2<br>\nline 3<br>\n");
	pp_buf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_catalogue),
	    cmocka_unit_test(test_parse),
	    cmocka_unit_test(test_uses),
	    cmocka_unit_test(test_render),
	    cmocka_unit_test(test_render_long_value),
	    cmocka_unit_test(test_html_to_text),
	    cmocka_unit_test(test_text_to_html),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
