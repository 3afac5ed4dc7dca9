/*
 * pp_databases.h - which practice databases one service serves (see
 * pp_databases.c). [databases] discover = yes | list = a, b;
 * maintenance_db (default postgres) is where the server's databases are
 * listed. The [database] conninfo must be in key=value form: the dbname of
 * each database is appended to it.
 */
#ifndef PP_DATABASES_H
#define PP_DATABASES_H

#include <stddef.h>

#include "pp_config.h"

typedef struct {
	char **names; /* served, in name order */
	size_t count;
	char **skipped; /* practice databases left out, and why */
	char **why;
	size_t nskipped;
} pp_databases_t;

/* pp_databases_configured - [databases] asks for several databases. */
int pp_databases_configured(const pp_config_t *cfg);
/* pp_databases_find - the databases to serve now; -1 with err when the
 * server cannot be asked (nothing filled). Free with pp_databases_free. */
int pp_databases_find(const pp_config_t *cfg, pp_databases_t *dbs, char *err, size_t errlen);
void pp_databases_free(pp_databases_t *dbs);
/* pp_databases_skip_word - the word that marks a name as not a live
 * practice (demo, training, test, trial, backup), or NULL. */
const char *pp_databases_skip_word(const char *name);

#endif
