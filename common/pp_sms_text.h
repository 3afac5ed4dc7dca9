/*
 * pp_sms_text.h - what an SMS text costs before it goes out: classified as
 * GSM 03.38 (7-bit) or Unicode (UCS-2), or refused as invalid UTF-8, and
 * counted in segments. Pure functions, no state; shared by the composer
 * (refuses a text over the practice's maximum) and the sms stage.
 */
#ifndef PP_PP_SMS_TEXT_H
#define PP_PP_SMS_TEXT_H

#include <stddef.h>

typedef enum {
	PP_SMS_TEXT_GSM,     /* every character is in the GSM 03.38 alphabet or its extension */
	PP_SMS_TEXT_UNICODE, /* valid UTF-8 that needs UCS-2 (coding=2) */
	PP_SMS_TEXT_INVALID, /* not valid UTF-8, or a control character other than CR, LF, TAB */
} pp_sms_text_kind_t;

/* pp_sms_text_valid_utf8 - whether text is valid UTF-8 (any characters). */
int pp_sms_text_valid_utf8(const char *text);

/* pp_sms_text_classify - GSM, Unicode or invalid (see pp_sms_text_kind_t). */
pp_sms_text_kind_t pp_sms_text_classify(const char *text);

/* pp_sms_text_segments - how many SMS the text takes: GSM 03.38 texts
 * hold 160 septets in one SMS, 153 per part when concatenated (the
 * extension characters ^ { } \\ [ ~ ] | and the euro sign take two, never
 * split); UCS-2 texts 70 UTF-16 units, 67 per part (a surrogate pair never
 * split). *kind and *units (septets or UTF-16 units) are set when not NULL.
 * 0 for an empty text, -1 for an invalid one. */
int pp_sms_text_segments(const char *text, pp_sms_text_kind_t *kind, int *units);

#endif
