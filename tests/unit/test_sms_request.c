/*
 * test_sms_request.c - the SMS callback endpoint's request parsing
 * (sms/sms_request.c), table-driven: the answer every kind of bad request
 * gets, when a report's or text's own problem is held back until the
 * secret is checked, and the decoding of incoming texts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sms_request.h"

#define KEY "0123456789abcdef0123456789abcdef"
#define MAX_ARGS 48

/* parse - "k=v&k=v" (no escapes; "k" alone has no value) through the parser. */
static int parse(const char *method, const char *url, const char *query, sms_request_t *r,
                 sms_callback_answer_t *ans)
{
	static char buf[4096];
	sms_request_arg_t args[MAX_ARGS];
	size_t n = 0;
	char *save = NULL;
	strcpy(buf, query);
	for (char *p = strtok_r(buf, "&", &save); p && n < MAX_ARGS;
	     p = strtok_r(NULL, "&", &save)) {
		char *eq = strchr(p, '=');
		if (eq != NULL)
			*eq = '\0';
		args[n] =
		    (sms_request_arg_t){p, strlen(p), eq ? eq + 1 : NULL, eq ? strlen(eq + 1) : 0};
		n++;
	}
	memset(ans, 0, sizeof(*ans));
	return sms_request_parse(method, url, args, n, r, ans);
}

static void test_refused(void **state)
{
	static const struct {
		const char *method, *url, *query;
		unsigned status;
		const char *why;
	} cases[] = {
	    {"POST", "/sms/dlr", "a=1&k=" KEY "&m=1&t=1", 405, "method POST not allowed"},
	    {"GET", "/sms", "a=1&k=" KEY, 404, "no such path"},
	    {"GET", "/sms/dlr/", "a=1&k=" KEY, 404, "no such path"},
	    {"GET", "/sms/dlr", "a=1&k=" KEY "&m=1&t=1&x=1", 400, "unknown argument \"x\""},
	    {"GET", "/sms/dlr", "a=1&a=1&k=" KEY "&m=1&t=1", 400, "an argument is given twice"},
	    {"GET", "/sms/dlr", "a=1&m=1&t=1", 400, "missing account or secret"},
	    {"GET", "/sms/dlr", "a&k=" KEY "&m=1&t=1", 400, "missing account or secret"},
	    {"GET", "/sms/mo", "a=-1&k=" KEY "&from=1&text=hi", 400, "malformed account id"},
	    {"GET", "/sms/mo", "a=1x&k=" KEY "&from=1&text=hi", 400, "malformed account id"},
	    {"GET", "/sms/mo", "a=1&k=" KEY "&from=1&text=hi&m=1", 400, "unknown argument \"m\""},
	    {"GET", "/sms/dlr", "p0&p1&p2&p3&p4&p5&p6&p7&p8&p9&p10&p11&p12&p13&p14&p15&p16", 400,
	     "too many arguments (17)"},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		sms_request_t r;
		sms_callback_answer_t ans;
		assert_int_equal(parse(cases[i].method, cases[i].url, cases[i].query, &r, &ans),
		                 -1);
		assert_int_equal(ans.status, cases[i].status);
		assert_string_equal(ans.why, cases[i].why);
	}
}

static void test_nul_in_argument(void **state)
{
	sms_request_arg_t args[] = {{"a", 1, "1", 1},
	                            {"k", 1, KEY "\0x", 34},
	                            {"from", 4, "1", 1},
	                            {"text", 4, "\0h\0i", 4},
	                            {"coding", 6, "2", 1}};
	sms_request_t r;
	sms_callback_answer_t ans = {0, ""};
	(void)state;
	assert_int_equal(sms_request_parse("GET", "/sms/mo", args, 5, &r, &ans), -1);
	assert_string_equal(ans.why, "an argument holds a NUL byte");
	args[1].value_len = 32; /* only the text may hold NUL bytes */
	assert_int_equal(sms_request_parse("GET", "/sms/mo", args, 5, &r, &ans), 0);
	assert_int_equal(r.late.status, 0);
	assert_string_equal(r.text, "hi");
	sms_request_clear(&r);
}

/* A report's or text's own problem waits until the secret passed. */
static void test_late(void **state)
{
	static const struct {
		const char *url, *query, *why; /* why NULL: no problem */
		const char *delivery;
	} cases[] = {
	    {"/sms/dlr", "a=1&k=" KEY "&m=42&t=1", NULL, "delivered"},
	    {"/sms/dlr", "a=1&k=" KEY "&m=42&t=2&c=stat:EXPIRED", NULL, "expired"},
	    {"/sms/dlr", "a=1&k=" KEY "&m=42&t=2&c=stat:UNDELIV", NULL, "failed"},
	    {"/sms/dlr", "a=1&k=" KEY "&m=42&t=16", NULL, "failed"},
	    {"/sms/dlr", "a=1&k=" KEY "&m=42&t=8", NULL, NULL},
	    {"/sms/dlr", "a=1&k=short&m=42&t=3", "unknown delivery report type 3", NULL},
	    {"/sms/dlr", "a=1&k=" KEY "&t=1", "a delivery report needs m and t as numbers", NULL},
	    {"/sms/dlr", "a=1&k=" KEY "&m=0&t=1", "a delivery report needs m and t as numbers",
	     NULL},
	    {"/sms/mo", "a=1&k=" KEY "&text=hi", "an incoming SMS needs from and text", NULL},
	    {"/sms/mo", "a=1&k=" KEY "&from=&text=hi", "an incoming SMS needs from and text", NULL},
	    {"/sms/mo", "a=1&k=" KEY "&from=1&text", "an incoming SMS needs from and text", NULL},
	    {"/sms/mo", "a=1&k=" KEY "&from=1&text=&coding=2", NULL, NULL},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		sms_request_t r;
		sms_callback_answer_t ans;
		assert_int_equal(parse("GET", cases[i].url, cases[i].query, &r, &ans), 0);
		assert_int_equal(r.account_id, 1);
		if (cases[i].why == NULL) {
			assert_int_equal(r.late.status, 0);
		} else {
			assert_int_equal(r.late.status, 400);
			assert_string_equal(r.late.why, cases[i].why);
		}
		if (r.is_dlr && cases[i].why == NULL && cases[i].delivery != NULL)
			assert_string_equal(r.delivery, cases[i].delivery);
		else if (r.is_dlr)
			assert_null(r.delivery);
		sms_request_clear(&r);
	}
}

static void test_text_decoding(void **state)
{
	static const struct {
		const char *raw;
		size_t len;
		const char *coding, *charset, *want; /* want NULL: refused */
	} cases[] = {
	    {"Yes", 3, NULL, NULL, "Yes"},
	    {"Gr\xc3\xbc\xc3\x9f\x65", 7, "0", "UTF-8", "Gr\xc3\xbc\xc3\x9f\x65"},
	    {"Gr\xfc\xdf\x65", 5, NULL, "ISO-8859-1", "Gr\xc3\xbc\xc3\x9f\x65"},
	    {"\0Y\0E\0S\xd8\x3d\xdc\x4d", 10, "2", NULL, "YES\xf0\x9f\x91\x8d"},
	    {"\0Y\0E", 4, NULL, "ucs-2", "YE"},
	    {"\xd8\x3d\0Y", 4, "2", NULL, NULL}, /* lone high surrogate */
	    {"\0\0", 2, "2", NULL, NULL},
	    {"a\0b", 3, NULL, NULL, NULL},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got =
		    sms_request_utf8(cases[i].raw, cases[i].len, cases[i].coding, cases[i].charset);
		if (cases[i].want == NULL) {
			assert_null(got);
		} else {
			assert_non_null(got);
			assert_string_equal(got, cases[i].want);
		}
		free(got);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_refused),
	    cmocka_unit_test(test_nul_in_argument),
	    cmocka_unit_test(test_late),
	    cmocka_unit_test(test_text_decoding),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
