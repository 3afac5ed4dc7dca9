/*
 * fetcher_parts.c - walks every MIME part of a parsed message (GMime 3):
 * the first inline text/plain part becomes body_text, the first inline
 * text/html part body_html (and its sanitised copy body_html_safe, made by
 * pp_html), and every other leaf part, or embedded message, becomes an
 * attachment with its decoded bytes, type, file name and SHA-256.
 *
 * Hostile structure is bounded, never fatal: past FETCHER_MAX_PARTS parts
 * or FETCHER_MAX_DEPTH levels the walk stops and parse_error says so; the
 * raw message, stored beside the parts, still holds everything.
 */
#include <ctype.h>
#include <gmime/gmime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fetcher.h"
#include "pp_html.h"

#define PARTS_FILENAME_MAX 200

typedef struct {
	fetcher_parsed_t *out;
	const char *raw; /* the message GMime parsed (a stream it keeps) */
	size_t raw_len;
	size_t cap;   /* room in out->attachments */
	int nparts;   /* parts seen */
	int too_many; /* stopped at FETCHER_MAX_PARTS */
	int too_deep; /* a branch deeper than FETCHER_MAX_DEPTH was cut */
} parts_walk_t;

/* parts_mime_type - "type/subtype" in lower case (owned). */
static char *parts_mime_type(GMimeObject *obj)
{
	GMimeContentType *ct = g_mime_object_get_content_type(obj);
	char *t = ct ? g_mime_content_type_get_mime_type(ct) : NULL;
	char *s = fetcher_utf8_clean(t ? t : "application/octet-stream",
	                             strlen(t ? t : "application/octet-stream"), 1, NULL);
	g_free(t);
	for (char *p = s; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return s;
}

/* parts_filename - the part's file name made safe to show and to save:
 * valid UTF-8, no control characters or path separators, bounded; a name
 * from the part's path and type when it has none. Owned. */
static char *parts_filename(GMimeObject *obj, const char *path, const char *type)
{
	const char *name = GMIME_IS_PART(obj) ? g_mime_part_get_filename(GMIME_PART(obj)) : NULL;
	if (name != NULL && *name) {
		char *s = fetcher_utf8_clean(name, strlen(name), 1, NULL);
		for (char *p = s; *p; p++)
			if (*p == '/' || *p == '\\')
				*p = '_';
		if (strlen(s) > PARTS_FILENAME_MAX) {
			/* cut at a character boundary */
			size_t n = PARTS_FILENAME_MAX;
			while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
				n--;
			s[n] = '\0';
		}
		if (*s && strcmp(s, ".") != 0 && strcmp(s, "..") != 0)
			return s;
		free(s);
	}
	const char *ext = "bin";
	if (strcmp(type, "message/rfc822") == 0)
		ext = "eml";
	else if (strncmp(type, "text/", 5) == 0)
		ext = strcmp(type, "text/html") == 0 ? "html" : "txt";
	else if (strncmp(type, "image/", 6) == 0 && strlen(type + 6) <= 8)
		ext = type + 6;
	return xasprintf("part-%s.%s", path, ext);
}

GByteArray *fetcher_part_bytes(GMimeObject *obj, GMimeStream *mem)
{
	if (GMIME_IS_PART(obj)) {
		GMimeDataWrapper *w = g_mime_part_get_content(GMIME_PART(obj));
		if (w != NULL)
			g_mime_data_wrapper_write_to_stream(w, mem);
	} else if (GMIME_IS_MESSAGE_PART(obj)) {
		GMimeMessage *m = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
		if (m != NULL)
			g_mime_object_write_to_stream(GMIME_OBJECT(m), NULL, mem);
	}
	return g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
}

/* parts_base64_plain - text PostgreSQL's decode(, 'base64') reads as
 * GMime did: only the alphabet and line breaks or spaces, whole groups of
 * four, '=' only as the last one or two, and as many bytes as GMime
 * decoded. */
static int parts_base64_plain(const unsigned char *s, size_t n, size_t decoded)
{
	/* 1: the alphabet, 2: white space, 0: anything else ('=' apart) */
	static const unsigned char cls[256] = {
	    ['A' ... 'Z'] = 1, ['a' ... 'z'] = 1, ['0' ... '9'] = 1, ['+'] = 1,  ['/'] = 1,
	    [' '] = 2,         ['\t'] = 2,        ['\r'] = 2,        ['\n'] = 2,
	};
	size_t chars = 0, pad = 0, i = 0;
	for (; i < n && s[i] != '='; i++) {
		unsigned char k = cls[s[i]];
		if (k == 0)
			return 0;
		chars += k == 1;
	}
	for (; i < n; i++) {
		if (s[i] == '=')
			pad++;
		else if (cls[s[i]] != 2)
			return 0; /* only '=' and white space after the first '=' */
	}
	chars += pad;
	return chars % 4 == 0 && pad <= 2 && chars / 4 * 3 - pad == decoded;
}

/* parts_locate - where a leaf's content lies in the raw message, when the
 * database can decode it from there to exactly data: base64 that reads
 * the same to both decoders, or content stored as it is. */
static void parts_locate(const parts_walk_t *w, GMimeObject *obj, fetcher_attachment_t *a,
                         const unsigned char *data)
{
	a->raw_offset = a->raw_length = -1;
	a->raw_encoding = NULL;
	if (!GMIME_IS_PART(obj))
		return; /* an embedded message is written out anew by GMime */
	GMimeDataWrapper *wrapper = g_mime_part_get_content(GMIME_PART(obj));
	GMimeStream *s = wrapper ? g_mime_data_wrapper_get_stream(wrapper) : NULL;
	if (s == NULL || s->super_stream == NULL || s->super_stream->super_stream != NULL ||
	    s->bound_start < 0 || s->bound_end < s->bound_start ||
	    (guint64)s->bound_end > w->raw_len)
		return;
	const unsigned char *at = (const unsigned char *)w->raw + s->bound_start;
	size_t n = (size_t)(s->bound_end - s->bound_start);
	switch (g_mime_data_wrapper_get_encoding(wrapper)) {
	case GMIME_CONTENT_ENCODING_BASE64:
		if (!parts_base64_plain(at, n, a->len))
			return;
		a->raw_encoding = "base64";
		break;
	case GMIME_CONTENT_ENCODING_DEFAULT:
	case GMIME_CONTENT_ENCODING_7BIT:
	case GMIME_CONTENT_ENCODING_8BIT:
	case GMIME_CONTENT_ENCODING_BINARY:
		if (n != a->len || memcmp(at, data, n) != 0)
			return;
		a->raw_encoding = "identity";
		break;
	default:
		return;
	}
	a->raw_offset = s->bound_start;
	a->raw_length = (int64_t)n;
}

static void parts_add_attachment(parts_walk_t *w, GMimeObject *obj, const char *path, char *type)
{
	fetcher_parsed_t *out = w->out;
	if (out->nattachments == w->cap) {
		w->cap = w->cap ? w->cap * 2 : 4;
		out->attachments = xrealloc(out->attachments, w->cap * sizeof(*out->attachments));
	}
	fetcher_attachment_t *a = &out->attachments[out->nattachments++];
	memset(a, 0, sizeof(*a));
	a->content_type = type;
	a->filename = parts_filename(obj, path, type);
	a->part_path = xstrdup(path);
	const char *cid = GMIME_IS_PART(obj) ? g_mime_part_get_content_id(GMIME_PART(obj)) : NULL;
	if (cid != NULL && *cid)
		a->content_id = fetcher_utf8_clean(cid, strlen(cid), 1, NULL);
	GMimeStream *mem = g_mime_stream_mem_new();
	GByteArray *bytes = fetcher_part_bytes(obj, mem);
	const unsigned char *data = bytes && bytes->len ? bytes->data : (const unsigned char *)"";
	a->len = bytes ? bytes->len : 0;
	pp_sha256_hex(data, a->len, a->sha256);
	parts_locate(w, obj, a, data);
	/* read from the raw message where body keeps it exactly: no copy */
	if (a->raw_encoding == NULL || w->out->body_lossy) {
		a->data = xmalloc(a->len + 1);
		memcpy(a->data, data, a->len);
	}
	g_object_unref(mem);
}

/* parts_text - the decoded text of a text part as valid UTF-8 (owned).
 * A part that says it is UTF-8 and is: its decoded bytes as they are (the
 * same text GMime's conversion gives, without an iconv pass over it). */
static char *parts_text(GMimeObject *obj)
{
	const char *cs = g_mime_object_get_content_type_parameter(obj, "charset");
	if (cs != NULL &&
	    (g_ascii_strcasecmp(cs, "utf-8") == 0 || g_ascii_strcasecmp(cs, "utf8") == 0)) {
		GMimeStream *mem = g_mime_stream_mem_new();
		GByteArray *bytes = fetcher_part_bytes(obj, mem);
		int changed = 0;
		size_t len = bytes ? bytes->len : 0;
		char *s =
		    fetcher_utf8_clean(len ? (const char *)bytes->data : "", len, 0, &changed);
		g_object_unref(mem);
		if (!changed && strlen(s) == len)
			return s;
		free(s); /* not UTF-8 after all (or a NUL): GMime's conversion decides */
	}
	char *t = g_mime_text_part_get_text(GMIME_TEXT_PART(obj));
	char *s = fetcher_utf8_clean(t ? t : "", t ? strlen(t) : 0, 0, NULL);
	g_free(t);
	return s;
}

/* parts_leaf - one leaf: a body if it is the first inline text of its
 * kind, else an attachment. */
static void parts_leaf(parts_walk_t *w, GMimeObject *obj, const char *path)
{
	char *type = parts_mime_type(obj);
	GMimeContentDisposition *disp = g_mime_object_get_content_disposition(obj);
	int attachment = disp != NULL && g_mime_content_disposition_is_attachment(disp);
	if (!attachment && GMIME_IS_TEXT_PART(obj)) {
		if (strcmp(type, "text/plain") == 0 && w->out->body_text == NULL) {
			w->out->body_text = parts_text(obj);
			free(type);
			return;
		}
		if (strcmp(type, "text/html") == 0 && w->out->body_html == NULL) {
			w->out->body_html = parts_text(obj);
			free(type);
			return;
		}
	}
	parts_add_attachment(w, obj, path, type); /* takes type */
}

static void parts_walk(parts_walk_t *w, GMimeObject *obj, const char *path, int depth)
{
	if (w->nparts >= FETCHER_MAX_PARTS) {
		w->too_many = 1;
		return;
	}
	w->nparts++;
	if (depth > FETCHER_MAX_DEPTH) {
		w->too_deep = 1;
		return;
	}
	if (GMIME_IS_MULTIPART(obj)) {
		int n = g_mime_multipart_get_count(GMIME_MULTIPART(obj));
		for (int i = 0; i < n && !w->too_many; i++) {
			char child[64];
			if (strlen(path) + 12 >= sizeof(child)) {
				w->too_deep = 1;
				return;
			}
			snprintf(child, sizeof(child), "%s%s%d", path, *path ? "." : "", i + 1);
			parts_walk(w, g_mime_multipart_get_part(GMIME_MULTIPART(obj), i), child,
			           depth + 1);
		}
		return;
	}
	if (GMIME_IS_PART(obj) || GMIME_IS_MESSAGE_PART(obj))
		parts_leaf(w, obj, *path ? path : "1");
}

void fetcher_parts_read(GMimeMessage *msg, const char *raw, size_t len, fetcher_parsed_t *out)
{
	parts_walk_t w;
	memset(&w, 0, sizeof(w));
	w.out = out;
	w.raw = raw;
	w.raw_len = len;
	GMimeObject *root = g_mime_message_get_mime_part(msg);
	if (root != NULL)
		parts_walk(&w, root, "", 0);
	if (out->body_html != NULL) {
		pp_html_report_t report;
		out->body_html_safe =
		    pp_html_sanitize(out->body_html, strlen(out->body_html), &report);
		if (out->body_text == NULL)
			out->body_text = pp_html_to_text(out->body_html, strlen(out->body_html));
	}
	if (w.too_many)
		fetcher_parse_error(out,
		                    "the message has more than %d MIME parts; only the first "
		                    "%d were read (the raw message is kept whole)",
		                    FETCHER_MAX_PARTS, FETCHER_MAX_PARTS);
	else if (w.too_deep)
		fetcher_parse_error(out,
		                    "MIME parts nested deeper than %d levels were not read "
		                    "(the raw message is kept whole)",
		                    FETCHER_MAX_DEPTH);
}
