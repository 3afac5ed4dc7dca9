/*
 * cmd_signature.c - `practicepost practice set-signature`: the practice's
 * signature template, added (merged) to messages made without a template
 * when their request asks for it (enqueue email --signature). Owns the
 * checks that the template is one of the practice's email templates.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"

static int cmd_set_signature(ctl_t *ctl, int argc, char **argv)
{
	static const struct option opts[] = {{"practice", required_argument, NULL, 'p'},
	                                     {"template", required_argument, NULL, 't'},
	                                     {"none", no_argument, NULL, 'n'},
	                                     {NULL, 0, NULL, 0}};
	int64_t practice = 0;
	const char *code = NULL;
	int none = 0, ch;
	char prac[PP_LL_LEN];
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == 'p' && ctl_parse_id("--practice", optarg, &practice) != 0)
			return CTL_USAGE;
		else if (ch == 't')
			code = optarg;
		else if (ch == 'n')
			none = 1;
		else if (ch != 'p')
			return ctl_usage_line(ctl);
	}
	CTL_NO_ARGS(ctl, argc, argv);
	CTL_REQUIRE(ctl, practice ? "" : NULL, "--practice");
	if ((code == NULL) == !none)
		return ctl_usage(ctl, "give exactly one of --template and --none");
	if (ctl_db(ctl) == NULL || ctl_practice_exists(ctl, practice) != 1)
		return CTL_FAIL;
	pp_lltoa(prac, practice);
	PGresult *res = pp_db_exec(
	    ctl->db,
	    "WITH t AS (SELECT id, channel FROM templates WHERE practice_id = $1 AND code = $2) "
	    "UPDATE practices SET signature_template_id = (SELECT id FROM t) WHERE id = $1 "
	    "AND ($2::text IS NULL OR EXISTS (SELECT 1 FROM t WHERE channel = 'email')) "
	    "RETURNING signature_template_id, (SELECT channel::text FROM t)",
	    PP_DB_ARGS(prac, code));
	if (res == NULL)
		return ctl_db_fail(ctl, "set the signature");
	int rc = CTL_OK;
	if (PQntuples(res) == 1)
		fprintf(stderr, "practice %lld signature: %s\n", (long long)practice,
		        code ? code : "none");
	else
		rc = ctl_err("practice %lld has no email template \"%s\" (see: practicepost "
		             "template list --practice %lld)",
		             (long long)practice, code, (long long)practice);
	PQclear(res);
	return rc;
}

const ctl_command_t ctl_signature_commands[] = {
    {"practice", "set-signature", cmd_set_signature, "--practice ID (--template CODE | --none)",
     "choose the email template added as signature to free-text mail (--signature)"},
    {NULL, NULL, NULL, NULL, NULL},
};
