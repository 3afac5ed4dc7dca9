/*
 * sender_account.c - the cache of email accounts the sender delivers
 * through: settings read from email_accounts (again at each claim), the
 * practice's mail domain for EHLO, and each account's open SMTP
 * connections (up to parallel_connections, each with its thread). The
 * secret is decrypted only to open a connection.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pp_log.h"
#include "pp_oauth_token.h"
#include "pp_secret.h"
#include "pp_util.h"
#include "sender.h"

enum {
	ACCT_PRACTICE,
	ACCT_HOST,
	ACCT_PORT,
	ACCT_TLS,
	ACCT_AUTH,
	ACCT_USERNAME,
	ACCT_SECRET,
	ACCT_CA_FILE,
	ACCT_VERIFY,
	ACCT_FROM,
	ACCT_DOMAIN,
	ACCT_MAX_BYTES,
	ACCT_OPTIONAL_PORT,
	ACCT_PARALLEL,
	ACCT_AUTH_KIND,
	ACCT_NCOLS
};

static const char account_sql[] =
    "SELECT a.practice_id, a.smtp_host, a.smtp_port, a.smtp_tls, a.smtp_auth, "
    "a.smtp_username, a.smtp_secret, nullif(a.smtp_ca_file, ''), a.smtp_verify, "
    "a.from_address, p.mail_domain, a.max_message_bytes, a.smtp_optional_tls_port, "
    "a.parallel_connections, a.auth_kind "
    "FROM email_accounts a JOIN practices p ON p.id = a.practice_id WHERE a.id = $1";

static void account_free_settings(sender_account_t *a)
{
	free(a->host);
	free(a->username);
	free(a->secret);
	free(a->ca_file);
	free(a->from_address);
	free(a->mail_domain);
	free(a->fingerprint);
	a->host = a->username = a->secret = a->ca_file = NULL;
	a->from_address = a->mail_domain = a->fingerprint = NULL;
}

/* account_close - stop every connection (none may be busy). */
static void account_close(sender_account_t *a)
{
	for (int i = 0; i < a->nconns; i++)
		sender_conn_stop(&a->conns[i]);
	a->nconns = 0;
}

static void account_free(sender_account_t **ap)
{
	sender_account_t *a = *ap;
	if (a == NULL)
		return;
	account_close(a);
	PQclear(a->pending);
	account_free_settings(a);
	free(a);
	*ap = NULL;
}

static int account_parse_tls(const char *text, sender_tls_t *out)
{
	static const struct {
		const char *name;
		sender_tls_t tls;
	} modes[] = {{"implicit", SENDER_TLS_IMPLICIT},
	             {"starttls", SENDER_TLS_STARTTLS},
	             {"starttls_optional", SENDER_TLS_STARTTLS_OPTIONAL},
	             {"none", SENDER_TLS_NONE}};
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
		if (strcmp(text, modes[i].name) == 0) {
			*out = modes[i].tls;
			return 0;
		}
	return -1;
}

/* account_fingerprint - every column joined: a change means reconnect. */
static char *account_fingerprint(const PGresult *res)
{
	pp_buf_t fp;
	pp_buf_init(&fp);
	for (int c = 0; c < ACCT_NCOLS; c++) {
		const char *v = pp_db_value(res, 0, c);
		pp_buf_printf(&fp, "%s%s\x1f", v ? "v" : "n", v ? v : "");
	}
	return pp_buf_steal(&fp);
}

static char *account_dup(const PGresult *res, int col)
{
	const char *v = pp_db_value(res, 0, col);
	return v ? xstrdup(v) : NULL;
}

/* account_load - fill a from the row; -2 with err if it cannot be used. */
static int account_load(sender_account_t *a, const PGresult *res, char *err, size_t errlen)
{
	account_free_settings(a);
	a->practice_id = pp_db_value_ll(res, 0, ACCT_PRACTICE, 0);
	a->host = account_dup(res, ACCT_HOST);
	a->port = (int)pp_db_value_ll(res, 0, ACCT_PORT, 0);
	a->auth = strcmp(pp_db_value(res, 0, ACCT_AUTH), "t") == 0;
	a->username = account_dup(res, ACCT_USERNAME);
	a->secret = account_dup(res, ACCT_SECRET);
	a->ca_file = account_dup(res, ACCT_CA_FILE);
	a->verify = strcmp(pp_db_value(res, 0, ACCT_VERIFY), "t") == 0;
	a->from_address = account_dup(res, ACCT_FROM);
	a->mail_domain = account_dup(res, ACCT_DOMAIN);
	a->max_bytes = pp_db_value_ll(res, 0, ACCT_MAX_BYTES, 0);
	a->optional_tls_port = (int)pp_db_value_ll(res, 0, ACCT_OPTIONAL_PORT, 25);
	a->parallel = (int)pp_db_value_ll(res, 0, ACCT_PARALLEL, 1);
	if (a->parallel < 1)
		a->parallel = 1;
	if (a->parallel > SENDER_MAX_CONNECTIONS)
		a->parallel = SENDER_MAX_CONNECTIONS;
	a->oauth = strcmp(pp_db_value(res, 0, ACCT_AUTH_KIND), "oauth2") == 0;
	a->token_renew_ms = 0;
	a->fingerprint = account_fingerprint(res);
	if (account_parse_tls(pp_db_value(res, 0, ACCT_TLS), &a->tls) != 0) {
		snprintf(err, errlen, "unknown TLS mode %s", pp_db_value(res, 0, ACCT_TLS));
		return -2;
	}
	if (a->host[0] == '\0') {
		snprintf(err, errlen, "no SMTP host is set");
		return -2;
	}
	if (a->oauth && a->username[0] == '\0') {
		snprintf(err, errlen, "OAuth2 is on but no user name is set");
		return -2;
	}
	if (a->auth && !a->oauth && (a->secret == NULL || a->username[0] == '\0')) {
		snprintf(err, errlen, "authentication is on but no %s is set",
		         a->username[0] == '\0' ? "user name" : "password");
		return -2;
	}
	if (!a->verify)
		log_warnx("account=%lld TLS certificate verification is OFF for %s (smtp_verify = "
		          "false)",
		          (long long)a->id, a->host);
	if (a->tls == SENDER_TLS_NONE && a->auth)
		log_warnx("account=%lld sends its password without TLS (smtp_tls = none)",
		          (long long)a->id);
	return 0;
}

sender_account_t *sender_account_find(sender_accounts_t *accts, int64_t id)
{
	for (sender_account_t *a = accts->head; a != NULL; a = a->next)
		if (a->id == id)
			return a;
	return NULL;
}

/* account_apply - take the settings in res (owned) if they changed. */
static int account_apply(sender_account_t *a, PGresult *res, char *err, size_t errlen)
{
	int rc = 0;
	char *fp = account_fingerprint(res);
	if (a->fingerprint == NULL || strcmp(fp, a->fingerprint) != 0) {
		if (a->nconns > 0)
			log_info("account=%lld settings changed; reconnecting", (long long)a->id);
		account_close(a);
		rc = account_load(a, res, err, errlen);
		if (rc != 0) {
			free(a->fingerprint); /* read it again next time */
			a->fingerprint = NULL;
		}
	}
	free(fp);
	PQclear(res);
	return rc;
}

int sender_account_apply_pending(sender_account_t *a, char *err, size_t errlen)
{
	PGresult *res = a->pending;
	if (res == NULL || a->busy > 0)
		return 0;
	a->pending = NULL;
	return account_apply(a, res, err, errlen);
}

int sender_account_get(sender_accounts_t *accts, pp_db_t *db, int64_t id, uint64_t generation,
                       sender_account_t **out, char *err, size_t errlen)
{
	char idtext[24];
	sender_account_t *a = sender_account_find(accts, id);

	*out = NULL;
	if (a != NULL && (a->generation == generation || a->pending != NULL) &&
	    a->fingerprint != NULL) {
		*out = a;
		return 0;
	}
	pp_lltoa(idtext, id);
	PGresult *res = pp_db_exec(db, account_sql, PP_DB_ARGS(idtext));
	if (res == NULL) {
		log_warnx("account=%lld cannot be read: %s", (long long)id, pp_db_error(db));
		return -1;
	}
	if (PQntuples(res) != 1) {
		PQclear(res);
		snprintf(err, errlen, "the account no longer exists");
		return -2;
	}
	if (a == NULL) {
		a = xcalloc(1, sizeof(*a));
		a->id = id;
		a->next = accts->head;
		accts->head = a;
	}
	a->generation = generation;
	a->used_ms = pp_mono_ms();
	if (a->busy > 0 && a->fingerprint != NULL) {
		/* Jobs in flight use these settings: change them once idle. */
		a->pending = res;
		*out = a;
		return 0;
	}
	int rc = account_apply(a, res, err, errlen);
	if (rc == 0)
		*out = a;
	return rc;
}

/* account_oauth_warn - report the account's OAuth2 warnings (refresh
 * token unused too long, client secret expiring) as failed self-tests, so
 * they reach the event stream; at most hourly per account. */
static void account_oauth_warn(sender_account_t *a, pp_daemon_t *d)
{
	char id[PP_LL_LEN], check[64];
	if (a->token_warned_ms != 0 && pp_mono_ms() - a->token_warned_ms < 3600 * 1000)
		return;
	a->token_warned_ms = pp_mono_ms();
	PGresult *res = pp_db_exec(pp_daemon_db(d),
	                           "SELECT kind, text FROM email_oauth_warnings WHERE "
	                           "account_id = $1 ORDER BY kind",
	                           PP_DB_ARGS(pp_lltoa(id, a->id)));
	for (int r = 0; res != NULL && r < PQntuples(res); r++) {
		snprintf(check, sizeof(check), "oauth_%s account=%s", pp_db_value(res, r, 0), id);
		pp_daemon_selftest(d, check, 0, pp_db_value(res, r, 1));
	}
	PQclear(res);
}

/* account_token - the shared OAuth2 access token for a new connection;
 * NULL with err (and token_backoff_s or token_reauth set) if there is none. */
static char *account_token(sender_account_t *a, pp_daemon_t *d, char *err, size_t errlen)
{
	pp_oauth_access_t tok;
	a->token_backoff_s = 0;
	a->token_reauth = 0;
	pp_token_status_t st = pp_oauth_access_get(pp_daemon_db(d), pp_daemon_key(d), a->id,
	                                           "sender", &tok, err, errlen);
	if (st == PP_TOKEN_BACKOFF)
		a->token_backoff_s = tok.retry_s > 0 ? tok.retry_s : 30;
	a->token_reauth = st == PP_TOKEN_REAUTH;
	if (st != PP_TOKEN_OK) {
		pp_oauth_access_clear(&tok);
		return NULL;
	}
	a->token_renew_ms = pp_mono_ms() + tok.valid_s * 1000;
	a->oauthbearer = tok.oauthbearer;
	char *token = tok.access_token;
	tok.access_token = NULL;
	account_oauth_warn(a, d);
	return token;
}

/* account_connect - a new connection (decrypting the secret, or with the
 * account's OAuth2 access token); NULL with err on an account problem. */
static sender_conn_t *account_connect(sender_account_t *a, pp_daemon_t *d, sender_pool_t *pool,
                                      const sender_smtp_opts_t *opts, char *err, size_t errlen)
{
	char *password = NULL;
	a->proxy_failed = 0;
	if (opts->proxy_error != NULL) {
		/* Neither through the proxy nor around it. */
		snprintf(err, errlen, "%s", opts->proxy_error);
		a->proxy_failed = 1;
		return NULL;
	}
	if (a->oauth) {
		password = account_token(a, d, err, errlen);
		if (password == NULL)
			return NULL;
	} else if (a->auth) {
		const pp_secret_key_t *key = pp_daemon_key(d);
		if (key == NULL) {
			snprintf(err, errlen, "the secret key file cannot be read");
			return NULL;
		}
		password = pp_secret_decrypt(key, a->secret, NULL);
		if (password == NULL) {
			snprintf(err, errlen,
			         "the stored password cannot be decrypted with this "
			         "key");
			return NULL;
		}
	}
	sender_smtp_t *smtp = sender_smtp_new(a, password, opts, err, errlen);
	if (password != NULL)
		pp_secret_wipe_free(password);
	return smtp ? sender_conn_start(pool, smtp, err, errlen) : NULL;
}

sender_conn_t *sender_account_idle_conn(sender_account_t *a, pp_daemon_t *d, sender_pool_t *pool,
                                        const sender_smtp_opts_t *opts, int depth, char *err,
                                        size_t errlen)
{
	sender_conn_t *best = NULL;
	err[0] = '\0';
	a->used_ms = pp_mono_ms();
	if (a->oauth && a->nconns > 0 && a->used_ms >= a->token_renew_ms) {
		/* The connections' token is going stale: new ones get a fresh
		 * token once the busy ones are done. */
		a->close_idle = 1;
		sender_account_close_idle(a);
		if (a->nconns > 0)
			return NULL;
	}
	for (int i = 0; i < a->nconns; i++)
		if (best == NULL || a->conns[i]->jobs < best->jobs)
			best = a->conns[i];
	if (best != NULL && (best->jobs == 0 || a->nconns >= a->parallel))
		return best->jobs < depth ? best : NULL;
	if (a->nconns >= a->parallel)
		return NULL;
	sender_conn_t *c = account_connect(a, d, pool, opts, err, errlen);
	if (c != NULL)
		a->conns[a->nconns++] = c;
	return c;
}

int sender_account_defer(pp_db_t *db, int64_t id, int64_t seconds, const char *why)
{
	char idtext[PP_LL_LEN], wait[PP_LL_LEN];
	int rc =
	    pp_db_command(db,
	                  "UPDATE messages SET deliver_after = greatest(deliver_after, now() + "
	                  "$2::bigint * interval '1 second'), updated_at = now() WHERE "
	                  "email_account_id = $1 AND channel = 'email' AND direction = 'out' "
	                  "AND state = 'queued'",
	                  PP_DB_ARGS(pp_lltoa(idtext, id), pp_lltoa(wait, seconds)));
	if (rc == 0)
		log_warnx("account=%lld %s; messages held back %llds (no attempt counted)",
		          (long long)id, why, (long long)seconds);
	return rc;
}

void sender_account_close_idle(sender_account_t *a)
{
	int kept = 0;
	for (int i = 0; i < a->nconns; i++) {
		if (a->conns[i]->jobs > 0)
			a->conns[kept++] = a->conns[i];
		else
			sender_conn_stop(&a->conns[i]);
	}
	a->nconns = kept;
}

void sender_accounts_sweep(sender_accounts_t *accts, int64_t idle_ms)
{
	int64_t now = pp_mono_ms();
	for (sender_account_t **p = &accts->head; *p != NULL;) {
		sender_account_t *a = *p;
		int kept = 0;
		for (int i = 0; i < a->nconns; i++) {
			if (a->conns[i]->jobs > 0 || now - a->conns[i]->used_ms < idle_ms) {
				a->conns[kept++] = a->conns[i];
				continue;
			}
			log_debug("account=%lld idle connection closed", (long long)a->id);
			sender_conn_stop(&a->conns[i]);
		}
		a->nconns = kept;
		if (a->nconns == 0 && a->busy == 0 && now - a->used_ms >= idle_ms) {
			*p = a->next;
			account_free(&a);
		} else {
			p = &a->next;
		}
	}
}

void sender_accounts_clear(sender_accounts_t *accts)
{
	while (accts->head != NULL) {
		sender_account_t *a = accts->head;
		accts->head = a->next;
		account_free(&a);
	}
}
