/*
 * fetcher.h - the fetcher stage's internal interfaces: the claimed account,
 * the libcurl session set up for it, the outcome of one poll, and the
 * parse/file/store step every downloaded message goes through.
 */
#ifndef FETCHER_H
#define FETCHER_H

#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>

#include "pp_daemon.h"
#include "pp_db.h"
#include "pp_util.h"

#define FETCHER_STAGE "fetcher"

/* Settings of the [fetcher] section, read at start and on SIGHUP. */
typedef struct {
	int64_t lease_s;           /* claim lease on an account */
	int64_t batch;             /* messages per account per poll */
	int64_t connect_timeout_s; /* TCP + TLS + login */
	int64_t transfer_timeout_s;
	int64_t max_message_bytes; /* larger messages are skipped with a diagnostic */
} fetcher_settings_t;

/* One claimed email account (fetcher_account.c). Strings are owned. */
typedef struct {
	int64_t id;
	int64_t practice_id;
	char *protocol; /* "imap" or "pop3" */
	char *host;
	int port;
	char *tls; /* tls_mode: implicit, starttls, starttls_optional, none */
	char *username;
	char *secret_stored; /* pp_secret stored form; never the plaintext */
	char *ca_file;       /* NULL: the system's CA store */
	int verify;
	char *mailbox;
	int64_t poll_seconds;
	int64_t lease_renew_ms; /* monotonic time of the next lease renewal */
} fetcher_account_t;

/* How one poll of an account ended. */
typedef enum {
	FETCHER_POLL_DONE = 0,   /* everything new was stored */
	FETCHER_POLL_MORE,       /* stopped at the batch limit or on SIGTERM: poll again soon */
	FETCHER_POLL_ACCOUNT_ERR /* server, login, TLS or settings problem: diagnostic */
} fetcher_poll_status_t;

typedef struct {
	fetcher_poll_status_t status;
	int db_failed;  /* a database statement failed: temporary */
	int listed;     /* logged in and listed the mailbox: the account works */
	int64_t stored; /* new message rows */
	char code[48];  /* diagnostic code when status == FETCHER_POLL_ACCOUNT_ERR */
	char text[512]; /* its text: never a password */
} fetcher_poll_t;

/* A libcurl session with one account's server: one easy handle reused
 * for every command, so every command runs on one connection. */
typedef struct {
	CURL *curl;
	char *base_url; /* "imaps://host:port/" */
	pp_buf_t buf;   /* the response of the last transfer */
	int64_t max_bytes;
	int too_large; /* the last transfer hit max_bytes */
	char errbuf[CURL_ERROR_SIZE];
} fetcher_session_t;

/* Where a stored message came from. */
typedef struct {
	const char *mailbox;
	int64_t uidvalidity; /* 0 for POP3 */
	const char *uid;     /* IMAP UID or POP3 UIDL, as text */
	int64_t imap_uid;    /* > 0: advance mailbox_state.last_uid to it */
	int pop3;            /* record uid in pop3_seen */
} fetcher_source_t;

/* fetcher_account.c */
int fetcher_account_claim(pp_daemon_t *d, const fetcher_settings_t *s, fetcher_account_t *acct);
int fetcher_account_release(pp_daemon_t *d, const fetcher_account_t *acct, int poll_again_now);
/* fetcher_account_renew - extend the lease when due; -1 if the claim was lost. */
int fetcher_account_renew(pp_daemon_t *d, const fetcher_settings_t *s, fetcher_account_t *acct);
void fetcher_account_clear(fetcher_account_t *acct);
/* fetcher_account_report - raise the poll's diagnostic once, or resolve
 * the account's open ones after a successful poll. */
int fetcher_account_report(pp_daemon_t *d, const fetcher_account_t *acct,
                           const fetcher_poll_t *poll);
int64_t fetcher_account_due(pp_daemon_t *d);

/* fetcher_session.c: libcurl set-up shared by IMAP and POP3. */
int fetcher_session_open(pp_daemon_t *d, const fetcher_settings_t *s, const fetcher_account_t *acct,
                         fetcher_session_t *sess, fetcher_poll_t *poll);
/* fetcher_session_perform - run one transfer of url (a custom command if
 * request != NULL) into sess->buf. */
CURLcode fetcher_session_perform(fetcher_session_t *sess, const char *url, const char *request);
/* fetcher_session_fail - turn a failed transfer into the poll's account
 * error (code by kind: login, connection, TLS, protocol); a transfer
 * aborted by SIGTERM only makes the account due again. */
void fetcher_session_fail(fetcher_session_t *sess, CURLcode rc, const char *what,
                          const fetcher_account_t *acct, fetcher_poll_t *poll);
/* fetcher_session_new_connection - the last transfer opened a new connection. */
int fetcher_session_new_connection(fetcher_session_t *sess);
void fetcher_session_close(fetcher_session_t *sess);
void fetcher_poll_fail(fetcher_poll_t *poll, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* fetcher_imap.c / fetcher_pop3.c: one poll of a claimed account. */
void fetcher_imap_poll(pp_daemon_t *d, const fetcher_settings_t *s, fetcher_account_t *acct,
                       fetcher_poll_t *poll);
void fetcher_pop3_poll(pp_daemon_t *d, const fetcher_settings_t *s, fetcher_account_t *acct,
                       fetcher_poll_t *poll);

/* fetcher_parse.c - what the store needs from a message, parsed with
 * GMime. Never fails: a message GMime cannot parse keeps empty fields. */
typedef struct {
	char *from_addr; /* first sender mailbox address, or "" */
	char *to_addr;   /* display form, UTF-8 */
	char *cc_addr;
	char *subject;
	int64_t date_unix; /* Date: as seconds since the epoch, if has_date */
	int has_date;
	char *message_id; /* "<id>" or NULL */
	char **refs;      /* bare ids: In-Reply-To first, then References newest first */
	size_t nrefs;
	int warnings; /* parser complaints */
	char first_warning[96];
	int unparsable; /* GMime found no message at all */
	char *body;     /* the raw message as valid UTF-8 text */
	int body_lossy; /* body differs from the raw bytes */
} fetcher_parsed_t;

void fetcher_parse_init(void);
void fetcher_parse_shutdown(void);
void fetcher_parse_message(const char *raw, size_t len, fetcher_parsed_t *out);
void fetcher_parsed_clear(fetcher_parsed_t *p);
/* fetcher_utf8_clean - owned valid UTF-8 copy: invalid bytes and NUL become
 * U+FFFD; with header != 0 control characters become spaces. */
char *fetcher_utf8_clean(const char *s, size_t len, int header, int *changed);

/* fetcher_store.c - parse, file and insert one message in one transaction.
 * Returns 1 stored, 0 already stored (duplicate), -1 database failure. */
int fetcher_store_message(pp_db_t *db, const fetcher_account_t *acct, const fetcher_source_t *src,
                          const char *raw, size_t len);
/* fetcher_store_download - store what the session just downloaded and
 * count it in poll; 0, or -1 when the database failed (poll says so). */
int fetcher_store_download(pp_daemon_t *d, const fetcher_account_t *acct,
                           const fetcher_source_t *src, const fetcher_session_t *sess,
                           fetcher_poll_t *poll);
/* fetcher_store_skip - mark a message that is too large as read without
 * storing it, with a diagnostic naming it. 0 / -1. */
int fetcher_store_skip(pp_db_t *db, const fetcher_account_t *acct, const fetcher_source_t *src,
                       int64_t max_bytes);

#endif
