/*
 * ctl_audit.c - the audit rows the CLI writes around its commands (see
 * ctl_audit.h): in one place, so that no command has to remember them.
 * Owns the list of commands audited by what they do rather than by what
 * they change (looking at a body, restarting, exporting).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_audit.h"
#include "pp_audit.h"

/* A command audited for what it does. Before: the row is written before the
 * command runs, and the command does not run without it; the object is the
 * message named by the first argument. Else after it ran: when it failed
 * too if even a failed run may have done it (an export may have written
 * part of a file), with the result. */
typedef struct {
	const char *group, *name;
	const char *option; /* only when this option is given (NULL: always) */
	const char *action;
	int before, failed_too;
} audited_command_t;

static const audited_command_t audited[] = {
    {"message", "show", "--body", "viewed", 1, 0},
    {NULL, "restart", NULL, "restart_requested", 0, 0},
    {"support", "bundle", NULL, "exported", 0, 1},
};

/* Tables whose changes are a person's data rather than a setting. */
static const char *const person_tables[] = {"people", "optouts", "sms_optouts", NULL};

static unsigned long audit_rows_before;

/* audited_find - the entry for this command line, or NULL. */
static const audited_command_t *audited_find(const ctl_t *ctl, int argc, char **argv)
{
	const ctl_command_t *cmd = ctl->cmd;
	for (size_t i = 0; cmd && i < sizeof(audited) / sizeof(audited[0]); i++) {
		const audited_command_t *a = &audited[i];
		if ((a->group == NULL) != (cmd->group == NULL) ||
		    (a->group && strcmp(a->group, cmd->group) != 0) ||
		    strcmp(a->name, cmd->name) != 0)
			continue;
		if (a->option == NULL)
			return a;
		for (int k = 1; k < argc && strcmp(argv[k], "--") != 0; k++)
			if (strcmp(argv[k], a->option) == 0)
				return a;
	}
	return NULL;
}

/* arg_append - one argument, quoted when it has spaces or quotes, with the
 * user:password@ of a URL masked. */
static void arg_append(pp_buf_t *b, const char *arg)
{
	const char *scheme = strstr(arg, "://");
	const char *at = scheme ? strchr(scheme + 3, '@') : NULL;
	const char *slash = scheme ? strchr(scheme + 3, '/') : NULL;
	int quote = *arg == '\0' || strpbrk(arg, " \t\"'") != NULL;
	if (quote)
		pp_buf_puts(b, "\"");
	if (at != NULL && (slash == NULL || at < slash)) {
		pp_buf_append(b, arg, (size_t)(scheme + 3 - arg));
		pp_buf_puts(b, "***");
		arg = at;
	}
	for (const char *p = arg; *p; p++) {
		if (quote && (*p == '"' || *p == '\\'))
			pp_buf_puts(b, "\\");
		pp_buf_append(b, p, 1);
	}
	if (quote)
		pp_buf_puts(b, "\"");
}

char *ctl_audit_command_line(const ctl_t *ctl, int argc, char **argv)
{
	pp_buf_t b;
	pp_buf_init(&b);
	pp_buf_printf(&b, "practicepost %s", ctl->cmd_name);
	for (int i = 1; i < argc; i++) {
		pp_buf_puts(&b, " ");
		arg_append(&b, argv[i]);
	}
	char *line = pp_buf_steal(&b);
	pp_audit_one_line(line);
	return line;
}

/* audit_view - the look at a message's body, recorded against the message
 * (and its practice and patient) before it is shown. */
static int audit_view(ctl_t *ctl, const audited_command_t *a, int argc, char **argv)
{
	const char *id = NULL;
	int64_t parsed;
	for (int i = 1; i < argc && id == NULL; i++)
		if (argv[i][0] != '-')
			id = argv[i];
	if (id == NULL || pp_parse_int64(id, &parsed) != 0 || parsed <= 0)
		return CTL_OK; /* the command itself says what is wrong */
	if (ctl_db(ctl) == NULL)
		return CTL_FAIL;
	char *line = ctl_audit_command_line(ctl, argc, argv);
	int rc = pp_db_command(ctl->db,
	                       "INSERT INTO audit_log (actor, action, practice_id, message_id, "
	                       "person_id, detail) SELECT $1, $2, practice_id, id, person_id, "
	                       "pp_audit_text($4) FROM messages WHERE id = $3::bigint",
	                       PP_DB_ARGS(pp_audit_operator(), a->action, id, line));
	free(line);
	if (rc != 0)
		return ctl_db_fail(ctl, "record who looked at the message (so it is not shown)");
	return CTL_OK;
}

int ctl_audit_begin(ctl_t *ctl, int argc, char **argv)
{
	audit_rows_before = pp_audit_count();
	const audited_command_t *a = audited_find(ctl, argc, argv);
	if (a == NULL || !a->before)
		return CTL_OK;
	return audit_view(ctl, a, argc, argv);
}

/* audit_done - the row of an action audited after it ran, with its result.
 * The action happened: a row that cannot be written is warned about. */
static void audit_done(ctl_t *ctl, const audited_command_t *a, int argc, char **argv, int rc)
{
	if (ctl_db(ctl) == NULL) {
		ctl_warn("%s was not recorded in the audit trail", ctl->cmd_name);
		return;
	}
	char *line = ctl_audit_command_line(ctl, argc, argv);
	if (pp_audit(ctl->db, pp_audit_operator(), a->action, 0, 0, 0, "%s result=%s", line,
	             rc == CTL_OK ? "ok" : "failed") != 0)
		ctl_warn("%s was not recorded in the audit trail: %s", ctl->cmd_name,
		         pp_db_error(ctl->db));
	free(line);
}

/* only_person_tables - every table in the comma list is a person's. */
static int only_person_tables(const char *tables)
{
	char *copy = xstrdup(tables), *save = NULL;
	int only = 1;
	for (char *t = strtok_r(copy, ",", &save); t && only; t = strtok_r(NULL, ",", &save)) {
		int found = 0;
		for (int i = 0; person_tables[i] && !found; i++)
			found = strcmp(t, person_tables[i]) == 0;
		only = found;
	}
	free(copy);
	return only;
}

/* audit_changes - the settings this command changed without recording them
 * itself: one row with the command line. 0 / -1 (a change not recorded). */
static int audit_changes(ctl_t *ctl, int argc, char **argv, int rc)
{
	if (ctl->db == NULL || !pp_db_is_up(ctl->db))
		return 0;
	/* what a command left uncommitted was never made (and the note of
	 * it is undone with it) */
	if (PQtransactionStatus(pp_db_conn(ctl->db)) != PQTRANS_IDLE)
		pp_db_rollback(ctl->db);
	PGresult *res = pp_db_exec(ctl->db,
	                           "SELECT nullif(current_setting('pp.changed', true), ''), "
	                           "nullif(current_setting('pp.changed_practice', true), ''), "
	                           "nullif(current_setting('pp.changed_person', true), '')",
	                           0, NULL);
	if (res == NULL)
		return -1;
	const char *tables = pp_db_value(res, 0, 0);
	int ret = 0;
	if (tables != NULL && pp_audit_count() == audit_rows_before) {
		char *line = ctl_audit_command_line(ctl, argc, argv);
		char exit_text[32] = "";
		if (rc != CTL_OK)
			snprintf(exit_text, sizeof(exit_text), " exit=%d", rc);
		ret = pp_audit(ctl->db, pp_audit_operator(),
		               only_person_tables(tables) ? "person_changed" : "config_changed",
		               pp_db_value_ll(res, 0, 1, 0), 0, pp_db_value_ll(res, 0, 2, 0),
		               "%s (changed: %s)%s", line, tables, exit_text);
		free(line);
	}
	PQclear(res);
	return ret;
}

int ctl_audit_end(ctl_t *ctl, int argc, char **argv, int rc)
{
	const audited_command_t *a = audited_find(ctl, argc, argv);
	if (a != NULL && !a->before && (rc == CTL_OK || a->failed_too))
		audit_done(ctl, a, argc, argv, rc);
	if (audit_changes(ctl, argc, argv, rc) != 0) {
		ctl_err("%s changed the settings, but the change could not be recorded in the "
		        "audit trail: %s",
		        ctl->cmd_name, pp_db_error(ctl->db));
		return CTL_FAIL;
	}
	return rc;
}
