/*
 * pp_html.h - the HTML sanitiser for incoming email: a copy of untrusted
 * HTML that is safe to show (allowlisted elements and attributes, nothing
 * remote but link targets), and its visible text for replies and previews.
 * Everything returned is owned by the caller (free()).
 *
 * What survives pp_html_sanitize:
 *  - elements: text formatting, headings, paragraphs, lists, tables,
 *    blockquote, pre, links, and img whose src is a cid: URL or a
 *    data:image/(png|gif|jpeg|webp) URL; unknown elements are unwrapped
 *    (their children kept); script, style, forms, frames, embedded objects,
 *    svg, math, media and the whole head are dropped with their content;
 *  - attributes: a short presentational allowlist (align, width, colspan,
 *    title, ...), href on <a> only with an http, https or mailto scheme
 *    (control characters and white space are removed first, the scheme is
 *    case-folded), src on <img> as above; no style, class, id or on*, and
 *    no other attribute whose value holds a URL ("://", "//...", url());
 *  - links get rel="noopener noreferrer nofollow" and no target;
 *  - comments, processing instructions and the doctype are dropped.
 * NUL bytes and invalid UTF-8 become U+FFFD, other control characters are
 * removed; the output is UTF-8 without NUL bytes.
 *
 * Limits, from libxml2's parser (HTML_PARSE_HUGE is not used): elements
 * nested deeper than 256 levels, or a single run of text longer than
 * 10 000 000 bytes, end the parse; what came before is kept, the rest is
 * dropped and counted as a parse error. Input past 256 MiB is ignored.
 */
#ifndef PP_HTML_H
#define PP_HTML_H

#include <stddef.h>

/*
 * What pp_html_sanitize took out. elements_removed counts elements dropped
 * with their content (not title and meta, which every letter has; not
 * unknown elements, which are unwrapped); attributes_removed every attribute
 * taken from an element that was not itself dropped (html and body
 * included; a link's old rel and target too); remote_removed how many
 * elements and attributes referred to a remote resource (a URL with "://"
 * or starting "//", or CSS with url() or @import), counting inside dropped
 * elements too - the "remote content blocked" signal.
 */
typedef struct {
	int elements_removed;   /* script, style, form, iframe, object, ... */
	int attributes_removed; /* on* handlers, style with url(), javascript: links, ... */
	int remote_removed;     /* remote images, CSS urls, srcset, background=... */
	int parse_errors;       /* libxml2's complaints (recovered) */
} pp_html_report_t;

/* pp_html_sanitize - a copy of untrusted HTML that is safe to show: the
 * cleaned children of its body, serialised as UTF-8 HTML. Owned, free();
 * never NULL (empty document -> ""). report may be NULL. */
char *pp_html_sanitize(const char *html, size_t len, pp_html_report_t *report);

/* pp_html_to_text - the visible text of untrusted HTML as UTF-8 plain text
 * (block elements end lines, <br> is a newline, script/style content
 * dropped, entities decoded, runs of blank lines collapsed), for quoting in
 * replies and previews. List items start with "- "; table cells are
 * separated by a space; no leading or trailing blank lines, and a final
 * newline unless the text is empty (""). Owned, free(); never NULL. */
char *pp_html_to_text(const char *html, size_t len);

#endif
