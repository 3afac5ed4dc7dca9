/*
 * pp_outbox.c - claim, lease, rate-limit and record outgoing messages of
 * one channel (see pp_outbox.h). Owns the SQL text built from the
 * descriptor; every value travels as a parameter.
 */
#include "pp_outbox.h"

#include <curl/curl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pp_daemon.h"
#include "pp_log.h"
#include "pp_state.h"
#include "pp_util.h"

struct pp_outbox {
	pp_db_t *db;
	const pp_outbox_desc_t *desc;
	char *instance;
	pp_outbox_opts_t opts;
	char *sql_expire;
	char *sql_accounts;
	char *sql_claim;
	char *sql_advance;
	char *sql_pause;
	char *sql_pending;
};

#define OUTBOX_HELD "claimed_by = $2 AND state = 'sending'"

pp_outbox_t *pp_outbox_new(pp_db_t *db, const pp_outbox_desc_t *desc, const char *instance)
{
	pp_outbox_t *ob = xcalloc(1, sizeof(*ob));
	const char *cols = desc->columns && *desc->columns ? desc->columns : NULL;
	ob->db = db;
	ob->desc = desc;
	ob->instance = xstrdup(instance);
	ob->opts = (pp_outbox_opts_t){PP_OUTBOX_DEFAULT_BATCH, PP_OUTBOX_DEFAULT_LEASE,
	                              PP_OUTBOX_DEFAULT_HORIZON_MS, PP_OUTBOX_DEFAULT_RETRY_BASE};
	ob->sql_expire = xstrdup(
	    "UPDATE messages SET state = 'queued', claimed_by = NULL, lease_until = NULL, "
	    "flagged = flagged OR attempts >= $2::int, updated_at = now(), "
	    "last_error = 'lease expired: the sending instance stopped before recording an "
	    "outcome' "
	    "WHERE id = ANY(ARRAY(SELECT id FROM messages WHERE channel = $1 AND direction = "
	    "'out' AND state = 'sending' AND lease_until < now() FOR UPDATE SKIP LOCKED)) "
	    "RETURNING id, attempts, flagged");
	ob->sql_accounts =
	    xasprintf("SELECT a.id, a.per_minute, "
	              "extract(epoch FROM greatest(a.rate_tat, now()) - clock_timestamp()) * 1000 "
	              "FROM %s a WHERE a.enabled AND a.paused_at IS NULL AND EXISTS (SELECT 1 FROM "
	              "messages m WHERE m.%s = a.id AND m.channel = $1 AND m.direction = 'out' AND "
	              "m.state = 'queued' AND NOT m.flagged AND m.deliver_after <= now()) "
	              "ORDER BY a.rate_tat, a.id LIMIT $2::int FOR UPDATE OF a SKIP LOCKED",
	              desc->account_table, desc->account_column);
	ob->sql_claim = xasprintf(
	    "UPDATE messages SET state = 'sending', attempts = attempts + 1, claimed_by = $2, "
	    "lease_until = now() + $3::int * interval '1 second', updated_at = now() "
	    "WHERE id = ANY(ARRAY(SELECT id FROM messages WHERE %s = $1::bigint AND channel = "
	    "$4 AND direction = 'out' AND state = 'queued' AND NOT flagged AND deliver_after "
	    "<= now() AND send_now = $5::boolean ORDER BY deliver_after, id LIMIT $6::int FOR "
	    "UPDATE SKIP LOCKED)) RETURNING id, practice_id, attempts, send_now%s%s",
	    desc->account_column, cols ? ", " : "", cols ? cols : "");
	ob->sql_advance = xasprintf("UPDATE %s SET rate_tat = greatest(rate_tat, now()) + "
	                            "$2::int * (interval '1 minute' / per_minute) WHERE id = $1",
	                            desc->account_table);
	ob->sql_pause = xasprintf("UPDATE %s SET paused_at = now(), paused_reason = $2 WHERE "
	                          "id = $1 AND paused_at IS NULL RETURNING practice_id",
	                          desc->account_table);
	ob->sql_pending = xstrdup("SELECT count(*) FROM messages WHERE channel = $1 AND "
	                          "direction = 'out' AND state IN ('queued', 'sending') AND NOT "
	                          "flagged");
	return ob;
}

void pp_outbox_free(pp_outbox_t **obp)
{
	pp_outbox_t *ob = *obp;
	if (ob == NULL)
		return;
	free(ob->instance);
	free(ob->sql_expire);
	free(ob->sql_accounts);
	free(ob->sql_claim);
	free(ob->sql_advance);
	free(ob->sql_pause);
	free(ob->sql_pending);
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

/* outbox_expire - return messages whose lease ran out to the queue. */
static int outbox_expire(pp_outbox_t *ob)
{
	char max[16];
	snprintf(max, sizeof(max), "%d", PP_MAX_ATTEMPTS);
	PGresult *res = pp_db_exec(ob->db, ob->sql_expire, PP_DB_ARGS(ob->desc->channel, max));
	if (res == NULL)
		return -1;
	for (int r = 0; r < PQntuples(res); r++)
		log_warnx("msg=%s state=queued lease expired attempts=%s flagged=%d",
		          PQgetvalue(res, r, 0), PQgetvalue(res, r, 1),
		          strcmp(PQgetvalue(res, r, 2), "t") == 0);
	PQclear(res);
	return 0;
}

/* outbox_add_rows - append claimed rows (rate slots are dealt later). */
static void outbox_add_rows(pp_outbox_batch_t *batch, const PGresult *res, int64_t account_id)
{
	int n = PQntuples(res);
	batch->ncols = PQnfields(res) > 4 ? (size_t)PQnfields(res) - 4 : 0;
	batch->items = xrealloc(batch->items, (batch->count + (size_t)n) * sizeof(*batch->items));
	for (int r = 0; r < n; r++) {
		pp_outbox_item_t *it = &batch->items[batch->count++];
		memset(it, 0, sizeof(*it));
		it->id = pp_db_value_ll(res, r, 0, 0);
		it->account_id = account_id;
		it->practice_id = pp_db_value_ll(res, r, 1, 0);
		it->attempts = (int)pp_db_value_ll(res, r, 2, 0);
		it->send_now = strcmp(PQgetvalue(res, r, 3), "t") == 0;
		it->cols = xcalloc(batch->ncols ? batch->ncols : 1, sizeof(char *));
		for (size_t c = 0; c < batch->ncols; c++) {
			const char *v = pp_db_value(res, r, 4 + (int)c);
			it->cols[c] = v ? xstrdup(v) : NULL;
		}
	}
}

static int outbox_item_cmp(const void *a, const void *b)
{
	const pp_outbox_item_t *x = a, *y = b;
	if (x->send_now != y->send_now)
		return y->send_now - x->send_now;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* outbox_deal_slots - rows come back in no fixed order: put one account's
 * items send_now first, then by id, and give the rate-limited ones their
 * slots (now + wait, interval apart) in that order. */
static void outbox_deal_slots(pp_outbox_item_t *items, size_t n, int64_t first_slot_ms,
                              double interval_ms)
{
	size_t slot = 0;
	qsort(items, n, sizeof(*items), outbox_item_cmp);
	for (size_t i = 0; i < n; i++)
		if (!items[i].send_now)
			items[i].not_before_ms =
			    first_slot_ms + (int64_t)((double)slot++ * interval_ms);
}

/* outbox_claim_account - claim send_now messages, then rate-limited ones
 * within quota, for one locked account. Returns how many or -1. */
static int outbox_claim_account(pp_outbox_t *ob, pp_outbox_batch_t *batch, const PGresult *acc,
                                int row, int room, int64_t now_ms)
{
	const char *id = PQgetvalue(acc, row, 0);
	int64_t account_id = pp_db_value_ll(acc, row, 0, 0);
	double per_minute = (double)pp_db_value_ll(acc, row, 1, 1);
	double wait_ms = strtod(PQgetvalue(acc, row, 2), NULL);
	double interval_ms = 60000.0 / (per_minute < 1 ? 1 : per_minute);
	char lease[16], limit[16];
	int claimed = 0;
	size_t first = batch->count;

	snprintf(lease, sizeof(lease), "%d", ob->opts.lease_seconds);
	for (int pass = 0; pass < 2 && room > 0; pass++) {
		int quota = pass == 0 ? room
		                      : pp_outbox_rate_quota(wait_ms, interval_ms,
		                                             ob->opts.rate_horizon_ms, room);
		if (quota <= 0)
			break;
		snprintf(limit, sizeof(limit), "%d", quota);
		PGresult *res = pp_db_exec(ob->db, ob->sql_claim,
		                           PP_DB_ARGS(id, ob->instance, lease, ob->desc->channel,
		                                      pass == 0 ? "true" : "false", limit));
		if (res == NULL)
			return -1;
		int n = PQntuples(res);
		outbox_add_rows(batch, res, account_id);
		PQclear(res);
		if (pass == 1 && n > 0) {
			char count[16];
			snprintf(count, sizeof(count), "%d", n);
			if (pp_db_command(ob->db, ob->sql_advance, PP_DB_ARGS(id, count)) != 0)
				return -1;
		}
		claimed += n;
		room -= n;
	}
	outbox_deal_slots(batch->items + first, batch->count - first, now_ms + (int64_t)wait_ms,
	                  interval_ms);
	return claimed;
}

int pp_outbox_claim(pp_outbox_t *ob, pp_outbox_batch_t *batch)
{
	char limit[16];
	PGresult *acc = NULL;
	int64_t now_ms;
	int room = ob->opts.batch_size;

	memset(batch, 0, sizeof(*batch));
	if (pp_db_begin(ob->db) != 0)
		return -1;
	if (outbox_expire(ob) != 0)
		goto fail;
	snprintf(limit, sizeof(limit), "%d", room);
	acc = pp_db_exec(ob->db, ob->sql_accounts, PP_DB_ARGS(ob->desc->channel, limit));
	if (acc == NULL)
		goto fail;
	/* Waits are measured from the database clock as the query ran; this
	 * local instant is no earlier, so a slot is never taken early. */
	now_ms = pp_mono_ms();
	for (int r = 0; r < PQntuples(acc) && room > 0; r++) {
		int n = outbox_claim_account(ob, batch, acc, r, room, now_ms);
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

/* outbox_held_ids - "{1,2,3}" of the items still held (account 0: all). */
static char *outbox_held_ids(const pp_outbox_batch_t *batch, int64_t account_id, int *n)
{
	pp_buf_t ids;
	pp_buf_init(&ids);
	pp_buf_puts(&ids, "{");
	*n = 0;
	for (size_t i = 0; i < batch->count; i++) {
		const pp_outbox_item_t *it = &batch->items[i];
		if (it->done || (account_id != 0 && it->account_id != account_id))
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
	int n, rc = 0;
	int64_t now = pp_mono_ms();
	if (now - batch->renewed_ms < (int64_t)ob->opts.lease_seconds * 1000 / 3)
		return 0;
	char *ids = outbox_held_ids(batch, 0, &n);
	snprintf(lease, sizeof(lease), "%d", ob->opts.lease_seconds);
	if (n > 0)
		rc = pp_db_command(ob->db,
		                   "UPDATE messages SET lease_until = now() + $3::int * interval "
		                   "'1 second' WHERE id = ANY($1::bigint[]) AND " OUTBOX_HELD,
		                   PP_DB_ARGS(ids, ob->instance, lease));
	free(ids);
	if (rc == 0)
		batch->renewed_ms = now;
	else
		log_warnx("lease renewal failed: %s", pp_db_error(ob->db));
	return rc;
}

int pp_outbox_fetch(pp_outbox_t *ob, pp_outbox_item_t *item, const char *column, char **out,
                    size_t *len)
{
	char id[24];
	char *sql = xasprintf("SELECT %s FROM messages WHERE id = $1 AND " OUTBOX_HELD, column);
	snprintf(id, sizeof(id), "%lld", (long long)item->id);
	PGresult *res = pp_db_exec(ob->db, sql, PP_DB_ARGS(id, ob->instance));
	free(sql);
	*out = NULL;
	if (res == NULL) {
		log_warnx("msg=%lld cannot read %s: %s", (long long)item->id, column,
		          pp_db_error(ob->db));
		return -1;
	}
	if (PQntuples(res) != 1) {
		PQclear(res);
		log_warnx("msg=%lld no longer held by this instance; skipped", (long long)item->id);
		item->done = 1;
		return 1;
	}
	size_t n = (size_t)PQgetlength(res, 0, 0);
	*out = xmalloc(n + 1);
	memcpy(*out, PQgetvalue(res, 0, 0), n);
	(*out)[n] = '\0';
	if (len != NULL)
		*len = n;
	PQclear(res);
	return 0;
}

int pp_outbox_record(pp_outbox_t *ob, pp_outbox_item_t *item, const pp_outbox_result_t *res)
{
	char id[24], code[24], delay[24], max[16];
	const char *codep = NULL, *sql;
	PGresult *r = NULL;
	int64_t backoff = 0;

	snprintf(id, sizeof(id), "%lld", (long long)item->id);
	if (res->code > 0) {
		snprintf(code, sizeof(code), "%ld", res->code);
		codep = code;
	}
	switch (res->outcome) {
	case PP_OUTCOME_SENT:
		sql =
		    "UPDATE messages SET state = 'sent', sent_at = now(), last_code = $3::int, "
		    "server_reply = $4, last_error = NULL, claimed_by = NULL, lease_until = NULL, "
		    "updated_at = now() WHERE id = $1 AND " OUTBOX_HELD " RETURNING attempts";
		r = pp_db_exec(ob->db, sql, PP_DB_ARGS(id, ob->instance, codep, res->text));
		break;
	case PP_OUTCOME_PERMANENT:
		sql = "UPDATE messages SET state = 'failed', last_code = $3::int, last_error = $4, "
		      "claimed_by = NULL, lease_until = NULL, updated_at = now() WHERE id = $1 "
		      "AND " OUTBOX_HELD " RETURNING attempts";
		r = pp_db_exec(ob->db, sql, PP_DB_ARGS(id, ob->instance, codep, res->text));
		break;
	case PP_OUTCOME_TEMPORARY:
		backoff = pp_outbox_backoff_seconds(item->attempts, ob->opts.retry_base_seconds);
		snprintf(delay, sizeof(delay), "%lld", (long long)backoff);
		snprintf(max, sizeof(max), "%d", PP_MAX_ATTEMPTS);
		sql =
		    "UPDATE messages SET state = 'queued', deliver_after = now() + $5::bigint * "
		    "interval '1 second', flagged = flagged OR attempts >= $6::int, last_code = "
		    "$3::int, last_error = $4, claimed_by = NULL, lease_until = NULL, updated_at = "
		    "now() WHERE id = $1 AND " OUTBOX_HELD " RETURNING attempts, flagged";
		r = pp_db_exec(ob->db, sql,
		               PP_DB_ARGS(id, ob->instance, codep, res->text, delay, max));
		break;
	case PP_OUTCOME_ACCOUNT:
	default:
		log_warnx("msg=%lld outcome=%s needs pp_outbox_pause_account", (long long)item->id,
		          pp_outcome_name(res->outcome));
		return -1;
	}
	if (r == NULL) {
		log_warnx("msg=%lld cannot record outcome=%s: %s", (long long)item->id,
		          pp_outcome_name(res->outcome), pp_db_error(ob->db));
		return -1;
	}
	item->done = 1;
	if (PQntuples(r) == 0)
		log_warnx("msg=%lld lease lost before outcome=%s code=%ld was recorded",
		          (long long)item->id, pp_outcome_name(res->outcome), res->code);
	else if (res->outcome == PP_OUTCOME_SENT)
		log_info("msg=%lld state=sent attempt=%d code=%ld", (long long)item->id,
		         item->attempts, res->code);
	else if (res->outcome == PP_OUTCOME_PERMANENT)
		log_info("msg=%lld state=failed attempt=%d code=%ld error=\"%s\"",
		         (long long)item->id, item->attempts, res->code, res->text);
	else
		log_info("msg=%lld state=queued attempt=%d code=%ld retry_in=%llds flagged=%d "
		         "error=\"%s\"",
		         (long long)item->id, item->attempts, res->code, (long long)backoff,
		         strcmp(PQgetvalue(r, 0, 1), "t") == 0, res->text);
	PQclear(r);
	return 0;
}

/* outbox_release_ids - back to queued without counting the attempt. */
static int outbox_release_ids(pp_outbox_t *ob, const char *ids, const pp_outbox_result_t *why)
{
	char code[24];
	const char *codep = NULL;
	if (why == NULL)
		return pp_db_command(
		    ob->db,
		    "UPDATE messages SET state = 'queued', attempts = "
		    "greatest(attempts - 1, 0), claimed_by = NULL, lease_until = "
		    "NULL, updated_at = now() WHERE id = ANY($1::bigint[]) AND " OUTBOX_HELD,
		    PP_DB_ARGS(ids, ob->instance));
	if (why->code > 0) {
		snprintf(code, sizeof(code), "%ld", why->code);
		codep = code;
	}
	return pp_db_command(ob->db,
	                     "UPDATE messages SET state = 'queued', attempts = greatest(attempts - "
	                     "1, 0), last_code = $3::int, last_error = $4, claimed_by = NULL, "
	                     "lease_until = NULL, updated_at = now() WHERE id = ANY($1::bigint[]) "
	                     "AND " OUTBOX_HELD,
	                     PP_DB_ARGS(ids, ob->instance, codep, why->text));
}

static void outbox_mark_done(pp_outbox_batch_t *batch, int64_t account_id)
{
	for (size_t i = 0; i < batch->count; i++)
		if (account_id == 0 || batch->items[i].account_id == account_id)
			batch->items[i].done = 1;
}

int pp_outbox_release(pp_outbox_t *ob, pp_outbox_batch_t *batch, int64_t account_id)
{
	int n;
	char *ids = outbox_held_ids(batch, account_id, &n);
	int rc = n > 0 ? outbox_release_ids(ob, ids, NULL) : 0;
	free(ids);
	if (rc != 0) {
		log_warnx("release failed (the leases will expire): %s", pp_db_error(ob->db));
		return -1;
	}
	outbox_mark_done(batch, account_id);
	if (n > 0)
		log_info("released=%d account=%lld state=queued", n, (long long)account_id);
	return n;
}

int pp_outbox_pause_account(pp_outbox_t *ob, pp_outbox_batch_t *batch, pp_outbox_item_t *item,
                            const char *diag_code, const pp_outbox_result_t *res)
{
	char acct[24], item_ids[32];
	int n, sms = strcmp(ob->desc->channel, "sms") == 0;
	PGresult *r = NULL;
	char *others = NULL;

	snprintf(acct, sizeof(acct), "%lld", (long long)item->account_id);
	snprintf(item_ids, sizeof(item_ids), "{%lld}", (long long)item->id);
	if (pp_db_begin(ob->db) != 0)
		return -1;
	r = pp_db_exec(ob->db, ob->sql_pause, PP_DB_ARGS(acct, res->text));
	if (r == NULL || outbox_release_ids(ob, item_ids, res) != 0)
		goto fail;
	item->done = 1;
	others = outbox_held_ids(batch, item->account_id, &n);
	if (n > 0 && outbox_release_ids(ob, others, NULL) != 0)
		goto fail;
	if (PQntuples(r) == 1 &&
	    pp_diag_raise(ob->db, ob->desc->stage, "error", diag_code, pp_db_value_ll(r, 0, 0, 0),
	                  sms ? 0 : item->account_id, sms ? item->account_id : 0, res->text) != 0)
		goto fail;
	if (pp_db_commit(ob->db) != 0)
		goto fail;
	log_warnx("account=%lld paused code=%s msg=%lld state=queued released=%d reason=\"%s\"",
	          (long long)item->account_id, diag_code, (long long)item->id, n, res->text);
	outbox_mark_done(batch, item->account_id);
	PQclear(r);
	free(others);
	return 0;
fail:
	item->done = 0;
	log_warnx("account=%lld cannot be paused: %s", (long long)item->account_id,
	          pp_db_error(ob->db));
	pp_db_rollback(ob->db);
	PQclear(r);
	free(others);
	return -1;
}

int64_t pp_outbox_pending(pp_outbox_t *ob)
{
	PGresult *res = pp_db_exec(ob->db, ob->sql_pending, PP_DB_ARGS(ob->desc->channel));
	if (res == NULL)
		return -1;
	int64_t n = pp_db_value_ll(res, 0, 0, -1);
	PQclear(res);
	return n;
}

/* ---- pure functions ---- */

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
