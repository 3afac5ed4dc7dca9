/*
 * test_config_databases.c - a practice database's view of the shared
 * configuration (PP_DATABASE): the metrics and SMS callback ports are the
 * configured ones plus the database's index (its place in [databases]
 * list, else PP_DATABASE_INDEX), off without a base or an index, the
 * shared callback_url kept for the first database only, and a
 * [section@NAME] entry over all of it. Table-driven.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "pp_config.h"

typedef struct {
	const char *what;
	const char *text;     /* the config file */
	const char *database; /* PP_DATABASE */
	const char *index;    /* PP_DATABASE_INDEX, NULL: unset */
	const char *metrics, *callback, *url;
} case_t;

#define BASES "[watchdog]\nmetrics_port = 9100\n[sms]\ncallback_port = 8100\n"
#define URL "callback_url = https://sms.example/cb\n"

static const case_t cases[] = {
    {"listed first: the bases", "[databases]\nlist = a, b c\n" BASES URL, "a", NULL, "9100", "8100",
     "https://sms.example/cb"},
    {"listed second: base + 1, no shared URL", "[databases]\nlist = a, b c\n" BASES URL, "b", "7",
     "9101", "8101", ""},
    {"listed third (space-separated)", "[databases]\nlist = a, b c\n" BASES, "c", NULL, "9102",
     "8102", ""},
    {"not listed: off", "[databases]\nlist = a\n" BASES, "z", "3", "0", "0", ""},
    {"discovered: the supervisor's index", "[databases]\ndiscover = yes\n" BASES, "x", "2", "9102",
     "8102", ""},
    {"discovered without an index: off", "[databases]\ndiscover = yes\n" BASES, "x", NULL, "0", "0",
     ""},
    {"no base: off", "[databases]\nlist = a, b\n", "b", NULL, "0", "0", ""},
    {"own section wins",
     "[databases]\nlist = a, b\n" BASES "[sms@b]\ncallback_port = 7000\n"
     "callback_url = https://b.example/\n[watchdog@b]\nmetrics_port = 0\n",
     "b", NULL, "0", "7000", "https://b.example/"},
    {"a bad base is passed on", "[databases]\nlist = a, b\n[watchdog]\nmetrics_port = x1\n", "b",
     NULL, "x1", "0", ""},
};

static void check_case(const case_t *c)
{
	char path[] = "/tmp/pp-config-db-XXXXXX", err[256];
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, c->text, strlen(c->text)), (ssize_t)strlen(c->text));
	close(fd);
	setenv("PP_DATABASE", c->database, 1);
	if (c->index != NULL)
		setenv("PP_DATABASE_INDEX", c->index, 1);
	else
		unsetenv("PP_DATABASE_INDEX");
	pp_config_t *cfg = pp_config_load(path, err, sizeof(err));
	unsetenv("PP_DATABASE");
	unsetenv("PP_DATABASE_INDEX");
	unlink(path);
	if (cfg == NULL)
		fail_msg("%s: %s", c->what, err);
	const char *metrics = pp_config_get(cfg, "watchdog", "metrics_port", NULL);
	const char *callback = pp_config_get(cfg, "sms", "callback_port", NULL);
	const char *url = pp_config_get(cfg, "sms", "callback_url", NULL);
	if (strcmp(metrics, c->metrics) != 0 || strcmp(callback, c->callback) != 0 ||
	    (c->url == NULL) != (url == NULL) || (url != NULL && strcmp(url, c->url) != 0))
		fail_msg("%s: metrics_port=%s callback_port=%s callback_url=%s", c->what, metrics,
		         callback, url ? url : "(none)");
	pp_config_free(&cfg);
}

static void test_database_ports(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_case(&cases[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_database_ports)};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
