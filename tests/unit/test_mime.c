/*
 * test_mime.c - the MIME writer (common/pp_mime.c), table-driven: headers,
 * CRLF and line-length rules, RFC 2047 subjects (decoded back with GMime's
 * parser), quoted-printable bodies, refused header values, Message-IDs,
 * attachments (base64, RFC 2231 names), MIME types by file name, and the
 * deterministic output under the test-only PP_TEST_SEED.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <gmime/gmime.h>

#include "pp_mime.h"
#include "pp_util.h"

#define T_DATE 1733232600 /* 2024-12-03 13:30:00 UTC */

static const pp_mime_address_t t_to = {"Anna Meyer", "anna@example.net"};

static pp_mime_spec_t spec_base(void)
{
	pp_mime_spec_t s;
	memset(&s, 0, sizeof(s));
	s.from.name = "Smile Dental";
	s.from.addr = "info@smile.example";
	s.to = &t_to;
	s.nto = 1;
	s.subject = "Your appointment";
	s.message_id = "<pp.42.0123456789abcdef@smile.example>";
	s.date = T_DATE;
	s.time_zone = "Europe/Berlin";
	s.text = "Hello Anna,\nsee you at 14:30.\n";
	return s;
}

/* has_line - msg contains exactly this line (CRLF terminated). */
static int has_line(const char *msg, const char *line)
{
	size_t n = strlen(line);
	for (const char *p = msg; (p = strstr(p, line)) != NULL; p++)
		if ((p == msg || p[-1] == '\n') && strncmp(p + n, "\r\n", 2) == 0)
			return 1;
	return 0;
}

static size_t longest_line(const char *msg)
{
	size_t best = 0, cur = 0;
	for (const char *p = msg; *p; p++) {
		if (*p == '\r' && p[1] == '\n') {
			best = cur > best ? cur : best;
			cur = 0;
			p++;
		} else {
			cur++;
		}
	}
	return cur > best ? cur : best;
}

static int has_8bit(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return 1;
	return 0;
}

/* parse_back - the message parsed by GMime (caller unrefs). */
static GMimeMessage *parse_back(const char *msg, size_t len)
{
	GMimeStream *s = g_mime_stream_mem_new_with_buffer(msg, len);
	GMimeParser *p = g_mime_parser_new_with_stream(s);
	GMimeMessage *m = g_mime_parser_construct_message(p, NULL);
	g_object_unref(p);
	g_object_unref(s);
	return m;
}

static void test_build_plain(void **state)
{
	(void)state;
	char err[256];
	size_t len = 0;
	pp_mime_spec_t s = spec_base();
	char *msg = pp_mime_build(&s, &len, err, sizeof(err));
	if (msg == NULL)
		fail_msg("build failed: %s", err);
	assert_int_equal(len, strlen(msg));
	assert_int_equal(pp_mime_check_wire(msg, len, err, sizeof(err)), 0);
	assert_true(has_line(msg, "From: Smile Dental <info@smile.example>"));
	assert_true(has_line(msg, "To: Anna Meyer <anna@example.net>"));
	assert_true(has_line(msg, "Subject: Your appointment"));
	assert_true(has_line(msg, "Date: Tue, 03 Dec 2024 14:30:00 +0100"));
	assert_true(has_line(msg, "Message-Id: <pp.42.0123456789abcdef@smile.example>"));
	assert_true(has_line(msg, "MIME-Version: 1.0"));
	assert_true(has_line(msg, "Content-Type: text/plain; charset=UTF-8"));
	assert_true(has_line(msg, "Content-Transfer-Encoding: quoted-printable"));
	assert_true(has_line(msg, "Hello Anna,"));
	assert_true(has_line(msg, "see you at 14:30."));
	assert_null(strstr(msg, "Cc:"));
	/* Headers, one blank line, then the body. */
	assert_non_null(strstr(msg, "\r\n\r\nHello Anna,\r\n"));
	free(msg);
}

static void test_build_utc_and_cc(void **state)
{
	(void)state;
	char err[256];
	size_t len;
	pp_mime_address_t cc[2] = {{NULL, "mum@example.net"}, {"", "dad@example.net"}};
	pp_mime_spec_t s = spec_base();
	s.time_zone = NULL;
	s.cc = cc;
	s.ncc = 2;
	char *msg = pp_mime_build(&s, &len, err, sizeof(err));
	assert_non_null(msg);
	assert_true(has_line(msg, "Date: Tue, 03 Dec 2024 13:30:00 +0000"));
	assert_true(has_line(msg, "Cc: mum@example.net, dad@example.net"));
	free(msg);
}

/* More zones than the writer keeps loaded: each Date still carries its own
 * offset (Etc/GMT-N is N hours east of UTC). */
static void test_many_time_zones(void **state)
{
	(void)state;
	for (int round = 0; round < 2; round++) {
		for (int h = -12; h <= 14; h++) {
			char zone[32], want[64], err[256];
			size_t len;
			if (h == 0)
				continue;
			snprintf(zone, sizeof(zone), "Etc/GMT%+d", -h);
			snprintf(want, sizeof(want), "%c%02d00", h < 0 ? '-' : '+', h < 0 ? -h : h);
			pp_mime_spec_t s = spec_base();
			s.time_zone = zone;
			char *msg = pp_mime_build(&s, &len, err, sizeof(err));
			if (msg == NULL)
				fail_msg("zone %s: %s", zone, err);
			char *date = strstr(msg, "Date: ");
			assert_non_null(date);
			if (strncmp(strstr(date, "\r\n") - 5, want, 5) != 0)
				fail_msg("zone %s: %.40s, wanted %s", zone, date, want);
			free(msg);
		}
	}
}

static const char *const subjects[] = {
    "Ihr Termin am Dienstag \xe2\x80\x93 J\xc3\xbcrgen",
    "\xe6\x82\xa8\xe7\x9a\x84\xe9\xa2\x84\xe7\xba\xa6",
    "=?utf-8?q?not_an_encoded_word?= plain",
    "Caf\xc3\xa9 \"quoted\" (comment) <angle> a,b;c",
    "Zahn\xc3\xa4rzte M\xc3\xbcller, Praxis",
    "Anna =?iso-8859-1?q?J=FCrgen?= \xc3\xa9=?x",
};

static void test_subject_encoding(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(subjects) / sizeof(subjects[0]); i++) {
		char err[256];
		size_t len;
		pp_mime_spec_t s = spec_base();
		s.subject = subjects[i];
		s.from.name = subjects[i];
		char *msg = pp_mime_build(&s, &len, err, sizeof(err));
		if (msg == NULL)
			fail_msg("case %zu: %s", i, err);
		/* 7-bit on the wire: non-ASCII went into encoded words. */
		assert_int_equal(pp_mime_check_wire(msg, len, err, sizeof(err)), 0);
		if (has_8bit(subjects[i]))
			assert_non_null(strstr(msg, "=?UTF-8?"));
		GMimeMessage *m = parse_back(msg, len);
		assert_non_null(m);
		assert_string_equal(g_mime_message_get_subject(m), subjects[i]);
		InternetAddressList *from = g_mime_message_get_from(m);
		InternetAddress *ia = internet_address_list_get_address(from, 0);
		assert_string_equal(internet_address_get_name(ia), s.from.name);
		g_object_unref(m);
		free(msg);
	}
}

static void test_body_encoding(void **state)
{
	(void)state;
	char err[256], body[600];
	size_t len;
	pp_mime_spec_t s = spec_base();
	/* Bare LF, bare CR, CRLF, a 300-character line, 8-bit text, '=' and a
	 * trailing space. */
	memset(body, 0, sizeof(body));
	strcat(body, "J\xc3\xbcrgen\ra=b\r\nend \n.\n");
	memset(body + strlen(body), 'y', 300);
	s.text = body;
	char *msg = pp_mime_build(&s, &len, err, sizeof(err));
	assert_non_null(msg);
	assert_int_equal(pp_mime_check_wire(msg, len, err, sizeof(err)), 0);
	assert_true(longest_line(msg) <= 78);
	assert_true(has_line(msg, "J=C3=BCrgen"));
	assert_true(has_line(msg, "a=3Db"));
	assert_true(has_line(msg, "end=20"));
	assert_true(has_line(msg, "."));
	GMimeMessage *m = parse_back(msg, len);
	GMimeTextPart *part = GMIME_TEXT_PART(g_mime_message_get_mime_part(m));
	char *text = g_mime_text_part_get_text(part);
	assert_non_null(strstr(text, "J\xc3\xbcrgen\r\na=b\r\nend \r\n.\r\n"));
	g_free(text);
	g_object_unref(m);
	free(msg);
}

static void test_multipart_alternative(void **state)
{
	(void)state;
	char err[256];
	size_t len;
	pp_mime_spec_t s = spec_base();
	s.html = "<p>Hello &lt;Anna&gt;</p>";
	char *msg = pp_mime_build(&s, &len, err, sizeof(err));
	assert_non_null(msg);
	assert_int_equal(pp_mime_check_wire(msg, len, err, sizeof(err)), 0);
	GMimeMessage *m = parse_back(msg, len);
	GMimeObject *top = g_mime_message_get_mime_part(m);
	assert_true(GMIME_IS_MULTIPART(top));
	assert_string_equal(
	    g_mime_content_type_get_media_subtype(g_mime_object_get_content_type(top)),
	    "alternative");
	assert_int_equal(g_mime_multipart_get_count(GMIME_MULTIPART(top)), 2);
	GMimeObject *html = g_mime_multipart_get_part(GMIME_MULTIPART(top), 1);
	assert_string_equal(
	    g_mime_content_type_get_media_subtype(g_mime_object_get_content_type(html)), "html");
	g_object_unref(m);
	free(msg);

	s.text = NULL;
	msg = pp_mime_build(&s, &len, err, sizeof(err));
	assert_non_null(msg);
	assert_true(has_line(msg, "Content-Type: text/html; charset=UTF-8"));
	free(msg);
}

static void test_long_header_value(void **state)
{
	(void)state;
	char err[256];
	size_t len, n = 10000;
	char *big = xmalloc(n + 1);
	memset(big, 'N', n);
	big[n] = '\0';
	pp_mime_spec_t s = spec_base();
	s.subject = big;
	s.from.name = big;
	char *msg = pp_mime_build(&s, &len, err, sizeof(err));
	if (msg == NULL)
		fail_msg("long values: %s", err);
	assert_true(longest_line(msg) <= PP_MIME_LINE_MAX);
	GMimeMessage *m = parse_back(msg, len);
	assert_string_equal(g_mime_message_get_subject(m), big);
	g_object_unref(m);
	free(msg);
	free(big);
}

enum { F_SUBJECT, F_FROM_NAME, F_FROM_ADDR, F_TO_ADDR, F_MSGID, F_ZONE, F_TEXT, F_NTO };

static const struct {
	int field;
	const char *value;
	const char *err_has;
} refused[] = {
    {F_SUBJECT, "Reminder\r\nBcc: victim@example.org", "subject contains a line break"},
    {F_SUBJECT, "Reminder\nBcc: victim@example.org", "subject contains a line break"},
    {F_SUBJECT, "Reminder\rX", "subject contains a line break"},
    {F_SUBJECT, "Reminder\x01", "subject contains a control character"},
    {F_SUBJECT, "Bad \xc3(", "subject is not valid UTF-8"},
    {F_SUBJECT, NULL, "no subject"},
    {F_FROM_NAME, "Smile\r\nBcc: x@y.z", "from display name contains a line break"},
    {F_FROM_ADDR, "info@smile.example\r\nBcc: x@y.z", "from address"},
    {F_TO_ADDR, "anna@example.net\r\nBcc: victim@example.org", "to 1 address"},
    {F_TO_ADDR, "anna meyer@example.net", "to 1 address"},
    {F_TO_ADDR, "<anna@example.net>", "to 1 address"},
    {F_TO_ADDR, "anna@example.net, eve@example.org", "to 1 address"},
    {F_TO_ADDR, "anna@@example.net", "to 1 address"},
    {F_TO_ADDR, "anna", "to 1 address"},
    {F_TO_ADDR, "anna@", "to 1 address"},
    {F_TO_ADDR, "anna@-example.net", "to 1 address"},
    {F_TO_ADDR, "an..na@example.net", "to 1 address"},
    {F_TO_ADDR, "j\xc3\xbcrgen@example.net", "to 1 address"},
    {F_TO_ADDR, NULL, "to 1 address"},
    {F_MSGID, "pp.1.abc@smile.example", "Message-ID"},
    {F_MSGID, "<pp.1 abc@smile.example>", "Message-ID"},
    {F_MSGID, "<pp.1.abc>", "Message-ID"},
    {F_MSGID, "<a@b>\r\nX: y", "Message-ID"},
    {F_ZONE, "Mars/Olympus_Mons", "time zone"},
    {F_TEXT, NULL, "no body"},
    {F_TEXT, "bad \xff body", "body is not valid UTF-8"},
    {F_NTO, NULL, "no To recipient"},
};

static void test_refused(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		char err[256] = "";
		size_t len = 0;
		pp_mime_address_t to = t_to;
		pp_mime_spec_t s = spec_base();
		s.to = &to;
		switch (refused[i].field) {
		case F_SUBJECT:
			s.subject = refused[i].value;
			break;
		case F_FROM_NAME:
			s.from.name = refused[i].value;
			break;
		case F_FROM_ADDR:
			s.from.addr = refused[i].value;
			break;
		case F_TO_ADDR:
			to.addr = refused[i].value;
			break;
		case F_MSGID:
			s.message_id = refused[i].value;
			break;
		case F_ZONE:
			s.time_zone = refused[i].value;
			break;
		case F_TEXT:
			s.text = refused[i].value;
			break;
		case F_NTO:
			s.nto = 0;
			break;
		}
		char *msg = pp_mime_build(&s, &len, err, sizeof(err));
		if (msg != NULL)
			fail_msg("case %zu: built a message it should refuse", i);
		if (strstr(err, refused[i].err_has) == NULL)
			fail_msg("case %zu: error \"%s\" lacks \"%s\"", i, err, refused[i].err_has);
	}
}

static void test_message_id(void **state)
{
	(void)state;
	char a[128], b[128];
	assert_int_equal(pp_mime_message_id(a, sizeof(a), 42, "smile.example"), 0);
	assert_int_equal(pp_mime_message_id(b, sizeof(b), 42, "smile.example"), 0);
	assert_int_equal(strlen(a), strlen("<pp.42.0123456789abcdef@smile.example>"));
	assert_memory_equal(a, "<pp.42.", 7);
	for (int i = 7; i < 23; i++)
		assert_non_null(strchr("0123456789abcdef", a[i]));
	assert_string_equal(a + 23, "@smile.example>");
	assert_string_not_equal(a, b);
	assert_int_equal(pp_mime_message_id(a, sizeof(a), 1, "bad domain"), -1);
	assert_int_equal(pp_mime_message_id(a, sizeof(a), 1, "x..y"), -1);
	assert_int_equal(pp_mime_message_id(a, 10, 1, "smile.example"), -1);
}

static const struct {
	const char *msg;
	int ok;
	const char *err_has;
} wire_cases[] = {
    {"A: b\r\n\r\nbody\r\n", 1, NULL},
    {"A: b\n\r\nbody\r\n", 0, "bare LF"},
    {"A: b\r\n\r\nbo\rdy\r\n", 0, "bare CR"},
    {"A: b\r\n\r\nb\xc3\xbc\r\n", 0, "7-bit"},
};

static void test_check_wire(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(wire_cases) / sizeof(wire_cases[0]); i++) {
		char err[128] = "";
		int rc = pp_mime_check_wire(wire_cases[i].msg, strlen(wire_cases[i].msg), err,
		                            sizeof(err));
		assert_int_equal(rc, wire_cases[i].ok ? 0 : -1);
		if (!wire_cases[i].ok && strstr(err, wire_cases[i].err_has) == NULL)
			fail_msg("case %zu: error \"%s\" lacks \"%s\"", i, err,
			         wire_cases[i].err_has);
	}
	char *line = xmalloc(1004);
	memset(line, 'x', 999);
	memcpy(line + 999, "\r\n", 3);
	char err[128];
	assert_int_equal(pp_mime_check_wire(line, strlen(line), err, sizeof(err)), -1);
	assert_non_null(strstr(err, "longer than 998"));
	memcpy(line + 998, "\r\n", 3);
	assert_int_equal(pp_mime_check_wire(line, strlen(line), err, sizeof(err)), 0);
	free(line);
}

/* Binary data with NULs and every byte value, a non-ASCII name, and a
 * calendar whose method parameter must survive. */
static unsigned char t_blob[300];
static const char t_ics[] = "BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\nEND:VCALENDAR\r\n";

static pp_mime_spec_t spec_files(pp_mime_attachment_t *files)
{
	for (size_t i = 0; i < sizeof(t_blob); i++)
		t_blob[i] = (unsigned char)(i * 7);
	files[0] = (pp_mime_attachment_t){"R\xc3\xb6ntgen M\xc3\xa4rz.png", "image/png", t_blob,
	                                  sizeof(t_blob)};
	files[1] = (pp_mime_attachment_t){"report.pdf", "application/pdf", "", 0};
	files[2] = (pp_mime_attachment_t){"appointment.ics",
	                                  "text/calendar; charset=UTF-8; method=REQUEST", t_ics,
	                                  strlen(t_ics)};
	pp_mime_spec_t s = spec_base();
	s.html = "<p>Hello Anna</p>";
	s.attachments = files;
	s.nattachments = 3;
	return s;
}

/* part_bytes - the decoded content of a leaf part (caller frees). */
static GByteArray *part_bytes(GMimeObject *obj)
{
	GMimeDataWrapper *w = g_mime_part_get_content(GMIME_PART(obj));
	GByteArray *bytes = g_byte_array_new();
	GMimeStream *out = g_mime_stream_mem_new_with_byte_array(bytes);
	g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(out), FALSE);
	g_mime_data_wrapper_write_to_stream(w, out);
	g_object_unref(out);
	return bytes;
}

static void test_attachments(void **state)
{
	(void)state;
	char err[256];
	size_t len;
	pp_mime_attachment_t files[3];
	pp_mime_spec_t s = spec_files(files);
	char *msg = pp_mime_build(&s, &len, err, sizeof(err));
	if (msg == NULL)
		fail_msg("build failed: %s", err);
	assert_int_equal(pp_mime_check_wire(msg, len, err, sizeof(err)), 0);
	assert_non_null(strstr(msg, "Content-Type: multipart/mixed; boundary=\"=_pp_"));
	assert_non_null(strstr(msg, "multipart/alternative; boundary=\"=_pp_"));
	assert_non_null(strstr(msg, "filename*=UTF-8''R%C3%B6ntgen%20M%C3%A4rz.png"));
	assert_non_null(strstr(msg, "Content-Disposition: attachment; filename=report.pdf"));
	GMimeMessage *m = parse_back(msg, len);
	GMimeMultipart *mixed = GMIME_MULTIPART(g_mime_message_get_mime_part(m));
	assert_int_equal(g_mime_multipart_get_count(mixed), 4);
	GMimeObject *alt = g_mime_multipart_get_part(mixed, 0);
	assert_true(g_mime_content_type_is_type(g_mime_object_get_content_type(alt), "multipart",
	                                        "alternative"));
	static const char *const names[] = {"R\xc3\xb6ntgen M\xc3\xa4rz.png", "report.pdf",
	                                    "appointment.ics"};
	for (int i = 0; i < 3; i++) {
		GMimeObject *part = g_mime_multipart_get_part(mixed, i + 1);
		assert_string_equal(g_mime_part_get_filename(GMIME_PART(part)), names[i]);
		assert_int_equal(g_mime_part_get_content_encoding(GMIME_PART(part)),
		                 GMIME_CONTENT_ENCODING_BASE64);
		GByteArray *bytes = part_bytes(part);
		assert_int_equal(bytes->len, files[i].len);
		if (files[i].len)
			assert_memory_equal(bytes->data, files[i].data, files[i].len);
		g_byte_array_free(bytes, TRUE);
	}
	GMimeContentType *ct = g_mime_object_get_content_type(g_mime_multipart_get_part(mixed, 3));
	assert_string_equal(g_mime_content_type_get_parameter(ct, "method"), "REQUEST");
	g_object_unref(m);
	free(msg);
}

static void test_attachments_refused(void **state)
{
	(void)state;
	char long_name[300];
	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	static const struct {
		const char *name, *type, *err_has;
	} cases[] = {
	    {"", "application/pdf", "file name is empty"},
	    {NULL, "application/pdf", "file name is longer"},
	    {"../etc/passwd", "application/pdf", "must not be a path"},
	    {"a\\b.pdf", "application/pdf", "must not be a path"},
	    {"..", "application/pdf", "must not be a path"},
	    {"x.pdf\r\nBcc: evil@example.org", "application/pdf", "line break"},
	    {"x\x01.pdf", "application/pdf", "control character"},
	    {"bad\xc3\x28.pdf", "application/pdf", "not valid UTF-8"},
	    {"x.pdf", "multipart/mixed", "content type"},
	    {"x.pdf", "pdf", "content type"},
	    {"x.pdf", "text/plain\r\nX-Evil: 1", "content type"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[256] = "";
		size_t len;
		pp_mime_attachment_t file = {cases[i].name ? cases[i].name : long_name,
		                             cases[i].type, "x", 1};
		pp_mime_spec_t s = spec_base();
		s.attachments = &file;
		s.nattachments = 1;
		char *msg = pp_mime_build(&s, &len, err, sizeof(err));
		if (msg != NULL)
			fail_msg("case %zu: built a message it should refuse", i);
		if (strstr(err, cases[i].err_has) == NULL || strstr(err, "attachment 1") == NULL)
			fail_msg("case %zu: error \"%s\" lacks \"%s\"", i, err, cases[i].err_has);
	}
}

static void test_type_for_name(void **state)
{
	(void)state;
	static const char *const cases[][2] = {
	    {"scan.pdf", "application/pdf"},
	    {"X-RAY.JPG", "image/jpeg"},
	    {"photo.jpeg", "image/jpeg"},
	    {"invite.ics", "text/calendar"},
	    {"letter.docx",
	     "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
	    {"archive.tar.zip", "application/zip"},
	    {"noext", "application/octet-stream"},
	    {".pdf", "application/octet-stream"},
	    {"odd.xyz", "application/octet-stream"},
	    {"trailing.", "application/octet-stream"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_string_equal(pp_mime_type_for_name(cases[i][0]), cases[i][1]);
	assert_string_equal(pp_mime_type_for_name(NULL), "application/octet-stream");
}

/* seeded_child - in a fresh process with PP_TEST_SEED set: Message-IDs
 * and boundaries are functions of the seed and the message. 0 if so. */
static int seeded_child(void)
{
	char a[128], b[128], c[128], err[256];
	size_t la, lb, lc;
	pp_mime_attachment_t files[3];
	setenv("PP_TEST_SEED", "1234", 1);
	if (pp_mime_message_id(a, sizeof(a), 42, "smile.example") != 0 ||
	    pp_mime_message_id(b, sizeof(b), 42, "smile.example") != 0 ||
	    pp_mime_message_id(c, sizeof(c), 43, "smile.example") != 0 || strcmp(a, b) != 0 ||
	    strcmp(a, c) == 0)
		return 1;
	pp_mime_spec_t s = spec_files(files);
	s.message_id = a;
	char *m1 = pp_mime_build(&s, &la, err, sizeof(err));
	char *m2 = pp_mime_build(&s, &lb, err, sizeof(err));
	s.message_id = c;
	char *m3 = pp_mime_build(&s, &lc, err, sizeof(err));
	int rc = m1 == NULL || m2 == NULL || m3 == NULL || la != lb || memcmp(m1, m2, la) != 0;
	/* Another message: other boundaries. */
	const char *b1 = m1 ? strstr(m1, "boundary=") : NULL;
	const char *b3 = m3 ? strstr(m3, "boundary=") : NULL;
	rc |= b1 == NULL || b3 == NULL || strncmp(b1, b3, 40) == 0;
	free(m1);
	free(m2);
	free(m3);
	pp_mime_shutdown();
	return rc;
}

/* Runs first, in a child: the seed is read once per process. */
static void test_seeded_is_deterministic(void **state)
{
	(void)state;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(seeded_child());
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static int group_teardown(void **state)
{
	(void)state;
	pp_mime_shutdown();
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_seeded_is_deterministic),
	    cmocka_unit_test(test_attachments),
	    cmocka_unit_test(test_attachments_refused),
	    cmocka_unit_test(test_type_for_name),
	    cmocka_unit_test(test_build_plain),
	    cmocka_unit_test(test_build_utc_and_cc),
	    cmocka_unit_test(test_many_time_zones),
	    cmocka_unit_test(test_subject_encoding),
	    cmocka_unit_test(test_body_encoding),
	    cmocka_unit_test(test_multipart_alternative),
	    cmocka_unit_test(test_long_header_value),
	    cmocka_unit_test(test_refused),
	    cmocka_unit_test(test_message_id),
	    cmocka_unit_test(test_check_wire),
	};
	return cmocka_run_group_tests(tests, NULL, group_teardown);
}
