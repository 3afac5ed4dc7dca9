/*
 * pp_merge.c - the merge engine: field catalogue, parser and renderer.
 * Owns parsed templates (a copy of the text plus a list of segments).
 * Rendering is one pass over the segments, so a value is never re-expanded.
 */
#include "pp_merge.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <ctype.h>

#define MERGE_NAME_SHOWN 64 /* at most this much of an unknown name in errors */

static const char *const group_names[PP_MERGE_GROUP_COUNT] = {
#define PP_MERGE_GROUP_NAME(ENUM, name, text) name,
    PP_MERGE_GROUPS(PP_MERGE_GROUP_NAME)
#undef PP_MERGE_GROUP_NAME
};

static const char *const group_descriptions[PP_MERGE_GROUP_COUNT] = {
#define PP_MERGE_GROUP_TEXT(ENUM, name, text) text,
    PP_MERGE_GROUPS(PP_MERGE_GROUP_TEXT)
#undef PP_MERGE_GROUP_TEXT
};

static const pp_merge_field_info_t catalogue[PP_FIELD_COUNT] = {
#define PP_MERGE_FIELD_INFO(GROUP, FIELD, name, text)                                              \
	{PP_FIELD_##GROUP##_##FIELD, PP_MERGE_GROUP_##GROUP, NULL, name, NULL, text},
    PP_MERGE_FIELDS(PP_MERGE_FIELD_INFO)
#undef PP_MERGE_FIELD_INFO
};

typedef struct {
	int is_field;
	pp_merge_field_t field;
	size_t off; /* literal: offset into text */
	size_t len;
} merge_segment_t;

struct pp_merge_template {
	char *text;
	merge_segment_t *segs;
	size_t nsegs;
	size_t cap;
	uint8_t used[PP_FIELD_COUNT];
};

/* Full names ("group.field") are composed on first use into static storage
 * (every PracticePost process is single-threaded). */
static char full_name_store[PP_FIELD_COUNT][64];

static const char *merge_full_name(pp_merge_field_t f)
{
	if (full_name_store[f][0] == '\0')
		snprintf(full_name_store[f], sizeof(full_name_store[f]), "%s.%s",
		         group_names[catalogue[f].group], catalogue[f].name);
	return full_name_store[f];
}

const char *pp_merge_group_name(pp_merge_group_t group)
{
	return (unsigned)group < PP_MERGE_GROUP_COUNT ? group_names[group] : NULL;
}

const char *pp_merge_group_description(pp_merge_group_t group)
{
	return (unsigned)group < PP_MERGE_GROUP_COUNT ? group_descriptions[group] : NULL;
}

const pp_merge_field_info_t *pp_merge_field_info(pp_merge_field_t field)
{
	static pp_merge_field_info_t info[PP_FIELD_COUNT];
	if ((unsigned)field >= PP_FIELD_COUNT)
		return NULL;
	if (info[field].name == NULL) {
		info[field] = catalogue[field];
		info[field].group_name = group_names[catalogue[field].group];
		info[field].full_name = merge_full_name(field);
	}
	return &info[field];
}

int pp_merge_field_find(const char *name, size_t len, pp_merge_field_t *out)
{
	const char *dot = memchr(name, '.', len);
	if (dot == NULL)
		return -1;
	size_t glen = (size_t)(dot - name), flen = len - glen - 1;
	for (int f = 0; f < PP_FIELD_COUNT; f++) {
		const char *g = group_names[catalogue[f].group], *n = catalogue[f].name;
		if (strlen(g) == glen && memcmp(g, name, glen) == 0 && strlen(n) == flen &&
		    memcmp(n, dot + 1, flen) == 0) {
			*out = (pp_merge_field_t)f;
			return 0;
		}
	}
	return -1;
}

static void merge_add(pp_merge_template_t *t, int is_field, pp_merge_field_t f, size_t off,
                      size_t len)
{
	if (!is_field && len == 0)
		return;
	if (t->nsegs == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 8;
		t->segs = xrealloc(t->segs, t->cap * sizeof(*t->segs));
	}
	t->segs[t->nsegs++] = (merge_segment_t){is_field, f, off, len};
	if (is_field)
		t->used[f] = 1;
}

static size_t merge_line_of(const char *text, size_t off)
{
	size_t line = 1;
	for (size_t i = 0; i < off; i++)
		if (text[i] == '\n')
			line++;
	return line;
}

/* merge_parse_field - the name between "{{" at open and "}}" at close,
 * trimmed of blanks; -1 with err if it is not in the catalogue. */
static int merge_parse_field(const char *text, size_t open, size_t close, pp_merge_field_t *f,
                             char *err, size_t errlen)
{
	size_t a = open + 2, b = close;
	while (a < b && (text[a] == ' ' || text[a] == '\t'))
		a++;
	while (b > a && (text[b - 1] == ' ' || text[b - 1] == '\t'))
		b--;
	if (pp_merge_field_find(text + a, b - a, f) == 0)
		return 0;
	int shown = (int)(b - a > MERGE_NAME_SHOWN ? MERGE_NAME_SHOWN : b - a);
	snprintf(err, errlen, "unknown merge field {{%.*s}}%s on line %zu", shown, text + a,
	         b - a > MERGE_NAME_SHOWN ? "..." : "", merge_line_of(text, open));
	return -1;
}

pp_merge_template_t *pp_merge_parse(const char *text, char *err, size_t errlen)
{
	pp_merge_template_t *t = xcalloc(1, sizeof(*t));
	t->text = xstrdup(text);
	size_t pos = 0, lit = 0;
	for (;;) {
		const char *open = strstr(t->text + pos, "{{");
		if (open == NULL)
			break;
		size_t o = (size_t)(open - t->text);
		const char *close = strstr(open + 2, "}}");
		if (close == NULL) {
			snprintf(err, errlen,
			         "unterminated merge field (\"{{\" without \"}}\") "
			         "on line %zu",
			         merge_line_of(t->text, o));
			goto fail;
		}
		size_t c = (size_t)(close - t->text);
		pp_merge_field_t f;
		if (merge_parse_field(t->text, o, c, &f, err, errlen) != 0)
			goto fail;
		merge_add(t, 0, 0, lit, o - lit);
		merge_add(t, 1, f, 0, 0);
		pos = lit = c + 2;
	}
	merge_add(t, 0, 0, lit, strlen(t->text) - lit);
	return t;
fail:
	pp_merge_template_free(&t);
	return NULL;
}

void pp_merge_template_free(pp_merge_template_t **tpl)
{
	if (*tpl == NULL)
		return;
	free((*tpl)->text);
	free((*tpl)->segs);
	free(*tpl);
	*tpl = NULL;
}

int pp_merge_validate(const char *text, char *err, size_t errlen)
{
	pp_merge_template_t *t = pp_merge_parse(text, err, errlen);
	if (t == NULL)
		return -1;
	pp_merge_template_free(&t);
	return 0;
}

int pp_merge_uses(const pp_merge_template_t *tpl, pp_merge_field_t field)
{
	return (unsigned)field < PP_FIELD_COUNT && tpl->used[field];
}

int pp_merge_uses_group(const pp_merge_template_t *tpl, pp_merge_group_t group)
{
	for (int f = 0; f < PP_FIELD_COUNT; f++)
		if (tpl->used[f] && catalogue[f].group == group)
			return 1;
	return 0;
}

int pp_merge_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;
	while (p < end) {
		unsigned c = *p;
		size_t n;
		unsigned min, cp;
		if (c < 0x80) {
			p++;
			continue;
		} else if ((c & 0xE0) == 0xC0) {
			n = 1, min = 0x80, cp = c & 0x1F;
		} else if ((c & 0xF0) == 0xE0) {
			n = 2, min = 0x800, cp = c & 0x0F;
		} else if ((c & 0xF8) == 0xF0) {
			n = 3, min = 0x10000, cp = c & 0x07;
		} else {
			return 0;
		}
		if ((size_t)(end - p) <= n)
			return 0;
		for (size_t i = 1; i <= n; i++) {
			if ((p[i] & 0xC0) != 0x80)
				return 0;
			cp = (cp << 6) | (p[i] & 0x3F);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return 0;
		p += n + 1;
	}
	return 1;
}

/* merge_text_problem - what makes s[0..len) unfit: a line break (unless
 * lines allows CR and LF) or another control character (TAB allowed);
 * NULL if nothing. */
static const char *merge_text_problem(const char *s, size_t len, int lines)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\r' || c == '\n') {
			if (lines)
				continue;
			return "a line break (CR or LF)";
		}
		if ((c < 0x20 && c != '\t') || c == 0x7F)
			return "a control character";
	}
	return NULL;
}

/* merge_header_safe - 0 if s has no CR, LF or other control character
 * (TAB allowed); otherwise -1 and *what says which. */
static int merge_header_safe(const char *s, size_t len, const char **what)
{
	*what = merge_text_problem(s, len, 0);
	return *what == NULL ? 0 : -1;
}

int pp_merge_check_text(const char *what, const char *s, int lines, char *err, size_t errlen)
{
	size_t len = strlen(s);
	const char *problem = merge_text_problem(s, len, lines);
	if (problem != NULL) {
		snprintf(err, errlen, "%s contains %s", what, problem);
		return -1;
	}
	if (!pp_merge_utf8_valid(s, len)) {
		snprintf(err, errlen, "%s is not valid UTF-8", what);
		return -1;
	}
	return 0;
}

static void merge_append_html(pp_buf_t *out, const char *v, size_t len)
{
	size_t run = 0;
	for (size_t i = 0; i < len; i++) {
		const char *esc = NULL;
		switch (v[i]) {
		case '&':
			esc = "&amp;";
			break;
		case '<':
			esc = "&lt;";
			break;
		case '>':
			esc = "&gt;";
			break;
		case '"':
			esc = "&quot;";
			break;
		case '\'':
			esc = "&#39;";
			break;
		default:
			continue;
		}
		pp_buf_append(out, v + run, i - run);
		pp_buf_puts(out, esc);
		run = i + 1;
	}
	pp_buf_append(out, v + run, len - run);
}

static int merge_render_value(pp_merge_field_t f, const char *v, pp_merge_mode_t mode,
                              pp_buf_t *out, char *err, size_t errlen)
{
	const char *name = merge_full_name(f), *what;
	if (v == NULL || *v == '\0') {
		snprintf(err, errlen, "merge field {{%s}} has no value", name);
		return -1;
	}
	size_t len = strlen(v);
	if (!pp_merge_utf8_valid(v, len)) {
		snprintf(err, errlen, "merge field {{%s}} is not valid UTF-8", name);
		return -1;
	}
	if (mode == PP_MERGE_HEADER && merge_header_safe(v, len, &what) != 0) {
		snprintf(err, errlen, "merge field {{%s}} contains %s and cannot go in a header",
		         name, what);
		return -1;
	}
	if (mode == PP_MERGE_HTML)
		merge_append_html(out, v, len);
	else
		pp_buf_append(out, v, len);
	return 0;
}

int pp_merge_render(const pp_merge_template_t *tpl, pp_merge_mode_t mode, pp_merge_lookup_t lookup,
                    void *ctx, pp_buf_t *out, char *err, size_t errlen)
{
	const char *what;
	for (size_t i = 0; i < tpl->nsegs; i++) {
		const merge_segment_t *s = &tpl->segs[i];
		if (s->is_field) {
			if (merge_render_value(s->field, lookup(ctx, s->field), mode, out, err,
			                       errlen) != 0)
				return -1;
			continue;
		}
		const char *lit = tpl->text + s->off;
		if (mode == PP_MERGE_HEADER && merge_header_safe(lit, s->len, &what) != 0) {
			snprintf(err, errlen, "template text contains %s and cannot go in a header",
			         what);
			return -1;
		}
		pp_buf_append(out, lit, s->len);
	}
	return 0;
}

/* ---- HTML template to plain text ---------------------------------------- */

typedef struct {
	pp_buf_t out;
	int space;    /* white space seen since the last character */
	int newlines; /* line breaks at the end of out (0, 1, 2) */
	char *href;   /* the open <a>'s link, owned */
	size_t link_start;
} merge_text_t;

static void text_char(merge_text_t *t, const char *s, size_t len)
{
	if (t->space && t->newlines == 0 && t->out.len > 0 && t->out.data[t->out.len - 1] != ' ')
		pp_buf_append(&t->out, " ", 1);
	pp_buf_append(&t->out, s, len);
	t->space = 0;
	t->newlines = 0;
}

/* text_break - end the line (n = 1) or the paragraph (n = 2). */
static void text_break(merge_text_t *t, int n)
{
	t->space = 0;
	if (t->out.len == 0)
		return;
	while (t->newlines < n) {
		pp_buf_append(&t->out, "\n", 1);
		t->newlines++;
	}
}

/* text_entity - decode the entity at s ("&...;"); returns the bytes used,
 * 0 if it is not one we decode (the '&' is then kept as text). */
static size_t text_entity(merge_text_t *t, const char *s)
{
	static const struct {
		const char *name;
		const char *text;
	} named[] = {{"&amp;", "&"},   {"&lt;", "<"},   {"&gt;", ">"},
	             {"&quot;", "\""}, {"&apos;", "'"}, {"&#39;", "'"}};
	if (strncmp(s, "&nbsp;", 6) == 0) { /* white space like any other here */
		t->space = 1;
		return 6;
	}
	for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++)
		if (strncmp(s, named[i].name, strlen(named[i].name)) == 0) {
			text_char(t, named[i].text, 1);
			return strlen(named[i].name);
		}
	if (s[1] != '#')
		return 0;
	int hex = s[2] == 'x' || s[2] == 'X';
	char *end;
	unsigned long cp = strtoul(s + 2 + hex, &end, hex ? 16 : 10);
	if (end == s + 2 + hex || *end != ';' || cp == 0 || cp > 0x10FFFF ||
	    (cp >= 0xD800 && cp <= 0xDFFF) || cp < 0x20 || cp == '{' || cp == '}')
		return 0;
	char u[4];
	size_t n = 0;
	if (cp < 0x80) {
		u[n++] = (char)cp;
	} else if (cp < 0x800) {
		u[n++] = (char)(0xC0 | (cp >> 6));
		u[n++] = (char)(0x80 | (cp & 0x3F));
	} else if (cp < 0x10000) {
		u[n++] = (char)(0xE0 | (cp >> 12));
		u[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
		u[n++] = (char)(0x80 | (cp & 0x3F));
	} else {
		u[n++] = (char)(0xF0 | (cp >> 18));
		u[n++] = (char)(0x80 | ((cp >> 12) & 0x3F));
		u[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
		u[n++] = (char)(0x80 | (cp & 0x3F));
	}
	text_char(t, u, n);
	return (size_t)(end - s) + 1;
}

/* text_attr - the value of attribute name inside tag[0..len), owned or NULL. */
static char *text_attr(const char *tag, size_t len, const char *name)
{
	size_t nlen = strlen(name);
	for (size_t i = 1; i + nlen < len; i++) {
		if (strncasecmp(tag + i, name, nlen) != 0 || !strchr(" \t\r\n", tag[i - 1]))
			continue;
		size_t j = i + nlen;
		while (j < len && strchr(" \t\r\n", tag[j]))
			j++;
		if (j >= len || tag[j] != '=')
			continue;
		for (j++; j < len && strchr(" \t\r\n", tag[j]); j++)
			;
		char q = j < len && (tag[j] == '"' || tag[j] == '\'') ? tag[j] : 0;
		size_t start = j + (q ? 1 : 0), end = start;
		while (end < len && (q ? tag[end] != q : !strchr(" \t\r\n>", tag[end])))
			end++;
		return xstrndup(tag + start, end - start);
	}
	return NULL;
}

static int tag_is(const char *name, size_t len, const char *const *set)
{
	for (; *set; set++)
		if (strlen(*set) == len && strncasecmp(name, *set, len) == 0)
			return 1;
	return 0;
}

/* text_tag - act on the tag tag[0..len) ("<...>"); *skip names the element
 * whose content is being dropped (script, style, head, title) or is NULL. */
static void text_tag(merge_text_t *t, const char *tag, size_t len, const char **skip)
{
	static const char *const dropped[] = {"script", "style", "head", "title", NULL};
	static const char *const paragraphs[] = {"p",     "div",        "h1",  "h2", "h3",
	                                         "h4",    "h5",         "h6",  "ul", "ol",
	                                         "table", "blockquote", "pre", NULL};
	static const char *const lines[] = {"br", "tr", "li", "hr", "dt", "dd", NULL};
	int closing = len > 1 && tag[1] == '/';
	const char *name = tag + 1 + closing;
	size_t nlen = strcspn(name, " \t\r\n/>");
	if (*skip != NULL) {
		if (closing && strlen(*skip) == nlen && strncasecmp(name, *skip, nlen) == 0)
			*skip = NULL;
		return;
	}
	if (!closing && tag_is(name, nlen, dropped)) {
		for (int i = 0; dropped[i]; i++)
			if (strlen(dropped[i]) == nlen && strncasecmp(name, dropped[i], nlen) == 0)
				*skip = dropped[i];
	} else if (tag_is(name, nlen, paragraphs)) {
		text_break(t, 2);
	} else if (tag_is(name, nlen, lines)) {
		text_break(t, 1);
		if (!closing && nlen == 2 && strncasecmp(name, "li", 2) == 0)
			text_char(t, "- ", 2);
		if (!closing && nlen == 2 && strncasecmp(name, "hr", 2) == 0) {
			text_char(t, "----", 4);
			text_break(t, 1);
		}
	} else if (nlen == 1 && (name[0] == 'a' || name[0] == 'A')) {
		if (!closing) {
			free(t->href);
			t->href = text_attr(tag, len, "href");
			t->link_start = t->out.len;
		} else if (t->href != NULL) {
			size_t shown = t->out.len - t->link_start;
			if (*t->href &&
			    (shown != strlen(t->href) ||
			     memcmp(t->out.data + t->link_start, t->href, shown) != 0)) {
				t->space = 0;
				text_char(t, " <", 2);
				pp_buf_puts(&t->out, t->href);
				pp_buf_puts(&t->out, ">");
			}
			free(t->href);
			t->href = NULL;
		}
	} else if (tag_is(name, nlen, (const char *const[]){"td", "th", NULL}) && !closing) {
		t->space = 1;
	}
}

char *pp_merge_html_to_text(const char *html)
{
	merge_text_t t;
	const char *skip = NULL;
	memset(&t, 0, sizeof(t));
	pp_buf_init(&t.out);
	for (const char *p = html; *p;) {
		if (p[0] == '<' && strncmp(p, "<!--", 4) == 0) {
			const char *end = strstr(p + 4, "-->");
			p = end ? end + 3 : p + strlen(p);
		} else if (p[0] == '<' &&
		           (isalpha((unsigned char)p[1]) || p[1] == '/' || p[1] == '!')) {
			const char *end = strchr(p, '>');
			if (end == NULL)
				break; /* an unterminated tag: the rest is not text */
			text_tag(&t, p, (size_t)(end - p) + 1, &skip);
			p = end + 1;
		} else if (skip != NULL) {
			p++;
		} else if (strchr(" \t\r\n", *p)) {
			t.space = 1;
			p++;
		} else if (*p == '&') {
			size_t n = text_entity(&t, p);
			if (n == 0)
				text_char(&t, p, 1);
			p += n ? n : 1;
		} else {
			text_char(&t, p, 1);
			p++;
		}
	}
	free(t.href);
	while (t.out.len > 0 && t.out.data[t.out.len - 1] == '\n')
		t.out.len--;
	pp_buf_append(&t.out, "\n", 1);
	return pp_buf_steal(&t.out);
}

void pp_merge_text_to_html(pp_buf_t *out, const char *text)
{
	for (const char *p = text; *p;) {
		size_t n = strcspn(p, "\r\n");
		merge_append_html(out, p, n);
		p += n;
		if (*p == '\0')
			break;
		pp_buf_puts(out, "<br>\n");
		p += (p[0] == '\r' && p[1] == '\n') ? 2 : 1;
	}
}
