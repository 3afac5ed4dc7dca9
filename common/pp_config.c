/*
 * pp_config.c - loads the INI file into a flat list of (section, key, value).
 * Duplicate keys: the last one wins, as in most INI readers.
 */
#include "pp_config.h"

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

pp_config_t *pp_config_load(const char *path, char *err, size_t errlen)
{
	pp_config_t *cfg = xcalloc(1, sizeof(*cfg));
	cfg->path = xstrdup(path);
	return config_finish(cfg, ini_parse(path, config_handler, cfg), path, err, errlen);
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
