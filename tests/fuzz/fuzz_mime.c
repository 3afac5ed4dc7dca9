/*
 * fuzz_mime.c - libFuzzer target for the incoming mail path without the
 * database: fetcher_parse_message (GMime headers, parts and attachments,
 * the HTML sanitiser on the HTML body, classification), then the pure
 * part of filing. Filing's lookups are SQL (fetcher_file.c); what is
 * fuzzed is what they are fed - the sender address, the references, the
 * bounce's original Message-ID and the unsubscribe token, checked against
 * fetcher.h's promises - and the shared sender/family/other rule
 * (pp_filing_by_people) over people rows made from the message's To and
 * Cc addresses, in a result built without a server.
 */
#include <gmime/gmime.h>
#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fetcher.h"
#include "fuzz_check.h"
#include "pp_filing.h"
#include "pp_html.h"

#define MIME_MAX_PEOPLE 50

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fetcher_parse_init();
	return 0;
}

/* mime_check_parsed - what the store and filing rely on. */
static void mime_check_parsed(const fetcher_parsed_t *p, const char *raw, size_t len)
{
	if (p->from_addr == NULL || p->to_addr == NULL || p->cc_addr == NULL ||
	    p->subject == NULL || p->body == NULL || p->dedup_key == NULL)
		abort();
	const char *const lines[] = {p->from_addr, p->to_addr,    p->cc_addr,
	                             p->subject,   p->message_id, p->references};
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		fuzz_check_text(lines[i], 1);
	for (size_t i = 0; i < p->nrefs; i++)
		fuzz_check_text(p->refs[i], 1);
	fuzz_check_text(p->body, 0);
	fuzz_check_text(p->body_text, 0);
	fuzz_check_text(p->body_html_safe, 0);
	if ((p->body_html == NULL) != (p->body_html_safe == NULL))
		abort();
	for (size_t i = 0; i < p->nattachments; i++) {
		const fetcher_attachment_t *a = &p->attachments[i];
		fuzz_check_text(a->filename, 1);
		fuzz_check_text(a->content_type, 1);
		fuzz_check_text(a->content_id, 1);
		if (strchr(a->filename, '/') != NULL || strcmp(a->filename, ".") == 0 ||
		    strcmp(a->filename, "..") == 0 || a->filename[0] == '\0')
			abort();
		if (a->raw_encoding == NULL ? a->data == NULL
		                            : (a->raw_offset < 0 || a->raw_length < 0 ||
		                               (uint64_t)(a->raw_offset + a->raw_length) > len))
			abort();
		if (a->raw_encoding != NULL && strcmp(a->raw_encoding, "identity") == 0 &&
		    (size_t)a->raw_length != a->len)
			abort();
	}
	fuzz_check_classify(&p->cls);
	(void)raw;
}

/* mime_set - one field of a built result; NULL is SQL NULL. */
static void mime_set(PGresult *res, int row, int col, const char *v)
{
	if (!PQsetvalue(res, row, col, (char *)v, v ? (int)strlen(v) : -1))
		abort();
}

/* mime_people - people rows (id, kind, family_id, guarantor_id; patients
 * first, as filing's query orders them) made from the To and Cc lists. */
static PGresult *mime_people(const fetcher_parsed_t *p)
{
	static const char *const kinds[] = {"patient", "specialist", "provider", "staff"};
	PGresAttDesc cols[4];
	const char *const names[] = {"id", "kind", "family_id", "guarantor_id"};
	memset(cols, 0, sizeof(cols));
	for (int i = 0; i < 4; i++)
		cols[i].name = (char *)names[i];
	PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
	if (res == NULL || !PQsetResultAttrs(res, 4, cols))
		abort();
	char *list = xasprintf("%s,%s", p->to_addr, p->cc_addr);
	int row = 0;
	for (int patients = 1; patients >= 0; patients--) {
		char *save = NULL, *copy = xstrdup(list);
		for (char *a = strtok_r(copy, ",", &save); a && row < MIME_MAX_PEOPLE;
		     a = strtok_r(NULL, ",", &save)) {
			size_t n = strlen(a);
			int is_patient = n % 4 == 0;
			if (is_patient != patients)
				continue;
			char id[24], family[24], guarantor[24];
			snprintf(id, sizeof(id), "%d", row + 1);
			snprintf(family, sizeof(family), "%d", (unsigned char)a[0] % 3);
			snprintf(guarantor, sizeof(guarantor), "%d", 100 + (int)(n % 3));
			mime_set(res, row, 0, id);
			mime_set(res, row, 1, kinds[n % 4]);
			mime_set(res, row, 2, strchr(a, '@') ? family : NULL);
			mime_set(res, row, 3, n % 5 ? guarantor : NULL);
			row++;
		}
		free(copy);
	}
	free(list);
	return res;
}

/* mime_file - the sender / family / other rule over those people. */
static void mime_file(const fetcher_parsed_t *p)
{
	PGresult *res = mime_people(p);
	int64_t person = 0;
	const char *how = "none", *tag = NULL;
	pp_buf_t listed;
	char why[200];
	pp_buf_init(&listed);
	pp_filing_by_people(res, "sender address", &person, &how, &tag, &listed, why, sizeof(why));
	if (strcmp(how, "family") == 0 && (listed.len == 0 || person < 100))
		abort();
	if (strcmp(how, "none") != 0 && person == 0)
		abort();
	pp_buf_free(&listed);
	PQclear(res);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fetcher_parsed_t p;
	fetcher_parse_message((const char *)data, size, &p);
	mime_check_parsed(&p, (const char *)data, size);
	if (p.body_html_safe != NULL) {
		/* the shown copy read as text, as a reply quotes it */
		char *text = pp_html_to_text(p.body_html_safe, strlen(p.body_html_safe));
		fuzz_check_text(text, 0);
		free(text);
	}
	mime_file(&p);
	fetcher_parsed_clear(&p);
	return 0;
}
