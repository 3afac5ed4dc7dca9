/*
 * fetcher_account.c - which incoming account to poll next: the claim
 * (SKIP LOCKED + lease, so several fetchers share the accounts), lease
 * renewal, the release that schedules the next poll, and the account's
 * diagnostics (raised once while a problem lasts, resolved by a good poll).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fetcher.h"
#include "pp_log.h"
#include "pp_oauth_token.h"
#include "pp_secret.h"
#include "pp_util.h"

/* Diagnostics about one message, not the account: a good poll leaves them. */
#define FETCHER_DIAG_MESSAGE_CODE "fetch_message_too_large"

static char *account_dup(const PGresult *res, int col)
{
	const char *v = pp_db_value(res, 0, col);
	return v ? xstrdup(v) : NULL;
}

int fetcher_account_claim(pp_daemon_t *d, const fetcher_settings_t *s, fetcher_account_t *acct)
{
	char lease[24];
	pp_lltoa(lease, s->lease_s);
	memset(acct, 0, sizeof(*acct));
	PGresult *res = pp_db_exec(
	    pp_daemon_db(d),
	    "UPDATE email_accounts SET in_claimed_by = $1, "
	    "in_lease_until = now() + $2::int * interval '1 second' "
	    "WHERE id = (SELECT id FROM email_accounts "
	    "  WHERE enabled AND in_enabled AND in_protocol IN ('imap', 'pop3') "
	    "  AND in_next_poll <= now() "
	    "  AND (in_claimed_by IS NULL OR in_lease_until IS NULL OR in_lease_until < now()) "
	    "  ORDER BY in_next_poll, id LIMIT 1 FOR UPDATE SKIP LOCKED) "
	    "RETURNING id, practice_id, in_protocol, in_host, in_port, in_tls, in_username, "
	    "in_secret, in_ca_file, in_verify, in_mailbox, in_poll_seconds, in_delete_after_days, "
	    "auth_kind",
	    PP_DB_ARGS(pp_daemon_lease_id(d), lease));
	if (res == NULL) {
		log_warnx("cannot claim an incoming account: %s", pp_db_error(pp_daemon_db(d)));
		return -1;
	}
	if (PQntuples(res) == 0) {
		PQclear(res);
		return 0;
	}
	acct->id = pp_db_value_ll(res, 0, 0, 0);
	acct->practice_id = pp_db_value_ll(res, 0, 1, 0);
	acct->protocol = account_dup(res, 2);
	acct->host = account_dup(res, 3);
	acct->port = (int)pp_db_value_ll(res, 0, 4, 0);
	acct->tls = account_dup(res, 5);
	acct->username = account_dup(res, 6);
	acct->secret_stored = account_dup(res, 7);
	acct->ca_file = account_dup(res, 8);
	acct->verify = strcmp(pp_db_value(res, 0, 9), "t") == 0;
	acct->mailbox = account_dup(res, 10);
	acct->poll_seconds = pp_db_value_ll(res, 0, 11, 60);
	acct->delete_after_days = pp_db_value_ll(res, 0, 12, 0);
	acct->lease_renew_ms = pp_mono_ms() + s->lease_s * 1000 / 3;
	acct->oauth = strcmp(pp_db_value(res, 0, 13), "oauth2") == 0;
	PQclear(res);
	if (acct->oauth)
		fetcher_account_token(pp_daemon_db(d), d, acct);
	log_debug("account=%lld claimed protocol=%s host=%s", (long long)acct->id, acct->protocol,
	          acct->host);
	return 1;
}

void fetcher_account_proxy(pp_proxy_cache_t *cache, pp_db_t *db, pp_daemon_t *d,
                           fetcher_account_t *acct)
{
	char err[400];
	const pp_proxy_t *p = NULL;
	pp_proxy_free(&acct->proxy);
	free(acct->proxy_error);
	acct->proxy_error = NULL;
	if (pp_proxy_cache_get(cache, db, pp_daemon_key(d), PP_PROXY_FOR_EMAIL, &p, NULL, err,
	                       sizeof(err)) != 0)
		acct->proxy_error = xstrdup(err);
	acct->proxy = pp_proxy_dup(p);
}

void fetcher_account_token(pp_db_t *db, pp_daemon_t *d, fetcher_account_t *acct)
{
	pp_oauth_access_t tok;
	char err[512];
	free(acct->token_error);
	acct->token_error = NULL;
	acct->token_status = (int)pp_oauth_access_get(db, pp_daemon_key(d), acct->id, FETCHER_STAGE,
	                                              &tok, err, sizeof(err));
	if (acct->token_status == PP_TOKEN_OK) {
		if (acct->bearer != NULL)
			pp_secret_wipe_free(acct->bearer);
		acct->bearer = tok.access_token;
		acct->oauthbearer = tok.oauthbearer;
		tok.access_token = NULL;
	} else {
		acct->token_error = xstrdup(err);
	}
	pp_oauth_access_clear(&tok);
}

int fetcher_account_renew_due(const fetcher_account_t *acct)
{
	return pp_mono_ms() >= acct->lease_renew_ms;
}

int fetcher_account_renew(pp_daemon_t *d, const fetcher_settings_t *s, fetcher_account_t *acct)
{
	char id[24], lease[24];
	if (!fetcher_account_renew_due(acct))
		return 0;
	pp_lltoa(id, acct->id);
	pp_lltoa(lease, s->lease_s);
	PGresult *res = pp_db_exec(pp_daemon_db(d),
	                           "UPDATE email_accounts SET in_lease_until = now() + "
	                           "$3::int * interval '1 second' WHERE id = $1 AND "
	                           "in_claimed_by = $2 RETURNING id",
	                           PP_DB_ARGS(id, pp_daemon_lease_id(d), lease));
	if (res == NULL)
		return -1;
	int held = PQntuples(res) == 1;
	PQclear(res);
	if (!held) {
		log_warnx("account=%lld claim lost to another instance; stopping this poll",
		          (long long)acct->id);
		return -1;
	}
	acct->lease_renew_ms = pp_mono_ms() + s->lease_s * 1000 / 3;
	return 0;
}

int fetcher_account_release(pp_daemon_t *d, const fetcher_account_t *acct, int poll_again_now)
{
	char id[24];
	pp_lltoa(id, acct->id);
	int rc = pp_db_command(pp_daemon_db(d),
	                       "UPDATE email_accounts SET in_claimed_by = NULL, "
	                       "in_lease_until = NULL, in_next_poll = CASE WHEN $3::boolean "
	                       "THEN now() ELSE pp_next_fetch(id) END "
	                       "WHERE id = $1 AND in_claimed_by = $2",
	                       PP_DB_ARGS(id, pp_daemon_lease_id(d), poll_again_now ? "t" : "f"));
	if (rc != 0)
		log_warnx("account=%lld cannot release the claim (the lease will expire): %s",
		          (long long)acct->id, pp_db_error(pp_daemon_db(d)));
	return rc;
}

/* account_diag_open - 1 if an unresolved diagnostic with code is open for
 * the account, 0 if not, -1 on a database error. */
static int account_diag_open(pp_db_t *db, const char *id, const char *code)
{
	PGresult *res = pp_db_exec(db,
	                           "SELECT 1 FROM diagnostics WHERE stage = $1 AND "
	                           "email_account_id = $2 AND code = $3 AND resolved_at IS NULL "
	                           "LIMIT 1",
	                           PP_DB_ARGS(FETCHER_STAGE, id, code));
	if (res == NULL)
		return -1;
	int open = PQntuples(res) > 0;
	PQclear(res);
	return open;
}

static int account_resolve(pp_db_t *db, const fetcher_account_t *acct, const char *id)
{
	PGresult *res =
	    pp_db_exec(db,
	               "UPDATE diagnostics SET resolved_at = now() WHERE stage = $1 "
	               "AND email_account_id = $2 AND resolved_at IS NULL AND code <> $3 "
	               "RETURNING code",
	               PP_DB_ARGS(FETCHER_STAGE, id, FETCHER_DIAG_MESSAGE_CODE));
	if (res == NULL)
		return -1;
	for (int i = 0; i < PQntuples(res); i++)
		log_info("account=%lld diagnostic code=%s resolved: the poll succeeded",
		         (long long)acct->id, pp_db_value(res, i, 0));
	PQclear(res);
	return 0;
}

int fetcher_account_report(pp_daemon_t *d, const fetcher_account_t *acct,
                           const fetcher_poll_t *poll)
{
	pp_db_t *db = pp_daemon_db(d);
	char id[24];
	pp_lltoa(id, acct->id);
	if (poll->status != FETCHER_POLL_ACCOUNT_ERR)
		return poll->listed ? account_resolve(db, acct, id) : 0;
	int open = account_diag_open(db, id, poll->code);
	if (open < 0)
		return -1;
	if (open) {
		log_warnx("account=%lld poll failed code=%s (diagnostic already open): %s",
		          (long long)acct->id, poll->code, poll->text);
		return 0;
	}
	return pp_diag_raise(db, FETCHER_STAGE, "error", poll->code, acct->practice_id, acct->id, 0,
	                     poll->text);
}

int64_t fetcher_account_due(pp_daemon_t *d)
{
	PGresult *res = pp_db_exec(
	    pp_daemon_db(d),
	    "SELECT count(*) FROM email_accounts WHERE enabled AND in_enabled AND in_protocol IN "
	    "('imap', 'pop3') AND in_next_poll <= now() AND (in_claimed_by IS NULL OR "
	    "in_lease_until IS NULL OR in_lease_until < now())",
	    0, NULL);
	if (res == NULL)
		return -1;
	int64_t n = pp_db_value_ll(res, 0, 0, -1);
	PQclear(res);
	return n;
}

void fetcher_account_clear(fetcher_account_t *acct)
{
	free(acct->protocol);
	free(acct->host);
	free(acct->tls);
	free(acct->username);
	free(acct->secret_stored);
	free(acct->ca_file);
	free(acct->mailbox);
	if (acct->bearer != NULL)
		pp_secret_wipe_free(acct->bearer);
	free(acct->token_error);
	pp_proxy_free(&acct->proxy);
	free(acct->proxy_error);
	memset(acct, 0, sizeof(*acct));
}
