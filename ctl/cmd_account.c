/*
 * cmd_account.c - `practicepost account add-sms|list|resume` (add-email is
 * in cmd_account_email.c). Owns the account command table and the secret
 * encryption step both add commands share. Listings never show a secret.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ctl.h"

char *ctl_account_encrypt(ctl_t *ctl, const char *path, const char *prompt)
{
	const pp_secret_key_t *key = ctl_key(ctl);
	if (key == NULL)
		return NULL;
	char *plain = ctl_read_secret(path, prompt);
	if (plain == NULL)
		return NULL;
	char *stored = pp_secret_encrypt(key, plain, strlen(plain));
	pp_secret_wipe_free(plain);
	return stored;
}

typedef struct {
	int64_t practice, per_minute;
	const char *name, *url, *user, *password_file, *sender_id, *ca_file;
	int no_verify;
} sms_opts_t;

/* check_sms_url - http(s), and no credentials inside the URL itself. */
static int check_sms_url(const char *url)
{
	if (ctl_check_line("--url", url) != 0)
		return -1;
	if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
		ctl_err("--url must start with http:// or https://");
		return -1;
	}
	const char *host = strstr(url, "://") + 3;
	size_t authority = strcspn(host, "/?#");
	if (memchr(host, '@', authority) != NULL || strcasestr(url, "password=") != NULL) {
		ctl_err("--url must not carry credentials; give --user and --password-file");
		return -1;
	}
	return 0;
}

static int sms_parse(ctl_t *ctl, int argc, char **argv, sms_opts_t *o)
{
	static const struct option opts[] = {{"practice", required_argument, NULL, 'p'},
	                                     {"name", required_argument, NULL, 'n'},
	                                     {"url", required_argument, NULL, 'u'},
	                                     {"user", required_argument, NULL, 'U'},
	                                     {"password-file", required_argument, NULL, 'P'},
	                                     {"sender-id", required_argument, NULL, 's'},
	                                     {"ca-file", required_argument, NULL, 'c'},
	                                     {"no-verify", no_argument, NULL, 'k'},
	                                     {"per-minute", required_argument, NULL, 'r'},
	                                     {NULL, 0, NULL, 0}};
	int ch;
	memset(o, 0, sizeof(*o));
	o->per_minute = 60;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'p':
			if (ctl_parse_id("--practice", optarg, &o->practice) != 0)
				return CTL_USAGE;
			break;
		case 'n':
			o->name = optarg;
			break;
		case 'u':
			o->url = optarg;
			break;
		case 'U':
			o->user = optarg;
			break;
		case 'P':
			o->password_file = optarg;
			break;
		case 's':
			o->sender_id = optarg;
			break;
		case 'c':
			o->ca_file = optarg;
			break;
		case 'k':
			o->no_verify = 1;
			break;
		case 'r':
			if (ctl_parse_int("--per-minute", optarg, 1, 1000000, &o->per_minute) != 0)
				return CTL_USAGE;
			break;
		default:
			return ctl_usage_line(ctl);
		}
	}
	CTL_NO_ARGS(ctl, argc, argv);
	CTL_REQUIRE(ctl, o->practice ? "" : NULL, "--practice");
	CTL_REQUIRE(ctl, o->name, "--name");
	CTL_REQUIRE(ctl, o->url, "--url");
	if (ctl_check_line("--name", o->name) || check_sms_url(o->url) ||
	    (o->user && ctl_check_line("--user", o->user)) ||
	    (o->sender_id && ctl_check_line("--sender-id", o->sender_id)))
		return CTL_USAGE;
	if (o->no_verify)
		ctl_warn("certificate verification is OFF for this SMS account");
	return CTL_OK;
}

static int cmd_account_add_sms(ctl_t *ctl, int argc, char **argv)
{
	sms_opts_t o;
	char practice[PP_LL_LEN], rate[PP_LL_LEN];
	char *secret = NULL;
	int rc = sms_parse(ctl, argc, argv, &o);
	if (rc != CTL_OK)
		return rc;
	if (ctl_db(ctl) == NULL || ctl_practice_exists(ctl, o.practice) != 1)
		return CTL_FAIL;
	if (o.password_file != NULL &&
	    (secret = ctl_account_encrypt(ctl, o.password_file, "SMS provider password")) == NULL)
		return CTL_FAIL;
	PGresult *res = pp_db_exec(
	    ctl->db,
	    "INSERT INTO sms_accounts (practice_id, name, url, username, secret, sender_id, "
	    "ca_file, verify, per_minute) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
	    "RETURNING id",
	    PP_DB_ARGS(pp_lltoa(practice, o.practice), o.name, o.url, o.user ? o.user : "", secret,
	               o.sender_id ? o.sender_id : "", o.ca_file, o.no_verify ? "f" : "t",
	               pp_lltoa(rate, o.per_minute)));
	free(secret);
	if (res == NULL)
		return ctl_db_fail(ctl, "add the SMS account");
	ctl_print_id(ctl, pp_db_value_ll(res, 0, 0, 0));
	PQclear(res);
	return CTL_OK;
}

static const char account_list_sql[] =
    "SELECT * FROM ("
    "SELECT 'email' AS type, id, practice_id, name, from_address AS address, "
    "smtp_host || ':' || smtp_port AS server, smtp_tls::text AS tls, smtp_auth AS auth, "
    "smtp_username AS username, smtp_secret IS NOT NULL AS has_secret, "
    "smtp_verify AS verify, smtp_ca_file AS ca_file, "
    "CASE WHEN in_protocol = 'none' THEN NULL ELSE in_protocol || '://' || in_host || "
    "':' || in_port END AS incoming, in_tls::text AS in_tls, in_username, "
    "in_secret IS NOT NULL AS in_has_secret, in_verify, in_mailbox, per_minute, daily_cap, "
    "enabled, to_json(paused_at) #>> '{}' AS paused_at, paused_reason, "
    "to_json(tested_at) #>> '{}' AS tested_at, test_result "
    "FROM email_accounts "
    "UNION ALL "
    "SELECT 'sms', id, practice_id, name, sender_id, url, NULL, username <> '', "
    "username, secret IS NOT NULL, verify, ca_file, NULL, NULL, NULL, NULL, NULL, NULL, "
    "per_minute, NULL, enabled, to_json(paused_at) #>> '{}', paused_reason, NULL, NULL "
    "FROM sms_accounts) a "
    "WHERE $1::bigint IS NULL OR practice_id = $1::bigint "
    "ORDER BY practice_id, type, id";

static int cmd_account_list(ctl_t *ctl, int argc, char **argv)
{
	static const ctl_column_t cols[] = {
	    {"type", "TYPE", CTL_COL_TEXT, 0, CTL_COL_BOTH},
	    {"id", "ID", CTL_COL_INT, 0, CTL_COL_BOTH},
	    {"practice_id", "PRACTICE", CTL_COL_INT, 0, CTL_COL_BOTH},
	    {"name", "NAME", CTL_COL_TEXT, 20, CTL_COL_BOTH},
	    {"address", "FROM", CTL_COL_TEXT, 30, CTL_COL_BOTH},
	    {"server", "SERVER", CTL_COL_TEXT, 36, CTL_COL_BOTH},
	    {"tls", "TLS", CTL_COL_TEXT, 0, CTL_COL_BOTH},
	    {"auth", "AUTH", CTL_COL_BOOL, 0, CTL_COL_JSON_ONLY},
	    {"username", "USER", CTL_COL_TEXT, 24, CTL_COL_BOTH},
	    {"has_secret", "SECRET", CTL_COL_BOOL, 0, CTL_COL_JSON_ONLY},
	    {"verify", "VERIFY", CTL_COL_BOOL, 0, CTL_COL_BOTH},
	    {"ca_file", "CA FILE", CTL_COL_TEXT, 0, CTL_COL_JSON_ONLY},
	    {"incoming", "INCOMING", CTL_COL_TEXT, 36, CTL_COL_BOTH},
	    {"in_tls", "IN TLS", CTL_COL_TEXT, 0, CTL_COL_JSON_ONLY},
	    {"in_username", "IN USER", CTL_COL_TEXT, 0, CTL_COL_JSON_ONLY},
	    {"in_has_secret", "IN SECRET", CTL_COL_BOOL, 0, CTL_COL_JSON_ONLY},
	    {"in_verify", "IN VERIFY", CTL_COL_BOOL, 0, CTL_COL_JSON_ONLY},
	    {"in_mailbox", "MAILBOX", CTL_COL_TEXT, 0, CTL_COL_JSON_ONLY},
	    {"per_minute", "PER MIN", CTL_COL_INT, 0, CTL_COL_BOTH},
	    {"daily_cap", "DAILY CAP", CTL_COL_INT, 0, CTL_COL_BOTH},
	    {"enabled", "ENABLED", CTL_COL_BOOL, 0, CTL_COL_BOTH},
	    {"paused_at", "PAUSED SINCE", CTL_COL_TIME, 0, CTL_COL_BOTH},
	    {"paused_reason", "PAUSED BECAUSE", CTL_COL_TEXT, 40, CTL_COL_BOTH},
	    {"tested_at", "TESTED", CTL_COL_TIME, 0, CTL_COL_JSON_ONLY},
	    {"test_result", "TEST RESULT", CTL_COL_TEXT, 0, CTL_COL_JSON_ONLY},
	};
	int64_t practice = 0;
	char pid[PP_LL_LEN];
	int rc = ctl_parse_practice_only(ctl, argc, argv, 0, &practice);
	if (rc != 0)
		return rc;
	if (ctl_db(ctl) == NULL)
		return CTL_FAIL;
	PGresult *res = pp_db_exec(ctl->db, account_list_sql,
	                           PP_DB_ARGS(practice ? pp_lltoa(pid, practice) : NULL));
	if (res == NULL)
		return ctl_db_fail(ctl, "list the accounts");
	ctl_print_rows(ctl, res, cols, (int)(sizeof(cols) / sizeof(cols[0])));
	PQclear(res);
	return CTL_OK;
}

/* account_resume - one transaction: unpause, resolve the account's open
 * diagnostics. Prints the outcome. */
static int account_resume(ctl_t *ctl, int64_t id, int sms)
{
	char idtext[PP_LL_LEN];
	const char *table = sms ? "sms_accounts" : "email_accounts";
	const char *what = sms ? "SMS account" : "email account";
	char *update = xasprintf("WITH old AS (SELECT id, paused_at, paused_reason FROM %s "
	                         "WHERE id = $1 FOR UPDATE) UPDATE %s a SET paused_at = NULL, "
	                         "paused_reason = NULL FROM old WHERE a.id = old.id "
	                         "RETURNING old.paused_at IS NOT NULL, old.paused_reason",
	                         table, table);
	char *resolve = xasprintf("UPDATE diagnostics SET resolved_at = now() WHERE %s = $1 "
	                          "AND resolved_at IS NULL",
	                          sms ? "sms_account_id" : "email_account_id");
	PGresult *res = NULL, *diag = NULL;
	int rc = CTL_FAIL;
	pp_lltoa(idtext, id);
	if (pp_db_begin(ctl->db) != 0 ||
	    (res = pp_db_exec(ctl->db, update, PP_DB_ARGS(idtext))) == NULL ||
	    (PQntuples(res) == 1 &&
	     (diag = pp_db_exec(ctl->db, resolve, PP_DB_ARGS(idtext))) == NULL)) {
		ctl_db_fail(ctl, "resume the account");
		goto fail;
	}
	if (PQntuples(res) == 0) {
		ctl_err("no %s with id %lld (see: practicepost account list)", what, (long long)id);
		goto fail;
	}
	if (pp_db_commit(ctl->db) != 0) {
		ctl_db_fail(ctl, "resume the account");
		goto fail;
	}
	const char *was = pp_db_value(res, 0, 0);
	const char *reason = pp_db_value(res, 0, 1);
	printf("%s %lld %s%s%s; %s diagnostic(s) resolved\n", what, (long long)id,
	       was && strcmp(was, "t") == 0 ? "resumed (was paused: " : "was not paused",
	       was && strcmp(was, "t") == 0 ? (reason ? reason : "no reason given") : "",
	       was && strcmp(was, "t") == 0 ? ")" : "", PQcmdTuples(diag));
	rc = CTL_OK;
fail:
	if (rc != CTL_OK)
		pp_db_rollback(ctl->db);
	PQclear(res);
	PQclear(diag);
	free(update);
	free(resolve);
	return rc;
}

static int cmd_account_resume(ctl_t *ctl, int argc, char **argv)
{
	static const struct option opts[] = {{"sms", no_argument, NULL, 's'}, {NULL, 0, NULL, 0}};
	int ch, sms = 0;
	int64_t id;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch != 's')
			return ctl_usage_line(ctl);
		sms = 1;
	}
	if (optind != argc - 1)
		return ctl_usage(ctl, "give exactly one account id");
	if (ctl_parse_id("account id", argv[optind], &id) != 0)
		return CTL_USAGE;
	if (ctl_db(ctl) == NULL)
		return CTL_FAIL;
	int rc = account_resume(ctl, id, sms);
	if (rc == CTL_OK)
		ctl_wake(ctl, sms ? "sms" : "sender");
	return rc;
}

const ctl_command_t ctl_account_commands[] = {
    {"account", "add-email", ctl_account_add_email,
     "--practice ID --name N --from ADDR [--from-name NAME] --smtp-host H [--smtp-port P] "
     "[--smtp-tls implicit|starttls|starttls_optional|none] [--smtp-user U] [--no-auth] "
     "[--ca-file F] [--no-verify] [--password-file F] [--in-protocol imap|pop3|none "
     "--in-host H [--in-port P] [--in-tls MODE] [--in-user U] [--in-password-file F] "
     "[--in-ca-file F] [--in-no-verify] [--in-mailbox M] [--in-poll-seconds N]] "
     "[--per-minute N] [--daily-cap N] [--parallel-connections N] [--max-message-bytes N] "
     "[--auth password|oauth2] [--allow-setup-without-details]",
     "add a mail account; passwords are read from F (\"-\" = standard input: outgoing "
     "first line, incoming second) and stored encrypted; prints its id. Saved disabled, "
     "then tested through the running service (steps on stderr): enabled when the test "
     "passes, else exit 1 and it stays disabled until account test passes (--auth oauth2: "
     "no passwords, run account oauth and authenticate, then account test; "
     "--allow-setup-without-details: servers and passwords may be missing, saved disabled, "
     "nothing connects)"},
    {"account", "add-sms", cmd_account_add_sms,
     "--practice ID --name N --url URL [--user U] [--password-file F] [--sender-id S] "
     "[--ca-file F] [--no-verify] [--per-minute N]",
     "add an SMS provider account (Kannel sendsms URL); prints its id"},
    {"account", "list", cmd_account_list, "[--practice ID]",
     "list accounts with their servers and paused state (never secrets)"},
    {"account", "resume", cmd_account_resume, "[--sms] ID",
     "resume a paused account (email unless --sms) and resolve its open diagnostics"},
    {NULL, NULL, NULL, NULL, NULL},
};
