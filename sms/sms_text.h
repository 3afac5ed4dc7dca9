/*
 * sms_text.h - what an SMS looks like before it goes out: the recipient's
 * phone number normalised, and the text classified as GSM 03.38 (7-bit) or
 * Unicode (UCS-2), or refused as invalid UTF-8. Pure functions, no state.
 */
#ifndef SMS_TEXT_H
#define SMS_TEXT_H

#include <stddef.h>

/* Longest number accepted: E.164 allows 15 digits, plus '+' and the NUL. */
#define SMS_PHONE_MAX 17

typedef enum {
	SMS_TEXT_GSM,     /* every character is in the GSM 03.38 alphabet or its extension */
	SMS_TEXT_UNICODE, /* valid UTF-8 that needs UCS-2 (coding=2) */
	SMS_TEXT_INVALID, /* not valid UTF-8, or a control character other than CR, LF, TAB */
} sms_text_kind_t;

/* sms_text_normalize_phone - strip spaces, dashes, dots and brackets;
 * accept an optional leading '+' and 3 to 15 digits. 0 with the number in
 * out, or -1 with a reason (static text) in *why. */
int sms_text_normalize_phone(const char *in, char out[SMS_PHONE_MAX], const char **why);

/* sms_text_classify - GSM, Unicode or invalid (see sms_text_kind_t). */
sms_text_kind_t sms_text_classify(const char *text);

#endif
