/*
 * composer_message.c - turns a loaded job into the finished message: merges
 * subject and body (pp_merge), then builds the MIME message (pp_mime) for
 * email or the text for SMS. No database: everything comes from the job.
 * Owns the wording of the errors a patient-facing problem produces.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "composer.h"
#include "pp_mime.h"
#include "pp_util.h"

#define LL(x) ((long long)(x))

static const char *message_lookup(void *ctx, pp_merge_field_t field)
{
	return ((const composer_fields_t *)ctx)->values[field];
}

/* message_source - how errors name the text being merged. */
static void message_source(const composer_job_t *job, const char *part, char *out, size_t n)
{
	if (job->req.template_code != NULL)
		snprintf(out, n, "template \"%s\" %s", job->req.template_code, part);
	else
		snprintf(out, n, "free-text %s", part);
}

/* message_merge - parse and render text, appending to out. */
static composer_rc_t message_merge(composer_job_t *job, const char *what, const char *text,
                                   pp_merge_mode_t mode, pp_buf_t *out)
{
	char err[COMPOSER_ERR_MAX - 64];
	pp_merge_template_t *tpl = pp_merge_parse(text, err, sizeof(err));
	if (tpl == NULL)
		return composer_refuse(job, "%s: %s", what, err);
	int rc = pp_merge_render(tpl, mode, message_lookup, &job->fields, out, err, sizeof(err));
	pp_merge_template_free(&tpl);
	if (rc != 0)
		return composer_refuse(job, "%s: %s", what, err);
	return COMPOSER_OK;
}

/* message_body - the merged body, then the merged signature if asked for. */
static composer_rc_t message_body(composer_job_t *job, pp_merge_mode_t mode, char **out)
{
	char what[160];
	pp_buf_t buf;
	pp_buf_init(&buf);
	message_source(job, "body", what, sizeof(what));
	composer_rc_t rc = message_merge(job, what, job->tpl.body, mode, &buf);
	if (rc == COMPOSER_OK && job->tpl.signature != NULL) {
		pp_buf_puts(&buf, mode == PP_MERGE_HTML ? "\n<br><br>\n" : "\n\n");
		rc = message_merge(job, "signature template", job->tpl.signature, mode, &buf);
	}
	if (rc != COMPOSER_OK) {
		pp_buf_free(&buf);
		return rc;
	}
	*out = pp_buf_steal(&buf);
	return COMPOSER_OK;
}

/* message_from - the messages.from_addr text: addr, or "Name <addr>" with
 * the name quoted when it holds RFC 5322 specials. */
static char *message_from(const char *name, const char *addr)
{
	if (name == NULL || *name == '\0')
		return xstrdup(addr);
	if (strpbrk(name, "()<>[]:;@\\,.\"") == NULL)
		return xasprintf("%s <%s>", name, addr);
	pp_buf_t buf;
	pp_buf_init(&buf);
	pp_buf_puts(&buf, "\"");
	for (const char *p = name; *p; p++) {
		if (*p == '"' || *p == '\\')
			pp_buf_puts(&buf, "\\");
		pp_buf_append(&buf, p, 1);
	}
	pp_buf_printf(&buf, "\" <%s>", addr);
	return pp_buf_steal(&buf);
}

static composer_rc_t message_subject(composer_job_t *job)
{
	char what[160];
	pp_buf_t buf;
	message_source(job, "subject", what, sizeof(what));
	if (job->tpl.subject == NULL || *job->tpl.subject == '\0')
		return composer_refuse(job, "%s is empty", what);
	pp_buf_init(&buf);
	composer_rc_t rc = message_merge(job, what, job->tpl.subject, PP_MERGE_HEADER, &buf);
	if (rc != COMPOSER_OK) {
		pp_buf_free(&buf);
		return rc;
	}
	job->msg.subject = pp_buf_steal(&buf);
	return COMPOSER_OK;
}

/* message_email - the complete MIME message, Message-ID in the practice's
 * mail domain carrying the messages row id. */
static composer_rc_t message_email(composer_job_t *job)
{
	composer_message_t *m = &job->msg;
	const char *to = job->fields.values[PP_FIELD_PATIENT_EMAIL];
	char *body = NULL, err[COMPOSER_ERR_MAX - 64];
	composer_rc_t rc;
	if (to == NULL || *to == '\0')
		return composer_refuse(job, "patient %lld has no email address",
		                       LL(job->req.person_id));
	if (!pp_mime_address_valid(to))
		return composer_refuse(job, "patient %lld's email address is not valid",
		                       LL(job->req.person_id));
	if ((rc = message_subject(job)) != COMPOSER_OK ||
	    (rc = message_body(job, job->tpl.html ? PP_MERGE_HTML : PP_MERGE_TEXT, &body)) !=
	        COMPOSER_OK)
		return rc;
	if (pp_mime_message_id(m->message_id, sizeof(m->message_id), m->id,
	                       job->fields.mail_domain) != 0) {
		free(body);
		return composer_refuse(job, "practice %lld's mail domain is not valid",
		                       LL(job->req.practice_id));
	}
	pp_mime_address_t rcpt = {NULL, to};
	pp_mime_spec_t spec = {
	    .from = {job->account.from_name, job->account.from_addr},
	    .to = &rcpt,
	    .nto = 1,
	    .subject = m->subject,
	    .message_id = m->message_id,
	    .date = job->fields.now_epoch,
	    .time_zone = job->fields.time_zone,
	    .text = job->tpl.html ? NULL : body,
	    .html = job->tpl.html ? body : NULL,
	};
	m->body = pp_mime_build(&spec, &m->size, err, sizeof(err));
	free(body);
	if (m->body == NULL)
		return composer_refuse(job, "the message cannot be built: %s", err);
	if (job->account.max_bytes > 0 && (int64_t)m->size > job->account.max_bytes)
		return composer_refuse(job,
		                       "the message is %zu bytes, more than email account "
		                       "%s allows (%lld)",
		                       m->size, job->account.id, LL(job->account.max_bytes));
	m->from_addr = message_from(job->account.from_name, job->account.from_addr);
	m->to_addr = xstrdup(to);
	return COMPOSER_OK;
}

static composer_rc_t message_sms(composer_job_t *job)
{
	composer_message_t *m = &job->msg;
	const char *to = job->fields.values[PP_FIELD_PATIENT_MOBILE];
	if (to == NULL || *to == '\0')
		return composer_refuse(job, "patient %lld has no mobile number",
		                       LL(job->req.person_id));
	composer_rc_t rc = message_body(job, PP_MERGE_TEXT, &m->body);
	if (rc != COMPOSER_OK)
		return rc;
	m->size = strlen(m->body);
	if (m->size == 0)
		return composer_refuse(job, "the SMS text is empty");
	m->from_addr = xstrdup(job->account.from_addr ? job->account.from_addr : "");
	m->to_addr = xstrdup(to);
	m->subject = xstrdup("");
	return COMPOSER_OK;
}

composer_rc_t composer_message_build(composer_job_t *job)
{
	job->msg.channel = job->channel;
	return job->channel == COMPOSER_EMAIL ? message_email(job) : message_sms(job);
}
