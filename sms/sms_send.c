/*
 * sms_send.c - the sms stage's delivery loop (see sms_send.h). Owns the
 * claimed batches ("holds") with the account settings read for each, the
 * per-account pacing (requests in flight, when the last rate-limited one
 * began), the requests in flight and the outcomes waiting to be recorded.
 * One step: take finished requests, claim more when running low, start
 * every message whose rate slot has come, hand the outcomes that came back
 * to the recording thread (sms_record.c: every waiting one in one
 * statement, group commit) and take back what it recorded, renew leases,
 * then wait for a request to end, a record or the next slot. A request's
 * slot (parallel_requests per account) stays taken until its outcome is
 * committed, so a crash repeats at most one SMS per slot, while the other
 * slots keep sending during that commit.
 * Also maps an HTTP outcome onto a message or account state change, and
 * keeps the installation's proxy settings for the requests (re-read every
 * minute and on SIGHUP).
 */
#include "sms_send.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pp_log.h"
#include "pp_phone.h"
#include "pp_proxy.h"
#include "pp_secret.h"
#include "pp_sms_text.h"
#include "pp_state.h"
#include "pp_util.h"
#include "sms_account.h"
#include "sms_claim.h"
#include "sms_http.h"
#include "sms_record.h"

/* Delivery reports asked for: delivered (1), undelivered (2) and rejected
 * by the SMS centre (16); "buffered" and "accepted" would only cost
 * callbacks. */
#define SMS_DLR_MASK 19
#define SEND_WAIT_MAX_US 100000      /* a step never sleeps longer */
#define SEND_PACE_KEEP_US 61000000LL /* pacing outlives the longest interval */
#define SEND_PROXY_RETRY_S 60        /* a message the proxy failed waits this long */
/* A paced request starts within this long of its slot, or goes back to the
 * queue: staggered slots are dealt sms_every plus this apart
 * (pp_sms_interval), so no two sends of an account, on any instance, start
 * closer than sms_every. */
#define SEND_SLOT_LATE_US 200000

typedef sms_hold_t hold_t;

/* An account's pacing across holds. */
typedef struct {
	int64_t id;
	int busy;              /* requests in flight */
	int64_t last_start_us; /* the last rate-limited request began; 0: none */
} pace_t;

/* A request in flight (the tag sms_http hands back). */
typedef struct {
	hold_t *hold;
	pp_outbox_item_t *item;
	int64_t started_us; /* pp_outbox_now_us() as the request began */
} flight_t;

/* An outcome waiting to be handed to the recorder, or for its result. */
typedef struct {
	pp_outbox_item_t *item;
	pp_outbox_result_t res;
	int slot; /* the request's slot of its account is free once recorded */
} pending_t;

struct sms_send {
	pp_daemon_t *d;
	pp_outbox_t *outbox;
	sms_send_opts_t opts;
	char *callback_url;
	sms_http_t *http;
	sms_claimer_t *claimer;
	hold_t *holds;
	pace_t *paces;
	size_t npaces, paces_cap;
	sms_recorder_t *recorder;
	pending_t *pending; /* not yet handed over */
	size_t npending, pending_cap;
	pending_t *inrec; /* handed over, in order, result not yet taken */
	size_t ninrec, inrec_cap;
	int64_t last_claim_us;
	int last_claim_full;
	/* Found by the last dispatch pass. */
	size_t undispatched;
	int64_t next_slot_us;
	/* This step: outcomes recorded, and whether something failed. */
	int handled, failed;
	pp_proxy_cache_t *proxy;
	char proxy_error[400];
};

typedef enum { START_SENT, START_DONE, START_NO_KEY } start_t;

sms_send_t *sms_send_new(pp_daemon_t *d, pp_outbox_t *outbox, const pp_outbox_desc_t *desc)
{
	sms_send_t *s = xcalloc(1, sizeof(*s));
	s->d = d;
	s->outbox = outbox;
	s->http = sms_http_new();
	s->claimer = s->http ? sms_claimer_new(d, desc) : NULL;
	s->recorder = s->claimer ? sms_recorder_new(d, desc, sms_http_wake, s->http) : NULL;
	if (s->recorder == NULL) {
		sms_claimer_free(&s->claimer, outbox);
		sms_http_free(&s->http);
		free(s);
		return NULL;
	}
	s->opts.parallel = 1;
	s->opts.record_max = 1;
	s->proxy = pp_proxy_cache_new();
	return s;
}

void sms_send_set_options(sms_send_t *s, const sms_send_opts_t *opts,
                          const pp_outbox_opts_t *outbox_opts)
{
	sms_claimer_set_options(s->claimer, outbox_opts);
	pp_proxy_cache_expire(s->proxy); /* start and SIGHUP: read the proxy again */
	free(s->callback_url);
	s->opts = *opts;
	s->callback_url = opts->callback_url ? xstrdup(opts->callback_url) : NULL;
	s->opts.callback_url = s->callback_url;
	if (s->opts.parallel < 1)
		s->opts.parallel = 1;
	if (s->opts.record_max < 1)
		s->opts.record_max = 1;
	sms_recorder_set_options(s->recorder, outbox_opts, s->opts.record_max);
}

/* ---- pacing ---- */

static pace_t *send_pace(sms_send_t *s, int64_t account_id)
{
	for (size_t i = 0; i < s->npaces; i++)
		if (s->paces[i].id == account_id)
			return &s->paces[i];
	if (s->npaces == s->paces_cap) {
		s->paces_cap = s->paces_cap ? s->paces_cap * 2 : 8;
		s->paces = xrealloc(s->paces, s->paces_cap * sizeof(*s->paces));
	}
	pace_t *p = &s->paces[s->npaces++];
	memset(p, 0, sizeof(*p));
	p->id = account_id;
	return p;
}

/* send_pace_sweep - forget accounts idle for longer than any interval. */
static void send_pace_sweep(sms_send_t *s, int64_t now)
{
	size_t k = 0;
	for (size_t i = 0; i < s->npaces; i++)
		if (s->paces[i].busy > 0 || now - s->paces[i].last_start_us < SEND_PACE_KEEP_US)
			s->paces[k++] = s->paces[i];
	s->npaces = k;
}

/* ---- outcomes ---- */

static void send_pend(sms_send_t *s, pp_outbox_item_t *item, pp_outcome_t outcome, long code,
                      const char *text)
{
	if (s->npending == s->pending_cap) {
		s->pending_cap = s->pending_cap ? s->pending_cap * 2 : 64;
		s->pending = xrealloc(s->pending, s->pending_cap * sizeof(*s->pending));
	}
	pending_t *p = &s->pending[s->npending++];
	item->in_flight = 1; /* attempted: never released */
	p->item = item;
	p->slot = 0;
	memset(&p->res, 0, sizeof(p->res));
	p->res.outcome = outcome;
	p->res.code = code;
	p->res.done_us = pp_outbox_now_us();
	pp_strlcpy(p->res.text, text ? text : "", sizeof(p->res.text));
}

/* send_count - heartbeat counters, once an outcome is in the database. */
static void send_count(sms_send_t *s, const pending_t *p)
{
	if (p->res.outcome == PP_OUTCOME_SENT)
		pp_daemon_count(s->d, 1, 0);
	else if (p->res.outcome == PP_OUTCOME_PERMANENT || p->item->attempts >= PP_MAX_ATTEMPTS)
		pp_daemon_count(s->d, 0, 1);
	if (p->res.outcome != PP_OUTCOME_SENT)
		pp_daemon_count_failure(s->d,
		                        p->res.outcome == PP_OUTCOME_PERMANENT
		                            ? PP_FAILURE_PERMANENT
		                            : PP_FAILURE_TEMPORARY,
		                        1);
}

/* send_flush - hand every pending outcome to the recorder. */
static void send_flush(sms_send_t *s)
{
	if (s->npending == 0)
		return;
	pp_outbox_item_t **items = xcalloc(s->npending, sizeof(*items));
	pp_outbox_result_t *res = xcalloc(s->npending, sizeof(*res));
	for (size_t i = 0; i < s->npending; i++) {
		items[i] = s->pending[i].item;
		res[i] = s->pending[i].res;
	}
	sms_recorder_submit(s->recorder, items, res, s->npending);
	if (s->ninrec + s->npending > s->inrec_cap) {
		s->inrec_cap = (s->ninrec + s->npending) * 2;
		s->inrec = xrealloc(s->inrec, s->inrec_cap * sizeof(*s->inrec));
	}
	memcpy(s->inrec + s->ninrec, s->pending, s->npending * sizeof(*s->pending));
	s->ninrec += s->npending;
	s->npending = 0;
	free(items);
	free(res);
}

/* send_collect - take back what the recorder recorded: its message is
 * done and its slot free; what the database failed waits to be handed
 * over again. */
static void send_collect(sms_send_t *s)
{
	if (s->ninrec == 0)
		return;
	unsigned char *ok = xcalloc(s->ninrec, 1);
	size_t n = sms_recorder_take(s->recorder, ok, s->ninrec);
	for (size_t i = 0; i < n; i++) {
		pending_t *p = &s->inrec[i];
		if (!ok[i]) {
			s->failed = 1;
			send_pend(s, p->item, p->res.outcome, p->res.code, NULL);
			s->pending[s->npending - 1] = *p; /* as it was, slot and all */
			continue;
		}
		p->item->done = 1;
		p->item->in_flight = 0;
		send_count(s, p);
		if (p->slot)
			send_pace(s, p->item->account_id)->busy--;
		s->handled++;
	}
	memmove(s->inrec, s->inrec + n, (s->ninrec - n) * sizeof(*s->inrec));
	s->ninrec -= n;
	free(ok);
}

/* send_pause - an account-wide problem with item: pause the account (one
 * diagnostic), give back every held message of it not in flight. */
static void send_pause(sms_send_t *s, hold_t *h, pp_outbox_item_t *item, long code,
                       const char *diag_code, const char *text)
{
	pp_outbox_result_t res = {.outcome = PP_OUTCOME_ACCOUNT, .code = code};
	pp_strlcpy(res.text, text, sizeof(res.text));
	item->in_flight = 0;
	if (pp_outbox_pause_account(s->outbox, &h->batch, item, diag_code, &res) != 0) {
		item->done = 1; /* not known whether it went out: left to its lease */
		s->failed = 1;
		return;
	}
	pp_daemon_count(s->d, 0, 1);
	pp_daemon_count_failure(s->d, PP_FAILURE_ACCOUNT, 1);
	s->handled++;
	for (hold_t *o = s->holds; o != NULL; o = o->next)
		if (o != h && pp_outbox_release(s->outbox, &o->batch, item->account_id) < 0)
			s->failed = 1;
}

/* send_proxy_failed - the proxy failed, not the account or the message:
 * the message goes back to the queue with its attempt given back
 * (last_error names the proxy) and waits SEND_PROXY_RETRY_S. */
static void send_proxy_failed(sms_send_t *s, pp_outbox_item_t *it, const char *text)
{
	char id[PP_LL_LEN], wait[PP_LL_LEN];
	pp_outbox_result_t why = {.outcome = PP_OUTCOME_TEMPORARY};
	pp_strlcpy(why.text, text, sizeof(why.text));
	it->in_flight = 0;
	if (pp_outbox_release_items(s->outbox, &it, 1, &why) != 0 ||
	    pp_db_command(pp_daemon_db(s->d),
	                  "UPDATE messages SET deliver_after = greatest(deliver_after, now() + "
	                  "$2::bigint * interval '1 second'), updated_at = now() WHERE id = $1 "
	                  "AND state = 'queued'",
	                  PP_DB_ARGS(pp_lltoa(id, it->id), pp_lltoa(wait, SEND_PROXY_RETRY_S))) !=
	        0) {
		s->failed = 1;
		return;
	}
	s->handled++;
	pp_daemon_count_failure(s->d, PP_FAILURE_TEMPORARY, 1);
	log_warnx("msg=%lld sms_account=%lld %s; held back %ds (no attempt counted)",
	          (long long)it->id, (long long)it->account_id, text, SEND_PROXY_RETRY_S);
}

/* send_done - a request ended: map the sendsms answer onto an outcome. */
static void send_done(void *tag, const sms_http_result_t *res, void *arg)
{
	sms_send_t *s = arg;
	flight_t *f = tag;
	pp_outbox_item_t *it = f->item;
	char why[sizeof(res->error) + 64];
	switch (res->outcome) {
	case SMS_HTTP_SENT:
		send_pend(s, it, PP_OUTCOME_SENT, res->code, res->reply);
		break;
	case SMS_HTTP_REJECTED:
		send_pend(s, it, PP_OUTCOME_PERMANENT, res->code, res->error);
		break;
	case SMS_HTTP_TEMPORARY:
		send_pend(s, it, PP_OUTCOME_TEMPORARY, res->code, res->error);
		break;
	case SMS_HTTP_PROXY:
		send_pace(s, it->account_id)->busy--; /* nothing went out */
		send_proxy_failed(s, it, res->error);
		break;
	case SMS_HTTP_ACCOUNT: {
		int auth = res->code == 401 || res->code == 403;
		send_pace(s, it->account_id)->busy--; /* refused: nothing went out */
		snprintf(why, sizeof(why), "%s: %s",
		         auth ? "the SMS gateway refused the account's username or password"
		              : "the SMS account's URL or TLS settings do not work",
		         res->error);
		send_pause(s, f->hold, it, res->code,
		           auth ? "sms_auth_rejected" : "sms_account_error", why);
		break;
	}
	}
	/* A pended outcome keeps the request's slot until it is recorded. */
	if (s->npending > 0 && s->pending[s->npending - 1].item == it) {
		s->pending[s->npending - 1].res.started_us = f->started_us;
		s->pending[s->npending - 1].slot = 1;
	}
	free(f);
}

/* ---- starting a request ---- */

/* send_check - the message's own faults (number, text): 0 with *unicode
 * set, or -1 with its permanent failure pending. */
static int send_check(sms_send_t *s, pp_outbox_item_t *it, const sms_account_t *acct, char *to,
                      int *unicode)
{
	const char *to_addr = it->cols[SMS_COL_TO], *text = it->cols[SMS_COL_TEXT];
	const char *why = NULL;
	char error[200];
	if (pp_phone_e164(to_addr, acct->country, to, &why) != 0) {
		snprintf(error, sizeof(error), "invalid phone number \"%.40s\": %s",
		         to_addr ? to_addr : "", why);
		send_pend(s, it, PP_OUTCOME_PERMANENT, 0, error);
		return -1;
	}
	if (text == NULL || *text == '\0') {
		send_pend(s, it, PP_OUTCOME_PERMANENT, 0, "the SMS text is empty");
		return -1;
	}
	pp_sms_text_kind_t kind = pp_sms_text_classify(text);
	if (kind == PP_SMS_TEXT_INVALID) {
		send_pend(s, it, PP_OUTCOME_PERMANENT, 0,
		          "the SMS text is not valid UTF-8 or holds control characters");
		return -1;
	}
	*unicode = kind == PP_SMS_TEXT_UNICODE;
	return 0;
}

/* send_start - check item and hand it to a request of its own. */
static start_t send_start(sms_send_t *s, hold_t *h, pp_outbox_item_t *it, const sms_account_t *acct,
                          pace_t *pace)
{
	char to[PP_PHONE_MAX];
	int unicode = 0;
	sms_http_result_t res;
	if (send_check(s, it, acct, to, &unicode) != 0)
		return START_DONE;
	const pp_secret_key_t *key = pp_daemon_key(s->d);
	if (key == NULL)
		return START_NO_KEY;
	const pp_proxy_t *proxy = NULL;
	if (pp_proxy_cache_get(s->proxy, pp_daemon_db(s->d), key, PP_PROXY_FOR_SMS, &proxy, NULL,
	                       s->proxy_error, sizeof(s->proxy_error)) != 0) {
		send_proxy_failed(s, it, s->proxy_error);
		return START_DONE;
	}
	char *password = acct->secret ? pp_secret_decrypt(key, acct->secret, NULL) : xstrdup("");
	if (password == NULL) {
		send_pause(s, h, it, 0, "sms_secret_unreadable",
		           "the SMS account's stored password cannot be decrypted with this key "
		           "file; set the password again");
		return START_DONE;
	}
	if (!acct->verify && strncmp(acct->url, "https:", 6) == 0)
		log_warnx("sms_account=%lld TLS certificate verification is turned off",
		          (long long)acct->id);
	char *dlr_url = NULL;
	if (s->callback_url != NULL && acct->callback_secret != NULL)
		dlr_url = xasprintf("%s/sms/dlr?a=%lld&k=%s&m=%lld&t=%%d&c=%%A", s->callback_url,
		                    (long long)acct->id, acct->callback_secret, (long long)it->id);
	const char *sender = it->cols[SMS_COL_SENDER];
	sms_http_request_t req = {
	    .url = acct->url,
	    .username = acct->username,
	    .password = password,
	    .to = to,
	    .text = it->cols[SMS_COL_TEXT],
	    .sender_id = sender && *sender ? sender : acct->sender_id,
	    .ca_file = acct->ca_file,
	    .verify = acct->verify,
	    .unicode = unicode,
	    .timeout_s = s->opts.timeout_s,
	    .connect_timeout_s = s->opts.connect_timeout_s,
	    .extra_params = NULL,
	    .dlr_url = dlr_url,
	    .dlr_mask = SMS_DLR_MASK,
	    .validity_minutes = acct->validity_minutes,
	    .proxy = proxy,
	};
	flight_t *f = xmalloc(sizeof(*f));
	f->hold = h;
	f->item = it;
	f->started_us = pp_outbox_now_us();
	int rc = sms_http_start(s->http, &req, f, &res);
	pp_secret_wipe_free(password);
	if (dlr_url != NULL)
		pp_secret_wipe_free(dlr_url);
	if (rc != 0) {
		free(f);
		send_pend(s, it, PP_OUTCOME_TEMPORARY, 0, res.error);
		return START_DONE;
	}
	it->in_flight = 1;
	pace->busy++;
	return START_SENT;
}

/* ---- claims and dispatch ---- */

/* send_claim_due - claim when nothing is held (to learn whether we are
 * idle), while less than two full claims wait to go, and otherwise every
 * claim_interval_ms while work is held. */
static int send_claim_due(const sms_send_t *s, int64_t now)
{
	size_t batch = (size_t)s->opts.batch_size;
	if (s->holds == NULL)
		return 1;
	if (s->last_claim_full && s->undispatched < 2 * batch)
		return 1;
	return now - s->last_claim_us >= (int64_t)s->opts.claim_interval_ms * 1000;
}

/* send_take - add a finished claim's batch to the holds; returns how many
 * it claimed (-1: a database error), 0 when none had finished. */
static int send_take(sms_send_t *s, int wait_ms)
{
	hold_t *h;
	int n;
	if (!sms_claimer_take(s->claimer, wait_ms, &h, &n))
		return 0;
	s->last_claim_us = pp_outbox_now_us();
	s->last_claim_full = n >= s->opts.batch_size;
	if (h == NULL)
		return n;
	hold_t **tail = &s->holds;
	while (*tail != NULL)
		tail = &(*tail)->next;
	*tail = h;
	return n;
}

/* send_claim - take what the claiming thread has; ask it for more when
 * due. With nothing held the step waits for that claim: whether it finds
 * anything says whether the stage is idle. */
static int send_claim(sms_send_t *s)
{
	int n = send_take(s, 0);
	if (!send_claim_due(s, pp_outbox_now_us()) || !sms_claimer_idle(s->claimer))
		return n;
	sms_claimer_request(s->claimer);
	if (s->holds != NULL)
		return n;
	/* Long enough for any claim; the daemon's loop ticks in between. */
	while (!pp_daemon_stopping(s->d) && !sms_claimer_idle(s->claimer)) {
		int got = send_take(s, 1000);
		if (got != 0)
			return got;
		pp_daemon_tick(s->d);
	}
	return n;
}

/* send_slot - when item may start: its rate slot, pushed back if the last
 * send of its account started late (a slow gateway must not squeeze two
 * sends closer than the account's interval). 0: at once. */
static int64_t send_slot(const pp_outbox_item_t *it, const pace_t *pace)
{
	if (it->send_now || it->interval_us <= 0)
		return 0;
	int64_t when = it->not_before_us;
	if (pace->last_start_us > 0 && pace->last_start_us + it->interval_us > when)
		when = pace->last_start_us + it->interval_us;
	return when;
}

/* send_try - start item i of h if its account has room and its slot has
 * come; 1 when it has to wait, 0 otherwise, -1 without the secret key. */
static int send_try(sms_send_t *s, hold_t *h, pp_outbox_item_t *it, int64_t now)
{
	const sms_account_t *acct = sms_account_find(&h->accounts, it->account_id);
	if (acct == NULL) { /* paused or disabled since the claim */
		if (pp_outbox_release(s->outbox, &h->batch, it->account_id) < 0)
			s->failed = 1;
		return 0;
	}
	pace_t *pace = send_pace(s, it->account_id);
	if (pace->busy >= s->opts.parallel)
		return 1;
	int64_t when = send_slot(it, pace);
	if (when > now) {
		if (when < s->next_slot_us)
			s->next_slot_us = when;
		return 1;
	}
	int limited = when > 0;
	if (limited && now > when + SEND_SLOT_LATE_US) {
		pp_outbox_result_t why = {.outcome = PP_OUTCOME_TEMPORARY};
		snprintf(why.text, sizeof(why.text),
		         "rate slot missed by %lld ms; back to the queue",
		         (long long)((now - when) / 1000));
		log_warnx("msg=%lld sms_account=%lld %s", (long long)it->id,
		          (long long)it->account_id, why.text);
		if (pp_outbox_release_items(s->outbox, &it, 1, &why) != 0)
			s->failed = 1;
		return 0;
	}
	start_t st = send_start(s, h, it, acct, pace);
	if (st == START_NO_KEY)
		return -1;
	if (st == START_SENT && limited)
		pace->last_start_us = pp_outbox_now_us();
	return 0;
}

/* send_dispatch - one pass over the held messages in claim order (so each
 * account's rate slots are used in order). Without the secret key nothing
 * more can go: everything not in flight is given back. */
static void send_dispatch(sms_send_t *s)
{
	int64_t now = pp_outbox_now_us();
	s->undispatched = 0;
	s->next_slot_us = INT64_MAX;
	for (hold_t *h = s->holds; h != NULL; h = h->next)
		for (size_t i = 0; i < h->batch.count; i++) {
			pp_outbox_item_t *it = &h->batch.items[i];
			if (it->done || it->in_flight)
				continue;
			int rc = send_try(s, h, it, now);
			if (rc < 0) {
				for (hold_t *o = s->holds; o != NULL; o = o->next)
					pp_outbox_release(s->outbox, &o->batch, 0);
				s->failed = 1;
				return;
			}
			s->undispatched += (size_t)rc;
		}
}

/* ---- holds ---- */

/* send_reap - forget the holds whose messages are all done. */
static void send_reap(sms_send_t *s)
{
	for (hold_t **p = &s->holds; *p != NULL;) {
		hold_t *h = *p;
		size_t i = 0;
		while (i < h->batch.count && h->batch.items[i].done)
			i++;
		if (i < h->batch.count) {
			p = &h->next;
			continue;
		}
		*p = h->next;
		sms_hold_free(h);
	}
}

/* send_wait_ms - how long the step may wait for a request to end. */
static int send_wait_ms(const sms_send_t *s, int64_t now)
{
	int64_t t = now + SEND_WAIT_MAX_US;
	if (s->next_slot_us < t)
		t = s->next_slot_us;
	if (s->holds != NULL && s->last_claim_us + (int64_t)s->opts.claim_interval_ms * 1000 < t)
		t = s->last_claim_us + (int64_t)s->opts.claim_interval_ms * 1000;
	/* Rounded up: a slot is never looked at before it has come. */
	return t > now ? (int)((t - now + 999) / 1000) : 0;
}

int sms_send_step(sms_send_t *s)
{
	int claimed = 0;
	s->handled = s->failed = 0;
	if (pp_daemon_stopping(s->d)) {
		sms_send_drain(s);
		return 0;
	}
	sms_http_run(s->http, 0, send_done, s);
	/* Recorded first: a request's slot is free only then. */
	send_collect(s);
	send_flush(s);
	if ((claimed = send_claim(s)) < 0)
		s->failed = 1;
	send_dispatch(s);
	int64_t now = pp_outbox_now_us();
	send_flush(s);
	for (hold_t *h = s->holds; h != NULL; h = h->next)
		if (pp_outbox_renew(s->outbox, &h->batch) != 0)
			s->failed = 1;
	send_reap(s);
	send_pace_sweep(s, now);
	if (s->holds == NULL && s->npending == 0 && s->ninrec == 0 &&
	    sms_http_running(s->http) == 0 && sms_claimer_idle(s->claimer))
		return s->failed && s->handled == 0 ? -1 : s->handled + (claimed > 0 ? claimed : 0);
	if (!s->failed)
		sms_http_run(s->http, send_wait_ms(s, now), send_done, s);
	return s->failed && s->handled == 0 ? -1 : s->handled + 1;
}

void sms_send_drain(sms_send_t *s)
{
	/* Let the requests under way finish; nothing new starts. */
	while (sms_http_running(s->http) > 0) {
		sms_http_run(s->http, 100, send_done, s);
		pp_daemon_tick(s->d);
	}
	send_flush(s);
	sms_recorder_wait(s->recorder);
	send_collect(s);
	if (s->npending > 0) {
		log_warnx("%zu outcome(s) could not be recorded; their leases will expire",
		          s->npending);
		for (size_t i = 0; i < s->npending; i++)
			s->pending[i].item->done = 1;
	}
	s->npending = 0;
	/* A claim under way finishes; what it claimed goes back too. */
	while (!sms_claimer_idle(s->claimer))
		send_take(s, 1000);
	/* What was attempted but not recorded stays to its lease. */
	while (s->holds != NULL) {
		hold_t *h = s->holds;
		s->holds = h->next;
		pp_outbox_release(s->outbox, &h->batch, 0);
		sms_hold_free(h);
	}
}

void sms_send_free(sms_send_t **sp)
{
	sms_send_t *s = *sp;
	if (s == NULL)
		return;
	sms_send_drain(s);
	sms_recorder_free(&s->recorder);
	sms_claimer_free(&s->claimer, s->outbox);
	sms_http_free(&s->http);
	pp_proxy_cache_free(&s->proxy);
	free(s->paces);
	free(s->pending);
	free(s->inrec);
	free(s->callback_url);
	free(s);
	*sp = NULL;
}
