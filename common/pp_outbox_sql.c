/*
 * pp_outbox_sql.c - the SQL text of one channel's outbox, built once from
 * its descriptor (see pp_outbox.h): the account lock with rate, schedule,
 * session and daily-cap state, the claim with the hold rules of
 * 009_holds.sql, the rate advance and the release. Only trusted
 * identifiers from the descriptor are spliced in; every value is a
 * parameter.
 */
#include <stdlib.h>
#include <string.h>

#include "pp_outbox_priv.h"
#include "pp_state.h"
#include "pp_util.h"

/* The account's remaining daily allowance in the practice's zone. */
#define OUTBOX_DAY_ROOM                                                                            \
	"a.daily_cap - CASE WHEN a.sent_day = (now() AT TIME ZONE p.time_zone)::date THEN "        \
	"a.sent_today ELSE 0 END"

/* A due message of account $1 in channel $4: send_now ones ($5 true) or
 * those due by the schedule cutoff $7. */
#define OUTBOX_DUE                                                                                 \
	"%s = $1::bigint AND channel = $4 AND direction = 'out' AND state = 'queued' AND NOT "     \
	"flagged AND deliver_after <= now() AND send_now = $5::boolean AND (send_now OR "          \
	"deliver_after <= $7::timestamptz)%s"

/* outbox_sql_interval - the account's spacing between sends, as an
 * interval expression (NULL: unlimited). */
static char *outbox_sql_interval(const pp_outbox_desc_t *desc)
{
	if (desc->sms_sessions)
		return xstrdup("pp_sms_interval(a.practice_id, a.per_minute)");
	return xasprintf("CASE WHEN a.per_minute < %d THEN interval '1 minute' / a.per_minute END",
	                 PP_OUTBOX_UNLIMITED_PER_MINUTE);
}

/* outbox_sql_accounts - lock the accounts that have due, eligible mail:
 * id, per_minute, wait to the first slot and slot interval (both in us,
 * from the database clock; interval 0: unlimited), daily room (NULL: no
 * cap), schedule cutoff, and (staggered SMS) the open session's end in us
 * from the database clock (NULL: no session limit). */
static char *outbox_sql_accounts(const pp_outbox_desc_t *desc)
{
	char *interval = outbox_sql_interval(desc);
	char *sql = xasprintf(
	    "SELECT a.id, a.per_minute, extract(epoch FROM greatest(a.rate_tat, now()) - "
	    "clock_timestamp()) * 1000000, coalesce(extract(epoch FROM %s) * 1000000, 0), %s, "
	    "s.cutoff, CASE WHEN isfinite(e.session_end) THEN extract(epoch FROM e.session_end - "
	    "clock_timestamp()) * 1000000 END FROM %s "
	    "a%s CROSS JOIN LATERAL (SELECT %s AS session_end) e CROSS JOIN LATERAL (SELECT CASE "
	    "WHEN e.session_end = '-infinity' THEN '-infinity'::timestamptz ELSE %s END AS "
	    "cutoff) s WHERE a.enabled AND a.paused_at IS NULL%s AND EXISTS (SELECT 1 FROM "
	    "messages m WHERE m.%s = a.id AND m.channel = $1 AND m.direction = 'out' AND "
	    "m.state = 'queued' AND NOT m.flagged AND m.deliver_after <= now() AND (m.send_now "
	    "OR m.deliver_after <= s.cutoff)%s) ORDER BY a.rate_tat, a.id LIMIT $2::int FOR "
	    "UPDATE OF a SKIP LOCKED",
	    interval, desc->daily_cap ? OUTBOX_DAY_ROOM : "NULL::int", desc->account_table,
	    desc->daily_cap ? " JOIN practices p ON p.id = a.practice_id" : "",
	    desc->sms_sessions ? "pp_sms_session_end(a.practice_id, now())" : "NULL::timestamptz",
	    desc->schedule ? "pp_schedule_cutoff(a.practice_id, now())" : "now()",
	    desc->daily_cap ? " AND (a.daily_cap IS NULL OR " OUTBOX_DAY_ROOM " > 0)" : "",
	    desc->account_column,
	    desc->sms_optout ? " AND NOT pp_sms_opted_out(m.practice_id, m.to_addr, m.id)" : "");
	free(interval);
	return sql;
}

/* outbox_sql_advance - after a claim: rate_tat past the $2 slots dealt of
 * $4 microseconds each, and (with a daily cap) $3 more sent today. */
static char *outbox_sql_advance(const pp_outbox_desc_t *desc)
{
#define ADVANCE "greatest(a.rate_tat, now()) + $2::int * $4::float8 * interval '1 microsecond'"
	if (!desc->daily_cap)
		return xasprintf("UPDATE %s a SET rate_tat = " ADVANCE " WHERE a.id = $1 AND "
		                 "$2::int > 0 AND $3::int >= 0",
		                 desc->account_table);
	return xasprintf("UPDATE %s a SET rate_tat = CASE WHEN $2::int > 0 THEN " ADVANCE
	                 " ELSE a.rate_tat END, sent_today = CASE WHEN a.sent_day = (now() AT "
	                 "TIME ZONE p.time_zone)::date THEN a.sent_today ELSE 0 END + $3::int, "
	                 "sent_day = (now() AT TIME ZONE p.time_zone)::date FROM practices p "
	                 "WHERE a.id = $1 AND p.id = a.practice_id",
	                 desc->account_table);
#undef ADVANCE
}

/* outbox_sql_release - sending -> queued, attempt given back ($5: keep
 * $3/$4 as last_code/last_error); with a daily cap, today's count too. */
static char *outbox_sql_release(const pp_outbox_desc_t *desc)
{
	static const char update[] =
	    "UPDATE messages SET state = 'queued', attempts = greatest(attempts - 1, 0), "
	    "last_code = CASE WHEN $5::boolean THEN $3::int ELSE last_code END, last_error = "
	    "CASE WHEN $5::boolean THEN $4 ELSE last_error END, claimed_by = NULL, lease_until = "
	    "NULL, updated_at = now() WHERE id = ANY($1::bigint[]) AND " OUTBOX_HELD;
	if (!desc->daily_cap)
		return xstrdup(update);
	return xasprintf("WITH r AS (%s RETURNING %s AS account), c AS (SELECT account, "
	                 "count(*) AS n FROM r GROUP BY account) UPDATE %s a SET sent_today = "
	                 "greatest(a.sent_today - c.n, 0) FROM c, practices p WHERE a.id = "
	                 "c.account AND p.id = a.practice_id AND a.sent_day = (now() AT TIME "
	                 "ZONE p.time_zone)::date",
	                 update, desc->account_column, desc->account_table);
}

/* outbox_sql_nulls - ", NULL" once per descriptor column. */
static char *outbox_sql_nulls(const char *cols)
{
	pp_buf_t b;
	pp_buf_init(&b);
	if (cols != NULL) {
		pp_buf_puts(&b, ", NULL");
		for (const char *p = cols; *p; p++)
			if (*p == ',')
				pp_buf_puts(&b, ", NULL");
	}
	return pp_buf_steal(&b);
}

/* outbox_sql_claim - queued -> sending for the due messages of one account
 * ($1 account, $2 instance, $3 lease seconds, $4 channel, $5 send_now, $6
 * limit, $7 cutoff). Rows: the hold (NULL: claimed; else the message was
 * held and this says until when and why), id, practice_id, attempts,
 * send_now, then the descriptor's columns. */
static char *outbox_sql_claim(const pp_outbox_desc_t *desc)
{
	const char *cols = desc->columns && *desc->columns ? desc->columns : NULL;
	const char *optout =
	    desc->sms_optout ? " AND NOT pp_sms_opted_out(practice_id, to_addr, id)" : "";
	char *due = xasprintf(OUTBOX_DUE, desc->account_column, optout);
	char *sql;
	if (!desc->holds) {
		sql = xasprintf("UPDATE messages SET state = 'sending', attempts = attempts + 1, "
		                "claimed_by = $2, lease_until = now() + $3::int * interval '1 "
		                "second', updated_at = now() WHERE id = ANY(ARRAY(SELECT id FROM "
		                "messages WHERE %s ORDER BY deliver_after, id LIMIT $6::int FOR "
		                "UPDATE SKIP LOCKED)) RETURNING NULL::text, id, practice_id, "
		                "attempts, send_now%s%s",
		                due, cols ? ", " : "", cols ? cols : "");
		free(due);
		return sql;
	}
	char *nulls = outbox_sql_nulls(cols);
	/* pp_outbox_hold runs only for a message some rule could touch: its
	 * person has an opt-out, or it is automatic and the practice has a
	 * rule today (asked once, g); the gate is a one-time filter. */
	sql = xasprintf(
	    "WITH c AS (SELECT id, practice_id, person_id, channel, category, send_now, "
	    "deliver_after FROM messages WHERE %s ORDER BY deliver_after, id LIMIT $6::int FOR "
	    "UPDATE SKIP LOCKED), g AS (SELECT coalesce(pp_practice_has_holds((SELECT "
	    "a.practice_id FROM %s a WHERE a.id = $1::bigint)), false) AS rules), h AS (SELECT "
	    "c.id, x.hold_until, x.reason, x.stop FROM (SELECT c.*, row_number() OVER "
	    "(PARTITION BY c.person_id, pp_message_automatic(c.category, c.send_now) ORDER BY "
	    "c.deliver_after, c.id) AS rank FROM c) c CROSS JOIN g LEFT JOIN LATERAL (SELECT * "
	    "FROM pp_outbox_hold(c.practice_id, c.person_id, c.channel, c.category, c.send_now, "
	    "c.rank) WHERE (g.rules AND pp_message_automatic(c.category, c.send_now)) OR "
	    "EXISTS (SELECT 1 FROM optouts o WHERE o.person_id = c.person_id)) x ON true), "
	    "held AS (UPDATE messages m SET deliver_after = "
	    "coalesce(h.hold_until, m.deliver_after), flagged = m.flagged OR h.stop, hold_reason "
	    "= h.reason, last_error = CASE WHEN h.stop THEN h.reason ELSE m.last_error END, "
	    "updated_at = now() FROM h WHERE m.id = h.id AND h.reason IS NOT NULL RETURNING "
	    "m.id, m.practice_id, h.hold_until, h.reason, h.stop), sent AS (UPDATE messages m "
	    "SET state = 'sending', attempts = m.attempts + 1, claimed_by = $2, lease_until = "
	    "now() + $3::int * interval '1 second', hold_reason = NULL, updated_at = now() FROM h "
	    "WHERE m.id = h.id AND h.reason IS NULL RETURNING m.id, m.practice_id, m.attempts, "
	    "m.send_now%s%s) SELECT NULL::text AS hold, sent.* FROM sent UNION ALL SELECT "
	    "CASE WHEN held.stop THEN 'flagged: ' ELSE 'until ' || (to_json(held.hold_until) #>> "
	    "'{}') || ': ' END || held.reason, held.id, held.practice_id, NULL, NULL%s FROM held",
	    due, desc->account_table, cols ? ", " : "", cols ? cols : "", nulls);
	free(nulls);
	free(due);
	return sql;
}

void pp_outbox_sql_build(pp_outbox_t *ob)
{
	const pp_outbox_desc_t *desc = ob->desc;
	ob->sql_expire = xstrdup(
	    "UPDATE messages SET state = 'queued', claimed_by = NULL, lease_until = NULL, "
	    "flagged = flagged OR attempts >= $2::int, updated_at = now(), "
	    "last_error = 'lease expired: the sending instance stopped before recording an "
	    "outcome' "
	    "WHERE id = ANY(ARRAY(SELECT id FROM messages WHERE channel = $1 AND direction = "
	    "'out' AND state = 'sending' AND lease_until < now() FOR UPDATE SKIP LOCKED)) "
	    "RETURNING id, attempts, flagged");
	ob->sql_accounts = outbox_sql_accounts(desc);
	ob->sql_claim = outbox_sql_claim(desc);
	ob->sql_advance = outbox_sql_advance(desc);
	ob->sql_release = outbox_sql_release(desc);
	ob->sql_pause = xasprintf("UPDATE %s SET paused_at = now(), paused_reason = $2 WHERE "
	                          "id = $1 AND paused_at IS NULL RETURNING practice_id",
	                          desc->account_table);
	ob->sql_pending = xstrdup("SELECT count(*) FROM messages WHERE channel = $1 AND "
	                          "direction = 'out' AND state IN ('queued', 'sending') AND NOT "
	                          "flagged");
}

void pp_outbox_sql_free(pp_outbox_t *ob)
{
	free(ob->sql_expire);
	free(ob->sql_accounts);
	free(ob->sql_claim);
	free(ob->sql_advance);
	free(ob->sql_release);
	free(ob->sql_pause);
	free(ob->sql_pending);
}
