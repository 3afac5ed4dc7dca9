/*
 * pp_oauth_client.h - an OAuth 2.0 client for a provider's token endpoint
 * over libcurl: the device authorization request and its polling (RFC
 * 8628), the authorization-code exchange with PKCE (RFC 7636) and the
 * refresh grant (RFC 6749 section 6). Responses are parsed with json-c.
 * Nothing here touches the database; tokens returned are plaintext owned
 * by the caller, wiped by pp_oauth_tokens_clear(). No token is ever put
 * into err.
 */
#ifndef PP_OAUTH_CLIENT_H
#define PP_OAUTH_CLIENT_H

#include <stddef.h>
#include <stdint.h>

/* What a token-endpoint request came to. */
typedef enum {
	PP_OAUTH_OK,            /* tokens (or a device code) received */
	PP_OAUTH_PENDING,       /* device flow: authorization_pending */
	PP_OAUTH_SLOW_DOWN,     /* device flow: slow_down (poll 5 s slower) */
	PP_OAUTH_DENIED,        /* device flow: access_denied */
	PP_OAUTH_EXPIRED,       /* device flow: expired_token */
	PP_OAUTH_INVALID_GRANT, /* refresh token or code no longer good: sign in again */
	PP_OAUTH_REJECTED,      /* another 4xx error (invalid_client, invalid_scope...): settings */
	PP_OAUTH_UNAVAILABLE    /* network, timeout, 5xx, 429 or an unreadable answer: retry */
} pp_oauth_status_t;

/* Where and as whom the client talks. Borrowed strings. */
typedef struct {
	const char *token_url;
	const char *device_url; /* NULL if the provider has none */
	const char *client_id;
	const char *client_secret;    /* NULL: a public client */
	const char *ca_file;          /* NULL: the system's CA store */
	long timeout_s;               /* whole request; 0: 30 s */
	const struct pp_proxy *proxy; /* the installation's proxy (pp_proxy.h); NULL: direct */
} pp_oauth_endpoint_t;

/* A token response. Owned strings (NULL when absent). */
typedef struct {
	char *access_token;
	char *refresh_token; /* NULL: the old one stays good (no rotation) */
	char *id_token;
	char *scope;
	int64_t expires_in; /* seconds; 0 when the server did not say */
	char error[64];     /* the OAuth error code, when not OK */
	char error_description[256];
} pp_oauth_tokens_t;

/* A device authorization response. Owned strings. */
typedef struct {
	char *device_code;
	char *user_code;
	char *verification_uri;
	char *verification_uri_complete; /* NULL when absent */
	char *message;                   /* NULL when absent */
	int64_t expires_in;
	int64_t interval; /* seconds between polls (5 when absent) */
} pp_oauth_device_t;

const char *pp_oauth_status_name(pp_oauth_status_t st);

/* pp_oauth_device_start - ask for a device code for scopes. */
pp_oauth_status_t pp_oauth_device_start(const pp_oauth_endpoint_t *ep, const char *scopes,
                                        pp_oauth_device_t *out, char *err, size_t errlen);
/* pp_oauth_device_poll - one poll of the token endpoint for device_code. */
pp_oauth_status_t pp_oauth_device_poll(const pp_oauth_endpoint_t *ep, const char *device_code,
                                       pp_oauth_tokens_t *out, char *err, size_t errlen);
/* pp_oauth_code_exchange - the authorization code (with the PKCE verifier
 * and the redirect URI used) for tokens. */
pp_oauth_status_t pp_oauth_code_exchange(const pp_oauth_endpoint_t *ep, const char *code,
                                         const char *redirect_uri, const char *verifier,
                                         pp_oauth_tokens_t *out, char *err, size_t errlen);
/* pp_oauth_refresh - a new access token for refresh_token (scopes may be
 * NULL: the ones granted). */
pp_oauth_status_t pp_oauth_refresh(const pp_oauth_endpoint_t *ep, const char *refresh_token,
                                   const char *scopes, pp_oauth_tokens_t *out, char *err,
                                   size_t errlen);

/* ---- pure functions (unit tested) ---- */

/* pp_oauth_parse_tokens - a token endpoint's answer (HTTP status, body)
 * into out. A 200 without access_token is UNAVAILABLE. */
pp_oauth_status_t pp_oauth_parse_tokens(long http_status, const char *body, size_t len,
                                        pp_oauth_tokens_t *out, char *err, size_t errlen);
/* pp_oauth_parse_device - a device authorization answer into out. */
pp_oauth_status_t pp_oauth_parse_device(long http_status, const char *body, size_t len,
                                        pp_oauth_device_t *out, char *err, size_t errlen);
/* pp_oauth_id_token_name - who an OpenID Connect id_token names
 * (preferred_username, email, upn or sub of its payload; the signature is
 * not checked: for display only). Owned, or NULL. */
char *pp_oauth_id_token_name(const char *id_token);
/* pp_oauth_sasl_safe - 1 if text may go into a SASL XOAUTH2/OAUTHBEARER
 * message (printable ASCII, no ^A): user names and tokens from outside. */
int pp_oauth_sasl_safe(const char *text);

/* pp_oauth_tokens_clear - wipe and free the strings. */
void pp_oauth_tokens_clear(pp_oauth_tokens_t *t);
void pp_oauth_device_clear(pp_oauth_device_t *d);

#endif
