/*
 * test_mime_headers.c - the MIME writer's optional headers (common/pp_mime.c
 * and pp_mime_check.c), table-driven: In-Reply-To, References (folded one
 * id a line, read back by GMime's parser), List-Unsubscribe written as
 * given; hostile values refused; no optional header when none is given;
 * Message-ID syntax; unsubscribe tokens (random, and fixed by
 * PP_TEST_SEED).
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

static const pp_mime_address_t t_to = {"Anna Meyer", "anna@example.net"};

static pp_mime_spec_t spec_base(void)
{
	pp_mime_spec_t s;
	memset(&s, 0, sizeof(s));
	s.from.name = "Smile Dental";
	s.from.addr = "info@smile.example";
	s.to = &t_to;
	s.nto = 1;
	s.subject = "Re: Your appointment";
	s.message_id = "<pp.42.0123456789abcdef@smile.example>";
	s.date = 1733232600;
	s.time_zone = "Europe/Berlin";
	s.text = "Thank you.\n";
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

static char *build_ok(const pp_mime_spec_t *s, size_t *len)
{
	char err[256] = "";
	char *msg = pp_mime_build(s, len, err, sizeof(err));
	if (msg == NULL)
		fail_msg("refused: %s", err);
	assert_int_equal(pp_mime_check_wire(msg, *len, err, sizeof(err)), 0);
	return msg;
}

static void test_no_optional_headers(void **state)
{
	(void)state;
	size_t len;
	pp_mime_spec_t s = spec_base();
	char *msg = build_ok(&s, &len);
	assert_null(strstr(msg, "In-Reply-To"));
	assert_null(strstr(msg, "References"));
	assert_null(strstr(msg, "List-Unsubscribe"));
	free(msg);
}

static void test_reply_headers(void **state)
{
	(void)state;
	size_t len;
	pp_buf_t refs;
	pp_buf_init(&refs);
	for (int i = 0; i < 20; i++)
		pp_buf_printf(&refs, "%s<id.%d.%s@mail.example.org>", i ? " " : "", i,
		              "0123456789abcdef0123456789abcdef");
	pp_buf_append(&refs, "", 1);
	pp_mime_spec_t s = spec_base();
	s.in_reply_to = "<id.19.0123456789abcdef0123456789abcdef@mail.example.org>";
	s.references = refs.data;
	char *msg = build_ok(&s, &len);
	assert_true(has_line(msg, "In-Reply-To: <id.19.0123456789abcdef0123456789abcdef@mail."
	                          "example.org>"));
	assert_true(has_line(msg, "References: <id.0.0123456789abcdef0123456789abcdef@mail."
	                          "example.org>"));
	assert_true(has_line(msg, "\t<id.1.0123456789abcdef0123456789abcdef@mail.example.org>"));
	/* The headers come after the Message-ID, before the MIME headers. */
	assert_true(strstr(msg, "Message-Id:") < strstr(msg, "In-Reply-To:"));
	assert_true(strstr(msg, "References:") < strstr(msg, "MIME-Version:"));
	GMimeStream *st = g_mime_stream_mem_new_with_buffer(msg, len);
	GMimeParser *p = g_mime_parser_new_with_stream(st);
	GMimeMessage *m = g_mime_parser_construct_message(p, NULL);
	assert_non_null(m);
	const char *value = g_mime_object_get_header(GMIME_OBJECT(m), "References");
	GMimeReferences *r = g_mime_references_parse(NULL, value);
	assert_int_equal(g_mime_references_length(r), 20);
	assert_string_equal(g_mime_references_get_message_id(r, 19),
	                    "id.19.0123456789abcdef0123456789abcdef@mail.example.org");
	g_mime_references_free(r);
	g_object_unref(m);
	g_object_unref(p);
	g_object_unref(st);
	pp_buf_free(&refs);
	free(msg);
}

static void test_list_unsubscribe(void **state)
{
	(void)state;
	static const char *const values[] = {
	    "<mailto:info@smile.example?subject=unsubscribe%200123456789abcdef0123456789abcdef>",
	    "<mailto:a@b.example>, <https://smile.example/u/1>",
	};
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		size_t len;
		char line[256];
		pp_mime_spec_t s = spec_base();
		s.list_unsubscribe = values[i];
		char *msg = build_ok(&s, &len);
		snprintf(line, sizeof(line), "List-Unsubscribe: %s", values[i]);
		if (!has_line(msg, line))
			fail_msg("case %zu: no line \"%s\" in\n%s", i, line, msg);
		free(msg);
	}
}

enum { H_IN_REPLY_TO, H_REFERENCES, H_UNSUBSCRIBE };

static const struct {
	int field;
	const char *value;
	const char *err_has;
} refused[] = {
    {H_IN_REPLY_TO, "", "In-Reply-To"},
    {H_IN_REPLY_TO, "a@b", "In-Reply-To"},
    {H_IN_REPLY_TO, "<a@b>\r\nBcc: eve@example.org", "In-Reply-To"},
    {H_IN_REPLY_TO, "<a b@c>", "In-Reply-To"},
    {H_IN_REPLY_TO, "<a@b> <c@d>", "In-Reply-To"},
    {H_IN_REPLY_TO, "<ab>", "In-Reply-To"},
    {H_REFERENCES, "", "References"},
    {H_REFERENCES, "<a@b>  <c@d>", "References"},
    {H_REFERENCES, "<a@b>\n<c@d>", "References"},
    {H_REFERENCES, "<a@b> ", "References"},
    {H_REFERENCES, "<a@b>,<c@d>", "References"},
    {H_REFERENCES, "<a@b> <c\xc3\xbc@d>", "References"},
    {H_UNSUBSCRIBE, "", "List-Unsubscribe"},
    {H_UNSUBSCRIBE, "mailto:a@b", "List-Unsubscribe"},
    {H_UNSUBSCRIBE, "<mailto:a@b>\r\nBcc: eve@example.org", "List-Unsubscribe"},
    {H_UNSUBSCRIBE, "<mailto:a b@c>", "List-Unsubscribe"},
    {H_UNSUBSCRIBE, "<>", "List-Unsubscribe"},
    {H_UNSUBSCRIBE, "<mailto:a@b>,<x:y>", "List-Unsubscribe"},
    {H_UNSUBSCRIBE, "<mailto:\xc3\xbc@b>", "List-Unsubscribe"},
};

static void test_refused(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		char err[256] = "";
		size_t len = 0;
		pp_mime_spec_t s = spec_base();
		if (refused[i].field == H_IN_REPLY_TO)
			s.in_reply_to = refused[i].value;
		else if (refused[i].field == H_REFERENCES)
			s.references = refused[i].value;
		else
			s.list_unsubscribe = refused[i].value;
		char *msg = pp_mime_build(&s, &len, err, sizeof(err));
		if (msg != NULL)
			fail_msg("case %zu: built a message it should refuse", i);
		if (strstr(err, refused[i].err_has) == NULL)
			fail_msg("case %zu: error \"%s\" lacks \"%s\"", i, err, refused[i].err_has);
	}
}

static void test_msgid_valid(void **state)
{
	(void)state;
	static const struct {
		const char *id;
		int ok;
	} cases[] = {
	    {"<a@b>", 1},     {"<pp.1.abc@smile.example>", 1},
	    {"<\"q\"@x>", 1}, {"a@b", 0},
	    {"<a@b", 0},      {"<@b>", 0},
	    {"<a@>", 0},      {"<a@b@c>", 0},
	    {"<a b@c>", 0},   {"<a<b@c>", 0},
	    {"<a\x7f@b>", 0}, {"", 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (pp_mime_msgid_valid(cases[i].id, strlen(cases[i].id)) != cases[i].ok)
			fail_msg("case %zu (%s): expected %d", i, cases[i].id, cases[i].ok);
	assert_int_equal(pp_mime_msgid_valid(NULL, 0), 0);
	/* Only len bytes count: the first id of a list. */
	assert_int_equal(pp_mime_msgid_valid("<a@b> <c@d>", 5), 1);
}

static int is_token(const char *t)
{
	if (strlen(t) != PP_MIME_TOKEN_LEN)
		return 0;
	for (; *t; t++)
		if (strchr("0123456789abcdef", *t) == NULL)
			return 0;
	return 1;
}

static void test_token_random(void **state)
{
	(void)state;
	char a[PP_MIME_TOKEN_LEN + 1], b[PP_MIME_TOKEN_LEN + 1];
	assert_int_equal(pp_mime_token(a, sizeof(a), 7), 0);
	assert_int_equal(pp_mime_token(b, sizeof(b), 7), 0);
	assert_true(is_token(a) && is_token(b));
	assert_string_not_equal(a, b);
	assert_int_equal(pp_mime_token(a, PP_MIME_TOKEN_LEN, 7), -1);
}

/* seeded_child - under PP_TEST_SEED a token depends on the seed and key
 * only, and differs from the Message-ID's random part of that id. */
static int seeded_child(void)
{
	char a[PP_MIME_TOKEN_LEN + 1], b[PP_MIME_TOKEN_LEN + 1], c[PP_MIME_TOKEN_LEN + 1];
	char id[128];
	setenv("PP_TEST_SEED", "1234", 1);
	if (pp_mime_token(a, sizeof(a), 42) != 0 || pp_mime_token(b, sizeof(b), 42) != 0 ||
	    pp_mime_token(c, sizeof(c), 43) != 0 ||
	    pp_mime_message_id(id, sizeof(id), 42, "smile.example") != 0)
		return 1;
	return !is_token(a) || strcmp(a, b) != 0 || strcmp(a, c) == 0 ||
	       strncmp(id + 7, a, 16) == 0;
}

static void test_token_seeded(void **state)
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
	    cmocka_unit_test(test_token_seeded),        cmocka_unit_test(test_token_random),
	    cmocka_unit_test(test_no_optional_headers), cmocka_unit_test(test_reply_headers),
	    cmocka_unit_test(test_list_unsubscribe),    cmocka_unit_test(test_refused),
	    cmocka_unit_test(test_msgid_valid),
	};
	return cmocka_run_group_tests(tests, NULL, group_teardown);
}
