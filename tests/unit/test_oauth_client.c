/*
 * test_oauth_client.c - the pure parts of OAuth2 (common/pp_oauth_client.c
 * and common/pp_oauth_token.c), table-driven: token endpoint answers
 * (success, rotation, RFC 6749/8628 errors, 5xx, junk), device
 * authorization answers, the id_token name, the renewal margin and the
 * refresh back-off.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pp_oauth_client.h"
#include "pp_oauth_token.h"

static void test_token_answers(void **state)
{
	static const struct {
		long status;
		const char *body;
		pp_oauth_status_t want;
		const char *access, *refresh;
		int64_t expires;
	} cases[] = {
	    {200,
	     "{\"token_type\":\"Bearer\",\"access_token\":\"at-1\",\"refresh_token\":\"rt-2\","
	     "\"expires_in\":3599,\"scope\":\"a b\"}",
	     PP_OAUTH_OK, "at-1", "rt-2", 3599},
	    {200, "{\"token_type\":\"bearer\",\"access_token\":\"at-1\",\"expires_in\":\"60\"}",
	     PP_OAUTH_OK, "at-1", NULL, 60},
	    {200, "{\"access_token\":\"at-1\",\"refresh_token\":\"\"}", PP_OAUTH_OK, "at-1", NULL,
	     0},
	    {200, "{\"token_type\":\"mac\",\"access_token\":\"at-1\"}", PP_OAUTH_REJECTED, NULL,
	     NULL, 0},
	    {200, "{\"refresh_token\":\"rt\"}", PP_OAUTH_UNAVAILABLE, NULL, NULL, 0},
	    {200, "{\"access_token\":\"bad\\u0001token\"}", PP_OAUTH_UNAVAILABLE, NULL, NULL, 0},
	    {200, "<html>", PP_OAUTH_UNAVAILABLE, NULL, NULL, 0},
	    {200, "[1,2]", PP_OAUTH_UNAVAILABLE, NULL, NULL, 0},
	    {400, "{\"error\":\"authorization_pending\"}", PP_OAUTH_PENDING, NULL, NULL, 0},
	    {400, "{\"error\":\"slow_down\"}", PP_OAUTH_SLOW_DOWN, NULL, NULL, 0},
	    {400, "{\"error\":\"access_denied\"}", PP_OAUTH_DENIED, NULL, NULL, 0},
	    {400, "{\"error\":\"expired_token\"}", PP_OAUTH_EXPIRED, NULL, NULL, 0},
	    {400, "{\"error\":\"invalid_grant\",\"error_description\":\"AADSTS70000\"}",
	     PP_OAUTH_INVALID_GRANT, NULL, NULL, 0},
	    {401, "{\"error\":\"invalid_client\"}", PP_OAUTH_REJECTED, NULL, NULL, 0},
	    {503, "{\"error\":\"temporarily_unavailable\"}", PP_OAUTH_UNAVAILABLE, NULL, NULL, 0},
	    {502, "Bad gateway", PP_OAUTH_UNAVAILABLE, NULL, NULL, 0},
	    {429, "{\"error\":\"invalid_request\"}", PP_OAUTH_UNAVAILABLE, NULL, NULL, 0},
	    {400, "", PP_OAUTH_UNAVAILABLE, NULL, NULL, 0},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		pp_oauth_tokens_t t;
		char err[512] = "";
		pp_oauth_status_t st = pp_oauth_parse_tokens(
		    cases[i].status, cases[i].body, strlen(cases[i].body), &t, err, sizeof(err));
		assert_int_equal(st, cases[i].want);
		if (cases[i].access != NULL) {
			assert_string_equal(t.access_token, cases[i].access);
			assert_int_equal(t.expires_in, cases[i].expires);
		} else {
			assert_null(t.access_token);
			assert_true(err[0] != '\0');
		}
		if (cases[i].refresh != NULL)
			assert_string_equal(t.refresh_token, cases[i].refresh);
		else
			assert_null(t.refresh_token);
		assert_null(strstr(err, "at-1"));
		pp_oauth_tokens_clear(&t);
	}
}

static void test_device_answers(void **state)
{
	pp_oauth_device_t d;
	char err[256];
	const char *ok = "{\"device_code\":\"dc\",\"user_code\":\"ABCD-EFGH\",\"verification_uri\":"
	                 "\"https://microsoft.com/devicelogin\",\"expires_in\":900,\"interval\":5}";
	const char *google = "{\"device_code\":\"dc\",\"user_code\":\"X\",\"verification_url\":"
	                     "\"https://www.google.com/device\",\"expires_in\":1800}";
	(void)state;
	assert_int_equal(pp_oauth_parse_device(200, ok, strlen(ok), &d, err, sizeof(err)),
	                 PP_OAUTH_OK);
	assert_string_equal(d.user_code, "ABCD-EFGH");
	assert_int_equal(d.interval, 5);
	assert_null(d.verification_uri_complete);
	pp_oauth_device_clear(&d);
	assert_int_equal(pp_oauth_parse_device(200, google, strlen(google), &d, err, sizeof(err)),
	                 PP_OAUTH_OK);
	assert_string_equal(d.verification_uri, "https://www.google.com/device");
	assert_int_equal(d.interval, 5);
	pp_oauth_device_clear(&d);
	assert_int_equal(
	    pp_oauth_parse_device(200, "{\"user_code\":\"X\"}", 14, &d, err, sizeof(err)),
	    PP_OAUTH_UNAVAILABLE);
	assert_int_equal(
	    pp_oauth_parse_device(400, "{\"error\":\"invalid_client\"}", 26, &d, err, sizeof(err)),
	    PP_OAUTH_REJECTED);
}

static void test_id_token_name(void **state)
{
	(void)state;
	/* {"sub":"s1","preferred_username":"alice@example.com"} */
	char *n = pp_oauth_id_token_name("e30.eyJzdWIiOiJzMSIsInByZWZlcnJlZF91c2VybmFtZSI6ImFsaWNl"
	                                 "QGV4YW1wbGUuY29tIn0.sig");
	assert_string_equal(n, "alice@example.com");
	free(n);
	/* {"sub":"s1"} */
	n = pp_oauth_id_token_name("e30.eyJzdWIiOiJzMSJ9.sig");
	assert_string_equal(n, "s1");
	free(n);
	assert_null(pp_oauth_id_token_name(NULL));
	assert_null(pp_oauth_id_token_name("not-a-jwt"));
	assert_null(pp_oauth_id_token_name("a.!!!.c"));
}

static void test_margin_and_backoff(void **state)
{
	(void)state;
	assert_int_equal(pp_oauth_renew_margin(3600), 300);
	assert_int_equal(pp_oauth_renew_margin(600), 300);
	assert_int_equal(pp_oauth_renew_margin(60), 30);
	assert_int_equal(pp_oauth_renew_margin(0), 0);
	assert_int_equal(pp_oauth_backoff_seconds(1), 30);
	assert_int_equal(pp_oauth_backoff_seconds(2), 60);
	assert_int_equal(pp_oauth_backoff_seconds(5), 480);
	assert_int_equal(pp_oauth_backoff_seconds(6), 900);
	assert_int_equal(pp_oauth_backoff_seconds(60), 900);
	assert_true(pp_oauth_sasl_safe("user@example.com"));
	assert_false(pp_oauth_sasl_safe("a\001b"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_token_answers),
	    cmocka_unit_test(test_device_answers),
	    cmocka_unit_test(test_id_token_name),
	    cmocka_unit_test(test_margin_and_backoff),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
