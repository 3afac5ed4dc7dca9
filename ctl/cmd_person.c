/*
 * cmd_person.c - `practicepost person add|set|list|show|clear-bounce`:
 * patients, providers, specialists and staff of a practice, with the
 * addresses messages go to, the bounce flag a hard bounce puts on an
 * address (the composer refuses it until the address changes or the flag
 * is cleared, audited) and the person's opt-outs.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "pp_audit.h"

static const char *const person_kinds[] = {"patient", "provider", "specialist", "staff", NULL};
static const char *const channels[] = {"email", "sms", "none", NULL};

typedef struct {
	int64_t practice, family;
	const char *kind, *first, *last, *title, *email, *mobile, *prefer, *external_id, *zone;
	int clear_family;
} person_opts_t;

static int check_mobile(const char *mobile)
{
	int digits = 0;
	for (const char *p = mobile; *p; p++) {
		if (*p >= '0' && *p <= '9')
			digits++;
		else if (strchr("+ -().", *p) == NULL || (*p == '+' && p != mobile))
			goto bad;
	}
	if (digits >= 3)
		return 0;
bad:
	ctl_err("--mobile: \"%s\" is not a phone number (digits, an optional leading +)", mobile);
	return -1;
}

/* person_parse - options shared by add and set; -1 usage, -2 bad value. */
static int person_parse(int argc, char **argv, person_opts_t *o)
{
	static const struct option opts[] = {{"practice", required_argument, NULL, 'p'},
	                                     {"kind", required_argument, NULL, 'k'},
	                                     {"first", required_argument, NULL, 'f'},
	                                     {"last", required_argument, NULL, 'l'},
	                                     {"title", required_argument, NULL, 't'},
	                                     {"email", required_argument, NULL, 'e'},
	                                     {"mobile", required_argument, NULL, 'm'},
	                                     {"family", required_argument, NULL, 'F'},
	                                     {"no-family", no_argument, NULL, 'N'},
	                                     {"prefer", required_argument, NULL, 'P'},
	                                     {"external-id", required_argument, NULL, 'x'},
	                                     {"time-zone", required_argument, NULL, 'z'},
	                                     {NULL, 0, NULL, 0}};
	int ch;
	memset(o, 0, sizeof(*o));
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'p':
			if (ctl_parse_id("--practice", optarg, &o->practice) != 0)
				return -2;
			break;
		case 'k':
			if (ctl_parse_choice("--kind", optarg, person_kinds) < 0)
				return -2;
			o->kind = optarg;
			break;
		case 'f':
			o->first = optarg;
			break;
		case 'l':
			o->last = optarg;
			break;
		case 't':
			o->title = optarg;
			break;
		case 'e':
			o->email = optarg;
			break;
		case 'm':
			o->mobile = optarg;
			break;
		case 'F':
			if (ctl_parse_id("--family", optarg, &o->family) != 0)
				return -2;
			break;
		case 'N':
			o->clear_family = 1;
			break;
		case 'P':
			if (ctl_parse_choice("--prefer", optarg, channels) < 0)
				return -2;
			o->prefer = optarg;
			break;
		case 'x':
			o->external_id = optarg;
			break;
		case 'z':
			o->zone = optarg;
			break;
		default:
			return -1;
		}
	}
	if ((o->first && ctl_check_line("--first", o->first)) ||
	    (o->last && ctl_check_line("--last", o->last)) ||
	    (o->title && ctl_check_line("--title", o->title)) ||
	    (o->email && *o->email && ctl_check_email("--email", o->email)) ||
	    (o->mobile && *o->mobile && check_mobile(o->mobile)) ||
	    (o->external_id && ctl_check_line("--external-id", o->external_id)))
		return -2;
	return 0;
}

static int cmd_person_add(ctl_t *ctl, int argc, char **argv)
{
	person_opts_t o;
	char practice[PP_LL_LEN], family[PP_LL_LEN];
	int rc = person_parse(argc, argv, &o);
	if (rc != 0)
		return rc == -1 ? ctl_usage_line(ctl) : CTL_USAGE;
	CTL_NO_ARGS(ctl, argc, argv);
	CTL_REQUIRE(ctl, o.practice ? "" : NULL, "--practice");
	CTL_REQUIRE(ctl, o.first, "--first");
	CTL_REQUIRE(ctl, o.last, "--last");
	if (o.clear_family)
		return ctl_usage(ctl, "--no-family is for person set");
	if (ctl_db(ctl) == NULL || ctl_practice_exists(ctl, o.practice) != 1)
		return CTL_FAIL;
	PGresult *res = pp_db_exec(
	    ctl->db,
	    "INSERT INTO people (practice_id, kind, first_name, last_name, title, email, "
	    "mobile, family_id, preferred_channel, external_id, time_zone) VALUES ($1, $2, $3, "
	    "$4, $5, NULLIF($6, ''), NULLIF($7, ''), $8, $9, $10, NULLIF($11, '')) RETURNING id",
	    PP_DB_ARGS(pp_lltoa(practice, o.practice), o.kind ? o.kind : "patient", o.first, o.last,
	               o.title ? o.title : "", o.email, o.mobile,
	               o.family ? pp_lltoa(family, o.family) : NULL, o.prefer ? o.prefer : "email",
	               o.external_id, o.zone));
	if (res == NULL)
		return ctl_db_fail(ctl, "add the person");
	ctl_print_id(ctl, pp_db_value_ll(res, 0, 0, 0));
	PQclear(res);
	return CTL_OK;
}

/* person set ID: change only what is given; "" clears email or mobile. */
static int cmd_person_set(ctl_t *ctl, int argc, char **argv)
{
	person_opts_t o;
	char id[PP_LL_LEN], family[PP_LL_LEN];
	int64_t person;
	int rc = person_parse(argc, argv, &o);
	if (rc != 0)
		return rc == -1 ? ctl_usage_line(ctl) : CTL_USAGE;
	if (optind != argc - 1)
		return ctl_usage(ctl, "give exactly one person id");
	if (ctl_parse_id("person id", argv[optind], &person) != 0)
		return CTL_USAGE;
	if (o.practice)
		return ctl_usage(ctl, "a person cannot move to another practice");
	if (ctl_db(ctl) == NULL)
		return CTL_FAIL;
	PGresult *res = pp_db_exec(
	    ctl->db,
	    "UPDATE people SET kind = COALESCE($2::person_kind, kind), "
	    "first_name = COALESCE($3, first_name), last_name = COALESCE($4, last_name), "
	    "title = COALESCE($5, title), "
	    "email = CASE WHEN $6::text IS NULL THEN email ELSE NULLIF($6, '') END, "
	    "mobile = CASE WHEN $7::text IS NULL THEN mobile ELSE NULLIF($7, '') END, "
	    "family_id = CASE WHEN $11 THEN NULL ELSE COALESCE($8::bigint, family_id) END, "
	    "preferred_channel = COALESCE($9, preferred_channel), "
	    "external_id = COALESCE($10, external_id), "
	    "time_zone = CASE WHEN $12::text IS NULL THEN time_zone ELSE NULLIF($12, '') END "
	    "WHERE id = $1 RETURNING id",
	    PP_DB_ARGS(pp_lltoa(id, person), o.kind, o.first, o.last, o.title, o.email, o.mobile,
	               o.family ? pp_lltoa(family, o.family) : NULL, o.prefer, o.external_id,
	               o.clear_family ? "t" : "f", o.zone));
	if (res == NULL)
		return ctl_db_fail(ctl, "change the person");
	int found = PQntuples(res) > 0;
	PQclear(res);
	if (!found)
		return ctl_err("no person with id %lld", (long long)person);
	printf("person %lld updated\n", (long long)person);
	return CTL_OK;
}

static int cmd_person_list(ctl_t *ctl, int argc, char **argv)
{
	static const struct option opts[] = {{"practice", required_argument, NULL, 'p'},
	                                     {"kind", required_argument, NULL, 'k'},
	                                     {NULL, 0, NULL, 0}};
	static const ctl_column_t cols[] = {
	    {"id", "ID", CTL_COL_INT, 0, CTL_COL_BOTH},
	    {"kind", "KIND", CTL_COL_TEXT, 0, CTL_COL_BOTH},
	    {"title", "TITLE", CTL_COL_TEXT, 0, CTL_COL_JSON_ONLY},
	    {"first_name", "FIRST", CTL_COL_TEXT, 0, CTL_COL_JSON_ONLY},
	    {"last_name", "LAST", CTL_COL_TEXT, 0, CTL_COL_JSON_ONLY},
	    {"display_name", "NAME", CTL_COL_TEXT, 32, CTL_COL_TABLE_ONLY},
	    {"email", "EMAIL", CTL_COL_TEXT, 36, CTL_COL_BOTH},
	    {"mobile", "MOBILE", CTL_COL_TEXT, 18, CTL_COL_BOTH},
	    {"family_id", "FAMILY", CTL_COL_INT, 0, CTL_COL_BOTH},
	    {"preferred_channel", "PREFER", CTL_COL_TEXT, 0, CTL_COL_BOTH},
	    {"external_id", "EXTERNAL ID", CTL_COL_TEXT, 16, CTL_COL_BOTH},
	};
	int64_t practice = 0;
	const char *kind = NULL;
	char pid[PP_LL_LEN];
	int ch;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (ch == 'p' && ctl_parse_id("--practice", optarg, &practice) != 0)
			return CTL_USAGE;
		else if (ch == 'k' && ctl_parse_choice("--kind", optarg, person_kinds) < 0)
			return CTL_USAGE;
		else if (ch == 'k')
			kind = optarg;
		else if (ch != 'p')
			return ctl_usage_line(ctl);
	}
	CTL_NO_ARGS(ctl, argc, argv);
	CTL_REQUIRE(ctl, practice ? "" : NULL, "--practice");
	if (ctl_db(ctl) == NULL || ctl_practice_exists(ctl, practice) != 1)
		return CTL_FAIL;
	PGresult *res = pp_db_exec(
	    ctl->db,
	    "SELECT id, kind::text, title, first_name, last_name, "
	    "concat_ws(' ', NULLIF(title, ''), first_name, last_name) AS display_name, "
	    "email, mobile, family_id, preferred_channel, external_id FROM people "
	    "WHERE practice_id = $1 AND ($2::person_kind IS NULL OR kind = $2::person_kind) "
	    "ORDER BY last_name, first_name, id",
	    PP_DB_ARGS(pp_lltoa(pid, practice), kind));
	if (res == NULL)
		return ctl_db_fail(ctl, "list the people");
	ctl_print_rows(ctl, res, cols, (int)(sizeof(cols) / sizeof(cols[0])));
	PQclear(res);
	return CTL_OK;
}

static const ctl_column_t show_cols[] = {
    {"id", "id", CTL_COL_INT, 0, CTL_COL_BOTH},
    {"practice_id", "practice", CTL_COL_INT, 0, CTL_COL_BOTH},
    {"kind", "kind", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"title", "title", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"first_name", "first name", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"last_name", "last name", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"email", "email", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"mobile", "mobile", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"family_id", "family", CTL_COL_INT, 0, CTL_COL_BOTH},
    {"preferred_channel", "prefer", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"external_id", "external id", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"email_bounced", "email bounced", CTL_COL_BOOL, 0, CTL_COL_BOTH},
    {"email_bounced_at", "bounced at", CTL_COL_TIME, 0, CTL_COL_BOTH},
    {"email_bounce_address", "bounced addr", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"email_bounce_status", "bounce status", CTL_COL_TEXT, 0, CTL_COL_BOTH},
    {"optouts", "opted out of", CTL_COL_TEXT, 0, CTL_COL_BOTH},
};
#define N_SHOW_COLS ((int)(sizeof(show_cols) / sizeof(show_cols[0])))

/* email_bounced: the flag stops mail to the current address (it is for
 * that address; an address changed since is not refused). */
static const char show_sql[] =
    "SELECT id, practice_id, kind::text AS kind, title, first_name, last_name, email, mobile, "
    "family_id, preferred_channel, external_id, "
    "(email_bounced_at IS NOT NULL AND lower(email_bounce_address) = lower(email)) "
    "AS email_bounced, to_json(email_bounced_at) #>> '{}' AS email_bounced_at, "
    "email_bounce_address, email_bounce_status, "
    "(SELECT string_agg(o.kind || ' (' || o.channel || ')', ', ' ORDER BY o.kind, o.channel) "
    "FROM optouts o WHERE o.person_id = people.id) AS optouts "
    "FROM people WHERE id = $1";

static void show_json(const PGresult *res)
{
	ctl_json_t j;
	ctl_json_init(&j);
	ctl_json_begin_object(&j);
	for (int c = 0; c < N_SHOW_COLS; c++) {
		ctl_json_key(&j, show_cols[c].key);
		ctl_json_cell(&j, pp_db_value(res, 0, PQfnumber(res, show_cols[c].key)),
		              show_cols[c].kind);
	}
	ctl_json_end_object(&j);
	ctl_json_print(&j, stdout);
}

static void show_text(const PGresult *res)
{
	for (int c = 0; c < N_SHOW_COLS; c++) {
		const char *v = pp_db_value(res, 0, PQfnumber(res, show_cols[c].key));
		if (v == NULL || *v == '\0')
			continue;
		char *cell = ctl_table_cell(v, show_cols[c].kind, 0);
		printf("%-14s %s\n", show_cols[c].header, cell);
		free(cell);
	}
}

/* person_id_arg - the one ID argument of a command without options. */
static int person_id_arg(ctl_t *ctl, int argc, char **argv, int64_t *id)
{
	if (getopt_long(argc, argv, "", (const struct option[]){{NULL, 0, NULL, 0}}, NULL) != -1)
		return ctl_usage_line(ctl);
	if (optind != argc - 1)
		return ctl_usage(ctl, "give exactly one person id");
	return ctl_parse_id("person id", argv[optind], id) == 0 ? CTL_OK : CTL_USAGE;
}

static int cmd_person_show(ctl_t *ctl, int argc, char **argv)
{
	int64_t person;
	char id[PP_LL_LEN];
	int rc = person_id_arg(ctl, argc, argv, &person);
	if (rc != CTL_OK)
		return rc;
	if (ctl_db(ctl) == NULL)
		return CTL_FAIL;
	PGresult *res = pp_db_exec(ctl->db, show_sql, PP_DB_ARGS(pp_lltoa(id, person)));
	if (res == NULL)
		return ctl_db_fail(ctl, "read the person");
	if (PQntuples(res) == 0) {
		PQclear(res);
		return ctl_err("no person with id %lld", (long long)person);
	}
	if (ctl->json)
		show_json(res);
	else
		show_text(res);
	PQclear(res);
	return CTL_OK;
}

/* person clear-bounce ID: mail may go to the flagged address again. */
static int cmd_person_clear_bounce(ctl_t *ctl, int argc, char **argv)
{
	int64_t person;
	char id[PP_LL_LEN];
	int rc = person_id_arg(ctl, argc, argv, &person);
	if (rc != CTL_OK)
		return rc;
	if (ctl_db(ctl) == NULL)
		return CTL_FAIL;
	if (pp_db_begin(ctl->db) != 0)
		return ctl_db_fail(ctl, "clear the bounce flag");
	PGresult *res = pp_db_exec(
	    ctl->db,
	    "WITH old AS (SELECT id, email_bounced_at, email_bounce_address, email_bounce_status "
	    "FROM people WHERE id = $1 FOR UPDATE) "
	    "UPDATE people p SET email_bounced_at = NULL, email_bounce_address = NULL, "
	    "email_bounce_status = NULL FROM old WHERE p.id = old.id "
	    "RETURNING p.practice_id, old.email_bounced_at IS NOT NULL, old.email_bounce_address, "
	    "old.email_bounce_status, to_json(old.email_bounced_at) #>> '{}'",
	    PP_DB_ARGS(pp_lltoa(id, person)));
	int found = res != NULL && PQntuples(res) == 1;
	int had = found && strcmp(pp_db_value(res, 0, 1), "t") == 0;
	if (res == NULL ||
	    (had &&
	     pp_audit(ctl->db, pp_audit_operator(), "bounce_cleared", pp_db_value_ll(res, 0, 0, 0),
	              0, person, "address=%s status=%s bounced_at=%s", pp_db_value(res, 0, 2),
	              pp_db_value(res, 0, 3) ? pp_db_value(res, 0, 3) : "-",
	              pp_db_value(res, 0, 4)) != 0) ||
	    pp_db_commit(ctl->db) != 0) {
		PQclear(res);
		pp_db_rollback(ctl->db);
		return ctl_db_fail(ctl, "clear the bounce flag");
	}
	PQclear(res);
	if (!found)
		return ctl_err("no person with id %lld", (long long)person);
	if (!ctl->json)
		printf("person %lld: %s\n", (long long)person,
		       had ? "bounce flag cleared" : "no bounce flag");
	return CTL_OK;
}

const ctl_command_t ctl_person_commands[] = {
    {"person", "add", cmd_person_add,
     "--practice ID [--kind patient|provider|specialist|staff] --first F --last L "
     "[--title T] [--email E] [--mobile M] [--family ID] [--prefer email|sms|none] "
     "[--external-id X] [--time-zone TZ]",
     "add a person (TZ: the patient's own zone for quiet hours, e.g. Europe/Berlin; "
     "default the practice's); prints the id"},
    {"person", "set", cmd_person_set,
     "ID [--kind K] [--first F] [--last L] [--title T] [--email E] [--mobile M] "
     "[--family ID | --no-family] [--prefer email|sms|none] [--external-id X] "
     "[--time-zone TZ]",
     "change a person (an empty --email, --mobile or --time-zone clears it)"},
    {"person", "list", cmd_person_list, "--practice ID [--kind K]", "list a practice's people"},
    {"person", "show", cmd_person_show, "ID",
     "show one person: addresses, family, the email bounce flag and opt-outs"},
    {"person", "clear-bounce", cmd_person_clear_bounce, "ID",
     "clear the bounce flag of a person's email address (mail may go to it again)"},
    {NULL, NULL, NULL, NULL, NULL},
};
