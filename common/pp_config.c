/*
 * pp_config.c - loads the INI file into a flat list of (section, key, value).
 * Duplicate keys: the last one wins, as in most INI readers.
 */
#include "pp_config.h"

#include <ctype.h>

#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pp_util.h"

typedef struct {
	char *section;
	char *key;
	char *value;
} config_entry_t;

struct pp_config {
	char *path;
	config_entry_t *entries;
	size_t count;
};

static int config_handler(void *user, const char *section, const char *key, const char *value)
{
	pp_config_t *cfg = user;
	cfg->entries = xrealloc(cfg->entries, (cfg->count + 1) * sizeof(*cfg->entries));
	config_entry_t *e = &cfg->entries[cfg->count++];
	e->section = xstrdup(section);
	e->key = xstrdup(key);
	e->value = xstrdup(value);
	return 1;
}

static pp_config_t *config_finish(pp_config_t *cfg, int rc, const char *what, char *err,
                                  size_t errlen)
{
	if (rc == 0)
		return cfg;
	if (rc < 0)
		snprintf(err, errlen, "%s: cannot open config file", what);
	else
		snprintf(err, errlen, "%s: syntax error on line %d", what, rc);
	pp_config_free(&cfg);
	return NULL;
}

/* config_add - one more entry (the last one of a key wins). */
static void config_add(pp_config_t *cfg, const char *section, const char *key, const char *value)
{
	config_handler(cfg, section, key, value);
}

int pp_config_database_name_ok(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > 63)
		return 0;
	for (const char *p = name; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-' && *p != '.')
			return 0;
	return 1;
}

/* config_database_index - the database's place among those served,
 * from 0: its position in [databases] list, else PP_DATABASE_INDEX (set
 * by the supervising watchdog for discovered databases); -1 unknown. */
static int64_t config_database_index(const pp_config_t *cfg, const char *name)
{
	const char *list = pp_config_get(cfg, "databases", "list", NULL);
	const char *env = getenv("PP_DATABASE_INDEX");
	int64_t index = -1;
	if (list != NULL && *list) {
		char *copy = xstrdup(list), *save = NULL;
		int64_t i = 0;
		for (char *t = strtok_r(copy, ", \t", &save); t != NULL && index < 0;
		     t = strtok_r(NULL, ", \t", &save), i++)
			if (strcmp(t, name) == 0)
				index = i;
		free(copy);
	} else if (env == NULL || pp_parse_int64(env, &index) != 0 || index > 65535) {
		index = -1;
	}
	return index;
}

/* config_database_port - a listening port of the shared [section]: base
 * + index for database number index (0, the first, gets the base); off
 * (0) when the base is 0 or the index unknown. A bad base is passed on for
 * the daemon to report. */
static void config_database_port(pp_config_t *cfg, const char *section, const char *key,
                                 int64_t index)
{
	const char *v = pp_config_get(cfg, section, key, "0");
	int64_t base;
	if (pp_parse_int64(v, &base) != 0) {
		config_add(cfg, section, key, v);
		return;
	}
	char port[32];
	snprintf(port, sizeof(port), "%lld",
	         base > 0 && index >= 0 ? (long long)(base + index) : 0LL);
	config_add(cfg, section, key, port);
}

/* config_for_database - the view one practice database's processes get
 * (PP_DATABASE): its dbname in the conninfo, a run directory of its own
 * (so the default ipc endpoints and the lock are its own), the metrics
 * and SMS callback ports of [watchdog] and [sms] plus the database's
 * index (config_database_port; the callback_url only for the first), and
 * every "[section@NAME]" entry applied over "[section]". */
static int config_for_database(pp_config_t *cfg, const char *name, char *err, size_t errlen)
{
	if (!pp_config_database_name_ok(name)) {
		snprintf(err, errlen,
		         "PP_DATABASE=%s: not a database name (letters, digits, _ - .)", name);
		return -1;
	}
	const char *conninfo = pp_config_get(cfg, "database", "conninfo", "");
	char *v = xasprintf("%s dbname='%s'", conninfo, name);
	config_add(cfg, "database", "conninfo", v);
	free(v);
	v = xasprintf("%s/db-%s", pp_config_get(cfg, "paths", "run_dir", "/run/practicepost"),
	              name);
	config_add(cfg, "paths", "run_dir", v);
	free(v);
	config_add(cfg, "watchdog", "control", "");
	config_add(cfg, "watchdog", "events", "");
	int64_t index = config_database_index(cfg, name);
	config_database_port(cfg, "watchdog", "metrics_port", index);
	config_database_port(cfg, "sms", "callback_port", index);
	if (index != 0) /* the shared URL leads to the first database's endpoint */
		config_add(cfg, "sms", "callback_url", "");
	size_t count = cfg->count;
	for (size_t i = 0; i < count; i++) {
		const char *at = strchr(cfg->entries[i].section, '@');
		if (at == NULL || strcmp(at + 1, name) != 0)
			continue;
		char *section =
		    xstrndup(cfg->entries[i].section, (size_t)(at - cfg->entries[i].section));
		char *key = xstrdup(cfg->entries[i].key), *value = xstrdup(cfg->entries[i].value);
		config_add(cfg, section, key, value);
		free(section);
		free(key);
		free(value);
	}
	return 0;
}

static pp_config_roles_t config_roles = PP_CONFIG_ROLES_AUTO;

pp_config_roles_t pp_config_database_roles(void)
{
	return config_roles;
}

/* config_read_roles - check [database] roles and record it (see pp_config.h). */
static int config_read_roles(const pp_config_t *cfg, char *err, size_t errlen)
{
	const char *v = pp_config_get(cfg, "database", "roles", NULL);
	int on = v == NULL || strcasecmp(v, "auto") == 0
	             ? -1
	             : pp_config_get_bool(cfg, "database", "roles", 2);
	if (on == 2) {
		snprintf(err, errlen, "%s: [database] roles = \"%s\" is not on, off or auto",
		         cfg->path, v);
		return -1;
	}
	config_roles = on < 0 ? PP_CONFIG_ROLES_AUTO
	               : on   ? PP_CONFIG_ROLES_ON
	                      : PP_CONFIG_ROLES_OFF;
	return 0;
}

pp_config_t *pp_config_load(const char *path, char *err, size_t errlen)
{
	pp_config_t *cfg = xcalloc(1, sizeof(*cfg));
	cfg->path = xstrdup(path);
	cfg = config_finish(cfg, ini_parse(path, config_handler, cfg), path, err, errlen);
	const char *db = getenv("PP_DATABASE");
	if (cfg != NULL && db != NULL && *db && config_for_database(cfg, db, err, errlen) != 0)
		pp_config_free(&cfg);
	if (cfg != NULL && config_read_roles(cfg, err, errlen) != 0)
		pp_config_free(&cfg);
	return cfg;
}

pp_config_t *pp_config_from_string(const char *text, char *err, size_t errlen)
{
	pp_config_t *cfg = xcalloc(1, sizeof(*cfg));
	cfg->path = xstrdup("(string)");
	return config_finish(cfg, ini_parse_string(text, config_handler, cfg), "(string)", err,
	                     errlen);
}

void pp_config_free(pp_config_t **cfgp)
{
	pp_config_t *cfg = *cfgp;
	if (cfg == NULL)
		return;
	for (size_t i = 0; i < cfg->count; i++) {
		free(cfg->entries[i].section);
		free(cfg->entries[i].key);
		free(cfg->entries[i].value);
	}
	free(cfg->entries);
	free(cfg->path);
	free(cfg);
	*cfgp = NULL;
}

const char *pp_config_path(const pp_config_t *cfg)
{
	return cfg->path;
}

const char *pp_config_get(const pp_config_t *cfg, const char *section, const char *key,
                          const char *def)
{
	for (size_t i = cfg->count; i > 0; i--) {
		const config_entry_t *e = &cfg->entries[i - 1];
		if (strcasecmp(e->section, section) == 0 && strcasecmp(e->key, key) == 0)
			return e->value;
	}
	return def;
}

int pp_config_get_int(const pp_config_t *cfg, const char *section, const char *key, int64_t def,
                      int64_t min, int64_t max, int64_t *out, char *err, size_t errlen)
{
	const char *v = pp_config_get(cfg, section, key, NULL);
	int64_t n;
	if (v == NULL) {
		*out = def;
		return 0;
	}
	if (pp_parse_int64(v, &n) != 0 || n < min || n > max) {
		snprintf(err, errlen, "%s: [%s] %s = \"%s\" is not an integer from %lld to %lld",
		         cfg->path, section, key, v, (long long)min, (long long)max);
		return -1;
	}
	*out = n;
	return 0;
}

int pp_config_get_bool(const pp_config_t *cfg, const char *section, const char *key, int def)
{
	const char *v = pp_config_get(cfg, section, key, NULL);
	if (v == NULL)
		return def;
	if (!strcasecmp(v, "yes") || !strcasecmp(v, "true") || !strcasecmp(v, "on") ||
	    !strcmp(v, "1"))
		return 1;
	if (!strcasecmp(v, "no") || !strcasecmp(v, "false") || !strcasecmp(v, "off") ||
	    !strcmp(v, "0"))
		return 0;
	return def;
}

const char *pp_config_default_path(void)
{
	const char *env = getenv("PRACTICEPOST_CONFIG");
	return env && *env ? env : "/etc/practicepost/practicepost.conf";
}

void pp_config_endpoint(const pp_config_t *cfg, const char *which, char *buf, size_t len)
{
	const char *ep = pp_config_get(cfg, "watchdog", which, NULL);
	if (ep != NULL && *ep)
		snprintf(buf, len, "%s", ep);
	else
		snprintf(buf, len, "ipc://%s/%s.sock",
		         pp_config_get(cfg, "paths", "run_dir", "/run/practicepost"), which);
}
