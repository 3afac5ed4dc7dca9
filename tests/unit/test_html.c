/*
 * test_html.c - the HTML sanitiser (common/pp_html.c), table-driven:
 * scripts, event handlers, obfuscated javascript:/vbscript:/data: links,
 * forms, frames, remote images and CSS, srcset, base, meta refresh, svg,
 * conditional comments, NUL bytes and invalid UTF-8, deep nesting, a 20 MB
 * letter, empty input, and the plain-text reading. Every sanitised output
 * is also checked by an independent scan of its markup (tags, attributes
 * and URLs against the allowlist).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "pp_html.h"
#include "pp_merge.h"
#include "pp_util.h"

#define REL "rel=\"noopener noreferrer nofollow\""

static const char *const safe_tags[] = {
    "a",   "abbr",    "b",       "blockquote", "br",    "caption", "code",  "col",    "colgroup",
    "dd",  "del",     "details", "div",        "dl",    "dt",      "em",    "font",   "h1",
    "h2",  "h3",      "h4",      "h5",         "h6",    "hr",      "i",     "img",    "li",
    "ol",  "p",       "pre",     "q",          "s",     "small",   "span",  "strike", "strong",
    "sub", "summary", "sup",     "table",      "tbody", "td",      "tfoot", "th",     "thead",
    "tr",  "tt",      "u",       "ul",         "wbr",   "center",  "cite",  "ins",    "kbd",
};

static const char *const safe_attributes[] = {
    "href",   "src",     "rel",     "alt",    "title",       "align",       "valign",  "width",
    "height", "colspan", "rowspan", "border", "cellpadding", "cellspacing", "bgcolor", "color",
    "face",   "size",    "dir",     "lang",   "start",       "type",        "open",
};

static int listed(const char *const *list, size_t n, const char *s, size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(list[i]) == len && strncmp(list[i], s, len) == 0)
			return 1;
	return 0;
}
#define LISTED(list, s, len) listed(list, sizeof(list) / sizeof(list[0]), s, len)

/* check_value - an attribute value as the allowlist lets it through. */
static void check_value(const char *name, size_t nlen, const char *v, size_t vlen, const char *out)
{
	char *low = xstrndup(v, vlen);
	for (char *p = low; *p; p++)
		*p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
	if (nlen == 4 && strncmp(name, "href", 4) == 0) {
		if (strncmp(low, "http:", 5) != 0 && strncmp(low, "https:", 6) != 0 &&
		    strncmp(low, "mailto:", 7) != 0)
			fail_msg("unsafe href \"%s\" in %.200s", low, out);
	} else if (nlen == 3 && strncmp(name, "src", 3) == 0) {
		if (strncmp(low, "cid:", 4) != 0 && strncmp(low, "data:image/png", 14) != 0 &&
		    strncmp(low, "data:image/gif", 14) != 0 &&
		    strncmp(low, "data:image/jpeg", 15) != 0 &&
		    strncmp(low, "data:image/webp", 15) != 0)
			fail_msg("unsafe src \"%s\" in %.200s", low, out);
	} else if (strstr(low, "://") != NULL || strstr(low, "url(") != NULL ||
	           strstr(low, "script:") != NULL || strncmp(low, "//", 2) == 0) {
		fail_msg("remote or script value \"%s\" in %.200s", low, out);
	}
	free(low);
}

/* assert_markup_safe - scan out as a browser would: valid UTF-8, only
 * allowlisted tags and attributes, double-quoted values, no stray '>' in
 * text, no comment, no URL but in href or (cid:/data:image) src. */
static void assert_markup_safe(const char *out)
{
	const char *s = out;
	if (!pp_merge_utf8_valid(out, strlen(out)))
		fail_msg("output is not valid UTF-8");
	while ((s = strpbrk(s, "<>")) != NULL) {
		if (*s == '>')
			fail_msg("stray '>' in text: %.200s", s);
		s += s[1] == '/' ? 2 : 1;
		size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789");
		if (!LISTED(safe_tags, s, n))
			fail_msg("tag <%.*s> survived: %.200s", (int)n, s, out);
		s += n;
		while (*s != '>') {
			if (*s != ' ')
				fail_msg("malformed tag at %.100s", s);
			const char *name = ++s;
			n = strspn(s, "abcdefghijklmnopqrstuvwxyz");
			if (!LISTED(safe_attributes, name, n))
				fail_msg("attribute %.*s survived: %.200s", (int)n, name, out);
			s += n;
			if (strncmp(s, "=\"", 2) != 0)
				fail_msg("unquoted attribute at %.100s", s);
			const char *end = strchr(s + 2, '"');
			if (end == NULL)
				fail_msg("unterminated attribute at %.100s", s);
			check_value(name, n, s + 2, (size_t)(end - s - 2), out);
			s = end + 1;
		}
		s++;
	}
}

/* sanitize_checked - pp_html_sanitize(html) scanned by assert_markup_safe. */
static char *sanitize_checked(const char *html, size_t len, pp_html_report_t *report)
{
	char *out = pp_html_sanitize(html, len, report);
	assert_non_null(out);
	assert_markup_safe(out);
	return out;
}

typedef struct {
	const char *html;
	const char *expect;               /* the whole output, or NULL */
	const char *want[4];              /* each must be in the output */
	const char *deny[6];              /* none may be in it (case-insensitive) */
	int elements, attributes, remote; /* at least this many removed */
} sanitize_case_t;

static const sanitize_case_t sanitize_cases[] = {
    /* Ordinary markup survives as it is. */
    {"<p>Hello <b>Anna</b>, <i>see</i> <u>you</u> <em>at</em> <strong>2</strong></p>",
     "<p>Hello <b>Anna</b>, <i>see</i> <u>you</u> <em>at</em> <strong>2</strong></p>",
     {NULL},
     {NULL},
     0,
     0,
     0},
    {"<h1>T</h1><ul><li>a</li></ul><ol start=\"3\"><li>b</li></ol><blockquote>q</blockquote>"
     "<pre>x  y</pre><hr><table border=\"1\"><tr><td colspan=\"2\" align=\"center\">c</td></tr>"
     "</table><font face=\"Arial\" color=\"red\">f</font>",
     "<h1>T</h1><ul><li>a</li></ul><ol start=\"3\"><li>b</li></ol><blockquote>q</blockquote>"
     "<pre>x  y</pre><hr><table border=\"1\"><tr><td colspan=\"2\" align=\"center\">c</td></tr>"
     "</table><font face=\"Arial\" color=\"red\">f</font>",
     {NULL},
     {NULL},
     0,
     0,
     0},
    {"<html><head><title>Secret title</title><meta charset=\"utf-8\"></head>"
     "<body><h1>Head</h1><p>x</p></body></html>",
     "<h1>Head</h1><p>x</p>",
     {NULL},
     {"Secret", "charset"},
     0,
     0,
     0},
    {"<p id=\"x\" class=\"c\" name=\"n\" align=\"center\" dir=\"rtl\" lang=\"de\" "
     "title=\"T\">p</p>",
     "<p align=\"center\" dir=\"rtl\" lang=\"de\" title=\"T\">p</p>",
     {NULL},
     {NULL},
     0,
     3,
     0},
    {"<p title='a\"b&lt;c'>1 &lt; 2 &amp;&amp; 3 &gt; 2 &quot;q&quot;</p>",
     "<p title=\"a&quot;b&lt;c\">1 &lt; 2 &amp;&amp; 3 &gt; 2 \"q\"</p>",
     {NULL},
     {NULL},
     0,
     0,
     0},
    /* Scripts, in every spelling. */
    {"<p>a</p><script>alert(1)</script><p>b</p>", "<p>a</p><p>b</p>", {NULL}, {"alert"}, 1, 0, 0},
    {"<SCRIPT SRC=\"https://t.example/x.js\"></SCRIPT><ScRiPt>alert(2)</sCrIpT><div>k</div>",
     NULL,
     {"<div>k</div>"},
     {"<script", "x.js", "alert", "t.example"},
     2,
     0,
     1},
    {"<scr<script>ipt>alert(1)</script><p>k</p>", NULL, {"<p>k</p>"}, {"<scr", "<ipt"}, 0, 0, 0},
    {"<p title=\"<script>alert(1)</script>\">t</p>",
     NULL,
     {"&lt;script&gt;alert(1)&lt;/script&gt;", ">t</p>"},
     {"<script"},
     0,
     0,
     0},
    {"&lt;script&gt;alert(1)&lt;/script&gt;", NULL, {"&lt;script&gt;"}, {"<script"}, 0, 0, 0},
    {"<noscript><p title=\"</noscript><img src=x onerror=alert(1)>\"></noscript><p>n</p>",
     NULL,
     {"<p>n</p>"},
     {"onerror", "alert", "<img", "noscript"},
     1,
     0,
     0},
    {"<template><script>x()</script><p>tpl</p></template><p>k</p>",
     "<p>k</p>",
     {NULL},
     {"tpl", "template"},
     1,
     0,
     0},
    /* Event handlers. */
    {"<img src=\"cid:logo\" onerror=\"alert(1)\" onload=x><div onclick=\"z()\" "
     "OnMouseOver=w>d</div>",
     "<img src=\"cid:logo\"><div>d</div>",
     {NULL},
     {"onerror", "onload", "onclick", "onmouse"},
     0,
     4,
     0},
    {"<body onload=\"steal()\" background=\"http://t.example/bg.png\" bgcolor=red><p>b</p></body>",
     "<p>b</p>",
     {NULL},
     {"steal", "t.example"},
     0,
     3,
     1},
    {"<svg onload=\"alert(1)\"><script>alert(2)</script><text>t</text></svg><p>after</p>",
     "<p>after</p>",
     {NULL},
     {"svg", "alert"},
     1,
     0,
     0},
    {"<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
     NULL,
     {NULL},
     {"math", "onerror", "<style", "<img"},
     1,
     0,
     0},
    {"<a xlink:href=\"javascript:alert(1)\">x</a><svg><a xlink:href=\"javascript:alert(2)\">y</a>"
     "</svg>",
     "<a>x</a>",
     {NULL},
     {"xlink", "javascript"},
     1,
     1,
     0},
    /* Safe links keep their target and gain rel; target goes. */
    {"<a href=\"HTTPS://example.org/a?b=1&amp;c=2\" target=\"_blank\" rel=\"opener\">x</a>",
     "<a href=\"HTTPS://example.org/a?b=1&amp;c=2\" " REL ">x</a>",
     {NULL},
     {"target", "\"opener\""},
     0,
     2,
     0},
    {"<a href=\" \thttp://example.org/\n \">x</a><a href=\"mailto:anna@example.net\">m</a>",
     "<a href=\"http://example.org/\" " REL ">x</a><a href=\"mailto:anna@example.net\" " REL
     ">m</a>",
     {NULL},
     {NULL},
     0,
     0,
     0},
    {"<a href=\"/login\">r</a><a href=\"#top\">t</a><a href=\"ftp://x.example/\">f</a>",
     "<a>r</a><a>t</a><a>f</a>",
     {NULL},
     {NULL},
     0,
     3,
     0},
    /* Forms, frames and plugins go with their content. */
    {"<form action=\"https://evil.example/steal\"><p>Password:</p><input type=password name=p>"
     "<button formaction=\"https://evil.example\">Go</button><select><option>1</select>"
     "<textarea>t</textarea></form><p>kept</p>",
     "<p>kept</p>",
     {NULL},
     {"password", "evil", "button", "option"},
     1,
     0,
     1},
    {"<iframe src=\"https://evil.example/\"></iframe><iframe srcdoc=\"&lt;script&gt;\"></iframe>"
     "<frameset><frame src=\"https://evil.example/f\"></frameset><p>k</p>",
     NULL,
     {"<p>k</p>"},
     {"iframe", "srcdoc", "evil", "frame"},
     2,
     0,
     1},
    {"<object data=\"https://t.example/f.swf\"><param name=movie value=\"https://t.example/m\">"
     "<embed src=\"https://t.example/e\"></object><applet code=A></applet><p>o</p>",
     NULL,
     {"<p>o</p>"},
     {"object", "embed", "applet", "t.example"},
     2,
     0,
     3},
    /* Nothing remote: images, CSS, srcset, background, poster, base, refresh. */
    {"<p>Hi<img src=\"http://tracker.example/p.gif\" width=1><img src=\"https://t.example/y.png\">"
     "<img src=\"//t.example/z.png\"><img src=\"cid:part1@x\" alt=\"Logo\">"
     "<img src=\"data:image/png;base64,iVBORw0KGgo=\" alt=\"dot\">"
     "<img src=\"data:image/svg+xml;base64,PHN2Zz4=\"><img src=\"javascript:alert(1)\"><img></p>",
     "<p>Hi<img src=\"cid:part1@x\" alt=\"Logo\"><img src=\"data:image/png;base64,iVBORw0KGgo=\" "
     "alt=\"dot\"></p>",
     {NULL},
     {"tracker", "svg", "javascript"},
     6,
     5,
     3},
    {"<div style=\"background-image: url('https://t.example/a.png')\">x</div>"
     "<p style=\"color:red\">y</p><span STYLE=\"behavior:url(x.htc)\">z</span>",
     "<div>x</div><p>y</p><span>z</span>",
     {NULL},
     {"style", "url("},
     0,
     3,
     2},
    {"<style>body{background:url(http://t.example/b.png)} @import url(https://t.example/s.css);"
     "</style><p>t</p>",
     NULL,
     {"<p>t</p>"},
     {"<style", "url(", "@import", "t.example"},
     1,
     0,
     1},
    {"<table background=\"https://t.example/bg.png\"><tr><td background=\"http://t.example/c.png\">"
     "c</td></tr></table><img src=\"cid:a\" srcset=\"https://t.example/a2.png 2x\" "
     "lowsrc=\"http://t.example/l.png\" dynsrc=\"http://t.example/d.avi\">"
     "<video poster=\"http://t.example/p.png\"></video>",
     "<table><tr><td>c</td></tr></table><img src=\"cid:a\">",
     {NULL},
     {"background", "srcset", "lowsrc", "poster", "t.example"},
     1,
     5,
     6},
    {"<base href=\"https://evil.example/\"><a href=\"/login\">l</a>",
     NULL,
     {"<a>l</a>"},
     {"base", "evil"},
     1,
     1,
     1},
    {"<meta http-equiv=\"refresh\" content=\"0;url=https://evil.example/\"><p>m</p>",
     NULL,
     {"<p>m</p>"},
     {"refresh", "evil", "meta"},
     0,
     0,
     1},
    {"<link rel=stylesheet href=\"https://t.example/s.css\"><p>l</p>",
     NULL,
     {"<p>l</p>"},
     {"link", "t.example"},
     1,
     0,
     1},
    {"<p title=\"see https://t.example/\" alt=\"//t.example/x\">x</p>",
     "<p>x</p>",
     {NULL},
     {"t.example"},
     0,
     2,
     2},
    /* Comments go, conditional ones with what they hide. */
    {"<!--[if IE]><script>alert(1)</script><img src=\"http://t.example/x\"><![endif]--><p>c</p>"
     "<!--[if !mso]><!--><p>nomso</p><!--<![endif]--><!-- plain -->",
     "<p>c</p><p>nomso</p>",
     {NULL},
     {"<!--", "alert", "t.example", "endif"},
     0,
     0,
     0},
    /* Unknown elements are unwrapped, their attributes dropped. */
    {"<custom-tag data-x=\"1\"><blink>b</blink> text</custom-tag><marquee onstart=x()>m</marquee>",
     NULL,
     {"b text", "m"},
     {"custom", "blink", "data-x", "marquee", "onstart"},
     0,
     2,
     0},
    {"<div><![CDATA[<script>alert(1)</script>]]></div>",
     NULL,
     {"<div>"},
     {"<script", "alert"},
     1,
     0,
     0},
};

static void check_case(const sanitize_case_t *c, size_t i, const char *out,
                       const pp_html_report_t *r)
{
	if (c->expect != NULL && strcmp(out, c->expect) != 0)
		fail_msg("case %zu: got\n  %s\nwant\n  %s", i, out, c->expect);
	for (size_t j = 0; j < 4 && c->want[j] != NULL; j++)
		if (strstr(out, c->want[j]) == NULL)
			fail_msg("case %zu: \"%s\" missing from %s", i, c->want[j], out);
	for (size_t j = 0; j < 6 && c->deny[j] != NULL; j++)
		if (strcasestr(out, c->deny[j]) != NULL)
			fail_msg("case %zu: \"%s\" survived in %s", i, c->deny[j], out);
	if (r->elements_removed < c->elements || r->attributes_removed < c->attributes ||
	    r->remote_removed < c->remote)
		fail_msg(
		    "case %zu: removed elements=%d attributes=%d remote=%d, want at least %d %d %d",
		    i, r->elements_removed, r->attributes_removed, r->remote_removed, c->elements,
		    c->attributes, c->remote);
}

static void test_sanitize(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(sanitize_cases) / sizeof(sanitize_cases[0]); i++) {
		const sanitize_case_t *c = &sanitize_cases[i];
		pp_html_report_t r;
		char *out = sanitize_checked(c->html, strlen(c->html), &r);
		check_case(c, i, out, &r);
		free(out);
		/* The report is optional. */
		out = pp_html_sanitize(c->html, strlen(c->html), NULL);
		assert_non_null(out);
		free(out);
	}
}

/* Every spelling of a script link loses its href (and only that). */
static const char *const bad_hrefs[] = {
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    " \t javascript:alert(1)",
    "java\tscript:alert(1)",
    "java\nscript:alert(1)",
    "java\rscript:alert(1)",
    "java&#x09;script:alert(1)",
    "java&#10;script:alert(1)",
    "&#106;&#97;vascript:alert(1)",
    "&#x6A;avascript&#x3A;alert(1)",
    "jav&#x61;script:alert(1)",
    "javascript&colon;alert(1)",
    "&#0000106avascript:alert(1)",
    "\x01javascript:alert(1)",
    "java\x0bscript:alert(1)",
    "vbscript:msgbox(1)",
    "VBScript:msgbox(1)",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
    " DATA:text/html,<script>alert(1)</script>",
    "livescript:alert(1)",
    "file:///etc/passwd",
};

static void test_bad_hrefs(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_hrefs) / sizeof(bad_hrefs[0]); i++) {
		char *html =
		    xasprintf("<a href=\"%s\" onclick=\"alert(2)\">click</a>", bad_hrefs[i]);
		pp_html_report_t r;
		char *out = sanitize_checked(html, strlen(html), &r);
		if (strcmp(out, "<a>click</a>") != 0)
			fail_msg("href %zu \"%s\": got %s", i, bad_hrefs[i], out);
		assert_int_equal(r.attributes_removed, 2);
		free(out);
		free(html);
	}
}

/* NUL bytes and invalid UTF-8: replaced, never a crash or a cut. */
static void test_bytes(void **state)
{
	(void)state;
	static const char html[] = "<p>a\0b</p><scr\0ipt>alert(1)</script>"
	                           "<p>\xff\xfe c\xc3\x28 d \xed\xa0\x80 e \xf4\x90\x80\x80 "
	                           "\xc0\xaf f\xc3\xa9\x01\x02\x7f</p><a href=\"java\0script:x\">"
	                           "l</a><a href=\"java\x01script:x\">m</a><p>end</p>";
	pp_html_report_t r;
	char *out = sanitize_checked(html, sizeof(html) - 1, &r);
	assert_non_null(strstr(out, "<p>a\xef\xbf\xbd"
	                            "b</p>"));
	assert_non_null(strstr(out, "f\xc3\xa9"));
	assert_non_null(strstr(out, "<a>l</a><a>m</a><p>end</p>"));
	assert_null(strstr(out, "\x01"));
	assert_null(strcasestr(out, "<scr"));
	assert_null(strcasestr(out, "script:"));
	free(out);
	/* Nothing but NULs and junk. */
	char junk[4096];
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (char)(i % 3 == 0 ? 0 : 0x80 + i % 64);
	out = sanitize_checked(junk, sizeof(junk), &r);
	assert_non_null(strstr(out, "\xef\xbf\xbd"));
	free(out);
	char *text = pp_html_to_text(html, sizeof(html) - 1);
	assert_non_null(strstr(text, "a\xef\xbf\xbd"
	                             "b\n"));
	assert_non_null(strstr(text, "end\n"));
	assert_true(pp_merge_utf8_valid(text, strlen(text)));
	free(text);
}

static void test_empty(void **state)
{
	(void)state;
	static const char *const empties[] = {
	    "",
	    " \n\t ",
	    "<!-- only a comment -->",
	    "<html><head><title>x</title></head></html>",
	    "<script>alert(1)</script>",
	    "<html><body></body></html>",
	};
	for (size_t i = 0; i < sizeof(empties) / sizeof(empties[0]); i++) {
		char *out = sanitize_checked(empties[i], strlen(empties[i]), NULL);
		if (strcmp(out, "") != 0)
			fail_msg("case %zu: got \"%s\"", i, out);
		free(out);
		char *text = pp_html_to_text(empties[i], strlen(empties[i]));
		assert_string_equal(text, "");
		free(text);
	}
	pp_html_report_t r = {9, 9, 9, 9};
	char *out = pp_html_sanitize(NULL, 0, &r);
	assert_string_equal(out, "");
	assert_int_equal(r.elements_removed + r.attributes_removed + r.remote_removed, 0);
	assert_int_equal(r.parse_errors, 0);
	free(out);
}

static char *nested(const char *open, const char *close, int depth, const char *inner)
{
	pp_buf_t b;
	pp_buf_init(&b);
	for (int i = 0; i < depth; i++)
		pp_buf_puts(&b, open);
	pp_buf_puts(&b, inner);
	for (int i = 0; i < depth; i++)
		pp_buf_puts(&b, close);
	pp_buf_puts(&b, "<p>after</p>");
	return pp_buf_steal(&b);
}

/* count - occurrences of needle in s (one pass: ASan's strstr measures
 * the whole haystack on every call). */
static size_t count(const char *s, const char *needle)
{
	size_t n = 0, len = strlen(needle);
	for (; *s != '\0'; s++)
		if (*s == *needle && strncmp(s, needle, len) == 0) {
			n++;
			s += len - 1;
		}
	return n;
}

/* 10 000 levels: libxml2 stops at 256 (counted), nothing overflows the
 * stack, the output stays balanced; at 200 levels nothing is lost. */
static void test_deep(void **state)
{
	(void)state;
	static const struct {
		const char *open, *close, *tag;
	} kinds[] = {
	    {"<div>", "</div>", "<div>"},
	    {"<b><i>", "</i></b>", "<b>"},
	    {"<x-unknown>", "</x-unknown>", NULL},
	    {"<table><tr><td>", "</td></tr></table>", "<table>"},
	    {"<div><form>", "</form></div>", "<div>"},
	};
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		char *html = nested(kinds[i].open, kinds[i].close, 10000, "deep<script>x</script>");
		pp_html_report_t r;
		char *out = sanitize_checked(html, strlen(html), &r);
		if (kinds[i].tag != NULL) {
			char close[32];
			snprintf(close, sizeof(close), "</%s", kinds[i].tag + 1);
			assert_true(count(out, kinds[i].tag) >= 1);
			assert_true(count(out, kinds[i].tag) <= 256);
			assert_int_equal(count(out, kinds[i].tag), count(out, close));
		}
		assert_true(strstr(out, "deep") != NULL || r.parse_errors > 0);
		char *text = pp_html_to_text(html, strlen(html));
		assert_true(pp_merge_utf8_valid(text, strlen(text)));
		free(text);
		free(out);
		free(html);
	}
	char *html = nested("<div>", "</div>", 200, "deep");
	pp_html_report_t r;
	char *out = sanitize_checked(html, strlen(html), &r);
	assert_int_equal(count(out, "<div>"), 200);
	assert_non_null(strstr(out, "deep"));
	assert_non_null(strstr(out, "<p>after</p>"));
	assert_int_equal(r.parse_errors, 0);
	free(out);
	free(html);
}

/* A 20 MB letter: every chunk cleaned the same way, the end still there. */
static void test_huge(void **state)
{
	(void)state;
	static const char chunk[] =
	    "<div class=\"row\"><p>Dear patient, your appointment is on Tuesday at 14:30. "
	    "Please bring your insurance card &amp; a list of medication.</p>"
	    "<script>track()</script><img src=\"https://tracker.example/p.gif\">"
	    "<a href=\"https://practice.example/book\" onclick=\"x()\">Book</a></div>\n";
	size_t n = (20u << 20) / (sizeof(chunk) - 1) + 1;
	pp_buf_t b;
	pp_buf_init(&b);
	for (size_t i = 0; i < n; i++)
		pp_buf_append(&b, chunk, sizeof(chunk) - 1);
	pp_buf_puts(&b, "<p>END-OF-LETTER</p>");
	assert_true(b.len > 20u << 20);
	pp_html_report_t r;
	char *out = sanitize_checked(b.data, b.len, &r);
	assert_int_equal(r.elements_removed, (int)(2 * n)); /* script and img */
	assert_int_equal(r.remote_removed, (int)n);
	assert_int_equal(r.attributes_removed, (int)(3 * n)); /* class, img src, onclick */
	assert_int_equal(count(out, "<a href=\"https://practice.example/book\" " REL ">Book</a>"),
	                 n);
	assert_non_null(strstr(out, "<p>END-OF-LETTER</p>"));
	assert_null(strstr(out, "tracker"));
	free(out);
	char *text = pp_html_to_text(b.data, b.len);
	assert_int_equal(count(text, "Book\n"), n);
	assert_non_null(strstr(text, "\nEND-OF-LETTER\n"));
	assert_null(strstr(text, "track()"));
	free(text);
	/* One run of text past libxml2's 10 MB limit: kept or counted. */
	pp_buf_reset(&b);
	pp_buf_puts(&b, "<p>");
	for (size_t i = 0; i < (12u << 20) / 8; i++)
		pp_buf_append(&b, "abcdefg ", 8);
	out = sanitize_checked(b.data, b.len, &r);
	assert_true(strlen(out) > 1000000);
	assert_true(strlen(out) >= b.len || r.parse_errors > 0);
	free(out);
	pp_buf_free(&b);
}

static const struct {
	const char *html, *text;
} text_cases[] = {
    {"<p>Dear Anna,</p><p>see you at 14:30.</p>", "Dear Anna,\n\nsee you at 14:30.\n"},
    {"<html><head><title>T</title><style>p{color:red}</style><script>var s='secret'</script>"
     "</head><body>Hi<br>there</body></html>",
     "Hi\nthere\n"},
    {"<ul><li>One</li><li> Two </li></ul>After", "- One\n- Two\n\nAfter\n"},
    {"A &amp; B &lt;tag&gt; &quot;q&quot; caf&eacute; &#x263A;&nbsp;x",
     "A & B <tag> \"q\" caf\xc3\xa9 \xe2\x98\xba x\n"},
    {"a   b\n\n  c\t<b>d</b>e", "a b c de\n"},
    {"<table><tr><td>A</td><td>B</td></tr><tr><th>C</th><td>D</td></tr></table>", "A B\nC D\n"},
    {"<p>a</p><br><br><br><br><p>b</p>", "a\n\nb\n"},
    {"x<br>y<br><br><br><br>z", "x\ny\n\nz\n"},
    {"<div>x</div><div></div><div> </div><div>y</div>", "x\ny\n"},
    {"<pre>  indented\n    code  \n</pre>after", "  indented\n    code\n\nafter\n"},
    {"<script>document.write('x')</script><noscript>ns</noscript>Text<!-- comment -->", "Text\n"},
    {"<style>.a{}</style><p>Styled</p><template>tpl</template>", "Styled\n"},
    {"<a href=\"https://x.example/\">link</a> text <img src=\"cid:x\" alt=\"pic\">.",
     "link text .\n"},
    {"<h1>Title</h1>Body<blockquote>Quoted</blockquote>End", "Title\n\nBody\n\nQuoted\n\nEnd\n"},
    {"<form><p>in form</p><input value=v></form>out", "out\n"},
    {"<p>caf\xc3\xa9 \xff</p>", "caf\xc3\xa9 \xef\xbf\xbd\n"},
    {"<p>a   </p>   <p>   b</p>", "a\n\nb\n"},
    {"<dl><dt>Term</dt><dd>Meaning</dd></dl>", "Term\nMeaning\n"},
    {"", ""},
    {"<p> </p><div>\n</div>", ""},
};

static void test_to_text(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(text_cases) / sizeof(text_cases[0]); i++) {
		char *text = pp_html_to_text(text_cases[i].html, strlen(text_cases[i].html));
		assert_non_null(text);
		if (strcmp(text, text_cases[i].text) != 0)
			fail_msg("case %zu: got \"%s\", want \"%s\"", i, text, text_cases[i].text);
		free(text);
	}
	/* NUL bytes are replaced, not an end. */
	char *text = pp_html_to_text("a\0b", 3);
	assert_string_equal(text, "a\xef\xbf\xbd"
	                          "b\n");
	free(text);
	text = pp_html_to_text(NULL, 0);
	assert_string_equal(text, "");
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sanitize), cmocka_unit_test(test_bad_hrefs),
	    cmocka_unit_test(test_bytes),    cmocka_unit_test(test_empty),
	    cmocka_unit_test(test_deep),     cmocka_unit_test(test_huge),
	    cmocka_unit_test(test_to_text),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
