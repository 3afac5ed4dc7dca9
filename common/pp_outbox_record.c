/*
 * pp_outbox_record.c - the outcome side of the outbox (see pp_outbox.h):
 * recording the result of many delivery attempts in one statement, and
 * pausing an account on an account-wide error with one diagnostic.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pp_daemon.h"
#include "pp_log.h"
#include "pp_outbox_priv.h"
#include "pp_state.h"
#include "pp_util.h"

/* One UPDATE for every outcome: o is s(ent), p(ermanent) or t(emporary),
 * d the back-off in seconds, age how long ago (us) the server answered:
 * sent_at is the moment of the 250, however late the batch is recorded;
 * began when the attempt started, in microseconds since the epoch on this
 * host's clock (attempted_at; NULL: not known), so that paced sends show
 * their exact spacing. Each held row finds its
 * values by its position in $1 (a join against unnest() is planned as a nested loop, the held rows
 * being estimated at one). Rows no longer held are left (OUTBOX_HELD: found
 * through the primary key). */
static const char record_sql[] =
    "UPDATE messages m SET (state, sent_at, server_reply, last_code, last_error, "
    "deliver_after, flagged, claimed_by, lease_until, updated_at, attempted_at) = (SELECT CASE "
    "u.o WHEN "
    "'s' THEN 'sent' WHEN 'p' THEN 'failed' ELSE 'queued' END::message_state, CASE WHEN "
    "u.o = 's' THEN now() - u.age * interval '1 microsecond' ELSE m.sent_at END, CASE WHEN u.o = "
    "'s' THEN u.t ELSE "
    "m.server_reply END, u.c, CASE WHEN u.o = 's' THEN NULL ELSE u.t END, CASE WHEN u.o = "
    "'t' THEN now() + u.d * interval '1 second' ELSE m.deliver_after END, m.flagged OR (u.o "
    "= 't' AND m.attempts >= $3::int), NULL::text, NULL::timestamptz, now(), "
    "coalesce(to_timestamp(u.began / 1000000.0), m.attempted_at) FROM (SELECT "
    "($4::text[])[k.i] AS o, ($5::int[])[k.i] AS c, ($6::text[])[k.i] AS t, "
    "($7::bigint[])[k.i] AS d, ($8::bigint[])[k.i] AS age, ($9::bigint[])[k.i] AS began FROM "
    "(SELECT "
    "array_position($1::bigint[], m.id) AS i) k) u) "
    "WHERE m.id = ANY($1::bigint[]) AND m." OUTBOX_HELD " "
    "RETURNING m.id, m.flagged";

/* array_text - append s (or NULL) as an element of an array literal. */
static void array_text(pp_buf_t *buf, const char *s, int first)
{
	if (!first)
		pp_buf_puts(buf, ",");
	if (s == NULL) {
		pp_buf_puts(buf, "NULL");
		return;
	}
	pp_buf_puts(buf, "\"");
	for (const char *p = s; *p; p++) {
		if (*p == '"' || *p == '\\')
			pp_buf_puts(buf, "\\");
		pp_buf_append(buf, p, 1);
	}
	pp_buf_puts(buf, "\"");
}

typedef struct {
	pp_buf_t ids, outcomes, codes, texts, delays, ages, begans;
} record_arrays_t;

static void record_arrays_build(pp_outbox_t *ob, record_arrays_t *a, pp_outbox_item_t *const *items,
                                const pp_outbox_result_t *results, size_t n)
{
	pp_buf_t *all[] = {&a->ids,    &a->outcomes, &a->codes, &a->texts,
	                   &a->delays, &a->ages,     &a->begans};
	int64_t now = pp_outbox_now_us();
	struct timespec wall;
	clock_gettime(CLOCK_REALTIME, &wall);
	int64_t wall_us = (int64_t)wall.tv_sec * 1000000 + wall.tv_nsec / 1000;
	for (size_t b = 0; b < 7; b++) {
		pp_buf_init(all[b]);
		pp_buf_puts(all[b], "{");
	}
	for (size_t i = 0; i < n; i++) {
		const pp_outbox_result_t *r = &results[i];
		const char *sep = i ? "," : "";
		int64_t delay =
		    r->outcome == PP_OUTCOME_TEMPORARY
		        ? pp_outbox_backoff_seconds(items[i]->attempts, ob->opts.retry_base_seconds)
		        : 0;
		pp_buf_printf(&a->ids, "%s%lld", sep, (long long)items[i]->id);
		pp_buf_printf(&a->outcomes, "%s%c", sep,
		              r->outcome == PP_OUTCOME_SENT        ? 's'
		              : r->outcome == PP_OUTCOME_PERMANENT ? 'p'
		                                                   : 't');
		if (r->code > 0)
			pp_buf_printf(&a->codes, "%s%ld", sep, r->code);
		else
			pp_buf_printf(&a->codes, "%sNULL", sep);
		array_text(&a->texts, r->text, i == 0);
		pp_buf_printf(&a->delays, "%s%lld", sep, (long long)delay);
		pp_buf_printf(
		    &a->ages, "%s%lld", sep,
		    (long long)(r->done_us > 0 && r->done_us < now ? now - r->done_us : 0));
		if (r->started_us > 0 && r->started_us <= now)
			pp_buf_printf(&a->begans, "%s%lld", sep,
			              (long long)(wall_us - (now - r->started_us)));
		else
			pp_buf_printf(&a->begans, "%sNULL", sep);
	}
	for (size_t b = 0; b < 7; b++)
		pp_buf_puts(all[b], "}");
}

static void record_arrays_free(record_arrays_t *a)
{
	pp_buf_free(&a->ids);
	pp_buf_free(&a->outcomes);
	pp_buf_free(&a->codes);
	pp_buf_free(&a->texts);
	pp_buf_free(&a->delays);
	pp_buf_free(&a->ages);
	pp_buf_free(&a->begans);
}

/* record_log - one line per message, as the state it reached. */
static void record_log(pp_outbox_t *ob, const pp_outbox_item_t *item, const pp_outbox_result_t *res,
                       const PGresult *rows)
{
	int row = -1;
	for (int r = 0; r < PQntuples(rows) && row < 0; r++)
		if (pp_db_value_ll(rows, r, 0, 0) == item->id)
			row = r;
	if (row < 0)
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
		         (long long)item->id, item->attempts, res->code,
		         (long long)pp_outbox_backoff_seconds(item->attempts,
		                                              ob->opts.retry_base_seconds),
		         strcmp(PQgetvalue(rows, row, 1), "t") == 0, res->text);
}

int pp_outbox_record_many(pp_outbox_t *ob, pp_outbox_item_t *const *items,
                          const pp_outbox_result_t *results, size_t n)
{
	record_arrays_t a;
	char max[16];
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (results[i].outcome == PP_OUTCOME_ACCOUNT) {
			log_warnx("msg=%lld outcome=account needs pp_outbox_pause_account",
			          (long long)items[i]->id);
			return -1;
		}
	snprintf(max, sizeof(max), "%d", PP_MAX_ATTEMPTS);
	record_arrays_build(ob, &a, items, results, n);
	PGresult *rows = pp_db_exec_prepared(ob->db, record_sql,
	                                     PP_DB_ARGS(a.ids.data, ob->instance, max,
	                                                a.outcomes.data, a.codes.data, a.texts.data,
	                                                a.delays.data, a.ages.data, a.begans.data));
	record_arrays_free(&a);
	if (rows == NULL) {
		log_warnx("cannot record %zu outcome(s): %s", n, pp_db_error(ob->db));
		return -1;
	}
	/* Outcomes are batched (a handful at a time): a nested scan is fine. */
	for (size_t i = 0; i < n; i++) {
		record_log(ob, items[i], &results[i], rows);
		items[i]->done = 1;
		items[i]->in_flight = 0;
	}
	PQclear(rows);
	return 0;
}

int pp_outbox_record(pp_outbox_t *ob, pp_outbox_item_t *item, const pp_outbox_result_t *res)
{
	pp_outbox_item_t *one[1] = {item};
	return pp_outbox_record_many(ob, one, res, 1);
}

int pp_outbox_pause_account(pp_outbox_t *ob, pp_outbox_batch_t *batch, pp_outbox_item_t *item,
                            const char *diag_code, const pp_outbox_result_t *res)
{
	char acct[24], item_ids[32];
	int n, sms = strcmp(ob->desc->channel, "sms") == 0;
	PGresult *r = NULL;
	char *others = NULL;

	pp_lltoa(acct, item->account_id);
	snprintf(item_ids, sizeof(item_ids), "{%lld}", (long long)item->id);
	if (pp_db_begin(ob->db) != 0)
		return -1;
	r = pp_db_exec(ob->db, ob->sql_pause, PP_DB_ARGS(acct, res->text));
	if (r == NULL || pp_outbox_release_ids(ob, item_ids, res) != 0)
		goto fail;
	item->in_flight = 0;
	item->done = 1;
	others = pp_outbox_held_ids(batch, item->account_id, &n);
	if (n > 0 && pp_outbox_release_ids(ob, others, NULL) != 0)
		goto fail;
	if (PQntuples(r) == 1 &&
	    pp_diag_raise(ob->db, ob->desc->stage, "error", diag_code, pp_db_value_ll(r, 0, 0, 0),
	                  sms ? 0 : item->account_id, sms ? item->account_id : 0, res->text) != 0)
		goto fail;
	if (pp_db_commit(ob->db) != 0)
		goto fail;
	log_warnx("account=%lld paused code=%s msg=%lld state=queued released=%d reason=\"%s\"",
	          (long long)item->account_id, diag_code, (long long)item->id, n, res->text);
	pp_outbox_mark_done(batch, item->account_id);
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
