/*
 * cmd_db.c - `practicepost db migrate|version|genuine` and `practicepost key
 * generate`. migrate and version run with the login's own rights (the
 * migration role); the other commands as pp_operator (pp_db.c).
 */
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "pp_audit.h"
#include "pp_migrate.h"

static int cmd_db_migrate(ctl_t *ctl, int argc, char **argv)
{
	char err[1024];
	int from, to;
	(void)argv;
	if (argc != 1)
		return ctl_err("usage: practicepost db migrate"), 2;
	pp_db_use_role(NULL); /* the schema's owner changes it */
	pp_db_t *db = ctl_db_raw(ctl);
	if (db == NULL)
		return 1;
	int roles = pp_config_database_roles() != PP_CONFIG_ROLES_OFF;
	if (pp_migrate_apply(db, roles, &from, &to, err, sizeof(err)) != 0)
		return ctl_err("%s", err);
	if (from == to)
		printf("schema is up to date (version %d)\n", to);
	else
		printf("schema migrated from version %d to %d\n", from, to);
	if (roles)
		printf("database roles granted: pp_fetcher pp_composer pp_sender pp_sms "
		       "pp_watchdog pp_operator\n");
	else
		printf("database roles left alone ([database] roles = off)\n");
	return 0;
}

static int cmd_db_version(ctl_t *ctl, int argc, char **argv)
{
	(void)argv;
	if (argc != 1)
		return ctl_err("usage: practicepost db version"), 2;
	pp_db_use_role(NULL);
	pp_db_t *db = ctl_db_raw(ctl);
	if (db == NULL)
		return 1;
	int v = pp_migrate_current(db);
	if (v < 0)
		return ctl_err("cannot read the schema version: %s", pp_db_error(db));
	printf("database schema version %d; this build speaks version %d\n", v,
	       pp_migrate_latest());
	return v == pp_migrate_latest() ? 0 : 1;
}

static int cmd_key_generate(ctl_t *ctl, int argc, char **argv)
{
	char err[512];
	(void)argv;
	if (argc != 1)
		return ctl_err("usage: practicepost key generate"), 2;
	pp_config_t *cfg = pp_config_load(ctl->config_path, err, sizeof(err));
	if (cfg == NULL)
		return ctl_err("%s", err);
	const char *path = pp_config_get(cfg, "paths", "key_file", "/etc/practicepost/secret.key");
	int rc = pp_secret_key_generate(path, err, sizeof(err));
	if (rc != 0)
		ctl_err("%s", err);
	else
		printf("secret key written to %s (mode 0600)\n", path);
	pp_config_free(&cfg);
	return rc != 0;
}

/* db genuine yes|no: a database whose name says demo, training, test,
 * trial or backup is served only when marked genuine ([databases]). */
static int cmd_db_genuine(ctl_t *ctl, int argc, char **argv)
{
	static const char *const answers[] = {"yes", "no", NULL};
	if (argc > 2)
		return ctl_usage(ctl, "unexpected argument \"%s\"", argv[2]);
	int set = argc == 2 ? ctl_parse_choice("answer", argv[1], answers) : -1;
	if (argc == 2 && set < 0)
		return CTL_USAGE;
	if (ctl_db(ctl) == NULL)
		return CTL_FAIL;
	if (set >= 0 &&
	    (pp_db_begin(ctl->db) != 0 ||
	     pp_db_command(ctl->db,
	                   "UPDATE installation SET genuine = $1::boolean, updated_at = now()",
	                   PP_DB_ARGS(set == 0 ? "t" : "f")) != 0 ||
	     pp_audit(ctl->db, pp_audit_operator(), "config_changed", 0, 0, 0, "genuine=%s",
	              answers[set]) != 0 ||
	     pp_db_commit(ctl->db) != 0)) {
		pp_db_rollback(ctl->db);
		return ctl_db_fail(ctl, "mark the database");
	}
	PGresult *r =
	    pp_db_exec(ctl->db, "SELECT current_database(), genuine FROM installation", 0, NULL);
	if (r == NULL || PQntuples(r) != 1) {
		PQclear(r);
		return ctl_db_fail(ctl, "read the mark");
	}
	int genuine = strcmp(PQgetvalue(r, 0, 1), "t") == 0;
	if (ctl->json)
		printf("{\"database\": \"%s\", \"genuine\": %s}\n", PQgetvalue(r, 0, 0),
		       genuine ? "true" : "false");
	else
		printf("database %s is %smarked genuine\n", PQgetvalue(r, 0, 0),
		       genuine ? "" : "not ");
	PQclear(r);
	if (set >= 0)
		ctl_wake(ctl, "watchdog");
	return CTL_OK;
}

const ctl_command_t ctl_db_commands[] = {
    {"db", "migrate", cmd_db_migrate, "", "apply schema migrations (idempotent)"},
    {"db", "version", cmd_db_version, "", "show the schema version"},
    {"db", "genuine", cmd_db_genuine, "[yes|no]",
     "show or set whether this database is a live practice although its name says demo, "
     "training, test, trial or backup (a service serving several databases skips those)"},
    {"key", "generate", cmd_key_generate, "", "create the secret key file named in [paths]"},
    {NULL, NULL, NULL, NULL, NULL},
};
