/*
 * cmd_audit.c - `practicepost audit`: the audit trail of one patient (the
 * rows naming them and those of every message filed to them, sent to them
 * or listing them), one message, one practice, or everything, oldest first:
 * time, actor, action, object, detail.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_audit.h"

typedef enum { AUDIT_PATIENT, AUDIT_MESSAGE, AUDIT_PRACTICE, AUDIT_ALL } audit_scope_t;

/* Which rows, by scope; $1 is the id (unused for AUDIT_ALL). */
static const char *const scope_sql[] = {
    [AUDIT_PATIENT] = "a.id IN (SELECT id FROM audit_log WHERE person_id = $1::bigint "
                      "UNION SELECT l.id FROM audit_log l JOIN (SELECT id FROM messages "
                      "WHERE person_id = $1::bigint UNION SELECT message_id FROM "
                      "message_people WHERE person_id = $1::bigint) m ON l.message_id = m.id)",
    [AUDIT_MESSAGE] = "a.message_id = $1::bigint",
    [AUDIT_PRACTICE] = "a.practice_id = $1::bigint",
    [AUDIT_ALL] = "$1::bigint IS NULL",
};

/* The object named first: the message, else the person, else the practice. */
#define AUDIT_SELECT                                                                               \
	"SELECT * FROM (SELECT a.id, to_json(a.at) #>> '{}' AS at, a.actor, a.action, "            \
	"coalesce(nullif(concat_ws(' ', 'message ' || a.message_id, 'person ' || "                 \
	"a.person_id), ''), 'practice ' || a.practice_id, '-') AS object, a.detail, "              \
	"a.practice_id, a.message_id, a.person_id FROM audit_log a WHERE (%s) AND ($2::text "      \
	"IS NULL OR a.at >= $2::timestamptz) ORDER BY a.id DESC LIMIT $3::bigint) r ORDER BY id"

static const char *const exists_sql[] = {
    [AUDIT_PATIENT] = "SELECT EXISTS (SELECT 1 FROM people WHERE id = $1::bigint)",
    [AUDIT_MESSAGE] = "SELECT EXISTS (SELECT 1 FROM messages WHERE id = $1::bigint)",
    [AUDIT_PRACTICE] = "SELECT EXISTS (SELECT 1 FROM practices WHERE id = $1::bigint)",
};
static const char *const scope_names[] = {"person", "message", "practice"};

typedef struct {
	audit_scope_t scope;
	int64_t id, limit;
	const char *since;
} audit_opts_t;

static int audit_parse(ctl_t *ctl, int argc, char **argv, audit_opts_t *o)
{
	static const struct option opts[] = {
	    {"patient", required_argument, NULL, 'P'}, {"person", required_argument, NULL, 'P'},
	    {"message", required_argument, NULL, 'm'}, {"practice", required_argument, NULL, 'p'},
	    {"all", no_argument, NULL, 'a'},           {"since", required_argument, NULL, 's'},
	    {"limit", required_argument, NULL, 'l'},   {NULL, 0, NULL, 0}};
	int ch, scopes = 0;
	memset(o, 0, sizeof(*o));
	o->limit = 1000;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		int bad = 0;
		switch (ch) {
		case 'P':
		case 'm':
		case 'p':
			o->scope = ch == 'P'   ? AUDIT_PATIENT
			           : ch == 'm' ? AUDIT_MESSAGE
			                       : AUDIT_PRACTICE;
			bad = ctl_parse_id(ch == 'P'   ? "--patient"
			                   : ch == 'm' ? "--message"
			                               : "--practice",
			                   optarg, &o->id);
			scopes++;
			break;
		case 'a':
			o->scope = AUDIT_ALL;
			scopes++;
			break;
		case 's':
			o->since = optarg;
			bad = ctl_check_line("--since", optarg);
			break;
		case 'l':
			bad = ctl_parse_int("--limit", optarg, 1, 1000000, &o->limit);
			break;
		default:
			return ctl_usage_line(ctl);
		}
		if (bad)
			return CTL_USAGE;
	}
	CTL_NO_ARGS(ctl, argc, argv);
	if (scopes != 1)
		return ctl_usage(ctl, "say whose trail: one of --patient ID, --message ID, "
		                      "--practice ID or --all");
	return CTL_OK;
}

/* audit_exists - 1 when the patient, message or practice exists; else 0
 * after printing why (or -1 on a database error, printed). */
static int audit_exists(ctl_t *ctl, const audit_opts_t *o, const char *id)
{
	if (o->scope == AUDIT_ALL)
		return 1;
	PGresult *res = pp_db_exec(ctl->db, exists_sql[o->scope], PP_DB_ARGS(id));
	if (res == NULL) {
		ctl_db_fail(ctl, "read the audit trail");
		return -1;
	}
	int found = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	if (!found)
		ctl_err("no %s with id %s", scope_names[o->scope], id);
	return found;
}

static int cmd_audit(ctl_t *ctl, int argc, char **argv)
{
	static const ctl_column_t cols[] = {
	    {"id", "ID", CTL_COL_INT, 0, CTL_COL_JSON_ONLY},
	    {"at", "TIME", CTL_COL_TIME, 0, CTL_COL_BOTH},
	    {"actor", "ACTOR", CTL_COL_TEXT, 36, CTL_COL_BOTH},
	    {"action", "ACTION", CTL_COL_TEXT, 0, CTL_COL_BOTH},
	    {"object", "OBJECT", CTL_COL_TEXT, 0, CTL_COL_BOTH},
	    {"detail", "DETAIL", CTL_COL_TEXT, 100, CTL_COL_BOTH},
	    {"practice_id", "PRACTICE", CTL_COL_INT, 0, CTL_COL_JSON_ONLY},
	    {"message_id", "MESSAGE", CTL_COL_INT, 0, CTL_COL_JSON_ONLY},
	    {"person_id", "PERSON", CTL_COL_INT, 0, CTL_COL_JSON_ONLY},
	};
	audit_opts_t o;
	char id[PP_LL_LEN], limit[PP_LL_LEN];
	int rc = audit_parse(ctl, argc, argv, &o);
	if (rc != CTL_OK)
		return rc;
	if (ctl_db(ctl) == NULL)
		return CTL_FAIL;
	const char *idtext = o.scope == AUDIT_ALL ? NULL : pp_lltoa(id, o.id);
	int found = audit_exists(ctl, &o, idtext);
	if (found <= 0)
		return CTL_FAIL;
	char *sql = xasprintf(AUDIT_SELECT, scope_sql[o.scope]);
	PGresult *res =
	    pp_db_exec(ctl->db, sql, PP_DB_ARGS(idtext, o.since, pp_lltoa(limit, o.limit)));
	free(sql);
	if (res == NULL) {
		if (strncmp(pp_db_sqlstate(ctl->db), "22", 2) == 0)
			return ctl_usage(ctl,
			                 "--since: \"%s\" is not a date or time (YYYY-MM-DD or "
			                 "\"YYYY-MM-DD HH:MM\")",
			                 o.since ? o.since : "");
		return ctl_db_fail(ctl, "read the audit trail");
	}
	ctl_print_rows(ctl, res, cols, (int)(sizeof(cols) / sizeof(cols[0])));
	if (!ctl->json && PQntuples(res) == o.limit)
		fprintf(stderr, "(the latest %lld rows; use --limit or --since for others)\n",
		        (long long)o.limit);
	PQclear(res);
	return CTL_OK;
}

const ctl_command_t ctl_audit_commands[] = {
    {NULL, "audit", cmd_audit,
     "--patient ID | --message ID | --practice ID | --all [--since DATE] [--limit N]",
     "the audit trail (time, actor, action, object, detail): a patient's includes every "
     "message filed to or sent to them"},
    {NULL, NULL, NULL, NULL, NULL},
};
