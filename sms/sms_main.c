/*
 * sms_main.c - the sms stage: claims queued SMS through the shared outbox
 * (common/pp_outbox: SKIP LOCKED + lease, GCRA on sms_accounts.rate_tat),
 * sends each through its account's Kannel-style HTTP sendsms interface at
 * the account's pace, and records the outcome. Owns the stage state (outbox,
 * curl handle, settings) and the mapping from an HTTP outcome to a message
 * or account state change.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pp_daemon.h"
#include "pp_log.h"
#include "pp_outbox.h"
#include "pp_secret.h"
#include "pp_state.h"
#include "pp_phone.h"
#include "pp_sms_text.h"
#include "pp_util.h"
#include "sms_account.h"
#include "sms_callback.h"
#include "sms_http.h"

/* Columns of messages the claim returns, in this order. */
static const pp_outbox_desc_t sms_outbox_desc = {
    .stage = "sms",
    .channel = "sms",
    .account_table = "sms_accounts",
    .account_column = "sms_account_id",
    .columns = "to_addr, body",
    .schedule = 1,
    .sms_optout = 1,
    .holds = 1,
    .sms_sessions = 1,
};

/* Delivery reports asked for: delivered (1), undelivered (2) and rejected
 * by the SMS centre (16); "buffered" and "accepted" would only cost
 * callbacks. */
#define SMS_DLR_MASK 19
enum { SMS_COL_TO, SMS_COL_TEXT };

typedef struct {
	pp_outbox_t *outbox;
	sms_http_t *http;
	long timeout_s;
	long connect_timeout_s;
	sms_callback_t *callback;
	char *callback_address; /* where the endpoint listens */
	int callback_port;      /* 0: no endpoint */
	char *callback_url;     /* the endpoint as the gateway reaches it */
} sms_state_t;

/* What became of one claimed item, for the batch loop. */
typedef enum {
	SMS_DONE,     /* an outcome was recorded (or the account paused) */
	SMS_NO_KEY,   /* no secret key: stop this round, give the rest back */
	SMS_DB_ERROR, /* the outcome could not be recorded; the lease will expire */
} sms_step_t;

/* sms_load_config - [sms] settings. The lease is renewed between items, so
 * it only has to outlast one request (plus the wait for its rate slot). */
static void sms_load_config(pp_daemon_t *d, sms_state_t *st)
{
	pp_outbox_opts_t o;
	int64_t poll_ms = pp_daemon_int(d, "poll_interval_ms", 1000, 10, 3600000);
	st->timeout_s = (long)pp_daemon_int(d, "timeout_seconds", 20, 1, 600);
	st->connect_timeout_s = (long)pp_daemon_int(d, "connect_timeout_seconds", 10, 1, 600);
	o.batch_size = (int)pp_daemon_int(d, "batch_size", 20, 1, 1000);
	o.retry_base_seconds =
	    pp_daemon_int(d, "retry_base_seconds", PP_OUTBOX_DEFAULT_RETRY_BASE, 1, 86400);
	o.rate_horizon_ms = (int)(poll_ms < 10000 ? poll_ms : 10000);
	int64_t min_lease =
	    3 * (st->timeout_s + st->connect_timeout_s) + o.rate_horizon_ms / 1000 + 30;
	int64_t lease = min_lease > PP_OUTBOX_DEFAULT_LEASE ? min_lease : PP_OUTBOX_DEFAULT_LEASE;
	o.lease_seconds = (int)pp_daemon_int(d, "lease_seconds", lease, min_lease, 86400);
	pp_outbox_set_options(st->outbox, &o);
}

/* sms_callback_config - [sms] callback_address, callback_port (0: no
 * endpoint, no delivery reports) and callback_url (default
 * http://ADDRESS:PORT); the endpoint is (re)started when they change. */
static void sms_callback_config(pp_daemon_t *d, sms_state_t *st)
{
	const pp_config_t *cfg = pp_daemon_config(d);
	const char *address = pp_config_get(cfg, "sms", "callback_address", "127.0.0.1");
	int port = (int)pp_daemon_int(d, "callback_port", 0, 0, 65535);
	const char *url = pp_config_get(cfg, "sms", "callback_url", NULL);
	char *want_url = url && *url ? xstrdup(url) : xasprintf("http://%s:%d", address, port);
	size_t n = strlen(want_url);
	while (n > 0 && want_url[n - 1] == '/')
		want_url[--n] = '\0';
	int same = st->callback_address != NULL && strcmp(st->callback_address, address) == 0 &&
	           st->callback_port == port;
	free(st->callback_url);
	st->callback_url = port > 0 ? want_url : NULL;
	if (port == 0)
		free(want_url);
	if (same && (st->callback != NULL || port == 0))
		return;
	sms_callback_stop(&st->callback);
	free(st->callback_address);
	st->callback_address = xstrdup(address);
	st->callback_port = port;
	if (port == 0) {
		log_info("no callback_port: delivery reports and incoming SMS are not received");
		return;
	}
	st->callback = sms_callback_start(d, address, port);
	if (st->callback == NULL)
		fatalx("cannot start the SMS callback endpoint on %s:%d", address, port);
}

static int sms_init(pp_daemon_t *d, void **state)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
		log_warnx("curl_global_init failed");
		return -1;
	}
	sms_state_t *st = xcalloc(1, sizeof(*st));
	st->http = sms_http_new();
	if (st->http == NULL) {
		log_warnx("cannot create a curl handle");
		free(st);
		curl_global_cleanup();
		return -1;
	}
	st->outbox = pp_outbox_new(pp_daemon_db(d), &sms_outbox_desc, pp_daemon_instance(d));
	sms_load_config(d, st);
	sms_callback_config(d, st);
	const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
	int https = (v->features & CURL_VERSION_SSL) != 0;
	pp_daemon_selftest(d, "libcurl_https", https,
	                   https ? v->version : "libcurl was built without TLS");
	*state = st;
	return 0;
}

static void sms_reload(pp_daemon_t *d, void *state)
{
	sms_load_config(d, state);
	sms_callback_config(d, state);
}

static void sms_fini(pp_daemon_t *d, void *state)
{
	sms_state_t *st = state;
	(void)d;
	if (st == NULL)
		return;
	sms_callback_stop(&st->callback);
	pp_outbox_free(&st->outbox);
	sms_http_free(&st->http);
	free(st->callback_address);
	free(st->callback_url);
	free(st);
	curl_global_cleanup();
}

static int64_t sms_pending(pp_daemon_t *d, void *state)
{
	sms_state_t *st = state;
	(void)d;
	return pp_outbox_pending(st->outbox);
}

/* sms_record - store one outcome; an ACCOUNT outcome pauses the account
 * (one diagnostic) and gives back every message of it the batch holds. */
static sms_step_t sms_record(pp_daemon_t *d, sms_state_t *st, pp_outbox_batch_t *b,
                             pp_outbox_item_t *it, pp_outcome_t outcome, long code,
                             const char *diag_code, const char *text)
{
	pp_outbox_result_t res = {.outcome = outcome, .code = code};
	pp_strlcpy(res.text, text ? text : "", sizeof(res.text));
	if (outcome == PP_OUTCOME_ACCOUNT)
		return pp_outbox_pause_account(st->outbox, b, it, diag_code, &res) == 0
		           ? SMS_DONE
		           : SMS_DB_ERROR;
	if (outcome == PP_OUTCOME_SENT)
		pp_daemon_count(d, 1, 0);
	else if (outcome == PP_OUTCOME_PERMANENT || it->attempts >= PP_MAX_ATTEMPTS)
		pp_daemon_count(d, 0, 1);
	return pp_outbox_record(st->outbox, it, &res) == 0 ? SMS_DONE : SMS_DB_ERROR;
}

/* sms_record_http - map the sendsms answer onto the outbox outcomes. */
static sms_step_t sms_record_http(pp_daemon_t *d, sms_state_t *st, pp_outbox_batch_t *b,
                                  pp_outbox_item_t *it, const sms_http_result_t *res)
{
	char why[sizeof(res->error) + 64];
	switch (res->outcome) {
	case SMS_HTTP_SENT:
		return sms_record(d, st, b, it, PP_OUTCOME_SENT, res->code, NULL, res->reply);
	case SMS_HTTP_REJECTED:
		return sms_record(d, st, b, it, PP_OUTCOME_PERMANENT, res->code, NULL, res->error);
	case SMS_HTTP_TEMPORARY:
		return sms_record(d, st, b, it, PP_OUTCOME_TEMPORARY, res->code, NULL, res->error);
	case SMS_HTTP_ACCOUNT:
		break;
	}
	int auth = res->code == 401 || res->code == 403;
	snprintf(why, sizeof(why), "%s: %s",
	         auth ? "the SMS gateway refused the account's username or password"
	              : "the SMS account's URL or TLS settings do not work",
	         res->error);
	return sms_record(d, st, b, it, PP_OUTCOME_ACCOUNT, res->code,
	                  auth ? "sms_auth_rejected" : "sms_account_error", why);
}

/* sms_deliver - check, send and record one claimed SMS. */
static sms_step_t sms_deliver(pp_daemon_t *d, sms_state_t *st, pp_outbox_batch_t *b,
                              pp_outbox_item_t *it, const sms_account_t *acct)
{
	const char *to_addr = it->cols[SMS_COL_TO], *text = it->cols[SMS_COL_TEXT];
	char to[PP_PHONE_MAX], error[200];
	const char *why = NULL;
	sms_http_result_t res;

	if (pp_phone_e164(to_addr, acct->country, to, &why) != 0) {
		snprintf(error, sizeof(error), "invalid phone number \"%.40s\": %s",
		         to_addr ? to_addr : "", why);
		return sms_record(d, st, b, it, PP_OUTCOME_PERMANENT, 0, NULL, error);
	}
	if (text == NULL || *text == '\0')
		return sms_record(d, st, b, it, PP_OUTCOME_PERMANENT, 0, NULL,
		                  "the SMS text is empty");
	pp_sms_text_kind_t kind = pp_sms_text_classify(text);
	if (kind == PP_SMS_TEXT_INVALID)
		return sms_record(d, st, b, it, PP_OUTCOME_PERMANENT, 0, NULL,
		                  "the SMS text is not valid UTF-8 or holds control characters");
	const pp_secret_key_t *key = pp_daemon_key(d);
	if (key == NULL)
		return SMS_NO_KEY;
	char *password = acct->secret ? pp_secret_decrypt(key, acct->secret, NULL) : xstrdup("");
	if (password == NULL)
		return sms_record(d, st, b, it, PP_OUTCOME_ACCOUNT, 0, "sms_secret_unreadable",
		                  "the SMS account's stored password cannot be decrypted with "
		                  "this key file; set the password again");
	if (!acct->verify && strncmp(acct->url, "https:", 6) == 0)
		log_warnx("sms_account=%lld TLS certificate verification is turned off",
		          (long long)acct->id);
	char *dlr_url = NULL;
	if (st->callback_url != NULL && acct->callback_secret != NULL)
		dlr_url = xasprintf("%s/sms/dlr?a=%lld&k=%s&m=%lld&t=%%d&c=%%A", st->callback_url,
		                    (long long)acct->id, acct->callback_secret, (long long)it->id);
	sms_http_request_t req = {
	    .url = acct->url,
	    .username = acct->username,
	    .password = password,
	    .to = to,
	    .text = text,
	    .sender_id = acct->sender_id,
	    .ca_file = acct->ca_file,
	    .verify = acct->verify,
	    .unicode = kind == PP_SMS_TEXT_UNICODE,
	    .timeout_s = st->timeout_s,
	    .connect_timeout_s = st->connect_timeout_s,
	    .extra_params = NULL,
	    .dlr_url = dlr_url,
	    .dlr_mask = SMS_DLR_MASK,
	    .validity_minutes = acct->validity_minutes,
	};
	sms_http_send(st->http, &req, &res);
	pp_secret_wipe_free(password);
	if (dlr_url != NULL)
		pp_secret_wipe_free(dlr_url);
	return sms_record_http(d, st, b, it, &res);
}

/* sms_wait_until - sleep until the monotonic time, or -1 when stopping. */
static int sms_wait_until(pp_daemon_t *d, int64_t when_ms)
{
	for (;;) {
		if (pp_daemon_stopping(d))
			return -1;
		int64_t left = when_ms - pp_mono_ms();
		if (left <= 0)
			return 0;
		pp_daemon_tick(d);
		usleep((useconds_t)(left < 50 ? left : 50) * 1000);
	}
}

/* sms_not_before - the item's rate slot, pushed back if an earlier send of
 * the same account in this batch started late (a slow gateway must not
 * squeeze two sends closer than the account's interval). */
static int64_t sms_not_before(const pp_outbox_batch_t *b, const int64_t *started, size_t i,
                              const sms_account_t *acct)
{
	const pp_outbox_item_t *it = &b->items[i];
	int64_t when = it->not_before_ms;
	if (it->send_now)
		return when;
	int64_t interval = 60000 / (acct->per_minute > 0 ? acct->per_minute : 1);
	for (size_t j = 0; j < i; j++)
		if (b->items[j].account_id == it->account_id && !b->items[j].send_now &&
		    started[j] > 0 && started[j] + interval > when)
			when = started[j] + interval;
	return when;
}

static int sms_work(pp_daemon_t *d, void *state)
{
	sms_state_t *st = state;
	pp_outbox_batch_t b;
	sms_account_set_t accounts;
	int handled = 0, failed = 0;

	int n = pp_outbox_claim(st->outbox, &b);
	if (n <= 0)
		return n;
	if (sms_account_load(pp_daemon_db(d), &b, &accounts) != 0) {
		pp_outbox_release(st->outbox, &b, 0);
		pp_outbox_batch_free(&b);
		return -1;
	}
	int64_t *started = xcalloc(b.count + 1, sizeof(*started));
	for (size_t i = 0; i < b.count && !failed; i++) {
		pp_outbox_item_t *it = &b.items[i];
		if (it->done)
			continue;
		const sms_account_t *acct = sms_account_find(&accounts, it->account_id);
		if (acct == NULL) { /* paused or disabled since the claim */
			pp_outbox_release(st->outbox, &b, it->account_id);
			continue;
		}
		if (sms_wait_until(d, sms_not_before(&b, started, i, acct)) != 0)
			break;
		pp_outbox_renew(st->outbox, &b);
		started[i] = pp_mono_ms();
		sms_step_t step = sms_deliver(d, st, &b, it, acct);
		if (step == SMS_DONE) {
			handled++;
		} else {
			failed = 1;
			/* Not known whether it went out: leave it to its lease. */
			it->done = step == SMS_DB_ERROR;
		}
	}
	/* Whatever is still held (SIGTERM, no key, database trouble) goes back. */
	pp_outbox_release(st->outbox, &b, 0);
	pp_outbox_batch_free(&b);
	sms_account_set_free(&accounts);
	free(started);
	return failed && handled == 0 ? -1 : handled;
}

static const pp_stage_ops_t sms_ops = {
    .stage = "sms",
    .init = sms_init,
    .work = sms_work,
    .reload = sms_reload,
    .fini = sms_fini,
    .pending = sms_pending,
};

int main(int argc, char **argv)
{
	return pp_daemon_main(argc, argv, &sms_ops);
}
