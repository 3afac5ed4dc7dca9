/*
 * test_tls.c - pp_tls: the TLS options every handle gets, and the
 * diagnostic that names the failed TLS check (table-driven, with the
 * error texts libcurl 7.88 and OpenSSL 3.0 produce).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "pp_tls.h"

static void test_classify_table(void **state)
{
	(void)state;
	static const struct {
		CURLcode rc;
		const char *errbuf;
		pp_tls_failure_t want;
	} cases[] = {
	    {CURLE_PEER_FAILED_VERIFICATION,
	     "SSL: no alternative certificate subject name matches target host name '127.0.0.1'",
	     PP_TLS_HOST_MISMATCH},
	    {CURLE_PEER_FAILED_VERIFICATION, "SSL certificate problem: certificate has expired",
	     PP_TLS_EXPIRED},
	    {CURLE_PEER_FAILED_VERIFICATION,
	     "SSL certificate problem: certificate is not yet valid", PP_TLS_EXPIRED},
	    {CURLE_PEER_FAILED_VERIFICATION, "SSL certificate problem: self-signed certificate",
	     PP_TLS_UNTRUSTED},
	    {CURLE_PEER_FAILED_VERIFICATION,
	     "SSL certificate problem: unable to get local issuer certificate", PP_TLS_UNTRUSTED},
	    {CURLE_SSL_CONNECT_ERROR, "error:0A00042E:SSL routines::tlsv1 alert protocol version",
	     PP_TLS_PROTOCOL},
	    {CURLE_SSL_CONNECT_ERROR, "error:0A000102:SSL routines::unsupported protocol",
	     PP_TLS_PROTOCOL},
	    {CURLE_SSL_CONNECT_ERROR, "", PP_TLS_OTHER},
	    {CURLE_PEER_FAILED_VERIFICATION, NULL, PP_TLS_OTHER},
	    {CURLE_COULDNT_CONNECT, "certificate has expired", PP_TLS_NOT_TLS},
	    {CURLE_LOGIN_DENIED, "self-signed certificate", PP_TLS_NOT_TLS},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(pp_tls_classify(cases[i].rc, cases[i].errbuf), cases[i].want);
}

static void test_explain_names_check_and_fix(void **state)
{
	(void)state;
	char out[512];
	assert_int_equal(pp_tls_explain(CURLE_PEER_FAILED_VERIFICATION,
	                                "SSL certificate problem: certificate has expired\n",
	                                "mail.example", 465, out, sizeof(out)),
	                 PP_TLS_EXPIRED);
	assert_non_null(strstr(out, "TLS to mail.example:465 refused: certificate expired"));
	assert_non_null(strstr(out, "renew"));
	assert_null(strchr(out, '\n'));
	assert_int_equal(pp_tls_explain(CURLE_PEER_FAILED_VERIFICATION,
	                                "SSL: certificate subject name 'a' does not match target "
	                                "host name 'b'",
	                                NULL, 0, out, sizeof(out)),
	                 PP_TLS_HOST_MISMATCH);
	assert_true(strncmp(out, "TLS refused: host name mismatch", 31) == 0);
	strcpy(out, "untouched");
	assert_int_equal(pp_tls_explain(CURLE_COULDNT_CONNECT, "refused", "h", 1, out, sizeof(out)),
	                 PP_TLS_NOT_TLS);
	assert_string_equal(out, "untouched");
	/* the longest errbuf and action still fit */
	char big[400];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "self-signed", 11);
	pp_tls_explain(CURLE_PEER_FAILED_VERIFICATION, big, "h", 1, out, sizeof(out));
	assert_non_null(strstr(out, "--ca-file"));
}

static void test_apply_sets_options(void **state)
{
	(void)state;
	CURL *c = curl_easy_init();
	assert_non_null(c);
	assert_int_equal(pp_tls_apply(c, 1, NULL), CURLE_OK);
	assert_int_equal(pp_tls_apply(c, 0, ""), CURLE_OK);
	assert_int_equal(pp_tls_apply(c, 1, "/nonexistent/ca.pem"), CURLE_OK);
	curl_easy_cleanup(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_classify_table),
	    cmocka_unit_test(test_explain_names_check_and_fix),
	    cmocka_unit_test(test_apply_sets_options),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
