/*
 * cmd_diag.c - `practicepost diagnostics [--all]` (what the stages raised
 * that needs an operator: open ones, or every one) and `practicepost
 * diagnostics resolve ID...` (mark them dealt with).
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"

static int cmd_diagnostics(ctl_t *ctl, int argc, char **argv)
{
	static const struct option opts[] = {{"all", no_argument, NULL, 'a'},
	                                     {"limit", required_argument, NULL, 'l'},
	                                     {NULL, 0, NULL, 0}};
	static const ctl_column_t cols[] = {
	    {"id", "ID", CTL_COL_INT, 0, CTL_COL_BOTH},
	    {"created_at", "RAISED", CTL_COL_TIME, 0, CTL_COL_BOTH},
	    {"stage", "STAGE", CTL_COL_TEXT, 0, CTL_COL_BOTH},
	    {"severity", "SEVERITY", CTL_COL_TEXT, 0, CTL_COL_BOTH},
	    {"practice_id", "PRACTICE", CTL_COL_INT, 0, CTL_COL_BOTH},
	    {"account", "ACCOUNT", CTL_COL_TEXT, 0, CTL_COL_TABLE_ONLY},
	    {"email_account_id", "EMAIL ACCOUNT", CTL_COL_INT, 0, CTL_COL_JSON_ONLY},
	    {"sms_account_id", "SMS ACCOUNT", CTL_COL_INT, 0, CTL_COL_JSON_ONLY},
	    {"code", "CODE", CTL_COL_TEXT, 24, CTL_COL_BOTH},
	    {"text", "TEXT", CTL_COL_TEXT, 60, CTL_COL_BOTH},
	    {"resolved_at", "RESOLVED", CTL_COL_TIME, 0, CTL_COL_BOTH},
	};
	int64_t limit = 200;
	char ltext[PP_LL_LEN];
	int ch, all = 0;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == 'a')
			all = 1;
		else if (ch == 'l' && ctl_parse_int("--limit", optarg, 1, 1000000, &limit) != 0)
			return CTL_USAGE;
		else if (ch != 'l')
			return ctl_usage_line(ctl);
	}
	CTL_NO_ARGS(ctl, argc, argv);
	if (ctl_db(ctl) == NULL)
		return CTL_FAIL;
	PGresult *res = pp_db_exec(
	    ctl->db,
	    "SELECT id, to_json(created_at) #>> '{}' AS created_at, stage, severity, "
	    "practice_id, COALESCE('email:' || email_account_id, 'sms:' || sms_account_id) "
	    "AS account, email_account_id, sms_account_id, code, text, "
	    "to_json(resolved_at) #>> '{}' AS resolved_at FROM diagnostics "
	    "WHERE $1 OR resolved_at IS NULL ORDER BY created_at DESC, id DESC LIMIT $2::bigint",
	    PP_DB_ARGS(all ? "t" : "f", pp_lltoa(ltext, limit)));
	if (res == NULL)
		return ctl_db_fail(ctl, "list the diagnostics");
	ctl_print_rows(ctl, res, cols, (int)(sizeof(cols) / sizeof(cols[0])));
	PQclear(res);
	return CTL_OK;
}

static int cmd_diagnostics_resolve(ctl_t *ctl, int argc, char **argv)
{
	pp_buf_t ids;
	int64_t id;
	int rc = CTL_USAGE;
	if (argc < 2)
		return ctl_usage(ctl, "give the ids of the diagnostics to resolve");
	pp_buf_init(&ids);
	pp_buf_puts(&ids, "{");
	for (int i = 1; i < argc; i++) {
		if (ctl_parse_id("diagnostic id", argv[i], &id) != 0)
			goto fail;
		pp_buf_printf(&ids, "%s%lld", i > 1 ? "," : "", (long long)id);
	}
	pp_buf_puts(&ids, "}");
	rc = CTL_FAIL;
	if (ctl_db(ctl) == NULL)
		goto fail;
	PGresult *res = pp_db_exec(ctl->db,
	                           "UPDATE diagnostics SET resolved_at = now() WHERE id = "
	                           "ANY($1::bigint[]) AND resolved_at IS NULL",
	                           PP_DB_ARGS(ids.data));
	if (res == NULL) {
		ctl_db_fail(ctl, "resolve the diagnostics");
		goto fail;
	}
	printf("%s diagnostic(s) resolved\n", PQcmdTuples(res));
	PQclear(res);
	rc = CTL_OK;
fail:
	pp_buf_free(&ids);
	return rc;
}

/* "diagnostics resolve" comes first so the single word does not take it. */
const ctl_command_t ctl_diag_commands[] = {
    {"diagnostics", "resolve", cmd_diagnostics_resolve, "ID...", "mark diagnostics as dealt with"},
    {NULL, "diagnostics", cmd_diagnostics, "[--all] [--limit N]",
     "list open diagnostics, newest first (--all: resolved ones too)"},
    {NULL, NULL, NULL, NULL, NULL},
};
