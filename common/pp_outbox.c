/*
 * pp_outbox.c - claim, lease, rate-limit, schedule and release outgoing
 * messages of one channel (see pp_outbox.h). The SQL text is built from
 * the descriptor in pp_outbox_sql.c; recording outcomes and pausing
 * accounts live in pp_outbox_record.c.
 */
#include "pp_outbox.h"

#include <curl/curl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pp_daemon.h"
#include "pp_log.h"
#include "pp_outbox_priv.h"
#include "pp_state.h"
#include "pp_util.h"

pp_outbox_t *pp_outbox_new(pp_db_t *db, const pp_outbox_desc_t *desc, const char *instance)
{
	pp_outbox_t *ob = xcalloc(1, sizeof(*ob));
	ob->db = db;
	ob->desc = desc;
	ob->instance = xstrdup(instance);
	ob->opts = (pp_outbox_opts_t){PP_OUTBOX_DEFAULT_BATCH, PP_OUTBOX_DEFAULT_LEASE,
	                              PP_OUTBOX_DEFAULT_HORIZON_MS, PP_OUTBOX_DEFAULT_RETRY_BASE};
	pp_outbox_sql_build(ob);
	return ob;
}

void pp_outbox_free(pp_outbox_t **obp)
{
	pp_outbox_t *ob = *obp;
	if (ob == NULL)
		return;
	free(ob->instance);
	pp_outbox_sql_free(ob);
	free(ob);
	*obp = NULL;
}

void pp_outbox_set_options(pp_outbox_t *ob, const pp_outbox_opts_t *opts)
{
	ob->opts = *opts;
}

void pp_outbox_batch_free(pp_outbox_batch_t *batch)
{
	for (size_t i = 0; i < batch->count; i++) {
		for (size_t c = 0; c < batch->ncols; c++)
			free(batch->items[i].cols[c]);
		free(batch->items[i].cols);
	}
	free(batch->items);
	memset(batch, 0, sizeof(*batch));
}

int64_t pp_outbox_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* outbox_expire - return messages whose lease ran out to the queue. */
static int outbox_expire(pp_outbox_t *ob)
{
	char max[16];
	snprintf(max, sizeof(max), "%d", PP_MAX_ATTEMPTS);
	PGresult *res =
	    pp_db_exec_prepared(ob->db, ob->sql_expire, PP_DB_ARGS(ob->desc->channel, max));
	if (res == NULL)
		return -1;
	for (int r = 0; r < PQntuples(res); r++)
		log_warnx("msg=%s state=queued lease expired attempts=%s flagged=%d",
		          PQgetvalue(res, r, 0), PQgetvalue(res, r, 1),
		          strcmp(PQgetvalue(res, r, 2), "t") == 0);
	PQclear(res);
	return 0;
}

/* outbox_add_rows - append claimed rows (rate slots are dealt later);
 * rows with a hold (column 0) were held back by a rule: logged, not added.
 * Returns how many were claimed. */
static int outbox_add_rows(pp_outbox_batch_t *batch, const PGresult *res, int64_t account_id)
{
	int n = PQntuples(res), added = 0;
	batch->ncols = PQnfields(res) > 5 ? (size_t)PQnfields(res) - 5 : 0;
	if (n == 0)
		return 0;
	batch->items = xrealloc(batch->items, (batch->count + (size_t)n) * sizeof(*batch->items));
	for (int r = 0; r < n; r++) {
		if (!PQgetisnull(res, r, 0)) {
			log_info("msg=%s state=queued held %s", PQgetvalue(res, r, 1),
			         PQgetvalue(res, r, 0));
			continue;
		}
		pp_outbox_item_t *it = &batch->items[batch->count++];
		memset(it, 0, sizeof(*it));
		it->id = pp_db_value_ll(res, r, 1, 0);
		it->account_id = account_id;
		it->practice_id = pp_db_value_ll(res, r, 2, 0);
		it->attempts = (int)pp_db_value_ll(res, r, 3, 0);
		it->send_now = strcmp(PQgetvalue(res, r, 4), "t") == 0;
		it->cols = xcalloc(batch->ncols ? batch->ncols : 1, sizeof(char *));
		for (size_t c = 0; c < batch->ncols; c++) {
			const char *v = pp_db_value(res, r, 5 + (int)c);
			it->cols[c] = v ? xstrdup(v) : NULL;
		}
		added++;
	}
	return added;
}

static int outbox_item_cmp(const void *a, const void *b)
{
	const pp_outbox_item_t *x = a, *y = b;
	if (x->send_now != y->send_now)
		return y->send_now - x->send_now;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* The rate slots of one account in one claim. */
typedef struct {
	int64_t local_us; /* this host's clock, no earlier than the database read it */
	double wait_us;   /* first slot, from the database clock */
	double interval_us;
} outbox_slots_t;

/* outbox_deal_slots - rows come back in no fixed order: put one account's
 * items send_now first, then by id, and give the rate-limited ones their
 * slots in that order. */
static void outbox_deal_slots(pp_outbox_item_t *items, size_t n, const outbox_slots_t *sl)
{
	int slot = 0;
	qsort(items, n, sizeof(*items), outbox_item_cmp);
	for (size_t i = 0; i < n; i++) {
		if (items[i].send_now || sl->interval_us <= 0)
			continue;
		int64_t us = pp_outbox_slot_us(sl->local_us, sl->wait_us, sl->interval_us, slot++);
		items[i].not_before_us = us;
		items[i].not_before_ms = (us + 999) / 1000;
		items[i].interval_us = (int64_t)ceil(sl->interval_us);
	}
}

/* outbox_claim_account - claim send_now messages, then rate-limited ones
 * within quota, daily room and the open delivery session, for one locked
 * account, and advance its rate state. Returns how many or -1. */
static int outbox_claim_account(pp_outbox_t *ob, pp_outbox_batch_t *batch, const PGresult *acc,
                                int row, int room, int64_t local_us)
{
	const char *id = PQgetvalue(acc, row, 0), *cutoff = PQgetvalue(acc, row, 5);
	const char *interval = PQgetvalue(acc, row, 3);
	long long day_room = pp_db_value_ll(acc, row, 4, -1);
	outbox_slots_t sl = {local_us, strtod(PQgetvalue(acc, row, 2), NULL),
	                     strtod(interval, NULL)};
	int horizon_ms = ob->opts.rate_horizon_ms;
	char lease[16], limit[16], slots[16], count[16];
	int claimed = 0, dealt = 0;
	size_t first = batch->count;

	/* Staggered SMS: no slot may fall past the end of the open session. */
	if (!PQgetisnull(acc, row, 6)) {
		double session_ms = strtod(PQgetvalue(acc, row, 6), NULL) / 1000 - 1;
		if (session_ms < horizon_ms)
			horizon_ms = session_ms > 0 ? (int)session_ms : -1;
	}
	if (day_room >= 0 && day_room < room)
		room = (int)day_room;
	snprintf(lease, sizeof(lease), "%d", ob->opts.lease_seconds);
	for (int pass = 0; pass < 2 && room > 0; pass++) {
		int quota = pass == 0 || sl.interval_us <= 0
		                ? room
		                : pp_outbox_rate_quota(sl.wait_us / 1000, sl.interval_us / 1000,
		                                       horizon_ms, room);
		if (quota <= 0)
			break;
		snprintf(limit, sizeof(limit), "%d", quota);
		PGresult *res =
		    pp_db_exec_prepared(ob->db, ob->sql_claim,
		                        PP_DB_ARGS(id, ob->instance, lease, ob->desc->channel,
		                                   pass == 0 ? "true" : "false", limit, cutoff));
		if (res == NULL)
			return -1;
		int n = outbox_add_rows(batch, res, pp_db_value_ll(acc, row, 0, 0));
		PQclear(res);
		if (pass == 1 && sl.interval_us > 0)
			dealt = n;
		claimed += n;
		room -= n;
	}
	snprintf(slots, sizeof(slots), "%d", dealt);
	snprintf(count, sizeof(count), "%d", claimed);
	if (claimed == 0)
		return 0;
	if (pp_db_command_prepared(ob->db, ob->sql_advance,
	                           PP_DB_ARGS(id, slots, count, interval)) != 0)
		return -1;
	outbox_deal_slots(batch->items + first, batch->count - first, &sl);
	return claimed;
}

int pp_outbox_claim(pp_outbox_t *ob, pp_outbox_batch_t *batch)
{
	char limit[16];
	PGresult *acc = NULL;
	int room = ob->opts.batch_size;

	memset(batch, 0, sizeof(*batch));
	if (pp_db_begin(ob->db) != 0)
		return -1;
	/* The claim's statements are long (the hold rules inlined): planning
	 * them for each claim cost more than running them. */
	if (pp_db_command(ob->db, "SET LOCAL plan_cache_mode = force_generic_plan", 0, NULL) != 0)
		goto fail;
	if (outbox_expire(ob) != 0)
		goto fail;
	snprintf(limit, sizeof(limit), "%d", room);
	acc = pp_db_exec_prepared(ob->db, ob->sql_accounts, PP_DB_ARGS(ob->desc->channel, limit));
	if (acc == NULL)
		goto fail;
	/* Waits are measured from the database clock as the query ran; this
	 * local instant is no earlier, so a slot is never taken early. */
	int64_t local_us = pp_outbox_now_us();
	/* Each account gets a fair share of the room; what one leaves (its
	 * rate quota, or a short queue) goes to those after it. */
	for (int r = 0, left = PQntuples(acc); r < PQntuples(acc) && room > 0; r++, left--) {
		int n = outbox_claim_account(ob, batch, acc, r, (room + left - 1) / left, local_us);
		if (n < 0)
			goto fail;
		room -= n;
	}
	PQclear(acc);
	acc = NULL;
	if (pp_db_commit(ob->db) != 0)
		goto fail_committed;
	batch->renewed_ms = pp_mono_ms();
	for (size_t i = 0; i < batch->count; i++)
		log_debug("msg=%lld state=sending account=%lld attempt=%d",
		          (long long)batch->items[i].id, (long long)batch->items[i].account_id,
		          batch->items[i].attempts);
	return (int)batch->count;
fail:
	PQclear(acc);
	pp_db_rollback(ob->db);
fail_committed:
	log_warnx("claim failed: %s", pp_db_error(ob->db));
	pp_outbox_batch_free(batch);
	return -1;
}

char *pp_outbox_held_ids(const pp_outbox_batch_t *batch, int64_t account_id, int *n)
{
	pp_buf_t ids;
	pp_buf_init(&ids);
	pp_buf_puts(&ids, "{");
	*n = 0;
	for (size_t i = 0; i < batch->count; i++) {
		const pp_outbox_item_t *it = &batch->items[i];
		if (it->done || it->in_flight || (account_id != 0 && it->account_id != account_id))
			continue;
		pp_buf_printf(&ids, "%s%lld", *n ? "," : "", (long long)it->id);
		(*n)++;
	}
	pp_buf_puts(&ids, "}");
	return pp_buf_steal(&ids);
}

int pp_outbox_renew(pp_outbox_t *ob, pp_outbox_batch_t *batch)
{
	char lease[16];
	int n = 0, rc = 0;
	int64_t now = pp_mono_ms();
	if (now - batch->renewed_ms < (int64_t)ob->opts.lease_seconds * 1000 / 3)
		return 0;
	/* Items in flight are held too: renew every item not yet done. */
	pp_buf_t ids;
	pp_buf_init(&ids);
	pp_buf_puts(&ids, "{");
	for (size_t i = 0; i < batch->count; i++)
		if (!batch->items[i].done)
			pp_buf_printf(&ids, "%s%lld", n++ ? "," : "",
			              (long long)batch->items[i].id);
	pp_buf_puts(&ids, "}");
	snprintf(lease, sizeof(lease), "%d", ob->opts.lease_seconds);
	if (n > 0)
		rc = pp_db_command(ob->db,
		                   "UPDATE messages SET lease_until = now() + $3::int * interval "
		                   "'1 second' WHERE id = ANY($1::bigint[]) AND " OUTBOX_HELD,
		                   PP_DB_ARGS(ids.data, ob->instance, lease));
	pp_buf_free(&ids);
	if (rc == 0)
		batch->renewed_ms = now;
	else
		log_warnx("lease renewal failed: %s", pp_db_error(ob->db));
	return rc;
}

int pp_outbox_fetch(pp_outbox_t *ob, pp_outbox_item_t *item, const char *column, char **out,
                    size_t *len)
{
	size_t n = 0;
	pp_outbox_item_t *one[1] = {item};
	if (pp_outbox_fetch_many(ob, one, 1, column, out, &n) != 0)
		return -1;
	if (*out == NULL)
		return 1;
	if (len != NULL)
		*len = n;
	return 0;
}

int pp_outbox_fetch_many(pp_outbox_t *ob, pp_outbox_item_t *const *items, size_t n,
                         const char *column, char **out, size_t *len)
{
	pp_buf_t ids;
	char *sql = xasprintf("SELECT m.id, m.%s FROM messages m WHERE m.id = ANY($1::bigint[]) "
	                      "AND m.claimed_by = $2 AND m.state = 'sending'",
	                      column);
	pp_buf_init(&ids);
	pp_buf_puts(&ids, "{");
	for (size_t i = 0; i < n; i++) {
		pp_buf_printf(&ids, "%s%lld", i ? "," : "", (long long)items[i]->id);
		out[i] = NULL;
		len[i] = 0;
	}
	pp_buf_puts(&ids, "}");
	PGresult *res = pp_db_exec(ob->db, sql, PP_DB_ARGS(ids.data, ob->instance));
	free(sql);
	pp_buf_free(&ids);
	if (res == NULL) {
		log_warnx("cannot read %s of %zu message(s): %s", column, n, pp_db_error(ob->db));
		return -1;
	}
	/* n is small (a fetch chunk): a nested scan is fine. */
	for (int r = 0; r < PQntuples(res); r++) {
		long long id = pp_db_value_ll(res, r, 0, 0);
		for (size_t i = 0; i < n; i++) {
			if (items[i]->id != id || out[i] != NULL)
				continue;
			size_t l = (size_t)PQgetlength(res, r, 1);
			out[i] = xmalloc(l + 1);
			memcpy(out[i], PQgetvalue(res, r, 1), l);
			out[i][l] = '\0';
			len[i] = l;
			break;
		}
	}
	PQclear(res);
	for (size_t i = 0; i < n; i++)
		if (out[i] == NULL) {
			log_warnx("msg=%lld no longer held by this instance; skipped",
			          (long long)items[i]->id);
			items[i]->done = 1;
		}
	return 0;
}

int pp_outbox_release_ids(pp_outbox_t *ob, const char *ids, const pp_outbox_result_t *why)
{
	char code[24];
	const char *codep = NULL;
	if (why != NULL && why->code > 0) {
		snprintf(code, sizeof(code), "%ld", why->code);
		codep = code;
	}
	return pp_db_command(
	    ob->db, ob->sql_release,
	    PP_DB_ARGS(ids, ob->instance, codep, why ? why->text : NULL, why ? "true" : "false"));
}

void pp_outbox_mark_done(pp_outbox_batch_t *batch, int64_t account_id)
{
	for (size_t i = 0; i < batch->count; i++)
		if ((account_id == 0 || batch->items[i].account_id == account_id) &&
		    !batch->items[i].in_flight)
			batch->items[i].done = 1;
}

int pp_outbox_release(pp_outbox_t *ob, pp_outbox_batch_t *batch, int64_t account_id)
{
	int n;
	char *ids = pp_outbox_held_ids(batch, account_id, &n);
	int rc = n > 0 ? pp_outbox_release_ids(ob, ids, NULL) : 0;
	free(ids);
	if (rc != 0) {
		log_warnx("release failed (the leases will expire): %s", pp_db_error(ob->db));
		return -1;
	}
	pp_outbox_mark_done(batch, account_id);
	if (n > 0)
		log_info("released=%d account=%lld state=queued", n, (long long)account_id);
	return n;
}

int pp_outbox_release_items(pp_outbox_t *ob, pp_outbox_item_t *const *items, size_t n,
                            const pp_outbox_result_t *why)
{
	pp_buf_t ids;
	if (n == 0)
		return 0;
	pp_buf_init(&ids);
	pp_buf_puts(&ids, "{");
	for (size_t i = 0; i < n; i++)
		pp_buf_printf(&ids, "%s%lld", i ? "," : "", (long long)items[i]->id);
	pp_buf_puts(&ids, "}");
	int rc = pp_outbox_release_ids(ob, ids.data, why);
	pp_buf_free(&ids);
	if (rc != 0) {
		log_warnx("release failed (the leases will expire): %s", pp_db_error(ob->db));
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		items[i]->done = 1;
	log_info("released=%zu state=queued", n);
	return 0;
}

int64_t pp_outbox_pending(pp_outbox_t *ob)
{
	PGresult *res = pp_db_exec_prepared(ob->db, ob->sql_pending, PP_DB_ARGS(ob->desc->channel));
	if (res == NULL)
		return -1;
	int64_t n = pp_db_value_ll(res, 0, 0, -1);
	PQclear(res);
	return n;
}

/* ---- pure functions ---- */

/*
 * Retry back-off after a temporary failure (4xx reply, dropped connection,
 * timeout, TLS handshake failure), with base = [stage] retry_base_seconds
 * (default 60):
 *
 *     after attempt 1:   1 x base    1 minute
 *     after attempt 2:   5 x base    5 minutes
 *     after attempt 3:  30 x base   30 minutes  (the message is now flagged)
 *     after attempt 4+: 120 x base   2 hours    (only after a reset)
 *
 * A message is flagged once it has used PP_MAX_ATTEMPTS (3) attempts: it
 * stays queued but is not claimed until an operator runs
 * `practicepost reset-failed`, which clears the count. A 5xx reply fails a
 * message at once; an account-wide error pauses the account and counts no
 * attempt (pp_outbox_pause_account).
 */
int64_t pp_outbox_backoff_seconds(int attempts, int64_t base_seconds)
{
	static const int64_t factor[] = {1, 1, 5, 30, 120};
	if (base_seconds < 0)
		base_seconds = 0;
	if (attempts < 1)
		attempts = 1;
	if (attempts > 4)
		attempts = 4;
	return base_seconds * factor[attempts];
}

int pp_outbox_rate_quota(double wait_ms, double interval_ms, int horizon_ms, int limit)
{
	if (limit <= 0 || wait_ms > (double)horizon_ms)
		return 0;
	if (wait_ms < 0)
		wait_ms = 0;
	if (interval_ms <= 0)
		return limit;
	double n = floor(((double)horizon_ms - wait_ms) / interval_ms) + 1;
	return n >= (double)limit ? limit : (int)n;
}

int64_t pp_outbox_slot_us(int64_t local_us, double wait_us, double interval_us, int k)
{
	return local_us + (int64_t)ceil(wait_us + (double)k * interval_us);
}

pp_outcome_t pp_outbox_classify_transport(int curl_code)
{
	switch (curl_code) {
	case CURLE_OK:
		return PP_OUTCOME_SENT;
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_USE_SSL_FAILED:
	case CURLE_LOGIN_DENIED:
		return PP_OUTCOME_ACCOUNT;
	default:
		return PP_OUTCOME_TEMPORARY;
	}
}

pp_outcome_t pp_outbox_classify_smtp(int curl_code, long reply_code, int session_phase)
{
	if (curl_code == CURLE_OK)
		return PP_OUTCOME_SENT;
	if (reply_code == 530 || reply_code == 534 || reply_code == 535)
		return PP_OUTCOME_ACCOUNT;
	if (reply_code >= 400 && reply_code < 500)
		return PP_OUTCOME_TEMPORARY;
	if (reply_code >= 500 && reply_code < 600)
		return session_phase || curl_code == CURLE_LOGIN_DENIED ? PP_OUTCOME_ACCOUNT
		                                                        : PP_OUTCOME_PERMANENT;
	return pp_outbox_classify_transport(curl_code);
}

const char *pp_outcome_name(pp_outcome_t outcome)
{
	switch (outcome) {
	case PP_OUTCOME_SENT:
		return "sent";
	case PP_OUTCOME_TEMPORARY:
		return "temporary";
	case PP_OUTCOME_PERMANENT:
		return "permanent";
	case PP_OUTCOME_ACCOUNT:
		return "account";
	}
	return "invalid";
}
