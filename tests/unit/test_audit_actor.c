/*
 * test_audit_actor.c - how a process names itself to the audit trail
 * (common/pp_audit.c): the actor in $PGOPTIONS (escaped for libpq, after
 * what was there), refusals, the operator's name and one-line details.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pp_audit.h"

static void test_set_actor(void **state)
{
	static const struct {
		const char *before, *actor, *want; /* want NULL: refused, unchanged */
	} cases[] = {
	    {NULL, "sender:sender-1@host", "-c pp.actor=sender:sender-1@host"},
	    {"", "operator:anna", "-c pp.actor=operator:anna"},
	    {"-c work_mem=8MB", "operator:anna", "-c work_mem=8MB -c pp.actor=operator:anna"},
	    {NULL, "operator:a b", "-c pp.actor=operator:a\\ b"},
	    {NULL, "operator:a\\b", "-c pp.actor=operator:a\\\\b"},
	    {"-c x.y=1", "", NULL},
	    {"-c x.y=1", "operator:a\nb", NULL},
	    {"-c x.y=1", "operator:a\x7f", NULL},
	};
	char longer[300];
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (cases[i].before)
			setenv("PGOPTIONS", cases[i].before, 1);
		else
			unsetenv("PGOPTIONS");
		int rc = pp_audit_set_actor(cases[i].actor);
		const char *got = getenv("PGOPTIONS");
		if (cases[i].want == NULL) {
			assert_int_equal(rc, -1);
			assert_string_equal(got, cases[i].before);
		} else {
			assert_int_equal(rc, 0);
			assert_string_equal(got, cases[i].want);
		}
	}
	memset(longer, 'a', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	unsetenv("PGOPTIONS");
	assert_int_equal(pp_audit_set_actor(longer), -1);
	assert_int_equal(pp_audit_set_actor(NULL), -1);
	assert_null(getenv("PGOPTIONS"));
}

static void test_operator(void **state)
{
	(void)state;
	setenv("PRACTICEPOST_OPERATOR", "alice", 1);
	setenv("SUDO_USER", "bob", 1);
	assert_string_equal(pp_audit_operator(), "operator:alice");
	unsetenv("PRACTICEPOST_OPERATOR");
	assert_string_equal(pp_audit_operator(), "operator:bob");
	setenv("SUDO_USER", "has space", 1);
	assert_string_not_equal(pp_audit_operator(), "operator:has space");
	unsetenv("SUDO_USER");
	assert_true(strncmp(pp_audit_operator(), "operator:", 9) == 0);
}

static void test_one_line(void **state)
{
	char detail[] = "to=a@b\r\nX-Forged: yes\tend\x7f";
	(void)state;
	pp_audit_one_line(detail);
	assert_string_equal(detail, "to=a@b  X-Forged: yes end ");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_set_actor),
	    cmocka_unit_test(test_operator),
	    cmocka_unit_test(test_one_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
