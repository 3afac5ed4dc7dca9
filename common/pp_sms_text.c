/*
 * pp_sms_text.c - GSM 03.38 / UCS-2 classification of SMS texts and their
 * segment count (see pp_sms_text.h). Owns the table of GSM characters that
 * lie outside ASCII.
 */
#include "pp_sms_text.h"

#include <stdint.h>
#include <string.h>

/* GSM 03.38 characters outside ASCII: the default alphabet and the euro
 * sign of the extension table. */
static const uint32_t gsm_non_ascii[] = {
    0x00A1, 0x00A3, 0x00A4, 0x00A5, 0x00A7, 0x00BF, 0x00C4, 0x00C5, 0x00C6, 0x00C7,
    0x00C9, 0x00D1, 0x00D6, 0x00D8, 0x00DC, 0x00DF, 0x00E0, 0x00E4, 0x00E5, 0x00E6,
    0x00E8, 0x00E9, 0x00EC, 0x00F1, 0x00F2, 0x00F6, 0x00F8, 0x00F9, 0x00FC, 0x0393,
    0x0394, 0x0398, 0x039B, 0x039E, 0x03A0, 0x03A3, 0x03A6, 0x03A8, 0x03A9, 0x20AC,
};

static int text_is_gsm(uint32_t cp)
{
	if (cp < 0x80)
		return cp != '`'; /* the one printable ASCII character GSM lacks */
	for (size_t i = 0; i < sizeof(gsm_non_ascii) / sizeof(gsm_non_ascii[0]); i++)
		if (gsm_non_ascii[i] == cp)
			return 1;
	return 0;
}

/* text_next_utf8 - decode one code point; -1 on invalid UTF-8 (overlong
 * forms, surrogates and values past U+10FFFF included). */
static int text_next_utf8(const unsigned char **pp, uint32_t *cp)
{
	const unsigned char *p = *pp;
	uint32_t c = p[0], min;
	int extra;
	if (c < 0x80) {
		extra = 0, min = 0;
	} else if ((c & 0xE0) == 0xC0) {
		extra = 1, min = 0x80, c &= 0x1F;
	} else if ((c & 0xF0) == 0xE0) {
		extra = 2, min = 0x800, c &= 0x0F;
	} else if ((c & 0xF8) == 0xF0) {
		extra = 3, min = 0x10000, c &= 0x07;
	} else {
		return -1;
	}
	for (int i = 1; i <= extra; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return -1;
		c = c << 6 | (p[i] & 0x3F);
	}
	if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
		return -1;
	*cp = c;
	*pp = p + 1 + extra;
	return 0;
}

int pp_sms_text_valid_utf8(const char *text)
{
	const unsigned char *p = (const unsigned char *)text;
	while (*p) {
		uint32_t cp;
		if (text_next_utf8(&p, &cp) != 0)
			return 0;
	}
	return 1;
}

pp_sms_text_kind_t pp_sms_text_classify(const char *text)
{
	const unsigned char *p = (const unsigned char *)text;
	pp_sms_text_kind_t kind = PP_SMS_TEXT_GSM;
	while (*p) {
		uint32_t cp;
		if (text_next_utf8(&p, &cp) != 0)
			return PP_SMS_TEXT_INVALID;
		if ((cp < 0x20 && cp != '\n' && cp != '\r' && cp != '\t') || cp == 0x7F)
			return PP_SMS_TEXT_INVALID;
		if (cp == '\t' || !text_is_gsm(cp))
			kind = PP_SMS_TEXT_UNICODE;
	}
	return kind;
}

/* text_is_extension - a GSM character sent as escape + code: two septets. */
static int text_is_extension(uint32_t cp)
{
	return cp == '^' || cp == '{' || cp == '}' || cp == '\\' || cp == '[' || cp == '~' ||
	       cp == ']' || cp == '|' || cp == 0x20AC || cp == 0x0C;
}

int pp_sms_text_segments(const char *text, pp_sms_text_kind_t *kind_out, int *units_out)
{
	pp_sms_text_kind_t kind = pp_sms_text_classify(text);
	const unsigned char *p = (const unsigned char *)text;
	int units = 0, segments = 1, used = 0;
	int gsm = kind == PP_SMS_TEXT_GSM;
	int single = gsm ? 160 : 70, multi = gsm ? 153 : 67;

	if (kind_out != NULL)
		*kind_out = kind;
	if (kind == PP_SMS_TEXT_INVALID)
		return -1;
	/* Count first: a text that fits one SMS is never split. */
	while (*p) {
		uint32_t cp;
		text_next_utf8(&p, &cp);
		units += gsm ? (text_is_extension(cp) ? 2 : 1) : (cp >= 0x10000 ? 2 : 1);
	}
	if (units_out != NULL)
		*units_out = units;
	if (units <= single)
		return units == 0 ? 0 : 1;
	/* Several parts: an escape pair or a surrogate pair is never split. */
	p = (const unsigned char *)text;
	while (*p) {
		uint32_t cp;
		text_next_utf8(&p, &cp);
		int w = gsm ? (text_is_extension(cp) ? 2 : 1) : (cp >= 0x10000 ? 2 : 1);
		if (used + w > multi) {
			segments++;
			used = 0;
		}
		used += w;
	}
	return segments;
}
