/*
 * test_fetcher_classify.c - the incoming-mail classifier
 * (fetcher/fetcher_classify.c, fetcher_dsn.c), table-driven: the samples
 * in tests/fixtures/mail/ (bounces, automatic replies, unsubscribe
 * requests, ordinary mail), small messages built here for each rule, and
 * hostile ones (10 000 recipients, NULs, broken MIME, huge fields) that
 * must classify without a crash and in linear time.
 *
 * The fixtures are read from argv[1], else tests/fixtures/mail under the
 * working directory, else ../../tests/fixtures/mail beside the binary.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <gmime/gmime.h>

#include "fetcher.h"

/* An expected string ANY matches any value; ANY "text" any that starts
 * with text. Every returned string is checked to be clean either way. */
#define ANY "\x01"
#define TOKEN "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
#define LINEAR_LIMIT_MS 20000 /* generous: valgrind runs these too */

typedef struct {
	const char *name; /* fixture file, or case name */
	fetcher_kind_t kind;
	int hard, delayed;
	const char *status, *recipient, *original_id, *diagnostic, *reason, *token;
} expect_t;

static char *fixture_dir;

/* parse - raw as a GMime message (NULL when GMime finds none). */
static GMimeMessage *parse(const char *raw, size_t len)
{
	GMimeStream *s = g_mime_stream_mem_new_with_buffer(raw, len);
	GMimeParser *p = g_mime_parser_new_with_stream(s);
	GMimeMessage *m = g_mime_parser_construct_message(p, NULL);
	g_object_unref(p);
	g_object_unref(s);
	return m;
}

static void classify_raw(const char *raw, size_t len, fetcher_classify_t *c)
{
	GMimeMessage *m = parse(raw, len);
	fetcher_classify(m, c);
	if (m != NULL)
		g_object_unref(m);
}

/* check_clean - a returned string is valid UTF-8 without control characters. */
static void check_clean(const char *name, const char *field, const char *s, size_t max)
{
	if (s == NULL)
		return;
	if (!g_utf8_validate(s, -1, NULL))
		fail_msg("%s: %s is not valid UTF-8", name, field);
	for (const char *p = s; *p; p = g_utf8_next_char(p)) {
		gunichar u = g_utf8_get_char(p);
		if (u < 0x20 || (u >= 0x7f && u <= 0x9f))
			fail_msg("%s: %s has control character U+%04X", name, field, (unsigned)u);
	}
	if (strlen(s) > max)
		fail_msg("%s: %s is %zu bytes, over %zu", name, field, strlen(s), max);
}

static void check_str(const char *name, const char *field, const char *got, const char *want)
{
	int prefix = want != NULL && want[0] == ANY[0];
	if (prefix && want[1] == '\0')
		return;
	want += prefix;
	if (got == NULL && want == NULL)
		return;
	if (got != NULL && want != NULL &&
	    (prefix ? strncmp(got, want, strlen(want)) : strcmp(got, want)) == 0)
		return;
	fail_msg("%s: %s is \"%s\", want \"%s%s\"", name, field, got ? got : "(null)",
	         want ? want : "(null)", prefix ? "..." : "");
}

static void check(const fetcher_classify_t *c, const expect_t *e)
{
	static const char *const kinds[] = {"mail", "bounce", "auto_reply", "unsubscribe"};
	if (c->kind != e->kind)
		fail_msg("%s: kind %s, want %s", e->name, kinds[c->kind], kinds[e->kind]);
	if (c->hard != e->hard || c->delayed != e->delayed)
		fail_msg("%s: hard=%d delayed=%d, want hard=%d delayed=%d", e->name, c->hard,
		         c->delayed, e->hard, e->delayed);
	check_str(e->name, "status", c->status, e->status);
	check_str(e->name, "recipient", c->recipient, e->recipient);
	check_str(e->name, "original_message_id", c->original_message_id, e->original_id);
	check_str(e->name, "diagnostic", c->diagnostic, e->diagnostic);
	check_str(e->name, "reason", c->reason, e->reason);
	check_str(e->name, "unsubscribe_token", c->unsubscribe_token, e->token);
	check_clean(e->name, "status", c->status, 11);
	check_clean(e->name, "recipient", c->recipient, 254);
	check_clean(e->name, "original_message_id", c->original_message_id, 1000);
	check_clean(e->name, "diagnostic", c->diagnostic, FETCHER_CLASSIFY_DIAGNOSTIC_MAX);
	check_clean(e->name, "reason", c->reason, 200);
	check_clean(e->name, "unsubscribe_token", c->unsubscribe_token, 32);
}

static char *read_fixture(const char *file, size_t *len)
{
	char *path = xasprintf("%s/%s", fixture_dir, file);
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		fail_msg("cannot open %s", path);
	pp_buf_t b;
	char chunk[4096];
	size_t n;
	pp_buf_init(&b);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		pp_buf_append(&b, chunk, n);
	fclose(f);
	free(path);
	*len = b.len;
	return pp_buf_steal(&b);
}

static const expect_t fixtures[] = {
    {"postfix_dsn_user_unknown.eml", FETCHER_KIND_BOUNCE, 1, 0, "5.1.1", "anna.meyer@example.net",
     "<abc123.1@smile.example>",
     "550 5.1.1 <anna.meyer@example.net>: Recipient address rejected: User unknown in virtual "
     "mailbox table",
     NULL, NULL},
    {"exim_dsn.eml", FETCHER_KIND_BOUNCE, 1, 0, "5.0.0", "bob.schulz@example.org",
     "<abc123.2@smile.example>",
     "550 5.1.1 <bob.schulz@example.org>: Recipient address rejected: User unknown in local "
     "recipient table",
     NULL, NULL},
    {"o365_ndr.eml", FETCHER_KIND_BOUNCE, 1, 0, "5.1.10", "carl.wagner@example.com",
     "<abc123.3@smile.example>",
     "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient carl.wagner@example.com not found "
     "by SMTP address lookup",
     NULL, NULL},
    {"gmail_bounce.eml", FETCHER_KIND_BOUNCE, 1, 0, "5.1.1", "dora.klein@example.com",
     "<abc123.4@smile.example>",
     "550 5.1.1 The email account that you tried to reach does not exist. Please try "
     "double-checking the recipient's email address for typos or unnecessary spaces.",
     NULL, NULL},
    {"qmail_bounce.eml", FETCHER_KIND_BOUNCE, 1, 0, "5.1.1", "erin.vogel@example.org",
     "<abc123.5@smile.example>", "Sorry, no mailbox here by that name. (#5.1.1)", NULL, NULL},
    {"postfix_dsn_delayed.eml", FETCHER_KIND_BOUNCE, 0, 1, "4.4.1", "frank.weber@example.com",
     "<abc123.6@smile.example>", "connect to mx.example.com[203.0.113.5]:25: Connection timed out",
     NULL, NULL},
    {"exim_plain_bounce.eml", FETCHER_KIND_BOUNCE, 1, 0, NULL, "jan.krause@example.org",
     "<abc123.10@smile.example>", "host mx.example.org [198.51.100.8]: 550 No such user here", NULL,
     NULL},
    {"sendmail_plain_bounce.eml", FETCHER_KIND_BOUNCE, 1, 0, "5.1.1", "kai.richter@example.com",
     "<abc123.11@smile.example>", "550 5.1.1 <kai.richter@example.com>... User unknown", NULL,
     NULL},
    {"outlook_ooo.eml", FETCHER_KIND_AUTO_REPLY, 0, 0, NULL, NULL, NULL, NULL,
     "Auto-Submitted: auto-generated", NULL},
    {"vacation_rfc3834.eml", FETCHER_KIND_AUTO_REPLY, 0, 0, NULL, NULL, NULL, NULL,
     "Auto-Submitted: auto-replied", NULL},
    {"patient_reply.eml", FETCHER_KIND_MAIL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL},
    {"list_bulk.eml", FETCHER_KIND_MAIL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL},
    {"unsubscribe.eml", FETCHER_KIND_UNSUBSCRIBE, 0, 0, NULL, NULL, NULL, NULL, NULL, TOKEN},
    {"unsubscribe_bogus.eml", FETCHER_KIND_MAIL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL},
};

static void test_fixtures(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(fixtures) / sizeof(fixtures[0]); i++) {
		size_t len;
		char *raw = read_fixture(fixtures[i].name, &len);
		fetcher_classify_t c;
		classify_raw(raw, len, &c);
		check(&c, &fixtures[i]);
		fetcher_classify_clear(&c);
		free(raw);
	}
}

/* The same sample through the whole parse step the store uses. */
static void test_parse_message_sets_kind(void **state)
{
	(void)state;
	size_t len;
	char *raw = read_fixture("postfix_dsn_user_unknown.eml", &len);
	fetcher_parsed_t p;
	fetcher_parse_message(raw, len, &p);
	check(&p.cls, &fixtures[0]);
	fetcher_parsed_clear(&p);
	free(raw);
}

/* Small messages, one rule each; RAW gives the length (NULs included). */
typedef struct {
	expect_t want;
	const char *raw;
	size_t len;
} raw_case_t;
#define RAW(s) s, sizeof(s) - 1

#define REPORT_HEAD(from)                                                                          \
	"From: " from "\nTo: info@smile.example\nSubject: Delivery report\nMIME-Version: 1.0\n"    \
	"Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\n\n"          \
	"--b\nContent-Type: text/plain\n\nDelivery report.\n\n"
#define STATUS_PART "--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx\n\n"
#define HEADERS_PART                                                                               \
	"--b\nContent-Type: text/rfc822-headers\n\nMessage-ID: "                                   \
	"<abc123.20@smile.example>\n\n--b--\n"
#define PERSON "From: Lena Braun <lena.braun@example.net>\nTo: info@smile.example\n"

static const raw_case_t raw_cases[] = {
    {{"success_report", FETCHER_KIND_AUTO_REPLY, 0, 0, NULL, NULL, NULL, NULL,
      "Action: delivered (a delivery report)", NULL},
     RAW(REPORT_HEAD("postmaster@mx.example.net") STATUS_PART
         "Final-Recipient: rfc822; a@example.net\nAction: delivered\nStatus: "
         "2.0.0\n\n" HEADERS_PART)},
    {{"failed_without_status", FETCHER_KIND_BOUNCE, 1, 0, NULL, "a@example.net",
      "<abc123.20@smile.example>", NULL, NULL, NULL},
     RAW(REPORT_HEAD("MAILER-DAEMON@mx.example.net") STATUS_PART
         "Final-Recipient: rfc822;a@example.net\nAction: failed\n\n" HEADERS_PART)},
    {{"status_without_action", FETCHER_KIND_BOUNCE, 1, 0, "5.2.2", "a@example.net",
      "<abc123.20@smile.example>", "mailbox full", NULL, NULL},
     RAW(REPORT_HEAD("MAILER-DAEMON@mx.example.net") STATUS_PART
         "Final-Recipient: rfc822;a@example.net\nStatus: 5.2.2 (mailbox full)\n"
         "Diagnostic-Code: mailbox full\n\n" HEADERS_PART)},
    {{"hard_recipient_wins", FETCHER_KIND_BOUNCE, 1, 0, "5.1.1", "b@example.net",
      "<abc123.20@smile.example>", "550 no such user", NULL, NULL},
     RAW(REPORT_HEAD("MAILER-DAEMON@mx.example.net") STATUS_PART
         "Final-Recipient: rfc822;a@example.net\nAction: failed\nStatus: 4.4.7\n\n"
         "Final-Recipient: rfc822;b@example.net\nAction: failed\nStatus: 5.1.1\n"
         "Diagnostic-Code: smtp; 550 no such user\n\n"
         "Final-Recipient: rfc822;c@example.net\nAction: failed\nStatus: 5.1.1\n\n" HEADERS_PART)},
    {{"soft_failure", FETCHER_KIND_BOUNCE, 0, 0, "4.4.7", "a@example.net",
      "<abc123.20@smile.example>", NULL, NULL, NULL},
     RAW(REPORT_HEAD("MAILER-DAEMON@mx.example.net") STATUS_PART
         "Final-Recipient: rfc822;a@example.net\nAction: failed\nStatus: 4.4.7\n\n" HEADERS_PART)},
    {{"original_recipient_first", FETCHER_KIND_BOUNCE, 1, 0, "5.1.1", "old@example.net",
      "<abc123.20@smile.example>", NULL, NULL, NULL},
     RAW(REPORT_HEAD("MAILER-DAEMON@mx.example.net") STATUS_PART
         "Final-Recipient: RFC822; new@example.org\nORIGINAL-RECIPIENT: rfc822; <old@example.net>\n"
         "action: Failed\nstatus: 5.1.1\n\n" HEADERS_PART)},
    {{"x400_recipient_ignored", FETCHER_KIND_BOUNCE, 1, 0, "5.1.1", NULL,
      "<abc123.20@smile.example>", NULL, NULL, NULL},
     RAW(REPORT_HEAD("MAILER-DAEMON@mx.example.net") STATUS_PART
         "Final-Recipient: x400; /C=DE/O=Smile/\nAction: failed\nStatus: 5.1.1\n\n" HEADERS_PART)},
    {{"global_report", FETCHER_KIND_BOUNCE, 1, 0, "5.1.1", "j\xc3\xb6rg@example.de",
      "<abc123.21@smile.example>", NULL, NULL, NULL},
     RAW(REPORT_HEAD(
         "MAILER-DAEMON@mx.example.net") "--b\nContent-Type: "
                                         "message/global-delivery-status\n\nReporting-MTA: dns; "
                                         "mx\n\n"
                                         "Final-Recipient: utf-8; j\xc3\xb6rg@example.de\nAction: "
                                         "failed\nStatus: 5.1.1\n\n"
                                         "--b\nContent-Type: message/global-headers\n\nMessage-ID: "
                                         "<abc123.21@smile.example>\n\n"
                                         "--b--\n")},
    {{"report_without_groups", FETCHER_KIND_BOUNCE, 1, 0, "5.1.1", "a@example.net",
      "<abc123.22@smile.example>", "<a@example.net>: host mx said: 550 5.1.1 user unknown", NULL,
      NULL},
     RAW("From: MAILER-DAEMON@mx.example.net\nSubject: Undelivered Mail\nMIME-Version: 1.0\n"
         "Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n"
         "--b\nContent-Type: text/plain\n\n<a@example.net>: host mx said: 550 5.1.1 user unknown\n"
         "\n--b\nContent-Type: message/delivery-status\n\n\n\n"
         "--b\nContent-Type: text/plain\n\nMessage-Id: <abc123.22@smile.example>\n--b--\n")},
    {{"report_without_status_part", FETCHER_KIND_MAIL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL},
     RAW(PERSON "Subject: Undeliverable: my photos\nMIME-Version: 1.0\n"
                "Content-Type: multipart/report; report-type=delivery-status; boundary=b\n\n"
                "--b\nContent-Type: text/plain\n\nundeliverable?\n--b--\n")},
    {{"read_receipt", FETCHER_KIND_MAIL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL},
     RAW("Return-Path: <>\n" PERSON "Subject: Read: Your appointment\nMIME-Version: 1.0\n"
         "Content-Type: multipart/report; report-type=disposition-notification; boundary=b\n\n"
         "--b\nContent-Type: text/plain\n\nYour message was displayed.\n"
         "--b\nContent-Type: message/disposition-notification\n\n"
         "Final-Recipient: rfc822; lena.braun@example.net\nDisposition: manual-action/"
         "MDN-sent-manually; displayed\n--b--\n")},
    {{"exchange_text_ndr", FETCHER_KIND_BOUNCE, 1, 0, "5.1.1", "mia.wolf@example.com",
      "<abc123.23@smile.example>",
      "Remote Server returned '550 5.1.1 RESOLVER.ADR.RecipNotFound; not found'", NULL, NULL},
     RAW("From: postmaster@example.com\nTo: info@smile.example\nSubject: Undeliverable: Recall\n\n"
         "Delivery has failed to these recipients or groups:\n\n"
         "mia.wolf@example.com (mia.wolf@example.com)\n"
         "The e-mail address you entered couldn't be found.\n\n"
         "Diagnostic information for administrators:\n\nGenerating server: ex1.example.com\n\n"
         "mia.wolf@example.com\n"
         "Remote Server returned '550 5.1.1 RESOLVER.ADR.RecipNotFound; not found'\n\n"
         "Original message headers:\n\nMessage-ID: <abc123.23@smile.example>\n")},
    {{"null_sender_phrase", FETCHER_KIND_BOUNCE, 1, 0, NULL, "ole@example.org", NULL,
      "550 unrouteable address", NULL, NULL},
     RAW("Return-Path: <>\nFrom: Mail System <noreply@relay.example.org>\nSubject: Notice\n\n"
         "This message was created automatically by mail delivery software.\n\n"
         "  ole@example.org\n    550 unrouteable address\n")},
    {{"null_sender_plain_phrase", FETCHER_KIND_AUTO_REPLY, 0, 0, NULL, NULL, NULL, NULL,
      "Auto-Submitted: auto-replied", NULL},
     RAW("Return-Path: <>\n" PERSON "Subject: Away\nAuto-Submitted: auto-replied\n\n"
         "Your message couldn't be delivered to me in person: I am away until 550 days.\n")},
    {{"exim_delay_warning", FETCHER_KIND_BOUNCE, 0, 1, NULL, "pia@example.org", NULL, NULL, NULL,
      NULL},
     RAW("From: Mail Delivery System <Mailer-Daemon@relay.example.org>\n"
         "Subject: Warning: message 1tIT9K-0003Qx-Ab delayed 24 hours\n\n"
         "This message was created automatically by mail delivery software.\n"
         "A message that you sent has not yet been delivered to one or more of its\n"
         "recipients after more than 24 hours on the queue on relay.example.org.\n\n"
         "  pia@example.org\n    Delay reason: connection timed out\n")},
    {{"postmaster_writes", FETCHER_KIND_MAIL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL},
     RAW("From: postmaster@example.org\nTo: info@smile.example\nSubject: Your SPF record\n\n"
         "Hello, 550 of your messages were fine; please check your SPF record.\n")},
    {{"patient_quotes_bounce", FETCHER_KIND_MAIL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL},
     RAW(PERSON "Subject: failure notice\n\n"
                "I got this:\n\nHi. This is the qmail-send program at mail.example.org.\n"
                "<lena@example.org>:\nSorry, no mailbox here by that name. (#5.1.1)\n")},
    {{"x_autoreply", FETCHER_KIND_AUTO_REPLY, 0, 0, NULL, NULL, NULL, NULL, "X-Autoreply", NULL},
     RAW(PERSON "Subject: Re: Recall\nX-Autoreply: yes\n\nAway.\n")},
    {{"x_autorespond", FETCHER_KIND_AUTO_REPLY, 0, 0, NULL, NULL, NULL, NULL, "X-Autorespond",
      NULL},
     RAW(PERSON "Subject: Re: Recall\nX-Autorespond: Away\n\nAway.\n")},
    {{"precedence_auto_reply", FETCHER_KIND_AUTO_REPLY, 0, 0, NULL, NULL, NULL, NULL,
      "Precedence: auto_reply", NULL},
     RAW(PERSON "Subject: Re: Recall\nPrecedence: auto_reply\n\nAway.\n")},
    {{"precedence_junk", FETCHER_KIND_MAIL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL},
     RAW(PERSON "Subject: Offer\nPrecedence: junk\n\nBuy.\n")},
    {{"auto_submitted_no", FETCHER_KIND_MAIL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL},
     RAW(PERSON "Subject: Automatic reply: no\nAuto-Submitted: No\n\nI typed this.\n")},
    {{"subject_alone", FETCHER_KIND_MAIL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL},
     RAW(PERSON "Subject: Out of Office: back on Monday\n\nI typed this myself.\n")},
    {{"suppress_alone", FETCHER_KIND_MAIL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL},
     RAW(PERSON "Subject: RE: Out of Office: next week\nX-Auto-Response-Suppress: All\n\nHi.\n")},
    {{"subject_and_suppress", FETCHER_KIND_AUTO_REPLY, 0, 0, NULL, NULL, NULL, NULL,
      "Subject \"Out of Office:\" with X-Auto-Response-Suppress", NULL},
     RAW(PERSON "Subject: Out of Office: Recall\nX-Auto-Response-Suppress: DR, OOF\n\nAway.\n")},
    {{"subject_and_null_sender", FETCHER_KIND_AUTO_REPLY, 0, 0, NULL, NULL, NULL, NULL,
      "Subject \"Automatic reply:\" with Return-Path <>", NULL},
     RAW("Return-Path: < >\n" PERSON "Subject: automatic REPLY: Recall\n\nAway.\n")},
    {{"unsubscribe_upper", FETCHER_KIND_UNSUBSCRIBE, 0, 0, NULL, NULL, NULL, NULL, NULL, TOKEN},
     RAW(PERSON "Subject: UNSUBSCRIBE 0F1E2D3C4B5A69788796A5B4C3D2E1F0\n\n\n")},
    {{"unsubscribe_in_reply", FETCHER_KIND_UNSUBSCRIBE, 0, 0, NULL, NULL, NULL, NULL, NULL, TOKEN},
     RAW(PERSON "Subject: Re: please Unsubscribe\t " TOKEN ", thanks\n\n\n")},
    {{"unsubscribe_encoded", FETCHER_KIND_UNSUBSCRIBE, 0, 0, NULL, NULL, NULL, NULL, NULL, TOKEN},
     RAW(PERSON "Subject: =?UTF-8?Q?unsubscribe_" TOKEN "_=E2=9C=93?=\n\n\n")},
    {{"unsubscribe_marked_automatic", FETCHER_KIND_UNSUBSCRIBE, 0, 0, NULL, NULL, NULL, NULL, NULL,
      TOKEN},
     RAW(PERSON "Subject: unsubscribe " TOKEN "\nAuto-Submitted: auto-generated\n\n\n")},
    {{"unsubscribe_33_hex", FETCHER_KIND_MAIL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL},
     RAW(PERSON "Subject: unsubscribe " TOKEN "a\n\n\n")},
    {{"unsubscribe_letter_after", FETCHER_KIND_MAIL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL},
     RAW(PERSON "Subject: unsubscribe " TOKEN "g\n\n\n")},
    {{"unsubscribe_no_space", FETCHER_KIND_MAIL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL},
     RAW(PERSON "Subject: unsubscribe" TOKEN "\n\n\n")},
    {{"unsubscribe_not_a_word", FETCHER_KIND_MAIL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL},
     RAW(PERSON "Subject: xunsubscribe " TOKEN "\n\n\n")},
    {{"unsubscribe_in_body_only", FETCHER_KIND_MAIL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL},
     RAW(PERSON "Subject: Re: Recall\n\nunsubscribe " TOKEN "\n")},
    {{"headers_only", FETCHER_KIND_MAIL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL},
     RAW(PERSON "Subject: hi\n")},
    {{"empty", FETCHER_KIND_MAIL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL}, RAW("")},
};

static void test_rules(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(raw_cases) / sizeof(raw_cases[0]); i++) {
		fetcher_classify_t c;
		classify_raw(raw_cases[i].raw, raw_cases[i].len, &c);
		check(&c, &raw_cases[i].want);
		fetcher_classify_clear(&c);
	}
	fetcher_classify_t c;
	fetcher_classify(NULL, &c);
	assert_int_equal(c.kind, FETCHER_KIND_MAIL);
	fetcher_classify_clear(&c);
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* classify_timed - classify raw, failing if it takes past LINEAR_LIMIT_MS. */
static void classify_timed(const char *name, const char *raw, size_t len, fetcher_classify_t *c)
{
	int64_t t0 = mono_ms();
	classify_raw(raw, len, c);
	int64_t ms = mono_ms() - t0;
	if (ms > LINEAR_LIMIT_MS)
		fail_msg("%s: took %lld ms", name, (long long)ms);
}

/* Hostile messages: NULs in names, values, the Subject and the text,
 * bad bytes and charsets, broken MIME. Whatever GMime makes of them
 * classifies without a crash, in time, with only clean strings. */
#define DAEMON_REPORT REPORT_HEAD("MAILER-DAEMON@x")
static const raw_case_t hostile_cases[] = {
    {{"nul report", FETCHER_KIND_BOUNCE, 1, 0, "5.1.1", NULL, NULL, "550 gone", NULL, NULL},
     RAW(DAEMON_REPORT STATUS_PART
         "Final-Rec\0ipient: rfc822; x@example.net\nFinal-Recipient: rfc822; a@exa\0mple.net\n"
         "Action: failed\nStatus: 5.1.1\0junk\nDiagnostic-Code: smtp; 550\0 gone\n\n"
         "--b\nContent-Type: text/rfc822-headers\n\nMessage-ID: <abc\0123@smile.example>\n"
         "\n--b--\n")},
    {{"nul text", FETCHER_KIND_BOUNCE, 1, 0, "5.1.1", NULL, NULL, "Sorry (#5.1.1\xef\xbf\xbd)",
      NULL, NULL},
     RAW("From: MAILER-DAEMON@mx.example.net\nSubject: failure\0 notice\n\n"
         "Hi. This is the qmail-send program at mx.\n<a@ex\0ample.org>:\n"
         "Sorry (#5.1.1\0)\n--- Below this line is a copy of the message.\n"
         "Message-ID: <\0@x>\n")},
    {{"nul subject", FETCHER_KIND_MAIL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL},
     RAW(PERSON "Subject: unsubscribe \0" TOKEN "\n\n\n")},
    {{"control and non-ASCII", FETCHER_KIND_BOUNCE, 1, 0, "5.1.1", NULL, NULL, NULL, NULL, NULL},
     RAW(DAEMON_REPORT STATUS_PART
         "Final-Recipient: utf-8; a\xc2\x85z@example.net\nAction: failed\nStatus: 5.1.1\n\n"
         "--b\nContent-Type: text/rfc822-headers\n\nMessage-ID: <\xc3\xa9@x>\n\n--b--\n")},
    {{"no boundary", FETCHER_KIND_MAIL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL},
     RAW("Content-Type: multipart/report; report-type=delivery-status\n"
         "From: MAILER-DAEMON@x\n\n--b\nContent-Type: message/delivery-status\n\n"
         "Action: failed\n")},
    {{"cut short", FETCHER_KIND_BOUNCE, 1, 0, NULL, "a@example.net", NULL, NULL, NULL, NULL},
     RAW(DAEMON_REPORT "--b\nContent-Type: message/delivery-status\n\n"
                       "Final-Recipient: rfc822; a@example.net\nAction: failed")},
    {{"bad base64", FETCHER_KIND_BOUNCE, 1, 0, NULL, NULL, NULL, NULL, NULL, NULL},
     RAW(DAEMON_REPORT "--b\nContent-Type: message/delivery-status\n"
                       "Content-Transfer-Encoding: base64\n\n%%%%$$$$====\n--b--\n")},
    {{"junk fields", FETCHER_KIND_BOUNCE, 1, 0, NULL, NULL, NULL, NULL, NULL, NULL},
     RAW(DAEMON_REPORT "--b\nContent-Type: message/delivery-status\n\n"
                       ":\n \n:::\n\tcontinued\nAction:\nStatus: 5.\n"
                       "Status: 5.1.1234\nFinal-Recipient: ;\n\n--b--\n")},
    {{"closed early", FETCHER_KIND_MAIL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL},
     RAW(DAEMON_REPORT "--b\nContent-Type: message/rfc822\n\n--b--\n" STATUS_PART
                       "Final-Recipient: rfc822; a@example.net\nAction: failed\n\n--b--\n")},
    {{"bad charset", FETCHER_KIND_BOUNCE, 1, 0, "5.1.1", NULL, NULL, "(#5.1.1)", NULL, NULL},
     RAW("From: MAILER-DAEMON@x\nSubject: failure notice\nContent-Type: text/plain; "
         "charset=x-bogus-zz\nContent-Transfer-Encoding: 8bit\n\n\xff\xfe\xfd <\xe9@\xe9.de>:\n"
         "(#5.1.1)\nMessage-ID: <\xff@\xfe>\n")},
    {{"multipart without parts", FETCHER_KIND_BOUNCE, 1, 0, NULL, NULL, NULL, NULL, NULL, NULL},
     RAW("From: MAILER-DAEMON@x\nSubject: Returned mail: x\nContent-Type: multipart/mixed\n\nx\n")},
    {{"plain phrase from nobody", FETCHER_KIND_MAIL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL},
     RAW("From: \nSubject: \nReturn-Path: <>\nContent-Type: text/html\n\n<b>couldn't be "
         "delivered</b> 550 5.0.0\n")},
    {{"blank", FETCHER_KIND_MAIL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL}, RAW("\n\n\n")},
    {{"bad encoded words", FETCHER_KIND_MAIL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL},
     RAW("Subject: =?x-unknown?B?////?=\nFrom: =?utf-8?Q?=FF?= <postmaster@x>\n\n\0\0\0")},
};

static void test_hostile(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(hostile_cases) / sizeof(hostile_cases[0]); i++) {
		fetcher_classify_t c;
		classify_timed(hostile_cases[i].want.name, hostile_cases[i].raw,
		               hostile_cases[i].len, &c);
		check(&c, &hostile_cases[i].want);
		fetcher_classify_clear(&c);
	}
}

/* A report with 10 000 recipient groups: delivered ones, a soft failure
 * in the middle and (hard) a permanent failure at the end. */
static void many_recipients(pp_buf_t *b, int hard)
{
	const size_t n = 10000;
	pp_buf_puts(b, REPORT_HEAD("MAILER-DAEMON@mx.example.net") STATUS_PART);
	for (size_t i = 0; i < n; i++) {
		const char *status = hard && i == n - 1 ? "5.1.1" : i == n / 2 ? "4.4.7" : "2.0.0";
		pp_buf_printf(b,
		              "Final-Recipient: rfc822; r%zu@example.net\nAction: %s\nStatus: %s\n"
		              "Diagnostic-Code: smtp; %s for r%zu\n\n",
		              i, status[0] == '2' ? "delivered" : "failed", status, status, i);
	}
	pp_buf_puts(b, HEADERS_PART);
}

static void build_many_hard(pp_buf_t *b)
{
	many_recipients(b, 1);
}

static void build_many_soft(pp_buf_t *b)
{
	many_recipients(b, 0);
}

/* A Diagnostic-Code folded over 100 000 lines of bad bytes, control and
 * C1 control characters: one clean line of at most 300 bytes. */
static void build_dirty_field(pp_buf_t *b)
{
	pp_buf_puts(b, REPORT_HEAD("MAILER-DAEMON@mx.example.net") STATUS_PART
	            "Final-Recipient: rfc822; a@example.net\nAction: failed\nStatus: 5.7.1\n"
	            "Diagnostic-Code: smtp; 554 \xff\xfe\x01\x1b[31m\xc2\x85 rejected");
	for (int i = 0; i < 100000; i++)
		pp_buf_puts(b, "\n \t\xe2\x82\xac\x7f\xc3\x28 x");
	pp_buf_puts(b, "\n\n" HEADERS_PART);
}

/* 300 nested multiparts and 5000 parts before the delivery-status part. */
static void build_deep_wide(pp_buf_t *b)
{
	pp_buf_puts(b, REPORT_HEAD("MAILER-DAEMON@x"));
	for (int i = 0; i < 300; i++)
		pp_buf_printf(b, "--b\nContent-Type: multipart/mixed; boundary=\"n%d\"\n\n--n%d\n",
		              i, i);
	pp_buf_puts(b, "Content-Type: text/plain\n\nx\n");
	for (int i = 0; i < 5000; i++)
		pp_buf_puts(b, "--b\nContent-Type: text/plain\n\nMessage-ID: none\n");
	pp_buf_puts(b, STATUS_PART
	            "Final-Recipient: rfc822; a@example.net\nAction: failed\n\n--b--\n");
}

/* 8 MB of near-misses in a qmail bounce (only the first 256 KiB is read). */
static void build_huge_text(pp_buf_t *b)
{
	pp_buf_puts(b, "From: MAILER-DAEMON@x\nSubject: failure notice\n\n"
	               "Hi. This is the qmail-send program at x.\n");
	for (int i = 0; i < 200000; i++)
		pp_buf_puts(b, "<a@b 4.4 5.5. 550x (#5.1 Message-ID: <\n");
	pp_buf_puts(b, "<z@example.org>:\n(#5.1.1)\n");
}

/* A 1.3 MB Subject of "unsubscribe" without a token. */
static void build_huge_subject(pp_buf_t *b)
{
	pp_buf_puts(b, PERSON "Subject: ");
	for (int i = 0; i < 100000; i++)
		pp_buf_puts(b, "unsubscribe \t");
	pp_buf_puts(b, "\n X-Autoreply\n\nbody\n");
}

typedef struct {
	expect_t want;
	void (*build)(pp_buf_t *b);
} built_case_t;

static const built_case_t built_cases[] = {
    {{"10000 recipients", FETCHER_KIND_BOUNCE, 1, 0, "5.1.1", "r9999@example.net",
      "<abc123.20@smile.example>", "5.1.1 for r9999", NULL, NULL},
     build_many_hard},
    {{"10000 recipients, one soft failure", FETCHER_KIND_BOUNCE, 0, 0, "4.4.7", "r5000@example.net",
      "<abc123.20@smile.example>", "4.4.7 for r5000", NULL, NULL},
     build_many_soft},
    {{"dirty field", FETCHER_KIND_BOUNCE, 1, 0, "5.7.1", "a@example.net",
      "<abc123.20@smile.example>", ANY "554 \xef\xbf\xbd\xef\xbf\xbd [31m rejected \xe2\x82\xac",
      NULL, NULL},
     build_dirty_field},
    {{"deep and wide", FETCHER_KIND_MAIL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL},
     build_deep_wide},
    {{"huge text", FETCHER_KIND_BOUNCE, 1, 0, NULL, NULL, NULL, NULL, NULL, NULL}, build_huge_text},
    {{"huge subject", FETCHER_KIND_MAIL, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL},
     build_huge_subject},
};

/* Big messages classify in linear time: well within LINEAR_LIMIT_MS. */
static void test_big(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(built_cases) / sizeof(built_cases[0]); i++) {
		pp_buf_t b;
		fetcher_classify_t c;
		pp_buf_init(&b);
		built_cases[i].build(&b);
		classify_timed(built_cases[i].want.name, b.data, b.len, &c);
		check(&c, &built_cases[i].want);
		fetcher_classify_clear(&c);
		pp_buf_free(&b);
	}
}

static int group_setup(void **state)
{
	(void)state;
	fetcher_parse_init();
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	fetcher_parse_shutdown();
	free(fixture_dir);
	return 0;
}

/* find_fixtures - argv[1], else tests/fixtures/mail here, else beside the binary. */
static char *find_fixtures(int argc, char **argv)
{
	if (argc > 1)
		return xstrdup(argv[1]);
	if (access("tests/fixtures/mail/qmail_bounce.eml", R_OK) == 0)
		return xstrdup("tests/fixtures/mail");
	const char *slash = strrchr(argv[0], '/');
	int dir = slash != NULL ? (int)(slash - argv[0]) : 1;
	return xasprintf("%.*s/../../tests/fixtures/mail", dir, slash != NULL ? argv[0] : ".");
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fixtures), cmocka_unit_test(test_parse_message_sets_kind),
	    cmocka_unit_test(test_rules),    cmocka_unit_test(test_hostile),
	    cmocka_unit_test(test_big),
	};
	fixture_dir = find_fixtures(argc, argv);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
