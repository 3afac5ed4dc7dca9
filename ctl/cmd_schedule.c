/*
 * cmd_schedule.c - `practicepost schedule set|show` (a practice's send
 * schedule: send immediately, or send windows per weekday checked every N
 * minutes and/or at preset times; see common/sql/002_sender.sql for what
 * the sender makes of it) and `practicepost rate suggest` (a provider's
 * daily limit spread over the sending hours, as emails per minute).
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

#define SCHEDULE_MAX_WINDOWS 200
#define SCHEDULE_MAX_TIMES 48

typedef struct {
	int weekday, starts, ends; /* minutes since midnight */
} window_t;

typedef struct {
	int64_t practice, check_minutes;
	int immediate, check_given;
	window_t windows[SCHEDULE_MAX_WINDOWS];
	int nwindows;
	int times[SCHEDULE_MAX_TIMES];
	int ntimes;
} schedule_opts_t;

/* parse_window - "mon-fri 08:00-12:00": one window per day of the range. */
static int parse_window(schedule_opts_t *o, const char *spec)
{
	char days[64], from[8], to[8];
	int n = 0, mask, starts, ends;
	if (sscanf(spec, " %63s %7[0-9:]-%7[0-9:] %n", days, from, to, &n) != 3 ||
	    spec[n] != '\0' || (mask = ctl_parse_days(days)) < 0 ||
	    ctl_parse_clock(from, 0, &starts) != 0 || ctl_parse_clock(to, 1, &ends) != 0) {
		ctl_err("--window: \"%s\" is not DAYS HH:MM-HH:MM (e.g. 'mon-fri 08:00-12:30')",
		        spec);
		return -1;
	}
	if (ends <= starts) {
		ctl_err("--window: \"%s\" ends before it starts (split a window that crosses "
		        "midnight in two)",
		        spec);
		return -1;
	}
	for (int d = 0; d < 7; d++) {
		if (!(mask & (1 << d)))
			continue;
		if (o->nwindows == SCHEDULE_MAX_WINDOWS) {
			ctl_err("--window: at most %d windows", SCHEDULE_MAX_WINDOWS);
			return -1;
		}
		o->windows[o->nwindows++] = (window_t){d, starts, ends};
	}
	return 0;
}

static int schedule_parse(ctl_t *ctl, int argc, char **argv, schedule_opts_t *o)
{
	static const struct option opts[] = {{"practice", required_argument, NULL, 'p'},
	                                     {"immediate", no_argument, NULL, 'i'},
	                                     {"window", required_argument, NULL, 'w'},
	                                     {"check-minutes", required_argument, NULL, 'c'},
	                                     {"at", required_argument, NULL, 'a'},
	                                     {NULL, 0, NULL, 0}};
	int ch;
	memset(o, 0, sizeof(*o));
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if ((ch == 'p' && ctl_parse_id("--practice", optarg, &o->practice) != 0) ||
		    (ch == 'c' &&
		     ctl_parse_int("--check-minutes", optarg, 1, 1440, &o->check_minutes) != 0) ||
		    (ch == 'w' && parse_window(o, optarg) != 0))
			return CTL_USAGE;
		if (ch == 'a' && (o->ntimes == SCHEDULE_MAX_TIMES ||
		                  ctl_parse_clock(optarg, 0, &o->times[o->ntimes++]) != 0))
			return ctl_usage(ctl, "--at: \"%s\" is not a time of day (HH:MM)", optarg);
		o->immediate |= ch == 'i';
		o->check_given |= ch == 'c';
		if (ch == '?' || ch == ':')
			return ctl_usage_line(ctl);
	}
	CTL_NO_ARGS(ctl, argc, argv);
	CTL_REQUIRE(ctl, o->practice ? "" : NULL, "--practice");
	if (o->immediate && (o->nwindows || o->ntimes || o->check_given))
		return ctl_usage(ctl, "--immediate cannot be combined with --window, --at or "
		                      "--check-minutes");
	if (!o->immediate && !o->nwindows && !o->ntimes && !o->check_given)
		return ctl_usage(ctl, "give --immediate, or the send windows (--window) and when "
		                      "to check (--check-minutes, --at)");
	return CTL_OK;
}

/* schedule_arrays - the windows and times as PostgreSQL array literals. */
static void schedule_arrays(const schedule_opts_t *o, pp_buf_t a[4])
{
	for (int i = 0; i < 4; i++) {
		pp_buf_init(&a[i]);
		pp_buf_puts(&a[i], "{");
	}
	for (int i = 0; i < o->nwindows; i++) {
		const window_t *w = &o->windows[i];
		const char *sep = i ? "," : "";
		pp_buf_printf(&a[0], "%s%d", sep, w->weekday);
		pp_buf_printf(&a[1], "%s%02d:%02d", sep, w->starts / 60, w->starts % 60);
		pp_buf_printf(&a[2], "%s%02d:%02d", sep, w->ends / 60, w->ends % 60);
	}
	for (int i = 0; i < o->ntimes; i++)
		pp_buf_printf(&a[3], "%s%02d:%02d", i ? "," : "", o->times[i] / 60,
		              o->times[i] % 60);
	for (int i = 0; i < 4; i++)
		pp_buf_puts(&a[i], "}");
}

/* schedule_store - one transaction: the practice's mode and check
 * interval, its windows and preset times replaced. 1 if no such practice. */
static int schedule_store(pp_db_t *db, const schedule_opts_t *o)
{
	char id[PP_LL_LEN], every[PP_LL_LEN];
	pp_buf_t a[4];
	int rc = -1;
	/* Preset times without an interval: checks at those times only. */
	int64_t check = o->check_given ? o->check_minutes : o->ntimes ? 0 : 5;
	schedule_arrays(o, a);
	pp_lltoa(id, o->practice);
	PGresult *res = NULL;
	if (pp_db_begin(db) != 0 ||
	    (res = pp_db_exec(db,
	                      "UPDATE practices SET send_immediately = $2::boolean, "
	                      "schedule_check_minutes = CASE WHEN $2::boolean THEN "
	                      "schedule_check_minutes ELSE nullif($3::int, 0) END WHERE id = $1 "
	                      "RETURNING id",
	                      PP_DB_ARGS(id, o->immediate ? "t" : "f", pp_lltoa(every, check)))) ==
	        NULL)
		goto done;
	if (PQntuples(res) == 0) {
		rc = 1;
		goto done;
	}
	if (pp_db_command(db, "DELETE FROM send_windows WHERE practice_id = $1", PP_DB_ARGS(id)) ||
	    pp_db_command(db, "DELETE FROM send_times WHERE practice_id = $1", PP_DB_ARGS(id)) ||
	    pp_db_command(db,
	                  "INSERT INTO send_windows (practice_id, weekday, starts, ends) SELECT "
	                  "$1, w.d, w.s, w.e FROM unnest($2::smallint[], $3::time[], $4::time[]) "
	                  "AS w(d, s, e)",
	                  PP_DB_ARGS(id, a[0].data, a[1].data, a[2].data)) ||
	    pp_db_command(db,
	                  "INSERT INTO send_times (practice_id, at) SELECT DISTINCT $1::bigint, t "
	                  "FROM unnest($2::time[]) AS t",
	                  PP_DB_ARGS(id, a[3].data)) ||
	    pp_db_commit(db) != 0)
		goto done;
	rc = 0;
done:
	if (rc != 0)
		pp_db_rollback(db);
	PQclear(res);
	for (int i = 0; i < 4; i++)
		pp_buf_free(&a[i]);
	return rc;
}

static int cmd_schedule_set(ctl_t *ctl, int argc, char **argv)
{
	schedule_opts_t o;
	int rc = schedule_parse(ctl, argc, argv, &o);
	if (rc != CTL_OK)
		return rc;
	if (ctl_db(ctl) == NULL)
		return CTL_FAIL;
	rc = schedule_store(ctl->db, &o);
	if (rc < 0)
		return ctl_db_fail(ctl, "store the schedule");
	if (rc > 0)
		return ctl_err("no practice with id %lld (see: practicepost practice list)",
		               (long long)o.practice);
	printf("practice %lld: %s\n", (long long)o.practice,
	       o.immediate ? "sends immediately" : "sends in its windows at its checks");
	ctl_wake(ctl, "sender");
	return CTL_OK;
}

static const char show_sql[] =
    "SELECT p.name, p.time_zone, p.send_immediately, p.schedule_check_minutes, "
    "to_char(now() AT TIME ZONE p.time_zone, 'Dy YYYY-MM-DD HH24:MI'), "
    "CASE WHEN p.send_immediately THEN 'immediate' WHEN c.cutoff = '-infinity' THEN 'closed' "
    "ELSE 'open' END, to_char(c.cutoff AT TIME ZONE p.time_zone, 'HH24:MI'), "
    "(SELECT string_agg(to_char(at, 'HH24:MI'), ' ' ORDER BY at) FROM send_times "
    "WHERE practice_id = p.id), (SELECT string_agg(weekday || ' ' || to_char(starts, "
    "'HH24:MI') || ' ' || to_char(ends, 'HH24:MI'), ',' ORDER BY weekday, starts) FROM "
    "send_windows WHERE practice_id = p.id), p.id FROM practices p CROSS JOIN LATERAL (SELECT "
    "pp_schedule_cutoff(p.id, now()) AS cutoff) c WHERE p.id = $1";
enum { S_NAME, S_ZONE, S_IMMEDIATE, S_EVERY, S_LOCAL, S_STATE, S_CUTOFF, S_TIMES, S_WINDOWS, S_ID };

/* show_windows - "1 08:00 12:00,1 13:00 17:30,..." as text or JSON. */
static void show_windows(const char *list, ctl_json_t *j)
{
	int last = -1;
	for (const char *p = list; p && *p;) {
		int day, n = 0;
		char from[8], to[8];
		if (sscanf(p, "%d %7s %7[^,]%n", &day, from, to, &n) != 3 || day < 0 || day > 6)
			break;
		if (j != NULL) {
			ctl_json_begin_object(j);
			ctl_json_key(j, "weekday");
			ctl_json_int(j, day);
			ctl_json_key(j, "day");
			ctl_json_str(j, (const char[]){ctl_day_names[day][0], ctl_day_names[day][1],
			                               ctl_day_names[day][2], '\0'});
			ctl_json_key(j, "starts");
			ctl_json_str(j, from);
			ctl_json_key(j, "ends");
			ctl_json_str(j, to);
			ctl_json_end_object(j);
		} else {
			printf(day != last ? "%s  %.3s %s-%s" : " %.0s%s-%s",
			       last >= 0 && day != last ? "\n" : "", ctl_day_names[day], from, to);
		}
		last = day;
		p += n + (p[n] == ',');
	}
	if (j == NULL && last >= 0)
		printf("\n");
}

static void show_json(const PGresult *r, int64_t id)
{
	ctl_json_t j;
	ctl_json_init(&j);
	ctl_json_begin_object(&j);
	ctl_json_key(&j, "practice_id");
	ctl_json_int(&j, id);
	ctl_json_key(&j, "time_zone");
	ctl_json_str(&j, pp_db_value(r, 0, S_ZONE));
	ctl_json_key(&j, "send_immediately");
	ctl_json_bool(&j, strcmp(pp_db_value(r, 0, S_IMMEDIATE), "t") == 0);
	ctl_json_key(&j, "check_minutes");
	ctl_json_cell(&j, pp_db_value(r, 0, S_EVERY), CTL_COL_INT);
	ctl_json_key(&j, "windows");
	ctl_json_begin_array(&j);
	show_windows(pp_db_value(r, 0, S_WINDOWS), &j);
	ctl_json_end_array(&j);
	ctl_json_key(&j, "times");
	ctl_json_begin_array(&j);
	const char *t = pp_db_value(r, 0, S_TIMES);
	for (; t && *t; t += strcspn(t, " ") + (t[strcspn(t, " ")] == ' ')) {
		char one[8];
		snprintf(one, sizeof(one), "%.*s", (int)strcspn(t, " "), t);
		ctl_json_str(&j, one);
	}
	ctl_json_end_array(&j);
	ctl_json_key(&j, "local_time");
	ctl_json_str(&j, pp_db_value(r, 0, S_LOCAL));
	ctl_json_key(&j, "state");
	ctl_json_str(&j, pp_db_value(r, 0, S_STATE));
	ctl_json_key(&j, "last_check");
	ctl_json_str(&j, pp_db_value(r, 0, S_CUTOFF));
	ctl_json_end_object(&j);
	ctl_json_print(&j, stdout);
}

static void show_text(const PGresult *r, int64_t id)
{
	const char *every = pp_db_value(r, 0, S_EVERY), *times = pp_db_value(r, 0, S_TIMES);
	const char *state = pp_db_value(r, 0, S_STATE);
	printf("practice %lld: %s (%s)\n", (long long)id, pp_db_value(r, 0, S_NAME),
	       pp_db_value(r, 0, S_ZONE));
	if (strcmp(state, "immediate") == 0) {
		printf("schedule: send immediately\n");
		return;
	}
	printf("schedule: send windows, checked%s%s%s%s%s\n", every ? " every " : "",
	       every ? every : "", every ? " minutes" : "",
	       times ? (every ? " and at " : " at ") : "", times ? times : "");
	if (pp_db_value(r, 0, S_WINDOWS) == NULL)
		printf("  (no windows: the whole day is open)\n");
	show_windows(pp_db_value(r, 0, S_WINDOWS), NULL);
	printf("local time: %s\n", pp_db_value(r, 0, S_LOCAL));
	if (strcmp(state, "open") == 0)
		printf("now: open; messages due by %s (the last check) may be sent\n",
		       pp_db_value(r, 0, S_CUTOFF));
	else
		printf("now: closed; queued messages wait for the next window\n");
}

static int cmd_schedule_show(ctl_t *ctl, int argc, char **argv)
{
	int rc;
	PGresult *r = ctl_practice_query(ctl, argc, argv, show_sql, "read the schedule", 1, &rc);
	if (r == NULL)
		return rc;
	if (ctl->json)
		show_json(r, pp_db_value_ll(r, 0, S_ID, 0));
	else
		show_text(r, pp_db_value_ll(r, 0, S_ID, 0));
	PQclear(r);
	return CTL_OK;
}

/* practice_hours - the longest day of the practice's windows, in hours
 * (24 when it sends immediately or has no windows); -1 after printing. */
static double practice_hours(ctl_t *ctl, int64_t practice)
{
	char id[PP_LL_LEN];
	PGresult *r = pp_db_exec(
	    ctl->db,
	    "SELECT CASE WHEN p.send_immediately OR NOT EXISTS (SELECT 1 FROM send_windows w "
	    "WHERE w.practice_id = p.id) THEN 24 ELSE (SELECT max(h) FROM (SELECT "
	    "sum(extract(epoch FROM w.ends - w.starts)) / 3600 AS h FROM send_windows w WHERE "
	    "w.practice_id = p.id GROUP BY w.weekday) d) END FROM practices p WHERE p.id = $1",
	    PP_DB_ARGS(pp_lltoa(id, practice)));
	if (r == NULL)
		return ctl_db_fail(ctl, "read the send windows"), -1;
	double hours = PQntuples(r) ? strtod(PQgetvalue(r, 0, 0), NULL) : -1;
	PQclear(r);
	if (hours < 0)
		ctl_err("no practice with id %lld (see: practicepost practice list)",
		        (long long)practice);
	return hours;
}

/* rate_apply - store the figure (and the daily limit as the cap). */
static int rate_apply(ctl_t *ctl, int64_t account, int64_t per_minute, int64_t daily)
{
	char id[PP_LL_LEN], rate[PP_LL_LEN], cap[PP_LL_LEN];
	PGresult *r = pp_db_exec(
	    ctl->db,
	    "UPDATE email_accounts SET per_minute = $2, daily_cap = $3 "
	    "WHERE id = $1 RETURNING id",
	    PP_DB_ARGS(pp_lltoa(id, account), pp_lltoa(rate, per_minute), pp_lltoa(cap, daily)));
	if (r == NULL)
		return ctl_db_fail(ctl, "store the rate");
	int found = PQntuples(r) == 1;
	PQclear(r);
	if (!found)
		return ctl_err("no email account with id %lld (see: practicepost account list)",
		               (long long)account);
	printf("email account %lld: per_minute = %lld, daily_cap = %lld\n", (long long)account,
	       (long long)per_minute, (long long)daily);
	ctl_wake(ctl, "sender");
	return CTL_OK;
}

static int cmd_rate_suggest(ctl_t *ctl, int argc, char **argv)
{
	static const struct option opts[] = {{"daily-limit", required_argument, NULL, 'd'},
	                                     {"hours", required_argument, NULL, 'h'},
	                                     {"practice", required_argument, NULL, 'p'},
	                                     {"apply", required_argument, NULL, 'a'},
	                                     {NULL, 0, NULL, 0}};
	int64_t daily = 0, practice = 0, account = 0;
	double hours = 0;
	char *end;
	int ch;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if ((ch == 'd' && ctl_parse_int("--daily-limit", optarg, 1, 1000000000, &daily)) ||
		    (ch == 'p' && ctl_parse_id("--practice", optarg, &practice)) ||
		    (ch == 'a' && ctl_parse_id("--apply", optarg, &account)))
			return CTL_USAGE;
		if (ch == 'h' && ((hours = strtod(optarg, &end)) <= 0 || hours > 24 || *end ||
		                  end == optarg || !isfinite(hours)))
			return ctl_usage(ctl, "--hours: \"%s\" is not a number of hours (0 to 24)",
			                 optarg);
		if (ch == '?' || ch == ':')
			return ctl_usage_line(ctl);
	}
	CTL_NO_ARGS(ctl, argc, argv);
	CTL_REQUIRE(ctl, daily ? "" : NULL, "--daily-limit");
	if ((hours > 0) == (practice > 0))
		return ctl_usage(ctl, "give the sending hours: --hours H or --practice ID");
	if ((practice || account) && ctl_db(ctl) == NULL)
		return CTL_FAIL;
	if (practice && (hours = practice_hours(ctl, practice)) <= 0)
		return CTL_FAIL;
	/* Spread evenly over the hours, rounded down so the day stays under
	 * the limit; never below one a minute. */
	int64_t per_minute = (int64_t)floor((double)daily / (hours * 60.0) + 1e-9);
	if (per_minute < 1)
		per_minute = 1;
	if (ctl->json)
		printf("{\"per_minute\": %lld, \"daily_limit\": %lld, \"hours\": %g}\n",
		       (long long)per_minute, (long long)daily, hours);
	else
		printf("%lld per minute\n", (long long)per_minute);
	return account ? rate_apply(ctl, account, per_minute, daily) : CTL_OK;
}

const ctl_command_t ctl_schedule_commands[] = {
    {"schedule", "set", cmd_schedule_set,
     "--practice ID (--immediate | --window 'DAYS HH:MM-HH:MM' ... [--check-minutes N] "
     "[--at HH:MM ...])",
     "set a practice's send schedule (in its time zone): send immediately, or only inside "
     "the windows (DAYS: mon-fri, sat,sun, daily, ...), picking up mail every N minutes "
     "and/or at the preset times; replaces the old schedule"},
    {"schedule", "show", cmd_schedule_show, "--practice ID",
     "show a practice's send schedule and whether mail may go now"},
    {"rate", "suggest", cmd_rate_suggest,
     "--daily-limit N (--hours H | --practice ID) [--apply ACCOUNT_ID]",
     "turn a provider's daily limit and the sending hours into emails per minute (rounded "
     "down, at least 1); --apply stores it and the daily limit as the account's cap"},
    {NULL, NULL, NULL, NULL, NULL},
};
