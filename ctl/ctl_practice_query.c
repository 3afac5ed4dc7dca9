/*
 * ctl_practice_query.c - the start every "show or list one practice's
 * settings" command shares: parse `--practice ID`, connect, run one
 * statement with the id as $1, and say so when there is no such practice.
 */
#include "ctl.h"

PGresult *ctl_practice_query(ctl_t *ctl, int argc, char **argv, const char *sql, const char *doing,
                             int need_row, int *rc)
{
	int64_t practice = 0;
	char id[PP_LL_LEN];
	*rc = ctl_parse_practice_only(ctl, argc, argv, 1, &practice);
	if (*rc != 0)
		return NULL;
	*rc = CTL_FAIL;
	if (ctl_db(ctl) == NULL)
		return NULL;
	PGresult *r = pp_db_exec(ctl->db, sql, PP_DB_ARGS(pp_lltoa(id, practice)));
	if (r == NULL) {
		ctl_db_fail(ctl, doing);
		return NULL;
	}
	if (need_row && PQntuples(r) == 0) {
		PQclear(r);
		ctl_err("no practice with id %lld (see: practicepost practice list)",
		        (long long)practice);
		return NULL;
	}
	*rc = CTL_OK;
	return r;
}
