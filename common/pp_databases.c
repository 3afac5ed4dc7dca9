/*
 * pp_databases.c - which practice databases one service serves
 * ([databases] in the config): the databases named in `list`, or with
 * `discover = yes` every database on the server that holds a PracticePost
 * schema, less those whose name contains demo, training, test, trial or
 * backup unless the database is marked genuine (installation.genuine,
 * `practicepost db genuine yes`). Used by the watchdog that supervises one
 * watchdog per database and by the CLI's status.
 */
#include "pp_databases.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pp_db.h"
#include "pp_util.h"

static const char *const skip_words[] = {"demo", "training", "test", "trial", "backup", NULL};

int pp_databases_configured(const pp_config_t *cfg)
{
	const char *list = pp_config_get(cfg, "databases", "list", NULL);
	return pp_config_get_bool(cfg, "databases", "discover", 0) || (list != NULL && *list);
}

const char *pp_databases_skip_word(const char *name)
{
	for (int i = 0; skip_words[i] != NULL; i++)
		if (strcasestr(name, skip_words[i]) != NULL)
			return skip_words[i];
	return NULL;
}

void pp_databases_free(pp_databases_t *dbs)
{
	for (size_t i = 0; i < dbs->count; i++)
		free(dbs->names[i]);
	for (size_t i = 0; i < dbs->nskipped; i++) {
		free(dbs->skipped[i]);
		free(dbs->why[i]);
	}
	free(dbs->names);
	free(dbs->skipped);
	free(dbs->why);
	memset(dbs, 0, sizeof(*dbs));
}

static void databases_add(pp_databases_t *dbs, const char *name)
{
	dbs->names = xrealloc(dbs->names, (dbs->count + 1) * sizeof(*dbs->names));
	dbs->names[dbs->count++] = xstrdup(name);
}

static void databases_skip(pp_databases_t *dbs, const char *name, const char *why)
{
	dbs->skipped = xrealloc(dbs->skipped, (dbs->nskipped + 1) * sizeof(*dbs->skipped));
	dbs->why = xrealloc(dbs->why, (dbs->nskipped + 1) * sizeof(*dbs->why));
	dbs->skipped[dbs->nskipped] = xstrdup(name);
	dbs->why[dbs->nskipped++] = xstrdup(why);
}

/* databases_open - a connection to one database of the server (free it). */
static pp_db_t *databases_open(const pp_config_t *cfg, const char *dbname, char *err, size_t errlen)
{
	char *conninfo =
	    xasprintf("%s dbname='%s'", pp_config_get(cfg, "database", "conninfo", ""), dbname);
	pp_db_t *db = pp_db_new(conninfo, "practicepost-discovery");
	free(conninfo);
	if (pp_db_connect(db) != 0) {
		snprintf(err, errlen, "database %s: %s", dbname, pp_db_error(db));
		pp_db_free(&db);
	}
	return db;
}

/* databases_flags - whether dbname holds a PracticePost schema and is
 * marked genuine; -1 with err. */
static int databases_flags(pp_db_t *db, const char *dbname, int *ours, int *genuine, char *err,
                           size_t errlen)
{
	PGresult *res = pp_db_exec(db,
	                           "SELECT to_regclass('public.schema_version') IS NOT NULL, "
	                           "to_regclass('public.installation') IS NOT NULL",
	                           0, NULL);
	if (res == NULL)
		goto fail;
	*ours = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	int marked = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
	PQclear(res);
	*genuine = 0;
	if (!*ours || !marked)
		return 0;
	res = pp_db_exec(db, "SELECT coalesce(bool_or(genuine), false) FROM installation", 0, NULL);
	if (res == NULL)
		goto fail;
	*genuine = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	return 0;
fail:
	snprintf(err, errlen, "database %s: %s", dbname, pp_db_error(db));
	return -1;
}

/* databases_judge - serve a candidate found on the server, or say why not. */
static void databases_judge(const pp_config_t *cfg, pp_databases_t *dbs, const char *name)
{
	char err[512], why[600];
	int ours = 0, genuine = 0;
	pp_db_t *db = databases_open(cfg, name, err, sizeof(err));
	if (db == NULL || databases_flags(db, name, &ours, &genuine, err, sizeof(err)) != 0) {
		databases_skip(dbs, name, err);
		pp_db_free(&db);
		return;
	}
	pp_db_free(&db);
	const char *word = pp_databases_skip_word(name);
	if (!ours)
		return; /* not a practice database: not worth a line */
	if (word != NULL && !genuine) {
		snprintf(
		    why, sizeof(why),
		    "its name says %s (mark it genuine to serve it: practicepost --database %s "
		    "db genuine yes)",
		    word, name);
		databases_skip(dbs, name, why);
		return;
	}
	databases_add(dbs, name);
}

/* databases_list - the configured list, as it is (names checked). */
static int databases_list(const char *list, pp_databases_t *dbs, char *err, size_t errlen)
{
	char *copy = xstrdup(list), *save = NULL;
	for (char *t = strtok_r(copy, ", \t", &save); t != NULL;
	     t = strtok_r(NULL, ", \t", &save)) {
		if (!pp_config_database_name_ok(t)) {
			snprintf(err, errlen, "[databases] list: \"%s\" is not a database name", t);
			free(copy);
			return -1;
		}
		databases_add(dbs, t);
	}
	free(copy);
	return 0;
}

int pp_databases_find(const pp_config_t *cfg, pp_databases_t *dbs, char *err, size_t errlen)
{
	memset(dbs, 0, sizeof(*dbs));
	const char *list = pp_config_get(cfg, "databases", "list", NULL);
	if (list != NULL && *list)
		return databases_list(list, dbs, err, errlen);
	const char *maintenance = pp_config_get(cfg, "databases", "maintenance_db", "postgres");
	pp_db_t *db = databases_open(cfg, maintenance, err, errlen);
	if (db == NULL)
		return -1;
	PGresult *res = pp_db_exec(db,
	                           "SELECT datname FROM pg_database WHERE datallowconn AND NOT "
	                           "datistemplate ORDER BY datname",
	                           0, NULL);
	if (res == NULL)
		snprintf(err, errlen, "database %s: %s", maintenance, pp_db_error(db));
	pp_db_free(&db);
	if (res == NULL)
		return -1;
	for (int r = 0; r < PQntuples(res); r++) {
		const char *name = PQgetvalue(res, r, 0);
		if (pp_config_database_name_ok(name))
			databases_judge(cfg, dbs, name);
	}
	PQclear(res);
	return 0;
}
