/*
 * sender.h - the email sender stage: what its files share.
 *   sender_main.c      daemon glue and [sender] configuration
 *   sender_engine.c    the delivery loop: claims, rate slots, dispatch to
 *                      connections, outcome records (group commit, each
 *                      before the connection ends its next message), drain
 *   sender_conn.c      connection threads (one libcurl handle each)
 *   sender_account.c   each account's settings and its connections
 *   sender_smtp.c      one SMTP transaction and its classification
 *   sender_envelope.c  the envelope recipients
 *   sender_policy.c    pure rules (TLS mode per port, rate slot verdict)
 *   sender_check.c     the credential test of an account, in threads of its own
 * The outbox itself (claims, leases, GCRA, schedule) is common/pp_outbox.c.
 *
 * Threads: only the engine's thread touches the database, the daemon and
 * the account cache. A connection thread runs sender_smtp_send() on the
 * job it was handed and nothing else.
 */
#ifndef SENDER_H
#define SENDER_H

#include <curl/curl.h>
#include <pthread.h>
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
	long timeout_s;               /* per server reply, and for a stalled upload */
	const struct pp_proxy *proxy; /* borrowed (the engine's proxy cache); NULL: direct */
	const char *proxy_error;      /* a proxy is set but unusable: connect neither way */
} sender_smtp_opts_t;

/* The diagnostic code of an outcome that was the proxy's, not the
 * account's: the message goes back (attempt not counted), the account's
 * queue waits SENDER_PROXY_RETRY_S, nothing is paused. */
#define SENDER_DIAG_PROXY "proxy_failed"
#define SENDER_PROXY_RETRY_S 60

/* One SMTP connection of one account: a libcurl easy handle that keeps
 * its connection open between messages. */
typedef struct sender_smtp sender_smtp_t;

/* One delivery handed to a connection thread. The engine owns it; the
 * thread fills res and diag. */
typedef struct sender_job {
	pp_outbox_item_t *item; /* borrowed from the engine's hold */
	void *hold;             /* the engine's batch the item belongs to */
	struct sender_account *acct;
	struct sender_conn *conn;
	struct curl_slist *rcpts; /* owned */
	const char *body;         /* borrowed from the hold */
	size_t len;
	pp_outbox_result_t res;
	const char *diag; /* diagnostic code of an ACCOUNT outcome */
	int skipped;      /* never attempted (cancelled, or the account failed) */
	uint64_t seq;     /* its place on the connection (1, 2, ...) */
	struct sender_job *next;
} sender_job_t;

/* The connection threads and the list of finished jobs. */
typedef struct {
	pthread_mutex_t lock;
	pthread_cond_t done_cv;
	sender_job_t *done_head, *done_tail;
} sender_pool_t;

/* One connection: a thread and the handle it drives, with its queue of
 * jobs (run in order). jobs is the engine's view: submitted and not yet
 * taken back. */
typedef struct sender_conn {
	sender_pool_t *pool;
	sender_smtp_t *smtp; /* owned by the thread once started */
	pthread_t thread;
	pthread_cond_t cv;
	sender_job_t *queue_head, *queue_tail; /* under pool->lock */
	int quit;                              /* under pool->lock */
	uint64_t recorded;  /* under pool->lock: jobs up to this seq are recorded */
	uint64_t submitted; /* engine: seq of the last job handed over */
	int jobs;
	int64_t used_ms;
} sender_conn_t;

#define SENDER_MAX_CONNECTIONS 32

/* An account's settings as loaded from email_accounts (+ the practice's
 * mail domain), with its connections. Owned by the account cache. */
typedef struct sender_account {
	int64_t id;
	int64_t practice_id;
	char *host;
	int port;
	sender_tls_t tls;
	int optional_tls_port; /* the one port where starttls_optional may be plain */
	int auth;
	char *username;
	char *secret;  /* stored (encrypted) form; decrypted only to connect */
	char *ca_file; /* NULL: the system's CA store */
	int verify;
	char *from_address;
	char *mail_domain; /* EHLO name */
	int64_t max_bytes;
	int parallel;            /* connections at most */
	int oauth;               /* auth_kind oauth2: a shared access token, not the secret */
	char *fingerprint;       /* every setting above, to notice a change */
	int64_t token_renew_ms;  /* oauth: pp_mono_ms() when the connections' token goes stale */
	int64_t token_warned_ms; /* oauth: warnings last reported (pp_mono_ms()) */
	int64_t token_backoff_s; /* oauth: the last connect found the token endpoint down */
	int token_reauth;        /* oauth: the last connect found no usable consent */
	int oauthbearer;         /* oauth: SASL OAUTHBEARER rather than XOAUTH2 */
	int proxy_failed;        /* the last connect found the proxy unusable */
	PGresult *pending;       /* changed settings, applied once no job is in flight */
	sender_conn_t *conns[SENDER_MAX_CONNECTIONS];
	int nconns;
	int busy;                   /* jobs in flight */
	int close_idle;             /* close the connections once none is busy */
	uint64_t generation;        /* claim in which the settings were last read */
	int64_t last_start_us;      /* engine: the last rate-limited send began */
	uint64_t blocked_step;      /* engine: nothing more for it this step */
	uint64_t rate_blocked_step; /* engine: no rate-limited item this step */
	int64_t used_ms;
	struct sender_account *next;
} sender_account_t;

typedef struct {
	sender_account_t *head;
} sender_accounts_t;

/* ---- sender_engine.c ---- */

typedef struct sender_engine sender_engine_t;

typedef struct {
	int record_max;          /* outcomes recorded in one statement at most */
	int claim_interval_ms;   /* re-claim at least this often while busy */
	int64_t idle_ms;         /* close connections unused this long */
	size_t fetch_bytes;      /* bodies read ahead, in bytes at most */
	sender_smtp_opts_t smtp; /* for new connections */
} sender_engine_opts_t;

/* sender_engine_new - the engine and its outbox (*outbox, borrowed: for
 * the heartbeat's pending count). */
sender_engine_t *sender_engine_new(pp_daemon_t *d, pp_outbox_t **outbox);
void sender_engine_set_options(sender_engine_t *e, const sender_engine_opts_t *opts,
                               const pp_outbox_opts_t *outbox_opts);
/* sender_engine_step - one round of the loop: returns > 0 while work is
 * held (call again), 0 when idle, -1 on a database error. */
int sender_engine_step(sender_engine_t *e);
/* sender_engine_drain - finish what is in flight, record it, give back the
 * rest (SIGTERM, shutdown). */
void sender_engine_drain(sender_engine_t *e);
/* sender_engine_close_connections - after a reload: new settings apply to
 * new connections. */
void sender_engine_close_connections(sender_engine_t *e);
void sender_engine_free(sender_engine_t **e);

/* ---- sender_conn.c ---- */

void sender_pool_init(sender_pool_t *p);
void sender_pool_destroy(sender_pool_t *p);
/* sender_conn_start - a thread driving smtp (ownership passes); NULL with
 * err if the thread cannot be made (smtp is then freed). */
sender_conn_t *sender_conn_start(sender_pool_t *p, sender_smtp_t *smtp, char *err, size_t errlen);
/* sender_conn_submit - queue one job on the connection. After an ACCOUNT
 * outcome the thread hands back the jobs queued behind it as skipped. */
void sender_conn_submit(sender_conn_t *c, sender_job_t *job);
/* sender_conn_cancel - hand back the queued jobs not yet started, as
 * skipped (the one running finishes). */
void sender_conn_cancel(sender_conn_t *c);
/* sender_conn_recorded - the outcome of the connection's job seq (and of
 * every job before it) is in the database: the next message on the
 * connection may end its data. A connection never ends a message's data
 * while the one before it on the connection is unrecorded, so a crash
 * repeats at most one message per connection. */
void sender_conn_recorded(sender_conn_t *c, uint64_t seq);
/* The longest a message's end of data waits for the record of the one
 * before it; then the transaction is given up (nothing delivered). */
#define SENDER_GATE_WAIT_MS 30000
/* sender_conn_stop - QUIT, join and free (no job may be queued). */
void sender_conn_stop(sender_conn_t **c);
/* sender_pool_take - the finished jobs (a list, oldest first), waiting
 * until deadline_us (pp_outbox_now_us) if there are none yet. */
sender_job_t *sender_pool_take(sender_pool_t *p, int64_t deadline_us);

/* ---- sender_account.c ---- */

/* sender_account_get - the account's current settings (read again once
 * per claim generation; changed settings wait until no job is in flight).
 * Returns 0 with *out set; -1 on a database error; -2 when the account
 * cannot be used as configured (err says why: pause it). */
int sender_account_get(sender_accounts_t *accts, pp_db_t *db, int64_t id, uint64_t generation,
                       sender_account_t **out, char *err, size_t errlen);
/* sender_account_apply_pending - apply changed settings once idle.
 * 0, or -2 with err when they cannot be used. */
int sender_account_apply_pending(sender_account_t *acct, char *err, size_t errlen);
/* sender_account_idle_conn - the least loaded connection of the account
 * with fewer than depth jobs queued; a new one (the secret decrypted) while
 * fewer than parallel exist and none is idle. NULL with *err set on an
 * account problem (for OAuth2: token_backoff_s > 0 when the token endpoint
 * is down, token_reauth when consent is gone; proxy_failed when the proxy
 * cannot be used), NULL with err "" when all
 * are full or waiting to reconnect with a fresh token. */
sender_conn_t *sender_account_idle_conn(sender_account_t *acct, pp_daemon_t *d, sender_pool_t *pool,
                                        const sender_smtp_opts_t *opts, int depth, char *err,
                                        size_t errlen);
/* sender_account_defer - hold the account's queued messages back for
 * seconds (OAuth2 token endpoint down, proxy failing; why says which, for
 * the log): no attempt is spent. 0 / -1. */
int sender_account_defer(pp_db_t *db, int64_t id, int64_t seconds, const char *why);
/* sender_account_close_idle - close the connections no job is using. */
void sender_account_close_idle(sender_account_t *acct);
/* sender_accounts_sweep - close connections unused for idle_ms; forget
 * accounts with none left and nothing in flight. */
void sender_accounts_sweep(sender_accounts_t *accts, int64_t idle_ms);
/* sender_accounts_clear - close everything (no job may be in flight). */
void sender_accounts_clear(sender_accounts_t *accts);
sender_account_t *sender_account_find(sender_accounts_t *accts, int64_t id);

/* ---- sender_smtp.c ---- */

/* sender_smtp_new - a configured handle; password may be NULL (no AUTH)
 * and is copied by libcurl; for an OAuth2 account it is the access token
 * (SASL XOAUTH2 or OAUTHBEARER). NULL with err on failure. */
sender_smtp_t *sender_smtp_new(const sender_account_t *acct, const char *password,
                               const sender_smtp_opts_t *opts, char *err, size_t errlen);
void sender_smtp_free(sender_smtp_t **smtp);
/* sender_smtp_gate_fn - called in the connection's thread once the whole
 * body is with libcurl and before the end of data (".") goes out, so the
 * server cannot accept the message before the gate opens: returns 0 to
 * send it, -1 to give the transaction up (a TEMPORARY outcome). */
typedef int sender_smtp_gate_fn(void *arg);
/* sender_smtp_set_gate - the gate of the next transactions; NULL: none. */
void sender_smtp_set_gate(sender_smtp_t *smtp, sender_smtp_gate_fn *gate, void *arg);
/* sender_smtp_send - one SMTP transaction: MAIL FROM from, RCPT TO each of
 * rcpts, DATA body (CRLF MIME, sent as is). Fills res (outcome, reply code
 * and text) and, for an ACCOUNT outcome, *diag_code. A message larger than
 * the SIZE the server advertised fails (PERMANENT) before MAIL FROM. */
void sender_smtp_send(sender_smtp_t *smtp, const char *from, const struct curl_slist *rcpts,
                      const char *body, size_t len, pp_outbox_result_t *res,
                      const char **diag_code);

/* ---- sender_check.c ---- */

typedef struct sender_check sender_check_t;

sender_check_t *sender_check_new(void);
/* sender_check_message - start the credential test an account_test asks
 * for, in a thread of its own; 0, or -1 if msg is of another type. */
int sender_check_message(sender_check_t *c, pp_daemon_t *d, const pp_msg_t *msg);
/* sender_check_free - cancel the tests still running, join, free. */
void sender_check_free(sender_check_t **c);

/* ---- sender_envelope.c ---- */

/* sender_envelope_recipients - the RCPT TO list from comma-separated To,
 * Cc and Bcc lists ("a@x, Name <b@y>"); duplicates dropped. NULL with err
 * if an address is malformed or there is none. Free with
 * curl_slist_free_all(). */
struct curl_slist *sender_envelope_recipients(const char *to, const char *cc, const char *bcc,
                                              int *count, char *err, size_t errlen);

/* ---- sender_policy.c (pure; unit tested) ---- */

/* sender_tls_use_ssl - CURLOPT_USE_SSL for a mode and port: STARTTLS is
 * required on every port except the account's optional_tls_port (25
 * unless the operator names a relay's port), where starttls_optional may
 * fall back to plain text; implicit TLS is always TLS; none is plain. */
long sender_tls_use_ssl(sender_tls_t tls, int port, int optional_tls_port);

typedef enum {
	SENDER_SLOT_GO,    /* may start now */
	SENDER_SLOT_WAIT,  /* its rate slot is still ahead (*wait_us) */
	SENDER_SLOT_MISSED /* it could not start in time: give it back */
} sender_slot_t;

/* Lateness a rate slot tolerates at least: a stall longer than this (and
 * than one interval) hands the message back for a fresh slot, so a stall
 * never turns into a burst. */
#define SENDER_SLOT_LATE_FLOOR_US 100000

/* sender_slot_check - the verdict for an item whose slot starts at
 * not_before_us (0: not rate limited) with the account's interval, when
 * this instance last began a send of the account at last_start_us (0:
 * never): besides its slot, a send waits one interval after the last, so
 * a late send never crowds the next. */
sender_slot_t sender_slot_check(int64_t now_us, int64_t not_before_us, int64_t interval_us,
                                int64_t last_start_us, int64_t *wait_us);

/* sender_size_refused - 1 if a message of len bytes exceeds limit (the
 * server's SIZE, or the account's max_message_bytes; 0 = no limit), with
 * the reason in text. */
int sender_size_refused(size_t len, int64_t limit, const char *whose, char *text, size_t textlen);

#endif
