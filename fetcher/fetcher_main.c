/*
 * fetcher_main.c - the fetcher daemon: each round claims one incoming email
 * account whose poll is due, reads its new mail over IMAP or POP3, reports
 * the outcome (diagnostics) and schedules the next poll. Owns the stage's
 * settings and the pp_stage_ops_t.
 */
#include <curl/curl.h>
#include <malloc.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fetcher.h"
#include "pp_log.h"
#include "pp_selftest.h"

typedef struct {
	fetcher_settings_t settings;
	fetcher_idle_t *idle;
	fetcher_pipe_t *pipe;    /* the parse and filing worker, made for the first large poll */
	pp_proxy_cache_t *proxy; /* the proxy settings, for the polls */
} fetcher_state_t;

static void fetcher_read_settings(pp_daemon_t *d, fetcher_settings_t *s)
{
	s->lease_s = pp_daemon_int(d, "lease_seconds", 300, 30, 86400);
	s->batch = pp_daemon_int(d, "batch", 200, 1, 100000);
	s->connect_timeout_s = pp_daemon_int(d, "connect_timeout_seconds", 30, 1, 600);
	s->transfer_timeout_s = pp_daemon_int(d, "transfer_timeout_seconds", 300, 1, 3600);
	s->max_message_bytes =
	    pp_daemon_int(d, "max_message_bytes", 52428800, 1024, 512 * 1024 * 1024);
	s->idle = (int)pp_daemon_int(d, "idle", 1, 0, 1);
	s->idle_max_accounts = pp_daemon_int(d, "idle_max_accounts", 100, 1, 10000);
	s->idle_renew_s = pp_daemon_int(d, "idle_renew_seconds", 1500, 1, 1740);
	s->idle_refresh_s = pp_daemon_int(d, "idle_refresh_seconds", 30, 1, 3600);
	s->commit_messages = pp_daemon_int(d, "commit_messages", 100, 1, 10000);
	s->commit_bytes = pp_daemon_int(d, "commit_bytes", 16777216, 1, 1073741824);
	s->commit_ms = pp_daemon_int(d, "commit_ms", 200, 0, 60000);
}

/* fetcher_tls_in_use - some incoming account of this database connects
 * with TLS or OAuth2 (HTTPS); also when that cannot be read. */
static int fetcher_tls_in_use(pp_daemon_t *d)
{
	PGresult *res = pp_db_exec(pp_daemon_db(d),
	                           "SELECT EXISTS (SELECT 1 FROM email_accounts WHERE "
	                           "in_protocol <> 'none' AND (in_tls <> 'none' OR "
	                           "auth_kind = 'oauth2'))",
	                           0, NULL);
	int tls = res == NULL || PQntuples(res) != 1 || strcmp(pp_db_value(res, 0, 0), "f") != 0;
	PQclear(res);
	return tls;
}

static int fetcher_init(pp_daemon_t *d, void **statep)
{
	/* OpenSSL's error texts cost 0.75 MB of RSS and only explain TLS
	 * failures: without an account that uses TLS they are not loaded
	 * (one that starts using it gets them at the next start; until then
	 * its TLS errors name OpenSSL's reason by number). */
	if (!fetcher_tls_in_use(d)) {
		OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CRYPTO_STRINGS, NULL);
		log_info("no incoming account uses TLS: OpenSSL's error texts not loaded");
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
		log_warnx("curl_global_init failed");
		return -1;
	}
	fetcher_parse_init();
	fetcher_state_t *st = xcalloc(1, sizeof(*st));
	fetcher_read_settings(d, &st->settings);
	st->idle = fetcher_idle_start(d, &st->settings);
	st->proxy = pp_proxy_cache_new();
	*statep = st;
	return 0;
}

/* fetcher_poll_account - one poll of a claimed account and its aftermath. */
static int fetcher_poll_account(pp_daemon_t *d, fetcher_state_t *st, fetcher_account_t *acct)
{
	fetcher_poll_t poll;
	memset(&poll, 0, sizeof(poll));
	int64_t started = pp_mono_ms();
	if (strcmp(acct->protocol, "pop3") == 0)
		fetcher_pop3_poll(d, &st->settings, acct, &poll);
	else
		fetcher_imap_poll(d, &st->settings, acct, &st->pipe, &poll);
	fetcher_store_flush(d, acct, &poll);

	if (fetcher_account_report(d, acct, &poll) != 0)
		poll.db_failed = 1;
	/* More waiting (batch limit, or SIGTERM): due again at once, for this
	 * or another instance. Anything else waits for the check schedule
	 * (pp_next_fetch: every in_poll_seconds and/or preset times). */
	fetcher_account_release(d, acct, poll.status == FETCHER_POLL_MORE && !poll.db_failed);
	pp_daemon_count(d, poll.stored, poll.status == FETCHER_POLL_ACCOUNT_ERR ? 1 : 0);
	if (poll.status == FETCHER_POLL_ACCOUNT_ERR)
		pp_daemon_count_failure(d, PP_FAILURE_ACCOUNT, 1);
	const char *result = poll.status == FETCHER_POLL_MORE ? "more" : "ok";
	if (poll.status == FETCHER_POLL_ACCOUNT_ERR)
		result = poll.code;
	if (poll.db_failed)
		result = "database_error";
	log_info("account=%lld polled protocol=%s stored=%lld result=%s ms=%lld",
	         (long long)acct->id, acct->protocol, (long long)poll.stored, result,
	         (long long)(pp_mono_ms() - started));
	return poll.db_failed ? -1 : 0;
}

static int fetcher_work(pp_daemon_t *d, void *state)
{
	fetcher_state_t *st = state;
	fetcher_account_t acct;
	if (pp_daemon_stopping(d))
		return 0;
	int rc = fetcher_account_claim(d, &st->settings, &acct);
	if (rc <= 0)
		return rc;
	fetcher_account_proxy(st->proxy, pp_daemon_db(d), d, &acct);
	rc = fetcher_poll_account(d, st, &acct);
	fetcher_account_clear(&acct);
	return rc < 0 ? -1 : 1;
}

static void fetcher_reload(pp_daemon_t *d, void *state)
{
	fetcher_state_t *st = state;
	fetcher_read_settings(d, &st->settings);
	pp_proxy_cache_expire(st->proxy);
	/* the IDLE thread keeps a copy of the settings: start it anew */
	fetcher_idle_stop(&st->idle);
	st->idle = fetcher_idle_start(d, &st->settings);
}

static void fetcher_fini(pp_daemon_t *d, void *state)
{
	fetcher_state_t *st = state;
	(void)d;
	fetcher_idle_stop(&st->idle);
	fetcher_pipe_free(&st->pipe);
	pp_proxy_cache_free(&st->proxy);
	free(st);
	fetcher_parse_shutdown();
	curl_global_cleanup();
}

static int64_t fetcher_pending(pp_daemon_t *d, void *state)
{
	(void)state;
	return fetcher_account_due(d);
}

/* fetcher_selftest - the timed self-tests; the queue is the incoming
 * accounts whose poll is due (over a minute) and not done. */
static void fetcher_selftest(pp_daemon_t *d, void *state)
{
	(void)state;
	pp_selftest_tick(d,
	                 "SELECT id::text || '@' || in_next_poll, format('the poll of incoming "
	                 "account %s (due %s)', id, to_char(in_next_poll, 'YYYY-MM-DD "
	                 "HH24:MI:SS TZ')) FROM email_accounts WHERE enabled AND in_enabled AND "
	                 "in_protocol <> 'none' AND paused_at IS NULL AND in_next_poll < now() - "
	                 "interval '1 minute' ORDER BY in_next_poll LIMIT 1");
}

/* fetcher_skip_gnutls_init - GnuTLS (loaded only for libcurl's LDAP and
 * RTMP, which the fetcher never uses; LDAP would initialise it itself)
 * initialises itself and p11-kit when loaded, 0.9 MB of RSS, unless
 * GNUTLS_NO_IMPLICIT_INIT is set in the environment the process starts
 * with: set it and start again, once. */
static void fetcher_skip_gnutls_init(char **argv)
{
	if (getenv("GNUTLS_NO_IMPLICIT_INIT") != NULL || setenv("GNUTLS_NO_IMPLICIT_INIT", "1", 1))
		return;
	execv("/proc/self/exe", argv);
	/* no /proc: run as loaded */
}

int main(int argc, char **argv)
{
	fetcher_skip_gnutls_init(argv);
	/* One malloc arena for every thread (ZeroMQ's, IDLE, parse worker),
	 * set before the first of them starts: a few MB of RSS less, at no
	 * measurable cost for this little concurrency. */
	mallopt(M_ARENA_MAX, 1);
	/* Message-sized buffers (64 KB and up) are mapped for their own use and
	 * given back when freed, rather than kept in the heap between polls. */
	mallopt(M_MMAP_THRESHOLD, 64 * 1024);
	mallopt(M_TRIM_THRESHOLD, 256 * 1024);
	static const pp_stage_ops_t ops = {
	    .stage = FETCHER_STAGE,
	    .init = fetcher_init,
	    .work = fetcher_work,
	    .reload = fetcher_reload,
	    .fini = fetcher_fini,
	    .pending = fetcher_pending,
	    .selftest = fetcher_selftest,
	};
	return pp_daemon_main(argc, argv, &ops);
}
