/*
 * cmd_status.c - `practicepost status` (each stage instance's check-in as
 * the watchdog wrote it, open diagnostics, whether the watchdog answers
 * a ping, and the OAuth2 accounts' sign-in state and warnings) and
 * `practicepost restart STAGE|all` (asks the watchdog, waits for its reply).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "ctl_oauth.h"
#include "pp_databases.h"

#define STATUS_PING_MS 1000
#define RESTART_WAIT_S 15

/* An instance is down when its last heartbeat is older than this many
 * heartbeat intervals (or check-in intervals, if the watchdog writes less
 * often), or when it does not say it is running. */
#define STATUS_MISSED_BEATS 3

static const char status_sql[] =
    "SELECT stage, instance, host, pid, state, "
    "extract(epoch FROM now() - last_heartbeat) AS heartbeat_age, "
    "extract(epoch FROM now() - checked_in_at) AS checkin_age, restarts, "
    "counters::text AS counters, "
    "(SELECT string_agg(key || '=' || value, ' ' ORDER BY key) FROM "
    "jsonb_each_text(counters) WHERE key <> 'uptime_s') AS counters_text, "
    "to_json(started_at) #>> '{}' AS started_at, to_json(last_heartbeat) #>> '{}' AS "
    "last_heartbeat, u.up, CASE WHEN NOT u.up THEN 'down' WHEN f.failing IS NOT NULL THEN "
    "'failing' ELSE 'up' END AS health, f.failing "
    "FROM service_checkins c CROSS JOIN LATERAL (SELECT (c.state = 'running' AND "
    "c.last_heartbeat IS NOT NULL AND c.last_heartbeat > now() - $1::bigint * interval "
    "'1 millisecond') AS up) u LEFT JOIN LATERAL (SELECT string_agg(t.check_name || ': ' || "
    "t.detail, '; ' ORDER BY t.check_name) AS failing FROM (SELECT DISTINCT ON (check_name) "
    "check_name, ok, detail FROM self_tests WHERE instance = c.instance ORDER BY "
    "check_name, id DESC) t WHERE NOT t.ok) f ON true "
    "ORDER BY stage, host, instance";

static const ctl_column_t status_cols[] = {
    {"stage", "STAGE", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"instance", "INSTANCE", CTL_COL_TEXT, 32, CTL_COL_BOTH},
    {"host", "HOST", CTL_COL_TEXT, 20, CTL_COL_BOTH},
    {"pid", "PID", CTL_COL_INT, 0, CTL_COL_BOTH},
    {"state", "STATE", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"health", "HEALTH", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"up", "UP", CTL_COL_BOOL, 0, CTL_COL_JSON_ONLY},
    {"heartbeat_age", "HEARTBEAT", CTL_COL_AGE, 0, CTL_COL_BOTH},
    {"checkin_age", "CHECK-IN", CTL_COL_AGE, 0, CTL_COL_BOTH},
    {"restarts", "RESTARTS", CTL_COL_INT, 0, CTL_COL_BOTH},
    {"counters_text", "COUNTERS", CTL_COL_TEXT, 48, CTL_COL_TABLE_ONLY},
    {"counters", "COUNTERS", CTL_COL_JSON, 0, CTL_COL_JSON_ONLY},
    {"started_at", "STARTED", CTL_COL_TIME, 0, CTL_COL_JSON_ONLY},
    {"last_heartbeat", "LAST HEARTBEAT", CTL_COL_TIME, 0, CTL_COL_JSON_ONLY},
    {"failing", "FAILING CHECK", CTL_COL_TEXT, 60, CTL_COL_BOTH},
};
#define N_STATUS_COLS ((int)(sizeof(status_cols) / sizeof(status_cols[0])))

/* status_down_after_ms - the heartbeat age past which an instance is down. */
static int64_t status_down_after_ms(ctl_t *ctl)
{
	char err[256];
	int64_t hb = 1000, checkin = 1000;
	const pp_config_t *cfg = ctl_config(ctl);
	if (pp_config_get_int(cfg, "watchdog", "heartbeat_interval_ms", 1000, 50, 600000, &hb, err,
	                      sizeof(err)) != 0 ||
	    pp_config_get_int(cfg, "watchdog", "checkin_interval_ms", 1000, 1000, 600000, &checkin,
	                      err, sizeof(err)) != 0)
		ctl_warn("%s; using the default", err);
	return STATUS_MISSED_BEATS * (hb > checkin ? hb : checkin);
}

/* status_all_up - every stage has an instance up, and no instance that
 * claims to run (anything but "stopped") is down. */
static int status_all_up(const PGresult *res)
{
	int rows = PQntuples(res), col_up = PQfnumber(res, "up"),
	    col_state = PQfnumber(res, "state");
	if (rows == 0)
		return 0;
	for (int r = 0; r < rows; r++) {
		int up = strcmp(pp_db_value(res, r, col_up), "t") == 0;
		if (!up && strcmp(pp_db_value(res, r, col_state), "stopped") != 0)
			return 0;
		int stage_up = 0;
		for (int s = 0; s < rows && !stage_up; s++)
			stage_up = strcmp(pp_db_value(res, s, 0), pp_db_value(res, r, 0)) == 0 &&
			           strcmp(pp_db_value(res, s, col_up), "t") == 0;
		if (!stage_up)
			return 0;
	}
	return 1;
}

/* The OAuth2 accounts for --json: who signed in when, the scopes, the
 * token's state and the warnings of email_oauth_warnings (never a token). */
static const char status_oauth_sql[] =
    "SELECT coalesce(json_agg(json_build_object('account_id', o.account_id, 'provider', "
    "o.provider, 'authenticated', o.refresh_secret IS NOT NULL, 'authenticated_as', "
    "o.authenticated_as, 'authenticated_at', o.authenticated_at, 'scopes', "
    "coalesce(o.granted_scopes, o.scopes), 'refreshed_at', o.refreshed_at, "
    "'access_expires_at', o.access_expires_at, 'last_error', o.last_error, 'warnings', "
    "(SELECT coalesce(json_agg(json_build_object('kind', w.kind, 'text', w.text) ORDER BY "
    "w.kind), '[]'::json) FROM email_oauth_warnings w WHERE w.account_id = o.account_id)) "
    "ORDER BY o.account_id), '[]'::json)::text FROM email_oauth o JOIN email_accounts a ON "
    "a.id = o.account_id WHERE a.auth_kind = 'oauth2'";

static void status_json(const PGresult *res, long long diags, int answered, const char *detail,
                        int all_up, const char *oauth)
{
	ctl_json_t j;
	ctl_json_init(&j);
	ctl_json_begin_object(&j);
	ctl_json_key(&j, "stages");
	ctl_json_rows(&j, res, status_cols, N_STATUS_COLS);
	ctl_json_key(&j, "watchdog");
	ctl_json_begin_object(&j);
	ctl_json_key(&j, "answered");
	ctl_json_bool(&j, answered);
	ctl_json_key(&j, "detail");
	ctl_json_str(&j, detail);
	ctl_json_end_object(&j);
	ctl_json_key(&j, "open_diagnostics");
	ctl_json_int(&j, diags);
	ctl_json_key(&j, "all_up");
	ctl_json_bool(&j, all_up);
	ctl_json_key(&j, "oauth2");
	ctl_json_raw(&j, oauth != NULL ? oauth : "null");
	ctl_json_end_object(&j);
	ctl_json_print(&j, stdout);
}

/* status_one - the status of the database the configuration names. */
static int status_one(ctl_t *ctl)
{
	char limit[PP_LL_LEN], err[512];
	pp_msg_reply_t reply;
	if (ctl_db(ctl) == NULL)
		return CTL_FAIL;
	PGresult *res =
	    pp_db_exec(ctl->db, status_sql, PP_DB_ARGS(pp_lltoa(limit, status_down_after_ms(ctl))));
	if (res == NULL)
		return ctl_db_fail(ctl, "read the check-ins");
	PGresult *diag = pp_db_exec(
	    ctl->db, "SELECT count(*) FROM diagnostics WHERE resolved_at IS NULL", 0, NULL);
	if (diag == NULL) {
		PQclear(res);
		return ctl_db_fail(ctl, "count the diagnostics");
	}
	long long diags = pp_db_value_ll(diag, 0, 0, 0);
	PQclear(diag);
	int answered =
	    ctl_control(ctl, "ping", "", "", STATUS_PING_MS, &reply, err, sizeof(err)) == 0;
	const char *detail = answered ? reply.text : err;
	int all_up = answered && status_all_up(res);
	if (ctl->json) {
		PGresult *oauth = pp_db_exec(ctl->db, status_oauth_sql, 0, NULL);
		if (oauth == NULL)
			ctl_warn("cannot read the OAuth2 accounts: %s", pp_db_error(ctl->db));
		status_json(res, diags, answered, detail, all_up,
		            oauth != NULL ? pp_db_value(oauth, 0, 0) : NULL);
		PQclear(oauth);
	} else {
		if (PQntuples(res) == 0)
			printf("no stage has checked in yet\n");
		else
			ctl_print_rows(ctl, res, status_cols, N_STATUS_COLS);
		printf("\nwatchdog: %s (%s)\n", answered ? "answered" : "DOWN", detail);
		printf("open diagnostics: %lld%s\n", diags,
		       diags ? " (see: practicepost diagnostics)" : "");
		if (ctl_oauth_print(ctl, 0) < 0)
			ctl_warn("cannot read the OAuth2 accounts: %s", pp_db_error(ctl->db));
		printf("overall: %s\n", all_up ? "all up" : "NOT all up");
	}
	PQclear(res);
	return all_up ? CTL_OK : CTL_FAIL;
}

/* status_each - one service for several practice databases: the status of
 * each served database, headed by its name (--json: an array of
 * {"database", "status"}); the databases skipped, and why. */
static int status_each(ctl_t *ctl)
{
	pp_databases_t dbs;
	char err[512];
	int rc = CTL_OK;
	if (pp_databases_find(ctl->cfg, &dbs, err, sizeof(err)) != 0)
		return ctl_err("cannot list the practice databases: %s", err);
	for (size_t i = 0; i < dbs.count; i++) {
		setenv("PP_DATABASE", dbs.names[i], 1);
		pp_db_free(&ctl->db);
		pp_config_free(&ctl->cfg);
		if (!ctl->json)
			printf("%s== database %s ==\n", i ? "\n" : "", dbs.names[i]);
		else
			printf("%s{\"database\": \"%s\", \"status\": ", i ? ", " : "[",
			       dbs.names[i]);
		fflush(stdout);
		if (status_one(ctl) != CTL_OK)
			rc = CTL_FAIL;
		if (ctl->json)
			printf("}");
	}
	if (ctl->json)
		printf("%s]\n", dbs.count ? "" : "[");
	for (size_t i = 0; i < dbs.nskipped && !ctl->json; i++)
		printf("\nskipped: database %s: %s\n", dbs.skipped[i], dbs.why[i]);
	if (dbs.count == 0)
		rc = ctl_err("no practice database is served");
	pp_databases_free(&dbs);
	return rc;
}

static int cmd_status(ctl_t *ctl, int argc, char **argv)
{
	if (argc != 1)
		return ctl_usage(ctl, "unexpected argument \"%s\"", argv[1]);
	if (ctl_config(ctl) == NULL)
		return CTL_FAIL;
	if (getenv("PP_DATABASE") == NULL && pp_databases_configured(ctl->cfg))
		return status_each(ctl);
	return status_one(ctl);
}

/* restart_one - ask the watchdog to restart a stage; 1 restarted, 0 the
 * watchdog does not run it (skip is set), -1 after printing why. */
static int restart_one(ctl_t *ctl, const char *stage, int64_t timeout, int skip_unknown)
{
	pp_msg_reply_t reply;
	char err[512];
	if (ctl_control(ctl, "restart", stage, "", (int)timeout * 1000, &reply, err, sizeof(err)) !=
	    0)
		return ctl_err("cannot restart %s: %s", stage, err), -1;
	if (!reply.ok && skip_unknown && strncmp(reply.text, "unknown stage", 13) == 0)
		return 0;
	if (ctl->json) {
		ctl_json_t j;
		ctl_json_init(&j);
		ctl_json_begin_object(&j);
		ctl_json_key(&j, "stage");
		ctl_json_str(&j, stage);
		ctl_json_key(&j, "ok");
		ctl_json_bool(&j, reply.ok != 0);
		ctl_json_key(&j, "text");
		ctl_json_str(&j, reply.text);
		ctl_json_end_object(&j);
		ctl_json_print(&j, stdout);
	} else if (reply.ok) {
		printf("%s\n", reply.text);
	}
	if (!reply.ok)
		return ctl_err("the watchdog could not restart %s: %s", stage, reply.text), -1;
	return 1;
}

static int cmd_restart(ctl_t *ctl, int argc, char **argv)
{
	static const struct option opts[] = {{"timeout", required_argument, NULL, 't'},
	                                     {NULL, 0, NULL, 0}};
	static const char *const stages[] = CTL_STAGES;
	int64_t timeout = RESTART_WAIT_S;
	int ch, restarted = 0;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch != 't')
			return ctl_usage_line(ctl);
		if (ctl_parse_int("--timeout", optarg, 1, 3600, &timeout) != 0)
			return CTL_USAGE;
	}
	if (optind != argc - 1)
		return ctl_usage(ctl, "name one stage to restart, or all");
	const char *stage = argv[optind];
	int all = strcmp(stage, "all") == 0;
	if (!all && ctl_parse_choice("stage", stage, stages) < 0)
		return CTL_USAGE;
	if (ctl_config(ctl) == NULL)
		return CTL_FAIL;
	/* all: every stage the watchdog runs, one after the other. */
	for (int i = 0; stages[i] != NULL; i++) {
		if (!all && strcmp(stages[i], stage) != 0)
			continue;
		int rc = restart_one(ctl, stages[i], timeout, all);
		if (rc < 0)
			return CTL_FAIL;
		restarted += rc;
	}
	if (all && restarted == 0)
		return ctl_err("the watchdog runs no stage to restart");
	return CTL_OK;
}

const ctl_command_t ctl_status_commands[] = {
    {NULL, "status", cmd_status, "",
     "each stage instance: up/down, heartbeat and check-in age, restarts, counters; the "
     "watchdog's answer to a ping; exit 0 only if all is up"},
    {NULL, "restart", cmd_restart, "[--timeout SECONDS] STAGE|all",
     "ask the watchdog to restart a stage (composer, sender, sms, fetcher), or every stage "
     "it runs (all), and wait for it"},
    {NULL, NULL, NULL, NULL, NULL},
};
