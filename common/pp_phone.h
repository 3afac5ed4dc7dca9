/*
 * pp_phone.h - telephone numbers to E.164 ("+491701234567") with the
 * practice's country, from a small table of the countries PracticePost
 * supports (calling code, trunk prefix, length of the national number).
 * Pure functions, no state; shared by the composer, the sms stage and the
 * CLI so a number has one normal form everywhere.
 */
#ifndef PP_PHONE_H
#define PP_PHONE_H

/* '+', at most 15 digits, NUL. */
#define PP_PHONE_MAX 17

/* pp_phone_e164 - normalise in: spaces, tabs, dashes, dots, slashes and
 * brackets are ignored; "+CC..." and "00CC..." (011 in North America) are
 * international; anything else is national and needs country (ISO 3166-1
 * alpha-2, e.g. "DE"; NULL or "" for none). A trunk prefix ("0" in most of
 * Europe, "1" in North America) is dropped, also after a country code
 * ("+49 (0)170 ..."). For a country in the table the national number's
 * length is checked. 0 with the number in out, or -1 with the reason
 * (static text) in *why. */
int pp_phone_e164(const char *in, const char *country, char out[PP_PHONE_MAX], const char **why);

/* pp_phone_national - the digits after the country code of an E.164
 * number (a pointer into e164); for a calling code not in the table,
 * every digit after the first. */
const char *pp_phone_national(const char *e164);

/* pp_phone_country_known - whether country (ISO alpha-2) is in the table. */
int pp_phone_country_known(const char *country);

#endif
