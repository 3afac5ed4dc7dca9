/*
 * pp_proxy.h - the installation's outgoing proxy (table proxy_settings,
 * one row at most): loading it with its password decrypted, putting it on
 * a libcurl handle, and telling a failure of the proxy from a failure of
 * the server behind it. Every stage, the OAuth2 token client and the
 * credential test go through here, so they all reach the internet the same
 * way. A handle that gets no proxy gets an explicitly empty one: libcurl
 * never takes a proxy from the environment (http_proxy, all_proxy).
 * A pp_proxy_t owns its strings; pp_proxy_free() wipes the password.
 */
#ifndef PP_PROXY_H
#define PP_PROXY_H

#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>

#include "pp_db.h"
#include "pp_secret.h"

typedef enum {
	PP_PROXY_HTTP,  /* HTTP proxy: CONNECT tunnels (plain HTTP is forwarded) */
	PP_PROXY_SOCKS5 /* SOCKS5; host names are resolved by the proxy */
} pp_proxy_kind_t;

/* What a connection is for: each has its own "use the proxy" switch. */
typedef enum { PP_PROXY_FOR_EMAIL, PP_PROXY_FOR_SMS } pp_proxy_use_t;

typedef struct pp_proxy {
	pp_proxy_kind_t kind;
	char *host;
	int port;
	char *username; /* NULL: the proxy takes no login */
	char *password; /* plaintext (NULL without a login): never logged, wiped */
	int for_email;
	int for_sms;
	char *updated_at; /* the row's updated_at, as text */
	char name[300];   /* "HTTP proxy 10.0.0.1:3128", for people; no secret */
} pp_proxy_t;

/* pp_proxy_load - the settings with the password decrypted with key
 * (key may be NULL when no password is stored). 0 with *out owned, or
 * NULL when no proxy is set; -1 with err on a database error, -2 with err
 * when the stored password does not decrypt with this key. */
int pp_proxy_load(pp_db_t *db, const pp_secret_key_t *key, pp_proxy_t **out, char *err,
                  size_t errlen);
/* pp_proxy_dup - an owned copy (for another thread); NULL for NULL. */
pp_proxy_t *pp_proxy_dup(const pp_proxy_t *p);
/* pp_proxy_free - wipe the password, free, NULL *p. */
void pp_proxy_free(pp_proxy_t **p);

/* pp_proxy_for - p if it is set and switched on for use, else NULL. */
const pp_proxy_t *pp_proxy_for(const pp_proxy_t *p, pp_proxy_use_t use);

/* pp_proxy_kind_name - "http" or "socks5". */
const char *pp_proxy_kind_name(pp_proxy_kind_t kind);

/* pp_proxy_apply - the proxy options of c: p, or explicitly none when p is
 * NULL. Through an HTTP proxy every connection is a CONNECT tunnel, plain
 * HTTP included: the proxy never sees a request (an SMS request URL holds
 * the provider's password). 0, or -1 if libcurl refused an option. */
int pp_proxy_apply(CURL *c, const pp_proxy_t *p);

/* How a failed transfer involved the proxy. */
typedef enum {
	PP_PROXY_NOT_BLAMED = 0, /* no proxy, or the proxy did its part */
	PP_PROXY_UNREACHABLE,    /* name unknown, connection refused, no answer */
	PP_PROXY_AUTH,           /* the proxy refused its user name or password */
	PP_PROXY_DENIED          /* the proxy refused to connect to the server */
} pp_proxy_blame_t;

/* pp_proxy_blame - after rc from a transfer on c made with p: was it the
 * proxy? If so text (never the password) says so, naming the proxy. The
 * server's own answers (a refusal the proxy relays, a TLS or login
 * failure) are not the proxy's: they are classified as without a proxy. */
pp_proxy_blame_t pp_proxy_blame(CURL *c, CURLcode rc, const pp_proxy_t *p, const char *errbuf,
                                char *text, size_t len);
/* pp_proxy_action - what an operator should do about a blame. */
const char *pp_proxy_action(pp_proxy_blame_t blame);

/* ---- pp_proxy_cache.c: the settings as a stage keeps them ---- */

/* A stage re-reads the settings at most every PP_PROXY_REFRESH_MS, and at
 * once after pp_proxy_cache_expire() (SIGHUP). One cache per database
 * connection and thread. */
#define PP_PROXY_REFRESH_MS 60000

typedef struct pp_proxy_cache pp_proxy_cache_t;

pp_proxy_cache_t *pp_proxy_cache_new(void);
void pp_proxy_cache_free(pp_proxy_cache_t **c);
/* pp_proxy_cache_get - the proxy for use (borrowed until the next call;
 * NULL: connect directly), read again when due. *generation (optional)
 * changes whenever the settings do: connections made before should be
 * closed. -1 with err when a proxy is set but cannot be used (its
 * password does not decrypt): connect neither directly nor through it.
 * A database error keeps the settings last read. */
int pp_proxy_cache_get(pp_proxy_cache_t *c, pp_db_t *db, const pp_secret_key_t *key,
                       pp_proxy_use_t use, const pp_proxy_t **out, uint64_t *generation, char *err,
                       size_t errlen);
/* pp_proxy_cache_expire - read the settings again at the next get. */
void pp_proxy_cache_expire(pp_proxy_cache_t *c);

#endif
