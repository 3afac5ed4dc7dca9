/*
 * pp_migrate.h - versioned schema migrations embedded in every binary.
 * `practicepost db migrate` applies them; daemons only check the version.
 */
#ifndef PP_MIGRATE_H
#define PP_MIGRATE_H

#include <stddef.h>

#include "pp_db.h"

/* The schema version this build speaks. */
int pp_migrate_latest(void);
/* pp_migrate_current - version in the database (0 if none); -1 on error. */
int pp_migrate_current(pp_db_t *db);
/* pp_migrate_apply - bring the schema up to date, each step in one
 * transaction, under an advisory lock. Refuses a newer schema. With roles,
 * then creates the stage and operator roles where missing and applies this
 * database's grants afresh (common/sql/roles.sql): in the last step's
 * transaction, or alone when the schema was current; idempotent. */
int pp_migrate_apply(pp_db_t *db, int roles, int *from, int *to, char *err, size_t errlen);
/* pp_migrate_check - 0 when the database is at exactly pp_migrate_latest(). */
int pp_migrate_check(pp_db_t *db, char *err, size_t errlen);

#endif
