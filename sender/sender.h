/*
 * sender.h - the email sender stage: what its files share. sender_main.c
 * runs the claim/deliver loop, sender_account.c caches each account's
 * settings and SMTP connection, sender_smtp.c runs one libcurl SMTP
 * transaction and classifies its result, sender_envelope.c builds the
 * envelope recipients. The outbox itself is common/pp_outbox.c.
 */
#ifndef SENDER_H
#define SENDER_H

#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>

#include "pp_daemon.h"
#include "pp_outbox.h"

typedef enum {
	SENDER_TLS_IMPLICIT,          /* smtps:// */
	SENDER_TLS_STARTTLS,          /* STARTTLS required */
	SENDER_TLS_STARTTLS_OPTIONAL, /* STARTTLS if offered (port 25 only) */
	SENDER_TLS_NONE               /* plain text */
} sender_tls_t;

typedef struct {
	long connect_timeout_s;
	long timeout_s; /* per server reply, and for a stalled upload */
} sender_smtp_opts_t;

/* One SMTP connection of one account: a libcurl easy handle that keeps
 * its connection open between messages. */
typedef struct sender_smtp sender_smtp_t;

/* An account's settings as loaded from email_accounts (+ the practice's
 * mail domain), with its connection. Owned by the account cache. */
typedef struct sender_account {
	int64_t id;
	int64_t practice_id;
	char *host;
	int port;
	sender_tls_t tls;
	int auth;
	char *username;
	char *secret;  /* stored (encrypted) form; decrypted only to connect */
	char *ca_file; /* NULL: the system's CA store */
	int verify;
	char *from_address;
	char *mail_domain; /* EHLO name */
	int64_t max_bytes;
	char *fingerprint; /* every setting above, to notice a change */
	sender_smtp_t *smtp;
	int64_t used_ms;
	uint64_t generation; /* batch in which the settings were last read */
	struct sender_account *next;
} sender_account_t;

typedef struct {
	sender_account_t *head;
} sender_accounts_t;

/* ---- sender_account.c ---- */

/* sender_account_get - the account's current settings (read again once
 * per batch generation; a changed account gets a new connection).
 * Returns 0 with *out set; -1 on a database error; -2 when the account
 * cannot be used as configured (err says why: pause it). */
int sender_account_get(sender_accounts_t *accts, pp_db_t *db, int64_t id, uint64_t generation,
                       sender_account_t **out, char *err, size_t errlen);
/* sender_account_connection - the account's SMTP connection, made (and the
 * secret decrypted) on first use. NULL with err: an account problem. */
sender_smtp_t *sender_account_connection(sender_account_t *acct, pp_daemon_t *d,
                                         const sender_smtp_opts_t *opts, char *err, size_t errlen);
/* sender_account_drop_connection - close the account's connection (QUIT). */
void sender_account_drop_connection(sender_account_t *acct);
/* sender_accounts_sweep - close connections unused for idle_ms. */
void sender_accounts_sweep(sender_accounts_t *accts, int64_t idle_ms);
void sender_accounts_clear(sender_accounts_t *accts);

/* ---- sender_smtp.c ---- */

/* sender_smtp_new - a configured handle; password may be NULL (no AUTH)
 * and is copied by libcurl. NULL with err on failure. */
sender_smtp_t *sender_smtp_new(const sender_account_t *acct, const char *password,
                               const sender_smtp_opts_t *opts, char *err, size_t errlen);
void sender_smtp_free(sender_smtp_t **smtp);
/* sender_smtp_send - one SMTP transaction: MAIL FROM from, RCPT TO each of
 * rcpts, DATA body (CRLF MIME, sent as is). Fills res (outcome, reply code
 * and text) and, for an ACCOUNT outcome, *diag_code. */
void sender_smtp_send(sender_smtp_t *smtp, const char *from, const struct curl_slist *rcpts,
                      const char *body, size_t len, pp_outbox_result_t *res,
                      const char **diag_code);

/* ---- sender_envelope.c ---- */

/* sender_envelope_recipients - the RCPT TO list from comma-separated To,
 * Cc and Bcc lists ("a@x, Name <b@y>"); duplicates dropped. NULL with err
 * if an address is malformed or there is none. Free with
 * curl_slist_free_all(). */
struct curl_slist *sender_envelope_recipients(const char *to, const char *cc, const char *bcc,
                                              int *count, char *err, size_t errlen);

#endif
