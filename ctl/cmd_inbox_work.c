/*
 * cmd_inbox_work.c - working through the inbox: read / unread, action /
 * unaction, delete / restore (a deleted message stays in the Deleted view
 * until restored), manual filing to a patient or specialist, tagging, and
 * the practice's tags. Each change to a message is one transaction with
 * its audit row (actor "operator:NAME", see pp_audit_operator).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "pp_audit.h"

/* A change that sets or clears one timestamp column. */
typedef struct {
	const char *name;   /* command word */
	const char *column; /* read_at, actioned_at, deleted_at */
	int set;            /* 1: set to now(); 0: clear */
	const char *action; /* audit action */
} inbox_flag_t;

static const inbox_flag_t inbox_flags[] = {
    {"read", "read_at", 1, "read"},           {"unread", "read_at", 0, "unread"},
    {"action", "actioned_at", 1, "actioned"}, {"unaction", "actioned_at", 0, "unactioned"},
    {"delete", "deleted_at", 1, "deleted"},   {"restore", "deleted_at", 0, "restored"},
};
#define INBOX_NFLAGS ((int)(sizeof(inbox_flags) / sizeof(inbox_flags[0])))

int ctl_inbox_parse_one(ctl_t *ctl, int argc, char **argv, int64_t *id)
{
	if (getopt_long(argc, argv, "", (const struct option[]){{NULL, 0, NULL, 0}}, NULL) != -1)
		return ctl_usage_line(ctl);
	if (optind != argc - 1)
		return ctl_usage(ctl, "give one message id");
	return ctl_parse_id("MSG", argv[optind], id) == 0 ? CTL_OK : CTL_USAGE;
}

/* inbox_exists - 1 if id is an incoming message, 0 (printed) if not, -1. */
static int inbox_exists(ctl_t *ctl, const char *id)
{
	PGresult *res = pp_db_exec(
	    ctl->db, "SELECT 1 FROM messages WHERE id = $1 AND direction = 'in'", PP_DB_ARGS(id));
	if (res == NULL)
		return -1;
	int found = PQntuples(res) == 1;
	PQclear(res);
	if (!found)
		ctl_err("no incoming message with id %s", id);
	return found;
}

/* inbox_set_flag - one message: 1 changed, 0 already so, -1 db error. */
static int inbox_set_flag(ctl_t *ctl, const inbox_flag_t *f, const char *id)
{
	/* column is one of the fixed names above: never data */
	char *sql = xasprintf("UPDATE messages SET %s = %s WHERE id = $1 AND direction = 'in' "
	                      "AND %s IS %s NULL RETURNING practice_id, person_id",
	                      f->column, f->set ? "now()" : "NULL", f->column, f->set ? "" : "NOT");
	int rc = -1;
	if (pp_db_begin(ctl->db) != 0)
		goto done;
	PGresult *res = pp_db_exec(ctl->db, sql, PP_DB_ARGS(id));
	if (res == NULL)
		goto rollback;
	int changed = PQntuples(res) == 1;
	int64_t practice = changed ? pp_db_value_ll(res, 0, 0, 0) : 0;
	int64_t person = changed ? pp_db_value_ll(res, 0, 1, 0) : 0;
	int64_t msg = 0;
	PQclear(res);
	pp_parse_int64(id, &msg);
	if (changed &&
	    pp_audit(ctl->db, pp_audit_operator(), f->action, practice, msg, person, "%s", "") != 0)
		goto rollback;
	if (pp_db_commit(ctl->db) != 0)
		goto done;
	rc = changed;
	goto done;
rollback:
	pp_db_rollback(ctl->db);
done:
	free(sql);
	return rc;
}

int ctl_inbox_mark_read(ctl_t *ctl, int64_t id)
{
	char idtext[PP_LL_LEN];
	return inbox_set_flag(ctl, &inbox_flags[0], pp_lltoa(idtext, id)) < 0 ? -1 : 0;
}

static int cmd_inbox_flag(ctl_t *ctl, int argc, char **argv)
{
	const inbox_flag_t *f = NULL;
	for (int i = 0; i < INBOX_NFLAGS; i++)
		if (strcmp(ctl->cmd->name, inbox_flags[i].name) == 0)
			f = &inbox_flags[i];
	if (getopt_long(argc, argv, "", (const struct option[]){{NULL, 0, NULL, 0}}, NULL) != -1)
		return ctl_usage_line(ctl);
	if (f == NULL || optind >= argc)
		return ctl_usage(ctl, "give one or more message ids");
	for (int i = optind; i < argc; i++) {
		int64_t id;
		if (ctl_parse_id("MSG", argv[i], &id) != 0)
			return CTL_USAGE;
	}
	if (ctl_db(ctl) == NULL)
		return CTL_FAIL;
	int rc = CTL_OK;
	for (int i = optind; i < argc; i++) {
		int changed = inbox_set_flag(ctl, f, argv[i]);
		if (changed < 0)
			return ctl_db_fail(ctl, "change the message");
		if (changed == 0) {
			int found = inbox_exists(ctl, argv[i]);
			if (found < 0)
				return ctl_db_fail(ctl, "find the message");
			if (found == 0) {
				rc = CTL_FAIL;
				continue;
			}
		}
		if (!ctl->json)
			printf("%s: %s%s\n", argv[i], f->action, changed ? "" : " already");
	}
	return rc;
}

/* file_target - check that person is of kind in the message's practice.
 * 1 ok, 0 refused (printed), -1 db error. */
static int file_target(ctl_t *ctl, const char *msg, const char *person, const char *kind)
{
	PGresult *res = pp_db_exec(
	    ctl->db,
	    "SELECT p.kind::text, p.practice_id = m.practice_id FROM messages m, people p "
	    "WHERE m.id = $1 AND m.direction = 'in' AND p.id = $2",
	    PP_DB_ARGS(msg, person));
	if (res == NULL)
		return -1;
	int ok = 0;
	if (PQntuples(res) == 0)
		ctl_err("no incoming message %s, or no person %s", msg, person);
	else if (strcmp(pp_db_value(res, 0, 1), "t") != 0)
		ctl_err("person %s belongs to another practice than message %s", person, msg);
	else if (kind != NULL && strcmp(pp_db_value(res, 0, 0), kind) != 0)
		ctl_err("person %s is a %s, not a %s", person, pp_db_value(res, 0, 0), kind);
	else
		ok = 1;
	PQclear(res);
	return ok;
}

/* file_store - refile msg to person (NULL: unfiled), swap the Patient /
 * Specialist tag, audit; one transaction. 0 / -1. */
static int file_store(ctl_t *ctl, const char *msg, const char *person)
{
	const char *who = pp_audit_operator();
	if (pp_db_begin(ctl->db) != 0)
		return -1;
	PGresult *res = pp_db_exec(
	    ctl->db,
	    "WITH old AS (SELECT person_id FROM messages WHERE id = $1) "
	    "UPDATE messages m SET person_id = $2::bigint, filed_by = CASE WHEN $2 IS NULL THEN "
	    "NULL ELSE $3 END, filed_at = CASE WHEN $2 IS NULL THEN NULL ELSE now() END "
	    "FROM old WHERE m.id = $1 RETURNING m.practice_id, old.person_id, "
	    "(SELECT kind::text FROM people WHERE id = $2::bigint)",
	    PP_DB_ARGS(msg, person, who));
	if (res == NULL || PQntuples(res) != 1)
		goto fail;
	int64_t practice = pp_db_value_ll(res, 0, 0, 0), old = pp_db_value_ll(res, 0, 1, 0);
	int64_t id = 0, to = 0;
	const char *kind = pp_db_value(res, 0, 2);
	const char *tag = kind && strcmp(kind, "patient") == 0      ? "Patient"
	                  : kind && strcmp(kind, "specialist") == 0 ? "Specialist"
	                                                            : NULL;
	pp_parse_int64(msg, &id);
	if (person)
		pp_parse_int64(person, &to);
	if (pp_db_command(ctl->db,
	                  "DELETE FROM message_tags mt USING tags t WHERE mt.message_id = $1 AND "
	                  "t.id = mt.tag_id AND t.name IN ('Patient', 'Specialist') AND "
	                  "t.name IS DISTINCT FROM $2",
	                  PP_DB_ARGS(msg, tag)) != 0 ||
	    (tag != NULL && pp_db_command(ctl->db,
	                                  "INSERT INTO message_tags (message_id, tag_id) VALUES "
	                                  "($1, pp_tag($2::bigint, $3)) ON CONFLICT DO NOTHING",
	                                  PP_DB_ARGS(msg, pp_db_value(res, 0, 0), tag)) != 0) ||
	    pp_audit(ctl->db, who, to ? "filed" : "unfiled", practice, id, to,
	             "by hand%s%s (was person %lld)", to ? " to " : "", to ? kind : "",
	             (long long)old) != 0 ||
	    pp_db_commit(ctl->db) != 0)
		goto fail;
	PQclear(res);
	return 0;
fail:
	PQclear(res);
	pp_db_rollback(ctl->db);
	return -1;
}

static int cmd_inbox_file(ctl_t *ctl, int argc, char **argv)
{
	static const struct option opts[] = {{"patient", required_argument, NULL, 'p'},
	                                     {"specialist", required_argument, NULL, 's'},
	                                     {"person", required_argument, NULL, 'o'},
	                                     {"none", no_argument, NULL, 'n'},
	                                     {NULL, 0, NULL, 0}};
	static const char *const kinds[] = {"patient", "specialist", NULL};
	int64_t id, person = 0;
	int ch, choices = 0, kind = 2;
	char idtext[PP_LL_LEN], ptext[PP_LL_LEN] = "";
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == '?' || ch == ':')
			return ctl_usage_line(ctl);
		choices++;
		kind = ch == 'p' ? 0 : ch == 's' ? 1 : 2;
		if (ch != 'n' && ctl_parse_id(opts[ch == 'p'   ? 0
		                                   : ch == 's' ? 1
		                                               : 2]
		                                  .name,
		                              optarg, &person) != 0)
			return CTL_USAGE;
	}
	if (choices != 1)
		return ctl_usage(ctl, "give one of --patient, --specialist, --person or --none");
	if (optind != argc - 1)
		return ctl_usage(ctl, "give one message id");
	if (ctl_parse_id("MSG", argv[optind], &id) != 0)
		return CTL_USAGE;
	if (ctl_db(ctl) == NULL)
		return CTL_FAIL;
	pp_lltoa(idtext, id);
	if (person) {
		int ok = file_target(ctl, idtext, pp_lltoa(ptext, person), kinds[kind]);
		if (ok <= 0)
			return ok < 0 ? ctl_db_fail(ctl, "check the person") : CTL_FAIL;
	} else if (inbox_exists(ctl, idtext) <= 0) {
		return CTL_FAIL;
	}
	if (file_store(ctl, idtext, person ? ptext : NULL) != 0)
		return ctl_db_fail(ctl, "file the message");
	if (!ctl->json)
		printf("%s: %s\n", idtext, person ? "filed" : "unfiled");
	return CTL_OK;
}

/* tag_change - add or remove one tag on one message, audited. 1 changed,
 * 0 nothing to do, -2 no such tag (printed), -1 db error. */
static int tag_change(ctl_t *ctl, const char *msg, const char *tag, int add)
{
	PGresult *res = NULL;
	if (pp_db_begin(ctl->db) != 0)
		return -1;
	res = pp_db_exec(ctl->db,
	                 add ? "INSERT INTO message_tags (message_id, tag_id) SELECT m.id, t.id "
	                       "FROM messages m JOIN tags t ON t.practice_id = m.practice_id AND "
	                       "t.name = $2 WHERE m.id = $1 ON CONFLICT DO NOTHING "
	                       "RETURNING (SELECT practice_id FROM messages WHERE id = $1)"
	                     : "DELETE FROM message_tags mt USING tags t WHERE mt.message_id = $1 "
	                       "AND t.id = mt.tag_id AND t.name = $2 RETURNING t.practice_id",
	                 PP_DB_ARGS(msg, tag));
	if (res == NULL)
		goto fail;
	int changed = PQntuples(res) == 1;
	int64_t id = 0, practice = changed ? pp_db_value_ll(res, 0, 0, 0) : 0;
	PQclear(res);
	res = NULL;
	pp_parse_int64(msg, &id);
	if (changed && pp_audit(ctl->db, pp_audit_operator(), add ? "tagged" : "untagged", practice,
	                        id, 0, "tag=%s", tag) != 0)
		goto fail;
	if (!changed && add) {
		res = pp_db_exec(ctl->db,
		                 "SELECT 1 FROM tags t JOIN messages m ON m.practice_id = "
		                 "t.practice_id WHERE m.id = $1 AND t.name = $2",
		                 PP_DB_ARGS(msg, tag));
		if (res == NULL)
			goto fail;
		if (PQntuples(res) == 0) {
			PQclear(res);
			pp_db_rollback(ctl->db);
			ctl_err(
			    "message %s's practice has no tag \"%s\" (create it with: practicepost "
			    "tag create --practice ID NAME)",
			    msg, tag);
			return -2;
		}
		PQclear(res);
	}
	if (pp_db_commit(ctl->db) != 0)
		return -1;
	return changed;
fail:
	PQclear(res);
	pp_db_rollback(ctl->db);
	return -1;
}

static int cmd_inbox_tag(ctl_t *ctl, int argc, char **argv)
{
	static const struct option opts[] = {{"add", required_argument, NULL, 'a'},
	                                     {"remove", required_argument, NULL, 'r'},
	                                     {NULL, 0, NULL, 0}};
	const char *names[16];
	int add[16], n = 0, ch;
	int64_t id;
	char idtext[PP_LL_LEN];
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == '?' || ch == ':')
			return ctl_usage_line(ctl);
		if (n == 16)
			return ctl_usage(ctl, "at most 16 tag changes at once");
		if (ctl_check_line(ch == 'a' ? "--add" : "--remove", optarg) != 0)
			return CTL_USAGE;
		names[n] = optarg;
		add[n++] = ch == 'a';
	}
	if (n == 0)
		return ctl_usage(ctl, "give --add NAME or --remove NAME");
	if (optind != argc - 1)
		return ctl_usage(ctl, "give one message id");
	if (ctl_parse_id("MSG", argv[optind], &id) != 0)
		return CTL_USAGE;
	if (ctl_db(ctl) == NULL)
		return CTL_FAIL;
	pp_lltoa(idtext, id);
	int found = inbox_exists(ctl, idtext);
	if (found <= 0)
		return found < 0 ? ctl_db_fail(ctl, "find the message") : CTL_FAIL;
	for (int i = 0; i < n; i++) {
		int rc = tag_change(ctl, idtext, names[i], add[i]);
		if (rc == -2)
			return CTL_FAIL;
		if (rc < 0)
			return ctl_db_fail(ctl, "change the tags");
		if (!ctl->json)
			printf("%s: %s %s%s\n", idtext, add[i] ? "tagged" : "untagged", names[i],
			       rc ? "" : " (no change)");
	}
	return CTL_OK;
}

static int cmd_tag_create(ctl_t *ctl, int argc, char **argv)
{
	int64_t practice;
	char ptext[PP_LL_LEN];
	static const struct option opts[] = {{"practice", required_argument, NULL, 'p'},
	                                     {NULL, 0, NULL, 0}};
	int ch;
	practice = 0;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1)
		if (ch != 'p' || ctl_parse_id("--practice", optarg, &practice) != 0)
			return ctl_usage_line(ctl);
	CTL_REQUIRE(ctl, practice ? "" : NULL, "--practice");
	if (optind != argc - 1)
		return ctl_usage(ctl, "give one tag name");
	if (ctl_check_line("NAME", argv[optind]) != 0)
		return CTL_USAGE;
	if (ctl_db(ctl) == NULL)
		return CTL_FAIL;
	PGresult *res = pp_db_exec(ctl->db,
	                           "INSERT INTO tags (practice_id, name) VALUES ($1, $2) "
	                           "RETURNING id",
	                           PP_DB_ARGS(pp_lltoa(ptext, practice), argv[optind]));
	if (res == NULL)
		return ctl_db_fail(ctl, "create the tag");
	ctl_print_id(ctl, pp_db_value_ll(res, 0, 0, 0));
	PQclear(res);
	return CTL_OK;
}

static int cmd_tag_list(ctl_t *ctl, int argc, char **argv)
{
	static const ctl_column_t cols[] = {
	    {"id", "ID", CTL_COL_INT, 0, CTL_COL_BOTH},
	    {"practice_id", "PRACTICE", CTL_COL_INT, 0, CTL_COL_BOTH},
	    {"name", "TAG", CTL_COL_TEXT, 0, CTL_COL_BOTH},
	    {"messages", "MESSAGES", CTL_COL_INT, 0, CTL_COL_BOTH},
	};
	int64_t practice;
	char ptext[PP_LL_LEN];
	int rc = ctl_parse_practice_only(ctl, argc, argv, 0, &practice);
	if (rc != 0)
		return rc;
	if (ctl_db(ctl) == NULL)
		return CTL_FAIL;
	PGresult *res = pp_db_exec(
	    ctl->db,
	    "SELECT t.id, t.practice_id, t.name, (SELECT count(*) FROM message_tags mt WHERE "
	    "mt.tag_id = t.id) AS messages FROM tags t WHERE $1::bigint IS NULL OR "
	    "t.practice_id = $1::bigint ORDER BY t.practice_id, t.name",
	    PP_DB_ARGS(practice ? pp_lltoa(ptext, practice) : NULL));
	if (res == NULL)
		return ctl_db_fail(ctl, "list the tags");
	ctl_print_rows(ctl, res, cols, (int)(sizeof(cols) / sizeof(cols[0])));
	PQclear(res);
	return CTL_OK;
}

const ctl_command_t ctl_inbox_work_commands[] = {
    {"inbox", "read", cmd_inbox_flag, "MSG...", "mark incoming messages read"},
    {"inbox", "unread", cmd_inbox_flag, "MSG...", "mark incoming messages unread"},
    {"inbox", "action", cmd_inbox_flag, "MSG...",
     "mark incoming messages actioned (hidden from the views unless asked)"},
    {"inbox", "unaction", cmd_inbox_flag, "MSG...", "undo action"},
    {"inbox", "delete", cmd_inbox_flag, "MSG...",
     "move incoming messages to the Deleted view (restorable)"},
    {"inbox", "restore", cmd_inbox_flag, "MSG...", "bring deleted messages back"},
    {"inbox", "file", cmd_inbox_file, "MSG --patient ID | --specialist ID | --person ID | --none",
     "file an incoming message by hand (adds the Patient or Specialist tag)"},
    {"inbox", "tag", cmd_inbox_tag, "MSG [--add NAME]... [--remove NAME]...",
     "add or remove tags on an incoming message"},
    {"tag", "create", cmd_tag_create, "--practice ID NAME", "create a tag"},
    {"tag", "list", cmd_tag_list, "[--practice ID]", "list tags and how many messages carry each"},
    {NULL, NULL, NULL, NULL, NULL},
};
