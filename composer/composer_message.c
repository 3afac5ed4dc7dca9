/*
 * composer_message.c - turns a loaded job into the finished message: merges
 * subject and body (pp_merge), then builds the MIME message (pp_mime) for
 * email or the text for SMS. No database: everything comes from the job.
 * Owns the wording of the errors a patient-facing problem produces, and
 * the choice of parts: text/plain always; text/html too (as
 * multipart/alternative) when the template or the signature is HTML, the
 * text part then read from the HTML before the merge; then the request's
 * files, a forward's files and the .ics. A reply or forward appends the
 * original's text (composer_reply.c) after the merged text and the
 * signature, never merged. Mail of a category whose opt-out type is not
 * "general" carries a List-Unsubscribe header with the message's token.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "composer.h"
#include "pp_log.h"
#include "pp_merge.h"
#include "pp_mime.h"
#include "pp_phone.h"
#include "pp_sms_text.h"
#include "pp_util.h"

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

/* composer_merge - parse and render text, appending to out. */
composer_rc_t composer_merge(composer_job_t *job, const char *what, const char *text,
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

/* message_render - text (HTML when src_html) merged as HTML (want_html)
 * or plain text, appended to out. */
static composer_rc_t message_render(composer_job_t *job, const char *what, const char *text,
                                    int src_html, int want_html, pp_buf_t *out)
{
	if (src_html == want_html)
		return composer_merge(job, what, text, want_html ? PP_MERGE_HTML : PP_MERGE_TEXT,
		                      out);
	if (src_html) {
		char *plain = pp_merge_html_to_text(text);
		composer_rc_t rc = composer_merge(job, what, plain, PP_MERGE_TEXT, out);
		free(plain);
		return rc;
	}
	pp_buf_t merged;
	pp_buf_init(&merged);
	composer_rc_t rc = composer_merge(job, what, text, PP_MERGE_TEXT, &merged);
	if (rc == COMPOSER_OK && merged.len > 0)
		pp_merge_text_to_html(out, merged.data);
	pp_buf_free(&merged);
	return rc;
}

/* message_quote - a reply's or forward's original after what is in buf:
 * as it is (plain) or escaped with <br> (HTML), never merged. */
static void message_quote(const char *quote, int html, pp_buf_t *buf)
{
	if (!html)
		while (buf->len > 0 && buf->data[buf->len - 1] == '\n')
			buf->len--;
	if (buf->len > 0)
		pp_buf_puts(buf, html ? "\n<br><br>\n" : "\n\n");
	if (html)
		pp_merge_text_to_html(buf, quote);
	else
		pp_buf_puts(buf, quote);
}

/* message_body - the merged body, then the merged signature if asked for,
 * then a reply's or forward's original, as HTML (html) or plain text. */
static composer_rc_t message_body(composer_job_t *job, int html, char **out)
{
	char what[160];
	pp_buf_t buf;
	pp_buf_init(&buf);
	message_source(job, "body", what, sizeof(what));
	composer_rc_t rc = message_render(job, what, job->tpl.body, job->tpl.html, html, &buf);
	if (rc == COMPOSER_OK && job->tpl.signature != NULL) {
		if (!html)
			while (buf.len > 0 && buf.data[buf.len - 1] == '\n')
				buf.len--;
		pp_buf_puts(&buf, html ? "\n<br><br>\n" : "\n\n");
		rc = message_render(job, "signature template", job->tpl.signature,
		                    job->tpl.sig_html, html, &buf);
	}
	if (rc != COMPOSER_OK) {
		pp_buf_free(&buf);
		return rc;
	}
	if (job->reply.quote != NULL)
		message_quote(job->reply.quote, html, &buf);
	pp_buf_append(&buf, "", 0);
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

/* message_subject - the merged subject; a reply's or forward's own
 * ("Re: ...", "Fwd: ...", from outside: never merged) unless the request
 * gives one. */
static composer_rc_t message_subject(composer_job_t *job)
{
	char what[160];
	pp_buf_t buf;
	if (job->reply.subject != NULL && (job->req.subject == NULL || *job->req.subject == '\0')) {
		job->msg.subject = xstrdup(job->reply.subject);
		return COMPOSER_OK;
	}
	message_source(job, "subject", what, sizeof(what));
	if (job->tpl.subject == NULL || *job->tpl.subject == '\0')
		return composer_refuse(job, "%s is empty", what);
	pp_buf_init(&buf);
	composer_rc_t rc = composer_merge(job, what, job->tpl.subject, PP_MERGE_HEADER, &buf);
	if (rc != COMPOSER_OK) {
		pp_buf_free(&buf);
		return rc;
	}
	job->msg.subject = pp_buf_steal(&buf);
	return COMPOSER_OK;
}

/* message_parts - the text (and HTML) bodies of the message. */
static composer_rc_t message_parts(composer_job_t *job, char **text, char **html)
{
	int want_html = job->tpl.html || (job->tpl.signature != NULL && job->tpl.sig_html);
	composer_rc_t rc = COMPOSER_OK;
	if (want_html)
		rc = message_body(job, 1, html);
	if (rc == COMPOSER_OK)
		rc = message_body(job, 0, text);
	return rc;
}

/* message_mime - the MIME text of the finished parts; err on failure. */
static composer_rc_t message_mime(composer_job_t *job, const char *text, const char *html,
                                  const char *unsubscribe)
{
	composer_message_t *m = &job->msg;
	char err[COMPOSER_ERR_MAX - 64];
	size_t nfiles = job->files.n, ncc = 0;
	pp_mime_attachment_t *files = xcalloc(nfiles + job->reply.nfiles + 1, sizeof(*files));
	pp_mime_address_t *cc = xcalloc(job->rcpt.n + 1, sizeof(*cc));
	if (nfiles > 0)
		memcpy(files, job->files.list, nfiles * sizeof(*files));
	if (job->reply.nfiles > 0)
		memcpy(files + nfiles, job->reply.files, job->reply.nfiles * sizeof(*files));
	nfiles += job->reply.nfiles;
	if (m->ics != NULL)
		files[nfiles++] = (pp_mime_attachment_t){composer_ical_filename(m->ics_method),
		                                         composer_ical_content_type(m->ics_method),
		                                         m->ics, m->ics_len};
	for (size_t i = 0; i < job->rcpt.n; i++)
		if (!job->rcpt.list[i].bcc)
			cc[ncc++] =
			    (pp_mime_address_t){job->rcpt.list[i].name, job->rcpt.list[i].addr};
	pp_mime_address_t rcpt = {NULL, composer_to_address(job)};
	pp_mime_spec_t spec = {
	    .from = {job->account.from_name, job->account.from_addr},
	    .to = &rcpt,
	    .nto = 1,
	    .cc = cc,
	    .ncc = ncc,
	    .subject = m->subject,
	    .message_id = m->message_id,
	    .date = job->fields.now_epoch,
	    .time_zone = job->fields.time_zone,
	    .text = text,
	    .html = html,
	    .attachments = files,
	    .nattachments = nfiles,
	    .in_reply_to = job->reply.in_reply_to,
	    .references = job->reply.references,
	    .list_unsubscribe = unsubscribe,
	};
	m->body = pp_mime_build(&spec, &m->size, err, sizeof(err));
	free(files);
	free(cc);
	if (m->body == NULL)
		return composer_refuse(job, "the message cannot be built: %s", err);
	if (job->account.max_bytes > 0 && (int64_t)m->size > job->account.max_bytes)
		return composer_refuse(job,
		                       "the message is %zu bytes, more than email account "
		                       "%s allows (%lld)",
		                       m->size, job->account.id, LL(job->account.max_bytes));
	return COMPOSER_OK;
}

/* message_check_to - the To address: the request's to_address (its
 * people were checked with the copies), or the person's own, which must
 * be set, valid and not flagged as bounced. */
static composer_rc_t message_check_to(composer_job_t *job, const char *to)
{
	const composer_fields_t *f = &job->fields;
	const char *who = f->person_kind != NULL ? f->person_kind : "patient";
	long long id = LL(job->req.person_id);
	if (job->req.to_address != NULL) {
		if (!pp_mime_address_valid(to))
			return composer_refuse(job, "the address to send to (%s) is not valid", to);
		return COMPOSER_OK;
	}
	composer_rc_t rc = composer_check_address(job, who, id, to);
	if (rc == COMPOSER_OK && f->bounced_on != NULL)
		rc = composer_refuse_bounced(job, who, id, to, f->bounced_on, f->bounce_status);
	return rc;
}

/* message_unsubscribe - mail of a category with an opt-out type of its
 * own (pp_optout_kind: reminders, confirmations, recalls, welcome) gets a
 * token, stored on the row, and the List-Unsubscribe value
 * "<mailto:FROM?subject=unsubscribe%20TOKEN>" (owned); else NULL. */
static char *message_unsubscribe(composer_job_t *job)
{
	static const char keep[] = "-._~@";
	const char *kind = job->fields.optout_kind;
	const char *from = job->account.own_addr ? job->account.own_addr : job->account.from_addr;
	if (kind == NULL || strcmp(kind, "general") == 0)
		return NULL;
	if (pp_mime_token(job->msg.unsubscribe_token, sizeof(job->msg.unsubscribe_token),
	                  job->msg.id) != 0)
		fatalx("no randomness for an unsubscribe token");
	pp_buf_t b;
	pp_buf_init(&b);
	pp_buf_puts(&b, "<mailto:");
	for (const unsigned char *p = (const unsigned char *)from; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr(keep, *p) != NULL)
			pp_buf_append(&b, p, 1);
		else
			pp_buf_printf(&b, "%%%02X", *p);
	}
	pp_buf_printf(&b, "?subject=unsubscribe%%20%s>", job->msg.unsubscribe_token);
	pp_buf_append(&b, "", 1);
	return pp_buf_steal(&b);
}

/* message_email - the complete MIME message, Message-ID in the practice's
 * mail domain carrying the messages row id. */
static composer_rc_t message_email(composer_job_t *job)
{
	composer_message_t *m = &job->msg;
	const char *to = composer_to_address(job);
	char *text = NULL, *html = NULL, *unsubscribe = NULL;
	composer_rc_t rc;
	if ((rc = message_check_to(job, to)) != COMPOSER_OK ||
	    (rc = composer_ical_build(job)) != COMPOSER_OK ||
	    (rc = message_subject(job)) != COMPOSER_OK ||
	    (rc = message_parts(job, &text, &html)) != COMPOSER_OK ||
	    (rc = composer_recipients_check(job)) != COMPOSER_OK)
		goto done;
	if (pp_mime_message_id(m->message_id, sizeof(m->message_id), m->id,
	                       job->fields.mail_domain) != 0) {
		rc = composer_refuse(job, "practice %lld's mail domain is not valid",
		                     LL(job->req.practice_id));
		goto done;
	}
	unsubscribe = message_unsubscribe(job);
	if ((rc = message_mime(job, text, html, unsubscribe)) != COMPOSER_OK)
		goto done;
	m->from_addr = message_from(job->account.from_name, job->account.from_addr);
	m->to_addr = xstrdup(to);
done:
	free(text);
	free(html);
	free(unsubscribe);
	return rc;
}

static composer_rc_t message_sms(composer_job_t *job)
{
	composer_message_t *m = &job->msg;
	const char *to = job->fields.values[PP_FIELD_PATIENT_MOBILE];
	if (job->req.to_address != NULL)
		return composer_refuse(job, "an SMS goes to the patient's mobile number, not to an "
		                            "email address");
	if (to == NULL || *to == '\0')
		return composer_refuse(job, "patient %lld has no mobile number",
		                       LL(job->req.person_id));
	char e164[PP_PHONE_MAX];
	const char *why = NULL;
	if (pp_phone_e164(to, job->fields.country, e164, &why) != 0)
		return composer_refuse(job, "patient %lld's mobile number \"%.40s\" is invalid: %s",
		                       LL(job->req.person_id), to, why);
	composer_rc_t rc = message_body(job, 0, &m->body);
	if (rc != COMPOSER_OK)
		return rc;
	m->size = strlen(m->body);
	if (m->size == 0)
		return composer_refuse(job, "the SMS text is empty");
	pp_sms_text_kind_t kind;
	int units = 0;
	m->sms_segments = pp_sms_text_segments(m->body, &kind, &units);
	m->sms_unicode = kind == PP_SMS_TEXT_UNICODE;
	if (m->sms_segments < 0)
		return composer_refuse(job, "the SMS text holds control characters");
	if (m->sms_segments > job->fields.sms_max_segments)
		return composer_refuse(job,
		                       "the SMS text takes %d segments (%d %s), more than the "
		                       "practice's maximum of %d",
		                       m->sms_segments, units,
		                       m->sms_unicode ? "UCS-2 characters" : "GSM-7 characters",
		                       job->fields.sms_max_segments);
	m->from_addr = xstrdup(job->account.from_addr ? job->account.from_addr : "");
	m->to_addr = xstrdup(e164);
	m->subject = xstrdup("");
	return COMPOSER_OK;
}

composer_rc_t composer_message_build(composer_job_t *job)
{
	job->msg.channel = job->channel;
	return job->channel == COMPOSER_EMAIL ? message_email(job) : message_sms(job);
}
