/*
 * pp_proxy.c - the installation's outgoing proxy: the proxy_settings row
 * (its password decrypted with pp_secret), the libcurl options that send
 * a connection through it (CONNECT tunnels through an HTTP proxy, socks5h
 * so the proxy resolves names), and the reading of a failed transfer to
 * tell the proxy's failures from the server's. The proxy's address goes
 * into CURLOPT_PROXY without credentials, so no libcurl error text can
 * carry the password.
 */
#include "pp_proxy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pp_util.h"

enum {
	PROXY_KIND,
	PROXY_HOST,
	PROXY_PORT,
	PROXY_USER,
	PROXY_SECRET,
	PROXY_EMAIL,
	PROXY_SMS,
	PROXY_UPDATED
};

static const char proxy_sql[] =
    "SELECT kind, host, port, username, secret, use_for_email, use_for_sms, updated_at::text "
    "FROM proxy_settings WHERE id = 1";

const char *pp_proxy_kind_name(pp_proxy_kind_t kind)
{
	return kind == PP_PROXY_SOCKS5 ? "socks5" : "http";
}

/* proxy_name - "HTTP proxy host:port" ("[::1]:port" for IPv6). */
static void proxy_name(pp_proxy_t *p)
{
	int v6 = strchr(p->host, ':') != NULL;
	snprintf(p->name, sizeof(p->name), "%s proxy %s%.253s%s:%d",
	         p->kind == PP_PROXY_SOCKS5 ? "SOCKS5" : "HTTP", v6 ? "[" : "", p->host,
	         v6 ? "]" : "", p->port);
}

static char *proxy_dup_value(const PGresult *res, int col)
{
	const char *v = pp_db_value(res, 0, col);
	return v != NULL ? xstrdup(v) : NULL;
}

int pp_proxy_load(pp_db_t *db, const pp_secret_key_t *key, pp_proxy_t **out, char *err,
                  size_t errlen)
{
	pp_proxy_t *p = NULL;
	*out = NULL;
	PGresult *res = pp_db_exec(db, proxy_sql, 0, NULL);
	if (res == NULL) {
		snprintf(err, errlen, "cannot read the proxy settings: %s", pp_db_error(db));
		return -1;
	}
	if (PQntuples(res) == 0)
		goto done;
	p = xcalloc(1, sizeof(*p));
	p->kind = strcmp(pp_db_value(res, 0, PROXY_KIND), "socks5") == 0 ? PP_PROXY_SOCKS5
	                                                                 : PP_PROXY_HTTP;
	p->host = xstrdup(pp_db_value(res, 0, PROXY_HOST));
	p->port = (int)pp_db_value_ll(res, 0, PROXY_PORT, 0);
	p->username = proxy_dup_value(res, PROXY_USER);
	p->for_email = strcmp(pp_db_value(res, 0, PROXY_EMAIL), "t") == 0;
	p->for_sms = strcmp(pp_db_value(res, 0, PROXY_SMS), "t") == 0;
	p->updated_at = xstrdup(pp_db_value(res, 0, PROXY_UPDATED));
	proxy_name(p);
	const char *stored = pp_db_value(res, 0, PROXY_SECRET);
	if (stored != NULL) {
		p->password = key != NULL ? pp_secret_decrypt(key, stored, NULL) : NULL;
		if (p->password == NULL) {
			snprintf(err, errlen,
			         "the %s: its stored password cannot be decrypted with the key "
			         "file (set it again with: practicepost proxy set)",
			         p->name);
			pp_proxy_free(&p);
			PQclear(res);
			return -2;
		}
	}
done:
	PQclear(res);
	*out = p;
	return 0;
}

pp_proxy_t *pp_proxy_dup(const pp_proxy_t *p)
{
	if (p == NULL)
		return NULL;
	pp_proxy_t *c = xcalloc(1, sizeof(*c));
	*c = *p;
	c->host = xstrdup(p->host);
	c->username = p->username ? xstrdup(p->username) : NULL;
	c->password = p->password ? xstrdup(p->password) : NULL;
	c->updated_at = p->updated_at ? xstrdup(p->updated_at) : NULL;
	return c;
}

void pp_proxy_free(pp_proxy_t **pp)
{
	pp_proxy_t *p = *pp;
	if (p == NULL)
		return;
	if (p->password != NULL)
		pp_secret_wipe_free(p->password);
	free(p->host);
	free(p->username);
	free(p->updated_at);
	free(p);
	*pp = NULL;
}

const pp_proxy_t *pp_proxy_for(const pp_proxy_t *p, pp_proxy_use_t use)
{
	if (p == NULL)
		return NULL;
	return (use == PP_PROXY_FOR_EMAIL ? p->for_email : p->for_sms) ? p : NULL;
}

int pp_proxy_apply(CURL *c, const pp_proxy_t *p)
{
	CURLcode rc = CURLE_OK;
/* SET - apply one option unless an earlier one failed. */
#define SET(opt, val)                                                                              \
	do {                                                                                       \
		if (rc == CURLE_OK)                                                                \
			rc = curl_easy_setopt(c, opt, val);                                        \
	} while (0)
	if (p == NULL) {
		/* "" is "no proxy": the environment's http_proxy/all_proxy are
		 * never used, whatever the service was started with. */
		SET(CURLOPT_PROXY, "");
		SET(CURLOPT_HTTPPROXYTUNNEL, 0L);
		return rc == CURLE_OK ? 0 : -1;
	}
	int v6 = strchr(p->host, ':') != NULL;
	char *url = xasprintf("%s://%s%s%s:%d", p->kind == PP_PROXY_SOCKS5 ? "socks5h" : "http",
	                      v6 ? "[" : "", p->host, v6 ? "]" : "", p->port);
	SET(CURLOPT_PROXY, url);
	SET(CURLOPT_NOPROXY, "");
	SET(CURLOPT_PROXYTYPE,
	    p->kind == PP_PROXY_SOCKS5 ? (long)CURLPROXY_SOCKS5_HOSTNAME : (long)CURLPROXY_HTTP);
	SET(CURLOPT_HTTPPROXYTUNNEL, p->kind == PP_PROXY_HTTP ? 1L : 0L);
	if (p->username != NULL) {
		/* Set only with a login: an empty one would still be sent. */
		SET(CURLOPT_PROXYUSERNAME, p->username);
		SET(CURLOPT_PROXYPASSWORD, p->password != NULL ? p->password : "");
		if (p->kind == PP_PROXY_HTTP)
			SET(CURLOPT_PROXYAUTH, (long)CURLAUTH_BASIC);
	}
#undef SET
	free(url);
	return rc == CURLE_OK ? 0 : -1;
}

/* blame_socks - a SOCKS handshake that failed. */
static pp_proxy_blame_t blame_socks(long px)
{
	switch (px) {
	case CURLPX_USER_REJECTED:
	case CURLPX_NO_AUTH:
	case CURLPX_LONG_USER:
	case CURLPX_LONG_PASSWD:
		return PP_PROXY_AUTH;
	case CURLPX_REPLY_NOT_ALLOWED:
		return PP_PROXY_DENIED;
	case CURLPX_REPLY_CONNECTION_REFUSED:
	case CURLPX_REPLY_HOST_UNREACHABLE:
	case CURLPX_REPLY_NETWORK_UNREACHABLE:
	case CURLPX_REPLY_TTL_EXPIRED:
	case CURLPX_RESOLVE_HOST:
		return PP_PROXY_NOT_BLAMED; /* the server's side, relayed */
	default:
		return PP_PROXY_UNREACHABLE; /* the proxy broke off the handshake */
	}
}

/* blame_kind - which failure it was, without the words. */
static pp_proxy_blame_t blame_kind(CURL *c, CURLcode rc, const pp_proxy_t *p, long *connect_code)
{
	long px = 0;
	*connect_code = 0;
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_PROXY:
		return PP_PROXY_UNREACHABLE;
	case CURLE_COULDNT_CONNECT:
		/* Through a proxy the only TCP connection libcurl makes is to it. */
		return PP_PROXY_UNREACHABLE;
	case CURLE_PROXY:
		curl_easy_getinfo(c, CURLINFO_PROXY_ERROR, &px);
		return blame_socks(px);
	default:
		break;
	}
	if (p->kind != PP_PROXY_HTTP)
		return PP_PROXY_NOT_BLAMED;
	curl_easy_getinfo(c, CURLINFO_HTTP_CONNECTCODE, connect_code);
	/* 407 is the standard answer; some proxies (tinyproxy) say 401. */
	if (*connect_code == 407 || *connect_code == 401)
		return PP_PROXY_AUTH;
	if (*connect_code == 403 || *connect_code == 405)
		return PP_PROXY_DENIED;
	return PP_PROXY_NOT_BLAMED; /* 2xx, or 5xx: the server could not be reached */
}

pp_proxy_blame_t pp_proxy_blame(CURL *c, CURLcode rc, const pp_proxy_t *p, const char *errbuf,
                                char *text, size_t len)
{
	long connect_code = 0;
	if (p == NULL || rc == CURLE_OK)
		return PP_PROXY_NOT_BLAMED;
	pp_proxy_blame_t b = blame_kind(c, rc, p, &connect_code);
	const char *why = errbuf != NULL && *errbuf ? errbuf : curl_easy_strerror(rc);
	switch (b) {
	case PP_PROXY_UNREACHABLE:
		snprintf(text, len, "the %s cannot be reached: %.200s", p->name, why);
		break;
	case PP_PROXY_AUTH:
		snprintf(text, len, "the %s refused the proxy user name or password%s%.100s",
		         p->name, p->username ? " for user " : " (none is set)",
		         p->username ? p->username : "");
		break;
	case PP_PROXY_DENIED:
		snprintf(text, len, "the %s refused to connect to the server: %.200s", p->name,
		         why);
		break;
	case PP_PROXY_NOT_BLAMED:
		break;
	}
	return b;
}

const char *pp_proxy_action(pp_proxy_blame_t blame)
{
	switch (blame) {
	case PP_PROXY_UNREACHABLE:
		return "Check that the proxy is running and that its address and port are "
		       "right (practicepost proxy show); change them with practicepost proxy "
		       "set, or ask whoever runs the proxy.";
	case PP_PROXY_AUTH:
		return "Check the proxy user name and password with whoever runs the proxy, "
		       "and set them again with: practicepost proxy set --user U "
		       "--password-file F.";
	case PP_PROXY_DENIED:
		return "The proxy's rules do not allow this server and port: ask whoever runs "
		       "the proxy to allow CONNECT to the mail and SMS servers' ports (e.g. "
		       "465, 587, 993, 995).";
	default:
		return "";
	}
}
