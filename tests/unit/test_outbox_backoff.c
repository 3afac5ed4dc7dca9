/*
 * test_outbox_backoff.c - the pure parts of the outbox (common/pp_outbox.c)
 * and of the sender (sender/sender_policy.c, compiled in here), table-
 * driven: retry back-off schedule, GCRA rate quota and slot placement, how
 * a delivery result is classified (sent / temporary / permanent / account),
 * the TLS each mode means on each port, rate slot verdicts, size limits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "pp_outbox.h"

/* The sender's pure rules: one file without other dependencies. */
#include "../../sender/sender_policy.c"

static void test_backoff_schedule(void **state)
{
	static const struct {
		int attempts;
		int64_t base, want;
	} cases[] = {
	    {1, 60, 60},  {2, 60, 300}, {3, 60, 1800}, {4, 60, 7200}, {9, 60, 7200}, {0, 60, 60},
	    {-3, 60, 60}, {1, 0, 0},    {3, 0, 0},     {2, 10, 50},   {3, -5, 0},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(pp_outbox_backoff_seconds(cases[i].attempts, cases[i].base),
		                 cases[i].want);
	/* Each retry waits at least as long as the one before. */
	for (int n = 1; n < 10; n++)
		assert_true(pp_outbox_backoff_seconds(n + 1, 60) >=
		            pp_outbox_backoff_seconds(n, 60));
}

static void test_rate_quota(void **state)
{
	static const struct {
		double wait_ms, interval_ms;
		int horizon_ms, limit, want;
	} cases[] = {
	    /* 40/min (1.5 s apart), idle account: one now, the next is 1.5 s away. */
	    {0, 1500, 1000, 50, 1},
	    /* 60/min: slots at 0 and 1000 ms both fall within a 1 s horizon. */
	    {0, 1000, 1000, 50, 2},
	    /* the next slot is 400 ms away: it still counts. */
	    {400, 1500, 1000, 50, 1},
	    /* the next slot is beyond the horizon: nothing now. */
	    {1200, 1500, 1000, 50, 0},
	    /* horizon 0: only a slot due right now. */
	    {0, 1500, 0, 50, 1},
	    {1, 1500, 0, 50, 0},
	    /* very high rates are limited by the batch. */
	    {0, 0.06, 1000, 50, 50},
	    {0, 0, 1000, 7, 7},
	    /* 10 s horizon at 60/min. */
	    {0, 1000, 10000, 50, 11},
	    /* no room left in the batch. */
	    {0, 1000, 1000, 0, 0},
	    /* a negative wait (clock skew) counts as now. */
	    {-50, 1000, 1000, 50, 2},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(pp_outbox_rate_quota(cases[i].wait_ms, cases[i].interval_ms,
		                                      cases[i].horizon_ms, cases[i].limit),
		                 cases[i].want);
}

static void test_classify_smtp(void **state)
{
	static const struct {
		int curl;
		long code;
		int session;
		pp_outcome_t want;
	} cases[] = {
	    {CURLE_OK, 250, 0, PP_OUTCOME_SENT},
	    /* scripted replies to message commands */
	    {CURLE_SEND_ERROR, 451, 0, PP_OUTCOME_TEMPORARY},         /* MAIL 451 */
	    {CURLE_SEND_ERROR, 421, 0, PP_OUTCOME_TEMPORARY},         /* closing */
	    {CURLE_WEIRD_SERVER_REPLY, 452, 0, PP_OUTCOME_TEMPORARY}, /* after DATA */
	    {CURLE_SEND_ERROR, 550, 0, PP_OUTCOME_PERMANENT},         /* RCPT 550 */
	    {CURLE_WEIRD_SERVER_REPLY, 552, 0, PP_OUTCOME_PERMANENT}, /* too big */
	    {CURLE_WEIRD_SERVER_REPLY, 554, 0, PP_OUTCOME_PERMANENT},
	    /* account-wide */
	    {CURLE_LOGIN_DENIED, 535, 1, PP_OUTCOME_ACCOUNT},
	    {CURLE_SEND_ERROR, 530, 0, PP_OUTCOME_ACCOUNT}, /* MAIL: auth required */
	    {CURLE_LOGIN_DENIED, 504, 1, PP_OUTCOME_ACCOUNT},
	    {CURLE_WEIRD_SERVER_REPLY, 554, 1, PP_OUTCOME_ACCOUNT},   /* greeting refused */
	    {CURLE_LOGIN_DENIED, 454, 1, PP_OUTCOME_TEMPORARY},       /* temporary auth failure */
	    {CURLE_WEIRD_SERVER_REPLY, 421, 1, PP_OUTCOME_TEMPORARY}, /* greeting 421 */
	    /* no failure reply: the transport decides */
	    {CURLE_RECV_ERROR, 354, 0, PP_OUTCOME_TEMPORARY}, /* dropped in DATA */
	    {CURLE_SEND_ERROR, 0, 0, PP_OUTCOME_TEMPORARY},
	    {CURLE_OPERATION_TIMEDOUT, 250, 0, PP_OUTCOME_TEMPORARY},
	    {CURLE_SSL_CONNECT_ERROR, 220, 1, PP_OUTCOME_TEMPORARY}, /* TLS handshake */
	    {CURLE_GOT_NOTHING, 0, 1, PP_OUTCOME_TEMPORARY},
	    {CURLE_COULDNT_CONNECT, 0, 1, PP_OUTCOME_ACCOUNT}, /* refused */
	    {CURLE_PEER_FAILED_VERIFICATION, 0, 1, PP_OUTCOME_ACCOUNT},
	    {CURLE_USE_SSL_FAILED, 250, 1, PP_OUTCOME_ACCOUNT}, /* no STARTTLS */
	    {CURLE_COULDNT_RESOLVE_HOST, 0, 1, PP_OUTCOME_ACCOUNT},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		pp_outcome_t got =
		    pp_outbox_classify_smtp(cases[i].curl, cases[i].code, cases[i].session);
		if (got != cases[i].want)
			fail_msg("case %zu (curl %d, code %ld, session %d): got %s, want %s", i,
			         cases[i].curl, cases[i].code, cases[i].session,
			         pp_outcome_name(got), pp_outcome_name(cases[i].want));
	}
}

static void test_classify_transport(void **state)
{
	(void)state;
	assert_int_equal(pp_outbox_classify_transport(CURLE_OK), PP_OUTCOME_SENT);
	assert_int_equal(pp_outbox_classify_transport(CURLE_COULDNT_CONNECT), PP_OUTCOME_ACCOUNT);
	assert_int_equal(pp_outbox_classify_transport(CURLE_LOGIN_DENIED), PP_OUTCOME_ACCOUNT);
	assert_int_equal(pp_outbox_classify_transport(CURLE_SSL_CACERT_BADFILE),
	                 PP_OUTCOME_ACCOUNT);
	assert_int_equal(pp_outbox_classify_transport(CURLE_OPERATION_TIMEDOUT),
	                 PP_OUTCOME_TEMPORARY);
	assert_int_equal(pp_outbox_classify_transport(CURLE_SEND_ERROR), PP_OUTCOME_TEMPORARY);
	assert_int_equal(pp_outbox_classify_transport(CURLE_OUT_OF_MEMORY), PP_OUTCOME_TEMPORARY);
	assert_string_equal(pp_outcome_name(PP_OUTCOME_ACCOUNT), "account");
	assert_string_equal(pp_outcome_name((pp_outcome_t)42), "invalid");
}

static void test_slot_placement(void **state)
{
	(void)state;
	/* An idle account: the first slot is "now" (a little in the past). */
	assert_int_equal(pp_outbox_slot_us(1000000, -2500.0, 100000.0, 0), 997500);
	assert_int_equal(pp_outbox_slot_us(1000000, -2500.0, 100000.0, 3), 1297500);
	/* Fractions of a microsecond round up: never early. */
	assert_int_equal(pp_outbox_slot_us(0, 0.2, 8571428.5, 1), 8571429);
	assert_int_equal(pp_outbox_slot_us(0, 10.0, 1500000.0, 2), 3000010);
	/* Slots are one interval apart whatever the first wait. */
	for (int k = 0; k < 100; k++)
		assert_true(pp_outbox_slot_us(5, 333.3, 85714.3, k + 1) -
		                pp_outbox_slot_us(5, 333.3, 85714.3, k) >=
		            85714);
}

static void test_tls_per_port(void **state)
{
	static const struct {
		sender_tls_t tls;
		int port, optional_port;
		long want;
	} cases[] = {
	    {SENDER_TLS_STARTTLS_OPTIONAL, 25, 25, CURLUSESSL_TRY},
	    /* any other port negotiates STARTTLS: "optional" is required there */
	    {SENDER_TLS_STARTTLS_OPTIONAL, 587, 25, CURLUSESSL_ALL},
	    {SENDER_TLS_STARTTLS_OPTIONAL, 2525, 25, CURLUSESSL_ALL},
	    {SENDER_TLS_STARTTLS_OPTIONAL, 465, 25, CURLUSESSL_ALL},
	    /* unless the operator named the relay's port */
	    {SENDER_TLS_STARTTLS_OPTIONAL, 2525, 2525, CURLUSESSL_TRY},
	    {SENDER_TLS_STARTTLS_OPTIONAL, 25, 2525, CURLUSESSL_ALL},
	    {SENDER_TLS_STARTTLS, 25, 25, CURLUSESSL_ALL},
	    {SENDER_TLS_STARTTLS, 587, 25, CURLUSESSL_ALL},
	    {SENDER_TLS_IMPLICIT, 465, 25, CURLUSESSL_ALL},
	    {SENDER_TLS_IMPLICIT, 25, 25, CURLUSESSL_ALL},
	    {SENDER_TLS_NONE, 25, 25, CURLUSESSL_NONE},
	    {SENDER_TLS_NONE, 587, 25, CURLUSESSL_NONE},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (sender_tls_use_ssl(cases[i].tls, cases[i].port, cases[i].optional_port) !=
		    cases[i].want)
			fail_msg("case %zu: mode %d port %d", i, (int)cases[i].tls, cases[i].port);
}

static void test_slot_verdict(void **state)
{
	static const struct {
		int64_t now, not_before, interval, last_start;
		sender_slot_t want;
		int64_t wait;
	} cases[] = {
	    {1000, 0, 0, 0, SENDER_SLOT_GO, 0},      /* not rate limited */
	    {1000, 5000, 0, 900, SENDER_SLOT_GO, 0}, /* send now: no interval */
	    {1000, 5000, 100000, 0, SENDER_SLOT_WAIT, 4000},
	    {5000, 5000, 100000, 0, SENDER_SLOT_GO, 0},   /* exactly on time */
	    {104999, 5000, 100000, 0, SENDER_SLOT_GO, 0}, /* late, within an interval */
	    {105001, 5000, 100000, 0, SENDER_SLOT_MISSED, 0},
	    /* short intervals tolerate the floor */
	    {5000 + SENDER_SLOT_LATE_FLOOR_US, 5000, 1000, 0, SENDER_SLOT_GO, 0},
	    {5001 + SENDER_SLOT_LATE_FLOOR_US, 5000, 1000, 0, SENDER_SLOT_MISSED, 0},
	    /* long intervals tolerate one interval */
	    {1505000, 5000, 1500000, 0, SENDER_SLOT_GO, 0},
	    {1505001, 5000, 1500000, 0, SENDER_SLOT_MISSED, 0},
	    /* the last send began late: wait one interval after it */
	    {50000, 50000, 100000, 20000, SENDER_SLOT_WAIT, 70000},
	    {120000, 50000, 100000, 20000, SENDER_SLOT_GO, 0},
	    {50000, 50000, 100000, 1, SENDER_SLOT_WAIT, 50001},
	    /* ... unless that pushes it past its slot's tolerance: a fresh slot */
	    {50000, 50000, 100000, 50001, SENDER_SLOT_MISSED, 0},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t wait = -1;
		sender_slot_t got =
		    sender_slot_check(cases[i].now, cases[i].not_before, cases[i].interval,
		                      cases[i].last_start, &wait);
		if (got != cases[i].want || wait != cases[i].wait)
			fail_msg("case %zu: got %d wait %lld", i, (int)got, (long long)wait);
	}
}

static void test_size_limits(void **state)
{
	char text[256];
	(void)state;
	assert_int_equal(sender_size_refused(2000, 0, "the server's SIZE", text, sizeof(text)), 0);
	assert_int_equal(sender_size_refused(2000, 2000, "the server's SIZE", text, sizeof(text)),
	                 0);
	assert_int_equal(sender_size_refused(2001, 2000, "the server's SIZE", text, sizeof(text)),
	                 1);
	assert_string_equal(text, "message of 2001 bytes exceeds the server's SIZE limit of 2000 "
	                          "bytes; not sent");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_backoff_schedule), cmocka_unit_test(test_rate_quota),
	    cmocka_unit_test(test_classify_smtp),    cmocka_unit_test(test_classify_transport),
	    cmocka_unit_test(test_slot_placement),   cmocka_unit_test(test_tls_per_port),
	    cmocka_unit_test(test_slot_verdict),     cmocka_unit_test(test_size_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
