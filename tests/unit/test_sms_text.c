/*
 * test_sms_text.c - the pure parts of SMS handling, table-driven: E.164
 * normalisation with a practice's country (common/pp_phone.c), GSM 03.38 /
 * UCS-2 classification and segment counting (common/pp_sms_text.c), and
 * the keywords of incoming texts (sms/sms_reply.c) and the callback
 * secret comparison (sms/sms_callback.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pp_phone.h"
#include "pp_sms_text.h"
#include "sms_callback.h"
#include "sms_reply.h"

static void test_e164(void **state)
{
	static const struct {
		const char *in, *country, *want; /* want NULL: refused */
	} cases[] = {
	    {"+49 170-123 4567", NULL, "+491701234567"},
	    {"+49 170-123 4567", "DE", "+491701234567"},
	    {"0170 1234567", "DE", "+491701234567"},
	    {"0049 170 1234567", "DE", "+491701234567"},
	    {"+49 (0)170 1234567", NULL, "+491701234567"},
	    {"0170/1234567", "DE", "+491701234567"},
	    {"0170 1234567", NULL, NULL}, /* national, no country */
	    {"0170 1234567", "XX", NULL}, /* unknown country */
	    {"07700 900123", "GB", "+447700900123"},
	    {"+44 7700 900123", "DE", "+447700900123"},
	    {"(212) 555-0100", "US", "+12125550100"},
	    {"1 212 555 0100", "US", "+12125550100"},
	    {"011 49 170 1234567", "US", "+491701234567"},
	    {"212 555 010", "US", NULL}, /* too short */
	    {"06 12 34 56 78", "FR", "+33612345678"},
	    {"+33 6 12 34 56 78 9", NULL, NULL}, /* too long for France */
	    {"333 1234567", "IT", "+393331234567"},
	    {"06 1234 5678", "IT", "+390612345678"}, /* Italy keeps its 0 */
	    {"0412 345 678", "AU", "+61412345678"},
	    {"+1 (212) 555-0100", "DE", "+12125550100"},
	    {"+86 139 1234 5678", "DE", "+8613912345678"}, /* not in the table: E.164 rule */
	    {"+86 12", NULL, NULL},
	    {"+0 170 1234567", NULL, NULL},
	    {"call reception", "DE", NULL},
	    {"", "DE", NULL},
	    {"+", "DE", NULL},
	    {"++49170", "DE", NULL},
	    {"+49 170 1234567 89012345", NULL, NULL},
	    {"0 0170 1234567", "DE", NULL}, /* 0 after the trunk prefix */
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[PP_PHONE_MAX];
		const char *why = NULL;
		int rc = pp_phone_e164(cases[i].in, cases[i].country, out, &why);
		if (cases[i].want == NULL) {
			if (rc == 0)
				fail_msg("case %zu \"%s\": accepted as %s", i, cases[i].in, out);
			assert_non_null(why);
		} else {
			if (rc != 0)
				fail_msg("case %zu \"%s\": refused: %s", i, cases[i].in, why);
			assert_string_equal(out, cases[i].want);
		}
	}
	assert_int_equal(pp_phone_e164(NULL, "DE", (char[PP_PHONE_MAX]){0}, &(const char *){NULL}),
	                 -1);
}

static void test_national(void **state)
{
	(void)state;
	assert_string_equal(pp_phone_national("+491701234567"), "1701234567");
	assert_string_equal(pp_phone_national("+12125550100"), "2125550100");
	assert_string_equal(pp_phone_national("+353851234567"), "851234567");
	assert_string_equal(pp_phone_national("+8613912345678"), "613912345678");
	assert_true(pp_phone_country_known("DE"));
	assert_false(pp_phone_country_known("XX"));
	assert_false(pp_phone_country_known(NULL));
}

static void test_segments(void **state)
{
	static char long_gsm[400], long_ucs[400], ext[400], edge[200];
	memset(long_gsm, 'a', 161);
	memset(ext, 'a', 152);
	strcpy(ext + 152, "{"); /* 152 + 2 septets: the brace moves to part 2 */
	memset(ext + 153, 'a', 10);
	memset(edge, 'a', 158);
	strcpy(edge + 158, "\xE2\x82\xAC"); /* 158 + euro (2) = 160: one SMS */
	for (int i = 0; i < 71; i++)
		strcat(long_ucs, "\xC5\x81"); /* U+0141: not GSM */
	static const struct {
		const char *text;
		int segments, units;
		pp_sms_text_kind_t kind;
	} cases[] = {
	    {"", 0, 0, PP_SMS_TEXT_GSM},
	    {"Hi Anna, see you at 09:30.", 1, 26, PP_SMS_TEXT_GSM},
	    {"Gr\xC3\xBC\xC3\x9F"
	     "e 10\xE2\x82\xAC",
	     1, 10, PP_SMS_TEXT_GSM},
	    {long_gsm, 2, 161, PP_SMS_TEXT_GSM},
	    {ext, 2, 164, PP_SMS_TEXT_GSM},
	    {edge, 1, 160, PP_SMS_TEXT_GSM},
	    {"Zahnarzt \xE2\x80\x93 ok", 1, 13, PP_SMS_TEXT_UNICODE},
	    {"\xF0\x9F\x98\x80", 1, 2, PP_SMS_TEXT_UNICODE}, /* a surrogate pair */
	    {long_ucs, 2, 71, PP_SMS_TEXT_UNICODE},
	    {"tab\there", 1, 8, PP_SMS_TEXT_UNICODE},
	    {"back`tick", 1, 9, PP_SMS_TEXT_UNICODE},
	    {"\xC3\x28", -1, 0, PP_SMS_TEXT_INVALID},
	    {"bell\x07", -1, 0, PP_SMS_TEXT_INVALID},
	    {"\xED\xA0\x80", -1, 0, PP_SMS_TEXT_INVALID}, /* a surrogate in UTF-8 */
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		pp_sms_text_kind_t kind;
		int units = 0;
		int n = pp_sms_text_segments(cases[i].text, &kind, &units);
		if (n != cases[i].segments || kind != cases[i].kind ||
		    (n >= 0 && units != cases[i].units))
			fail_msg("case %zu: segments %d kind %d units %d", i, n, (int)kind, units);
	}
	/* 153 septets per part: 306 fit two parts, 307 need three. */
	char buf[400];
	memset(buf, 'x', 306);
	buf[306] = '\0';
	assert_int_equal(pp_sms_text_segments(buf, NULL, NULL), 2);
	buf[306] = 'x';
	buf[307] = '\0';
	assert_int_equal(pp_sms_text_segments(buf, NULL, NULL), 3);
}

static void test_reply_keywords(void **state)
{
	static const struct {
		const char *text;
		sms_reply_kind_t want;
	} cases[] = {
	    {"Y", SMS_REPLY_CONFIRM},
	    {"yes", SMS_REPLY_CONFIRM},
	    {"  Yes!  ", SMS_REPLY_CONFIRM},
	    {"YES.", SMS_REPLY_CONFIRM},
	    {"c", SMS_REPLY_CONFIRM},
	    {"Confirmed", SMS_REPLY_CONFIRM},
	    {"ok", SMS_REPLY_CONFIRM},
	    {"O.K.", SMS_REPLY_CONFIRM},
	    {"\xF0\x9F\x91\x8D", SMS_REPLY_CONFIRM},                 /* thumbs up */
	    {"\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD", SMS_REPLY_CONFIRM}, /* with skin tone */
	    {" \xF0\x9F\x91\x8D\xEF\xB8\x8F ", SMS_REPLY_CONFIRM},   /* with VS-16 */
	    {"STOP", SMS_REPLY_STOP},
	    {"stop.", SMS_REPLY_STOP},
	    {"Stop all", SMS_REPLY_STOP},
	    {"unsubscribe", SMS_REPLY_STOP},
	    {"CANCEL", SMS_REPLY_STOP},
	    {"end", SMS_REPLY_STOP},
	    {"Quit!", SMS_REPLY_STOP},
	    {"start", SMS_REPLY_START},
	    {"HELP", SMS_REPLY_HELP},
	    {"help?", SMS_REPLY_HELP},
	    {"yes but can I come at 3?", SMS_REPLY_OTHER},
	    {"no", SMS_REPLY_OTHER},
	    {"yess", SMS_REPLY_OTHER},
	    {"stop texting my son", SMS_REPLY_OTHER},
	    {"", SMS_REPLY_OTHER},
	    {"!!!", SMS_REPLY_OTHER},
	    {"\xF0\x9F\x91\x8E", SMS_REPLY_OTHER}, /* thumbs down */
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		sms_reply_kind_t got = sms_reply_classify(cases[i].text, NULL, 0);
		if (got != cases[i].want)
			fail_msg("case %zu \"%s\": %s", i, cases[i].text, sms_reply_kind_name(got));
	}
	/* A practice's own list replaces the built-in one; STOP still wins. */
	const char *const words[] = {"Ja", "Jawohl", "Passt"};
	assert_int_equal(sms_reply_classify("ja!", words, 3), SMS_REPLY_CONFIRM);
	assert_int_equal(sms_reply_classify("PASST", words, 3), SMS_REPLY_CONFIRM);
	assert_int_equal(sms_reply_classify("yes", words, 3), SMS_REPLY_OTHER);
	assert_int_equal(sms_reply_classify("stop", words, 3), SMS_REPLY_STOP);
	char *n = sms_reply_normalize(" O.k.\xC2\xA0\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBB ");
	assert_string_equal(n, "OK\xF0\x9F\x91\x8D");
	free(n);
	n = sms_reply_normalize("\xF0\x9F"); /* a cut sequence is kept, never overrun */
	assert_string_equal(n, "\xF0\x9F");
	free(n);
}

static void test_callback_secret(void **state)
{
	const char *s = "0123456789abcdef0123456789abcdef";
	(void)state;
	assert_true(sms_callback_secret_ok(s, s));
	assert_true(sms_callback_secret_ok("0123456789abcdef0123456789abcdef", s));
	assert_false(sms_callback_secret_ok("0123456789abcdef0123456789abcdee", s));
	assert_false(sms_callback_secret_ok("0123456789abcdef0123456789abcde", s));
	assert_false(sms_callback_secret_ok("0123456789abcdef0123456789abcdef0", s));
	assert_false(sms_callback_secret_ok("", s));
	assert_false(sms_callback_secret_ok(NULL, s));
	assert_false(sms_callback_secret_ok(s, NULL));
	/* Two wrong lengths never compare equal through the padding. */
	assert_false(sms_callback_secret_ok("", ""));
	assert_false(sms_callback_secret_ok("abc", "abc"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_e164),
	    cmocka_unit_test(test_national),
	    cmocka_unit_test(test_segments),
	    cmocka_unit_test(test_reply_keywords),
	    cmocka_unit_test(test_callback_secret),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
