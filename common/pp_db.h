/*
 * pp_db.h - PostgreSQL access for every process. Parameterised statements
 * only. A lost connection is re-established on the next call; a statement
 * outside a transaction is retried once after a reconnect, one inside a
 * transaction fails so the caller can roll back and start again.
 * Results returned are owned by the caller (PQclear).
 */
#ifndef PP_DB_H
#define PP_DB_H

#include <libpq-fe.h>

typedef struct pp_db pp_db_t;

/* PP_DB_ARGS(a, b, ...) expands to "count, array" for pp_db_exec. */
#define PP_DB_ARGS(...)                                                                            \
	(int)(sizeof((const char *[]){__VA_ARGS__}) / sizeof(const char *)), (const char *const[]) \
	{                                                                                          \
		__VA_ARGS__                                                                        \
	}

/* pp_db_new - remember conninfo; the connection is made lazily. */
pp_db_t *pp_db_new(const char *conninfo, const char *application_name);
void pp_db_free(pp_db_t **db);

/* Roles (common/sql/roles.sql): each new session of a program takes its
 * PostgreSQL role with SET ROLE as [database] roles says (pp_config.h):
 * practicepost-<stage> takes pp_<stage>, the CLI pp_operator, any other
 * program (tests, tools) none. pp_db_use_role overrides that for the
 * connections the process makes from then on (NULL: the login's own rights,
 * for `db migrate`); role must outlive its use. */
void pp_db_use_role(const char *role);

/* pp_db_connect - make sure a connection is up; -1 (logged once per outage). */
int pp_db_connect(pp_db_t *db);
int pp_db_is_up(const pp_db_t *db);

/* pp_db_exec - NULL on failure (logged, see pp_db_error / pp_db_sqlstate). */
PGresult *pp_db_exec(pp_db_t *db, const char *sql, int nparams, const char *const *params);
/* pp_db_exec_prepared - as pp_db_exec, for a statement run many times:
 * prepared once per connection (parsed and planned once). sql must be a
 * string that lives as long as the program (a literal or a static array):
 * its address names it. At most PP_DB_PREPARED_MAX such statements per
 * connection; past that they run unprepared. */
#define PP_DB_PREPARED_MAX 32
PGresult *pp_db_exec_prepared(pp_db_t *db, const char *sql, int nparams, const char *const *params);
int pp_db_command_prepared(pp_db_t *db, const char *sql, int nparams, const char *const *params);
/* Pipelining: pp_db_send_prepared sends a prepared statement (as
 * pp_db_exec_prepared) and returns without waiting, also while earlier
 * ones are outstanding (a statement not yet prepared on the connection is
 * then refused); pp_db_result waits for the oldest one's result (NULL on
 * failure, as pp_db_exec; after a failure the later ones of an open
 * transaction fail too). Until every result is taken no other statement
 * may run on db (that aborts the program: a caller's bug);
 * pp_db_rollback drops them. 0 / -1 (not sent; the connection is gone). */
int pp_db_send_prepared(pp_db_t *db, const char *sql, int nparams, const char *const *params);
PGresult *pp_db_result(pp_db_t *db);
int pp_db_outstanding(const pp_db_t *db);
/* pp_db_command - run a statement, discard the result; 0 / -1. */
int pp_db_command(pp_db_t *db, const char *sql, int nparams, const char *const *params);

/* pp_db_script - run trusted multi-statement SQL (migrations only). */
int pp_db_script(pp_db_t *db, const char *sql);

int pp_db_begin(pp_db_t *db);
int pp_db_commit(pp_db_t *db);
void pp_db_rollback(pp_db_t *db);

const char *pp_db_error(const pp_db_t *db);
const char *pp_db_sqlstate(const pp_db_t *db);
/* pp_db_error_is_data - the last error is about the data (SQLSTATE class 22
 * data exception or 23 integrity violation): a retry would fail the same. */
int pp_db_error_is_data(const pp_db_t *db);
/* pp_db_constraint - name of the constraint the last error violated, or "". */
const char *pp_db_constraint(const pp_db_t *db);
/* pp_db_set_async_commit - this connection's commits (now and after every
 * reconnect) return without waiting for the WAL flush: for status and
 * outcome records where a PostgreSQL crash may lose the last ones (and so
 * repeat, never lose, work), never for what must survive it. */
void pp_db_set_async_commit(pp_db_t *db);
/* pp_db_set_generic_plans - this connection's prepared statements (now and
 * after every reconnect) always run their generic plan: for a connection
 * whose statements find rows by the ids they are given, where planning
 * each call anew would cost more than running it. */
void pp_db_set_generic_plans(pp_db_t *db);
/* pp_db_set_quiet - do not log outages (tools that print their own errors). */
void pp_db_set_quiet(pp_db_t *db, int quiet);
PGconn *pp_db_conn(pp_db_t *db);

/* pp_db_value - borrowed text of row/col, NULL for SQL NULL. */
const char *pp_db_value(const PGresult *res, int row, int col);
long long pp_db_value_ll(const PGresult *res, int row, int col, long long def);

#endif
