/*
 * sender_account.c - the cache of email accounts the sender delivers
 * through: settings read from email_accounts (again once per batch), the
 * practice's mail domain for EHLO, and each account's open SMTP
 * connection. The secret is decrypted only to open a connection.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pp_log.h"
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
	ACCT_NCOLS
};

static const char account_sql[] =
    "SELECT a.practice_id, a.smtp_host, a.smtp_port, a.smtp_tls, a.smtp_auth, "
    "a.smtp_username, a.smtp_secret, nullif(a.smtp_ca_file, ''), a.smtp_verify, "
    "a.from_address, p.mail_domain, a.max_message_bytes "
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

static void account_free(sender_account_t **ap)
{
	sender_account_t *a = *ap;
	if (a == NULL)
		return;
	sender_smtp_free(&a->smtp);
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
	a->fingerprint = account_fingerprint(res);
	if (account_parse_tls(pp_db_value(res, 0, ACCT_TLS), &a->tls) != 0) {
		snprintf(err, errlen, "unknown TLS mode %s", pp_db_value(res, 0, ACCT_TLS));
		return -2;
	}
	if (a->host[0] == '\0') {
		snprintf(err, errlen, "no SMTP host is set");
		return -2;
	}
	if (a->auth && (a->secret == NULL || a->username[0] == '\0')) {
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

int sender_account_get(sender_accounts_t *accts, pp_db_t *db, int64_t id, uint64_t generation,
                       sender_account_t **out, char *err, size_t errlen)
{
	sender_account_t *a;
	char idtext[24];
	int rc = 0;

	*out = NULL;
	for (a = accts->head; a != NULL; a = a->next)
		if (a->id == id)
			break;
	if (a != NULL && a->generation == generation && a->fingerprint != NULL) {
		*out = a;
		return 0;
	}
	snprintf(idtext, sizeof(idtext), "%lld", (long long)id);
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
	char *fp = account_fingerprint(res);
	if (a->fingerprint == NULL || strcmp(fp, a->fingerprint) != 0) {
		if (a->smtp != NULL)
			log_info("account=%lld settings changed; reconnecting", (long long)id);
		sender_smtp_free(&a->smtp);
		rc = account_load(a, res, err, errlen);
	}
	free(fp);
	PQclear(res);
	if (rc != 0) {
		free(a->fingerprint); /* read it again next time */
		a->fingerprint = NULL;
		return rc;
	}
	a->generation = generation;
	*out = a;
	return 0;
}

sender_smtp_t *sender_account_connection(sender_account_t *a, pp_daemon_t *d,
                                         const sender_smtp_opts_t *opts, char *err, size_t errlen)
{
	char *password = NULL;
	a->used_ms = pp_mono_ms();
	if (a->smtp != NULL)
		return a->smtp;
	if (a->auth) {
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
	a->smtp = sender_smtp_new(a, password, opts, err, errlen);
	if (password != NULL)
		pp_secret_wipe_free(password);
	return a->smtp;
}

void sender_account_drop_connection(sender_account_t *a)
{
	sender_smtp_free(&a->smtp);
}

void sender_accounts_sweep(sender_accounts_t *accts, int64_t idle_ms)
{
	int64_t now = pp_mono_ms();
	for (sender_account_t **p = &accts->head; *p != NULL;) {
		sender_account_t *a = *p;
		if (now - a->used_ms >= idle_ms) {
			*p = a->next;
			if (a->smtp != NULL)
				log_debug("account=%lld idle connection closed", (long long)a->id);
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
