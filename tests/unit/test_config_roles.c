/*
 * test_config_roles.c - [database] roles (pp_config_database_roles): auto
 * when absent, on/off in every boolean spelling, a [database@NAME] entry
 * over [database] for that database's processes, and a clear error for
 * any other value. Table-driven.
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
	const char *database; /* PP_DATABASE, NULL: unset */
	int ok;
	pp_config_roles_t mode;
	const char *error; /* part of the error text when !ok */
} case_t;

#define DB "[database]\nconninfo = host=/tmp\n"

static const case_t cases[] = {
    {"absent: auto", DB, NULL, 1, PP_CONFIG_ROLES_AUTO, NULL},
    {"auto", DB "roles = auto\n", NULL, 1, PP_CONFIG_ROLES_AUTO, NULL},
    {"on", DB "roles = on\n", NULL, 1, PP_CONFIG_ROLES_ON, NULL},
    {"yes", DB "roles = yes\n", NULL, 1, PP_CONFIG_ROLES_ON, NULL},
    {"true", DB "roles = TRUE\n", NULL, 1, PP_CONFIG_ROLES_ON, NULL},
    {"off", DB "roles = off\n", NULL, 1, PP_CONFIG_ROLES_OFF, NULL},
    {"0", DB "roles = 0\n", NULL, 1, PP_CONFIG_ROLES_OFF, NULL},
    {"one database's own section wins", DB "roles = on\n[database@b]\nroles = off\n", "b", 1,
     PP_CONFIG_ROLES_OFF, NULL},
    {"another database's section does not", DB "roles = on\n[database@b]\nroles = off\n", "a", 1,
     PP_CONFIG_ROLES_ON, NULL},
    {"anything else is refused", DB "roles = maybe\n", NULL, 0, PP_CONFIG_ROLES_AUTO,
     "[database] roles = \"maybe\" is not on, off or auto"},
    {"empty is refused", DB "roles =\n", NULL, 0, PP_CONFIG_ROLES_AUTO,
     "[database] roles = \"\" is not on, off or auto"},
};

static void check_case(const case_t *c)
{
	char path[] = "/tmp/pp-config-roles-XXXXXX", err[512] = "";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, c->text, strlen(c->text)), (ssize_t)strlen(c->text));
	close(fd);
	if (c->database)
		setenv("PP_DATABASE", c->database, 1);
	else
		unsetenv("PP_DATABASE");
	pp_config_t *cfg = pp_config_load(path, err, sizeof(err));
	unlink(path);
	if (c->ok != (cfg != NULL))
		fail_msg("%s: load %s (%s)", c->what, cfg ? "succeeded" : "failed", err);
	if (cfg != NULL && pp_config_database_roles() != c->mode)
		fail_msg("%s: mode %d, expected %d", c->what, (int)pp_config_database_roles(),
		         (int)c->mode);
	if (cfg == NULL && strstr(err, c->error) == NULL)
		fail_msg("%s: error \"%s\"", c->what, err);
	pp_config_free(&cfg);
}

static void test_roles_setting(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_case(&cases[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_roles_setting)};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
