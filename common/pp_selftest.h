/*
 * pp_selftest.h - the self-tests every stage runs on a timer (see
 * pp_selftest.c): database writable, clock within tolerance of the
 * database's, disk space for the log, no open account problem, the queue
 * moving. Settings in the stage's section: selftest_interval_ms (30000),
 * clock_tolerance_ms (2000), min_free_mb (100), stuck_ms (900000).
 */
#ifndef PP_SELFTEST_H
#define PP_SELFTEST_H

#include "pp_daemon.h"

/* pp_selftest_tick - run the checks if they are due (never with --once).
 * queue_sql (or NULL): the stage's query for its oldest due item that
 * nothing holds back: a row (key text, description text) or none. */
void pp_selftest_tick(pp_daemon_t *d, const char *queue_sql);

/* PP_SELFTEST_OUTBOX_SQL - queue_sql for the outbox of a channel: the
 * oldest message due over a minute ago whose account is enabled and not
 * paused, within the practice's send schedule (and delivery session). */
#define PP_SELFTEST_OUTBOX_SQL(channel)                                                            \
	"SELECT m.id::text || '@' || m.attempts, format('" channel " message %s (due %s)', m.id, " \
	"to_char(m.deliver_after, 'YYYY-MM-DD HH24:MI:SS TZ')) FROM (SELECT * FROM messages "      \
	"WHERE "                                                                                   \
	"channel = '" channel "' AND direction = 'out' AND state = 'queued' AND NOT flagged AND "  \
	"deliver_after < now() - interval '1 minute' ORDER BY deliver_after, id LIMIT 20) m LEFT " \
	"JOIN email_accounts e ON e.id = m.email_account_id LEFT JOIN sms_accounts s ON s.id = "   \
	"m.sms_account_id WHERE coalesce(e.enabled AND e.paused_at IS NULL, s.enabled AND "        \
	"s.paused_at IS NULL) AND m.deliver_after <= pp_schedule_cutoff(m.practice_id, now()) "    \
	"AND "                                                                                     \
	"(m.channel <> 'sms' OR pp_sms_session_end(m.practice_id, now()) IS DISTINCT FROM "        \
	"'-infinity') ORDER BY m.deliver_after, m.id LIMIT 1"

/* pp_selftest_report - report one check: sent to the watchdog when it
 * fails or changes; the recent log lines stored when it starts failing. */
void pp_selftest_report(pp_daemon_t *d, const char *check, int ok, const char *detail);

#endif
