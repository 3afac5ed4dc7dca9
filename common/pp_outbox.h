/*
 * pp_outbox.h - the channel-independent outgoing queue shared by the email
 * sender and the SMS stage: claiming batches (SKIP LOCKED + lease), the
 * per-account GCRA rate limit and daily cap, the practice's send schedule,
 * recording outcomes (several in one statement), pausing an account and
 * releasing held work. One pp_outbox_t per stage; a pp_outbox_desc_t names
 * the channel's account table so email_accounts and sms_accounts share it.
 *
 * Life of a claimed message (each step one transaction):
 *   claim:    queued -> sending, attempts + 1, claimed_by/lease_until set;
 *             the account's rate_tat advances by one slot per message
 *             (send_now messages take no slot); expired leases -> queued.
 *   record:   SENT -> sent; TEMPORARY -> queued, deliver_after = now +
 *             backoff, flagged once attempts >= PP_MAX_ATTEMPTS;
 *             PERMANENT -> failed; ACCOUNT -> see pp_outbox_pause_account.
 *   release:  sending -> queued, attempt (and daily count) given back
 *             (SIGTERM, lost account, a rate slot missed).
 *
 * Rate limit (GCRA, one timestamp per account, state in the database):
 * rate_tat is the earliest instant the next rate-limited send may start.
 * A claim, holding the account row, deals the slots greatest(rate_tat,
 * now()) + k * (1 minute / per_minute) and commits rate_tat past the last
 * one, so slots never overlap across instances or hosts. Each slot is
 * mapped to this host's monotonic clock from the database clock read in
 * the claim, rounded up: a send is never early. per_minute >=
 * PP_OUTBOX_UNLIMITED_PER_MINUTE means "as fast as possible" (no slots).
 * The retry back-off schedule is documented at pp_outbox_backoff_seconds.
 */
#ifndef PP_OUTBOX_H
#define PP_OUTBOX_H

#include <stddef.h>
#include <stdint.h>

#include "pp_db.h"

/* What one channel's outbox works on. All strings are trusted SQL
 * identifiers written in the stage's code, never data. The account table
 * needs per_minute, rate_tat, enabled, paused_at, paused_reason and
 * practice_id (email_accounts and sms_accounts both have them); with
 * channel "sms" diagnostics name the account as sms_account_id. */
typedef struct {
	const char *stage;          /* "sender", "sms": for diagnostics */
	const char *channel;        /* messages.channel: "email", "sms" */
	const char *account_table;  /* "email_accounts", "sms_accounts" */
	const char *account_column; /* messages column: "email_account_id" */
	const char *columns;        /* extra messages columns the claim returns,
	                             * e.g. "to_addr, cc_addrs"; "" for none */
	int schedule;               /* honour the practice's send schedule (pp_schedule_cutoff) */
	int daily_cap;              /* the account table has daily_cap, sent_today, sent_day */
	int sms_optout;             /* never claim a message to a number opted out of SMS
	                             * (pp_sms_opted_out, 007_sms.sql) */
	int holds;                  /* hold automatic messages on practice holidays, in quiet
	                             * hours, past a patient's cap, or opted out of their type
	                             * (pp_outbox_hold, 009_holds.sql) */
	int sms_sessions;           /* staggered SMS: only within the practice's delivery
	                             * sessions, one message every sms_every (009_holds.sql) */
} pp_outbox_desc_t;

typedef struct {
	int batch_size;      /* messages per claim, all accounts together */
	int lease_seconds;   /* how long a claim holds its messages */
	int rate_horizon_ms; /* claim rate slots falling this far ahead */
	int64_t retry_base_seconds;
} pp_outbox_opts_t;

#define PP_OUTBOX_DEFAULT_BATCH 50
#define PP_OUTBOX_DEFAULT_LEASE 300
#define PP_OUTBOX_DEFAULT_HORIZON_MS 1000
#define PP_OUTBOX_DEFAULT_RETRY_BASE 60
/* At or above this many per minute (one a millisecond) the rate limit is off. */
#define PP_OUTBOX_UNLIMITED_PER_MINUTE 60000

typedef enum {
	PP_OUTCOME_SENT,      /* delivered: sent */
	PP_OUTCOME_TEMPORARY, /* 4xx, network, timeout, TLS handshake: retry */
	PP_OUTCOME_PERMANENT, /* 5xx: failed at once */
	PP_OUTCOME_ACCOUNT    /* the account is broken: pause it, keep the message */
} pp_outcome_t;

/* The result of one delivery attempt. text is the server's reply line or
 * the transport error (never a secret). code 0 = no reply code. */
typedef struct {
	pp_outcome_t outcome;
	long code;
	char text[512];
	int64_t done_us;    /* pp_outbox_now_us() when the outcome came; 0: as recorded.
	                     * A batched record dates sent_at back to it. */
	int64_t started_us; /* pp_outbox_now_us() when the attempt began (the request
	                     * or SMTP transaction): messages.attempted_at; 0: unknown */
} pp_outbox_result_t;

typedef struct {
	int64_t id;
	int64_t account_id;
	int64_t practice_id;
	int attempts; /* including this one */
	int send_now;
	int64_t not_before_ms; /* pp_mono_ms() before which the rate limit forbids sending */
	int64_t not_before_us; /* the same on pp_outbox_now_us(), exact (0: no wait) */
	int64_t interval_us;   /* the account's rate interval; 0: not rate limited */
	int done;              /* outcome recorded or released */
	int in_flight;         /* being delivered or awaiting its record: never released */
	char **cols;           /* desc->columns in order; NULL for SQL NULL */
} pp_outbox_item_t;

/* A claimed batch, grouped by account. Owned by the caller; free with
 * pp_outbox_batch_free(). */
typedef struct {
	pp_outbox_item_t *items;
	size_t count;
	size_t ncols;
	int64_t renewed_ms; /* pp_mono_ms() of the claim or last lease renewal */
} pp_outbox_batch_t;

typedef struct pp_outbox pp_outbox_t;

/* pp_outbox_new - desc is borrowed and must outlive the outbox (a static);
 * db is borrowed; instance is copied (claimed_by). */
pp_outbox_t *pp_outbox_new(pp_db_t *db, const pp_outbox_desc_t *desc, const char *instance);
void pp_outbox_free(pp_outbox_t **ob);
void pp_outbox_set_options(pp_outbox_t *ob, const pp_outbox_opts_t *opts);

/* pp_outbox_claim - one transaction: return expired leases to the queue,
 * then claim up to batch_size due messages of enabled, unpaused accounts
 * within their rate limit. Returns the number claimed (batch filled), or
 * -1 on a database error (nothing claimed). */
int pp_outbox_claim(pp_outbox_t *ob, pp_outbox_batch_t *batch);
void pp_outbox_batch_free(pp_outbox_batch_t *batch);

/* pp_outbox_renew - extend the lease of what the batch still holds, when a
 * third of the lease has passed since the claim or last renewal. 0 / -1. */
int pp_outbox_renew(pp_outbox_t *ob, pp_outbox_batch_t *batch);

/* pp_outbox_fetch - read one text column of a held message (e.g. the
 * body), checking it is still ours. 0 with *out owned (free()), 1 if the
 * message is no longer held by this instance (item marked done), -1 on a
 * database error. column is a trusted identifier. */
int pp_outbox_fetch(pp_outbox_t *ob, pp_outbox_item_t *item, const char *column, char **out,
                    size_t *len);

/* pp_outbox_fetch_many - read one text column of n held messages in one
 * statement: out[i] owned (free()), len[i] its length. A message no
 * longer held gets out[i] = NULL and is marked done. 0 / -1. */
int pp_outbox_fetch_many(pp_outbox_t *ob, pp_outbox_item_t *const *items, size_t n,
                         const char *column, char **out, size_t *len);

/* pp_outbox_record - store the outcome of one attempt (not ACCOUNT: use
 * pp_outbox_pause_account). Marks the item done. 0 / -1; a lease lost
 * before the outcome could be written is logged and returns 0. */
int pp_outbox_record(pp_outbox_t *ob, pp_outbox_item_t *item, const pp_outbox_result_t *res);
/* pp_outbox_record_many - the same for n attempts in one statement (one
 * transaction); results[i] belongs to items[i]. 0 / -1 (nothing recorded). */
int pp_outbox_record_many(pp_outbox_t *ob, pp_outbox_item_t *const *items,
                          const pp_outbox_result_t *results, size_t n);

/* pp_outbox_pause_account - one transaction: pause item's account (if not
 * paused already, with one diagnostic), put item back in the queue without
 * counting the attempt (its last_code/last_error say why), and release
 * every other message of that account the batch holds. 0 / -1. */
int pp_outbox_pause_account(pp_outbox_t *ob, pp_outbox_batch_t *batch, pp_outbox_item_t *item,
                            const char *diag_code, const pp_outbox_result_t *res);

/* pp_outbox_release - give back what the batch still holds (account_id 0:
 * all accounts; items in flight are kept), attempts not counted. Returns
 * the number released or -1. */
int pp_outbox_release(pp_outbox_t *ob, pp_outbox_batch_t *batch, int64_t account_id);
/* pp_outbox_release_items - give back n named items (why: the reason kept
 * in last_code/last_error, or NULL). 0 / -1. */
int pp_outbox_release_items(pp_outbox_t *ob, pp_outbox_item_t *const *items, size_t n,
                            const pp_outbox_result_t *why);

/* pp_outbox_pending - queued and sending messages of the channel, or -1. */
int64_t pp_outbox_pending(pp_outbox_t *ob);

/* pp_outbox_now_us - the monotonic clock of not_before_us, microseconds. */
int64_t pp_outbox_now_us(void);

/* ---- pure functions (unit tested) ---- */

/* pp_outbox_backoff_seconds - delay before retrying after attempt n
 * (see the schedule in pp_outbox.c). */
int64_t pp_outbox_backoff_seconds(int attempts, int64_t base_seconds);

/* pp_outbox_rate_quota - GCRA: how many rate slots an account may use now.
 * wait_ms = rate_tat - now (0 or less: due now); interval_ms = 60000 / per_minute.
 * Slots start at now + wait_ms and are interval_ms apart; those falling
 * within horizon_ms of now count, at most limit. */
int pp_outbox_rate_quota(double wait_ms, double interval_ms, int horizon_ms, int limit);

/* pp_outbox_slot_us - where rate slot k lands on this host's clock: the
 * database said the first slot is wait_us after the instant it read its
 * clock, which was no later than local_us; rounded up, never early. */
int64_t pp_outbox_slot_us(int64_t local_us, double wait_us, double interval_us, int k);

/* pp_outbox_classify_transport - a libcurl error without a server reply:
 * connection refused, unknown host, invalid certificate, TLS required but
 * refused, login denied => ACCOUNT; everything else (timeouts, dropped
 * connections, TLS handshake failures) => TEMPORARY; CURLE_OK => SENT. */
pp_outcome_t pp_outbox_classify_transport(int curl_code);

/* pp_outbox_classify_smtp - one SMTP transaction's result: the libcurl
 * code, the last reply code (0 if none) and whether that reply answered a
 * session command (greeting, EHLO, STARTTLS, AUTH) rather than a message
 * command (MAIL, RCPT, DATA, end of data).
 *   CURLE_OK => SENT; 530/534/535, or login denied with a 5xx => ACCOUNT;
 *   other 4xx => TEMPORARY; 5xx to a session command => ACCOUNT;
 *   5xx to a message command => PERMANENT; no 4xx/5xx reply => transport. */
pp_outcome_t pp_outbox_classify_smtp(int curl_code, long reply_code, int session_phase);

const char *pp_outcome_name(pp_outcome_t outcome);

#endif
