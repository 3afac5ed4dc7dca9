/*
 * pp_migrate.c - applies common/sql/NNN_*.sql in order. The SQL files are
 * linked into the binary with .incbin, so a deployed binary always carries
 * the schema it was built for. Owns the migration list.
 */
#include "pp_migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pp_log.h"
#include "pp_util.h"

#define PP_INCBIN(sym, file)                                                                       \
	__asm__(".section .rodata\n.global " #sym "\n.type " #sym ", @object\n" #sym               \
	        ":\n.incbin \"" file "\"\n.byte 0\n.previous\n");                                  \
	extern const char sym[]

PP_INCBIN(pp_sql_001, "common/sql/001_schema.sql");
PP_INCBIN(pp_sql_002, "common/sql/002_sender.sql");
PP_INCBIN(pp_sql_003, "common/sql/003_composer.sql");
PP_INCBIN(pp_sql_004, "common/sql/004_automation.sql");
PP_INCBIN(pp_sql_005, "common/sql/005_inbox.sql");
PP_INCBIN(pp_sql_006, "common/sql/006_oauth.sql");
PP_INCBIN(pp_sql_007, "common/sql/007_sms.sql");
PP_INCBIN(pp_sql_008, "common/sql/008_attachments_raw.sql");
PP_INCBIN(pp_sql_009, "common/sql/009_holds.sql");
PP_INCBIN(pp_sql_010, "common/sql/010_locations.sql");
PP_INCBIN(pp_sql_011, "common/sql/011_account_test.sql");
PP_INCBIN(pp_sql_012, "common/sql/012_proxy.sql");
PP_INCBIN(pp_sql_013, "common/sql/013_plan.sql");
PP_INCBIN(pp_sql_014, "common/sql/014_operations.sql");
PP_INCBIN(pp_sql_roles, "common/sql/roles.sql");
PP_INCBIN(pp_sql_015, "common/sql/015_account_enable.sql");
PP_INCBIN(pp_sql_016, "common/sql/016_audit.sql");
PP_INCBIN(pp_sql_017, "common/sql/017_fetch.sql");
PP_INCBIN(pp_sql_018, "common/sql/018_plan_cache.sql");

static const struct {
	int version;
	const char *name;
	const char *sql;
} migrations[] = {
    {1, "001_schema", pp_sql_001},
    {2, "002_sender", pp_sql_002},
    {3, "003_composer", pp_sql_003},
    {4, "004_automation", pp_sql_004},
    {5, "005_inbox", pp_sql_005},
    {6, "006_oauth", pp_sql_006},
    {7, "007_sms", pp_sql_007},
    {8, "008_attachments_raw", pp_sql_008},
    {9, "009_holds", pp_sql_009},
    {10, "010_locations", pp_sql_010},
    {11, "011_account_test", pp_sql_011},
    {12, "012_proxy", pp_sql_012},
    {13, "013_plan", pp_sql_013},
    {14, "014_operations", pp_sql_014},
    {15, "015_account_enable", pp_sql_015},
    {16, "016_audit", pp_sql_016},
    {17, "017_fetch", pp_sql_017},
    {18, "018_plan_cache", pp_sql_018},
};

#define MIGRATION_COUNT ((int)(sizeof(migrations) / sizeof(migrations[0])))
#define MIGRATE_LOCK "7428159"

int pp_migrate_latest(void)
{
	return migrations[MIGRATION_COUNT - 1].version;
}

int pp_migrate_current(pp_db_t *db)
{
	PGresult *res = pp_db_exec(db, "SELECT to_regclass('schema_version') IS NOT NULL", 0, NULL);
	if (res == NULL)
		return -1;
	int exists = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	if (!exists)
		return 0;
	res = pp_db_exec(db, "SELECT coalesce(max(version), 0) FROM schema_version", 0, NULL);
	if (res == NULL)
		return -1;
	int v = (int)pp_db_value_ll(res, 0, 0, 0);
	PQclear(res);
	return v;
}

/* migrate_roles - roles.sql in its own transaction (nothing to migrate). */
static int migrate_roles(pp_db_t *db, char *err, size_t errlen)
{
	if (pp_db_begin(db) != 0 || pp_db_script(db, pp_sql_roles) != 0 || pp_db_commit(db) != 0) {
		snprintf(err, errlen, "database roles and grants (roles.sql) failed: %s",
		         pp_db_error(db));
		pp_db_rollback(db);
		return -1;
	}
	return 0;
}

int pp_migrate_apply(pp_db_t *db, int roles, int *from, int *to, char *err, size_t errlen)
{
	int rc = -1;
	if (pp_db_command(db, "SELECT pg_advisory_lock(" MIGRATE_LOCK ")", 0, NULL) != 0) {
		snprintf(err, errlen, "cannot lock the schema: %s", pp_db_error(db));
		return -1;
	}
	int current = pp_migrate_current(db);
	*from = *to = current;
	if (current < 0) {
		snprintf(err, errlen, "cannot read the schema version: %s", pp_db_error(db));
		goto done;
	}
	if (current > pp_migrate_latest()) {
		snprintf(err, errlen,
		         "the database schema is version %d but this build knows only up to %d; "
		         "refusing to touch it (upgrade PracticePost)",
		         current, pp_migrate_latest());
		goto done;
	}
	for (int i = 0; i < MIGRATION_COUNT; i++) {
		if (i > 0 && migrations[i].version != migrations[i - 1].version + 1)
			fatalx("migration %s is out of order in this build", migrations[i].name);
		if (migrations[i].version <= current)
			continue;
		char v[16];
		snprintf(v, sizeof(v), "%d", migrations[i].version);
		if (pp_db_begin(db) != 0 ||
		    pp_db_command(
		        db,
		        "CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY "
		        "KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT "
		        "now())",
		        0, NULL) != 0 ||
		    pp_db_script(db, migrations[i].sql) != 0 ||
		    pp_db_command(db, "INSERT INTO schema_version (version, name) VALUES ($1, $2)",
		                  PP_DB_ARGS(v, migrations[i].name)) != 0 ||
		    /* the grants come with the last step: never a current schema without them */
		    (roles && i == MIGRATION_COUNT - 1 && pp_db_script(db, pp_sql_roles) != 0) ||
		    pp_db_commit(db) != 0) {
			snprintf(err, errlen, "migration %s%s failed: %s", migrations[i].name,
			         roles && i == MIGRATION_COUNT - 1 ? " (with roles.sql)" : "",
			         pp_db_error(db));
			pp_db_rollback(db);
			goto done;
		}
		log_info("schema migrated to version %d (%s)", migrations[i].version,
		         migrations[i].name);
		*to = migrations[i].version;
	}
	if (roles && *to == current && migrate_roles(db, err, errlen) != 0)
		goto done;
	rc = 0;
done:
	pp_db_command(db, "SELECT pg_advisory_unlock(" MIGRATE_LOCK ")", 0, NULL);
	return rc;
}

int pp_migrate_check(pp_db_t *db, char *err, size_t errlen)
{
	int v = pp_migrate_current(db);
	if (v < 0) {
		snprintf(err, errlen, "cannot read the schema version: %s", pp_db_error(db));
		return -1;
	}
	if (v != pp_migrate_latest()) {
		snprintf(err, errlen,
		         "database schema is version %d, this build needs %d "
		         "(run: practicepost db migrate)",
		         v, pp_migrate_latest());
		return -1;
	}
	return 0;
}
