/*
 * pp_oauth_token.h - the OAuth2 access token of an email account, shared
 * by every stage instance through its email_oauth row: "a valid access
 * token for account N". A stored token with enough life left is handed
 * out as is; otherwise one instance refreshes it under the row's lock
 * (SELECT ... FOR UPDATE, so never two refreshes of one account at once)
 * and stores the new access token and a rotated refresh token in the same
 * transaction. Also the account's OAuth2 settings (for the CLI's sign-in)
 * and the storing of a fresh sign-in. Tokens are plaintext only in the
 * structures returned here, which the caller wipes with the _clear calls.
 */
#ifndef PP_OAUTH_TOKEN_H
#define PP_OAUTH_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "pp_db.h"
#include "pp_oauth_client.h"
#include "pp_secret.h"

/* Diagnostic raised (once) when an account must be signed in again. */
#define PP_OAUTH_DIAG_REAUTH "oauth_reauth_needed"
/* paused_reason of an account paused for that reason starts with this;
 * a new sign-in resumes exactly those accounts. */
#define PP_OAUTH_PAUSE_PREFIX "OAuth2: "

typedef enum {
	PP_TOKEN_OK,      /* out->access_token is good for out->valid_s seconds */
	PP_TOKEN_BACKOFF, /* the token endpoint is unavailable: try again in out->retry_s;
	                   * not the messages' fault (spend no attempts) */
	PP_TOKEN_REAUTH,  /* no usable consent: the account is paused with one diagnostic
	                   * telling the operator to run `account authenticate` */
	PP_TOKEN_FAILED   /* database or key problem (err says which) */
} pp_token_status_t;

typedef struct {
	char *access_token; /* owned plaintext */
	int oauthbearer;    /* SASL OAUTHBEARER wanted rather than XOAUTH2 */
	int64_t valid_s;    /* hand-out life left: renew connections after this */
	int64_t retry_s;    /* PP_TOKEN_BACKOFF: wait this long */
} pp_oauth_access_t;

/* pp_oauth_access_get - a valid access token for the email account. stage
 * names the caller in diagnostics. */
pp_token_status_t pp_oauth_access_get(pp_db_t *db, const pp_secret_key_t *key, int64_t account_id,
                                      const char *stage, pp_oauth_access_t *out, char *err,
                                      size_t errlen);
void pp_oauth_access_clear(pp_oauth_access_t *a);

/* pp_oauth_renew_margin - seconds before expiry at which a token of the
 * given lifetime is refreshed: 5 minutes, or half the lifetime when it is
 * shorter than 10 minutes. (pure) */
int64_t pp_oauth_renew_margin(int64_t lifetime_s);
/* pp_oauth_backoff_seconds - wait after the n-th failed refresh in a row:
 * 30 s doubling to 15 minutes. (pure) */
int64_t pp_oauth_backoff_seconds(int failures);

/* An account's OAuth2 settings, for signing in. Owned strings. */
typedef struct {
	int64_t account_id;
	char *provider;
	char *token_url;
	char *device_url;    /* NULL: none */
	char *authorize_url; /* NULL: none */
	char *client_id;
	char *client_secret; /* plaintext, NULL for a public client */
	char *scopes;
	char *username;         /* the mailbox user (login_hint, who signed in if unknown) */
	struct pp_proxy *proxy; /* the installation's proxy for email; NULL: direct */
} pp_oauth_config_t;

/* pp_oauth_config_load - 0 with out filled, 1 if the account is not an
 * OAuth2 account (or does not exist), -1 with err. */
int pp_oauth_config_load(pp_db_t *db, const pp_secret_key_t *key, int64_t account_id,
                         pp_oauth_config_t *out, char *err, size_t errlen);
void pp_oauth_config_clear(pp_oauth_config_t *c);
/* pp_oauth_config_endpoint - the client endpoint view of c (borrowed). */
void pp_oauth_config_endpoint(const pp_oauth_config_t *c, pp_oauth_endpoint_t *ep);

/* pp_oauth_signin_store - one transaction: store the tokens of a new
 * sign-in (who signed in: the id_token's name, else the configured user),
 * resume the account if it was paused for want of consent and resolve
 * that diagnostic. *who_out (owned) says who signed in. 0 / -1 with err. */
int pp_oauth_signin_store(pp_db_t *db, const pp_secret_key_t *key, const pp_oauth_config_t *c,
                          const pp_oauth_tokens_t *t, char **who_out, char *err, size_t errlen);

#endif
