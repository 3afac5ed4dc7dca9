/*
 * sender_main.c - practicepost-sender: claims queued email from the outbox
 * (common/pp_outbox.c), delivers each message through its account's SMTP
 * connection and records the outcome. Owns the stage state and [sender]
 * configuration.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pp_log.h"
#include "pp_util.h"
#include "sender.h"

/* Columns the claim returns for each message, in this order. */
static const pp_outbox_desc_t sender_outbox_desc = {
    .stage = "sender",
    .channel = "email",
    .account_table = "email_accounts",
    .account_column = "email_account_id",
    .columns = "to_addr, cc_addrs, bcc_addrs",
};
enum { COL_TO, COL_CC, COL_BCC };

typedef struct {
	pp_outbox_t *outbox;
	sender_accounts_t accounts;
	sender_smtp_opts_t smtp;
	int64_t idle_ms;
	uint64_t generation;
} sender_t;

/* sender_configure - [sender] settings; bad values are fatal at start. */
static void sender_configure(pp_daemon_t *d, sender_t *s)
{
	pp_outbox_opts_t o;
	o.batch_size = (int)pp_daemon_int(d, "batch_size", PP_OUTBOX_DEFAULT_BATCH, 1, 10000);
	o.lease_seconds = (int)pp_daemon_int(d, "lease_seconds", PP_OUTBOX_DEFAULT_LEASE, 1, 86400);
	o.rate_horizon_ms =
	    (int)pp_daemon_int(d, "rate_horizon_ms", PP_OUTBOX_DEFAULT_HORIZON_MS, 0, 60000);
	o.retry_base_seconds =
	    pp_daemon_int(d, "retry_base_seconds", PP_OUTBOX_DEFAULT_RETRY_BASE, 0, 86400);
	pp_outbox_set_options(s->outbox, &o);
	s->smtp.connect_timeout_s = (long)pp_daemon_int(d, "connect_timeout_seconds", 30, 1, 600);
	s->smtp.timeout_s = (long)pp_daemon_int(d, "timeout_seconds", 120, 1, 3600);
	s->idle_ms = pp_daemon_int(d, "idle_seconds", 60, 0, 3600) * 1000;
	if (s->smtp.timeout_s >= o.lease_seconds)
		log_warnx("[sender] timeout_seconds (%ld) is not below lease_seconds (%d): a "
		          "stalled server can outlast a lease",
		          s->smtp.timeout_s, o.lease_seconds);
}

static int sender_init(pp_daemon_t *d, void **state)
{
	const curl_version_info_data *v;
	int smtp = 0;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_warnx("curl_global_init failed");
		return -1;
	}
	v = curl_version_info(CURLVERSION_NOW);
	for (const char *const *p = v->protocols; p && *p; p++)
		smtp += strcmp(*p, "smtp") == 0 || strcmp(*p, "smtps") == 0;
	pp_daemon_selftest(d, "libcurl_smtp", smtp == 2 && (v->features & CURL_VERSION_SSL),
	                   v->version);
	if (smtp != 2) {
		log_warnx("libcurl %s lacks SMTP or SMTPS support", v->version);
		curl_global_cleanup();
		return -1;
	}
	sender_t *s = xcalloc(1, sizeof(*s));
	s->outbox = pp_outbox_new(pp_daemon_db(d), &sender_outbox_desc, pp_daemon_instance(d));
	sender_configure(d, s);
	*state = s;
	return 0;
}

/* sender_wait_slot - sleep until the rate limit lets item go, keeping
 * the batch's lease alive. 0 to go on; 1 if a stop request came first;
 * -1 if the lease could not be renewed (database trouble). */
static int sender_wait_slot(pp_daemon_t *d, sender_t *s, pp_outbox_batch_t *batch,
                            const pp_outbox_item_t *item)
{
	while (!pp_daemon_stopping(d)) {
		if (pp_outbox_renew(s->outbox, batch) != 0)
			return -1;
		int64_t left = item->not_before_ms - pp_mono_ms();
		if (left <= 0)
			return 0;
		pp_daemon_tick(d);
		usleep((useconds_t)(left > 100 ? 100 : left) * 1000);
	}
	return 1;
}

/* sender_fail_account - an account-wide problem: pause it and keep the
 * message (and the account's others) queued. */
static int sender_fail_account(sender_t *s, pp_outbox_batch_t *batch, pp_outbox_item_t *item,
                               sender_account_t *acct, const char *code, long reply,
                               const char *text)
{
	pp_outbox_result_t res = {PP_OUTCOME_ACCOUNT, reply, ""};
	snprintf(res.text, sizeof(res.text), "%s", text);
	if (acct != NULL)
		sender_account_drop_connection(acct);
	return pp_outbox_pause_account(s->outbox, batch, item, code, &res);
}

/* sender_deliver - one message. 0 when its outcome is recorded (or it is
 * no longer ours), -1 on a database error. */
static int sender_deliver(pp_daemon_t *d, sender_t *s, pp_outbox_batch_t *batch,
                          pp_outbox_item_t *item)
{
	char err[512];
	char *body = NULL;
	size_t len = 0;
	int count, rc = -1;
	struct curl_slist *rcpts = NULL;
	sender_account_t *acct = NULL;
	pp_outbox_result_t res = {PP_OUTCOME_PERMANENT, 0, ""};
	const char *diag = NULL;

	rc = sender_account_get(&s->accounts, pp_daemon_db(d), item->account_id, s->generation,
	                        &acct, err, sizeof(err));
	if (rc == -2)
		return sender_fail_account(s, batch, item, NULL, "smtp_account_config", 0, err);
	if (rc != 0)
		return -1;
	rc = pp_outbox_fetch(s->outbox, item, "body", &body, &len);
	if (rc != 0)
		return rc > 0 ? 0 : -1;
	rcpts = sender_envelope_recipients(item->cols[COL_TO], item->cols[COL_CC],
	                                   item->cols[COL_BCC], &count, res.text, sizeof(res.text));
	if (rcpts != NULL && acct->max_bytes > 0 && len > (size_t)acct->max_bytes)
		snprintf(res.text, sizeof(res.text),
		         "message of %zu bytes exceeds the account's limit of %lld bytes", len,
		         (long long)acct->max_bytes);
	else if (rcpts != NULL) {
		sender_smtp_t *smtp =
		    sender_account_connection(acct, d, &s->smtp, err, sizeof(err));
		if (smtp == NULL) {
			rc = sender_fail_account(s, batch, item, acct, "smtp_account_config", 0,
			                         err);
			goto done;
		}
		sender_smtp_send(smtp, acct->from_address, rcpts, body, len, &res, &diag);
	}
	if (res.outcome == PP_OUTCOME_ACCOUNT)
		rc = sender_fail_account(s, batch, item, acct, diag, res.code, res.text);
	else
		rc = pp_outbox_record(s->outbox, item, &res);
	if (rc == 0)
		pp_daemon_count(d, res.outcome == PP_OUTCOME_SENT, res.outcome != PP_OUTCOME_SENT);
done:
	curl_slist_free_all(rcpts);
	free(body);
	return rc;
}

static int sender_work(pp_daemon_t *d, void *state)
{
	sender_t *s = state;
	pp_outbox_batch_t batch;
	int rc = 0;

	if (pp_daemon_stopping(d))
		return 0;
	sender_accounts_sweep(&s->accounts, s->idle_ms);
	int n = pp_outbox_claim(s->outbox, &batch);
	if (n <= 0)
		return n;
	s->generation++;
	for (size_t i = 0; i < batch.count && rc == 0; i++) {
		pp_outbox_item_t *item = &batch.items[i];
		if (item->done)
			continue;
		int wait = sender_wait_slot(d, s, &batch, item);
		if (wait > 0)
			break;
		if (wait < 0 || sender_deliver(d, s, &batch, item) != 0)
			rc = -1;
	}
	/* Stopping, or the database went away: give back what is left. */
	pp_outbox_release(s->outbox, &batch, 0);
	pp_outbox_batch_free(&batch);
	return rc < 0 ? -1 : n;
}

static void sender_reload(pp_daemon_t *d, void *state)
{
	sender_t *s = state;
	sender_configure(d, s);
	sender_accounts_clear(&s->accounts); /* new timeouts apply to new connections */
}

static void sender_fini(pp_daemon_t *d, void *state)
{
	sender_t *s = state;
	(void)d;
	if (s == NULL)
		return;
	sender_accounts_clear(&s->accounts);
	pp_outbox_free(&s->outbox);
	free(s);
	curl_global_cleanup();
}

static int64_t sender_pending(pp_daemon_t *d, void *state)
{
	sender_t *s = state;
	(void)d;
	return pp_outbox_pending(s->outbox);
}

int main(int argc, char **argv)
{
	static const pp_stage_ops_t ops = {
	    .stage = "sender",
	    .init = sender_init,
	    .work = sender_work,
	    .reload = sender_reload,
	    .fini = sender_fini,
	    .pending = sender_pending,
	};
	return pp_daemon_main(argc, argv, &ops);
}
