/*
 * pp_config.h - the INI configuration file every daemon and the CLI read
 * (parsed with inih). A pp_config_t owns all its strings; values returned by
 * the getters are borrowed and live until pp_config_free().
 */
#ifndef PP_CONFIG_H
#define PP_CONFIG_H

#include <stddef.h>
#include <stdint.h>

typedef struct pp_config pp_config_t;

/* pp_config_load - parse path; on error returns NULL and fills err. With
 * PP_DATABASE=NAME in the environment the result is that practice
 * database's view: conninfo with dbname=NAME, run_dir/db-NAME (its own
 * default endpoints and lock), [watchdog] metrics_port and [sms]
 * callback_port plus the database's place among those served (the first
 * keeps them; 0 stays off; the shared callback_url only for the first),
 * then every [section@NAME] entry over [section]. */
pp_config_t *pp_config_load(const char *path, char *err, size_t errlen);
/* pp_config_from_string - the same from text (for tests). */
pp_config_t *pp_config_from_string(const char *text, char *err, size_t errlen);
void pp_config_free(pp_config_t **cfg);

const char *pp_config_path(const pp_config_t *cfg);
/* pp_config_database_name_ok - a name PP_DATABASE accepts. */
int pp_config_database_name_ok(const char *name);
const char *pp_config_get(const pp_config_t *cfg, const char *section, const char *key,
                          const char *def);
/* pp_config_get_int - def if absent; -1 with err filled if not an integer in [min,max]. */
int pp_config_get_int(const pp_config_t *cfg, const char *section, const char *key, int64_t def,
                      int64_t min, int64_t max, int64_t *out, char *err, size_t errlen);
int pp_config_get_bool(const pp_config_t *cfg, const char *section, const char *key, int def);

/* pp_config_endpoint - the ZeroMQ endpoint [watchdog] <which> ("control" or
 * "events"), defaulting to ipc://<[paths] run_dir>/<which>.sock. */
void pp_config_endpoint(const pp_config_t *cfg, const char *which, char *buf, size_t len);

/* [database] roles: whether this process's connections take its stage's
 * PostgreSQL role (pp_db.c). PP_CONFIG_ROLES_AUTO (the key absent or
 * "auto"): take it where `practicepost db migrate` set the roles up, else
 * keep the login's own rights with a warning; ON: a connection that cannot
 * take it fails; OFF: the login's own rights (and `db migrate` leaves the
 * roles alone). pp_config_load checks the value and records it for the
 * whole process: the last file loaded decides. */
typedef enum { PP_CONFIG_ROLES_AUTO, PP_CONFIG_ROLES_ON, PP_CONFIG_ROLES_OFF } pp_config_roles_t;
pp_config_roles_t pp_config_database_roles(void);

/* pp_config_default_path - $PRACTICEPOST_CONFIG or /etc/practicepost/practicepost.conf */
const char *pp_config_default_path(void);

#endif
