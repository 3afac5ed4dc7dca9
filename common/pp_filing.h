/*
 * pp_filing.h - the filing rule shared by incoming email and incoming SMS:
 * given the people of a practice who have the sender's address or mobile
 * number, who the message belongs to.
 *
 *   sender  exactly one patient has it: filed to that patient
 *   family  several patients share it, all of one family, and their
 *           guarantor is one person: filed to the guarantor, every patient
 *           with it listed. Any other sharing stays unfiled.
 *   other   no patient has it and exactly one specialist, provider or staff
 *           member does: filed to them
 */
#ifndef PP_FILING_H
#define PP_FILING_H

#include <stddef.h>
#include <stdint.h>

#include "pp_db.h"
#include "pp_util.h"

/* pp_filing_by_people - apply the rule to res (columns: id, kind,
 * family_id, guarantor_id; patients first). what names the key in the
 * explanation ("sender address", "mobile number"). Sets *person_id (0:
 * unfiled), *how ("sender", "family", "other", or unchanged), *tag
 * ("Patient", "Specialist" or NULL), appends the listed family members
 * ("id,id") to listed and writes why. */
void pp_filing_by_people(const PGresult *res, const char *what, int64_t *person_id,
                         const char **how, const char **tag, pp_buf_t *listed, char *why,
                         size_t whylen);

/* pp_filing_tag_for - the tag filing to a person of kind adds, or NULL. */
const char *pp_filing_tag_for(const char *kind);

#endif
