/*
 * pp_oauth_token.c - the shared OAuth2 token of an email account (see
 * pp_oauth_token.h): the fast path reads the stored access token; the
 * slow path locks the email_oauth row, refreshes at the token endpoint
 * and stores the result (or pauses the account, or records a back-off)
 * in that one transaction. Owns the email_oauth token columns.
 */
#include "pp_oauth_token.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pp_daemon.h"
#include "pp_log.h"
#include "pp_proxy.h"
#include "pp_util.h"

int64_t pp_oauth_renew_margin(int64_t lifetime_s)
{
	if (lifetime_s < 600)
		return lifetime_s > 0 ? lifetime_s / 2 : 0;
	return 300;
}

int64_t pp_oauth_backoff_seconds(int failures)
{
	int64_t s = 30;
	for (int i = 1; i < failures && s < 900; i++)
		s *= 2;
	return s < 900 ? s : 900;
}

void pp_oauth_access_clear(pp_oauth_access_t *a)
{
	if (a->access_token != NULL)
		pp_secret_wipe_free(a->access_token);
	memset(a, 0, sizeof(*a));
}

enum {
	T_ACCESS,
	T_LEFT,
	T_LIFETIME,
	T_MECH,
	T_REFRESH,
	T_RETRY,
	T_URL,
	T_CLIENT,
	T_SECRET,
	T_SCOPES,
	T_PRACTICE,
	T_NCOLS
};

/* The token row; the age columns come from the database clock. */
#define TOKEN_SELECT                                                                               \
	"SELECT o.access_secret, extract(epoch FROM o.access_expires_at - now())::bigint, "        \
	"extract(epoch FROM o.access_expires_at - o.refreshed_at)::bigint, o.mechanism, "          \
	"o.refresh_secret, ceil(extract(epoch FROM o.retry_after - now()))::bigint, "              \
	"o.token_url, o.client_id, o.client_secret, o.scopes, a.practice_id FROM email_oauth o "   \
	"JOIN email_accounts a ON a.id = o.account_id WHERE o.account_id = $1"

static const char token_fast_sql[] = TOKEN_SELECT;
static const char token_lock_sql[] = TOKEN_SELECT " FOR UPDATE OF o";

/* token_usable - 1 and out filled if row 0 holds an access token with
 * more than its renewal margin left; -1 if it cannot be decrypted. */
static int token_usable(const PGresult *res, const pp_secret_key_t *key, pp_oauth_access_t *out)
{
	const char *stored = pp_db_value(res, 0, T_ACCESS);
	long long left = pp_db_value_ll(res, 0, T_LEFT, 0);
	long long margin = pp_oauth_renew_margin(pp_db_value_ll(res, 0, T_LIFETIME, 0));
	if (stored == NULL || pp_db_value(res, 0, T_LEFT) == NULL || left <= margin)
		return 0;
	out->access_token = pp_secret_decrypt(key, stored, NULL);
	if (out->access_token == NULL)
		return -1;
	out->oauthbearer = strcmp(pp_db_value(res, 0, T_MECH), "oauthbearer") == 0;
	out->valid_s = left - margin;
	return 1;
}

/* token_pause - no usable consent: forget the dead tokens (forget), pause
 * the account and raise the one diagnostic (if it was not paused yet). */
static int token_pause(pp_db_t *db, const char *id, const char *stage, const char *why,
                       const char *reason, int forget)
{
	if (pp_db_command(db,
	                  "UPDATE email_oauth SET access_secret = CASE WHEN $3::boolean THEN NULL "
	                  "ELSE access_secret END, access_expires_at = CASE WHEN $3::boolean "
	                  "THEN NULL ELSE access_expires_at END, refresh_secret = CASE WHEN "
	                  "$3::boolean THEN NULL ELSE refresh_secret END, refresh_failures = 0, "
	                  "retry_after = NULL, last_error = $2 WHERE account_id = $1",
	                  PP_DB_ARGS(id, why, forget ? "t" : "f")) != 0)
		return -1;
	PGresult *res = pp_db_exec(db,
	                           "UPDATE email_accounts SET paused_at = now(), paused_reason = "
	                           "$2 WHERE id = $1 AND paused_at IS NULL RETURNING practice_id",
	                           PP_DB_ARGS(id, reason));
	if (res == NULL)
		return -1;
	int rc = 0;
	if (PQntuples(res) == 1) {
		int64_t account = 0;
		pp_parse_int64(id, &account);
		rc = pp_diag_raise(db, stage, "error", PP_OAUTH_DIAG_REAUTH,
		                   pp_db_value_ll(res, 0, 0, 0), account, 0, reason);
	}
	PQclear(res);
	return rc;
}

/* token_store - a refreshed token set (the refresh token only if
 * rotated). */
static int token_store(pp_db_t *db, const pp_secret_key_t *key, const char *id,
                       const pp_oauth_tokens_t *t)
{
	char *access = pp_secret_encrypt(key, t->access_token, strlen(t->access_token));
	char *refresh = t->refresh_token
	                    ? pp_secret_encrypt(key, t->refresh_token, strlen(t->refresh_token))
	                    : NULL;
	char life[PP_LL_LEN];
	pp_lltoa(life, t->expires_in > 0 ? t->expires_in : 3600);
	int rc = pp_db_command(db,
	                       "UPDATE email_oauth SET access_secret = $2, access_expires_at = "
	                       "now() + $3::bigint * interval '1 second', refresh_secret = "
	                       "coalesce($4, refresh_secret), granted_scopes = coalesce($5, "
	                       "granted_scopes), refreshed_at = now(), refresh_failures = 0, "
	                       "retry_after = NULL, last_error = NULL WHERE account_id = $1",
	                       PP_DB_ARGS(id, access, life, refresh, t->scope));
	free(access);
	free(refresh);
	return rc;
}

/* token_backoff - the endpoint failed: count it and set retry_after. */
static int64_t token_backoff(pp_db_t *db, const char *id, const char *why)
{
	PGresult *res =
	    pp_db_exec(db,
	               "UPDATE email_oauth SET refresh_failures = refresh_failures + 1, "
	               "last_error = $2 WHERE account_id = $1 RETURNING "
	               "refresh_failures",
	               PP_DB_ARGS(id, why));
	if (res == NULL)
		return -1;
	int64_t wait = pp_oauth_backoff_seconds((int)pp_db_value_ll(res, 0, 0, 1));
	PQclear(res);
	char w[PP_LL_LEN];
	if (pp_db_command(db,
	                  "UPDATE email_oauth SET retry_after = now() + $2::bigint * interval "
	                  "'1 second' WHERE account_id = $1",
	                  PP_DB_ARGS(id, pp_lltoa(w, wait))) != 0)
		return -1;
	return wait;
}

/* token_request - the refresh grant, through the installation's proxy
 * when it is set for email; a proxy that is set but unusable sends the
 * request neither through it nor around it (UNAVAILABLE, retried). */
static pp_oauth_status_t token_request(pp_db_t *db, const pp_secret_key_t *key, const PGresult *row,
                                       const char *refresh, const char *secret,
                                       pp_oauth_tokens_t *t, char *why, size_t whylen)
{
	pp_proxy_t *proxy = NULL;
	if (pp_proxy_load(db, key, &proxy, why, whylen) != 0)
		return PP_OAUTH_UNAVAILABLE;
	pp_oauth_endpoint_t ep = {.token_url = pp_db_value(row, 0, T_URL),
	                          .client_id = pp_db_value(row, 0, T_CLIENT),
	                          .client_secret = secret,
	                          .timeout_s = 30,
	                          .proxy = pp_proxy_for(proxy, PP_PROXY_FOR_EMAIL)};
	pp_oauth_status_t os =
	    pp_oauth_refresh(&ep, refresh, pp_db_value(row, 0, T_SCOPES), t, why, whylen);
	pp_proxy_free(&proxy);
	return os;
}

/* token_refresh - under the row lock: refresh and record the outcome. */
static pp_token_status_t token_refresh(pp_db_t *db, const pp_secret_key_t *key, const char *id,
                                       const char *stage, const PGresult *row,
                                       pp_oauth_access_t *out, char *err, size_t errlen)
{
	const char *stored_secret = pp_db_value(row, 0, T_SECRET);
	char *refresh = pp_secret_decrypt(key, pp_db_value(row, 0, T_REFRESH), NULL);
	char *secret = stored_secret ? pp_secret_decrypt(key, stored_secret, NULL) : NULL;
	pp_oauth_tokens_t t;
	char why[400], reason[600];
	pp_token_status_t st = PP_TOKEN_FAILED;
	memset(&t, 0, sizeof(t));
	if (refresh == NULL || (stored_secret != NULL && secret == NULL)) {
		snprintf(err, errlen, "the stored OAuth2 token cannot be decrypted with this key");
		goto done;
	}
	pp_oauth_status_t os = token_request(db, key, row, refresh, secret, &t, why, sizeof(why));
	switch (os) {
	case PP_OAUTH_OK:
		if (token_store(db, key, id, &t) != 0)
			goto db_fail;
		log_info("account=%s oauth token refreshed rotated=%s expires_in=%lld", id,
		         t.refresh_token ? "yes" : "no", (long long)t.expires_in);
		out->access_token = t.access_token;
		t.access_token = NULL;
		out->oauthbearer = strcmp(pp_db_value(row, 0, T_MECH), "oauthbearer") == 0;
		out->valid_s = (t.expires_in > 0 ? t.expires_in : 3600) -
		               pp_oauth_renew_margin(t.expires_in > 0 ? t.expires_in : 3600);
		st = PP_TOKEN_OK;
		break;
	case PP_OAUTH_INVALID_GRANT:
	case PP_OAUTH_REJECTED:
	case PP_OAUTH_DENIED:
	case PP_OAUTH_EXPIRED:
	case PP_OAUTH_PENDING:
	case PP_OAUTH_SLOW_DOWN:
		snprintf(reason, sizeof(reason),
		         PP_OAUTH_PAUSE_PREFIX "%s (%.300s); sign in again with: practicepost "
		                               "account authenticate --account %s",
		         os == PP_OAUTH_INVALID_GRANT ? "the sign-in is no longer valid"
		                                      : "the provider refused the refresh",
		         why, id);
		if (token_pause(db, id, stage, why, reason, os == PP_OAUTH_INVALID_GRANT) != 0)
			goto db_fail;
		snprintf(err, errlen, "%s", reason);
		st = PP_TOKEN_REAUTH;
		break;
	case PP_OAUTH_UNAVAILABLE:
		out->retry_s = token_backoff(db, id, why);
		if (out->retry_s < 0)
			goto db_fail;
		log_warnx("account=%s oauth refresh failed, retry in %llds: %s", id,
		          (long long)out->retry_s, why);
		snprintf(err, errlen,
		         "OAuth2 token endpoint unavailable (%.300s); retrying in %llds", why,
		         (long long)out->retry_s);
		st = PP_TOKEN_BACKOFF;
		break;
	}
	goto done;
db_fail:
	snprintf(err, errlen, "cannot store the OAuth2 token: %s", pp_db_error(db));
	st = PP_TOKEN_FAILED;
done:
	pp_oauth_tokens_clear(&t);
	if (refresh != NULL)
		pp_secret_wipe_free(refresh);
	if (secret != NULL)
		pp_secret_wipe_free(secret);
	return st;
}

/* token_locked - the slow path, inside the transaction. */
static pp_token_status_t token_locked(pp_db_t *db, const pp_secret_key_t *key, const char *id,
                                      const char *stage, pp_oauth_access_t *out, char *err,
                                      size_t errlen)
{
	char reason[300];
	PGresult *res = pp_db_exec(db, token_lock_sql, PP_DB_ARGS(id));
	if (res == NULL) {
		snprintf(err, errlen, "cannot read the OAuth2 token: %s", pp_db_error(db));
		return PP_TOKEN_FAILED;
	}
	pp_token_status_t st = PP_TOKEN_FAILED;
	int usable = PQntuples(res) == 1 ? token_usable(res, key, out) : 0;
	if (PQntuples(res) != 1) {
		snprintf(err, errlen, "the account has no OAuth2 settings");
	} else if (usable != 0) {
		/* Another instance refreshed it while we waited for the lock. */
		st = usable > 0 ? PP_TOKEN_OK : PP_TOKEN_FAILED;
		if (usable < 0)
			snprintf(err, errlen, "the stored access token cannot be decrypted");
	} else if (pp_db_value(res, 0, T_REFRESH) == NULL) {
		snprintf(reason, sizeof(reason),
		         PP_OAUTH_PAUSE_PREFIX "not signed in; run: practicepost account "
		                               "authenticate --account %s",
		         id);
		st = token_pause(db, id, stage, "not signed in", reason, 0) == 0 ? PP_TOKEN_REAUTH
		                                                                 : PP_TOKEN_FAILED;
		snprintf(err, errlen, "%s", reason);
	} else if (pp_db_value_ll(res, 0, T_RETRY, 0) > 0) {
		out->retry_s = pp_db_value_ll(res, 0, T_RETRY, 0);
		snprintf(err, errlen,
		         "OAuth2 token endpoint unavailable at the last try; retrying in %llds",
		         (long long)out->retry_s);
		st = PP_TOKEN_BACKOFF;
	} else {
		st = token_refresh(db, key, id, stage, res, out, err, errlen);
	}
	PQclear(res);
	return st;
}

pp_token_status_t pp_oauth_access_get(pp_db_t *db, const pp_secret_key_t *key, int64_t account_id,
                                      const char *stage, pp_oauth_access_t *out, char *err,
                                      size_t errlen)
{
	char id[PP_LL_LEN];
	memset(out, 0, sizeof(*out));
	err[0] = '\0';
	if (key == NULL) {
		snprintf(err, errlen, "the secret key file cannot be read");
		return PP_TOKEN_FAILED;
	}
	pp_lltoa(id, account_id);
	PGresult *res = pp_db_exec_prepared(db, token_fast_sql, PP_DB_ARGS(id));
	if (res == NULL) {
		snprintf(err, errlen, "cannot read the OAuth2 token: %s", pp_db_error(db));
		return PP_TOKEN_FAILED;
	}
	int usable = PQntuples(res) == 1 ? token_usable(res, key, out) : 0;
	PQclear(res);
	if (usable > 0)
		return PP_TOKEN_OK;
	if (usable < 0) {
		snprintf(err, errlen, "the stored access token cannot be decrypted with this key");
		return PP_TOKEN_FAILED;
	}
	if (pp_db_begin(db) != 0) {
		snprintf(err, errlen, "cannot lock the OAuth2 token: %s", pp_db_error(db));
		return PP_TOKEN_FAILED;
	}
	pp_token_status_t st = token_locked(db, key, id, stage, out, err, errlen);
	if (st == PP_TOKEN_FAILED) {
		pp_db_rollback(db);
	} else if (pp_db_commit(db) != 0) {
		snprintf(err, errlen, "cannot store the OAuth2 token: %s", pp_db_error(db));
		pp_oauth_access_clear(out);
		st = PP_TOKEN_FAILED;
	}
	return st;
}

/* ---- settings and sign-in ---- */

static char *config_dup(const PGresult *res, int col)
{
	const char *v = pp_db_value(res, 0, col);
	return v ? xstrdup(v) : NULL;
}

int pp_oauth_config_load(pp_db_t *db, const pp_secret_key_t *key, int64_t account_id,
                         pp_oauth_config_t *out, char *err, size_t errlen)
{
	char id[PP_LL_LEN];
	memset(out, 0, sizeof(*out));
	PGresult *res = pp_db_exec(
	    db,
	    "SELECT o.provider, o.token_url, o.device_url, o.authorize_url, o.client_id, "
	    "o.client_secret, o.scopes, coalesce(nullif(a.smtp_username, ''), "
	    "nullif(a.in_username, ''), a.from_address) FROM email_oauth o JOIN email_accounts a "
	    "ON a.id = o.account_id WHERE o.account_id = $1 AND a.auth_kind = 'oauth2'",
	    PP_DB_ARGS(pp_lltoa(id, account_id)));
	if (res == NULL) {
		snprintf(err, errlen, "cannot read the OAuth2 settings: %s", pp_db_error(db));
		return -1;
	}
	if (PQntuples(res) != 1) {
		PQclear(res);
		return 1;
	}
	out->account_id = account_id;
	out->provider = config_dup(res, 0);
	out->token_url = config_dup(res, 1);
	out->device_url = config_dup(res, 2);
	out->authorize_url = config_dup(res, 3);
	out->client_id = config_dup(res, 4);
	out->scopes = config_dup(res, 6);
	out->username = config_dup(res, 7);
	const char *secret = pp_db_value(res, 0, 5);
	if (secret != NULL) {
		out->client_secret = pp_secret_decrypt(key, secret, NULL);
		if (out->client_secret == NULL) {
			PQclear(res);
			pp_oauth_config_clear(out);
			snprintf(err, errlen,
			         "the client secret cannot be decrypted with this key");
			return -1;
		}
	}
	PQclear(res);
	/* Signing in goes the way the service goes: through the proxy. */
	if (pp_proxy_load(db, key, &out->proxy, err, errlen) != 0) {
		pp_oauth_config_clear(out);
		return -1;
	}
	return 0;
}

void pp_oauth_config_clear(pp_oauth_config_t *c)
{
	free(c->provider);
	free(c->token_url);
	free(c->device_url);
	free(c->authorize_url);
	free(c->client_id);
	if (c->client_secret != NULL)
		pp_secret_wipe_free(c->client_secret);
	free(c->scopes);
	free(c->username);
	pp_proxy_free(&c->proxy);
	memset(c, 0, sizeof(*c));
}

void pp_oauth_config_endpoint(const pp_oauth_config_t *c, pp_oauth_endpoint_t *ep)
{
	memset(ep, 0, sizeof(*ep));
	ep->token_url = c->token_url;
	ep->device_url = c->device_url;
	ep->client_id = c->client_id;
	ep->client_secret = c->client_secret;
	ep->timeout_s = 30;
	ep->proxy = pp_proxy_for(c->proxy, PP_PROXY_FOR_EMAIL);
}

int pp_oauth_signin_store(pp_db_t *db, const pp_secret_key_t *key, const pp_oauth_config_t *c,
                          const pp_oauth_tokens_t *t, char **who_out, char *err, size_t errlen)
{
	char id[PP_LL_LEN], life[PP_LL_LEN];
	char *who = pp_oauth_id_token_name(t->id_token);
	if (who == NULL)
		who = xstrdup(c->username);
	*who_out = NULL;
	if (t->refresh_token == NULL) {
		snprintf(err, errlen,
		         "the provider gave no refresh token: ask for the "
		         "offline_access scope (Microsoft) or offline access");
		free(who);
		return -1;
	}
	char *access = pp_secret_encrypt(key, t->access_token, strlen(t->access_token));
	char *refresh = pp_secret_encrypt(key, t->refresh_token, strlen(t->refresh_token));
	pp_lltoa(id, c->account_id);
	pp_lltoa(life, t->expires_in > 0 ? t->expires_in : 3600);
	int rc = -1;
	if (pp_db_begin(db) != 0)
		goto done;
	if (pp_db_command(db,
	                  "UPDATE email_oauth SET access_secret = $2, access_expires_at = now() + "
	                  "$3::bigint * interval '1 second', refresh_secret = $4, "
	                  "authenticated_as = $5, authenticated_at = now(), granted_scopes = "
	                  "coalesce($6, scopes), refreshed_at = now(), refresh_failures = 0, "
	                  "retry_after = NULL, last_error = NULL WHERE account_id = $1",
	                  PP_DB_ARGS(id, access, life, refresh, who, t->scope)) != 0 ||
	    pp_db_command(db,
	                  "UPDATE email_accounts SET paused_at = NULL, paused_reason = NULL WHERE "
	                  "id = $1 AND starts_with(paused_reason, $2)",
	                  PP_DB_ARGS(id, PP_OAUTH_PAUSE_PREFIX)) != 0 ||
	    pp_db_command(db,
	                  "UPDATE diagnostics SET resolved_at = now() WHERE email_account_id = $1 "
	                  "AND code = $2 AND resolved_at IS NULL",
	                  PP_DB_ARGS(id, PP_OAUTH_DIAG_REAUTH)) != 0) {
		pp_db_rollback(db);
		goto done;
	}
	if (pp_db_commit(db) != 0)
		goto done;
	rc = 0;
	*who_out = who;
	who = NULL;
done:
	if (rc != 0)
		snprintf(err, errlen, "cannot store the sign-in: %s", pp_db_error(db));
	free(access);
	free(refresh);
	free(who);
	return rc;
}
