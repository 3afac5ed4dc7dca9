/*
 * composer_request.c - the life of a compose request: claim a batch (SKIP
 * LOCKED + lease), then for each request one transaction that locks it,
 * loads what the merge needs, builds the message, inserts the messages row
 * and marks the request done. A request that cannot be composed is marked
 * failed with the reason; it never leaves a partial message behind.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "composer.h"
#include "composer_auto.h"
#include "pp_log.h"
#include "pp_util.h"

static int compare_ids(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* composer_request_claim - lease up to batch_size new requests to this
 * instance (oldest first); *ids is owned by the caller. Count or -1. */
int composer_request_claim(pp_daemon_t *d, const composer_state_t *st, int64_t **ids)
{
	char lease[16], limit[16];
	snprintf(lease, sizeof(lease), "%d", st->lease_seconds);
	snprintf(limit, sizeof(limit), "%d", st->batch_size);
	*ids = NULL;
	PGresult *res =
	    pp_db_exec(pp_daemon_db(d),
	               "UPDATE compose_requests SET claimed_by = $1, "
	               "lease_until = now() + make_interval(secs => $2::int) "
	               "WHERE id IN (SELECT id FROM compose_requests WHERE state = 'new' "
	               "AND (lease_until IS NULL OR lease_until < now()) ORDER BY created_at, id "
	               "LIMIT $3::int FOR UPDATE SKIP LOCKED) RETURNING id",
	               PP_DB_ARGS(pp_daemon_lease_id(d), lease, limit));
	if (res == NULL) {
		log_warnx("compose claim failed: %s", pp_db_error(pp_daemon_db(d)));
		return -1;
	}
	int n = PQntuples(res);
	if (n > 0) {
		*ids = xcalloc((size_t)n, sizeof(**ids));
		for (int i = 0; i < n; i++)
			(*ids)[i] = pp_db_value_ll(res, i, 0, 0);
		qsort(*ids, (size_t)n, sizeof(**ids), compare_ids);
	}
	PQclear(res);
	return n;
}

/* composer_request_release - give back every request this instance holds
 * (on the way out), so another instance can take them at once. */
void composer_request_release(pp_daemon_t *d)
{
	PGresult *res =
	    pp_db_exec(pp_daemon_db(d),
	               "UPDATE compose_requests SET claimed_by = NULL, lease_until = NULL "
	               "WHERE state = 'new' AND claimed_by = $1",
	               PP_DB_ARGS(pp_daemon_lease_id(d)));
	if (res == NULL) {
		log_warnx("compose release failed: %s", pp_db_error(pp_daemon_db(d)));
		return;
	}
	if (atoi(PQcmdTuples(res)) > 0)
		log_info("released=%s compose requests", PQcmdTuples(res));
	PQclear(res);
}

static int flag(const PGresult *res, int col)
{
	const char *v = pp_db_value(res, 0, col);
	return v != NULL && v[0] == 't';
}

/* request_lock - lock the request row if it is still new and ours. */
static composer_rc_t request_lock(pp_daemon_t *d, composer_job_t *job, int64_t id)
{
	char ids[24];
	pp_lltoa(ids, id);
	PGresult *res = pp_db_exec(
	    pp_daemon_db(d),
	    "SELECT id, practice_id, person_id, template_code, channel, appointment_id, "
	    "provider_id, specialist_id, email_account_id, sms_account_id, subject, body, "
	    "category, description, deliver_after, add_signature, draft, send_now, "
	    "copy_specialist, attach_ics, reply_to_message_id, forward_of_message_id, "
	    "to_address, quote FROM compose_requests "
	    "WHERE id = $1 AND state = 'new' AND claimed_by = $2 FOR UPDATE",
	    PP_DB_ARGS(ids, pp_daemon_lease_id(d)));
	if (res == NULL)
		return COMPOSER_DB_ERROR;
	composer_request_t *r = &job->req;
	r->res = res;
	if (PQntuples(res) != 1)
		return COMPOSER_LOST;
	r->id = id;
	r->practice_id = pp_db_value_ll(res, 0, 1, 0);
	r->person_id = pp_db_value_ll(res, 0, 2, 0);
	r->template_code = pp_db_value(res, 0, 3);
	r->channel = pp_db_value(res, 0, 4);
	r->appointment_id = pp_db_value(res, 0, 5);
	r->provider_id = pp_db_value(res, 0, 6);
	r->specialist_id = pp_db_value(res, 0, 7);
	r->email_account_id = pp_db_value(res, 0, 8);
	r->sms_account_id = pp_db_value(res, 0, 9);
	r->subject = pp_db_value(res, 0, 10);
	r->body = pp_db_value(res, 0, 11);
	r->category = pp_db_value(res, 0, 12);
	r->description = pp_db_value(res, 0, 13);
	r->deliver_after = pp_db_value(res, 0, 14);
	r->add_signature = flag(res, 15);
	r->draft = flag(res, 16);
	r->send_now = flag(res, 17);
	r->copy_specialist = flag(res, 18);
	r->attach_ics = pp_db_value(res, 0, 19);
	r->reply_to = pp_db_value(res, 0, 20);
	r->forward_of = pp_db_value(res, 0, 21);
	r->to_address = pp_db_value(res, 0, 22);
	r->quote = flag(res, 23);
	return COMPOSER_OK;
}

/* request_next_message_id - reserve the messages.id so the Message-ID can
 * carry it (unless the caller chose the id). */
static composer_rc_t request_next_message_id(pp_db_t *db, composer_job_t *job)
{
	if (job->msg.id != 0)
		return COMPOSER_OK;
	PGresult *res =
	    pp_db_exec(db, "SELECT nextval(pg_get_serial_sequence('messages', 'id'))", 0, NULL);
	if (res == NULL)
		return COMPOSER_DB_ERROR;
	job->msg.id = pp_db_value_ll(res, 0, 0, 0);
	PQclear(res);
	return COMPOSER_OK;
}

/* request_insert - the messages row, its attachments, and the request
 * (if it is a row) marked done. */
static composer_rc_t request_insert(pp_db_t *db, composer_job_t *job)
{
	const composer_message_t *m = &job->msg;
	const composer_request_t *r = &job->req;
	char id[24], req[24], size[24], practice[24], person[24];
	const char *state = r->state ? r->state : r->draft ? "draft" : "queued";
	pp_lltoa(id, m->id);
	pp_lltoa(req, r->id);
	snprintf(size, sizeof(size), "%zu", m->size);
	pp_lltoa(practice, r->practice_id);
	pp_lltoa(person, r->person_id);
	int email = m->channel == COMPOSER_EMAIL;
	if (pp_db_command(
	        db,
	        "INSERT INTO messages (id, practice_id, direction, channel, state, "
	        "email_account_id, sms_account_id, person_id, appointment_id, template_id, "
	        "category, description, from_addr, to_addr, cc_addrs, bcc_addrs, subject, body, "
	        "message_id_header, size_bytes, send_now, deliver_after, unsubscribe_token, "
	        "sms_sender_id) "
	        "VALUES ($1, $2, 'out', $3::message_channel, $4::message_state, $5, $6, $7, "
	        "$8, $9, coalesce($10, ''), coalesce($11, ''), $12, $13, $14, $15, $16, $17, "
	        "$18, $19, $20::boolean, coalesce($21::timestamptz, now()), nullif($22, ''), "
	        "$23)",
	        PP_DB_ARGS(id, practice, email ? "email" : "sms", state,
	                   email ? job->account.id : NULL, email ? NULL : job->account.id, person,
	                   job->fields.appointment_id, job->tpl.id, r->category, r->description,
	                   m->from_addr, m->to_addr, m->cc_addrs ? m->cc_addrs : "",
	                   m->bcc_addrs ? m->bcc_addrs : "", m->subject, m->body,
	                   email ? m->message_id : NULL, size, r->send_now ? "true" : "false",
	                   r->deliver_after, m->unsubscribe_token,
	                   email ? NULL : job->account.sms_sender_id)) != 0)
		return COMPOSER_DB_ERROR;
	composer_rc_t rc = composer_attach_store(db, job);
	if (rc == COMPOSER_OK)
		rc = composer_reply_store(db, job);
	if (rc != COMPOSER_OK || r->id == 0)
		return rc;
	if (pp_db_command(
	        db,
	        "UPDATE compose_requests SET state = 'done', message_id = $2, error = NULL, "
	        "done_at = now(), claimed_by = NULL, lease_until = NULL WHERE id = $1",
	        PP_DB_ARGS(req, id)) != 0)
		return COMPOSER_DB_ERROR;
	return COMPOSER_OK;
}

composer_rc_t composer_job_compose(pp_db_t *db, composer_job_t *job)
{
	composer_rc_t rc;
	if ((rc = composer_template_load(db, job)) != COMPOSER_OK ||
	    (rc = composer_fields_load(db, job)) != COMPOSER_OK ||
	    (rc = composer_account_load(db, job)) != COMPOSER_OK)
		return rc;
	composer_identity_apply(job);
	if ((rc = composer_reply_load(db, job)) != COMPOSER_OK ||
	    (rc = composer_recipients_load(db, job)) != COMPOSER_OK ||
	    (rc = composer_attach_load(db, job)) != COMPOSER_OK ||
	    (rc = request_next_message_id(db, job)) != COMPOSER_OK ||
	    (rc = composer_message_build(job)) != COMPOSER_OK)
		return rc;
	return request_insert(db, job);
}

/* request_park - a template that merges the booking link of an appointment
 * whose link is not set yet: instead of failing, the message waits as
 * pending_sync (sync_failed if the practice software reported an error) and
 * is composed into the same row when the link arrives (composer_auto_sync.c).
 * A reply, a forward or a message to another address never waits: the
 * parked row would not remember them.
 * Returns COMPOSER_REFUSED (job->err kept) when that does not apply. */
static composer_rc_t request_park(pp_db_t *db, composer_job_t *job)
{
	const composer_request_t *r = &job->req;
	if (r->template_code == NULL || job->fields.appointment_id == NULL || r->reply_to != NULL ||
	    r->forward_of != NULL || r->to_address != NULL ||
	    !composer_auto_needs_link(job->tpl.subject, job->tpl.body))
		return COMPOSER_REFUSED;
	PGresult *res = pp_db_exec(db,
	                           "SELECT booking_link IS NULL, booking_link_error FROM "
	                           "appointments WHERE id = $1",
	                           PP_DB_ARGS(job->fields.appointment_id));
	if (res == NULL)
		return COMPOSER_DB_ERROR;
	int waiting = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	if (!waiting) {
		PQclear(res);
		return COMPOSER_REFUSED;
	}
	if (job->rcpt.n > 0 || job->files.n > 0) {
		PQclear(res);
		snprintf(job->err, sizeof(job->err),
		         "appointment %s has no online-booking link yet, and a message with "
		         "copies or attachments cannot wait for it",
		         job->fields.appointment_id);
		return COMPOSER_REFUSED;
	}
	composer_auto_msg_t m;
	memset(&m, 0, sizeof(m));
	m.kind = r->category && *r->category ? r->category : "compose";
	m.practice_id = r->practice_id;
	m.person_id = r->person_id;
	m.appointment = job->fields.appointment_id;
	m.deliver_after = r->deliver_after;
	char err[COMPOSER_ERR_MAX];
	composer_auto_rc_t arc = composer_auto_park(
	    db, &m, r->template_code, pp_db_value(res, 0, 1), &job->msg.id, err, sizeof(err));
	PQclear(res);
	if (arc == AUTO_DB_ERROR)
		return COMPOSER_DB_ERROR;
	if (arc != AUTO_MADE) {
		snprintf(job->err, sizeof(job->err), "%s", err);
		return COMPOSER_REFUSED;
	}
	char req[24], id[24];
	pp_lltoa(req, r->id);
	pp_lltoa(id, job->msg.id);
	if (pp_db_command(db,
	                  "UPDATE compose_requests SET state = 'done', message_id = $2, error = "
	                  "NULL, done_at = now(), claimed_by = NULL, lease_until = NULL WHERE "
	                  "id = $1",
	                  PP_DB_ARGS(req, id)) != 0)
		return COMPOSER_DB_ERROR;
	job->parked = 1;
	return COMPOSER_OK;
}

/* request_compose - every step inside the open transaction. */
static composer_rc_t request_compose(pp_daemon_t *d, composer_job_t *job, int64_t id)
{
	composer_rc_t rc = request_lock(d, job, id);
	if (rc == COMPOSER_OK)
		rc = composer_job_compose(pp_daemon_db(d), job);
	if (rc == COMPOSER_REFUSED)
		rc = request_park(pp_daemon_db(d), job);
	return rc;
}

/* request_fail - record why the request cannot be composed (autocommit,
 * after the compose transaction was rolled back). */
static int request_fail(pp_daemon_t *d, int64_t id, const char *error)
{
	char ids[24];
	pp_lltoa(ids, id);
	PGresult *res = pp_db_exec(pp_daemon_db(d),
	                           "UPDATE compose_requests SET state = 'failed', error = $2, "
	                           "done_at = now(), claimed_by = NULL, lease_until = NULL "
	                           "WHERE id = $1 AND state = 'new' AND claimed_by = $3",
	                           PP_DB_ARGS(ids, error, pp_daemon_lease_id(d)));
	if (res == NULL) {
		log_warnx("request=%lld cannot record failure: %s", (long long)id,
		          pp_db_error(pp_daemon_db(d)));
		return -1;
	}
	int n = atoi(PQcmdTuples(res));
	PQclear(res);
	if (n == 1)
		log_warnx("request=%lld state=failed error=\"%s\"", (long long)id, error);
	return 0;
}

/* composer_request_run - compose one claimed request. COMPOSER_OK (done,
 * sender/sms woken), COMPOSER_REFUSED (marked failed), COMPOSER_LOST
 * (not ours any more) or COMPOSER_DB_ERROR (rolled back; retried later). */
composer_rc_t composer_request_run(pp_daemon_t *d, int64_t id)
{
	pp_db_t *db = pp_daemon_db(d);
	composer_job_t job;
	memset(&job, 0, sizeof(job));
	if (pp_db_begin(db) != 0) {
		log_warnx("request=%lld begin failed: %s", (long long)id, pp_db_error(db));
		return COMPOSER_DB_ERROR;
	}
	composer_rc_t rc = request_compose(d, &job, id);
	if (rc == COMPOSER_OK && pp_db_commit(db) != 0)
		rc = COMPOSER_DB_ERROR;
	else if (rc != COMPOSER_OK)
		pp_db_rollback(db);
	switch (rc) {
	case COMPOSER_OK:
		if (job.parked) {
			log_info("request=%lld msg=%lld waiting for the booking link template=%s",
			         (long long)id, (long long)job.msg.id, job.req.template_code);
			break;
		}
		log_info("request=%lld msg=%lld state=%s channel=%s template=%s size=%zu%s%.0d%s",
		         (long long)id, (long long)job.msg.id, job.req.draft ? "draft" : "queued",
		         job.msg.channel == COMPOSER_EMAIL ? "email" : "sms",
		         job.req.template_code ? job.req.template_code : "-", job.msg.size,
		         job.msg.channel == COMPOSER_SMS ? " segments=" : "",
		         job.msg.channel == COMPOSER_SMS ? job.msg.sms_segments : 0,
		         job.msg.channel == COMPOSER_SMS
		             ? (job.msg.sms_unicode ? " coding=ucs2" : " coding=gsm7")
		             : "");
		if (!job.req.draft)
			pp_daemon_wake(d, job.msg.channel == COMPOSER_EMAIL ? "sender" : "sms",
			               job.msg.id);
		break;
	case COMPOSER_REFUSED:
		if (request_fail(d, id, job.err) != 0)
			rc = COMPOSER_DB_ERROR;
		break;
	case COMPOSER_LOST:
		log_info("request=%lld no longer held by this instance; skipped", (long long)id);
		break;
	case COMPOSER_DB_ERROR:
		/* pp_db keeps only the server's one-line primary message: no
		 * DETAIL line can carry row data into the request's error. */
		if (pp_db_error_is_data(db)) {
			snprintf(job.err, sizeof(job.err), "the database refused the message: %s",
			         pp_db_error(db));
			rc = request_fail(d, id, job.err) == 0 ? COMPOSER_REFUSED
			                                       : COMPOSER_DB_ERROR;
		} else {
			log_warnx("request=%lld database error, will retry: %s", (long long)id,
			          pp_db_error(db));
		}
		break;
	}
	composer_job_free(&job);
	return rc;
}

composer_rc_t composer_refuse(composer_job_t *job, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(job->err, sizeof(job->err), fmt, ap);
	va_end(ap);
	return COMPOSER_REFUSED;
}

void composer_job_free(composer_job_t *job)
{
	PQclear(job->req.res);
	PQclear(job->fields.res);
	PQclear(job->tpl.res);
	PQclear(job->tpl.sig_res);
	PQclear(job->account.res);
	for (size_t i = 0; i < job->rcpt.n; i++)
		free(job->rcpt.list[i].name);
	free(job->rcpt.list);
	PQclear(job->rcpt.res);
	for (size_t i = 0; i < job->files.n; i++)
		PQfreemem((void *)job->files.list[i].data);
	free(job->files.list);
	PQclear(job->files.res);
	composer_reply_free(&job->reply);
	free(job->msg.from_addr);
	free(job->msg.to_addr);
	free(job->msg.cc_addrs);
	free(job->msg.bcc_addrs);
	free(job->msg.subject);
	free(job->msg.body);
	free(job->msg.ics);
	memset(job, 0, sizeof(*job));
}
