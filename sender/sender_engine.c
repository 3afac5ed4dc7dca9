/*
 * sender_engine.c - the sender's delivery loop. Owns the claimed batches
 * ("holds"), their bodies, the outcomes waiting to be recorded and the
 * connection pool. One step: take finished jobs, claim more when running
 * low, read bodies ahead, hand every message whose rate slot has come to
 * an idle connection of its account, record the outcomes that came back
 * at once (all connections' in one statement: group commit), renew
 * leases, then sleep until a job finishes or the next slot or claim is due.
 * A connection ends the data of its next message only once the previous
 * message's outcome is committed (sender_conn_recorded): a crash repeats
 * at most one message per connection.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pp_log.h"
#include "pp_proxy.h"
#include "pp_util.h"
#include "sender.h"

/* Columns the claim returns for each message, in this order. */
static const pp_outbox_desc_t sender_outbox_desc = {
    .stage = "sender",
    .channel = "email",
    .account_table = "email_accounts",
    .account_column = "email_account_id",
    .columns = "to_addr, cc_addrs, bcc_addrs, size_bytes",
    .schedule = 1,
    .daily_cap = 1,
    .holds = 1,
};
enum { COL_TO, COL_CC, COL_BCC, COL_SIZE };

#define ENGINE_FETCH_MAX 256      /* bodies read in one statement at most */
#define ENGINE_WAIT_MAX_US 100000 /* a step never sleeps longer */
#define ENGINE_QUEUE_MAX 64       /* jobs queued on one connection at most */

/* One claimed batch and the bodies read for it. */
typedef struct hold {
	pp_outbox_batch_t batch;
	char **bodies; /* per item; NULL until read, freed once handed back */
	size_t *lens;
	uint64_t generation; /* the claim: account settings are read again */
	struct hold *next;
} hold_t;

typedef struct {
	pp_outbox_item_t *item;
	pp_outbox_result_t res;
	sender_job_t *job; /* its connection waits for the record; NULL: none */
} pending_t;

struct sender_engine {
	pp_daemon_t *d;
	pp_outbox_t *outbox;
	pp_outbox_opts_t outbox_opts;
	sender_engine_opts_t opts;
	sender_accounts_t accounts;
	sender_pool_t pool;
	hold_t *holds;
	uint64_t generation, step;
	int in_flight;
	pending_t *pending;
	size_t npending, pending_cap;
	int64_t last_claim_us;
	int last_claim_full;
	/* Found by the last dispatch pass. */
	size_t undispatched;
	int64_t next_slot_us;
	int body_blocked;
	pp_outbox_item_t **missed;
	size_t nmissed, missed_cap;
	pp_proxy_cache_t *proxy;
	uint64_t proxy_generation;
	char proxy_error[400];
};

typedef enum { TRY_SENT, TRY_BLOCKED, TRY_DONE, TRY_ERROR } try_t;

sender_engine_t *sender_engine_new(pp_daemon_t *d, pp_outbox_t **outbox)
{
	sender_engine_t *e = xcalloc(1, sizeof(*e));
	e->d = d;
	e->outbox = pp_outbox_new(pp_daemon_db(d), &sender_outbox_desc, pp_daemon_lease_id(d));
	sender_pool_init(&e->pool);
	e->proxy = pp_proxy_cache_new();
	*outbox = e->outbox;
	return e;
}

void sender_engine_set_options(sender_engine_t *e, const sender_engine_opts_t *opts,
                               const pp_outbox_opts_t *outbox_opts)
{
	e->opts = *opts;
	e->outbox_opts = *outbox_opts;
	pp_outbox_set_options(e->outbox, outbox_opts);
}

/* ---- outcomes ---- */

/* engine_job_done - a job is over and its outcome in the database (or it
 * was never attempted): the connection may end its next message's data;
 * counters, and free it. */
static void engine_job_done(sender_job_t *job)
{
	sender_account_t *acct = job->acct;
	sender_conn_recorded(job->conn, job->seq);
	acct->busy--;
	job->conn->jobs--;
	if (acct->close_idle && acct->busy == 0) {
		sender_account_close_idle(acct);
		acct->close_idle = 0;
	}
	curl_slist_free_all(job->rcpts);
	free(job);
}

/* engine_pend - an outcome to record; job (NULL: none) is kept, its
 * connection waiting, until it is recorded. */
static void engine_pend(sender_engine_t *e, pp_outbox_item_t *item, const pp_outbox_result_t *res,
                        sender_job_t *job)
{
	if (e->npending == e->pending_cap) {
		e->pending_cap = e->pending_cap ? e->pending_cap * 2 : 64;
		e->pending = xrealloc(e->pending, e->pending_cap * sizeof(*e->pending));
	}
	item->in_flight = 1; /* attempted: never released */
	e->pending[e->npending].item = item;
	e->pending[e->npending].res = *res;
	e->pending[e->npending].job = job;
	e->npending++;
	pp_daemon_count(e->d, res->outcome == PP_OUTCOME_SENT, res->outcome != PP_OUTCOME_SENT);
	if (res->outcome != PP_OUTCOME_SENT)
		pp_daemon_count_failure(e->d,
		                        res->outcome == PP_OUTCOME_PERMANENT ? PP_FAILURE_PERMANENT
		                        : res->outcome == PP_OUTCOME_ACCOUNT ? PP_FAILURE_ACCOUNT
		                                                             : PP_FAILURE_TEMPORARY,
		                        1);
}

/* engine_flush - record every pending outcome, record_max per statement. */
static int engine_flush(sender_engine_t *e)
{
	size_t done = 0, max = e->opts.record_max > 0 ? (size_t)e->opts.record_max : 1;
	if (max > e->npending)
		max = e->npending;
	pp_outbox_item_t **items = xcalloc(max, sizeof(*items));
	pp_outbox_result_t *res = xcalloc(max, sizeof(*res));
	int rc = 0;
	while (done < e->npending && rc == 0) {
		size_t n = e->npending - done < max ? e->npending - done : max;
		for (size_t i = 0; i < n; i++) {
			items[i] = e->pending[done + i].item;
			res[i] = e->pending[done + i].res;
		}
		rc = pp_outbox_record_many(e->outbox, items, res, n);
		if (rc != 0)
			break;
		for (size_t i = 0; i < n; i++)
			if (e->pending[done + i].job != NULL)
				engine_job_done(e->pending[done + i].job);
		done += n;
	}
	memmove(e->pending, e->pending + done, (e->npending - done) * sizeof(*e->pending));
	e->npending -= done;
	free(items);
	free(res);
	return rc;
}

/* engine_fail_account - an account-wide problem with item: pause the
 * account (one diagnostic), give back every held message of it not in
 * flight, and close its connections once they are idle. */
static int engine_fail_account(sender_engine_t *e, hold_t *h, pp_outbox_item_t *item,
                               sender_account_t *acct, const char *code, long reply,
                               const char *text)
{
	pp_outbox_result_t res = {.outcome = PP_OUTCOME_ACCOUNT, .code = reply};
	snprintf(res.text, sizeof(res.text), "%s", text);
	item->in_flight = 0;
	if (pp_outbox_pause_account(e->outbox, &h->batch, item, code, &res) != 0)
		return -1;
	for (hold_t *o = e->holds; o != NULL; o = o->next)
		if (o != h && pp_outbox_release(e->outbox, &o->batch, item->account_id) < 0)
			return -1;
	if (acct != NULL) {
		acct->close_idle = 1;
		sender_account_close_idle(acct);
	}
	return 0;
}

/* engine_defer_account - the account's OAuth2 token endpoint is down:
 * give back every held message of it (attempts not counted) and hold its
 * queue back until the retry time, like a temporary account-wide delay. */
static int engine_defer_account(sender_engine_t *e, pp_outbox_item_t *item, sender_account_t *acct,
                                int64_t seconds, const char *why)
{
	for (hold_t *o = e->holds; o != NULL; o = o->next)
		if (pp_outbox_release(e->outbox, &o->batch, item->account_id) < 0)
			return -1;
	return sender_account_defer(pp_daemon_db(e->d), acct->id, seconds, why);
}

/* engine_proxy_failed - the proxy failed, not the account: the message
 * goes back to the queue with its attempt given back (last_error names the
 * proxy), so do the account's other held messages, and its queue waits
 * SENDER_PROXY_RETRY_S. Nothing is paused: the account is not at fault. */
static int engine_proxy_failed(sender_engine_t *e, pp_outbox_item_t *item, sender_account_t *acct,
                               const pp_outbox_result_t *res)
{
	pp_outbox_item_t *one[1] = {item};
	item->in_flight = 0;
	if (pp_outbox_release_items(e->outbox, one, 1, res) != 0)
		return -1;
	acct->close_idle = 1;
	sender_account_close_idle(acct);
	return engine_defer_account(e, item, acct, SENDER_PROXY_RETRY_S, res->text);
}

/* engine_proxy_refresh - the proxy settings for new connections; when
 * they changed, kept connections are closed (busy ones once idle). */
static void engine_proxy_refresh(sender_engine_t *e)
{
	uint64_t gen = 0;
	const pp_proxy_t *p = NULL;
	int rc = pp_proxy_cache_get(e->proxy, pp_daemon_db(e->d), pp_daemon_key(e->d),
	                            PP_PROXY_FOR_EMAIL, &p, &gen, e->proxy_error,
	                            sizeof(e->proxy_error));
	e->opts.smtp.proxy = p;
	e->opts.smtp.proxy_error = rc != 0 ? e->proxy_error : NULL;
	if (e->proxy_generation != 0 && gen != e->proxy_generation) {
		log_info("proxy settings changed; reconnecting");
		sender_engine_close_connections(e);
	}
	e->proxy_generation = gen;
}

/* engine_results - take finished jobs: outcomes to record, or a pause.
 * Skipped jobs go first: they are in the queue again (not in flight), so
 * a pause gives them back with the rest of the account's messages. The
 * outcomes are recorded before returning, together with any still
 * waiting: their connections are holding their next message's end of
 * data for it. */
static int engine_results(sender_engine_t *e, sender_job_t *jobs)
{
	int rc = 0;
	sender_job_t *attempted = NULL, **tail = &attempted;
	while (jobs != NULL) {
		sender_job_t *job = jobs;
		jobs = job->next;
		e->in_flight--;
		if (!job->skipped) {
			*tail = job;
			tail = &job->next;
			continue;
		}
		job->item->in_flight = 0;
		engine_job_done(job);
	}
	*tail = NULL;
	while (attempted != NULL) {
		sender_job_t *job = attempted;
		hold_t *h = job->hold;
		size_t idx = (size_t)(job->item - h->batch.items);
		attempted = job->next;
		free(h->bodies[idx]);
		h->bodies[idx] = NULL;
		if (job->res.outcome == PP_OUTCOME_ACCOUNT && job->diag != NULL &&
		    strcmp(job->diag, SENDER_DIAG_PROXY) == 0) {
			if (engine_proxy_failed(e, job->item, job->acct, &job->res) != 0)
				rc = -1;
		} else if (job->res.outcome == PP_OUTCOME_ACCOUNT) {
			pp_daemon_count(e->d, 0, 1);
			pp_daemon_count_failure(e->d, PP_FAILURE_ACCOUNT, 1);
			if (engine_fail_account(e, h, job->item, job->acct, job->diag,
			                        job->res.code, job->res.text) != 0)
				rc = -1;
		} else {
			engine_pend(e, job->item, &job->res, job);
			continue; /* done once recorded */
		}
		engine_job_done(job);
	}
	if (e->npending > 0 && engine_flush(e) != 0)
		rc = -1;
	return rc;
}

/* ---- claims and bodies ---- */

/* engine_claim_due - claim when nothing is held (to learn whether we are
 * idle), soon after a full claim once half of it is on its way, and
 * otherwise every claim_interval_ms while work is held. */
static int engine_claim_due(const sender_engine_t *e, int64_t now)
{
	size_t batch = (size_t)e->outbox_opts.batch_size;
	if (e->holds == NULL)
		return 1;
	if (e->undispatched >= batch)
		return 0;
	if (e->last_claim_full && e->undispatched < (batch + 1) / 2)
		return 1;
	return now - e->last_claim_us >= (int64_t)e->opts.claim_interval_ms * 1000;
}

static int engine_claim(sender_engine_t *e)
{
	pp_outbox_batch_t b;
	int n = pp_outbox_claim(e->outbox, &b);
	e->last_claim_us = pp_outbox_now_us();
	if (n <= 0) {
		pp_outbox_batch_free(&b);
		e->last_claim_full = 0;
		return n;
	}
	e->last_claim_full = n >= e->outbox_opts.batch_size;
	hold_t *h = xcalloc(1, sizeof(*h)), **tail = &e->holds;
	h->batch = b;
	h->bodies = xcalloc(b.count, sizeof(*h->bodies));
	h->lens = xcalloc(b.count, sizeof(*h->lens));
	h->generation = ++e->generation;
	while (*tail != NULL)
		tail = &(*tail)->next;
	*tail = h;
	return n;
}

/* engine_prefetch - read the bodies of the next messages in line, in one
 * statement, while the bodies held (read ahead or being delivered) stay
 * under fetch_bytes; the next body in line is always read. */
static int engine_prefetch(sender_engine_t *e)
{
	pp_outbox_item_t *items[ENGINE_FETCH_MAX];
	hold_t *owner[ENGINE_FETCH_MAX];
	char *bodies[ENGINE_FETCH_MAX];
	size_t lens[ENGINE_FETCH_MAX], n = 0, bytes = 0;
	for (hold_t *h = e->holds; h != NULL && n < ENGINE_FETCH_MAX; h = h->next)
		for (size_t i = 0; i < h->batch.count && n < ENGINE_FETCH_MAX; i++) {
			pp_outbox_item_t *it = &h->batch.items[i];
			if (h->bodies[i] != NULL)
				bytes += h->lens[i];
			if (it->done || it->in_flight || h->bodies[i] != NULL)
				continue;
			const char *size = it->cols[COL_SIZE];
			size_t hint = size ? (size_t)strtoull(size, NULL, 10) : 0;
			if (n > 0 && bytes + hint > e->opts.fetch_bytes)
				break;
			bytes += hint;
			owner[n] = h;
			items[n++] = it;
		}
	if (n == 0)
		return 0;
	if (pp_outbox_fetch_many(e->outbox, items, n, "body", bodies, lens) != 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		size_t idx = (size_t)(items[i] - owner[i]->batch.items);
		owner[i]->bodies[idx] = bodies[i];
		owner[i]->lens[idx] = lens[i];
	}
	return 0;
}

/* ---- dispatch ---- */

static void engine_missed(sender_engine_t *e, pp_outbox_item_t *it, int64_t late_us)
{
	if (e->nmissed == e->missed_cap) {
		e->missed_cap = e->missed_cap ? e->missed_cap * 2 : 16;
		e->missed = xrealloc(e->missed, e->missed_cap * sizeof(*e->missed));
	}
	e->missed[e->nmissed++] = it;
	log_warnx("msg=%lld account=%lld rate slot missed by %lldms; back to the queue",
	          (long long)it->id, (long long)it->account_id, (long long)(late_us / 1000));
}

/* engine_prepare - the job's envelope and size checks; 0, or 1 when the
 * message failed for good (its outcome is pending). */
static int engine_prepare(sender_engine_t *e, hold_t *h, size_t i, sender_account_t *acct,
                          sender_job_t *job)
{
	pp_outbox_item_t *it = &h->batch.items[i];
	pp_outbox_result_t res = {.outcome = PP_OUTCOME_PERMANENT};
	int count;
	memset(job, 0, sizeof(*job));
	job->rcpts =
	    sender_envelope_recipients(it->cols[COL_TO], it->cols[COL_CC], it->cols[COL_BCC],
	                               &count, res.text, sizeof(res.text));
	if (job->rcpts != NULL && !sender_size_refused(h->lens[i], acct->max_bytes, "the account's",
	                                               res.text, sizeof(res.text))) {
		job->item = it;
		job->hold = h;
		job->acct = acct;
		job->body = h->bodies[i];
		job->len = h->lens[i];
		return 0;
	}
	curl_slist_free_all(job->rcpts);
	free(h->bodies[i]);
	h->bodies[i] = NULL;
	engine_pend(e, it, &res, NULL);
	return 1;
}

/* engine_account - the item's account, ready to take a job; TRY_SENT
 * means "go on" here. */
static try_t engine_account(sender_engine_t *e, hold_t *h, pp_outbox_item_t *it,
                            sender_account_t **out)
{
	char err[512];
	int rc = sender_account_get(&e->accounts, pp_daemon_db(e->d), it->account_id, h->generation,
	                            out, err, sizeof(err));
	if (rc == 0 && (*out)->pending != NULL) {
		if ((*out)->busy > 0) {
			(*out)->blocked_step = e->step;
			return TRY_BLOCKED;
		}
		rc = sender_account_apply_pending(*out, err, sizeof(err));
	}
	if (rc == -1)
		return TRY_ERROR;
	if (rc == -2)
		return engine_fail_account(e, h, it, *out, "smtp_account_config", 0, err) == 0
		           ? TRY_DONE
		           : TRY_ERROR;
	return TRY_SENT;
}

/* engine_try - hand item i of h to a connection if its time has come. */
static try_t engine_try(sender_engine_t *e, hold_t *h, size_t i, int64_t now)
{
	pp_outbox_item_t *it = &h->batch.items[i];
	sender_account_t *acct;
	int64_t wait, interval = it->send_now ? 0 : it->interval_us;
	char err[512];
	try_t t = engine_account(e, h, it, &acct);
	if (t != TRY_SENT)
		return t;
	sender_slot_t slot =
	    sender_slot_check(now, it->not_before_us, interval, acct->last_start_us, &wait);
	if (slot == SENDER_SLOT_MISSED) {
		engine_missed(e, it, now - it->not_before_us);
		return TRY_DONE;
	}
	if (slot == SENDER_SLOT_WAIT || h->bodies[i] == NULL) {
		if (slot == SENDER_SLOT_WAIT && now + wait < e->next_slot_us)
			e->next_slot_us = now + wait;
		e->body_blocked |= slot != SENDER_SLOT_WAIT;
		acct->rate_blocked_step = e->step;
		return TRY_BLOCKED;
	}
	/* A rate-limited message starts the moment it is handed over; others
	 * may queue behind each other on a connection. */
	int depth = it->send_now || it->interval_us == 0 ? e->opts.record_max : 1;
	sender_conn_t *conn = sender_account_idle_conn(
	    acct, e->d, &e->pool, &e->opts.smtp,
	    depth < ENGINE_QUEUE_MAX ? depth : ENGINE_QUEUE_MAX, err, sizeof(err));
	if (conn == NULL && err[0] != '\0' && acct->proxy_failed)
		return engine_defer_account(e, it, acct, SENDER_PROXY_RETRY_S, err) == 0
		           ? TRY_DONE
		           : TRY_ERROR;
	if (conn == NULL && err[0] != '\0' && acct->token_backoff_s > 0)
		return engine_defer_account(e, it, acct, acct->token_backoff_s,
		                            "OAuth2 token endpoint unavailable") == 0
		           ? TRY_DONE
		           : TRY_ERROR;
	if (conn == NULL && err[0] != '\0')
		return engine_fail_account(e, h, it, acct,
		                           acct->token_reauth ? "oauth_reauth_needed"
		                                              : "smtp_account_config",
		                           0, err) == 0
		           ? TRY_DONE
		           : TRY_ERROR;
	if (conn == NULL) {
		acct->blocked_step = e->step;
		return TRY_BLOCKED;
	}
	sender_job_t *job = xmalloc(sizeof(*job));
	if (engine_prepare(e, h, i, acct, job) != 0) {
		free(job);
		return TRY_DONE;
	}
	it->in_flight = 1;
	acct->busy++;
	e->in_flight++;
	if (interval > 0)
		acct->last_start_us = now;
	sender_conn_submit(conn, job);
	return TRY_SENT;
}

/* engine_dispatch - one pass over the held messages, in claim order (so
 * each account's rate slots are used in order). */
static int engine_dispatch(sender_engine_t *e)
{
	int64_t now = pp_outbox_now_us();
	int rc = 0;
	e->undispatched = 0;
	e->next_slot_us = INT64_MAX;
	e->body_blocked = 0;
	for (hold_t *h = e->holds; h != NULL && rc == 0; h = h->next)
		for (size_t i = 0; i < h->batch.count && rc == 0; i++) {
			pp_outbox_item_t *it = &h->batch.items[i];
			if (it->done || it->in_flight)
				continue;
			sender_account_t *a = sender_account_find(&e->accounts, it->account_id);
			int limited = !it->send_now && it->interval_us > 0;
			if (a != NULL && (a->blocked_step == e->step ||
			                  (limited && a->rate_blocked_step == e->step))) {
				e->undispatched++;
				continue;
			}
			try_t t = engine_try(e, h, i, now);
			e->undispatched += t == TRY_BLOCKED;
			rc = t == TRY_ERROR ? -1 : 0;
		}
	if (e->nmissed > 0 && pp_outbox_release_items(e->outbox, e->missed, e->nmissed, NULL) != 0)
		rc = -1;
	e->nmissed = 0;
	return rc;
}

/* ---- holds ---- */

static void hold_free(hold_t *h)
{
	for (size_t i = 0; i < h->batch.count; i++)
		free(h->bodies[i]);
	free(h->bodies);
	free(h->lens);
	pp_outbox_batch_free(&h->batch);
	free(h);
}

/* engine_reap - forget the holds whose messages are all done. */
static void engine_reap(sender_engine_t *e)
{
	for (hold_t **p = &e->holds; *p != NULL;) {
		hold_t *h = *p;
		size_t i = 0;
		while (i < h->batch.count && h->batch.items[i].done)
			i++;
		if (i < h->batch.count) {
			p = &h->next;
			continue;
		}
		*p = h->next;
		hold_free(h);
	}
}

static int engine_renew(sender_engine_t *e)
{
	int rc = 0;
	for (hold_t *h = e->holds; h != NULL; h = h->next)
		if (pp_outbox_renew(e->outbox, &h->batch) != 0)
			rc = -1;
	return rc;
}

/* engine_deadline - when the step must look again at the latest. */
static int64_t engine_deadline(const sender_engine_t *e, int64_t now)
{
	int64_t t = now + ENGINE_WAIT_MAX_US;
	if (e->body_blocked && e->in_flight == 0)
		return now;
	if (e->next_slot_us < t)
		t = e->next_slot_us;
	if (e->holds != NULL && e->last_claim_us + (int64_t)e->opts.claim_interval_ms * 1000 < t)
		t = e->last_claim_us + (int64_t)e->opts.claim_interval_ms * 1000;
	return t;
}

int sender_engine_step(sender_engine_t *e)
{
	int rc = 0, claimed = -1;
	e->step++;
	if (pp_daemon_stopping(e->d)) {
		sender_engine_drain(e);
		return 0;
	}
	if (engine_results(e, sender_pool_take(&e->pool, 0)) != 0)
		rc = -1;
	engine_proxy_refresh(e);
	if (engine_claim_due(e, pp_outbox_now_us()) && (claimed = engine_claim(e)) < 0)
		rc = -1;
	else if (claimed < 0)
		claimed = 1; /* not asked: not known to be idle */
	if (engine_prefetch(e) != 0 || engine_dispatch(e) != 0)
		rc = -1;
	int64_t now = pp_outbox_now_us();
	if (e->npending > 0 && engine_flush(e) != 0)
		rc = -1;
	if (engine_renew(e) != 0)
		rc = -1;
	engine_reap(e);
	sender_accounts_sweep(&e->accounts, e->opts.idle_ms);
	if (e->holds == NULL && e->npending == 0 && e->in_flight == 0)
		return rc < 0 ? -1 : claimed;
	if (engine_results(e, sender_pool_take(&e->pool, engine_deadline(e, now))) != 0)
		rc = -1;
	return rc < 0 ? -1 : 1;
}

void sender_engine_drain(sender_engine_t *e)
{
	/* Finish the transactions under way; what is queued goes back. */
	for (sender_account_t *a = e->accounts.head; a != NULL; a = a->next)
		for (int i = 0; i < a->nconns; i++)
			sender_conn_cancel(a->conns[i]);
	while (e->in_flight > 0)
		engine_results(e, sender_pool_take(&e->pool, pp_outbox_now_us() + 1000000));
	if (e->npending > 0 && engine_flush(e) != 0)
		log_warnx("%zu outcome(s) could not be recorded; their leases will expire",
		          e->npending);
	for (size_t i = 0; i < e->npending; i++)
		if (e->pending[i].job != NULL)
			engine_job_done(e->pending[i].job);
	e->npending = 0;
	/* What was attempted but not recorded stays to its lease. */
	for (hold_t *h = e->holds; h != NULL; h = h->next)
		pp_outbox_release(e->outbox, &h->batch, 0);
	while (e->holds != NULL) {
		hold_t *h = e->holds;
		e->holds = h->next;
		hold_free(h);
	}
}

void sender_engine_close_connections(sender_engine_t *e)
{
	pp_proxy_cache_expire(e->proxy); /* SIGHUP: the proxy settings too */
	for (sender_account_t *a = e->accounts.head; a != NULL; a = a->next) {
		sender_account_close_idle(a);
		a->close_idle = a->busy > 0;
		a->generation = 0; /* read the settings again */
	}
}

void sender_engine_free(sender_engine_t **ep)
{
	sender_engine_t *e = *ep;
	if (e == NULL)
		return;
	sender_engine_drain(e);
	sender_accounts_clear(&e->accounts);
	sender_pool_destroy(&e->pool);
	pp_outbox_free(&e->outbox);
	pp_proxy_cache_free(&e->proxy);
	free(e->pending);
	free(e->missed);
	free(e);
	*ep = NULL;
}
