/*
 * cmd_plan_when.c - when each message of `practicepost plan` would
 * actually go, by the rules the outbox claim applies: the hold rules at
 * that instant (pp_outbox_hold_at, 009_holds.sql: opt-outs, holidays,
 * quiet hours, caps), the practice's send schedule (pp_schedule_release,
 * 013_plan.sql: checks and send windows) and, for a practice that
 * staggers SMS, the delivery-session slot (pp_sms_slot over pp_sms_plan,
 * after the SMS already queued: pp_sms_planned). Each move is a reason on
 * the line. Reads only.
 */
#include <stdlib.h>
#include <string.h>

#include "ctl_plan.h"

#define PLAN_MAX_MOVES 6 /* a hold's end may fall into another rule's hold */

/* when_set - line->when = instant (copied). */
static void when_set(plan_line_t *line, const char *instant)
{
	free(line->when);
	line->when = instant ? xstrdup(instant) : NULL;
}

static void when_reason(plan_line_t *line, const char *reason)
{
	pp_buf_printf(&line->reason, "%s%s", line->reason.len ? "; " : "", reason);
}

/* when_held - the hold rule found at line->when (columns 0-2 of res):
 * the line moves to its end, or stops (*final). */
static void when_held(plan_line_t *line, const PGresult *res, int *final)
{
	int stop = strcmp(pp_db_value(res, 0, 2), "t") == 0;
	when_reason(line, pp_db_value(res, 0, 1));
	line->status = stop ? "skipped" : "held";
	if (stop || pp_db_value(res, 0, 0) == NULL) {
		*final = 1; /* flagged, or held until staff act: no later time */
		if (stop)
			when_set(line, NULL);
	} else {
		when_set(line, pp_db_value(res, 0, 0));
	}
}

/* when_look - one look at line->when: the hold rules, then (if schedule)
 * the send schedule, in one query. 1 moved (or *final: it stops there or
 * never goes), 0 free, -1 database error. */
static int when_look(plan_t *p, plan_line_t *line, int schedule, int *final)
{
	char prac[PP_LL_LEN], who[PP_LL_LEN], rank[PP_LL_LEN];
	PGresult *res = pp_db_exec(
	    p->ctl->db,
	    "SELECT h.hold_until::text, h.reason, h.stop, s.release_at::text, s.reason, "
	    "s.release_at IS NOT NULL OR NOT $6::boolean FROM (SELECT 1) x LEFT JOIN "
	    "pp_outbox_hold_at($1, $2, $3::message_channel, 'reminder', false, $4::bigint, "
	    "$5::timestamptz) h ON true LEFT JOIN LATERAL (SELECT * FROM pp_schedule_release($1, "
	    "$5::timestamptz) WHERE $6::boolean) s ON true",
	    PP_DB_ARGS(pp_lltoa(prac, p->practice), pp_lltoa(who, line->person_id), line->channel,
	               pp_lltoa(rank, line->rank), line->when, schedule ? "t" : "f"));
	if (res == NULL || PQntuples(res) != 1) {
		PQclear(res);
		return -1;
	}
	int rc = 1;
	if (pp_db_value(res, 0, 1) != NULL) {
		when_held(line, res, final);
	} else if (strcmp(pp_db_value(res, 0, 5), "t") != 0) {
		when_reason(line, "send schedule: no checks and no preset send times, so nothing "
		                  "is sent (practicepost schedule set)");
		line->status = "held";
		when_set(line, NULL);
		*final = 1;
	} else if (schedule && pp_db_value(res, 0, 4) != NULL) {
		when_reason(line, pp_db_value(res, 0, 4));
		line->status = "held";
		when_set(line, pp_db_value(res, 0, 3));
	} else {
		rc = 0;
	}
	PQclear(res);
	return rc;
}

/* when_settle - looks at line->when until nothing moves it (a hold's end
 * may fall into another rule's hold or outside the schedule); schedule 0:
 * the first look checks the holds only. 0, or -1 on a database error. */
static int when_settle(plan_t *p, plan_line_t *line, int schedule, int *final)
{
	for (int i = 0; i < PLAN_MAX_MOVES && !*final; i++, schedule = 1) {
		int rc = when_look(p, line, schedule, final);
		if (rc <= 0)
			return rc;
	}
	return 0;
}

int plan_when(plan_t *p, plan_line_t *line)
{
	int final = 0;
	line->status = "send";
	if (when_settle(p, line, 1, &final) != 0)
		return -1;
	if (!final && p->staggered && strcmp(line->channel, "sms") == 0)
		line->ready = xstrdup(line->when);
	return 0;
}

/* slots_next - where the plan's SMS start: after the account's rate state
 * and the slots of the SMS already queued. NULL on a database error. */
static char *slots_next(plan_t *p)
{
	char prac[PP_LL_LEN];
	PGresult *res = pp_db_exec(
	    p->ctl->db,
	    "SELECT greatest(now(), (SELECT max(a.rate_tat) FROM sms_accounts a WHERE "
	    "a.practice_id = $1 AND a.enabled), (SELECT max(planned) + interval '1 microsecond' "
	    "FROM pp_sms_planned($1)))::text",
	    PP_DB_ARGS(pp_lltoa(prac, p->practice)));
	char *next = res != NULL && PQntuples(res) == 1 ? xstrdup(pp_db_value(res, 0, 0)) : NULL;
	PQclear(res);
	return next;
}

/* slots_one - line's slot at or after *next (past the hold rules at the
 * slot); *next moves past it. 0, or -1 on a database error. */
static int slots_one(plan_t *p, plan_line_t *line, char **next)
{
	char prac[PP_LL_LEN];
	int final = 0;
	pp_lltoa(prac, p->practice);
	for (int i = 0; i < PLAN_MAX_MOVES && !final; i++) {
		PGresult *res =
		    pp_db_exec(p->ctl->db,
		               "SELECT t::text, t > $3::timestamptz, p.sms_every::text, "
		               "(t + interval '1 microsecond')::text FROM practices p, "
		               "pp_sms_slot($1, greatest($2::timestamptz, "
		               "$3::timestamptz)) t WHERE p.id = $1",
		               PP_DB_ARGS(prac, *next, line->when));
		if (res == NULL)
			return -1;
		if (PQntuples(res) != 1 || pp_db_value(res, 0, 0) == NULL) {
			when_reason(line,
			            "staggered SMS: no delivery session with an open send window "
			            "ahead (practicepost sms session-add)");
			line->status = "held";
			when_set(line, NULL);
			PQclear(res);
			return 0;
		}
		int later = strcmp(pp_db_value(res, 0, 1), "t") == 0;
		when_set(line, pp_db_value(res, 0, 0));
		free(*next);
		*next = xstrdup(pp_db_value(res, 0, 3));
		if (later) {
			char why[128];
			snprintf(why, sizeof(why),
			         "staggered SMS: its delivery-session slot (one every %s)",
			         pp_db_value(res, 0, 2));
			if (strstr(line->reason.data ? line->reason.data : "", why) == NULL)
				when_reason(line, why);
			line->status = "held";
		}
		PQclear(res);
		/* at the slot the schedule has let it go (its check passed and the
		 * window is open); a hold there moves it, and the schedule applies
		 * again from the hold's end */
		int moved = when_look(p, line, 0, &final);
		if (moved <= 0)
			return moved;
		if (!final && when_settle(p, line, 1, &final) != 0)
			return -1;
	}
	return 0;
}

/* slots_order - the staggered SMS lines in the order they become ready
 * (as the database orders the instants): indexes into p->lines (owned,
 * *n of them); NULL with *n 0 when there are none, or on a database
 * error (*failed). */
static size_t *slots_order(plan_t *p, size_t *n, int *failed)
{
	pp_buf_t list;
	size_t *ready = xcalloc(p->nlines, sizeof(*ready)), *order = NULL;
	*n = 0;
	pp_buf_init(&list);
	pp_buf_puts(&list, "{");
	for (size_t i = 0; i < p->nlines; i++)
		if (p->lines[i].ready != NULL) {
			pp_buf_printf(&list, "%s\"%s\"", *n ? "," : "", p->lines[i].ready);
			ready[(*n)++] = i;
		}
	pp_buf_puts(&list, "}");
	PGresult *res = *n == 0 ? NULL
	                        : pp_db_exec(p->ctl->db,
	                                     "SELECT i - 1 FROM unnest($1::timestamptz[]) WITH "
	                                     "ORDINALITY u(t, i) ORDER BY t, i",
	                                     PP_DB_ARGS(list.data));
	*failed = *n > 0 && res == NULL;
	if (res != NULL && (size_t)PQntuples(res) == *n) {
		order = xcalloc(*n, sizeof(*order));
		for (size_t k = 0; k < *n; k++) {
			int64_t at = pp_db_value_ll(res, (int)k, 0, 0);
			order[k] = ready[at >= 0 && (size_t)at < *n ? (size_t)at : k];
		}
	} else {
		*failed = *n > 0;
		*n = 0;
	}
	PQclear(res);
	pp_buf_free(&list);
	free(ready);
	return order;
}

int plan_sms_slots(plan_t *p)
{
	size_t n;
	int failed;
	char *next = NULL;
	if (!p->staggered || p->nlines == 0)
		return 0;
	size_t *order = slots_order(p, &n, &failed);
	if (n > 0 && (next = slots_next(p)) == NULL)
		failed = 1;
	for (size_t i = 0; i < n && !failed; i++)
		failed = slots_one(p, &p->lines[order[i]], &next) != 0;
	free(next);
	free(order);
	return failed ? -1 : 0;
}
