/*
 * fetcher_file.c - the automatic filing rules for an incoming message, in
 * order; the first that decides wins:
 *
 *   1. bounce       a bounce names the Message-ID of one of our outgoing
 *                   messages: filed to that message's person
 *   2. unsubscribe  an unsubscribe request carries the token of one of our
 *                   outgoing messages: filed to its person
 *   3. reference    In-Reply-To / References name one of our outgoing
 *                   messages (newest reference first): filed to its person
 *   4. sender       exactly one patient of the practice has the sender's
 *                   address (case-insensitive): filed to that patient
 *   5. family       several patients share the address, all of one family,
 *                   and their guarantor is one person: filed to the
 *                   guarantor, every patient with the address listed in
 *                   message_people. Any other sharing stays unfiled.
 *   6. other        no patient has the address and exactly one specialist,
 *                   provider or staff member does: filed to them
 *
 * Rules 4 to 6 are common/pp_filing.c, shared with incoming SMS.
 * Filing to a patient tags the message Patient, to a specialist Specialist.
 * Nothing here writes: fetcher_store.c stores the outcome.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fetcher.h"
#include "pp_filing.h"
#include "pp_log.h"
#include "pp_util.h"

/* The people sharing one address that filing looks at. */
#define FILE_MAX_SHARING 50

/* file_outgoing - file to the person of the outgoing message that res's
 * first row names (columns: person_id, message id, kind). */
static void file_outgoing(const PGresult *res, const char *how, fetcher_filing_t *f)
{
	f->person_id = pp_db_value_ll(res, 0, 0, 0);
	f->related_id = pp_db_value_ll(res, 0, 1, 0);
	f->how = how;
	f->tag = pp_filing_tag_for(pp_db_value(res, 0, 2));
	snprintf(f->why, sizeof(f->why), "%s of msg=%lld",
	         strcmp(how, "reference") == 0 ? "reply" : how, (long long)f->related_id);
}

/* file_by_ids - rules 1 and 3: our outgoing message with one of ids
 * (newline-separated, in order of preference). 1 filed, 0 no, -1 db. */
static int file_by_ids(pp_db_t *db, const char *practice, const char *ids, const char *how,
                       fetcher_filing_t *f)
{
	PGresult *res = pp_db_exec_prepared(
	    db,
	    "SELECT m.person_id, m.id, p.kind::text FROM unnest(string_to_array($2, E'\\n')) "
	    "WITH ORDINALITY AS r(mid, n) JOIN messages m ON m.message_id_header = r.mid "
	    "JOIN people p ON p.id = m.person_id "
	    "WHERE m.practice_id = $1 AND m.direction = 'out' ORDER BY r.n, m.id LIMIT 1",
	    PP_DB_ARGS(practice, ids));
	if (res == NULL)
		return -1;
	int found = PQntuples(res) == 1;
	if (found)
		file_outgoing(res, how, f);
	PQclear(res);
	return found;
}

/* file_by_references - rule 3; each id in both stored forms, "<id>" and "id". */
static int file_by_references(pp_db_t *db, const char *practice, const fetcher_parsed_t *p,
                              fetcher_filing_t *f)
{
	pp_buf_t ids;
	if (p->nrefs == 0)
		return 0;
	pp_buf_init(&ids);
	for (size_t i = 0; i < p->nrefs; i++)
		pp_buf_printf(&ids, "%s<%s>\n%s", i ? "\n" : "", p->refs[i], p->refs[i]);
	int rc = file_by_ids(db, practice, ids.data, "reference", f);
	pp_buf_free(&ids);
	return rc;
}

/* file_by_token - rule 2. */
static int file_by_token(pp_db_t *db, const char *practice, const char *token, fetcher_filing_t *f)
{
	PGresult *res =
	    pp_db_exec_prepared(db,
	                        "SELECT m.person_id, m.id, p.kind::text FROM messages m "
	                        "JOIN people p ON p.id = m.person_id WHERE m.practice_id = $1 "
	                        "AND m.direction = 'out' AND m.unsubscribe_token = $2",
	                        PP_DB_ARGS(practice, token));
	if (res == NULL)
		return -1;
	int found = PQntuples(res) == 1;
	if (found)
		file_outgoing(res, "unsubscribe", f);
	PQclear(res);
	return found;
}

/* file_by_sender - rules 4, 5 and 6. 0 done (filed or not), -1 db error. */
static int file_by_sender(pp_db_t *db, const char *practice, const fetcher_parsed_t *p,
                          fetcher_filing_t *f)
{
	char limit[PP_LL_LEN];
	if (*p->from_addr == '\0') {
		snprintf(f->why, sizeof(f->why), "no sender address");
		return 0;
	}
	PGresult *res = pp_db_exec_prepared(
	    db,
	    "SELECT id, kind::text, family_id, guarantor_id FROM people WHERE practice_id = $1 "
	    "AND lower(email) = lower($2) ORDER BY kind <> 'patient', id LIMIT $3::int",
	    PP_DB_ARGS(practice, p->from_addr, pp_lltoa(limit, FILE_MAX_SHARING)));
	if (res == NULL)
		return -1;
	pp_filing_by_people(res, "sender address", &f->person_id, &f->how, &f->tag, &f->listed,
	                    f->why, sizeof(f->why));
	PQclear(res);
	return 0;
}

int fetcher_file(pp_db_t *db, int64_t practice_id, const fetcher_parsed_t *p, fetcher_filing_t *f)
{
	char practice[PP_LL_LEN];
	int rc = 0;
	pp_lltoa(practice, practice_id);
	memset(f, 0, sizeof(*f));
	f->how = "none";
	pp_buf_init(&f->listed);
	if (p->cls.kind == FETCHER_KIND_BOUNCE && p->cls.original_message_id != NULL) {
		/* both stored forms: "<id>" and "id" */
		const char *id = p->cls.original_message_id;
		size_t n = strlen(id);
		char *ids = n > 2 && id[0] == '<' && id[n - 1] == '>'
		                ? xasprintf("%s\n%.*s", id, (int)(n - 2), id + 1)
		                : xasprintf("<%s>\n%s", id, id);
		rc = file_by_ids(db, practice, ids, "bounce", f);
		free(ids);
	} else if (p->cls.kind == FETCHER_KIND_UNSUBSCRIBE)
		rc = file_by_token(db, practice, p->cls.unsubscribe_token, f);
	if (rc == 0)
		rc = file_by_references(db, practice, p, f);
	if (rc == 0)
		rc = file_by_sender(db, practice, p, f);
	return rc < 0 ? -1 : 0;
}

void fetcher_filing_clear(fetcher_filing_t *f)
{
	pp_buf_free(&f->listed);
}
