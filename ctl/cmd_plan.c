/*
 * cmd_plan.c - `practicepost plan --practice ID [--date YYYY-MM-DD]`: the
 * dry run of a day's reminders. Who gets what and when, by which channel,
 * with the SMS segment count, or why nobody is sent anything. Every rule
 * is the one the composer and the outbox claim apply, read from the same
 * SQL functions (common/sql/013_plan.sql): pp_reminders_due,
 * pp_reminder_group and pp_family_reminder (what is due and how families
 * are grouped), pp_auto_channel (channel and template), the bounce flag
 * and pp_sms_opted_out (what the composer and sms stage refuse) and
 * pp_outbox_hold_at, the send schedule and staggered SMS slots (when each
 * message would actually go and why not sooner: cmd_plan_when.c). Nothing
 * is written.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "ctl_plan.h"
#include "pp_merge.h"
#include "pp_sms_text.h"

static const char day_sql[] =
    "SELECT p.time_zone, d.day::text, (d.day::timestamp AT TIME ZONE p.time_zone)::text, "
    "((d.day + 1)::timestamp AT TIME ZONE p.time_zone)::text, (d.day + 1)::timestamp AT TIME "
    "ZONE p.time_zone > now(), p.sms_mode = 'staggered' FROM practices p CROSS JOIN LATERAL "
    "(SELECT coalesce($2::date, "
    "(now() AT TIME ZONE p.time_zone)::date) AS day) d WHERE p.id = $1";

enum {
	D_RULE,
	D_APPT,
	D_PATIENT,
	D_FAMILY,
	D_STARTS,
	D_DUE,
	D_WINDOW,
	D_TPL,
	D_SMS,
	D_FTPL,
	D_FSMS
};

static const char due_sql[] =
    "SELECT rule_id, appointment_id, patient_id, family_id, starts_at::text, due_at::text, "
    "family_window_minutes, template_code, sms_template_code, family_template_code, "
    "family_sms_template_code FROM pp_reminders_due($1, $3::timestamptz) WHERE due_at >= "
    "$2::timestamptz ORDER BY starts_at, appointment_id";

/* The message for one recipient: channel and template, or why not; the
 * address it goes to and whether the composer or the sms stage refuses it;
 * the merge values of an SMS. $5 the appointment merged, $6 the family
 * list. */
enum {
	M_CHANNEL,
	M_CODE,
	M_SKIP,
	M_REFUSAL,
	M_NAME,
	M_BOUNCED,
	M_STOP,
	M_HAS_ADDR,
	M_BODY,
	M_VALUES
};

static const char message_sql[] =
    "SELECT ch.channel, ch.template_code, ch.skip, ch.refusal, concat_ws(' ', "
    "nullif(pe.first_name, ''), nullif(pe.last_name, '')), CASE WHEN pe.email_bounced_at IS "
    "NOT NULL AND lower(pe.email_bounce_address) = lower(pe.email) THEN "
    "format('address %s bounced on %s (%s)', pe.email, to_char(pe.email_bounced_at AT TIME "
    "ZONE pr.time_zone, 'YYYY-MM-DD'), coalesce(nullif(pe.email_bounce_status, ''), 'no "
    "status')) END, ch.channel = 'sms' AND pp_sms_opted_out($1, pe.mobile, 0), "
    "CASE ch.channel WHEN 'sms' THEN coalesce(pe.mobile, '') <> '' ELSE coalesce(pe.email, "
    "'') <> '' END, t.body, json_build_object('patient.first_name', pe.first_name, "
    "'patient.last_name', pe.last_name, 'patient.title', pe.title, 'patient.email', pe.email, "
    "'patient.mobile', pe.mobile, 'practice.name', pr.name, 'practice.site', pr.site, "
    "'practice.phone', pr.phone, 'practice.address', pr.address, 'appointment.date', "
    "to_char(a.starts_at AT TIME ZONE pr.time_zone, 'FMDD FMMonth YYYY'), "
    "'appointment.time', to_char(a.starts_at AT TIME ZONE pr.time_zone, 'HH24:MI'), "
    "'appointment.weekday', to_char(a.starts_at AT TIME ZONE pr.time_zone, 'FMDay'), "
    "'appointment.duration', a.duration_minutes::text, 'appointment.description', "
    "a.description, 'appointment.booking_link', a.booking_link, 'family.appointments', $6::text, "
    "'location.name', l.name, 'location.address', l.address, 'location.phone', l.phone)::text "
    "FROM pp_auto_channel($1, $2, $3, $4) ch JOIN people pe ON pe.id = $2 JOIN practices pr ON "
    "pr.id = $1 LEFT JOIN templates t ON t.practice_id = $1 AND t.code = ch.template_code "
    "AND ch.channel = 'sms' LEFT JOIN appointments a ON a.id = $5::bigint LEFT JOIN "
    "locations l ON l.id = coalesce(a.location_id, pe.preferred_location_id)";

/* One row as it is found (borrowed strings); plan_add copies it. */
typedef struct {
	const char *person, *name, *appointment, *starts, *kind, *channel, *template_code;
	const char *when, *status, *reason;
	int segments; /* -1: not an SMS */
} plan_row_t;

static char *plan_dup(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

/* plan_add - a line of the plan, copied from r; it stays valid until the
 * next plan_add. */
static plan_line_t *plan_add(plan_t *p, const plan_row_t *r)
{
	if (p->nlines == p->caplines) {
		p->caplines = p->caplines ? p->caplines * 2 : 16;
		p->lines = xrealloc(p->lines, p->caplines * sizeof(*p->lines));
	}
	plan_line_t *l = &p->lines[p->nlines++];
	memset(l, 0, sizeof(*l));
	l->person = plan_dup(r->person);
	l->name = plan_dup(r->name);
	l->appointment = plan_dup(r->appointment);
	l->starts = plan_dup(r->starts);
	l->kind = plan_dup(r->kind);
	l->channel = plan_dup(r->channel);
	l->template_code = plan_dup(r->template_code);
	l->when = plan_dup(r->when);
	l->status = r->status;
	l->segments = r->segments;
	pp_buf_init(&l->reason);
	if (r->reason != NULL)
		pp_buf_puts(&l->reason, r->reason);
	return l;
}

static void plan_lines_free(plan_t *p)
{
	for (size_t i = 0; i < p->nlines; i++) {
		plan_line_t *l = &p->lines[i];
		free(l->person);
		free(l->name);
		free(l->appointment);
		free(l->starts);
		free(l->kind);
		free(l->channel);
		free(l->template_code);
		free(l->when);
		free(l->ready);
		pp_buf_free(&l->reason);
	}
	free(p->lines);
}

/* plan_local - an instant as "YYYY-MM-DD HH:MM" in the practice's zone. */
static char *plan_local(plan_t *p, const char *instant)
{
	PGresult *res = pp_db_exec(p->ctl->db,
	                           "SELECT to_char($1::timestamptz AT TIME ZONE $2, "
	                           "'YYYY-MM-DD HH24:MI')",
	                           PP_DB_ARGS(instant, p->zone));
	char *out = xstrdup(res ? pp_db_value(res, 0, 0) : instant);
	PQclear(res);
	return out;
}

/* plan_emit - one line of the output, its time in the practice's zone. */
static void plan_emit(plan_t *p, ctl_json_t *j, pp_buf_t *table, const plan_line_t *line)
{
	char *local = line->when != NULL ? plan_local(p, line->when) : NULL;
	const char *reason = line->reason.len ? line->reason.data : NULL;
	plan_row_t row = {line->person, line->name,    line->appointment,   line->starts,
	                  line->kind,   line->channel, line->template_code, local,
	                  line->status, reason,        line->segments};
	const plan_row_t *r = &row;
	if (p->ctl->json) {
		ctl_json_begin_object(j);
		ctl_json_key(j, "person_id");
		ctl_json_int(j, strtoll(r->person, NULL, 10));
		ctl_json_key(j, "name");
		ctl_json_str(j, r->name);
		ctl_json_key(j, "appointment_id");
		ctl_json_int(j, strtoll(r->appointment, NULL, 10));
		ctl_json_key(j, "starts");
		ctl_json_str(j, r->starts);
		ctl_json_key(j, "kind");
		ctl_json_str(j, r->kind);
		ctl_json_key(j, "channel");
		ctl_json_str(j, r->channel);
		ctl_json_key(j, "template");
		ctl_json_str(j, r->template_code);
		ctl_json_key(j, "when");
		ctl_json_str(j, r->when);
		ctl_json_key(j, "segments");
		if (r->segments >= 0)
			ctl_json_int(j, r->segments);
		else
			ctl_json_null(j);
		ctl_json_key(j, "status");
		ctl_json_str(j, r->status);
		ctl_json_key(j, "reason");
		ctl_json_str(j, r->reason);
		ctl_json_end_object(j);
	} else {
		char seg[16] = "-";
		if (r->segments >= 0)
			snprintf(seg, sizeof(seg), "%d", r->segments);
		pp_buf_printf(table, "%-7s %-20.20s %-6s %-16s %-8s %-5s %-16s %-3s %-7s %s\n",
		              r->person, r->name ? r->name : "-", r->appointment, r->starts,
		              r->kind, r->channel ? r->channel : "-", r->when ? r->when : "-", seg,
		              r->status, r->reason ? r->reason : "");
	}
	free(local);
}

static const char *plan_value(void *ctx, pp_merge_field_t field)
{
	const pp_merge_field_info_t *info = pp_merge_field_info(field);
	PGresult *res = ctx;
	for (int r = 0; info != NULL && r < PQntuples(res); r++)
		if (strcmp(pp_db_value(res, r, 0), info->full_name) == 0)
			return pp_db_value(res, r, 1);
	return NULL;
}

/* plan_segments - the SMS text's segments, merged as the composer merges
 * it; -1 when a value is missing (the composer would refuse it). */
static int plan_segments(plan_t *p, const char *body, const char *values)
{
	char err[256];
	pp_buf_t out;
	int n = -1;
	pp_merge_template_t *t = pp_merge_parse(body, err, sizeof(err));
	PGresult *res = pp_db_exec(p->ctl->db, "SELECT key, value FROM json_each_text($1::json)",
	                           PP_DB_ARGS(values));
	pp_buf_init(&out);
	if (t != NULL && res != NULL &&
	    pp_merge_render(t, PP_MERGE_TEXT, plan_value, res, &out, err, sizeof(err)) == 0) {
		pp_buf_append(&out, "", 1);
		n = pp_sms_text_segments(out.data, NULL, NULL);
	}
	pp_buf_free(&out);
	PQclear(res);
	pp_merge_template_free(&t);
	return n;
}

static void plan_push(int64_t **arr, size_t *n, size_t *cap, int64_t v)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		*arr = xrealloc(*arr, *cap * sizeof(**arr));
	}
	(*arr)[(*n)++] = v;
}

/* plan_done - appointment appt is covered by rule in this plan already. */
static int plan_done(const plan_t *p, int64_t rule, int64_t appt)
{
	for (size_t i = 0; i + 1 < p->ndone; i += 2)
		if (p->done[i] == rule && p->done[i + 1] == appt)
			return 1;
	return 0;
}

/* plan_rank - the message's place among this plan's messages to person. */
static long long plan_rank(plan_t *p, int64_t person)
{
	long long rank = 1;
	for (size_t i = 0; i < p->nsent; i++)
		rank += p->sent_to[i] == person;
	plan_push(&p->sent_to, &p->nsent, &p->capsent, person);
	return rank;
}

typedef struct {
	int64_t rule, person, appointment;
	const char *email_template, *sms_template, *family_text, *due_at;
} plan_msg_t;

/* plan_appointment - patient id, name and local start of an appointment. */
static PGresult *plan_appointment(plan_t *p, int64_t appt)
{
	char id[PP_LL_LEN];
	return pp_db_exec(p->ctl->db,
	                  "SELECT a.patient_id, concat_ws(' ', nullif(pe.first_name, ''), "
	                  "nullif(pe.last_name, '')), to_char(a.starts_at AT TIME ZONE $2, "
	                  "'YYYY-MM-DD HH24:MI') FROM appointments a JOIN people pe ON pe.id = "
	                  "a.patient_id WHERE a.id = $1",
	                  PP_DB_ARGS(pp_lltoa(id, appt), p->zone));
}

/* plan_message - the row of one message, as the composer would make it. */
static int plan_message(plan_t *p, const plan_msg_t *m)
{
	char prac[PP_LL_LEN], who[PP_LL_LEN], appt[PP_LL_LEN];
	pp_buf_t reasons;
	plan_row_t row = {.kind = "reminder", .segments = -1};
	PGresult *a = plan_appointment(p, m->appointment);
	PGresult *res = pp_db_exec(p->ctl->db, message_sql,
	                           PP_DB_ARGS(pp_lltoa(prac, p->practice), pp_lltoa(who, m->person),
	                                      m->email_template, m->sms_template,
	                                      pp_lltoa(appt, m->appointment), m->family_text));
	int rc = -1;
	pp_buf_init(&reasons);
	if (a == NULL || res == NULL || PQntuples(res) != 1 || PQntuples(a) != 1)
		goto done;
	row.person = who;
	row.name = pp_db_value(res, 0, M_NAME);
	row.appointment = appt;
	row.starts = pp_db_value(a, 0, 2);
	row.channel = pp_db_value(res, 0, M_CHANNEL);
	row.template_code = pp_db_value(res, 0, M_CODE);
	row.status = "skipped";
	if (pp_db_value(res, 0, M_SKIP) != NULL || pp_db_value(res, 0, M_REFUSAL) != NULL)
		pp_buf_puts(&reasons, pp_db_value(res, 0, M_SKIP) ? pp_db_value(res, 0, M_SKIP)
		                                                  : pp_db_value(res, 0, M_REFUSAL));
	else if (strcmp(pp_db_value(res, 0, M_HAS_ADDR), "t") != 0)
		pp_buf_printf(&reasons, "no %s",
		              strcmp(row.channel, "sms") == 0 ? "mobile number" : "email address");
	else if (strcmp(row.channel, "email") == 0 && pp_db_value(res, 0, M_BOUNCED) != NULL)
		pp_buf_puts(&reasons, pp_db_value(res, 0, M_BOUNCED));
	else if (strcmp(pp_db_value(res, 0, M_STOP), "t") == 0)
		pp_buf_puts(&reasons, "the number texted STOP (opted out of SMS)");
	else
		row.status = "send";
	row.reason = reasons.len ? reasons.data : NULL;
	if (strcmp(row.status, "send") == 0) {
		row.when = m->due_at;
		if (pp_db_value(res, 0, M_BODY) != NULL)
			row.segments = plan_segments(p, pp_db_value(res, 0, M_BODY),
			                             pp_db_value(res, 0, M_VALUES));
	}
	plan_line_t *line = plan_add(p, &row);
	if (strcmp(row.status, "send") == 0) {
		line->person_id = m->person;
		line->rank = plan_rank(p, m->person);
		if (plan_when(p, line) != 0)
			goto done;
	}
	rc = 0;
done:
	if (rc != 0)
		ctl_db_fail(p->ctl, "plan the reminders");
	pp_buf_free(&reasons);
	PQclear(res);
	PQclear(a);
	return rc;
}

/* plan_grouped - the row of a family member whose appointment is in the
 * family message to another person. */
static int plan_grouped(plan_t *p, int64_t appt, int64_t to, int64_t to_appt)
{
	char id[PP_LL_LEN], reason[128];
	PGresult *a = plan_appointment(p, appt);
	if (a == NULL || PQntuples(a) != 1) {
		PQclear(a);
		return ctl_db_fail(p->ctl, "plan the reminders"), -1;
	}
	snprintf(reason, sizeof(reason),
	         "family grouped: in the message to person %lld "
	         "(appointment %lld)",
	         (long long)to, (long long)to_appt);
	plan_row_t row = {.person = pp_db_value(a, 0, 0),
	                  .name = pp_db_value(a, 0, 1),
	                  .appointment = pp_lltoa(id, appt),
	                  .starts = pp_db_value(a, 0, 2),
	                  .kind = "reminder",
	                  .status = "grouped",
	                  .reason = reason,
	                  .segments = -1};
	plan_add(p, &row);
	PQclear(a);
	return 0;
}

/* plan_family - the appointments of the family reminder led by due row r
 * that this plan has not covered yet (owned, count in *n); NULL on a
 * database error. */
static int64_t *plan_family(plan_t *p, const PGresult *due, int r, size_t *n)
{
	char prac[PP_LL_LEN];
	int64_t rule = pp_db_value_ll(due, r, D_RULE, 0), *ids = NULL;
	size_t cap = 0;
	*n = 0;
	PGresult *res =
	    pp_db_exec(p->ctl->db,
	               "SELECT appointment_id FROM pp_reminder_group($1, $2, $3, "
	               "$4::timestamptz, $5::int)",
	               PP_DB_ARGS(pp_db_value(due, r, D_RULE), pp_db_value(due, r, D_FAMILY),
	                          pp_lltoa(prac, p->practice), pp_db_value(due, r, D_STARTS),
	                          pp_db_value(due, r, D_WINDOW)));
	if (res == NULL)
		return NULL;
	for (int i = 0; i < PQntuples(res); i++)
		if (!plan_done(p, rule, pp_db_value_ll(res, i, 0, 0)))
			plan_push(&ids, n, &cap, pp_db_value_ll(res, i, 0, 0));
	PQclear(res);
	if (*n == 0)
		plan_push(&ids, n, &cap, pp_db_value_ll(due, r, D_APPT, 0));
	return ids;
}

/* plan_due_one - the message of one due reminder (and the rows of the
 * family members it covers). */
static int plan_due_one(plan_t *p, const PGresult *due, int r)
{
	int64_t rule = pp_db_value_ll(due, r, D_RULE, 0), appt = pp_db_value_ll(due, r, D_APPT, 0);
	plan_msg_t m = {rule,
	                pp_db_value_ll(due, r, D_PATIENT, 0),
	                appt,
	                pp_db_value(due, r, D_TPL),
	                pp_db_value(due, r, D_SMS),
	                NULL,
	                pp_db_value(due, r, D_DUE)};
	size_t n = 1;
	int64_t *ids = NULL;
	PGresult *fam = NULL;
	int rc = -1;
	if (plan_done(p, rule, appt))
		return 0;
	if (pp_db_value(due, r, D_FAMILY) != NULL && pp_db_value(due, r, D_FTPL) != NULL &&
	    (ids = plan_family(p, due, r, &n)) == NULL)
		return ctl_db_fail(p->ctl, "group the family reminders"), -1;
	if (n > 1) {
		pp_buf_t list;
		pp_buf_init(&list);
		pp_buf_puts(&list, "{");
		for (size_t i = 0; i < n; i++)
			pp_buf_printf(&list, "%s%lld", i ? "," : "", (long long)ids[i]);
		pp_buf_puts(&list, "}");
		fam = pp_db_exec(p->ctl->db,
		                 "SELECT person_id, appointment_id, appointments_text FROM "
		                 "pp_family_reminder($1::bigint[])",
		                 PP_DB_ARGS(list.data));
		pp_buf_free(&list);
		if (fam == NULL || PQntuples(fam) != 1) {
			ctl_db_fail(p->ctl, "group the family reminders");
			goto done;
		}
		m.person = pp_db_value_ll(fam, 0, 0, 0);
		m.appointment = pp_db_value_ll(fam, 0, 1, 0);
		m.family_text = pp_db_value(fam, 0, 2);
		m.email_template = pp_db_value(due, r, D_FTPL);
		m.sms_template = pp_db_value(due, r, D_FSMS);
	}
	for (size_t i = 0; i < n; i++) {
		plan_push(&p->done, &p->ndone, &p->capdone, rule);
		plan_push(&p->done, &p->ndone, &p->capdone, ids ? ids[i] : appt);
	}
	if (plan_message(p, &m) != 0)
		goto done;
	for (size_t i = 0; n > 1 && i < n; i++)
		if (ids[i] != m.appointment &&
		    plan_grouped(p, ids[i], m.person, m.appointment) != 0)
			goto done;
	rc = 0;
done:
	free(ids);
	PQclear(fam);
	return rc;
}

/* plan_print - every line, as a table or one JSON array. */
static void plan_print(plan_t *p, const char *day)
{
	ctl_json_t json;
	pp_buf_t table;
	ctl_json_init(&json);
	ctl_json_begin_array(&json);
	pp_buf_init(&table);
	for (size_t i = 0; i < p->nlines; i++)
		plan_emit(p, &json, &table, &p->lines[i]);
	if (p->ctl->json) {
		ctl_json_end_array(&json);
		ctl_json_print(&json, stdout);
	} else {
		printf("practice %lld, %s (%s): reminders; WHEN is the earliest they go\n",
		       (long long)p->practice, day, p->zone);
		printf("%-7s %-20s %-6s %-16s %-8s %-5s %-16s %-3s %-7s %s\n", "PERSON", "NAME",
		       "APPT", "STARTS", "KIND", "CHAN", "WHEN", "SEG", "STATUS", "REASON");
		fputs(table.data ? table.data : "", stdout);
		pp_buf_free(&json.out);
	}
	pp_buf_free(&table);
}

static int plan_parse(ctl_t *ctl, int argc, char **argv, int64_t *practice, const char **date)
{
	static const struct option opts[] = {{"practice", required_argument, NULL, 'p'},
	                                     {"date", required_argument, NULL, 'd'},
	                                     {NULL, 0, NULL, 0}};
	int ch, y, mo, d, end = 0;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == 'p' && ctl_parse_id("--practice", optarg, practice) != 0)
			return CTL_USAGE;
		if (ch == 'd' && (sscanf(optarg, "%4d-%2d-%2d%n", &y, &mo, &d, &end) != 3 ||
		                  optarg[end] != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31))
			return ctl_usage(ctl, "--date: \"%s\" is not a date (YYYY-MM-DD)", optarg);
		if (ch == 'd')
			*date = optarg;
		if (ch == '?' || ch == ':')
			return ctl_usage_line(ctl);
	}
	CTL_NO_ARGS(ctl, argc, argv);
	CTL_REQUIRE(ctl, *practice ? "" : NULL, "--practice");
	return CTL_OK;
}

static int cmd_plan(ctl_t *ctl, int argc, char **argv)
{
	plan_t p;
	const char *date = NULL;
	char prac[PP_LL_LEN];
	PGresult *day = NULL, *due = NULL;
	memset(&p, 0, sizeof(p));
	int rc = plan_parse(ctl, argc, argv, &p.practice, &date);
	if (rc != CTL_OK)
		return rc;
	rc = CTL_FAIL;
	p.ctl = ctl;
	if (ctl_db(ctl) == NULL || ctl_practice_exists(ctl, p.practice) != 1)
		return CTL_FAIL;
	day = pp_db_exec(ctl->db, day_sql, PP_DB_ARGS(pp_lltoa(prac, p.practice), date));
	if (day == NULL || PQntuples(day) != 1) {
		ctl_db_fail(ctl, "read the date");
		goto done;
	}
	if (strcmp(pp_db_value(day, 0, 4), "t") != 0) {
		ctl_err("%s is over in practice %lld's time zone: a plan looks ahead",
		        pp_db_value(day, 0, 1), (long long)p.practice);
		goto done;
	}
	p.zone = pp_db_value(day, 0, 0);
	due = pp_db_exec(ctl->db, due_sql,
	                 PP_DB_ARGS(prac, pp_db_value(day, 0, 2), pp_db_value(day, 0, 3)));
	if (due == NULL) {
		ctl_db_fail(ctl, "read the reminders due");
		goto done;
	}
	p.staggered = strcmp(pp_db_value(day, 0, 5), "t") == 0;
	for (int r = 0; r < PQntuples(due); r++)
		if (plan_due_one(&p, due, r) != 0)
			goto done;
	if (plan_sms_slots(&p) != 0) {
		ctl_db_fail(ctl, "plan the SMS delivery slots");
		goto done;
	}
	plan_print(&p, pp_db_value(day, 0, 1));
	if (!ctl->json && PQntuples(due) == 0)
		printf("(no reminders are due that day)\n");
	rc = CTL_OK;
done:
	plan_lines_free(&p);
	free(p.done);
	free(p.sent_to);
	PQclear(due);
	PQclear(day);
	return rc;
}

const ctl_command_t ctl_plan_commands[] = {
    {NULL, "plan", cmd_plan, "--practice ID [--date YYYY-MM-DD]",
     "dry run of a day's reminders (default today, practice zone): who gets what, by which "
     "channel, SMS segments, or why not (opted out, no address, bounced, family grouped); "
     "when each would actually go (holidays, quiet hours, caps, the send schedule, staggered "
     "SMS delivery slots) and why not sooner; nothing is changed"},
    {NULL, NULL, NULL, NULL, NULL},
};
