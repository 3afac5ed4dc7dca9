/*
 * fuzz_check.h - the promises the fetcher's parse and classification make
 * about what they hand to filing and the database, checked by the MIME
 * and bounce fuzz targets: a broken promise aborts (a finding).
 */
#ifndef FUZZ_CHECK_H
#define FUZZ_CHECK_H

#include <stdlib.h>
#include <string.h>

#include "fetcher_classify.h"
#include "pp_merge.h"

/* fuzz_check_text - s is NULL or valid UTF-8 (no NUL inside, by strlen);
 * with one_line, no control character either (TAB allowed). */
static inline void fuzz_check_text(const char *s, int one_line)
{
	char err[128];
	if (s == NULL)
		return;
	if (!pp_merge_utf8_valid(s, strlen(s)))
		abort();
	if (one_line && pp_merge_check_text("field", s, 0, err, sizeof(err)) != 0)
		abort();
}

/* fuzz_check_classify - see fetcher_classify.h. */
static inline void fuzz_check_classify(const fetcher_classify_t *c)
{
	const char *const lines[] = {c->original_message_id, c->recipient, c->status,
	                             c->diagnostic,          c->reason,    c->unsubscribe_token};
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		fuzz_check_text(lines[i], 1);
	if (c->diagnostic != NULL && strlen(c->diagnostic) > FETCHER_CLASSIFY_DIAGNOSTIC_MAX)
		abort();
	if (c->kind == FETCHER_KIND_UNSUBSCRIBE) {
		const char *t = c->unsubscribe_token;
		if (t == NULL || strlen(t) != FETCHER_CLASSIFY_TOKEN_LEN ||
		    strspn(t, "0123456789abcdef") != FETCHER_CLASSIFY_TOKEN_LEN)
			abort();
	}
	if (c->kind != FETCHER_KIND_BOUNCE && (c->hard || c->delayed))
		abort();
	if (c->hard && c->delayed)
		abort();
}

#endif
