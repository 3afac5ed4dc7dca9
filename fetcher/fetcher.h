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

#include "fetcher_classify.h"
#include "pp_daemon.h"
#include "pp_db.h"
#include "pp_proxy.h"
#include "pp_util.h"

#define FETCHER_STAGE "fetcher"

/* Settings of the [fetcher] section, read at start and on SIGHUP. */
typedef struct {
	int64_t lease_s;           /* claim lease on an account */
	int64_t batch;             /* messages per account per poll */
	int64_t connect_timeout_s; /* TCP + TLS + login */
	int64_t transfer_timeout_s;
	int64_t max_message_bytes; /* larger messages are skipped with a diagnostic */
	int idle;                  /* use IMAP IDLE where accounts and servers allow */
	int64_t idle_max_accounts; /* IDLE connections per instance */
	int64_t idle_renew_s;      /* DONE + IDLE again after this (RFC 2177: < 29 min) */
	int64_t idle_refresh_s;    /* re-read the accounts to idle on */
	int64_t commit_messages;   /* group commit: at most this many messages, */
	int64_t commit_bytes;      /* this many bytes, */
	int64_t commit_ms;         /* or this long a transaction */
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
	int64_t delete_after_days; /* POP3: delete stored mail after this; 0 never */
	int64_t lease_renew_ms;    /* monotonic time of the next lease renewal */
	int oauth;                 /* auth_kind oauth2: log in with the shared access token */
	int oauthbearer;           /* SASL OAUTHBEARER rather than XOAUTH2 */
	char *bearer;              /* the access token (plaintext, wiped by _clear) */
	int token_status;          /* pp_token_status_t of fetching it */
	char *token_error;         /* why there is none (never a token) */
	pp_proxy_t *proxy;         /* the installation's proxy for email (owned); NULL: direct */
	char *proxy_error;         /* a proxy is set but cannot be used: do not connect */
} fetcher_account_t;

/* How one poll of an account ended. */
typedef enum {
	FETCHER_POLL_DONE = 0,   /* everything new was stored */
	FETCHER_POLL_MORE,       /* stopped at the batch limit or on SIGTERM: poll again soon */
	FETCHER_POLL_ACCOUNT_ERR /* server, login, TLS or settings problem: diagnostic */
} fetcher_poll_status_t;

/* A message whose statement was sent (or is staged) and whose result is
 * not taken yet. */
typedef struct {
	pp_buf_t lines; /* its log lines, each without "msg=ID " */
	char *dup;      /* its line if it turns out already stored */
	char uid[PP_LL_LEN + 8];
	int rows; /* the first message of a sent statement: its count; else 0 */
} fetcher_pending_t;

/* fetcher_rows.c - one statement storing up to FETCHER_ROWS_MAX messages
 * of a group (see the file). */
#define FETCHER_ROWS_MAX 8
#define FETCHER_ROW_VALUES 26
/* Staged messages are sent once they hold this many bytes. */
#define FETCHER_STAGE_BYTES (128 * 1024)
typedef struct {
	const char *v[FETCHER_ROW_VALUES]; /* the values, in the statement's order */
	char *copies[FETCHER_ROW_VALUES];  /* owned copies (fetcher_row_keep) */
	char person[PP_LL_LEN], related[PP_LL_LEN], size[PP_LL_LEN], date[PP_LL_LEN];
	char *filed_by, *received, *filed; /* owned */
	char *atts;                        /* owned: the attachments read from the raw message */
	size_t bytes;                      /* the values' length */
} fetcher_row_t;
typedef struct {
	char practice[PP_LL_LEN], account[PP_LL_LEN], uidvalidity[PP_LL_LEN];
	const char *mailbox;
} fetcher_rows_shared_t;

/* Statements of one group the store leaves running at most. */
#define FETCHER_PIPELINE_DEPTH 8

/* Messages stored in one open transaction, committed together. */
typedef struct {
	int open;          /* a transaction is open */
	int count;         /* messages in it */
	size_t bytes;      /* their raw size */
	int64_t opened_ms; /* monotonic */
	int64_t stored;    /* new rows in it */
	pp_buf_t log;      /* their log lines, printed after the commit */
	/* The last messages' statements may still be running (pipelined,
	 * oldest first): their results are taken before anything else runs
	 * on the connection. */
	fetcher_pending_t *pending;
	int npending, pending_cap;
	int nsent; /* statements sent whose results are not taken yet */
	/* Messages staged for the next statement (their pending entries are
	 * the last nstage), with the group's values for it. */
	fetcher_row_t stage[FETCHER_ROWS_MAX];
	int nstage, stage_pop3;
	size_t stage_bytes;
	fetcher_rows_shared_t stage_shared;
	char *stage_mailbox;
	/* The read position the group reaches (IMAP): written before its
	 * commit. */
	int64_t advance_uid, advance_uidvalidity;
	char *advance_mailbox;
} fetcher_batch_t;

typedef struct {
	fetcher_poll_status_t status;
	int db_failed;         /* a database statement failed: temporary */
	int pipelined;         /* the store may leave a message's statement running */
	int listed;            /* logged in and listed the mailbox: the account works */
	int64_t stored;        /* new message rows */
	char code[48];         /* diagnostic code when status == FETCHER_POLL_ACCOUNT_ERR */
	char text[512];        /* its text: never a password */
	fetcher_batch_t batch; /* stored, not yet committed */
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
/* fetcher_account_renew_due - the lease is due for renewal. */
int fetcher_account_renew_due(const fetcher_account_t *acct);
/* fetcher_account_renew - extend the lease when due; -1 if the claim was lost. */
int fetcher_account_renew(pp_daemon_t *d, const fetcher_settings_t *s, fetcher_account_t *acct);
void fetcher_account_clear(fetcher_account_t *acct);
/* fetcher_account_token - for an OAuth2 account: the shared access token
 * (bearer), or token_status/token_error saying why there is none. */
void fetcher_account_token(pp_db_t *db, pp_daemon_t *d, fetcher_account_t *acct);
/* fetcher_account_proxy - the proxy to connect through (from cache, read
 * on db), or proxy_error saying why there is no way to connect. */
void fetcher_account_proxy(pp_proxy_cache_t *cache, pp_db_t *db, pp_daemon_t *d,
                           fetcher_account_t *acct);
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

/* fetcher_imapc.c - the IMAP conversation on a connect-only libcurl
 * handle (libcurl connects, does TLS and logs in). Once broken (the
 * connection failed, timed out, or a command was refused) every call fails
 * and error says why. */
typedef struct {
	CURL *curl; /* borrowed from the session */
	curl_socket_t sock;
	pp_buf_t in; /* received; [off, len) not yet consumed */
	size_t off;
	int tag;
	char tagbuf[16];
	int64_t timeout_ms; /* without progress */
	int broken;
	int refused; /* the last command was answered NO or BAD */
	char error[256];
} fetcher_imapc_t;

/* fetcher_imapc_open - connect and log in; 0, or the CURLcode. */
int fetcher_imapc_open(fetcher_imapc_t *c, fetcher_session_t *sess, int64_t timeout_ms);
void fetcher_imapc_close(fetcher_imapc_t *c);
int fetcher_imapc_send(fetcher_imapc_t *c, const char *text);
/* fetcher_imapc_fill - read what has arrived, without waiting. */
int fetcher_imapc_fill(fetcher_imapc_t *c);
/* fetcher_imapc_take_line - a complete line already read (owned, no CRLF), or NULL. */
char *fetcher_imapc_take_line(fetcher_imapc_t *c);
/* fetcher_imapc_line - the next line, waiting up to the timeout; NULL if broken. */
char *fetcher_imapc_line(fetcher_imapc_t *c);
/* fetcher_imapc_bytes - exactly n bytes (a literal) appended to out, or
 * dropped if out is NULL. 0 / -1. */
int fetcher_imapc_bytes(fetcher_imapc_t *c, size_t n, pp_buf_t *out);
/* fetcher_imapc_next_tag - a new tag for the next command ("ppN"). */
const char *fetcher_imapc_next_tag(fetcher_imapc_t *c);
/* fetcher_imapc_tagged - 1 if line is the last tag's answer (*ok: it was OK). */
int fetcher_imapc_tagged(const fetcher_imapc_t *c, const char *line, int *ok);
/* fetcher_imapc_command - send "TAG cmd" and read to its answer; untagged
 * lines are appended to untagged (if not NULL). 0 on OK. */
int fetcher_imapc_command(fetcher_imapc_t *c, const char *cmd, pp_buf_t *untagged);

/* fetcher_imap.c / fetcher_pop3.c: one poll of a claimed account. */
/* fetcher_imap_quote - the mailbox as an IMAP quoted string (owned); NULL
 * if it holds something a quoted string cannot carry (CR, LF, 8-bit). */
char *fetcher_imap_quote(const char *mailbox);
typedef struct fetcher_pipe fetcher_pipe_t; /* fetcher_pipe.c */
void fetcher_imap_poll(pp_daemon_t *d, const fetcher_settings_t *s, fetcher_account_t *acct,
                       fetcher_pipe_t **pipe, fetcher_poll_t *poll);
void fetcher_pop3_poll(pp_daemon_t *d, const fetcher_settings_t *s, fetcher_account_t *acct,
                       fetcher_poll_t *poll);

/* Bounds on a message's MIME structure (fetcher_parts.c). */
#define FETCHER_MAX_PARTS 1000
#define FETCHER_MAX_DEPTH 32

/* One attachment (or embedded message) of an incoming message. Owned. */
typedef struct {
	char *filename;      /* safe to show: UTF-8, no control chars or slashes */
	char *content_type;  /* "type/subtype", lower case */
	char *part_path;     /* "1.2": where in the MIME tree */
	char *content_id;    /* or NULL */
	unsigned char *data; /* decoded bytes; NULL when read from the raw message */
	size_t len;
	char sha256[PP_SHA256_HEX_LEN];
	/* Where the part's content lies in the raw message, when the database
	 * can decode it from there (raw_encoding "base64" or "identity"):
	 * then the bytes are not stored a second time. raw_encoding NULL:
	 * they must be. */
	int64_t raw_offset, raw_length;
	const char *raw_encoding;
} fetcher_attachment_t;

/* fetcher_idle.c - the IMAP IDLE thread (none with --once or idle off). */
typedef struct fetcher_idle fetcher_idle_t;
fetcher_idle_t *fetcher_idle_start(pp_daemon_t *d, const fetcher_settings_t *s);
void fetcher_idle_stop(fetcher_idle_t **w);

/* fetcher_parse.c - what the store needs from a message, parsed with
 * GMime. Never fails: a message GMime cannot parse keeps empty fields and
 * says why in parse_error. */
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
	char *references; /* "<id> <id>": References (or In-Reply-To) as received */
	int warnings;     /* parser complaints */
	char first_warning[96];
	int unparsable;                         /* GMime found no message at all */
	char *body;                             /* the raw message as valid UTF-8 text */
	int body_lossy;                         /* body differs from the raw bytes */
	char content_sha256[PP_SHA256_HEX_LEN]; /* of the raw bytes */
	char *dedup_key;      /* the Message-ID, else "sha256:" + content_sha256 */
	char *body_text;      /* first inline text/plain (or the HTML's text), or NULL */
	char *body_html;      /* first inline text/html, or NULL: never shown */
	char *body_html_safe; /* body_html sanitised by pp_html */
	fetcher_attachment_t *attachments;
	size_t nattachments;
	char *parse_error;      /* why part of the message could not be read, or NULL */
	fetcher_classify_t cls; /* bounce, auto-reply, unsubscribe or mail */
} fetcher_parsed_t;

void fetcher_parse_init(void);
void fetcher_parse_shutdown(void);
void fetcher_parse_message(const char *raw, size_t len, fetcher_parsed_t *out);
void fetcher_parsed_clear(fetcher_parsed_t *p);
/* fetcher_parsed_drop_attachments - free the attachments (the array stays). */
void fetcher_parsed_drop_attachments(fetcher_parsed_t *p);
/* fetcher_utf8_clean - owned valid UTF-8 copy: invalid bytes and NUL become
 * U+FFFD; with header != 0 control characters become spaces. */
char *fetcher_utf8_clean(const char *s, size_t len, int header, int *changed);
/* fetcher_parse_error - set out->parse_error unless already set. */
void fetcher_parse_error(fetcher_parsed_t *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* fetcher_parts.c - bodies and attachments of a parsed message. */
void fetcher_parts_read(GMimeMessage *msg, const char *raw, size_t len, fetcher_parsed_t *out);
/* fetcher_part_bytes - write the decoded content of a leaf part, or an
 * embedded message serialised, to the memory stream mem; its bytes. */
GByteArray *fetcher_part_bytes(GMimeObject *obj, GMimeStream *mem);

/* fetcher_file.c - where an incoming message is filed (rules in the file). */
typedef struct {
	int64_t person_id;  /* 0: unfiled */
	int64_t related_id; /* the outgoing message it answers, bounces or unsubscribes */
	const char *how;    /* bounce, unsubscribe, reference, sender, family, other, none */
	const char *tag;    /* "Patient", "Specialist" or NULL */
	pp_buf_t listed;    /* family members listed with it: "id,id,..." */
	char why[200];
} fetcher_filing_t;

/* fetcher_file - apply the filing rules; 0, or -1 on a database error. */
int fetcher_file(pp_db_t *db, int64_t practice_id, const fetcher_parsed_t *p, fetcher_filing_t *f);
void fetcher_filing_clear(fetcher_filing_t *f);

/* fetcher_attach.c - inside the store's transaction: the attachments rows
 * of message msg_id (fetcher_attach_store), or the exact bytes of a
 * message whose text had to be cleaned (fetcher_attach_original). 0 / -1. */
int fetcher_attach_store(pp_db_t *db, int64_t msg_id, const fetcher_parsed_t *p);
int fetcher_attach_original(pp_db_t *db, int64_t msg_id, const char *raw, size_t len,
                            const char *sha256);

/* fetcher_act.c - what a stored bounce or unsubscribe request does, in the
 * store's transaction: 0, or -1 on a database error. */
int fetcher_act(pp_db_t *db, int64_t practice_id, int64_t msg_id, const fetcher_parsed_t *p,
                const fetcher_filing_t *f);
/* fetcher_act_needed - the message is a bounce or unsubscribe request
 * filed to the outgoing message it acts on. */
int fetcher_act_needed(const fetcher_parsed_t *p, const fetcher_filing_t *f);

/* fetcher_pipe.c - a worker thread that parses and files the next message
 * while the store writes the current one. */
typedef struct {
	char *raw; /* owned */
	size_t len;
	int64_t uid;
	int64_t practice_id;
	fetcher_parsed_t parsed;
	int filed;               /* 1: filing holds the rules' outcome; 0: file it in line */
	fetcher_filing_t filing; /* owned */
} fetcher_pipe_job_t;
/* fetcher_pipe_new - NULL (logged) if no thread could be started. The
 * worker files on a database connection of its own. */
fetcher_pipe_t *fetcher_pipe_new(pp_daemon_t *d);
/* fetcher_pipe_busy - a message was submitted and not yet taken back. */
int fetcher_pipe_busy(fetcher_pipe_t *p);
/* fetcher_pipe_submit - parse raw (taken over) in the worker, and file it
 * for practice_id. */
void fetcher_pipe_submit(fetcher_pipe_t *p, char *raw, size_t len, int64_t uid,
                         int64_t practice_id);
/* fetcher_pipe_wait - the submitted message back, parsed. */
void fetcher_pipe_wait(fetcher_pipe_t *p, fetcher_pipe_job_t *out);
void fetcher_pipe_job_clear(fetcher_pipe_job_t *job);
void fetcher_pipe_free(fetcher_pipe_t **p);

/* fetcher_store.c - parse, file and store downloaded messages, several to
 * a transaction (group commit). */
/* fetcher_store_parsed - store one parsed message (raw: its bytes) in the
 * poll's open group; parsed may be changed. filed: the filing rules'
 * outcome when they already ran (taken over), or NULL to run them here.
 * 0 / -1 as below. */
int fetcher_store_parsed(pp_daemon_t *d, const fetcher_settings_t *s, const fetcher_account_t *acct,
                         const fetcher_source_t *src, const char *raw, size_t len,
                         fetcher_parsed_t *parsed, fetcher_filing_t *filed, fetcher_poll_t *poll);
/* fetcher_store_download - store what the session just downloaded in the
 * poll's open group (committing when the group is full); 0, or -1 when
 * the database failed (poll says so; nothing of the group is stored). */
int fetcher_store_download(pp_daemon_t *d, const fetcher_settings_t *s,
                           const fetcher_account_t *acct, const fetcher_source_t *src,
                           const fetcher_session_t *sess, fetcher_poll_t *poll);
/* fetcher_rows_shared - the group's values of the statement. */
void fetcher_rows_shared(const fetcher_account_t *acct, const fetcher_source_t *src,
                         fetcher_rows_shared_t *out);
/* fetcher_row_fill - one message's row, with its attachments that the
 * database reads from the raw message (fetcher_attach_store stores the
 * others); its texts borrowed from p, f and src until fetcher_row_keep. */
void fetcher_row_fill(fetcher_row_t *row, const fetcher_account_t *acct,
                      const fetcher_source_t *src, const fetcher_parsed_t *p,
                      const fetcher_filing_t *f, size_t len);
/* fetcher_row_keep - the row outlives what it borrowed: it takes p's
 * bodies (left NULL there) and copies the other texts. */
void fetcher_row_keep(fetcher_row_t *row, fetcher_parsed_t *p);
void fetcher_row_clear(fetcher_row_t *row);
/* fetcher_rows_send - the statement for rows[0..n): sent (send, its result
 * taken later) or run (*res: the answer, owned). 0, or -1. */
int fetcher_rows_send(pp_db_t *db, const fetcher_rows_shared_t *sh, int pop3, fetcher_row_t *rows,
                      int n, int send, PGresult **res);
/* fetcher_rows_whole - the statement stores all of the message: every
 * attachment is read from its raw text. */
int fetcher_rows_whole(const fetcher_parsed_t *p);
/* fetcher_rows_id - the id the answer gives row (0: already stored). */
int64_t fetcher_rows_id(const PGresult *res, int row);

/* fetcher_store_skip - mark a message that is too large as read without
 * storing it, with a diagnostic naming it; commits the group. 0 / -1. */
int fetcher_store_skip(pp_daemon_t *d, const fetcher_account_t *acct, const fetcher_source_t *src,
                       int64_t max_bytes, fetcher_poll_t *poll);
/* fetcher_store_settle - take the results of the message statements
 * still running, if any: 0, or -1 when one failed (the group is then
 * dropped and the poll ends; see fetcher_store_parsed). Call before
 * running anything else on the daemon's connection during a poll. */
int fetcher_store_settle(pp_daemon_t *d, const fetcher_account_t *acct, fetcher_poll_t *poll);
/* fetcher_store_flush - commit the poll's open group and log what it
 * stored; 0, or -1 when the commit failed (nothing of it is stored). */
int fetcher_store_flush(pp_daemon_t *d, const fetcher_account_t *acct, fetcher_poll_t *poll);

#endif
