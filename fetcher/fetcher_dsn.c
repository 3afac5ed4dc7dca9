/*
 * fetcher_dsn.c - reads what a bounce says: the failed recipient, its
 * status and diagnostic, and the Message-ID of the message that bounced.
 *
 *   RFC 3464 reports    multipart/report with a message/delivery-status (or
 *                       RFC 6533 message/global-delivery-status) part, read
 *                       field group by field group
 *   non-standard forms  (recognised by fetcher_classify.c) their text: the
 *                       first status code and address line of the
 *                       explanation, and the Message-ID of the returned copy
 *
 * Every read is bounded (DSN_MAX_*) and linear in the size of the message.
 */
#include <gmime/gmime.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fetcher.h"

#define DSN_MAX_REPORT (8u << 20) /* bytes of a delivery-status part read */
#define DSN_MAX_FIELD 2048        /* bytes kept of one unfolded field */
#define DSN_MAX_CHILDREN 100      /* parts of a report looked at */
#define DSN_MAX_DEPTH 4           /* multipart levels searched for the text */
#define DSN_MAX_ID 998            /* bytes of a Message-ID */
#define DSN_MAX_ADDR 254          /* bytes of an address */
#define DSN_DIGIT(c) ((c) >= '0' && (c) <= '9')

typedef struct {
	const char *p, *end; /* what is left to read */
} dsn_reader_t;

/* One "Name: value" field; the value unfolded and trimmed, at most
 * DSN_MAX_FIELD bytes. */
typedef struct {
	const char *name;
	size_t name_len;
	pp_buf_t value;
} dsn_field_t;

/* The first value of each field of one per-recipient group. */
typedef struct {
	char *original, *final, *action, *status, *diagnostic;
} dsn_group_t;

typedef struct {
	int rank;      /* of the reported recipient: 3 failed for good, 2 failed, 1 delayed */
	int delivered; /* recipients delivered, relayed or expanded */
	char *recipient, *status, *diagnostic;
} dsn_report_t;

typedef struct {
	size_t at, len;
} dsn_code_t;

static int dsn_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* dsn_line - the next line of r without its line end; 0 at the end. */
static int dsn_line(dsn_reader_t *r, const char **line, size_t *len)
{
	if (r->p >= r->end)
		return 0;
	const char *nl = memchr(r->p, '\n', (size_t)(r->end - r->p));
	const char *stop = nl != NULL ? nl : r->end;
	*line = r->p;
	*len = (size_t)(stop - r->p);
	if (*len > 0 && (*line)[*len - 1] == '\r')
		(*len)--;
	r->p = nl != NULL ? nl + 1 : r->end;
	return 1;
}

/* dsn_starts - s[0, n) starts with word, in any case. */
static int dsn_starts(const char *s, size_t n, const char *word)
{
	size_t wl = strlen(word);
	return n >= wl && strncasecmp(s, word, wl) == 0;
}

/* dsn_trim - s[0, *n) without white space at either end. */
static const char *dsn_trim(const char *s, size_t *n)
{
	while (*n > 0 && dsn_space(*s)) {
		s++;
		(*n)--;
	}
	while (*n > 0 && dsn_space(s[*n - 1]))
		(*n)--;
	return s;
}

static int dsn_blank(const char *s, size_t n)
{
	dsn_trim(s, &n);
	return n == 0;
}

/* dsn_append - one line of a field's value, trimmed, after a space. */
static void dsn_append(pp_buf_t *b, const char *s, size_t n)
{
	s = dsn_trim(s, &n);
	if (n > 0 && b->len > 0 && b->len < DSN_MAX_FIELD)
		pp_buf_append(b, " ", 1);
	if (b->len + n > DSN_MAX_FIELD)
		n = b->len < DSN_MAX_FIELD ? DSN_MAX_FIELD - b->len : 0;
	size_t at = b->len;
	pp_buf_append(b, s, n);
	/* a NUL becomes DEL: no address or status takes it, a diagnostic drops it */
	for (size_t i = at; i < b->len; i++)
		if (b->data[i] == '\0')
			b->data[i] = 0x7f;
}

/* dsn_next_field - the next field of the current group in f: 1, or 0 at
 * the group's end (a blank line, or the end of the text). Lines that are
 * not fields are skipped. */
static int dsn_next_field(dsn_reader_t *r, dsn_field_t *f)
{
	const char *line, *colon;
	size_t len;
	pp_buf_reset(&f->value);
	while (dsn_line(r, &line, &len)) {
		if (dsn_blank(line, len))
			return 0;
		colon = memchr(line, ':', len);
		if (line[0] == ' ' || line[0] == '\t' || colon == NULL)
			continue;
		f->name = line;
		f->name_len = (size_t)(colon - line);
		while (f->name_len > 0 && dsn_space(line[f->name_len - 1]))
			f->name_len--;
		dsn_append(&f->value, colon + 1, len - (size_t)(colon + 1 - line));
		/* folded continuation lines */
		while (r->p < r->end && (*r->p == ' ' || *r->p == '\t')) {
			dsn_reader_t peek = *r;
			if (!dsn_line(&peek, &line, &len) || dsn_blank(line, len))
				break;
			dsn_append(&f->value, line, len);
			*r = peek;
		}
		return 1;
	}
	return 0;
}

static int dsn_field_is(const dsn_field_t *f, const char *name)
{
	return f->name_len == strlen(name) && strncasecmp(f->name, name, f->name_len) == 0;
}

/* dsn_status_at - length of the status code "c.s.d" at s (class 2, 4 or
 * 5, subject and detail of 1-3 digits, RFC 3463), or 0. */
static size_t dsn_status_at(const char *s, size_t len)
{
	size_t i = 2;
	if (len < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
		return 0;
	for (int part = 0; part < 2; part++) {
		size_t start = i;
		while (i < len && DSN_DIGIT(s[i]) && i - start < 4)
			i++;
		if (i == start || i - start > 3)
			return 0;
		if (part == 0 && (i >= len || s[i++] != '.'))
			return 0;
	}
	if (i < len && (DSN_DIGIT(s[i]) || (s[i] == '.' && i + 1 < len && DSN_DIGIT(s[i + 1]))))
		return 0;
	return i;
}

/* dsn_address - the address of s[0, n): "rfc822; a@b" (or utf-8), "a@b"
 * or "<a@b>"; owned, or NULL when it is none or of another type. */
static char *dsn_address(const char *s, size_t n)
{
	const char *semi = memchr(s, ';', n);
	if (semi != NULL) {
		size_t tn = (size_t)(semi - s);
		const char *type = dsn_trim(s, &tn);
		if (!((tn == 6 && strncasecmp(type, "rfc822", 6) == 0) ||
		      (tn == 5 && strncasecmp(type, "utf-8", 5) == 0)))
			return NULL;
		n -= (size_t)(semi + 1 - s);
		s = semi + 1;
	}
	s = dsn_trim(s, &n);
	if (n >= 2 && s[0] == '<' && s[n - 1] == '>') {
		s++;
		n -= 2;
	}
	const char *at = n > 0 ? memchr(s, '@', n) : NULL;
	if (at == NULL || at == s || at == s + n - 1 || n > DSN_MAX_ADDR)
		return NULL;
	for (size_t i = 0; i < n; i++) /* no white space, control or C1 control character */
		if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f || strchr("<>()[],;:\"\\", s[i]) ||
		    ((unsigned char)s[i] == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] < 0xa0))
			return NULL;
	return g_utf8_validate(s, (gssize)n, NULL) ? fetcher_classify_line(s, n, DSN_MAX_ADDR)
	                                           : NULL;
}

/* dsn_id - the Message-ID at the start of s[0, n), "<id>" or a bare id
 * with an '@', as an owned "<id>"; NULL if there is none. Only printable
 * ASCII is read: any other id is none of ours. */
static char *dsn_id(const char *s, size_t n)
{
	size_t i = 0;
	while (i < n && dsn_space(s[i]))
		i++;
	int bracket = i < n && s[i] == '<';
	i += (size_t)bracket;
	size_t start = i;
	while (i < n && i - start <= DSN_MAX_ID && s[i] > ' ' && s[i] < 0x7f && s[i] != '<' &&
	       s[i] != '>' && (bracket || (s[i] != ',' && s[i] != ';')))
		i++;
	size_t len = i - start;
	if (len == 0 || len > DSN_MAX_ID || (bracket && (i >= n || s[i] != '>')) ||
	    memchr(s + start, '@', len) == NULL)
		return NULL;
	return xasprintf("<%.*s>", (int)len, s + start);
}

/* dsn_part_bytes - the decoded content of a leaf part, or an embedded
 * message as text, at most max bytes, into b (always allocated). */
static void dsn_part_bytes(GMimeObject *obj, size_t max, pp_buf_t *b)
{
	GMimeStream *mem = g_mime_stream_mem_new();
	pp_buf_append(b, "", 0);
	fetcher_part_bytes(obj, mem);
	GByteArray *a = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
	if (a != NULL)
		pp_buf_append(b, a->data, a->len < max ? a->len : max);
	g_object_unref(mem);
}

static int dsn_type_is(GMimeObject *obj, const char *type, const char *subtype)
{
	GMimeContentType *ct = g_mime_object_get_content_type(obj);
	return ct != NULL && g_mime_content_type_is_type(ct, type, subtype);
}

/* dsn_text_id - the first "Message-ID:" line of a text (folded or not). */
static char *dsn_text_id(const char *s, size_t n)
{
	dsn_reader_t r = {s, s + n};
	const char *line;
	size_t len, k;
	while (dsn_line(&r, &line, &len)) {
		for (k = 0; k < len && dsn_space(line[k]); k++)
			;
		if (!dsn_starts(line + k, len - k, "Message-ID:"))
			continue;
		k += strlen("Message-ID:");
		char *id = dsn_id(line + k, len - k);
		if (id == NULL && dsn_blank(line + k, len - k) && dsn_line(&r, &line, &len))
			id = dsn_id(line, len);
		if (id != NULL)
			return id;
	}
	return NULL;
}

/* dsn_child_id - the Message-ID a part of a report names: an embedded
 * message's or a text/rfc822-headers block's, or (loose) that of any
 * "Message-ID:" line in it. */
static char *dsn_child_id(GMimeObject *child, int loose)
{
	pp_buf_t b;
	if (!loose && GMIME_IS_MESSAGE_PART(child)) {
		GMimeMessage *m = g_mime_message_part_get_message(GMIME_MESSAGE_PART(child));
		const char *mid = m != NULL ? g_mime_message_get_message_id(m) : NULL;
		return mid != NULL ? dsn_id(mid, strlen(mid)) : NULL;
	}
	if (!loose && !dsn_type_is(child, "text", "rfc822-headers") &&
	    !dsn_type_is(child, "message", "global-headers"))
		return NULL;
	pp_buf_init(&b);
	dsn_part_bytes(child, FETCHER_DSN_MAX_TEXT, &b);
	char *id = dsn_text_id(b.data, b.len);
	pp_buf_free(&b);
	return id;
}

/* dsn_original_id - the Message-ID of the returned message: that of an
 * embedded message or text/rfc822-headers part of top, else of any
 * "Message-ID:" line in the explanation or in top's other parts. */
static char *dsn_original_id(GMimeObject *top, const fetcher_dsn_text_t *t)
{
	GMimeMultipart *mp = top != NULL && GMIME_IS_MULTIPART(top) ? GMIME_MULTIPART(top) : NULL;
	int n = mp != NULL ? g_mime_multipart_get_count(mp) : 0;
	char *id = NULL;
	n = n < (int)DSN_MAX_CHILDREN ? n : (int)DSN_MAX_CHILDREN;
	for (int i = 0; id == NULL && i < n; i++)
		id = dsn_child_id(g_mime_multipart_get_part(mp, i), 0);
	if (id == NULL)
		id = dsn_text_id(t->text.data, t->text.len);
	for (int i = 0; id == NULL && i < n; i++)
		id = dsn_child_id(g_mime_multipart_get_part(mp, i), 1);
	return id;
}

/* dsn_diagnostic - a Diagnostic-Code without its type ("smtp; "), one line. */
static char *dsn_diagnostic(const char *v)
{
	size_t type = strcspn(v, "; \t");
	if (v[type] == ';' && type > 0 && type < 32)
		v += type + 1;
	return fetcher_classify_line(v, strlen(v), FETCHER_CLASSIFY_DIAGNOSTIC_MAX);
}

/* dsn_group_rank - how a recipient fared: 3 failed for good (5.x.x or no
 * status), 2 failed (4.x.x), 1 delayed, 0 delivered or unknown. A group
 * without Action goes by its status: 5 failed for good, 4 delayed. */
static int dsn_group_rank(const dsn_group_t *g, int *delivered)
{
	const char *a = g->action != NULL ? g->action : "";
	char cls =
	    g->status != NULL && dsn_status_at(g->status, strlen(g->status)) > 0 ? g->status[0] : 0;
	size_t n = strcspn(a, " \t;(");
	if (n == 6 && strncasecmp(a, "failed", 6) == 0)
		return cls == '4' || cls == '2' ? 2 : 3;
	if (n == 7 && strncasecmp(a, "delayed", 7) == 0)
		return 1;
	if ((n == 9 && strncasecmp(a, "delivered", 9) == 0) ||
	    (n == 7 && strncasecmp(a, "relayed", 7) == 0) ||
	    (n == 8 && strncasecmp(a, "expanded", 8) == 0)) {
		*delivered = 1;
		return 0;
	}
	return cls == '5' ? 3 : cls == '4' ? 1 : 0;
}

/* dsn_group_end - count one group; the first recipient of the highest
 * rank is the one reported (the address that failed for good, if any). */
static void dsn_group_end(dsn_group_t *g, dsn_report_t *rep)
{
	int delivered = 0;
	if (g->original != NULL || g->final != NULL || g->action != NULL || g->status != NULL) {
		int rank = dsn_group_rank(g, &delivered);
		rep->delivered += delivered;
		if (rank > rep->rank) {
			rep->rank = rank;
			free(rep->recipient);
			free(rep->status);
			free(rep->diagnostic);
			rep->recipient =
			    g->original ? dsn_address(g->original, strlen(g->original)) : NULL;
			if (rep->recipient == NULL && g->final != NULL)
				rep->recipient = dsn_address(g->final, strlen(g->final));
			size_t sl = g->status ? dsn_status_at(g->status, strlen(g->status)) : 0;
			rep->status = sl > 0 ? xstrndup(g->status, sl) : NULL;
			rep->diagnostic = g->diagnostic ? dsn_diagnostic(g->diagnostic) : NULL;
		}
	}
	free(g->original);
	free(g->final);
	free(g->action);
	free(g->status);
	free(g->diagnostic);
	memset(g, 0, sizeof(*g));
}

static void dsn_group_set(char **slot, const dsn_field_t *f)
{
	if (*slot == NULL)
		*slot = xstrndup(f->value.data, f->value.len);
}

/* dsn_read_groups - every field group of a delivery-status part. */
static void dsn_read_groups(const char *s, size_t n, dsn_report_t *rep)
{
	dsn_reader_t r = {s, s + n};
	dsn_field_t f = {0};
	dsn_group_t g = {0};
	while (r.p < r.end) {
		while (dsn_next_field(&r, &f)) {
			if (dsn_field_is(&f, "Original-Recipient"))
				dsn_group_set(&g.original, &f);
			else if (dsn_field_is(&f, "Final-Recipient"))
				dsn_group_set(&g.final, &f);
			else if (dsn_field_is(&f, "Action"))
				dsn_group_set(&g.action, &f);
			else if (dsn_field_is(&f, "Status"))
				dsn_group_set(&g.status, &f);
			else if (dsn_field_is(&f, "Diagnostic-Code"))
				dsn_group_set(&g.diagnostic, &f);
		}
		dsn_group_end(&g, rep);
	}
	pp_buf_free(&f.value);
}

/* dsn_text_part - the first leaf of obj of type text/subtype, searching
 * multiparts DSN_MAX_DEPTH deep and never inside embedded messages. */
static GMimeObject *dsn_text_part(GMimeObject *obj, const char *subtype, int depth)
{
	if (obj == NULL || depth > DSN_MAX_DEPTH)
		return NULL;
	if (GMIME_IS_MULTIPART(obj)) {
		int n = g_mime_multipart_get_count(GMIME_MULTIPART(obj));
		for (int i = 0; i < n && i < (int)DSN_MAX_CHILDREN; i++) {
			GMimeObject *found = dsn_text_part(
			    g_mime_multipart_get_part(GMIME_MULTIPART(obj), i), subtype, depth + 1);
			if (found != NULL)
				return found;
		}
		return NULL;
	}
	return GMIME_IS_PART(obj) && dsn_type_is(obj, "text", subtype) ? obj : NULL;
}

/* Lines that start the returned copy in a bounce's text (after any white
 * space and dashes): its header, or a marker such as "--- Below this line
 * is a copy of the message." or "----- Original message -----". */
static const char *const dsn_copy_marks[] = {"Return-Path:",
                                             "Received:",
                                             "Message-ID:",
                                             "Original message",
                                             "Message header follows",
                                             "Below this line is a copy",
                                             "This is a copy of the message"};

/* dsn_explain_end - where the returned copy starts in s. */
static size_t dsn_explain_end(const char *s, size_t n)
{
	dsn_reader_t r = {s, s + n};
	const char *line;
	size_t len, k;
	while (dsn_line(&r, &line, &len)) {
		for (k = 0; k < len && (dsn_space(line[k]) || line[k] == '-'); k++)
			;
		for (size_t i = 0; i < sizeof(dsn_copy_marks) / sizeof(dsn_copy_marks[0]); i++)
			if (dsn_starts(line + k, len - k, dsn_copy_marks[i]))
				return (size_t)(line - s);
	}
	return n;
}

void fetcher_dsn_text_load(GMimeMessage *msg, fetcher_dsn_text_t *t)
{
	GMimeObject *top = g_mime_message_get_mime_part(msg);
	GMimeObject *part = dsn_text_part(top, "plain", 0);
	pp_buf_init(&t->text);
	pp_buf_append(&t->text, "", 0);
	if (part == NULL)
		part = dsn_text_part(top, "html", 0);
	if (part != NULL)
		dsn_part_bytes(part, FETCHER_DSN_MAX_TEXT, &t->text);
	t->explain = dsn_explain_end(t->text.data, t->text.len);
}

void fetcher_dsn_text_free(fetcher_dsn_text_t *t)
{
	pp_buf_free(&t->text);
}

/* dsn_text_code - the explanation's status code: its first enhanced code
 * (4.x.x or 5.x.x), else its first SMTP reply code (4xx or 5xx); len 0 if
 * none. *enhanced says which. */
static dsn_code_t dsn_text_code(const fetcher_dsn_text_t *t, int *enhanced)
{
	const char *s = t->text.data;
	size_t n = t->explain;
	dsn_code_t smtp = {0, 0};
	*enhanced = 0;
	for (size_t i = 0; i < n; i++) {
		char before = i > 0 ? s[i - 1] : ' '; /* a code starts a word */
		if ((s[i] != '4' && s[i] != '5') ||
		    !(dsn_space(before) || (before != '\0' && strchr("(#[:;\"'=<", before))))
			continue;
		size_t len = dsn_status_at(s + i, n - i);
		if (len > 0) {
			*enhanced = 1;
			return (dsn_code_t){i, len};
		}
		if (smtp.len == 0 && i + 3 < n && s[i + 1] >= '0' && s[i + 1] <= '5' &&
		    DSN_DIGIT(s[i + 2]) && (s[i + 3] == ' ' || s[i + 3] == '-'))
			smtp = (dsn_code_t){i, 3};
	}
	return smtp;
}

/* dsn_line_around - the line of s[0, n) holding s[at], as one clean line. */
static char *dsn_line_around(const char *s, size_t n, size_t at)
{
	size_t start = at, end = at;
	while (start > 0 && s[start - 1] != '\n')
		start--;
	while (end < n && s[end] != '\n')
		end++;
	return fetcher_classify_line(s + start, end - start, FETCHER_CLASSIFY_DIAGNOSTIC_MAX);
}

/* dsn_line_address - the address a line of a bounce starts with:
 * "<a@b>:", "a@b", "<a@b>... reason" or "a@b (a@b)"; owned, or NULL. */
static char *dsn_line_address(const char *s, size_t n)
{
	size_t i = 0;
	while (i < n && (s[i] == ' ' || s[i] == '\t'))
		i++;
	int bracket = i < n && s[i] == '<';
	i += (size_t)bracket;
	size_t start = i;
	while (i < n && i - start <= DSN_MAX_ADDR && (unsigned char)s[i] > ' ' &&
	       strchr("<>()[],;:\"\\", s[i]) == NULL)
		i++;
	size_t end = i;
	while (end > start && s[end - 1] == '.')
		end--;
	if (bracket) {
		if (i >= n || s[i] != '>')
			return NULL;
		i++;
	}
	const char *rest = s + i;
	size_t rn = n - i, sp = 0;
	while (sp < rn && (rest[sp] == ' ' || rest[sp] == '\t'))
		sp++;
	if (!(sp == rn || rest[0] == ':' || (rn >= 3 && memcmp(rest, "...", 3) == 0) ||
	      (sp > 0 && rest[sp] == '(')))
		return NULL;
	return dsn_address(s + start, end - start);
}

void fetcher_dsn_text_read(GMimeMessage *msg, const fetcher_dsn_text_t *t, fetcher_classify_t *out)
{
	const char *s = t->text.data, *line;
	size_t len;
	int enhanced;
	dsn_code_t c = dsn_text_code(t, &enhanced);
	if (out->status == NULL && enhanced)
		out->status = xstrndup(s + c.at, c.len);
	out->hard = !out->delayed && (c.len == 0 || s[c.at] == '5');
	if (out->diagnostic == NULL && c.len > 0)
		out->diagnostic = dsn_line_around(s, t->explain, c.at);
	/* the recipient: Exim's X-Failed-Recipients, else the first line
	 * of the explanation that starts with an address */
	const char *v = g_mime_object_get_header(GMIME_OBJECT(msg), "X-Failed-Recipients");
	if (out->recipient == NULL && v != NULL)
		out->recipient = dsn_address(v, strcspn(v, ","));
	dsn_reader_t r = {s, s + t->explain};
	while (out->recipient == NULL && dsn_line(&r, &line, &len))
		out->recipient = dsn_line_address(line, len);
	if (out->original_message_id == NULL)
		out->original_message_id = dsn_original_id(g_mime_message_get_mime_part(msg), t);
}

/* dsn_status_part - the delivery-status part of a multipart/report. */
static GMimeObject *dsn_status_part(GMimeMessage *msg)
{
	GMimeObject *top = g_mime_message_get_mime_part(msg);
	if (top == NULL || !GMIME_IS_MULTIPART(top) || !dsn_type_is(top, "multipart", "report"))
		return NULL;
	GMimeMultipart *mp = GMIME_MULTIPART(top);
	int n = g_mime_multipart_get_count(mp);
	for (int i = 0; i < n && i < (int)DSN_MAX_CHILDREN; i++) {
		GMimeObject *child = g_mime_multipart_get_part(mp, i);
		if (dsn_type_is(child, "message", "delivery-status") ||
		    dsn_type_is(child, "message", "global-delivery-status"))
			return child;
	}
	return NULL;
}

int fetcher_dsn_report(GMimeMessage *msg, fetcher_classify_t *out)
{
	GMimeObject *status = dsn_status_part(msg);
	if (status == NULL)
		return 0;
	pp_buf_t b;
	dsn_report_t rep = {0, 0, NULL, NULL, NULL};
	pp_buf_init(&b);
	dsn_part_bytes(status, DSN_MAX_REPORT, &b);
	dsn_read_groups(b.data, b.len, &rep);
	pp_buf_free(&b);
	if (rep.rank == 0 && rep.delivered > 0) {
		/* a delivery (or relay) report: nothing failed */
		out->kind = FETCHER_KIND_AUTO_REPLY;
		out->reason = xstrdup("Action: delivered (a delivery report)");
		return 1;
	}
	fetcher_dsn_text_t t;
	fetcher_dsn_text_load(msg, &t);
	out->kind = FETCHER_KIND_BOUNCE;
	out->recipient = rep.recipient;
	out->status = rep.status;
	out->diagnostic = rep.diagnostic;
	out->hard = rep.rank == 3;
	out->delayed = rep.rank == 1;
	int enhanced;
	dsn_code_t c = dsn_text_code(&t, &enhanced);
	if (out->diagnostic == NULL && rep.rank > 0 && c.len > 0)
		out->diagnostic = dsn_line_around(t.text.data, t.explain, c.at);
	out->original_message_id = dsn_original_id(g_mime_message_get_mime_part(msg), &t);
	if (rep.rank == 0)
		fetcher_dsn_text_read(msg, &t, out); /* no recipient could be read */
	fetcher_dsn_text_free(&t);
	return 1;
}
