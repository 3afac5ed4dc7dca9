/*
 * cmd_auto.c - `practicepost auto add|set|list|remove`: a practice's
 * automatic messages (auto_messages): welcome, confirmation, cancellation
 * and reminders, each with its email template, optional SMS template (for
 * patients who prefer SMS), on/off, the confirmation delay and the
 * reminder's lead time and family grouping. The composer does the work.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

static const char *const kinds[] = {"welcome", "confirmation", "cancellation", "reminder", NULL};

typedef struct {
	int64_t practice, id, delay, window, before;
	const char *kind, *tpl, *sms, *family, *family_sms;
	int enabled; /* -1 unchanged, 0 off, 1 on */
} auto_opts_t;

enum {
	O_PRACTICE = 256,
	O_KIND,
	O_TEMPLATE,
	O_SMS,
	O_BEFORE,
	O_DELAY,
	O_FAMILY,
	O_FAMILY_SMS,
	O_WINDOW,
	O_ENABLE,
	O_DISABLE
};

static const struct option auto_options[] = {
    {"practice", required_argument, NULL, O_PRACTICE},
    {"kind", required_argument, NULL, O_KIND},
    {"template", required_argument, NULL, O_TEMPLATE},
    {"sms-template", required_argument, NULL, O_SMS},
    {"before", required_argument, NULL, O_BEFORE},
    {"delay", required_argument, NULL, O_DELAY},
    {"family-template", required_argument, NULL, O_FAMILY},
    {"family-sms-template", required_argument, NULL, O_FAMILY_SMS},
    {"family-window", required_argument, NULL, O_WINDOW},
    {"enable", no_argument, NULL, O_ENABLE},
    {"disable", no_argument, NULL, O_DISABLE},
    {NULL, 0, NULL, 0},
};

/* auto_parse_before - "90" or "90m", "24h", "2d" as minutes (1 minute to
 * a year). */
static int auto_parse_before(const char *text, int64_t *out)
{
	char number[32];
	size_t len = strlen(text);
	int64_t unit = 1;
	if (len > 1 && len < sizeof(number) && strchr("mhd", text[len - 1]) != NULL) {
		unit = text[len - 1] == 'd' ? 1440 : text[len - 1] == 'h' ? 60 : 1;
		memcpy(number, text, len - 1);
		number[len - 1] = '\0';
		text = number;
	}
	if (pp_parse_int64(text, out) != 0 || *out < 1 || *out > 527040 / unit) {
		ctl_err("--before: \"%s\" is not a lead time such as 90m, 24h or 2d (at most a "
		        "year)",
		        text);
		return -1;
	}
	*out *= unit;
	return 0;
}

static int auto_option(auto_opts_t *o, int ch, const char *arg)
{
	switch (ch) {
	case O_PRACTICE:
		return ctl_parse_id("--practice", arg, &o->practice);
	case O_KIND:
		if (ctl_parse_choice("--kind", arg, kinds) < 0)
			return -1;
		o->kind = arg;
		return 0;
	case O_TEMPLATE:
		o->tpl = arg;
		return 0;
	case O_SMS:
		o->sms = arg;
		return 0;
	case O_FAMILY:
		o->family = arg;
		return 0;
	case O_FAMILY_SMS:
		o->family_sms = arg;
		return 0;
	case O_BEFORE:
		return auto_parse_before(arg, &o->before);
	case O_DELAY:
		return ctl_parse_int("--delay", arg, 0, 99, &o->delay);
	case O_WINDOW:
		return ctl_parse_int("--family-window", arg, 0, 1440, &o->window);
	case O_ENABLE:
	case O_DISABLE:
		o->enabled = ch == O_ENABLE;
		return 0;
	}
	return -1;
}

static int auto_parse(ctl_t *ctl, int argc, char **argv, auto_opts_t *o)
{
	int ch;
	memset(o, 0, sizeof(*o));
	o->enabled = -1;
	o->delay = o->window = o->before = -1;
	while ((ch = getopt_long(argc, argv, "", auto_options, NULL)) != -1) {
		if (ch == '?' || ch == ':')
			return ctl_usage_line(ctl);
		if (auto_option(o, ch, optarg) != 0)
			return CTL_USAGE;
	}
	return CTL_OK;
}

/* auto_check_template - code (if given; "" clears it) is a template of
 * the practice for channel; -1 after printing why. */
static int auto_check_template(ctl_t *ctl, int64_t practice, const char *opt, const char *code,
                               const char *channel)
{
	char prac[PP_LL_LEN];
	if (code == NULL || *code == '\0')
		return 0;
	PGresult *res = pp_db_exec(ctl->db,
	                           "SELECT channel::text FROM templates WHERE practice_id = $1 "
	                           "AND code = $2",
	                           PP_DB_ARGS(pp_lltoa(prac, practice), code));
	if (res == NULL)
		return ctl_db_fail(ctl, "check the template"), -1;
	int rc = -1;
	if (PQntuples(res) == 0)
		ctl_err("%s: practice %lld has no template \"%s\" (see: practicepost template list "
		        "--practice %lld)",
		        opt, (long long)practice, code, (long long)practice);
	else if (strcmp(pp_db_value(res, 0, 0), channel) != 0)
		ctl_err("%s: template \"%s\" is an %s template; this needs an %s one", opt, code,
		        pp_db_value(res, 0, 0), channel);
	else
		rc = 0;
	PQclear(res);
	return rc;
}

static int auto_check_templates(ctl_t *ctl, int64_t practice, const auto_opts_t *o)
{
	return auto_check_template(ctl, practice, "--template", o->tpl, "email") ||
	       auto_check_template(ctl, practice, "--sms-template", o->sms, "sms") ||
	       auto_check_template(ctl, practice, "--family-template", o->family, "email") ||
	       auto_check_template(ctl, practice, "--family-sms-template", o->family_sms, "sms");
}

/* auto_db_fail - the constraints of auto_messages in operator terms. */
static int auto_db_fail(ctl_t *ctl, const char *doing, const char *kind)
{
	char name[128];
	ctl_db_constraint(ctl->db, name, sizeof(name));
	if (strcmp(name, "auto_messages_one_per_kind") == 0)
		return ctl_err("cannot %s: the practice already has a %s message (change it with: "
		               "practicepost auto set ID)",
		               doing, kind ? kind : "message of this kind");
	if (strcmp(name, "auto_messages_one_per_offset") == 0)
		return ctl_err("cannot %s: the practice already has a reminder with that lead time",
		               doing);
	if (strcmp(name, "auto_messages_family_sms") == 0)
		return ctl_err("cannot %s: --family-sms-template needs --family-template", doing);
	if (strcmp(name, "auto_messages_family_reminder") == 0 ||
	    strcmp(name, "auto_messages_reminder_offset") == 0)
		return ctl_err("cannot %s: only a reminder has --before and family templates",
		               doing);
	if (strncmp(name, "auto_messages_practice_id_", 26) == 0)
		return ctl_err("cannot %s: a template named is not one of the practice's", doing);
	return ctl_db_fail(ctl, doing);
}

static const char *num(char buf[PP_LL_LEN], int64_t v)
{
	return v < 0 ? NULL : pp_lltoa(buf, v);
}

static int cmd_auto_add(ctl_t *ctl, int argc, char **argv)
{
	auto_opts_t o;
	char prac[PP_LL_LEN], delay[PP_LL_LEN], window[PP_LL_LEN], before[PP_LL_LEN];
	int rc = auto_parse(ctl, argc, argv, &o);
	if (rc != CTL_OK)
		return rc;
	CTL_NO_ARGS(ctl, argc, argv);
	CTL_REQUIRE(ctl, o.practice ? "" : NULL, "--practice");
	CTL_REQUIRE(ctl, o.kind, "--kind");
	CTL_REQUIRE(ctl, o.tpl, "--template");
	int reminder = strcmp(o.kind, "reminder") == 0;
	if (reminder != (o.before >= 0))
		return ctl_usage(ctl, reminder ? "a reminder needs --before (e.g. 24h)"
		                               : "only a reminder takes --before");
	if (!reminder && (o.family || o.family_sms || o.window >= 0))
		return ctl_usage(ctl, "family grouping applies to reminders only");
	if (ctl_db(ctl) == NULL || ctl_practice_exists(ctl, o.practice) != 1 ||
	    auto_check_templates(ctl, o.practice, &o) != 0)
		return CTL_FAIL;
	PGresult *res = pp_db_exec(
	    ctl->db,
	    "INSERT INTO auto_messages (practice_id, kind, template_code, sms_template_code, "
	    "enabled, offset_minutes, delay_minutes, family_template_code, "
	    "family_sms_template_code, family_window_minutes) VALUES ($1, $2, $3, nullif($4, ''), "
	    "$5::boolean, coalesce($6::int, 0), coalesce($7::int, 10), nullif($8, ''), "
	    "nullif($9, ''), coalesce($10::int, 60)) RETURNING id",
	    PP_DB_ARGS(pp_lltoa(prac, o.practice), o.kind, o.tpl, o.sms, o.enabled == 0 ? "f" : "t",
	               num(before, o.before), num(delay, o.delay), o.family, o.family_sms,
	               num(window, o.window)));
	if (res == NULL)
		return auto_db_fail(ctl, "add the automatic message", o.kind);
	ctl_print_id(ctl, pp_db_value_ll(res, 0, 0, 0));
	PQclear(res);
	return CTL_OK;
}

static int cmd_auto_set(ctl_t *ctl, int argc, char **argv)
{
	auto_opts_t o;
	char id[PP_LL_LEN], delay[PP_LL_LEN], window[PP_LL_LEN], before[PP_LL_LEN];
	int rc = auto_parse(ctl, argc, argv, &o);
	if (rc != CTL_OK)
		return rc;
	if (optind != argc - 1)
		return ctl_usage(ctl,
		                 "give the id of one automatic message (see: practicepost auto "
		                 "list)");
	if (ctl_parse_id("automatic message id", argv[optind], &o.id) != 0)
		return CTL_USAGE;
	if (o.practice || o.kind)
		return ctl_usage(ctl, "the practice and kind of an automatic message are fixed; "
		                      "add a new one instead");
	if (o.tpl != NULL && *o.tpl == '\0')
		return ctl_usage(ctl, "--template cannot be cleared");
	if (ctl_db(ctl) == NULL)
		return CTL_FAIL;
	PGresult *res = pp_db_exec(ctl->db, "SELECT practice_id FROM auto_messages WHERE id = $1",
	                           PP_DB_ARGS(pp_lltoa(id, o.id)));
	if (res == NULL)
		return ctl_db_fail(ctl, "find the automatic message");
	int64_t practice = PQntuples(res) ? pp_db_value_ll(res, 0, 0, 0) : 0;
	PQclear(res);
	if (practice == 0)
		return ctl_err("no automatic message with id %lld", (long long)o.id);
	if (auto_check_templates(ctl, practice, &o) != 0)
		return CTL_FAIL;
	res = pp_db_exec(
	    ctl->db,
	    "UPDATE auto_messages SET template_code = coalesce($2, template_code), "
	    "sms_template_code = CASE WHEN $3::text IS NULL THEN sms_template_code ELSE "
	    "nullif($3, '') END, enabled = coalesce($4::boolean, enabled), "
	    "offset_minutes = coalesce($5::int, offset_minutes), "
	    "delay_minutes = coalesce($6::int, delay_minutes), "
	    "family_template_code = CASE WHEN $7::text IS NULL THEN family_template_code ELSE "
	    "nullif($7, '') END, family_sms_template_code = CASE WHEN $8::text IS NULL THEN "
	    "family_sms_template_code ELSE nullif($8, '') END, "
	    "family_window_minutes = coalesce($9::int, family_window_minutes), updated_at = now() "
	    "WHERE id = $1 RETURNING kind",
	    PP_DB_ARGS(id, o.tpl, o.sms,
	               o.enabled < 0 ? NULL
	               : o.enabled   ? "t"
	                             : "f",
	               num(before, o.before), num(delay, o.delay), o.family, o.family_sms,
	               num(window, o.window)));
	if (res == NULL)
		return auto_db_fail(ctl, "change the automatic message", NULL);
	PQclear(res);
	return CTL_OK;
}

static int cmd_auto_list(ctl_t *ctl, int argc, char **argv)
{
	static const ctl_column_t cols[] = {
	    {"id", "ID", CTL_COL_INT, 0, CTL_COL_BOTH},
	    {"practice_id", "PRACTICE", CTL_COL_INT, 0, CTL_COL_BOTH},
	    {"kind", "KIND", CTL_COL_TEXT, 0, CTL_COL_BOTH},
	    {"enabled", "ON", CTL_COL_BOOL, 0, CTL_COL_BOTH},
	    {"template", "TEMPLATE", CTL_COL_TEXT, 20, CTL_COL_BOTH},
	    {"sms_template", "SMS TEMPLATE", CTL_COL_TEXT, 20, CTL_COL_BOTH},
	    {"before_minutes", "BEFORE(MIN)", CTL_COL_INT, 0, CTL_COL_BOTH},
	    {"delay_minutes", "DELAY(MIN)", CTL_COL_INT, 0, CTL_COL_BOTH},
	    {"family_template", "FAMILY TEMPLATE", CTL_COL_TEXT, 20, CTL_COL_BOTH},
	    {"family_sms_template", "FAMILY SMS", CTL_COL_TEXT, 20, CTL_COL_BOTH},
	    {"family_window_minutes", "WINDOW(MIN)", CTL_COL_INT, 0, CTL_COL_BOTH},
	};
	auto_opts_t o;
	char prac[PP_LL_LEN];
	int rc = auto_parse(ctl, argc, argv, &o);
	if (rc != CTL_OK)
		return rc;
	CTL_NO_ARGS(ctl, argc, argv);
	if (ctl_db(ctl) == NULL)
		return CTL_FAIL;
	PGresult *res = pp_db_exec(
	    ctl->db,
	    "SELECT id, practice_id, kind, enabled, template_code AS template, sms_template_code "
	    "AS sms_template, CASE WHEN kind = 'reminder' THEN offset_minutes END AS "
	    "before_minutes, CASE WHEN kind <> 'reminder' THEN delay_minutes END AS "
	    "delay_minutes, family_template_code AS family_template, family_sms_template_code AS "
	    "family_sms_template, CASE WHEN kind = 'reminder' THEN family_window_minutes END AS "
	    "family_window_minutes FROM auto_messages WHERE ($1::bigint IS NULL OR practice_id = "
	    "$1::bigint) ORDER BY practice_id, kind, offset_minutes DESC, id",
	    PP_DB_ARGS(o.practice ? pp_lltoa(prac, o.practice) : NULL));
	if (res == NULL)
		return ctl_db_fail(ctl, "list the automatic messages");
	ctl_print_rows(ctl, res, cols, (int)(sizeof(cols) / sizeof(cols[0])));
	PQclear(res);
	return CTL_OK;
}

static int cmd_auto_remove(ctl_t *ctl, int argc, char **argv)
{
	char id[PP_LL_LEN];
	int64_t v;
	if (argc != 2)
		return ctl_usage(ctl, "give the id of one automatic message");
	if (ctl_parse_id("automatic message id", argv[1], &v) != 0)
		return CTL_USAGE;
	if (ctl_db(ctl) == NULL)
		return CTL_FAIL;
	PGresult *res = pp_db_exec(ctl->db, "DELETE FROM auto_messages WHERE id = $1 RETURNING id",
	                           PP_DB_ARGS(pp_lltoa(id, v)));
	if (res == NULL)
		return ctl_db_fail(ctl, "remove the automatic message");
	int n = PQntuples(res);
	PQclear(res);
	return n == 1 ? CTL_OK : ctl_err("no automatic message with id %lld", (long long)v);
}

const ctl_command_t ctl_auto_commands[] = {
    {"auto", "add", cmd_auto_add,
     "--practice ID --kind welcome|confirmation|cancellation|reminder --template CODE "
     "[--sms-template CODE] [--delay MINUTES] [--before 24h] [--family-template CODE] "
     "[--family-sms-template CODE] [--family-window MINUTES] [--disable]",
     "make the composer send a message automatically (confirmation and cancellation wait "
     "--delay minutes, default 10; a reminder goes --before the appointment); prints its id"},
    {"auto", "set", cmd_auto_set,
     "ID [--template CODE] [--sms-template CODE|\"\"] [--delay MINUTES] [--before 24h] "
     "[--family-template CODE|\"\"] [--family-sms-template CODE|\"\"] [--family-window "
     "MINUTES] [--enable|--disable]",
     "change an automatic message; \"\" clears an optional template"},
    {"auto", "list", cmd_auto_list, "[--practice ID]", "list the automatic messages"},
    {"auto", "remove", cmd_auto_remove, "ID", "stop and delete an automatic message"},
    {NULL, NULL, NULL, NULL, NULL},
};
