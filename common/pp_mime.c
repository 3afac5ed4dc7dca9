/*
 * pp_mime.c - the MIME writer: checks every header value, then lets GMime 3
 * encode headers (RFC 2047) and bodies (quoted-printable) and write the
 * message with CRLF line endings; the result is checked once more on the
 * wire rules before it is handed out. Owns GMime's initialisation.
 */
#include "pp_mime.h"

#include <gmime/gmime.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pp_merge.h"
#include "pp_util.h"

#define MIME_ZONE_CACHE 32 /* time zones kept loaded (a group has a few) */

static int mime_initialised;

/* Loading a zone reads its tzfile: keep the ones in use. */
static struct {
	char *name;
	GTimeZone *tz;
} mime_zones[MIME_ZONE_CACHE];

static void mime_init(void)
{
	if (!mime_initialised) {
		g_mime_init();
		mime_initialised = 1;
	}
}

void pp_mime_shutdown(void)
{
	for (int i = 0; i < MIME_ZONE_CACHE; i++) {
		if (mime_zones[i].tz != NULL)
			g_time_zone_unref(mime_zones[i].tz);
		free(mime_zones[i].name);
		mime_zones[i].tz = NULL;
		mime_zones[i].name = NULL;
	}
	if (mime_initialised) {
		g_mime_shutdown();
		mime_initialised = 0;
	}
}

/* mime_zone - a new reference to the named zone (UTC for NULL), or NULL
 * if the name is unknown. */
static GTimeZone *mime_zone(const char *name)
{
	if (name == NULL)
		return g_time_zone_new_utc();
	int i;
	for (i = 0; i < MIME_ZONE_CACHE && mime_zones[i].name != NULL; i++)
		if (strcmp(mime_zones[i].name, name) == 0)
			return g_time_zone_ref(mime_zones[i].tz);
	GTimeZone *tz = g_time_zone_new_identifier(name);
	if (tz == NULL)
		return NULL;
	if (i == MIME_ZONE_CACHE) { /* full: forget the oldest */
		g_time_zone_unref(mime_zones[0].tz);
		free(mime_zones[0].name);
		memmove(&mime_zones[0], &mime_zones[1],
		        sizeof(mime_zones[0]) * (MIME_ZONE_CACHE - 1));
		i = MIME_ZONE_CACHE - 1;
	}
	mime_zones[i].name = xstrdup(name);
	mime_zones[i].tz = g_time_zone_ref(tz);
	return tz;
}

static int mime_domain_valid(const char *d, size_t len)
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
	return mime_domain_valid(at + 1, len - llen - 1);
}

int pp_mime_message_id(char *out, size_t outlen, int64_t id, const char *domain)
{
	unsigned char rnd[8];
	if (!mime_domain_valid(domain, strlen(domain)) || RAND_bytes(rnd, sizeof(rnd)) != 1)
		return -1;
	int n =
	    snprintf(out, outlen, "<pp.%lld.%02x%02x%02x%02x%02x%02x%02x%02x@%s>", (long long)id,
	             rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7], domain);
	return n > 0 && (size_t)n < outlen ? 0 : -1;
}

/* mime_check_text - a one-line header value: valid UTF-8 without control
 * characters (TAB allowed). */
static int mime_check_text(const char *what, const char *s, char *err, size_t errlen)
{
	size_t len = strlen(s);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\r' || c == '\n') {
			snprintf(err, errlen, "%s contains a line break (CR or LF)", what);
			return -1;
		}
		if ((c < 0x20 && c != '\t') || c == 0x7F) {
			snprintf(err, errlen, "%s contains a control character", what);
			return -1;
		}
	}
	if (!pp_merge_utf8_valid(s, len)) {
		snprintf(err, errlen, "%s is not valid UTF-8", what);
		return -1;
	}
	return 0;
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
	return a->name ? mime_check_text(label, a->name, err, errlen) : 0;
}

static int mime_check_message_id(const char *id, char *err, size_t errlen)
{
	size_t len = id ? strlen(id) : 0;
	if (len < 5 || len > PP_MIME_MSGID_MAX || id[0] != '<' || id[len - 1] != '>')
		goto bad;
	const char *at = memchr(id, '@', len);
	if (at == NULL || at == id + 1 || at == id + len - 2 ||
	    memchr(at + 1, '@', len - (size_t)(at - id) - 1))
		goto bad;
	for (size_t i = 1; i + 1 < len; i++)
		if (id[i] <= ' ' || id[i] >= 0x7F || id[i] == '<' || id[i] == '>')
			goto bad;
	return 0;
bad:
	snprintf(err, errlen, "Message-ID is not of the form <left@right>");
	return -1;
}

static int mime_check_spec(const pp_mime_spec_t *s, char *err, size_t errlen)
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
	if (s->subject == NULL || mime_check_text("subject", s->subject, err, errlen) != 0) {
		if (s->subject == NULL)
			snprintf(err, errlen, "the message has no subject");
		return -1;
	}
	if (mime_check_message_id(s->message_id, err, errlen) != 0)
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
	return 0;
}

/* mime_header_text - the text GMime is to encode. GMime leaves ASCII that
 * looks like an RFC 2047 encoded word ("=?utf-8?q?...?=") as it is, so a
 * reader would decode it: such text is encoded here instead, wholly, as
 * UTF-8 base64 encoded words of at most 75 characters (RFC 2047 2), which
 * GMime then only folds. Owned result. */
static char *mime_header_text(const char *text)
{
	if (strstr(text, "=?") == NULL)
		return xstrdup(text);
	pp_buf_t out;
	pp_buf_init(&out);
	size_t len = strlen(text), pos = 0;
	while (pos < len) {
		size_t n = len - pos > 45 ? 45 : len - pos;
		/* Never split a UTF-8 sequence across two words. */
		while (pos + n < len && n > 0 && ((unsigned char)text[pos + n] & 0xC0) == 0x80)
			n--;
		gchar *b64 = g_base64_encode((const guchar *)text + pos, n);
		pp_buf_printf(&out, "%s=?UTF-8?B?%s?=", out.len ? " " : "", b64);
		g_free(b64);
		pos += n;
	}
	return pp_buf_steal(&out);
}

static void mime_add_addresses(GMimeMessage *m, GMimeAddressType type, const pp_mime_address_t *a,
                               size_t n)
{
	InternetAddressList *list = g_mime_message_get_addresses(m, type);
	for (size_t i = 0; i < n; i++) {
		char *name = mime_header_text(a[i].name ? a[i].name : "");
		InternetAddress *ia = internet_address_mailbox_new(name, a[i].addr);
		internet_address_set_charset(ia, "utf-8");
		free(name);
		internet_address_list_add(list, ia);
		g_object_unref(ia);
	}
}

/* mime_text_part - a text/<subtype> part, UTF-8, quoted-printable. Line
 * endings are made LF here; the writer turns every LF into CRLF. */
static GMimeObject *mime_text_part(const char *subtype, const char *text)
{
	pp_buf_t body;
	pp_buf_init(&body);
	for (const char *p = text; *p; p++) {
		if (*p == '\r') {
			if (p[1] == '\n')
				p++;
			pp_buf_append(&body, "\n", 1);
		} else {
			pp_buf_append(&body, p, 1);
		}
	}
	if (body.len == 0 || body.data[body.len - 1] != '\n')
		pp_buf_append(&body, "\n", 1);
	GMimePart *part = g_mime_part_new_with_type("text", subtype);
	g_mime_object_set_content_type_parameter(GMIME_OBJECT(part), "charset", "UTF-8");
	GMimeStream *stream = g_mime_stream_mem_new_with_buffer(body.data, body.len);
	GMimeDataWrapper *wrapper =
	    g_mime_data_wrapper_new_with_stream(stream, GMIME_CONTENT_ENCODING_DEFAULT);
	g_mime_part_set_content(part, wrapper);
	g_mime_part_set_content_encoding(part, GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE);
	g_object_unref(wrapper);
	g_object_unref(stream);
	pp_buf_free(&body);
	return GMIME_OBJECT(part);
}

static GMimeObject *mime_body(const pp_mime_spec_t *s)
{
	if (s->text == NULL)
		return mime_text_part("html", s->html);
	if (s->html == NULL)
		return mime_text_part("plain", s->text);
	GMimeMultipart *alt = g_mime_multipart_new_with_subtype("alternative");
	GMimeObject *text = mime_text_part("plain", s->text);
	GMimeObject *html = mime_text_part("html", s->html);
	g_mime_multipart_add(alt, text);
	g_mime_multipart_add(alt, html);
	g_object_unref(text);
	g_object_unref(html);
	return GMIME_OBJECT(alt);
}

static int mime_set_date(GMimeMessage *m, int64_t date, const char *zone, char *err, size_t errlen)
{
	GTimeZone *tz = mime_zone(zone);
	if (tz == NULL) {
		snprintf(err, errlen, "unknown time zone for the Date header");
		return -1;
	}
	GDateTime *utc = g_date_time_new_from_unix_utc(date);
	GDateTime *local = utc ? g_date_time_to_timezone(utc, tz) : NULL;
	if (local != NULL)
		g_mime_message_set_date(m, local);
	else
		snprintf(err, errlen, "the Date is out of range");
	if (local)
		g_date_time_unref(local);
	if (utc)
		g_date_time_unref(utc);
	g_time_zone_unref(tz);
	return local ? 0 : -1;
}

/* mime_write - serialise with CRLF line endings into owned memory. */
static char *mime_write(GMimeMessage *m, size_t *len)
{
	GMimeFormatOptions *opts = g_mime_format_options_clone(NULL);
	g_mime_format_options_set_newline_format(opts, GMIME_NEWLINE_FORMAT_DOS);
	GByteArray *bytes = g_byte_array_new();
	GMimeStream *out = g_mime_stream_mem_new_with_byte_array(bytes);
	g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(out), FALSE);
	g_mime_object_write_to_stream(GMIME_OBJECT(m), opts, out);
	g_mime_stream_flush(out);
	char *msg = xmalloc(bytes->len + 1);
	memcpy(msg, bytes->data, bytes->len);
	msg[bytes->len] = '\0';
	*len = bytes->len;
	g_object_unref(out);
	g_byte_array_free(bytes, TRUE);
	g_mime_format_options_free(opts);
	return msg;
}

char *pp_mime_build(const pp_mime_spec_t *spec, size_t *len, char *err, size_t errlen)
{
	char *msg = NULL, *subject = NULL, *id = NULL;
	GMimeObject *body = NULL;
	size_t n = 0;
	if (mime_check_spec(spec, err, errlen) != 0)
		return NULL;
	mime_init();
	GMimeMessage *m = g_mime_message_new(FALSE);
	mime_add_addresses(m, GMIME_ADDRESS_TYPE_FROM, &spec->from, 1);
	mime_add_addresses(m, GMIME_ADDRESS_TYPE_TO, spec->to, spec->nto);
	mime_add_addresses(m, GMIME_ADDRESS_TYPE_CC, spec->cc, spec->ncc);
	subject = mime_header_text(spec->subject);
	g_mime_message_set_subject(m, subject, "utf-8");
	if (mime_set_date(m, spec->date, spec->time_zone, err, errlen) != 0)
		goto fail;
	id = xstrndup(spec->message_id + 1, strlen(spec->message_id) - 2);
	g_mime_message_set_message_id(m, id);
	body = mime_body(spec);
	g_mime_message_set_mime_part(m, body);
	msg = mime_write(m, &n);
	if (pp_mime_check_wire(msg, n, err, errlen) != 0) {
		free(msg);
		msg = NULL;
		goto fail;
	}
	*len = n;
fail:
	if (body != NULL)
		g_object_unref(body);
	free(id);
	free(subject);
	g_object_unref(m);
	return msg;
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
