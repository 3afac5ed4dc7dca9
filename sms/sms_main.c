/*
 * sms_main.c - the sms stage: claims queued SMS through the shared outbox
 * (common/pp_outbox: SKIP LOCKED + lease, GCRA on sms_accounts.rate_tat)
 * and hands them to the delivery loop (sms_send.c), which sends them
 * through each account's Kannel-style HTTP sendsms interface at the
 * account's pace and records the outcomes. Owns the stage state (outbox,
 * delivery loop, callback endpoint) and the [sms] settings.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pp_daemon.h"
#include "pp_selftest.h"
#include "pp_log.h"
#include "pp_outbox.h"
#include "pp_util.h"
#include "sms_callback.h"
#include "sms_send.h"

/* Columns of messages the claim returns, in this order. */
static const pp_outbox_desc_t sms_outbox_desc = {
    .stage = "sms",
    .channel = "sms",
    .account_table = "sms_accounts",
    .account_column = "sms_account_id",
    .columns = "to_addr, body, sms_sender_id",
    .schedule = 1,
    .sms_optout = 1,
    .holds = 1,
    .sms_sessions = 1,
};

typedef struct {
	pp_outbox_t *outbox;
	sms_send_t *send;
	sms_callback_t *callback;
	char *callback_address; /* where the endpoint listens */
	int callback_port;      /* 0: no endpoint */
	char *callback_url;     /* the endpoint as the gateway reaches it */
	sms_send_opts_t send_opts;
	pp_outbox_opts_t outbox_opts;
} sms_state_t;

/* sms_load_config - [sms] settings. The lease is renewed while work is
 * held, so it only has to outlast one request (plus the wait for its rate
 * slot). */
static void sms_load_config(pp_daemon_t *d, sms_state_t *st)
{
	pp_outbox_opts_t o;
	sms_send_opts_t *so = &st->send_opts;
	int64_t poll_ms = pp_daemon_int(d, "poll_interval_ms", 1000, 10, 3600000);
	so->timeout_s = (long)pp_daemon_int(d, "timeout_seconds", 20, 1, 600);
	so->connect_timeout_s = (long)pp_daemon_int(d, "connect_timeout_seconds", 10, 1, 600);
	so->parallel = (int)pp_daemon_int(d, "parallel_requests", 8, 1, 64);
	so->record_max = (int)pp_daemon_int(d, "record_max", 100, 1, 1000);
	so->claim_interval_ms = (int)poll_ms;
	o.batch_size = (int)pp_daemon_int(d, "batch_size", 100, 1, 1000);
	so->batch_size = o.batch_size;
	o.retry_base_seconds =
	    pp_daemon_int(d, "retry_base_seconds", PP_OUTBOX_DEFAULT_RETRY_BASE, 1, 86400);
	o.rate_horizon_ms = (int)(poll_ms < 10000 ? poll_ms : 10000);
	int64_t min_lease =
	    3 * (so->timeout_s + so->connect_timeout_s) + o.rate_horizon_ms / 1000 + 30;
	int64_t lease = min_lease > PP_OUTBOX_DEFAULT_LEASE ? min_lease : PP_OUTBOX_DEFAULT_LEASE;
	o.lease_seconds = (int)pp_daemon_int(d, "lease_seconds", lease, min_lease, 86400);
	pp_outbox_set_options(st->outbox, &o);
	st->outbox_opts = o;
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

/* sms_apply - hand the settings to the delivery loop. */
static void sms_apply(sms_state_t *st)
{
	st->send_opts.callback_url = st->callback_url;
	sms_send_set_options(st->send, &st->send_opts, &st->outbox_opts);
	log_info("parallel_requests=%d record_max=%d", st->send_opts.parallel,
	         st->send_opts.record_max);
}

static int sms_init(pp_daemon_t *d, void **state)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
		log_warnx("curl_global_init failed");
		return -1;
	}
	sms_state_t *st = xcalloc(1, sizeof(*st));
	st->outbox = pp_outbox_new(pp_daemon_db(d), &sms_outbox_desc, pp_daemon_lease_id(d));
	st->send = sms_send_new(d, st->outbox, &sms_outbox_desc);
	if (st->send == NULL) {
		log_warnx("cannot start the delivery loop");
		pp_outbox_free(&st->outbox);
		free(st);
		curl_global_cleanup();
		return -1;
	}
	sms_load_config(d, st);
	sms_callback_config(d, st);
	sms_apply(st);
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
	sms_apply(state);
}

static void sms_fini(pp_daemon_t *d, void *state)
{
	sms_state_t *st = state;
	(void)d;
	if (st == NULL)
		return;
	/* Finish and record what is in flight, give back the rest. */
	sms_send_free(&st->send);
	sms_callback_stop(&st->callback);
	pp_outbox_free(&st->outbox);
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

static int sms_work(pp_daemon_t *d, void *state)
{
	sms_state_t *st = state;
	(void)d;
	return sms_send_step(st->send);
}

/* sms_selftest - the timed self-tests, with the SMS queue's. */
static void sms_selftest(pp_daemon_t *d, void *state)
{
	(void)state;
	pp_selftest_tick(d, PP_SELFTEST_OUTBOX_SQL("sms"));
}

static const pp_stage_ops_t sms_ops = {
    .stage = "sms",
    .init = sms_init,
    .work = sms_work,
    .reload = sms_reload,
    .fini = sms_fini,
    .pending = sms_pending,
    .selftest = sms_selftest,
};

int main(int argc, char **argv)
{
	return pp_daemon_main(argc, argv, &sms_ops);
}
