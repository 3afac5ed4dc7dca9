/*
 * cmd_template.c - `practicepost template add|list` and `practicepost
 * fields`: a practice's message templates (saved by code; an unknown merge
 * field is refused on save, naming it; email templates may attach the
 * appointment as an .ics with an alarm) and the catalogue of merge fields.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "pp_merge.h"

#define TEMPLATE_MAX_BYTES (4 * 1024 * 1024)

static const char *const channels[] = {"email", "sms", NULL};
static const char *const formats[] = {"text", "html", NULL};
static const char *const ics_choices[] = {"none", "request", "cancel", NULL};

typedef struct {
	int64_t practice;
	const char *code, *channel, *subject, *body, *body_file, *format, *description;
	const char *attach_ics, *ics_alarm, *ics_summary; /* ics_alarm: minutes, NULL: none */
} template_opts_t;

/* template_ics_option - --attach-ics, --ics-alarm, --ics-summary. */
static int template_ics_option(template_opts_t *o, int ch, const char *arg)
{
	int64_t minutes;
	switch (ch) {
	case 'i':
		if (ctl_parse_choice("--attach-ics", arg, ics_choices) < 0)
			return -1;
		o->attach_ics = arg;
		return 0;
	case 'a':
		if (strcmp(arg, "none") == 0 || *arg == '\0') {
			o->ics_alarm = NULL;
			return 0;
		}
		if (ctl_parse_int("--ics-alarm", arg, 0, 40320, &minutes) != 0)
			return -1;
		o->ics_alarm = arg;
		return 0;
	default:
		o->ics_summary = arg;
		return ctl_check_line("--ics-summary", arg);
	}
}

static int template_parse(ctl_t *ctl, int argc, char **argv, template_opts_t *o)
{
	static const struct option opts[] = {{"practice", required_argument, NULL, 'p'},
	                                     {"code", required_argument, NULL, 'c'},
	                                     {"channel", required_argument, NULL, 'C'},
	                                     {"subject", required_argument, NULL, 's'},
	                                     {"body", required_argument, NULL, 'b'},
	                                     {"body-file", required_argument, NULL, 'B'},
	                                     {"format", required_argument, NULL, 'f'},
	                                     {"description", required_argument, NULL, 'd'},
	                                     {"attach-ics", required_argument, NULL, 'i'},
	                                     {"ics-alarm", required_argument, NULL, 'a'},
	                                     {"ics-summary", required_argument, NULL, 'S'},
	                                     {NULL, 0, NULL, 0}};
	int ch;
	memset(o, 0, sizeof(*o));
	o->channel = "email";
	o->format = "text";
	o->attach_ics = "none";
	o->ics_alarm = "60";
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'p':
			if (ctl_parse_id("--practice", optarg, &o->practice) != 0)
				return CTL_USAGE;
			break;
		case 'c':
			o->code = optarg;
			break;
		case 'C':
			if (ctl_parse_choice("--channel", optarg, channels) < 0)
				return CTL_USAGE;
			o->channel = optarg;
			break;
		case 's':
			o->subject = optarg;
			break;
		case 'b':
			o->body = optarg;
			break;
		case 'B':
			o->body_file = optarg;
			break;
		case 'f':
			if (ctl_parse_choice("--format", optarg, formats) < 0)
				return CTL_USAGE;
			o->format = optarg;
			break;
		case 'd':
			o->description = optarg;
			break;
		case 'i':
		case 'a':
		case 'S':
			if (template_ics_option(o, ch, optarg) != 0)
				return CTL_USAGE;
			break;
		default:
			return ctl_usage_line(ctl);
		}
	}
	CTL_NO_ARGS(ctl, argc, argv);
	CTL_REQUIRE(ctl, o->practice ? "" : NULL, "--practice");
	CTL_REQUIRE(ctl, o->code, "--code");
	if ((o->body == NULL) == (o->body_file == NULL))
		return ctl_usage(ctl, "give exactly one of --body and --body-file");
	if (strcmp(o->channel, "sms") == 0 &&
	    (o->subject != NULL || strcmp(o->format, "html") == 0))
		return ctl_usage(ctl, "an SMS template has no --subject and no html --format");
	if (strcmp(o->channel, "sms") == 0 && strcmp(o->attach_ics, "none") != 0)
		return ctl_usage(ctl, "an SMS template cannot attach an .ics (--attach-ics)");
	if (ctl_check_line("--code", o->code) ||
	    (o->subject && ctl_check_line("--subject", o->subject)) ||
	    (o->description && ctl_check_line("--description", o->description)))
		return CTL_USAGE;
	return CTL_OK;
}

/* template_validate - every merge field known; text valid UTF-8. */
static int template_validate(const char *what, const char *text)
{
	char err[256];
	if (!pp_merge_utf8_valid(text, strlen(text))) {
		ctl_err("the template's %s is not valid UTF-8", what);
		return -1;
	}
	if (pp_merge_validate(text, err, sizeof(err)) != 0) {
		ctl_err("the template's %s is refused: %s (see: practicepost fields)", what, err);
		return -1;
	}
	return 0;
}

static int cmd_template_add(ctl_t *ctl, int argc, char **argv)
{
	template_opts_t o;
	char practice[PP_LL_LEN];
	char *file_body = NULL;
	int rc = template_parse(ctl, argc, argv, &o);
	if (rc != CTL_OK)
		return rc;
	rc = CTL_FAIL;
	if (o.body_file != NULL &&
	    (file_body = ctl_read_file(o.body_file, TEMPLATE_MAX_BYTES)) == NULL)
		return CTL_FAIL;
	const char *body = file_body ? file_body : o.body;
	if (*body == '\0') {
		ctl_err("the template's body is empty");
		goto fail;
	}
	if ((o.subject && template_validate("subject", o.subject) != 0) ||
	    template_validate("body", body) != 0 ||
	    (o.ics_summary && template_validate("calendar summary", o.ics_summary) != 0))
		goto fail;
	if (ctl_db(ctl) == NULL || ctl_practice_exists(ctl, o.practice) != 1)
		goto fail;
	PGresult *res = pp_db_exec(
	    ctl->db,
	    "INSERT INTO templates (practice_id, code, channel, description, subject, body, "
	    "format, attach_ics, ics_alarm_minutes, ics_summary) VALUES ($1, $2, $3, $4, $5, $6, "
	    "$7, $8, $9, $10) ON CONFLICT (practice_id, code) DO "
	    "UPDATE SET channel = EXCLUDED.channel, description = EXCLUDED.description, "
	    "subject = EXCLUDED.subject, body = EXCLUDED.body, format = EXCLUDED.format, "
	    "attach_ics = EXCLUDED.attach_ics, ics_alarm_minutes = EXCLUDED.ics_alarm_minutes, "
	    "ics_summary = EXCLUDED.ics_summary, updated_at = now() "
	    "RETURNING id, (xmax = 0) AS inserted",
	    PP_DB_ARGS(pp_lltoa(practice, o.practice), o.code, o.channel,
	               o.description ? o.description : "", o.subject ? o.subject : "", body,
	               o.format, o.attach_ics, o.ics_alarm, o.ics_summary));
	if (res == NULL) {
		ctl_db_fail(ctl, "save the template");
		goto fail;
	}
	ctl_print_id(ctl, pp_db_value_ll(res, 0, 0, 0));
	if (!ctl->json)
		fprintf(stderr, "template %s %s\n", o.code,
		        strcmp(pp_db_value(res, 0, 1), "t") == 0 ? "created" : "updated");
	PQclear(res);
	rc = CTL_OK;
fail:
	free(file_body);
	return rc;
}

static int cmd_template_list(ctl_t *ctl, int argc, char **argv)
{
	static const ctl_column_t cols[] = {
	    {"id", "ID", CTL_COL_INT, 0, CTL_COL_BOTH},
	    {"code", "CODE", CTL_COL_TEXT, 24, CTL_COL_BOTH},
	    {"channel", "CHANNEL", CTL_COL_TEXT, 0, CTL_COL_BOTH},
	    {"format", "FORMAT", CTL_COL_TEXT, 0, CTL_COL_BOTH},
	    {"attach_ics", "ICS", CTL_COL_TEXT, 0, CTL_COL_BOTH},
	    {"ics_alarm_minutes", "ALARM", CTL_COL_INT, 0, CTL_COL_BOTH},
	    {"subject", "SUBJECT", CTL_COL_TEXT, 40, CTL_COL_BOTH},
	    {"description", "DESCRIPTION", CTL_COL_TEXT, 30, CTL_COL_BOTH},
	    {"body_bytes", "BYTES", CTL_COL_INT, 0, CTL_COL_BOTH},
	    {"updated_at", "UPDATED", CTL_COL_TIME, 0, CTL_COL_BOTH},
	};
	int64_t practice = 0;
	char pid[PP_LL_LEN];
	int rc = ctl_parse_practice_only(ctl, argc, argv, 1, &practice);
	if (rc != 0)
		return rc;
	if (ctl_db(ctl) == NULL || ctl_practice_exists(ctl, practice) != 1)
		return CTL_FAIL;
	PGresult *res = pp_db_exec(ctl->db,
	                           "SELECT id, code, channel::text, format, attach_ics, "
	                           "CASE WHEN attach_ics <> 'none' THEN ics_alarm_minutes END "
	                           "AS ics_alarm_minutes, subject, description, "
	                           "octet_length(body) AS body_bytes, "
	                           "to_json(updated_at) #>> '{}' AS updated_at FROM templates "
	                           "WHERE practice_id = $1 ORDER BY code",
	                           PP_DB_ARGS(pp_lltoa(pid, practice)));
	if (res == NULL)
		return ctl_db_fail(ctl, "list the templates");
	ctl_print_rows(ctl, res, cols, (int)(sizeof(cols) / sizeof(cols[0])));
	PQclear(res);
	return CTL_OK;
}

/* fields: the merge-field catalogue by group (no database needed). */
static int cmd_fields(ctl_t *ctl, int argc, char **argv)
{
	ctl_json_t j;
	if (argc != 1)
		return ctl_usage(ctl, "unexpected argument \"%s\"", argv[1]);
	ctl_json_init(&j);
	ctl_json_begin_array(&j);
	for (int f = 0; f < PP_FIELD_COUNT; f++) {
		const pp_merge_field_info_t *info = pp_merge_field_info((pp_merge_field_t)f);
		if (ctl->json) {
			ctl_json_begin_object(&j);
			ctl_json_key(&j, "group");
			ctl_json_str(&j, info->group_name);
			ctl_json_key(&j, "field");
			ctl_json_str(&j, info->full_name);
			ctl_json_key(&j, "description");
			ctl_json_str(&j, info->description);
			ctl_json_end_object(&j);
			continue;
		}
		if (f == 0 || pp_merge_field_info((pp_merge_field_t)(f - 1))->group != info->group)
			printf("%s%s - %s\n", f ? "\n" : "", info->group_name,
			       pp_merge_group_description(info->group));
		char name[96];
		snprintf(name, sizeof(name), "{{%s}}", info->full_name);
		printf("  %-30s %s\n", name, info->description);
	}
	ctl_json_end_array(&j);
	if (ctl->json)
		ctl_json_print(&j, stdout);
	else
		pp_buf_free(&j.out);
	return CTL_OK;
}

const ctl_command_t ctl_template_commands[] = {
    {"template", "add", cmd_template_add,
     "--practice ID --code C [--channel email|sms] [--subject S] (--body TEXT | --body-file "
     "F) [--format text|html] [--description D] [--attach-ics none|request|cancel] "
     "[--ics-alarm MINUTES|none] [--ics-summary TEXT]",
     "save a template (replaces the one with the same code); prints its id"},
    {"template", "list", cmd_template_list, "--practice ID", "list a practice's templates"},
    {NULL, "fields", cmd_fields, "", "list the merge fields templates may use, by group"},
    {NULL, NULL, NULL, NULL, NULL},
};
