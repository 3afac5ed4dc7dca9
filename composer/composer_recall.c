/*
 * composer_recall.c - the recall batches' source for the fast path
 * (composer_batch.c): which recall items a chunk locks, with what values,
 * and how their outcome is recorded. Owns the chunk's SQL.
 *
 * A chunk is up to `chunk` items of the oldest batch with items left. What
 * is the batch's or its practice's, not the patient's (templates,
 * category, the practice's SMS flags pp_sms_off and sms_fallback, its time
 * zone, the category's opt-out kind), is read once per chunk (a
 * materialised CTE read by one-time subqueries), not for every patient. A
 * patient of another practice is refused before any of those is used, so
 * the batch's practice stands for the patient's.
 */
#include "composer_batch.h"

/* The batch the chunk takes its items from, and its practice's values. */
#define RECALL_BATCH                                                                               \
	"WITH one AS MATERIALIZED (SELECT b.id, b.practice_id, b.template_code, "                  \
	"b.sms_template_code, b.category, pp_optout_kind(b.category) AS optout_kind, "             \
	"pp_sms_off(b.practice_id) AS sms_off, pr.sms_fallback, pr.time_zone "                     \
	"FROM recall_batches b JOIN practices pr ON pr.id = b.practice_id "                        \
	"WHERE b.id = (SELECT batch_id FROM recall_items WHERE state = 'new' "                     \
	"ORDER BY batch_id, id LIMIT 1)) "

/* The patient's bounce flag, in the practice's time zone. */
#define RECALL_BOUNCED_ON COMPOSER_BOUNCED_ON("pe", "(SELECT time_zone FROM one)")

/* The columns of composer_batch.h, in order. */
static const char recall_chunk_sql[] = RECALL_BATCH
    "SELECT ri.id, pe.id, pe.practice_id, pe.kind::text, pe.preferred_channel, "
    "pe.family_id, pe.title, pe.first_name, pe.last_name, pe.email, pe.mobile, l.name, "
    "l.address, l.phone, l.email_from_address, l.email_from_name, l.sms_sender_id, "
    "(SELECT sms_off FROM one), (SELECT sms_fallback FROM one), (SELECT practice_id FROM one), "
    "(SELECT template_code FROM one), (SELECT sms_template_code FROM one), NULL, NULL, NULL, "
    "(SELECT category FROM one), '', NULL, false, false, (SELECT optout_kind FROM "
    "one), " RECALL_BOUNCED_ON ", pe.email_bounce_status "
    "FROM recall_items ri JOIN people pe ON pe.id = ri.person_id "
    "LEFT JOIN locations l ON l.id = pe.preferred_location_id "
    "WHERE ri.state = 'new' AND ri.batch_id = (SELECT id FROM one) "
    "ORDER BY ri.id LIMIT $1 FOR UPDATE OF ri SKIP LOCKED";

/* The items are found by their ids (an index scan however many items the
 * table holds), then paired with their outcome. */
const composer_batch_source_t composer_recall_source = {
    "recall_item",
    recall_chunk_sql,
    "UPDATE recall_items ri SET state = 'done', message_id = u.m, done_at = now() "
    "FROM unnest($1::bigint[], $2::bigint[]) u(i, m) "
    "WHERE ri.id = ANY($1::bigint[]) AND ri.id = u.i",
    "UPDATE recall_items ri SET state = 'failed', error = u.e, done_at = now() "
    "FROM unnest($1::bigint[], $2::text[]) u(i, e) "
    "WHERE ri.id = ANY($1::bigint[]) AND ri.id = u.i",
    1,
};
