/*
 * sms_reply.h - what an incoming text asks for: a yes to a reminder (the
 * practice's list of confirming words, or the built-in one), STOP, START,
 * HELP, or anything else (filed for staff, never acted on). Matching
 * ignores case, whitespace, punctuation and emoji skin-tone modifiers.
 * Pure functions, no state.
 */
#ifndef SMS_REPLY_H
#define SMS_REPLY_H

#include <stddef.h>

typedef enum {
	SMS_REPLY_OTHER,   /* unclear: filed for staff */
	SMS_REPLY_CONFIRM, /* yes: confirm what the reminder covered */
	SMS_REPLY_STOP,    /* opt the number out of SMS */
	SMS_REPLY_START,   /* opt it back in */
	SMS_REPLY_HELP,    /* answer with the practice's name and phone */
} sms_reply_kind_t;

/* The built-in confirming words, NULL-terminated. */
extern const char *const sms_reply_default_confirm[];

/* sms_reply_normalize - text folded for matching: ASCII letters upper-cased,
 * whitespace, ASCII punctuation, variation selectors, zero-width joiners
 * and skin-tone modifiers dropped; other characters kept. Owned (free()). */
char *sms_reply_normalize(const char *text);

/* sms_reply_classify - confirm: the practice's words (n of them), or NULL
 * for the built-in list. STOP words win over everything, then START, HELP,
 * and a confirming word; any other text is SMS_REPLY_OTHER. */
sms_reply_kind_t sms_reply_classify(const char *text, const char *const *confirm, size_t n);

const char *sms_reply_kind_name(sms_reply_kind_t kind);

#endif
