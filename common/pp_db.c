/*
 * pp_db.c - one PGconn per pp_db_t with lazy connect and reconnect.
 * Owns the connection, the last error text and SQLSTATE, and the
 * PostgreSQL role each new session takes (SET ROLE, common/sql/roles.sql).
 */
#include "pp_db.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pp_config.h"
#include "pp_log.h"
#include "pp_util.h"

struct pp_db {
	char *conninfo;
	char *appname;
	PGconn *conn;
	int in_tx;
	int down_logged;
	char error[512];
	char sqlstate[6];
	char constraint[128];
	int quiet;
	/* statements prepared on this connection, by the caller's SQL pointer */
	const char *prepared[PP_DB_PREPARED_MAX];
	int nprepared;
	int outstanding;   /* pipelined statements whose results are not taken yet */
	const char *role;  /* taken by each new session; NULL: the login's own */
	int async_commit;  /* each new session: SET synchronous_commit = off */
	int generic_plans; /* each new session: SET plan_cache_mode = force_generic_plan */
};

/* Each program's role, by the name it logs under (log_init). */
static const struct {
	const char *progname;
	const char *role;
} db_roles[] = {
    {"practicepost", "pp_operator"},        {"practicepost-composer", "pp_composer"},
    {"practicepost-sender", "pp_sender"},   {"practicepost-sms", "pp_sms"},
    {"practicepost-fetcher", "pp_fetcher"}, {"practicepost-watchdog", "pp_watchdog"},
};
static const char *db_process_role;
static int db_process_role_set;

/* db_default_role - the role new connections of this process take. */
static const char *db_default_role(void)
{
	if (db_process_role_set)
		return db_process_role;
	const char *name = log_progname();
	for (size_t i = 0; name != NULL && i < sizeof(db_roles) / sizeof(db_roles[0]); i++)
		if (strcmp(name, db_roles[i].progname) == 0)
			return db_roles[i].role;
	return NULL;
}

void pp_db_use_role(const char *role)
{
	db_process_role = role;
	db_process_role_set = 1;
}

pp_db_t *pp_db_new(const char *conninfo, const char *application_name)
{
	pp_db_t *db = xcalloc(1, sizeof(*db));
	db->conninfo = xstrdup(conninfo);
	db->appname = xstrdup(application_name ? application_name : "practicepost");
	db->role = db_default_role();
	return db;
}

void pp_db_free(pp_db_t **dbp)
{
	pp_db_t *db = *dbp;
	if (db == NULL)
		return;
	if (db->conn)
		PQfinish(db->conn);
	free(db->conninfo);
	free(db->appname);
	free(db);
	*dbp = NULL;
}

static void db_set_error(pp_db_t *db, const char *msg, const char *state)
{
	pp_strlcpy(db->error, msg ? msg : "unknown database error", sizeof(db->error));
	size_t n = strlen(db->error);
	while (n > 0 && (db->error[n - 1] == '\n' || db->error[n - 1] == ' '))
		db->error[--n] = '\0';
	pp_strlcpy(db->sqlstate, state ? state : "", sizeof(db->sqlstate));
	db->constraint[0] = '\0';
}

/* db_set_result_error - keep only the primary message: DETAIL lines can
 * quote row data (a patient's address, a message body) into logs. */
static void db_set_result_error(pp_db_t *db, const PGresult *res)
{
	const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	const char *constraint = res ? PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME) : NULL;
	db_set_error(db, primary ? primary : PQerrorMessage(db->conn),
	             res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL);
	pp_strlcpy(db->constraint, constraint ? constraint : "", sizeof(db->constraint));
}

/* The role is taken when it exists, the login may take it and this
 * database's grants name it; a database without the PracticePost schema
 * (a server's maintenance database) has none to take. */
static const char db_role_sql[] =
    "SELECT w.why, CASE WHEN w.why IS NULL THEN set_config('role', $1, false) END FROM "
    "(SELECT CASE WHEN to_regclass('public.schema_version') IS NULL THEN 'none' "
    "WHEN to_regrole($1) IS NULL THEN 'the role does not exist' "
    "WHEN NOT pg_has_role(current_user, $1::name, 'MEMBER') THEN 'the login ' || "
    "current_user || ' is not a member of it' "
    "WHEN NOT has_table_privilege($1::name, 'public.schema_version', 'SELECT') THEN "
    "'this database has no grants for it' END AS why) w";

/* db_take_role - SET ROLE for a new session ([database] roles); -1 with
 * the error set when it must and cannot. */
static int db_take_role(pp_db_t *db)
{
	static atomic_int warned; /* once per process, whichever thread */
	pp_config_roles_t mode = pp_config_database_roles();
	if (db->role == NULL || mode == PP_CONFIG_ROLES_OFF)
		return 0;
	const char *params[] = {db->role};
	PGresult *res = PQexecParams(db->conn, db_role_sql, 1, NULL, params, NULL, NULL, 0);
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
		db_set_result_error(db, res);
		PQclear(res);
		return -1;
	}
	const char *why = pp_db_value(res, 0, 0);
	int rc = 0;
	if (why == NULL || strcmp(why, "none") == 0) {
		/* taken, or nothing to take */
	} else if (mode == PP_CONFIG_ROLES_ON) {
		char text[256];
		snprintf(text, sizeof(text),
		         "cannot take the database role %s: %s (run: practicepost db migrate, or "
		         "set [database] roles = off)",
		         db->role, why);
		db_set_error(db, text, "42501");
		rc = -1;
	} else if (atomic_exchange(&warned, 1) == 0) {
		log_warnx("database role %s not taken: %s; running with the login's own rights "
		          "(run: practicepost db migrate, or set [database] roles = off)",
		          db->role, why);
	}
	PQclear(res);
	return rc;
}

static void db_lost(pp_db_t *db);

/* db_set_session - the settings a session was asked for
 * (pp_db_set_async_commit, pp_db_set_generic_plans); -1 with the error
 * set. */
static int db_set_session(pp_db_t *db)
{
	char sql[160];
	if (!db->async_commit && !db->generic_plans)
		return 0;
	snprintf(sql, sizeof(sql), "%s%s", db->async_commit ? "SET synchronous_commit = off;" : "",
	         db->generic_plans ? "SET plan_cache_mode = force_generic_plan;" : "");
	PGresult *res = PQexec(db->conn, sql);
	int rc = res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : -1;
	if (rc != 0)
		db_set_result_error(db, res);
	PQclear(res);
	return rc;
}

/* db_session_changed - apply the settings now when connected. */
static void db_session_changed(pp_db_t *db)
{
	if (pp_db_is_up(db) && db_set_session(db) != 0)
		db_lost(db); /* the next use connects again, and sets them */
}

void pp_db_set_async_commit(pp_db_t *db)
{
	db->async_commit = 1;
	db_session_changed(db);
}

void pp_db_set_generic_plans(pp_db_t *db)
{
	db->generic_plans = 1;
	db_session_changed(db);
}

int pp_db_connect(pp_db_t *db)
{
	if (db->conn && PQstatus(db->conn) == CONNECTION_OK)
		return 0;
	if (db->conn) {
		PQfinish(db->conn);
		db->conn = NULL;
	}
	const char *keys[] = {"dbname", "application_name", "connect_timeout", NULL};
	const char *vals[] = {db->conninfo, db->appname, "5", NULL};
	db->conn = PQconnectdbParams(keys, vals, 1);
	db->in_tx = 0;
	db->nprepared = 0; /* a new session knows no prepared statements */
	if (PQstatus(db->conn) != CONNECTION_OK || db_take_role(db) != 0 ||
	    db_set_session(db) != 0) {
		if (PQstatus(db->conn) != CONNECTION_OK)
			db_set_error(db, PQerrorMessage(db->conn), "08006");
		if (!db->down_logged && !db->quiet)
			log_warnx("database unavailable: %s", db->error);
		db->down_logged = 1;
		PQfinish(db->conn);
		db->conn = NULL;
		return -1;
	}
	if (db->down_logged)
		log_info("database connection restored");
	db->down_logged = 0;
	PQsetNoticeProcessor(db->conn, NULL, NULL);
	return 0;
}

int pp_db_is_up(const pp_db_t *db)
{
	return db->conn && PQstatus(db->conn) == CONNECTION_OK;
}

/* db_prepared - the name of sql prepared on this connection, preparing
 * it on first use; NULL when the table is full or preparing failed (the
 * statement then runs unprepared). */
static const char *db_prepared(pp_db_t *db, const char *sql, int nparams, char *name, size_t len)
{
	int i;
	for (i = 0; i < db->nprepared; i++)
		if (db->prepared[i] == sql)
			break;
	snprintf(name, len, "pp%d", i);
	if (i < db->nprepared)
		return name;
	if (i == PP_DB_PREPARED_MAX)
		return NULL;
	PGresult *res = PQprepare(db->conn, name, sql, nparams, NULL);
	int ok = res && PQresultStatus(res) == PGRES_COMMAND_OK;
	PQclear(res);
	if (!ok)
		return NULL;
	db->prepared[db->nprepared++] = sql;
	return name;
}

/* db_lost - the connection broke: forget it (the next call reconnects). */
static void db_lost(pp_db_t *db)
{
	log_warnx("database connection lost: %s", db->error);
	pp_strlcpy(db->sqlstate, "08006", sizeof(db->sqlstate));
	PQfinish(db->conn);
	db->conn = NULL;
	db->in_tx = 0;
	db->outstanding = 0; /* their results are gone with the connection */
}

static PGresult *db_exec(pp_db_t *db, const char *sql, int nparams, const char *const *params,
                         int prepare)
{
	char name[16];
	if (db->outstanding)
		fatalx("a statement was run while a pipelined result was outstanding");
	for (int attempt = 0; attempt < 2; attempt++) {
		if (pp_db_connect(db) != 0)
			return NULL;
		const char *stmt =
		    prepare ? db_prepared(db, sql, nparams, name, sizeof(name)) : NULL;
		PGresult *res =
		    stmt ? PQexecPrepared(db->conn, stmt, nparams, params, NULL, NULL, 0)
		         : PQexecParams(db->conn, sql, nparams, NULL, params, NULL, NULL, 0);
		ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
		if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
			return res;
		db_set_result_error(db, res);
		PQclear(res);
		if (PQstatus(db->conn) == CONNECTION_OK)
			return NULL;
		/* The server went away (restart, failover): reconnect, unless
		 * a transaction was open (its work is lost: the caller says). */
		int in_tx = db->in_tx;
		db_lost(db);
		if (in_tx)
			return NULL;
	}
	return NULL;
}

int pp_db_send_prepared(pp_db_t *db, const char *sql, int nparams, const char *const *params)
{
	char name[16];
	if (db->outstanding == 0 && pp_db_connect(db) != 0)
		return -1;
	if (db->conn == NULL) /* lost while results were outstanding */
		return -1;
	/* in pipeline mode a statement is prepared before its first use only
	 * when nothing is outstanding (PQprepare waits for its answer) */
	int known = 0;
	for (int i = 0; i < db->nprepared; i++)
		known |= db->prepared[i] == sql;
	const char *stmt = known || db->outstanding == 0
	                       ? db_prepared(db, sql, nparams, name, sizeof(name))
	                       : NULL;
	if (stmt == NULL) {
		db_set_error(db,
		             db->outstanding ? "a statement was sent unprepared behind others"
		                             : PQerrorMessage(db->conn),
		             "26000");
		return -1;
	}
	if ((db->outstanding == 0 && PQenterPipelineMode(db->conn) != 1) ||
	    PQsendQueryPrepared(db->conn, stmt, nparams, params, NULL, NULL, 0) != 1 ||
	    PQpipelineSync(db->conn) != 1) {
		db_set_error(db, PQerrorMessage(db->conn), "08006");
		db_lost(db);
		return -1;
	}
	db->outstanding++;
	return 0;
}

PGresult *pp_db_result(pp_db_t *db)
{
	if (!db->outstanding && db->conn != NULL)
		fatalx("pp_db_result: no statement was sent");
	if (db->conn == NULL)
		return NULL; /* lost while results were outstanding: error set */
	db->outstanding--;
	PGresult *res = PQgetResult(db->conn), *r;
	ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		db_set_result_error(db, res);
		PQclear(res);
		res = NULL;
	}
	/* the rest up to the sync point: a NULL ends the statement's results,
	 * then the sync's own; two NULLs in a row mean the line is gone */
	for (int nulls = 0; nulls < 2;) {
		r = PQgetResult(db->conn);
		if (r == NULL) {
			nulls++;
			continue;
		}
		nulls = 0;
		st = PQresultStatus(r);
		PQclear(r);
		if (st == PGRES_PIPELINE_SYNC)
			break;
	}
	if ((db->outstanding == 0 && PQexitPipelineMode(db->conn) != 1) ||
	    PQstatus(db->conn) != CONNECTION_OK) {
		if (res != NULL)
			db_set_error(db, PQerrorMessage(db->conn), "08006");
		PQclear(res);
		db_lost(db);
		return NULL;
	}
	return res;
}

int pp_db_outstanding(const pp_db_t *db)
{
	return db->outstanding;
}

PGresult *pp_db_exec(pp_db_t *db, const char *sql, int nparams, const char *const *params)
{
	return db_exec(db, sql, nparams, params, 0);
}

PGresult *pp_db_exec_prepared(pp_db_t *db, const char *sql, int nparams, const char *const *params)
{
	return db_exec(db, sql, nparams, params, 1);
}

int pp_db_command_prepared(pp_db_t *db, const char *sql, int nparams, const char *const *params)
{
	PGresult *res = pp_db_exec_prepared(db, sql, nparams, params);
	if (res == NULL)
		return -1;
	PQclear(res);
	return 0;
}

int pp_db_command(pp_db_t *db, const char *sql, int nparams, const char *const *params)
{
	PGresult *res = pp_db_exec(db, sql, nparams, params);
	if (res == NULL)
		return -1;
	PQclear(res);
	return 0;
}

int pp_db_script(pp_db_t *db, const char *sql)
{
	if (pp_db_connect(db) != 0)
		return -1;
	PGresult *res = PQexec(db->conn, sql);
	ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
		PQclear(res);
		return 0;
	}
	db_set_result_error(db, res);
	PQclear(res);
	return -1;
}

int pp_db_begin(pp_db_t *db)
{
	if (pp_db_command(db, "BEGIN", 0, NULL) != 0)
		return -1;
	db->in_tx = 1;
	return 0;
}

int pp_db_commit(pp_db_t *db)
{
	int rc = pp_db_command(db, "COMMIT", 0, NULL);
	db->in_tx = 0;
	return rc;
}

void pp_db_rollback(pp_db_t *db)
{
	while (db->outstanding)
		PQclear(pp_db_result(db)); /* dropped with the transaction */
	if (db->conn && PQstatus(db->conn) == CONNECTION_OK) {
		PGresult *res = PQexec(db->conn, "ROLLBACK");
		PQclear(res);
	}
	db->in_tx = 0;
}

const char *pp_db_error(const pp_db_t *db)
{
	return db->error;
}

int pp_db_error_is_data(const pp_db_t *db)
{
	return strncmp(db->sqlstate, "22", 2) == 0 || strncmp(db->sqlstate, "23", 2) == 0;
}

const char *pp_db_constraint(const pp_db_t *db)
{
	return db->constraint;
}

void pp_db_set_quiet(pp_db_t *db, int quiet)
{
	db->quiet = quiet;
}

const char *pp_db_sqlstate(const pp_db_t *db)
{
	return db->sqlstate;
}

PGconn *pp_db_conn(pp_db_t *db)
{
	return db->conn;
}

const char *pp_db_value(const PGresult *res, int row, int col)
{
	if (row >= PQntuples(res) || col >= PQnfields(res) || PQgetisnull(res, row, col))
		return NULL;
	return PQgetvalue(res, row, col);
}

long long pp_db_value_ll(const PGresult *res, int row, int col, long long def)
{
	const char *v = pp_db_value(res, row, col);
	return v ? strtoll(v, NULL, 10) : def;
}
