/*
 * fetcher_classify.c - what kind of mail an incoming message is, decided
 * in this order:
 *
 *   bounce       an RFC 3464 report (read by fetcher_dsn.c), or a known
 *                non-standard form: from a mailer daemon or the null
 *                sender, with a bounce subject or phrase
 *   unsubscribe  a Subject with the word "unsubscribe", white space, and
 *                one of our 32-hex tokens (from our List-Unsubscribe mailto)
 *   auto reply   RFC 3834 Auto-Submitted and the common non-standard marks
 *   mail         everything else
 *
 * Bounces come first: MTAs mark them Auto-Submitted too. An unsubscribe
 * request comes before the automatic-reply rules because the mail program
 * that sends it for a List-Unsubscribe button may mark it as automatic,
 * and the person's request must not be lost; only our token can make one.
 * Owns nothing but the strings of the result it fills.
 */
#include <gmime/gmime.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fetcher.h"

#define CLASSIFY_SUBJECT_MAX 4096 /* bytes of a Subject searched for a token */
#define CLASSIFY_TOKEN_MAX 64     /* bytes of a header's word quoted in reason */
#define CLASSIFY_COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* The non-standard bounce forms, in lower case with white space collapsed
 * (classify_norm): subjects (prefixes) and phrases of the explanation. */
static const char *const classify_fail_subjects[] = {
    "undelivered mail returned to sender",
    "mail delivery failed",
    "failure notice",
    "returned mail:",
    "undeliverable",
    "unzustellbar",
    "delivery status notification (failure)",
    "delivery failure",
    "delivery notification: delivery has failed",
    "mail system error - returned mail",
    "non-delivery report",
    "message not delivered",
};
static const char *const classify_delay_subjects[] = {
    "delayed mail (still being retried)",
    "delivery status notification (delay)",
    "warning: message",
    "delivery delayed",
    "mail delivery delayed",
};
static const char *const classify_fail_phrases[] = {
    "this is the qmail-send program",
    "this message was created automatically by mail delivery software",
    "a message that you sent could not be delivered",
    "could not be delivered to one or more recipients",
    "this is the mail system at host",
    "the following addresses had permanent fatal errors",
    "delivery to the following recipient failed permanently",
    "delivery to the following recipients failed permanently",
    "delivery has failed to these recipients or groups",
};
/* Phrases too plain to trust from the null sender alone (an automatic
 * reply is sent from it too): they count only from a mailer daemon. */
static const char *const classify_daemon_phrases[] = {
    "couldn't be delivered",
    "couldn\xe2\x80\x99t be delivered",
    "could not be delivered",
};
static const char *const classify_delay_phrases[] = {
    "you do not need to resend your message",
    "has not yet been delivered",
    "delivery to the following recipient has been delayed",
    "delivery to the following recipients has been delayed",
    "delivery has been delayed to these recipients or groups",
};
/* Local parts of the senders of non-standard bounces. The Exchange one is
 * the same in every installation. */
static const char *const classify_daemons[] = {
    "mailer-daemon",
    "postmaster",
    "mail-daemon",
    "microsoftexchange329e71ec88ae4615bbc36ab6ce41109e",
};

/* Subject prefixes of automatic replies (Exchange, Outlook, Sieve vacation,
 * hosting autoresponders). Never enough alone: a person may start a
 * Subject with "Out of Office:" too. */
static const char *const classify_auto_subjects[] = {
    "Auto:",       "Automatic reply:", "Automatische Antwort:",   "Autoreply",
    "Auto-reply:", "Out of Office:",   "Out of Office AutoReply", "Out of Office Reply",
};

static int classify_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int classify_word_char(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       c == '_';
}

static int classify_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

char *fetcher_classify_line(const char *s, size_t len, size_t max)
{
	/* control characters become spaces, invalid bytes and NUL U+FFFD */
	char *t = fetcher_utf8_clean(s, len, 1, NULL);
	size_t o = 0;
	for (size_t i = 0; t[i] != '\0'; i++) {
		char c = t[i];
		/* C1 controls (U+0080-U+009F) are control characters too */
		if ((unsigned char)c == 0xc2 && (unsigned char)t[i + 1] >= 0x80 &&
		    (unsigned char)t[i + 1] <= 0x9f) {
			c = ' ';
			i++;
		}
		if (c == ' ' && (o == 0 || t[o - 1] == ' '))
			continue;
		t[o++] = c;
	}
	if (o > max) {
		o = max;
		while (o > 0 && ((unsigned char)t[o] & 0xc0) == 0x80)
			o--;
	}
	while (o > 0 && t[o - 1] == ' ')
		o--;
	t[o] = '\0';
	if (o == 0) {
		free(t);
		return NULL;
	}
	return t;
}

/* classify_return_path_null - Return-Path: <>, the null sender that
 * bounces and automatic replies are sent with. */
static int classify_return_path_null(GMimeMessage *msg)
{
	const char *v = g_mime_object_get_header(GMIME_OBJECT(msg), "Return-Path");
	size_t n = 0;
	if (v == NULL)
		return 0;
	for (; *v != '\0'; v++) {
		if (classify_space(*v))
			continue;
		if ((n == 0 && *v != '<') || (n == 1 && *v != '>') || n == 2)
			return 0;
		n++;
	}
	return n == 2;
}

/* classify_norm - s in lower case (ASCII), control characters as spaces, runs
 * of spaces as one; owned. */
static char *classify_norm(const char *s, size_t n)
{
	char *out = xmalloc(n + 1);
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if ((unsigned char)c < 0x20 || c == 0x7f)
			c = ' ';
		else if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (c == ' ' && (o == 0 || out[o - 1] == ' '))
			continue;
		out[o++] = c;
	}
	out[o] = '\0';
	return out;
}

static int classify_has_any(const char *norm, const char *const *list, size_t count, int prefix)
{
	for (size_t i = 0; i < count; i++)
		if (prefix ? strncmp(norm, list[i], strlen(list[i])) == 0
		           : strstr(norm, list[i]) != NULL)
			return 1;
	return 0;
}

/* classify_from_daemon - From is a mailer daemon or postmaster. */
static int classify_from_daemon(GMimeMessage *msg)
{
	InternetAddressList *list = g_mime_message_get_from(msg);
	InternetAddress *a = list != NULL && internet_address_list_length(list) > 0
	                         ? internet_address_list_get_address(list, 0)
	                         : NULL;
	const char *addr = a != NULL && INTERNET_ADDRESS_IS_MAILBOX(a)
	                       ? internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(a))
	                       : NULL;
	if (addr == NULL)
		return 0;
	const char *at = strrchr(addr, '@');
	size_t local = at != NULL ? (size_t)(at - addr) : strlen(addr);
	for (size_t i = 0; i < CLASSIFY_COUNT(classify_daemons); i++)
		if (local == strlen(classify_daemons[i]) &&
		    strncasecmp(addr, classify_daemons[i], local) == 0)
			return 1;
	return 0;
}

/* classify_bounce - a non-standard bounce: from a mailer daemon with a
 * bounce subject or phrase, or from the null sender with a bounce phrase
 * (a person's mail never has either sender). The text says the rest. */
static int classify_bounce(GMimeMessage *msg, fetcher_classify_t *out)
{
	int daemon = classify_from_daemon(msg);
	if (!daemon && !classify_return_path_null(msg))
		return 0;
	const char *subject = g_mime_message_get_subject(msg);
	size_t n = subject != NULL ? strnlen(subject, CLASSIFY_SUBJECT_MAX) : 0;
	char *subj = classify_norm(subject != NULL ? subject : "", n);
	const char *s = subj + (subj[0] == ' ');
	fetcher_dsn_text_t t;
	fetcher_dsn_text_load(msg, &t);
	char *body = classify_norm(t.text.data, t.explain);
	int delayed = classify_has_any(body, classify_delay_phrases,
	                               CLASSIFY_COUNT(classify_delay_phrases), 0) ||
	              (daemon && classify_has_any(s, classify_delay_subjects,
	                                          CLASSIFY_COUNT(classify_delay_subjects), 1));
	int failed = classify_has_any(body, classify_fail_phrases,
	                              CLASSIFY_COUNT(classify_fail_phrases), 0) ||
	             (daemon && classify_has_any(s, classify_fail_subjects,
	                                         CLASSIFY_COUNT(classify_fail_subjects), 1)) ||
	             (daemon && classify_has_any(body, classify_daemon_phrases,
	                                         CLASSIFY_COUNT(classify_daemon_phrases), 0));
	free(subj);
	free(body);
	if (delayed || failed) {
		out->kind = FETCHER_KIND_BOUNCE;
		out->delayed = delayed;
		fetcher_dsn_text_read(msg, &t, out);
	}
	fetcher_dsn_text_free(&t);
	return delayed || failed;
}

/* classify_word - the first word of header name (up to white space, ';'
 * or '('), lower case, bounded; NULL if the header is absent or empty. */
static char *classify_word(GMimeMessage *msg, const char *name)
{
	const char *v = g_mime_object_get_header(GMIME_OBJECT(msg), name);
	size_t n = 0;
	if (v == NULL)
		return NULL;
	while (classify_space(*v))
		v++;
	while (v[n] != '\0' && !classify_space(v[n]) && v[n] != ';' && v[n] != '(' &&
	       n < CLASSIFY_TOKEN_MAX)
		n++;
	char *w = fetcher_classify_line(v, n, CLASSIFY_TOKEN_MAX);
	for (char *p = w; p != NULL && *p != '\0'; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	return w;
}

/* classify_suppress - X-Auto-Response-Suppress asks to suppress automatic
 * replies (All, OOF or AutoReply). Outlook and Exchange set this on
 * ordinary mail too (and lists set it on newsletters), so it only counts
 * together with an automatic-reply Subject. */
static int classify_suppress(GMimeMessage *msg)
{
	const char *v = g_mime_object_get_header(GMIME_OBJECT(msg), "X-Auto-Response-Suppress");
	static const char *const words[] = {"All", "OOF", "AutoReply"};
	while (v != NULL && *v != '\0') {
		size_t n = strcspn(v, ", \t\r\n");
		for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
			if (n == strlen(words[i]) && strncasecmp(v, words[i], n) == 0)
				return 1;
		v += n;
		v += strspn(v, ", \t\r\n");
	}
	return 0;
}

/* classify_auto_subject - the automatic-reply prefix Subject starts with. */
static const char *classify_auto_subject(GMimeMessage *msg)
{
	const char *s = g_mime_message_get_subject(msg);
	if (s == NULL)
		return NULL;
	while (classify_space(*s))
		s++;
	for (size_t i = 0; i < CLASSIFY_COUNT(classify_auto_subjects); i++)
		if (strncasecmp(s, classify_auto_subjects[i], strlen(classify_auto_subjects[i])) ==
		    0)
			return classify_auto_subjects[i];
	return NULL;
}

/* classify_auto_reply - the rule that makes msg an automatic reply, as
 * reason text (owned), or NULL. Precedence bulk, junk and list mark
 * mailing lists, not automatic replies. */
static char *classify_auto_reply(GMimeMessage *msg)
{
	static const char *const flags[] = {"X-Autoreply", "X-Autorespond"};
	char *reason = NULL;
	char *w = classify_word(msg, "Auto-Submitted");
	if (w != NULL && strcmp(w, "no") != 0)
		reason = xasprintf("Auto-Submitted: %s", w);
	free(w);
	for (size_t i = 0; reason == NULL && i < sizeof(flags) / sizeof(flags[0]); i++) {
		w = classify_word(msg, flags[i]);
		if (g_mime_object_get_header(GMIME_OBJECT(msg), flags[i]) != NULL &&
		    (w == NULL || strcmp(w, "no") != 0))
			reason = xstrdup(flags[i]);
		free(w);
	}
	if (reason == NULL) {
		w = classify_word(msg, "Precedence");
		if (w != NULL && strcmp(w, "auto_reply") == 0)
			reason = xstrdup("Precedence: auto_reply");
		free(w);
	}
	const char *prefix = reason == NULL ? classify_auto_subject(msg) : NULL;
	if (prefix != NULL && classify_suppress(msg))
		reason = xasprintf("Subject \"%s\" with X-Auto-Response-Suppress", prefix);
	else if (prefix != NULL && classify_return_path_null(msg))
		reason = xasprintf("Subject \"%s\" with Return-Path <>", prefix);
	return reason;
}

/* classify_unsubscribe - the token of an unsubscribe request in subject:
 * the word "unsubscribe" in any case, white space, then exactly 32 hex
 * digits; 0 with the token in lower case, else -1. */
static int classify_unsubscribe(const char *subject, char token[FETCHER_CLASSIFY_TOKEN_LEN + 1])
{
	static const char word[] = "unsubscribe";
	const size_t wl = sizeof(word) - 1;
	size_t len = strnlen(subject, CLASSIFY_SUBJECT_MAX);
	for (size_t i = 0; i + wl <= len; i++) {
		if (strncasecmp(subject + i, word, wl) != 0 ||
		    (i > 0 && classify_word_char(subject[i - 1])))
			continue;
		size_t k = i + wl, h = 0;
		while (k < len && (subject[k] == ' ' || subject[k] == '\t'))
			k++;
		if (k == i + wl)
			continue;
		while (k + h < len && h <= FETCHER_CLASSIFY_TOKEN_LEN &&
		       classify_hex(subject[k + h]))
			h++;
		if (h != FETCHER_CLASSIFY_TOKEN_LEN ||
		    (k + h < len && classify_word_char(subject[k + h])))
			continue;
		for (size_t j = 0; j < h; j++) {
			char c = subject[k + j];
			token[j] = c >= 'A' && c <= 'F' ? (char)(c - 'A' + 'a') : c;
		}
		token[h] = '\0';
		return 0;
	}
	return -1;
}

void fetcher_classify(GMimeMessage *msg, fetcher_classify_t *out)
{
	char token[FETCHER_CLASSIFY_TOKEN_LEN + 1];
	memset(out, 0, sizeof(*out));
	out->kind = FETCHER_KIND_MAIL;
	if (msg == NULL || fetcher_dsn_report(msg, out) || classify_bounce(msg, out))
		return;
	const char *subject = g_mime_message_get_subject(msg);
	if (subject != NULL && classify_unsubscribe(subject, token) == 0) {
		out->kind = FETCHER_KIND_UNSUBSCRIBE;
		out->unsubscribe_token = xstrdup(token);
		return;
	}
	out->reason = classify_auto_reply(msg);
	if (out->reason != NULL)
		out->kind = FETCHER_KIND_AUTO_REPLY;
}

void fetcher_classify_clear(fetcher_classify_t *c)
{
	free(c->original_message_id);
	free(c->recipient);
	free(c->status);
	free(c->diagnostic);
	free(c->reason);
	free(c->unsubscribe_token);
	memset(c, 0, sizeof(*c));
}
