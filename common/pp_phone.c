/*
 * pp_phone.c - E.164 normalisation (see pp_phone.h). Owns the table of
 * supported countries. Table-driven C rather than libphonenumber: Debian
 * ships libphonenumber for C++ only, and what the project needs (one
 * normal form, a length check, a clear reason) is a table of a few lines
 * per country. A number whose calling code is not in the table is accepted
 * by E.164's general rule (7 to 15 digits, no leading 0).
 */
#include "pp_phone.h"

#include <string.h>

typedef struct {
	char iso[3];
	const char *code;  /* country calling code */
	const char *trunk; /* national trunk prefix, "" for none */
	int min_len;       /* digits of the national (significant) number */
	int max_len;
	int keeps_zero; /* the leading 0 is part of the number (Italy) */
} phone_country_t;

static const phone_country_t phone_countries[] = {
    {"AT", "43", "0", 4, 13, 0}, {"AU", "61", "0", 9, 9, 0},  {"BE", "32", "0", 8, 9, 0},
    {"CA", "1", "1", 10, 10, 0}, {"CH", "41", "0", 9, 9, 0},  {"DE", "49", "0", 6, 13, 0},
    {"DK", "45", "", 8, 8, 0},   {"ES", "34", "", 9, 9, 0},   {"FI", "358", "0", 5, 12, 0},
    {"FR", "33", "0", 9, 9, 0},  {"GB", "44", "0", 9, 10, 0}, {"IE", "353", "0", 7, 9, 0},
    {"IT", "39", "", 6, 11, 1},  {"LU", "352", "", 4, 11, 0}, {"NL", "31", "0", 9, 9, 0},
    {"NO", "47", "", 8, 8, 0},   {"NZ", "64", "0", 8, 10, 0}, {"PL", "48", "", 9, 9, 0},
    {"PT", "351", "", 9, 9, 0},  {"SE", "46", "0", 7, 10, 0}, {"US", "1", "1", 10, 10, 0},
};
#define PHONE_NCOUNTRIES (sizeof(phone_countries) / sizeof(phone_countries[0]))

static const phone_country_t *phone_by_iso(const char *iso)
{
	if (iso == NULL)
		return NULL;
	for (size_t i = 0; i < PHONE_NCOUNTRIES; i++)
		if (strcmp(phone_countries[i].iso, iso) == 0)
			return &phone_countries[i];
	return NULL;
}

/* phone_by_code - the country whose calling code starts digits (codes are
 * prefix-free, so the first match is the only one). */
static const phone_country_t *phone_by_code(const char *digits)
{
	for (size_t i = 0; i < PHONE_NCOUNTRIES; i++) {
		size_t n = strlen(phone_countries[i].code);
		if (strncmp(digits, phone_countries[i].code, n) == 0)
			return &phone_countries[i];
	}
	return NULL;
}

int pp_phone_country_known(const char *country)
{
	return phone_by_iso(country) != NULL;
}

/* phone_digits - in without separators: 0 with digits and *plus set, -1. */
static int phone_digits(const char *in, char *digits, size_t size, int *plus, const char **why)
{
	size_t n = 0;
	*plus = 0;
	for (const char *p = in; *p; p++) {
		if (strchr(" \t-./()", *p) != NULL)
			continue;
		if (*p == '+' && n == 0 && !*plus) {
			*plus = 1;
			continue;
		}
		if (*p < '0' || *p > '9') {
			*why = "a phone number holds only digits and an optional leading +, "
			       "with spaces, dashes, dots, slashes or brackets between them";
			return -1;
		}
		if (n + 1 >= size) {
			*why = "phone number has too many digits";
			return -1;
		}
		digits[n++] = *p;
	}
	digits[n] = '\0';
	if (n == 0) {
		*why = "no phone number";
		return -1;
	}
	return 0;
}

/* phone_national - check and copy a national number of country c. */
static int phone_national(const phone_country_t *c, const char *nsn, char out[PP_PHONE_MAX],
                          const char **why)
{
	size_t len = strlen(nsn);
	if (!c->keeps_zero && nsn[0] == '0') {
		*why = "the national number starts with 0 after the trunk prefix";
		return -1;
	}
	if ((int)len < c->min_len) {
		*why = "phone number is too short for its country";
		return -1;
	}
	if ((int)len > c->max_len) {
		*why = "phone number is too long for its country";
		return -1;
	}
	if (strlen(c->code) + len > 15) {
		*why = "phone number has more than 15 digits";
		return -1;
	}
	out[0] = '+';
	strcpy(out + 1, c->code);
	strcat(out, nsn);
	return 0;
}

int pp_phone_e164(const char *in, const char *country, char out[PP_PHONE_MAX], const char **why)
{
	char digits[40];
	int plus;
	const char *d = digits;

	if (in == NULL || phone_digits(in, digits, sizeof(digits), &plus, why) != 0) {
		if (in == NULL)
			*why = "no phone number";
		return -1;
	}
	const phone_country_t *home = country && *country ? phone_by_iso(country) : NULL;
	if (country && *country && home == NULL) {
		*why = "the practice's country is not one PracticePost knows";
		return -1;
	}
	int intl = plus;
	if (!intl && strncmp(d, "00", 2) == 0 && !(home && strcmp(home->code, "1") == 0)) {
		intl = 1, d += 2;
	} else if (!intl && strncmp(d, "011", 3) == 0 && home && strcmp(home->code, "1") == 0) {
		intl = 1, d += 3;
	}
	if (!intl) {
		if (home == NULL) {
			*why = "the number has no country code and the practice has no country set";
			return -1;
		}
		size_t tl = strlen(home->trunk);
		/* North America: "1 212 555 0100" and "212 555 0100" are the same. */
		if (tl > 0 && strncmp(d, home->trunk, tl) == 0 &&
		    (strcmp(home->code, "1") != 0 || strlen(d) == 11))
			d += tl;
		return phone_national(home, d, out, why);
	}
	if (*d == '0' || *d == '\0') {
		*why = "a country code never starts with 0";
		return -1;
	}
	const phone_country_t *c = phone_by_code(d);
	if (c != NULL) {
		const char *nsn = d + strlen(c->code);
		/* "+49 (0)170 ...": the trunk prefix written after the code. */
		if (!c->keeps_zero && *c->trunk && strcmp(c->code, "1") != 0 &&
		    strncmp(nsn, c->trunk, strlen(c->trunk)) == 0)
			nsn += strlen(c->trunk);
		return phone_national(c, nsn, out, why);
	}
	size_t len = strlen(d);
	if (len < 7 || len > 15) {
		*why =
		    len < 7 ? "phone number is too short" : "phone number has more than 15 digits";
		return -1;
	}
	out[0] = '+';
	strcpy(out + 1, d);
	return 0;
}

const char *pp_phone_national(const char *e164)
{
	const char *d = e164 + (e164[0] == '+');
	const phone_country_t *c = *d ? phone_by_code(d) : NULL;
	if (c != NULL)
		return d + strlen(c->code);
	return *d ? d + 1 : d;
}
