/*
 * cmd_holds.c - the rules that hold messages back in the outbox claim
 * (common/sql/009_holds.sql): `practicepost holiday add|delete|list` (a
 * practice's closed dates), `practicepost rules set|show` (quiet hours and
 * per-patient caps) and `practicepost person optout` (opt-outs per message
 * type and channel). Every change is audited.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "pp_audit.h"

static const char *const optout_channels[] = {"email", "sms", NULL};
static const char *const optout_kinds[] = {"reminder", "confirmation", "recall",
                                           "welcome",  "general",      NULL};

/* parse_date - YYYY-MM-DD (the database checks the calendar). */
static int parse_date(const char *opt, const char *text)
{
	int y, m, d, n = 0;
	if (sscanf(text, "%4d-%2d-%2d%n", &y, &m, &d, &n) == 3 && text[n] == '\0' &&
	    strlen(text) == 10 && m >= 1 && m <= 12 && d >= 1 && d <= 31)
		return 0;
	ctl_err("%s: \"%s\" is not a date (YYYY-MM-DD)", opt, text);
	return -1;
}

/* holiday_parse - --practice, --date and --name; 0 or the exit code. */
static int holiday_parse(ctl_t *ctl, int argc, char **argv, int64_t *practice, const char **date,
                         const char **name)
{
	static const struct option opts[] = {{"practice", required_argument, NULL, 'p'},
	                                     {"date", required_argument, NULL, 'd'},
	                                     {"name", required_argument, NULL, 'n'},
	                                     {NULL, 0, NULL, 0}};
	int ch;
	*practice = 0;
	*date = *name = NULL;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if ((ch == 'p' && ctl_parse_id("--practice", optarg, practice) != 0) ||
		    (ch == 'd' && parse_date("--date", optarg) != 0) ||
		    (ch == 'n' && ctl_check_line("--name", optarg) != 0))
			return CTL_USAGE;
		if (ch == 'd')
			*date = optarg;
		if (ch == 'n')
			*name = optarg;
		if (ch == '?' || ch == ':')
			return ctl_usage_line(ctl);
	}
	CTL_NO_ARGS(ctl, argc, argv);
	CTL_REQUIRE(ctl, *practice ? "" : NULL, "--practice");
	return CTL_OK;
}

/* holiday_change - add (name != NULL) or delete one date, audited. */
static int holiday_change(ctl_t *ctl, int64_t practice, const char *date, const char *name)
{
	char id[PP_LL_LEN];
	const char *sql =
	    name != NULL
	        ? "INSERT INTO practice_holidays (practice_id, day, name) VALUES ($1, "
	          "$2::date, $3) ON CONFLICT (practice_id, day) DO UPDATE SET name = "
	          "excluded.name RETURNING day"
	        : "DELETE FROM practice_holidays WHERE practice_id = $1 AND day = $2::date "
	          "AND $3::text IS NULL RETURNING day";
	if (ctl_db(ctl) == NULL || ctl_practice_exists(ctl, practice) != 1)
		return CTL_FAIL;
	if (pp_db_begin(ctl->db) != 0)
		return ctl_db_fail(ctl, "change the holidays");
	PGresult *res = pp_db_exec(ctl->db, sql, PP_DB_ARGS(pp_lltoa(id, practice), date, name));
	int found = res != NULL && PQntuples(res) == 1;
	if (res == NULL ||
	    (found && pp_audit(ctl->db, pp_audit_operator(), "config_changed", practice, 0, 0,
	                       "holiday %s %s%s%s", name ? "added" : "deleted", date,
	                       name && *name ? " " : "", name ? name : "") != 0) ||
	    pp_db_commit(ctl->db) != 0) {
		PQclear(res);
		pp_db_rollback(ctl->db);
		return ctl_db_fail(ctl, "change the holidays");
	}
	PQclear(res);
	if (!found)
		return ctl_err("practice %lld has no holiday on %s", (long long)practice, date);
	printf("practice %lld: %s %s\n", (long long)practice, date,
	       name ? "is a holiday: nothing automatic goes out" : "is no longer a holiday");
	ctl_wake(ctl, "sender");
	ctl_wake(ctl, "sms");
	return CTL_OK;
}

static int cmd_holiday_add(ctl_t *ctl, int argc, char **argv)
{
	int64_t practice;
	const char *date, *name;
	int rc = holiday_parse(ctl, argc, argv, &practice, &date, &name);
	if (rc != CTL_OK)
		return rc;
	CTL_REQUIRE(ctl, date, "--date");
	return holiday_change(ctl, practice, date, name ? name : "");
}

static int cmd_holiday_delete(ctl_t *ctl, int argc, char **argv)
{
	int64_t practice;
	const char *date, *name;
	int rc = holiday_parse(ctl, argc, argv, &practice, &date, &name);
	if (rc != CTL_OK)
		return rc;
	CTL_REQUIRE(ctl, date, "--date");
	if (name != NULL)
		return ctl_usage(ctl, "--name is for holiday add");
	return holiday_change(ctl, practice, date, NULL);
}

static int cmd_holiday_list(ctl_t *ctl, int argc, char **argv)
{
	static const ctl_column_t cols[] = {
	    {"date", "DATE", CTL_COL_TEXT, 0, CTL_COL_BOTH},
	    {"weekday", "DAY", CTL_COL_TEXT, 0, CTL_COL_BOTH},
	    {"name", "NAME", CTL_COL_TEXT, 40, CTL_COL_BOTH},
	};
	int64_t practice;
	const char *date, *name;
	char id[PP_LL_LEN];
	int rc = holiday_parse(ctl, argc, argv, &practice, &date, &name);
	if (rc != CTL_OK)
		return rc;
	if (date || name)
		return ctl_usage(ctl, "holiday list takes only --practice");
	if (ctl_db(ctl) == NULL)
		return CTL_FAIL;
	PGresult *res = pp_db_exec(ctl->db,
	                           "SELECT day::text AS date, to_char(day, 'Dy') AS weekday, name "
	                           "FROM practice_holidays WHERE practice_id = $1 ORDER BY day",
	                           PP_DB_ARGS(pp_lltoa(id, practice)));
	if (res == NULL)
		return ctl_db_fail(ctl, "list the holidays");
	ctl_print_rows(ctl, res, cols, (int)(sizeof(cols) / sizeof(cols[0])));
	PQclear(res);
	return CTL_OK;
}

typedef struct {
	int64_t practice;
	const char *quiet, *cap_day, *cap_week; /* "none" clears; NULL keeps */
	char quiet_from[6], quiet_to[6];
} rules_opts_t;

/* rules_quiet - "HH:MM-HH:MM" (may wrap midnight) or "none". */
static int rules_quiet(rules_opts_t *o, const char *text)
{
	int h1, m1, h2, m2, n = 0;
	o->quiet = text;
	if (strcmp(text, "none") == 0)
		return 0;
	if (sscanf(text, "%2d:%2d-%2d:%2d%n", &h1, &m1, &h2, &m2, &n) != 4 || text[n] != '\0' ||
	    h1 < 0 || h1 > 23 || h2 < 0 || h2 > 23 || m1 < 0 || m1 > 59 || m2 < 0 || m2 > 59 ||
	    (h1 == h2 && m1 == m2)) {
		ctl_err("--quiet-hours: \"%s\" is not HH:MM-HH:MM (e.g. 20:00-08:00) or none",
		        text);
		return -1;
	}
	snprintf(o->quiet_from, sizeof(o->quiet_from), "%02d:%02d", h1, m1);
	snprintf(o->quiet_to, sizeof(o->quiet_to), "%02d:%02d", h2, m2);
	return 0;
}

/* rules_cap - a positive count or "none". */
static int rules_cap(const char *opt, const char *text, int64_t max, const char **out)
{
	int64_t n;
	*out = text;
	return strcmp(text, "none") == 0 ? 0 : ctl_parse_int(opt, text, 1, max, &n);
}

static int rules_parse(ctl_t *ctl, int argc, char **argv, rules_opts_t *o)
{
	static const struct option opts[] = {{"practice", required_argument, NULL, 'p'},
	                                     {"quiet-hours", required_argument, NULL, 'q'},
	                                     {"cap-day", required_argument, NULL, 'd'},
	                                     {"cap-week", required_argument, NULL, 'w'},
	                                     {NULL, 0, NULL, 0}};
	int ch;
	memset(o, 0, sizeof(*o));
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if ((ch == 'p' && ctl_parse_id("--practice", optarg, &o->practice) != 0) ||
		    (ch == 'q' && rules_quiet(o, optarg) != 0) ||
		    (ch == 'd' && rules_cap("--cap-day", optarg, 1000, &o->cap_day) != 0) ||
		    (ch == 'w' && rules_cap("--cap-week", optarg, 10000, &o->cap_week) != 0))
			return CTL_USAGE;
		if (ch == '?' || ch == ':')
			return ctl_usage_line(ctl);
	}
	CTL_NO_ARGS(ctl, argc, argv);
	CTL_REQUIRE(ctl, o->practice ? "" : NULL, "--practice");
	return CTL_OK;
}

static const char rules_show_sql[] =
    "SELECT p.id AS practice_id, p.time_zone, to_char(p.quiet_start, 'HH24:MI') AS "
    "quiet_start, to_char(p.quiet_end, 'HH24:MI') AS quiet_end, p.cap_per_day, "
    "p.cap_per_week, (SELECT count(*) FROM practice_holidays h WHERE h.practice_id = p.id "
    "AND h.day >= (now() AT TIME ZONE p.time_zone)::date) AS holidays_ahead, (SELECT "
    "count(*) FROM messages m WHERE m.practice_id = p.id AND m.direction = 'out' AND "
    "m.state = 'queued' AND m.hold_reason IS NOT NULL) AS held FROM practices p WHERE p.id = "
    "$1";

static const ctl_column_t rules_cols[] = {
    {"practice_id", "PRACTICE", CTL_COL_INT, 0, CTL_COL_BOTH},
    {"time_zone", "ZONE", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"quiet_start", "QUIET FROM", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"quiet_end", "QUIET TO", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"cap_per_day", "CAP/DAY", CTL_COL_INT, 0, CTL_COL_BOTH},
    {"cap_per_week", "CAP/WEEK", CTL_COL_INT, 0, CTL_COL_BOTH},
    {"holidays_ahead", "HOLIDAYS AHEAD", CTL_COL_INT, 0, CTL_COL_BOTH},
    {"held", "HELD NOW", CTL_COL_INT, 0, CTL_COL_BOTH},
};
#define RULES_NCOLS ((int)(sizeof(rules_cols) / sizeof(rules_cols[0])))

static int cmd_rules_set(ctl_t *ctl, int argc, char **argv)
{
	rules_opts_t o;
	char id[PP_LL_LEN];
	int rc = rules_parse(ctl, argc, argv, &o);
	if (rc != CTL_OK)
		return rc;
	if (!o.quiet && !o.cap_day && !o.cap_week)
		return ctl_usage(ctl, "give --quiet-hours, --cap-day or --cap-week");
	if (ctl_db(ctl) == NULL || ctl_practice_exists(ctl, o.practice) != 1)
		return CTL_FAIL;
	int clear_quiet = o.quiet && strcmp(o.quiet, "none") == 0;
	if (pp_db_begin(ctl->db) != 0 ||
	    pp_db_command(ctl->db,
	                  "UPDATE practices SET quiet_start = CASE WHEN $2 THEN NULL ELSE "
	                  "coalesce($3::time, quiet_start) END, quiet_end = CASE WHEN $2 THEN "
	                  "NULL ELSE coalesce($4::time, quiet_end) END, cap_per_day = CASE WHEN "
	                  "$5 = 'none' THEN NULL ELSE coalesce(nullif($5, 'none')::int, "
	                  "cap_per_day) END, cap_per_week = CASE WHEN $6 = 'none' THEN NULL ELSE "
	                  "coalesce(nullif($6, 'none')::int, cap_per_week) END WHERE id = $1",
	                  PP_DB_ARGS(pp_lltoa(id, o.practice), clear_quiet ? "t" : "f",
	                             o.quiet && !clear_quiet ? o.quiet_from : NULL,
	                             o.quiet && !clear_quiet ? o.quiet_to : NULL, o.cap_day,
	                             o.cap_week)) != 0 ||
	    pp_audit(ctl->db, pp_audit_operator(), "config_changed", o.practice, 0, 0,
	             "rules quiet_hours=%s cap_day=%s cap_week=%s", o.quiet ? o.quiet : "(kept)",
	             o.cap_day ? o.cap_day : "(kept)", o.cap_week ? o.cap_week : "(kept)") != 0 ||
	    pp_db_commit(ctl->db) != 0) {
		pp_db_rollback(ctl->db);
		return ctl_db_fail(ctl, "store the rules");
	}
	ctl_wake(ctl, "sender");
	ctl_wake(ctl, "sms");
	PGresult *res = pp_db_exec(ctl->db, rules_show_sql, PP_DB_ARGS(id));
	if (res == NULL)
		return ctl_db_fail(ctl, "read the rules");
	ctl_print_rows(ctl, res, rules_cols, RULES_NCOLS);
	PQclear(res);
	return CTL_OK;
}

static int cmd_rules_show(ctl_t *ctl, int argc, char **argv)
{
	int rc;
	PGresult *res =
	    ctl_practice_query(ctl, argc, argv, rules_show_sql, "read the rules", 1, &rc);
	if (res == NULL)
		return rc;
	ctl_print_rows(ctl, res, rules_cols, RULES_NCOLS);
	PQclear(res);
	return CTL_OK;
}

static int optout_list(ctl_t *ctl, const char *person)
{
	static const ctl_column_t cols[] = {
	    {"channel", "CHANNEL", CTL_COL_TEXT, 0, CTL_COL_BOTH},
	    {"kind", "TYPE", CTL_COL_TEXT, 0, CTL_COL_BOTH},
	    {"source", "SOURCE", CTL_COL_TEXT, 30, CTL_COL_BOTH},
	    {"created", "SINCE", CTL_COL_TIME, 0, CTL_COL_BOTH},
	};
	PGresult *res = pp_db_exec(ctl->db,
	                           "SELECT channel::text AS channel, kind, source, "
	                           "to_json(created_at) #>> '{}' AS created FROM optouts WHERE "
	                           "person_id = $1 ORDER BY channel, kind",
	                           PP_DB_ARGS(person));
	if (res == NULL)
		return ctl_db_fail(ctl, "list the opt-outs");
	if (PQntuples(res) == 0 && !ctl->json)
		printf("person %s: no opt-outs\n", person);
	else
		ctl_print_rows(ctl, res, cols, (int)(sizeof(cols) / sizeof(cols[0])));
	PQclear(res);
	return CTL_OK;
}

/* optout_change - set or clear one opt-out, audited. Clearing gives back
 * the messages it held (flagged by the claim with its reason). */
static int optout_change(ctl_t *ctl, const char *person, const char *channel, const char *kind,
                         int clear)
{
	PGresult *res = NULL;
	if (pp_db_begin(ctl->db) != 0)
		return ctl_db_fail(ctl, "change the opt-out");
	res = pp_db_exec(ctl->db, "SELECT practice_id FROM people WHERE id = $1 FOR UPDATE",
	                 PP_DB_ARGS(person));
	if (res == NULL || PQntuples(res) != 1)
		goto fail;
	int64_t practice = pp_db_value_ll(res, 0, 0, 0);
	if ((clear ? pp_db_command(ctl->db,
	                           "WITH d AS (DELETE FROM optouts WHERE person_id = $1 AND "
	                           "channel = $2::message_channel AND kind = $3 RETURNING 1) "
	                           "UPDATE messages SET flagged = false, hold_reason = NULL, "
	                           "last_error = NULL, updated_at = now() WHERE person_id = $1 AND "
	                           "channel = $2::message_channel AND state = 'queued' AND "
	                           "direction = 'out' AND flagged AND hold_reason LIKE 'opted out "
	                           "of ' || $3 || ' %' AND EXISTS (SELECT 1 FROM d)",
	                           PP_DB_ARGS(person, channel, kind))
	           : pp_db_command(ctl->db,
	                           "INSERT INTO optouts (person_id, channel, kind, source) VALUES "
	                           "($1, $2, $3, $4) ON CONFLICT DO NOTHING",
	                           PP_DB_ARGS(person, channel, kind, pp_audit_operator()))) != 0 ||
	    pp_audit(ctl->db, pp_audit_operator(), "config_changed", practice, 0,
	             strtoll(person, NULL, 10), "optout %s %s %s", clear ? "cleared" : "set", kind,
	             channel) != 0 ||
	    pp_db_commit(ctl->db) != 0)
		goto fail;
	PQclear(res);
	ctl_wake(ctl, channel[0] == 'e' ? "sender" : "sms");
	return optout_list(ctl, person);
fail:
	if (res != NULL && PQntuples(res) == 0) {
		PQclear(res);
		pp_db_rollback(ctl->db);
		return ctl_err("no person with id %s", person);
	}
	PQclear(res);
	pp_db_rollback(ctl->db);
	return ctl_db_fail(ctl, "change the opt-out");
}

static int cmd_person_optout(ctl_t *ctl, int argc, char **argv)
{
	static const struct option opts[] = {{"channel", required_argument, NULL, 'c'},
	                                     {"kind", required_argument, NULL, 'k'},
	                                     {"clear", no_argument, NULL, 'x'},
	                                     {NULL, 0, NULL, 0}};
	const char *channel = NULL, *kind = NULL;
	int ch, clear = 0;
	int64_t person;
	char id[PP_LL_LEN];
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if ((ch == 'c' && ctl_parse_choice("--channel", optarg, optout_channels) < 0) ||
		    (ch == 'k' && ctl_parse_choice("--kind", optarg, optout_kinds) < 0))
			return CTL_USAGE;
		if (ch == 'c')
			channel = optarg;
		if (ch == 'k')
			kind = optarg;
		clear |= ch == 'x';
		if (ch == '?' || ch == ':')
			return ctl_usage_line(ctl);
	}
	if (optind != argc - 1)
		return ctl_usage(ctl, "give exactly one person id");
	if (ctl_parse_id("person id", argv[optind], &person) != 0)
		return CTL_USAGE;
	if ((channel == NULL) != (kind == NULL) || (clear && channel == NULL))
		return ctl_usage(ctl,
		                 "give both --channel and --kind to set or --clear an opt-out, "
		                 "or neither to show them");
	if (ctl_db(ctl) == NULL)
		return CTL_FAIL;
	pp_lltoa(id, person);
	if (channel == NULL) {
		PGresult *res =
		    pp_db_exec(ctl->db, "SELECT 1 FROM people WHERE id = $1", PP_DB_ARGS(id));
		if (res == NULL)
			return ctl_db_fail(ctl, "read the person");
		int found = PQntuples(res) == 1;
		PQclear(res);
		return found ? optout_list(ctl, id) : ctl_err("no person with id %s", id);
	}
	return optout_change(ctl, id, channel, kind, clear);
}

const ctl_command_t ctl_holds_commands[] = {
    {"holiday", "add", cmd_holiday_add, "--practice ID --date YYYY-MM-DD [--name TEXT]",
     "close a date: nothing automatic goes out that day (the practice's zone); held "
     "messages go the next open day"},
    {"holiday", "delete", cmd_holiday_delete, "--practice ID --date YYYY-MM-DD",
     "open a closed date again"},
    {"holiday", "list", cmd_holiday_list, "--practice ID", "list a practice's closed dates"},
    {"rules", "set", cmd_rules_set,
     "--practice ID [--quiet-hours HH:MM-HH:MM|none] [--cap-day N|none] [--cap-week N|none]",
     "quiet hours (the patient's own zone, else the practice's) and per-patient caps of "
     "automatic messages per channel a day and a rolling week; a held message waits"},
    {"rules", "show", cmd_rules_show, "--practice ID",
     "show a practice's quiet hours, caps, coming holidays and how many messages wait"},
    {"person", "optout", cmd_person_optout,
     "ID [--channel email|sms --kind reminder|confirmation|recall|welcome|general [--clear]]",
     "show a person's opt-outs, or set/clear one; messages of an opted-out type are flagged "
     "in the outbox, never sent, and given back when the opt-out is cleared"},
    {NULL, NULL, NULL, NULL, NULL},
};
