/*
 * pp_filing.c - the sender / family / other filing rule (see pp_filing.h)
 * used by the fetcher for email and by the sms stage for texts.
 */
#include "pp_filing.h"

#include <stdio.h>
#include <string.h>

const char *pp_filing_tag_for(const char *kind)
{
	if (strcmp(kind, "patient") == 0)
		return "Patient";
	if (strcmp(kind, "specialist") == 0)
		return "Specialist";
	return NULL;
}

/* filing_family - the family rule over the patients of res. */
static void filing_family(const PGresult *res, int patients, const char *what, int64_t *person_id,
                          const char **how, const char **tag, pp_buf_t *listed, char *why,
                          size_t whylen)
{
	const char *family = NULL, *guarantor = NULL;
	int one_family = 1, one_guarantor = 1;
	for (int i = 0; i < PQntuples(res); i++) {
		if (strcmp(pp_db_value(res, i, 1), "patient") != 0)
			continue;
		const char *fam = pp_db_value(res, i, 2), *g = pp_db_value(res, i, 3);
		if (fam == NULL || (family != NULL && strcmp(fam, family) != 0))
			one_family = 0;
		family = fam ? fam : family;
		if (g != NULL && guarantor != NULL && strcmp(g, guarantor) != 0)
			one_guarantor = 0;
		guarantor = g ? g : guarantor;
	}
	if (!one_family || family == NULL) {
		snprintf(why, whylen, "%s shared by %d patients not of one family", what, patients);
		return;
	}
	if (!one_guarantor || guarantor == NULL) {
		snprintf(why, whylen,
		         "%s shared by %d patients of family %s with no single guarantor", what,
		         patients, family);
		return;
	}
	pp_parse_int64(guarantor, person_id);
	*how = "family";
	*tag = "Patient";
	for (int i = 0; i < PQntuples(res); i++)
		if (strcmp(pp_db_value(res, i, 1), "patient") == 0)
			pp_buf_printf(listed, "%s%s", listed->len ? "," : "",
			              pp_db_value(res, i, 0));
	snprintf(why, whylen, "%s shared by %d patients of family %s: filed to the guarantor", what,
	         patients, family);
}

void pp_filing_by_people(const PGresult *res, const char *what, int64_t *person_id,
                         const char **how, const char **tag, pp_buf_t *listed, char *why,
                         size_t whylen)
{
	int n = PQntuples(res), patients = 0;
	*person_id = 0;
	for (int i = 0; i < n; i++)
		patients += strcmp(pp_db_value(res, i, 1), "patient") == 0;
	if (patients == 1 || (patients == 0 && n == 1)) {
		*person_id = pp_db_value_ll(res, 0, 0, 0);
		*how = patients ? "sender" : "other";
		*tag = pp_filing_tag_for(pp_db_value(res, 0, 1));
		snprintf(why, whylen, "%s matches one %s", what, pp_db_value(res, 0, 1));
	} else if (patients > 1) {
		filing_family(res, patients, what, person_id, how, tag, listed, why, whylen);
	} else if (n > 1) {
		snprintf(why, whylen, "%s shared by %d people", what, n);
	} else {
		snprintf(why, whylen, "%s matches nobody", what);
	}
}
