/*
 * sender_main.c - practicepost-sender: the daemon around the delivery
 * engine (sender_engine.c). Owns the [sender] configuration:
 *   batch_size, lease_seconds, rate_horizon_ms, retry_base_seconds  (outbox)
 *   record_max, claim_interval_ms, fetch_kb                           (engine)
 *   connect_timeout_seconds, timeout_seconds, idle_seconds            (SMTP)
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pp_log.h"
#include "pp_selftest.h"
#include "pp_util.h"
#include "sender.h"

typedef struct {
	sender_engine_t *engine;
	pp_outbox_t *outbox;   /* the engine's */
	sender_check_t *check; /* credential tests (sender_check.c) */
} sender_t;

/* sender_configure - [sender] settings; bad values are fatal at start. */
static void sender_configure(pp_daemon_t *d, sender_t *s)
{
	pp_outbox_opts_t o;
	sender_engine_opts_t e;
	o.batch_size = (int)pp_daemon_int(d, "batch_size", 500, 1, 10000);
	o.lease_seconds = (int)pp_daemon_int(d, "lease_seconds", PP_OUTBOX_DEFAULT_LEASE, 1, 86400);
	o.rate_horizon_ms =
	    (int)pp_daemon_int(d, "rate_horizon_ms", PP_OUTBOX_DEFAULT_HORIZON_MS, 0, 60000);
	o.retry_base_seconds =
	    pp_daemon_int(d, "retry_base_seconds", PP_OUTBOX_DEFAULT_RETRY_BASE, 0, 86400);
	e.record_max = (int)pp_daemon_int(d, "record_max", 500, 1, 10000);
	e.claim_interval_ms = (int)pp_daemon_int(d, "claim_interval_ms", 200, 1, 60000);
	e.fetch_bytes = (size_t)pp_daemon_int(d, "fetch_kb", 4096, 64, 1048576) * 1024;
	e.smtp.connect_timeout_s = (long)pp_daemon_int(d, "connect_timeout_seconds", 30, 1, 600);
	e.smtp.timeout_s = (long)pp_daemon_int(d, "timeout_seconds", 120, 1, 3600);
	e.idle_ms = pp_daemon_int(d, "idle_seconds", 60, 0, 3600) * 1000;
	if (e.smtp.timeout_s >= o.lease_seconds)
		log_warnx("[sender] timeout_seconds (%ld) is not below lease_seconds (%d): a "
		          "stalled server can outlast a lease",
		          e.smtp.timeout_s, o.lease_seconds);
	sender_engine_set_options(s->engine, &e, &o);
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
	/* Connection threads would each get a malloc arena: keep RSS small. */
	mallopt(M_ARENA_MAX, 2);
	sender_t *s = xcalloc(1, sizeof(*s));
	s->engine = sender_engine_new(d, &s->outbox);
	s->check = sender_check_new();
	sender_configure(d, s);
	*state = s;
	return 0;
}

static int sender_work(pp_daemon_t *d, void *state)
{
	sender_t *s = state;
	(void)d;
	return sender_engine_step(s->engine);
}

static void sender_reload(pp_daemon_t *d, void *state)
{
	sender_t *s = state;
	sender_configure(d, s);
	sender_engine_close_connections(s->engine); /* new timeouts apply to new connections */
}

static void sender_fini(pp_daemon_t *d, void *state)
{
	sender_t *s = state;
	(void)d;
	if (s == NULL)
		return;
	sender_check_free(&s->check);
	sender_engine_free(&s->engine);
	free(s);
	curl_global_cleanup();
}

static int64_t sender_pending(pp_daemon_t *d, void *state)
{
	sender_t *s = state;
	(void)d;
	return pp_outbox_pending(s->outbox);
}

static int sender_message(pp_daemon_t *d, void *state, const pp_msg_t *msg)
{
	sender_t *s = state;
	return sender_check_message(s->check, d, msg);
}

/* sender_selftest - the timed self-tests, with the email queue's. */
static void sender_selftest(pp_daemon_t *d, void *state)
{
	(void)state;
	pp_selftest_tick(d, PP_SELFTEST_OUTBOX_SQL("email"));
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
	    .message = sender_message,
	    .selftest = sender_selftest,
	};
	return pp_daemon_main(argc, argv, &ops);
}
