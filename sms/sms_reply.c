/*
 * sms_reply.c - the keywords of incoming texts (see sms_reply.h). Owns the
 * keyword lists.
 */
#include "sms_reply.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pp_util.h"

const char *const sms_reply_default_confirm[] = {
    "Y",
    "YES",
    "YEP",
    "YEAH",
    "YA",
    "C",
    "CONFIRM",
    "CONFIRMED",
    "OK",
    "OKAY",
    "SURE",
    "\xF0\x9F\x91\x8D" /* thumbs up */,
    "\xE2\x9C\x85" /* check mark button */,
    "\xE2\x9C\x94" /* heavy check mark */,
    "\xF0\x9F\x91\x8C" /* OK hand */,
    NULL,
};

static const char *const reply_stop[] = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL",
                                         "END",  "QUIT",    NULL};
static const char *const reply_start[] = {"START", "UNSTOP", NULL};
static const char *const reply_help[] = {"HELP", "INFO", NULL};

/* reply_utf8_len - bytes of the UTF-8 sequence starting with c (1 for a
 * stray byte, so the scan always advances). */
static size_t reply_utf8_len(unsigned char c)
{
	if (c >= 0xF0 && c < 0xF8)
		return 4;
	if (c >= 0xE0)
		return c < 0xF0 ? 3 : 1;
	if (c >= 0xC0)
		return 2;
	return 1;
}

/* reply_dropped - a code point that carries no meaning for matching. */
static int reply_dropped(const unsigned char *p, size_t len)
{
	/* U+FE0F variation selector-16, U+FE0E VS-15: EF B8 8F / EF B8 8E */
	if (len == 3 && p[0] == 0xEF && p[1] == 0xB8 && (p[2] == 0x8F || p[2] == 0x8E))
		return 1;
	/* U+200B..U+200D zero width space / non-joiner / joiner: E2 80 8B..8D */
	if (len == 3 && p[0] == 0xE2 && p[1] == 0x80 && p[2] >= 0x8B && p[2] <= 0x8D)
		return 1;
	/* U+00A0 no-break space */
	if (len == 2 && p[0] == 0xC2 && p[1] == 0xA0)
		return 1;
	/* U+1F3FB..U+1F3FF skin tones: F0 9F 8F BB..BF */
	if (len == 4 && p[0] == 0xF0 && p[1] == 0x9F && p[2] == 0x8F && p[3] >= 0xBB &&
	    p[3] <= 0xBF)
		return 1;
	return 0;
}

char *sms_reply_normalize(const char *text)
{
	pp_buf_t out;
	pp_buf_init(&out);
	pp_buf_puts(&out, "");
	for (const unsigned char *p = (const unsigned char *)(text ? text : ""); *p;) {
		size_t len = reply_utf8_len(*p);
		for (size_t i = 1; i < len; i++)
			if (p[i] == '\0') {
				len = i;
				break;
			}
		if (len == 1) {
			unsigned char c = *p;
			if (c >= 'a' && c <= 'z')
				c = (unsigned char)(c - 'a' + 'A');
			if ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80)
				pp_buf_append(&out, &c, 1);
		} else if (!reply_dropped(p, len)) {
			pp_buf_append(&out, p, len);
		}
		p += len;
	}
	return pp_buf_steal(&out);
}

static int reply_in(const char *word, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n && list[i] != NULL; i++) {
		char *w = sms_reply_normalize(list[i]);
		int same = *w != '\0' && strcmp(w, word) == 0;
		free(w);
		if (same)
			return 1;
	}
	return 0;
}

sms_reply_kind_t sms_reply_classify(const char *text, const char *const *confirm, size_t n)
{
	char *word = sms_reply_normalize(text);
	sms_reply_kind_t kind = SMS_REPLY_OTHER;
	if (confirm == NULL) {
		confirm = sms_reply_default_confirm;
		n = SIZE_MAX;
	}
	if (*word == '\0')
		kind = SMS_REPLY_OTHER;
	else if (reply_in(word, reply_stop, SIZE_MAX))
		kind = SMS_REPLY_STOP;
	else if (reply_in(word, reply_start, SIZE_MAX))
		kind = SMS_REPLY_START;
	else if (reply_in(word, reply_help, SIZE_MAX))
		kind = SMS_REPLY_HELP;
	else if (reply_in(word, confirm, n))
		kind = SMS_REPLY_CONFIRM;
	free(word);
	return kind;
}

const char *sms_reply_kind_name(sms_reply_kind_t kind)
{
	switch (kind) {
	case SMS_REPLY_OTHER:
		return "other";
	case SMS_REPLY_CONFIRM:
		return "confirm";
	case SMS_REPLY_STOP:
		return "stop";
	case SMS_REPLY_START:
		return "start";
	case SMS_REPLY_HELP:
		return "help";
	}
	return "invalid";
}
