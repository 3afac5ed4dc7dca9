/*
 * composer_main.c - the composer stage: claims new compose requests and
 * turns each into one queued email or SMS (composer_request.c), then wakes
 * the sender or sms stage. Owns the stage settings from [composer]:
 *   batch_size     requests claimed at once (default 100)
 *   lease_seconds  how long a claim holds them (default 60)
 */
#include <stdlib.h>

#include "composer.h"
#include "composer_auto.h"
#include "composer_batch.h"
#include "pp_ical.h"
#include "pp_log.h"
#include "pp_selftest.h"
#include "pp_mime.h"
#include "pp_util.h"

static void composer_load_config(pp_daemon_t *d, composer_state_t *st)
{
	st->batch_size = (int)pp_daemon_int(d, "batch_size", 100, 1, 10000);
	st->lease_seconds = (int)pp_daemon_int(d, "lease_seconds", 60, 5, 86400);
}

static int composer_init(pp_daemon_t *d, void **state)
{
	composer_state_t *st = xcalloc(1, sizeof(*st));
	composer_load_config(d, st);
	composer_auto_init(d);
	*state = st;
	return 0;
}

static void composer_reload(pp_daemon_t *d, void *state)
{
	composer_load_config(d, state);
	composer_auto_reload(d);
}

/* composer_work - one batch: claim, compose each in its own transaction.
 * Returns the requests handled, 0 when idle, -1 on a database problem
 * (what is still claimed is released, or its lease runs out). */
static int composer_work(pp_daemon_t *d, void *state)
{
	composer_state_t *st = state;
	int64_t *ids = NULL;
	int automatic = composer_auto_work(d); /* composer_auto.c: automatic messages, batches */
	int n = composer_request_claim(d, st, &ids);
	int handled = 0, failed = 0, rc = 0;
	int fast = composer_batch_claimed(d, ids, n); /* composer_batch.c: plain ones in bulk */
	for (int i = 0; i < n; i++) {
		if (pp_daemon_stopping(d))
			break;
		if (ids[i] == 0) /* composed by composer_batch_claimed */
			continue;
		composer_rc_t r = composer_request_run(d, ids[i]);
		if (r == COMPOSER_DB_ERROR) {
			rc = -1;
			break;
		}
		if (r == COMPOSER_OK)
			handled++;
		else if (r == COMPOSER_REFUSED)
			failed++;
	}
	free(ids);
	pp_daemon_count(d, handled, failed);
	pp_daemon_count_failure(d, PP_FAILURE_PERMANENT, failed);
	if (n < 0 || rc < 0) {
		composer_request_release(d);
		return -1;
	}
	if (handled + failed + (fast > 0 ? fast : 0) < n)
		composer_request_release(d);
	return automatic < 0 ? -1 : n + automatic;
}

static int64_t composer_pending(pp_daemon_t *d, void *state)
{
	(void)state;
	PGresult *res = pp_db_exec(
	    pp_daemon_db(d), "SELECT count(*) FROM compose_requests WHERE state = 'new'", 0, NULL);
	if (res == NULL)
		return -1;
	int64_t n = pp_db_value_ll(res, 0, 0, -1);
	PQclear(res);
	return n;
}

static void composer_fini(pp_daemon_t *d, void *state)
{
	composer_request_release(d);
	free(state);
	pp_mime_shutdown();
	pp_ical_shutdown();
}

/* composer_selftest - the timed self-tests; the queue is the compose
 * requests waiting over a minute. */
static void composer_selftest(pp_daemon_t *d, void *state)
{
	(void)state;
	pp_selftest_tick(d,
	                 "SELECT id::text, format('compose request %s (made %s)', id, "
	                 "to_char(created_at, 'YYYY-MM-DD HH24:MI:SS TZ')) FROM compose_requests "
	                 "WHERE state = 'new' AND created_at < now() - interval '1 minute' ORDER "
	                 "BY id LIMIT 1");
}

static const pp_stage_ops_t composer_ops = {
    .stage = "composer",
    .init = composer_init,
    .work = composer_work,
    .reload = composer_reload,
    .fini = composer_fini,
    .pending = composer_pending,
    .selftest = composer_selftest,
};

int main(int argc, char **argv)
{
	return pp_daemon_main(argc, argv, &composer_ops);
}
