/*
 * pp_mime.c - the MIME writer: checks every header value (pp_mime_check.c),
 * then lets GMime 3 encode headers (RFC 2047) and bodies (quoted-printable)
 * and write the message with CRLF line endings; the result is checked once
 * more on the wire rules before it is handed out. Owns GMime's
 * initialisation and the randomness of ids, tokens and boundaries.
 */
#include "pp_mime.h"

#include <gmime/gmime.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pp_log.h"
#include "pp_merge.h"
#include "pp_mime_priv.h"
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

/* mime_test_seed - the test-only PP_TEST_SEED (read once): 1 and *seed
 * when it is set to a number, else 0. */
static int mime_test_seed(uint64_t *seed)
{
	static int loaded, set;
	static uint64_t value;
	if (!loaded) {
		const char *text = getenv("PP_TEST_SEED");
		char *end;
		if (text != NULL && *text != '\0') {
			value = strtoull(text, &end, 10);
			set = *end == '\0';
		}
		if (set)
			log_warnx(
			    "PP_TEST_SEED is set: Message-IDs and MIME boundaries are not random");
		loaded = 1;
	}
	*seed = value;
	return set;
}

/* mime_mix - the splitmix64 finaliser. */
static uint64_t mime_mix(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ULL;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
	return x ^ (x >> 31);
}

/* mime_random - n random bytes; under PP_TEST_SEED a function of the seed
 * and key only. 0, or -1 if OpenSSL has no randomness to give. */
static int mime_random(unsigned char *out, size_t n, uint64_t key)
{
	uint64_t seed, x = 0;
	if (!mime_test_seed(&seed))
		return RAND_bytes(out, (int)n) == 1 ? 0 : -1;
	for (size_t i = 0; i < n; i++) {
		if (i % 8 == 0)
			x = mime_mix(seed ^ mime_mix(key + i));
		out[i] = (unsigned char)(x >> (8 * (i % 8)));
	}
	return 0;
}

int pp_mime_message_id(char *out, size_t outlen, int64_t id, const char *domain)
{
	unsigned char rnd[8];
	if (!pp_mime_domain_valid(domain, strlen(domain)) ||
	    mime_random(rnd, sizeof(rnd), (uint64_t)id) != 0)
		return -1;
	int n =
	    snprintf(out, outlen, "<pp.%lld.%02x%02x%02x%02x%02x%02x%02x%02x@%s>", (long long)id,
	             rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7], domain);
	return n > 0 && (size_t)n < outlen ? 0 : -1;
}

/* The token's random bytes under PP_TEST_SEED come from the key mixed with
 * this, so they never repeat a Message-ID's. */
#define MIME_TOKEN_SALT 0x756E737562736372ULL /* "unsubscr" */

int pp_mime_token(char *out, size_t outlen, int64_t key)
{
	unsigned char rnd[PP_MIME_TOKEN_LEN / 2];
	if (outlen < PP_MIME_TOKEN_LEN + 1 ||
	    mime_random(rnd, sizeof(rnd), mime_mix((uint64_t)key ^ MIME_TOKEN_SALT)) != 0)
		return -1;
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(out + 2 * i, 3, "%02x", rnd[i]);
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

/* mime_boundary - set a boundary of "=_pp_" and 24 hex digits: "=_" never
 * occurs in base64 or quoted-printable text, so no part can contain it.
 * key tells the message's multiparts apart under PP_TEST_SEED. */
static void mime_boundary(GMimeMultipart *mp, uint64_t key)
{
	unsigned char rnd[12];
	char b[8 + 2 * sizeof(rnd)];
	if (mime_random(rnd, sizeof(rnd), key) != 0)
		fatalx("no randomness for a MIME boundary");
	int n = snprintf(b, sizeof(b), "=_pp_");
	for (size_t i = 0; i < sizeof(rnd); i++)
		n += snprintf(b + n, sizeof(b) - (size_t)n, "%02x", rnd[i]);
	g_mime_multipart_set_boundary(mp, b);
}

/* mime_param_utf8 - a non-ASCII parameter is written as RFC 2231 UTF-8
 * (GMime would otherwise pick the smallest charset that fits). */
static void mime_param_utf8(GMimeParamList *list, const char *name)
{
	GMimeParam *param = list ? g_mime_param_list_get_parameter(list, name) : NULL;
	if (param == NULL)
		return;
	g_mime_param_set_charset(param, "UTF-8");
	g_mime_param_set_encoding_method(param, GMIME_PARAM_ENCODING_METHOD_RFC2231);
}

/* mime_attachment_part - base64, with the file name on Content-Type (name)
 * and Content-Disposition (filename); GMime writes a non-ASCII name as an
 * RFC 2231 parameter. */
static GMimeObject *mime_attachment_part(const pp_mime_attachment_t *a)
{
	GMimeContentType *ct = g_mime_content_type_parse(NULL, a->content_type);
	GMimePart *part = g_mime_part_new();
	g_mime_object_set_content_type(GMIME_OBJECT(part), ct);
	g_object_unref(ct);
	g_mime_part_set_filename(part, a->filename);
	mime_param_utf8(
	    g_mime_content_type_get_parameters(g_mime_object_get_content_type(GMIME_OBJECT(part))),
	    "name");
	mime_param_utf8(g_mime_content_disposition_get_parameters(
	                    g_mime_object_get_content_disposition(GMIME_OBJECT(part))),
	                "filename");
	GMimeStream *stream = g_mime_stream_mem_new_with_buffer(a->data ? a->data : "", a->len);
	GMimeDataWrapper *wrapper =
	    g_mime_data_wrapper_new_with_stream(stream, GMIME_CONTENT_ENCODING_DEFAULT);
	g_mime_part_set_content(part, wrapper);
	g_mime_part_set_content_encoding(part, GMIME_CONTENT_ENCODING_BASE64);
	g_object_unref(wrapper);
	g_object_unref(stream);
	return GMIME_OBJECT(part);
}

static void mime_add_part(GMimeMultipart *mp, GMimeObject *part)
{
	g_mime_multipart_add(mp, part);
	g_object_unref(part);
}

/* mime_body - the text, HTML or both (alternative), then the attachments
 * (mixed). key seeds the boundaries. */
static GMimeObject *mime_body(const pp_mime_spec_t *s, uint64_t key)
{
	GMimeObject *body;
	if (s->text == NULL) {
		body = mime_text_part("html", s->html);
	} else if (s->html == NULL) {
		body = mime_text_part("plain", s->text);
	} else {
		GMimeMultipart *alt = g_mime_multipart_new_with_subtype("alternative");
		mime_boundary(alt, key + 1);
		mime_add_part(alt, mime_text_part("plain", s->text));
		mime_add_part(alt, mime_text_part("html", s->html));
		body = GMIME_OBJECT(alt);
	}
	if (s->nattachments == 0)
		return body;
	GMimeMultipart *mixed = g_mime_multipart_new_with_subtype("mixed");
	mime_boundary(mixed, key);
	mime_add_part(mixed, body);
	for (size_t i = 0; i < s->nattachments; i++)
		mime_add_part(mixed, mime_attachment_part(&s->attachments[i]));
	return GMIME_OBJECT(mixed);
}

/* mime_key - FNV-1a of the Message-ID: the boundaries' seed. */
static uint64_t mime_key(const char *message_id)
{
	uint64_t h = 0xCBF29CE484222325ULL;
	for (const unsigned char *p = (const unsigned char *)message_id; *p; p++)
		h = (h ^ *p) * 0x100000001B3ULL;
	return h;
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

/* mime_raw_header - name with value written exactly as given (checked
 * before: printable ASCII), so GMime neither encodes nor refolds it. */
static void mime_raw_header(GMimeMessage *m, const char *name, const char *value)
{
	GMimeObject *obj = GMIME_OBJECT(m);
	g_mime_object_append_header(obj, name, value, NULL);
	GMimeHeader *h = g_mime_header_list_get_header(g_mime_object_get_header_list(obj), name);
	char *raw = xasprintf(" %s\n", value);
	g_mime_header_set_raw_value(h, raw);
	free(raw);
}

/* mime_optional_headers - In-Reply-To, References (one id a line) and
 * List-Unsubscribe, when the spec has them. */
static void mime_optional_headers(GMimeMessage *m, const pp_mime_spec_t *s)
{
	if (s->in_reply_to != NULL)
		mime_raw_header(m, "In-Reply-To", s->in_reply_to);
	if (s->references != NULL) {
		pp_buf_t b;
		pp_buf_init(&b);
		for (const char *p = s->references; *p; p++)
			pp_buf_append(&b, *p == ' ' ? "\n\t" : p, *p == ' ' ? 2 : 1);
		pp_buf_append(&b, "", 1);
		mime_raw_header(m, "References", b.data);
		pp_buf_free(&b);
	}
	if (s->list_unsubscribe != NULL)
		mime_raw_header(m, "List-Unsubscribe", s->list_unsubscribe);
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
	mime_init();
	if (pp_mime_check_spec(spec, err, errlen) != 0)
		return NULL;
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
	mime_optional_headers(m, spec);
	body = mime_body(spec, mime_key(spec->message_id));
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
