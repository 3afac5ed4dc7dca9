/*
 * composer_attach.c - the files of a compose request: loaded (after a size
 * check against the account's limit, so a huge file is refused before it
 * is read) for the MIME message, and copied with the .ics onto the
 * message's attachments rows. Owns the unescaped file data of a job.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "composer.h"
#include "pp_util.h"

/* attach_total - how many files and bytes the request carries. */
static composer_rc_t attach_total(pp_db_t *db, composer_job_t *job, const char *req, int64_t *count)
{
	PGresult *res = pp_db_exec(db,
	                           "SELECT count(*), coalesce(sum(octet_length(data)), 0) "
	                           "FROM compose_request_attachments WHERE request_id = $1",
	                           PP_DB_ARGS(req));
	if (res == NULL)
		return COMPOSER_DB_ERROR;
	*count = pp_db_value_ll(res, 0, 0, 0);
	job->files.bytes = pp_db_value_ll(res, 0, 1, 0);
	PQclear(res);
	return COMPOSER_OK;
}

composer_rc_t composer_attach_load(pp_db_t *db, composer_job_t *job)
{
	composer_attachments_t *f = &job->files;
	char req[24];
	int64_t count = 0;
	if (job->req.id == 0)
		return COMPOSER_OK;
	pp_lltoa(req, job->req.id);
	composer_rc_t rc = attach_total(db, job, req, &count);
	if (rc != COMPOSER_OK || count == 0)
		return rc;
	if (job->channel == COMPOSER_SMS)
		return composer_refuse(job, "an SMS cannot carry attachments (%lld given)",
		                       LL(count));
	if (job->account.max_bytes > 0 && f->bytes > job->account.max_bytes)
		return composer_refuse(job,
		                       "the attachments are %lld bytes, more than email account %s "
		                       "allows for a whole message (%lld)",
		                       LL(f->bytes), job->account.id, LL(job->account.max_bytes));
	f->res = pp_db_exec(db,
	                    "SELECT filename, content_type, data FROM compose_request_attachments "
	                    "WHERE request_id = $1 ORDER BY id",
	                    PP_DB_ARGS(req));
	if (f->res == NULL)
		return COMPOSER_DB_ERROR;
	int n = PQntuples(f->res);
	f->list = xcalloc((size_t)n + 1, sizeof(*f->list));
	for (int i = 0; i < n; i++) {
		pp_mime_attachment_t *a = &f->list[f->n];
		size_t len = 0;
		unsigned char *data =
		    PQunescapeBytea((const unsigned char *)pp_db_value(f->res, i, 2), &len);
		if (data == NULL)
			return COMPOSER_DB_ERROR;
		a->filename = pp_db_value(f->res, i, 0);
		a->content_type = pp_db_value(f->res, i, 1);
		a->data = data;
		a->len = len;
		f->n++;
	}
	return COMPOSER_OK;
}

/* composer_attach_store - the message's attachments rows: the request's
 * files (copied inside the database) and the .ics. */
composer_rc_t composer_attach_store(pp_db_t *db, composer_job_t *job)
{
	const composer_message_t *m = &job->msg;
	char id[24], req[24];
	pp_lltoa(id, m->id);
	pp_lltoa(req, job->req.id);
	if (job->files.n > 0 &&
	    pp_db_command(db,
	                  "INSERT INTO attachments (message_id, filename, content_type, data) "
	                  "SELECT $1, filename, content_type, data FROM "
	                  "compose_request_attachments WHERE request_id = $2 ORDER BY id",
	                  PP_DB_ARGS(id, req)) != 0)
		return COMPOSER_DB_ERROR;
	if (m->ics != NULL &&
	    pp_db_command(db,
	                  "INSERT INTO attachments (message_id, filename, content_type, data) "
	                  "VALUES ($1, $2, $3, convert_to($4, 'UTF8'))",
	                  PP_DB_ARGS(id, composer_ical_filename(m->ics_method),
	                             composer_ical_content_type(m->ics_method), m->ics)) != 0)
		return COMPOSER_DB_ERROR;
	return COMPOSER_OK;
}
