/*
 * cmd_account_oauth.c - OAuth2 email accounts in the CLI: `account oauth`
 * (provider profile, client, scopes; the profile's servers filled in),
 * `account authenticate` (sign-in with the device authorization grant of
 * RFC 8628, the refresh token stored encrypted) and `account show` (who
 * signed in, when, which scopes, and the warnings of email_oauth_warnings).
 * The client secret is read from a file or standard input, never argv.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl_oauth.h"

static const char *const providers[] = {"microsoft", "google", "generic", NULL};
static const char *const mechanisms[] = {"xoauth2", "oauthbearer", NULL};

typedef struct {
	int64_t account, idle_days;
	const char *tenant, *client_id, *secret_file, *secret_expires, *scopes;
	const char *token_url, *device_url, *authorize_url;
	int provider, mechanism, keep_servers;
} oauth_opts_t;

static int oauth_check_url(const char *opt, const char *url)
{
	if (url == NULL)
		return 0;
	if (ctl_check_line(opt, url) != 0)
		return -1;
	if (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0) {
		ctl_err("%s must start with https://", opt);
		return -1;
	}
	return 0;
}

static int oauth_parse(ctl_t *ctl, int argc, char **argv, oauth_opts_t *o)
{
	static const struct option opts[] = {
	    {"account", required_argument, NULL, 'a'},
	    {"provider", required_argument, NULL, 'p'},
	    {"tenant", required_argument, NULL, 't'},
	    {"client-id", required_argument, NULL, 'c'},
	    {"client-secret-file", required_argument, NULL, 's'},
	    {"client-secret-expires", required_argument, NULL, 'e'},
	    {"scopes", required_argument, NULL, 'S'},
	    {"token-url", required_argument, NULL, 'T'},
	    {"device-url", required_argument, NULL, 'D'},
	    {"authorize-url", required_argument, NULL, 'A'},
	    {"mechanism", required_argument, NULL, 'm'},
	    {"refresh-idle-days", required_argument, NULL, 'i'},
	    {"keep-servers", no_argument, NULL, 'k'},
	    {NULL, 0, NULL, 0}};
	int ch;
	memset(o, 0, sizeof(*o));
	o->provider = -1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		int rc = 0;
		switch (ch) {
		case 'a':
			rc = ctl_parse_id("--account", optarg, &o->account);
			break;
		case 'p':
			rc = o->provider = ctl_parse_choice("--provider", optarg, providers);
			break;
		case 't':
			o->tenant = optarg;
			break;
		case 'c':
			o->client_id = optarg;
			break;
		case 's':
			o->secret_file = optarg;
			break;
		case 'e':
			o->secret_expires = optarg;
			break;
		case 'S':
			o->scopes = optarg;
			break;
		case 'T':
			o->token_url = optarg;
			break;
		case 'D':
			o->device_url = optarg;
			break;
		case 'A':
			o->authorize_url = optarg;
			break;
		case 'm':
			rc = o->mechanism = ctl_parse_choice("--mechanism", optarg, mechanisms);
			break;
		case 'i':
			rc = ctl_parse_int("--refresh-idle-days", optarg, 1, 3650, &o->idle_days);
			break;
		case 'k':
			o->keep_servers = 1;
			break;
		default:
			return ctl_usage_line(ctl);
		}
		if (rc < 0)
			return CTL_USAGE;
	}
	CTL_NO_ARGS(ctl, argc, argv);
	CTL_REQUIRE(ctl, o->account ? "" : NULL, "--account");
	CTL_REQUIRE(ctl, o->provider >= 0 ? "" : NULL, "--provider");
	CTL_REQUIRE(ctl, o->client_id, "--client-id");
	if (ctl_check_line("--client-id", o->client_id) ||
	    (o->tenant && ctl_check_line("--tenant", o->tenant)) ||
	    (o->scopes && ctl_check_line("--scopes", o->scopes)) ||
	    (o->secret_expires && ctl_check_line("--client-secret-expires", o->secret_expires)) ||
	    oauth_check_url("--token-url", o->token_url) ||
	    oauth_check_url("--device-url", o->device_url) ||
	    oauth_check_url("--authorize-url", o->authorize_url))
		return CTL_USAGE;
	if (o->tenant && strpbrk(o->tenant, "/?#&") != NULL)
		return ctl_usage(ctl, "--tenant must be a tenant id or domain");
	if (o->provider == 2 && o->token_url == NULL)
		return ctl_usage(ctl, "--provider generic needs --token-url (and --device-url "
		                      "and/or --authorize-url)");
	return CTL_OK;
}

/* The settings row: endpoints from the profile with the tenant filled in
 * unless given; tokens forgotten when the client or endpoint changes. */
static const char oauth_upsert_sql[] =
    "INSERT INTO email_oauth AS o (account_id, provider, tenant, client_id, client_secret, "
    "client_secret_expires, scopes, token_url, device_url, authorize_url, mechanism, "
    "refresh_idle_days) SELECT $1, p.name, t.tenant, $3, $5, $6::date, coalesce($7, "
    "p.default_scopes), coalesce($8, replace(p.token_url, '{tenant}', t.tenant)), "
    "coalesce($9, replace(p.device_url, '{tenant}', t.tenant)), coalesce($10, "
    "replace(p.authorize_url, '{tenant}', t.tenant)), $11, coalesce($12::int, "
    "p.refresh_idle_days) FROM oauth_profiles p CROSS JOIN LATERAL (SELECT coalesce($4, "
    "p.default_tenant) AS tenant) t WHERE p.name = $2 "
    "ON CONFLICT (account_id) DO UPDATE SET provider = EXCLUDED.provider, tenant = "
    "EXCLUDED.tenant, client_id = EXCLUDED.client_id, client_secret = coalesce("
    "EXCLUDED.client_secret, CASE WHEN o.client_id = EXCLUDED.client_id THEN o.client_secret "
    "END), client_secret_expires = coalesce(EXCLUDED.client_secret_expires, "
    "o.client_secret_expires), scopes = EXCLUDED.scopes, token_url = EXCLUDED.token_url, "
    "device_url = EXCLUDED.device_url, authorize_url = EXCLUDED.authorize_url, mechanism = "
    "EXCLUDED.mechanism, refresh_idle_days = EXCLUDED.refresh_idle_days, "
    "access_secret = CASE WHEN o.client_id = EXCLUDED.client_id AND o.token_url = "
    "EXCLUDED.token_url THEN o.access_secret END, refresh_secret = CASE WHEN o.client_id = "
    "EXCLUDED.client_id AND o.token_url = EXCLUDED.token_url THEN o.refresh_secret END "
    "RETURNING token_url";

/* The account: OAuth2 from now on, passwords dropped, and the profile's
 * servers unless kept. */
static const char oauth_account_sql[] =
    "UPDATE email_accounts a SET auth_kind = 'oauth2', smtp_auth = true, smtp_secret = NULL, "
    "in_secret = NULL, smtp_host = CASE WHEN $2 OR p.smtp_host IS NULL THEN a.smtp_host ELSE "
    "p.smtp_host END, smtp_port = CASE WHEN $2 OR p.smtp_host IS NULL THEN a.smtp_port ELSE "
    "p.smtp_port END, smtp_tls = CASE WHEN $2 OR p.smtp_host IS NULL THEN a.smtp_tls ELSE "
    "p.smtp_tls END, in_host = CASE WHEN $2 OR a.in_protocol = 'none' THEN a.in_host WHEN "
    "a.in_protocol = 'pop3' THEN coalesce(p.pop3_host, a.in_host) ELSE coalesce(p.imap_host, "
    "a.in_host) END, in_port = CASE WHEN $2 OR a.in_protocol = 'none' THEN a.in_port WHEN "
    "a.in_protocol = 'pop3' THEN coalesce(p.pop3_port, a.in_port) ELSE coalesce(p.imap_port, "
    "a.in_port) END, in_tls = CASE WHEN $2 OR a.in_protocol = 'none' OR p.imap_host IS NULL "
    "THEN a.in_tls ELSE 'implicit' END, smtp_username = coalesce(nullif(a.smtp_username, ''), "
    "a.from_address), in_username = CASE WHEN a.in_protocol = 'none' THEN a.in_username ELSE "
    "coalesce(nullif(a.in_username, ''), a.from_address) END FROM email_oauth o JOIN "
    "oauth_profiles p ON p.name = o.provider WHERE a.id = $1 AND o.account_id = a.id "
    "RETURNING a.smtp_host, a.smtp_port, a.in_protocol, a.in_host, a.in_port";

static int cmd_account_oauth(ctl_t *ctl, int argc, char **argv)
{
	oauth_opts_t o;
	char id[PP_LL_LEN], days[PP_LL_LEN];
	char *secret = NULL;
	int rc = oauth_parse(ctl, argc, argv, &o);
	if (rc != CTL_OK)
		return rc;
	if (ctl_db(ctl) == NULL)
		return CTL_FAIL;
	if (o.secret_file != NULL &&
	    (secret = ctl_account_encrypt(ctl, o.secret_file, "OAuth2 client secret")) == NULL)
		return CTL_FAIL;
	rc = CTL_FAIL;
	pp_lltoa(id, o.account);
	if (pp_db_begin(ctl->db) != 0) {
		ctl_db_fail(ctl, "start the change");
		goto done;
	}
	PGresult *res = pp_db_exec(
	    ctl->db, oauth_upsert_sql,
	    PP_DB_ARGS(id, providers[o.provider], o.client_id, o.tenant, secret, o.secret_expires,
	               o.scopes, o.token_url, o.device_url, o.authorize_url,
	               mechanisms[o.mechanism], o.idle_days ? pp_lltoa(days, o.idle_days) : NULL));
	if (res == NULL || PQntuples(res) != 1) {
		PQclear(res);
		ctl_db_fail(ctl, "store the OAuth2 settings (does the account exist?)");
		pp_db_rollback(ctl->db);
		goto done;
	}
	PQclear(res);
	res = pp_db_exec(ctl->db, oauth_account_sql, PP_DB_ARGS(id, o.keep_servers ? "t" : "f"));
	if (res == NULL || PQntuples(res) != 1) {
		PQclear(res);
		if (res != NULL)
			ctl_err("email account %s does not exist", id);
		else
			ctl_db_fail(ctl, "switch the account to OAuth2");
		pp_db_rollback(ctl->db);
		goto done;
	}
	if (pp_db_commit(ctl->db) != 0) {
		PQclear(res);
		ctl_db_fail(ctl, "store the OAuth2 settings");
		goto done;
	}
	if (!ctl->json) {
		printf("account %s uses OAuth2 (%s); outgoing %s:%s", id, providers[o.provider],
		       pp_db_value(res, 0, 0), pp_db_value(res, 0, 1));
		if (strcmp(pp_db_value(res, 0, 2), "none") != 0)
			printf(", incoming %s %s:%s", pp_db_value(res, 0, 2),
			       pp_db_value(res, 0, 3), pp_db_value(res, 0, 4));
		printf("\nnext: practicepost account authenticate --account %s\n", id);
	} else {
		ctl_print_id(ctl, o.account);
	}
	PQclear(res);
	rc = CTL_OK;
done:
	free(secret);
	return rc;
}

/* ---- authenticate: device authorization grant ---- */

/* auth_finish - store a sign-in's tokens and say who signed in. */
static int auth_finish(ctl_t *ctl, const pp_oauth_config_t *c, const pp_oauth_tokens_t *t)
{
	char err[512], *who = NULL;
	if (pp_oauth_signin_store(ctl->db, ctl_key(ctl), c, t, &who, err, sizeof(err)) != 0)
		return ctl_err("%s", err);
	printf("Authenticated as %s; scopes: %s\n", who, t->scope ? t->scope : c->scopes);
	free(who);
	return CTL_OK;
}

static int auth_device(ctl_t *ctl, const pp_oauth_config_t *c, int64_t timeout_s)
{
	pp_oauth_endpoint_t ep;
	pp_oauth_device_t dev;
	pp_oauth_tokens_t tok;
	char err[512];
	pp_oauth_config_endpoint(c, &ep);
	pp_oauth_status_t st = pp_oauth_device_start(&ep, c->scopes, &dev, err, sizeof(err));
	if (st != PP_OAUTH_OK)
		return ctl_err("cannot start the sign-in: %s", err);
	printf("To sign in, open %s and enter the code %s\n", dev.verification_uri, dev.user_code);
	if (dev.verification_uri_complete != NULL)
		printf("(or open %s)\n", dev.verification_uri_complete);
	printf("Sign in as %s. Waiting for the sign-in (up to %lld minutes)...\n", c->username,
	       (long long)((dev.expires_in + 59) / 60));
	fflush(stdout);
	int64_t interval = dev.interval, deadline = pp_mono_ms() + dev.expires_in * 1000;
	if (timeout_s > 0 && pp_mono_ms() + timeout_s * 1000 < deadline)
		deadline = pp_mono_ms() + timeout_s * 1000;
	int rc = CTL_FAIL;
	for (;;) {
		ctl_sleep_ms(interval * 1000);
		st = pp_oauth_device_poll(&ep, dev.device_code, &tok, err, sizeof(err));
		if (st == PP_OAUTH_OK) {
			rc = auth_finish(ctl, c, &tok);
			pp_oauth_tokens_clear(&tok);
			break;
		}
		if (st == PP_OAUTH_SLOW_DOWN)
			interval += 5; /* RFC 8628 3.5 */
		else if (st == PP_OAUTH_DENIED) {
			ctl_err("the sign-in was declined; nothing was stored");
			break;
		} else if (st == PP_OAUTH_EXPIRED) {
			ctl_err("the code expired before anyone signed in; run the command again");
			break;
		} else if (st != PP_OAUTH_PENDING && st != PP_OAUTH_UNAVAILABLE) {
			ctl_err("the sign-in failed: %s", err);
			break;
		}
		if (pp_mono_ms() >= deadline) {
			ctl_err("no sign-in within the time allowed; run the command again");
			break;
		}
	}
	pp_oauth_device_clear(&dev);
	return rc;
}

static int cmd_account_authenticate(ctl_t *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"account", required_argument, NULL, 'a'}, {"browser", no_argument, NULL, 'b'},
	    {"pkce", no_argument, NULL, 'b'},          {"port", required_argument, NULL, 'p'},
	    {"timeout", required_argument, NULL, 't'}, {NULL, 0, NULL, 0}};
	int64_t account = 0, port = 0, timeout = 0;
	int browser = 0, ch;
	pp_oauth_config_t c;
	char err[512];
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		int rc = 0;
		if (ch == 'a')
			rc = ctl_parse_id("--account", optarg, &account);
		else if (ch == 'b')
			browser = 1;
		else if (ch == 'p')
			rc = ctl_parse_int("--port", optarg, 0, 65535, &port);
		else if (ch == 't')
			rc = ctl_parse_int("--timeout", optarg, 1, 86400, &timeout);
		else
			return ctl_usage_line(ctl);
		if (rc < 0)
			return CTL_USAGE;
	}
	CTL_NO_ARGS(ctl, argc, argv);
	CTL_REQUIRE(ctl, account ? "" : NULL, "--account");
	if (ctl_db(ctl) == NULL || ctl_key(ctl) == NULL)
		return CTL_FAIL;
	int got = pp_oauth_config_load(ctl->db, ctl_key(ctl), account, &c, err, sizeof(err));
	if (got < 0)
		return ctl_err("%s", err);
	if (got > 0)
		return ctl_err("email account %lld is not an OAuth2 account (see: practicepost "
		               "account oauth)",
		               (long long)account);
	int rc = browser ? ctl_oauth_browser(ctl, &c, (int)port, timeout)
	                 : auth_device(ctl, &c, timeout);
	pp_oauth_config_clear(&c);
	return rc;
}

int ctl_oauth_store(ctl_t *ctl, const pp_oauth_config_t *c, const pp_oauth_tokens_t *t)
{
	return auth_finish(ctl, c, t);
}

/* ---- show ---- */

/* ctl_oauth_print - the sign-in state and warnings of OAuth2 accounts
 * (one, or all with account 0), one line each; the number of warnings or
 * -1 on a database error. */
int ctl_oauth_print(ctl_t *ctl, int64_t account)
{
	char id[PP_LL_LEN];
	PGresult *res = pp_db_exec(
	    ctl->db,
	    "SELECT o.account_id, o.provider, o.authenticated_as, to_char(o.authenticated_at, "
	    "'YYYY-MM-DD HH24:MI TZ'), coalesce(o.granted_scopes, o.scopes), "
	    "to_char(o.refreshed_at, 'YYYY-MM-DD HH24:MI TZ'), o.refresh_secret IS NOT NULL, "
	    "(SELECT string_agg(w.text, E'\\n' ORDER BY w.kind) FROM email_oauth_warnings w "
	    "WHERE w.account_id = o.account_id), (SELECT count(*) FROM email_oauth_warnings w "
	    "WHERE w.account_id = o.account_id) FROM email_oauth o JOIN email_accounts a ON a.id "
	    "= o.account_id WHERE a.auth_kind = 'oauth2' AND ($1::bigint = 0 OR o.account_id = "
	    "$1::bigint) ORDER BY o.account_id",
	    PP_DB_ARGS(pp_lltoa(id, account)));
	if (res == NULL)
		return -1;
	int warnings = 0;
	for (int r = 0; r < PQntuples(res); r++) {
		const char *acct = pp_db_value(res, r, 0);
		if (strcmp(pp_db_value(res, r, 6), "t") == 0)
			printf("account %s (%s): Authenticated as %s on %s, scopes %s; token last "
			       "refreshed %s\n",
			       acct, pp_db_value(res, r, 1), pp_db_value(res, r, 2),
			       pp_db_value(res, r, 3), pp_db_value(res, r, 4),
			       pp_db_value(res, r, 5));
		else
			printf("account %s (%s): not authenticated\n", acct,
			       pp_db_value(res, r, 1));
		const char *w = pp_db_value(res, r, 7);
		for (const char *p = w; p != NULL && *p;) {
			const char *nl = strchr(p, '\n');
			int n = nl ? (int)(nl - p) : (int)strlen(p);
			printf("  warning: %.*s\n", n, p);
			p = nl ? nl + 1 : p + n;
		}
		warnings += (int)pp_db_value_ll(res, r, 8, 0);
	}
	PQclear(res);
	return warnings;
}

static int cmd_account_show(ctl_t *ctl, int argc, char **argv)
{
	int64_t id;
	if (argc != 2)
		return ctl_usage(ctl, "give one email account id");
	if (ctl_parse_id("account", argv[1], &id) != 0)
		return CTL_USAGE;
	if (ctl_db(ctl) == NULL)
		return CTL_FAIL;
	char idtext[PP_LL_LEN];
	PGresult *res = pp_db_exec(
	    ctl->db,
	    "SELECT name, from_address, auth_kind, smtp_host, smtp_port, smtp_tls, "
	    "smtp_username, in_protocol, in_host, in_port, in_username, to_char(paused_at, "
	    "'YYYY-MM-DD HH24:MI TZ'), paused_reason FROM email_accounts WHERE id = $1",
	    PP_DB_ARGS(pp_lltoa(idtext, id)));
	if (res == NULL)
		return ctl_db_fail(ctl, "read the account");
	if (PQntuples(res) != 1) {
		PQclear(res);
		return ctl_err("email account %lld does not exist", (long long)id);
	}
	printf("account %s: %s <%s>\nauthentication: %s\noutgoing: %s:%s (%s) as %s\n", idtext,
	       pp_db_value(res, 0, 0), pp_db_value(res, 0, 1), pp_db_value(res, 0, 2),
	       pp_db_value(res, 0, 3), pp_db_value(res, 0, 4), pp_db_value(res, 0, 5),
	       pp_db_value(res, 0, 6));
	if (strcmp(pp_db_value(res, 0, 7), "none") != 0)
		printf("incoming: %s %s:%s as %s\n", pp_db_value(res, 0, 7), pp_db_value(res, 0, 8),
		       pp_db_value(res, 0, 9), pp_db_value(res, 0, 10));
	if (pp_db_value(res, 0, 11) != NULL)
		printf("PAUSED since %s: %s\n", pp_db_value(res, 0, 11), pp_db_value(res, 0, 12));
	PQclear(res);
	if (ctl_oauth_print(ctl, id) < 0)
		return ctl_db_fail(ctl, "read the OAuth2 state");
	return CTL_OK;
}

const ctl_command_t ctl_oauth_commands[] = {
    {"account", "oauth", cmd_account_oauth,
     "--account ID --provider microsoft|google|generic --client-id ID [--tenant T] "
     "[--client-secret-file F] [--client-secret-expires YYYY-MM-DD] [--scopes \"S ...\"] "
     "[--token-url U] [--device-url U] [--authorize-url U] [--mechanism "
     "xoauth2|oauthbearer] [--refresh-idle-days N] [--keep-servers]",
     "make an email account sign in with OAuth2 (Microsoft 365, Google or explicit "
     "endpoints); the profile's servers are filled in unless --keep-servers"},
    {"account", "authenticate", cmd_account_authenticate,
     "--account ID [--browser|--pkce [--port P]] [--timeout SECONDS]",
     "sign an OAuth2 account in: a code to enter at the provider's page (device flow), or "
     "with --browser a URL to open (authorization code + PKCE, loopback redirect)"},
    {"account", "show", cmd_account_show, "ID",
     "an email account's servers, pause, and OAuth2 sign-in with its warnings"},
    {NULL, NULL, NULL, NULL, NULL},
};
