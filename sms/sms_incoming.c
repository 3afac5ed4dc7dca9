/*
 * sms_incoming.c - an incoming text from the SMS gateway (Kannel's
 * sms-service get-url), in one transaction: stored as an incoming message
 * (direction in, channel sms), filed, audited, and acted on when it is a
 * keyword (sms_reply.h):
 *
 *   filing   a reply to an SMS we sent to that number (the newest within
 *            30 days) is filed to that message's person; otherwise the
 *            sender's number, normalised to E.164 with the practice's
 *            country, goes through the shared rule (pp_filing.h)
 *   yes      confirms every upcoming appointment the newest reminder sent
 *            to the number covered (a family reminder covers several);
 *            without one, the text is filed for staff like any other
 *   STOP     opts the number out (sms_optouts) and queues one confirming
 *            text, the only one the claim lets through until START
 *   START    opts it back in, with a confirming text
 *   HELP     answers with the practice's name and phone
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pp_audit.h"
#include "pp_filing.h"
#include "pp_log.h"
#include "pp_phone.h"
#include "pp_sms_text.h"
#include "pp_util.h"
#include "sms_callback.h"
#include "sms_reply.h"

#define INCOMING_ACTOR "sms"
#define INCOMING_MAX_SHARING 50

typedef struct {
	const sms_callback_req_t *req;
	char practice[PP_LL_LEN], account[PP_LL_LEN];
	char *text; /* UTF-8, owned */
	const char *from_raw;
	char from[PP_PHONE_MAX]; /* "" if the sender is no valid number */
	const char *national;
	const char *to, *id;
	/* the practice */
	char *name, *phone, *country;
	char **words;
	size_t nwords;
	/* what the text concerns */
	int64_t last_id, last_person, reminder_id;
	/* filing */
	int64_t person_id;
	const char *how, *tag;
	pp_buf_t listed;
	char why[200];
	sms_reply_kind_t kind;
	int64_t msg_id;
	int queued; /* a text was queued: wake the sending loop */
} incoming_t;

static void incoming_free(incoming_t *in)
{
	free(in->text);
	free(in->name);
	free(in->phone);
	free(in->country);
	for (size_t i = 0; i < in->nwords; i++)
		free(in->words[i]);
	free(in->words);
	pp_buf_free(&in->listed);
}

/* incoming_practice - name, phone, country and confirming words. */
static int incoming_practice(pp_db_t *db, incoming_t *in)
{
	PGresult *res = pp_db_exec_prepared(
	    db,
	    "SELECT name, phone, country, array_length(sms_confirm_words, 1), "
	    "array_to_string(sms_confirm_words, E'\\n') FROM practices WHERE id = $1",
	    PP_DB_ARGS(in->practice));
	if (res == NULL || PQntuples(res) != 1) {
		PQclear(res);
		return -1;
	}
	in->name = xstrdup(pp_db_value(res, 0, 0));
	in->phone = xstrdup(pp_db_value(res, 0, 1));
	const char *country = pp_db_value(res, 0, 2);
	in->country = country ? xstrdup(country) : NULL;
	const char *words = pp_db_value(res, 0, 4);
	if (pp_db_value(res, 0, 3) != NULL && words != NULL) {
		size_t n = (size_t)pp_db_value_ll(res, 0, 3, 0);
		in->words = xcalloc(n + 1, sizeof(char *));
		char *copy = xstrdup(words), *save = NULL;
		for (char *w = strtok_r(copy, "\n", &save); w && in->nwords < n;
		     w = strtok_r(NULL, "\n", &save))
			in->words[in->nwords++] = xstrdup(w);
		free(copy);
	}
	PQclear(res);
	return 0;
}

/* incoming_same_number - whether number is the sender's, in E.164. */
static int incoming_same_number(const incoming_t *in, const char *number)
{
	char e164[PP_PHONE_MAX];
	const char *why;
	return number != NULL && pp_phone_e164(number, in->country, e164, &why) == 0 &&
	       strcmp(e164, in->from) == 0;
}

/* incoming_last_sent - the newest SMS sent to the number within 30 days,
 * and the newest reminder among them. */
static int incoming_last_sent(pp_db_t *db, incoming_t *in)
{
	PGresult *res = pp_db_exec_prepared(
	    db,
	    "SELECT m.id, m.to_addr, m.person_id, EXISTS (SELECT 1 FROM auto_sent s WHERE "
	    "s.message_id = m.id AND s.kind = 'reminder') FROM messages m WHERE m.practice_id = $1 "
	    "AND m.direction = 'out' AND m.channel = 'sms' AND m.state = 'sent' AND m.sent_at > "
	    "now() - interval '30 days' AND right(regexp_replace(m.to_addr, '[^0-9]', '', 'g'), "
	    "length($2)) = $2 ORDER BY m.sent_at DESC, m.id DESC LIMIT 50",
	    PP_DB_ARGS(in->practice, in->national));
	if (res == NULL)
		return -1;
	for (int r = 0; r < PQntuples(res); r++) {
		if (!incoming_same_number(in, pp_db_value(res, r, 1)))
			continue;
		if (in->last_id == 0) {
			in->last_id = pp_db_value_ll(res, r, 0, 0);
			in->last_person = pp_db_value_ll(res, r, 2, 0);
		}
		if (in->reminder_id == 0 && strcmp(PQgetvalue(res, r, 3), "t") == 0)
			in->reminder_id = pp_db_value_ll(res, r, 0, 0);
	}
	PQclear(res);
	return 0;
}

/* incoming_file_by_number - the shared rule over the people whose mobile
 * is the sender's number. */
static int incoming_file_by_number(pp_db_t *db, incoming_t *in)
{
	char limit[PP_LL_LEN];
	pp_buf_t ids;
	PGresult *res = pp_db_exec_prepared(
	    db,
	    "SELECT id, mobile FROM people WHERE practice_id = $1 AND mobile IS NOT NULL AND "
	    "right(regexp_replace(mobile, '[^0-9]', '', 'g'), length($2)) = $2 ORDER BY id "
	    "LIMIT $3::int",
	    PP_DB_ARGS(in->practice, in->national, pp_lltoa(limit, 4 * INCOMING_MAX_SHARING)));
	if (res == NULL)
		return -1;
	pp_buf_init(&ids);
	pp_buf_puts(&ids, "{");
	for (int r = 0, n = 0; r < PQntuples(res); r++)
		if (incoming_same_number(in, pp_db_value(res, r, 1)))
			pp_buf_printf(&ids, "%s%s", n++ ? "," : "", pp_db_value(res, r, 0));
	pp_buf_puts(&ids, "}");
	PQclear(res);
	res = pp_db_exec_prepared(db,
	                          "SELECT id, kind::text, family_id, guarantor_id FROM people "
	                          "WHERE id = ANY($1::bigint[]) ORDER BY kind <> 'patient', id "
	                          "LIMIT $2::int",
	                          PP_DB_ARGS(ids.data, pp_lltoa(limit, INCOMING_MAX_SHARING)));
	pp_buf_free(&ids);
	if (res == NULL)
		return -1;
	pp_filing_by_people(res, "mobile number", &in->person_id, &in->how, &in->tag, &in->listed,
	                    in->why, sizeof(in->why));
	PQclear(res);
	return 0;
}

static int incoming_file(pp_db_t *db, incoming_t *in)
{
	in->how = "none";
	if (in->from[0] == '\0') {
		snprintf(in->why, sizeof(in->why), "sender is no valid phone number");
		return 0;
	}
	if (incoming_last_sent(db, in) != 0)
		return -1;
	if (in->last_id != 0 && in->last_person != 0) {
		in->person_id = in->last_person;
		in->how = "reference";
		in->tag = "Patient";
		snprintf(in->why, sizeof(in->why), "reply of msg=%lld", (long long)in->last_id);
		return 0;
	}
	return incoming_file_by_number(db, in);
}

/* incoming_store - the messages row, its tag, the family members it lists
 * and the audit rows ("received", "filed" / "unfiled") in one statement.
 * in->msg_id = 0 when the gateway sent it before (same id). */
static int incoming_store(pp_db_t *db, incoming_t *in)
{
	static const char *const kinds[] = {"mail", "mail", "unsubscribe", "mail", "mail"};
	char person[PP_LL_LEN], related[PP_LL_LEN];
	char *dedup = in->id && *in->id ? xasprintf("gateway:%s", in->id) : NULL;
	char *filed_by = in->person_id ? xasprintf("rule:%s", in->how) : NULL;
	char *received =
	    xasprintf("account=%s from=%s keyword=%s", in->account,
	              in->from[0] ? in->from : "invalid", sms_reply_kind_name(in->kind));
	char *filed = in->person_id ? xasprintf("rule=%s %s%s%s", in->how, in->why,
	                                        in->tag ? " tag=" : "", in->tag ? in->tag : "")
	                            : xstrdup(in->why);
	pp_audit_one_line(received);
	pp_audit_one_line(filed);
	PGresult *res = pp_db_exec_prepared(
	    db,
	    "WITH m AS (INSERT INTO messages (practice_id, direction, channel, state, "
	    "sms_account_id, person_id, from_addr, to_addr, body, body_text, size_bytes, "
	    "received_at, dedup_key, in_kind, related_message_id, filed_by, filed_at) VALUES ($1, "
	    "'in', 'sms', 'received', $2, nullif($3::bigint, 0), $4, $5, $6, $6, octet_length($6), "
	    "now(), $7, $8, nullif($9::bigint, 0), $10::text, CASE WHEN $10 IS NOT NULL THEN now() "
	    "END) ON CONFLICT (sms_account_id, dedup_key) WHERE direction = 'in' AND channel = "
	    "'sms' AND dedup_key IS NOT NULL DO NOTHING RETURNING id), "
	    "t AS (INSERT INTO message_tags (message_id, tag_id) SELECT m.id, pp_tag($1, $11) FROM "
	    "m WHERE $11::text IS NOT NULL ON CONFLICT DO NOTHING), "
	    "l AS (INSERT INTO message_people (message_id, person_id) SELECT m.id, "
	    "unnest(string_to_array($12, ','))::bigint FROM m ON CONFLICT DO NOTHING), "
	    "a AS (INSERT INTO audit_log (actor, action, practice_id, message_id, person_id, "
	    "detail) SELECT v.actor, v.action, $1, m.id, v.person, v.detail FROM m, (VALUES "
	    "('sms'::text, 'received'::text, NULL::bigint, $13::text), ('rule', CASE WHEN "
	    "$3::bigint = 0 THEN 'unfiled' ELSE 'filed' END, nullif($3::bigint, 0), $14)) AS "
	    "v(actor, action, person, detail)) SELECT id FROM m",
	    PP_DB_ARGS(in->practice, in->account, pp_lltoa(person, in->person_id),
	               in->from[0] ? in->from : in->from_raw, in->to ? in->to : "", in->text, dedup,
	               kinds[in->kind], pp_lltoa(related, in->last_id), filed_by, in->tag,
	               in->listed.len ? in->listed.data : "", received, filed));
	free(dedup);
	free(filed_by);
	free(received);
	free(filed);
	if (res == NULL)
		return -1;
	in->msg_id = PQntuples(res) == 1 ? pp_db_value_ll(res, 0, 0, 0) : 0;
	PQclear(res);
	return 0;
}

/* incoming_queue_text - an SMS to the sender (send now), its id or 0. */
static int64_t incoming_queue_text(pp_db_t *db, incoming_t *in, const char *text)
{
	char person[PP_LL_LEN], msg[PP_LL_LEN];
	PGresult *res = pp_db_exec_prepared(
	    db,
	    "INSERT INTO messages (practice_id, direction, channel, state, sms_account_id, "
	    "person_id, category, description, to_addr, body, size_bytes, send_now, "
	    "related_message_id) VALUES ($1, 'out', 'sms', 'queued', $2, nullif($3::bigint, 0), "
	    "'sms_control', 'answer to an SMS keyword', $4, $5, octet_length($5), true, $6) "
	    "RETURNING id",
	    PP_DB_ARGS(in->practice, in->account, pp_lltoa(person, in->person_id), in->from, text,
	               pp_lltoa(msg, in->msg_id)));
	if (res == NULL)
		return -1;
	int64_t id = pp_db_value_ll(res, 0, 0, 0);
	PQclear(res);
	in->queued = 1;
	return id;
}

static int incoming_stop(pp_db_t *db, incoming_t *in)
{
	char source[64], ack[PP_LL_LEN];
	snprintf(source, sizeof(source), "sms STOP msg=%lld", (long long)in->msg_id);
	PGresult *res =
	    pp_db_exec_prepared(db,
	                        "INSERT INTO sms_optouts (practice_id, phone, national, "
	                        "source) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING "
	                        "RETURNING phone",
	                        PP_DB_ARGS(in->practice, in->from, in->national, source));
	if (res == NULL)
		return -1;
	int added = PQntuples(res) == 1;
	PQclear(res);
	if (!added)
		return 0; /* already opted out: one confirmation was enough */
	char *text = xasprintf("%s: you will get no more texts from us. Reply START to get them "
	                       "again.",
	                       in->name);
	int64_t id = incoming_queue_text(db, in, text);
	free(text);
	if (id < 0 ||
	    pp_db_command_prepared(db,
	                           "UPDATE sms_optouts SET ack_message_id = $3::bigint WHERE "
	                           "practice_id = $1 AND phone = $2",
	                           PP_DB_ARGS(in->practice, in->from, pp_lltoa(ack, id))) != 0)
		return -1;
	log_info("msg=%lld sms opt-out from=%s ack=%lld", (long long)in->msg_id, in->from,
	         (long long)id);
	return pp_audit(db, INCOMING_ACTOR, "sms_opted_out", in->req->practice_id, in->msg_id,
	                in->person_id, "number=%s", in->from);
}

static int incoming_start(pp_db_t *db, incoming_t *in)
{
	PGresult *res = pp_db_exec_prepared(
	    db, "DELETE FROM sms_optouts WHERE practice_id = $1 AND phone = $2 RETURNING phone",
	    PP_DB_ARGS(in->practice, in->from));
	if (res == NULL)
		return -1;
	int removed = PQntuples(res) == 1;
	PQclear(res);
	if (!removed)
		return 0;
	char *text =
	    xasprintf("%s: you will get our texts again. Reply STOP to stop them.", in->name);
	int64_t id = incoming_queue_text(db, in, text);
	free(text);
	if (id < 0)
		return -1;
	log_info("msg=%lld sms opt-in from=%s", (long long)in->msg_id, in->from);
	return pp_audit(db, INCOMING_ACTOR, "sms_opted_in", in->req->practice_id, in->msg_id,
	                in->person_id, "number=%s", in->from);
}

static int incoming_help(pp_db_t *db, incoming_t *in)
{
	char *text = *in->phone ? xasprintf("%s: call us on %s. Reply STOP to stop texts.",
	                                    in->name, in->phone)
	                        : xasprintf("%s. Reply STOP to stop texts.", in->name);
	int64_t id = incoming_queue_text(db, in, text);
	free(text);
	if (id < 0)
		return -1;
	return pp_audit(db, INCOMING_ACTOR, "sms_help_sent", in->req->practice_id, in->msg_id,
	                in->person_id, "answer msg=%lld", (long long)id);
}

/* incoming_confirm - confirm what the reminder covered; 1 if it did. */
static int incoming_confirm(pp_db_t *db, incoming_t *in)
{
	char reminder[PP_LL_LEN], msg[PP_LL_LEN];
	if (in->reminder_id == 0)
		return 0;
	char *who = xasprintf("sms %s", in->from);
	PGresult *res = pp_db_exec_prepared(
	    db,
	    "UPDATE appointments a SET confirmed_at = now(), confirmed_by = $3, "
	    "confirmed_message_id = $2::bigint, updated_at = now() WHERE a.id IN (SELECT "
	    "s.appointment_id FROM auto_sent s WHERE s.message_id = $1::bigint AND s.kind = "
	    "'reminder') AND a.status = 'booked' AND a.starts_at > now() AND a.confirmed_at IS "
	    "NULL RETURNING a.id, a.patient_id",
	    PP_DB_ARGS(pp_lltoa(reminder, in->reminder_id), pp_lltoa(msg, in->msg_id), who));
	free(who);
	if (res == NULL)
		return -1;
	int n = PQntuples(res);
	for (int r = 0; r < n; r++) {
		log_info("msg=%lld appointment=%s confirmed by=%s reminder=%lld",
		         (long long)in->msg_id, PQgetvalue(res, r, 0), in->from,
		         (long long)in->reminder_id);
		if (pp_audit(db, INCOMING_ACTOR, "appointment_confirmed", in->req->practice_id,
		             in->msg_id, pp_db_value_ll(res, r, 1, 0),
		             "appointment=%s reminder=%lld number=%s", PQgetvalue(res, r, 0),
		             (long long)in->reminder_id, in->from) != 0) {
			PQclear(res);
			return -1;
		}
	}
	PQclear(res);
	return n > 0;
}

/* incoming_act - what the keyword does; *acted when it was handled. */
static int incoming_act(pp_db_t *db, incoming_t *in, int *acted)
{
	int rc = 0;
	*acted = 0;
	if (in->from[0] == '\0')
		return 0;
	switch (in->kind) {
	case SMS_REPLY_STOP:
		rc = incoming_stop(db, in);
		break;
	case SMS_REPLY_START:
		rc = incoming_start(db, in);
		break;
	case SMS_REPLY_HELP:
		rc = incoming_help(db, in);
		break;
	case SMS_REPLY_CONFIRM:
		rc = incoming_confirm(db, in);
		if (rc == 0)
			return 0; /* nothing to confirm: filed for staff */
		rc = rc < 0 ? -1 : 0;
		break;
	case SMS_REPLY_OTHER:
		return 0;
	}
	if (rc != 0)
		return -1;
	*acted = 1;
	char msg[PP_LL_LEN];
	return pp_db_command_prepared(db, "UPDATE messages SET actioned_at = now() WHERE id = $1",
	                              PP_DB_ARGS(pp_lltoa(msg, in->msg_id)));
}

static void incoming_fail(pp_db_t *db, sms_callback_answer_t *ans)
{
	ans->status = 503;
	snprintf(ans->why, sizeof(ans->why), "database error: %s", pp_db_error(db));
	pp_db_rollback(db);
}

void sms_incoming_handle(pp_daemon_t *d, pp_db_t *db, const sms_callback_req_t *req,
                         sms_callback_answer_t *ans)
{
	incoming_t in;
	const char *why = NULL;
	int acted = 0;
	memset(&in, 0, sizeof(in));
	pp_buf_init(&in.listed);
	in.req = req;
	pp_lltoa(in.practice, req->practice_id);
	pp_lltoa(in.account, req->account_id);
	/* from, to, id and the text were checked by sms_request.c */
	in.from_raw = req->r->from;
	in.to = req->r->to;
	in.id = req->r->id;
	in.text = xstrdup(req->r->text);
	ans->status = 400;
	if (incoming_practice(db, &in) != 0) {
		incoming_fail(db, ans);
		goto done;
	}
	if (pp_phone_e164(in.from_raw, in.country, in.from, &why) != 0)
		in.from[0] = '\0';
	in.national = in.from[0] ? pp_phone_national(in.from) : "";
	in.kind =
	    sms_reply_classify(in.text, in.words ? (const char *const *)in.words : NULL, in.nwords);
	if (pp_db_begin(db) != 0 || incoming_file(db, &in) != 0 || incoming_store(db, &in) != 0) {
		incoming_fail(db, ans);
		goto done;
	}
	if (in.msg_id == 0) {
		pp_db_rollback(db);
		ans->status = 200;
		log_info("incoming sms id=%s from account=%s already stored", in.id ? in.id : "",
		         in.account);
		goto done;
	}
	if (incoming_act(db, &in, &acted) != 0 || pp_db_commit(db) != 0) {
		incoming_fail(db, ans);
		goto done;
	}
	ans->status = 200;
	log_info("msg=%lld state=received channel=sms account=%s from=%s person=%lld "
	         "filed_by=%s keyword=%s acted=%d",
	         (long long)in.msg_id, in.account, in.from[0] ? in.from : "invalid",
	         (long long)in.person_id, in.how, sms_reply_kind_name(in.kind), acted);
	if (in.queued)
		pp_daemon_wake_self(d);
done:
	incoming_free(&in);
}
