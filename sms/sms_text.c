/*
 * sms_text.c - phone number normalisation and GSM 03.38 / UCS-2 text
 * classification for outgoing SMS. Owns the table of GSM characters that
 * lie outside ASCII.
 */
#include "sms_text.h"

#include <stdint.h>
#include <string.h>

int sms_text_normalize_phone(const char *in, char out[SMS_PHONE_MAX], const char **why)
{
	size_t n = 0, digits = 0;
	if (in == NULL || *in == '\0') {
		*why = "no phone number";
		return -1;
	}
	for (const char *p = in; *p; p++) {
		if (*p == ' ' || *p == '\t' || *p == '-' || *p == '.' || *p == '(' || *p == ')')
			continue;
		if (*p == '+' && n == 0) {
			out[n++] = '+';
			continue;
		}
		if (*p < '0' || *p > '9') {
			*why = "a phone number holds only digits and an optional leading +, "
			       "with spaces, dashes, dots or brackets between them";
			return -1;
		}
		if (++digits > 15) {
			*why = "phone number has more than 15 digits";
			return -1;
		}
		out[n++] = *p;
	}
	if (digits < 3) {
		*why = "phone number has fewer than 3 digits";
		return -1;
	}
	out[n] = '\0';
	return 0;
}

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

sms_text_kind_t sms_text_classify(const char *text)
{
	const unsigned char *p = (const unsigned char *)text;
	sms_text_kind_t kind = SMS_TEXT_GSM;
	while (*p) {
		uint32_t cp;
		if (text_next_utf8(&p, &cp) != 0)
			return SMS_TEXT_INVALID;
		if ((cp < 0x20 && cp != '\n' && cp != '\r' && cp != '\t') || cp == 0x7F)
			return SMS_TEXT_INVALID;
		if (cp == '\t' || !text_is_gsm(cp))
			kind = SMS_TEXT_UNICODE;
	}
	return kind;
}
