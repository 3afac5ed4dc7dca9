/*
 * pp_proxy_cache.c - the proxy settings as a stage keeps them between
 * connections: read from proxy_settings at most once a minute (or after
 * SIGHUP), with a generation number that changes when they do, so kept
 * connections are closed and made again through the new settings. Owns
 * the loaded settings (the password is wiped when they are replaced).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pp_log.h"
#include "pp_proxy.h"
#include "pp_util.h"

struct pp_proxy_cache {
	pp_proxy_t *proxy; /* NULL: none set */
	char *stamp;       /* updated_at of what is loaded; NULL: none */
	char error[400];   /* set but unusable; "" when usable */
	int loaded;
	int expired;     /* read again at the next get */
	int64_t read_ms; /* pp_mono_ms() of the last read */
	uint64_t generation;
};

pp_proxy_cache_t *pp_proxy_cache_new(void)
{
	pp_proxy_cache_t *c = xcalloc(1, sizeof(*c));
	c->generation = 1;
	return c;
}

void pp_proxy_cache_free(pp_proxy_cache_t **cp)
{
	pp_proxy_cache_t *c = *cp;
	if (c == NULL)
		return;
	pp_proxy_free(&c->proxy);
	free(c->stamp);
	free(c);
	*cp = NULL;
}

void pp_proxy_cache_expire(pp_proxy_cache_t *c)
{
	c->expired = 1;
}

/* cache_read - read the row again; a change bumps the generation. */
static void cache_read(pp_proxy_cache_t *c, pp_db_t *db, const pp_secret_key_t *key)
{
	pp_proxy_t *p = NULL;
	char err[sizeof(c->error)];
	err[0] = '\0';
	if (pp_proxy_load(db, key, &p, err, sizeof(err)) == -1) {
		log_warnx("%s; keeping the proxy settings read before", err);
		return; /* a database error: keep what we have */
	}
	c->read_ms = pp_mono_ms();
	const char *stamp = p != NULL ? p->updated_at : (err[0] ? "unusable" : NULL);
	int same =
	    c->loaded && ((stamp == NULL && c->stamp == NULL) ||
	                  (stamp != NULL && c->stamp != NULL && strcmp(stamp, c->stamp) == 0));
	c->loaded = 1;
	if (same && strcmp(err, c->error) == 0) {
		pp_proxy_free(&p);
		return;
	}
	pp_proxy_free(&c->proxy);
	free(c->stamp);
	c->proxy = p;
	c->stamp = stamp != NULL ? xstrdup(stamp) : NULL;
	pp_strlcpy(c->error, err, sizeof(c->error));
	c->generation++;
	if (err[0])
		log_warnx("proxy unusable: %s", err);
	else if (p != NULL)
		log_info("proxy %s email=%s sms=%s login=%s", p->name, p->for_email ? "yes" : "no",
		         p->for_sms ? "yes" : "no", p->username != NULL ? "yes" : "no");
	else
		log_info("proxy none: connecting directly");
}

int pp_proxy_cache_get(pp_proxy_cache_t *c, pp_db_t *db, const pp_secret_key_t *key,
                       pp_proxy_use_t use, const pp_proxy_t **out, uint64_t *generation, char *err,
                       size_t errlen)
{
	if (!c->loaded || c->expired || pp_mono_ms() - c->read_ms >= PP_PROXY_REFRESH_MS) {
		c->expired = 0;
		cache_read(c, db, key);
	}
	if (generation != NULL)
		*generation = c->generation;
	*out = NULL;
	if (c->error[0]) {
		snprintf(err, errlen, "%s", c->error);
		return -1;
	}
	*out = pp_proxy_for(c->proxy, use);
	return 0;
}
