/*
 * pp_html.c - the HTML sanitiser: parse with libxml2's HTML parser, clean
 * the tree against an allowlist, then serialise what is left (or read its
 * text). libxml2 was chosen because Debian packages no C HTML sanitiser
 * library: the parsing is libxml2's (recovering, no network), the policy is
 * ours and is an allowlist - what is not named in the tables below does not
 * survive. Every walk over the tree is iterative (no recursion on the C
 * stack). Input is made valid UTF-8 first: libxml2 2.9 ends the document at
 * the first bad byte. No state between calls; libxml2's error handler is
 * swapped for the parse (to count, not print) and put back.
 */
#include "pp_html.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libxml/HTMLparser.h>
#include <libxml/globals.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

#include "pp_log.h"
#include "pp_util.h"

#define HTML_MAX_INPUT ((size_t)256 << 20) /* bytes; the rest is ignored */
#define HTML_NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define HTML_LINK_REL "noopener noreferrer nofollow"
#define HTML_PARSE_OPTIONS                                                                         \
	(HTML_PARSE_RECOVER | HTML_PARSE_NONET | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING |       \
	 HTML_PARSE_IGNORE_ENC)

typedef enum {
	HTML_UNWRAP = 0, /* not listed: replaced by its children */
	HTML_KEEP,       /* allowlisted */
	HTML_VOID,       /* allowlisted, no content and no end tag */
	HTML_CONTAINER,  /* html, head, body: walked, never serialised */
	HTML_DROP,       /* dropped with its content, counted */
	HTML_DROP_QUIET, /* dropped with its content, not counted */
} html_kind_t;

typedef struct {
	html_kind_t kind;
	const char *name; /* the listed spelling; NULL when not listed */
} html_element_t;

/* The element lists, each sorted (bsearch). */
static const char *const html_keep_names[] = {
    "a",          "abbr",   "acronym",    "address", "article", "aside", "b",       "bdi",
    "bdo",        "big",    "blockquote", "caption", "center",  "cite",  "code",    "colgroup",
    "dd",         "del",    "details",    "dfn",     "div",     "dl",    "dt",      "em",
    "figcaption", "figure", "font",       "footer",  "h1",      "h2",    "h3",      "h4",
    "h5",         "h6",     "header",     "i",       "ins",     "kbd",   "li",      "main",
    "mark",       "nav",    "ol",         "p",       "pre",     "q",     "s",       "samp",
    "section",    "small",  "span",       "strike",  "strong",  "sub",   "summary", "sup",
    "table",      "tbody",  "td",         "tfoot",   "th",      "thead", "time",    "tr",
    "tt",         "u",      "ul",         "var"};
static const char *const html_void_names[] = {"br", "col", "hr", "img", "wbr"};
static const char *const html_container_names[] = {"body", "head", "html"};
static const char *const html_drop_names[] = {
    "applet",   "audio",  "base",     "bgsound",  "button",   "canvas",   "datalist",
    "embed",    "form",   "frame",    "frameset", "iframe",   "input",    "isindex",
    "keygen",   "link",   "math",     "noembed",  "noframes", "noscript", "object",
    "optgroup", "option", "output",   "param",    "script",   "select",   "source",
    "style",    "svg",    "template", "textarea", "track",    "video",    "xml"};
static const char *const html_quiet_names[] = {"meta", "title"};

static const struct {
	html_kind_t kind;
	const char *const *names;
	size_t count;
} html_lists[] = {
    {HTML_KEEP, html_keep_names, HTML_NELEM(html_keep_names)},
    {HTML_VOID, html_void_names, HTML_NELEM(html_void_names)},
    {HTML_CONTAINER, html_container_names, HTML_NELEM(html_container_names)},
    {HTML_DROP, html_drop_names, HTML_NELEM(html_drop_names)},
    {HTML_DROP_QUIET, html_quiet_names, HTML_NELEM(html_quiet_names)},
};

/* How pp_html_to_text reads kept elements besides br, li, td, th: these
 * end a paragraph (a blank line follows), those a line. */
static const char html_text_paragraphs[] =
    " address blockquote dl figure h1 h2 h3 h4 h5 h6 hr ol p pre table ul ";
static const char html_text_lines[] = " article aside caption center dd details div dt "
                                      "figcaption footer header main nav section summary tr ";

/* Presentational attributes any kept element may carry, sorted (href on
 * <a> and src on <img> are checked on their own). */
static const char *const html_attributes[] = {
    "abbr",    "align",    "alt",      "bgcolor", "border",  "cellpadding", "cellspacing", "color",
    "colspan", "datetime", "dir",      "face",    "headers", "height",      "hspace",      "lang",
    "nowrap",  "open",     "reversed", "rowspan", "scope",   "size",        "span",        "start",
    "summary", "title",    "type",     "valign",  "value",   "vspace",      "width",
};

/* The URLs kept: link targets, and images carried in the message (a
 * data: prefix must be followed by ';' or ','). */
static const char *const html_href_prefixes[] = {"http:", "https:", "mailto:", NULL};
static const char *const html_src_prefixes[] = {
    "cid:", "data:image/png", "data:image/gif", "data:image/jpeg", "data:image/webp", NULL};

typedef struct {
	pp_html_report_t *report;
	pp_buf_t url; /* a normalised URL */
} html_clean_t;

static int html_name_cmp(const void *key, const void *entry)
{
	return strcasecmp(*(const char *const *)key, *(const char *const *)entry);
}

/* html_listed - the spelling of name in the sorted list names, or NULL. */
static const char *html_listed(const char *const *names, size_t count, const char *name)
{
	const char *const *found = bsearch(&name, names, count, sizeof(*names), html_name_cmp);
	return found != NULL ? *found : NULL;
}

/* html_element_find - how the allowlist treats an element name. */
static html_element_t html_element_find(const xmlChar *name)
{
	for (size_t i = 0; i < HTML_NELEM(html_lists); i++) {
		const char *found =
		    html_listed(html_lists[i].names, html_lists[i].count, (const char *)name);
		if (found != NULL)
			return (html_element_t){html_lists[i].kind, found};
	}
	return (html_element_t){HTML_UNWRAP, NULL};
}

/* html_word_in - whether words (" a b c ") holds word. */
static int html_word_in(const char *words, const char *word)
{
	size_t n = strlen(word);
	for (const char *s = strstr(words, word); s != NULL; s = strstr(s + 1, word))
		if (s[-1] == ' ' && s[n] == ' ')
			return 1;
	return 0;
}

/* html_utf8_len - the length of the well-formed UTF-8 character (not
 * U+FFFE or U+FFFF, which libxml2 refuses) at s[0..n), 0 if there is none. */
static size_t html_utf8_len(const unsigned char *s, size_t n)
{
	size_t need;
	unsigned cp, min;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		need = 2, cp = s[0] & 0x1fu, min = 0x80;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		need = 3, cp = s[0] & 0x0fu, min = 0x800;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		need = 4, cp = s[0] & 0x07u, min = 0x10000;
	else
		return 0;
	if (n < need)
		return 0;
	for (size_t i = 1; i < need; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3fu);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || cp == 0xfffe ||
	    cp == 0xffff)
		return 0;
	return need;
}

/* html_clean_input - in as text libxml2 takes whole: NUL and every byte
 * that is not part of well-formed UTF-8 become U+FFFD, form feed a space,
 * other C0 controls (but TAB, LF, CR) are removed. */
static void html_clean_input(const char *in, size_t len, pp_buf_t *out)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t i = 0, run = 0;
	while (i < len) {
		unsigned char c = p[i];
		size_t n = 0;
		if ((c >= 0x20 && c < 0x80) || c == '\t' || c == '\n' || c == '\r')
			n = 1;
		else if (c >= 0x80)
			n = html_utf8_len(p + i, len - i);
		if (n > 0) {
			i += n;
			continue;
		}
		pp_buf_append(out, p + run, i - run);
		if (c == 0 || c >= 0x80)
			pp_buf_puts(out, "\xef\xbf\xbd");
		else if (c == '\f')
			pp_buf_puts(out, " ");
		run = ++i;
	}
	pp_buf_append(out, p + run, len - run);
}

static void html_count_error(void *ctx, xmlErrorPtr error)
{
	(void)error;
	(*(int *)ctx)++;
}

/* html_parse - the document libxml2 makes of html, or NULL when there is
 * nothing to parse; every complaint is counted in *errors, none printed. */
static xmlDocPtr html_parse(const char *html, size_t len, int *errors)
{
	pp_buf_t in;
	pp_buf_init(&in);
	if (html == NULL || len == 0)
		return NULL;
	if (len > HTML_MAX_INPUT) {
		len = HTML_MAX_INPUT;
		(*errors)++;
	}
	html_clean_input(html, len, &in);
	xmlStructuredErrorFunc saved = xmlStructuredError;
	void *saved_ctx = xmlStructuredErrorContext;
	xmlSetStructuredErrorFunc(errors, html_count_error);
	htmlParserCtxtPtr ctxt = htmlNewParserCtxt();
	if (ctxt == NULL)
		fatalx("html: cannot allocate a parser context");
	xmlDocPtr doc =
	    htmlCtxtReadMemory(ctxt, in.data, (int)in.len, NULL, "UTF-8", HTML_PARSE_OPTIONS);
	htmlFreeParserCtxt(ctxt);
	xmlSetStructuredErrorFunc(saved_ctx, saved);
	pp_buf_free(&in);
	return doc;
}

/* html_next_after - the node after node's subtree in document order,
 * without leaving stop's subtree; NULL at the end. */
static xmlNodePtr html_next_after(xmlNodePtr node, xmlNodePtr stop)
{
	while (node != NULL && node != stop) {
		if (node->next != NULL)
			return node->next;
		node = node->parent;
	}
	return NULL;
}

static void html_remove(xmlNodePtr node)
{
	xmlUnlinkNode(node);
	xmlFreeNode(node);
}

/* html_url_normalise - value as a browser reads a URL: without leading
 * and trailing white space or control characters and without the control
 * characters (TAB, CR, LF, ...) inside it. */
static void html_url_normalise(const char *value, pp_buf_t *out)
{
	const unsigned char *s = (const unsigned char *)value;
	size_t len = strlen(value);
	pp_buf_reset(out);
	while (len > 0 && s[len - 1] <= 0x20)
		len--;
	while (len > 0 && *s <= 0x20)
		s++, len--;
	for (size_t i = 0; i < len; i++)
		if (s[i] >= 0x20 && s[i] != 0x7f)
			pp_buf_append(out, s + i, 1);
	pp_buf_append(out, "", 0);
}

/* html_value_remote - whether an attribute value (or style sheet) refers
 * to a remote resource: a URL with "://" or starting "//", or CSS url() or
 * @import. Reuses c->url. */
static int html_value_remote(html_clean_t *c, const char *value)
{
	html_url_normalise(value, &c->url);
	const char *v = c->url.data;
	return strstr(v, "://") != NULL || strncmp(v, "//", 2) == 0 || strncmp(v, "\\\\", 2) == 0 ||
	       strcasestr(v, "url(") != NULL || strcasestr(v, "@import") != NULL;
}

/* html_url_allowed - whether url starts with one of prefixes (case-folded). */
static int html_url_allowed(const char *url, const char *const *prefixes)
{
	for (; *prefixes != NULL; prefixes++) {
		size_t n = strlen(*prefixes);
		if (strncasecmp(url, *prefixes, n) == 0 &&
		    ((*prefixes)[n - 1] == ':' || url[n] == ';' || url[n] == ','))
			return 1;
	}
	return 0;
}

/* html_count_remote - how many attributes and style sheets in node's
 * subtree (node included) refer to a remote resource. */
static int html_count_remote(html_clean_t *c, xmlNodePtr top)
{
	int count = 0;
	xmlNodePtr node = top;
	while (node != NULL) {
		if (node->type == XML_ELEMENT_NODE) {
			for (xmlAttrPtr a = node->properties; a != NULL; a = a->next) {
				xmlChar *value = xmlNodeGetContent((xmlNodePtr)a);
				count += value != NULL && html_value_remote(c, (const char *)value);
				xmlFree(value);
			}
		} else if ((node->type == XML_TEXT_NODE || node->type == XML_CDATA_SECTION_NODE) &&
		           node->content != NULL && node->parent != NULL &&
		           strcasecmp((const char *)node->parent->name, "style") == 0) {
			count += html_value_remote(c, (const char *)node->content);
		}
		if (node->type == XML_ELEMENT_NODE && node->children != NULL)
			node = node->children;
		else
			node = html_next_after(node, top);
	}
	return count;
}

/* html_drop - remove node with its content, counting it; the next node
 * to clean. */
static xmlNodePtr html_drop(html_clean_t *c, xmlNodePtr node, xmlNodePtr root, int counted)
{
	xmlNodePtr next = html_next_after(node, root);
	c->report->elements_removed += counted;
	c->report->remote_removed += html_count_remote(c, node);
	html_remove(node);
	return next;
}

/* html_attribute_check - 1 to keep the attribute as it is, 2 to keep it
 * as c->url (a checked href or src), 0 to drop it. element (the listed
 * name) NULL: drop all. */
static int html_attribute_check(html_clean_t *c, const char *element, const char *name,
                                const char *value)
{
	if (element == NULL)
		return 0;
	if (strcmp(element, "a") == 0 && strcasecmp(name, "href") == 0) {
		html_url_normalise(value, &c->url);
		return html_url_allowed(c->url.data, html_href_prefixes) ? 2 : 0;
	}
	if (strcmp(element, "img") == 0 && strcasecmp(name, "src") == 0) {
		html_url_normalise(value, &c->url);
		return html_url_allowed(c->url.data, html_src_prefixes) ? 2 : 0;
	}
	if (html_listed(html_attributes, HTML_NELEM(html_attributes), name) == NULL)
		return 0;
	return html_value_remote(c, value) ? 0 : 1;
}

/* html_clean_attributes - drop what the allowlist for element does not keep
 * (all of them when it is NULL); how many checked URLs (href, src) were kept. */
static int html_clean_attributes(html_clean_t *c, xmlNodePtr node, const char *element)
{
	int urls = 0;
	xmlAttrPtr next;
	for (xmlAttrPtr a = node->properties; a != NULL; a = next) {
		next = a->next;
		xmlChar *raw = xmlNodeGetContent((xmlNodePtr)a);
		const char *value = raw != NULL ? (const char *)raw : "";
		int verdict = html_attribute_check(c, element, (const char *)a->name, value);
		if (verdict == 2) {
			xmlSetProp(node, a->name, BAD_CAST c->url.data);
			urls++;
		} else if (verdict == 0) {
			c->report->attributes_removed++;
			c->report->remote_removed += html_value_remote(c, value);
			xmlRemoveProp(a);
		}
		xmlFree(raw);
	}
	return urls;
}

/* html_unwrap - replace node by its children (checked next) and return
 * the next node to clean. */
static xmlNodePtr html_unwrap(html_clean_t *c, xmlNodePtr node, xmlNodePtr root)
{
	xmlNodePtr first = node->children, last = node->last, parent = node->parent;
	html_clean_attributes(c, node, NULL);
	if (first == NULL) {
		xmlNodePtr next = html_next_after(node, root);
		html_remove(node);
		return next;
	}
	for (xmlNodePtr n = first; n != NULL; n = n->next)
		n->parent = parent;
	first->prev = node->prev;
	if (node->prev != NULL)
		node->prev->next = first;
	else
		parent->children = first;
	last->next = node->next;
	if (node->next != NULL)
		node->next->prev = last;
	else
		parent->last = last;
	node->children = node->last = NULL;
	node->prev = node->next = node->parent = NULL;
	xmlFreeNode(node);
	return first;
}

/* html_clean_element - apply the allowlist to one element; the next node
 * to clean (its first child when it is kept). */
static xmlNodePtr html_clean_element(html_clean_t *c, xmlNodePtr node, xmlNodePtr root)
{
	html_element_t e = html_element_find(node->name);
	switch (e.kind) {
	case HTML_UNWRAP:
		return html_unwrap(c, node, root);
	case HTML_DROP:
	case HTML_DROP_QUIET:
		return html_drop(c, node, root, e.kind == HTML_DROP);
	case HTML_CONTAINER:
		html_clean_attributes(c, node, NULL);
		break;
	case HTML_KEEP:
	case HTML_VOID: {
		int urls = html_clean_attributes(c, node, e.name);
		if (strcmp(e.name, "img") == 0 && urls == 0)
			return html_drop(c, node, root, 1);
		if (strcmp(e.name, "a") == 0 && urls > 0)
			xmlSetProp(node, BAD_CAST "rel", BAD_CAST HTML_LINK_REL);
		if (e.kind == HTML_VOID)
			return html_next_after(node, root);
		break;
	}
	}
	return node->children != NULL ? node->children : html_next_after(node, root);
}

/* html_clean - apply the allowlist to the whole document; the element whose
 * children are to be shown (the root, its head removed), or NULL. libxml2
 * puts what follows </body> after the body, as browsers put it inside. */
static xmlNodePtr html_clean(xmlDocPtr doc, pp_html_report_t *report)
{
	xmlNodePtr root = xmlDocGetRootElement(doc), node, next;
	if (root == NULL || strcasecmp((const char *)root->name, "html") != 0)
		return NULL;
	html_clean_t c = {report, {NULL, 0, 0}};
	for (node = root; node != NULL; node = next) {
		if (node->type == XML_ELEMENT_NODE) {
			next = html_clean_element(&c, node, root);
		} else {
			next = html_next_after(node, root);
			if (node->type != XML_TEXT_NODE)
				html_remove(node);
		}
	}
	pp_buf_free(&c.url);
	for (node = root->children; node != NULL; node = next) {
		next = node->next;
		if (node->type == XML_ELEMENT_NODE &&
		    strcasecmp((const char *)node->name, "head") == 0)
			html_remove(node);
	}
	return root;
}

typedef void (*html_visit_t)(void *ctx, xmlNodePtr node, html_element_t e, int leaving);

/* html_walk - visit parent's descendants in document order: elements on
 * the way in and out (leaving set), other nodes once; void elements'
 * children are skipped. */
static void html_walk(xmlNodePtr parent, html_visit_t visit, void *ctx)
{
	xmlNodePtr node = parent->children;
	while (node != NULL) {
		int element = node->type == XML_ELEMENT_NODE;
		html_element_t e = {HTML_UNWRAP, NULL};
		if (element)
			e = html_element_find(node->name);
		visit(ctx, node, e, 0);
		if (element && node->children != NULL && e.kind != HTML_VOID) {
			node = node->children;
			continue;
		}
		if (element)
			visit(ctx, node, e, 1);
		while (node->next == NULL) {
			node = node->parent;
			if (node == NULL || node == parent)
				return;
			visit(ctx, node, html_element_find(node->name), 1);
		}
		node = node->next;
	}
}

/* html_put_escaped - s with &, <, > (and " in attribute values) escaped. */
static void html_put_escaped(pp_buf_t *out, const char *s, int attribute)
{
	for (;;) {
		size_t n = strcspn(s, attribute ? "&<>\"" : "&<>");
		pp_buf_append(out, s, n);
		if (s[n] == '\0')
			return;
		pp_buf_puts(out, s[n] == '&'   ? "&amp;"
		                 : s[n] == '<' ? "&lt;"
		                 : s[n] == '>' ? "&gt;"
		                               : "&quot;");
		s += n + 1;
	}
}

static void html_serialise_visit(void *ctx, xmlNodePtr node, html_element_t e, int leaving)
{
	pp_buf_t *out = ctx;
	if (node->type == XML_TEXT_NODE) {
		if (node->content != NULL)
			html_put_escaped(out, (const char *)node->content, 0);
		return;
	}
	if (e.kind != HTML_KEEP && e.kind != HTML_VOID)
		return; /* unwrapped: only its children are shown */
	if (leaving) {
		if (e.kind == HTML_KEEP)
			pp_buf_printf(out, "</%s>", e.name);
		return;
	}
	pp_buf_printf(out, "<%s", e.name);
	for (xmlAttrPtr a = node->properties; a != NULL; a = a->next) {
		xmlChar *value = xmlNodeGetContent((xmlNodePtr)a);
		pp_buf_printf(out, " %s=\"", (const char *)a->name);
		html_put_escaped(out, value != NULL ? (const char *)value : "", 1);
		pp_buf_puts(out, "\"");
		xmlFree(value);
	}
	pp_buf_puts(out, ">");
}

char *pp_html_sanitize(const char *html, size_t len, pp_html_report_t *report)
{
	pp_html_report_t scratch;
	pp_buf_t out;
	if (report == NULL)
		report = &scratch;
	memset(report, 0, sizeof(*report));
	pp_buf_init(&out);
	xmlDocPtr doc = html_parse(html, len, &report->parse_errors);
	if (doc == NULL)
		return pp_buf_steal(&out);
	xmlNodePtr root = html_clean(doc, report);
	if (root != NULL)
		html_walk(root, html_serialise_visit, &out);
	xmlFreeDoc(doc);
	return pp_buf_steal(&out);
}

/* The reading of pp_html_to_text: white space collapses to one space (but
 * inside <pre>), line and paragraph breaks wait until text follows. */
typedef struct {
	pp_buf_t out;
	int newlines; /* pending: 1 ends the line, 2 also leaves a blank one */
	int space;    /* a space is pending */
	int bullet;   /* a list item's "- " is pending */
	int pre;      /* inside this many <pre> */
} html_text_t;

static void html_text_flush(html_text_t *t)
{
	if (t->newlines > 0 && t->out.len > 0)
		pp_buf_append(&t->out, "\n\n", (size_t)t->newlines);
	else if (t->space && !t->bullet && t->out.len > 0 && t->out.data[t->out.len - 1] != '\n')
		pp_buf_puts(&t->out, " ");
	if (t->bullet)
		pp_buf_puts(&t->out, "- ");
	t->newlines = t->space = t->bullet = 0;
}

/* html_text_put - append text: blanks collapse (but inside <pre>, where
 * only CR goes), a no-break space is a plain one. */
static void html_text_put(html_text_t *t, const char *s)
{
	while (*s != '\0') {
		size_t n = strcspn(s, t->pre ? "\r\xc2" : " \t\n\r\f\xc2");
		if (s[n] == '\xc2' && s[n + 1] != '\xa0')
			n++; /* another character from U+0080 to U+00BF */
		if (n > 0) {
			html_text_flush(t);
			pp_buf_append(&t->out, s, n);
			s += n;
		} else if (*s == '\xc2') {
			html_text_flush(t);
			pp_buf_puts(&t->out, " ");
			s += 2;
		} else {
			t->space |= !t->pre;
			s++;
		}
	}
}

static void html_text_break(html_text_t *t, int newlines)
{
	if (t->newlines < newlines)
		t->newlines = newlines;
	t->space = 0;
}

static void html_text_visit(void *ctx, xmlNodePtr node, html_element_t e, int leaving)
{
	html_text_t *t = ctx;
	if (node->type == XML_TEXT_NODE && node->content != NULL)
		html_text_put(t, (const char *)node->content);
	if (e.kind != HTML_KEEP && e.kind != HTML_VOID)
		return;
	if (strcmp(e.name, "br") == 0 && !leaving) {
		html_text_flush(t);
		pp_buf_puts(&t->out, "\n");
	} else if (strcmp(e.name, "li") == 0) {
		html_text_break(t, 1);
		t->bullet = !leaving;
	} else if (strcmp(e.name, "td") == 0 || strcmp(e.name, "th") == 0) {
		t->space |= leaving;
	} else if (html_word_in(html_text_paragraphs, e.name)) {
		html_text_break(t, 2);
	} else if (html_word_in(html_text_lines, e.name)) {
		html_text_break(t, 1);
	}
	if (strcmp(e.name, "pre") == 0)
		t->pre += leaving ? -1 : 1;
}

/* html_text_finish - text with trailing blanks cut from every line, no
 * leading or trailing blank lines, runs of blank lines made one, and a
 * final newline; owned. */
static char *html_text_finish(const pp_buf_t *text)
{
	pp_buf_t out;
	int blank = 0;
	pp_buf_init(&out);
	const char *s = text->data != NULL ? text->data : "", *end = s + text->len;
	while (s < end) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		const char *line_end = nl != NULL ? nl : end;
		size_t n = (size_t)(line_end - s);
		while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
			n--;
		if (n == 0) {
			blank = out.len > 0;
		} else {
			if (blank)
				pp_buf_puts(&out, "\n");
			pp_buf_append(&out, s, n);
			pp_buf_puts(&out, "\n");
			blank = 0;
		}
		s = line_end + 1;
	}
	return pp_buf_steal(&out);
}

char *pp_html_to_text(const char *html, size_t len)
{
	pp_html_report_t report = {0, 0, 0, 0};
	html_text_t t = {{NULL, 0, 0}, 0, 0, 0, 0};
	xmlDocPtr doc = html_parse(html, len, &report.parse_errors);
	if (doc != NULL) {
		xmlNodePtr root = html_clean(doc, &report);
		if (root != NULL)
			html_walk(root, html_text_visit, &t);
		xmlFreeDoc(doc);
	}
	char *text = html_text_finish(&t.out);
	pp_buf_free(&t.out);
	return text;
}
