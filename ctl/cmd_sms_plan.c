/*
 * cmd_sms_plan.c - staggered SMS: `practicepost sms session-add|session-delete|sessions`
 * (delivery sessions, added and deleted, never edited), `practicepost sms
 * stagger` (send all at once, or one every X minutes within the sessions)
 * and `practicepost sms plan` (how many texts fit in the next days, when
 * the last queued one goes, with a warning when that is too far off). The
 * claim does the pacing (common/sql/009_holds.sql); this only shows it.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "pp_audit.h"
#include "pp_sms_text.h"

typedef struct {
	int64_t practice;
	int days; /* weekday mask, 0: none */
	const char *date, *from, *to;
} session_opts_t;

static int session_parse(ctl_t *ctl, int argc, char **argv, session_opts_t *o)
{
	static const struct option opts[] = {
	    {"practice", required_argument, NULL, 'p'}, {"weekday", required_argument, NULL, 'w'},
	    {"date", required_argument, NULL, 'd'},     {"from", required_argument, NULL, 'f'},
	    {"to", required_argument, NULL, 't'},       {NULL, 0, NULL, 0}};
	int ch, minutes;
	memset(o, 0, sizeof(*o));
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == 'p' && ctl_parse_id("--practice", optarg, &o->practice) != 0)
			return CTL_USAGE;
		if (ch == 'w' && (o->days = ctl_parse_days(optarg)) < 0)
			return ctl_usage(ctl,
			                 "--weekday: \"%s\" is not a day or range (mon, mon-fri, "
			                 "sat,sun, daily)",
			                 optarg);
		if ((ch == 'f' || ch == 't') && ctl_parse_clock(optarg, ch == 't', &minutes) != 0)
			return ctl_usage(ctl, "--%s: \"%s\" is not a time of day (HH:MM)",
			                 ch == 'f' ? "from" : "to", optarg);
		if (ch == 'd')
			o->date = optarg;
		if (ch == 'f')
			o->from = optarg;
		if (ch == 't')
			o->to = optarg;
		if (ch == '?' || ch == ':')
			return ctl_usage_line(ctl);
	}
	CTL_NO_ARGS(ctl, argc, argv);
	CTL_REQUIRE(ctl, o->practice ? "" : NULL, "--practice");
	return CTL_OK;
}

static int cmd_session_add(ctl_t *ctl, int argc, char **argv)
{
	session_opts_t o;
	char id[PP_LL_LEN], mask[PP_LL_LEN];
	int rc = session_parse(ctl, argc, argv, &o);
	if (rc != CTL_OK)
		return rc;
	if ((o.days != 0) == (o.date != NULL))
		return ctl_usage(ctl, "give --weekday DAYS or --date YYYY-MM-DD");
	CTL_REQUIRE(ctl, o.from, "--from");
	CTL_REQUIRE(ctl, o.to, "--to");
	if (ctl_db(ctl) == NULL || ctl_practice_exists(ctl, o.practice) != 1)
		return CTL_FAIL;
	pp_lltoa(id, o.practice);
	pp_lltoa(mask, o.days);
	if (pp_db_begin(ctl->db) != 0)
		return ctl_db_fail(ctl, "add the session");
	PGresult *res = pp_db_exec(
	    ctl->db,
	    "INSERT INTO sms_sessions (practice_id, weekday, day, starts, ends) SELECT $1, d, "
	    "$3::date, $4::time, $5::time FROM (SELECT d::smallint FROM generate_series(0, 6) d "
	    "WHERE $2::int & (1 << d) <> 0 UNION ALL SELECT NULL WHERE $2::int = 0) w RETURNING id",
	    PP_DB_ARGS(id, mask, o.date, o.from, o.to));
	if (res == NULL ||
	    pp_audit(ctl->db, pp_audit_operator(), "config_changed", o.practice, 0, 0,
	             "sms session added %s %s-%s", o.date ? o.date : "weekly", o.from, o.to) != 0 ||
	    pp_db_commit(ctl->db) != 0) {
		PQclear(res);
		pp_db_rollback(ctl->db);
		return ctl_db_fail(ctl, "add the session");
	}
	for (int r = 0; r < PQntuples(res); r++)
		ctl_print_id(ctl, pp_db_value_ll(res, r, 0, 0));
	PQclear(res);
	ctl_wake(ctl, "sms");
	return CTL_OK;
}

static int cmd_session_delete(ctl_t *ctl, int argc, char **argv)
{
	int64_t session;
	char id[PP_LL_LEN];
	if (getopt_long(argc, argv, "", (const struct option[]){{NULL, 0, NULL, 0}}, NULL) != -1)
		return ctl_usage_line(ctl);
	if (optind != argc - 1)
		return ctl_usage(ctl, "give exactly one session id");
	if (ctl_parse_id("session id", argv[optind], &session) != 0)
		return CTL_USAGE;
	if (ctl_db(ctl) == NULL)
		return CTL_FAIL;
	if (pp_db_begin(ctl->db) != 0)
		return ctl_db_fail(ctl, "delete the session");
	PGresult *res = pp_db_exec(ctl->db,
	                           "DELETE FROM sms_sessions WHERE id = $1 RETURNING practice_id, "
	                           "coalesce(day::text, 'weekday ' || weekday), starts, ends",
	                           PP_DB_ARGS(pp_lltoa(id, session)));
	int found = res != NULL && PQntuples(res) == 1;
	if (res == NULL ||
	    (found &&
	     pp_audit(ctl->db, pp_audit_operator(), "config_changed", pp_db_value_ll(res, 0, 0, 0),
	              0, 0, "sms session deleted %s %s-%s", PQgetvalue(res, 0, 1),
	              PQgetvalue(res, 0, 2), PQgetvalue(res, 0, 3)) != 0) ||
	    pp_db_commit(ctl->db) != 0) {
		PQclear(res);
		pp_db_rollback(ctl->db);
		return ctl_db_fail(ctl, "delete the session");
	}
	PQclear(res);
	if (!found)
		return ctl_err("no SMS session with id %lld (see: practicepost sms sessions)",
		               (long long)session);
	if (!ctl->json)
		printf("session %lld deleted\n", (long long)session);
	return CTL_OK;
}

static int cmd_session_list(ctl_t *ctl, int argc, char **argv)
{
	static const ctl_column_t cols[] = {
	    {"id", "ID", CTL_COL_INT, 0, CTL_COL_BOTH},
	    {"when", "WHEN", CTL_COL_TEXT, 0, CTL_COL_BOTH},
	    {"starts", "FROM", CTL_COL_TEXT, 0, CTL_COL_BOTH},
	    {"ends", "TO", CTL_COL_TEXT, 0, CTL_COL_BOTH},
	    {"weekday", "WEEKDAY", CTL_COL_INT, 0, CTL_COL_JSON_ONLY},
	    {"date", "DATE", CTL_COL_TEXT, 0, CTL_COL_JSON_ONLY},
	};
	int rc;
	PGresult *res = ctl_practice_query(
	    ctl, argc, argv,
	    "SELECT id, coalesce(day::text, (ARRAY['Sun','Mon','Tue','Wed','Thu','Fri','Sat'])"
	    "[weekday + 1]) AS when, to_char(starts, 'HH24:MI') AS starts, to_char(ends, "
	    "'HH24:MI') AS ends, weekday, day::text AS date FROM sms_sessions WHERE practice_id "
	    "= $1 ORDER BY day NULLS FIRST, weekday, starts",
	    "list the sessions", 0, &rc);
	if (res == NULL)
		return rc;
	ctl_print_rows(ctl, res, cols, (int)(sizeof(cols) / sizeof(cols[0])));
	PQclear(res);
	return CTL_OK;
}

/* parse_minutes - X minutes, fractions allowed (0.5 = 30 s), 1 s .. 1 day. */
static int parse_minutes(const char *text, char *out, size_t len)
{
	char *end;
	double m = strtod(text, &end);
	if (end == text || *end != '\0' || !isfinite(m) || m * 60 < 1 - 1e-9 || m > 1440) {
		ctl_err("--every: \"%s\" is not a number of minutes (1/60 to 1440)", text);
		return -1;
	}
	snprintf(out, len, "%.3f", m * 60);
	return 0;
}

static const char *const sms_modes[] = {"all", "staggered", NULL};

static int cmd_sms_stagger(ctl_t *ctl, int argc, char **argv)
{
	static const struct option opts[] = {{"practice", required_argument, NULL, 'p'},
	                                     {"mode", required_argument, NULL, 'm'},
	                                     {"every", required_argument, NULL, 'e'},
	                                     {"warn-days", required_argument, NULL, 'w'},
	                                     {NULL, 0, NULL, 0}};
	int64_t practice = 0, warn = 0;
	const char *mode = NULL, *warn_text = NULL;
	char every[32] = "", id[PP_LL_LEN];
	int ch;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if ((ch == 'p' && ctl_parse_id("--practice", optarg, &practice) != 0) ||
		    (ch == 'm' && ctl_parse_choice("--mode", optarg, sms_modes) < 0) ||
		    (ch == 'e' && parse_minutes(optarg, every, sizeof(every)) != 0) ||
		    (ch == 'w' && ctl_parse_int("--warn-days", optarg, 1, 365, &warn) != 0))
			return CTL_USAGE;
		if (ch == 'm')
			mode = optarg;
		if (ch == 'w')
			warn_text = optarg;
		if (ch == '?' || ch == ':')
			return ctl_usage_line(ctl);
	}
	CTL_NO_ARGS(ctl, argc, argv);
	CTL_REQUIRE(ctl, practice ? "" : NULL, "--practice");
	if (ctl_db(ctl) == NULL || ctl_practice_exists(ctl, practice) != 1)
		return CTL_FAIL;
	pp_lltoa(id, practice);
	if ((mode || *every || warn_text) &&
	    (pp_db_begin(ctl->db) != 0 ||
	     pp_db_command(ctl->db,
	                   "UPDATE practices SET sms_mode = coalesce($2, sms_mode), sms_every = "
	                   "coalesce($3::float8 * interval '1 second', sms_every), sms_warn_days = "
	                   "coalesce($4::int, sms_warn_days) WHERE id = $1",
	                   PP_DB_ARGS(id, mode, *every ? every : NULL, warn_text)) != 0 ||
	     pp_audit(ctl->db, pp_audit_operator(), "config_changed", practice, 0, 0,
	              "sms stagger mode=%s every_seconds=%s warn_days=%s", mode ? mode : "(kept)",
	              *every ? every : "(kept)", warn_text ? warn_text : "(kept)") != 0 ||
	     pp_db_commit(ctl->db) != 0)) {
		pp_db_rollback(ctl->db);
		return ctl_db_fail(ctl, "store the SMS sending mode");
	}
	static const ctl_column_t cols[] = {
	    {"practice_id", "PRACTICE", CTL_COL_INT, 0, CTL_COL_BOTH},
	    {"mode", "MODE", CTL_COL_TEXT, 0, CTL_COL_BOTH},
	    {"every_seconds", "EVERY (S)", CTL_COL_TEXT, 0, CTL_COL_BOTH},
	    {"warn_days", "WARN DAYS", CTL_COL_INT, 0, CTL_COL_BOTH},
	    {"sessions", "SESSIONS", CTL_COL_INT, 0, CTL_COL_BOTH},
	};
	PGresult *res = pp_db_exec(
	    ctl->db,
	    "SELECT id AS practice_id, sms_mode AS mode, extract(epoch FROM sms_every)::numeric::"
	    "text AS every_seconds, sms_warn_days AS warn_days, (SELECT count(*) FROM sms_sessions "
	    "s WHERE s.practice_id = p.id) AS sessions FROM practices p WHERE id = $1",
	    PP_DB_ARGS(id));
	if (res == NULL)
		return ctl_db_fail(ctl, "read the SMS sending mode");
	ctl_print_rows(ctl, res, cols, (int)(sizeof(cols) / sizeof(cols[0])));
	PQclear(res);
	ctl_wake(ctl, "sms");
	return CTL_OK;
}

/* The plan of one practice: mode, pace, queue, fit and the last slot. */
static const char plan_sql[] =
    "WITH p AS (SELECT * FROM practices WHERE id = $1), q AS (SELECT m.body FROM messages m "
    "WHERE m.practice_id = $1 AND m.channel = 'sms' AND m.direction = 'out' AND m.state = "
    "'queued' AND NOT m.flagged AND NOT m.send_now), pl AS (SELECT max(planned) AS last, "
    "count(planned) AS placed FROM pp_sms_planned($1)) SELECT p.name, p.time_zone, "
    "p.sms_mode, extract(epoch FROM p.sms_every), p.sms_warn_days, (SELECT count(*) FROM q), "
    "(SELECT count(*) FROM pp_sms_plan($1, now(), 1000000) t WHERE t < now() + "
    "p.sms_warn_days * interval '1 day'), to_char(pl.last AT TIME ZONE p.time_zone, "
    "'Dy YYYY-MM-DD HH24:MI'), pl.last > now() + p.sms_warn_days * interval '1 day', "
    "pl.placed, (SELECT count(*) FROM sms_sessions s WHERE s.practice_id = p.id), (SELECT "
    "string_agg(q.body, chr(1)) FROM q), p.id FROM p, pl";
enum {
	P_NAME,
	P_ZONE,
	P_MODE,
	P_EVERY,
	P_WARN_DAYS,
	P_QUEUED,
	P_FIT,
	P_LAST,
	P_LATE,
	P_PLACED,
	P_SESSIONS,
	P_BODIES,
	P_ID
};

/* plan_segments - the segments of the queued texts (joined by \1). */
static long long plan_segments(const char *bodies)
{
	long long total = 0;
	for (const char *p = bodies; p != NULL && *p;) {
		size_t len = strcspn(p, "\001");
		char *one = xstrndup(p, len);
		int n = pp_sms_text_segments(one, NULL, NULL);
		total += n > 0 ? n : 0;
		free(one);
		p += len + (p[len] == '\001');
	}
	return total;
}

static void plan_print(const ctl_t *ctl, const PGresult *r, int late)
{
	int64_t practice = pp_db_value_ll(r, 0, P_ID, 0);
	long long queued = pp_db_value_ll(r, 0, P_QUEUED, 0), fit = pp_db_value_ll(r, 0, P_FIT, 0);
	long long placed = pp_db_value_ll(r, 0, P_PLACED, 0);
	long long segments = plan_segments(pp_db_value(r, 0, P_BODIES));
	const char *last = pp_db_value(r, 0, P_LAST), *days = PQgetvalue(r, 0, P_WARN_DAYS);
	if (ctl->json) {
		printf("{\"practice_id\": %lld, \"mode\": \"%s\", \"every_seconds\": %s, "
		       "\"queued\": %lld, \"segments\": %lld, \"warn_days\": %s, "
		       "\"fit_in_warn_days\": %lld, \"last_local\": %s%s%s, \"placed\": %lld, "
		       "\"warning\": %s}\n",
		       (long long)practice, PQgetvalue(r, 0, P_MODE), PQgetvalue(r, 0, P_EVERY),
		       queued, segments, days, fit, last ? "\"" : "", last ? last : "null",
		       last ? "\"" : "", placed, late ? "true" : "false");
		return;
	}
	printf("practice %lld: %s (%s)\n", (long long)practice, PQgetvalue(r, 0, P_NAME),
	       PQgetvalue(r, 0, P_ZONE));
	if (strcmp(PQgetvalue(r, 0, P_MODE), "staggered") != 0) {
		printf("SMS mode: all at once (%lld queued, %lld segments)\n", queued, segments);
		return;
	}
	printf("SMS mode: staggered, one every %s s in %s delivery session(s)\n",
	       PQgetvalue(r, 0, P_EVERY), PQgetvalue(r, 0, P_SESSIONS));
	printf("queued: %lld SMS (%lld segments)\n", queued, segments);
	printf("the sessions of the next %s day(s) fit %lld\n", days, fit);
	if (queued > 0 && placed < queued)
		printf("last: not within 400 days (%lld of %lld placed)\n", placed, queued);
	else if (queued > 0)
		printf("last of the queue goes: %s\n", last);
}

static int cmd_sms_plan(ctl_t *ctl, int argc, char **argv)
{
	int rc;
	PGresult *r = ctl_practice_query(ctl, argc, argv, plan_sql, "plan the SMS", 1, &rc);
	if (r == NULL)
		return rc;
	int staggered = strcmp(PQgetvalue(r, 0, P_MODE), "staggered") == 0;
	long long queued = pp_db_value_ll(r, 0, P_QUEUED, 0);
	int late = staggered && queued > 0 &&
	           (strcmp(PQgetvalue(r, 0, P_LATE), "t") == 0 ||
	            pp_db_value_ll(r, 0, P_PLACED, 0) < queued);
	plan_print(ctl, r, late);
	if (late)
		ctl_warn("the queued SMS take longer than %s day(s): add delivery sessions or send "
		         "more often (practicepost sms session-add, sms stagger --every)",
		         PQgetvalue(r, 0, P_WARN_DAYS));
	if (staggered && pp_db_value_ll(r, 0, P_SESSIONS, 0) == 0)
		ctl_warn("no delivery sessions: staggered SMS wait until one is added");
	PQclear(r);
	return CTL_OK;
}

const ctl_command_t ctl_sms_plan_commands[] = {
    {"sms", "session-add", cmd_session_add,
     "--practice ID (--weekday DAYS | --date YYYY-MM-DD) --from HH:MM --to HH:MM",
     "add a delivery session for staggered SMS (DAYS: mon, mon-fri, sat,sun, daily); one "
     "per day of the range; sessions are deleted and added, never edited"},
    {"sms", "session-delete", cmd_session_delete, "ID", "delete a delivery session"},
    {"sms", "sessions", cmd_session_list, "--practice ID", "list the delivery sessions"},
    {"sms", "stagger", cmd_sms_stagger,
     "--practice ID [--mode all|staggered] [--every MINUTES] [--warn-days N]",
     "send SMS as soon as they are queued, or one every MINUTES (fractions allowed) within "
     "the delivery sessions; shows the setting"},
    {"sms", "plan", cmd_sms_plan, "--practice ID",
     "how many SMS fit in the sessions of the next warn days, when the last queued one "
     "goes, and a warning when that is later"},
    {NULL, NULL, NULL, NULL, NULL},
};
