/*
 * composer_reply.c - replies to and forwards of incoming messages. The
 * original must be an incoming message of the request's practice, filed
 * to the request's person (the one whose confidentiality rules apply). A
 * reply is "Re: <subject>" with In-Reply-To and References (the
 * original's, then its id, the last COMPOSER_REFS_MAX), and quotes the
 * original ("On <date>, <from> wrote:" and "> " lines) unless the request
 * says not to; a forward is "Fwd: <subject>" with References (the
 * original's id), a "Forwarded message" block and the original's
 * attachments. Nothing of the original is merged: its text is appended
 * after the operator's merged text and the signature, as it is. Owns the
 * original's rows and the texts made from them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "composer.h"
#include "pp_merge.h"
#include "pp_util.h"

#define COMPOSER_REFS_MAX 20 /* ids kept in a reply's References */

enum {
	O_DIRECTION,
	O_PRACTICE,
	O_PERSON,
	O_FROM,
	O_TO,
	O_SUBJECT,
	O_TEXT,
	O_HTML,
	O_MSGID,
	O_REFS,
	O_DATE
};

static const char original_sql[] =
    "SELECT m.direction::text, m.practice_id, m.person_id, m.from_addr, m.to_addr, m.subject, "
    "m.body_text, m.body_html_safe, m.message_id_header, m.references_header, "
    "to_char(coalesce(m.received_at, m.created_at) AT TIME ZONE pr.time_zone, "
    "'Dy, FMDD Mon YYYY \"at\" HH24:MI') "
    "FROM messages m JOIN practices pr ON pr.id = m.practice_id WHERE m.id = $1";

/* The original's attachments, but not the exact copy of a raw message
 * that was not UTF-8 (original.eml, kept by the fetcher). Parameters are
 * dropped (but a text type's charset) and a type the MIME writer would
 * not take as a plain part becomes application/octet-stream. */
static const char files_sql[] =
    "SELECT a.id, a.filename, t.type || CASE WHEN t.type LIKE 'text/%' AND t.cs IS NOT NULL "
    "THEN '; charset=' || t.cs ELSE '' END, pp_attachment_data(a) "
    "FROM attachments a "
    "CROSS JOIN LATERAL (SELECT lower(btrim(split_part(a.content_type, ';', 1))) AS raw) r "
    "CROSS JOIN LATERAL (SELECT CASE WHEN r.raw ~ "
    "'^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$' "
    "AND r.raw !~ '^(multipart|message)/' THEN r.raw ELSE 'application/octet-stream' END "
    "AS type, substring(a.content_type FROM '(?i)charset=\"?([a-z0-9._:-]{1,40})') AS cs) t "
    "WHERE a.message_id = $1 AND NOT (a.part_path IS NULL AND a.filename = 'original.eml' "
    "AND a.content_type = 'message/rfc822') ORDER BY a.id";

static const char *orig(const composer_job_t *job, int col)
{
	return pp_db_value(job->reply.res, 0, col);
}

/* reply_line - text on one line: control characters become spaces, and
 * leading and trailing spaces go. Owned. */
static char *reply_line(const char *text)
{
	char *out = xstrdup(text ? text : "");
	for (char *p = out; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7F)
			*p = ' ';
	char *start = out + strspn(out, " ");
	size_t n = strlen(start);
	while (n > 0 && start[n - 1] == ' ')
		n--;
	memmove(out, start, n);
	out[n] = '\0';
	return out;
}

/* reply_has_prefix - s starts with prefix (case-insensitive); the length
 * of it and the spaces after it, else 0. */
static size_t reply_has_prefix(const char *s, const char *prefix)
{
	size_t n = strlen(prefix);
	if (strncasecmp(s, prefix, n) != 0)
		return 0;
	return n + strspn(s + n, " ");
}

/* reply_subject - "Re: " / "Fwd: " and the original's subject without
 * the prefixes of that kind it already has (never "Re: Re:"). */
static char *reply_subject(const char *original, composer_kind_t kind)
{
	char *line = reply_line(original);
	const char *s = line;
	for (size_t n = 1; n > 0; s += n) {
		n = kind == COMPOSER_REPLY ? reply_has_prefix(s, "re:")
		                           : reply_has_prefix(s, "fwd:");
		if (n == 0 && kind == COMPOSER_FORWARD)
			n = reply_has_prefix(s, "fw:");
	}
	char *subject =
	    xasprintf("%s %s", kind == COMPOSER_REPLY ? "Re:" : "Fwd:", *s ? s : "(no subject)");
	free(line);
	return subject;
}

/* reply_text - the original's text: its text part, else the reading of
 * its sanitised HTML. Owned. */
static char *reply_text(const composer_job_t *job)
{
	if (orig(job, O_TEXT) != NULL)
		return xstrdup(orig(job, O_TEXT));
	if (orig(job, O_HTML) != NULL)
		return pp_merge_html_to_text(orig(job, O_HTML));
	return xstrdup("");
}

/* reply_append_lines - text line by line (CRLF or LF, trailing empty
 * lines dropped); quoted: each after "> ", or only ">" when it is empty or
 * quoted already. */
static void reply_append_lines(pp_buf_t *b, const char *text, int quote)
{
	size_t len = strlen(text);
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
		len--;
	for (size_t pos = 0; pos < len;) {
		size_t n = 0;
		while (pos + n < len && text[pos + n] != '\n')
			n++;
		size_t shown = n > 0 && text[pos + n - 1] == '\r' ? n - 1 : n;
		if (quote)
			pp_buf_puts(b, shown == 0 || text[pos] == '>' ? ">" : "> ");
		pp_buf_append(b, text + pos, shown);
		pp_buf_puts(b, "\n");
		pos += n + 1;
	}
}

/* reply_quote - the text after the operator's: the quoted original of a
 * reply, the forwarded block of a forward. Owned. */
static char *reply_quote(const composer_job_t *job)
{
	pp_buf_t b;
	char *text = reply_text(job);
	char *from = reply_line(orig(job, O_FROM));
	pp_buf_init(&b);
	if (job->reply.kind == COMPOSER_REPLY) {
		pp_buf_printf(&b, "On %s, %s wrote:\n", orig(job, O_DATE),
		              *from ? from : "(unknown)");
		reply_append_lines(&b, text, 1);
	} else {
		char *subject = reply_line(orig(job, O_SUBJECT));
		char *to = reply_line(orig(job, O_TO));
		pp_buf_printf(&b,
		              "---------- Forwarded message ----------\nFrom: %s\nDate: %s\n"
		              "Subject: %s\nTo: %s\n\n",
		              from, orig(job, O_DATE), subject, to);
		reply_append_lines(&b, text, 0);
		free(subject);
		free(to);
	}
	pp_buf_append(&b, "", 1);
	free(from);
	free(text);
	return pp_buf_steal(&b);
}

/* reply_references - a reply's: the original's References (the ids that
 * are of the form <left@right>), then its Message-ID, the last
 * COMPOSER_REFS_MAX; a forward's: the original's id. NULL if none. */
static char *reply_references(const composer_job_t *job, const char *id)
{
	static const char space[] = " \t\r\n";
	const char *refs = job->reply.kind == COMPOSER_REPLY ? orig(job, O_REFS) : NULL;
	const char *keep[COMPOSER_REFS_MAX];
	size_t lens[COMPOSER_REFS_MAX], n = 0;
	size_t max = id != NULL ? COMPOSER_REFS_MAX - 1 : COMPOSER_REFS_MAX;
	size_t idlen = id != NULL ? strlen(id) : 0;
	for (const char *p = refs ? refs : ""; *(p += strspn(p, space)) != '\0';) {
		size_t len = strcspn(p, space);
		if (pp_mime_msgid_valid(p, len) && !(len == idlen && strncmp(p, id, len) == 0)) {
			if (n == max) { /* keep the newest */
				memmove(keep, keep + 1, (n - 1) * sizeof(keep[0]));
				memmove(lens, lens + 1, (n - 1) * sizeof(lens[0]));
				n--;
			}
			keep[n] = p;
			lens[n++] = len;
		}
		p += len;
	}
	if (n == 0 && id == NULL)
		return NULL;
	pp_buf_t b;
	pp_buf_init(&b);
	for (size_t i = 0; i < n; i++) {
		pp_buf_append(&b, keep[i], lens[i]);
		pp_buf_puts(&b, " ");
	}
	if (id != NULL)
		pp_buf_puts(&b, id);
	else
		b.len--; /* the last space */
	pp_buf_append(&b, "", 1);
	return pp_buf_steal(&b);
}

/* reply_check - the original may be answered or forwarded by this
 * request. */
static composer_rc_t reply_check(composer_job_t *job, const char *id)
{
	const composer_request_t *r = &job->req;
	if (PQntuples(job->reply.res) != 1)
		return composer_refuse(job, "message %s does not exist", id);
	if (strcmp(orig(job, O_DIRECTION), "in") != 0)
		return composer_refuse(job,
		                       "message %s is not an incoming message: only incoming "
		                       "mail is replied to or forwarded",
		                       id);
	if (pp_db_value_ll(job->reply.res, 0, O_PRACTICE, 0) != r->practice_id)
		return composer_refuse(job, "message %s belongs to practice %s, not %lld", id,
		                       orig(job, O_PRACTICE), LL(r->practice_id));
	if (orig(job, O_PERSON) == NULL)
		return composer_refuse(job,
		                       "message %s is not filed; file the message first: "
		                       "practicepost inbox file %s --patient ID",
		                       id, id);
	if (pp_db_value_ll(job->reply.res, 0, O_PERSON, 0) != r->person_id)
		return composer_refuse(job, "message %s is filed to person %s, not to person %lld",
		                       id, orig(job, O_PERSON), LL(r->person_id));
	if (job->channel != COMPOSER_EMAIL)
		return composer_refuse(job, "a reply or forward is an email");
	return COMPOSER_OK;
}

/* reply_file_name - the attachment's name, or "attachment-N" when it could
 * not be a file name of ours. Owned. */
static char *reply_file_name(const char *name, size_t n)
{
	char err[128];
	if (pp_mime_filename_valid(name, err, sizeof(err)) == 0)
		return xstrdup(name);
	return xasprintf("attachment-%zu", n);
}

/* reply_files - a forward carries the original's attachments (bytes as
 * they are), refused when they alone pass the account's size limit. */
static composer_rc_t reply_files(pp_db_t *db, composer_job_t *job, const char *id)
{
	composer_reply_t *rp = &job->reply;
	rp->files_res = pp_db_exec(db, files_sql, PP_DB_ARGS(id));
	if (rp->files_res == NULL)
		return COMPOSER_DB_ERROR;
	int n = PQntuples(rp->files_res);
	int64_t bytes = 0;
	rp->files = xcalloc((size_t)n + 1, sizeof(*rp->files));
	rp->file_ids = xcalloc((size_t)n + 1, sizeof(*rp->file_ids));
	rp->names = xcalloc((size_t)n + 1, sizeof(*rp->names));
	for (int i = 0; i < n; i++) {
		size_t len = 0;
		unsigned char *data =
		    PQunescapeBytea((const unsigned char *)pp_db_value(rp->files_res, i, 3), &len);
		if (data == NULL)
			return COMPOSER_DB_ERROR;
		size_t k = rp->nfiles++;
		rp->file_ids[k] = pp_db_value(rp->files_res, i, 0);
		rp->names[k] = reply_file_name(pp_db_value(rp->files_res, i, 1), k + 1);
		rp->files[k] = (pp_mime_attachment_t){rp->names[k],
		                                      pp_db_value(rp->files_res, i, 2), data, len};
		bytes += (int64_t)len;
	}
	if (job->account.max_bytes > 0 && bytes > job->account.max_bytes)
		return composer_refuse(job,
		                       "the attachments of message %s are %lld bytes, more than "
		                       "email account %s allows for a whole message (%lld)",
		                       id, LL(bytes), job->account.id, LL(job->account.max_bytes));
	return COMPOSER_OK;
}

composer_rc_t composer_reply_load(pp_db_t *db, composer_job_t *job)
{
	composer_reply_t *rp = &job->reply;
	const composer_request_t *r = &job->req;
	const char *id = r->reply_to ? r->reply_to : r->forward_of;
	if (id == NULL)
		return COMPOSER_OK;
	rp->kind = r->reply_to ? COMPOSER_REPLY : COMPOSER_FORWARD;
	rp->res = pp_db_exec(db, original_sql, PP_DB_ARGS(id));
	if (rp->res == NULL)
		return COMPOSER_DB_ERROR;
	composer_rc_t rc = reply_check(job, id);
	if (rc != COMPOSER_OK)
		return rc;
	const char *msgid = orig(job, O_MSGID);
	if (msgid != NULL && !pp_mime_msgid_valid(msgid, strlen(msgid)))
		msgid = NULL;
	rp->subject = reply_subject(orig(job, O_SUBJECT), rp->kind);
	rp->in_reply_to = rp->kind == COMPOSER_REPLY ? msgid : NULL;
	rp->references = reply_references(job, msgid);
	if (rp->kind == COMPOSER_FORWARD || r->quote)
		rp->quote = reply_quote(job);
	return rp->kind == COMPOSER_FORWARD ? reply_files(db, job, id) : COMPOSER_OK;
}

composer_rc_t composer_reply_store(pp_db_t *db, composer_job_t *job)
{
	const composer_reply_t *rp = &job->reply;
	char msg[PP_LL_LEN];
	pp_lltoa(msg, job->msg.id);
	for (size_t i = 0; i < rp->nfiles; i++) {
		if (pp_db_command(
		        db,
		        "INSERT INTO attachments (message_id, filename, content_type, data) "
		        "SELECT $1, $2, $3, pp_attachment_data(a) FROM attachments a WHERE id = $4",
		        PP_DB_ARGS(msg, rp->files[i].filename, rp->files[i].content_type,
		                   rp->file_ids[i])) != 0)
			return COMPOSER_DB_ERROR;
	}
	return COMPOSER_OK;
}

void composer_reply_free(composer_reply_t *rp)
{
	for (size_t i = 0; i < rp->nfiles; i++) {
		PQfreemem((void *)rp->files[i].data);
		free(rp->names[i]);
	}
	free(rp->names);
	free(rp->files);
	free(rp->file_ids);
	free(rp->subject);
	free(rp->quote);
	free(rp->references);
	PQclear(rp->files_res);
	PQclear(rp->res);
	memset(rp, 0, sizeof(*rp));
}
