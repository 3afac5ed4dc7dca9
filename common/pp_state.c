/*
 * pp_state.c - names of message states and the start-up check against SQL.
 */
#include "pp_state.h"

#include <stdio.h>
#include <string.h>

#include "pp_util.h"

static const char *const state_names[] = {
#define PP_STATE_NAME(name, text) text,
    PP_STATE_LIST(PP_STATE_NAME)
#undef PP_STATE_NAME
};

const char *pp_state_name(pp_state_t s)
{
	return (unsigned)s < PP_STATE_COUNT ? state_names[s] : "invalid";
}

int pp_state_parse(const char *text, pp_state_t *out)
{
	for (int i = 0; i < PP_STATE_COUNT; i++)
		if (strcmp(text, state_names[i]) == 0) {
			*out = (pp_state_t)i;
			return 0;
		}
	return -1;
}

int pp_state_check(pp_db_t *db, char *err, size_t errlen)
{
	pp_buf_t want;
	pp_buf_init(&want);
	for (int i = 0; i < PP_STATE_COUNT; i++)
		pp_buf_printf(&want, "%s%s", i ? "," : "", state_names[i]);
	PGresult *res =
	    pp_db_exec(db, "SELECT array_to_string(enum_range(NULL::message_state), ',')", 0, NULL);
	int rc = -1;
	if (res == NULL)
		snprintf(err, errlen, "cannot read message_state: %s", pp_db_error(db));
	else if (strcmp(PQgetvalue(res, 0, 0), want.data) != 0)
		snprintf(err, errlen,
		         "message_state in the database (%s) differs from this build (%s)",
		         PQgetvalue(res, 0, 0), want.data);
	else
		rc = 0;
	PQclear(res);
	pp_buf_free(&want);
	return rc;
}
