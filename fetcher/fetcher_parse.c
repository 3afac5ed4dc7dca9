/*
 * fetcher_parse.c - reads what filing and the inbox need from a downloaded
 * message with GMime 3: sender address, To, Cc, Subject, Date, Message-ID,
 * the ids it answers (In-Reply-To, References), the content hash and the
 * de-duplication key; then its parts (fetcher_parts.c) and its kind
 * (fetcher_classify.c). Malformed input never fails: the parser's
 * complaints become the message's parse_error, and every text handed to
 * the database is made valid UTF-8 here.
 */
#include <gmime/gmime.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fetcher.h"
#include "pp_log.h"

#define PARSE_MAX_REFS 64
/* Dates outside [1970, 9999] are treated as absent. */
#define PARSE_MAX_UNIX 253402300799LL

void fetcher_parse_init(void)
{
	g_mime_init();
}

void fetcher_parse_shutdown(void)
{
	g_mime_shutdown();
}

/* utf8_seq_len - length of the valid UTF-8 sequence at s (Unicode table
 * 3-7: no overlongs, surrogates or code points above U+10FFFF), 0 if none. */
static size_t utf8_seq_len(const unsigned char *s, size_t left)
{
	unsigned char c = s[0];
	size_t n;
	unsigned char lo = 0x80, hi = 0xbf;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		if (c == 0xe0)
			lo = 0xa0;
		if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		if (c == 0xf0)
			lo = 0x90;
		if (c == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if (left < n || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

char *fetcher_utf8_clean(const char *s, size_t len, int header, int *changed)
{
	static const char replacement[] = "\xef\xbf\xbd";
	const unsigned char *p = (const unsigned char *)s;
	pp_buf_t b;
	size_t i = 0, run = 0; /* [run, i) is valid and not yet copied */
	int diff = 0;
	pp_buf_init(&b);
	while (i < len) {
		/* outside headers, runs of ASCII without NUL pass eight at a time */
		while (!header && len - i >= 8) {
			uint64_t v;
			memcpy(&v, p + i, 8);
			if (((v - 0x0101010101010101ULL) | v) & 0x8080808080808080ULL)
				break;
			i += 8;
		}
		if (i >= len)
			break;
		size_t n = p[i] == 0 ? 0 : utf8_seq_len(p + i, len - i);
		int control = header && n == 1 && (p[i] < 0x20 || p[i] == 0x7f);
		if (n > 0 && !control) {
			i += n;
			continue;
		}
		pp_buf_append(&b, p + run, i - run);
		if (control) {
			pp_buf_append(&b, " ", 1);
		} else {
			pp_buf_append(&b, replacement, 3);
			diff = 1;
		}
		run = ++i;
	}
	pp_buf_append(&b, p + run, i - run);
	if (changed)
		*changed = diff;
	return pp_buf_steal(&b);
}

static char *parse_header_text(const char *s)
{
	if (s == NULL)
		return xstrdup("");
	char *t = fetcher_utf8_clean(s, strlen(s), 1, NULL);
	/* trim the spaces that folding and cleaning leave at the ends */
	size_t n = strlen(t), start = 0;
	while (n > 0 && t[n - 1] == ' ')
		t[--n] = '\0';
	while (t[start] == ' ')
		start++;
	memmove(t, t + start, n - start + 1);
	return t;
}

static const char *parse_warning_name(GMimeParserWarning code)
{
	static const char *const names[] = {
	    "?",
	    "duplicated_header",
	    "duplicated_parameter",
	    "unencoded_8bit_header",
	    "invalid_content_type",
	    "invalid_rfc2047_header_value",
	    "malformed_multipart",
	    "truncated_message",
	    "malformed_message",
	    "invalid_header_name",
	    "conflicting_header",
	    "conflicting_parameter",
	    "multipart_without_boundary",
	    "invalid_parameter",
	    "invalid_address_list",
	    "nesting_overflow",
	    "part_without_content",
	    "part_without_headers_or_content",
	};
	unsigned i = (unsigned)code;
	return i < sizeof(names) / sizeof(names[0]) ? names[i] : "unknown";
}

static void parse_on_warning(gint64 offset, GMimeParserWarning code, const gchar *item,
                             gpointer user)
{
	fetcher_parsed_t *out = user;
	(void)item; /* may hold message text: never logged */
	if (out->warnings++ == 0)
		snprintf(out->first_warning, sizeof(out->first_warning), "%s@%lld",
		         parse_warning_name(code), (long long)offset);
}

/* parse_first_mailbox - the first mailbox address in list, groups included. */
static const char *parse_first_mailbox(InternetAddressList *list)
{
	int n = list ? internet_address_list_length(list) : 0;
	for (int i = 0; i < n; i++) {
		InternetAddress *a = internet_address_list_get_address(list, i);
		if (INTERNET_ADDRESS_IS_MAILBOX(a))
			return internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(a));
		if (INTERNET_ADDRESS_IS_GROUP(a)) {
			const char *m = parse_first_mailbox(
			    internet_address_group_get_members(INTERNET_ADDRESS_GROUP(a)));
			if (m != NULL)
				return m;
		}
	}
	return NULL;
}

static char *parse_address_list(InternetAddressList *list)
{
	if (list == NULL || internet_address_list_length(list) == 0)
		return xstrdup("");
	char *s = internet_address_list_to_string(list, NULL, FALSE);
	char *t = parse_header_text(s);
	g_free(s);
	return t;
}

/* parse_add_refs - append the Message-IDs of one header (newest first if
 * reverse) to out->refs. */
static void parse_add_refs(GMimeMessage *msg, GMimeParserOptions *opts, const char *header,
                           int reverse, fetcher_parsed_t *out)
{
	const char *value = g_mime_object_get_header(GMIME_OBJECT(msg), header);
	if (value == NULL)
		return;
	GMimeReferences *refs = g_mime_references_parse(opts, value);
	if (refs == NULL)
		return;
	int n = g_mime_references_length(refs);
	for (int i = 0; i < n && out->nrefs < PARSE_MAX_REFS; i++) {
		const char *id = g_mime_references_get_message_id(refs, reverse ? n - 1 - i : i);
		if (id == NULL || *id == '\0')
			continue;
		out->refs = xrealloc(out->refs, (out->nrefs + 1) * sizeof(char *));
		out->refs[out->nrefs++] = parse_header_text(id);
	}
	g_mime_references_free(refs);
}

/* parse_references_header - References (In-Reply-To when it has none) as
 * "<id> <id>", oldest first, as a reply's References continue them; NULL
 * when there is neither. */
static char *parse_references_header(GMimeMessage *msg, GMimeParserOptions *opts)
{
	const char *value = g_mime_object_get_header(GMIME_OBJECT(msg), "References");
	if (value == NULL)
		value = g_mime_object_get_header(GMIME_OBJECT(msg), "In-Reply-To");
	GMimeReferences *refs = value ? g_mime_references_parse(opts, value) : NULL;
	if (refs == NULL)
		return NULL;
	pp_buf_t b;
	pp_buf_init(&b);
	int n = g_mime_references_length(refs);
	/* the newest PARSE_MAX_REFS, in order */
	for (int i = n > PARSE_MAX_REFS ? n - PARSE_MAX_REFS : 0; i < n; i++) {
		const char *id = g_mime_references_get_message_id(refs, i);
		if (id == NULL || *id == '\0' || strpbrk(id, "<> ") != NULL)
			continue;
		char *clean = parse_header_text(id);
		pp_buf_printf(&b, "%s<%s>", b.len ? " " : "", clean);
		free(clean);
	}
	g_mime_references_free(refs);
	if (b.len == 0) {
		pp_buf_free(&b);
		return NULL;
	}
	return pp_buf_steal(&b);
}

static void parse_fields(GMimeMessage *msg, GMimeParserOptions *opts, fetcher_parsed_t *out)
{
	const char *from = parse_first_mailbox(g_mime_message_get_from(msg));
	out->from_addr = parse_header_text(from);
	out->to_addr = parse_address_list(g_mime_message_get_to(msg));
	out->cc_addr = parse_address_list(g_mime_message_get_cc(msg));
	out->subject = parse_header_text(g_mime_message_get_subject(msg));
	const char *mid = g_mime_message_get_message_id(msg);
	if (mid != NULL && *mid) {
		char *bare = parse_header_text(mid);
		out->message_id = xasprintf("<%s>", bare);
		free(bare);
	}
	GDateTime *date = g_mime_message_get_date(msg);
	if (date != NULL) {
		gint64 t = g_date_time_to_unix(date);
		if (t >= 0 && t <= PARSE_MAX_UNIX) {
			out->date_unix = t;
			out->has_date = 1;
		}
	}
	parse_add_refs(msg, opts, "In-Reply-To", 0, out);
	parse_add_refs(msg, opts, "References", 1, out);
	out->references = parse_references_header(msg, opts);
}

void fetcher_parse_error(fetcher_parsed_t *out, const char *fmt, ...)
{
	va_list ap;
	if (out->parse_error != NULL)
		return;
	va_start(ap, fmt);
	char *text = NULL;
	if (vasprintf(&text, fmt, ap) < 0)
		text = NULL;
	va_end(ap);
	out->parse_error = text ? text : xstrdup("the message could not be read");
}

/* parse_note_warnings - the parser's complaints as the message's error. */
static void parse_note_warnings(fetcher_parsed_t *out)
{
	if (out->unparsable)
		fetcher_parse_error(out, "not a MIME message: no header or body could be read "
		                         "(the raw message is kept)");
	else if (out->warnings > 0)
		fetcher_parse_error(out,
		                    "malformed MIME: %s (%d problem%s); what could be read "
		                    "was kept, and the raw message is kept whole",
		                    out->first_warning, out->warnings,
		                    out->warnings == 1 ? "" : "s");
}

void fetcher_parse_message(const char *raw, size_t len, fetcher_parsed_t *out)
{
	static const char *fallback[] = {"UTF-8", "windows-1252", NULL};
	memset(out, 0, sizeof(*out));
	out->body = fetcher_utf8_clean(raw, len, 0, &out->body_lossy);
	pp_sha256_hex(raw, len, out->content_sha256);

	GMimeParserOptions *opts = g_mime_parser_options_new();
	g_mime_parser_options_set_fallback_charsets(opts, fallback);
	g_mime_parser_options_set_warning_callback(opts, parse_on_warning, out);
	/* GMime reads the caller's bytes in place (its parts are windows onto
	 * them, see fetcher_parts.c): the array only borrows them */
	GByteArray *bytes = g_byte_array_new_take((guint8 *)raw, len);
	GMimeStream *stream = g_mime_stream_mem_new_with_byte_array(bytes);
	g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(stream), FALSE);
	GMimeParser *parser = g_mime_parser_new_with_stream(stream);
	GMimeMessage *msg = g_mime_parser_construct_message(parser, opts);
	g_object_unref(parser);
	g_object_unref(stream);
	if (msg != NULL) {
		parse_fields(msg, opts, out);
		fetcher_parts_read(msg, raw, len, out);
		fetcher_classify(msg, &out->cls);
		g_object_unref(msg);
	} else {
		out->unparsable = 1;
		out->from_addr = xstrdup("");
		out->to_addr = xstrdup("");
		out->cc_addr = xstrdup("");
		out->subject = xstrdup("");
	}
	g_mime_parser_options_free(opts);
	g_byte_array_free(bytes, FALSE); /* the bytes stay the caller's */
	parse_note_warnings(out);
	out->dedup_key = out->message_id ? xstrdup(out->message_id)
	                                 : xasprintf("sha256:%s", out->content_sha256);
}

void fetcher_parsed_drop_attachments(fetcher_parsed_t *p)
{
	for (size_t i = 0; i < p->nattachments; i++) {
		fetcher_attachment_t *a = &p->attachments[i];
		free(a->filename);
		free(a->content_type);
		free(a->part_path);
		free(a->content_id);
		free(a->data);
	}
	p->nattachments = 0;
}

void fetcher_parsed_clear(fetcher_parsed_t *p)
{
	free(p->from_addr);
	free(p->to_addr);
	free(p->cc_addr);
	free(p->subject);
	free(p->message_id);
	for (size_t i = 0; i < p->nrefs; i++)
		free(p->refs[i]);
	free(p->refs);
	free(p->body);
	free(p->dedup_key);
	free(p->references);
	free(p->body_text);
	free(p->body_html);
	free(p->body_html_safe);
	fetcher_parsed_drop_attachments(p);
	free(p->attachments);
	free(p->parse_error);
	fetcher_classify_clear(&p->cls);
	memset(p, 0, sizeof(*p));
}
