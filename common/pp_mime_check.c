/*
 * pp_mime_check.c - the checks the MIME writer makes before it writes
 * anything (see pp_mime.h): addresses, Message-IDs and the optional
 * In-Reply-To / References / List-Unsubscribe values, file names, content
 * types, then the finished message on the wire rules; and the MIME type
 * table for file names. Owns every wording of "this header value is bad".
 */
#include <gmime/gmime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pp_merge.h"
#include "pp_mime.h"
#include "pp_mime_priv.h"

int pp_mime_domain_valid(const char *d, size_t len)
{
	size_t label = 0;
	if (len == 0 || len > 253 || d[0] == '.' || d[len - 1] == '.' || d[0] == '-')
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = d[i];
		if (c == '.') {
			if (label == 0 || d[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-'))
			return 0;
		if (label == 0 && c == '-')
			return 0;
		if (++label > 63)
			return 0;
	}
	return 1;
}

int pp_mime_address_valid(const char *addr)
{
	static const char atext_special[] = "!#$%&'*+-/=?^_`{|}~";
	if (addr == NULL)
		return 0;
	size_t len = strlen(addr);
	const char *at = strchr(addr, '@');
	if (len == 0 || len > PP_MIME_ADDR_MAX || at == NULL || at == addr ||
	    strchr(at + 1, '@') != NULL)
		return 0;
	size_t llen = (size_t)(at - addr);
	if (llen > 64 || addr[0] == '.' || addr[llen - 1] == '.')
		return 0;
	for (size_t i = 0; i < llen; i++) {
		char c = addr[i];
		if (c == '.') {
			if (addr[i + 1] == '.')
				return 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      (c != '\0' && strchr(atext_special, c) != NULL)))
			return 0;
	}
	return pp_mime_domain_valid(at + 1, len - llen - 1);
}

static int mime_check_address(const char *what, const pp_mime_address_t *a, char *err,
                              size_t errlen)
{
	char label[64];
	if (!pp_mime_address_valid(a->addr)) {
		snprintf(err, errlen, "%s address is not a valid email address", what);
		return -1;
	}
	snprintf(label, sizeof(label), "%s display name", what);
	return a->name ? pp_merge_check_text(label, a->name, 0, err, errlen) : 0;
}

int pp_mime_msgid_valid(const char *id, size_t len)
{
	if (id == NULL || len < 5 || len > PP_MIME_MSGID_MAX || id[0] != '<' || id[len - 1] != '>')
		return 0;
	const char *at = memchr(id, '@', len);
	if (at == NULL || at == id + 1 || at == id + len - 2 ||
	    memchr(at + 1, '@', len - (size_t)(at - id) - 1))
		return 0;
	for (size_t i = 1; i + 1 < len; i++)
		if (id[i] <= ' ' || id[i] >= 0x7F || id[i] == '<' || id[i] == '>')
			return 0;
	return 1;
}

/* mime_check_message_id - what ("Message-ID", "In-Reply-To") holds one
 * id of the form <left@right>. */
static int mime_check_message_id(const char *what, const char *id, char *err, size_t errlen)
{
	if (pp_mime_msgid_valid(id, id ? strlen(id) : 0))
		return 0;
	snprintf(err, errlen, "%s is not of the form <left@right>", what);
	return -1;
}

/* mime_check_references - one or more ids of the form <left@right>, one
 * space between two. */
static int mime_check_references(const char *refs, char *err, size_t errlen)
{
	size_t len = strlen(refs);
	const char *p = refs;
	if (len == 0 || len > PP_MIME_REFERENCES_MAX)
		goto bad;
	for (;;) {
		size_t n = strcspn(p, " ");
		if (!pp_mime_msgid_valid(p, n))
			goto bad;
		if (p[n] == '\0')
			return 0;
		p += n + 1;
	}
bad:
	snprintf(err, errlen, "References is not a list of <left@right> ids");
	return -1;
}

/* mime_check_list_unsubscribe - "<uri>" or "<uri>, <uri>": printable
 * ASCII, no white space or angle brackets inside a URI. */
static int mime_check_list_unsubscribe(const char *v, char *err, size_t errlen)
{
	size_t len = strlen(v);
	const char *p = v;
	if (len == 0 || len > PP_MIME_LINE_MAX - 32)
		goto bad;
	for (;;) {
		if (*p++ != '<')
			goto bad;
		size_t n = 0;
		while (p[n] > ' ' && p[n] < 0x7F && p[n] != '<' && p[n] != '>')
			n++;
		if (n == 0 || p[n] != '>')
			goto bad;
		p += n + 1;
		if (*p == '\0')
			return 0;
		if (strncmp(p, ", ", 2) != 0)
			goto bad;
		p += 2;
	}
bad:
	snprintf(err, errlen, "List-Unsubscribe is not a list of <URI>");
	return -1;
}

/* mime_check_optional - the optional headers, when given. */
static int mime_check_optional(const pp_mime_spec_t *s, char *err, size_t errlen)
{
	if (s->in_reply_to != NULL &&
	    mime_check_message_id("In-Reply-To", s->in_reply_to, err, errlen) != 0)
		return -1;
	if (s->references != NULL && mime_check_references(s->references, err, errlen) != 0)
		return -1;
	if (s->list_unsubscribe != NULL &&
	    mime_check_list_unsubscribe(s->list_unsubscribe, err, errlen) != 0)
		return -1;
	return 0;
}

int pp_mime_filename_valid(const char *name, char *err, size_t errlen)
{
	size_t len = name ? strlen(name) : 0;
	if (len == 0 || len > PP_MIME_FILENAME_MAX) {
		snprintf(err, errlen, "the file name is %s",
		         len ? "longer than 255 bytes" : "empty");
		return -1;
	}
	if (pp_merge_check_text("the file name", name, 0, err, errlen) != 0)
		return -1;
	if (strpbrk(name, "/\\") != NULL || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
		snprintf(err, errlen, "the file name must not be a path");
		return -1;
	}
	return 0;
}

/* mime_check_content_type - printable ASCII that GMime reads back as a
 * single-part type/subtype (parameters allowed). */
static int mime_check_content_type(const char *ct)
{
	for (const char *p = ct; *p; p++)
		if (*p < 0x20 || *p > 0x7E)
			return -1;
	GMimeContentType *t = g_mime_content_type_parse(NULL, ct);
	if (t == NULL)
		return -1;
	const char *type = g_mime_content_type_get_media_type(t);
	const char *sub = g_mime_content_type_get_media_subtype(t);
	int ok = strchr(ct, '/') != NULL && type && sub && *type && *sub &&
	         strcasecmp(type, "multipart") != 0 && strcasecmp(type, "message") != 0;
	g_object_unref(t);
	return ok ? 0 : -1;
}

static int mime_check_attachment(size_t n, const pp_mime_attachment_t *a, char *err, size_t errlen)
{
	char why[160];
	if (pp_mime_filename_valid(a->filename, why, sizeof(why)) != 0) {
		snprintf(err, errlen, "attachment %zu: %s", n, why);
		return -1;
	}
	if (a->content_type == NULL || mime_check_content_type(a->content_type) != 0) {
		snprintf(err, errlen, "attachment %zu: the content type is not a MIME type", n);
		return -1;
	}
	if (a->data == NULL && a->len > 0) {
		snprintf(err, errlen, "attachment %zu has no data", n);
		return -1;
	}
	return 0;
}

int pp_mime_check_spec(const pp_mime_spec_t *s, char *err, size_t errlen)
{
	char what[32];
	if (mime_check_address("from", &s->from, err, errlen) != 0)
		return -1;
	if (s->nto == 0) {
		snprintf(err, errlen, "the message has no To recipient");
		return -1;
	}
	for (size_t i = 0; i < s->nto; i++) {
		snprintf(what, sizeof(what), "to %zu", i + 1);
		if (mime_check_address(what, &s->to[i], err, errlen) != 0)
			return -1;
	}
	for (size_t i = 0; i < s->ncc; i++) {
		snprintf(what, sizeof(what), "cc %zu", i + 1);
		if (mime_check_address(what, &s->cc[i], err, errlen) != 0)
			return -1;
	}
	if (s->subject == NULL || pp_merge_check_text("subject", s->subject, 0, err, errlen) != 0) {
		if (s->subject == NULL)
			snprintf(err, errlen, "the message has no subject");
		return -1;
	}
	if (mime_check_message_id("Message-ID", s->message_id, err, errlen) != 0 ||
	    mime_check_optional(s, err, errlen) != 0)
		return -1;
	if (s->text == NULL && s->html == NULL) {
		snprintf(err, errlen, "the message has no body");
		return -1;
	}
	if ((s->text && !pp_merge_utf8_valid(s->text, strlen(s->text))) ||
	    (s->html && !pp_merge_utf8_valid(s->html, strlen(s->html)))) {
		snprintf(err, errlen, "the body is not valid UTF-8");
		return -1;
	}
	for (size_t i = 0; i < s->nattachments; i++)
		if (mime_check_attachment(i + 1, &s->attachments[i], err, errlen) != 0)
			return -1;
	return 0;
}

int pp_mime_check_wire(const char *msg, size_t len, char *err, size_t errlen)
{
	size_t line = 1, col = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)msg[i];
		if (c == '\r') {
			if (i + 1 >= len || msg[i + 1] != '\n') {
				snprintf(err, errlen, "line %zu has a bare CR", line);
				return -1;
			}
			i++;
			line++;
			col = 0;
			continue;
		}
		if (c == '\n') {
			snprintf(err, errlen, "line %zu ends with a bare LF", line);
			return -1;
		}
		if (c == 0 || c >= 0x80) {
			snprintf(err, errlen, "line %zu has a byte that is not 7-bit text", line);
			return -1;
		}
		if (++col > PP_MIME_LINE_MAX) {
			snprintf(err, errlen, "line %zu is longer than %d octets", line,
			         PP_MIME_LINE_MAX);
			return -1;
		}
	}
	return 0;
}

const char *pp_mime_type_for_name(const char *name)
{
	static const struct {
		const char *ext, *type;
	} types[] = {
	    {"pdf", "application/pdf"},
	    {"jpg", "image/jpeg"},
	    {"jpeg", "image/jpeg"},
	    {"png", "image/png"},
	    {"gif", "image/gif"},
	    {"webp", "image/webp"},
	    {"tif", "image/tiff"},
	    {"tiff", "image/tiff"},
	    {"bmp", "image/bmp"},
	    {"svg", "image/svg+xml"},
	    {"dcm", "application/dicom"},
	    {"txt", "text/plain"},
	    {"csv", "text/csv"},
	    {"htm", "text/html"},
	    {"html", "text/html"},
	    {"ics", "text/calendar"},
	    {"vcf", "text/vcard"},
	    {"rtf", "application/rtf"},
	    {"xml", "application/xml"},
	    {"json", "application/json"},
	    {"zip", "application/zip"},
	    {"doc", "application/msword"},
	    {"docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
	    {"xls", "application/vnd.ms-excel"},
	    {"xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
	    {"odt", "application/vnd.oasis.opendocument.text"},
	    {"ods", "application/vnd.oasis.opendocument.spreadsheet"},
	};
	const char *dot = name ? strrchr(name, '.') : NULL;
	if (dot != NULL && dot != name)
		for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
			if (strcasecmp(dot + 1, types[i].ext) == 0)
				return types[i].type;
	return "application/octet-stream";
}
