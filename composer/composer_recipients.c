/*
 * composer_recipients.c - who gets the message: To (the patient, or the
 * request's to_address: a reply goes to the sender, a forward to whom the
 * operator chose), the request's Cc and Bcc people and, on request, its
 * specialist (Cc). Owns the confidentiality rules of a message's
 * recipients: every copy passes pp_recipient_refusal() (staff, providers,
 * specialists, the patient's family - never another patient), and so does
 * every person of the practice whose address a to_address is; a message
 * with patient attachments goes to several patients only if they are one
 * family; every recipient has a valid address, or the error says how to
 * set it; an address flagged as bounced is refused until it is corrected
 * or the flag cleared.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "composer.h"
#include "pp_util.h"

enum {
	R_PERSON,
	R_BCC,
	R_KIND,
	R_TITLE,
	R_FIRST,
	R_LAST,
	R_EMAIL,
	R_FAMILY,
	R_REFUSAL,
	R_BOUNCED_ON,
	R_BOUNCE_STATUS
};

/* A person's bounce flag, in the practice's zone. */
#define RECIPIENT_BOUNCED_ON COMPOSER_BOUNCED_ON("p", "pr.time_zone")

/* Cc/Bcc rows of the request, then the specialist when copied; a person
 * named twice keeps the first (Cc before Bcc). */
static const char recipients_sql[] =
    "SELECT DISTINCT ON (person_id) person_id, bcc, p.kind, p.title, p.first_name, "
    "p.last_name, p.email, p.family_id, pp_recipient_refusal($2::bigint, "
    "person_id), " RECIPIENT_BOUNCED_ON ", p.email_bounce_status "
    "FROM (SELECT person_id, kind = 'bcc' AS bcc, 1 AS pos FROM compose_request_recipients "
    "WHERE request_id = $1::bigint "
    "UNION ALL SELECT $3::bigint, false, 0 WHERE $3::bigint IS NOT NULL) r "
    "LEFT JOIN people p ON p.id = r.person_id "
    "LEFT JOIN practices pr ON pr.id = p.practice_id "
    "ORDER BY person_id, bcc, pos";

enum { T_PERSON, T_KIND, T_REFUSAL, T_BOUNCED_ON, T_BOUNCE_STATUS };

/* Everyone of the practice whose address the to_address is. */
static const char to_people_sql[] =
    "SELECT p.id, p.kind::text, pp_recipient_refusal($2::bigint, p.id), " RECIPIENT_BOUNCED_ON
    ", p.email_bounce_status FROM people p JOIN practices pr ON pr.id = p.practice_id "
    "WHERE p.practice_id = $1::bigint AND lower(p.email) = lower($3) ORDER BY p.id";

const char *composer_to_address(const composer_job_t *job)
{
	if (job->req.to_address != NULL)
		return job->req.to_address;
	return job->fields.values[PP_FIELD_PATIENT_EMAIL];
}

composer_rc_t composer_refuse_bounced(composer_job_t *job, const char *who, long long id,
                                      const char *addr, const char *on, const char *status)
{
	return composer_refuse(job,
	                       "%s %lld's address %s bounced on %s (%s); correct it with: "
	                       "practicepost person set %lld --email ADDR, or clear the flag "
	                       "with: practicepost person clear-bounce %lld",
	                       who, id, addr, on, status && *status ? status : "no status given",
	                       id, id);
}

/* recipients_what - how a refusal names the message. */
static const char *recipients_what(const composer_job_t *job)
{
	return job->reply.kind == COMPOSER_REPLY     ? "reply"
	       : job->reply.kind == COMPOSER_FORWARD ? "forward"
	                                             : "message";
}

/* recipients_to - a to_address: each person of the practice who has it
 * may receive the person's message (pp_recipient_refusal) and has no
 * bounce flag on it. An address nobody has is the operator's choice. */
static composer_rc_t recipients_to(pp_db_t *db, composer_job_t *job)
{
	const char *to = job->req.to_address;
	char practice[PP_LL_LEN], person[PP_LL_LEN];
	composer_rc_t rc = COMPOSER_OK;
	if (to == NULL)
		return COMPOSER_OK;
	PGresult *res = pp_db_exec(db, to_people_sql,
	                           PP_DB_ARGS(pp_lltoa(practice, job->req.practice_id),
	                                      pp_lltoa(person, job->req.person_id), to));
	if (res == NULL)
		return COMPOSER_DB_ERROR;
	for (int i = 0; i < PQntuples(res) && rc == COMPOSER_OK; i++) {
		long long id = pp_db_value_ll(res, i, T_PERSON, 0);
		const char *kind = pp_db_value(res, i, T_KIND);
		const char *refusal = pp_db_value(res, i, T_REFUSAL);
		const char *bounced = pp_db_value(res, i, T_BOUNCED_ON);
		if (refusal != NULL)
			rc = composer_refuse(job, "%s (the %s goes to %s, the address of %s %lld)",
			                     refusal, recipients_what(job), to, kind, id);
		else if (bounced != NULL)
			rc = composer_refuse_bounced(job, kind, id, to, bounced,
			                             pp_db_value(res, i, T_BOUNCE_STATUS));
	}
	PQclear(res);
	return rc;
}

/* recipients_name - "title first last" without empty parts. */
static char *recipients_name(const PGresult *res, int row)
{
	pp_buf_t b;
	pp_buf_init(&b);
	for (int col = R_TITLE; col <= R_LAST; col++) {
		const char *part = pp_db_value(res, row, col);
		if (part != NULL && *part != '\0')
			pp_buf_printf(&b, "%s%s", b.len ? " " : "", part);
	}
	pp_buf_append(&b, "", 0);
	return pp_buf_steal(&b);
}

/* recipients_seen - addr is already To or an earlier copy. */
static int recipients_seen(const composer_job_t *job, const char *addr)
{
	const char *to = composer_to_address(job);
	if (to != NULL && strcasecmp(to, addr) == 0)
		return 1;
	for (size_t i = 0; i < job->rcpt.n; i++)
		if (strcasecmp(job->rcpt.list[i].addr, addr) == 0)
			return 1;
	return 0;
}

/* recipients_one_family - with patient attachments (files, the .ics),
 * every patient among the recipients but the patient herself is of her
 * family (she may have none). The
 * database rule already keeps other patients out; this holds even if a
 * copy came from somewhere else. */
static composer_rc_t recipients_one_family(composer_job_t *job)
{
	const char *family = job->fields.patient_family;
	if (job->files.n == 0 && job->msg.ics == NULL)
		return COMPOSER_OK;
	for (size_t i = 0; i < job->rcpt.n; i++) {
		const composer_recipient_t *r = &job->rcpt.list[i];
		if (r->patient && r->person_id != job->req.person_id &&
		    (family == NULL || r->family_id == NULL || strcmp(family, r->family_id) != 0))
			return composer_refuse(
			    job,
			    "refused: a message with patient attachments goes to "
			    "several patients only if they are one family "
			    "(recipient %lld is not in patient %lld's family)",
			    LL(r->person_id), LL(job->req.person_id));
	}
	return COMPOSER_OK;
}

composer_rc_t composer_check_address(composer_job_t *job, const char *who, long long id,
                                     const char *addr)
{
	if (addr == NULL || *addr == '\0')
		return composer_refuse(job,
		                       "%s %lld has no email address; set it with: "
		                       "practicepost person set %lld --email ADDR",
		                       who, id, id);
	if (!pp_mime_address_valid(addr))
		return composer_refuse(job,
		                       "%s %lld's email address is not valid; set it with: "
		                       "practicepost person set %lld --email ADDR",
		                       who, id, id);
	return COMPOSER_OK;
}

/* recipients_add - check one row and keep it (unless it repeats an
 * address already addressed). */
static composer_rc_t recipients_add(composer_job_t *job, int row)
{
	const PGresult *res = job->rcpt.res;
	long long id = pp_db_value_ll(res, row, R_PERSON, 0);
	const char *refusal = pp_db_value(res, row, R_REFUSAL);
	const char *addr = pp_db_value(res, row, R_EMAIL);
	if (refusal != NULL)
		return composer_refuse(job, "%s", refusal);
	if (id == job->req.person_id && job->req.to_address == NULL)
		return COMPOSER_OK; /* the patient is the To already */
	composer_rc_t rc = composer_check_address(job, "person", id, addr);
	if (rc == COMPOSER_OK && pp_db_value(res, row, R_BOUNCED_ON) != NULL)
		rc = composer_refuse_bounced(job, "person", id, addr,
		                             pp_db_value(res, row, R_BOUNCED_ON),
		                             pp_db_value(res, row, R_BOUNCE_STATUS));
	if (rc != COMPOSER_OK || recipients_seen(job, addr))
		return rc;
	composer_recipient_t *r = &job->rcpt.list[job->rcpt.n++];
	r->person_id = id;
	r->bcc = strcmp(pp_db_value(res, row, R_BCC), "t") == 0;
	r->name = recipients_name(res, row);
	r->addr = addr;
	r->family_id = pp_db_value(res, row, R_FAMILY);
	r->patient = strcmp(pp_db_value(res, row, R_KIND), "patient") == 0;
	return COMPOSER_OK;
}

/* recipients_list - "a@x, b@y" of the Cc (bcc 0) or Bcc (bcc 1) copies. */
static char *recipients_list(const composer_job_t *job, int bcc)
{
	pp_buf_t b;
	pp_buf_init(&b);
	for (size_t i = 0; i < job->rcpt.n; i++)
		if (job->rcpt.list[i].bcc == bcc)
			pp_buf_printf(&b, "%s%s", b.len ? ", " : "", job->rcpt.list[i].addr);
	pp_buf_append(&b, "", 0);
	return pp_buf_steal(&b);
}

composer_rc_t composer_recipients_load(pp_db_t *db, composer_job_t *job)
{
	const composer_request_t *r = &job->req;
	char req[24], patient[24];
	composer_rc_t rc;
	pp_lltoa(req, r->id);
	pp_lltoa(patient, r->person_id);
	if (job->channel == COMPOSER_EMAIL && (rc = recipients_to(db, job)) != COMPOSER_OK)
		return rc;
	job->rcpt.res = pp_db_exec(
	    db, recipients_sql,
	    PP_DB_ARGS(req, patient, r->copy_specialist ? job->fields.specialist_id : NULL));
	if (job->rcpt.res == NULL)
		return COMPOSER_DB_ERROR;
	int n = PQntuples(job->rcpt.res);
	if (n > 0 && job->channel == COMPOSER_SMS)
		return composer_refuse(job, "an SMS goes to the patient only: it has no Cc or Bcc");
	job->rcpt.list = xcalloc((size_t)n + 1, sizeof(*job->rcpt.list));
	for (int i = 0; i < n; i++)
		if ((rc = recipients_add(job, i)) != COMPOSER_OK)
			return rc;
	job->msg.cc_addrs = recipients_list(job, 0);
	job->msg.bcc_addrs = recipients_list(job, 1);
	return COMPOSER_OK;
}

/* composer_recipients_check - the rules that depend on the finished
 * message (its attachments); run after the .ics is made. */
composer_rc_t composer_recipients_check(composer_job_t *job)
{
	return recipients_one_family(job);
}
